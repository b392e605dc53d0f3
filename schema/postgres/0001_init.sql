-- Accounts and the Blink chat-replication journal. Identifiers compare byte
-- for byte (COLLATE "C"), as in SQLite, whatever the database's collation.
CREATE TABLE accounts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username    TEXT COLLATE "C" NOT NULL,
    domain      TEXT COLLATE "C" NOT NULL,
    credentials BYTEA            NOT NULL,
    web_hash    TEXT             NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ      NOT NULL,
    updated_at  TIMESTAMPTZ      NOT NULL,
    UNIQUE (domain, username)
);

CREATE TABLE journal (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT           NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device     TEXT COLLATE "C" NOT NULL,
    msg_id     TEXT COLLATE "C" NOT NULL,
    data       TEXT             NOT NULL,
    data_hash  BYTEA            NOT NULL, -- SHA-256 of data, for idempotent puts
    ip         TEXT             NOT NULL,
    ts         BIGINT           NOT NULL  -- Unix seconds
);
CREATE UNIQUE INDEX journal_identity ON journal (account_id, device, msg_id, data_hash);
CREATE INDEX journal_account_ts ON journal (account_id, ts, id);
CREATE INDEX journal_ts ON journal (ts);
