package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	gobwas "github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/delivery"
	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/store"
)

// Config is what the SIP front-end needs to know.
type Config struct {
	// Domains are served besides the domains of existing accounts.
	Domains []string
	// Trusted peers need no authentication and may send from other domains.
	Trusted []netip.Prefix
	// MinExpires and MaxExpires bound a registration's lifetime.
	MinExpires, MaxExpires time.Duration
	// Timeout bounds a MESSAGE transaction to one device.
	Timeout time.Duration
	// Algorithms are the Digest challenges offered, in order.
	Algorithms []auth.Algorithm
	// MaxBody bounds a MESSAGE body (413 past it).
	MaxBody int
	// StoredStatus answers a stored MESSAGE: 200 or 202.
	StoredStatus int
	// MaxContacts bounds the bindings of one account.
	MaxContacts int
	// MaxInFlight bounds the requests handled at once; more get 503.
	MaxInFlight int
	// Node names this node in the registrations it writes.
	Node string
}

// Store is the storage the SIP front-end reads and writes.
type Store interface {
	auth.AccountGetter
	AccountDomainExists(ctx context.Context, domain string) (bool, error)
	store.Registrations
	store.Traces
}

// Router takes messages from the front-end: the delivery core and the
// offline queue, wired by internal/app.
type Router interface {
	Deliver(ctx context.Context, m *delivery.Message) (delivery.Report, error)
	// Drain is called when a device registers, so that it gets what it is owed.
	Drain(accountID int64, instance string)
}

// Listeners are the sockets to serve; a nil one is off.
type Listeners struct {
	UDP net.PacketConn
	TCP net.Listener
	TLS net.Listener // yields TLS connections
	WS  net.Listener
	WSS net.Listener // yields TLS connections
}

// Close closes every listener.
func (ls Listeners) Close() {
	for _, ln := range []net.Listener{ls.TCP, ls.TLS, ls.WS, ls.WSS} {
		if ln != nil {
			ln.Close()
		}
	}
	if ls.UDP != nil {
		ls.UDP.Close()
	}
}

// Addrs returns the bound address of each listener by protocol name.
func (ls Listeners) Addrs() map[string]net.Addr {
	m := make(map[string]net.Addr)
	if ls.UDP != nil {
		m["sip-udp"] = ls.UDP.LocalAddr()
	}
	for name, ln := range map[string]net.Listener{"sip-tcp": ls.TCP, "sip-tls": ls.TLS, "sip-ws": ls.WS, "sip-wss": ls.WSS} {
		if ln != nil {
			m[name] = ln.Addr()
		}
	}
	return m
}

// Server is the SIP front-end.
type Server struct {
	cfg     Config
	st      Store
	digest  *auth.Digest
	log     *slog.Logger
	now     func() time.Time
	domains map[string]bool
	tracer  *tracer
	metrics *metrics
	loc     *location

	ua     *sipgo.UserAgent
	client *sipgo.Client

	router   Router
	history  *history.Service // nil: no message history
	udpLocal sipmsg.Addr      // the UDP listener, which sends to UDP devices
	inflight chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	// requestCtx bounds a request by Timeout; messageCtx by 2 × Timeout,
	// since devices get Timeout each and the store its share after them.
	requestCtx, messageCtx *deadlines

	// running is read-locked by every handler and send under way; Stop
	// write-locks it for good, so that nothing is sent once it holds it.
	running sync.RWMutex

	mu       sync.Mutex
	draining bool
	closers  []func() error
	wg       sync.WaitGroup
}

// New returns a Server. It serves nothing until Serve, and needs a Router
// (SetRouter) before then.
func New(cfg Config, st Store, digest *auth.Digest, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	sipgoLog := log.With("component", "sipgo")
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("cairn"),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(sipgoLog), sipmsg.WithTransportLayerTransports(listenOnly())),
		sipgo.WithUserAgentTransactionLayerOptions(sipmsg.WithTransactionLayerLogger(sipgoLog)))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipgoLog))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipgoLog))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, st: st, digest: digest, log: log, now: now,
		domains: make(map[string]bool),
		metrics: newMetrics(reg),
		ua:      ua, client: client,
		inflight: make(chan struct{}, cfg.MaxInFlight),
		ctx:      ctx, cancel: cancel,
		requestCtx: newDeadlines(ctx, cfg.Timeout), messageCtx: newDeadlines(ctx, 2*cfg.Timeout),
	}
	for _, d := range cfg.Domains {
		s.domains[strings.ToLower(d)] = true
	}
	s.tracer = newTracer(st, now, log, s.metrics)
	s.loc = newLocation(st, now)
	ua.TransportLayer().OnMessage(s.traceIn)
	srv.OnRegister(s.guard(s.onRegister))
	srv.OnMessage(s.guard(s.onMessage))
	srv.OnOptions(s.guard(s.onOptions))
	srv.OnNoRoute(s.guard(s.onOther))
	return s, nil
}

// errNoDial refuses every outgoing stream connection.
var errNoDial = errors.New("sip: cairn reaches stream devices only over the connections they opened")

// listenOnly returns sipgo transports that never open a stream connection.
// A device on TCP, TLS or WebSocket is reached over the connection it
// registered on or not at all (behind NAT, a new one would not get
// through), and a response is never sent by connecting to an address a
// request's Via names: that would let anyone make cairn connect anywhere.
func listenOnly() sipmsg.TransportsConfig {
	tcp := func(net.Addr) net.Dialer {
		return net.Dialer{ControlContext: func(context.Context, string, string, syscall.RawConn) error { return errNoDial }}
	}
	ws := func(net.Addr) gobwas.Dialer {
		return gobwas.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return nil, errNoDial }}
	}
	return sipmsg.TransportsConfig{
		TCP: &sipmsg.TransportTCP{DialerCreate: tcp},
		TLS: &sipmsg.TransportTLS{TransportTCP: &sipmsg.TransportTCP{DialerCreate: tcp}},
		WS:  &sipmsg.TransportWS{DialerCreate: ws},
		WSS: &sipmsg.TransportWSS{TransportWS: &sipmsg.TransportWS{DialerCreate: ws}},
	}
}

// SetRouter sets where accepted MESSAGEs go.
func (s *Server) SetRouter(r Router) { s.router = r }

// Serve serves the listeners until Stop. Each is logged once it accepts.
func (s *Server) Serve(ls Listeners) {
	serve := func(name string, addr net.Addr, closer func() error, run func() error) {
		s.mu.Lock()
		s.closers = append(s.closers, closer)
		s.mu.Unlock()
		s.wg.Go(func() {
			if err := run(); err != nil && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
				s.log.Error("listener stopped", "listener", name, "err", err)
			}
		})
		s.log.Info("listening", "protocol", name, "addr", addr.String())
	}
	tl := s.ua.TransportLayer()
	if ls.UDP != nil {
		a := ls.UDP.LocalAddr().(*net.UDPAddr)
		s.udpLocal = sipmsg.Addr{IP: a.IP, Port: a.Port}
		serve("sip-udp", a, ls.UDP.Close, func() error { return tl.ServeUDP(ls.UDP) })
	}
	for _, l := range []struct {
		name string
		ln   net.Listener
		run  func(net.Listener) error
	}{
		{"sip-tcp", ls.TCP, tl.ServeTCP},
		{"sip-tls", ls.TLS, tl.ServeTLS},
		{"sip-ws", ls.WS, tl.ServeWS},
		{"sip-wss", ls.WSS, tl.ServeWSS},
	} {
		if l.ln != nil {
			serve(l.name, l.ln.Addr(), l.ln.Close, func() error { return l.run(l.ln) })
		}
	}
}

// Addrs are the addresses to listen on; "" is off.
type Addrs struct {
	UDP, TCP, TLS, WS, WSS string
}

// Listen binds the listeners of a; TLS and WSS need tlsConf.
func Listen(a Addrs, tlsConf *tls.Config) (Listeners, error) {
	var ls Listeners
	var opened []io.Closer
	fail := func(err error) (Listeners, error) {
		for _, c := range opened {
			c.Close()
		}
		return Listeners{}, err
	}
	if a.UDP != "" {
		pc, err := net.ListenPacket("udp", a.UDP)
		if err != nil {
			return fail(fmt.Errorf("sip: udp listener: %w", err))
		}
		ls.UDP = pc
		opened = append(opened, pc)
	}
	for _, l := range []struct {
		name, addr string
		secure     bool
		dst        *net.Listener
	}{
		{"tcp", a.TCP, false, &ls.TCP},
		{"tls", a.TLS, true, &ls.TLS},
		{"ws", a.WS, false, &ls.WS},
		{"wss", a.WSS, true, &ls.WSS},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fail(fmt.Errorf("sip: %s listener: %w", l.name, err))
		}
		opened = append(opened, ln)
		if l.secure {
			ln = tls.NewListener(ln, tlsConf)
		}
		*l.dst = ln
	}
	return ls, nil
}

// Stop drains: new requests get 503, the requests and sends under way end
// (each within its own timeout), listeners close, and the traces queued so
// far are written within ctx.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return nil
	}
	s.draining = true
	closers := s.closers
	s.mu.Unlock()

	// New requests get 503 now; the ones under way end within their
	// timeouts, and then nothing is sent any more.
	s.running.Lock()
	s.cancel()
	for _, c := range closers {
		c()
	}
	s.ua.Close()
	s.wg.Wait()
	return s.tracer.stop(ctx)
}

// guard refuses what the parser lets through but RFC 3261 does not
// (another SIP version, a CSeq of another method: RFC 4475 §3.1.2.16–18),
// bounds the requests handled at once, and refuses them while draining.
// Once Stop holds running, requests sipgo still hands over go unanswered.
func (s *Server) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if !s.running.TryRLock() {
			return
		}
		defer s.running.RUnlock()
		if req.SipVersion != "SIP/2.0" {
			s.respond(req, tx, 505, "Version Not Supported")
			return
		}
		if c := req.CSeq(); c == nil || c.MethodName != req.Method {
			s.respond(req, tx, 400, "CSeq Does Not Match Method")
			return
		}
		s.mu.Lock()
		draining := s.draining
		s.mu.Unlock()
		if draining {
			s.respond(req, tx, 503, "Shutting Down")
			return
		}
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
		default:
			s.respond(req, tx, 503, "Overloaded", sipmsg.NewHeader("Retry-After", "5"))
			return
		}
		h(req, tx)
	}
}

// respond answers req with a status, reason and extra headers, and traces it.
func (s *Server) respond(req *sipmsg.Request, tx sipmsg.ServerTransaction, code int, reason string, hdrs ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	s.send(req, tx, res)
}

// send writes res for req and traces it.
func (s *Server) send(req *sipmsg.Request, tx sipmsg.ServerTransaction, res *sipmsg.Response) {
	s.metrics.responses.WithLabelValues(string(req.Method), statusClass(res.StatusCode)).Inc()
	if err := tx.Respond(res); err != nil {
		s.log.Debug("response not sent", "method", req.Method, "code", res.StatusCode, "err", err)
		return
	}
	s.tracer.out(res, req.Transport(), req.Source())
}

// local reports whether domain (lower case) is served here: configured, or
// the domain of some account.
func (s *Server) local(ctx context.Context, domain string) (bool, error) {
	if s.domains[domain] {
		return true, nil
	}
	return s.st.AccountDomainExists(ctx, domain)
}

// lookup returns the account user@domain. When there is none it has
// answered req: 404 in a local domain, else 403 with notLocal as reason.
func (s *Server) lookup(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction, user, domain, notLocal string) (store.Account, bool) {
	acct, err := s.st.AccountGet(ctx, user, domain)
	if err == nil {
		return acct, true
	}
	if errors.Is(err, store.ErrNotFound) {
		var ok bool
		if ok, err = s.local(ctx, domain); err == nil {
			if ok {
				s.respond(req, tx, 404, "Not Found")
			} else {
				s.respond(req, tx, 403, notLocal)
			}
			return store.Account{}, false
		}
	}
	s.storeFailed(req, tx, err)
	return store.Account{}, false
}

// trusted reports whether req comes from a trusted peer.
func (s *Server) trusted(req *sipmsg.Request) bool {
	if len(s.cfg.Trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (s *Server) onOptions(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.respond(req, tx, 200, "OK", sipmsg.NewHeader("Allow", "REGISTER, MESSAGE, OPTIONS"))
}

func (s *Server) onOther(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if req.IsAck() {
		return
	}
	s.respond(req, tx, 405, "Method Not Allowed", sipmsg.NewHeader("Allow", "REGISTER, MESSAGE, OPTIONS"))
}
