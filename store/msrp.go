package store

import (
	"context"
	"time"
)

// MSRPSession is the record of one MSRP relay session (RFC 4976): metadata
// only, never content. ID is the store's id. Session is a digest of the
// session id, not the id itself: the id is a capability while the session
// lives. Account is the user@domain that authenticated. Client is the address
// the AUTH came from, Peer the far leg's address ("" when the session was
// never bound). BytesIn counts body bytes the relay received from the client,
// BytesOut body bytes it sent to the client; Chunks counts SEND chunks both
// ways. Ended says why the session ended ("closed", "expired", "idle",
// "limit", "error", "shutdown").
type MSRPSession struct {
	ID        int64
	Session   string
	Account   string
	Transport string // tls, tcp, ws or wss
	Client    string
	Peer      string
	StartedAt time.Time // UTC, to the microsecond
	EndedAt   time.Time // UTC, to the microsecond
	BytesIn   int64
	BytesOut  int64
	Chunks    int64
	Ended     string
}

// MSRPSessionQuery selects session records that ended after Since
// (retention), with an ID above AfterID, ordered by id, at most Limit (which
// must be positive). Account, when set, keeps only that account's records.
type MSRPSessionQuery struct {
	Since   time.Time
	Account string
	AfterID int64
	Limit   int
}

// MSRPSessions is the storage of MSRP session records for the operator.
type MSRPSessions interface {
	// MSRPSessionAppend stores the records in one commit, in order; it sets
	// nothing on them (records are written behind the traffic, in batches).
	MSRPSessionAppend(ctx context.Context, rs []MSRPSession) error
	// MSRPSessionList returns the records that match q.
	MSRPSessionList(ctx context.Context, q MSRPSessionQuery) ([]MSRPSession, error)
	// MSRPSessionPurge removes records that ended before before and returns
	// how many.
	MSRPSessionPurge(ctx context.Context, before time.Time) (int64, error)
}
