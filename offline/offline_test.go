package offline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/delivery"
	"github.com/cairn-chat/cairn/offline"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/litestore/litetest"
	"github.com/cairn-chat/cairn/store/pgstore/pgtest"
	"github.com/cairn-chat/cairn/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// config is the policy of most tests: short retries, so that they run in
// well under a second.
var config = offline.Config{
	Retention: 24 * time.Hour,
	MaxSize:   1024,
	RetryMin:  20 * time.Millisecond,
	RetryMax:  80 * time.Millisecond,
	MaxDrains: 4,
}

// epoch is the fake clock's time; it stands still, so that expiries and
// retry times are exact.
var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// locator registers the same instances for every account; each Route is
// "route-" and the instance.
type locator []string

func (l locator) Devices(context.Context, int64) ([]delivery.Device, error) {
	ds := make([]delivery.Device, len(l))
	for i, in := range l {
		ds[i] = delivery.Device{Instance: in, Route: "route-" + in}
	}
	return ds, nil
}

// answerFunc answers the n-th send (from 0) of the transport; it runs in the
// wait function, on the drain's goroutine, and may block.
type answerFunc func(ctx context.Context, n int, m *delivery.Message) delivery.Outcome

func deliverAll(context.Context, int, *delivery.Message) delivery.Outcome {
	return delivery.Outcome{State: delivery.Delivered, Code: 200}
}

var failed = delivery.Outcome{State: delivery.Failed, Code: 408}

// sent is one Send the transport saw.
type sent struct {
	instance string
	id       int64
	body     string
	at       time.Time
}

// transport records every send, and every send to a device whose previous
// wait has not returned yet (two sends at once to one device). Each send
// puts a token on news, or none when one waits there already.
type transport struct {
	answer answerFunc
	news   chan struct{}

	mu       sync.Mutex
	sends    []sent
	waiting  map[string]bool // the device's last wait has not returned
	overlaps []string
}

func newTransport(answer answerFunc) *transport {
	if answer == nil {
		answer = deliverAll
	}
	return &transport{answer: answer, news: make(chan struct{}, 1), waiting: map[string]bool{}}
}

func (tr *transport) Send(ctx context.Context, d delivery.Device, m *delivery.Message) func() delivery.Outcome {
	if d.Route != "route-"+d.Instance {
		panic(fmt.Sprintf("send to %+v: not the locator's device", d))
	}
	tr.mu.Lock()
	n := len(tr.sends)
	if tr.waiting[d.Instance] {
		tr.overlaps = append(tr.overlaps, fmt.Sprintf("message %d to %s", m.ID, d.Instance))
	}
	tr.waiting[d.Instance] = true
	tr.sends = append(tr.sends, sent{d.Instance, m.ID, string(m.Body), time.Now()})
	tr.mu.Unlock()
	select {
	case tr.news <- struct{}{}:
	default:
	}
	return func() delivery.Outcome {
		o := tr.answer(ctx, n, m)
		tr.mu.Lock()
		tr.waiting[d.Instance] = false
		tr.mu.Unlock()
		return o
	}
}

// sent returns a copy of the sends so far.
func (tr *transport) sent() []sent {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.sends)
}

// ids returns the ids of the messages sent to instance, in order.
func (tr *transport) ids(instance string) []int64 {
	var ids []int64
	for _, s := range tr.sent() {
		if s.instance == instance {
			ids = append(ids, s.id)
		}
	}
	return ids
}

func (tr *transport) count() int { return len(tr.sent()) }

// checkOneAtATime fails t when a device got a send while it had not
// answered the previous one.
func (tr *transport) checkOneAtATime(t *testing.T) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.overlaps) > 0 {
		t.Errorf("sent before the previous send was answered: %q", tr.overlaps)
	}
}

// options set up an env; the zero value is config, devices d1 and d2 that
// take every message, and the SQLite store as it is, with nothing logged.
type options struct {
	cfg     offline.Config
	devices []string
	answer  answerFunc
	open    func(t *testing.T, clock store.Clock) store.Store
	wrap    func(store.Offline) store.Offline
	log     slog.Handler
}

// engines are the stores that the tests of the probe run on.
var engines = []struct {
	name string
	open func(t *testing.T, clock store.Clock) store.Store
}{
	{"sqlite", func(t *testing.T, clock store.Clock) store.Store { return litetest.Open(t, clock) }},
	{"postgres", func(t *testing.T, clock store.Clock) store.Store { return pgtest.Open(t, clock) }},
}

// onEngines runs test on each engine, in parallel, with o.open set.
func onEngines(t *testing.T, test func(t *testing.T, o options)) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			test(t, options{open: eng.open})
		})
	}
}

// env is a Queue on a real store, for account alice.
type env struct {
	st    store.Store
	clock *storetest.Clock
	acct  int64
	tr    *transport
	q     *offline.Queue
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	if o.cfg == (offline.Config{}) {
		o.cfg = config
	}
	if o.devices == nil {
		o.devices = []string{"d1", "d2"}
	}
	if o.open == nil {
		o.open = engines[0].open
	}
	if o.log == nil {
		o.log = slog.DiscardHandler
	}
	clock := storetest.NewClock(epoch)
	st := o.open(t, clock.Now)
	alice := store.Account{User: "alice", Domain: "example.com", Credentials: []byte("sealed")}
	if err := st.AccountCreate(t.Context(), &alice); err != nil {
		t.Fatalf("AccountCreate: %v", err)
	}
	var qs store.Offline = st
	if o.wrap != nil {
		qs = o.wrap(st)
	}
	tr := newTransport(o.answer)
	q := offline.New(qs, locator(o.devices), tr, o.cfg, clock.Now, slog.New(o.log))
	t.Cleanup(q.Stop) // before the store closes: cleanups run last first
	return &env{st: st, clock: clock, acct: alice.ID, tr: tr, q: q}
}

// message returns message i from bob to alice, with key and body made of i.
func (e *env) message(i int) *delivery.Message {
	return &delivery.Message{
		AccountID:   e.acct,
		Sender:      "bob@example.com",
		From:        "<sip:bob@example.com>",
		To:          "<sip:alice@example.com>",
		Date:        "Sat, 01 Mar 2025 12:00:00 GMT",
		ContentType: "text/plain",
		Body:        fmt.Appendf(nil, "message %d", i),
		Key:         fmt.Sprintf("key %d", i),
	}
}

// storeN stores messages 0 to n-1 for every device, one after the other,
// and returns their ids.
func (e *env) storeN(t *testing.T, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range n {
		m := e.message(i)
		if err := e.q.Store(t.Context(), m, nil, nil); err != nil {
			t.Fatalf("Store(message %d): %v", i, err)
		}
		ids[i] = m.ID
	}
	return ids
}

// owed returns what instance is owed now, as the store has it.
func (e *env) owed(t *testing.T, instance string) []store.OfflinePending {
	t.Helper()
	owed, err := e.st.OfflinePending(t.Context(), store.OfflinePendingQuery{
		AccountID: e.acct, Instance: instance, Now: e.clock.Now(), Limit: 10_000,
	})
	if err != nil {
		t.Fatalf("OfflinePending(%s): %v", instance, err)
	}
	return owed
}

// waitIdle waits until no drain runs and none is due.
func (e *env) waitIdle(t *testing.T) {
	t.Helper()
	waitFor(t, "the queue to be idle", e.q.Idle)
}

// waitFor polls cond until it holds, and fails t after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// within waits for ch to be closed, and fails t after a deadline.
func within(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestStoreSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		tooLong bool
	}{
		{"empty", 0, false},
		{"at the limit", config.MaxSize, false},
		{"one byte over", config.MaxSize + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, options{})
			m := e.message(0)
			m.Body = make([]byte, tt.size)
			err := e.q.Store(t.Context(), m, nil, nil)
			owed := e.owed(t, "d1")
			if tt.tooLong {
				if !errors.Is(err, offline.ErrTooLarge) || m.ID != 0 || len(owed) != 0 {
					t.Errorf("Store = %v, id %d, %d stored; want ErrTooLarge and nothing stored", err, m.ID, len(owed))
				}
				return
			}
			if err != nil || len(owed) != 1 || owed[0].Message.ID != m.ID || len(owed[0].Message.Body) != tt.size {
				t.Errorf("Store = %v, %d stored; want message %d kept", err, len(owed), m.ID)
			}
		})
	}
}

func TestStoreExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		retention time.Duration
		expires   time.Duration // the sender's Expires
		want      time.Duration // the lifetime kept
	}{
		{"retention", time.Hour, 0, time.Hour},
		{"a shorter Expires wins", time.Hour, 10 * time.Minute, 10 * time.Minute},
		{"a longer Expires does not", time.Hour, 2 * time.Hour, time.Hour},
		{"Expires equal to retention", time.Hour, time.Hour, time.Hour},
		{"one second", 30 * 24 * time.Hour, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := config
			cfg.Retention = tt.retention
			e := newEnv(t, options{cfg: cfg})
			m := e.message(0)
			m.Expires = tt.expires
			if err := e.q.Store(t.Context(), m, nil, nil); err != nil {
				t.Fatalf("Store: %v", err)
			}
			owed := e.owed(t, "d1")
			if len(owed) != 1 {
				t.Fatalf("%d messages stored, want 1", len(owed))
			}
			if got := owed[0].Message.ExpiresAt; !got.Equal(epoch.Add(tt.want)) {
				t.Errorf("expires at %v, want %v", got, epoch.Add(tt.want))
			}
			// At its expiry the message is owed no more.
			e.clock.Advance(tt.want)
			if owed := e.owed(t, "d1"); len(owed) != 0 {
				t.Errorf("%d messages owed at expiry, want none", len(owed))
			}
		})
	}
}

func TestStoreQuota(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxCount int
		maxBytes int64
	}{
		{"count", 2, 0},
		{"bytes", 0, 2 * int64(len("message 0"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := config
			cfg.MaxCount, cfg.MaxBytes = tt.maxCount, tt.maxBytes
			e := newEnv(t, options{cfg: cfg})
			e.storeN(t, 2)
			m := e.message(2)
			err := e.q.Store(t.Context(), m, nil, []string{"d1"})
			if !errors.Is(err, store.ErrQuota) || errors.Is(err, offline.ErrTooLarge) {
				t.Errorf("Store over quota = %v, want an error wrapping store.ErrQuota", err)
			}
			if owed := e.owed(t, "d1"); len(owed) != 2 {
				t.Errorf("%d messages stored, want 2", len(owed))
			}
			if !e.q.Idle() {
				t.Error("a retry was scheduled for a message that was not stored")
			}
		})
	}
}

func TestStoreDuplicate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	first := e.message(0)
	if err := e.q.Store(t.Context(), first, nil, nil); err != nil {
		t.Fatalf("Store: %v", err)
	}
	resend := e.message(0) // same sender and key
	resend.Body = []byte("the resend")
	if err := e.q.Store(t.Context(), resend, []string{"d1"}, []string{"d2"}); err != nil {
		t.Fatalf("Store(resend): %v", err)
	}
	if resend.ID != first.ID {
		t.Errorf("resend got id %d, want the first's %d", resend.ID, first.ID)
	}
	// Nothing of the resend was written: no row, no delivery to d1.
	owed := e.owed(t, "d1")
	if len(owed) != 1 || owed[0].Message.ID != first.ID || string(owed[0].Message.Body) != "message 0" {
		t.Errorf("owed to d1: %d messages, want only message %d as first stored", len(owed), first.ID)
	}
	if !e.q.Idle() {
		t.Error("the resend scheduled a retry; the first copy was stored without one")
	}
}

func TestStoreRetriesFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{devices: []string{"d1", "d2", "d3"}})
	m := e.message(0)
	start := time.Now()
	if err := e.q.Store(t.Context(), m, []string{"d1"}, []string{"d2"}); err != nil {
		t.Fatalf("Store: %v", err)
	}
	e.waitIdle(t)
	got := e.tr.sent()
	if len(got) != 1 || got[0].instance != "d2" || got[0].id != m.ID {
		t.Fatalf("sent %+v, want message %d to d2 only", got, m.ID)
	}
	if d := got[0].at.Sub(start); d < config.RetryMin {
		t.Errorf("retried after %v, want at least RetryMin %v", d, config.RetryMin)
	}
	// d1 took it, d2 has it now, d3 (registered, not failed) gets it at its
	// next REGISTER.
	for in, want := range map[string]int{"d1": 0, "d2": 0, "d3": 1} {
		if owed := e.owed(t, in); len(owed) != want {
			t.Errorf("owed to %s: %d messages, want %d", in, len(owed), want)
		}
	}
}

// gatedStore holds the first read that finds nothing owed (the last read of
// a drain) until release is closed or the drain is cancelled, after closing
// reached.
type gatedStore struct {
	store.Offline
	once             sync.Once
	reached, release chan struct{}
}

func (g *gatedStore) OfflinePending(ctx context.Context, q store.OfflinePendingQuery) ([]store.OfflinePending, error) {
	owed, err := g.Offline.OfflinePending(ctx, q)
	if err == nil && len(owed) == 0 {
		g.once.Do(func() {
			close(g.reached)
			select {
			case <-g.release:
			case <-ctx.Done():
			}
		})
	}
	return owed, err
}

// TestStoreRetryDuringDrain stores a message for a failed device while a
// drain of that device has read its last batch: the retry must still come.
func TestStoreRetryDuringDrain(t *testing.T) {
	t.Parallel()
	g := &gatedStore{reached: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, options{wrap: func(st store.Offline) store.Offline { g.Offline = st; return g }})
	// The account holds a message, so that the probe starts a drain, but
	// d1 took it: d1 is owed nothing.
	if err := e.q.Store(t.Context(), e.message(0), []string{"d1"}, nil); err != nil {
		t.Fatalf("Store: %v", err)
	}
	e.q.Drain(e.acct, "d1") // as on a REGISTER
	within(t, "the drain's last read", g.reached)
	m := e.message(1)
	if err := e.q.Store(t.Context(), m, nil, []string{"d1"}); err != nil {
		t.Fatalf("Store: %v", err)
	}
	close(g.release)
	waitFor(t, "the retry to d1", func() bool { return slices.Equal(e.tr.ids("d1"), []int64{m.ID}) })
}

func TestDrainOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	ids := e.storeN(t, 5)
	e.q.Drain(e.acct, "d1")
	e.waitIdle(t)
	if got := e.tr.ids("d1"); !slices.Equal(got, ids) {
		t.Errorf("sent %v to d1, want %v", got, ids)
	}
	for _, s := range e.tr.sent() {
		if want := fmt.Sprintf("message %d", slices.Index(ids, s.id)); s.body != want {
			t.Errorf("message %d sent with body %q, want %q", s.id, s.body, want)
		}
	}
	e.tr.checkOneAtATime(t)
	if owed := e.owed(t, "d1"); len(owed) != 0 {
		t.Errorf("owed to d1 after its drain: %d messages, want none", len(owed))
	}
	if owed := e.owed(t, "d2"); len(owed) != 5 {
		t.Errorf("owed to d2, not drained: %d messages, want 5", len(owed))
	}

	// Done is done: a second drain sends nothing.
	e.q.Drain(e.acct, "d1")
	e.waitIdle(t)
	if n := e.tr.count(); n != 5 {
		t.Errorf("%d sends after a second drain, want still 5", n)
	}
}

func TestDrainRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{answer: func(_ context.Context, n int, _ *delivery.Message) delivery.Outcome {
		if n == 1 {
			return delivery.Outcome{State: delivery.Rejected, Code: 415}
		}
		return delivery.Outcome{State: delivery.Delivered, Code: 200}
	}})
	ids := e.storeN(t, 3)
	e.q.Drain(e.acct, "d1")
	e.waitIdle(t)
	if got := e.tr.ids("d1"); !slices.Equal(got, ids) {
		t.Errorf("sent %v, want %v: a refusal does not stop the queue", got, ids)
	}
	if owed := e.owed(t, "d1"); len(owed) != 0 {
		t.Errorf("owed to d1: %d messages, want none (done or rejected)", len(owed))
	}
	e.q.Drain(e.acct, "d1")
	e.waitIdle(t)
	if n := e.tr.count(); n != 3 {
		t.Errorf("%d sends after a second drain, want still 3", n)
	}
}

func TestDrainFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{answer: func(_ context.Context, n int, _ *delivery.Message) delivery.Outcome {
		if n == 1 {
			return failed
		}
		return delivery.Outcome{State: delivery.Delivered, Code: 200}
	}})
	ids := e.storeN(t, 3)
	e.q.Drain(e.acct, "d1")
	e.waitIdle(t) // the drain, the backoff, the retry
	got := e.tr.sent()
	// The failure stops the drain: message 2 is not sent before message 1
	// is, on the retry.
	want := []int64{ids[0], ids[1], ids[1], ids[2]}
	if gotIDs := e.tr.ids("d1"); !slices.Equal(gotIDs, want) {
		t.Fatalf("sent %v, want %v", gotIDs, want)
	}
	if d := got[2].at.Sub(got[1].at); d < config.RetryMin {
		t.Errorf("retried after %v, want at least RetryMin %v", d, config.RetryMin)
	}
	e.tr.checkOneAtATime(t)
	if owed := e.owed(t, "d1"); len(owed) != 0 {
		t.Errorf("owed to d1: %d messages, want none", len(owed))
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	tests := []struct {
		min, max time.Duration
		attempts int
		want     time.Duration
	}{
		{20 * ms, 80 * ms, 0, 20 * ms},
		{20 * ms, 80 * ms, 1, 20 * ms},
		{20 * ms, 80 * ms, 2, 40 * ms},
		{20 * ms, 80 * ms, 3, 80 * ms},
		{20 * ms, 80 * ms, 4, 80 * ms},
		{20 * ms, 80 * ms, 1000, 80 * ms}, // no overflow
		{30 * ms, 100 * ms, 3, 100 * ms},  // capped between two doublings
		{30 * ms, 100 * ms, 2, 60 * ms},
		{time.Second, time.Second, 5, time.Second},
		{30 * time.Second, time.Hour, 7, 32 * time.Minute},
		{30 * time.Second, time.Hour, 8, time.Hour},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v-%v/%d", tt.min, tt.max, tt.attempts), func(t *testing.T) {
			t.Parallel()
			q := offline.New(nil, nil, nil, offline.Config{RetryMin: tt.min, RetryMax: tt.max}, time.Now, slog.New(slog.DiscardHandler))
			defer q.Stop()
			if got := q.Backoff(tt.attempts); got != tt.want {
				t.Errorf("backoff(%d) = %v, want %v", tt.attempts, got, tt.want)
			}
		})
	}
}

// TestDrainBackoff fails a device four times: each retry comes after the
// backoff, which doubles from RetryMin to RetryMax, and the store counts the
// attempts and keeps the retry time.
func TestDrainBackoff(t *testing.T) {
	t.Parallel()
	type row struct {
		attempts int
		next     time.Time
	}
	var (
		e    *env
		mu   sync.Mutex
		rows []row // the message's retry state at each send
	)
	e = newEnv(t, options{answer: func(ctx context.Context, n int, m *delivery.Message) delivery.Outcome {
		owed, err := e.st.OfflinePending(ctx, store.OfflinePendingQuery{
			AccountID: m.AccountID, Instance: "d1", Now: epoch, Limit: 1,
		})
		mu.Lock()
		if err == nil && len(owed) == 1 {
			rows = append(rows, row{owed[0].Attempts, owed[0].NextAt})
		}
		mu.Unlock()
		if n < 4 {
			return failed
		}
		return delivery.Outcome{State: delivery.Delivered, Code: 200}
	}})
	e.storeN(t, 1)
	e.q.Drain(e.acct, "d1")
	e.waitIdle(t)

	sends := e.tr.sent()
	if len(sends) != 5 {
		t.Fatalf("%d sends, want 5 (four failures, then delivered)", len(sends))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rows) != 5 {
		t.Fatalf("read the retry state at %d sends, want 5", len(rows))
	}
	backoffs := []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 80 * time.Millisecond}
	for n, want := range backoffs {
		var wantNext time.Time
		if n > 0 {
			wantNext = epoch.Add(want)
			if gap := sends[n].at.Sub(sends[n-1].at); gap < want {
				t.Errorf("send %d came %v after the failure, want at least %v", n, gap, want)
			}
		}
		if got := rows[n]; got.attempts != n || !got.next.Equal(wantNext) {
			t.Errorf("at send %d: %d attempts, next at %v; want %d, %v", n, got.attempts, got.next, n, wantNext)
		}
	}
}

func TestDrainUnregistered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{devices: []string{"d1"}})
	e.storeN(t, 2)
	e.q.Drain(e.acct, "d2")
	e.waitIdle(t)
	m := e.message(2)
	if err := e.q.Store(t.Context(), m, nil, []string{"d2"}); err != nil {
		t.Fatalf("Store: %v", err)
	}
	e.waitIdle(t) // the retry after RetryMin
	if got := e.tr.sent(); len(got) != 0 {
		t.Errorf("sent %+v to a device that is not registered", got)
	}
	if owed := e.owed(t, "d2"); len(owed) != 3 {
		t.Errorf("owed to d2: %d messages, want all 3 kept for its REGISTER", len(owed))
	}
}

// TestDrainBatches drains more than one batch: every message arrives,
// once and in order.
func TestDrainBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	n := offline.Batch + 44
	// Concurrent stores share commits; the ids give the order.
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := e.message(i)
			if err := e.q.Store(t.Context(), m, nil, nil); err != nil {
				t.Errorf("Store(message %d): %v", i, err)
			}
			ids[i] = m.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	bodies := map[int64]string{}
	for i, id := range ids {
		bodies[id] = fmt.Sprintf("message %d", i)
	}
	slices.Sort(ids)

	e.q.Drain(e.acct, "d1")
	e.waitIdle(t)
	got := e.tr.sent()
	if gotIDs := e.tr.ids("d1"); !slices.Equal(gotIDs, ids) {
		t.Fatalf("sent %d messages, want %d in id order", len(gotIDs), len(ids))
	}
	for _, s := range got {
		if s.body != bodies[s.id] {
			t.Errorf("message %d sent with body %q, want %q", s.id, s.body, bodies[s.id])
		}
	}
	if owed := e.owed(t, "d1"); len(owed) != 0 {
		t.Errorf("owed to d1: %d messages, want none", len(owed))
	}
}

// TestStopDrains stops a drain waiting for an answer and one waiting for a
// drain slot; no goroutine outlives Stop (TestMain checks).
func TestStopDrains(t *testing.T) {
	t.Parallel()
	cfg := config
	cfg.MaxDrains = 1
	e := newEnv(t, options{cfg: cfg, answer: func(ctx context.Context, _ int, _ *delivery.Message) delivery.Outcome {
		<-ctx.Done() // a device that never answers; the transport gives up with ctx
		return failed
	}})
	e.storeN(t, 2)
	e.q.Drain(e.acct, "d1")
	waitFor(t, "the first send", func() bool { return e.tr.count() == 1 })
	e.q.Drain(e.acct, "d2")
	waitFor(t, "d2's drain to wait for d1's slot", func() bool { return e.q.Draining(e.acct, "d2") })

	stopped := make(chan struct{})
	go func() {
		e.q.Stop()
		close(stopped)
	}()
	within(t, "Stop", stopped)
	if got := e.tr.sent(); len(got) != 1 {
		t.Errorf("sent %+v, want only the first message to d1", got)
	}
	e.q.Drain(e.acct, "d1") // after Stop: nothing
	e.q.Stop()              // idempotent
	if n := e.tr.count(); n != 1 {
		t.Errorf("%d sends after Stop, want still 1", n)
	}
}

func TestStopRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{answer: func(context.Context, int, *delivery.Message) delivery.Outcome { return failed }})
	e.storeN(t, 1)
	e.q.Drain(e.acct, "d1")
	waitFor(t, "the retry to be due", func() bool { return e.q.RetryPending(e.acct, "d1") })
	select {
	case <-e.tr.news: // the first send's
	default:
	}
	e.q.Stop()
	// The retry was due RetryMin after the failure: wait well past it.
	select {
	case <-e.tr.news:
		t.Errorf("sent after Stop: %+v", e.tr.sent())
	case <-time.After(5 * config.RetryMin):
	}
}

// TestDrainConcurrent calls Drain for one device from many goroutines while
// a drain of it waits for an answer: never two drains at once, each message
// sent once and in order.
func TestDrainConcurrent(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	e := newEnv(t, options{answer: func(ctx context.Context, n int, _ *delivery.Message) delivery.Outcome {
		if n == 0 {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		return delivery.Outcome{State: delivery.Delivered, Code: 200}
	}})
	ids := e.storeN(t, 20)
	e.q.Drain(e.acct, "d1")
	waitFor(t, "the first send", func() bool { return e.tr.count() == 1 })
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 8 {
				e.q.Drain(e.acct, "d1")
			}
		})
	}
	wg.Wait()
	close(gate)
	e.waitIdle(t)
	e.tr.checkOneAtATime(t)
	if got := e.tr.ids("d1"); !slices.Equal(got, ids) {
		t.Errorf("sent %v, want %v once each", got, ids)
	}
}
