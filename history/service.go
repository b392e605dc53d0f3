package history

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/cairn-chat/cairn/internal/behind"
	"github.com/cairn-chat/cairn/store"
)

// HistoryPath is where the history API is mounted: GET
// HistoryPath<user@domain>[/<last_id>].
const HistoryPath = "/webrtcgateway/messages/history/"

// SyncPath is where the live sync is mounted: a WebSocket at
// SyncPath<user@domain>?after=<id>.
const SyncPath = "/webrtcgateway/messages/sync/"

// Defaults and bounds of Config.
const (
	DefaultRetention       = 60 * 24 * time.Hour
	DefaultTokenLifetime   = 30 * 24 * time.Hour
	DefaultMaxTokens       = 16
	DefaultPageLimit       = 5000
	MaxPageLimit           = 5000
	DefaultSubscriberQueue = 1024
)

// Bounds that are not configured.
const (
	// maxAnswerBytes caps the JSON of one history answer; the first row
	// always goes, so an answer may pass it by one row.
	maxAnswerBytes = 32 << 20
	// maxGets is how many history answers are built at once; more wait.
	maxGets = 16
	// maxSubscribersPerAccount and maxSubscribers bound the live sync;
	// past them the upgrade is answered 503.
	maxSubscribersPerAccount = 16
	maxSubscribers           = 20000
	// maxQueueBytes caps the content a live subscriber may have queued,
	// whatever SubscriberQueue allows: rows carry up to 1 MiB each.
	maxQueueBytes = 16 << 20
	// syncPage is how many rows the live sync reads from the store at
	// once, for the backlog and to fill a gap.
	syncPage = 500
	// maxBacklogReads is how many live-sync store reads run at once.
	maxBacklogReads = 32
)

// Config configures the history service.
type Config struct {
	Retention       time.Duration // rows older are neither listed nor kept; default 60 days
	TokenLifetime   time.Duration // how long an API token works; default 30 days
	MaxTokens       int           // tokens kept per account (one per device), the oldest going first; default 16
	BaseURL         string        // e.g. "https://cairn.example.com:8443"; the token reply's url is BaseURL + HistoryPath + "user@domain"
	PageLimit       int           // rows per history answer, at most 5000 (the default)
	SubscriberQueue int           // rows buffered per live subscriber before it is cut; default 1024
}

// withDefaults returns c with every zero or out-of-range field set to its
// default.
func (c Config) withDefaults() Config {
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = DefaultMaxTokens
	}
	if c.PageLimit <= 0 || c.PageLimit > MaxPageLimit {
		c.PageLimit = DefaultPageLimit
	}
	if c.SubscriberQueue <= 0 {
		c.SubscriberQueue = DefaultSubscriberQueue
	}
	for len(c.BaseURL) > 0 && c.BaseURL[len(c.BaseURL)-1] == '/' {
		c.BaseURL = c.BaseURL[:len(c.BaseURL)-1]
	}
	return c
}

// Store is what the service needs: the history and account lookups.
type Store interface {
	store.History
	AccountGet(ctx context.Context, user, domain string) (store.Account, error)
}

// Service is the message history: it stores rows and publishes them to
// live subscribers (Append), issues API tokens (IssueToken), answers the
// history API (ServeHTTP) and serves the live sync (Sync).
type Service struct {
	cfg  Config
	st   Store
	now  func() time.Time
	log  *slog.Logger
	m    metrics
	hub  hub
	gets *semaphore.Weighted
	// reads bounds the live sync's store reads.
	reads *semaphore.Weighted
	sync  syncHandler

	// ctx ends at Close; every live connection works under it.
	ctx    context.Context
	cancel context.CancelFunc
	conns  sync.WaitGroup
	once   sync.Once

	// later writes the rows that may wait (later.go), started by the
	// first of them.
	laterOnce sync.Once
	later     *behind.Writer[store.HistoryRow]

	// Network timing of the live sync; tests shorten them.
	pingEvery, pongWait, writeWait time.Duration
}

// New returns the history service over st. Its metrics are registered on
// reg unless it is nil. Close it to end the live subscribers.
func New(cfg Config, st Store, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *Service {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Service{
		cfg:       cfg.withDefaults(),
		st:        st,
		now:       now,
		log:       log.With("component", "history"),
		m:         newMetrics(reg),
		gets:      semaphore.NewWeighted(maxGets),
		reads:     semaphore.NewWeighted(maxBacklogReads),
		pingEvery: 30 * time.Second,
		pongWait:  60 * time.Second,
		writeWait: 10 * time.Second,
	}
	s.hub.init()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sync = syncHandler{s: s, up: newUpgrader()}
	return s
}

// Since returns the retention cutoff: rows created before it are neither
// listed nor kept.
func (s *Service) Since() time.Time { return s.now().Add(-s.cfg.Retention) }

// Append stores rows in one commit (store.HistoryAppend) and then hands them
// to the live subscribers of their accounts; it returns the stored rows.
// Callers may run it concurrently: a subscriber that sees rows out of id
// order fills the gap from the store. The returned rows share their
// Content and Disposition with the rows on their way to subscribers:
// callers must not modify them.
func (s *Service) Append(ctx context.Context, rows ...store.HistoryRow) ([]store.HistoryRow, error) {
	stored, err := s.st.HistoryAppend(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("history: append: %w", err)
	}
	s.publish(stored)
	return stored, nil
}

// Close cuts every live subscriber, with close code 1001 and a reason, and
// waits for their goroutines; after two seconds it closes the sockets of
// those still writing to clients that do not read. New subscriptions are then refused. It is
// idempotent. The HTTP server does not track hijacked connections, so its
// Shutdown does not do this.
func (s *Service) Close() {
	s.once.Do(func() {
		s.closeLater()
		s.hub.close()
		s.cancel()
	})
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * closeGrace):
		// Writers stuck on clients that do not read: close their sockets.
		s.hub.closeSockets()
		<-done
	}
}

// metrics are the service's counters: metadata only, never content.
type metrics struct {
	requests    *prometheus.CounterVec
	rows        *prometheus.CounterVec
	subscribers prometheus.Gauge
	cut         *prometheus.CounterVec
	tokens      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_history_requests_total",
			Help: "History API requests, by HTTP status code.",
		}, []string{"code"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_history_rows_served_total",
			Help: "History rows sent to clients, by way: api or sync.",
		}, []string{"via"}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cairn_history_sync_subscribers",
			Help: "Live sync WebSocket subscribers connected now.",
		}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_history_sync_cut_total",
			Help: "Live sync subscribers cut by the server, by reason: slow (queue full), timeout (no pong or a stuck write), shutdown.",
		}, []string{"reason"}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_history_tokens_issued_total",
			Help: "History API tokens issued.",
		}),
	}
	for _, r := range []string{"slow", "timeout", "shutdown"} {
		m.cut.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.rows, m.subscribers, m.cut, m.tokens)
	}
	return m
}
