// Package apptest starts whole cairn nodes for black-box tests and
// benchmarks: on 127.0.0.1 port 0, on either engine, with a fake clock and
// accounts made before the node starts.
package apptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/store/pgstore/pgtest"
	"github.com/cairn-chat/cairn/store/storetest"
)

// Engine is a storage engine a node can run on.
type Engine struct {
	Name string
	// DB returns config.DB for a fresh, empty database that lives as long as t.
	DB func(t testing.TB) string
}

// Engines are the embedded SQLite engine and PostgreSQL; PostgreSQL skips or
// fails as pgtest decides when no server is reachable.
var Engines = []Engine{
	{Name: "sqlite", DB: func(testing.TB) string { return "" }},
	{Name: "postgres", DB: postgresURL},
}

// postgresURL returns a URL whose search_path is a schema of t's own.
func postgresURL(t testing.TB) string {
	t.Helper()
	opts := pgtest.Options(t)
	u, err := url.Parse(opts.URL)
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	q := u.Query()
	q.Set("search_path", opts.Schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Account is an account to create before the node starts.
type Account struct {
	Address   string
	Passwords app.Passwords
}

// Server is a running node and clients for it.
type Server struct {
	Node     *app.Node
	Config   config.Config
	Clock    *storetest.Clock
	HTTPURL  string       // http://127.0.0.1:port
	HTTPSURL string       // https://127.0.0.1:port
	HTTP     *http.Client // plain HTTP
	HTTPS    *http.Client // trusts the node's self-signed certificate
	// CA holds the node's self-signed certificate, for TLS clients.
	CA *x509.CertPool
	// Logs holds everything the node logged, at every level.
	Logs *Logs
}

// Logs is a node's log output.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns what was logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Start runs a node on eng with the given accounts, logging errors to t, and
// stops it when t ends. configure, if not nil, may change the configuration.
func Start(t testing.TB, eng Engine, configure func(*config.Config), accounts ...Account) *Server {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.DB = eng.DB(t)
	cfg.HTTP.Listen, cfg.HTTP.TLSListen = "127.0.0.1:0", "127.0.0.1:0"
	for _, a := range []*string{&cfg.SIP.UDP, &cfg.SIP.TCP, &cfg.SIP.TLS, &cfg.SIP.WS, &cfg.SIP.WSS, &cfg.MSRP.TLS, &cfg.MSRP.TCP, &cfg.MSRP.WSS} {
		*a = "127.0.0.1:0"
	}
	cfg.MSRP.Host = "127.0.0.1"
	if configure != nil {
		configure(&cfg)
	}
	clock := storetest.NewClock(time.Now().Truncate(time.Second))
	logs := &Logs{}
	log := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}),
		slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	))

	st, err := app.OpenStore(ctx, cfg, clock.Now, true, log)
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	keys, err := app.Keyring(ctx, cfg, st)
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	for _, a := range accounts {
		if err := app.AccountAdd(ctx, st, keys, a.Address, a.Passwords); err != nil {
			t.Fatalf("apptest: %v", err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatalf("apptest: %v", err)
	}

	node, err := app.New(ctx, cfg, app.Options{Logger: log, Clock: clock.Now})
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	if err := node.Start(ctx); err != nil {
		t.Fatalf("apptest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := node.Stop(ctx); err != nil {
			t.Errorf("apptest: stop: %v", err)
		}
	})

	s := &Server{Node: node, Config: cfg, Clock: clock, Logs: logs,
		HTTPURL:  "http://" + node.Addr("http").String(),
		HTTPSURL: "https://" + node.Addr("https").String(),
	}
	pem, err := os.ReadFile(filepath.Join(cfg.DataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	trTLS := &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(trTLS.CloseIdleConnections)
	s.CA = pool
	s.HTTP = &http.Client{Transport: tr, Timeout: time.Minute}
	s.HTTPS = &http.Client{Transport: trTLS, Timeout: time.Minute}
	return s
}

// testWriter sends the node's log to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
