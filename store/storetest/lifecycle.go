package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/schema"
	"github.com/cairn-chat/cairn/store"
)

func testLifecycle(t *testing.T, open opener) {
	t.Run("Migrate", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		// Both dialects keep the same numbered list.
		known, err := schema.Migrations(schema.SQLite)
		if err != nil {
			t.Fatal(err)
		}
		status, err := s.MigrateStatus(t.Context())
		if err != nil {
			t.Fatalf("MigrateStatus: %v", err)
		}
		if len(status) != len(known) {
			t.Fatalf("MigrateStatus lists %d migrations, want %d: %+v", len(status), len(known), status)
		}
		for i, m := range status {
			if m.Version != i+1 || m.Name == "" || m.AppliedAt.IsZero() || m.AppliedAt.After(clock.Now()) {
				t.Errorf("migration %d: %+v, want version %d applied by now", i, m, i+1)
			}
		}
		applied, err := s.MigrateUp(t.Context())
		if err != nil || len(applied) != 0 {
			t.Errorf("MigrateUp on a migrated store = %v, %v; want nothing applied", applied, err)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		a := mustAccount(t, s, "alice", "example.com")
		id := put(t, s, a.ID, "d1", "m1")[0]
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		q := store.JournalQuery{AccountID: a.ID, Limit: 10}
		item := []store.JournalItem{{MsgID: "m2", Data: "x"}}
		tests := []struct {
			name string
			call func(ctx context.Context) error
		}{
			{"AccountCreate", func(ctx context.Context) error {
				return s.AccountCreate(ctx, &store.Account{User: "bob", Domain: "example.com"})
			}},
			{"AccountGet", func(ctx context.Context) error { _, err := s.AccountGet(ctx, "alice", "example.com"); return err }},
			{"AccountDomainExists", func(ctx context.Context) error { _, err := s.AccountDomainExists(ctx, "example.com"); return err }},
			{"AccountSetCredentials", func(ctx context.Context) error {
				return s.AccountSetCredentials(ctx, store.AccountCredentialsParams{User: "alice", Domain: "example.com"})
			}},
			{"AccountDelete", func(ctx context.Context) error { return s.AccountDelete(ctx, "alice", "example.com") }},
			{"AccountList", func(ctx context.Context) error { _, err := s.AccountList(ctx); return err }},
			{"JournalPut", func(ctx context.Context) error {
				_, err := s.JournalPut(ctx, store.JournalPutParams{AccountID: a.ID, Device: "d1", Items: item})
				return err
			}},
			{"JournalPut without items", func(ctx context.Context) error {
				_, err := s.JournalPut(ctx, store.JournalPutParams{AccountID: a.ID, Device: "d1"})
				return err
			}},
			{"JournalList", func(ctx context.Context) error { _, err := s.JournalList(ctx, q); return err }},
			{"JournalSummary", func(ctx context.Context) error { _, err := s.JournalSummary(ctx, q); return err }},
			{"JournalDelete", func(ctx context.Context) error { _, err := s.JournalDelete(ctx, a.ID, []int64{id}); return err }},
			{"JournalDelete without ids", func(ctx context.Context) error { _, err := s.JournalDelete(ctx, a.ID, nil); return err }},
			{"JournalPurge", func(ctx context.Context) error { _, err := s.JournalPurge(ctx, time.Now()); return err }},
			{"RegistrationPut", func(ctx context.Context) error {
				return s.RegistrationPut(ctx, binding(a.ID, "d1", time.Now().Add(time.Hour)))
			}},
			{"RegistrationDelete", func(ctx context.Context) error { return s.RegistrationDelete(ctx, a.ID, "d1") }},
			{"RegistrationDeleteAll", func(ctx context.Context) error { return s.RegistrationDeleteAll(ctx, a.ID) }},
			{"RegistrationList", func(ctx context.Context) error { _, err := s.RegistrationList(ctx, a.ID, time.Now()); return err }},
			{"RegistrationPurge", func(ctx context.Context) error { _, err := s.RegistrationPurge(ctx, time.Now()); return err }},
			{"OfflineEnqueue", func(ctx context.Context) error {
				_, err := s.OfflineEnqueue(ctx, store.OfflineEnqueueParams{Message: message(a.ID, "bob@example.com", "k", time.Now().Add(time.Hour)), Now: time.Now()})
				return err
			}},
			{"OfflineOwed", func(ctx context.Context) error { _, err := s.OfflineOwed(ctx, []int64{a.ID}, time.Now()); return err }},
			{"OfflineOwed without ids", func(ctx context.Context) error { _, err := s.OfflineOwed(ctx, nil, time.Now()); return err }},
			{"OfflinePending", func(ctx context.Context) error {
				_, err := s.OfflinePending(ctx, store.OfflinePendingQuery{AccountID: a.ID, Instance: "d1", Now: time.Now(), Limit: 10})
				return err
			}},
			{"OfflineMark", func(ctx context.Context) error {
				return s.OfflineMark(ctx, store.OfflineMarkParams{AccountID: a.ID, MessageIDs: []int64{1}, Instance: "d1", State: store.DeliveryDone})
			}},
			{"OfflinePurge", func(ctx context.Context) error { _, err := s.OfflinePurge(ctx, time.Now()); return err }},
			{"TraceAppend", func(ctx context.Context) error {
				return s.TraceAppend(ctx, []store.Trace{trace(time.Now(), "c1", "alice@example.com", "")})
			}},
			{"TraceAppend without traces", func(ctx context.Context) error { return s.TraceAppend(ctx, nil) }},
			{"TraceList", func(ctx context.Context) error { _, err := s.TraceList(ctx, store.TraceQuery{Limit: 10}); return err }},
			{"TracePurge", func(ctx context.Context) error { _, err := s.TracePurge(ctx, time.Now()); return err }},
			{"MSRPSessionAppend", func(ctx context.Context) error {
				return s.MSRPSessionAppend(ctx, []store.MSRPSession{msrpSession("alice@example.com", time.Now(), time.Now())})
			}},
			{"MSRPSessionAppend without records", func(ctx context.Context) error { return s.MSRPSessionAppend(ctx, nil) }},
			{"MSRPSessionList", func(ctx context.Context) error {
				_, err := s.MSRPSessionList(ctx, store.MSRPSessionQuery{Limit: 10})
				return err
			}},
			{"MSRPSessionPurge", func(ctx context.Context) error { _, err := s.MSRPSessionPurge(ctx, time.Now()); return err }},
			{"HistoryAppend", func(ctx context.Context) error {
				_, err := s.HistoryAppend(ctx, []store.HistoryRow{historyRow(a.ID, "m1")})
				return err
			}},
			{"HistoryAppend without rows", func(ctx context.Context) error { _, err := s.HistoryAppend(ctx, nil); return err }},
			{"HistoryList", func(ctx context.Context) error {
				_, err := s.HistoryList(ctx, store.HistoryQuery{AccountID: a.ID, Limit: 10})
				return err
			}},
			{"HistoryFind", func(ctx context.Context) error { _, err := s.HistoryFind(ctx, a.ID, "m1", time.Time{}); return err }},
			{"HistoryPurge", func(ctx context.Context) error { _, err := s.HistoryPurge(ctx, time.Now()); return err }},
			{"TokenPut", func(ctx context.Context) error {
				return s.TokenPut(ctx, store.APIToken{Digest: digest("t"), AccountID: a.ID, Device: "d1", CreatedAt: time.Now(), ExpiresAt: time.Now()}, 5)
			}},
			{"TokenGet", func(ctx context.Context) error { _, err := s.TokenGet(ctx, digest("t")); return err }},
			{"TokenPurge", func(ctx context.Context) error { _, err := s.TokenPurge(ctx, time.Now()); return err }},
			{"PublicKeyPut", func(ctx context.Context) error { return s.PublicKeyPut(ctx, a.ID, []byte("key")) }},
			{"PublicKeyGet", func(ctx context.Context) error { _, err := s.PublicKeyGet(ctx, a.ID); return err }},
			{"MigrateUp", func(ctx context.Context) error { _, err := s.MigrateUp(ctx); return err }},
			{"MigrateStatus", func(ctx context.Context) error { _, err := s.MigrateStatus(ctx); return err }},
			{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
			{"Close", func(context.Context) error { return s.Close() }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(t.Context()); !errors.Is(err, store.ErrClosed) {
					t.Errorf("err = %v, want ErrClosed", err)
				}
			})
		}
	})
}
