package msrp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// readBuffer is each connection's read buffer: large enough for a TLS
// record's worth of body per read, small enough for 10,000 idle sessions.
const readBuffer = 16 << 10

// maxOtherBody bounds the body of requests other than SEND (RFC 4975 §7.1).
const maxOtherBody = 10240

// role is what a connection is to the session it serves.
type role int

const (
	roleNone   role = iota // no session yet
	roleClient             // it authenticated the session
	roleFar                // the session's far leg: to or from the next hop
)

// conn is one MSRP connection. Its read loop is the only reader; writers
// take wmu for one whole frame at a time, so frames of different flows
// interleave between frames, never inside one.
type conn struct {
	r      *Relay
	nc     net.Conn
	rd     *Reader
	kind   string // tls, tcp, wss, ws, or "out" for one the relay dialed
	self   URI    // the relay's URI on this connection's listener
	remote string
	ip     netip.Addr

	wmu sync.Mutex

	// Guarded by the session's mutex once bound; set before any other
	// goroutine can see the connection in a session.
	mu           sync.Mutex
	role         role
	session      *session
	authAttempts int

	closeOnce sync.Once
	closed    chan struct{}
}

func newConn(r *Relay, nc net.Conn, kind string, self URI) *conn {
	c := &conn{r: r, nc: nc, kind: kind, self: self, remote: nc.RemoteAddr().String(), closed: make(chan struct{})}
	if ap, err := netip.ParseAddrPort(c.remote); err == nil {
		c.ip = ap.Addr().Unmap()
	}
	return c
}

// serve reads frames until the connection ends, then ends its session.
func (c *conn) serve() {
	defer c.close()
	deadline := time.Now().Add(c.r.cfg.HandshakeTimeout)
	if c.unbound() {
		c.nc.SetReadDeadline(deadline)
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			return
		}
	}
	c.rd = NewReader(c.nc, readBuffer, DefaultLimits)
	for {
		f, err := c.rd.ReadFrame()
		var ferr *FrameError
		if errors.As(err, &ferr) {
			if !ferr.Frame.IsResponse() && ferr.Frame.FromPath != nil && ferr.Frame.ToPath != nil {
				c.respond(ferr.Frame, ferr.Code, ferr.Reason)
			}
			continue
		}
		if err != nil {
			return
		}
		if f.IsResponse() {
			c.response(f)
			continue
		}
		c.request(f)
	}
}

// bind makes c a leg of s. From then on the session's expiry and idle
// timeout, not the handshake deadline, bound the connection.
func (c *conn) bind(s *session, rl role) {
	c.mu.Lock()
	c.session, c.role = s, rl
	c.mu.Unlock()
	c.nc.SetReadDeadline(time.Time{})
}

// unbound reports whether c serves no session.
func (c *conn) unbound() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session == nil
}

// write sends one whole frame. A write that makes no progress for
// WriteTimeout fails and closes the connection.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.r.cfg.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close() // the read loop ends and closes c
		return err
	}
	return nil
}

// close closes the connection and ends the session it serves.
func (c *conn) close() {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		c.nc.Close()
	})
	if !first {
		return
	}
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s != nil {
		s.end(endClosed)
	}
}

// respond answers request f with code, unless its Failure-Report asks for
// no such response (RFC 4975 §7.2): REPORTs get none, "no" gets none, and
// "partial" only failures.
func (c *conn) respond(f *Frame, code int, comment string, extra ...Header) {
	if f.Method == "REPORT" || len(f.FromPath) == 0 || len(f.ToPath) == 0 {
		return
	}
	switch f.Get("Failure-Report") {
	case "no":
		return
	case "partial":
		if code == 200 {
			return
		}
	}
	resp := &Frame{TID: f.TID, Status: code, Comment: comment, ToPath: f.FromPath[:1], FromPath: f.ToPath[:1], Headers: extra}
	c.write(resp.Marshal(nil))
}

// request handles one request whose head has been read.
func (c *conn) request(f *Frame) {
	if f.Method == "AUTH" && len(f.ToPath) == 1 {
		c.r.auth(c, f)
		return
	}
	s := c.r.lookup(f.ToPath[0])
	if s == nil {
		c.respond(f, 481, "Session Does Not Exist")
		return
	}
	if len(f.ToPath) < 2 {
		c.respond(f, 400, "Nothing Beyond The Relay")
		return
	}
	switch f.Method {
	case "SEND":
		s.send(c, f)
	case "REPORT", "NICKNAME", "AUTH":
		s.other(c, f)
	default:
		c.respond(f, 501, "Unknown Method")
	}
}

// response handles a response to a request the relay forwarded on c.
func (c *conn) response(f *Frame) {
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s != nil {
		s.response(c, f)
	}
}

// readOtherBody reads the body of a request other than SEND, which is bounded
// by maxOtherBody; ok is false when the body was too large (and skipped) or
// the connection failed.
func (c *conn) readOtherBody(f *Frame) (body []byte, ok bool) {
	if !f.HasBody {
		return nil, true
	}
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.rd.ReadBody(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true
		}
		if err != nil {
			return nil, false
		}
		if len(buf) > maxOtherBody {
			c.respond(f, 413, "Request Too Large")
			for {
				if _, err := c.rd.ReadBody(nil); err != nil {
					return nil, false
				}
			}
		}
	}
}
