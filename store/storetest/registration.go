package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func testRegistrations(t *testing.T, open opener) {
	t.Run("PutList", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		now := clock.Now()
		b := binding(alice.ID, "urn:uuid:b", now.Add(time.Hour))
		a := binding(alice.ID, "sip:alice@192.0.2.7:5060;transport=tcp", now.Add(2*time.Hour))
		a.Transport, a.CSeq, a.UserAgent = "tcp", 1<<32-1, "Blink 6.0 ✓"
		other := binding(bob.ID, "urn:uuid:b", now.Add(time.Hour))
		for _, r := range []store.Registration{b, a, other} {
			mustRegister(t, s, r)
		}
		stamped := func(r store.Registration) store.Registration {
			r.Expires, r.UpdatedAt = r.Expires.Truncate(time.Microsecond), clock.Now().Truncate(time.Microsecond)
			return r
		}
		// Byte order: "sip:" before "urn:".
		checkBindings(t, listBindings(t, s, alice.ID, now), []store.Registration{stamped(a), stamped(b)})
		checkBindings(t, listBindings(t, s, bob.ID, now), []store.Registration{stamped(other)})

		// A second REGISTER from the same device replaces its binding.
		clock.Advance(90 * time.Second)
		b.Contact, b.Source, b.Node, b.CallID, b.CSeq = "sip:alice@198.51.100.1:40000", "198.51.100.1:40000", "node-2", "call-2", 2
		b.Expires = clock.Now().Add(30 * time.Minute)
		mustRegister(t, s, b)
		want := []store.Registration{a, stamped(b)}
		want[0].Expires, want[0].UpdatedAt = a.Expires.Truncate(time.Microsecond), now.Truncate(time.Microsecond)
		checkBindings(t, listBindings(t, s, alice.ID, clock.Now()), want)
	})

	t.Run("ListExpiry", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		now := clock.Now()
		tests := []struct {
			instance string
			expires  time.Duration // after now
			listed   bool
		}{
			{"expired", -time.Second, false},
			{"expires now", 0, false},
			{"expires a microsecond after", time.Microsecond, true},
			{"expires in an hour", time.Hour, true},
		}
		var want []string
		for _, tt := range tests {
			mustRegister(t, s, binding(a.ID, tt.instance, now.Add(tt.expires)))
			if tt.listed {
				want = append(want, tt.instance)
			}
		}
		slices.Sort(want)
		if got := instances(listBindings(t, s, a.ID, now)); !slices.Equal(got, want) {
			t.Errorf("RegistrationList = %v, want %v", got, want)
		}
		if got := listBindings(t, s, a.ID, now.Add(2*time.Hour)); len(got) != 0 {
			t.Errorf("RegistrationList after every expiry = %v, want none", instances(got))
		}
	})

	t.Run("ListConcurrent", func(t *testing.T) {
		// Lists at once, of several accounts and at several instants (an
		// engine may answer them with one read), each get their own.
		t.Parallel()
		s, clock := setup(t, open)
		now := clock.Now()
		const accounts = 8
		ids := make([]int64, accounts)
		for i := range ids {
			ids[i] = mustAccount(t, s, fmt.Sprintf("user%d", i), "example.com").ID
			// Account i has i+1 bindings; binding j expires j+1 minutes on.
			for j := range i + 1 {
				mustRegister(t, s, binding(ids[i], fmt.Sprintf("urn:uuid:%d-%d", i, j), now.Add(time.Duration(j+1)*time.Minute)))
			}
		}
		var wg sync.WaitGroup
		for round := range 8 {
			for i, id := range ids {
				wg.Go(func() {
					at := now.Add(time.Duration(round) * time.Minute)
					got, err := s.RegistrationList(t.Context(), id, at)
					if err != nil {
						t.Errorf("RegistrationList(user%d): %v", i, err)
						return
					}
					var want []string
					for j := round; j < i+1; j++ {
						want = append(want, fmt.Sprintf("urn:uuid:%d-%d", i, j))
					}
					if g := instances(got); !slices.Equal(g, want) {
						t.Errorf("user%d, %d minutes on: %v, want %v", i, round, g, want)
					}
				})
			}
		}
		wg.Wait()
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		now := clock.Now()
		for _, inst := range []string{"d1", "d2", "d3"} {
			mustRegister(t, s, binding(alice.ID, inst, now.Add(time.Hour)))
		}
		mustRegister(t, s, binding(bob.ID, "d1", now.Add(time.Hour)))
		ctx := t.Context()
		for _, tt := range []struct {
			name    string
			call    func() error
			alice   []string
			bobLeft int
		}{
			{"one", func() error { return s.RegistrationDelete(ctx, alice.ID, "d2") }, []string{"d1", "d3"}, 1},
			{"one again", func() error { return s.RegistrationDelete(ctx, alice.ID, "d2") }, []string{"d1", "d3"}, 1},
			{"unknown instance", func() error { return s.RegistrationDelete(ctx, alice.ID, "d9") }, []string{"d1", "d3"}, 1},
			{"unknown account", func() error { return s.RegistrationDelete(ctx, bob.ID+1000, "d1") }, []string{"d1", "d3"}, 1},
			{"all", func() error { return s.RegistrationDeleteAll(ctx, alice.ID) }, nil, 1},
			{"all again", func() error { return s.RegistrationDeleteAll(ctx, alice.ID) }, nil, 1},
		} {
			if err := tt.call(); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got := instances(listBindings(t, s, alice.ID, now)); !slices.Equal(got, tt.alice) {
				t.Errorf("%s: alice's bindings %v, want %v", tt.name, got, tt.alice)
			}
			if got := listBindings(t, s, bob.ID, now); len(got) != tt.bobLeft {
				t.Errorf("%s: bob has %d bindings, want %d", tt.name, len(got), tt.bobLeft)
			}
		}
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		alice, bob := mustAccount(t, s, "alice", "example.com"), mustAccount(t, s, "bob", "example.com")
		t0 := clock.Now()
		mustRegister(t, s, binding(alice.ID, "d1", t0.Add(10*time.Second)))
		mustRegister(t, s, binding(bob.ID, "d1", t0.Add(10*time.Second)))
		mustRegister(t, s, binding(alice.ID, "d2", t0.Add(20*time.Second)))
		for _, c := range []struct {
			before time.Duration
			want   int64
		}{
			{10*time.Second - time.Microsecond, 0},
			{10 * time.Second, 2}, // at or before
			{10 * time.Second, 0},
			{time.Hour, 1},
		} {
			if n, err := s.RegistrationPurge(t.Context(), t0.Add(c.before)); err != nil || n != c.want {
				t.Errorf("RegistrationPurge(t0+%v) = %d, %v; want %d", c.before, n, err, c.want)
			}
		}
		if got := listBindings(t, s, alice.ID, time.Time{}); len(got) != 0 {
			t.Errorf("bindings left: %v", instances(got))
		}
	})

	t.Run("UnknownAccount", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		err := s.RegistrationPut(t.Context(), binding(a.ID+1000, "d1", clock.Now().Add(time.Hour)))
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RegistrationPut to an unknown account = %v, want ErrNotFound", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		const n = 64
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				account := a.ID
				if i%8 == 7 { // some writes of a batch fail, the others commit
					account = a.ID + 1000
				}
				errs[i] = s.RegistrationPut(t.Context(), binding(account, fmt.Sprintf("d%02d", i), clock.Now().Add(time.Hour)))
			})
		}
		wg.Wait()
		want := 0
		for i, err := range errs {
			switch {
			case i%8 == 7 && !errors.Is(err, store.ErrNotFound):
				t.Errorf("put %d to an unknown account = %v, want ErrNotFound", i, err)
			case i%8 != 7 && err != nil:
				t.Errorf("put %d = %v", i, err)
			case i%8 != 7:
				want++
			}
		}
		if got := listBindings(t, s, a.ID, clock.Now()); len(got) != want {
			t.Errorf("%d bindings stored, want %d", len(got), want)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		tests := []struct {
			name string
			edit func(r *store.Registration)
		}{
			{"empty instance", func(r *store.Registration) { r.Instance = "" }},
			{"empty contact", func(r *store.Registration) { r.Contact = "" }},
			{"NUL in contact", func(r *store.Registration) { r.Contact = "sip:a\x00@b" }},
			{"invalid UTF-8 in user agent", func(r *store.Registration) { r.UserAgent = "caf\xe9" }},
			{"invalid UTF-8 in instance", func(r *store.Registration) { r.Instance = "\xff" }},
			{"NUL in call-id", func(r *store.Registration) { r.CallID = "\x00" }},
			{"huge contact", func(r *store.Registration) { r.Contact = "sip:" + strings.Repeat("a", 1<<16) + "@b" }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := binding(a.ID, "d1", clock.Now().Add(time.Hour))
				tt.edit(&r)
				if err := s.RegistrationPut(t.Context(), r); err == nil {
					t.Errorf("RegistrationPut succeeded, want an error")
				}
			})
		}
		if got := listBindings(t, s, a.ID, time.Time{}); len(got) != 0 {
			t.Errorf("bindings stored by failed puts: %v", instances(got))
		}
	})
}

// binding returns a UDP binding of instance that expires at expires.
func binding(accountID int64, instance string, expires time.Time) store.Registration {
	return store.Registration{
		AccountID: accountID,
		Instance:  instance,
		Contact:   fmt.Sprintf("sip:%d@192.0.2.1:5060", accountID),
		Transport: "udp",
		Source:    "192.0.2.1:5060",
		Node:      "node-1",
		CallID:    "call-1@192.0.2.1",
		CSeq:      1,
		UserAgent: "test",
		Expires:   expires,
	}
}

func mustRegister(t *testing.T, s store.Store, r store.Registration) {
	t.Helper()
	if err := s.RegistrationPut(t.Context(), r); err != nil {
		t.Fatalf("RegistrationPut(%s): %v", r.Instance, err)
	}
}

func listBindings(t *testing.T, s store.Store, accountID int64, now time.Time) []store.Registration {
	t.Helper()
	rs, err := s.RegistrationList(t.Context(), accountID, now)
	if err != nil {
		t.Fatalf("RegistrationList(account %d): %v", accountID, err)
	}
	return rs
}

func instances(rs []store.Registration) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Instance
	}
	return out
}

func checkBindings(t *testing.T, got, want []store.Registration) {
	t.Helper()
	same := func(a, b store.Registration) bool {
		ta, tb := [2]time.Time{a.Expires, a.UpdatedAt}, [2]time.Time{b.Expires, b.UpdatedAt}
		a.Expires, a.UpdatedAt, b.Expires, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		return a == b && sameTime(ta[0], tb[0]) && sameTime(ta[1], tb[1])
	}
	if !slices.EqualFunc(got, want, same) {
		t.Errorf("bindings:\n got %+v\nwant %+v", got, want)
	}
}

// sameTime reports whether got is the instant want, in UTC.
func sameTime(got, want time.Time) bool { return got.Equal(want) && got.Location() == time.UTC }
