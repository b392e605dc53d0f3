package msrp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// Why a session ended, as recorded.
const (
	endClosed   = "closed"
	endExpired  = "expired"
	endIdle     = "idle"
	endShutdown = "shutdown"
)

// maxPiece bounds what the relay forwards in one chunk: it re-chunks longer
// SEND chunks (RFC 4976 §7.3), so that buffers stay bounded and other
// frames can go out between the pieces.
const maxPiece = 64 << 10

// pieceBufs hold a piece as read and the frame that carries it on.
var pieceBufs = sync.Pool{New: func() any { b := make([]byte, 2*maxPiece+8192); return &b }}

// session is one relay session: the client leg that authenticated it and a
// far leg, bound by the first request that goes through.
type session struct {
	r          *Relay
	id         string
	uri        URI // the Use-Path URI
	account    string
	client     *conn
	clientPath []URI // the client's From-Path at AUTH
	started    time.Time

	lastActive atomic.Int64 // unix nanoseconds
	bytesIn    atomic.Int64 // body bytes from the client
	bytesOut   atomic.Int64 // body bytes to the client
	chunks     atomic.Int64

	mu      sync.Mutex
	expires time.Time // ends the session while it is unbound
	far     *conn     // the far leg, when it is a connection
	peer    *session  // the far leg, when it is another session of this relay
	farPath []URI     // the To-Path beyond the relay of requests to the far leg, and the From-Path of those from it
	ended   bool
	pending map[string]*pendingTx // requests forwarded on this session's connections, by transaction id
}

// pendingTx is a request the relay forwarded and whose response it awaits.
// Either srcTID is set (the response goes back to src as the answer to
// srcTID), or it is a SEND chunk whose failure becomes a REPORT to src.
type pendingTx struct {
	deadline      time.Time
	failureReport string // "yes" or "partial" for a SEND chunk
	src           *conn
	srcTID        string
	srcFrom       []URI // the request's From-Path as it reached src's side
	reportFrom    []URI // the relay's URIs on the way back, nearest src first
	messageID     string
	rng           ByteRange
}

// hop is where a request goes: the connection, the session that tracks
// transactions on it, the rewritten paths, and the sessions it passes.
type hop struct {
	out      *conn
	owner    *session
	toPath   []URI
	fromPath []URI
	sessions []*session
	back     []URI
}

func (s *session) touch(now time.Time) { s.lastActive.Store(now.UnixNano()) }

// route checks that a request arriving on c belongs to the session, binding
// the far leg when this is its first request, and returns where it goes, or
// the status to refuse it with.
func (s *session) route(c *conn, f *Frame) (hop, int, string) {
	next := f.ToPath[1:]
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return hop{}, 481, "Session Does Not Exist"
	}
	switch {
	case c == s.client:
		if !EqualPaths(f.FromPath, s.clientPath) {
			s.mu.Unlock()
			return hop{}, 403, "From-Path Does Not Match"
		}
		if s.far == nil && s.peer == nil {
			s.mu.Unlock()
			if code, reason := s.bind(next); code != 0 {
				return hop{}, code, reason
			}
			s.mu.Lock()
			if s.ended {
				s.mu.Unlock()
				return hop{}, 481, "Session Does Not Exist"
			}
		}
		if !EqualPaths(next, s.farPath) {
			s.mu.Unlock()
			return hop{}, 403, "To-Path Does Not Match"
		}
		defer s.mu.Unlock()
		if t := s.peer; t != nil {
			return hop{
				out: t.client, owner: t, toPath: next[1:],
				fromPath: concat([]URI{t.uri, s.uri}, f.FromPath),
				sessions: []*session{s, t}, back: []URI{s.uri, t.uri},
			}, 0, ""
		}
		return hop{out: s.far, owner: s, toPath: next, fromPath: concat([]URI{s.uri}, f.FromPath),
			sessions: []*session{s}, back: []URI{s.uri}}, 0, ""
	case c == s.far:
	case s.far == nil && s.peer == nil && c.unbound() && EqualPaths(next, s.clientPath):
		// A connection from the previous hop: the session id in its
		// To-Path is the capability that binds it as the far leg.
		s.far, s.farPath = c, f.FromPath
		c.bind(s, roleFar)
	default:
		s.mu.Unlock()
		return hop{}, 403, "Wrong Connection For Session"
	}
	defer s.mu.Unlock()
	if !EqualPaths(f.FromPath, s.farPath) && !(f.Method == "REPORT" && isPrefix(f.FromPath, s.farPath)) {
		return hop{}, 403, "From-Path Does Not Match"
	}
	if !EqualPaths(next, s.clientPath) {
		return hop{}, 403, "To-Path Does Not Match"
	}
	return hop{out: s.client, owner: s, toPath: next, fromPath: concat([]URI{s.uri}, f.FromPath),
		sessions: []*session{s}, back: []URI{s.uri}}, 0, ""
}

// bind makes the far leg of an unbound session from the To-Path beyond the
// relay: another session of this relay, or a connection to the next hop.
// Only the client's read loop binds, so binds of one session never race.
func (s *session) bind(next []URI) (int, string) {
	r := s.r
	if r.ours(next[0]) {
		t := r.lookup(next[0])
		if t == nil || t == s {
			return 481, "Session Does Not Exist"
		}
		first, second := s, t
		if t.id < s.id {
			first, second = t, s
		}
		first.mu.Lock()
		defer first.mu.Unlock()
		second.mu.Lock()
		defer second.mu.Unlock()
		switch {
		case s.ended || t.ended:
			return 481, "Session Does Not Exist"
		case t.far != nil || t.peer != nil || s.far != nil || s.peer != nil:
			return 403, "Session Already Bound"
		case !EqualPaths(next[1:], t.clientPath):
			return 403, "To-Path Does Not Match"
		}
		s.peer, s.farPath = t, next
		t.peer, t.farPath = s, concat([]URI{s.uri}, s.clientPath)
		return 0, ""
	}
	out, code, reason := r.dial(next[0], s.client.self)
	if code != 0 {
		return code, reason
	}
	s.mu.Lock()
	if s.ended || s.far != nil || s.peer != nil {
		s.mu.Unlock()
		out.nc.Close()
		return 481, "Session Does Not Exist"
	}
	s.far, s.farPath = out, next
	out.bind(s, roleFar)
	s.mu.Unlock()
	if !r.start(out) {
		return 481, "Session Does Not Exist"
	}
	return 0, ""
}

// errPrivate refuses a next hop on a non-public address.
var errPrivate = errors.New("msrp: next hop on a non-public address")

// publicAddr reports whether a is a global unicast address outside the
// private ranges.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// dial connects to a next hop outside this relay; self is the relay's URI
// on the session's listener.
func (r *Relay) dial(u URI, self URI) (*conn, int, string) {
	switch {
	case u.Transport != "tcp":
		return nil, 415, "Unsupported Transport"
	case u.Secure && r.cfg.Dial == nil, !u.Secure && !r.cfg.DialTCP:
		return nil, 403, "Next Hop Not Allowed"
	}
	port := u.Port
	if port == 0 {
		port = 2855
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.HandshakeTimeout)
	defer cancel()
	d := &net.Dialer{}
	if !r.cfg.DialPrivate {
		// Checked on the address actually dialed, after name resolution.
		d.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return errPrivate
			}
			return nil
		}
	}
	addr := net.JoinHostPort(u.Host, strconv.Itoa(port))
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, errPrivate) {
			return nil, 403, "Next Hop Not Allowed"
		}
		return nil, 408, "Next Hop Unreachable"
	}
	if !u.Secure {
		return newConn(r, nc, "out", self), 0, ""
	}
	conf := r.cfg.Dial.Clone()
	conf.ServerName = u.Host
	c := newTLSConn(r, nc, conf, false, "out", self)
	if err := c.nc.(*tls.Conn).HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, 408, "Next Hop TLS Failed"
	}
	return c, 0, ""
}

// send relays a SEND chunk whose head has been read, streaming its body in
// pieces of at most maxPiece. With Failure-Report "yes" (the default) the
// relay answers 200 once the chunk is forwarded, and turns a failure further
// on into a REPORT (RFC 4976 §7.3).
func (s *session) send(c *conn, f *Frame) {
	r := s.r
	fr := f.Get("Failure-Report")
	switch fr {
	case "":
		fr = "yes"
	case "yes", "no", "partial":
	default:
		c.respond(f, 400, "Bad Failure-Report")
		return
	}
	rng, err := ParseByteRange(f.Get("Byte-Range"))
	msgID := f.Get("Message-ID")
	if err != nil || msgID == "" {
		c.respond(f, 400, "Bad Message-ID Or Byte-Range")
		return
	}
	h, code, reason := s.route(c, f)
	if code != 0 {
		c.respond(f, code, reason)
		return
	}
	if rng.End >= 0 && rng.End-rng.Start+1 > r.cfg.MaxChunk {
		c.respond(f, 413, "Chunk Too Large")
		return
	}
	if rng.End >= 0 && overLimit(h.sessions, rng.End-rng.Start+1, r.cfg.MaxSessionBytes) {
		c.respond(f, 413, "Session Byte Limit Reached")
		return
	}
	bp := pieceBufs.Get().(*[]byte)
	defer pieceBufs.Put(bp)
	buf, out := (*bp)[:maxPiece+1], (*bp)[maxPiece+1:]
	of := &Frame{Method: "SEND", ToPath: h.toPath, FromPath: h.fromPath, HasBody: f.HasBody,
		Headers: append([]Header(nil), f.Headers...)}
	emit := func(body []byte, start int64, flag byte) bool {
		of.TID = NewTID()
		pr := ByteRange{Start: start, End: start + int64(len(body)) - 1, Total: rng.Total}
		if f.HasBody {
			of.Set("Byte-Range", pr.String())
		}
		frame := of.AppendHead(out[:0])
		frame = append(frame, body...)
		frame = of.AppendEnd(frame, flag)
		if fr != "no" {
			h.owner.await(of.TID, &pendingTx{
				deadline: r.now().Add(r.cfg.TransactionTimeout), failureReport: fr,
				src: c, srcFrom: f.FromPath, reportFrom: h.back, messageID: msgID, rng: pr,
			})
		}
		if err := c.send(h.out, frame); err != nil {
			h.owner.forgetTx(of.TID)
			return false
		}
		now := r.now()
		for _, x := range h.sessions {
			x.touch(now)
		}
		s.count(c, int64(len(body)))
		if len(h.sessions) == 2 {
			h.sessions[1].bytesOut.Add(int64(len(body)))
		}
		r.metrics.bytes.Add(float64(len(body)))
		return true
	}
	r.metrics.chunks.Inc()
	s.chunks.Add(1)
	if len(h.sessions) == 2 {
		h.sessions[1].chunks.Add(1)
	}
	if !f.HasBody {
		if !emit(nil, rng.Start, f.Flag) {
			c.respond(f, 408, "Next Hop Failed")
			return
		}
		c.respond(f, 200, "OK")
		return
	}
	n, off := 0, int64(0)
	for {
		eof := false
		for n <= maxPiece {
			k, err := c.rd.ReadBody(buf[n:])
			n += k
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				if off > 0 {
					emit(nil, rng.Start+off, FlagAborted)
				}
				return
			}
		}
		piece := maxPiece
		if eof {
			piece = n
		}
		if off+int64(piece) > r.cfg.MaxChunk || overLimit(h.sessions, int64(piece), r.cfg.MaxSessionBytes) {
			if off > 0 {
				emit(nil, rng.Start+off, FlagAborted)
			}
			c.respond(f, 413, "Chunk Too Large Or Session Byte Limit Reached")
			return
		}
		flag := FlagMore
		if eof {
			flag = f.Flag
		}
		if !emit(buf[:piece], rng.Start+off, flag) {
			c.respond(f, 408, "Next Hop Failed")
			return
		}
		off += int64(piece)
		if eof {
			break
		}
		n = copy(buf, buf[piece:n])
	}
	c.respond(f, 200, "OK")
}

// count adds relayed body bytes to the session's counters, by direction.
func (s *session) count(from *conn, n int64) {
	if from == s.client {
		s.bytesIn.Add(n)
	} else {
		s.bytesOut.Add(n)
	}
}

func overLimit(ss []*session, n, limit int64) bool {
	for _, s := range ss {
		if s.bytesIn.Load()+s.bytesOut.Load()+n > limit {
			return true
		}
	}
	return false
}

// other relays a request other than SEND. REPORTs get no response;
// the response to any other request is passed back to its sender.
func (s *session) other(c *conn, f *Frame) {
	body, ok := c.readOtherBody(f)
	if !ok {
		return
	}
	h, code, reason := s.route(c, f)
	if code != 0 {
		c.respond(f, code, reason)
		return
	}
	of := &Frame{TID: NewTID(), Method: f.Method, ToPath: h.toPath, FromPath: h.fromPath,
		Headers: f.Headers, HasBody: f.HasBody, Flag: f.Flag}
	if f.Method != "REPORT" {
		h.owner.await(of.TID, &pendingTx{
			deadline: s.r.now().Add(s.r.cfg.TransactionTimeout),
			src:      c, srcTID: f.TID, srcFrom: f.FromPath, reportFrom: h.back,
		})
	}
	if err := c.send(h.out, of.Marshal(body)); err != nil {
		h.owner.forgetTx(of.TID)
		c.respond(f, 408, "Next Hop Failed")
		return
	}
	now := s.r.now()
	for _, x := range h.sessions {
		x.touch(now)
	}
}

func (s *session) await(tid string, p *pendingTx) {
	s.mu.Lock()
	if s.pending != nil {
		s.pending[tid] = p
	}
	s.mu.Unlock()
}

func (s *session) forgetTx(tid string) *pendingTx {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[tid]
	delete(s.pending, tid)
	return p
}

// response handles a response arriving on c, one of the session's
// connections.
func (s *session) response(c *conn, f *Frame) {
	p := s.forgetTx(f.TID)
	if p == nil {
		return
	}
	s.touch(s.r.now())
	switch {
	case p.srcTID != "":
		resp := &Frame{TID: p.srcTID, Status: f.Status, Comment: f.Comment,
			ToPath: p.srcFrom[:1], FromPath: p.reportFrom[:1], Headers: f.Headers}
		c.send(p.src, resp.Marshal(nil))
	case f.Status != 200:
		s.r.report(p, f.Status, f.Comment)
	}
}

// fail ends a transaction that will get no response: the request's sender
// gets a 408 response, or for a chunk whose sender asked for failure
// reports, a 408 REPORT.
func (r *Relay) fail(p *pendingTx, comment string) {
	if p.srcTID != "" {
		resp := &Frame{TID: p.srcTID, Status: 408, Comment: comment, ToPath: p.srcFrom[:1], FromPath: p.reportFrom[:1]}
		p.src.write(resp.Marshal(nil))
		return
	}
	if p.failureReport == "yes" {
		r.report(p, 408, comment)
	}
}

// report sends a failure REPORT for a chunk back to its sender (RFC 4975
// §7.1.2, RFC 4976 §7.3).
func (r *Relay) report(p *pendingTx, code int, comment string) {
	rep := &Frame{TID: NewTID(), Method: "REPORT", ToPath: p.srcFrom, FromPath: p.reportFrom, Headers: []Header{
		{Name: "Message-ID", Value: p.messageID},
		{Name: "Byte-Range", Value: p.rng.String()},
		{Name: "Status", Value: StatusValue(code, comment)},
	}}
	r.metrics.reports.WithLabelValues(codeLabel(code)).Inc()
	p.src.write(rep.Marshal(nil))
}

// tick ends the session past its expiry (unbound) or idle timeout (bound),
// and fails its transactions past their deadline.
func (s *session) tick(now time.Time) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	var late []*pendingTx
	for tid, p := range s.pending {
		if now.After(p.deadline) {
			delete(s.pending, tid)
			late = append(late, p)
		}
	}
	unbound := s.far == nil && s.peer == nil
	expired := unbound && now.After(s.expires)
	idle := !unbound && now.Sub(time.Unix(0, s.lastActive.Load())) > s.r.cfg.IdleTimeout
	s.mu.Unlock()
	for _, p := range late {
		s.r.fail(p, "Request Timeout")
	}
	switch {
	case expired:
		s.end(endExpired)
	case idle:
		s.end(endIdle)
	}
}

// end ends the session: its connections close, its transactions fail, the
// record is written, and a peer session of this relay ends with it.
func (s *session) end(reason string) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	far, peer, pending := s.far, s.peer, s.pending
	s.pending = nil
	s.mu.Unlock()
	r := s.r
	r.forget(s)
	for _, p := range pending {
		r.fail(p, "Session Ended")
	}
	s.client.close()
	rec := store.MSRPSession{
		Session:   digestOf(s.id),
		Account:   s.account,
		Transport: s.client.kind,
		Client:    s.client.remote,
		StartedAt: s.started.UTC(),
		EndedAt:   r.now().UTC(),
		BytesIn:   s.bytesIn.Load(),
		BytesOut:  s.bytesOut.Load(),
		Chunks:    s.chunks.Load(),
		Ended:     reason,
	}
	if far != nil {
		far.close()
		rec.Peer = far.remote
	}
	if peer != nil {
		// The peer's far leg was this session: without it the peer relays
		// nothing more, as when a far connection closes.
		rec.Peer = "session " + digestOf(peer.id)
	}
	r.metrics.sessionsEnded.WithLabelValues(reason).Inc()
	r.log.Info("MSRP session ended", "session", rec.Session, "account", rec.Account, "reason", reason,
		"bytes_in", rec.BytesIn, "bytes_out", rec.BytesOut, "chunks", rec.Chunks,
		"duration", rec.EndedAt.Sub(rec.StartedAt).Round(time.Millisecond))
	r.rec.add(rec)
	if peer != nil {
		peer.end(reason)
	}
}

func concat(a, b []URI) []URI {
	out := make([]URI, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// isPrefix reports whether p is a non-empty prefix of path.
func isPrefix(p, path []URI) bool {
	return len(p) > 0 && len(p) <= len(path) && EqualPaths(p, path[:len(p)])
}
