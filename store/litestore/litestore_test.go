package litestore_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/schema"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/litestore"
	"github.com/cairn-chat/cairn/store/litestore/litetest"
	"github.com/cairn-chat/cairn/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		return litetest.Open(t, clock)
	})
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cairn.db")
	storetest.RunReopen(t, func(t *testing.T, clock store.Clock) store.Store {
		s, err := litestore.Open(t.Context(), litestore.Options{Path: path, Clock: clock, Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// open opens the database at path and closes it when t ends.
func open(t *testing.T, path string, migrate bool) (*litestore.Store, error) {
	t.Helper()
	s, err := litestore.Open(t.Context(), litestore.Options{Path: path, Migrate: migrate})
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
	}{
		{"no path", ""},
		{"missing directory", filepath.Join(t.TempDir(), "missing", "cairn.db")},
		{"directory", t.TempDir()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := open(t, tt.path, true); err == nil {
				t.Errorf("Open(%q) succeeded, want an error", tt.path)
			}
		})
	}
}

func TestOpenSchemaOld(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cairn.db")
	if _, err := open(t, path, false); !errors.Is(err, store.ErrSchemaOld) {
		t.Fatalf("Open of a new file without Migrate = %v, want ErrSchemaOld", err)
	}
	inspect, err := litestore.Open(t.Context(), litestore.Options{Path: path, Inspect: true})
	if err != nil {
		t.Fatalf("Open with Inspect: %v", err)
	}
	if status, err := inspect.MigrateStatus(t.Context()); err != nil || len(status) == 0 || !status[0].AppliedAt.IsZero() {
		t.Fatalf("MigrateStatus with Inspect = %v, %v; want version 1 pending", status, err)
	}
	inspect.Close()
	if _, err := open(t, path, true); err != nil {
		t.Fatalf("Open with Migrate: %v", err)
	}
	s, err := open(t, path, false)
	if err != nil {
		t.Fatalf("Open of a migrated file without Migrate: %v", err)
	}
	status, err := s.MigrateStatus(t.Context())
	if err != nil || len(status) == 0 || slices.ContainsFunc(status, func(m store.Migration) bool { return m.AppliedAt.IsZero() }) {
		t.Errorf("MigrateStatus = %+v, %v; want every migration applied", status, err)
	}
}

func TestOpenSchemaTooNew(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cairn.db")
	s, err := open(t, path, true)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}

	if _, err := s.MigrateStatus(t.Context()); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("MigrateStatus = %v, want ErrSchemaTooNew", err)
	}
	if _, err := s.MigrateUp(t.Context()); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("MigrateUp = %v, want ErrSchemaTooNew", err)
	}
	for _, migrate := range []bool{false, true} {
		_, err := open(t, path, migrate)
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Open(Migrate: %t) = %v, want ErrSchemaTooNew", migrate, err)
		}
		if tooNew, ok := errors.AsType[*schema.TooNewError](err); !ok || !slices.Equal(tooNew.Unknown, []int{999}) {
			t.Errorf("Open(Migrate: %t) = %v, want a TooNewError naming version 999", migrate, err)
		}
	}
}

// TestOpenConcurrent opens a new file from several stores at once, as a
// server and a migrate command might: one migrates, the others wait for it.
func TestOpenConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cairn.db")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := open(t, path, true); err != nil {
				t.Errorf("Open: %v", err)
			}
		})
	}
	wg.Wait()
	s, err := open(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if applied, err := s.MigrateUp(t.Context()); err != nil || len(applied) != 0 {
		t.Errorf("MigrateUp = %v, %v; want nothing left to apply", applied, err)
	}
}

// TestOpenPath opens files whose names need escaping in a URI.
func TestOpenPath(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"with space.db", "what?.db", "hash#.db", "100%.db", "ünï.db"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			if _, err := open(t, path, true); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database not at %s: %v", path, err)
			}
		})
	}
}

// TestDurable checks that what a store acknowledged is there after a reopen.
func TestDurable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cairn.db")
	s, err := open(t, path, true)
	if err != nil {
		t.Fatal(err)
	}
	a := store.Account{User: "alice", Domain: "example.com", Credentials: []byte("sealed")}
	if err := s.AccountCreate(t.Context(), &a); err != nil {
		t.Fatal(err)
	}
	ids, err := s.JournalPut(t.Context(), store.JournalPutParams{AccountID: a.ID, Device: "d1", Items: []store.JournalItem{{MsgID: "m1", Data: "one"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = open(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccountGet(t.Context(), "alice", "example.com"); err != nil {
		t.Errorf("AccountGet after reopen: %v", err)
	}
	rows, err := s.JournalList(t.Context(), store.JournalQuery{AccountID: a.ID, Limit: 10})
	if err != nil || len(rows) != 1 || rows[0].ID != ids[0] || rows[0].Data != "one" {
		t.Errorf("JournalList after reopen = %+v, %v; want row %d", rows, err, ids[0])
	}
}

// TestHistoryNodes runs history appends and cursor readers on two stores
// on one file, as a server and a command might.
func TestHistoryNodes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cairn.db")
	var nodes []store.Store
	for range 2 {
		s, err := open(t, path, true)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, s)
	}
	storetest.HistoryNodes(t, nodes)
}

func BenchmarkJournalPut(b *testing.B) {
	storetest.BenchJournalPut(b, litetest.Open(b, nil))
}

func BenchmarkOfflineEnqueue(b *testing.B) {
	storetest.BenchOfflineEnqueue(b, litetest.Open(b, nil))
}

func BenchmarkHistoryList5000(b *testing.B) {
	storetest.BenchHistoryList5000(b, litetest.Open(b, nil))
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
