package storetest

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func testJournalPut(t *testing.T, open opener) {
	t.Run("IDs", func(t *testing.T) {
		t.Parallel()
		item := func(msgID, data string) store.JournalItem { return store.JournalItem{MsgID: msgID, Data: data} }
		// One put call. want has a label per item: an item labelled like an
		// earlier one must get the same id, a new label a new id above every
		// id seen so far.
		type call struct {
			account int // index of the test's two accounts
			device  string
			items   []store.JournalItem
			want    []string
		}
		tests := []struct {
			name  string
			calls []call
			rows  int
		}{
			{"distinct items", []call{{0, "d1", []store.JournalItem{item("a", "x"), item("b", "x"), item("c", "y")}, []string{"A", "B", "C"}}}, 3},
			{"repeat inside one call", []call{{0, "d1", []store.JournalItem{item("a", "x"), item("b", "x"), item("a", "x")}, []string{"A", "B", "A"}}}, 2},
			{"identical retry", []call{
				{0, "d1", []store.JournalItem{item("a", "x"), item("b", "x")}, []string{"A", "B"}},
				{0, "d1", []store.JournalItem{item("b", "x"), item("a", "x")}, []string{"B", "A"}},
			}, 2},
			{"retry with a new item", []call{
				{0, "d1", []store.JournalItem{item("a", "x")}, []string{"A"}},
				{0, "d1", []store.JournalItem{item("a", "x"), item("c", "x")}, []string{"A", "C"}},
			}, 2},
			{"new items around a stored one", []call{
				{0, "d1", []store.JournalItem{item("a", "x")}, []string{"A"}},
				{0, "d1", []store.JournalItem{item("c", "x"), item("a", "x"), item("d", "x")}, []string{"C", "A", "D"}},
			}, 3},
			{"same msgid, other data", []call{
				{0, "d1", []store.JournalItem{item("m", "x")}, []string{"A"}},
				{0, "d1", []store.JournalItem{item("m", "y")}, []string{"B"}},
			}, 2},
			{"same msgid, data differing in a newline", []call{
				{0, "d1", []store.JournalItem{item("m", "x"), item("m", "x\n"), item("m", "x")}, []string{"A", "B", "A"}},
			}, 2},
			{"same msgid and data, other device", []call{
				{0, "d1", []store.JournalItem{item("m", "x")}, []string{"A"}},
				{0, "d2", []store.JournalItem{item("m", "x")}, []string{"B"}},
			}, 2},
			{"same msgid and data, other account", []call{
				{0, "d1", []store.JournalItem{item("m", "x")}, []string{"A"}},
				{1, "d1", []store.JournalItem{item("m", "x")}, []string{"B"}},
			}, 2},
			{"no items", []call{{0, "d1", nil, nil}}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				s, _ := setup(t, open)
				accounts := []store.Account{mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")}
				ids := map[string]int64{}
				var highest int64
				for i, c := range tt.calls {
					got := mustPut(t, s, store.JournalPutParams{AccountID: accounts[c.account].ID, Device: c.device, Items: c.items})
					for j, label := range c.want {
						if prev, ok := ids[label]; ok {
							if got[j] != prev {
								t.Errorf("call %d item %d (%s): id %d, want %d as before", i, j, label, got[j], prev)
							}
							continue
						}
						if got[j] <= highest {
							t.Errorf("call %d item %d (%s): id %d, want a new id above %d", i, j, label, got[j], highest)
						}
						ids[label], highest = got[j], got[j]
					}
				}
				if rows := len(listAll(t, s, accounts[0].ID)) + len(listAll(t, s, accounts[1].ID)); rows != tt.rows {
					t.Errorf("%d rows stored, want %d", rows, tt.rows)
				}
			})
		}
	})

	t.Run("Data", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		tests := []struct{ name, data string }{
			{"empty", ""},
			{"ASCII", "hello"},
			{"newlines", "line one\nline two\n"},
			{"CR and tab", "a\r\n\tb\r"},
			{"base64 lines of 76", blob(300)},
			{"JSON escapes", `{"a":"\"\\\/\u00e9"}`},
			{"non-ASCII", "héllo wörld ✓ 日本語 🙂"},
			{"1 MiB", blob(3 << 18)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := store.JournalPutParams{AccountID: a.ID, Device: "d1", Items: []store.JournalItem{{MsgID: tt.name, Data: tt.data}}}
				ids := mustPut(t, s, p)
				rows := listAll(t, s, a.ID)
				i := slices.IndexFunc(rows, func(e store.JournalEntry) bool { return e.ID == ids[0] })
				if i < 0 {
					t.Fatalf("row %d not listed", ids[0])
				}
				if got := rows[i].Data; got != tt.data {
					t.Errorf("data differs: got %d bytes, want %d; first difference at byte %d", len(got), len(tt.data), firstDiff(got, tt.data))
				}
				if again := mustPut(t, s, p); again[0] != ids[0] {
					t.Errorf("retry got id %d, want %d", again[0], ids[0])
				}
			})
		}
	})

	t.Run("Entry", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		const d1, d2 = "urn:uuid:1b4e28ba-2fa1-4d2b-883f-0016d3cca427", "urn:uuid:6fa459ea-ee8a-3ca4-894e-db77e160355e"
		first := mustPut(t, s, store.JournalPutParams{AccountID: a.ID, Device: d1, IP: "192.0.2.10", Items: []store.JournalItem{
			{MsgID: "m1", Data: "one"}, {MsgID: "m2", Data: "two"},
		}})
		clock.Advance(700 * time.Millisecond) // into the next second
		second := mustPut(t, s, store.JournalPutParams{AccountID: a.ID, Device: d2, IP: "2001:db8::1", Items: []store.JournalItem{
			{MsgID: "m3", Data: "three"},
		}})
		t0 := start().Truncate(time.Second)
		checkEntries(t, listAll(t, s, a.ID), []store.JournalEntry{
			{ID: first[0], AccountID: a.ID, Device: d1, MsgID: "m1", Data: "one", IP: "192.0.2.10", Time: t0},
			{ID: first[1], AccountID: a.ID, Device: d1, MsgID: "m2", Data: "two", IP: "192.0.2.10", Time: t0},
			{ID: second[0], AccountID: a.ID, Device: d2, MsgID: "m3", Data: "three", IP: "2001:db8::1", Time: t0.Add(time.Second)},
		})
	})

	t.Run("UnknownAccount", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		gone := mustAccount(t, s, "gone", "example.com")
		if err := s.AccountDelete(t.Context(), "gone", "example.com"); err != nil {
			t.Fatalf("AccountDelete: %v", err)
		}
		for _, tt := range []struct {
			name string
			id   int64
		}{
			{"never existed", gone.ID + 1000},
			{"deleted", gone.ID},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.JournalPut(t.Context(), store.JournalPutParams{AccountID: tt.id, Device: "d1", Items: []store.JournalItem{{MsgID: "m", Data: "x"}}})
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("JournalPut = %v, want ErrNotFound", err)
				}
			})
		}
	})

	t.Run("InvalidText", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		tests := []struct {
			name        string
			device, ip  string
			msgID, data string
		}{
			{"NUL in data", "d1", "", "m", "a\x00b"},
			{"invalid UTF-8 in data", "d1", "", "m", "caf\xe9"},
			{"NUL in msgid", "d1", "", "m\x00", "x"},
			{"invalid UTF-8 in device", "d\xff", "", "m", "x"},
			{"NUL in IP", "d1", "\x00", "m", "x"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.JournalPut(t.Context(), store.JournalPutParams{AccountID: a.ID, Device: tt.device, IP: tt.ip, Items: []store.JournalItem{
					{MsgID: "valid", Data: "valid"}, {MsgID: tt.msgID, Data: tt.data},
				}})
				if err == nil {
					t.Errorf("JournalPut succeeded, want an error")
				}
			})
		}
		if rows := listAll(t, s, a.ID); len(rows) != 0 {
			t.Errorf("rows stored by failed puts: %v", brief(rows))
		}
	})

	// Concurrent puts share commits; every caller must still get its own ids.
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		const writers, calls, items = 16, 4, 25
		got := make([][][]int64, writers)
		shared := make([]int64, writers)
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-ready
				for c := range calls {
					p := store.JournalPutParams{AccountID: a.ID, Device: fmt.Sprintf("d%d", w)}
					for i := range items {
						p.Items = append(p.Items, store.JournalItem{MsgID: fmt.Sprintf("w%d-c%d-i%d", w, c, i), Data: fmt.Sprintf("data %d %d %d", w, c, i)})
					}
					ids, err := s.JournalPut(t.Context(), p)
					if err != nil {
						t.Errorf("writer %d: JournalPut: %v", w, err)
						return
					}
					got[w] = append(got[w], ids)
				}
				// Every writer offers the same item: all must get one id.
				ids, err := s.JournalPut(t.Context(), store.JournalPutParams{AccountID: a.ID, Device: "shared", Items: []store.JournalItem{{MsgID: "same", Data: "same"}}})
				if err != nil {
					t.Errorf("writer %d: JournalPut: %v", w, err)
					return
				}
				shared[w] = ids[0]
			})
		}
		close(ready)
		wg.Wait()
		if t.Failed() {
			return
		}

		want := map[int64]string{shared[0]: "same"}
		for w := range writers {
			if shared[w] != shared[0] {
				t.Errorf("writer %d got id %d for the shared item, writer 0 got %d", w, shared[w], shared[0])
			}
			for c, ids := range got[w] {
				if len(ids) != items || !slices.IsSorted(ids) {
					t.Errorf("writer %d call %d: ids %v, want %d increasing ids", w, c, ids, items)
				}
				for i, id := range ids {
					if prev, dup := want[id]; dup {
						t.Fatalf("id %d given to %s and to w%d-c%d-i%d", id, prev, w, c, i)
					}
					want[id] = fmt.Sprintf("w%d-c%d-i%d", w, c, i)
				}
			}
		}
		rows := listAll(t, s, a.ID)
		if len(rows) != len(want) {
			t.Errorf("%d rows stored, want %d", len(rows), len(want))
		}
		for _, r := range rows {
			if want[r.ID] != r.MsgID {
				t.Errorf("row %d holds %s, want %q", r.ID, r.MsgID, want[r.ID])
			}
		}
	})

	// A put to an unknown account fails alone, even when it shares a commit.
	t.Run("ConcurrentUnknownAccount", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		const writers = 16
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-ready
				p := store.JournalPutParams{AccountID: a.ID, Device: "d1", Items: []store.JournalItem{{MsgID: fmt.Sprint(w), Data: "x"}}}
				if w%2 == 1 {
					p.AccountID = a.ID + 1000
				}
				_, err := s.JournalPut(t.Context(), p)
				if w%2 == 1 && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("writer %d: JournalPut to an unknown account = %v, want ErrNotFound", w, err)
				}
				if w%2 == 0 && err != nil {
					t.Errorf("writer %d: JournalPut: %v", w, err)
				}
			})
		}
		close(ready)
		wg.Wait()
		if rows := listAll(t, s, a.ID); len(rows) != writers/2 {
			t.Errorf("%d rows stored, want %d", len(rows), writers/2)
		}
	})

	// An item identical to an expired row is stored anew: the expired row
	// would never be returned.
	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		t0 := start().Truncate(time.Second)
		tests := []struct {
			name  string
			since time.Time
			anew  bool
		}{
			{"zero since", time.Time{}, false},
			{"since the row's second", t0, false},
			{"since inside the row's second", t0.Add(time.Nanosecond), true},
			{"since after the row", t0.Add(5 * time.Second), true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				s, clock := setup(t, open)
				a := mustAccount(t, s, "alice", "example.com")
				old := put(t, s, a.ID, "d1", "old")[0]
				clock.Advance(10 * time.Second)
				fresh := put(t, s, a.ID, "d1", "fresh")[0]
				p := store.JournalPutParams{AccountID: a.ID, Device: "d1", IP: "192.0.2.1", Since: tt.since,
					Items: []store.JournalItem{{MsgID: "old", Data: "data of old"}, {MsgID: "fresh", Data: "data of fresh"}}}
				got := mustPut(t, s, p)
				if got[1] != fresh {
					t.Errorf("fresh row: id %d, want %d as before", got[1], fresh)
				}
				entry := func(id int64, msgID string, ts time.Time) store.JournalEntry {
					return store.JournalEntry{ID: id, AccountID: a.ID, Device: "d1", MsgID: msgID, Data: "data of " + msgID, IP: "192.0.2.1", Time: ts}
				}
				want := []store.JournalEntry{entry(old, "old", t0), entry(fresh, "fresh", t0.Add(10*time.Second))}
				if tt.anew {
					if got[0] <= fresh {
						t.Errorf("expired row: id %d, want a new id above %d", got[0], fresh)
					}
					want = []store.JournalEntry{want[1], entry(got[0], "old", t0.Add(10*time.Second))}
				} else if got[0] != old {
					t.Errorf("row not expired: id %d, want %d as before", got[0], old)
				}
				checkEntries(t, listAll(t, s, a.ID), want)
				if again := mustPut(t, s, p); !slices.Equal(again, got) {
					t.Errorf("retry got ids %v, want %v", again, got)
				}
			})
		}
	})

	// Puts that share a commit may have different Since: none may be given
	// a row that is expired for it.
	t.Run("ConcurrentExpired", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		item := []store.JournalItem{{MsgID: "m", Data: "x"}}
		old := mustPut(t, s, store.JournalPutParams{AccountID: a.ID, Device: "d1", Items: item})[0]
		clock.Advance(10 * time.Second)
		const writers = 16
		got := make([]int64, writers)
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-ready
				p := store.JournalPutParams{AccountID: a.ID, Device: "d1", Items: item}
				if w%2 == 1 {
					p.Since = clock.Now().Add(-5 * time.Second)
				}
				ids, err := s.JournalPut(t.Context(), p)
				if err != nil {
					t.Errorf("writer %d: JournalPut: %v", w, err)
					return
				}
				got[w] = ids[0]
			})
		}
		close(ready)
		wg.Wait()
		rows := listAll(t, s, a.ID)
		if len(rows) != 1 || rows[0].ID == old {
			t.Fatalf("rows %v, want one that replaced row %d", brief(rows), old)
		}
		for w, id := range got {
			if id != rows[0].ID && (w%2 == 1 || id != old) {
				t.Errorf("writer %d (since set: %t) got id %d, want %d", w, w%2 == 1, id, rows[0].ID)
			}
		}
	})

	// Times never go back, even when the clock does: a client that saw a
	// time asks only for rows from that second on.
	t.Run("ClockBack", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		t0 := start().Truncate(time.Second)
		steps := []struct {
			advance time.Duration
			want    time.Time
		}{
			{0, t0},
			{-time.Hour, t0},
			{time.Hour - time.Second, t0}, // still a second behind
			{2 * time.Second, t0.Add(time.Second)},
		}
		var want []store.JournalEntry
		for i, st := range steps {
			clock.Advance(st.advance)
			m := fmt.Sprintf("m%d", i)
			id := put(t, s, a.ID, "d1", m)[0]
			want = append(want, store.JournalEntry{ID: id, AccountID: a.ID, Device: "d1", MsgID: m, Data: "data of " + m, IP: "192.0.2.1", Time: st.want})
		}
		checkEntries(t, listAll(t, s, a.ID), want)
	})

	// Concurrent puts while the clock steps back and forth: in id order,
	// times must not decrease.
	t.Run("ClockBackConcurrent", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		const writers, calls = 8, 10
		ready := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-ready
			for i := range writers * calls {
				clock.Advance(time.Duration(1-2*(i%2)) * time.Duration(i) * time.Second)
			}
		})
		for w := range writers {
			wg.Go(func() {
				<-ready
				for c := range calls {
					if _, err := s.JournalPut(t.Context(), store.JournalPutParams{AccountID: a.ID, Device: "d1",
						Items: []store.JournalItem{{MsgID: fmt.Sprintf("w%d-c%d", w, c), Data: "x"}}}); err != nil {
						t.Errorf("writer %d: JournalPut: %v", w, err)
						return
					}
				}
			})
		}
		close(ready)
		wg.Wait()
		rows := listAll(t, s, a.ID)
		if len(rows) != writers*calls {
			t.Fatalf("%d rows stored, want %d", len(rows), writers*calls)
		}
		if !slices.IsSortedFunc(rows, func(a, b store.JournalEntry) int { return cmp.Compare(a.ID, b.ID) }) {
			t.Errorf("rows in time order are not in id order: %v", brief(rows))
		}
	})

	t.Run("IDsNotReused", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		first := put(t, s, a.ID, "d1", "a")[0]
		if n, err := s.JournalDelete(t.Context(), a.ID, []int64{first}); err != nil || n != 1 {
			t.Fatalf("JournalDelete = %d, %v; want 1", n, err)
		}
		second := put(t, s, a.ID, "d1", "b")[0]
		if second <= first {
			t.Errorf("id after deleting the newest row = %d, want above %d", second, first)
		}
		if again := put(t, s, a.ID, "d1", "a")[0]; again <= second {
			t.Errorf("id of a deleted item put again = %d, want above %d", again, second)
		}
	})
}

// blob returns the base64 of n pseudo-random bytes as Python 2 wrote it, in
// lines of 76 characters each ending in "\n".
func blob(n int) string {
	raw := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{'c', 'a', 'i', 'r', 'n'}).Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	for len(enc) > 0 {
		line := enc[:min(76, len(enc))]
		enc = enc[len(line):]
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
