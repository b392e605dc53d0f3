// Package litestore is the embedded store engine: one SQLite file through the
// pure-Go driver modernc.org/sqlite. The file is in WAL mode with
// synchronous=FULL, so that a commit is on disk before it is acknowledged.
// Writes go through one connection, as SQLite runs one writer at a time
// anyway and waiting in Go beats retrying on SQLITE_BUSY; reads use a small
// pool of read-only connections, which WAL runs beside the writer. Concurrent
// journal puts, offline enqueues, registrations and history appends share
// transactions (group commit).
package litestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
	"github.com/cairn-chat/cairn/store/internal/groupcommit"
)

const (
	readers     = 4               // read-only connections
	busyTimeout = 5 * time.Second // wait for another process's write lock
)

// Options configures Open.
type Options struct {
	// Path is the database file. Its directory must exist.
	Path string
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

// Store is a store.Store on a SQLite file. It is safe for concurrent use.
type Store struct {
	w       *sql.DB // the one writer connection
	r       *sql.DB // read-only connections
	clock   store.Clock
	log     *slog.Logger
	puts    *groupcommit.Group[engine.PutRequest, engine.PutResult]
	queue   *groupcommit.Group[engine.EnqueueRequest, engine.EnqueueResult]
	regs    *groupcommit.Group[store.Registration, error]
	history *groupcommit.Group[engine.HistoryRequest, engine.HistoryResult]
	stmts   sync.Map // SQL text → *sql.Stmt on r
	closed  atomic.Bool
	// lastTS is the newest time stamped, or found in the journal at Open:
	// puts never stamp an earlier one. After Open only flushPuts uses it,
	// and group commit runs one flush at a time, passing the lead on under
	// its mutex, which orders each flush after the one before.
	lastTS int64
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the database at opts.Path. It refuses a database
// migrated by a newer cairn (store.ErrSchemaTooNew), and applies pending
// migrations when opts.Migrate is set.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("litestore: open: no database path")
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("litestore: open: %w", err)
	}
	ms := strconv.FormatInt(busyTimeout.Milliseconds(), 10)
	w, err := sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {ms},
		"_foreign_keys": {"on"},
		"_journal_mode": {"wal"},
		"_synchronous":  {"full"},
		"_txlock":       {"immediate"}, // take the write lock at BEGIN, not halfway through
	}))
	if err != nil {
		return nil, fmt.Errorf("litestore: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {ms},
		"_query_only":   {"on"},
	}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("litestore: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)

	s := &Store{w: w, r: r, clock: opts.Clock, log: opts.Logger}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "litestore")
	s.puts = groupcommit.New(putMaxBatch, putTimeout, s.flushPuts)
	s.queue = groupcommit.New(enqueueMaxBatch, putTimeout, s.flushEnqueues).WithLinger(engine.EnqueueLinger)
	s.regs = groupcommit.New(putMaxBatch, putTimeout, s.flushRegistrations)
	s.history = groupcommit.New(putMaxBatch, putTimeout, s.flushHistory).WithLinger(engine.HistoryLinger)
	if err := s.ready(ctx, opts.Migrate, opts.Inspect); err != nil {
		err = s.wrap("open "+path, err)
		s.Close()
		return nil, err
	}
	return s, nil
}

// ready checks the journal mode and the schema, migrates if asked to, and
// reads the newest time in the journal; it stops before that when
// inspecting a file with migrations pending. The writer connects first: it
// turns the file to WAL mode, which the readers then find.
func (s *Store) ready(ctx context.Context, migrate, inspect bool) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %s, not wal: is the file on a local file system?", mode)
	}
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
	return s.w.QueryRowContext(ctx, `SELECT coalesce(max(ts), 0) FROM journal`).Scan(&s.lastTS)
}

// dsn returns the driver's name for the file at the absolute path with the
// given connection parameters.
func dsn(path string, params url.Values) string {
	path = filepath.ToSlash(path)
	if !strings.HasPrefix(path, "/") {
		path = "/" + path // a Windows drive letter
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: params.Encode()}
	return u.String()
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close closes the database. Puts waiting for a commit get ErrClosed or
// their result; later calls return ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("litestore: close: %w", store.ErrClosed)
	}
	s.stmts.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	// The writer closes last, so that it checkpoints the WAL into the file.
	if err := errors.Join(s.r.Close(), s.w.Close()); err != nil {
		return fmt.Errorf("litestore: close: %w", err)
	}
	return nil
}

// prepared returns the reader statement for q, prepared once and cached:
// parsing SQL costs SQLite more than running the small reads of a SIP
// request.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// query runs a read through a cached statement.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a one-row read through a cached statement.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return s.r.QueryRowContext(ctx, q, args...) // reports the same error
	}
	return st.QueryRowContext(ctx, args...)
}

// checkOpen returns ErrClosed, wrapped for op, once the store is closed.
func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("litestore: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// wrap prefixes err with the package and op, and turns driver errors into
// the store's sentinels.
func (s *Store) wrap(op string, err error) error {
	switch se, _ := errors.AsType[*sqlite.Error](err); {
	case s.closed.Load():
		err = store.ErrClosed
	case errors.Is(err, sql.ErrNoRows):
		err = store.ErrNotFound
	case se != nil && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY):
		err = store.ErrConflict
	case se != nil && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		err = store.ErrNotFound // the row named a missing account or message
	}
	return fmt.Errorf("litestore: %s: %w", op, err)
}

// now returns the clock's time as the database keeps it: UTC microseconds.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }
