package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/schema"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// migrateLock is the key of the advisory lock that lets one node of a
// cluster migrate at a time.
const migrateLock int64 = 0x636169726e // "cairn"

const createVersions = `CREATE TABLE IF NOT EXISTS ` + schema.VersionsTable + ` (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
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
// when none is pending. It decides under the advisory lock, so that nodes
// starting together apply each migration once.
func (s *Store) migrateNext(ctx context.Context) (*schema.Migration, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, createVersions); err != nil {
		return nil, err
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return nil, err
	}
	pending, err := engine.Plan(schema.Postgres, applied)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	m := pending[0]
	// Without arguments, pgx sends the file as a simple query, which may
	// hold several statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return nil, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+schema.VersionsTable+` (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.Version, m.Name, s.now()); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
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
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema.VersionsTable).Scan(&exists); err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	if exists {
		var err error
		if applied, err = appliedVersions(ctx, s.pool); err != nil {
			return nil, err
		}
	}
	return engine.Status(schema.Postgres, applied)
}

// queryer is a *pgxpool.Pool or a pgx.Tx.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// appliedVersions returns the applied versions and when they were applied.
func appliedVersions(ctx context.Context, q queryer) (map[int]time.Time, error) {
	rows, err := q.Query(ctx, `SELECT version, applied_at FROM `+schema.VersionsTable)
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	var v int
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&v, &at}, func() error {
		applied[v] = at.UTC()
		return nil
	})
	return applied, err
}
