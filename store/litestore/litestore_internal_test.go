package litestore

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// TestConnections checks the settings that durability and concurrency rest on.
func TestConnections(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "cairn.db"), Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{"writer journal mode", s.w, "journal_mode", "wal"},
		{"writer synchronous is FULL", s.w, "synchronous", "2"},
		{"writer foreign keys", s.w, "foreign_keys", "1"},
		{"writer busy timeout", s.w, "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
		{"reader query only", s.r, "query_only", "1"},
		{"reader busy timeout", s.r, "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := tt.db.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
			}
		})
	}
	if n := s.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer has up to %d connections, want 1", n)
	}
	if _, err := s.r.ExecContext(t.Context(), "DELETE FROM journal"); err == nil {
		t.Error("a reader connection wrote")
	}
}
