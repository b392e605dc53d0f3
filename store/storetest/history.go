package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func testHistory(t *testing.T, open opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		cet := time.FixedZone("CET", 3600)
		rows := []store.HistoryRow{
			historyRow(alice.ID, "m1"),
			historyRow(bob.ID, "m2"),
			historyRow(alice.ID, "m3"),
			historyRow(alice.ID, "m4"),
			historyRow(alice.ID, "m5"),
		}
		rows[0].Content = []byte{0, 0xff, 0xfe, '\r', '\n', 0, 0x80} // any bytes
		rows[0].Timestamp = time.Date(2025, 3, 14, 16, 0, 0, 123456789, cet)
		rows[1].Content, rows[1].Disposition = nil, nil
		rows[1].MessageID, rows[1].Contact, rows[1].Direction, rows[1].ContentType, rows[1].State = "", "", "", "", ""
		rows[1].Timestamp = time.Time{}
		rows[2].Disposition = []string{}
		rows[2].Content = bytes.Repeat([]byte("é"), 1<<19) // 1 MiB, the most
		rows[2].Contact = "ünïcødé@example.com"
		rows[3].ID, rows[3].CreatedAt = 12345, time.Unix(1, 0) // ignored
		rows[3].Direction, rows[3].ContentType, rows[3].Content = "", "application/sylk-conversation-read", []byte("sip:bob@example.com")
		rows[3].Disposition = []string{`quo"te`, `back\slash`, "<&>", "\u2028é", "", "],["}
		// The longest fields the bounds allow.
		rows[4].MessageID, rows[4].Contact, rows[4].ContentType = strings.Repeat("i", 256), strings.Repeat("c", 512), strings.Repeat("t", 256)
		rows[4].Direction, rows[4].State = strings.Repeat("d", 32), strings.Repeat("s", 32)
		rows[4].Disposition = slices.Repeat([]string{strings.Repeat("x", 32)}, 16)
		rows[4].Timestamp = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
		input := cloneHistory(rows)

		got := mustAppend(t, s, rows)
		if !slices.EqualFunc(rows, input, identicalHistoryRow) {
			t.Errorf("HistoryAppend changed its input")
		}
		created := clock.Now().Truncate(time.Microsecond)
		want := cloneHistory(input)
		for i := range want {
			want[i].ID, want[i].CreatedAt = got[i].ID, created
			want[i].Timestamp = want[i].Timestamp.Truncate(time.Microsecond).UTC()
			if want[i].Disposition == nil {
				want[i].Disposition = []string{}
			}
		}
		checkHistory(t, "HistoryAppend", got, want)
		if ids := []int64{got[0].ID, got[2].ID, got[3].ID, got[4].ID}; !slices.IsSorted(ids) || len(slices.Compact(ids)) != 4 {
			t.Errorf("alice's ids %v do not rise in input order", ids)
		}
		checkHistory(t, "HistoryList(alice)", listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100}),
			[]store.HistoryRow{want[0], want[2], want[3], want[4]})
		checkHistory(t, "HistoryList(bob)", listHistory(t, s, store.HistoryQuery{AccountID: bob.ID, Limit: 100}), want[1:2])

		// A later append continues the account's ids.
		clock.Advance(1500 * time.Millisecond)
		more := mustAppend(t, s, []store.HistoryRow{historyRow(alice.ID, "m6")})
		if more[0].ID <= got[4].ID || !sameTime(more[0].CreatedAt, clock.Now().Truncate(time.Microsecond)) {
			t.Errorf("next append: id %d created %v, want an id above %d created %v", more[0].ID, more[0].CreatedAt, got[4].ID, clock.Now())
		}

		for _, empty := range [][]store.HistoryRow{nil, {}} {
			if res, err := s.HistoryAppend(t.Context(), empty); err != nil || len(res) != 0 {
				t.Errorf("HistoryAppend(%#v) = %v, %v; want nothing", empty, res, err)
			}
		}
		if n := len(listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100})); n != 5 {
			t.Errorf("alice holds %d rows, want 5", n)
		}
	})

	// Each account numbers its rows itself: appends to one do not move
	// another's ids.
	t.Run("IDsPerAccount", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		var ids [2][]int64
		for i := range 5 {
			for k, a := range []int64{alice.ID, bob.ID} {
				rows := []store.HistoryRow{historyRow(a, fmt.Sprint(i))}
				if k == 0 {
					rows = append(rows, historyRow(a, fmt.Sprint(i, "b")))
				}
				for _, r := range mustAppend(t, s, rows) {
					ids[k] = append(ids[k], r.ID)
				}
			}
			// One append for both: each account's ids rise in input order.
			both := mustAppend(t, s, []store.HistoryRow{historyRow(bob.ID, "x"), historyRow(alice.ID, "x"), historyRow(bob.ID, "y")})
			ids[1] = append(ids[1], both[0].ID, both[2].ID)
			ids[0] = append(ids[0], both[1].ID)
		}
		for k, name := range []string{"alice", "bob"} {
			if !slices.IsSorted(ids[k]) || len(slices.Compact(slices.Clone(ids[k]))) != len(ids[k]) {
				t.Errorf("%s's ids %v do not rise strictly", name, ids[k])
			}
		}
		if !slices.Equal(ids[0], ids[1]) {
			t.Errorf("alice's ids %v and bob's %v differ: the same appends to each should number alike", ids[0], ids[1])
		}
		carol := mustAccount(t, s, "carol", "example.com")
		if first := mustAppend(t, s, []store.HistoryRow{historyRow(carol.ID, "c")})[0].ID; first != ids[0][0] {
			t.Errorf("a new account's first id is %d, alice's was %d", first, ids[0][0])
		}
	})

	t.Run("MissingAccount", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		alice, gone := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "gone", "example.com")
		if err := s.AccountDelete(t.Context(), "gone", "example.com"); err != nil {
			t.Fatal(err)
		}
		for _, rows := range [][]store.HistoryRow{
			{historyRow(gone.ID, "g")},
			{historyRow(alice.ID, "a1"), historyRow(gone.ID+1000, "g")},
			{historyRow(alice.ID, "a2"), historyRow(gone.ID, "g"), historyRow(alice.ID, "a3")},
		} {
			if res, err := s.HistoryAppend(t.Context(), rows); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("HistoryAppend with a missing account = %v, %v; want ErrNotFound", res, err)
			}
		}
		if got := listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100}); len(got) != 0 {
			t.Errorf("failed appends stored %d rows of alice", len(got))
		}
		// Concurrent appends share commits; one to a missing account
		// fails alone.
		var wg sync.WaitGroup
		var stored atomic.Int64
		for w := range 16 {
			wg.Go(func() {
				a := alice.ID
				if w%4 == 0 {
					a = gone.ID
				}
				_, err := s.HistoryAppend(t.Context(), []store.HistoryRow{historyRow(a, fmt.Sprint(w))})
				switch {
				case a == gone.ID && !errors.Is(err, store.ErrNotFound):
					t.Errorf("append %d to the deleted account = %v, want ErrNotFound", w, err)
				case a == alice.ID && err != nil:
					t.Errorf("append %d to alice: %v", w, err)
				case err == nil:
					stored.Add(1)
				}
			})
		}
		wg.Wait()
		if got := listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100}); int64(len(got)) != stored.Load() || len(got) != 12 {
			t.Errorf("alice holds %d rows, want 12", len(got))
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		alice := mustAccount(t, s, "alice", "example.com")
		tests := []struct {
			name string
			edit func(r *store.HistoryRow)
		}{
			{"NUL in message id", func(r *store.HistoryRow) { r.MessageID = "m\x00" }},
			{"invalid UTF-8 in contact", func(r *store.HistoryRow) { r.Contact = "\xc3@example.com" }},
			{"NUL in direction", func(r *store.HistoryRow) { r.Direction = "\x00" }},
			{"invalid UTF-8 in content type", func(r *store.HistoryRow) { r.ContentType = "text/\xff" }},
			{"NUL in state", func(r *store.HistoryRow) { r.State = "ok\x00" }},
			{"NUL in a disposition", func(r *store.HistoryRow) { r.Disposition = []string{"display", "\x00"} }},
			{"long message id", func(r *store.HistoryRow) { r.MessageID = strings.Repeat("i", 257) }},
			{"long contact", func(r *store.HistoryRow) { r.Contact = strings.Repeat("c", 513) }},
			{"long direction", func(r *store.HistoryRow) { r.Direction = strings.Repeat("d", 33) }},
			{"long content type", func(r *store.HistoryRow) { r.ContentType = strings.Repeat("t", 257) }},
			{"long state", func(r *store.HistoryRow) { r.State = strings.Repeat("s", 33) }},
			{"long disposition", func(r *store.HistoryRow) { r.Disposition = []string{strings.Repeat("x", 33)} }},
			{"many dispositions", func(r *store.HistoryRow) { r.Disposition = slices.Repeat([]string{"display"}, 17) }},
			{"big content", func(r *store.HistoryRow) { r.Content = make([]byte, 1<<20+1) }},
			{"timestamp after 9999", func(r *store.HistoryRow) { r.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
			{"timestamp before year 1", func(r *store.HistoryRow) { r.Timestamp = time.Time{}.Add(-time.Hour) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				bad := historyRow(alice.ID, "bad")
				tt.edit(&bad)
				if _, err := s.HistoryAppend(t.Context(), []store.HistoryRow{historyRow(alice.ID, "good"), bad}); err == nil {
					t.Errorf("HistoryAppend succeeded, want an error")
				}
			})
		}
		many := slices.Repeat([]store.HistoryRow{historyRow(alice.ID, "m")}, 10001)
		if _, err := s.HistoryAppend(t.Context(), many); err == nil {
			t.Errorf("HistoryAppend of %d rows succeeded, want an error", len(many))
		}
		if got := listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100}); len(got) != 0 {
			t.Errorf("%d rows stored by failed appends", len(got))
		}
		for _, q := range []store.HistoryQuery{
			{AccountID: alice.ID},
			{AccountID: alice.ID, Limit: -1},
			{AccountID: alice.ID, Limit: 1, Since: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		} {
			if _, err := s.HistoryList(t.Context(), q); err == nil {
				t.Errorf("HistoryList(%+v) succeeded, want an error", q)
			}
		}
		for _, id := range []string{"m\x00", "\xff", strings.Repeat("i", 257)} {
			if _, err := s.HistoryFind(t.Context(), alice.ID, id, time.Time{}); err == nil {
				t.Errorf("HistoryFind(%q) succeeded, want an error", id)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		base := clock.Now().Truncate(time.Microsecond)
		sec := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
		// Alice's rows a0..a5 at seconds 0, 0, 1, 2, 3, 3; bob's between.
		var a, b []store.HistoryRow
		for _, step := range []struct {
			at    int
			alice int // rows
			bob   int
		}{{0, 2, 1}, {1, 1, 1}, {2, 1, 0}, {3, 2, 2}} {
			clock.Advance(sec(step.at).Sub(clock.Now()))
			var rows []store.HistoryRow
			for range step.bob {
				rows = append(rows, historyRow(bob.ID, fmt.Sprint("b", len(b)+len(rows))))
			}
			for i := range step.alice {
				rows = append(rows, historyRow(alice.ID, fmt.Sprint("a", len(a)+i)))
			}
			got := mustAppend(t, s, rows)
			b, a = append(b, got[:step.bob]...), append(a, got[step.bob:]...)
		}
		checkHistory(t, "HistoryList(alice)", listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100}), a)
		id := func(i int) int64 { return a[i].ID }
		tests := []struct {
			name string
			q    store.HistoryQuery
			want []int // of alice's rows
		}{
			{"all", store.HistoryQuery{}, []int{0, 1, 2, 3, 4, 5}},
			{"after id", store.HistoryQuery{AfterID: id(1)}, []int{2, 3, 4, 5}},
			{"after the newest id", store.HistoryQuery{AfterID: id(5)}, nil},
			{"after an id above every one", store.HistoryQuery{AfterID: id(5) + 1000}, nil},
			{"since is exclusive", store.HistoryQuery{Since: sec(1)}, []int{3, 4, 5}},
			{"since just before", store.HistoryQuery{Since: sec(1).Add(-time.Nanosecond)}, []int{2, 3, 4, 5}},
			{"since inside a microsecond", store.HistoryQuery{Since: sec(2).Add(-500 * time.Nanosecond)}, []int{3, 4, 5}},
			{"since in another zone", store.HistoryQuery{Since: sec(2).In(time.FixedZone("EST", -5*3600))}, []int{4, 5}},
			{"since after every row", store.HistoryQuery{Since: sec(3)}, nil},
			{"limit", store.HistoryQuery{Limit: 2}, []int{0, 1}},
			{"limit of one", store.HistoryQuery{Limit: 1}, []int{0}},
			{"after id and limit", store.HistoryQuery{AfterID: id(2), Limit: 2}, []int{3, 4}},
			{"since and limit", store.HistoryQuery{Since: sec(0), Limit: 2}, []int{2, 3}},
			{"every filter", store.HistoryQuery{AfterID: id(3), Since: sec(1), Limit: 1}, []int{4}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := tt.q
				q.AccountID = alice.ID
				if q.Limit == 0 {
					q.Limit = 100
				}
				var want []store.HistoryRow
				for _, i := range tt.want {
					want = append(want, a[i])
				}
				checkHistory(t, fmt.Sprintf("HistoryList(%+v)", q), listHistory(t, s, q), want)
			})
		}
		// Account isolation: whatever the cursor, another account's rows
		// never appear.
		for _, after := range []int64{0, b[0].ID, id(2)} {
			for _, r := range listHistory(t, s, store.HistoryQuery{AccountID: bob.ID, AfterID: after, Limit: 100}) {
				if r.AccountID != bob.ID || strings.HasPrefix(r.MessageID, "a") {
					t.Errorf("bob's history after %d holds %+v", after, r)
				}
			}
		}
		checkHistory(t, "HistoryList(bob)", listHistory(t, s, store.HistoryQuery{AccountID: bob.ID, Limit: 100}), b)
		if got := listHistory(t, s, store.HistoryQuery{AccountID: bob.ID + 1000, Limit: 100}); len(got) != 0 {
			t.Errorf("an unknown account holds %d rows", len(got))
		}
	})

	t.Run("Find", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		t0 := clock.Now().Truncate(time.Microsecond)
		first := mustAppend(t, s, []store.HistoryRow{historyRow(alice.ID, "m1"), historyRow(alice.ID, "m2"), historyRow(bob.ID, "m1")})
		clock.Advance(time.Second)
		imdn := historyRow(alice.ID, "m1")
		imdn.ContentType, imdn.Direction, imdn.State = "message/imdn", "incoming", "delivered"
		second := mustAppend(t, s, []store.HistoryRow{imdn, historyRow(alice.ID, "M1")})

		checkHistory(t, "HistoryFind(m1)", findHistory(t, s, alice.ID, "m1", time.Time{}), []store.HistoryRow{first[0], second[0]})
		checkHistory(t, "HistoryFind(m1, since)", findHistory(t, s, alice.ID, "m1", t0), []store.HistoryRow{second[0]})
		checkHistory(t, "HistoryFind(m2)", findHistory(t, s, alice.ID, "m2", time.Time{}), first[1:2])
		checkHistory(t, "HistoryFind(M1)", findHistory(t, s, alice.ID, "M1", time.Time{}), second[1:2]) // byte for byte
		checkHistory(t, "HistoryFind(bob, m1)", findHistory(t, s, bob.ID, "m1", time.Time{}), first[2:3])
		for _, id := range []string{"m3", "m", ""} {
			if got := findHistory(t, s, alice.ID, id, time.Time{}); len(got) != 0 {
				t.Errorf("HistoryFind(%q) = %d rows, want none", id, len(got))
			}
		}
		if got := findHistory(t, s, bob.ID+1000, "m1", time.Time{}); len(got) != 0 {
			t.Errorf("HistoryFind of an unknown account = %d rows, want none", len(got))
		}

		// At most 100, the first ones.
		many := slices.Repeat([]store.HistoryRow{historyRow(bob.ID, "many")}, 150)
		stored := mustAppend(t, s, many)
		checkHistory(t, "HistoryFind(many)", findHistory(t, s, bob.ID, "many", time.Time{}), stored[:100])
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		base := clock.Now().Truncate(time.Microsecond)
		var all []store.HistoryRow
		for i := range 3 {
			clock.Advance(base.Add(time.Duration(i) * 10 * time.Second).Sub(clock.Now()))
			all = append(all, mustAppend(t, s, []store.HistoryRow{historyRow(alice.ID, fmt.Sprint("a", i)), historyRow(bob.ID, fmt.Sprint("b", i))})...)
		}
		for _, c := range []struct {
			before time.Duration
			want   int64
			left   []int
		}{
			{0, 0, []int{0, 1, 2, 3, 4, 5}},
			{10 * time.Second, 2, []int{2, 3, 4, 5}}, // created before: the rows created at the cutoff stay
			{10 * time.Second, 0, []int{2, 3, 4, 5}},
			{10*time.Second + time.Nanosecond, 2, []int{4, 5}},
			{time.Hour, 2, nil},
		} {
			if n, err := s.HistoryPurge(t.Context(), base.Add(c.before)); err != nil || n != c.want {
				t.Errorf("HistoryPurge(base+%v) = %d, %v; want %d", c.before, n, err, c.want)
			}
			var want []store.HistoryRow
			for _, i := range c.left {
				want = append(want, all[i])
			}
			got := slices.Concat(listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100}),
				listHistory(t, s, store.HistoryQuery{AccountID: bob.ID, Limit: 100}))
			slices.SortStableFunc(got, func(a, b store.HistoryRow) int { return a.CreatedAt.Compare(b.CreatedAt) })
			checkHistory(t, fmt.Sprintf("after HistoryPurge(base+%v)", c.before), got, want)
		}
		// Purged ids are not given out again.
		next := mustAppend(t, s, []store.HistoryRow{historyRow(alice.ID, "a3")})
		if next[0].ID <= all[4].ID {
			t.Errorf("after a purge, alice's next id is %d, not above %d", next[0].ID, all[4].ID)
		}
	})

	// More rows than an engine is likely to handle in one statement, of
	// several accounts.
	t.Run("Many", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		var accounts []int64
		for _, u := range []string{"alice", "bob", "carol"} {
			accounts = append(accounts, mustAccount(t, s, u, "example.com").ID)
		}
		var rows []store.HistoryRow
		for i := range 2 * manyRows {
			rows = append(rows, historyRow(accounts[i%len(accounts)], fmt.Sprint(i)))
		}
		got := mustAppend(t, s, rows)
		for _, a := range accounts {
			var want []store.HistoryRow
			for _, r := range got {
				if r.AccountID == a {
					want = append(want, r)
				}
			}
			list := listHistory(t, s, store.HistoryQuery{AccountID: a, Limit: 4 * manyRows})
			checkHistory(t, fmt.Sprintf("HistoryList(%d)", a), list, want)
			if !slices.IsSortedFunc(list, func(x, y store.HistoryRow) int { return int(x.ID - y.ID) }) {
				t.Errorf("account %d: ids do not rise in input order", a)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		HistoryNodes(t, []store.Store{s})
	})

	t.Run("Token", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		now := clock.Now()
		tok := func(a int64, n int, created time.Duration) store.APIToken {
			return store.APIToken{
				Digest: digest(fmt.Sprint(a, "/", n)), AccountID: a, Device: fmt.Sprintf("urn:uuid:device-%d", n),
				CreatedAt: now.Add(created), ExpiresAt: now.Add(created + 31*24*time.Hour),
			}
		}
		asStored := func(t store.APIToken) store.APIToken {
			t.CreatedAt, t.ExpiresAt = t.CreatedAt.Truncate(time.Microsecond).UTC(), t.ExpiresAt.Truncate(time.Microsecond).UTC()
			return t
		}
		mustToken := func(t2 store.APIToken, max int) {
			t.Helper()
			if err := s.TokenPut(t.Context(), t2, max); err != nil {
				t.Fatalf("TokenPut(%s): %v", t2.Device, err)
			}
		}
		// has checks which of the tokens are stored.
		has := func(want map[int]bool, toks ...store.APIToken) {
			t.Helper()
			for i, k := range toks {
				got, err := s.TokenGet(t.Context(), k.Digest)
				switch {
				case want[i] && err != nil:
					t.Errorf("TokenGet(%s) = %v, want it stored", k.Device, err)
				case want[i] && !sameToken(got, asStored(k)):
					t.Errorf("TokenGet(%s) = %+v, want %+v", k.Device, got, asStored(k))
				case !want[i] && !errors.Is(err, store.ErrNotFound):
					t.Errorf("TokenGet(%s) = %+v, %v; want ErrNotFound", k.Device, got, err)
				}
			}
		}
		a := []store.APIToken{tok(alice.ID, 0, 0), tok(alice.ID, 1, time.Second), tok(alice.ID, 2, 2*time.Second), tok(alice.ID, 3, -time.Hour)}
		a[0].CreatedAt = a[0].CreatedAt.Add(999 * time.Nanosecond).In(time.FixedZone("CET", 3600)) // kept to the microsecond, in UTC
		b := tok(bob.ID, 0, -time.Hour)
		mustToken(b, 1)
		mustToken(a[0], 2)
		mustToken(a[1], 2)
		has(map[int]bool{0: true, 1: true, 3: true}, a[0], a[1], a[2], b)
		mustToken(a[2], 2) // evicts a[0], the oldest
		has(map[int]bool{1: true, 2: true, 3: true}, a[0], a[1], a[2], b)
		mustToken(a[3], 2) // older than the others, but new: it stays, a[1] goes
		has(map[int]bool{2: true, 3: true, 4: true}, a[0], a[1], a[2], a[3], b)
		mustToken(tok(alice.ID, 4, 3*time.Second), 1) // only the new one stays
		has(map[int]bool{2: true, 3: true}, a[2], a[3], b, tok(alice.ID, 4, 3*time.Second))
		mustToken(a[0], 5) // evicted tokens may come back
		has(map[int]bool{0: true, 1: true, 2: true}, a[0], tok(alice.ID, 4, 3*time.Second), b)

		if err := s.TokenPut(t.Context(), a[0], 5); !errors.Is(err, store.ErrConflict) {
			t.Errorf("TokenPut of a stored digest = %v, want ErrConflict", err)
		}
		moved := a[0]
		moved.AccountID = bob.ID
		if err := s.TokenPut(t.Context(), moved, 5); !errors.Is(err, store.ErrConflict) {
			t.Errorf("TokenPut of a digest stored for another account = %v, want ErrConflict", err)
		}
		if err := s.TokenPut(t.Context(), tok(bob.ID+1000, 0, 0), 5); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenPut for a missing account = %v, want ErrNotFound", err)
		}
		for _, d := range [][]byte{digest("unknown"), nil, {}, a[0].Digest[:31]} {
			if got, err := s.TokenGet(t.Context(), d); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TokenGet(%x) = %+v, %v; want ErrNotFound", d, got, err)
			}
		}
		for _, tt := range []struct {
			name string
			edit func(k *store.APIToken, max *int)
		}{
			{"short digest", func(k *store.APIToken, _ *int) { k.Digest = k.Digest[:31] }},
			{"no digest", func(k *store.APIToken, _ *int) { k.Digest = nil }},
			{"empty device", func(k *store.APIToken, _ *int) { k.Device = "" }},
			{"NUL in device", func(k *store.APIToken, _ *int) { k.Device = "d\x00" }},
			{"invalid UTF-8 in device", func(k *store.APIToken, _ *int) { k.Device = "\xff" }},
			{"expiry after 9999", func(k *store.APIToken, _ *int) { k.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
			{"creation before year 1", func(k *store.APIToken, _ *int) { k.CreatedAt = time.Time{}.Add(-time.Hour) }},
			{"no tokens allowed", func(_ *store.APIToken, max *int) { *max = 0 }},
			{"negative bound", func(_ *store.APIToken, max *int) { *max = -1 }},
		} {
			k, max := tok(bob.ID, 9, 0), 5
			tt.edit(&k, &max)
			if err := s.TokenPut(t.Context(), k, max); err == nil {
				t.Errorf("TokenPut with %s succeeded, want an error", tt.name)
			}
		}
		has(map[int]bool{0: true}, b, tok(bob.ID, 9, 0))
	})

	// Concurrent puts for one account leave it maxPerAccount tokens.
	t.Run("TokenConcurrent", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice := mustAccount(t, s, "alice", "example.com")
		const puts, max = 16, 3
		now := clock.Now()
		var wg sync.WaitGroup
		for i := range puts {
			wg.Go(func() {
				k := store.APIToken{Digest: digest(fmt.Sprint(i)), AccountID: alice.ID, Device: "d", CreatedAt: now.Add(time.Duration(i)), ExpiresAt: now.Add(time.Hour)}
				if err := s.TokenPut(t.Context(), k, max); err != nil {
					t.Errorf("TokenPut %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		var kept int
		for i := range puts {
			if _, err := s.TokenGet(t.Context(), digest(fmt.Sprint(i))); err == nil {
				kept++
			}
		}
		if kept != max {
			t.Errorf("%d tokens kept, want %d", kept, max)
		}
	})

	t.Run("TokenPurge", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice := mustAccount(t, s, "alice", "example.com")
		base := clock.Now().Truncate(time.Microsecond)
		var toks []store.APIToken
		for i := range 3 {
			k := store.APIToken{Digest: digest(fmt.Sprint(i)), AccountID: alice.ID, Device: "d", CreatedAt: base.Add(-time.Hour), ExpiresAt: base.Add(time.Duration(i) * 10 * time.Second)}
			if err := s.TokenPut(t.Context(), k, 10); err != nil {
				t.Fatal(err)
			}
			toks = append(toks, k)
		}
		for _, c := range []struct {
			before time.Duration
			want   int64
			left   []int
		}{
			{0, 0, []int{0, 1, 2}},
			{10 * time.Second, 1, []int{1, 2}}, // expired before: the token expiring at the cutoff stays
			{10 * time.Second, 0, []int{1, 2}},
			{10*time.Second + time.Nanosecond, 1, []int{2}},
			{time.Hour, 1, nil},
		} {
			if n, err := s.TokenPurge(t.Context(), base.Add(c.before)); err != nil || n != c.want {
				t.Errorf("TokenPurge(base+%v) = %d, %v; want %d", c.before, n, err, c.want)
			}
			for i, k := range toks {
				_, err := s.TokenGet(t.Context(), k.Digest)
				if stored := slices.Contains(c.left, i); stored != (err == nil) || (!stored && !errors.Is(err, store.ErrNotFound)) {
					t.Errorf("after TokenPurge(base+%v): TokenGet(token %d) = %v, want it stored: %t", c.before, i, err, stored)
				}
			}
		}
	})

	t.Run("PublicKey", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		if key, err := s.PublicKeyGet(t.Context(), alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PublicKeyGet before a put = %q, %v; want ErrNotFound", key, err)
		}
		first := []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\nmQINBF\x00\xff\r\n-----END PGP PUBLIC KEY BLOCK-----\r\n")
		second := bytes.Repeat([]byte{0xa5}, 1<<20) // the most
		for _, p := range []struct {
			account int64
			key     []byte
		}{{alice.ID, first}, {bob.ID, []byte("bob's key")}, {alice.ID, second}} {
			if err := s.PublicKeyPut(t.Context(), p.account, p.key); err != nil {
				t.Fatalf("PublicKeyPut(%d): %v", p.account, err)
			}
		}
		for _, c := range []struct {
			account int64
			want    []byte
		}{{alice.ID, second}, {bob.ID, []byte("bob's key")}} {
			if key, err := s.PublicKeyGet(t.Context(), c.account); err != nil || !bytes.Equal(key, c.want) {
				t.Errorf("PublicKeyGet(%d) = %d bytes, %v; want %d bytes", c.account, len(key), err, len(c.want))
			}
		}
		if err := s.PublicKeyPut(t.Context(), bob.ID+1000, first); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PublicKeyPut for a missing account = %v, want ErrNotFound", err)
		}
		for _, key := range [][]byte{nil, {}, make([]byte, 1<<20+1)} {
			if err := s.PublicKeyPut(t.Context(), bob.ID, key); err == nil {
				t.Errorf("PublicKeyPut of %d bytes succeeded, want an error", len(key))
			}
		}
		if key, err := s.PublicKeyGet(t.Context(), bob.ID); err != nil || string(key) != "bob's key" {
			t.Errorf("PublicKeyGet(bob) after failed puts = %q, %v", key, err)
		}
	})

	t.Run("AccountDelete", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		kept := mustAppend(t, s, []store.HistoryRow{historyRow(alice.ID, "a1"), historyRow(bob.ID, "b1"), historyRow(alice.ID, "a2")})
		now := clock.Now()
		for _, a := range []int64{alice.ID, bob.ID} {
			k := store.APIToken{Digest: digest(fmt.Sprint(a)), AccountID: a, Device: "d", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := s.TokenPut(t.Context(), k, 5); err != nil {
				t.Fatal(err)
			}
			if err := s.PublicKeyPut(t.Context(), a, []byte(fmt.Sprint("key ", a))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AccountDelete(t.Context(), "alice", "example.com"); err != nil {
			t.Fatal(err)
		}
		if got := listHistory(t, s, store.HistoryQuery{AccountID: alice.ID, Limit: 100}); len(got) != 0 {
			t.Errorf("deleted account holds %d history rows", len(got))
		}
		if got := findHistory(t, s, alice.ID, "a1", time.Time{}); len(got) != 0 {
			t.Errorf("HistoryFind in a deleted account = %d rows", len(got))
		}
		if _, err := s.TokenGet(t.Context(), digest(fmt.Sprint(alice.ID))); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenGet of a deleted account's token = %v, want ErrNotFound", err)
		}
		if _, err := s.PublicKeyGet(t.Context(), alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PublicKeyGet of a deleted account = %v, want ErrNotFound", err)
		}
		checkHistory(t, "bob's history", listHistory(t, s, store.HistoryQuery{AccountID: bob.ID, Limit: 100}), kept[1:2])
		if _, err := s.TokenGet(t.Context(), digest(fmt.Sprint(bob.ID))); err != nil {
			t.Errorf("TokenGet of bob's token: %v", err)
		}
		if key, err := s.PublicKeyGet(t.Context(), bob.ID); err != nil || string(key) != fmt.Sprint("key ", bob.ID) {
			t.Errorf("PublicKeyGet(bob) = %q, %v", key, err)
		}
		again := mustAccount(t, s, "alice", "example.com")
		if got := listHistory(t, s, store.HistoryQuery{AccountID: again.ID, Limit: 100}); len(got) != 0 {
			t.Errorf("recreated account holds %d history rows", len(got))
		}
		if _, err := s.PublicKeyGet(t.Context(), again.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PublicKeyGet of the recreated account = %v, want ErrNotFound", err)
		}
	})
}

// HistoryNodes appends to three accounts from 16 goroutines spread over
// nodes, stores that share one database (or a single store), while
// readers on every node follow each account with after-id cursors. Each
// account's ids must be distinct and rise in input order within an
// append, and every reader must see every row of its account, in id
// order: a cursor that passed over a row committed late would miss it.
func HistoryNodes(t *testing.T, nodes []store.Store) {
	t.Helper()
	const writers, appends = 16, 40
	s := nodes[0]
	var accounts []int64
	for i := range 3 {
		a := mustAccount(t, s, fmt.Sprintf("nodes%d-%d", i, time.Now().UnixNano()), "example.com")
		accounts = append(accounts, a.ID)
	}
	var mu sync.Mutex
	given := map[int64][]int64{}  // ids returned to the writers, by account
	message := map[int64]string{} // message id of each id returned, by account<<32|id
	key := func(a, id int64) int64 { return a<<32 | id }
	var done atomic.Bool
	var readers sync.WaitGroup
	seen := make([][][]store.HistoryRow, len(nodes)) // by node, then account
	for n, node := range nodes {
		seen[n] = make([][]store.HistoryRow, len(accounts))
		for k, a := range accounts {
			readers.Go(func() {
				var after int64
				for {
					last := done.Load() // once the writers are done, one more pass sees everything
					for {
						rows, err := node.HistoryList(t.Context(), store.HistoryQuery{AccountID: a, AfterID: after, Limit: 7})
						if err != nil {
							t.Errorf("node %d: HistoryList: %v", n, err)
							return
						}
						for _, r := range rows {
							if r.ID <= after || r.AccountID != a {
								t.Errorf("node %d: after id %d of account %d, HistoryList returned id %d of account %d", n, after, a, r.ID, r.AccountID)
								return
							}
							after = r.ID
						}
						seen[n][k] = append(seen[n][k], rows...)
						if len(rows) < 7 {
							break
						}
					}
					if last {
						return
					}
				}
			})
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			node := nodes[w%len(nodes)]
			for i := range appends {
				var rows []store.HistoryRow
				for j := range 1 + rng.IntN(3) {
					rows = append(rows, historyRow(accounts[rng.IntN(len(accounts))], fmt.Sprintf("w%d-%d-%d", w, i, j)))
				}
				got, err := node.HistoryAppend(t.Context(), rows)
				if err != nil {
					t.Errorf("writer %d: HistoryAppend: %v", w, err)
					return
				}
				mu.Lock()
				last := map[int64]int64{}
				for j, r := range got {
					if r.AccountID != rows[j].AccountID || r.MessageID != rows[j].MessageID || r.ID <= last[r.AccountID] {
						t.Errorf("writer %d: row %d of an append came back as %+v (after id %d)", w, j, r, last[r.AccountID])
					}
					last[r.AccountID] = r.ID
					given[r.AccountID] = append(given[r.AccountID], r.ID)
					message[key(r.AccountID, r.ID)] = r.MessageID
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	done.Store(true)
	readers.Wait()
	if t.Failed() {
		return
	}
	total := 0
	for _, a := range accounts {
		ids := slices.Sorted(slices.Values(given[a]))
		if len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Errorf("account %d: ids given out twice: %v", a, ids)
		}
		total += len(ids)
	}
	if total == 0 {
		t.Fatal("no rows appended")
	}
	for n := range nodes {
		for k, a := range accounts {
			want := slices.Sorted(slices.Values(given[a]))
			var got []int64
			for _, r := range seen[n][k] {
				got = append(got, r.ID)
				if m := message[key(a, r.ID)]; r.MessageID != m {
					t.Errorf("node %d: account %d row %d holds %q, the writer was given it for %q", n, a, r.ID, r.MessageID, m)
				}
			}
			if !slices.Equal(got, want) {
				missed := slices.DeleteFunc(slices.Clone(want), func(id int64) bool { return slices.Contains(got, id) })
				t.Errorf("node %d: the reader of account %d saw %d rows of %d; missed %v", n, a, len(got), len(want), missed)
			}
		}
	}
}

// historyRow returns an outgoing text message of the account to bob.
func historyRow(accountID int64, messageID string) store.HistoryRow {
	return store.HistoryRow{
		AccountID:   accountID,
		MessageID:   messageID,
		Contact:     "bob@example.com",
		Direction:   "outgoing",
		ContentType: "text/plain",
		Content:     []byte("hello " + messageID),
		Timestamp:   time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC),
		Disposition: []string{"positive-delivery", "display"},
		State:       "pending",
	}
}

func mustAppend(t *testing.T, s store.Store, rows []store.HistoryRow) []store.HistoryRow {
	t.Helper()
	got, err := s.HistoryAppend(t.Context(), rows)
	if err != nil {
		t.Fatalf("HistoryAppend(%d rows): %v", len(rows), err)
	}
	if len(got) != len(rows) {
		t.Fatalf("HistoryAppend returned %d rows for %d", len(got), len(rows))
	}
	return got
}

func listHistory(t *testing.T, s store.Store, q store.HistoryQuery) []store.HistoryRow {
	t.Helper()
	rows, err := s.HistoryList(t.Context(), q)
	if err != nil {
		t.Fatalf("HistoryList(%+v): %v", q, err)
	}
	return rows
}

func findHistory(t *testing.T, s store.Store, accountID int64, messageID string, since time.Time) []store.HistoryRow {
	t.Helper()
	rows, err := s.HistoryFind(t.Context(), accountID, messageID, since)
	if err != nil {
		t.Fatalf("HistoryFind(%d, %q): %v", accountID, messageID, err)
	}
	return rows
}

func cloneHistory(rows []store.HistoryRow) []store.HistoryRow {
	out := slices.Clone(rows)
	for i := range out {
		out[i].Content = bytes.Clone(out[i].Content)
		out[i].Disposition = slices.Clone(out[i].Disposition)
	}
	return out
}

// identicalHistoryRow reports whether a and b are the same, times and
// nil slices included.
func identicalHistoryRow(a, b store.HistoryRow) bool {
	return a.ID == b.ID && a.AccountID == b.AccountID && a.MessageID == b.MessageID && a.Contact == b.Contact &&
		a.Direction == b.Direction && a.ContentType == b.ContentType && a.State == b.State &&
		bytes.Equal(a.Content, b.Content) && (a.Content == nil) == (b.Content == nil) &&
		slices.Equal(a.Disposition, b.Disposition) && (a.Disposition == nil) == (b.Disposition == nil) &&
		a.Timestamp == b.Timestamp && a.CreatedAt == b.CreatedAt
}

// sameHistoryRow reports whether got is the row want, as stored: times
// equal and in UTC, a non-nil disposition.
func sameHistoryRow(got, want store.HistoryRow) bool {
	return got.ID == want.ID && got.AccountID == want.AccountID && got.MessageID == want.MessageID &&
		got.Contact == want.Contact && got.Direction == want.Direction && got.ContentType == want.ContentType &&
		got.State == want.State && bytes.Equal(got.Content, want.Content) &&
		got.Disposition != nil && slices.Equal(got.Disposition, want.Disposition) &&
		sameTime(got.Timestamp, want.Timestamp) && sameTime(got.CreatedAt, want.CreatedAt)
}

func checkHistory(t *testing.T, what string, got, want []store.HistoryRow) {
	t.Helper()
	if !slices.EqualFunc(got, want, sameHistoryRow) {
		t.Errorf("%s:\n got %v\nwant %v", what, briefHistory(got), briefHistory(want))
	}
}

// briefHistory prints rows without their content, which may be large.
func briefHistory(rows []store.HistoryRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%d#%d %s %s %s %q %s %v (%d bytes) ts=%s created=%s", r.AccountID, r.ID, r.MessageID,
			r.Direction, r.ContentType, r.Disposition, r.State, r.Disposition == nil, len(r.Content),
			r.Timestamp.Format(time.RFC3339Nano), r.CreatedAt.Format(time.RFC3339Nano))
	}
	return out
}

func sameToken(a, b store.APIToken) bool {
	return bytes.Equal(a.Digest, b.Digest) && a.AccountID == b.AccountID && a.Device == b.Device &&
		sameTime(a.CreatedAt, b.CreatedAt) && sameTime(a.ExpiresAt, b.ExpiresAt)
}

// digest returns the SHA-256 digest of token.
func digest(token string) []byte {
	d := sha256.Sum256([]byte(token))
	return d[:]
}
