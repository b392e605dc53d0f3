package msrp_test

// Failure paths of the relay, black box, on both engines: AUTH refused and
// limited, requests outside a session's legs refused, sessions ended by
// expiry and idleness, size limits, session records and who may read them,
// no content kept anywhere, and a certificate renewed without a restart.
// Each test fails when the relay lets through what docs/design/0003 says it
// must refuse. Helpers carry an fl prefix: other files of this package are
// written alongside and must not collide with them.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"math/bits"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/msrp"
	"github.com/cairn-chat/cairn/msrp/msrptest"
	"github.com/cairn-chat/cairn/replication/replicationtest"
)

// flJanitorWait bounds how long the relay may take to end a session once
// the fake clock is past its expiry or idle timeout: its janitor looks once
// a real second; the rest is slack for a loaded machine under -race.
const flJanitorWait = 5 * time.Second

// flIPs numbers the loopback source addresses handed out by flNextIP.
var flIPs atomic.Uint32

// flNextIP returns a loopback address no other connection of these tests
// comes from, so that the relay's per-address AUTH failure window of one
// test never touches another, and a session id can be checked against an
// address that is not the relay's own.
func flNextIP() string {
	n := flIPs.Add(1)
	return fmt.Sprintf("127.1.%d.%d", n/250, n%250+1)
}

// flDial connects an endpoint to the relay's msrp-tls listener from source
// address ip ("" for a fresh one) and returns it with its local address.
// The endpoint is closed when t ends.
func flDial(t *testing.T, ctx context.Context, r *relay, ip string, o msrptest.Options) (*msrptest.Endpoint, *net.TCPAddr) {
	t.Helper()
	if ip == "" {
		ip = flNextIP()
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.DialContext(ctx, "tcp", r.srv.Node.Addr("msrp-tls").String())
	if err != nil {
		t.Fatalf("dial msrp-tls from %s: %v", ip, err)
	}
	tc := tls.Client(nc, &tls.Config{RootCAs: r.srv.CA, ServerName: "127.0.0.1"})
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		t.Fatalf("TLS handshake from %s: %v", ip, err)
	}
	e := msrptest.NewEndpoint(tc, o)
	t.Cleanup(func() { e.Close() })
	return e, nc.LocalAddr().(*net.TCPAddr)
}

// flLogin dials from a fresh address and authenticates user with the
// default expiry, returning the endpoint and its Use-Path.
func flLogin(t *testing.T, ctx context.Context, r *relay, user, pw string, o msrptest.Options) (*msrptest.Endpoint, []msrp.URI) {
	t.Helper()
	e, use, _ := flLoginFrom(t, ctx, r, user, pw, o)
	return e, use
}

// flLoginFrom is flLogin, also returning the address the endpoint
// connected from.
func flLoginFrom(t *testing.T, ctx context.Context, r *relay, user, pw string, o msrptest.Options) (*msrptest.Endpoint, []msrp.URI, *net.TCPAddr) {
	t.Helper()
	e, local := flDial(t, ctx, r, "", o)
	res, err := e.Auth(ctx, r.uri("msrp-tls"), user, pw, 0)
	if err != nil {
		t.Fatalf("AUTH %s: %v", user, err)
	}
	if len(res.UsePath) != 1 {
		t.Fatalf("AUTH %s: Use-Path %s, want one URI", user, msrp.FormatPath(res.UsePath))
	}
	return e, res.UsePath, local
}

// flSEND is a one-chunk text SEND of body along path; its From-Path is the
// sender's own unless set.
func flSEND(path []msrp.URI, id string, body []byte) *msrp.Frame {
	n := int64(len(body))
	return &msrp.Frame{Method: "SEND", ToPath: path, Headers: []msrp.Header{
		{Name: "Message-ID", Value: id},
		{Name: "Byte-Range", Value: msrp.ByteRange{Start: 1, End: n, Total: n}.String()},
		{Name: "Content-Type", Value: "text/plain"},
	}}
}

// flExpect sends f with body from e and checks the status of the response.
func flExpect(t *testing.T, ctx context.Context, e *msrptest.Endpoint, what string, f *msrp.Frame, body []byte, want int) *msrp.Frame {
	t.Helper()
	resp, err := e.Request(ctx, f, body)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.Status != want {
		t.Errorf("%s: %d %s, want %d", what, resp.Status, resp.Comment, want)
	}
	return resp
}

// flFence sends a short message from e along path and checks that it is the
// first thing dst receives: anything the relay wrongly forwarded to dst
// before would reach it first.
func flFence(t *testing.T, ctx context.Context, e *msrptest.Endpoint, path []msrp.URI, dst *msrptest.Endpoint) {
	t.Helper()
	id := "fence-" + rand.Text()
	if err := e.Send(ctx, path, msrptest.Message{ID: id, ContentType: "text/plain",
		Body: strings.NewReader("fence"), Size: 5}); err != nil {
		t.Fatalf("fence along %s: %v", msrp.FormatPath(path), err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	in, err := dst.Received(ctx)
	if err != nil {
		t.Fatalf("waiting for the fence: %v", err)
	}
	if in.Method != "SEND" || in.MessageID != id {
		t.Errorf("before the fence the recipient got %s %q (%d bytes, aborted %v): the relay forwarded a request it refused",
			in.Method, in.MessageID, in.Bytes, in.Aborted)
	}
}

// flSink counts, per Message-ID, the SEND body bytes an endpoint received;
// an id is there as soon as the first bytes of its message arrive.
type flSink struct {
	mu sync.Mutex
	n  map[string]int64
}

func newFLSink() *flSink { return &flSink{n: make(map[string]int64)} }

func (s *flSink) sink(id string) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[id] += 0
	return flCounter{s, id}
}

// bytes returns the body bytes of message id received so far, and whether
// any arrived.
func (s *flSink) bytes(id string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.n[id]
	return n, ok
}

type flCounter struct {
	s  *flSink
	id string
}

func (c flCounter) Write(p []byte) (int, error) {
	c.s.mu.Lock()
	c.s.n[c.id] += int64(len(p))
	c.s.mu.Unlock()
	return len(p), nil
}

// flWaitFor polls cond until it holds or d has passed.
func flWaitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flClosed reports whether e's connection ends within d.
func flClosed(e *msrptest.Endpoint, d time.Duration) bool {
	select {
	case <-e.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// flOpen reports whether e's connection is still up.
func flOpen(e *msrptest.Endpoint) bool {
	select {
	case <-e.Done():
		return false
	default:
		return true
	}
}

func flRandom(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestAuth: AUTH is refused for wrong or unknown credentials, a digest for
// another URI, and expiries out of bounds; a connection is cut after three
// failures; a refresh keeps the session; session ids are random.
func TestAuth(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, eng, func(c *config.Config) { c.MSRP.MinExpires = config.Duration(time.Minute) })
			t.Run("WrongPassword", func(t *testing.T) { flAuthWrongPassword(t, r) })
			t.Run("UnknownUser", func(t *testing.T) { flAuthUnknownUser(t, r) })
			t.Run("ThreeWrongCloseConnection", func(t *testing.T) { flAuthThreeWrong(t, r) })
			t.Run("DigestURIDiffersFromToPath", func(t *testing.T) { flAuthDigestURI(t, r) })
			t.Run("ExpiresOutOfBounds", func(t *testing.T) { flAuthExpires(t, r) })
			t.Run("OtherAccountOnSessionConnection", func(t *testing.T) { flAuthOtherAccount(t, r) })
			t.Run("SessionIDs", func(t *testing.T) { flAuthSessionIDs(t, r) })
			// Last: it moves the clock.
			t.Run("RefreshKeepsSession", func(t *testing.T) { flAuthRefresh(t, r) })
		})
	}
}

func flAuthWrongPassword(t *testing.T, r *relay) {
	ctx := testContext(t)
	e, _ := flDial(t, ctx, r, "", msrptest.Options{})
	if _, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", "not-"+alicePW, 0); !msrptest.IsStatus(err, 403) {
		t.Errorf("AUTH with a wrong password: %v, want 403", err)
	}
	if _, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", bobPW, 0); !msrptest.IsStatus(err, 403) {
		t.Errorf("AUTH as alice with bob's password: %v, want 403", err)
	}
}

func flAuthUnknownUser(t *testing.T, r *relay) {
	ctx := testContext(t)
	e, _ := flDial(t, ctx, r, "", msrptest.Options{})
	for _, user := range []string{"mallory", "mallory@" + domain} {
		if _, err := e.Auth(ctx, r.uri("msrp-tls"), user, alicePW, 0); !msrptest.IsStatus(err, 403) {
			t.Errorf("AUTH as %s: %v, want 403", user, err)
		}
	}
	e2, _ := flDial(t, ctx, r, "", msrptest.Options{})
	if _, err := e2.Auth(ctx, r.uri("msrp-tls"), "alice@elsewhere.org", alicePW, 0); !msrptest.IsStatus(err, 403) {
		t.Errorf("AUTH as alice@elsewhere.org in realm %s: %v, want 403", domain, err)
	}
}

func flAuthThreeWrong(t *testing.T, r *relay) {
	ctx := testContext(t)
	ip := flNextIP()
	e, _ := flDial(t, ctx, r, ip, msrptest.Options{})
	for i := 1; i <= 3; i++ {
		// The AUTHs after the first show that the connection survived the
		// failures before them.
		if _, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", "wrong", 0); !msrptest.IsStatus(err, 403) {
			t.Fatalf("wrong AUTH %d: %v, want 403", i, err)
		}
	}
	if !flClosed(e, flJanitorWait) {
		t.Fatal("the relay kept the connection open after three failed AUTHs")
	}
	// Three failures are under the per-address limit (10): the same
	// address may still authenticate on a new connection.
	e2, _ := flDial(t, ctx, r, ip, msrptest.Options{})
	if _, err := e2.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 0); err != nil {
		t.Errorf("AUTH on a new connection after three failures on another: %v, want 200", err)
	}
}

// flAuthDigestURI: an answer computed for another URI than the AUTH's
// To-Path gets 400, even with the right password; the same answer for the
// To-Path's URI gets 200.
func flAuthDigestURI(t *testing.T, r *relay) {
	ctx := testContext(t)
	e, _ := flDial(t, ctx, r, "", msrptest.Options{})
	relayURI := r.uri("msrp-tls")
	auth := func(uri string) *msrp.Frame {
		ch := flExpect(t, ctx, e, "AUTH without credentials", &msrp.Frame{Method: "AUTH", ToPath: []msrp.URI{relayURI}}, nil, 401)
		h := http.Header{}
		for _, hd := range ch.Headers {
			if strings.EqualFold(hd.Name, "WWW-Authenticate") {
				h.Add("WWW-Authenticate", hd.Value)
			}
		}
		chs := replicationtest.ParseChallenges(h)
		if len(chs) == 0 {
			t.Fatalf("401 without a Digest challenge: %v", ch.Headers)
		}
		f := &msrp.Frame{Method: "AUTH", ToPath: []msrp.URI{relayURI}, Headers: []msrp.Header{
			{Name: "Authorization", Value: replicationtest.DigestAuthorization(chs[0], "alice", alicePW, "AUTH", uri, 1)},
		}}
		resp, err := e.Request(ctx, f, nil)
		if err != nil {
			t.Fatalf("AUTH: %v", err)
		}
		return resp
	}
	for _, other := range []msrp.URI{
		r.uri("msrp-tcp"), // the same relay, another listener
		{Secure: true, Host: "relay.elsewhere.org", Port: relayURI.Port, Transport: "tcp"},
	} {
		if resp := auth(other.String()); resp.Status != 400 {
			t.Errorf("AUTH to %s answering for %s: %d %s, want 400", relayURI, other, resp.Status, resp.Comment)
		}
	}
	if resp := auth(relayURI.String()); resp.Status != 200 {
		t.Errorf("the same AUTH answering for its To-Path: %d %s, want 200", resp.Status, resp.Comment)
	}
}

// flAuthExpires: the node's bounds are 60 s (set by TestAuth) and 3600 s.
func flAuthExpires(t *testing.T, r *relay) {
	ctx := testContext(t)
	e, _ := flDial(t, ctx, r, "", msrptest.Options{})
	for _, c := range []struct {
		expires      int
		header, want string
	}{
		{10, "Min-Expires", "60"},
		{59, "Min-Expires", "60"},
		{3601, "Max-Expires", "3600"},
		{86400, "Max-Expires", "3600"},
	} {
		_, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, c.expires)
		var se *msrptest.StatusError
		if !errors.As(err, &se) || se.Code != 423 {
			t.Errorf("AUTH with Expires %d: %v, want 423", c.expires, err)
			continue
		}
		if got := se.Frame.Get(c.header); got != c.want {
			t.Errorf("423 to Expires %d: %s %q, want %q", c.expires, c.header, got, c.want)
		}
	}
	// The bounds themselves are accepted.
	for _, expires := range []int{60, 3600} {
		res, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, expires)
		if err != nil || res.Expires != expires {
			t.Errorf("AUTH with Expires %d: %v, Expires %d", expires, err, res.Expires)
		}
	}
}

// flAuthOtherAccount: a session's connection cannot be taken over by an
// AUTH as another account.
func flAuthOtherAccount(t *testing.T, r *relay) {
	ctx := testContext(t)
	e, _ := flDial(t, ctx, r, "", msrptest.Options{})
	res, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 0)
	if err != nil {
		t.Fatalf("AUTH alice: %v", err)
	}
	if _, err := e.Auth(ctx, r.uri("msrp-tls"), "bob", bobPW, 0); !msrptest.IsStatus(err, 403) {
		t.Errorf("AUTH as bob on alice's session connection: %v, want 403", err)
	}
	again, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 0)
	if err != nil || !msrp.EqualPaths(again.UsePath, res.UsePath) {
		t.Errorf("alice's AUTH after bob's: %v, Use-Path %s, want %s", err,
			msrp.FormatPath(again.UsePath), msrp.FormatPath(res.UsePath))
	}
}

// flAuthSessionIDs: 50 sessions, each from an address and port of its own;
// every id carries at least 128 bits, none repeats, none holds the client's
// address or port, and their bits look random.
func flAuthSessionIDs(t *testing.T, r *relay) {
	ctx := testContext(t)
	const n = 50
	seen := make(map[string]bool)
	var ones, total, portHits int
	for i := 0; i < n; i++ {
		e, local := flDial(t, ctx, r, "", msrptest.Options{})
		res, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 0)
		e.Close()
		if err != nil {
			t.Fatalf("AUTH %d: %v", i, err)
		}
		id := res.UsePath[0].SessionID
		if seen[id] {
			t.Errorf("session id %q handed out twice", id)
		}
		seen[id] = true
		raw, bitsPerChar := flDecodeID(id)
		if got := len(id) * bitsPerChar; got < 128 {
			t.Errorf("session id %q carries at most %d bits, want at least 128", id, got)
		}
		ip := local.IP.To4()
		for _, leak := range []string{local.IP.String(), hex.EncodeToString(ip), base64.RawURLEncoding.EncodeToString(ip), base64.RawStdEncoding.EncodeToString(ip)} {
			if strings.Contains(strings.ToLower(id), strings.ToLower(leak)) {
				t.Errorf("session id %q holds the client's address %s (as %q)", id, local.IP, leak)
			}
		}
		if bytes.Contains(raw, ip) {
			t.Errorf("session id %q decodes to bytes holding the client's address %s", id, local.IP)
		}
		// A port turns up by chance in about one random id in 30,000
		// (hex) or a million (base64); a leak puts it in every one.
		if strings.Contains(id, strconv.Itoa(local.Port)) {
			portHits++
		}
		for _, b := range raw {
			ones += bits.OnesCount8(b)
		}
		total += 8 * len(raw)
	}
	if portHits > 1 {
		t.Errorf("%d of %d session ids hold their client's port", portHits, n)
	}
	// 50 random 144-bit ids: the share of one bits is 0.5 ± 0.006.
	if total > 0 {
		if share := float64(ones) / float64(total); share < 0.45 || share > 0.55 {
			t.Errorf("session ids: %.3f of their %d bits are 1, want about half: not random", share, total)
		}
	}
}

// flDecodeID returns the bytes a session id encodes (nil if it is neither
// hex nor base64) and the bits of randomness a character of it can carry at
// most.
func flDecodeID(id string) ([]byte, int) {
	if b, err := hex.DecodeString(id); err == nil {
		return b, 4
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(id); err == nil {
			return b, 6
		}
	}
	// RFC 4975's session-id characters: unreserved, '+', '=', '/'.
	return nil, 6
}

// flAuthRefresh: an AUTH on the session's connection returns the same
// Use-Path and moves its expiry: the refreshed session outlives one that was
// not refreshed.
func flAuthRefresh(t *testing.T, r *relay) {
	ctx := testContext(t)
	plain, _ := flDial(t, ctx, r, "", msrptest.Options{})
	if _, err := plain.Auth(ctx, r.uri("msrp-tls"), "carol", carolPW, 60); err != nil {
		t.Fatalf("AUTH carol: %v", err)
	}
	alice, _ := flDial(t, ctx, r, "", msrptest.Options{})
	first, err := alice.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 60)
	if err != nil {
		t.Fatalf("AUTH alice: %v", err)
	}
	r.srv.Clock.Advance(50 * time.Second)
	again, err := alice.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 60)
	if err != nil {
		t.Fatalf("refresh AUTH: %v", err)
	}
	if !msrp.EqualPaths(again.UsePath, first.UsePath) || again.Expires != 60 {
		t.Errorf("refresh AUTH: Use-Path %s Expires %d, want %s and 60",
			msrp.FormatPath(again.UsePath), again.Expires, msrp.FormatPath(first.UsePath))
	}
	r.srv.Clock.Advance(30 * time.Second) // carol's session is past its expiry, alice's is not
	if !flClosed(plain, flJanitorWait) {
		t.Fatal("an unbound session past its expiry was not ended")
	}
	// The janitor pass that ended carol's session looked at alice's too.
	if !flOpen(alice) {
		t.Fatal("the refreshed session ended at its first expiry")
	}
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	flFence(t, ctx, alice, to(first.UsePath, bobUse, self(bob)), bob)
}

// TestAuthPerIPLimit: after MaxAuthFailures failed AUTHs from an address,
// every AUTH from it is refused until a minute has passed; other addresses
// are not affected.
func TestAuthPerIPLimit(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, eng, func(c *config.Config) { c.MSRP.MaxAuthFailures = 2 })
			ctx := testContext(t)
			ip := flNextIP()
			login := func(ip string) error {
				e, _ := flDial(t, ctx, r, ip, msrptest.Options{})
				defer e.Close()
				_, err := e.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 0)
				return err
			}
			bad, _ := flDial(t, ctx, r, ip, msrptest.Options{})
			for i := 1; i <= 2; i++ {
				if _, err := bad.Auth(ctx, r.uri("msrp-tls"), "alice", "wrong", 0); !msrptest.IsStatus(err, 403) {
					t.Fatalf("wrong AUTH %d: %v, want 403", i, err)
				}
			}
			if err := login(ip); !msrptest.IsStatus(err, 403) {
				t.Errorf("right AUTH on a new connection after 2 failures from its address: %v, want 403", err)
			}
			if err := login(""); err != nil {
				t.Errorf("AUTH from another address: %v, want 200", err)
			}
			r.srv.Clock.Advance(30 * time.Second)
			if err := login(ip); !msrptest.IsStatus(err, 403) {
				t.Errorf("right AUTH 30 s after the failures: %v, want 403", err)
			}
			r.srv.Clock.Advance(31 * time.Second)
			if err := login(ip); err != nil {
				t.Errorf("right AUTH 61 s after the failures: %v, want 200", err)
			}
		})
	}
}

// TestFailures: requests outside a session's legs and paths are refused,
// and sessions end at their expiry (unbound) or idle timeout (bound).
func TestFailures(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, eng, func(c *config.Config) { c.MSRP.IdleTimeout = config.Duration(5 * time.Second) })
			t.Run("UnknownSession", func(t *testing.T) { flUnknownSession(t, r) })
			t.Run("FromPathNotHers", func(t *testing.T) { flFromPathNotHers(t, r) })
			t.Run("OtherClientIntoSession", func(t *testing.T) { flOtherClient(t, r) })
			t.Run("UnauthenticatedIntoSession", func(t *testing.T) { flUnauthenticated(t, r) })
			t.Run("ToPathDiffersFromBinding", func(t *testing.T) { flToPathDiffers(t, r) })
			t.Run("ToPathOnlyRelay", func(t *testing.T) { flToPathOnlyRelay(t, r) })
			// These move the clock.
			t.Run("Expiry", func(t *testing.T) { flExpiry(t, r) })
			t.Run("Idle", func(t *testing.T) { flIdle(t, r) })
		})
	}
}

func flUnknownSession(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	body := []byte("to nowhere")
	ghost := aliceUse[0]
	ghost.SessionID = strings.ReplaceAll(rand.Text(), "=", "")[:24]
	elsewhere := aliceUse[0] // alice's session id on another listener's URI
	elsewhere.Port = r.uri("msrp-tcp").Port
	bobElsewhere := bobUse[0]
	bobElsewhere.Port = elsewhere.Port
	stranger, _ := flDial(t, ctx, r, "", msrptest.Options{})
	for _, c := range []struct {
		what string
		from *msrptest.Endpoint
		path []msrp.URI
	}{
		{"alice to an unknown session", alice, to([]msrp.URI{ghost}, bobUse, self(bob))},
		{"alice to her session id on another URI", alice, to([]msrp.URI{elsewhere}, bobUse, self(bob))},
		{"alice through an unknown session of the relay", alice, to(aliceUse, []msrp.URI{ghost}, self(bob))},
		{"alice through bob's session id on another of the relay's URIs", alice, to(aliceUse, []msrp.URI{bobElsewhere}, self(bob))},
		{"a connection without a session to an unknown session", stranger, to([]msrp.URI{ghost}, self(alice))},
	} {
		flExpect(t, ctx, c.from, c.what, flSEND(c.path, "m-"+rand.Text(), body), body, 481)
	}
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
	flFence(t, ctx, bob, to(bobUse, aliceUse, self(alice)), alice)
}

func flFromPathNotHers(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	sink := newFLSink()
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{Sink: sink.sink})
	carol, _ := flLogin(t, ctx, r, "carol", carolPW, msrptest.Options{})
	body := []byte("not from me")
	path := to(aliceUse, bobUse, self(bob))
	for _, from := range [][]msrp.URI{
		{{Secure: true, Host: "mallory.invalid", Port: 2855, SessionID: "x" + rand.Text()[:20], Transport: "tcp"}},
		self(carol),
		to(self(alice), self(carol)), // hers, then more
	} {
		f := flSEND(path, "spoof-"+rand.Text(), body)
		f.FromPath = from
		flExpect(t, ctx, alice, "SEND from alice's connection with From-Path "+msrp.FormatPath(from), f, body, 403)
		if _, got := sink.bytes(f.Get("Message-ID")); got {
			t.Errorf("bob received the SEND with From-Path %s", msrp.FormatPath(from))
		}
	}
	flFence(t, ctx, alice, path, bob)
	// Once bound, the same holds.
	f := flSEND(path, "spoof-bound", body)
	f.FromPath = self(carol)
	flExpect(t, ctx, alice, "SEND on a bound session with carol's From-Path", f, body, 403)
	flFence(t, ctx, alice, path, bob)
	if _, got := sink.bytes("spoof-bound"); got {
		t.Error("bob received a SEND with a From-Path not alice's")
	}
}

// flOtherClient: carol, authenticated on her own connection, cannot send
// into alice's session, before or after it is bound.
func flOtherClient(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	sink := newFLSink()
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{Sink: sink.sink})
	carol, _ := flLogin(t, ctx, r, "carol", carolPW, msrptest.Options{})
	body := []byte("carol pretending")
	try := func(what string, path, from []msrp.URI) {
		t.Helper()
		f := flSEND(path, "carol-"+rand.Text(), body)
		f.FromPath = from
		flExpect(t, ctx, carol, what, f, body, 403)
	}
	try("carol into alice's unbound session", to(aliceUse, bobUse, self(bob)), self(carol))
	try("carol into alice's unbound session with alice's From-Path", to(aliceUse, bobUse, self(bob)), self(alice))
	// As if carol's connection came from the previous hop toward alice: only
	// a connection without a session may become a far leg.
	try("carol into alice's unbound session toward alice", to(aliceUse, self(alice)), self(carol))
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
	flFence(t, ctx, bob, to(bobUse, aliceUse, self(alice)), alice)
	try("carol into alice's bound session", to(aliceUse, bobUse, self(bob)), self(carol))
	try("carol into alice's bound session with alice's From-Path", to(aliceUse, bobUse, self(bob)), self(alice))
	try("carol into bob's bound session", to(bobUse, aliceUse, self(alice)), self(carol))
	try("carol into bob's bound session with bob's From-Path", to(bobUse, aliceUse, self(alice)), self(bob))
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
	flFence(t, ctx, bob, to(bobUse, aliceUse, self(alice)), alice)
	sink.mu.Lock()
	for id := range sink.n {
		if strings.HasPrefix(id, "carol-") {
			t.Errorf("bob received carol's %s", id)
		}
	}
	sink.mu.Unlock()
}

// flUnauthenticated: a connection without a session may become a session's
// far leg only as the session's first request from the previous hop, with
// the To-Path leading to the client; not into a bound session.
func flUnauthenticated(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	body := []byte("from nowhere")
	m, _ := flDial(t, ctx, r, "", msrptest.Options{})
	// Unbound, but the rest of the To-Path is not alice.
	flExpect(t, ctx, m, "unauthenticated into alice's unbound session toward bob",
		flSEND(to(aliceUse, self(bob)), "m1", body), body, 403)
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob) // binds both
	for _, c := range []struct {
		what       string
		path, from []msrp.URI
	}{
		{"into alice's bound session", to(aliceUse, self(alice)), self(m)},
		{"into alice's bound session from bob's side's path", to(aliceUse, self(alice)), to(bobUse, self(bob))},
		{"into bob's bound session", to(bobUse, self(bob)), self(m)},
		{"into bob's bound session from alice's side's path", to(bobUse, self(bob)), to(aliceUse, self(alice))},
	} {
		f := flSEND(c.path, "m-"+rand.Text(), body)
		f.FromPath = c.from
		flExpect(t, ctx, m, "unauthenticated "+c.what, f, body, 403)
	}
	m2, _ := flDial(t, ctx, r, "", msrptest.Options{})
	flExpect(t, ctx, m2, "a second unauthenticated connection into alice's bound session",
		flSEND(to(aliceUse, self(alice)), "m2", body), body, 403)
	flFence(t, ctx, bob, to(bobUse, aliceUse, self(alice)), alice)
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
}

// flToPathDiffers: once alice's session is bound toward bob, a To-Path
// toward anyone else is refused and reaches no one.
func flToPathDiffers(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	carol, carolUse := flLogin(t, ctx, r, "carol", carolPW, msrptest.Options{})
	carol2, carol2Use := flLogin(t, ctx, r, "carol", carolPW, msrptest.Options{})
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
	body := []byte("to someone else")
	for _, c := range []struct {
		what string
		path []msrp.URI
	}{
		{"to carol through her session", to(aliceUse, carolUse, self(carol))},
		{"to carol through bob's session", to(aliceUse, bobUse, self(carol))},
		{"to bob's endpoint directly", to(aliceUse, self(bob))},
		{"to bob, then further", to(aliceUse, bobUse, self(bob), self(carol))},
	} {
		flExpect(t, ctx, alice, "alice, bound to bob, "+c.what, flSEND(c.path, "x-"+rand.Text(), body), body, 403)
	}
	flFence(t, ctx, carol2, to(carol2Use, carolUse, self(carol)), carol)
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
}

func flToPathOnlyRelay(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	body := []byte("to the relay")
	flExpect(t, ctx, alice, "SEND with To-Path [alice's session]", flSEND(aliceUse, "r1", body), body, 400)
	stranger, _ := flDial(t, ctx, r, "", msrptest.Options{})
	flExpect(t, ctx, stranger, "unauthenticated SEND with To-Path [alice's session]", flSEND(aliceUse, "r2", body), body, 400)
	flExpect(t, ctx, alice, "AUTH with To-Path [alice's session]", &msrp.Frame{Method: "AUTH", ToPath: aliceUse}, nil, 400)
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
}

// flExpiry: an unbound session past its expiry ends and its id is
// forgotten; a bound one is not ended by its expiry.
func flExpiry(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, _ := flDial(t, ctx, r, "", msrptest.Options{})
	res, err := alice.Auth(ctx, r.uri("msrp-tls"), "alice", alicePW, 1)
	if err != nil || res.Expires != 1 {
		t.Fatalf("AUTH with Expires 1: %v, Expires %d", err, res.Expires)
	}
	aliceUse := res.UsePath
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	carol, _ := flDial(t, ctx, r, "", msrptest.Options{})
	res, err = carol.Auth(ctx, r.uri("msrp-tls"), "carol", carolPW, 1)
	if err != nil {
		t.Fatalf("AUTH carol with Expires 1: %v", err)
	}
	carolUse := res.UsePath
	bob2, bob2Use := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	flFence(t, ctx, carol, to(carolUse, bob2Use, self(bob2)), bob2) // binds carol's session

	r.srv.Clock.Advance(2 * time.Second)
	start := time.Now()
	if !flClosed(alice, flJanitorWait) {
		t.Fatal("alice's unbound session outlived its expiry: her connection is still open")
	}
	t.Logf("alice's connection closed %v after the clock passed her expiry", time.Since(start).Round(time.Millisecond))
	body := []byte("to an expired session")
	flExpect(t, ctx, bob, "bob's SEND through alice's expired session", flSEND(to(bobUse, aliceUse, self(alice)), "late", body), body, 481)
	if !flOpen(bob) {
		t.Error("bob's session, 598 s from its expiry, ended")
	}
	if !flOpen(carol) {
		t.Fatal("carol's bound session was ended by its expiry")
	}
	flFence(t, ctx, carol, to(carolUse, bob2Use, self(bob2)), bob2)
}

// flIdle: a bound session that relays nothing for IdleTimeout (5 s here)
// ends, and both connections close.
func flIdle(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
	r.srv.Clock.Advance(10 * time.Second)
	// Both sessions relayed nothing for 10 s: both must end, whichever the
	// relay looks at first.
	if !flClosed(alice, flJanitorWait) {
		t.Error("alice's session, idle for 10 s with IdleTimeout 5 s, did not end: her connection is still open")
	}
	if !flClosed(bob, flJanitorWait) {
		t.Error("bob's session, idle for 10 s with IdleTimeout 5 s, did not end: his connection is still open")
	}
}

// TestLimits: chunks over MaxChunk, sessions past MaxSessionBytes, and other
// methods' bodies over 10,240 bytes are refused with 413; unknown methods
// with 501.
func TestLimits(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, eng, func(c *config.Config) {
				c.MSRP.MaxChunk = 1 << 20
				c.MSRP.MaxSessionBytes = 3 << 20
			})
			t.Run("DeclaredChunkTooLarge", func(t *testing.T) { flDeclaredTooLarge(t, r) })
			t.Run("OpenEndedChunkTooLarge", func(t *testing.T) { flOpenEndedTooLarge(t, r) })
			t.Run("SessionBytes", func(t *testing.T) { flSessionBytes(t, r) })
			t.Run("OtherBodies", func(t *testing.T) { flOtherBodies(t, r) })
			t.Run("UnknownMethod", func(t *testing.T) { flUnknownMethod(t, r) })
		})
	}
}

func flDeclaredTooLarge(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{ChunkSize: 2 << 20})
	sink := newFLSink()
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{Sink: sink.sink})
	path := to(aliceUse, bobUse, self(bob))
	err := alice.Send(ctx, path, msrptest.Message{ID: "big", ContentType: "application/octet-stream",
		Body: bytes.NewReader(flRandom(2 << 20)), Size: 2 << 20})
	if !msrptest.IsStatus(err, 413) {
		t.Errorf("a 2 MiB chunk, MaxChunk 1 MiB: %v, want 413", err)
	}
	flFence(t, ctx, alice, path, bob)
	if n, got := sink.bytes("big"); got {
		t.Errorf("bob received %d bytes of the refused chunk", n)
	}
}

// flOpenEndedTooLarge: a chunk whose end is not known ("1-*/*") is cut at
// MaxChunk: 413 to the sender, and what was forwarded is ended aborted.
func flOpenEndedTooLarge(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	f := &msrp.Frame{Method: "SEND", ToPath: to(aliceUse, bobUse, self(bob)), Flag: msrp.FlagEnd, Headers: []msrp.Header{
		{Name: "Message-ID", Value: "open"},
		{Name: "Byte-Range", Value: "1-*/*"},
		{Name: "Content-Type", Value: "application/octet-stream"},
	}}
	flExpect(t, ctx, alice, "a 2 MiB chunk of unknown length, MaxChunk 1 MiB", f, flRandom(2<<20), 413)
	in := receive(t, ctx, bob, "SEND")
	if in.MessageID != "open" || !in.Aborted || in.Bytes > 1<<20 {
		t.Errorf("bob got %q: %d bytes, aborted %v, err %v; want at most 1 MiB, aborted", in.MessageID, in.Bytes, in.Aborted, in.Err)
	}
	flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
}

// flSessionBytes: 4 MiB in 512 KiB chunks through a session bounded to
// 3 MiB: the first 3 MiB go through, the chunk past them gets 413, and the
// session (both directions) takes no more.
func flSessionBytes(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{ChunkSize: 512 << 10})
	sink := newFLSink()
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{Sink: sink.sink})
	err := alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{ID: "four", ContentType: "application/octet-stream",
		Body: bytes.NewReader(flRandom(4 << 20)), Size: 4 << 20})
	if !msrptest.IsStatus(err, 413) {
		t.Errorf("4 MiB through a session bounded to 3 MiB: %v, want 413", err)
	}
	// The chunks answered 200 were written to bob before their 200.
	flWaitFor(5*time.Second, func() bool { n, _ := sink.bytes("four"); return n >= 3<<20 })
	if n, _ := sink.bytes("four"); n != 3<<20 {
		t.Errorf("bob received %d bytes, want the 3 MiB under the limit (%d)", n, 3<<20)
	}
	small := []byte("one more")
	flExpect(t, ctx, alice, "alice's SEND on a session at its limit", flSEND(to(aliceUse, bobUse, self(bob)), "more", small), small, 413)
	flExpect(t, ctx, bob, "bob's SEND on a session at its limit", flSEND(to(bobUse, aliceUse, self(alice)), "back", small), small, 413)
	if n, got := sink.bytes("more"); got {
		t.Errorf("bob received %d bytes past the session limit", n)
	}
}

// flOtherBodies: NICKNAME and REPORT bodies are bounded to 10,240 bytes:
// over it a NICKNAME gets 413, a REPORT nothing; neither is forwarded.
func flOtherBodies(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	path := to(aliceUse, bobUse, self(bob))
	nickname := func(body []byte) *msrp.Frame {
		return &msrp.Frame{Method: "NICKNAME", ToPath: path, Headers: []msrp.Header{
			{Name: "Use-Nickname", Value: `"Alice"`}, {Name: "Content-Type", Value: "text/plain"}}}
	}
	big := bytes.Repeat([]byte("n"), 10241)
	flExpect(t, ctx, alice, "NICKNAME with a 10,241-byte body", nickname(big), big, 413)

	report := &msrp.Frame{Method: "REPORT", ToPath: path, Headers: []msrp.Header{
		{Name: "Message-ID", Value: "r1"}, {Name: "Byte-Range", Value: "1-5/5"},
		{Name: "Status", Value: msrp.StatusValue(200, "OK")}, {Name: "Content-Type", Value: "text/plain"}}}
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	resp, err := alice.Request(rctx, report, big)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("REPORT with a 10,241-byte body: %v %v, want no response", err, resp)
	}
	flFence(t, ctx, alice, path, bob)

	// At the bound, a NICKNAME goes through: bob's endpoint answers 501.
	limit := bytes.Repeat([]byte("n"), 10240)
	flExpect(t, ctx, alice, "NICKNAME with a 10,240-byte body (bob's answer)", nickname(limit), limit, 501)
	if in := receive(t, ctx, bob, "NICKNAME"); in.Bytes != 10240 {
		t.Errorf("bob's NICKNAME: %d bytes, want 10240", in.Bytes)
	}
}

func flUnknownMethod(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})
	bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
	path := to(aliceUse, bobUse, self(bob))
	flExpect(t, ctx, alice, "FOO", &msrp.Frame{Method: "FOO", ToPath: path}, nil, 501)
	body := []byte("foo body")
	flExpect(t, ctx, alice, "FOO with a body", &msrp.Frame{Method: "FOO", ToPath: path,
		Headers: []msrp.Header{{Name: "Content-Type", Value: "text/plain"}}}, body, 501)
	flFence(t, ctx, alice, path, bob)
	flExpect(t, ctx, alice, "FOO on a bound session", &msrp.Frame{Method: "FOO", ToPath: path}, nil, 501)
	flFence(t, ctx, alice, path, bob)
}

// flRecord is a session record as GET /msrp/sessions returns it.
type flRecord struct {
	ID        int64     `json:"id"`
	Session   string    `json:"session"`
	Account   string    `json:"account"`
	Transport string    `json:"transport"`
	Client    string    `json:"client"`
	Peer      string    `json:"peer"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	BytesIn   int64     `json:"bytes_in"`
	BytesOut  int64     `json:"bytes_out"`
	Chunks    int64     `json:"chunks"`
	Ended     string    `json:"ended"`
}

// flRecords reads GET /msrp/sessions over HTTPS as user, with Digest in
// realm example.com, and returns the status and, on 200, the records.
func flRecords(t *testing.T, ctx context.Context, r *relay, user, pw, query string) (int, []flRecord) {
	t.Helper()
	c := replicationtest.Client{URL: r.srv.HTTPSURL + msrp.SessionsPath, Username: user, Password: pw, HTTP: r.srv.HTTPS}
	q := "realm=" + domain
	if query != "" {
		q += "&" + query
	}
	resp, err := c.Do(ctx, replicationtest.Request{Query: q})
	if err != nil {
		t.Fatalf("GET %s?%s as %s: %v", msrp.SessionsPath, q, user, err)
	}
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	var out struct {
		Sessions []flRecord `json:"sessions"`
	}
	if err := resp.Decode(&out); err != nil {
		t.Fatalf("GET %s as %s: %v", msrp.SessionsPath, user, err)
	}
	return 200, out.Sessions
}

// flDigest is how the design names a session outside the relay: the first
// 8 bytes of the SHA-256 of its id, in hex.
func flDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// flWaitRecord returns user's record of the session named by use, once the
// relay's writer has stored it.
func flWaitRecord(t *testing.T, ctx context.Context, r *relay, user, pw string, use []msrp.URI) flRecord {
	t.Helper()
	want := flDigest(use[0].SessionID)
	var found *flRecord
	flWaitFor(wait, func() bool {
		code, recs := flRecords(t, ctx, r, user, pw, "")
		if code != 200 {
			t.Fatalf("GET %s as %s: %d", msrp.SessionsPath, user, code)
		}
		for i := range recs {
			if recs[i].Session == want {
				found = &recs[i]
				return true
			}
		}
		return false
	})
	if found == nil {
		t.Fatalf("no record of %s's session %s after %v", user, want, wait)
	}
	return *found
}

// TestRecords: ended sessions are recorded with what they relayed; a user
// reads their own records only, an operator all of them; records name
// sessions by digest, never by id.
func TestRecords(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, eng, func(c *config.Config) { c.Traces.Operators = []string{"carol@" + domain} })
			ctx := testContext(t)
			alice, aliceUse, aliceAddr := flLoginFrom(t, ctx, r, "alice", alicePW, msrptest.Options{ChunkSize: 100})
			bob, bobUse, bobAddr := flLoginFrom(t, ctx, r, "bob", bobPW, msrptest.Options{})
			text := flRandom(250) // 3 chunks of at most 100 bytes
			if err := alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{ID: "a", ContentType: "application/octet-stream",
				Body: bytes.NewReader(text), Size: int64(len(text))}); err != nil {
				t.Fatalf("alice Send: %v", err)
			}
			if in := receive(t, ctx, bob, "SEND"); !bytes.Equal(in.Body, text) {
				t.Fatalf("bob got %d bytes, want alice's %d", len(in.Body), len(text))
			}
			reply := []byte("forty bytes of reply, give or take: ....")
			if err := bob.Send(ctx, to(bobUse, aliceUse, self(alice)), msrptest.Message{ID: "b", ContentType: "text/plain",
				Body: bytes.NewReader(reply), Size: int64(len(reply))}); err != nil {
				t.Fatalf("bob Send: %v", err)
			}
			receive(t, ctx, alice, "SEND")
			r.srv.Clock.Advance(7 * time.Second)
			alice.Close()
			bob.Close()

			ar := flWaitRecord(t, ctx, r, "alice", alicePW, aliceUse)
			br := flWaitRecord(t, ctx, r, "bob", bobPW, bobUse)
			for _, c := range []struct {
				who     string
				rec     flRecord
				use     []msrp.URI
				addr    *net.TCPAddr
				account string
				in, out int64
			}{
				{"alice", ar, aliceUse, aliceAddr, "alice@" + domain, int64(len(text)), int64(len(reply))},
				{"bob", br, bobUse, bobAddr, "bob@" + domain, int64(len(reply)), int64(len(text))},
			} {
				rec := c.rec
				if rec.Account != c.account || rec.Transport != "tls" || rec.Ended != "closed" {
					t.Errorf("%s's record: account %q transport %q ended %q, want %s, tls, closed", c.who, rec.Account, rec.Transport, rec.Ended, c.account)
				}
				if rec.BytesIn != c.in || rec.BytesOut != c.out || rec.Chunks != 4 {
					t.Errorf("%s's record: bytes_in %d bytes_out %d chunks %d, want %d, %d, 4", c.who, rec.BytesIn, rec.BytesOut, rec.Chunks, c.in, c.out)
				}
				if d := rec.EndedAt.Sub(rec.StartedAt); d < 6*time.Second || d > 8*time.Second {
					t.Errorf("%s's record lasted %v, want the 7 s the clock moved", c.who, d)
				}
				id := c.use[0].SessionID
				if rec.Session == id || strings.Contains(rec.Session, id) || strings.Contains(rec.Peer, id) {
					t.Errorf("%s's record holds the session id %q: session %q peer %q", c.who, id, rec.Session, rec.Peer)
				}
				if rec.Client != c.addr.String() {
					t.Errorf("%s's record: client %q, want %s, where the connection came from", c.who, rec.Client, c.addr)
				}
			}
			if other := bobUse[0].SessionID; strings.Contains(ar.Peer, other) {
				t.Errorf("alice's record names bob's session by its id: peer %q", ar.Peer)
			}

			for _, c := range []struct{ user, pw, mine string }{
				{"alice", alicePW, "alice@" + domain},
				{"bob", bobPW, "bob@" + domain},
			} {
				code, recs := flRecords(t, ctx, r, c.user, c.pw, "")
				if code != 200 {
					t.Fatalf("%s's records: %d", c.user, code)
				}
				for _, rec := range recs {
					if rec.Account != c.mine {
						t.Errorf("%s reads a record of %s", c.user, rec.Account)
					}
				}
			}
			if code, _ := flRecords(t, ctx, r, "bob", bobPW, "account=alice@"+domain); code != 403 {
				t.Errorf("bob reading alice's records: %d, want 403", code)
			}
			if code, _ := flRecords(t, ctx, r, "alice", "wrong", ""); code != 401 {
				t.Errorf("records with a wrong password: %d, want 401", code)
			}
			code, all := flRecords(t, ctx, r, "carol", carolPW, "")
			sessions := map[string]string{}
			for _, rec := range all {
				sessions[rec.Session] = rec.Account
			}
			if code != 200 || sessions[ar.Session] != "alice@"+domain || sessions[br.Session] != "bob@"+domain {
				t.Errorf("the operator's records: %d, %v; want alice's and bob's", code, sessions)
			}
			code, only := flRecords(t, ctx, r, "carol", carolPW, "account=alice@"+domain)
			if code != 200 || len(only) == 0 {
				t.Errorf("the operator reading alice's records: %d, %d records", code, len(only))
			}
			for _, rec := range only {
				if rec.Account != "alice@"+domain {
					t.Errorf("the operator asked for alice's records and got one of %s", rec.Account)
				}
			}
		})
	}
}

// flForms returns the ways a secret could be written down: as it is, in hex,
// and in base64 at each of the three alignments it could have inside a
// longer encoded value.
func flForms(secret []byte) [][]byte {
	forms := [][]byte{secret, []byte(hex.EncodeToString(secret)), []byte(strings.ToUpper(hex.EncodeToString(secret)))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := 0; k < 3; k++ {
			s := enc.EncodeToString(append(make([]byte, k), secret...))
			// The characters made only of the secret's bits.
			lo, hi := (8*k+5)/6, 8*(k+len(secret))/6
			forms = append(forms, []byte(s[lo:hi]))
		}
	}
	return forms
}

// flLeaks reports which of the named secrets appear in any form in b.
func flLeaks(b []byte, secrets map[string][]byte) []string {
	var out []string
	for name, s := range secrets {
		for _, f := range flForms(s) {
			if bytes.Contains(b, f) {
				out = append(out, fmt.Sprintf("%s (as %.40q)", name, f))
				break
			}
		}
	}
	return out
}

// TestNoContent: text and files go through the relay both ways; afterwards
// neither their content nor the session ids are in the logs, the metrics,
// or anywhere in the database.
func TestNoContent(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, eng, nil)
			ctx := testContext(t)
			secrets := map[string][]byte{}
			text := func(name, format string) []byte {
				m := "cairn-no-content-" + rand.Text()
				secrets[name] = []byte(m)
				return []byte(fmt.Sprintf(format, m))
			}
			// A file of random bytes with a random marker at the start,
			// across the relay's 64 KiB re-chunking boundary, and at the end.
			file := func(name string) []byte {
				m := flRandom(24)
				secrets[name] = m
				b := flRandom(200 << 10)
				copy(b, m)
				copy(b[64<<10-10:], m)
				copy(b[len(b)-len(m):], m)
				return b
			}
			textAB := text("text alice→bob", "Hi Bob, %s 🙂 bye")
			textBA := text("text bob→alice", "Hi Alice, %s")
			fileAB, fileBA := file("file alice→bob"), file("file bob→alice")

			alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{ChunkSize: 100 << 10})
			bob, bobUse := r.login(ctx, "msrp-wss", "bob", bobPW, msrptest.Options{})
			secrets["alice's session id"] = []byte(aliceUse[0].SessionID)
			secrets["bob's session id"] = []byte(bobUse[0].SessionID)
			for _, m := range []struct {
				from, dst *msrptest.Endpoint
				path      []msrp.URI
				id, ct    string
				body      []byte
			}{
				{alice, bob, to(aliceUse, bobUse, self(bob)), "t1", "text/plain", textAB},
				{bob, alice, to(bobUse, aliceUse, self(alice)), "t2", "text/plain", textBA},
				{alice, bob, to(aliceUse, bobUse, self(bob)), "f1", "application/octet-stream", fileAB},
				{bob, alice, to(bobUse, aliceUse, self(alice)), "f2", "application/octet-stream", fileBA},
			} {
				if err := m.from.Send(ctx, m.path, msrptest.Message{ID: m.id, ContentType: m.ct,
					Body: bytes.NewReader(m.body), Size: int64(len(m.body)), SuccessReport: true}); err != nil {
					t.Fatalf("Send %s: %v", m.id, err)
				}
				if in := receive(t, ctx, m.dst, "SEND"); in.MessageID != m.id || !bytes.Equal(in.Body, m.body) {
					t.Fatalf("%s arrived as %q, %d bytes: the content did not go through", m.id, in.MessageID, len(in.Body))
				}
			}
			alice.Close()
			bob.Close()
			flWaitRecord(t, ctx, r, "alice", alicePW, aliceUse)
			flWaitRecord(t, ctx, r, "bob", bobPW, bobUse)

			logs := r.srv.Logs.String()
			if !strings.Contains(logs, "MSRP session ended") {
				t.Fatal("the node's log has no 'MSRP session ended': is it captured?")
			}
			if leaks := flLeaks([]byte(logs), secrets); len(leaks) > 0 {
				t.Errorf("the log holds %s", strings.Join(leaks, ", "))
			}
			resp, err := r.srv.HTTP.Get(r.srv.HTTPURL + "/metrics")
			if err != nil {
				t.Fatalf("GET /metrics: %v", err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(metrics, []byte("cairn_msrp_relayed_bytes_total")) {
				t.Errorf("/metrics (%d) lacks the MSRP series", resp.StatusCode)
			}
			if leaks := flLeaks(metrics, secrets); len(leaks) > 0 {
				t.Errorf("/metrics holds %s", strings.Join(leaks, ", "))
			}

			db := flDatabase(t, ctx, r)
			if !bytes.Contains(db, []byte("alice@"+domain)) {
				t.Fatalf("the database as read (%d bytes) lacks alice's session record: the search would find nothing", len(db))
			}
			if leaks := flLeaks(db, secrets); len(leaks) > 0 {
				t.Errorf("the database holds %s", strings.Join(leaks, ", "))
			}
		})
	}
}

// flDatabase returns everything the node's database holds: for SQLite the
// bytes of every file under the data directory (the database, its WAL and
// shared memory), for PostgreSQL every row of every table of the node's
// schema as text.
func flDatabase(t *testing.T, ctx context.Context, r *relay) []byte {
	t.Helper()
	cfg := r.srv.Config
	var out bytes.Buffer
	if !cfg.IsPostgres() {
		if _, err := os.Stat(cfg.SQLitePath()); err != nil {
			t.Fatalf("the SQLite database: %v", err)
		}
		err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a journal that came and went
			}
			out.Write(b)
			return err
		})
		if err != nil {
			t.Fatalf("reading %s: %v", cfg.DataDir, err)
		}
		return out.Bytes()
	}
	conn, err := pgx.Connect(ctx, cfg.DB)
	if err != nil {
		t.Fatalf("connecting to the node's database: %v", err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("listing tables: %v", err)
	}
	var sawSessions bool
	for _, table := range tables {
		sawSessions = sawSessions || table == "msrp_sessions"
		rows, _ := conn.Query(ctx, "SELECT t::text FROM "+pgx.Identifier{table}.Sanitize()+" t")
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("reading table %s: %v", table, err)
		}
		for _, s := range texts {
			out.WriteString(s)
			out.WriteByte('\n')
		}
	}
	if !sawSessions {
		t.Fatalf("tables of the node's schema %v lack msrp_sessions", tables)
	}
	return out.Bytes()
}

// flCert makes a self-signed certificate for 127.0.0.1 and returns it as
// PEM with its key.
func flCert(t *testing.T, name string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), cert
}

// flReplace replaces path with data, atomically.
func flReplace(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// flServed returns the certificate served on addr.
func flServed(ctx context.Context, addr string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// TestCertReload: the certificate files are replaced while the node runs;
// within 15 s new TLS connections get the new certificate, on MSRP and
// HTTPS, and a session set up before goes on.
func TestCertReload(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			cert1PEM, key1PEM, cert1 := flCert(t, "cairn test certificate 1")
			cert2PEM, key2PEM, cert2 := flCert(t, "cairn test certificate 2")
			var certFile, keyFile string
			r := startRelay(t, eng, func(c *config.Config) {
				// apptest trusts DataDir/tls/cert.pem: put the files there.
				dir := filepath.Join(c.DataDir, "tls")
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
				flReplace(t, keyFile, key1PEM, 0o600)
				flReplace(t, certFile, cert1PEM, 0o644)
				c.HTTP.CertFile, c.HTTP.KeyFile = certFile, keyFile
			})
			ctx := testContext(t)
			roots := x509.NewCertPool()
			roots.AddCert(cert1)
			roots.AddCert(cert2)
			served, err := flServed(ctx, r.srv.Node.Addr("msrp-tls").String(), roots)
			if err != nil || !served.Equal(cert1) {
				t.Fatalf("msrp-tls before the renewal: %v; want the configured certificate", err)
			}
			alice, aliceUse := flLogin(t, ctx, r, "alice", alicePW, msrptest.Options{})

			flReplace(t, keyFile, key2PEM, 0o600)
			flReplace(t, certFile, cert2PEM, 0o644)
			start := time.Now()
			var last error
			if !flWaitFor(15*time.Second, func() bool {
				served, last = flServed(ctx, r.srv.Node.Addr("msrp-tls").String(), roots)
				if last == nil && !served.Equal(cert1) && !served.Equal(cert2) {
					last = fmt.Errorf("serving %v, neither certificate", served.Subject)
				}
				return last == nil && served.Equal(cert2)
			}) {
				t.Fatalf("msrp-tls still serves the old certificate 15 s after the files changed (last: %v)", last)
			}
			t.Logf("msrp-tls served the new certificate %v after the files changed", time.Since(start).Round(time.Millisecond))
			for _, l := range []string{"msrp-wss", "https"} {
				if served, err := flServed(ctx, r.srv.Node.Addr(l).String(), roots); err != nil || !served.Equal(cert2) {
					t.Errorf("%s after the renewal: %v; want the new certificate", l, err)
				}
			}
			// No restart: alice's session from before goes on.
			r.srv.CA.AddCert(cert2)
			bob, bobUse := flLogin(t, ctx, r, "bob", bobPW, msrptest.Options{})
			flFence(t, ctx, alice, to(aliceUse, bobUse, self(bob)), bob)
		})
	}
}
