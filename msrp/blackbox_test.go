package msrp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"hash"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/msrp"
	"github.com/cairn-chat/cairn/msrp/msrptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	domain  = "example.com"
	alicePW = "alice-sip-pw"
	bobPW   = "bob-sip-pw"
	carolPW = "carol-sip-pw"
	wait    = 20 * time.Second
)

// relay is a running node and how to reach its MSRP listeners.
type relay struct {
	t   *testing.T
	srv *apptest.Server
}

// startRelay runs a node with alice, bob and carol of example.com, MSRP on
// TLS, TCP and WSS, realm example.com.
func startRelay(t *testing.T, eng apptest.Engine, configure func(*config.Config)) *relay {
	acct := func(user, pw string) apptest.Account {
		return apptest.Account{Address: user + "@" + domain, Passwords: app.Passwords{SIP: pw}}
	}
	srv := apptest.Start(t, eng, func(c *config.Config) {
		c.MSRP.Realm = domain
		c.MSRP.MinExpires = config.Duration(time.Second)
		if configure != nil {
			configure(c)
		}
	}, acct("alice", alicePW), acct("bob", bobPW), acct("carol", carolPW))
	return &relay{t: t, srv: srv}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// uri is the relay's AUTH URI on a listener.
func (r *relay) uri(listener string) msrp.URI {
	a := r.srv.Node.Addr(listener).(*net.TCPAddr)
	transport := "tcp"
	if listener == "msrp-wss" {
		transport = "ws"
	}
	return msrp.URI{Secure: true, Host: "127.0.0.1", Port: a.Port, Transport: transport}
}

// dial connects an endpoint to a listener ("msrp-tls", "msrp-tcp",
// "msrp-wss"); it is closed when the test ends.
func (r *relay) dial(ctx context.Context, listener string, o msrptest.Options) *msrptest.Endpoint {
	r.t.Helper()
	switch listener {
	case "msrp-tls":
		o.TLS = &tls.Config{RootCAs: r.srv.CA}
	case "msrp-wss":
		o.TLS, o.WebSocket = &tls.Config{RootCAs: r.srv.CA}, true
	}
	e, err := msrptest.Dial(ctx, r.srv.Node.Addr(listener).String(), o)
	if err != nil {
		r.t.Fatalf("dial %s: %v", listener, err)
	}
	r.t.Cleanup(func() { e.Close() })
	return e
}

// login dials and authenticates user, returning the endpoint and its Use-Path.
func (r *relay) login(ctx context.Context, listener, user, pw string, o msrptest.Options) (*msrptest.Endpoint, []msrp.URI) {
	r.t.Helper()
	e := r.dial(ctx, listener, o)
	res, err := e.Auth(ctx, r.uri(listener), user, pw, 0)
	if err != nil {
		r.t.Fatalf("AUTH %s on %s: %v", user, listener, err)
	}
	if len(res.UsePath) != 1 || res.Expires != 600 {
		r.t.Fatalf("AUTH %s: Use-Path %v, Expires %d; want one URI and 600", user, res.UsePath, res.Expires)
	}
	return e, res.UsePath
}

// to is the To-Path from a sender through its relay path and the
// recipient's to the recipient.
func to(parts ...[]msrp.URI) []msrp.URI {
	var p []msrp.URI
	for _, x := range parts {
		p = append(p, x...)
	}
	return p
}

func self(e *msrptest.Endpoint) []msrp.URI { return []msrp.URI{e.Self()} }

// receive returns the next incoming message of e, failing the test after wait.
func receive(t *testing.T, ctx context.Context, e *msrptest.Endpoint, method string) msrptest.Incoming {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		in, err := e.Received(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", method, err)
		}
		if in.Method == method {
			return in
		}
		t.Logf("skipping %s %s while waiting for %s", in.Method, in.MessageID, method)
	}
}

func TestRelay(t *testing.T) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			r := startRelay(t, eng, nil)
			t.Run("ChatBothWays", func(t *testing.T) { testChat(t, r, "msrp-tls", "msrp-tls") })
			t.Run("WebSocketToTLS", func(t *testing.T) { testChat(t, r, "msrp-wss", "msrp-tls") })
			t.Run("File2KiBChunks", func(t *testing.T) { testFile(t, r, 50<<20, 2048) })
			t.Run("File1MiBChunks", func(t *testing.T) { testFile(t, r, 50<<20, 1<<20) })
		})
	}
}

// testChat: alice and bob each authenticate to the relay; text goes both
// ways with success REPORTs, along the paths RFC 4976 gives.
func testChat(t *testing.T, r *relay, aliceOn, bobOn string) {
	ctx := testContext(t)
	alice, aliceUse := r.login(ctx, aliceOn, "alice", alicePW, msrptest.Options{})
	bob, bobUse := r.login(ctx, bobOn, "bob", bobPW, msrptest.Options{})

	body := []byte("Hi Bob, 🙂 über MSRP")
	if err := alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{
		ID: "m1", ContentType: "text/plain", Body: bytes.NewReader(body), Size: int64(len(body)), SuccessReport: true,
	}); err != nil {
		t.Fatalf("alice Send: %v", err)
	}
	in := receive(t, ctx, bob, "SEND")
	if in.MessageID != "m1" || !bytes.Equal(in.Body, body) || in.ContentType != "text/plain" {
		t.Fatalf("bob got %q %q %q", in.MessageID, in.ContentType, in.Body)
	}
	if want := to(bobUse, aliceUse, self(alice)); !msrp.EqualPaths(in.FromPath, want) {
		t.Errorf("From-Path at bob = %s, want %s", msrp.FormatPath(in.FromPath), msrp.FormatPath(want))
	}
	rep := receive(t, ctx, alice, "REPORT")
	if rep.MessageID != "m1" || rep.Status != 200 {
		t.Errorf("alice's REPORT: %s status %d", rep.MessageID, rep.Status)
	}

	reply := []byte("Hi Alice")
	if err := bob.Send(ctx, to(bobUse, aliceUse, self(alice)), msrptest.Message{
		ID: "m2", ContentType: "text/plain", Body: bytes.NewReader(reply), Size: -1,
	}); err != nil {
		t.Fatalf("bob Send: %v", err)
	}
	if in := receive(t, ctx, alice, "SEND"); in.MessageID != "m2" || !bytes.Equal(in.Body, reply) {
		t.Fatalf("alice got %q %q", in.MessageID, in.Body)
	}
}

// hashSink hashes each incoming message.
type hashSink struct {
	mu   sync.Mutex
	sums map[string]hash.Hash
}

func (s *hashSink) sink(id string) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := sha256.New()
	s.sums[id] = h
	return h
}

func (s *hashSink) sum(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.sums[id]; h != nil {
		return h.Sum(nil)
	}
	return nil
}

// testFile sends size random bytes from alice to bob in chunks of chunk
// bytes; bob's SHA-256 must match. Chunks over 64 KiB are re-chunked by
// the relay.
func testFile(t *testing.T, r *relay, size int64, chunk int) {
	ctx := testContext(t)
	sums := &hashSink{sums: map[string]hash.Hash{}}
	alice, aliceUse := r.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{ChunkSize: chunk})
	bob, bobUse := r.login(ctx, "msrp-tls", "bob", bobPW, msrptest.Options{Sink: sums.sink})

	sent := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.Reader, size), sent)
	start := time.Now()
	if err := alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{
		ID: "file", ContentType: "application/octet-stream", Body: src, Size: size, SuccessReport: true,
	}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	in := receive(t, ctx, bob, "SEND")
	if in.Err != nil || in.Bytes != size || in.Aborted {
		t.Fatalf("bob got %d bytes, aborted %v, err %v", in.Bytes, in.Aborted, in.Err)
	}
	if !bytes.Equal(sums.sum("file"), sent.Sum(nil)) {
		t.Fatal("SHA-256 at bob differs from what alice sent")
	}
	if rep := receive(t, ctx, alice, "REPORT"); rep.Status != 200 {
		t.Errorf("success REPORT status %d", rep.Status)
	}
	t.Logf("%d MiB in %d-byte chunks in %v", size>>20, chunk, time.Since(start).Round(time.Millisecond))
}

var _ = strings.Contains
