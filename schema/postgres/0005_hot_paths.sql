-- The tables written for every SIP MESSAGE, made cheaper to insert into.
--
-- history and offline_messages lose their foreign keys to accounts. Every
-- flush that inserts into them already locks the accounts it writes for
-- (FOR KEY SHARE, FOR NO KEY UPDATE) and writes only for those it found,
-- and the first append of an account still meets the foreign key of
-- history_seq; the per-row check repeated that lock for every row.
-- AccountDelete removes the account's rows itself, in its transaction,
-- after the account row: it waits for any flush that holds the account,
-- and a flush that comes after it finds no account.
ALTER TABLE history DROP CONSTRAINT history_account_id_fkey;
ALTER TABLE offline_messages DROP CONSTRAINT offline_messages_account_id_fkey;

-- The indexes that only the purges read become block-range indexes: rows
-- arrive in time order, so a range summary finds the old ones, and an
-- insert costs a summary update instead of a B-tree descent.
DROP INDEX sip_traces_at;
CREATE INDEX sip_traces_at ON sip_traces USING brin (at) WITH (autosummarize = on);
DROP INDEX history_created_at;
CREATE INDEX history_created_at ON history USING brin (created_at) WITH (autosummarize = on);
DROP INDEX offline_messages_expires;
CREATE INDEX offline_messages_expires ON offline_messages USING brin (expires_at) WITH (autosummarize = on);
