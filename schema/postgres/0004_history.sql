-- The message history of each account (what SylkServer keeps for Blink and
-- Sylk clients to sync from), the tokens of its history API and the
-- published PGP public keys. Times are TIMESTAMPTZ, as in accounts; text
-- that is compared has collation "C", byte for byte as in SQLite.

-- The last history id given out to each account. HistoryAppend takes the
-- next ids of an account with an upsert of its row (INSERT … ON CONFLICT DO
-- UPDATE … RETURNING), in the transaction that stores the rows. The upsert
-- holds the row's lock until that transaction ends, so the next append to
-- the account, on any node, gets its ids only after the previous one has
-- committed (or rolled back, giving its ids back): an account's ids rise in
-- commit order, and a client that pages with after_id never passes over a
-- row committed after one it has seen. A sequence would not do: two
-- transactions that took ids 7 and 8 from it may commit 8 first, and a
-- reader that saw 8 would never see 7. The row outlives the history it
-- numbered (purges leave it), so an id is never given out twice; it goes
-- with the account.
CREATE TABLE history_seq (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    last_id    BIGINT NOT NULL
);

-- id is per account (history_seq). Content is opaque bytes, disposition a
-- JSON array of strings, timestamp the message's own time.
CREATE TABLE history (
    account_id   BIGINT           NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id           BIGINT           NOT NULL,
    message_id   TEXT COLLATE "C" NOT NULL,
    contact      TEXT             NOT NULL,
    direction    TEXT             NOT NULL,
    content_type TEXT             NOT NULL,
    content      BYTEA            NOT NULL,
    timestamp    TIMESTAMPTZ      NOT NULL,
    disposition  TEXT             NOT NULL,
    state        TEXT             NOT NULL,
    created_at   TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (account_id, id)
);
-- HistoryFind: the rows of a message, in id order.
CREATE INDEX history_message ON history (account_id, message_id, id);
CREATE INDEX history_created_at ON history (created_at);

-- History API tokens: only a SHA-256 digest of each is kept. An account
-- keeps a few, the oldest evicted first.
CREATE TABLE api_tokens (
    digest     BYTEA            PRIMARY KEY,
    account_id BIGINT           NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device     TEXT             NOT NULL,
    created_at TIMESTAMPTZ      NOT NULL,
    expires_at TIMESTAMPTZ      NOT NULL
);
CREATE INDEX api_tokens_account ON api_tokens (account_id, created_at);
CREATE INDEX api_tokens_expires ON api_tokens (expires_at);

-- One published PGP public key per account.
CREATE TABLE public_keys (
    account_id BIGINT      PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    key        BYTEA       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
