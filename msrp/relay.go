package msrp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/store"
)

// Config configures a Relay. Durations and sizes must be positive.
type Config struct {
	// Host is the relay's host in the Use-Path URIs it hands out; requests
	// are routed to a session only when their To-Path names this host.
	Host string
	// Realm is the AUTH realm; when empty, the host of the AUTH's To-Path
	// URI (the domain a client found the relay for).
	Realm      string
	Algorithms []auth.Algorithm

	// AUTH Expires bounds (RFC 4976 §5): a session that relayed nothing
	// by its expiry ends.
	MinExpires, DefaultExpires, MaxExpires time.Duration
	// HandshakeTimeout ends a connection that has no session by then.
	HandshakeTimeout time.Duration
	// IdleTimeout ends a session that relayed nothing either way for so long.
	IdleTimeout time.Duration
	// TransactionTimeout is how long a forwarded chunk waits for its
	// response before the sender gets a 408 REPORT.
	TransactionTimeout time.Duration
	// WriteTimeout cuts a connection that takes no bytes for so long: a
	// slow reader holds its sender back until then, never longer.
	WriteTimeout time.Duration

	// MaxChunk bounds one SEND chunk's body; MaxSessionBytes the body bytes
	// a session relays in both directions. Beyond either: 413.
	MaxChunk        int64
	MaxSessionBytes int64
	MaxSessions     int
	// MaxAuthAttempts failed AUTHs close a connection; MaxAuthFailures
	// failures from one IP address within a minute refuse it every AUTH
	// until the minute is over.
	MaxAuthAttempts int
	MaxAuthFailures int

	// Dial is the TLS configuration for connections to msrps next hops
	// (another relay, or an endpoint without one); nil forbids them.
	Dial *tls.Config
	// DialTCP allows msrp (unencrypted) next hops.
	DialTCP bool
	// DialPrivate allows next hops on loopback, private and link-local
	// addresses, which are otherwise refused so that the relay cannot be
	// aimed at the operator's own network.
	DialPrivate bool
}

// Recorder takes session records when sessions end.
type Recorder interface {
	MSRPSessionAppend(ctx context.Context, rs []store.MSRPSession) error
}

// Relay is an MSRP relay (RFC 4976). Each session has two legs: the
// connection that authenticated it, and a far leg that is a connection to
// the next hop, a connection from the previous one, or another session of
// this relay when both endpoints use it. Requests are accepted only on a
// session's own legs, from the paths recorded when the legs were bound.
type Relay struct {
	cfg     Config
	digest  *auth.Digest
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	rec     *recorder
	limiter *failureLimiter

	mu        sync.Mutex
	sessions  map[string]*session
	conns     map[*conn]struct{}
	listeners []net.Listener
	ports     []int // of the listeners: a next hop on Host and one of them is this relay
	closed    bool

	wg   sync.WaitGroup
	done chan struct{}
}

// NewRelay returns a relay that authenticates with digest and records ended
// sessions in rec.
func NewRelay(cfg Config, digest *auth.Digest, rec Recorder, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *Relay {
	r := &Relay{
		cfg:      cfg,
		digest:   digest,
		now:      now,
		log:      log,
		metrics:  newMetrics(reg),
		limiter:  newFailureLimiter(cfg.MaxAuthFailures, now),
		sessions: make(map[string]*session),
		conns:    make(map[*conn]struct{}),
		done:     make(chan struct{}),
	}
	r.rec = newRecorder(rec, log, r.metrics)
	r.wg.Add(1)
	go r.janitor()
	return r
}

// Serve accepts connections on ln until Close: TLS connections when tlsConf
// is set, plain TCP otherwise. The port of ln goes into the Use-Path of the
// sessions authenticated through it.
func (r *Relay) Serve(ln net.Listener, tlsConf *tls.Config) {
	self := r.selfURI(ln.Addr(), "tcp", tlsConf != nil)
	kind := "tcp"
	if tlsConf != nil {
		kind = "tls"
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		ln.Close()
		return
	}
	r.listeners = append(r.listeners, ln)
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			c := newConn(r, nc, kind, self)
			if tlsConf != nil {
				c = newTLSConn(r, nc, tlsConf, true, kind, self)
			}
			r.start(c)
		}
	}()
}

// selfURI is the relay's URI for a listener at addr, which it registers as
// one of its own.
func (r *Relay) selfURI(addr net.Addr, transport string, secure bool) URI {
	port := 0
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = ta.Port
	}
	r.mu.Lock()
	r.ports = append(r.ports, port)
	r.mu.Unlock()
	return URI{Secure: secure, Host: r.cfg.Host, Port: port, Transport: transport}
}

// start runs a connection's read loop, unless the relay is closed.
func (r *Relay) start(c *conn) bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.nc.Close()
		return false
	}
	r.conns[c] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	r.metrics.connections.Inc()
	go func() {
		defer r.wg.Done()
		c.serve()
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		r.metrics.connections.Dec()
	}()
	return true
}

// Close stops accepting, ends every session and connection, and writes the
// session records, or gives up at ctx.
func (r *Relay) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for _, ln := range r.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		sessions = append(sessions, s)
	}
	conns := make([]*conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, s := range sessions {
		s.end(endShutdown)
	}
	for _, c := range conns {
		c.close()
	}
	close(r.done)
	waited := make(chan struct{})
	go func() { r.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.rec.stop(ctx)
}

// newSession registers a session for client, or returns nil when the relay
// holds MaxSessions already.
func (r *Relay) newSession(client *conn, account string, path []URI, expires time.Duration) *session {
	var raw [18]byte // 144 bits, RFC 4975 §14.1 asks for at least 80
	rand.Read(raw[:])
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	uri := client.self
	uri.SessionID = id
	now := r.now()
	s := &session{
		r:          r,
		id:         id,
		uri:        uri,
		account:    account,
		client:     client,
		clientPath: path,
		started:    now,
		expires:    now.Add(expires),
		pending:    make(map[string]*pendingTx),
	}
	s.touch(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || len(r.sessions) >= r.cfg.MaxSessions {
		return nil
	}
	r.sessions[id] = s
	r.metrics.sessions.Inc()
	return s
}

// lookup returns the live session u names, or nil.
func (r *Relay) lookup(u URI) *session {
	if u.SessionID == "" {
		return nil
	}
	r.mu.Lock()
	s := r.sessions[u.SessionID]
	r.mu.Unlock()
	if s == nil || !s.uri.Equal(u) {
		return nil
	}
	return s
}

// ours reports whether u names this relay: its host and one of its ports.
func (r *Relay) ours(u URI) bool {
	if !strings.EqualFold(u.Host, r.cfg.Host) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.ports, u.Port)
}

func (r *Relay) forget(s *session) {
	r.mu.Lock()
	if r.sessions[s.id] == s {
		delete(r.sessions, s.id)
		r.metrics.sessions.Dec()
	}
	r.mu.Unlock()
}

// janitor ends sessions past their expiry or idle timeout and fails
// transactions past theirs, once a second.
func (r *Relay) janitor() {
	defer r.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var batch []*session
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		now := r.now()
		r.mu.Lock()
		batch = batch[:0]
		for _, s := range r.sessions {
			batch = append(batch, s)
		}
		r.mu.Unlock()
		for _, s := range batch {
			s.tick(now)
		}
		r.limiter.prune()
	}
}

// digestOf is how logs and records name a session: its id is a capability
// while the session lives, so only a digest of it leaves the relay.
func digestOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// metrics are the relay's Prometheus series: counts, bytes and durations,
// never content.
type metrics struct {
	connections    prometheus.Gauge
	sessions       prometheus.Gauge
	sessionsEnded  *prometheus.CounterVec
	authFailures   prometheus.Counter
	bytes          prometheus.Counter
	chunks         prometheus.Counter
	reports        *prometheus.CounterVec
	recordsDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_msrp_connections", Help: "Open MSRP connections."}),
		sessions:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_msrp_sessions", Help: "Live MSRP relay sessions."}),
		sessionsEnded:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_msrp_sessions_ended_total", Help: "MSRP sessions ended, by reason."}, []string{"reason"}),
		authFailures:   prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_msrp_auth_failures_total", Help: "MSRP AUTH requests refused for wrong credentials or too many failures."}),
		bytes:          prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_msrp_relayed_bytes_total", Help: "SEND body bytes relayed."}),
		chunks:         prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_msrp_relayed_chunks_total", Help: "SEND chunks relayed."}),
		reports:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_msrp_failure_reports_total", Help: "Failure REPORTs the relay generated, by status."}, []string{"status"}),
		recordsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_msrp_records_dropped_total", Help: "MSRP session records not written because the store fell behind or failed."}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.sessions, m.sessionsEnded, m.authFailures, m.bytes, m.chunks, m.reports, m.recordsDropped)
	}
	return m
}

func codeLabel(code int) string { return strconv.Itoa(code) }
