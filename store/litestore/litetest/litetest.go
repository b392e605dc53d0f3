// Package litetest opens litestore databases for tests.
package litetest

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/litestore"
)

// Open opens a migrated database in a temporary directory of t, with rows
// stamped by clock, and closes it when t ends.
func Open(t testing.TB, clock store.Clock) *litestore.Store {
	t.Helper()
	s, err := litestore.Open(t.Context(), litestore.Options{
		Path:    filepath.Join(t.TempDir(), "cairn.db"),
		Clock:   clock,
		Migrate: true,
	})
	if err != nil {
		t.Fatalf("litetest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("litetest: %v", err)
		}
	})
	return s
}
