// Package storetest is the conformance suite of the store engines. Every
// engine's tests call Run, so that litestore and pgstore keep one behaviour;
// a new store method lands here together with its tests.
package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// opener opens a fresh, migrated, empty store stamped with clock and closes it
// when t ends.
type opener = func(t *testing.T, clock store.Clock) store.Store

// Run runs the suite. open must return a fresh, migrated, empty store whose
// rows are stamped with clock, and close it when t ends (ignoring ErrClosed,
// since some tests close it themselves). Subtests run in parallel, so open
// must be safe for concurrent use.
func Run(t *testing.T, open func(t *testing.T, clock store.Clock) store.Store) {
	t.Run("Account", func(t *testing.T) { testAccounts(t, open) })
	t.Run("JournalPut", func(t *testing.T) { testJournalPut(t, open) })
	t.Run("JournalQuery", func(t *testing.T) { testJournalQuery(t, open) })
	t.Run("JournalMaxBytes", func(t *testing.T) { testJournalMaxBytes(t, open) })
	t.Run("JournalDelete", func(t *testing.T) { testJournalDelete(t, open) })
	t.Run("JournalPurge", func(t *testing.T) { testJournalPurge(t, open) })
	t.Run("Registration", func(t *testing.T) { testRegistrations(t, open) })
	t.Run("Offline", func(t *testing.T) { testOffline(t, open) })
	t.Run("Trace", func(t *testing.T) { testTraces(t, open) })
	t.Run("MSRPSession", func(t *testing.T) { testMSRPSessions(t, open) })
	t.Run("History", func(t *testing.T) { testHistory(t, open) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, open) })
}

// RunReopen runs the tests that close a store and open it again. open must
// open the same database each time, migrated, with rows stamped by clock,
// and close it when t ends (ignoring ErrClosed).
func RunReopen(t *testing.T, open func(t *testing.T, clock store.Clock) store.Store) {
	// Times never go back, even across a restart with a clock behind the data.
	t.Run("ClockBehindData", func(t *testing.T) {
		clock := NewClock(start())
		s := open(t, clock.Now)
		a := mustAccount(t, s, "alice", "example.com")
		first := put(t, s, a.ID, "d1", "m1")[0]
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		clock.Advance(-time.Hour)
		s = open(t, clock.Now)
		second := put(t, s, a.ID, "d1", "m2")[0]
		t0 := start().Truncate(time.Second)
		checkEntries(t, listAll(t, s, a.ID), []store.JournalEntry{
			{ID: first, AccountID: a.ID, Device: "d1", MsgID: "m1", Data: "data of m1", IP: "192.0.2.1", Time: t0},
			{ID: second, AccountID: a.ID, Device: "d1", MsgID: "m2", Data: "data of m2", IP: "192.0.2.1", Time: t0},
		})
	})
}

// start is where every test's clock begins. Its fractional second shows
// whether an engine truncates times as the contract says.
func start() time.Time { return time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC) }

// setup opens a store with a clock of its own.
func setup(t *testing.T, open opener) (store.Store, *Clock) {
	t.Helper()
	clock := NewClock(start())
	return open(t, clock.Now), clock
}

func mustAccount(t *testing.T, s store.Store, user, domain string) store.Account {
	t.Helper()
	a := store.Account{User: user, Domain: domain, Credentials: []byte("sealed " + user)}
	if err := s.AccountCreate(t.Context(), &a); err != nil {
		t.Fatalf("AccountCreate(%s): %v", a.Address(), err)
	}
	return a
}

func mustPut(t *testing.T, s store.Store, p store.JournalPutParams) []int64 {
	t.Helper()
	ids, err := s.JournalPut(t.Context(), p)
	if err != nil {
		t.Fatalf("JournalPut(account %d, device %q): %v", p.AccountID, p.Device, err)
	}
	if len(ids) != len(p.Items) {
		t.Fatalf("JournalPut returned %d ids for %d items", len(ids), len(p.Items))
	}
	return ids
}

// put stores one item per msgid, each with data "data of <msgid>".
func put(t *testing.T, s store.Store, accountID int64, device string, msgIDs ...string) []int64 {
	t.Helper()
	items := make([]store.JournalItem, len(msgIDs))
	for i, m := range msgIDs {
		items[i] = store.JournalItem{MsgID: m, Data: "data of " + m}
	}
	return mustPut(t, s, store.JournalPutParams{AccountID: accountID, Device: device, IP: "192.0.2.1", Items: items})
}

// listAll returns every row of the account.
func listAll(t *testing.T, s store.Store, accountID int64) []store.JournalEntry {
	t.Helper()
	rows, err := s.JournalList(t.Context(), store.JournalQuery{AccountID: accountID, Limit: 1 << 20})
	if err != nil {
		t.Fatalf("JournalList(account %d): %v", accountID, err)
	}
	return rows
}

func msgIDs(rows []store.JournalEntry) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.MsgID
	}
	return out
}

func checkAccount(t *testing.T, got, want store.Account) {
	t.Helper()
	if got.ID != want.ID || got.User != want.User || got.Domain != want.Domain ||
		!bytes.Equal(got.Credentials, want.Credentials) || got.WebHash != want.WebHash ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("account = %+v, want %+v", got, want)
	}
	if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("account times are in %v and %v, want UTC", got.CreatedAt.Location(), got.UpdatedAt.Location())
	}
}

func sameEntry(a, b store.JournalEntry) bool {
	ta, tb := a.Time, b.Time
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b && ta.Equal(tb) && ta.Location() == tb.Location()
}

func checkEntries(t *testing.T, got, want []store.JournalEntry) {
	t.Helper()
	if !slices.EqualFunc(got, want, sameEntry) {
		t.Errorf("entries:\n got %v\nwant %v", brief(got), brief(want))
	}
}

// brief prints entries without their data, which may be large.
func brief(rows []store.JournalEntry) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("#%d %s %s@%s (%d bytes)", r.ID, r.Time.Format(time.TimeOnly), r.MsgID, r.Device, len(r.Data))
	}
	return out
}
