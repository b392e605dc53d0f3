// Package store holds cairn's domain types, the narrow storage interfaces each
// consumer depends on, and the sentinel errors every engine translates its
// driver errors into. The engines live in store/litestore (embedded SQLite) and
// store/pgstore (PostgreSQL); store/storetest is the conformance suite both pass.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Engines translate driver errors into these at the boundary;
// callers test them with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
	// ErrQuota: the write would take an account past a limit; nothing was stored.
	ErrQuota        = errors.New("store: quota exceeded")
	ErrClosed       = errors.New("store: closed")
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
	ErrSchemaOld    = errors.New("store: database schema needs migrating")
)

// Account is one SIP account, user@domain. Credentials is the sealed blob of
// digest HA1 values (see package auth): the store never sees a cleartext
// secret and never looks inside. WebHash is the slow hash of the optional web
// password, empty when there is none. The store compares User and Domain byte
// for byte (callers normalise case) and keeps the times in UTC to the
// microsecond.
type Account struct {
	ID          int64
	User        string
	Domain      string
	Credentials []byte
	WebHash     string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Address returns "user@domain".
func (a Account) Address() string { return a.User + "@" + a.Domain }

// Accounts is the storage the account commands and authenticators need.
type Accounts interface {
	// AccountCreate stores a new account and sets its ID and times.
	// It returns ErrConflict when user@domain exists already.
	AccountCreate(ctx context.Context, a *Account) error
	// AccountGet returns the account user@domain, or ErrNotFound.
	AccountGet(ctx context.Context, user, domain string) (Account, error)
	// AccountDomainExists reports whether any account belongs to domain.
	AccountDomainExists(ctx context.Context, domain string) (bool, error)
	// AccountSetCredentials replaces the credentials and web hash of
	// user@domain, or returns ErrNotFound.
	AccountSetCredentials(ctx context.Context, p AccountCredentialsParams) error
	// AccountDelete removes user@domain and everything stored for it,
	// or returns ErrNotFound.
	AccountDelete(ctx context.Context, user, domain string) error
	// AccountList returns every account, ordered by domain then user, byte
	// by byte.
	AccountList(ctx context.Context) ([]Account, error)
}

// AccountCredentialsParams names an account and its new secrets.
type AccountCredentialsParams struct {
	User        string
	Domain      string
	Credentials []byte
	WebHash     string
}

// JournalEntry is one row of the Blink chat-replication journal. Data is the
// client-encrypted blob, kept byte for byte; MsgID is the client's message id.
type JournalEntry struct {
	ID        int64
	AccountID int64
	Device    string
	MsgID     string
	Data      string
	IP        string
	Time      time.Time // insert time, whole seconds, UTC
}

// JournalItem is one entry offered by a put.
type JournalItem struct {
	MsgID string
	Data  string
}

// JournalPutParams is one put request: entries from one device of one account.
// Rows older than Since are expired: an item identical to one of them is
// stored anew, since the expired row will never be returned.
type JournalPutParams struct {
	AccountID int64
	Device    string
	IP        string
	Items     []JournalItem
	Since     time.Time
}

// JournalQuery selects journal rows of one account. Rows older than Since are
// never returned (retention); ExceptDevice, AfterID and AfterTime (inclusive)
// narrow further when set. Limit caps the rows returned and must be positive:
// a query without one is an error. MaxBytes, when positive, caps the bytes of
// Data that JournalList returns: it stops before the row that would pass the
// cap, but always returns the first row.
type JournalQuery struct {
	AccountID    int64
	Since        time.Time
	ExceptDevice string
	AfterID      int64
	AfterTime    time.Time
	Limit        int
	MaxBytes     int64
}

// JournalStamp is the id and time of one journal row, for summaries.
type JournalStamp struct {
	ID   int64
	Time time.Time
}

// Journal is the storage the Blink replication API needs.
type Journal interface {
	// JournalPut stores the items and returns their ids in input order, only
	// once they are committed. An item identical to one already stored (same
	// account, device, msgid and data) gets the existing id instead of a new row;
	// so does a repeat inside one call. Concurrent puts share commits. Text
	// must be UTF-8 without NUL bytes; a put that breaks this stores nothing.
	JournalPut(ctx context.Context, p JournalPutParams) ([]int64, error)
	// JournalList returns the rows that match q, ordered by time then id.
	JournalList(ctx context.Context, q JournalQuery) ([]JournalEntry, error)
	// JournalSummary returns the id and time of the rows that match q, in the
	// same order as JournalList.
	JournalSummary(ctx context.Context, q JournalQuery) ([]JournalStamp, error)
	// JournalDelete removes the listed rows of one account and returns how many
	// it removed. Ids that do not exist or belong to another account are ignored.
	JournalDelete(ctx context.Context, accountID int64, ids []int64) (int64, error)
	// JournalPurge removes every row older than before and returns the count.
	JournalPurge(ctx context.Context, before time.Time) (int64, error)
}

// Migration describes one schema version and whether it is applied.
type Migration struct {
	Version   int
	Name      string
	AppliedAt time.Time // zero when pending
}

// Store is everything an engine provides.
type Store interface {
	Accounts
	Journal
	Registrations
	Offline
	Traces
	MSRPSessions
	History
	// MigrateUp applies every pending migration and returns the versions it applied.
	MigrateUp(ctx context.Context) ([]int, error)
	// MigrateStatus lists the known migrations, applied or pending. It returns
	// ErrSchemaTooNew when the database has versions this binary does not know.
	MigrateStatus(ctx context.Context) ([]Migration, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases the engine; later calls return ErrClosed.
	Close() error
}

// Clock returns the current time. Engines stamp rows with it, so that tests
// can move time instead of waiting.
type Clock func() time.Time
