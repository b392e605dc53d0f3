// Package pgstore is the PostgreSQL store engine, on pgx/v5's pool. Several
// cairn nodes may share one database: migrations run under an advisory
// lock. A node's concurrent journal puts share commits (group commit), each
// batch loaded with one COPY; so do its offline enqueues, each batch in two
// pipelined round trips that lock the recipients first, so that quotas hold
// across nodes, and its history appends, each batch in one round trip that
// takes per-account ids in commit order.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
	"github.com/cairn-chat/cairn/store/internal/groupcommit"
)

// SQLSTATEs of constraint violations.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// Options configures Open.
type Options struct {
	// URL is the connection string, in any form pgxpool.ParseConfig takes,
	// including its pool settings (pool_max_conns and the like).
	URL string
	// Schema, when set, is the PostgreSQL schema that holds cairn's tables:
	// it becomes the connections' search_path. It must exist.
	Schema string
	// Clock stamps rows; nil means time.Now.
	Clock store.Clock
	// Migrate applies pending migrations on open. Without it, Open fails
	// with store.ErrSchemaOld when migrations are pending, unless Inspect.
	Migrate bool
	// Inspect opens a database with pending migrations as it is, so that
	// MigrateStatus can list them; nothing else may be used then.
	Inspect bool
	// Logger receives a line per applied migration; nil discards them.
	Logger *slog.Logger
}

// Store is a store.Store on a PostgreSQL database. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	clock   store.Clock
	log     *slog.Logger
	puts    *groupcommit.Group[engine.PutRequest, engine.PutResult]
	queue   *groupcommit.Group[engine.EnqueueRequest, engine.EnqueueResult]
	regs    *groupcommit.Group[store.Registration, error]
	lists   *groupcommit.Group[listRequest, []store.Registration]
	history *groupcommit.Group[engine.HistoryRequest, engine.HistoryResult]
	closed  atomic.Bool
	// lastTS is the newest time stamped, or found in the journal at Open:
	// puts never stamp an earlier one. After Open only flushPuts uses it,
	// and group commit runs one flush at a time, passing the lead on under
	// its mutex, which orders each flush after the one before.
	lastTS int64
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at opts.URL. It refuses a database migrated
// by a newer cairn (store.ErrSchemaTooNew), and applies pending migrations
// when opts.Migrate is set.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL == "" {
		return nil, errors.New("pgstore: open: no database URL")
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	// Every statement of cairn is short: the estimates for a big table can
	// pass jit_above_cost, and compiling takes longer than the statement.
	// Set once per connection, not in every transaction; the URL may
	// override it.
	if _, ok := cfg.ConnConfig.RuntimeParams["jit"]; !ok {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}

	s := &Store{pool: pool, clock: opts.Clock, log: opts.Logger}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "pgstore")
	s.puts = groupcommit.New(putMaxBatch, putTimeout, s.flushPuts)
	s.queue = groupcommit.New(enqueueMaxBatch, putTimeout, s.flushEnqueues).WithLinger(engine.EnqueueLinger)
	s.regs = groupcommit.New(putMaxBatch, putTimeout, s.flushRegistrations)
	s.lists = groupcommit.New(putMaxBatch, listTimeout, s.flushLists)
	s.history = groupcommit.New(putMaxBatch, putTimeout, s.flushHistory).WithLinger(engine.HistoryLinger)
	if err := s.ready(ctx, opts.Migrate, opts.Inspect); err != nil {
		err = s.wrap("open", err)
		s.Close()
		return nil, err
	}
	return s, nil
}

// ready checks the schema, which also proves that the database answers,
// migrates if asked to, and reads the newest time in the journal; it stops
// before that when inspecting a schema with migrations pending.
func (s *Store) ready(ctx context.Context, migrate, inspect bool) error {
	status, err := s.status(ctx)
	if err != nil {
		return err
	}
	apply, err := engine.MustMigrate(status, migrate, inspect)
	switch {
	case err != nil:
		return err
	case inspect && !migrate:
		return nil // opened for MigrateStatus only
	case apply:
		if _, err := s.migrateUp(ctx); err != nil {
			return err
		}
	}
	// max(ts) reads one entry of index journal_ts.
	return s.pool.QueryRow(ctx, `SELECT coalesce(max(ts), 0) FROM journal`).Scan(&s.lastTS)
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close closes the pool once the connections in use are back. Puts waiting
// for a commit get ErrClosed or their result; later calls return ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("pgstore: close: %w", store.ErrClosed)
	}
	s.pool.Close()
	return nil
}

// checkOpen returns ErrClosed, wrapped for op, once the store is closed.
func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// wrap prefixes err with the package and op, and turns driver errors into
// the store's sentinels.
func (s *Store) wrap(op string, err error) error {
	switch pe, _ := errors.AsType[*pgconn.PgError](err); {
	case s.closed.Load():
		err = store.ErrClosed
	case errors.Is(err, pgx.ErrNoRows):
		err = store.ErrNotFound
	case pe != nil && pe.Code == uniqueViolation:
		err = store.ErrConflict
	case pe != nil && pe.Code == foreignKeyViolation:
		err = store.ErrNotFound // the row named a missing account or message
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// now returns the clock's time as the database keeps it: UTC microseconds.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }
