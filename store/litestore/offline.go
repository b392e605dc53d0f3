package litestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

const enqueueMaxBatch = 256 // enqueue requests per group commit

// OfflineEnqueue stores a message once it is committed, or returns the
// stored duplicate, or store.ErrQuota and stores nothing. Concurrent
// enqueues share commits.
func (s *Store) OfflineEnqueue(ctx context.Context, p store.OfflineEnqueueParams) (store.OfflineEnqueueResult, error) {
	const op = "offline enqueue"
	if err := s.checkOpen(op); err != nil {
		return store.OfflineEnqueueResult{}, err
	}
	req, err := engine.NewEnqueueRequest(p)
	if err != nil {
		return store.OfflineEnqueueResult{}, fmt.Errorf("litestore: %s: %w", op, err)
	}
	res, err := s.queue.Do(ctx, req)
	if err != nil {
		return store.OfflineEnqueueResult{}, s.wrap(op, err)
	}
	return res.Res, res.Err
}

// flushEnqueues stores a batch of enqueues in one transaction, one request
// after the other, so that each sees what those before it stored: the one
// writer makes every check and its insert one atomic step.
func (s *Store) flushEnqueues(ctx context.Context, batch []engine.EnqueueRequest) ([]engine.EnqueueResult, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	q := enqueuer{tx: tx, created: s.now().UnixMicro(), accounts: map[int64]bool{}}
	for _, st := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&q.lookup, `SELECT id, expires_at FROM offline_messages WHERE account_id = ? AND sender = ? AND dedup_key = ?`},
		// The filter on expiry is no index condition: the count reads index
		// offline_messages_account, not offline_messages_expires. A message
		// some device took counts no more.
		{&q.usage, `SELECT count(*) FILTER (WHERE expires_at > ?2), coalesce(sum(size) FILTER (WHERE expires_at > ?2), 0)
			FROM offline_messages m WHERE account_id = ?1
			AND NOT EXISTS (SELECT 1 FROM offline_deliveries d WHERE d.message_id = m.id AND d.state = 2)`},
		{&q.insert, `INSERT INTO offline_messages
			(account_id, sender, from_hdr, to_hdr, date_hdr, content_type, body, dedup_key, size, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`},
		{&q.deliver, `INSERT INTO offline_deliveries (message_id, instance, state, attempts) VALUES (?, ?, ?, 0)`},
	} {
		if *st.stmt, err = tx.PrepareContext(ctx, st.sql); err != nil {
			return nil, err
		}
	}
	res := make([]engine.EnqueueResult, len(batch))
	for i, r := range batch {
		if res[i], err = q.enqueue(ctx, r); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// enqueuer stores the requests of a flush in its transaction.
type enqueuer struct {
	tx                             *sql.Tx
	lookup, usage, insert, deliver *sql.Stmt
	created                        int64          // Unix microseconds
	accounts                       map[int64]bool // whether each account exists
}

// enqueue stores one request, or tells why not in its result. An error
// fails the whole flush.
func (q *enqueuer) enqueue(ctx context.Context, r engine.EnqueueRequest) (engine.EnqueueResult, error) {
	m := r.P.Message
	exists, ok := q.accounts[m.AccountID]
	if !ok {
		err := q.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?)`, m.AccountID).Scan(&exists)
		if err != nil {
			return engine.EnqueueResult{}, err
		}
		q.accounts[m.AccountID] = exists
	}
	if !exists {
		return engine.EnqueueResult{Err: engine.MissingError("litestore", r.P)}, nil
	}

	now := engine.Micro(r.P.Now)
	var old, expires int64 // a stored message with the same key
	err := q.lookup.QueryRowContext(ctx, m.AccountID, m.Sender, m.Key).Scan(&old, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		old = 0
	case err != nil:
		return engine.EnqueueResult{}, err
	case expires > now:
		return engine.EnqueueResult{Res: store.OfflineEnqueueResult{ID: old, Duplicate: true}}, nil
	}
	if r.Limited() {
		var count, bytes int64
		if err := q.usage.QueryRowContext(ctx, m.AccountID, now).Scan(&count, &bytes); err != nil {
			return engine.EnqueueResult{}, err
		}
		if !r.Quota(count, bytes) {
			return engine.EnqueueResult{Err: engine.QuotaError("litestore", r.P)}, nil
		}
	}
	if old != 0 { // expired: it would never be delivered
		if _, err := q.tx.ExecContext(ctx, `DELETE FROM offline_messages WHERE id = ?`, old); err != nil {
			return engine.EnqueueResult{}, err
		}
	}
	var id int64
	err = q.insert.QueryRowContext(ctx, m.AccountID, m.Sender, m.From, m.To, m.Date, m.ContentType, engine.OrEmpty(m.Body),
		m.Key, len(m.Body), q.created, engine.Micro(m.ExpiresAt)).Scan(&id)
	if err != nil {
		return engine.EnqueueResult{}, err
	}
	for _, inst := range r.Delivered {
		if _, err := q.deliver.ExecContext(ctx, id, inst, store.DeliveryDone); err != nil {
			return engine.EnqueueResult{}, err
		}
	}
	return engine.EnqueueResult{Res: store.OfflineEnqueueResult{ID: id}}, nil
}

// owedAccounts returns those of the accounts in the JSON array ?1 that hold
// a message unexpired at ?2, in id order: each is one probe of index
// offline_messages_account that stops at its first unexpired message. One
// array parameter keeps it one cached statement, where a list of
// parameters would be a statement per length.
const owedAccounts = `SELECT k.value FROM json_each(?1) AS k
	WHERE EXISTS (SELECT 1 FROM offline_messages WHERE account_id = k.value AND expires_at > ?2)
	ORDER BY k.value`

// OfflineOwed returns those of accountIDs that hold a message unexpired at
// now, in id order, each once.
func (s *Store) OfflineOwed(ctx context.Context, accountIDs []int64, now time.Time) ([]int64, error) {
	const op = "offline owed"
	ids, err := engine.OwedIDs(accountIDs)
	if err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil || len(ids) == 0 {
		return nil, err
	}
	list, _ := json.Marshal(ids) // []int64 always marshals
	// As text: json_each reads a blob as JSONB.
	rows, err := s.query(ctx, owedAccounts, string(list), engine.Micro(now))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var owed []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap(op, err)
		}
		owed = append(owed, id)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return owed, nil
}

// OfflinePending returns the messages of q.AccountID unexpired at q.Now
// that are neither done nor rejected for q.Instance, after q.AfterID, in id
// order, with their retry state.
func (s *Store) OfflinePending(ctx context.Context, q store.OfflinePendingQuery) ([]store.OfflinePending, error) {
	const op = "offline pending"
	if err := engine.CheckPending(q); err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	rows, err := s.query(ctx, `SELECT m.id, m.account_id, m.sender, m.from_hdr, m.to_hdr, m.date_hdr, m.content_type,
			m.body, m.dedup_key, m.created_at, m.expires_at, coalesce(d.attempts, 0), d.next_at
		FROM offline_messages m
		LEFT JOIN offline_deliveries d ON d.message_id = m.id AND d.instance = ?2
		WHERE m.account_id = ?1 AND m.expires_at > ?3 AND m.id > ?4 AND coalesce(d.state, ?5) = ?5
		ORDER BY m.id LIMIT ?6`,
		q.AccountID, q.Instance, engine.Micro(q.Now), q.AfterID, store.DeliveryRetry, q.Limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []store.OfflinePending
	for rows.Next() {
		var p store.OfflinePending
		m := &p.Message
		var created, expires int64
		var next sql.NullInt64
		if err := rows.Scan(&m.ID, &m.AccountID, &m.Sender, &m.From, &m.To, &m.Date, &m.ContentType,
			&m.Body, &m.Key, &created, &expires, &p.Attempts, &next); err != nil {
			return nil, s.wrap(op, err)
		}
		m.CreatedAt, m.ExpiresAt = time.UnixMicro(created).UTC(), time.UnixMicro(expires).UTC()
		if next.Valid {
			p.NextAt = time.UnixMicro(next.Int64).UTC()
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// markDelivery records an outcome for a message of the account. A retry
// counts an attempt and keeps its time, unless the device is done with the
// message already (done or rejected): that stands. Done and rejected
// replace the state and keep the count.
const markDelivery = `INSERT INTO offline_deliveries (message_id, instance, state, attempts, next_at)
	SELECT id, ?3, ?4, ?5, ?6 FROM offline_messages WHERE id = ?1 AND account_id = ?2
	ON CONFLICT (message_id, instance) DO UPDATE SET
		state = CASE WHEN excluded.state = 1 THEN offline_deliveries.state ELSE excluded.state END,
		attempts = offline_deliveries.attempts + (excluded.state = 1 AND offline_deliveries.state = 1),
		next_at = CASE WHEN excluded.state = 1 AND offline_deliveries.state = 1 THEN excluded.next_at ELSE offline_deliveries.next_at END`

// OfflineMark records the outcome for each message, in one transaction.
// It skips the messages that do not exist or belong to another account,
// and returns store.ErrNotFound when it skipped every one.
func (s *Store) OfflineMark(ctx context.Context, p store.OfflineMarkParams) error {
	const op = "offline mark"
	ids, err := engine.MarkIDs(p)
	if err != nil {
		return fmt.Errorf("litestore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil || len(ids) == 0 {
		return err
	}
	n, err := s.offlineMark(ctx, p, ids)
	if err != nil {
		return s.wrap(op, err)
	}
	if n == 0 {
		return fmt.Errorf("litestore: %s: none of %d messages of account %d: %w", op, len(ids), p.AccountID, store.ErrNotFound)
	}
	return nil
}

// offlineMark marks the messages ids and returns how many it marked.
func (s *Store) offlineMark(ctx context.Context, p store.OfflineMarkParams, ids []int64) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	mark, err := tx.PrepareContext(ctx, markDelivery)
	if err != nil {
		return 0, err
	}
	attempts, next := 0, sql.NullInt64{}
	if p.State == store.DeliveryRetry {
		attempts, next = 1, sql.NullInt64{Int64: engine.Micro(p.NextAt), Valid: true}
	}
	var n int64
	for _, id := range ids {
		res, err := mark.ExecContext(ctx, id, p.AccountID, p.Instance, p.State, attempts, next)
		if err != nil {
			return 0, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, tx.Commit()
}

// OfflinePurge removes the messages that expired at or before before, with
// their delivery states, and returns how many messages. It deletes in
// batches as JournalPurge does.
func (s *Store) OfflinePurge(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, "offline purge", `DELETE FROM offline_messages WHERE id IN (
		SELECT id FROM offline_messages WHERE expires_at <= ? LIMIT ?)`, engine.Micro(before))
}
