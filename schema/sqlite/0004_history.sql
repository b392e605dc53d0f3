-- The message history of each account (what SylkServer keeps for Blink and
-- Sylk clients to sync from), the tokens of its history API and the
-- published PGP public keys. Times are Unix microseconds, as in accounts.

-- The last history id given out to each account. HistoryAppend takes the
-- next ids of an account from its row, in the transaction that stores the
-- rows: with one writer, ids rise in commit order, so a client that pages
-- with after_id never passes over a row committed after one it has seen.
-- The row outlives the history it numbered (purges leave it), so an id is
-- never given out twice; it goes with the account.
CREATE TABLE history_seq (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    last_id    INTEGER NOT NULL
);

-- id is per account (history_seq), not a rowid: rows are read by
-- (account_id, id). Content is opaque bytes, disposition a JSON array of
-- strings, timestamp the message's own time.
CREATE TABLE history (
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id           INTEGER NOT NULL,
    message_id   TEXT    NOT NULL,
    contact      TEXT    NOT NULL,
    direction    TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    content      BLOB    NOT NULL,
    timestamp    INTEGER NOT NULL,
    disposition  TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, id)
);
-- HistoryFind: the rows of a message, in id order, from the index alone.
CREATE INDEX history_message ON history (account_id, message_id, id);
CREATE INDEX history_created_at ON history (created_at);

-- History API tokens: only a SHA-256 digest of each is kept. An account
-- keeps a few, the oldest evicted first.
CREATE TABLE api_tokens (
    digest     BLOB    PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX api_tokens_account ON api_tokens (account_id, created_at);
CREATE INDEX api_tokens_expires ON api_tokens (expires_at);

-- One published PGP public key per account.
CREATE TABLE public_keys (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    key        BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);
