package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func testMSRPSessions(t *testing.T, open opener) {
	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		base := clock.Now().Truncate(time.Microsecond)
		sec := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
		const alice, bob = "alice@example.com", "bob@example.com"
		rs := []store.MSRPSession{
			msrpSession(alice, sec(-60), sec(0)),
			msrpSession(bob, sec(-5), sec(1)),
			msrpSession(alice, sec(-3600), sec(2)), // long: started before every other
			msrpSession(alice, sec(2), sec(3)),
			msrpSession(bob, sec(3), sec(4)),
			msrpSession("carol@example.com", sec(4), sec(5)),
		}
		rs[1].Peer, rs[1].Ended, rs[1].BytesIn, rs[1].BytesOut, rs[1].Chunks = "", "expired", 0, 0, 0
		rs[2].Transport, rs[2].BytesIn, rs[2].BytesOut, rs[2].Chunks = "wss", 1<<40, 1<<41, 1<<33
		rs[3].StartedAt = sec(2).Add(1999 * time.Nanosecond) // kept to the microsecond
		rs[3].EndedAt = sec(3).Add(999 * time.Nanosecond)
		rs[4].ID = 12345 // ignored
		rs[5].StartedAt, rs[5].EndedAt = sec(4).In(time.FixedZone("CET", 3600)), sec(5).In(time.FixedZone("CET", 3600))
		input := slices.Clone(rs)
		if err := s.MSRPSessionAppend(t.Context(), rs); err != nil {
			t.Fatalf("MSRPSessionAppend: %v", err)
		}
		if !slices.Equal(rs, input) {
			t.Errorf("MSRPSessionAppend changed its input:\n got %+v\nwant %+v", rs, input)
		}
		all := listMSRPSessions(t, s, store.MSRPSessionQuery{Limit: 100})
		want := slices.Clone(rs)
		for i := range want {
			want[i].StartedAt = want[i].StartedAt.Truncate(time.Microsecond)
			want[i].EndedAt = want[i].EndedAt.Truncate(time.Microsecond)
		}
		if len(all) == len(want) {
			for i := range want {
				want[i].ID = all[i].ID
				if i > 0 && all[i].ID <= all[i-1].ID {
					t.Errorf("record %d: id %d, not above %d", i, all[i].ID, all[i-1].ID)
				}
			}
		}
		checkMSRPSessions(t, all, want)
		if t.Failed() {
			return
		}

		id := func(i int) int64 { return all[i].ID }
		tests := []struct {
			name string
			q    store.MSRPSessionQuery
			want []int
		}{
			{"all", store.MSRPSessionQuery{}, []int{0, 1, 2, 3, 4, 5}},
			{"account", store.MSRPSessionQuery{Account: alice}, []int{0, 2, 3}},
			{"another account", store.MSRPSessionQuery{Account: bob}, []int{1, 4}},
			{"unknown account", store.MSRPSessionQuery{Account: "eve@example.com"}, nil},
			{"account differing in case", store.MSRPSessionQuery{Account: "Alice@example.com"}, nil},
			{"account prefix", store.MSRPSessionQuery{Account: "alice"}, nil},
			{"after id", store.MSRPSessionQuery{AfterID: id(1)}, []int{2, 3, 4, 5}},
			{"account after id", store.MSRPSessionQuery{Account: alice, AfterID: id(0)}, []int{2, 3}},
			{"after the newest id", store.MSRPSessionQuery{AfterID: id(5)}, nil},
			{"since is exclusive", store.MSRPSessionQuery{Since: sec(1)}, []int{2, 3, 4, 5}},
			{"since just before an end", store.MSRPSessionQuery{Since: sec(1).Add(-time.Nanosecond)}, []int{1, 2, 3, 4, 5}},
			{"since inside a microsecond", store.MSRPSessionQuery{Since: sec(3).Add(500 * time.Nanosecond)}, []int{4, 5}},
			{"since goes by the end, not the start", store.MSRPSessionQuery{Since: sec(1).Add(time.Millisecond)}, []int{2, 3, 4, 5}},
			{"since in another zone", store.MSRPSessionQuery{Since: sec(4).In(time.FixedZone("EST", -5*3600))}, []int{5}},
			{"since and account", store.MSRPSessionQuery{Since: sec(2), Account: alice}, []int{3}},
			{"limit", store.MSRPSessionQuery{Limit: 2}, []int{0, 1}},
			{"account and limit", store.MSRPSessionQuery{Account: alice, Limit: 2}, []int{0, 2}},
			{"account, after id and limit", store.MSRPSessionQuery{Account: bob, AfterID: id(0), Limit: 1}, []int{1}},
			{"every filter", store.MSRPSessionQuery{Since: sec(0), Account: alice, AfterID: id(2), Limit: 5}, []int{3}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := tt.q
				if q.Limit == 0 {
					q.Limit = 100
				}
				var wantIDs []int64
				for _, i := range tt.want {
					wantIDs = append(wantIDs, id(i))
				}
				if got := msrpSessionIDs(listMSRPSessions(t, s, q)); !slices.Equal(got, wantIDs) {
					t.Errorf("MSRPSessionList = %v, want %v (records %v)", got, wantIDs, tt.want)
				}
			})
		}
		for _, q := range []store.MSRPSessionQuery{{Limit: 0}, {Limit: -1}, {Account: alice}, {Account: "a\x00", Limit: 1}, {Account: "\xff", Limit: 1}} {
			if _, err := s.MSRPSessionList(t.Context(), q); err == nil {
				t.Errorf("MSRPSessionList(%+v) succeeded, want an error", q)
			}
		}
	})

	t.Run("Append", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		now := clock.Now()
		for _, rs := range [][]store.MSRPSession{nil, {}} {
			if err := s.MSRPSessionAppend(t.Context(), rs); err != nil {
				t.Errorf("MSRPSessionAppend(%#v): %v", rs, err)
			}
		}
		if got := listMSRPSessions(t, s, store.MSRPSessionQuery{Limit: 100}); len(got) != 0 {
			t.Fatalf("%d records stored by empty appends", len(got))
		}
		var batch []store.MSRPSession
		for i := range manyRows {
			r := msrpSession("alice@example.com", now.Add(-time.Minute), now)
			r.Session = fmt.Sprintf("s%d", i)
			batch = append(batch, r)
		}
		if err := s.MSRPSessionAppend(t.Context(), batch); err != nil {
			t.Fatalf("MSRPSessionAppend of %d records: %v", len(batch), err)
		}
		got := listMSRPSessions(t, s, store.MSRPSessionQuery{Limit: 2 * manyRows})
		if len(got) != manyRows || got[0].Session != "s0" || got[manyRows-1].Session != fmt.Sprintf("s%d", manyRows-1) {
			t.Errorf("%d records listed, want %d in input order", len(got), manyRows)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		now := clock.Now()
		tests := []struct {
			name string
			edit func(r *store.MSRPSession)
		}{
			{"NUL in session", func(r *store.MSRPSession) { r.Session = "s\x00" }},
			{"invalid UTF-8 in account", func(r *store.MSRPSession) { r.Account = "\xc3@example.com" }},
			{"huge peer", func(r *store.MSRPSession) { r.Peer = strings.Repeat("1", 1<<16) }},
			{"NUL in ended", func(r *store.MSRPSession) { r.Ended = "closed\x00" }},
			{"start after 9999", func(r *store.MSRPSession) { r.StartedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
			{"end before year 1", func(r *store.MSRPSession) { r.EndedAt = time.Time{}.Add(-time.Hour) }},
			{"negative bytes in", func(r *store.MSRPSession) { r.BytesIn = -1 }},
			{"negative bytes out", func(r *store.MSRPSession) { r.BytesOut = -1 }},
			{"negative chunks", func(r *store.MSRPSession) { r.Chunks = -1 }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				bad := msrpSession("bob@example.com", now, now)
				tt.edit(&bad)
				if err := s.MSRPSessionAppend(t.Context(), []store.MSRPSession{msrpSession("alice@example.com", now, now), bad}); err == nil {
					t.Errorf("MSRPSessionAppend succeeded, want an error")
				}
			})
		}
		if got := listMSRPSessions(t, s, store.MSRPSessionQuery{Limit: 100}); len(got) != 0 {
			t.Errorf("%d records stored by failed appends", len(got))
		}
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		base := clock.Now().Truncate(time.Microsecond)
		var rs []store.MSRPSession
		for i, account := range []string{"alice@example.com", "bob@example.com", "alice@example.com", "carol@example.com"} {
			end := base.Add(time.Duration(i) * 10 * time.Second)
			rs = append(rs, msrpSession(account, end.Add(-time.Hour), end))
		}
		rs[3].StartedAt = base.Add(-24 * time.Hour) // the oldest start, the newest end
		if err := s.MSRPSessionAppend(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		all := listMSRPSessions(t, s, store.MSRPSessionQuery{Limit: 100})
		if len(all) != len(rs) {
			t.Fatalf("%d records listed, want %d", len(all), len(rs))
		}
		for _, c := range []struct {
			before time.Duration
			want   int64
			left   []int
		}{
			{0, 0, []int{0, 1, 2, 3}},
			{10 * time.Second, 1, []int{1, 2, 3}}, // ended before: the record ended at the cutoff stays
			{10 * time.Second, 0, []int{1, 2, 3}},
			{10*time.Second + time.Nanosecond, 1, []int{2, 3}},
			{25 * time.Second, 1, []int{3}}, // by the end, not the start
			{time.Hour, 1, nil},
		} {
			if n, err := s.MSRPSessionPurge(t.Context(), base.Add(c.before)); err != nil || n != c.want {
				t.Errorf("MSRPSessionPurge(base+%v) = %d, %v; want %d", c.before, n, err, c.want)
			}
			var want []int64
			for _, i := range c.left {
				want = append(want, all[i].ID)
			}
			if got := msrpSessionIDs(listMSRPSessions(t, s, store.MSRPSessionQuery{Limit: 100})); !slices.Equal(got, want) {
				t.Errorf("after MSRPSessionPurge(base+%v): records %v left, want %v", c.before, got, want)
			}
		}
	})
}

// msrpSession returns the record of a closed TLS session of account.
func msrpSession(account string, started, ended time.Time) store.MSRPSession {
	return store.MSRPSession{
		Session:   "sha256:" + strings.Repeat("ab", 32),
		Account:   account,
		Transport: "tls",
		Client:    "198.51.100.7:49152",
		Peer:      "203.0.113.9:2855",
		StartedAt: started,
		EndedAt:   ended,
		BytesIn:   1234,
		BytesOut:  5678,
		Chunks:    9,
		Ended:     "closed",
	}
}

func listMSRPSessions(t *testing.T, s store.Store, q store.MSRPSessionQuery) []store.MSRPSession {
	t.Helper()
	rs, err := s.MSRPSessionList(t.Context(), q)
	if err != nil {
		t.Fatalf("MSRPSessionList(%+v): %v", q, err)
	}
	return rs
}

func msrpSessionIDs(rs []store.MSRPSession) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// checkMSRPSessions compares records field by field, times to the
// microsecond and in UTC.
func checkMSRPSessions(t *testing.T, got, want []store.MSRPSession) {
	t.Helper()
	same := func(a, b store.MSRPSession) bool {
		ta, tb := [2]time.Time{a.StartedAt, a.EndedAt}, [2]time.Time{b.StartedAt, b.EndedAt}
		a.StartedAt, a.EndedAt, b.StartedAt, b.EndedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		return a == b && sameTime(ta[0], tb[0]) && sameTime(ta[1], tb[1])
	}
	if !slices.EqualFunc(got, want, same) {
		t.Errorf("msrp sessions:\n got %+v\nwant %+v", got, want)
	}
}
