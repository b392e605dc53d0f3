// Package offline is cairn's store-and-forward policy for messages no device
// took: it keeps them within limits and for as long as policy allows, and
// hands each one to every device of the recipient, once and in order, when
// the device registers, retrying with backoff until the message expires. A
// registration asks the store first, together with the others of a few
// milliseconds, whether its account holds any message at all. It sends
// nothing itself: it asks a delivery.Transport.
package offline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cairn-chat/cairn/delivery"
	"github.com/cairn-chat/cairn/store"
)

// ErrTooLarge means a message body is over the size limit; nothing is stored.
var ErrTooLarge = errors.New("offline: message too large")

// Config is the store-and-forward policy.
type Config struct {
	// Retention is how long a message is kept; a shorter lifetime asked by
	// the sender wins.
	Retention time.Duration
	// MaxSize bounds one body, in bytes.
	MaxSize int
	// MaxCount and MaxBytes bound what one user may have stored; 0 is no bound.
	MaxCount int
	MaxBytes int64
	// RetryMin and RetryMax bound the backoff between attempts on a device
	// that failed: it doubles from RetryMin up to RetryMax.
	RetryMin, RetryMax time.Duration
	// MaxDrains bounds the drains running at once, over all devices.
	MaxDrains int
}

// batch is how many owed messages a drain reads at a time.
const batch = 256

// A probe asks the store once which of the accounts whose devices asked for
// a drain hold any message. It collects the Drain calls of probeWindow from
// the first, or fewer once probeMax accounts ask, and asks for at most
// probeMax accounts at a time (store.MaxOwedAccounts is the bound).
const (
	probeWindow = 2 * time.Millisecond
	probeMax    = 256
)

// Queue keeps undelivered messages and drains them into devices. It
// implements delivery.Spool.
type Queue struct {
	st  store.Offline
	loc delivery.Locator
	tr  delivery.Transport
	cfg Config
	now func() time.Time
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}

	mu      sync.Mutex
	devices map[deviceKey]*deviceState
	wg      sync.WaitGroup
	stopped bool

	// The next probe: the devices asked for, by account, since when the
	// first of them waits, and its timer while one is armed. probing is
	// set while a probe runs: one runs at a time, and it arms the next.
	asked   map[int64][]string
	askedAt time.Time
	window  *time.Timer
	probing bool
}

type deviceKey struct {
	account  int64
	instance string
}

// deviceState is the drain schedule of one device: at most one drain runs;
// again asks for another run as soon as it ends, later for one at that time;
// timer is the pending run, due when it fires.
type deviceState struct {
	running bool
	again   bool
	later   time.Time
	timer   *time.Timer
	due     time.Time
}

// New returns a Queue. Drains run until Stop.
func New(st store.Offline, loc delivery.Locator, tr delivery.Transport, cfg Config, now func() time.Time, log *slog.Logger) *Queue {
	ctx, cancel := context.WithCancel(context.Background())
	return &Queue{
		st: st, loc: loc, tr: tr, cfg: cfg, now: now, log: log,
		ctx: ctx, cancel: cancel, sem: make(chan struct{}, cfg.MaxDrains),
		devices: make(map[deviceKey]*deviceState),
		asked:   make(map[int64][]string),
	}
}

// Store keeps m for every device of its recipient but those in delivered,
// and returns once it is committed. A resend of a message already kept
// succeeds without a second copy. It returns ErrTooLarge or an error
// wrapping store.ErrQuota when a limit refuses m. The devices in failed are
// tried again after RetryMin.
func (q *Queue) Store(ctx context.Context, m *delivery.Message, delivered, failed []string) error {
	if len(m.Body) > q.cfg.MaxSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(m.Body), q.cfg.MaxSize)
	}
	now := q.now()
	life := q.cfg.Retention
	if m.Expires > 0 && m.Expires < life {
		life = m.Expires
	}
	res, err := q.st.OfflineEnqueue(ctx, store.OfflineEnqueueParams{
		Message: store.OfflineMessage{
			AccountID: m.AccountID, Sender: m.Sender, From: m.From, To: m.To, Date: m.Date,
			ContentType: m.ContentType, Body: m.Body, Key: m.Key, ExpiresAt: now.Add(life),
		},
		Delivered: delivered,
		MaxCount:  q.cfg.MaxCount,
		MaxBytes:  q.cfg.MaxBytes,
		Now:       now,
	})
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	m.ID = res.ID
	if !res.Duplicate {
		for _, instance := range failed {
			q.schedule(deviceKey{m.AccountID, instance}, q.cfg.RetryMin)
		}
	}
	return nil
}

// Drain hands what a device is owed to it soon, as on a REGISTER. It joins
// a probe: one store read, for the Drain calls of up to probeWindow, of
// which of their accounts hold any message. The devices of those that do
// are drained, a pending retry brought forward; the others are not.
//
// Probing loses no message that draining at once would deliver. Drain is
// called once the REGISTER's binding is written, so the probe reads after
// that and sees every message stored before it; the drain it starts reads
// later still. A sender that stores a message after the probe read either
// found the binding, and sent the message to the device or had it retried
// as failed, or located the devices before the binding was written: then a
// drain started at once could as well have read before the message was
// stored, and the device gets it at its next REGISTER.
func (q *Queue) Drain(accountID int64, instance string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	devices := q.asked[accountID]
	if slices.Contains(devices, instance) {
		return
	}
	if len(q.asked) == 0 {
		q.askedAt = time.Now()
	}
	q.asked[accountID] = append(devices, instance)
	switch {
	case q.probing: // it arms the next window when it ends
	case q.window == nil:
		q.wg.Add(1) // done by probe, or by Stop when it stops the timer
		q.window = time.AfterFunc(probeWindow, q.probe)
	case len(q.asked) >= probeMax && q.window.Stop():
		q.window.Reset(0)
	}
}

// probe runs when a window ends: it probes the devices asked for, then those
// asked for meanwhile once their window ends too.
func (q *Queue) probe() {
	defer q.wg.Done()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.window, q.probing = nil, true
	for !q.stopped && len(q.asked) > 0 {
		if wait := probeWindow - time.Since(q.askedAt); wait > 0 && len(q.asked) < probeMax {
			q.wg.Add(1)
			q.window = time.AfterFunc(wait, q.probe)
			break
		}
		asked := q.asked
		q.asked = make(map[int64][]string)
		q.mu.Unlock()
		q.probeOwed(asked)
		q.mu.Lock()
	}
	q.probing = false
}

// probeOwed schedules the drain of the devices in asked whose accounts hold
// a message, or of every one when the store cannot tell.
func (q *Queue) probeOwed(asked map[int64][]string) {
	for accounts := range slices.Chunk(slices.Sorted(maps.Keys(asked)), probeMax) {
		owed, err := q.st.OfflineOwed(q.ctx, accounts, q.now())
		if err != nil {
			if q.ctx.Err() == nil {
				q.log.Error("offline probe: reading the queue failed; draining every device asked for", "err", err, "accounts", len(accounts))
			}
			owed = accounts
		}
		for _, a := range owed {
			for _, instance := range asked[a] {
				q.schedule(deviceKey{a, instance}, 0)
			}
		}
	}
}

// schedule runs a drain of k after delay, or sooner if one is due sooner.
func (q *Queue) schedule(k deviceKey, delay time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	s := q.devices[k]
	if s == nil {
		s = &deviceState{}
		q.devices[k] = s
	}
	due := q.now().Add(delay)
	if s.running {
		if delay == 0 {
			s.again = true
		} else if s.later.IsZero() || due.Before(s.later) {
			s.later = due
		}
		return
	}
	if s.timer != nil {
		if !due.Before(s.due) {
			return
		}
		s.timer.Stop()
	}
	s.due = due
	s.timer = time.AfterFunc(delay, func() { q.start(k) })
}

// start runs one drain of k unless one is running already.
func (q *Queue) start(k deviceKey) {
	q.mu.Lock()
	s := q.devices[k]
	if q.stopped || s == nil || s.running {
		q.mu.Unlock()
		return
	}
	s.running, s.timer = true, nil
	q.wg.Add(1)
	q.mu.Unlock()

	go func() {
		defer q.wg.Done()
		for {
			retry := q.run(k)
			q.mu.Lock()
			if s.again && !q.stopped {
				s.again = false
				q.mu.Unlock()
				continue
			}
			s.running = false
			now := q.now()
			due := s.later
			if retry > 0 && (due.IsZero() || now.Add(retry).Before(due)) {
				due = now.Add(retry)
			}
			s.later = time.Time{}
			if !due.IsZero() && !q.stopped {
				s.due = due
				s.timer = time.AfterFunc(max(due.Sub(now), 0), func() { q.start(k) })
			} else {
				delete(q.devices, k)
			}
			q.mu.Unlock()
			return
		}
	}()
}

// run hands k what it is owed, in id order. It stops at the first failure and returns the backoff
// before the next attempt, or 0 when nothing more is owed or the device is
// gone (its next REGISTER drains it).
func (q *Queue) run(k deviceKey) time.Duration {
	select {
	case q.sem <- struct{}{}:
		defer func() { <-q.sem }()
	case <-q.ctx.Done():
		return 0
	}
	ctx := q.ctx
	dev, ok := q.device(ctx, k)
	if !ok {
		return 0
	}
	var after int64
	for {
		owed, err := q.st.OfflinePending(ctx, store.OfflinePendingQuery{
			AccountID: k.account, Instance: k.instance, Now: q.now(), AfterID: after, Limit: batch,
		})
		if err != nil {
			if ctx.Err() == nil {
				q.log.Error("offline drain: reading the queue failed", "err", err)
			}
			return q.cfg.RetryMin
		}
		if len(owed) == 0 {
			return 0
		}
		retry, done := q.send(ctx, k, dev, owed)
		if !done {
			return retry
		}
		after = owed[len(owed)-1].Message.ID
	}
}

// device finds k among the devices registered now.
func (q *Queue) device(ctx context.Context, k deviceKey) (delivery.Device, bool) {
	devices, err := q.loc.Devices(ctx, k.account)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("offline drain: devices unknown", "err", err)
		}
		return delivery.Device{}, false
	}
	for _, d := range devices {
		if d.Instance == k.instance {
			return d, true
		}
	}
	return delivery.Device{}, false
}

// send sends owed to dev one after another, each once the previous one is
// answered, so that the device sees them in order whatever its transport;
// the outcomes are recorded together at the end. done is false when a
// message failed: then retry is the backoff.
func (q *Queue) send(ctx context.Context, k deviceKey, dev delivery.Device, owed []store.OfflinePending) (retry time.Duration, done bool) {
	marks := map[store.DeliveryState][]int64{}
	defer func() {
		for state, ids := range marks {
			q.mark(k, state, ids, time.Time{})
		}
	}()
	for i := range owed {
		if ctx.Err() != nil {
			return 0, false
		}
		m := &owed[i].Message
		switch o := q.tr.Send(ctx, dev, toMessage(m))(); o.State {
		case delivery.Delivered:
			marks[store.DeliveryDone] = append(marks[store.DeliveryDone], m.ID)
		case delivery.Rejected:
			q.log.Info("offline message refused by a device", "id", m.ID, "code", o.Code)
			marks[store.DeliveryRejected] = append(marks[store.DeliveryRejected], m.ID)
		default:
			retry = q.backoff(owed[i].Attempts + 1)
			q.mark(k, store.DeliveryRetry, []int64{m.ID}, q.now().Add(retry))
			return retry, false
		}
	}
	return 0, true
}

func (q *Queue) mark(k deviceKey, state store.DeliveryState, ids []int64, next time.Time) {
	err := q.st.OfflineMark(q.ctx, store.OfflineMarkParams{
		AccountID: k.account, MessageIDs: ids, Instance: k.instance, State: state, NextAt: next,
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) && q.ctx.Err() == nil {
		// The device may get these again; it sees the same Call-ID then.
		q.log.Error("offline drain: recording deliveries failed", "err", err, "messages", len(ids))
	}
}

// backoff is RetryMin doubled for each attempt after the first, at most RetryMax.
func (q *Queue) backoff(attempts int) time.Duration {
	d := q.cfg.RetryMin
	for i := 1; i < attempts && d < q.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, q.cfg.RetryMax)
}

// Stop ends the probes, the drains under way (messages on their way are
// answered or time out; what was not recorded is sent again later) and the
// retries.
func (q *Queue) Stop() {
	q.mu.Lock()
	q.stopped = true
	if q.window != nil && q.window.Stop() {
		q.window = nil
		q.wg.Done()
	}
	for _, s := range q.devices {
		if s.timer != nil {
			s.timer.Stop()
		}
	}
	q.mu.Unlock()
	q.cancel()
	q.wg.Wait()
}

func toMessage(m *store.OfflineMessage) *delivery.Message {
	return &delivery.Message{
		ID: m.ID, AccountID: m.AccountID, Sender: m.Sender, From: m.From, To: m.To, Date: m.Date,
		ContentType: m.ContentType, Body: m.Body, Key: m.Key,
	}
}
