package pgstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/schema"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/pgstore"
	"github.com/cairn-chat/cairn/store/pgstore/pgtest"
	"github.com/cairn-chat/cairn/store/storetest"
)

func TestConformance(t *testing.T) {
	pgtest.URL(t) // skip once, not in every subtest
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		return pgtest.Open(t, clock)
	})
}

func BenchmarkJournalPut(b *testing.B) {
	storetest.BenchJournalPut(b, pgtest.Open(b, nil))
}

// open opens the store and closes it when t ends.
func open(t *testing.T, opts pgstore.Options) (*pgstore.Store, error) {
	t.Helper()
	s, err := pgstore.Open(t.Context(), opts)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// exec runs sql in the test database.
func exec(t *testing.T, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	tests := []struct {
		name string
		opts pgstore.Options
	}{
		{"no URL", pgstore.Options{Migrate: true}},
		{"bad URL", pgstore.Options{URL: "postgres://%zz", Migrate: true}},
		{"no server", pgstore.Options{URL: "postgres://postgres@127.0.0.1:1/test?connect_timeout=5", Migrate: true}},
		{"missing schema", pgstore.Options{URL: url, Schema: "cairn_test_missing", Migrate: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := open(t, tt.opts); err == nil {
				t.Errorf("Open succeeded, want an error")
			}
		})
	}
}

func TestOpenSchemaOld(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	if _, err := open(t, opts); !errors.Is(err, store.ErrSchemaOld) {
		t.Fatalf("Open of an empty schema without Migrate = %v, want ErrSchemaOld", err)
	}
	inspectOpts := opts
	inspectOpts.Inspect = true
	inspect, err := open(t, inspectOpts)
	if err != nil {
		t.Fatalf("Open with Inspect: %v", err)
	}
	if status, err := inspect.MigrateStatus(t.Context()); err != nil || len(status) == 0 || !status[0].AppliedAt.IsZero() {
		t.Fatalf("MigrateStatus with Inspect = %v, %v; want version 1 pending", status, err)
	}
	opts.Migrate = true
	if _, err := open(t, opts); err != nil {
		t.Fatalf("Open with Migrate: %v", err)
	}
	opts.Migrate = false
	s, err := open(t, opts)
	if err != nil {
		t.Fatalf("Open of a migrated schema without Migrate: %v", err)
	}
	status, err := s.MigrateStatus(t.Context())
	if err != nil || len(status) == 0 || slices.ContainsFunc(status, func(m store.Migration) bool { return m.AppliedAt.IsZero() }) {
		t.Errorf("MigrateStatus = %+v, %v; want every migration applied", status, err)
	}
}

func TestOpenSchemaTooNew(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	s, err := open(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, `INSERT INTO `+pgx.Identifier{opts.Schema, "schema_migrations"}.Sanitize()+` (version, name, applied_at) VALUES (999, 'future', now())`)

	if _, err := s.MigrateStatus(t.Context()); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("MigrateStatus = %v, want ErrSchemaTooNew", err)
	}
	if _, err := s.MigrateUp(t.Context()); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("MigrateUp = %v, want ErrSchemaTooNew", err)
	}
	for _, migrate := range []bool{false, true} {
		opts.Migrate = migrate
		_, err := open(t, opts)
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Open(Migrate: %t) = %v, want ErrSchemaTooNew", migrate, err)
		}
		if tooNew, ok := errors.AsType[*schema.TooNewError](err); !ok || !slices.Equal(tooNew.Unknown, []int{999}) {
			t.Errorf("Open(Migrate: %t) = %v, want a TooNewError naming version 999", migrate, err)
		}
	}
}

// TestOpenConcurrent starts several nodes on one new schema at once: each
// migration must be applied once, and every node must start.
func TestOpenConcurrent(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if _, err := open(t, opts); err != nil {
				t.Errorf("Open: %v", err)
			}
		})
	}
	wg.Wait()
	s, err := open(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	status, err := s.MigrateStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range status {
		if m.AppliedAt.IsZero() || m.AppliedAt.After(time.Now()) {
			t.Errorf("migration %+v, want it applied", m)
		}
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
