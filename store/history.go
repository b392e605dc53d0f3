package store

import (
	"context"
	"time"
)

// HistoryRow is one row of an account's message history (the SylkServer
// journal Blink syncs from): a message the account sent or received, or a
// control event (an IMDN, a SIP outcome, a removal, a conversation read or
// removed). ID is assigned by the store: per account it rises strictly in
// commit order, on every node, so a cursor never skips a row. Content is
// opaque (a PGP-encrypted body is kept as it came). Timestamp is the
// message's own time (CPIM DateTime, else arrival), UTC.
type HistoryRow struct {
	ID          int64
	AccountID   int64
	MessageID   string
	Contact     string // the peer, user@domain; for conversation rows the conversation
	Direction   string // "incoming", "outgoing" or ""
	ContentType string
	Content     []byte
	Timestamp   time.Time
	Disposition []string // never nil once stored: empty is []
	State       string
	CreatedAt   time.Time // set by the store
}

// HistoryQuery selects rows of AccountID with an ID above AfterID created
// after Since (retention), in id order, at most Limit (which must be
// positive).
type HistoryQuery struct {
	AccountID int64
	AfterID   int64
	Since     time.Time
	Limit     int
}

// APIToken is a history API token of one device of an account. Only a
// SHA-256 digest of the token is kept.
type APIToken struct {
	Digest    []byte
	AccountID int64
	Device    string // the device's +sip.instance, or its contact
	CreatedAt time.Time
	ExpiresAt time.Time
}

// History is the per-account message history, its API tokens and the
// published PGP public keys.
type History interface {
	// HistoryAppend stores rows, of one account or several, in one commit
	// and returns them with ID and CreatedAt set, in input order; ids rise
	// per account in input order. The returned rows are copies, as
	// HistoryList would return them (times in UTC to the microsecond,
	// Disposition never nil); rows is left as it was. If an account of
	// the rows does not exist, it stores nothing and returns ErrNotFound.
	// Concurrent appends share commits.
	HistoryAppend(ctx context.Context, rows []HistoryRow) ([]HistoryRow, error)
	// HistoryList returns the rows that match q.
	HistoryList(ctx context.Context, q HistoryQuery) ([]HistoryRow, error)
	// HistoryFind returns the rows of an account with this message id
	// created after since, in id order (at most 100).
	HistoryFind(ctx context.Context, accountID int64, messageID string, since time.Time) ([]HistoryRow, error)
	// HistoryPurge removes rows created before before and returns how many.
	HistoryPurge(ctx context.Context, before time.Time) (int64, error)

	// TokenPut stores a token; an account keeps at most maxPerAccount
	// tokens, the oldest (by CreatedAt) going first, in the same commit;
	// the new token always stays. It returns ErrConflict when the digest
	// is stored already, ErrNotFound when the account does not exist.
	TokenPut(ctx context.Context, t APIToken, maxPerAccount int) error
	// TokenGet returns the token with this digest, or ErrNotFound. It
	// returns expired tokens too: expiry is the caller's check.
	TokenGet(ctx context.Context, digest []byte) (APIToken, error)
	// TokenPurge removes tokens that expired before before.
	TokenPurge(ctx context.Context, before time.Time) (int64, error)

	// PublicKeyPut publishes an account's PGP public key, replacing any.
	// It returns ErrNotFound when the account does not exist.
	PublicKeyPut(ctx context.Context, accountID int64, key []byte) error
	// PublicKeyGet returns an account's key, or ErrNotFound.
	PublicKeyGet(ctx context.Context, accountID int64) ([]byte, error)
}
