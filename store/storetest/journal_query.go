package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// queryFixture holds rows of alice (devices d1 and d2) and bob whose times do
// not follow their ids, because the clock steps back before m6 is put:
//
//	id order:   m1 m2 m3 m4 m5 b1 m6
//	time order: m1 m2 (t0), m3 (t0+1s), m6 (t0+5s), m4 m5 (t0+10s), b1 (t0+20s)
type queryFixture struct {
	alice, bob store.Account
	t0         time.Time // whole second
	rows       map[string]store.JournalEntry
}

func newQueryFixture(t *testing.T, s store.Store, clock *Clock) *queryFixture {
	t.Helper()
	f := &queryFixture{
		alice: mustAccount(t, s, "alice", "example.com"),
		bob:   mustAccount(t, s, "bob", "example.com"),
		t0:    clock.Now().Truncate(time.Second),
		rows:  map[string]store.JournalEntry{},
	}
	add := func(a store.Account, device string, msgIDs ...string) {
		ids := put(t, s, a.ID, device, msgIDs...)
		for i, m := range msgIDs {
			f.rows[m] = store.JournalEntry{
				ID: ids[i], AccountID: a.ID, Device: device, MsgID: m, Data: "data of " + m,
				IP: "192.0.2.1", Time: clock.Now().Truncate(time.Second),
			}
		}
	}
	add(f.alice, "d1", "m1")
	add(f.alice, "d2", "m2")
	clock.Advance(time.Second)
	add(f.alice, "d1", "m3")
	clock.Advance(9 * time.Second)
	add(f.alice, "d2", "m4", "m5")
	clock.Advance(10 * time.Second)
	add(f.bob, "d1", "b1")
	clock.Advance(-15 * time.Second)
	add(f.alice, "d1", "m6")
	return f
}

func (f *queryFixture) sec(n int) time.Time { return f.t0.Add(time.Duration(n) * time.Second) }

func (f *queryFixture) entries(msgIDs ...string) []store.JournalEntry {
	out := make([]store.JournalEntry, len(msgIDs))
	for i, m := range msgIDs {
		out[i] = f.rows[m]
	}
	return out
}

// testJournalQuery checks JournalList and JournalSummary with one table: the
// summary must hold the ids and times of the listed rows.
func testJournalQuery(t *testing.T, open opener) {
	t.Parallel()
	s, clock := setup(t, open)
	f := newQueryFixture(t, s, clock)
	id := func(m string) int64 { return f.rows[m].ID }
	// AccountID defaults to alice's and Limit to 100.
	tests := []struct {
		name string
		q    store.JournalQuery
		want []string
	}{
		{"all, by time then id", store.JournalQuery{}, []string{"m1", "m2", "m3", "m6", "m4", "m5"}},
		{"other account", store.JournalQuery{AccountID: f.bob.ID}, []string{"b1"}},
		{"unknown account", store.JournalQuery{AccountID: f.bob.ID + 1000}, nil},
		{"since a whole second", store.JournalQuery{Since: f.sec(1)}, []string{"m3", "m6", "m4", "m5"}},
		{"since inside a second", store.JournalQuery{Since: f.sec(1).Add(time.Nanosecond)}, []string{"m6", "m4", "m5"}},
		{"since just before a second", store.JournalQuery{Since: f.sec(1).Add(-time.Nanosecond)}, []string{"m3", "m6", "m4", "m5"}},
		{"since in the future", store.JournalQuery{Since: f.sec(60)}, nil},
		{"except device", store.JournalQuery{ExceptDevice: "d1"}, []string{"m2", "m4", "m5"}},
		{"except unknown device", store.JournalQuery{ExceptDevice: "d9"}, []string{"m1", "m2", "m3", "m6", "m4", "m5"}},
		{"after id", store.JournalQuery{AfterID: id("m3")}, []string{"m6", "m4", "m5"}},
		{"after the newest id", store.JournalQuery{AfterID: id("m6")}, nil},
		{"after time is inclusive", store.JournalQuery{AfterTime: f.sec(5)}, []string{"m6", "m4", "m5"}},
		{"after time inside a second", store.JournalQuery{AfterTime: f.sec(5).Add(500 * time.Millisecond)}, []string{"m4", "m5"}},
		{"since later than after time", store.JournalQuery{Since: f.sec(10), AfterTime: f.sec(1)}, []string{"m4", "m5"}},
		{"after time later than since", store.JournalQuery{Since: f.sec(1), AfterTime: f.sec(10)}, []string{"m4", "m5"}},
		{"after id and after time", store.JournalQuery{AfterID: id("m4"), AfterTime: f.sec(1)}, []string{"m6", "m5"}},
		{"every filter", store.JournalQuery{Since: f.sec(1), ExceptDevice: "d2", AfterID: id("m1"), AfterTime: f.sec(1)}, []string{"m3", "m6"}},
		{"limit", store.JournalQuery{Limit: 2}, []string{"m1", "m2"}},
		{"limit after filters", store.JournalQuery{ExceptDevice: "d2", Limit: 2}, []string{"m1", "m3"}},
		{"limit above the rows", store.JournalQuery{AccountID: f.bob.ID, Limit: 5}, []string{"b1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			if q.AccountID == 0 {
				q.AccountID = f.alice.ID
			}
			if q.Limit == 0 {
				q.Limit = 100
			}
			want := f.entries(tt.want...)
			rows, err := s.JournalList(t.Context(), q)
			if err != nil {
				t.Fatalf("JournalList: %v", err)
			}
			checkEntries(t, rows, want)

			stamps, err := s.JournalSummary(t.Context(), q)
			if err != nil {
				t.Fatalf("JournalSummary: %v", err)
			}
			wantStamps := make([]store.JournalStamp, len(want))
			for i, e := range want {
				wantStamps[i] = store.JournalStamp{ID: e.ID, Time: e.Time}
			}
			if !slices.EqualFunc(stamps, wantStamps, func(a, b store.JournalStamp) bool {
				return a.ID == b.ID && a.Time.Equal(b.Time) && a.Time.Location() == b.Time.Location()
			}) {
				t.Errorf("JournalSummary = %v, want %v", stamps, wantStamps)
			}
		})
	}
	for _, limit := range []int{0, -1} {
		q := store.JournalQuery{AccountID: f.alice.ID, Limit: limit}
		if _, err := s.JournalList(t.Context(), q); err == nil {
			t.Errorf("JournalList with limit %d succeeded, want an error", limit)
		}
		if _, err := s.JournalSummary(t.Context(), q); err == nil {
			t.Errorf("JournalSummary with limit %d succeeded, want an error", limit)
		}
	}
}
