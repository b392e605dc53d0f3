// Package app wires cairn's modules into one running node: it opens the
// store, loads the sealing key and TLS certificate, builds the HTTP API,
// binds the listeners and runs the retention sweep.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/delivery"
	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/internal/listing"
	"github.com/cairn-chat/cairn/internal/tlsutil"
	"github.com/cairn-chat/cairn/msrp"
	"github.com/cairn-chat/cairn/offline"
	"github.com/cairn-chat/cairn/replication"
	"github.com/cairn-chat/cairn/sip"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/litestore"
	"github.com/cairn-chat/cairn/store/pgstore"
)

// OpenStore opens the database cfg names. With migrate, pending migrations
// are applied; without, the database is opened as it is, for MigrateStatus
// only. A database newer than this binary is always refused.
func OpenStore(ctx context.Context, cfg config.Config, clock store.Clock, migrate bool, log *slog.Logger) (store.Store, error) {
	if cfg.IsPostgres() {
		return pgstore.Open(ctx, pgstore.Options{URL: cfg.DB, Clock: clock, Migrate: migrate, Inspect: !migrate, Logger: log})
	}
	path := cfg.SQLitePath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("app: data directory: %w", err)
	}
	return litestore.Open(ctx, litestore.Options{Path: path, Clock: clock, Migrate: migrate, Inspect: !migrate, Logger: log})
}

// Keyring loads the sealing key, creating it on first use. It refuses to
// create one while st holds accounts: they were sealed with a key that is
// missing (a lost file, or a data_dir relative to another working
// directory), and a new key would lock every one of them out.
func Keyring(ctx context.Context, cfg config.Config, st store.Accounts) (*auth.Keyring, error) {
	key, err := auth.LoadKey(cfg.KeyPath())
	if errors.Is(err, fs.ErrNotExist) {
		accts, lerr := st.AccountList(ctx)
		if lerr != nil {
			return nil, lerr
		}
		if len(accts) > 0 {
			return nil, fmt.Errorf("app: the sealing key %s is missing, but the database holds %d accounts sealed with it: restore the key file or point key_file at it", cfg.KeyPath(), len(accts))
		}
		key, err = auth.LoadOrCreateKey(cfg.KeyPath())
	}
	if err != nil {
		return nil, err
	}
	return auth.NewKeyring(key)
}

// Options are what tests and the command line may set besides the config.
type Options struct {
	Logger *slog.Logger
	Clock  store.Clock // default time.Now
}

// Node is one running cairn server.
type Node struct {
	cfg     config.Config
	log     *slog.Logger
	now     store.Clock
	store   store.Store
	handler http.Handler
	tls     *tls.Config
	sip     *sip.Server
	queue   *offline.Queue
	msrp    *msrp.Relay
	history *history.Service

	mu        sync.Mutex
	servers   []*http.Server
	addrs     map[string]net.Addr
	draining  bool
	stopSweep context.CancelFunc
	wg        sync.WaitGroup
	stopped   bool
}

// New opens the store (applying migrations), the sealing key and the TLS
// certificate, and builds the HTTP API. Nothing listens until Start.
func New(ctx context.Context, cfg config.Config, opts Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log, now := opts.Logger, opts.Clock
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	n := &Node{cfg: cfg, log: log, now: now, addrs: make(map[string]net.Addr)}
	var err error
	if cfg.HTTP.TLSListen != "" || cfg.SIP.TLS != "" || cfg.SIP.WSS != "" || cfg.MSRP.TLS != "" || cfg.MSRP.WSS != "" {
		if n.tls, err = n.tlsConfig(); err != nil {
			return nil, err
		}
	}
	st, err := OpenStore(ctx, cfg, now, true, log)
	if err != nil {
		return nil, err
	}
	keys, err := Keyring(ctx, cfg, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	n.store = st

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	nonces := auth.NewNonces(keys, cfg.HTTP.NonceLifetime.D(), 1<<18, now)
	digest := auth.NewDigest(st, keys, nonces)
	httpAuth := auth.NewHTTP(digest)
	journal := replication.New(replication.Config{
		Retention:    cfg.Journal.Retention.D(),
		MaxBody:      cfg.Journal.MaxBody,
		MaxEntry:     cfg.Journal.MaxEntry,
		DefaultRealm: cfg.Journal.DefaultRealm,
	}, st, httpAuth, now, log.With("component", "replication"), reg)

	// SIP requests read their accounts through a cache; a password
	// changed by `cairn user passwd` reaches SIP within accountCacheTTL.
	accounts := auth.NewAccountCache(st, accountCacheTTL, now)
	if err := n.newSIP(accounts, auth.NewDigest(accounts, keys, nonces), reg); err != nil {
		st.Close()
		return nil, err
	}

	n.history = history.New(history.Config{
		Retention:     cfg.History.Retention.D(),
		TokenLifetime: cfg.History.TokenLifetime.D(),
		MaxTokens:     cfg.History.MaxTokens,
		BaseURL:       historyURL(cfg),
		PageLimit:     cfg.History.PageLimit,
	}, st, now, log.With("component", "history"), reg)
	n.sip.SetHistory(n.history)
	if n.msrp, err = n.newMSRP(digestFor(accounts, keys, msrpNonceLifetime, now), reg); err != nil {
		st.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle(cfg.Journal.Path, journal)
	mux.Handle(sip.TracesPath, sip.NewTraceAPI(st, httpAuth, listing.Config{
		Retention: cfg.Traces.Retention.D(),
		Operators: cfg.Traces.Operators,
		Realm:     cfg.Journal.DefaultRealm,
	}, now, log.With("component", "sip-traces")))
	mux.Handle(msrp.SessionsPath, msrp.NewSessionAPI(st, httpAuth, listing.Config{
		Retention: cfg.MSRP.Retention.D(),
		Operators: cfg.Traces.Operators,
		Realm:     cfg.Journal.DefaultRealm,
	}, now, log.With("component", "msrp-sessions")))
	mux.Handle(history.HistoryPath, n.history)
	mux.Handle(history.SyncPath, n.history.Sync())
	mux.HandleFunc("/healthz", n.healthz)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	n.handler = mux
	return n, nil
}

// newSIP builds the SIP front-end, the delivery core and the offline queue,
// and wires them to each other.
func (n *Node) newSIP(accounts *auth.AccountCache, digest *auth.Digest, reg prometheus.Registerer) error {
	cfg := n.cfg
	trusted := make([]netip.Prefix, 0, len(cfg.SIP.Trusted))
	for _, t := range cfg.SIP.Trusted {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			a, _ := netip.ParseAddr(t) // Validate checked it
			p = netip.PrefixFrom(a, a.BitLen())
		}
		trusted = append(trusted, p)
	}
	host, _ := os.Hostname()
	srv, err := sip.New(sip.Config{
		Domains:      cfg.SIP.Domains,
		Trusted:      trusted,
		MinExpires:   cfg.SIP.MinRegisterExpires.D(),
		MaxExpires:   cfg.SIP.MaxRegisterExpires.D(),
		Timeout:      cfg.SIP.Timeout.D(),
		Algorithms:   algorithms(cfg.SIP.DigestAlgorithms),
		MaxBody:      cfg.Offline.MaxMessageSize,
		StoredStatus: cfg.Offline.StoredStatus,
		MaxContacts:  16,
		MaxInFlight:  4096,
		Node:         host,
	}, sipStore{n.store, accounts}, digest, n.now, n.log.With("component", "sip"), reg)
	if err != nil {
		return err
	}
	q := offline.New(n.store, srv, srv, offline.Config{
		Retention: cfg.Offline.Retention.D(),
		MaxSize:   cfg.Offline.MaxMessageSize,
		MaxCount:  cfg.Offline.MaxMessages,
		MaxBytes:  cfg.Offline.MaxBytes,
		RetryMin:  cfg.Offline.RetryMin.D(),
		RetryMax:  cfg.Offline.RetryMax.D(),
		MaxDrains: 64,
	}, n.now, n.log.With("component", "offline"))
	srv.SetRouter(router{delivery.New(srv, srv, q), q})
	n.sip, n.queue = srv, q
	return nil
}

// historyURL is where devices reach the history API: history.url, else
// this host on the HTTPS port.
func historyURL(cfg config.Config) string {
	if cfg.History.URL != "" {
		return cfg.History.URL
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(cfg.HTTP.TLSListen)
	if port == "" || port == "443" {
		return "https://" + host
	}
	return "https://" + net.JoinHostPort(host, port)
}

// msrpNonceLifetime is short: an MSRP client answers its challenge at once.
const msrpNonceLifetime = 30 * time.Second

func digestFor(accounts *auth.AccountCache, keys *auth.Keyring, lifetime time.Duration, now store.Clock) *auth.Digest {
	return auth.NewDigest(accounts, keys, auth.NewNonces(keys, lifetime, 1<<16, now))
}

// newMSRP builds the MSRP relay. Its connections to msrps next hops trust
// the system's authorities and msrp.peer_ca, and present the node's
// certificate to relays that ask for one.
func (n *Node) newMSRP(digest *auth.Digest, reg prometheus.Registerer) (*msrp.Relay, error) {
	cfg := n.cfg.MSRP
	host := cfg.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	var dial *tls.Config
	if n.tls != nil {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if cfg.PeerCA != "" {
			pem, err := os.ReadFile(cfg.PeerCA)
			if err != nil {
				return nil, fmt.Errorf("app: msrp.peer_ca: %w", err)
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("app: msrp.peer_ca %s: no PEM certificate in it", cfg.PeerCA)
			}
		}
		own := n.tls
		dial = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if own.GetCertificate != nil {
					return own.GetCertificate(&tls.ClientHelloInfo{})
				}
				return &own.Certificates[0], nil
			}}
	}
	return msrp.NewRelay(msrp.Config{
		Host:               host,
		Realm:              cfg.Realm,
		Algorithms:         algorithms(n.cfg.SIP.DigestAlgorithms),
		MinExpires:         cfg.MinExpires.D(),
		DefaultExpires:     cfg.DefaultExpires.D(),
		MaxExpires:         cfg.MaxExpires.D(),
		HandshakeTimeout:   10 * time.Second,
		IdleTimeout:        cfg.IdleTimeout.D(),
		TransactionTimeout: cfg.TransactionTimeout.D(),
		WriteTimeout:       cfg.TransactionTimeout.D(),
		MaxChunk:           cfg.MaxChunk,
		MaxSessionBytes:    cfg.MaxSessionBytes,
		MaxSessions:        cfg.MaxSessions,
		MaxAuthAttempts:    3,
		MaxAuthFailures:    cfg.MaxAuthFailures,
		Dial:               dial,
		DialTCP:            cfg.DialTCP,
		DialPrivate:        cfg.DialPrivate,
	}, digest, n.store, n.now, n.log.With("component", "msrp"), reg), nil
}

func algorithms(names []string) []auth.Algorithm {
	out := make([]auth.Algorithm, len(names))
	for i, n := range names {
		out[i] = auth.Algorithm(n)
	}
	return out
}

// accountCacheTTL is how long the SIP front-end trusts an account it read.
const accountCacheTTL = 10 * time.Second

// sipStore is the store as the SIP front-end reads it: accounts through
// the cache.
type sipStore struct {
	store.Store
	accounts *auth.AccountCache
}

func (s sipStore) AccountGet(ctx context.Context, user, domain string) (store.Account, error) {
	return s.accounts.AccountGet(ctx, user, domain)
}

func (s sipStore) AccountDomainExists(ctx context.Context, domain string) (bool, error) {
	return s.accounts.AccountDomainExists(ctx, domain)
}

// router is the delivery core and the offline queue, as the SIP front-end
// sees them.
type router struct {
	*delivery.Core
	*offline.Queue
}

func (n *Node) tlsConfig() (*tls.Config, error) {
	if n.cfg.HTTP.CertFile != "" {
		r, err := tlsutil.NewReloader(n.cfg.HTTP.CertFile, n.cfg.HTTP.KeyFile, func(err error) {
			n.log.Error("TLS certificate not reloaded; the previous one stays in use", "err", err)
		})
		if err != nil {
			return nil, err
		}
		return &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}, nil
	}
	dir := filepath.Join(n.cfg.DataDir, "tls")
	cert, generated, err := tlsutil.SelfSigned(dir, n.now())
	if err != nil {
		return nil, err
	}
	if generated {
		n.log.Warn("generated a self-signed TLS certificate; set http.cert_file and http.key_file for production", "dir", dir)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Start binds every configured listener, logs one line for each once it
// accepts connections, and starts the retention sweep.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped || n.servers != nil {
		return errors.New("app: Start called twice, or after Stop")
	}
	type listener struct {
		name, addr string
		tls        *tls.Config
	}
	var ls []listener
	if n.cfg.HTTP.Listen != "" {
		ls = append(ls, listener{"http", n.cfg.HTTP.Listen, nil})
	}
	if n.cfg.HTTP.TLSListen != "" {
		ls = append(ls, listener{"https", n.cfg.HTTP.TLSListen, n.tls})
	}
	sipLs, err := sip.Listen(sip.Addrs{UDP: n.cfg.SIP.UDP, TCP: n.cfg.SIP.TCP, TLS: n.cfg.SIP.TLS, WS: n.cfg.SIP.WS, WSS: n.cfg.SIP.WSS}, n.tls)
	if err != nil {
		return err
	}
	var bound []net.Listener
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, b := range bound {
				b.Close()
			}
			sipLs.Close()
			return fmt.Errorf("app: %s listener: %w", l.name, err)
		}
		if l.tls != nil {
			ln = tls.NewListener(ln, l.tls)
		}
		bound = append(bound, ln)
	}
	for i, ln := range bound {
		srv := &http.Server{
			Handler:           n.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       2 * time.Minute, // a 16 MiB body over a slow link
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		}
		n.servers = append(n.servers, srv)
		n.addrs[ls[i].name] = ln.Addr()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("listener stopped", "listener", ls[i].name, "err", err)
			}
		}()
		n.log.Info("listening", "protocol", ls[i].name, "addr", ln.Addr().String())
	}

	n.sip.Serve(sipLs)
	for name, a := range sipLs.Addrs() {
		n.addrs[name] = a
	}
	if err := n.startMSRP(); err != nil {
		return err
	}

	sweepCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stopSweep = cancel
	n.wg.Add(1)
	go n.sweep(sweepCtx)
	return nil
}

// startMSRP binds the MSRP listeners; n.mu is held.
func (n *Node) startMSRP() error {
	cfg := n.cfg.MSRP
	for _, l := range []struct {
		name, addr string
		tls        *tls.Config
	}{{"msrp-tls", cfg.TLS, n.tls}, {"msrp-tcp", cfg.TCP, nil}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("app: %s listener: %w", l.name, err)
		}
		n.msrp.Serve(ln, l.tls)
		n.addrs[l.name] = ln.Addr()
		n.log.Info("listening", "protocol", l.name, "addr", ln.Addr().String())
	}
	if cfg.WSS == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.WSS)
	if err != nil {
		return fmt.Errorf("app: msrp-wss listener: %w", err)
	}
	srv := &http.Server{
		Handler:           n.msrp.WebSocket(ln.Addr(), true),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	n.servers = append(n.servers, srv)
	n.addrs["msrp-wss"] = ln.Addr()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(tls.NewListener(ln, n.tls)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("listener stopped", "listener", "msrp-wss", "err", err)
		}
	}()
	n.log.Info("listening", "protocol", "msrp-wss", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address of a listener ("http", "https", "sip-udp",
// "sip-tcp", "sip-tls", "sip-ws", "sip-wss", "msrp-tls", "msrp-tcp",
// "msrp-wss"), or nil.
func (n *Node) Addr(name string) net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs[name]
}

// sweep purges expired rows every SweepInterval. Reads filter expired rows
// anyway, so nothing is owed at start.
func (n *Node) sweep(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SweepInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if removed, err := n.Purge(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("retention sweep failed", "err", err)
		} else if removed.Total() > 0 {
			n.log.Info("retention sweep", "journal_entries", removed.Journal, "offline_messages", removed.Offline,
				"sip_traces", removed.Traces, "registrations", removed.Registrations, "msrp_sessions", removed.MSRPSessions,
				"history_rows", removed.History, "api_tokens", removed.Tokens)
		}
	}
}

// Purged counts the rows a purge removed.
type Purged struct {
	Journal, Offline, Traces, Registrations, MSRPSessions, History, Tokens int64
}

// Total is the sum of the counts.
func (p Purged) Total() int64 {
	return p.Journal + p.Offline + p.Traces + p.Registrations + p.MSRPSessions + p.History + p.Tokens
}

// Purge removes every row past its retention period and returns the counts.
func (n *Node) Purge(ctx context.Context) (Purged, error) {
	return Purge(ctx, n.cfg, n.store, n.now)
}

// Purge removes every row of st past its retention period in cfg, as the
// sweep of a running node does, and returns the counts.
func Purge(ctx context.Context, cfg config.Config, st store.Store, now store.Clock) (Purged, error) {
	var p Purged
	var err error
	t := now()
	if p.Journal, err = replication.Purge(ctx, st, t, cfg.Journal.Retention.D()); err != nil {
		return p, err
	}
	if p.Offline, err = st.OfflinePurge(ctx, t); err != nil {
		return p, err
	}
	if p.Traces, err = st.TracePurge(ctx, t.Add(-cfg.Traces.Retention.D())); err != nil {
		return p, err
	}
	if p.Registrations, err = st.RegistrationPurge(ctx, t); err != nil {
		return p, err
	}
	if p.MSRPSessions, err = st.MSRPSessionPurge(ctx, t.Add(-cfg.MSRP.Retention.D())); err != nil {
		return p, err
	}
	if p.History, err = st.HistoryPurge(ctx, t.Add(-cfg.History.Retention.D())); err != nil {
		return p, err
	}
	p.Tokens, err = st.TokenPurge(ctx, t)
	return p, err
}

func (n *Node) healthz(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	draining := n.draining
	n.mu.Unlock()
	status, code := "ok", http.StatusOK
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if draining {
		status, code = "draining", http.StatusServiceUnavailable
	} else if err := n.store.Ping(ctx); err != nil {
		status, code = "store unreachable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// Stop drains: listeners close, requests under way finish within ctx, the
// sweep ends, and the store is closed. It is safe to call more than once.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped, n.draining = true, true
	servers, stopSweep := n.servers, n.stopSweep
	n.mu.Unlock()

	// Every listener closes at once, then the requests under way finish
	// within ctx; past it, their connections are cut.
	errs := make([]error, len(servers)+2)
	var drain sync.WaitGroup
	for i, srv := range servers {
		drain.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("app: drain: %w", err)
				srv.Close()
			}
		})
	}
	drain.Go(func() {
		// The SIP front-end answers what is in flight, then the drains
		// of the offline queue end.
		if err := n.sip.Stop(ctx); err != nil {
			errs[len(servers)] = fmt.Errorf("app: SIP drain: %w", err)
		}
		n.queue.Stop()
		n.history.Close()
	})
	drain.Go(func() {
		if err := n.msrp.Close(ctx); err != nil {
			errs[len(servers)+1] = fmt.Errorf("app: MSRP relay: %w", err)
		}
	})
	drain.Wait()
	if stopSweep != nil {
		stopSweep()
	}
	n.wg.Wait()
	errs = append(errs, n.store.Close())
	return errors.Join(errs...)
}
