package litestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cairn-chat/cairn/schema"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// createVersions creates the versions table; applied_at is in Unix
// microseconds, like the other times.
const createVersions = `CREATE TABLE IF NOT EXISTS ` + schema.VersionsTable + ` (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)`

// MigrateUp applies every pending migration, each in a transaction of its
// own, and returns the versions it applied.
func (s *Store) MigrateUp(ctx context.Context) ([]int, error) {
	done, err := s.migrateUp(ctx)
	if err != nil {
		return done, s.wrap("migrate up", err)
	}
	return done, nil
}

func (s *Store) migrateUp(ctx context.Context) ([]int, error) {
	var done []int
	for {
		m, err := s.migrateNext(ctx)
		if err != nil || m == nil {
			return done, err
		}
		s.log.Info("applied migration", "version", m.Version, "name", m.Name)
		done = append(done, m.Version)
	}
}

// migrateNext applies the first pending migration and returns it, or nil
// when none is pending. The writer's transactions begin IMMEDIATE, so another
// process migrating the same file waits until this one commits.
func (s *Store) migrateNext(ctx context.Context) (*schema.Migration, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, createVersions); err != nil {
		return nil, err
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return nil, err
	}
	pending, err := engine.Plan(schema.SQLite, applied)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	m := pending[0]
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return nil, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+schema.VersionsTable+` (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, s.now().UnixMicro()); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return &m, nil
}

// MigrateStatus lists the known migrations, applied or pending. It returns
// store.ErrSchemaTooNew when the database has versions this binary does not know.
func (s *Store) MigrateStatus(ctx context.Context) ([]store.Migration, error) {
	status, err := s.status(ctx)
	if err != nil {
		return nil, s.wrap("migrate status", err)
	}
	return status, nil
}

func (s *Store) status(ctx context.Context) ([]store.Migration, error) {
	var exists bool
	err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)`,
		schema.VersionsTable).Scan(&exists)
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	if exists {
		if applied, err = appliedVersions(ctx, s.r); err != nil {
			return nil, err
		}
	}
	return engine.Status(schema.SQLite, applied)
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// appliedVersions returns the applied versions and when they were applied.
func appliedVersions(ctx context.Context, q queryer) (map[int]time.Time, error) {
	rows, err := q.QueryContext(ctx, `SELECT version, applied_at FROM `+schema.VersionsTable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			return nil, err
		}
		applied[v] = time.UnixMicro(at).UTC()
	}
	return applied, rows.Err()
}
