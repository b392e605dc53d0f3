package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func testTraces(t *testing.T, open opener) {
	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		base := clock.Now().Truncate(time.Microsecond)
		sec := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
		const alice, bob, carol = "alice@example.com", "bob@example.com", "carol@example.com"
		ts := []store.Trace{
			trace(sec(0), "c1", alice, bob),
			trace(sec(1), "c1", alice, bob),
			trace(sec(2), "c2", bob, alice),
			trace(sec(3), "c3", alice, alice), // REGISTER: from and to are the same
			trace(sec(4), "c4", "", ""),
			trace(sec(5), "c5", carol, "dave@example.com"),
			trace(sec(6), "c6", alice, carol),
		}
		ts[1].Direction, ts[1].Status, ts[1].Message = "out", 200, []byte("SIP/2.0 200 OK\r\nCall-ID: c1\r\n\r\n")
		ts[2].Method, ts[2].Message = "MESSAGE", []byte("MESSAGE sip:alice@example.com SIP/2.0\r\n\r\n\x00\xff binary")
		ts[3].Time = sec(3).Add(999 * time.Nanosecond) // kept to the microsecond
		ts[4].Message = nil
		ts[5].ID = 12345 // ignored
		if err := s.TraceAppend(t.Context(), ts); err != nil {
			t.Fatalf("TraceAppend: %v", err)
		}
		if ts[0].ID != 0 || ts[5].ID != 12345 {
			t.Errorf("TraceAppend changed its input: ids %d, %d", ts[0].ID, ts[5].ID)
		}
		all := listTraces(t, s, store.TraceQuery{Limit: 100})
		want := slices.Clone(ts)
		for i := range want {
			want[i].Time = want[i].Time.Truncate(time.Microsecond)
		}
		if len(all) == len(want) {
			for i := range want {
				want[i].ID = all[i].ID
				if i > 0 && all[i].ID <= all[i-1].ID {
					t.Errorf("trace %d: id %d, not above %d", i, all[i].ID, all[i-1].ID)
				}
			}
		}
		checkTraces(t, all, want)
		if t.Failed() {
			return
		}

		id := func(i int) int64 { return all[i].ID }
		tests := []struct {
			name string
			q    store.TraceQuery
			want []int
		}{
			{"all", store.TraceQuery{}, []int{0, 1, 2, 3, 4, 5, 6}},
			{"address, from or to", store.TraceQuery{Addr: alice}, []int{0, 1, 2, 3, 6}},
			{"another address", store.TraceQuery{Addr: bob}, []int{0, 1, 2}},
			{"unknown address", store.TraceQuery{Addr: "eve@example.com"}, nil},
			{"address differing in case", store.TraceQuery{Addr: "Alice@example.com"}, nil},
			{"call-id", store.TraceQuery{CallID: "c1"}, []int{0, 1}},
			{"unknown call-id", store.TraceQuery{CallID: "c9"}, nil},
			{"address and call-id", store.TraceQuery{Addr: alice, CallID: "c2"}, []int{2}},
			{"address and another's call-id", store.TraceQuery{Addr: bob, CallID: "c5"}, nil},
			{"after id", store.TraceQuery{AfterID: id(1)}, []int{2, 3, 4, 5, 6}},
			{"address after id", store.TraceQuery{Addr: alice, AfterID: id(2)}, []int{3, 6}},
			{"after the newest id", store.TraceQuery{AfterID: id(6)}, nil},
			{"since is exclusive", store.TraceQuery{Since: sec(2)}, []int{3, 4, 5, 6}},
			{"since just before a trace", store.TraceQuery{Since: sec(2).Add(-time.Nanosecond)}, []int{2, 3, 4, 5, 6}},
			{"since inside a microsecond", store.TraceQuery{Since: sec(3).Add(500 * time.Nanosecond)}, []int{4, 5, 6}},
			{"since and address", store.TraceQuery{Since: sec(2), Addr: bob}, nil},
			{"limit", store.TraceQuery{Limit: 2}, []int{0, 1}},
			{"address and limit", store.TraceQuery{Addr: alice, Limit: 3}, []int{0, 1, 2}},
			{"address, after id and limit", store.TraceQuery{Addr: alice, AfterID: id(0), Limit: 4}, []int{1, 2, 3, 6}},
			{"every filter", store.TraceQuery{Since: sec(0), Addr: alice, CallID: "c1", AfterID: id(0), Limit: 5}, []int{1}},
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
				if got := traceIDs(listTraces(t, s, q)); !slices.Equal(got, wantIDs) {
					t.Errorf("TraceList = %v, want %v (traces %v)", got, wantIDs, tt.want)
				}
			})
		}
		for _, q := range []store.TraceQuery{{Limit: 0}, {Limit: -1}, {Addr: "a\x00", Limit: 1}, {CallID: "\xff", Limit: 1}} {
			if _, err := s.TraceList(t.Context(), q); err == nil {
				t.Errorf("TraceList(%+v) succeeded, want an error", q)
			}
		}
	})

	t.Run("Append", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		now := clock.Now()
		if err := s.TraceAppend(t.Context(), nil); err != nil {
			t.Errorf("TraceAppend(nil): %v", err)
		}
		var batch []store.Trace
		for i := range manyRows {
			batch = append(batch, trace(now, fmt.Sprintf("c%d", i), "alice@example.com", "bob@example.com"))
		}
		if err := s.TraceAppend(t.Context(), batch); err != nil {
			t.Fatalf("TraceAppend of %d traces: %v", len(batch), err)
		}
		got := listTraces(t, s, store.TraceQuery{Limit: 2 * manyRows})
		if len(got) != manyRows || got[0].CallID != "c0" || got[manyRows-1].CallID != fmt.Sprintf("c%d", manyRows-1) {
			t.Errorf("%d traces listed, want %d in input order", len(got), manyRows)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		now := clock.Now()
		tests := []struct {
			name string
			edit func(tr *store.Trace)
		}{
			{"NUL in call-id", func(tr *store.Trace) { tr.CallID = "c\x00" }},
			{"invalid UTF-8 in method", func(tr *store.Trace) { tr.Method = "INV\xffTE" }},
			{"invalid UTF-8 in from address", func(tr *store.Trace) { tr.FromAddr = "\xc3@example.com" }},
			{"huge remote", func(tr *store.Trace) { tr.Remote = strings.Repeat("1", 1<<16) }},
			{"negative status", func(tr *store.Trace) { tr.Status = -1 }},
			{"status over 999", func(tr *store.Trace) { tr.Status = 1000 }},
			{"message over 1 MiB", func(tr *store.Trace) { tr.Message = make([]byte, 1<<20+1) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				bad := trace(now, "c2", "alice@example.com", "bob@example.com")
				tt.edit(&bad)
				if err := s.TraceAppend(t.Context(), []store.Trace{trace(now, "c1", "alice@example.com", "bob@example.com"), bad}); err == nil {
					t.Errorf("TraceAppend succeeded, want an error")
				}
			})
		}
		if got := listTraces(t, s, store.TraceQuery{Limit: 100}); len(got) != 0 {
			t.Errorf("%d traces stored by failed appends", len(got))
		}
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		base := clock.Now().Truncate(time.Microsecond)
		var ts []store.Trace
		for i, from := range []string{"alice@example.com", "bob@example.com", "alice@example.com"} {
			ts = append(ts, trace(base.Add(time.Duration(i)*10*time.Second), fmt.Sprint(i), from, ""))
		}
		if err := s.TraceAppend(t.Context(), ts); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			before time.Duration
			want   int64
		}{
			{0, 0},
			{10 * time.Second, 1}, // older than: the trace at the cutoff stays
			{10 * time.Second, 0},
			{10*time.Second + time.Nanosecond, 1},
			{time.Hour, 1},
		} {
			if n, err := s.TracePurge(t.Context(), base.Add(c.before)); err != nil || n != c.want {
				t.Errorf("TracePurge(base+%v) = %d, %v; want %d", c.before, n, err, c.want)
			}
		}
		if got := listTraces(t, s, store.TraceQuery{Limit: 100}); len(got) != 0 {
			t.Errorf("%d traces left, want none", len(got))
		}
	})
}

// trace returns an incoming INVITE of call callID at time at.
func trace(at time.Time, callID, from, to string) store.Trace {
	return store.Trace{
		Time:      at,
		Direction: "in",
		Transport: "udp",
		Local:     "192.0.2.1:5060",
		Remote:    "198.51.100.7:5060",
		CallID:    callID,
		Method:    "INVITE",
		FromAddr:  from,
		ToAddr:    to,
		Message:   []byte("INVITE sip:" + to + " SIP/2.0\r\nCall-ID: " + callID + "\r\n\r\n"),
	}
}

func listTraces(t *testing.T, s store.Store, q store.TraceQuery) []store.Trace {
	t.Helper()
	ts, err := s.TraceList(t.Context(), q)
	if err != nil {
		t.Fatalf("TraceList(%+v): %v", q, err)
	}
	return ts
}

func traceIDs(ts []store.Trace) []int64 {
	var out []int64
	for _, tr := range ts {
		out = append(out, tr.ID)
	}
	return out
}

func checkTraces(t *testing.T, got, want []store.Trace) {
	t.Helper()
	same := func(a, b store.Trace) bool {
		return a.ID == b.ID && sameTime(a.Time, b.Time) && a.Direction == b.Direction && a.Transport == b.Transport &&
			a.Local == b.Local && a.Remote == b.Remote && a.CallID == b.CallID && a.Method == b.Method &&
			a.Status == b.Status && a.FromAddr == b.FromAddr && a.ToAddr == b.ToAddr && bytes.Equal(a.Message, b.Message)
	}
	if !slices.EqualFunc(got, want, same) {
		t.Errorf("traces:\n got %+v\nwant %+v", got, want)
	}
}
