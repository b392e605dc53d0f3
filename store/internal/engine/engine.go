// Package engine holds what the SQL engines share beyond their SQL: the
// checks both apply to input so that they accept exactly the same, the
// natural key of a journal row, and the put request that group commit
// carries.
package engine

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
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
