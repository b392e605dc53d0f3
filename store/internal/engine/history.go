package engine

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// Bounds of the history's input, the same in both engines.
const (
	MaxHistoryMessageID   = 256     // bytes of a message id
	MaxHistoryContact     = 512     // bytes of a contact
	MaxHistoryContentType = 256     // bytes of a content type
	MaxHistoryWord        = 32      // bytes of a direction, a state, a disposition value
	MaxHistoryDisposition = 16      // values in a disposition
	MaxHistoryContent     = 1 << 20 // bytes of content
	// MaxHistoryAppend is the most rows one HistoryAppend may carry.
	MaxHistoryAppend = 10000
	// HistoryFindLimit is the most rows HistoryFind returns.
	HistoryFindLimit = 100
	// MaxPublicKey is the most bytes of a published PGP public key.
	MaxPublicKey = 1 << 20
)

// checkLen returns an error unless s is text CheckText accepts and at most
// n bytes long.
func checkLen(field, s string, n int) error {
	if len(s) > n {
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(s), n)
	}
	return CheckText(field, s)
}

// checkHistoryRow returns an error unless r can be stored. It ignores ID,
// AccountID and CreatedAt, which are not the caller's to check.
func checkHistoryRow(r store.HistoryRow) error {
	err := errors.Join(
		checkLen("message id", r.MessageID, MaxHistoryMessageID),
		checkLen("contact", r.Contact, MaxHistoryContact),
		checkLen("direction", r.Direction, MaxHistoryWord),
		checkLen("content type", r.ContentType, MaxHistoryContentType),
		checkLen("state", r.State, MaxHistoryWord),
		checkTime("timestamp", r.Timestamp),
	)
	if len(r.Content) > MaxHistoryContent {
		err = errors.Join(err, fmt.Errorf("content is %d bytes, more than %d", len(r.Content), MaxHistoryContent))
	}
	if len(r.Disposition) > MaxHistoryDisposition {
		err = errors.Join(err, fmt.Errorf("disposition has %d values, more than %d", len(r.Disposition), MaxHistoryDisposition))
	}
	for i, d := range r.Disposition {
		err = errors.Join(err, checkLen(fmt.Sprintf("disposition value %d", i), d, MaxHistoryWord))
	}
	return err
}

// HistoryRequest is one HistoryAppend waiting for a group commit.
type HistoryRequest struct {
	// Rows are the caller's rows, copied, as the store returns them:
	// Timestamp in UTC to the microsecond, Disposition never nil, ID and
	// CreatedAt zero until the flush.
	Rows []store.HistoryRow
	// Disposition is each row's disposition as stored: a JSON array.
	Disposition []string
	// Accounts are the accounts of the rows, without repeats, rising.
	Accounts []int64
}

// NewHistoryRequest checks rows and copies them into a request.
func NewHistoryRequest(rows []store.HistoryRow) (HistoryRequest, error) {
	if len(rows) > MaxHistoryAppend {
		return HistoryRequest{}, fmt.Errorf("%d rows, more than %d", len(rows), MaxHistoryAppend)
	}
	r := HistoryRequest{Rows: slices.Clone(rows), Disposition: make([]string, len(rows))}
	for i := range r.Rows {
		row := &r.Rows[i]
		if err := checkHistoryRow(*row); err != nil {
			return HistoryRequest{}, fmt.Errorf("row %d: %w", i, err)
		}
		row.ID, row.CreatedAt = 0, time.Time{}
		row.Timestamp = row.Timestamp.UTC().Truncate(time.Microsecond)
		row.Content = OrEmpty(row.Content)
		if row.Disposition == nil {
			row.Disposition = []string{}
		} else {
			row.Disposition = slices.Clone(row.Disposition)
		}
		r.Disposition[i] = EncodeDisposition(row.Disposition)
		r.Accounts = append(r.Accounts, row.AccountID)
	}
	r.Accounts = slices.Compact(slices.Sorted(slices.Values(r.Accounts)))
	return r, nil
}

// EncodeDisposition returns d as stored: a JSON array of strings, "[]"
// for none.
func EncodeDisposition(d []string) string {
	if len(d) == 0 {
		return "[]"
	}
	b, err := json.Marshal(d)
	if err != nil { // strings always marshal
		panic(fmt.Sprintf("engine: disposition %q: %v", d, err))
	}
	return string(b)
}

// DecodeDisposition returns the disposition stored as s, never nil.
func DecodeDisposition(s string) ([]string, error) {
	if d, ok := decodeSimple(s); ok {
		return d, nil
	}
	d := []string{}
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("disposition %q: %w", s, err)
	}
	if d == nil { // "null"
		d = []string{}
	}
	return d, nil
}

// decodeSimple decodes s as EncodeDisposition writes a disposition whose
// values need no escapes, the usual case, by slicing s: ["a","b"]. It
// reports false for anything else.
func decodeSimple(s string) ([]string, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	body := s[1 : len(s)-1]
	d := make([]string, 0, strings.Count(body, ",")+1)
	for body != "" {
		if body[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(body[1:], '"') + 1
		if end == 0 {
			return nil, false
		}
		v := body[1:end]
		for i := range len(v) {
			if v[i] == '\\' || v[i] < 0x20 {
				return nil, false
			}
		}
		d = append(d, v)
		body = body[end+1:]
		if body != "" {
			if body[0] != ',' || len(body) == 1 {
				return nil, false
			}
			body = body[1:]
		}
	}
	return d, true
}

// HistoryDecoder turns the columns of stored history rows into fields,
// sharing what repeats between the rows of one read: a text seen before
// is the same string, a disposition seen before is decoded once. Its
// zero value is ready to use; it is not safe for concurrent use.
type HistoryDecoder struct {
	texts        map[string]string
	dispositions map[string][]string
}

// Text returns b as a string, the same string for the same bytes.
func (d *HistoryDecoder) Text(b []byte) string {
	if s, ok := d.texts[string(b)]; ok {
		return s
	}
	if d.texts == nil {
		d.texts = map[string]string{}
	}
	s := string(b)
	d.texts[s] = s
	return s
}

// Disposition decodes the stored disposition b into a slice of its own
// (callers may change it), never nil.
func (d *HistoryDecoder) Disposition(b []byte) ([]string, error) {
	if v, ok := d.dispositions[string(b)]; ok {
		return slices.Clone(v), nil
	}
	v, err := DecodeDisposition(string(b))
	if err != nil {
		return nil, err
	}
	if d.dispositions == nil {
		d.dispositions = map[string][]string{}
	}
	d.dispositions[string(b)] = v
	return slices.Clone(v), nil
}

// HistoryResult is the outcome of one HistoryRequest: its rows, or its
// own failure, which does not fail the rest of the batch.
type HistoryResult struct {
	Rows []store.HistoryRow
	Err  error
}

// HistoryBatch is the requests of one flush and the ids their rows take.
// A request with an account that does not exist stores nothing; the
// others store every row.
type HistoryBatch struct {
	Reqs    []HistoryRequest
	Missing map[int64]bool  // accounts that do not exist
	Counts  map[int64]int64 // rows to store, per account
}

// NewHistoryBatch returns the batch of reqs, where the accounts in missing
// do not exist.
func NewHistoryBatch(reqs []HistoryRequest, missing map[int64]bool) *HistoryBatch {
	b := &HistoryBatch{Reqs: reqs, Missing: missing, Counts: map[int64]int64{}}
	for i, r := range reqs {
		if b.Stored(i) {
			for _, row := range r.Rows {
				b.Counts[row.AccountID]++
			}
		}
	}
	return b
}

// Stored reports whether request i stores its rows: none of its accounts
// is missing.
func (b *HistoryBatch) Stored(i int) bool {
	return !slices.ContainsFunc(b.Reqs[i].Accounts, func(a int64) bool { return b.Missing[a] })
}

// Accounts returns the accounts of the requests, without repeats, rising:
// the order in which both engines lock them and take their ids, so that
// concurrent flushes cannot deadlock.
func (b *HistoryBatch) Accounts() []int64 {
	var out []int64
	for _, r := range b.Reqs {
		out = append(out, r.Accounts...)
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}

// Counted returns the accounts that have rows to store, rising, with the
// count of each.
func (b *HistoryBatch) Counted() (accounts, counts []int64) {
	for _, a := range slices.Sorted(maps.Keys(b.Counts)) {
		accounts, counts = append(accounts, a), append(counts, b.Counts[a])
	}
	return accounts, counts
}

// Results gives each stored request its rows with their ids and created
// time, and every other request store.ErrNotFound prefixed with the
// engine's package name pkg. last holds the last id of each account once
// the flush has taken its ids: an account's rows take the ids up to it,
// in input order.
func (b *HistoryBatch) Results(pkg string, last map[int64]int64, created time.Time) []HistoryResult {
	next := map[int64]int64{}
	for a, n := range b.Counts {
		next[a] = last[a] - n + 1
	}
	res := make([]HistoryResult, len(b.Reqs))
	for i, r := range b.Reqs {
		if !b.Stored(i) {
			a := r.Accounts[slices.IndexFunc(r.Accounts, func(a int64) bool { return b.Missing[a] })]
			res[i].Err = fmt.Errorf("%s: history append: account %d: %w", pkg, a, store.ErrNotFound)
			continue
		}
		rows := slices.Clone(r.Rows)
		for j := range rows {
			a := rows[j].AccountID
			rows[j].ID, rows[j].CreatedAt = next[a], created
			next[a]++
		}
		res[i].Rows = rows
	}
	return res
}

// CheckHistoryQuery returns an error unless q is a valid query.
func CheckHistoryQuery(q store.HistoryQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d is not positive", q.Limit)
	}
	return checkTime("since", q.Since)
}

// CheckHistoryFind returns an error unless a HistoryFind with these
// arguments is valid.
func CheckHistoryFind(messageID string, since time.Time) error {
	return errors.Join(checkLen("message id", messageID, MaxHistoryMessageID), checkTime("since", since))
}

// CheckToken returns an error unless a TokenPut of t with this bound is
// valid.
func CheckToken(t store.APIToken, maxPerAccount int) error {
	err := errors.Join(
		checkRequired("device", t.Device),
		checkTime("created", t.CreatedAt),
		checkTime("expires", t.ExpiresAt),
	)
	if len(t.Digest) != sha256.Size {
		err = errors.Join(err, fmt.Errorf("digest is %d bytes, not %d", len(t.Digest), sha256.Size))
	}
	if maxPerAccount <= 0 {
		err = errors.Join(err, fmt.Errorf("at most %d tokens per account: not positive", maxPerAccount))
	}
	return err
}

// CheckPublicKey returns an error unless key can be published.
func CheckPublicKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxPublicKey {
		return fmt.Errorf("public key is %d bytes, not 1 to %d", len(key), MaxPublicKey)
	}
	return nil
}

// HistoryLinger is how long, at most, a flush of history appends that is
// not full waits for more (groupcommit.WithLinger). Every MESSAGE appends
// its rows before it is answered, and at a few hundred a second each
// append would otherwise commit alone: up to 5 ms of latency takes about a
// third off the CPU cost of a stored MESSAGE at 500 a second
// (BENCHMARKS.md).
const HistoryLinger = 5 * time.Millisecond
