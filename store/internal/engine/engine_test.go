package engine

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func TestCeilUnix(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(100, 0), 100},
		{time.Unix(100, 1), 101},
		{time.Unix(-1, 500), 0},
	} {
		if got := CeilUnix(tt.t); got != tt.want {
			t.Errorf("CeilUnix(%v) = %d, want %d", tt.t, got, tt.want)
		}
	}
}

func TestNewPutRequest(t *testing.T) {
	t.Parallel()
	p := store.JournalPutParams{AccountID: 1, Device: "d", IP: "::1",
		Items: []store.JournalItem{{MsgID: "a", Data: "x"}, {MsgID: "a", Data: "x"}, {MsgID: "a", Data: "y"}}}
	r, err := NewPutRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Key(0) != r.Key(1) || r.Key(0) == r.Key(2) || r.Key(0).Compare(r.Key(1)) != 0 {
		t.Errorf("identities: equal data must share a key, other data must not")
	}
	if c := r.Key(0).Compare(r.Key(2)); c == 0 || c != -r.Key(2).Compare(r.Key(0)) {
		t.Errorf("Compare is not antisymmetric: %d", c)
	}
	for _, bad := range []store.JournalPutParams{
		{Device: "d\x00"},
		{Device: "d", IP: "\xff"},
		{Device: "d", Items: []store.JournalItem{{MsgID: "m", Data: "nul\x00"}}},
		{Device: "d", Items: []store.JournalItem{{MsgID: "\xc3", Data: "x"}}},
	} {
		if _, err := NewPutRequest(bad); err == nil {
			t.Errorf("NewPutRequest(%+v) accepted text PostgreSQL would refuse", bad)
		}
	}
}

// TestNewBatch checks that a batch keeps one row per identity, whose cutoff
// is the latest of the requests that carry it, and that each request gets
// the ids of its own rows.
func TestNewBatch(t *testing.T) {
	t.Parallel()
	since := time.Unix(100, 1)
	var reqs []PutRequest
	for _, p := range []store.JournalPutParams{
		{AccountID: 1, Device: "d", Items: []store.JournalItem{{MsgID: "a", Data: "x"}, {MsgID: "b", Data: "x"}}},
		{AccountID: 1, Device: "d", Since: since, Items: []store.JournalItem{{MsgID: "b", Data: "x"}, {MsgID: "a", Data: "x"}}},
		{AccountID: 2, Device: "d", Items: []store.JournalItem{{MsgID: "a", Data: "x"}}},
	} {
		r, err := NewPutRequest(p)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	b := NewBatch(reqs)
	if len(b.Rows) != 3 {
		t.Fatalf("%d rows, want 3", len(b.Rows))
	}
	for k, want := range []int64{101, 101, CeilUnix(time.Time{})} {
		if got := b.Rows[k].Cutoff; got != want {
			t.Errorf("row %d (%s of account %d): cutoff %d, want %d", k, b.Rows[k].MsgID, b.Rows[k].Account, got, want)
		}
	}
	res := b.Results("test", []int64{10, 11, 12}, map[int64]bool{2: true})
	if !slices.Equal(res[0].IDs, []int64{10, 11}) || !slices.Equal(res[1].IDs, []int64{11, 10}) || res[0].Err != nil || res[1].Err != nil {
		t.Errorf("results of account 1: %+v, %+v; want ids [10 11] and [11 10]", res[0], res[1])
	}
	if !errors.Is(res[2].Err, store.ErrNotFound) || res[2].IDs != nil {
		t.Errorf("result of the missing account: %+v, want ErrNotFound", res[2])
	}
}
