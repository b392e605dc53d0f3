package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// queryFixture holds rows of alice (devices d1 and d2) and bob, in id order:
//
//	m1 (d1), m2 (d2) at t0; m3 (d1) at t0+1s; m4 (d1), b1 at t0+5s;
//	m5, m6 (d2) at t0+10s
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
	clock.Advance(4 * time.Second)
	add(f.alice, "d1", "m4")
	add(f.bob, "d1", "b1")
	clock.Advance(5 * time.Second)
	add(f.alice, "d2", "m5", "m6")
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
		{"all, by time then id", store.JournalQuery{}, []string{"m1", "m2", "m3", "m4", "m5", "m6"}},
		{"other account", store.JournalQuery{AccountID: f.bob.ID}, []string{"b1"}},
		{"unknown account", store.JournalQuery{AccountID: f.bob.ID + 1000}, nil},
		{"since a whole second", store.JournalQuery{Since: f.sec(1)}, []string{"m3", "m4", "m5", "m6"}},
		{"since inside a second", store.JournalQuery{Since: f.sec(1).Add(time.Nanosecond)}, []string{"m4", "m5", "m6"}},
		{"since just before a second", store.JournalQuery{Since: f.sec(1).Add(-time.Nanosecond)}, []string{"m3", "m4", "m5", "m6"}},
		{"since in the future", store.JournalQuery{Since: f.sec(60)}, nil},
		{"except device", store.JournalQuery{ExceptDevice: "d1"}, []string{"m2", "m5", "m6"}},
		{"except unknown device", store.JournalQuery{ExceptDevice: "d9"}, []string{"m1", "m2", "m3", "m4", "m5", "m6"}},
		{"after id", store.JournalQuery{AfterID: id("m3")}, []string{"m4", "m5", "m6"}},
		{"after an id of another account", store.JournalQuery{AfterID: id("b1")}, []string{"m5", "m6"}},
		{"after the newest id", store.JournalQuery{AfterID: id("m6")}, nil},
		{"after time is inclusive", store.JournalQuery{AfterTime: f.sec(5)}, []string{"m4", "m5", "m6"}},
		{"after time inside a second", store.JournalQuery{AfterTime: f.sec(5).Add(500 * time.Millisecond)}, []string{"m5", "m6"}},
		{"since later than after time", store.JournalQuery{Since: f.sec(10), AfterTime: f.sec(1)}, []string{"m5", "m6"}},
		{"after time later than since", store.JournalQuery{Since: f.sec(1), AfterTime: f.sec(10)}, []string{"m5", "m6"}},
		{"after id inside the after time second", store.JournalQuery{AfterID: id("m5"), AfterTime: f.sec(10)}, []string{"m6"}},
		{"after id before the after time", store.JournalQuery{AfterID: id("m1"), AfterTime: f.sec(5)}, []string{"m4", "m5", "m6"}},
		{"every filter", store.JournalQuery{Since: f.sec(1), ExceptDevice: "d2", AfterID: id("m1"), AfterTime: f.sec(1)}, []string{"m3", "m4"}},
		{"limit", store.JournalQuery{Limit: 2}, []string{"m1", "m2"}},
		{"limit inside a second", store.JournalQuery{AfterTime: f.sec(10), Limit: 1}, []string{"m5"}},
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

// testJournalMaxBytes checks that JournalList returns the longest run of
// rows whose data fits in MaxBytes, counted in bytes, or else the first row,
// and that JournalSummary ignores MaxBytes.
func testJournalMaxBytes(t *testing.T, open opener) {
	t.Parallel()
	s, _ := setup(t, open)
	alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
	// In bytes (characters): x 1000 (1000), r1 100 (50), r2 40 (10),
	// r3 90 (30); e1 0, e2 6 (3).
	ids := map[string]int64{}
	for _, r := range []struct {
		a                   store.Account
		device, msgID, data string
	}{
		{alice, "d2", "x", strings.Repeat("x", 1000)},
		{alice, "d1", "r1", strings.Repeat("é", 50)},
		{alice, "d1", "r2", strings.Repeat("🙂", 10)},
		{alice, "d1", "r3", strings.Repeat("✓", 30)},
		{bob, "d1", "e1", ""},
		{bob, "d1", "e2", "ééé"},
	} {
		p := store.JournalPutParams{AccountID: r.a.ID, Device: r.device, Items: []store.JournalItem{{MsgID: r.msgID, Data: r.data}}}
		ids[r.msgID] = mustPut(t, s, p)[0]
	}
	// AccountID defaults to alice's, ExceptDevice to "d2" and Limit to 100.
	tests := []struct {
		name string
		q    store.JournalQuery
		want []string
	}{
		{"no cap", store.JournalQuery{}, []string{"r1", "r2", "r3"}},
		{"negative: no cap", store.JournalQuery{MaxBytes: -1}, []string{"r1", "r2", "r3"}},
		{"cap below the first row", store.JournalQuery{MaxBytes: 1}, []string{"r1"}},
		{"cap of the first row", store.JournalQuery{MaxBytes: 100}, []string{"r1"}},
		{"cap below two rows in bytes, not characters", store.JournalQuery{MaxBytes: 139}, []string{"r1"}},
		{"cap of two rows", store.JournalQuery{MaxBytes: 140}, []string{"r1", "r2"}},
		{"cap below three rows in bytes, not characters", store.JournalQuery{MaxBytes: 229}, []string{"r1", "r2"}},
		{"cap of three rows", store.JournalQuery{MaxBytes: 230}, []string{"r1", "r2", "r3"}},
		{"cap above every row", store.JournalQuery{MaxBytes: 1 << 40}, []string{"r1", "r2", "r3"}},
		{"cap below a large first row", store.JournalQuery{ExceptDevice: "d9", MaxBytes: 999}, []string{"x"}},
		{"cap counts only rows that match", store.JournalQuery{ExceptDevice: "d9", MaxBytes: 1140}, []string{"x", "r1", "r2"}},
		{"cap counts from the first row returned", store.JournalQuery{AfterID: ids["r1"], MaxBytes: 130}, []string{"r2", "r3"}},
		{"cap below two rows after an id", store.JournalQuery{AfterID: ids["r1"], MaxBytes: 129}, []string{"r2"}},
		{"limit within the cap", store.JournalQuery{Limit: 2, MaxBytes: 1 << 20}, []string{"r1", "r2"}},
		{"empty first row", store.JournalQuery{AccountID: bob.ID, MaxBytes: 1}, []string{"e1"}},
		{"empty first row and one more", store.JournalQuery{AccountID: bob.ID, MaxBytes: 6}, []string{"e1", "e2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			if q.AccountID == 0 {
				q.AccountID = alice.ID
			}
			if q.ExceptDevice == "" {
				q.ExceptDevice = "d2"
			}
			if q.Limit == 0 {
				q.Limit = 100
			}
			rows, err := s.JournalList(t.Context(), q)
			if err != nil {
				t.Fatalf("JournalList: %v", err)
			}
			if got := msgIDs(rows); !slices.Equal(got, tt.want) {
				t.Errorf("JournalList = %v, want %v", got, tt.want)
			}

			uncapped := q
			uncapped.MaxBytes = 0
			all, err := s.JournalList(t.Context(), uncapped)
			if err != nil {
				t.Fatalf("JournalList: %v", err)
			}
			stamps, err := s.JournalSummary(t.Context(), q)
			if err != nil {
				t.Fatalf("JournalSummary: %v", err)
			}
			if len(stamps) != len(all) {
				t.Errorf("JournalSummary holds %d rows, want %d: it must ignore MaxBytes", len(stamps), len(all))
			}
		})
	}
}
