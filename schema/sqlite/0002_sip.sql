-- The SIP core: the location service, the offline store-and-forward queue
-- and signaling traces. Times are Unix microseconds, as in accounts.

-- One binding per device (instance) of an account.
CREATE TABLE registrations (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    instance   TEXT    NOT NULL,
    contact    TEXT    NOT NULL,
    transport  TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    call_id    TEXT    NOT NULL,
    cseq       INTEGER NOT NULL,
    user_agent TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, instance)
) WITHOUT ROWID;
CREATE INDEX registrations_expires ON registrations (expires_at);

-- AUTOINCREMENT: a message id is never reused, since devices are owed
-- messages by id and delivery outcomes name them.
CREATE TABLE offline_messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sender       TEXT    NOT NULL,
    from_hdr     TEXT    NOT NULL,
    to_hdr       TEXT    NOT NULL,
    date_hdr     TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    dedup_key    TEXT    NOT NULL,
    size         INTEGER NOT NULL, -- length of body, what quotas count
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX offline_messages_identity ON offline_messages (account_id, sender, dedup_key);
-- What a device is owed, in id order, and a quota check (the recipient's
-- unexpired count and bytes) from the index alone.
CREATE INDEX offline_messages_account ON offline_messages (account_id, id, expires_at, size);
CREATE INDEX offline_messages_expires ON offline_messages (expires_at);

-- How each device of the recipient stands with a message; no row: pending.
-- state: 1 retry, 2 done, 3 rejected (store.DeliveryState).
CREATE TABLE offline_deliveries (
    message_id INTEGER NOT NULL REFERENCES offline_messages (id) ON DELETE CASCADE,
    instance   TEXT    NOT NULL,
    state      INTEGER NOT NULL CHECK (state IN (1, 2, 3)),
    attempts   INTEGER NOT NULL,
    next_at    INTEGER, -- NULL when never retried
    PRIMARY KEY (message_id, instance)
) WITHOUT ROWID;

-- Traces belong to addresses, not to accounts: they outlive an account and
-- go by age only. AUTOINCREMENT: readers page by id.
CREATE TABLE sip_traces (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    direction TEXT    NOT NULL,
    transport TEXT    NOT NULL,
    local     TEXT    NOT NULL,
    remote    TEXT    NOT NULL,
    call_id   TEXT    NOT NULL,
    method    TEXT    NOT NULL,
    status    INTEGER NOT NULL,
    from_addr TEXT    NOT NULL,
    to_addr   TEXT    NOT NULL,
    message   BLOB    NOT NULL
);
CREATE INDEX sip_traces_from ON sip_traces (from_addr, id);
CREATE INDEX sip_traces_to ON sip_traces (to_addr, id);
CREATE INDEX sip_traces_call ON sip_traces (call_id, id);
CREATE INDEX sip_traces_at ON sip_traces (at);
