package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// manyRows is more rows than an engine is likely to handle in one statement.
const manyRows = 2500

func testJournalDelete(t *testing.T, open opener) {
	// One JournalDelete by alice (by 0) or bob (by 1) of the rows labelled
	// ids, or of ids that name no row: "unknown", "zero", "negative".
	type call struct {
		by   int
		ids  []string
		want int64
	}
	tests := []struct {
		name  string
		calls []call
		left  []string
	}{
		{"some rows", []call{{0, []string{"a1", "a3"}, 2}}, []string{"a2", "a4", "b1"}},
		{"unknown ids are ignored", []call{{0, []string{"a1", "unknown", "zero", "negative"}, 1}}, []string{"a2", "a3", "a4", "b1"}},
		{"a repeated id counts once", []call{{0, []string{"a2", "a2"}, 1}}, []string{"a1", "a3", "a4", "b1"}},
		{"no ids", []call{{0, nil, 0}}, []string{"a1", "a2", "a3", "a4", "b1"}},
		{"another account's rows", []call{{0, []string{"b1"}, 0}, {1, []string{"a1", "a2"}, 0}}, []string{"a1", "a2", "a3", "a4", "b1"}},
		{"idempotent", []call{{0, []string{"a1"}, 1}, {0, []string{"a1"}, 0}}, []string{"a2", "a3", "a4", "b1"}},
		{"every row", []call{{0, []string{"a1", "a2", "a3", "a4", "b1"}, 4}, {1, []string{"b1"}, 1}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := setup(t, open)
			accounts := []store.Account{mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")}
			ids := map[string]int64{"zero": 0, "negative": -1}
			for i, id := range put(t, s, accounts[0].ID, "d1", "a1", "a2", "a3", "a4") {
				ids[fmt.Sprintf("a%d", i+1)] = id
			}
			ids["b1"] = put(t, s, accounts[1].ID, "d1", "b1")[0]
			ids["unknown"] = ids["b1"] + 1000

			for i, c := range tt.calls {
				var list []int64
				for _, label := range c.ids {
					list = append(list, ids[label])
				}
				n, err := s.JournalDelete(t.Context(), accounts[c.by].ID, list)
				if err != nil || n != c.want {
					t.Errorf("call %d: JournalDelete(%v) = %d, %v; want %d", i, c.ids, n, err, c.want)
				}
			}
			left := append(msgIDs(listAll(t, s, accounts[0].ID)), msgIDs(listAll(t, s, accounts[1].ID))...)
			if !slices.Equal(left, tt.left) {
				t.Errorf("rows left: %v, want %v", left, tt.left)
			}
		})
	}

	t.Run("ManyIDs", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		ids := put(t, s, a.ID, "d1", manyMsgIDs()...)
		if again := put(t, s, a.ID, "d1", manyMsgIDs()...); !slices.Equal(again, ids) {
			t.Errorf("putting %d rows again gave other ids", manyRows)
		}
		for i := range 10 {
			ids = append(ids, ids[manyRows-1]+int64(i+1))
		}
		if n, err := s.JournalDelete(t.Context(), a.ID, ids); err != nil || n != manyRows {
			t.Errorf("JournalDelete = %d, %v; want %d", n, err, manyRows)
		}
		if rows := listAll(t, s, a.ID); len(rows) != 0 {
			t.Errorf("%d rows left, want none", len(rows))
		}
	})
}

func testJournalPurge(t *testing.T, open opener) {
	type call struct {
		before time.Duration // after the whole second of the start
		want   int64
	}
	tests := []struct {
		name  string
		calls []call
		left  []string
	}{
		{"before the first row", []call{{0, 0}}, []string{"p1", "p2", "p3", "q1"}},
		{"rows of the cutoff second stay", []call{{10 * time.Second, 2}}, []string{"p2", "p3"}},
		{"cutoff inside a second", []call{{10*time.Second + time.Nanosecond, 3}}, []string{"p3"}},
		{"after the last row", []call{{21 * time.Second, 4}}, nil},
		{"idempotent", []call{{10 * time.Second, 2}, {10 * time.Second, 0}}, []string{"p2", "p3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, clock := setup(t, open)
			alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
			put(t, s, alice.ID, "d1", "p1")
			put(t, s, bob.ID, "d1", "q1")
			clock.Advance(10 * time.Second)
			put(t, s, alice.ID, "d1", "p2")
			clock.Advance(10 * time.Second)
			put(t, s, alice.ID, "d1", "p3")

			for i, c := range tt.calls {
				before := start().Truncate(time.Second).Add(c.before)
				if n, err := s.JournalPurge(t.Context(), before); err != nil || n != c.want {
					t.Errorf("call %d: JournalPurge(%v) = %d, %v; want %d", i, before, n, err, c.want)
				}
			}
			left := append(msgIDs(listAll(t, s, alice.ID)), msgIDs(listAll(t, s, bob.ID))...)
			if !slices.Equal(left, tt.left) {
				t.Errorf("rows left: %v, want %v", left, tt.left)
			}
		})
	}

	t.Run("ManyRows", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		put(t, s, a.ID, "d1", manyMsgIDs()...)
		clock.Advance(time.Second)
		put(t, s, a.ID, "d1", "newer")
		if n, err := s.JournalPurge(t.Context(), clock.Now().Truncate(time.Second)); err != nil || n != manyRows {
			t.Errorf("JournalPurge = %d, %v; want %d", n, err, manyRows)
		}
		if left := msgIDs(listAll(t, s, a.ID)); !slices.Equal(left, []string{"newer"}) {
			t.Errorf("rows left: %v, want [newer]", left)
		}
	})
}

func manyMsgIDs() []string {
	out := make([]string, manyRows)
	for i := range out {
		out[i] = fmt.Sprintf("m%d", i)
	}
	return out
}
