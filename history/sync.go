package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cairn-chat/cairn/store"
)

// Close codes of the live sync (RFC 6455 §7.4; 4000-4999 are private).
const (
	// CloseTooSlow: the subscriber's queue passed SubscriberQueue. The
	// reason is "too slow: reconnect with after=<last id sent>".
	CloseTooSlow = 4008
	// closeGoingAway (1001): the server is shutting down.
	closeGoingAway = websocket.CloseGoingAway
	// closeInternal (1011): the store failed.
	closeInternal = websocket.CloseInternalServerErr
)

// closeGrace is how long Close lets connections end by themselves before
// it closes their sockets, and how long a closing connection waits for
// the client's close frame.
const closeGrace = time.Second

var (
	errBusy   = errors.New("history: too many live subscribers")
	errClosed = errors.New("history: closed")
)

// Sync returns the handler of the live sync, mounted at SyncPath (without
// StripPrefix). See the package documentation for the protocol.
func (s *Service) Sync() http.Handler { return &s.sync }

type syncHandler struct {
	s  *Service
	up *websocket.Upgrader
}

func newUpgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   512, // clients send only control frames
		WriteBufferSize:  16 << 10,
		// Idle subscribers hold no write buffer.
		WriteBufferPool: &sync.Pool{},
		// Browsers connect from any page; a token authenticates, not
		// cookies.
		CheckOrigin: func(*http.Request) bool { return true },
	}
}

func (h *syncHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	rest, ok := strings.CutPrefix(r.URL.Path, SyncPath)
	addr, tail := splitAccount(rest)
	if !ok || addr == "" || tail != "" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "a WebSocket upgrade is required", http.StatusUpgradeRequired)
		return
	}
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		var err error
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			http.Error(w, "after: want a row id", http.StatusBadRequest)
			return
		}
	}
	// The token: Authorization, or for browsers, which cannot set it on
	// a WebSocket, the subprotocol apikey.<token>, which is then echoed.
	token, proto := apikey(r.Header), ""
	if token == "" {
		for _, p := range websocket.Subprotocols(r) {
			if t, ok := strings.CutPrefix(p, subprotocolPrefix); ok {
				token, proto = t, p
				break
			}
		}
	}
	acct, err := s.authorize(r.Context(), addr, token)
	if errors.Is(err, errUnauthorized) {
		unauthorized(w)
		return
	}
	if err != nil {
		s.log.Error("history sync: store failed", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}

	// Subscribe before the backlog is read, so that no row committed in
	// between is missed.
	sub := &subscriber{account: acct.ID, wake: make(chan struct{}, 1)}
	if err := s.hub.add(sub, &s.conns); err != nil {
		w.Header().Set("Retry-After", "30")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer s.conns.Done()
	defer s.hub.remove(sub)
	var hdr http.Header
	if proto != "" {
		hdr = http.Header{"Sec-Websocket-Protocol": {proto}}
	}
	ws, err := h.up.Upgrade(w, r, hdr)
	if err != nil {
		return // Upgrade has answered
	}
	if !sub.attach(ws) { // Close came first
		ws.Close()
		return
	}
	s.m.subscribers.Inc()
	defer s.m.subscribers.Dec()
	c := &syncConn{s: s, ws: ws, sub: sub, addr: acct.Address(), last: after}
	c.run()
}

// syncConn is one live sync connection. The handler's goroutine writes;
// a second one reads, only to answer pings and notice the end.
type syncConn struct {
	s      *Service
	ws     *websocket.Conn
	sub    *subscriber
	addr   string
	last   int64 // the id of the last row sent, or the client's after
	buf    []byte
	pinged time.Time

	readDone chan struct{}
	readErr  error // set before readDone closes
}

// run sends the backlog and then live rows until the connection ends, and
// closes it.
func (c *syncConn) run() {
	s := c.s
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c.readDone = make(chan struct{})
	s.conns.Add(1)
	go c.read(cancel)

	code, reason := c.serve(ctx)
	if code != 0 {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeGrace))
		select { // let the client answer the close frame
		case <-c.readDone:
		case <-time.After(closeGrace):
		}
	}
	c.ws.Close()
	<-c.readDone
}

// read reads until the connection fails or pongWait passes without a
// pong. It cancels the writer when it ends.
func (c *syncConn) read(cancel context.CancelFunc) {
	defer c.s.conns.Done()
	defer close(c.readDone)
	defer cancel()
	wait := c.s.pongWait
	c.ws.SetReadLimit(4 << 10)
	c.ws.SetReadDeadline(time.Now().Add(wait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(wait)) })
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			c.readErr = err
			return
		}
	}
}

// serve sends rows until the connection must end, and returns the close
// code and reason to send, or 0 when the connection is gone already.
func (c *syncConn) serve(ctx context.Context) (int, string) {
	s := c.s
	c.pinged = time.Now()
	if err := c.catchUp(ctx, math.MaxInt64); err != nil {
		return c.failed(ctx, err)
	}
	ping := time.NewTicker(s.pingEvery)
	defer ping.Stop()
	var batch []store.HistoryRow
	for {
		select {
		case <-c.sub.wake:
			rows, cut := c.sub.take(batch)
			if cut {
				s.log.Info("history sync: subscriber too slow, cut", "account", c.addr, "after", c.last)
				return CloseTooSlow, fmt.Sprintf("too slow: reconnect with after=%d", c.last)
			}
			for i := range rows {
				r := &rows[i]
				if r.ID <= c.last {
					continue // sent already, from the store
				}
				if r.ID != c.last+1 {
					// Appends published out of commit order: the rows
					// between are committed, read them.
					s.log.Debug("history sync: rows published out of order, reading the gap",
						"account", c.addr, "last", c.last, "got", r.ID)
					if err := c.catchUp(ctx, r.ID); err != nil {
						return c.failed(ctx, err)
					}
					if r.ID <= c.last {
						continue
					}
				}
				if err := c.send(r); err != nil {
					return c.failed(ctx, err)
				}
			}
			clear(rows) // drop the contents before the slice goes back
			batch = rows[:0]
		case <-ping.C:
			if err := c.ping(); err != nil {
				return c.failed(ctx, err)
			}
			// Rows appended through another node are published there
			// only: look for them in the store.
			if err := c.catchUp(ctx, math.MaxInt64); err != nil {
				return c.failed(ctx, err)
			}
		case <-ctx.Done():
			return c.failed(ctx, ctx.Err())
		}
	}
}

// catchUp sends the rows after c.last from the store, a page at a time,
// until it has sent target or the store has no more.
func (c *syncConn) catchUp(ctx context.Context, target int64) error {
	s := c.s
	for c.last < target {
		if err := s.reads.Acquire(ctx, 1); err != nil {
			return err
		}
		rows, err := s.st.HistoryList(ctx, store.HistoryQuery{
			AccountID: c.sub.account, AfterID: c.last, Since: s.Since(), Limit: syncPage,
		})
		s.reads.Release(1)
		if err != nil {
			return fmt.Errorf("history: sync list: %w", err)
		}
		for i := range rows {
			if err := c.send(&rows[i]); err != nil {
				return err
			}
		}
		if len(rows) < syncPage {
			return nil
		}
	}
	return nil
}

// send writes one row as a text message.
func (c *syncConn) send(r *store.HistoryRow) error {
	c.buf = appendItem(c.buf[:0], r)
	if cap(c.buf) > 64<<10 {
		defer func() { c.buf = nil }() // keep no big buffer while idle
	}
	now := time.Now()
	c.ws.SetWriteDeadline(now.Add(c.s.writeWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, c.buf); err != nil {
		return err
	}
	c.last = r.ID
	c.s.m.rows.WithLabelValues("sync").Inc()
	if now.Sub(c.pinged) >= c.s.pingEvery { // a long backlog still pings
		return c.ping()
	}
	return nil
}

func (c *syncConn) ping() error {
	c.pinged = time.Now()
	return c.ws.WriteControl(websocket.PingMessage, nil, c.pinged.Add(c.s.writeWait))
}

// failed returns the close frame to send after err ended serve.
func (c *syncConn) failed(ctx context.Context, err error) (int, string) {
	s := c.s
	after := strconv.FormatInt(c.last, 10)
	switch {
	case s.ctx.Err() != nil:
		s.m.cut.WithLabelValues("shutdown").Inc()
		return closeGoingAway, "server shutting down: reconnect with after=" + after
	case ctx.Err() != nil: // the reader ended
		<-c.readDone
		if isTimeout(c.readErr) {
			s.m.cut.WithLabelValues("timeout").Inc()
			s.log.Debug("history sync: no pong, cut", "account", c.addr)
		}
		return 0, ""
	case isTimeout(err):
		s.m.cut.WithLabelValues("timeout").Inc()
		s.log.Debug("history sync: write timed out, cut", "account", c.addr)
		return 0, ""
	case errors.Is(err, store.ErrClosed) || !isNetError(err):
		s.log.Error("history sync: store failed", "account", c.addr, "err", err)
		return closeInternal, "store unavailable: reconnect with after=" + after
	}
	return 0, "" // the connection failed
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isNetError reports whether err is the connection's failure rather than
// the store's.
func isNetError(err error) bool {
	var ne net.Error
	var ce *websocket.CloseError
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, websocket.ErrCloseSent)
}

// subscriber is one live connection's queue of rows to send. Append's
// publish pushes, the connection's writer takes.
type subscriber struct {
	account int64
	wake    chan struct{} // capacity 1: rows or a cut are waiting

	mu    sync.Mutex
	queue []store.HistoryRow
	bytes int // content bytes in queue
	cut   bool
	ws    *websocket.Conn // set once upgraded; Close may close it
	gone  bool            // Close has force-closed; attach refuses
}

// push queues rows, or cuts the subscriber when they would take its
// queue past max rows or maxQueueBytes; a cut subscriber's queue is
// dropped and takes nothing more. It reports whether it cut.
func (sub *subscriber) push(rows []store.HistoryRow, max int) bool {
	n := 0
	for i := range rows {
		n += len(rows[i].Content)
	}
	cut := false
	sub.mu.Lock()
	switch {
	case sub.cut:
		sub.mu.Unlock()
		return false
	case len(sub.queue)+len(rows) > max || sub.bytes+n > maxQueueBytes:
		sub.cut, cut = true, true
		sub.queue, sub.bytes = nil, 0
	default:
		sub.queue = append(sub.queue, rows...)
		sub.bytes += n
	}
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
	return cut
}

// take returns the queued rows and whether the subscriber is cut; buf,
// emptied, becomes the new queue.
func (sub *subscriber) take(buf []store.HistoryRow) ([]store.HistoryRow, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	q := sub.queue
	sub.queue, sub.bytes = buf[:0], 0
	return q, sub.cut
}

// attach records the upgraded connection, unless Close has closed the
// connections already.
func (sub *subscriber) attach(ws *websocket.Conn) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.ws = ws
	return !sub.gone
}

// hub holds the live subscribers of each account.
type hub struct {
	mu       sync.RWMutex
	accounts map[int64][]*subscriber
	total    int
	closed   bool
}

func (h *hub) init() { h.accounts = map[int64][]*subscriber{} }

// add subscribes sub and counts it in conns, unless a bound is reached or
// the hub is closed. Counting under the hub's lock orders the count before
// Close's Wait.
func (h *hub) add(sub *subscriber, conns *sync.WaitGroup) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return errClosed
	case h.total >= maxSubscribers, len(h.accounts[sub.account]) >= maxSubscribersPerAccount:
		return errBusy
	}
	h.accounts[sub.account] = append(h.accounts[sub.account], sub)
	h.total++
	conns.Add(1)
	return nil
}

func (h *hub) remove(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.accounts[sub.account]
	for i, x := range subs {
		if x == sub {
			subs[i] = subs[len(subs)-1]
			subs[len(subs)-1] = nil
			subs = subs[:len(subs)-1]
			h.total--
			break
		}
	}
	if len(subs) == 0 {
		delete(h.accounts, sub.account)
	} else {
		h.accounts[sub.account] = subs
	}
}

// close refuses new subscribers.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
}

// closeSockets closes the socket of every subscriber still there, which
// ends writes stuck on a client that does not read.
func (h *hub) closeSockets() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, subs := range h.accounts {
		for _, sub := range subs {
			sub.mu.Lock()
			sub.gone = true
			if sub.ws != nil {
				sub.ws.NetConn().Close()
			}
			sub.mu.Unlock()
		}
	}
}

// publish hands stored rows to the subscribers of their accounts.
func (s *Service) publish(rows []store.HistoryRow) {
	h := &s.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.total == 0 {
		return
	}
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].AccountID == rows[i].AccountID {
			j++
		}
		for _, sub := range h.accounts[rows[i].AccountID] {
			if sub.push(rows[i:j], s.cfg.SubscriberQueue) {
				s.m.cut.WithLabelValues("slow").Inc()
			}
		}
		i = j
	}
}
