-- MSRP relay session records: metadata only. Like traces, they belong to
-- addresses, not to accounts: they outlive an account and go by age (the
-- end of the session) only. Times are TIMESTAMPTZ, as in accounts; text
-- that is compared has collation "C", byte for byte as in SQLite. Readers
-- page by id.
CREATE TABLE msrp_sessions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session    TEXT             NOT NULL, -- a digest of the session id
    account    TEXT COLLATE "C" NOT NULL,
    transport  TEXT             NOT NULL,
    client     TEXT             NOT NULL,
    peer       TEXT             NOT NULL,
    started_at TIMESTAMPTZ      NOT NULL,
    ended_at   TIMESTAMPTZ      NOT NULL,
    bytes_in   BIGINT           NOT NULL,
    bytes_out  BIGINT           NOT NULL,
    chunks     BIGINT           NOT NULL,
    ended      TEXT             NOT NULL -- why it ended
);
CREATE INDEX msrp_sessions_account ON msrp_sessions (account, id);
CREATE INDEX msrp_sessions_ended_at ON msrp_sessions (ended_at);
