// Package pgtest gives tests a PostgreSQL store of their own: each test gets
// a new schema in the database named by CAIRN_TEST_POSTGRES (or the local
// default), dropped when the test ends. When no PostgreSQL answers, the test
// is skipped, unless CI=true, where it fails: CI must not pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/pgstore"
)

// EnvURL names the environment variable that holds the test database's URL.
const EnvURL = "CAIRN_TEST_POSTGRES"

// DefaultURL is used when EnvURL is unset: the local server of a developer
// machine or CI.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test database's URL. When no PostgreSQL answers there it
// skips t, or fails it when CI=true: CI must not pass by skipping.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		url = DefaultURL
	}
	if err := exec(url, "SELECT 1"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: PostgreSQL at %s (set %s): %v", url, EnvURL, err)
		}
		t.Skipf("pgtest: no PostgreSQL at %s (set %s): %v", url, EnvURL, err)
	}
	return url
}

// Options returns Options for a new, empty schema that is dropped when t
// ends; Clock and Migrate are left to the caller.
func Options(t testing.TB) pgstore.Options {
	t.Helper()
	url := URL(t)
	name := "cairn_test_" + strings.ToLower(rand.Text()[:16])
	if err := exec(url, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(url, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return pgstore.Options{URL: url, Schema: name}
}

// Open opens a migrated store in a schema of its own, with rows stamped by
// clock, and closes it when t ends.
func Open(t testing.TB, clock store.Clock) *pgstore.Store {
	t.Helper()
	opts := Options(t)
	opts.Clock, opts.Migrate = clock, true
	s, err := pgstore.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// exec runs one statement on a connection of its own. It does not take
// t.Context, which has ended by the time cleanups run.
func exec(url, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}
