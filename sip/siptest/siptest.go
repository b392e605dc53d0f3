// Package siptest is a SIP device for tests of cairn's SIP front-end, on
// sipgo: it registers with Digest over UDP, TCP, TLS or WebSocket, sends
// MESSAGEs, and records the MESSAGEs it receives, answering each with a
// status the test chooses.
package siptest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
)

// Options describe a device.
type Options struct {
	User, Domain, Password string
	// Transport is udp, tcp, tls, ws or wss.
	Transport string
	// Server is the host:port of cairn's listener for Transport.
	Server string
	// Instance is the +sip.instance to register with; "" sends none.
	Instance string
}

// Device is a SIP user agent of one account.
type Device struct {
	t      testing.TB
	opts   Options
	ua     *sipgo.UserAgent
	client *sipgo.Client
	local  string // host:port the device is reached at (UDP) or claims (others)

	mu       sync.Mutex
	received []*sipmsg.Request
	answer   func(*sipmsg.Request) int
	notify   chan struct{}
}

// New starts a device; it stops when t ends.
func New(t testing.TB, opts Options) *Device {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("siptest"),
		sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(discard())),
		sipgo.WithUserAgentTransactionLayerOptions(sipmsg.WithTransactionLayerLogger(discard())))
	if err != nil {
		t.Fatalf("siptest: %v", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(discard()))
	if err != nil {
		t.Fatalf("siptest: %v", err)
	}
	d := &Device{t: t, opts: opts, ua: ua, notify: make(chan struct{}, 1), answer: func(*sipmsg.Request) int { return 200 }}
	srv.OnMessage(d.onMessage)
	srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})

	var clientOpts []sipgo.ClientOption
	if opts.Transport == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("siptest: %v", err)
		}
		d.local = pc.LocalAddr().String()
		go srv.ServeUDP(pc)
		t.Cleanup(func() { pc.Close() })
		// Requests go out from the listener once it is serving.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if c, _ := ua.TransportLayer().GetConnection("udp", d.local); c != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("siptest: UDP listener %s not serving", d.local)
			}
		}
		clientOpts = append(clientOpts, sipgo.WithClientConnectionAddr(d.local))
	} else {
		// Stream devices are reached over the connection they register on;
		// the Contact names a host that does not resolve, as JsSIP's do.
		d.local = "device.invalid:5060"
	}
	d.client, err = sipgo.NewClient(ua, append(clientOpts, sipgo.WithClientLogger(discard()))...)
	if err != nil {
		t.Fatalf("siptest: %v", err)
	}
	t.Cleanup(func() { ua.Close() })
	return d
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Answer sets the status the device answers MESSAGEs with.
func (d *Device) Answer(f func(*sipmsg.Request) int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answer = f
}

func (d *Device) onMessage(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	d.mu.Lock()
	code := d.answer(req)
	if code >= 200 && code < 300 {
		d.received = append(d.received, req)
	}
	d.mu.Unlock()
	tx.Respond(sipmsg.NewResponseFromRequest(req, code, strconv.Itoa(code), nil))
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// Received returns the MESSAGEs the device took (answered 2xx), in order.
func (d *Device) Received() []*sipmsg.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*sipmsg.Request(nil), d.received...)
}

// WaitReceived waits until the device took at least n MESSAGEs, or fails t.
func (d *Device) WaitReceived(n int, timeout time.Duration) []*sipmsg.Request {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		if got := d.Received(); len(got) >= n {
			return got
		}
		select {
		case <-d.notify:
		case <-deadline:
			d.t.Fatalf("siptest: %s took %d MESSAGEs within %v, want %d", d.AOR(), len(d.Received()), timeout, n)
			return nil
		}
	}
}

// AOR returns sip:user@domain.
func (d *Device) AOR() string { return "sip:" + d.opts.User + "@" + d.opts.Domain }

func (d *Device) request(method sipmsg.RequestMethod, target string) *sipmsg.Request {
	var uri sipmsg.Uri
	if err := sipmsg.ParseUri(target, &uri); err != nil {
		d.t.Fatalf("siptest: %v", err)
	}
	req := sipmsg.NewRequest(method, uri)
	req.SetTransport(transportName(d.opts.Transport))
	req.SetDestination(d.opts.Server)
	var from sipmsg.FromHeader
	sipmsg.ParseUri(d.AOR(), &from.Address)
	from.Params.Add("tag", sipmsg.GenerateTagN(12))
	req.AppendHeader(&from)
	return req
}

func transportName(t string) string {
	switch t {
	case "udp":
		return "UDP"
	case "tcp":
		return "TCP"
	case "tls":
		return "TLS"
	case "ws":
		return "WS"
	case "wss":
		return "WSS"
	}
	return t
}

// Register sends a REGISTER with the given lifetime, answering a challenge
// with the device's password, and returns the final response.
func (d *Device) Register(ctx context.Context, expires time.Duration) (*sipmsg.Response, error) {
	req := d.request(sipmsg.REGISTER, "sip:"+d.opts.Domain)
	var to sipmsg.ToHeader
	sipmsg.ParseUri(d.AOR(), &to.Address)
	req.AppendHeader(&to)
	contact := &sipmsg.ContactHeader{}
	sipmsg.ParseUri(fmt.Sprintf("sip:%s@%s;transport=%s", d.opts.User, d.local, d.opts.Transport), &contact.Address)
	if d.opts.Instance != "" {
		contact.Params.Add("+sip.instance", `"<`+d.opts.Instance+`>"`)
	}
	req.AppendHeader(contact)
	req.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	return d.do(ctx, req)
}

// Send sends a MESSAGE to target (a SIP URI) with the given type and body
// and extra headers, answering a challenge with the device's password.
func (d *Device) Send(ctx context.Context, target, contentType string, body []byte, hdrs ...sipmsg.Header) (*sipmsg.Response, error) {
	req := d.request(sipmsg.MESSAGE, target)
	var to sipmsg.ToHeader
	sipmsg.ParseUri(target, &to.Address)
	req.AppendHeader(&to)
	ctype := sipmsg.ContentTypeHeader(contentType)
	req.AppendHeader(&ctype)
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	req.SetBody(body)
	return d.do(ctx, req)
}

func (d *Device) do(ctx context.Context, req *sipmsg.Request) (*sipmsg.Response, error) {
	res, err := d.client.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		return d.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: d.opts.User, Password: d.opts.Password})
	}
	return res, nil
}
