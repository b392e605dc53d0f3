package msrp

import (
	"io"
	"net"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// WebSocket returns the handler of MSRP over WebSocket (RFC 7977): each
// frame travels in one WebSocket message, under the "msrp" subprotocol.
// addr is the listener's address, whose port goes into Use-Path URIs.
func (r *Relay) WebSocket(addr net.Addr, secure bool) http.Handler {
	self := r.selfURI(addr, "ws", secure)
	kind := "ws"
	if secure {
		kind = "wss"
	}
	up := websocket.Upgrader{
		HandshakeTimeout: r.cfg.HandshakeTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		Subprotocols:     []string{"msrp"},
		// Browsers connect from any page; AUTH authenticates, not cookies.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !slices.Contains(websocket.Subprotocols(req), "msrp") {
			http.Error(w, "the msrp WebSocket subprotocol is required (RFC 7977)", http.StatusBadRequest)
			return
		}
		ws, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		ws.SetReadLimit(int64(maxPiece) + 64<<10)
		r.start(newConn(r, &wsConn{ws: ws}, kind, self))
	})
}

// wsConn is a WebSocket as the byte stream the frame reader expects. Every
// Write is one message: the relay writes each frame in one call.
type wsConn struct {
	ws  *websocket.Conn
	cur io.Reader
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.cur == nil {
			_, rd, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.cur = rd
		}
		n, err := c.cur.Read(p)
		if err == io.EOF {
			c.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	kind := websocket.BinaryMessage
	if utf8.Valid(p) {
		kind = websocket.TextMessage
	}
	if err := c.ws.WriteMessage(kind, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	c.ws.SetReadDeadline(t)
	return c.ws.SetWriteDeadline(t)
}
