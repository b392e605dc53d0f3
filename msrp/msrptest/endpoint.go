// Package msrptest is an MSRP endpoint (RFC 4975) for tests and benchmarks
// of MSRP relays: cairn's, Kamailio's msrp module, or none, two endpoints
// talking directly. An Endpoint holds one connection over TCP, TLS or
// WebSocket (RFC 7977). It authenticates to a relay with AUTH (RFC 4976),
// sends messages in chunks with a window of chunks awaiting their 200, and
// answers the SENDs it receives, reassembles them by Byte-Range, sends the
// success REPORTs asked for and hands complete messages and REPORTs to the
// test, in memory or streamed to a per-message writer.
package msrptest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/cairn-chat/cairn/msrp"
)

// Defaults of Options.
const (
	DefaultChunkSize = 2048
	DefaultWindow    = 64
	DefaultMaxBody   = 16 << 20
)

// readBufferSize is the size of the Reader's buffer and of the scratch
// buffer bodies are read through.
const readBufferSize = 64 << 10

// ErrClosed is the error of an endpoint after Close.
var ErrClosed = errors.New("msrptest: endpoint closed")

// Options describe an endpoint.
type Options struct {
	// TLS makes Dial use TLS (wss with WebSocket); nil is plain TCP (ws).
	TLS *tls.Config
	// WebSocket makes Dial connect to ws://addr/ or wss://addr/ with
	// subprotocol "msrp" (RFC 7977) and send each frame as one binary
	// message.
	WebSocket bool
	// Self is the endpoint's URI, its From-Path. The zero URI stands for
	// msrps://<random>.invalid:2855/<random>;tcp (;ws with WebSocket).
	Self msrp.URI
	// ChunkSize is the most body bytes Send puts in one chunk;
	// DefaultChunkSize when 0.
	ChunkSize int
	// Window is the most chunks Send has awaiting their response;
	// DefaultWindow when 0.
	Window int
	// Sink, when set, is asked for a writer when the first body bytes of an
	// incoming SEND arrive; the body is written there in order instead of
	// being kept in Incoming.Body. A nil writer keeps it in memory. Sink and
	// the writer run on the endpoint's read goroutine.
	Sink func(messageID string) io.Writer
	// MaxBody caps a body kept in memory; DefaultMaxBody when 0. A message
	// over it is delivered with Err set and no Body.
	MaxBody int
}

// Endpoint is one MSRP connection. Its methods may be called concurrently.
type Endpoint struct {
	o     Options
	self  msrp.URI
	rd    *msrp.Reader
	write func([]byte) error // writes one frame; called with wmu held
	close func() error
	wmu   sync.Mutex

	mu      sync.Mutex
	pending map[string]chan *msrp.Frame // TID -> where its response goes
	inbox   []Incoming
	out     [][]byte // frames queued by the read loop
	closed  bool
	err     error

	notify    chan struct{} // inbox grew
	wake      chan struct{} // out grew
	done      chan struct{} // the read loop ended
	closeOnce sync.Once
	wg        sync.WaitGroup

	msgs    map[string]*partial // read loop only
	scratch []byte              // read loop only
}

// Dial connects to addr (host:port) as o says.
func Dial(ctx context.Context, addr string, o Options) (*Endpoint, error) {
	if o.WebSocket {
		return dialWebSocket(ctx, addr, o)
	}
	var conn net.Conn
	var err error
	if o.TLS != nil {
		conn, err = (&tls.Dialer{Config: o.TLS}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("msrptest: dial %s: %w", addr, err)
	}
	return NewEndpoint(conn, o), nil
}

func dialWebSocket(ctx context.Context, addr string, o Options) (*Endpoint, error) {
	url := "ws://" + addr + "/"
	if o.TLS != nil {
		url = "wss://" + addr + "/"
	}
	d := websocket.Dialer{Subprotocols: []string{"msrp"}, TLSClientConfig: o.TLS}
	c, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("msrptest: dial %s: %w", url, err)
	}
	resp.Body.Close()
	if c.Subprotocol() != "msrp" {
		c.Close()
		return nil, fmt.Errorf("msrptest: dial %s: server chose subprotocol %q, want msrp", url, c.Subprotocol())
	}
	if o.Self == (msrp.URI{}) {
		o.Self = defaultSelf("ws")
	}
	return start(o, &wsStream{c: c},
		func(b []byte) error { return c.WriteMessage(websocket.BinaryMessage, b) }, c.Close), nil
}

// NewEndpoint runs an endpoint over conn, a byte stream already set up (an
// accepted connection, one end of net.Pipe); o.TLS and o.WebSocket are
// ignored.
func NewEndpoint(conn net.Conn, o Options) *Endpoint {
	return start(o, conn, func(b []byte) error {
		_, err := conn.Write(b)
		return err
	}, conn.Close)
}

func start(o Options, r io.Reader, write func([]byte) error, close func() error) *Endpoint {
	if o.Self == (msrp.URI{}) {
		o.Self = defaultSelf("tcp")
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	e := &Endpoint{
		o:       o,
		self:    o.Self,
		rd:      msrp.NewReader(r, readBufferSize, msrp.DefaultLimits),
		write:   write,
		close:   close,
		pending: make(map[string]chan *msrp.Frame),
		notify:  make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		msgs:    make(map[string]*partial),
		scratch: make([]byte, readBufferSize),
	}
	e.wg.Add(2)
	go e.readLoop()
	go e.writeLoop()
	return e
}

func defaultSelf(transport string) msrp.URI {
	return msrp.URI{Secure: true, Host: randomHex(8) + ".invalid", Port: 2855,
		SessionID: randomHex(16), Transport: transport}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Self returns the endpoint's URI.
func (e *Endpoint) Self() msrp.URI { return e.self }

// Close closes the connection and waits for the endpoint's goroutines. It
// may be called more than once.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		e.close()
	})
	e.wg.Wait()
	return nil
}

// Done is closed when the connection has ended.
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Err returns nil while the connection is up, then why it ended: ErrClosed
// after Close, io.EOF when the peer closed it, or the read error.
func (e *Endpoint) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// ended returns the error for an operation cut short by the end of the
// connection.
func (e *Endpoint) ended() error {
	return fmt.Errorf("msrptest: connection ended: %w", e.Err())
}

// writeFrame writes b as one frame. If ctx ends during the write the
// connection is closed, since a partial frame leaves the stream unusable.
func (e *Endpoint) writeFrame(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { e.close() })
	defer stop()
	e.wmu.Lock()
	err := e.write(b)
	e.wmu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("msrptest: write: %w", err)
	}
	return nil
}

// queue hands b to the write loop, so that the read loop never blocks on a
// peer that is itself blocked writing to us.
func (e *Endpoint) queue(b []byte) {
	e.mu.Lock()
	e.out = append(e.out, b)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Endpoint) writeLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.wake:
		case <-e.done:
			return
		}
		e.mu.Lock()
		out := e.out
		e.out = nil
		e.mu.Unlock()
		for _, b := range out {
			e.wmu.Lock()
			err := e.write(b)
			e.wmu.Unlock()
			if err != nil {
				e.close()
				return
			}
		}
	}
}

// expect registers a transaction whose response is awaited.
func (e *Endpoint) expect(tid string) chan *msrp.Frame {
	ch := make(chan *msrp.Frame, 1)
	e.mu.Lock()
	e.pending[tid] = ch
	e.mu.Unlock()
	return ch
}

func (e *Endpoint) forget(tids ...string) {
	e.mu.Lock()
	for _, tid := range tids {
		delete(e.pending, tid)
	}
	e.mu.Unlock()
}

// await returns the response on ch.
func (e *Endpoint) await(ctx context.Context, ch chan *msrp.Frame) (*msrp.Frame, error) {
	select {
	case f := <-ch:
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.done:
		select { // a response read before the end still counts
		case f := <-ch:
			return f, nil
		default:
			return nil, e.ended()
		}
	}
}

// wsStream reads the payloads of successive WebSocket messages as one byte
// stream.
type wsStream struct {
	c *websocket.Conn
	r io.Reader // the message being read
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			_, r, err := s.c.NextReader()
			if _, ok := err.(*websocket.CloseError); ok {
				return 0, io.EOF
			}
			if err != nil {
				return 0, err
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if err == io.EOF {
			s.r, err = nil, nil
			if n == 0 {
				continue
			}
		}
		return n, err
	}
}
