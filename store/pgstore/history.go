package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// Bounds of one statement of a history flush.
const (
	historyChunkRows  = 2000
	historyChunkBytes = 32 << 20 // of content
)

// HistoryAppend stores the rows once they are committed and returns them
// with their ids and created time. Concurrent appends share commits.
func (s *Store) HistoryAppend(ctx context.Context, rows []store.HistoryRow) ([]store.HistoryRow, error) {
	const op = "history append"
	if err := s.checkOpen(op); err != nil {
		return nil, err
	}
	req, err := engine.NewHistoryRequest(rows)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if len(rows) == 0 {
		return []store.HistoryRow{}, nil
	}
	res, err := s.history.Do(ctx, req)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return res.Rows, res.Err
}

// lockHistoryAccounts locks the accounts $1 that exist, in id order, and
// returns their ids. FOR KEY SHARE keeps them until the commit: an
// AccountDelete waits for the flush, then deletes the rows too. Taken
// before the counters, it keeps a flush from waiting for an AccountDelete
// that waits for the flush (the flush would hold a counter row and then
// need the account for a foreign key check, while the delete held the
// account and needed the counter row). Flushes do not
// wait for each other here; the counter rows order them.
const lockHistoryAccounts = `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR KEY SHARE`

// appendHistory takes ids for the accounts $1, $2 rows each, inserts the
// rows passed as arrays ($3 to $12) with creation time $13, and returns
// each account's new last id. The upsert of the account's history_seq row
// adds to its last id and holds the row's lock until the commit, so that
// the account's next append, on any node, takes its ids after this one
// commits (see schema/postgres/0004_history.sql). The counter rows are
// taken in account order, in every statement of every flush, so that
// flushes cannot deadlock. A row's id is its account's new last id less
// its back, the number of the account's rows after it in the statement.
// The rows join the upsert's output, not the table: nothing but the
// counters and the new rows is read.
const appendHistory = `
WITH seq AS (
    INSERT INTO history_seq AS s (account_id, last_id)
    SELECT account_id, n FROM unnest($1::bigint[], $2::bigint[]) AS c (account_id, n) ORDER BY account_id
    ON CONFLICT (account_id) DO UPDATE SET last_id = s.last_id + excluded.last_id
    RETURNING account_id, last_id
), ins AS (
    INSERT INTO history (account_id, id, message_id, contact, direction, content_type, content, timestamp, disposition, state, created_at)
    SELECT r.account_id, seq.last_id - r.back, r.message_id, r.contact, r.direction, r.content_type, r.content, r.ts, r.disposition, r.state, $13
    FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::timestamptz[], $11::text[], $12::text[])
        AS r (account_id, back, message_id, contact, direction, content_type, content, ts, disposition, state)
    JOIN seq USING (account_id)
)
SELECT account_id, last_id FROM seq`

// flushHistory stores a batch of appends in one transaction. It expects
// every account to exist, and sends everything in one round trip: begin,
// lock the accounts, take ids and insert, commit. If an account is
// missing, the foreign key of its new history_seq row fails that
// transaction; then it locks the accounts first, and stores the requests
// whose accounts it found.
func (s *Store) flushHistory(ctx context.Context, batch []engine.HistoryRequest) ([]engine.HistoryResult, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release() // a connection left in a transaction is closed, not reused
	c := conn.Conn()
	created := s.now()
	b := engine.NewHistoryBatch(batch, nil)
	last, err := sendHistory(ctx, c, true, b, created)
	if pe, _ := errors.AsType[*pgconn.PgError](err); pe != nil && pe.Code == foreignKeyViolation {
		rollback(ctx, c)
		if b, err = lockHistory(ctx, c, b); err == nil {
			last, err = sendHistory(ctx, c, false, b, created)
		}
	}
	if err != nil {
		rollback(ctx, c)
		return nil, err
	}
	return b.Results("pgstore", last, created), nil
}

// rollback ends the transaction c is in, if any.
func rollback(ctx context.Context, c *pgx.Conn) {
	if c.PgConn().TxStatus() != 'I' {
		_, _ = c.Exec(ctx, "ROLLBACK")
	}
}

// lockHistory begins a transaction, locks the accounts of b and returns
// b without the requests whose accounts are missing.
func lockHistory(ctx context.Context, c *pgx.Conn, b *engine.HistoryBatch) (*engine.HistoryBatch, error) {
	accounts := b.Accounts()
	pb := &pgx.Batch{}
	pb.Queue("BEGIN")
	var found []int64
	pb.Queue(lockHistoryAccounts, accounts).Query(func(rows pgx.Rows) error {
		var err error
		found, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err := c.SendBatch(ctx, pb).Close(); err != nil {
		return nil, err
	}
	missing := map[int64]bool{}
	for _, a := range accounts {
		if !slices.Contains(found, a) {
			missing[a] = true
		}
	}
	return engine.NewHistoryBatch(b.Reqs, missing), nil
}

// sendHistory stores the rows of b and commits, in one pipeline, and
// returns the last id of each account. With begin, the pipeline begins
// the transaction and locks the accounts first.
func sendHistory(ctx context.Context, c *pgx.Conn, begin bool, b *engine.HistoryBatch, created time.Time) (map[int64]int64, error) {
	pb := &pgx.Batch{}
	if begin {
		pb.Queue("BEGIN")
		pb.Queue(lockHistoryAccounts, b.Accounts())
	}
	last := map[int64]int64{}
	for _, ch := range historyChunks(b) {
		pb.Queue(appendHistory, ch.accounts, ch.counts, ch.account, ch.back, ch.messageID, ch.contact, ch.direction,
			ch.contentType, ch.content, ch.ts, ch.disposition, ch.state, created).Query(func(rows pgx.Rows) error {
			var a, id int64
			_, err := pgx.ForEachRow(rows, []any{&a, &id}, func() error {
				last[a] = id // the later statements' are the higher
				return nil
			})
			return err
		})
	}
	pb.Queue("COMMIT")
	return last, c.SendBatch(ctx, pb).Close()
}

// historyChunk is the rows of one appendHistory statement, as the arrays
// that unnest takes, and the count of each account's rows.
type historyChunk struct {
	accounts, counts                                               []int64
	account, back                                                  []int64
	messageID, contact, direction, contentType, disposition, state []string
	content                                                        [][]byte
	ts                                                             []time.Time
	bytes                                                          int
}

// historyChunks returns the rows of the requests b stores in statements
// of at most historyChunkRows rows and historyChunkBytes of content (or
// one row), ordered by account, then in input order: an account's ids rise
// in input order, and its counter is taken in account order even when its
// rows span statements.
func historyChunks(b *engine.HistoryBatch) []*historyChunk {
	type pos struct{ req, row int }
	var all []pos
	for i, r := range b.Reqs {
		if b.Stored(i) {
			for j := range r.Rows {
				all = append(all, pos{i, j})
			}
		}
	}
	account := func(p pos) int64 { return b.Reqs[p.req].Rows[p.row].AccountID }
	slices.SortStableFunc(all, func(p, q pos) int { return cmp.Compare(account(p), account(q)) })

	var chunks []*historyChunk
	var ch *historyChunk
	for _, p := range all {
		row := &b.Reqs[p.req].Rows[p.row]
		if ch == nil || len(ch.account) == historyChunkRows || (len(ch.account) > 0 && ch.bytes+len(row.Content) > historyChunkBytes) {
			ch = &historyChunk{}
			chunks = append(chunks, ch)
		}
		ch.account = append(ch.account, row.AccountID)
		ch.messageID = append(ch.messageID, row.MessageID)
		ch.contact = append(ch.contact, row.Contact)
		ch.direction = append(ch.direction, row.Direction)
		ch.contentType = append(ch.contentType, row.ContentType)
		ch.content = append(ch.content, row.Content)
		ch.ts = append(ch.ts, row.Timestamp)
		ch.disposition = append(ch.disposition, b.Reqs[p.req].Disposition[p.row])
		ch.state = append(ch.state, row.State)
		ch.bytes += len(row.Content)
		if n := len(ch.accounts); n > 0 && ch.accounts[n-1] == row.AccountID {
			ch.counts[n-1]++
		} else {
			ch.accounts, ch.counts = append(ch.accounts, row.AccountID), append(ch.counts, 1)
		}
	}
	// back: the rows of the same account after each row in its statement.
	for _, ch := range chunks {
		ch.back = make([]int64, 0, len(ch.account))
		for _, n := range ch.counts {
			for j := range n {
				ch.back = append(ch.back, n-1-j)
			}
		}
	}
	return chunks
}

const historyColumns = `id, account_id, message_id, contact, direction, content_type, content, timestamp, disposition, state, created_at`

// listHistory selects the rows of a HistoryQuery along the primary key,
// which holds them in id order, and stops at the limit. The planner, left
// to itself, may rather collect every row of the account after the cursor
// with a bitmap scan and sort them: the rows of many accounts interleave
// on the pages, so it counts each fetch along the index as a random read.
// For 5,000 rows of 600 bytes that sort spills to disk and the read takes
// three times as long (7 ms against 2.4), and an account with a long
// history would be read whole. HistoryList turns sorts off for the
// statement, which leaves the index as the only way.
const listHistory = `SELECT ` + historyColumns + ` FROM history
	WHERE account_id = $1 AND id > $2 AND created_at > $3 ORDER BY id LIMIT $4`

// HistoryList returns the rows of q.AccountID with an id above q.AfterID
// created after q.Since, in id order, in one round trip.
func (s *Store) HistoryList(ctx context.Context, q store.HistoryQuery) ([]store.HistoryRow, error) {
	const op = "history list"
	if err := engine.CheckHistoryQuery(q); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	var out []store.HistoryRow
	b := &pgx.Batch{}
	b.Queue("BEGIN READ ONLY")
	b.Queue("SET LOCAL enable_sort = off")
	b.Queue(listHistory, q.AccountID, q.AfterID, q.Since, q.Limit).Query(func(rows pgx.Rows) error {
		var err error
		out, err = scanHistory(rows, min(q.Limit, 256))
		return err
	})
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// HistoryFind returns the rows of the account with this message id created
// after since, in id order, at most engine.HistoryFindLimit.
func (s *Store) HistoryFind(ctx context.Context, accountID int64, messageID string, since time.Time) ([]store.HistoryRow, error) {
	const op = "history find"
	if err := engine.CheckHistoryFind(messageID, since); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+historyColumns+` FROM history
		WHERE account_id = $1 AND message_id = $2 AND created_at > $3 ORDER BY id LIMIT $4`,
		accountID, messageID, since, engine.HistoryFindLimit)
	out, err := scanHistory(rows, 4)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// scanHistory reads the rows of a history query, room for size of them
// made first. It scans every row into the same variables, so that nothing
// escapes but what the rows keep, and reads the text columns in place
// (pgtype.DriverBytes), so that the decoder copies only what it has not
// seen yet.
func scanHistory(rows pgx.Rows, size int) ([]store.HistoryRow, error) {
	defer rows.Close()
	out := make([]store.HistoryRow, 0, size)
	var dec engine.HistoryDecoder
	var id, account int64
	var messageID, contact, direction, contentType, disposition, state pgtype.DriverBytes
	var content []byte
	var ts, created time.Time
	dest := []any{&id, &account, &messageID, &contact, &direction, &contentType, &content, &ts, &disposition, &state, &created}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		d, err := dec.Disposition(disposition)
		if err != nil {
			return nil, err
		}
		if len(out) == cap(out) {
			out = slices.Grow(out, len(out)) // double: append grows big slices by a quarter
		}
		out = append(out, store.HistoryRow{
			ID:          id,
			AccountID:   account,
			MessageID:   string(messageID),
			Contact:     dec.Text(contact),
			Direction:   dec.Text(direction),
			ContentType: dec.Text(contentType),
			Content:     engine.OrEmpty(content),
			Timestamp:   ts.UTC(),
			Disposition: d,
			State:       dec.Text(state),
			CreatedAt:   created.UTC(),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// HistoryPurge removes the rows created before before and returns how
// many. The id counters stay, so that no id is given out again.
func (s *Store) HistoryPurge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM history WHERE created_at < $1`, engine.CeilMicro(before))
	if err != nil {
		return 0, s.wrap("history purge", err)
	}
	return tag.RowsAffected(), nil
}

// evictTokens removes the tokens of account $1 other than $2 except the
// $3 newest, by creation time, then digest.
const evictTokens = `DELETE FROM api_tokens WHERE account_id = $1 AND digest <> $2 AND digest NOT IN (
	SELECT digest FROM api_tokens WHERE account_id = $1 AND digest <> $2
	ORDER BY created_at DESC, digest DESC LIMIT $3)`

// TokenPut stores t and, in the same transaction, evicts the oldest other
// tokens of its account beyond maxPerAccount, in one round trip. It locks
// the account first (FOR NO KEY UPDATE, which history appends and journal
// puts do not wait for), so that concurrent puts for one account, from
// any node, evict one after the other and leave maxPerAccount tokens.
func (s *Store) TokenPut(ctx context.Context, t store.APIToken, maxPerAccount int) error {
	const op = "token put"
	if err := engine.CheckToken(t, maxPerAccount); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(`SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, t.AccountID)
	b.Queue(`INSERT INTO api_tokens (digest, account_id, device, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		t.Digest, t.AccountID, t.Device, t.CreatedAt, t.ExpiresAt)
	b.Queue(evictTokens, t.AccountID, t.Digest, maxPerAccount-1)
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// TokenGet returns the token with this digest, expired or not, or
// store.ErrNotFound.
func (s *Store) TokenGet(ctx context.Context, digest []byte) (store.APIToken, error) {
	var t store.APIToken
	err := s.pool.QueryRow(ctx, `SELECT digest, account_id, device, created_at, expires_at FROM api_tokens WHERE digest = $1`,
		engine.OrEmpty(digest)).Scan(&t.Digest, &t.AccountID, &t.Device, &t.CreatedAt, &t.ExpiresAt)
	if err != nil {
		return store.APIToken{}, s.wrap("token get", err)
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	return t, nil
}

// TokenPurge removes the tokens that expired before before and returns
// how many.
func (s *Store) TokenPurge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_tokens WHERE expires_at < $1`, engine.CeilMicro(before))
	if err != nil {
		return 0, s.wrap("token purge", err)
	}
	return tag.RowsAffected(), nil
}

// PublicKeyPut publishes the account's key, replacing any.
func (s *Store) PublicKeyPut(ctx context.Context, accountID int64, key []byte) error {
	const op = "public key put"
	if err := engine.CheckPublicKey(key); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO public_keys (account_id, key, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (account_id) DO UPDATE SET key = excluded.key, updated_at = excluded.updated_at`,
		accountID, key, s.now())
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// PublicKeyGet returns the account's key, or store.ErrNotFound.
func (s *Store) PublicKeyGet(ctx context.Context, accountID int64) ([]byte, error) {
	var key []byte
	if err := s.pool.QueryRow(ctx, `SELECT key FROM public_keys WHERE account_id = $1`, accountID).Scan(&key); err != nil {
		return nil, s.wrap("public key get", err)
	}
	return key, nil
}
