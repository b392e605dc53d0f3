package msrptest

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
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/msrp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pipePair connects two endpoints over net.Pipe.
func pipePair(t *testing.T, oa, ob Options) (a, b *Endpoint) {
	x, y := net.Pipe()
	a, b = NewEndpoint(x, oa), NewEndpoint(y, ob)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// certs returns a server config with a self-signed certificate for
// 127.0.0.1 and a client config that trusts it.
func certs(t *testing.T) (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "msrptest"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func receive(t *testing.T, ctx context.Context, e *Endpoint) Incoming {
	t.Helper()
	in, err := e.Received(ctx)
	if err != nil {
		t.Fatalf("Received: %v", err)
	}
	return in
}

func TestChatBothWaysWithSuccessReport(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, b := pipePair(t, Options{}, Options{})
	for _, tc := range []struct {
		name     string
		from, to *Endpoint
		text     string
		size     int64
	}{
		{"a to b", a, b, "hello from a", 12},
		{"b to a, size unknown", b, a, "hello from b", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.from.Send(ctx, []msrp.URI{tc.to.Self()}, Message{ID: "chat-" + tc.text[11:],
				ContentType: "text/plain", Body: strings.NewReader(tc.text), Size: tc.size, SuccessReport: true})
			if err != nil {
				t.Fatal(err)
			}
			in := receive(t, ctx, tc.to)
			if in.Method != "SEND" || string(in.Body) != tc.text || in.ContentType != "text/plain" ||
				in.MessageID != "chat-"+tc.text[11:] || in.Bytes != int64(len(tc.text)) || in.Aborted || in.Err != nil {
				t.Fatalf("received %+v", in)
			}
			if !msrp.EqualPaths(in.FromPath, []msrp.URI{tc.from.Self()}) || !msrp.EqualPaths(in.ToPath, []msrp.URI{tc.to.Self()}) {
				t.Fatalf("paths %v -> %v", in.FromPath, in.ToPath)
			}
			rep := receive(t, ctx, tc.from)
			if rep.Method != "REPORT" || rep.Status != 200 || rep.MessageID != in.MessageID ||
				rep.Frame.Get("Byte-Range") != "1-12/12" || !msrp.EqualPaths(rep.FromPath, []msrp.URI{tc.to.Self()}) {
				t.Fatalf("report %+v, Byte-Range %q", rep, rep.Frame.Get("Byte-Range"))
			}
		})
	}
}

// sinks hashes each incoming message with SHA-256.
type sinks struct {
	mu     sync.Mutex
	hashes map[string]hash.Hash
}

func (s *sinks) sink(id string) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := sha256.New()
	s.hashes[id] = h
	return h
}

func (s *sinks) sum(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hashes[id]; h != nil {
		return h.Sum(nil)
	}
	return nil
}

func TestFileOverTLSIntoSink(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	serverTLS, clientTLS := certs(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hashes := &sinks{hashes: make(map[string]hash.Hash)}
	accepted := make(chan *Endpoint, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- NewEndpoint(c, Options{Sink: hashes.sink})
	}()
	a, err := Dial(ctx, ln.Addr().String(), Options{TLS: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	defer b.Close()

	const size = 5 << 20
	file := make([]byte, size)
	rand.Read(file)
	err = a.Send(ctx, []msrp.URI{b.Self()}, Message{ID: "file1", ContentType: "application/octet-stream",
		Body: bytes.NewReader(file), Size: size})
	if err != nil {
		t.Fatal(err)
	}
	in := receive(t, ctx, b)
	want := sha256.Sum256(file)
	if in.Bytes != size || in.Body != nil || in.Err != nil || in.Aborted || !bytes.Equal(hashes.sum("file1"), want[:]) {
		t.Fatalf("received %d bytes, body %d, err %v, aborted %v, sha256 %x, want %x",
			in.Bytes, len(in.Body), in.Err, in.Aborted, hashes.sum("file1"), want)
	}
}

// chunk returns one SEND chunk from a to b as raw bytes.
func chunk(a, b *Endpoint, tid, id, byteRange string, body []byte, flag byte) []byte {
	f := msrp.Frame{TID: tid, Method: "SEND", ToPath: []msrp.URI{b.Self()}, FromPath: []msrp.URI{a.Self()},
		HasBody: len(body) > 0, Flag: flag, Headers: []msrp.Header{
			{Name: "Message-ID", Value: id}, {Name: "Byte-Range", Value: byteRange},
			{Name: "Content-Type", Value: "application/octet-stream"}}}
	return f.Marshal(body)
}

func TestRechunkedInputAssembles(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, b := pipePair(t, Options{}, Options{})
	data := make([]byte, 10000)
	rand.Read(data)
	copy(data[300:], "\r\n-------tid3aaaa$x") // an end-line look-alike inside chunk tid3aaaa
	for i, raw := range [][]byte{
		chunk(a, b, "tid1aaaa", "m1", "1-1/10000", data[:1], '+'),
		chunk(a, b, "tid2aaaa", "m1", "2-8/10000", data[1:8], '+'),
		chunk(a, b, "tidm3aaa", "m3", "1-3/10", []byte("abc"), '+'),
		chunk(a, b, "tid3aaaa", "m1", "9-*/10000", data[8:4101], '+'),
		chunk(a, b, "tidm2aaa", "m2", "1-5/5", []byte("hello"), '$'),
		// Interrupted (RFC 4975 §7.1.1): the range claims more than it holds.
		chunk(a, b, "tid4aaaa", "m1", "4102-9000/10000", data[4101:5101], '+'),
		// Overlaps the previous chunk by 100 bytes.
		chunk(a, b, "tid5aaaa", "m1", "5002-10000/10000", data[5001:], '$'),
		chunk(a, b, "tidm3bbb", "m3", "4-5/10", []byte("de"), '#'),
		chunk(a, b, "tidm4aaa", "m4", "1-10/30", data[:10], '+'),
		chunk(a, b, "tidm4bbb", "m4", "21-30/30", data[20:30], '$'),
	} {
		if err := a.WriteRaw(raw); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if in := receive(t, ctx, b); in.MessageID != "m2" || string(in.Body) != "hello" {
		t.Fatalf("first delivery %+v, want m2", in)
	}
	if in := receive(t, ctx, b); in.MessageID != "m1" || !bytes.Equal(in.Body, data) || in.Bytes != 10000 || in.Err != nil {
		t.Fatalf("m1: id %s, %d bytes, body equal %v, err %v", in.MessageID, in.Bytes, bytes.Equal(in.Body, data), in.Err)
	}
	if in := receive(t, ctx, b); in.MessageID != "m3" || !in.Aborted || string(in.Body) != "abcde" {
		t.Fatalf("m3 %+v, want aborted abcde", in)
	}
	if in := receive(t, ctx, b); in.MessageID != "m4" || in.Err == nil || in.Body != nil || in.Bytes != 10 {
		t.Fatalf("m4 %+v, want a gap fault after 10 bytes", in)
	}
}

// wholeFrame reports whether b is exactly one MSRP frame.
func wholeFrame(b []byte) bool {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 3 || fields[0] != "MSRP" {
		return false
	}
	end := "-------" + fields[1]
	n := len(b) - len(end) - 3
	return n >= 0 && string(b[n:n+len(end)]) == end && strings.IndexByte("$+#", b[n+len(end)]) >= 0 &&
		bytes.HasSuffix(b, []byte("\r\n"))
}

func TestWebSocket(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	serverTLS, clientTLS := certs(t)
	var handlers sync.WaitGroup
	var notWhole atomic.Int32
	peers := make(chan *Endpoint, 1)
	upgrader := websocket.Upgrader{Subprotocols: []string{"msrp"}}
	// The server pipes WebSocket messages to an endpoint over net.Pipe and
	// that endpoint's writes back as one message each.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		handlers.Add(1)
		defer handlers.Done()
		x, y := net.Pipe()
		peers <- NewEndpoint(y, Options{})
		go func() {
			defer x.Close()
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if !wholeFrame(msg) {
					notWhole.Add(1)
				}
				if _, err := x.Write(msg); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 64<<10)
		for {
			n, err := x.Read(buf)
			if err != nil || c.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
				break
			}
		}
		c.Close()
	}))
	srv.TLS = serverTLS
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); handlers.Wait() })

	a, err := Dial(ctx, srv.Listener.Addr().String(), Options{TLS: clientTLS, WebSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := <-peers
	t.Cleanup(func() { b.Close() })
	if a.Self().Transport != "ws" {
		t.Errorf("Self %s, want transport ws", a.Self())
	}

	body := make([]byte, 100<<10)
	rand.Read(body)
	for _, tc := range []struct {
		name     string
		from, to *Endpoint
	}{{"client to server", a, b}, {"server to client", b, a}} {
		err := tc.from.Send(ctx, []msrp.URI{tc.to.Self()}, Message{ID: tc.name[:6], ContentType: "application/octet-stream",
			Body: bytes.NewReader(body), Size: -1, SuccessReport: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if in := receive(t, ctx, tc.to); !bytes.Equal(in.Body, body) || in.MessageID != tc.name[:6] {
			t.Fatalf("%s: received %s, %d bytes, equal %v", tc.name, in.MessageID, in.Bytes, bytes.Equal(in.Body, body))
		}
		if rep := receive(t, ctx, tc.from); rep.Method != "REPORT" || rep.Status != 200 {
			t.Fatalf("%s: report %+v", tc.name, rep)
		}
	}
	if n := notWhole.Load(); n != 0 {
		t.Errorf("%d WebSocket messages were not exactly one MSRP frame", n)
	}
}

// authCase drives fakeRelay.
type authCase struct {
	name        string
	alg         auth.Algorithm
	qop         bool
	password    string // the client's; the relay knows "secret"
	expires     int
	wantCode    int // final status
	wantExpires int
}

var relayURI = msrp.URI{Secure: true, Host: "relay.example", Port: 2855, Transport: "tcp"}

// fakeRelay answers one AUTH with a challenge and the next as c says.
func fakeRelay(conn net.Conn, c authCase) error {
	defer conn.Close()
	rd := msrp.NewReader(conn, 4096, msrp.DefaultLimits)
	answer := func(req *msrp.Frame, code int, hdrs ...msrp.Header) error {
		r := msrp.Frame{TID: req.TID, Status: code, Comment: "X", ToPath: req.FromPath[:1],
			FromPath: []msrp.URI{relayURI}, Headers: hdrs}
		_, err := conn.Write(r.Marshal(nil))
		return err
	}
	f, err := rd.ReadFrame()
	if err != nil {
		return err
	}
	if f.Method != "AUTH" || !msrp.EqualPaths(f.ToPath, []msrp.URI{relayURI}) || f.Get("Authorization") != "" {
		return fmt.Errorf("first AUTH %+v", f)
	}
	challenge := `Digest realm="relay.example", nonce="n0nce", opaque="0paque", algorithm=` + string(c.alg)
	if c.qop {
		challenge += `, qop="auth,auth-int"`
	}
	if err := answer(f, 401, msrp.Header{Name: "WWW-Authenticate", Value: `Digest realm="x", nonce="y", algorithm=MD5-sess`},
		msrp.Header{Name: "WWW-Authenticate", Value: challenge}); err != nil {
		return err
	}
	if f, err = rd.ReadFrame(); err != nil {
		return err
	}
	if got, want := f.Get("Expires"), fmt.Sprint(c.expires); c.expires != 0 && got != want || c.expires == 0 && got != "" {
		return fmt.Errorf("Expires %q, want %d", got, c.expires)
	}
	authz := f.Get("Authorization")
	var d auth.DigestResponse
	if c.qop {
		d, err = auth.ParseDigest(authz)
	} else {
		p, ok := authParams(strings.TrimPrefix(authz, "Digest "))
		d = auth.DigestResponse{Username: p["username"], Realm: p["realm"], Nonce: p["nonce"], URI: p["uri"],
			Response: p["response"], Opaque: p["opaque"]}
		if !ok || p["qop"] != "" {
			err = fmt.Errorf("Authorization %q", authz)
		}
	}
	if err != nil {
		return err
	}
	if d.Realm != "relay.example" || d.Nonce != "n0nce" || d.Opaque != "0paque" || d.URI != relayURI.String() {
		return fmt.Errorf("Authorization %q", authz)
	}
	ha1, ha2 := c.alg.H(d.Username, d.Realm, "secret"), c.alg.H("AUTH", d.URI)
	want := c.alg.H(ha1, d.Nonce, ha2)
	if c.qop {
		want = c.alg.H(ha1, d.Nonce, d.NC, d.CNonce, d.QOP, ha2)
	}
	switch {
	case d.Response != want:
		return answer(f, 403)
	case c.expires != 0 && c.expires < 60:
		return answer(f, 423, msrp.Header{Name: "Min-Expires", Value: "60"})
	}
	return answer(f, 200, msrp.Header{Name: "Use-Path", Value: "msrps://relay.example:2855/s1d;tcp"},
		msrp.Header{Name: "Expires", Value: fmt.Sprint(max(c.expires, 600))})
}

func TestAuth(t *testing.T) {
	t.Parallel()
	for _, c := range []authCase{
		{name: "md5", alg: auth.MD5, qop: true, password: "secret", wantCode: 200, wantExpires: 600},
		{name: "sha256 with expires", alg: auth.SHA256, qop: true, password: "secret", expires: 900, wantCode: 200, wantExpires: 900},
		{name: "md5 without qop", alg: auth.MD5, password: "secret", wantCode: 200, wantExpires: 600},
		{name: "wrong password", alg: auth.MD5, qop: true, password: "guess", wantCode: 403},
		{name: "expires too short", alg: auth.SHA256, qop: true, password: "secret", expires: 10, wantCode: 423},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			x, y := net.Pipe()
			relayErr := make(chan error, 1)
			go func() { relayErr <- fakeRelay(y, c) }()
			e := NewEndpoint(x, Options{})
			defer e.Close()
			res, err := e.Auth(ctx, relayURI, "alice", c.password, c.expires)
			if err := <-relayErr; err != nil {
				t.Fatalf("relay: %v", err)
			}
			if c.wantCode != 200 {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != c.wantCode {
					t.Fatalf("Auth: %v, want status %d", err, c.wantCode)
				}
				if c.wantCode == 423 && se.Frame.Get("Min-Expires") != "60" {
					t.Fatalf("423 without Min-Expires: %+v", se.Frame)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Expires != c.wantExpires || len(res.UsePath) != 1 || res.UsePath[0].SessionID != "s1d" {
				t.Fatalf("AuthResult %+v", res)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, b := pipePair(t, Options{}, Options{MaxBody: 100})

	wrong := b.Self()
	wrong.SessionID = "elsewhere"
	err := a.Send(ctx, []msrp.URI{wrong}, Message{Body: strings.NewReader("x"), Size: 1})
	if !IsStatus(err, 481) {
		t.Errorf("Send to a wrong path: %v, want 481", err)
	}

	r, err := a.Request(ctx, &msrp.Frame{Method: "FROB", ToPath: []msrp.URI{b.Self()}}, []byte("x"))
	if err != nil || r.Status != 501 {
		t.Errorf("FROB: %+v, %v; want 501", r, err)
	}
	if in := receive(t, ctx, b); in.Method != "FROB" || string(in.Body) != "x" {
		t.Errorf("FROB delivered as %+v", in)
	}

	if err := a.Send(ctx, []msrp.URI{b.Self()}, Message{Body: strings.NewReader("abc"), Size: 4}); err == nil {
		t.Error("Send with a wrong Size succeeded")
	}

	big := bytes.Repeat([]byte("z"), 1000)
	if err := a.Send(ctx, []msrp.URI{b.Self()}, Message{ID: "big", Body: bytes.NewReader(big), Size: 1000}); err != nil {
		t.Fatal(err)
	}
	if in := receive(t, ctx, b); in.MessageID != "big" || in.Err == nil || in.Body != nil {
		t.Errorf("over MaxBody: %+v", in)
	}

	// An empty SEND binds or keeps alive; it is answered, not delivered.
	if err := a.Send(ctx, []msrp.URI{b.Self()}, Message{}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if !errors.Is(a.Err(), ErrClosed) {
		t.Errorf("Err after Close: %v", a.Err())
	}
	if in, err := b.Received(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Received after the peer closed: %+v, %v; want io.EOF", in, err)
	}
	if err := a.Send(ctx, []msrp.URI{b.Self()}, Message{}); err == nil {
		t.Error("Send after Close succeeded")
	}
}

// A malformed request is answered 400 and the stream stays usable.
func TestMalformedRequest(t *testing.T) {
	t.Parallel()
	x, y := net.Pipe()
	b := NewEndpoint(y, Options{})
	defer b.Close()
	defer x.Close()
	self := msrp.URI{Host: "raw.invalid", SessionID: "raw", Transport: "tcp"}
	head := "To-Path: " + b.Self().String() + "\r\nFrom-Path: " + self.String() + "\r\n"
	go x.Write([]byte("MSRP bad00001 SEND\r\n" + head + "No colon here\r\n-------bad00001$\r\n" +
		"MSRP good0001 SEND\r\n" + head + "Message-ID: m\r\nByte-Range: 1-2/2\r\n\r\nhi\r\n-------good0001$\r\n"))
	rd := msrp.NewReader(x, 4096, msrp.DefaultLimits)
	for _, want := range []struct {
		tid    string
		status int
	}{{"bad00001", 400}, {"good0001", 200}} {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.TID != want.tid || f.Status != want.status || !msrp.EqualPaths(f.ToPath, []msrp.URI{self}) {
			t.Fatalf("response %+v, want %s %d", f, want.tid, want.status)
		}
	}
}
