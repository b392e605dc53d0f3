-- Accounts and the Blink chat-replication journal.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    credentials BLOB    NOT NULL,
    web_hash    TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL, -- Unix microseconds
    updated_at  INTEGER NOT NULL,
    UNIQUE (domain, username)
);

-- AUTOINCREMENT: a journal id is never reused, even after the newest row is
-- deleted, because clients page with after_id and delete by id.
CREATE TABLE journal (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device     TEXT    NOT NULL,
    msg_id     TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    data_hash  BLOB    NOT NULL, -- SHA-256 of data, for idempotent puts
    ip         TEXT    NOT NULL,
    ts         INTEGER NOT NULL  -- Unix seconds
);
CREATE UNIQUE INDEX journal_identity ON journal (account_id, device, msg_id, data_hash);
CREATE INDEX journal_account_ts ON journal (account_id, ts, id);
CREATE INDEX journal_ts ON journal (ts);
