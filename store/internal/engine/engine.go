// Package engine holds what the SQL engines share beyond their SQL: the
// checks both apply to input so that they accept exactly the same, the
// natural key of a journal row, the put request that group commit carries
// and the batch a flush reduces it to, and the parameters of a journal query.
package engine

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-chat/cairn/store"
)

// CheckText returns an error unless s is UTF-8 without NUL bytes, which
// PostgreSQL refuses in TEXT columns; SQLite refuses it too, so that both
// engines take the same input. Checked before a put joins a group commit, a
// bad item fails its own put rather than the whole batch.
func CheckText(field, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s is not UTF-8 text without NUL bytes", field)
	}
	return nil
}

// CeilUnix returns the first whole Unix second not before t. Rows carry
// whole seconds, so a row is not older than t exactly when its second is at
// least CeilUnix(t).
func CeilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// OrEmpty returns b, or an empty slice for nil, which drivers would store as NULL.
func OrEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Identity is the natural key of a journal row (index journal_identity).
type Identity struct {
	Account       int64
	Device, MsgID string
	Hash          [sha256.Size]byte
}

// PutRequest is one JournalPut waiting for a group commit.
type PutRequest struct {
	P      store.JournalPutParams
	Hashes [][sha256.Size]byte // of each item's data
}

// NewPutRequest checks p and hashes its items' data.
func NewPutRequest(p store.JournalPutParams) (PutRequest, error) {
	if err := errors.Join(CheckText("device", p.Device), CheckText("ip", p.IP)); err != nil {
		return PutRequest{}, err
	}
	r := PutRequest{P: p, Hashes: make([][sha256.Size]byte, len(p.Items))}
	for i, it := range p.Items {
		if err := errors.Join(CheckText("msgid", it.MsgID), CheckText("data", it.Data)); err != nil {
			return PutRequest{}, fmt.Errorf("item %d: %w", i, err)
		}
		r.Hashes[i] = sha256.Sum256([]byte(it.Data))
	}
	return r, nil
}

// Key returns the identity of item i.
func (r PutRequest) Key(i int) Identity {
	return Identity{r.P.AccountID, r.P.Device, r.P.Items[i].MsgID, r.Hashes[i]}
}

// PutResult is the outcome of one PutRequest: its ids, or its own failure,
// which does not fail the rest of the batch.
type PutResult struct {
	IDs []int64
	Err error
}

// Compare orders identities. Any order would do, as long as every writer
// uses the same one: rows written in it cannot deadlock against each other.
func (a Identity) Compare(b Identity) int {
	return cmp.Or(cmp.Compare(a.Account, b.Account), strings.Compare(a.Device, b.Device),
		strings.Compare(a.MsgID, b.MsgID), bytes.Compare(a.Hash[:], b.Hash[:]))
}

// Batch is the requests of one flush reduced to their distinct rows.
type Batch struct {
	Reqs  []PutRequest
	Rows  []Row   // in input order
	Slots [][]int // row of each item, per request
}

// Row is a distinct row of a Batch, with the data and IP of its first item.
// Cutoff is the latest CeilUnix(Since) of the requests that carry the row
// (a zero Since gives one below every row): a row stored before whose ts is
// below it is expired for one of them, so it is replaced for all of them,
// and they all get the new id.
type Row struct {
	Identity
	Data, IP string
	Cutoff   int64
}

// NewBatch reduces reqs to their distinct rows.
func NewBatch(reqs []PutRequest) *Batch {
	b := &Batch{Reqs: reqs, Slots: make([][]int, len(reqs))}
	index := map[Identity]int{} // row of each Identity
	for i, r := range reqs {
		cutoff := CeilUnix(r.P.Since)
		b.Slots[i] = make([]int, len(r.P.Items))
		for j, it := range r.P.Items {
			key := r.Key(j)
			k, ok := index[key]
			if !ok {
				k = len(b.Rows)
				b.Rows = append(b.Rows, Row{Identity: key, Data: it.Data, IP: r.P.IP, Cutoff: cutoff})
				index[key] = k
			}
			b.Rows[k].Cutoff = max(b.Rows[k].Cutoff, cutoff)
			b.Slots[i][j] = k
		}
	}
	return b
}

// Results gives each request the ids of its rows, ids[k] being that of row
// k, or, when its account is missing, ErrNotFound prefixed with the engine's
// package name pkg.
func (b *Batch) Results(pkg string, ids []int64, missing map[int64]bool) []PutResult {
	res := make([]PutResult, len(b.Reqs))
	for i, r := range b.Reqs {
		if missing[r.P.AccountID] {
			res[i].Err = fmt.Errorf("%s: journal put: account %d: %w", pkg, r.P.AccountID, store.ErrNotFound)
			continue
		}
		res[i].IDs = make([]int64, len(b.Slots[i]))
		for j, k := range b.Slots[i] {
			res[i].IDs[j] = ids[k]
		}
	}
	return res
}

// QueryArgs returns the parameters of q's filters and limit, numbered from 1
// in both engines' SQL: account, first second, after id, except device, limit.
func QueryArgs(q store.JournalQuery) ([]any, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("limit %d is not positive", q.Limit)
	}
	from := max(CeilUnix(q.Since), CeilUnix(q.AfterTime))
	return []any{q.AccountID, from, q.AfterID, q.ExceptDevice, q.Limit}, nil
}

// ByteCap returns q.MaxBytes, or the largest int64, which no total of data
// reaches, when q sets no cap.
func ByteCap(q store.JournalQuery) int64 {
	if q.MaxBytes <= 0 {
		return math.MaxInt64
	}
	return q.MaxBytes
}
