package engine

import (
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
