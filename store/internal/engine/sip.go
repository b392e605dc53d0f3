package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// Bounds of the SIP core's input, the same in both engines.
const (
	// MaxText is the most bytes of one text field: a header value, an
	// address, an instance, a key.
	MaxText = 8 << 10
	// MaxBody is the most bytes of an offline message body.
	MaxBody = 1 << 20
	// MaxTraceMessage is the most bytes of a traced SIP message.
	MaxTraceMessage = 1 << 20
	// MaxDelivered is the most instances an enqueue may mark delivered.
	MaxDelivered = 1000
	// MaxMarkIDs is the most messages one OfflineMark may name.
	MaxMarkIDs = 10000
)

// checkField returns an error unless s is text CheckText accepts and at
// most MaxText bytes long.
func checkField(field, s string) error {
	if len(s) > MaxText {
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(s), MaxText)
	}
	return CheckText(field, s)
}

// checkRequired is checkField for a field that must not be empty.
func checkRequired(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", field)
	}
	return checkField(field, s)
}

// checkTime returns an error unless t lies in the years 1 to 9999, which
// both engines keep to the microsecond.
func checkTime(field string, t time.Time) error {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%s %v is outside the years 1 to 9999", field, t)
	}
	return nil
}

// CheckRegistration returns an error unless r can be stored.
func CheckRegistration(r store.Registration) error {
	return errors.Join(
		checkTime("expires", r.Expires),
		checkRequired("instance", r.Instance),
		checkRequired("contact", r.Contact),
		checkField("transport", r.Transport),
		checkField("source", r.Source),
		checkField("node", r.Node),
		checkField("call-id", r.CallID),
		checkField("user agent", r.UserAgent),
	)
}

// Micro returns t as Unix microseconds, rounded down: the stored time of t,
// and the bound such that a stored time is after t exactly when it is
// above Micro(t), and at or before t exactly when it is at most Micro(t).
func Micro(t time.Time) int64 { return t.UnixMicro() }

// CeilMicro returns the first whole microsecond not before t, in UTC: a
// stored time is before t exactly when it is before CeilMicro(t).
func CeilMicro(t time.Time) time.Time {
	c := t.Truncate(time.Microsecond)
	if c.Before(t) {
		c = c.Add(time.Microsecond)
	}
	return c.UTC()
}

// EnqueueRequest is one OfflineEnqueue waiting for a group commit.
type EnqueueRequest struct {
	P         store.OfflineEnqueueParams
	Delivered []string // P.Delivered without repeats, in first-seen order
}

// NewEnqueueRequest checks p and drops repeated delivered instances.
func NewEnqueueRequest(p store.OfflineEnqueueParams) (EnqueueRequest, error) {
	m := p.Message
	err := errors.Join(
		checkRequired("sender", m.Sender),
		checkField("from", m.From),
		checkField("to", m.To),
		checkField("date", m.Date),
		checkField("content type", m.ContentType),
		checkRequired("key", m.Key),
		checkTime("expires", m.ExpiresAt),
	)
	if len(m.Body) > MaxBody {
		err = errors.Join(err, fmt.Errorf("body is %d bytes, more than %d", len(m.Body), MaxBody))
	}
	if !m.ExpiresAt.After(p.Now) {
		err = errors.Join(err, fmt.Errorf("message expires at %v, not after now (%v)", m.ExpiresAt, p.Now))
	}
	if p.MaxCount < 0 || p.MaxBytes < 0 {
		err = errors.Join(err, fmt.Errorf("quota %d messages, %d bytes: negative", p.MaxCount, p.MaxBytes))
	}
	if len(p.Delivered) > MaxDelivered {
		err = errors.Join(err, fmt.Errorf("%d delivered instances, more than %d", len(p.Delivered), MaxDelivered))
	}
	if err != nil {
		return EnqueueRequest{}, err
	}
	r := EnqueueRequest{P: p}
	seen := map[string]bool{}
	for i, inst := range p.Delivered {
		if err := checkRequired(fmt.Sprintf("delivered instance %d", i), inst); err != nil {
			return EnqueueRequest{}, err
		}
		if !seen[inst] {
			seen[inst] = true
			r.Delivered = append(r.Delivered, inst)
		}
	}
	return r, nil
}

// Quota reports whether the recipient may store r's message on top of
// count messages of bytes bytes, unexpired at r.P.Now.
func (r EnqueueRequest) Quota(count, bytes int64) bool {
	p := r.P
	return (p.MaxCount == 0 || count+1 <= int64(p.MaxCount)) &&
		(p.MaxBytes == 0 || bytes+int64(len(p.Message.Body)) <= p.MaxBytes)
}

// Limited reports whether r has a quota to check.
func (r EnqueueRequest) Limited() bool { return r.P.MaxCount > 0 || r.P.MaxBytes > 0 }

// EnqueueResult is the outcome of one EnqueueRequest, or its own failure,
// which does not fail the rest of the batch.
type EnqueueResult struct {
	Res store.OfflineEnqueueResult
	Err error
}

// QuotaError returns the error of a request refused for its quota,
// prefixed with the engine's package name pkg.
func QuotaError(pkg string, p store.OfflineEnqueueParams) error {
	return fmt.Errorf("%s: offline enqueue: account %d: %w", pkg, p.Message.AccountID, store.ErrQuota)
}

// MissingError returns the error of a request whose recipient does not
// exist, prefixed with the engine's package name pkg.
func MissingError(pkg string, p store.OfflineEnqueueParams) error {
	return fmt.Errorf("%s: offline enqueue: account %d: %w", pkg, p.Message.AccountID, store.ErrNotFound)
}

// CheckPending returns an error unless q is a valid query.
func CheckPending(q store.OfflinePendingQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d is not positive", q.Limit)
	}
	return checkField("instance", q.Instance)
}

// MarkIDs checks p and returns its message ids without repeats, in
// rising order: the order in which both engines write them, so that
// concurrent marks cannot deadlock.
func MarkIDs(p store.OfflineMarkParams) ([]int64, error) {
	var err error
	switch p.State {
	case store.DeliveryRetry, store.DeliveryDone, store.DeliveryRejected:
	default:
		err = fmt.Errorf("unknown delivery state %d", p.State)
	}
	if len(p.MessageIDs) > MaxMarkIDs {
		err = errors.Join(err, fmt.Errorf("%d message ids, more than %d", len(p.MessageIDs), MaxMarkIDs))
	}
	if err := errors.Join(err, checkRequired("instance", p.Instance), checkTime("next attempt", p.NextAt)); err != nil {
		return nil, err
	}
	return slices.Compact(slices.Sorted(slices.Values(p.MessageIDs))), nil
}

// OwedIDs checks the account ids of an OfflineOwed and returns them
// without repeats, in rising order.
func OwedIDs(accountIDs []int64) ([]int64, error) {
	if len(accountIDs) > store.MaxOwedAccounts {
		return nil, fmt.Errorf("%d account ids, more than %d", len(accountIDs), store.MaxOwedAccounts)
	}
	return slices.Compact(slices.Sorted(slices.Values(accountIDs))), nil
}

// CheckTraces returns an error naming the first trace that cannot be stored.
func CheckTraces(ts []store.Trace) error {
	for i, t := range ts {
		err := errors.Join(
			checkField("direction", t.Direction),
			checkField("transport", t.Transport),
			checkField("local", t.Local),
			checkField("remote", t.Remote),
			checkField("call-id", t.CallID),
			checkField("method", t.Method),
			checkField("from address", t.FromAddr),
			checkField("to address", t.ToAddr),
			checkTime("time", t.Time),
		)
		if t.Status < 0 || t.Status > 999 {
			err = errors.Join(err, fmt.Errorf("status %d is not a SIP status", t.Status))
		}
		if len(t.Message) > MaxTraceMessage {
			err = errors.Join(err, fmt.Errorf("message is %d bytes, more than %d", len(t.Message), MaxTraceMessage))
		}
		if err != nil {
			return fmt.Errorf("trace %d: %w", i, err)
		}
	}
	return nil
}

// CheckTraceQuery returns an error unless q is a valid query.
func CheckTraceQuery(q store.TraceQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d is not positive", q.Limit)
	}
	return errors.Join(checkField("address", q.Addr), checkField("call-id", q.CallID))
}

// EnqueueLinger is how long, at most, a flush of offline enqueues that is
// not full waits for more (groupcommit.WithLinger): a MESSAGE store is one
// flush of a handful of statements, and at a few hundred a second each
// would otherwise flush alone.
const EnqueueLinger = 10 * time.Millisecond
