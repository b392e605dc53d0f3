package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func testOffline(t *testing.T, open opener) {
	t.Run("Enqueue", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice := mustAccount(t, s, "alice", "example.com")
		var want []store.OfflineMessage
		var last int64
		for i, body := range [][]byte{
			[]byte("hello"),
			{0, 0xff, 0xfe, '\r', '\n', 0}, // any bytes
			nil,
			bytes.Repeat([]byte("é"), 1<<19), // 1 MiB
		} {
			m := message(alice.ID, "bob@example.com", fmt.Sprintf("k%d", i), clock.Now().Add(time.Hour+time.Duration(i)*time.Nanosecond))
			m.Body = body
			m.ContentType = "application/im-iscomposing+xml; charset=\"utf-8\""
			res := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: m, Now: clock.Now()})
			if res.Duplicate || res.ID <= last {
				t.Errorf("message %d: %+v, want a new id above %d", i, res, last)
			}
			last = res.ID
			m.ID, m.CreatedAt, m.ExpiresAt = res.ID, clock.Now().Truncate(time.Microsecond), m.ExpiresAt.Truncate(time.Microsecond)
			want = append(want, m)
			clock.Advance(1500 * time.Millisecond)
		}
		got := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d1", Now: clock.Now(), Limit: 100})
		checkPending(t, got, want, nil)
	})

	t.Run("Duplicate", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, carol := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "carol", "example.com")
		now := clock.Now()
		first := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(alice.ID, "bob@example.com", "k", now.Add(time.Hour)), Now: now})
		tests := []struct {
			name      string
			account   int64
			sender    string
			after     time.Duration // the enqueue's Now, after now
			duplicate bool
		}{
			{"same key", alice.ID, "bob@example.com", 0, true},
			{"same key, later", alice.ID, "bob@example.com", time.Hour - time.Microsecond, true},
			{"other sender", alice.ID, "dave@example.com", 0, false},
			{"other recipient", carol.ID, "bob@example.com", 0, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				m := message(tt.account, tt.sender, "k", now.Add(2*time.Hour))
				m.Body = []byte("a resend with another body")
				res := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: m, Now: now.Add(tt.after), Delivered: []string{"d1"}})
				if tt.duplicate && (res != store.OfflineEnqueueResult{ID: first.ID, Duplicate: true}) {
					t.Errorf("OfflineEnqueue = %+v, want message %d as a duplicate", res, first.ID)
				}
				if !tt.duplicate && (res.Duplicate || res.ID <= first.ID) {
					t.Errorf("OfflineEnqueue = %+v, want a new message", res)
				}
			})
		}
		// Nothing of the duplicates was written: not the body, not Delivered.
		got := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d1", Now: now, Limit: 100})
		if len(got) != 1 || got[0].Message.ID != first.ID || string(got[0].Message.Body) != "hello k" {
			t.Errorf("pending for d1: %v, want message %d as first stored", brief2(got), first.ID)
		}

		// Once expired, the same key is a new message; the old one is gone.
		later := now.Add(time.Hour)
		res := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(alice.ID, "bob@example.com", "k", later.Add(time.Hour)), Now: later})
		if res.Duplicate || res.ID == first.ID {
			t.Errorf("OfflineEnqueue after expiry = %+v, want a new message", res)
		}
		err := s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: []int64{first.ID}, Instance: "d1", State: store.DeliveryDone})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OfflineMark of the replaced message = %v, want ErrNotFound", err)
		}
		if again := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(alice.ID, "bob@example.com", "k", later.Add(time.Hour)), Now: later}); again != (store.OfflineEnqueueResult{ID: res.ID, Duplicate: true}) {
			t.Errorf("resend of the new message = %+v, want %d as a duplicate", again, res.ID)
		}
	})

	t.Run("Quota", func(t *testing.T) {
		t.Parallel()
		type enq struct {
			key      string
			size     int
			expires  time.Duration // after the start
			maxCount int
			maxBytes int64
			want     string // "ok", "quota" or "dup"
		}
		tests := []struct {
			name string
			enqs []enq
		}{
			{"no bound", []enq{{"a", 10, time.Hour, 0, 0, "ok"}, {"b", 10, time.Hour, 0, 0, "ok"}}},
			{"count: up to the limit", []enq{{"a", 1, time.Hour, 2, 0, "ok"}, {"b", 1, time.Hour, 2, 0, "ok"}, {"c", 1, time.Hour, 2, 0, "quota"}}},
			{"count: one", []enq{{"a", 1, time.Hour, 1, 0, "ok"}, {"b", 1, time.Hour, 1, 0, "quota"}, {"c", 1, time.Hour, 1, 0, "quota"}}},
			{"count: a higher limit", []enq{{"a", 1, time.Hour, 1, 0, "ok"}, {"b", 1, time.Hour, 1, 0, "quota"}, {"b", 1, time.Hour, 2, 0, "ok"}}},
			{"bytes: exactly the limit", []enq{{"a", 60, time.Hour, 0, 100, "ok"}, {"b", 40, time.Hour, 0, 100, "ok"}}},
			{"bytes: one over", []enq{{"a", 60, time.Hour, 0, 100, "ok"}, {"b", 41, time.Hour, 0, 100, "quota"}, {"c", 40, time.Hour, 0, 100, "ok"}}},
			{"bytes: one message over", []enq{{"a", 101, time.Hour, 0, 100, "quota"}}},
			{"bytes: empty bodies", []enq{{"a", 0, time.Hour, 0, 1, "ok"}, {"b", 0, time.Hour, 0, 1, "ok"}}},
			{"both", []enq{{"a", 50, time.Hour, 2, 100, "ok"}, {"b", 60, time.Hour, 2, 100, "quota"}, {"c", 50, time.Hour, 2, 100, "ok"}, {"d", 0, time.Hour, 2, 100, "quota"}}},
			{"expired messages do not count", []enq{{"a", 50, time.Minute, 1, 50, "ok"}, {"b", 50, 2 * time.Hour, 1, 50, "ok"}}},
			{"a duplicate is no quota error", []enq{{"a", 1, time.Hour, 1, 0, "ok"}, {"a", 1, time.Hour, 1, 0, "dup"}}},
			{"an expired duplicate is replaced", []enq{{"a", 50, time.Minute, 1, 50, "ok"}, {"a", 50, time.Hour, 1, 50, "ok"}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				s, clock := setup(t, open)
				alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
				// Bob's messages count for bob only.
				mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(bob.ID, "x@example.com", "b", clock.Now().Add(time.Hour)), Now: clock.Now()})
				var stored []int64 // in the store, expired or not
				byKey := map[string]int64{}
				for i, e := range tt.enqs {
					clock.Advance(10 * time.Minute) // expiries of a minute have passed
					m := message(alice.ID, "carol@example.com", e.key, clock.Now().Add(e.expires))
					m.Body = bytes.Repeat([]byte{'x'}, e.size)
					res, err := s.OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{Message: m, Now: clock.Now(), MaxCount: e.maxCount, MaxBytes: e.maxBytes})
					switch e.want {
					case "ok":
						if err != nil || res.Duplicate {
							t.Fatalf("enqueue %d: %+v, %v; want it stored", i, res, err)
						}
						if old, ok := byKey[e.key]; ok { // replaced
							stored = slices.DeleteFunc(stored, func(id int64) bool { return id == old })
						}
						stored, byKey[e.key] = append(stored, res.ID), res.ID
					case "dup":
						if err != nil || !res.Duplicate {
							t.Fatalf("enqueue %d: %+v, %v; want a duplicate", i, res, err)
						}
					case "quota":
						if !errors.Is(err, store.ErrQuota) || res.ID != 0 {
							t.Fatalf("enqueue %d: %+v, %v; want ErrQuota", i, res, err)
						}
					}
				}
				got := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d1", Limit: 100})
				var ids []int64
				for _, p := range got {
					ids = append(ids, p.Message.ID)
				}
				if !slices.Equal(ids, stored) {
					t.Errorf("stored messages %v, want %v", ids, stored)
				}
			})
		}
	})

	// The quota bounds the backlog: a message some device took counts no
	// more, though it stays for devices that register later.
	t.Run("QuotaCountsBacklog", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice := mustAccount(t, s, "alice", "example.com")
		enqueue := func(key string, delivered ...string) error {
			_, err := s.OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{
				Message: message(alice.ID, "carol@example.com", key, clock.Now().Add(time.Hour)), Delivered: delivered,
				Now: clock.Now(), MaxCount: 1,
			})
			return err
		}
		if err := enqueue("a", "d0"); err != nil { // taken by d0 already: no backlog
			t.Fatal(err)
		}
		if err := enqueue("b"); err != nil {
			t.Fatalf("second message with a backlog of 0: %v", err)
		}
		if err := enqueue("c"); !errors.Is(err, store.ErrQuota) {
			t.Fatalf("third message with a backlog of 1: %v, want ErrQuota", err)
		}
		owed := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d1", Limit: 10})
		if len(owed) != 2 {
			t.Fatalf("d1 is owed %d messages, want 2", len(owed))
		}
		err := s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: []int64{owed[1].Message.ID},
			Instance: "d1", State: store.DeliveryDone})
		if err != nil {
			t.Fatal(err)
		}
		if err := enqueue("c"); err != nil {
			t.Fatalf("after d1 took b the backlog is 0, but: %v", err)
		}
	})

	// Enqueues that share commits must not pass a quota together, and the
	// ones refused must not hold up the others.
	t.Run("ConcurrentQuota", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		const writers, maxCount = 50, 10
		results := make([]error, writers)
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-ready
				now := clock.Now()
				p := store.OfflineEnqueueParams{Message: message(alice.ID, "carol@example.com", fmt.Sprint(w), now.Add(time.Hour)), Now: now, MaxCount: maxCount}
				_, results[w] = s.OfflineEnqueue(t.Context(), p)
				p.Message.AccountID, p.MaxCount = bob.ID, 0
				if _, err := s.OfflineEnqueue(t.Context(), p); err != nil {
					t.Errorf("writer %d: OfflineEnqueue to bob: %v", w, err)
				}
			})
		}
		close(ready)
		wg.Wait()
		var ok int
		for w, err := range results {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrQuota):
				t.Errorf("writer %d: OfflineEnqueue = %v, want nil or ErrQuota", w, err)
			}
		}
		if ok != maxCount {
			t.Errorf("%d enqueues passed a quota of %d", ok, maxCount)
		}
		if got := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d1", Now: clock.Now(), Limit: 100}); len(got) != maxCount {
			t.Errorf("alice holds %d messages, want %d", len(got), maxCount)
		}
		if got := pending(t, s, store.OfflinePendingQuery{AccountID: bob.ID, Instance: "d1", Now: clock.Now(), Limit: 100}); len(got) != writers {
			t.Errorf("bob holds %d messages, want %d", len(got), writers)
		}
	})

	// Concurrent enqueues share commits: each caller gets its own id, in
	// order, and its message is committed when the call returns.
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		const writers, calls = 16, 10
		var mu sync.Mutex
		keys := map[int64]string{}
		shared := make([]store.OfflineEnqueueResult, writers)
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-ready
				var last int64
				for c := range calls {
					now := clock.Now()
					to := []store.Account{alice, bob}[c%2]
					key := fmt.Sprintf("w%d-c%d", w, c)
					m := message(to.ID, "carol@example.com", key, now.Add(time.Hour))
					res, err := s.OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{Message: m, Now: now, Delivered: []string{"w" + fmt.Sprint(w)}})
					if err != nil || res.Duplicate || res.ID <= last {
						t.Errorf("writer %d call %d: %+v, %v; want a new id above %d", w, c, res, err, last)
						return
					}
					last = res.ID
					// Committed: a reader sees it.
					got := pending(t, s, store.OfflinePendingQuery{AccountID: to.ID, Instance: "d1", Now: now, AfterID: res.ID - 1, Limit: 1})
					if len(got) != 1 || got[0].Message.ID != res.ID || got[0].Message.Key != key {
						t.Errorf("writer %d call %d: message %d not readable after the enqueue returned: %v", w, c, res.ID, brief2(got))
					}
					mu.Lock()
					if prev, dup := keys[res.ID]; dup {
						t.Errorf("id %d given to %s and %s", res.ID, prev, key)
					}
					keys[res.ID] = key
					mu.Unlock()
				}
				// Every writer sends the same message: one stores it.
				now := clock.Now()
				res, err := s.OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{Message: message(alice.ID, "dave@example.com", "same", now.Add(time.Hour)), Now: now})
				if err != nil {
					t.Errorf("writer %d: OfflineEnqueue: %v", w, err)
				}
				shared[w] = res
			})
		}
		close(ready)
		wg.Wait()
		if t.Failed() {
			return
		}
		stored := 0
		for w, res := range shared {
			if res.ID != shared[0].ID {
				t.Errorf("writer %d got id %d for the shared message, writer 0 got %d", w, res.ID, shared[0].ID)
			}
			if !res.Duplicate {
				stored++
			}
		}
		if stored != 1 {
			t.Errorf("the shared message was stored %d times, want once", stored)
		}
		all := append(pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d1", Now: clock.Now(), Limit: 1000}),
			pending(t, s, store.OfflinePendingQuery{AccountID: bob.ID, Instance: "d1", Now: clock.Now(), Limit: 1000})...)
		if len(all) != writers*calls+1 {
			t.Errorf("%d messages stored, want %d", len(all), writers*calls+1)
		}
		// Each writer's Delivered marks only its own messages.
		for _, p := range pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "w3", Now: clock.Now(), Limit: 1000}) {
			if strings.HasPrefix(p.Message.Key, "w3-") {
				t.Errorf("message %s pending for w3, which took it", p.Message.Key)
			}
		}
	})

	t.Run("UnknownAccount", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		const writers = 16
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-ready
				now := clock.Now()
				p := store.OfflineEnqueueParams{Message: message(a.ID, "bob@example.com", fmt.Sprint(w), now.Add(time.Hour)), Now: now, MaxCount: 100}
				if w%2 == 1 {
					p.Message.AccountID = a.ID + 1000
				}
				_, err := s.OfflineEnqueue(t.Context(), p)
				if w%2 == 1 && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("writer %d: OfflineEnqueue to an unknown account = %v, want ErrNotFound", w, err)
				}
				if w%2 == 0 && err != nil {
					t.Errorf("writer %d: OfflineEnqueue: %v", w, err)
				}
			})
		}
		close(ready)
		wg.Wait()
		if got := pending(t, s, store.OfflinePendingQuery{AccountID: a.ID, Instance: "d1", Now: clock.Now(), Limit: 100}); len(got) != writers/2 {
			t.Errorf("%d messages stored, want %d", len(got), writers/2)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		now := clock.Now()
		tests := []struct {
			name string
			edit func(p *store.OfflineEnqueueParams)
		}{
			{"empty key", func(p *store.OfflineEnqueueParams) { p.Message.Key = "" }},
			{"empty sender", func(p *store.OfflineEnqueueParams) { p.Message.Sender = "" }},
			{"NUL in from", func(p *store.OfflineEnqueueParams) { p.Message.From = "<sip:a@b>\x00" }},
			{"invalid UTF-8 in content type", func(p *store.OfflineEnqueueParams) { p.Message.ContentType = "text/\xff" }},
			{"invalid UTF-8 in key", func(p *store.OfflineEnqueueParams) { p.Message.Key = "\xc3" }},
			{"huge to", func(p *store.OfflineEnqueueParams) { p.Message.To = strings.Repeat("a", 1<<16) }},
			{"body over 1 MiB", func(p *store.OfflineEnqueueParams) { p.Message.Body = make([]byte, 1<<20+1) }},
			{"expired already", func(p *store.OfflineEnqueueParams) { p.Message.ExpiresAt = now }},
			{"negative count", func(p *store.OfflineEnqueueParams) { p.MaxCount = -1 }},
			{"negative bytes", func(p *store.OfflineEnqueueParams) { p.MaxBytes = -1 }},
			{"empty delivered instance", func(p *store.OfflineEnqueueParams) { p.Delivered = []string{"d1", ""} }},
			{"NUL in delivered instance", func(p *store.OfflineEnqueueParams) { p.Delivered = []string{"d\x00"} }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := store.OfflineEnqueueParams{Message: message(a.ID, "bob@example.com", "k", now.Add(time.Hour)), Now: now}
				tt.edit(&p)
				if res, err := s.OfflineEnqueue(t.Context(), p); err == nil {
					t.Errorf("OfflineEnqueue = %+v, want an error", res)
				}
			})
		}
		if got := pending(t, s, store.OfflinePendingQuery{AccountID: a.ID, Instance: "d1", Now: now, Limit: 100}); len(got) != 0 {
			t.Errorf("messages stored by failed enqueues: %v", brief2(got))
		}
	})

	t.Run("Delivered", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		now := clock.Now()
		took := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(a.ID, "bob@example.com", "1", now.Add(time.Hour)), Now: now,
			Delivered: []string{"d1", "d2", "d1"}}).ID
		other := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(a.ID, "bob@example.com", "2", now.Add(time.Hour)), Now: now}).ID
		for _, tt := range []struct {
			instance string
			want     []int64
		}{
			{"d1", []int64{other}},
			{"d2", []int64{other}},
			{"d3", []int64{took, other}},
		} {
			got := pendingIDs(pending(t, s, store.OfflinePendingQuery{AccountID: a.ID, Instance: tt.instance, Now: now, Limit: 10}))
			if !slices.Equal(got, tt.want) {
				t.Errorf("pending for %s: %v, want %v", tt.instance, got, tt.want)
			}
		}
	})

	t.Run("Pending", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		now := clock.Now()
		ids := map[string]int64{}
		for _, m := range []struct {
			label   string
			to      int64
			expires time.Duration
		}{
			{"m1", alice.ID, time.Hour},
			{"short", alice.ID, time.Minute},
			{"b1", bob.ID, time.Hour},
			{"m2", alice.ID, 2 * time.Hour},
			{"m3", alice.ID, time.Hour},
			{"m4", alice.ID, time.Hour},
		} {
			ids[m.label] = mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(m.to, "carol@example.com", m.label, now.Add(m.expires)), Now: now}).ID
		}
		// AccountID defaults to alice's, Instance to "d1", Now to now, Limit to 100.
		tests := []struct {
			name string
			q    store.OfflinePendingQuery
			want []string
		}{
			{"all, in id order", store.OfflinePendingQuery{}, []string{"m1", "short", "m2", "m3", "m4"}},
			{"other account", store.OfflinePendingQuery{AccountID: bob.ID}, []string{"b1"}},
			{"unknown account", store.OfflinePendingQuery{AccountID: bob.ID + 1000}, nil},
			{"zero now", store.OfflinePendingQuery{Now: time.Time{}}, []string{"m1", "short", "m2", "m3", "m4"}},
			{"now at an expiry", store.OfflinePendingQuery{Now: now.Add(time.Minute)}, []string{"m1", "m2", "m3", "m4"}},
			{"now just before an expiry", store.OfflinePendingQuery{Now: now.Add(time.Minute - time.Microsecond)}, []string{"m1", "short", "m2", "m3", "m4"}},
			{"later", store.OfflinePendingQuery{Now: now.Add(90 * time.Minute)}, []string{"m2"}},
			{"after id", store.OfflinePendingQuery{AfterID: ids["m2"]}, []string{"m3", "m4"}},
			{"after an id of another account", store.OfflinePendingQuery{AfterID: ids["b1"]}, []string{"m2", "m3", "m4"}},
			{"after the newest id", store.OfflinePendingQuery{AfterID: ids["m4"]}, nil},
			{"limit", store.OfflinePendingQuery{Limit: 2}, []string{"m1", "short"}},
			{"limit after filters", store.OfflinePendingQuery{AfterID: ids["m1"], Now: now.Add(time.Minute), Limit: 2}, []string{"m2", "m3"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := tt.q
				if q.AccountID == 0 {
					q.AccountID = alice.ID
				}
				if q.Instance == "" {
					q.Instance = "d1"
				}
				if q.Now.IsZero() && tt.name != "zero now" {
					q.Now = now
				}
				if q.Limit == 0 {
					q.Limit = 100
				}
				var want []int64
				for _, l := range tt.want {
					want = append(want, ids[l])
				}
				if got := pendingIDs(pending(t, s, q)); !slices.Equal(got, want) {
					t.Errorf("OfflinePending = %v, want %v (%v)", got, want, tt.want)
				}
			})
		}
		for _, q := range []store.OfflinePendingQuery{
			{AccountID: alice.ID, Instance: "d1", Now: now, Limit: 0},
			{AccountID: alice.ID, Instance: "d1", Now: now, Limit: -1},
			{AccountID: alice.ID, Instance: "d\x00", Now: now, Limit: 10},
		} {
			if _, err := s.OfflinePending(t.Context(), q); err == nil {
				t.Errorf("OfflinePending(%+v) succeeded, want an error", q)
			}
		}
	})

	t.Run("Owed", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		var accts []int64
		for _, user := range []string{"alice", "bob", "carol", "dave", "erin"} {
			accts = append(accts, mustAccount(t, s, user, "example.com").ID)
		}
		alice, bob, carol, dave, erin := accts[0], accts[1], accts[2], accts[3], accts[4]
		now := clock.Now()
		later := now.Add(10 * time.Minute) // the time of most reads
		enq := func(to int64, key string, expires time.Time, delivered ...string) int64 {
			return mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(to, "zoe@example.com", key, expires), Now: now, Delivered: delivered}).ID
		}
		enq(alice, "a1", now.Add(time.Hour))
		enq(alice, "a2", now.Add(time.Minute)) // expired at later: alice has both kinds
		enq(bob, "b1", now.Add(time.Minute))
		enq(bob, "b2", later) // expires at later: expired then
		// Carol has none. Every device is done with dave's message: it is
		// still unexpired.
		d := enq(dave, "d1", now.Add(time.Hour), "d1")
		for inst, state := range map[string]store.DeliveryState{"d2": store.DeliveryDone, "d3": store.DeliveryRejected} {
			if err := s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: dave, MessageIDs: []int64{d}, Instance: inst, State: state}); err != nil {
				t.Fatalf("OfflineMark: %v", err)
			}
		}
		enq(erin, "e1", later.Add(time.Microsecond))

		unknown := erin + 1000
		atBound := make([]int64, store.MaxOwedAccounts)
		for i := range atBound {
			atBound[i] = unknown + int64(i)
		}
		atBound[len(atBound)/2] = dave
		tests := []struct {
			name string
			ids  []int64
			at   time.Time
			want []int64
		}{
			{"every account", []int64{alice, bob, carol, dave, erin}, later, []int64{alice, dave, erin}},
			{"repeats, out of order", []int64{erin, dave, carol, alice, dave, erin, alice}, later, []int64{alice, dave, erin}},
			{"only expired messages", []int64{bob}, later, nil},
			{"no message", []int64{carol}, later, nil},
			{"every device done", []int64{dave}, later, []int64{dave}},
			{"only the ids asked for", []int64{bob, carol}, later, nil},
			{"one of several", []int64{carol, erin}, later, []int64{erin}},
			{"unknown accounts", []int64{unknown, 0, -1}, later, nil},
			{"before the expiries", []int64{alice, bob, carol}, now, []int64{alice, bob}},
			{"one message expired, one not", []int64{bob}, now.Add(time.Minute), []int64{bob}},
			{"now just before an expiry", []int64{erin}, later, []int64{erin}},
			{"now at the last expiry", []int64{erin}, later.Add(time.Microsecond), nil},
			{"at the bound", atBound, later, []int64{dave}},
			{"no ids", nil, later, nil},
			{"empty ids", []int64{}, later, nil},
		}
		for _, tt := range tests {
			got, err := s.OfflineOwed(t.Context(), tt.ids, tt.at)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("%s: OfflineOwed = %v, %v; want %v", tt.name, got, err, tt.want)
			}
		}
		if got, err := s.OfflineOwed(t.Context(), append(atBound, alice), later); err == nil || errors.Is(err, store.ErrClosed) {
			t.Errorf("OfflineOwed of %d ids = %v, %v; want an error about the input", store.MaxOwedAccounts+1, got, err)
		}
	})

	t.Run("Mark", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		now := clock.Now()
		var ids []int64
		for i := range 6 {
			ids = append(ids, mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(alice.ID, "carol@example.com", fmt.Sprint(i), now.Add(time.Hour)), Now: now}).ID)
		}
		bobs := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(bob.ID, "carol@example.com", "b", now.Add(time.Hour)), Now: now}).ID
		unknown := bobs + 1000
		mark := func(instance string, state store.DeliveryState, next time.Time, ids ...int64) error {
			return s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: ids, Instance: instance, State: state, NextAt: next})
		}
		mustMark := func(instance string, state store.DeliveryState, next time.Time, ids ...int64) {
			t.Helper()
			if err := mark(instance, state, next, ids...); err != nil {
				t.Fatalf("OfflineMark(%v, %s, %d): %v", ids, instance, state, err)
			}
		}
		// owed returns message: attempts@next for an instance, next after
		// now as stored, to the microsecond.
		base := now.Truncate(time.Microsecond)
		owed := func(instance string) map[int64]string {
			t.Helper()
			out := map[int64]string{}
			for _, p := range pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: instance, Now: now, Limit: 100}) {
				out[p.Message.ID] = fmt.Sprintf("%d@%v", p.Attempts, p.NextAt.Sub(base))
				if !p.NextAt.IsZero() && p.NextAt.Location() != time.UTC {
					t.Errorf("NextAt %v not in UTC", p.NextAt)
				}
			}
			return out
		}
		never := fmt.Sprintf("0@%v", time.Time{}.Sub(base))
		// want returns never for each of ids, then the pairs of extra.
		want := func(ids []int64, extra ...any) map[int64]string {
			out := map[int64]string{}
			for _, id := range ids {
				out[id] = never
			}
			for i := 0; i < len(extra); i += 2 {
				out[extra[i].(int64)] = extra[i+1].(string)
			}
			return out
		}
		check := func(step, instance string, want map[int64]string) {
			t.Helper()
			if got := owed(instance); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: owed to %s %v, want %v", step, instance, got, want)
			}
		}

		mustMark("d1", store.DeliveryRetry, now.Add(time.Minute+time.Nanosecond), ids[0])
		check("first retry", "d1", want(ids[1:], ids[0], "1@1m0s"))
		// One attempt per message and call, even when an id repeats.
		mustMark("d1", store.DeliveryRetry, now.Add(2*time.Minute), ids[0], ids[1], ids[0])
		check("second retry", "d1", want(ids[2:], ids[0], "2@2m0s", ids[1], "1@2m0s"))
		check("second retry", "d2", want(ids))

		mustMark("d1", store.DeliveryDone, time.Time{}, ids[1], ids[0], ids[2])
		mustMark("d1", store.DeliveryRejected, time.Time{}, ids[3])
		check("done and rejected", "d1", want(ids[4:]))
		check("done and rejected", "d2", want(ids))

		// Done and rejected are final: a late retry does not undo them.
		mustMark("d1", store.DeliveryRetry, now.Add(time.Minute), ids[1], ids[3])
		check("retry after done", "d1", want(ids[4:]))

		// Ids of other accounts' messages, or of none, are skipped.
		mustMark("d1", store.DeliveryDone, time.Time{}, bobs, ids[4], unknown)
		check("some ids skipped", "d1", want(ids[5:]))
		for _, tt := range []struct {
			name string
			p    store.OfflineMarkParams
		}{
			{"another account's message", store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: []int64{bobs}, Instance: "d1", State: store.DeliveryDone}},
			{"a message of alice as bob", store.OfflineMarkParams{AccountID: bob.ID, MessageIDs: []int64{ids[5], ids[4]}, Instance: "d1", State: store.DeliveryDone}},
			{"unknown messages", store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: []int64{unknown, 0, -1}, Instance: "d1", State: store.DeliveryRetry}},
		} {
			if err := s.OfflineMark(t.Context(), tt.p); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("OfflineMark of %s = %v, want ErrNotFound", tt.name, err)
			}
		}
		if err := mark("d1", store.DeliveryDone, time.Time{}); err != nil {
			t.Errorf("OfflineMark without ids = %v, want nil", err)
		}
		check("marks refused", "d1", want(ids[5:]))
		if got := pendingIDs(pending(t, s, store.OfflinePendingQuery{AccountID: bob.ID, Instance: "d1", Now: now, Limit: 10})); !slices.Equal(got, []int64{bobs}) {
			t.Errorf("bob's pending = %v, want [%d]", got, bobs)
		}

		for _, p := range []store.OfflineMarkParams{
			{AccountID: alice.ID, MessageIDs: []int64{ids[5]}, Instance: "d1", State: 0},
			{AccountID: alice.ID, MessageIDs: []int64{ids[5]}, Instance: "d1", State: 4},
			{AccountID: alice.ID, MessageIDs: []int64{ids[5]}, Instance: "", State: store.DeliveryDone},
			{AccountID: alice.ID, MessageIDs: []int64{ids[5]}, Instance: "\xff", State: store.DeliveryDone},
		} {
			if err := s.OfflineMark(t.Context(), p); err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("OfflineMark(%+v) = %v, want an error about the input", p, err)
			}
		}
		check("invalid marks", "d1", want(ids[5:]))
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		t0 := clock.Now()
		enq := func(to int64, key string, expires time.Duration, delivered ...string) int64 {
			return mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(to, "carol@example.com", key, t0.Add(expires)), Now: t0, Delivered: delivered}).ID
		}
		first := enq(alice.ID, "1", 10*time.Second, "d1")
		enq(bob.ID, "2", 10*time.Second)
		third := enq(alice.ID, "3", 20*time.Second)
		if err := s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: []int64{third}, Instance: "d2", State: store.DeliveryRetry, NextAt: t0}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			before time.Duration
			want   int64
		}{
			{10*time.Second - time.Microsecond, 0},
			{10 * time.Second, 2}, // at or before
			{10 * time.Second, 0},
			{time.Hour, 1},
		} {
			if n, err := s.OfflinePurge(t.Context(), t0.Add(c.before)); err != nil || n != c.want {
				t.Errorf("OfflinePurge(t0+%v) = %d, %v; want %d", c.before, n, err, c.want)
			}
		}
		for _, id := range []int64{first, third} {
			err := s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: []int64{id}, Instance: "d1", State: store.DeliveryDone})
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("OfflineMark of purged message %d = %v, want ErrNotFound", id, err)
			}
		}
		// The keys are free again, with no delivery state left behind.
		for _, key := range []string{"1", "3"} {
			res := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(alice.ID, "carol@example.com", key, t0.Add(2*time.Hour)), Now: t0.Add(time.Hour)})
			if res.Duplicate {
				t.Errorf("enqueue of purged key %s: %+v, want a new message", key, res)
			}
		}
		for _, inst := range []string{"d1", "d2"} {
			for _, p := range pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: inst, Now: t0.Add(time.Hour), Limit: 10}) {
				if p.Attempts != 0 || !p.NextAt.IsZero() {
					t.Errorf("new message %d owed to %s with a retry state %d@%v", p.Message.ID, inst, p.Attempts, p.NextAt)
				}
			}
			if got := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: inst, Now: t0.Add(time.Hour), Limit: 10}); len(got) != 2 {
				t.Errorf("%d messages owed to %s, want 2", len(got), inst)
			}
		}
	})

	// AccountDelete takes the account's bindings, messages and delivery
	// states with it; traces stay, and other accounts keep theirs.
	t.Run("AccountDelete", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		now := clock.Now()
		for _, a := range []store.Account{alice, bob} {
			mustRegister(t, s, binding(a.ID, "d1", now.Add(time.Hour)))
			id := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(a.ID, "carol@example.com", "k", now.Add(time.Hour)), Now: now, Delivered: []string{"d2"}}).ID
			if err := s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: a.ID, MessageIDs: []int64{id}, Instance: "d1", State: store.DeliveryRetry, NextAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TraceAppend(t.Context(), []store.Trace{trace(now, "call-1", "carol@example.com", "alice@example.com")}); err != nil {
			t.Fatal(err)
		}
		aliceMsgs := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d1", Now: now, Limit: 10})
		if err := s.AccountDelete(t.Context(), "alice", "example.com"); err != nil {
			t.Fatal(err)
		}
		if got := listBindings(t, s, alice.ID, now); len(got) != 0 {
			t.Errorf("bindings of the deleted account: %v", instances(got))
		}
		if got := pending(t, s, store.OfflinePendingQuery{AccountID: alice.ID, Instance: "d3", Now: now, Limit: 10}); len(got) != 0 {
			t.Errorf("messages of the deleted account: %v", brief2(got))
		}
		err := s.OfflineMark(t.Context(), store.OfflineMarkParams{AccountID: alice.ID, MessageIDs: []int64{aliceMsgs[0].Message.ID}, Instance: "d1", State: store.DeliveryDone})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OfflineMark of a deleted account's message = %v, want ErrNotFound", err)
		}
		_, err = s.OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{Message: message(alice.ID, "carol@example.com", "k2", now.Add(time.Hour)), Now: now})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OfflineEnqueue to the deleted account = %v, want ErrNotFound", err)
		}
		if err := s.RegistrationPut(t.Context(), binding(alice.ID, "d1", now.Add(time.Hour))); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RegistrationPut to the deleted account = %v, want ErrNotFound", err)
		}
		if got := listTraces(t, s, store.TraceQuery{Addr: "alice@example.com", Limit: 10}); len(got) != 1 {
			t.Errorf("%d traces of the deleted account's address, want 1: traces stay", len(got))
		}
		if got := listBindings(t, s, bob.ID, now); len(got) != 1 {
			t.Errorf("bob has %d bindings, want 1", len(got))
		}
		got := pending(t, s, store.OfflinePendingQuery{AccountID: bob.ID, Instance: "d1", Now: now, Limit: 10})
		if len(got) != 1 || got[0].Attempts != 1 {
			t.Errorf("bob's messages for d1: %v, want one with an attempt", brief2(got))
		}
		if got := pending(t, s, store.OfflinePendingQuery{AccountID: bob.ID, Instance: "d2", Now: now, Limit: 10}); len(got) != 0 {
			t.Errorf("bob's messages for d2, which took them: %v", brief2(got))
		}

		again := mustAccount(t, s, "alice", "example.com")
		if got := pending(t, s, store.OfflinePendingQuery{AccountID: again.ID, Instance: "d1", Now: now, Limit: 10}); len(got) != 0 {
			t.Errorf("messages of the recreated account: %v", brief2(got))
		}
		if res := mustEnqueue(t, s, store.OfflineEnqueueParams{Message: message(again.ID, "carol@example.com", "k", now.Add(time.Hour)), Now: now}); res.Duplicate {
			t.Errorf("enqueue to the recreated account: %+v, want a new message", res)
		}
	})
}

// message returns a message to accountID from sender with key and body
// "hello <key>".
func message(accountID int64, sender, key string, expires time.Time) store.OfflineMessage {
	return store.OfflineMessage{
		AccountID:   accountID,
		Sender:      sender,
		From:        "\"Sender\" <sip:" + sender + ">",
		To:          "<sip:recipient@example.com>",
		Date:        "Fri, 14 Mar 2025 15:09:26 GMT",
		ContentType: "text/plain;charset=UTF-8",
		Body:        []byte("hello " + key),
		Key:         key,
		ExpiresAt:   expires,
	}
}

func mustEnqueue(t *testing.T, s store.Store, p store.OfflineEnqueueParams) store.OfflineEnqueueResult {
	t.Helper()
	res, err := s.OfflineEnqueue(t.Context(), p)
	if err != nil {
		t.Fatalf("OfflineEnqueue(account %d, key %q): %v", p.Message.AccountID, p.Message.Key, err)
	}
	return res
}

func pending(t *testing.T, s store.Store, q store.OfflinePendingQuery) []store.OfflinePending {
	t.Helper()
	ps, err := s.OfflinePending(t.Context(), q)
	if err != nil {
		t.Fatalf("OfflinePending(%+v): %v", q, err)
	}
	return ps
}

func pendingIDs(ps []store.OfflinePending) []int64 {
	var out []int64
	for _, p := range ps {
		out = append(out, p.Message.ID)
	}
	return out
}

// checkPending checks the messages owed and, when attempts is set, their
// attempts; NextAt must be zero for those with none.
func checkPending(t *testing.T, got []store.OfflinePending, want []store.OfflineMessage, attempts []int) {
	t.Helper()
	same := func(p store.OfflinePending, m store.OfflineMessage) bool {
		g := p.Message
		return g.ID == m.ID && g.AccountID == m.AccountID && g.Sender == m.Sender && g.From == m.From && g.To == m.To &&
			g.Date == m.Date && g.ContentType == m.ContentType && bytes.Equal(g.Body, m.Body) && g.Key == m.Key &&
			sameTime(g.CreatedAt, m.CreatedAt) && sameTime(g.ExpiresAt, m.ExpiresAt)
	}
	if !slices.EqualFunc(got, want, same) {
		t.Errorf("owed messages:\n got %v\nwant %v", brief2(got), want)
	}
	for i, p := range got {
		wantAttempts := 0
		if attempts != nil {
			wantAttempts = attempts[i]
		}
		if p.Attempts != wantAttempts || (wantAttempts == 0 && !p.NextAt.IsZero()) {
			t.Errorf("message %d: attempts %d, next %v; want %d", p.Message.ID, p.Attempts, p.NextAt, wantAttempts)
		}
	}
}

// brief2 prints owed messages without their bodies, which may be large.
func brief2(ps []store.OfflinePending) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		m := p.Message
		out[i] = fmt.Sprintf("#%d %s→%d key %q (%d bytes) created %v expires %v, %d attempts next %v",
			m.ID, m.Sender, m.AccountID, m.Key, len(m.Body), m.CreatedAt, m.ExpiresAt, p.Attempts, p.NextAt)
	}
	return out
}
