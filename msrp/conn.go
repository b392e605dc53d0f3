package msrp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// readBuffer is each connection's read buffer. Half a TLS record: a larger
// one does not speed transfers up (bench/msrp), and 10,000 idle sessions
// hold 80 MiB less.
const readBuffer = 8 << 10

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
	// hooked: nc is TLS over a flushHook, so queued frames are written
	// before a socket read rather than before every record's.
	hooked bool

	wmu  sync.Mutex
	wbuf []byte // frames queued by read loops, written before the next read
	// dirty lists the connections this read loop queued frames on; only
	// the read loop touches it.
	dirty []*conn

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
	defer c.flushDirty() // what the last frames queued, when the stream ends at once
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
	var src io.Reader = flushingReader{c}
	if c.hooked {
		src = c.nc // its socket reads flush
	}
	c.rd = NewReader(src, readBuffer, DefaultLimits)
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

// maxQueued bounds the frames queued on a connection before they are written.
const maxQueued = 64 << 10

// write sends one whole frame now, after any queued before it. A write
// that makes no progress for WriteTimeout fails and closes the connection.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = append(c.wbuf, b...)
	return c.flushLocked()
}

// send queues frame b on dst, to be written when c's read loop is about to
// wait for input: frames read together leave together, in fewer TLS
// records and system calls. Only c's read loop calls it.
func (c *conn) send(dst *conn, b []byte) error {
	dst.wmu.Lock()
	defer dst.wmu.Unlock()
	if len(dst.wbuf)+len(b) > maxQueued {
		if err := dst.flushLocked(); err != nil {
			return err
		}
		return dst.writeLocked(b) // a long frame goes out without a copy
	}
	dst.wbuf = append(dst.wbuf, b...)
	if !slices.Contains(c.dirty, dst) {
		c.dirty = append(c.dirty, dst)
	}
	return nil
}

// flushDirty writes what c's read loop queued.
func (c *conn) flushDirty() {
	for _, dst := range c.dirty {
		dst.wmu.Lock()
		dst.flushLocked()
		dst.wmu.Unlock()
	}
	clear(c.dirty)
	c.dirty = c.dirty[:0]
}

func (c *conn) flushLocked() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	err := c.writeLocked(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

// writeLocked writes b with wmu held.
func (c *conn) writeLocked(b []byte) error {
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

// hangUp writes what the read loop queued, then closes the connection.
func (c *conn) hangUp() {
	c.flushDirty()
	c.nc.Close()
}

// flushingReader writes what the read loop queued before it reads, that is
// before it may wait for input.
type flushingReader struct{ c *conn }

func (f flushingReader) Read(p []byte) (int, error) {
	f.c.flushDirty()
	return f.c.nc.Read(p)
}

// flushHook sits under a TLS connection: the read loop's queued frames are
// written when TLS has used up the records received and reads the socket,
// so that a burst of small frames leaves as one write.
type flushHook struct {
	net.Conn
	c *conn
}

func (h *flushHook) Read(p []byte) (int, error) {
	h.c.flushDirty()
	return h.Conn.Read(p)
}

// newTLSConn makes a conn of TLS over raw, as a server or a client.
func newTLSConn(r *Relay, raw net.Conn, conf *tls.Config, server bool, kind string, self URI) *conn {
	hook := &flushHook{Conn: raw}
	var tc *tls.Conn
	if server {
		tc = tls.Server(hook, conf)
	} else {
		tc = tls.Client(hook, conf)
	}
	c := newConn(r, tc, kind, self)
	c.hooked, hook.c = true, c
	return c
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
	c.send(c, resp.Marshal(nil))
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
