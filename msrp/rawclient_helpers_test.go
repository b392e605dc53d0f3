package msrp_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/msrp"
	"github.com/cairn-chat/cairn/msrp/msrptest"
)

// The helpers of relay_paths_test.go carry an rp prefix: other files of
// this package are written alongside and must not collide with them.

// rpPeer is a hand-driven MSRP endpoint on the relay's TLS listener: it
// answers nothing by itself, so a test decides what each SEND gets (a
// failure, no answer, a dropped connection) and sees every frame the relay
// writes to it, responses included.
type rpPeer struct {
	t    *testing.T
	nc   net.Conn
	rd   *msrp.Reader
	self msrp.URI
	wmu  sync.Mutex
}

// rpFrame is one frame a raw peer read, with its whole body.
type rpFrame struct {
	*msrp.Frame
	Body []byte
}

// rawLogin dials the relay's TLS listener and authenticates user with a
// digest computed here (msrptest's endpoint owns its connection, so it
// cannot hand it over after AUTH). The connection is closed when t ends.
func (r *relay) rawLogin(t *testing.T, ctx context.Context, user, pw string) (*rpPeer, []msrp.URI) {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{RootCAs: r.srv.CA}}
	nc, err := d.DialContext(ctx, "tcp", r.srv.Node.Addr("msrp-tls").String())
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &rpPeer{t: t, nc: nc, rd: msrp.NewReader(nc, 64<<10, msrp.DefaultLimits),
		self: msrp.URI{Secure: true, Host: user + ".invalid", Port: 2855, SessionID: msrp.NewTID(), Transport: "tcp"}}
	relayURI := r.uri("msrp-tls")
	authReq := func(authorization string) *rpFrame {
		f := &msrp.Frame{TID: msrp.NewTID(), Method: "AUTH", ToPath: []msrp.URI{relayURI}, FromPath: []msrp.URI{p.self}}
		if authorization != "" {
			f.Headers = []msrp.Header{{Name: "Authorization", Value: authorization}}
		}
		p.write(f.Marshal(nil))
		resp := p.next()
		if !resp.IsResponse() || resp.TID != f.TID {
			t.Fatalf("raw AUTH: got %s %s %d, want the response to %s", resp.TID, resp.Method, resp.Status, f.TID)
		}
		return resp
	}
	resp := authReq("")
	if resp.Status != 401 {
		t.Fatalf("raw AUTH without credentials: %d %s, want 401", resp.Status, resp.Comment)
	}
	resp = authReq(rpDigest(resp.Get("WWW-Authenticate"), user, pw, relayURI.String()))
	if resp.Status != 200 {
		t.Fatalf("raw AUTH: %d %s, want 200", resp.Status, resp.Comment)
	}
	use, err := msrp.ParsePath(resp.Get("Use-Path"))
	if err != nil {
		t.Fatalf("raw AUTH: Use-Path %q: %v", resp.Get("Use-Path"), err)
	}
	return p, use
}

var rpAuthParam = regexp.MustCompile(`(\w+)=(?:"([^"]*)"|([^\s,]+))`)

// rpDigest answers a Digest challenge for an AUTH (qop=auth, as cairn
// offers it), the way msrptest does.
func rpDigest(challenge, user, pw, uri string) string {
	params := map[string]string{}
	for _, m := range rpAuthParam.FindAllStringSubmatch(challenge, -1) {
		params[strings.ToLower(m[1])] = m[2] + m[3]
	}
	alg := auth.MD5
	if strings.EqualFold(params["algorithm"], string(auth.SHA256)) {
		alg = auth.SHA256
	}
	const nc = "00000001"
	cnonce := msrp.NewTID()
	ha1 := alg.H(user, params["realm"], pw)
	resp := alg.H(ha1, params["nonce"], nc, cnonce, "auth", alg.H("AUTH", uri))
	return fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, response=%q, qop=auth, nc=%s, cnonce=%q, opaque=%q, algorithm=%s`,
		user, params["realm"], params["nonce"], uri, resp, nc, cnonce, params["opaque"], alg)
}

// write writes one whole frame.
func (p *rpPeer) write(b []byte) {
	p.t.Helper()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.nc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("raw write: %v", err)
	}
}

// read returns the next frame and its body, or the error that ended the
// connection or came at the deadline d from now.
func (p *rpPeer) read(d time.Duration) (rpFrame, error) {
	p.nc.SetReadDeadline(time.Now().Add(d))
	f, err := p.rd.ReadFrame()
	if err != nil {
		return rpFrame{}, err
	}
	var body []byte
	if f.HasBody {
		buf := make([]byte, 64<<10)
		for {
			n, err := p.rd.ReadBody(buf)
			body = append(body, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return rpFrame{}, err
			}
		}
	}
	return rpFrame{Frame: f, Body: body}, nil
}

// rpDescribe names a frame in a test failure.
func rpDescribe(f *rpFrame) string {
	if f.IsResponse() {
		return fmt.Sprintf("a %d %s response to %s", f.Status, f.Comment, f.TID)
	}
	return fmt.Sprintf("%s %s for %q (Status %q)", f.Method, f.TID, f.Get("Message-ID"), f.Get("Status"))
}

// next returns the next frame, failing the test after wait.
func (p *rpPeer) next() *rpFrame {
	p.t.Helper()
	f, err := p.read(wait)
	if err != nil {
		p.t.Fatalf("raw peer %s: reading a frame: %v", p.self.Host, err)
	}
	return &f
}

// nextRequest returns the next request of method, failing the test on
// anything else.
func (p *rpPeer) nextRequest(method string) *rpFrame {
	p.t.Helper()
	f := p.next()
	if f.Method != method {
		p.t.Fatalf("raw peer %s: got %s %s %d %s, want a %s", p.self.Host, f.TID, f.Method, f.Status, f.Comment, method)
	}
	return f
}

// respond answers request f with code (RFC 4975 §7.2 paths).
func (p *rpPeer) respond(f *rpFrame, code int, comment string) {
	p.t.Helper()
	resp := &msrp.Frame{TID: f.TID, Status: code, Comment: comment, ToPath: f.FromPath[:1], FromPath: []msrp.URI{p.self}}
	p.write(resp.Marshal(nil))
}

// send sends body as a one-chunk text message and returns the transaction id.
func (p *rpPeer) send(toPath []msrp.URI, id, failureReport string, body []byte) string {
	p.t.Helper()
	f := &msrp.Frame{TID: msrp.NewTID(), Method: "SEND", ToPath: toPath, FromPath: []msrp.URI{p.self}, HasBody: true,
		Headers: []msrp.Header{
			{Name: "Message-ID", Value: id},
			{Name: "Byte-Range", Value: msrp.ByteRange{Start: 1, End: int64(len(body)), Total: int64(len(body))}.String()},
		}}
	if failureReport != "" {
		f.Headers = append(f.Headers, msrp.Header{Name: "Failure-Report", Value: failureReport})
	}
	f.Headers = append(f.Headers, msrp.Header{Name: "Content-Type", Value: "text/plain"})
	p.write(f.Marshal(body))
	return f.TID
}

// close drops the connection.
func (p *rpPeer) close() { p.nc.Close() }

// rpGate is a connection whose reads can be held: under an msrptest
// endpoint, it makes a receiver that stops reading (TCP then pushes back on
// the relay) and later drains and answers as usual.
type rpGate struct {
	net.Conn
	mu        sync.Mutex
	open      chan struct{} // closed while reads pass
	closed    chan struct{}
	closeOnce sync.Once
}

func newRPGate(c net.Conn) *rpGate {
	g := &rpGate{Conn: c, open: make(chan struct{}), closed: make(chan struct{})}
	close(g.open)
	return g
}

func (g *rpGate) Read(b []byte) (int, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-g.closed:
		return 0, net.ErrClosed
	}
	return g.Conn.Read(b)
}

// hold stops reads from the next one on.
func (g *rpGate) hold() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

// release lets reads through again.
func (g *rpGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *rpGate) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	return g.Conn.Close()
}

// gatedLogin dials the relay's TLS listener with an msrptest endpoint whose
// reads can be held, and authenticates user. The endpoint is closed when t
// ends.
func (r *relay) gatedLogin(t *testing.T, ctx context.Context, user, pw string, o msrptest.Options) (*msrptest.Endpoint, *rpGate, []msrp.URI) {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{RootCAs: r.srv.CA}}
	nc, err := d.DialContext(ctx, "tcp", r.srv.Node.Addr("msrp-tls").String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	g := newRPGate(nc)
	e := msrptest.NewEndpoint(g, o)
	t.Cleanup(func() { e.Close() })
	res, err := e.Auth(ctx, r.uri("msrp-tls"), user, pw, 0)
	if err != nil {
		t.Fatalf("AUTH %s: %v", user, err)
	}
	return e, g, res.UsePath
}
