-- MSRP relay session records: metadata only. Like traces, they belong to
-- addresses, not to accounts: they outlive an account and go by age (the
-- end of the session) only. Times are Unix microseconds, as in accounts.
-- AUTOINCREMENT: readers page by id.
CREATE TABLE msrp_sessions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session    TEXT    NOT NULL, -- a digest of the session id
    account    TEXT    NOT NULL,
    transport  TEXT    NOT NULL,
    client     TEXT    NOT NULL,
    peer       TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL,
    bytes_in   INTEGER NOT NULL,
    bytes_out  INTEGER NOT NULL,
    chunks     INTEGER NOT NULL,
    ended      TEXT    NOT NULL -- why it ended
);
CREATE INDEX msrp_sessions_account ON msrp_sessions (account, id);
CREATE INDEX msrp_sessions_ended_at ON msrp_sessions (ended_at);
