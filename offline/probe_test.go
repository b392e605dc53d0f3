package offline_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/offline"
	"github.com/cairn-chat/cairn/store"
)

// countingStore records the queue's reads. OfflineOwed fails with owedErr
// when it is set; when stuck is set, the first OfflineOwed closes it, waits
// for its ctx, and returns lag later, as a store slow to give up.
type countingStore struct {
	store.Offline
	owedErr error
	stuck   chan struct{}
	lag     time.Duration

	mu       sync.Mutex
	owed     [][]int64 // the accounts of each OfflineOwed
	pending  []int64   // the account of each OfflinePending
	returned bool      // the stuck OfflineOwed returned
}

func (c *countingStore) wrap(st store.Offline) store.Offline { c.Offline = st; return c }

func (c *countingStore) OfflineOwed(ctx context.Context, accountIDs []int64, now time.Time) ([]int64, error) {
	c.mu.Lock()
	first := len(c.owed) == 0
	c.owed = append(c.owed, slices.Clone(accountIDs))
	c.mu.Unlock()
	if c.stuck != nil && first {
		close(c.stuck)
		<-ctx.Done()
		time.Sleep(c.lag)
		c.mu.Lock()
		c.returned = true
		c.mu.Unlock()
		return nil, ctx.Err()
	}
	if c.owedErr != nil {
		return nil, c.owedErr
	}
	return c.Offline.OfflineOwed(ctx, accountIDs, now)
}

func (c *countingStore) OfflinePending(ctx context.Context, q store.OfflinePendingQuery) ([]store.OfflinePending, error) {
	c.mu.Lock()
	c.pending = append(c.pending, q.AccountID)
	c.mu.Unlock()
	return c.Offline.OfflinePending(ctx, q)
}

// calls returns copies of what was read so far.
func (c *countingStore) calls() (owed [][]int64, pending []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.owed), slices.Clone(c.pending)
}

// errorLog counts the records logged at level Error.
type errorLog struct {
	slog.Handler // discards
	n            atomic.Int32
}

func (h *errorLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelError {
		h.n.Add(1)
	}
	return nil
}

// TestDrainNothingStored drains devices of an account that holds no
// message it could be owed: one probe, and no drain reads the queue.
func TestDrainNothingStored(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, o options) {
		for _, tt := range []struct {
			name   string
			stored bool // a message that expires before the drain
		}{
			{"no message", false},
			{"only expired messages", true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := &countingStore{}
				o.wrap = c.wrap
				e := newEnv(t, o)
				if tt.stored {
					m := e.message(0)
					m.Expires = time.Minute
					if err := e.q.Store(t.Context(), m, nil, nil); err != nil {
						t.Fatalf("Store: %v", err)
					}
					e.clock.Advance(time.Minute)
				}
				e.q.Drain(e.acct, "d1")
				e.q.Drain(e.acct, "d2")
				e.waitIdle(t)
				owed, pending := c.calls()
				if len(owed) != 1 || !slices.Equal(owed[0], []int64{e.acct}) {
					t.Errorf("OfflineOwed asked for %v, want [[%d]] once", owed, e.acct)
				}
				if len(pending) != 0 {
					t.Errorf("%d OfflinePending for an account that holds nothing, want none", len(pending))
				}
				if got := e.tr.sent(); len(got) != 0 {
					t.Errorf("sent %+v", got)
				}
			})
		}
	})
}

// TestDrainBatched calls Drain for 200 accounts at once, as a re-REGISTER
// storm does: a handful of probes ask for them all, each once, and only the
// account that holds a message is drained.
func TestDrainBatched(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, o options) {
		c := &countingStore{}
		o.wrap = c.wrap
		e := newEnv(t, o)
		ids := e.storeN(t, 1)
		accounts := make([]int64, 200) // alice's and 199 that hold nothing
		for i := range accounts {
			accounts[i] = e.acct + int64(i)
			e.q.Drain(accounts[i], "d1")
			e.q.Drain(accounts[i], "d1") // a retransmitted REGISTER
		}
		e.waitIdle(t)

		owed, pending := c.calls()
		// One window holds them all; more than one probe means the loop
		// above was descheduled for a window or more.
		if len(owed) > 5 {
			t.Errorf("%d OfflineOwed calls for 400 Drains in one window, want a handful", len(owed))
		}
		if got := slices.Concat(owed...); !slices.Equal(slices.Sorted(slices.Values(got)), accounts) {
			t.Errorf("OfflineOwed asked for %v, want each of %v once", got, accounts)
		}
		for _, a := range pending {
			if a != e.acct {
				t.Errorf("OfflinePending for account %d, which holds nothing", a)
			}
		}
		if got := e.tr.ids("d1"); !slices.Equal(got, ids) {
			t.Errorf("sent %v, want %v", got, ids)
		}
	})
}

// TestDrainProbeBound calls Drain for more accounts than one probe may
// ask for: no OfflineOwed names more than ProbeMax.
func TestDrainProbeBound(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, o options) {
		c := &countingStore{}
		o.wrap = c.wrap
		e := newEnv(t, o)
		n := 2*offline.ProbeMax + 88
		for i := range n {
			e.q.Drain(e.acct+int64(i), "d1")
		}
		e.waitIdle(t)
		owed, _ := c.calls()
		total := 0
		for _, ids := range owed {
			if len(ids) > offline.ProbeMax {
				t.Errorf("OfflineOwed asked for %d accounts, more than %d", len(ids), offline.ProbeMax)
			}
			total += len(ids)
		}
		if total != n {
			t.Errorf("OfflineOwed asked for %d accounts in all, want %d", total, n)
		}
	})
}

// TestDrainProbed drains the devices of an account that holds messages,
// one of them asked for twice: each gets every message once, in order.
func TestDrainProbed(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, o options) {
		c := &countingStore{}
		o.wrap = c.wrap
		e := newEnv(t, o)
		ids := e.storeN(t, 3)
		e.q.Drain(e.acct, "d1")
		e.q.Drain(e.acct, "d2")
		e.q.Drain(e.acct, "d1")
		e.waitIdle(t)
		for _, in := range []string{"d1", "d2"} {
			if got := e.tr.ids(in); !slices.Equal(got, ids) {
				t.Errorf("sent %v to %s, want %v", got, in, ids)
			}
		}
		e.tr.checkOneAtATime(t)
		if owed, _ := c.calls(); len(owed) != 1 {
			t.Errorf("OfflineOwed asked for %v, want one call", owed)
		}
	})
}

// TestDrainProbeFails makes OfflineOwed fail: every device asked for is
// drained as if the probe had found messages, and the failure is logged
// once.
func TestDrainProbeFails(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, o options) {
		c := &countingStore{owedErr: errors.New("store down")}
		log := &errorLog{Handler: slog.DiscardHandler}
		o.wrap, o.log = c.wrap, log
		e := newEnv(t, o)
		ids := e.storeN(t, 2)
		e.q.Drain(e.acct, "d1")
		e.q.Drain(e.acct, "d2")
		e.q.Drain(e.acct+1, "d1") // holds nothing, drained all the same
		e.waitIdle(t)
		for _, in := range []string{"d1", "d2"} {
			if got := e.tr.ids(in); !slices.Equal(got, ids) {
				t.Errorf("sent %v to %s, want %v", got, in, ids)
			}
		}
		owed, pending := c.calls()
		if !slices.Contains(pending, e.acct+1) {
			t.Errorf("OfflinePending for accounts %v, want %d's too", pending, e.acct+1)
		}
		if n := log.n.Load(); n != int32(len(owed)) {
			t.Errorf("%d errors logged for %d failed probes, want one each", n, len(owed))
		}
	})
}

// TestStopProbe stops the queue while a probe waits for its window and while
// one reads the store: Stop returns once the probe has ended, and nothing
// reads the queue or sends after it.
func TestStopProbe(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, o options) {
		for _, tt := range []struct {
			name  string
			stuck bool // OfflineOwed waits for Stop
		}{
			{"window", false},
			{"reading", true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := &countingStore{}
				if tt.stuck {
					c.stuck, c.lag = make(chan struct{}), 20*time.Millisecond
				}
				o.wrap = c.wrap
				e := newEnv(t, o)
				e.storeN(t, 1)
				e.q.Drain(e.acct, "d1")
				if tt.stuck {
					within(t, "the probe's read", c.stuck)
				}
				stopped := make(chan struct{})
				go func() {
					e.q.Stop()
					close(stopped)
				}()
				within(t, "Stop", stopped)
				owed, pending := c.calls()
				c.mu.Lock()
				returned := c.returned
				c.mu.Unlock()
				if tt.stuck && !returned {
					t.Error("Stop returned before the probe's read")
				}
				// Every drain ended before Stop returned: a send from now on
				// is one started after it. A probe or drain started after
				// Stop would read within a window or two: wait well past.
				select {
				case <-e.tr.news:
				default:
				}
				e.q.Drain(e.acct, "d2") // after Stop: nothing
				select {
				case <-e.tr.news:
					t.Errorf("sent after Stop: %+v", e.tr.sent())
				case <-time.After(50 * time.Millisecond):
				}
				owedAfter, pendingAfter := c.calls()
				if len(owedAfter) != len(owed) || len(pendingAfter) != len(pending) {
					t.Errorf("read after Stop: OfflineOwed %v then %v, OfflinePending %v then %v", owed, owedAfter, pending, pendingAfter)
				}
				if tt.stuck && len(pending) != 0 {
					t.Errorf("OfflinePending %v after the probe failed for Stop", pending)
				}
			})
		}
	})
}
