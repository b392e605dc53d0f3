package sip_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/sip/siptest"
)

// TestMain checks for leaked goroutines. One kind is sipgo's own: a request
// read just before its UDP listener closes is answered from a new socket
// that sipgo opens after its transport layer has closed, and whose reader
// then lives as long as the process (TestStopUnderLoad provokes it).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"))
}

const (
	domain  = "example.com"
	alicePW = "alice-sip-pw"
	bobPW   = "bob-sip-pw"
	carolPW = "carol-sip-pw"
	inst1   = "urn:uuid:11111111-1111-4111-8111-111111111111"
	inst2   = "urn:uuid:22222222-2222-4222-8222-222222222222"
	wait    = 10 * time.Second
)

// cpim is a Blink Cocoa MESSAGE body (blink.md §6.1): CRLF lines, IMDN
// headers declared by NS.
func cpim(id, text string) []byte {
	return []byte("From: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n" +
		"DateTime: 2026-11-28T10:00:00.000000+00:00\r\nNS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: " + id + "\r\nimdn.Disposition-Notification: positive-delivery, display\r\n\r\n" +
		"Content-Type: text/plain\r\n\r\n" + text)
}

type env struct {
	t   *testing.T
	srv *apptest.Server
}

// start runs a node with alice, bob and carol.
func start(t *testing.T, eng apptest.Engine, configure func(*config.Config)) *env {
	acct := func(user, pw string) apptest.Account {
		return apptest.Account{Address: user + "@" + domain, Passwords: app.Passwords{SIP: pw}}
	}
	srv := apptest.Start(t, eng, func(c *config.Config) {
		c.Offline.RetryMin = config.Duration(200 * time.Millisecond)
		c.Offline.RetryMax = config.Duration(time.Second)
		c.SIP.Timeout = config.Duration(2 * time.Second)
		if configure != nil {
			configure(c)
		}
	}, acct("alice", alicePW), acct("bob", bobPW), acct("carol", carolPW))
	return &env{t: t, srv: srv}
}

func (e *env) device(user, pw, transport, instance string) *siptest.Device {
	return siptest.New(e.t, siptest.Options{
		User: user, Domain: domain, Password: pw, Transport: transport,
		Server: e.srv.Node.Addr("sip-" + transport).String(), Instance: instance,
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

func mustStatus(t *testing.T, res *sipmsg.Response, err error, want int) {
	t.Helper()
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if res.StatusCode != want {
		t.Fatalf("status %d %s, want %d", res.StatusCode, res.Reason, want)
	}
}

func TestSIP(t *testing.T) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Run("register", func(t *testing.T) { testRegister(t, eng) })
			for _, tr := range []string{"udp", "tcp", "tls", "ws", "wss"} {
				t.Run("offline_"+tr, func(t *testing.T) { testOffline(t, eng, tr) })
			}
			t.Run("multi_device", func(t *testing.T) { testMultiDevice(t, eng) })
			t.Run("live", func(t *testing.T) { testLive(t, eng) })
			t.Run("dedup", func(t *testing.T) { testDedup(t, eng) })
			t.Run("limits", func(t *testing.T) { testLimits(t, eng) })
			t.Run("sender_auth", func(t *testing.T) { testSenderAuth(t, eng) })
			t.Run("retry", func(t *testing.T) { testRetry(t, eng) })
			t.Run("expires", func(t *testing.T) { testExpires(t, eng) })
			t.Run("traces", func(t *testing.T) { testTraces(t, eng) })
		})
	}
}

func testRegister(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	for _, tr := range []string{"udp", "tcp", "tls", "ws", "wss"} {
		res, err := e.device("bob", bobPW, tr, "").Register(ctx(t), time.Hour)
		mustStatus(t, res, err, 200)
		if len(res.GetHeaders("Contact")) == 0 {
			t.Errorf("%s: 200 lists no Contact", tr)
		}
	}
	res, err := e.device("bob", "wrong-password", "udp", "").Register(ctx(t), time.Hour)
	mustStatus(t, res, err, 401)
	// Registering as somebody else with one's own password fails too.
	res, err = siptest.New(t, siptest.Options{User: "nobody", Domain: domain, Password: bobPW,
		Transport: "udp", Server: e.srv.Node.Addr("sip-udp").String()}).Register(ctx(t), time.Hour)
	mustStatus(t, res, err, 404)
	res, err = e.device("bob", bobPW, "udp", "").Register(ctx(t), 10*time.Second)
	mustStatus(t, res, err, 423)
	if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "60" {
		t.Errorf("423 without Min-Expires: 60: %v", h)
	}

	// SHA-256 (RFC 8760) offered first: the device answers it, and a MESSAGE
	// challenge (407) offers it too.
	e = start(t, eng, func(c *config.Config) { c.SIP.DigestAlgorithms = []string{"SHA-256", "MD5"} })
	bob := e.device("bob", bobPW, "tcp", "")
	register(t, bob)
	res, err = bob.Send(ctx(t), "sip:alice@example.com", "text/plain", []byte("sha"))
	mustStatus(t, res, err, 200)
	if auth := res.GetHeader("Proxy-Authenticate"); auth != nil {
		t.Errorf("a 200 with a challenge: %v", auth)
	}
}

// testOffline: a MESSAGE to a user with no device is stored, answered 200,
// and reaches the device that registers later, byte for byte.
func testOffline(t *testing.T, eng apptest.Engine, tr string) {
	e := start(t, eng, nil)
	alice := e.device("alice", alicePW, "udp", "")
	body := cpim("msg-1", "hello \x00 binary\r\n")
	res, err := alice.Send(ctx(t), "sip:bob@example.com", "message/cpim", body, sipmsg.NewHeader("Date", "Sat, 28 Nov 2026 10:00:00 GMT"))
	mustStatus(t, res, err, 200)

	bob := e.device("bob", bobPW, tr, inst1)
	res, err = bob.Register(ctx(t), time.Hour)
	mustStatus(t, res, err, 200)
	got := bob.WaitReceived(1, wait)[0]
	if !bytes.Equal(got.Body(), body) {
		t.Errorf("body changed:\n got %q\nwant %q", got.Body(), body)
	}
	if ct := got.ContentType(); ct == nil || ct.Value() != "message/cpim" {
		t.Errorf("Content-Type %v, want message/cpim", ct)
	}
	if d := got.GetHeader("Date"); d == nil || d.Value() != "Sat, 28 Nov 2026 10:00:00 GMT" {
		t.Errorf("Date %v, want the original", d)
	}
	if to := got.To(); to == nil || to.Address.User != "bob" || to.Address.Host != domain {
		t.Errorf("To %v, want bob's address", to)
	}
	if from := got.From(); from == nil || from.Address.User != "alice" {
		t.Errorf("From %v, want alice", from)
	}
	// A refresh delivers nothing twice.
	res, err = bob.Register(ctx(t), time.Hour)
	mustStatus(t, res, err, 200)
	time.Sleep(300 * time.Millisecond)
	if n := len(bob.Received()); n != 1 {
		t.Errorf("after a refresh the device got %d MESSAGEs, want 1", n)
	}
}

// testMultiDevice: two devices of bob, one registered late, each get every
// message once and in order.
func testMultiDevice(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	alice := e.device("alice", alicePW, "udp", "")
	const n = 20
	for i := range n {
		res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", fmt.Appendf(nil, "m%02d", i))
		mustStatus(t, res, err, 200)
	}
	d1 := e.device("bob", bobPW, "tcp", inst1)
	register(t, d1)
	checkInOrder(t, d1.WaitReceived(n, wait), n)

	// Sent while d1 is registered: d1 takes it live; it is not stored.
	res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("live"))
	mustStatus(t, res, err, 200)
	d1.WaitReceived(n+1, wait)

	d2 := e.device("bob", bobPW, "udp", inst2)
	register(t, d2)
	checkInOrder(t, d2.WaitReceived(n, wait), n)
	register(t, d1)
	register(t, d2)
	time.Sleep(300 * time.Millisecond)
	if a, b := len(d1.Received()), len(d2.Received()); a != n+1 || b != n {
		t.Errorf("after refreshes the devices got %d and %d MESSAGEs, want %d and %d", a, b, n+1, n)
	}
}

// register registers d for an hour and wants 200.
func register(t *testing.T, d *siptest.Device) {
	t.Helper()
	res, err := d.Register(ctx(t), time.Hour)
	mustStatus(t, res, err, 200)
}

func checkInOrder(t *testing.T, got []*sipmsg.Request, n int) {
	t.Helper()
	for i, r := range got[:n] {
		if want := fmt.Sprintf("m%02d", i); string(r.Body()) != want {
			t.Fatalf("message %d is %q, want %q", i, r.Body(), want)
		}
	}
}

// testLive: a registered device takes the MESSAGE at once; it is not stored.
func testLive(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	bob := e.device("bob", bobPW, "ws", inst1)
	register(t, bob)
	alice := e.device("alice", alicePW, "tcp", "")
	res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("hi"))
	mustStatus(t, res, err, 200)
	if got := bob.WaitReceived(1, wait); string(got[0].Body()) != "hi" {
		t.Errorf("body %q", got[0].Body())
	}
	late := e.device("bob", bobPW, "udp", inst2)
	register(t, late)
	time.Sleep(300 * time.Millisecond)
	if n := len(late.Received()); n != 0 {
		t.Errorf("a message taken live was stored: a later device got %d", n)
	}
}

// testDedup: a resend with the same IMDN Message-ID, or the same Call-ID and
// CSeq, is stored once.
func testDedup(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	alice := e.device("alice", alicePW, "udp", "")
	for range 3 {
		res, err := alice.Send(ctx(t), "sip:bob@example.com", "message/cpim", cpim("same-id", "once"))
		mustStatus(t, res, err, 200)
	}
	res, err := alice.Send(ctx(t), "sip:bob@example.com", "message/cpim", cpim("other-id", "twice"))
	mustStatus(t, res, err, 200)
	bob := e.device("bob", bobPW, "udp", inst1)
	register(t, bob)
	bob.WaitReceived(2, wait)
	time.Sleep(300 * time.Millisecond)
	if n := len(bob.Received()); n != 2 {
		t.Errorf("bob got %d MESSAGEs, want 2", n)
	}
}

// testLimits: per-message size and per-user count get clear SIP errors and
// store nothing.
func testLimits(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, func(c *config.Config) {
		c.Offline.MaxMessages = 3
		c.Offline.MaxMessageSize = 2048
	})
	alice := e.device("alice", alicePW, "tcp", "")
	res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", bytes.Repeat([]byte("x"), 2049))
	mustStatus(t, res, err, 413)
	res, err = alice.Send(ctx(t), "sip:bob@example.com", "text/plain; x="+strings.Repeat("y", 300), []byte("x"))
	mustStatus(t, res, err, 400)
	for i := range 3 {
		res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", fmt.Appendf(nil, "m%02d", i))
		mustStatus(t, res, err, 200)
	}
	res, err = alice.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("one too many"))
	mustStatus(t, res, err, 486)
	if !strings.Contains(res.Reason, "Storage Full") {
		t.Errorf("reason %q does not say why", res.Reason)
	}
	res, err = alice.Send(ctx(t), "sip:nobody@example.com", "text/plain", []byte("x"))
	mustStatus(t, res, err, 404)
	res, err = alice.Send(ctx(t), "sip:bob@elsewhere.test", "text/plain", []byte("x"))
	mustStatus(t, res, err, 403)
	bob := e.device("bob", bobPW, "udp", inst1)
	register(t, bob)
	checkInOrder(t, bob.WaitReceived(3, wait), 3)
	time.Sleep(300 * time.Millisecond)
	if n := len(bob.Received()); n != 3 {
		t.Errorf("bob got %d MESSAGEs, want 3", n)
	}
}

// testSenderAuth: a local sender must prove it is the From address.
func testSenderAuth(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	// alice's device with carol's password: challenged again, never stored.
	impostor := e.device("alice", carolPW, "udp", "")
	res, err := impostor.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("spoof"))
	mustStatus(t, res, err, 407)
	// A sender from a domain not served here is refused.
	foreign := siptest.New(t, siptest.Options{User: "mallory", Domain: "elsewhere.test", Password: "x",
		Transport: "udp", Server: e.srv.Node.Addr("sip-udp").String()})
	res, err = foreign.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("spam"))
	mustStatus(t, res, err, 403)
	bob := e.device("bob", bobPW, "udp", inst1)
	register(t, bob)
	time.Sleep(500 * time.Millisecond)
	if n := len(bob.Received()); n != 0 {
		t.Errorf("bob got %d MESSAGEs from unauthenticated senders", n)
	}
}

// testRetry: a device that fails gets the message again with backoff; one
// that refuses it for good is not sent it again, and the queue goes on.
func testRetry(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	alice := e.device("alice", alicePW, "udp", "")
	for _, body := range []string{"m00", "refused", "m01"} {
		res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte(body))
		mustStatus(t, res, err, 200)
	}
	bob := e.device("bob", bobPW, "udp", inst1)
	fails := 2
	bob.Answer(func(r *sipmsg.Request) int {
		switch {
		case string(r.Body()) == "refused":
			return 415
		case fails > 0:
			fails--
			return 480
		}
		return 200
	})
	register(t, bob)
	checkInOrder(t, bob.WaitReceived(2, wait), 2)
	time.Sleep(500 * time.Millisecond)
	if n := len(bob.Received()); n != 2 {
		t.Errorf("bob got %d MESSAGEs, want 2", n)
	}
}

// testExpires: a MESSAGE's Expires header shortens its life; expired
// messages are not delivered.
func testExpires(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	alice := e.device("alice", alicePW, "udp", "")
	res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("short"), sipmsg.NewHeader("Expires", "60"))
	mustStatus(t, res, err, 200)
	res, err = alice.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("long"))
	mustStatus(t, res, err, 200)
	e.srv.Clock.Advance(2 * time.Minute)
	bob := e.device("bob", bobPW, "udp", inst1)
	register(t, bob)
	got := bob.WaitReceived(1, wait)
	time.Sleep(300 * time.Millisecond)
	if n := len(bob.Received()); n != 1 || string(got[0].Body()) != "long" {
		t.Errorf("bob got %d MESSAGEs, first %q; want only \"long\"", n, got[0].Body())
	}
	// Past the retention period, nothing is owed, and the sweep removes it.
	e.srv.Clock.Advance(31 * 24 * time.Hour)
	purged, err := e.srv.Node.Purge(context.Background())
	if err != nil || purged.Offline != 2 {
		t.Errorf("purge removed %d offline messages (%v), want 2", purged.Offline, err)
	}
}

// testTraces: every SIP message is traced; a user reads their own traces
// only, an operator reads all.
func testTraces(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, func(c *config.Config) { c.Traces.Operators = []string{"carol@example.com"} })
	alice := e.device("alice", alicePW, "udp", "")
	res, err := alice.Send(ctx(t), "sip:bob@example.com", "text/plain", []byte("traced"))
	mustStatus(t, res, err, 200)
	callID := res.CallID().Value()

	type trace struct {
		Direction, Method, CallID, From, To, Message string
		Status                                       int
	}
	list := func(user, pw, query string) (int, []trace) {
		var out struct{ Traces []trace }
		for deadline := time.Now().Add(wait); ; {
			req, _ := http.NewRequest("GET", e.srv.HTTPSURL+"/sip/traces?"+query, nil)
			req.SetBasicAuth(user+"@"+domain, pw)
			resp, err := e.srv.HTTPS.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			out.Traces = nil
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			// Traces are written behind the traffic: wait for the 4 of the
			// exchange (challenge, answer, MESSAGE again, 200).
			if len(out.Traces) >= 4 || time.Now().After(deadline) {
				return 200, out.Traces
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	code, traces := list("alice", alicePW, "call_id="+callID)
	if code != 200 || len(traces) < 4 {
		t.Fatalf("alice's traces: %d, %d rows", code, len(traces))
	}
	var sawIn, sawOK bool
	for _, tr := range traces {
		sawIn = sawIn || tr.Direction == "in" && tr.Method == "MESSAGE" && strings.Contains(tr.Message, "traced")
		sawOK = sawOK || tr.Direction == "out" && tr.Status == 200
	}
	if !sawIn || !sawOK {
		t.Errorf("alice's traces lack the MESSAGE in or its 200 out: %+v", traces)
	}
	if code, _ := list("alice", "wrong-password", ""); code != 401 {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code, _ := list("alice", alicePW, "addr=bob@example.com"); code != 403 {
		t.Errorf("alice reading bob's traces: %d, want 403", code)
	}
	// bob is the To of the exchange: his traces hold it too.
	if _, traces := list("bob", bobPW, "call_id="+callID); len(traces) < 4 {
		t.Errorf("bob sees %d traces of a MESSAGE to him", len(traces))
	}
	// carol is an operator: she reads everything, alice's REGISTER-less
	// exchange included.
	if _, traces := list("carol", carolPW, "call_id="+callID); len(traces) < 4 {
		t.Errorf("the operator sees %d traces", len(traces))
	}
}
