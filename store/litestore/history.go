package litestore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
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
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
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

// takeHistoryIDs adds ?2 to the last id of account ?1 and returns the
// new last id. See schema/sqlite/0004_history.sql.
const takeHistoryIDs = `INSERT INTO history_seq (account_id, last_id) VALUES (?1, ?2)
	ON CONFLICT (account_id) DO UPDATE SET last_id = last_id + excluded.last_id
	RETURNING last_id`

// flushHistory stores a batch of appends in one transaction: it takes the
// ids of each account once, then inserts the rows. A request with an
// account that does not exist stores nothing and gets store.ErrNotFound.
func (s *Store) flushHistory(ctx context.Context, batch []engine.HistoryRequest) ([]engine.HistoryResult, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	missing := map[int64]bool{}
	for _, r := range batch {
		for _, a := range r.Accounts {
			if _, ok := missing[a]; ok {
				continue
			}
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?)`, a).Scan(&exists); err != nil {
				return nil, err
			}
			missing[a] = !exists
		}
	}
	b := engine.NewHistoryBatch(batch, missing)
	accounts, counts := b.Counted()
	last := make(map[int64]int64, len(accounts))
	for i, a := range accounts {
		var id int64
		if err := tx.QueryRowContext(ctx, takeHistoryIDs, a, counts[i]).Scan(&id); err != nil {
			return nil, err
		}
		last[a] = id
	}
	created := s.now()
	res := b.Results("litestore", last, created)
	insert, err := tx.PrepareContext(ctx, `INSERT INTO history
		(account_id, id, message_id, contact, direction, content_type, content, timestamp, disposition, state, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	for i, r := range res {
		for j, row := range r.Rows {
			if _, err := insert.ExecContext(ctx, row.AccountID, row.ID, row.MessageID, row.Contact, row.Direction,
				row.ContentType, row.Content, engine.Micro(row.Timestamp), batch[i].Disposition[j], row.State,
				engine.Micro(created)); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// historyColumns are the columns HistoryList and HistoryFind read; the
// account is the one asked for.
const historyColumns = `id, message_id, contact, direction, content_type, content, timestamp, disposition, state, created_at`

// HistoryList returns the rows of q.AccountID with an id above q.AfterID
// created after q.Since, in id order.
func (s *Store) HistoryList(ctx context.Context, q store.HistoryQuery) ([]store.HistoryRow, error) {
	const op = "history list"
	if err := engine.CheckHistoryQuery(q); err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	rows, err := s.query(ctx, `SELECT `+historyColumns+` FROM history
		WHERE account_id = ? AND id > ? AND created_at > ? ORDER BY id LIMIT ?`,
		q.AccountID, q.AfterID, engine.Micro(q.Since), q.Limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return s.scanHistory(op, rows, q.AccountID, min(q.Limit, 256))
}

// HistoryFind returns the rows of the account with this message id created
// after since, in id order, at most engine.HistoryFindLimit.
func (s *Store) HistoryFind(ctx context.Context, accountID int64, messageID string, since time.Time) ([]store.HistoryRow, error) {
	const op = "history find"
	if err := engine.CheckHistoryFind(messageID, since); err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	rows, err := s.query(ctx, `SELECT `+historyColumns+` FROM history
		WHERE account_id = ? AND message_id = ? AND created_at > ? ORDER BY id LIMIT ?`,
		accountID, messageID, engine.Micro(since), engine.HistoryFindLimit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return s.scanHistory(op, rows, accountID, 4)
}

// scanHistory reads the rows of a history query of account, room for
// size of them made first, and closes them. It scans every row into the
// same variables, so that nothing escapes but what the rows keep.
func (s *Store) scanHistory(op string, rows *sql.Rows, account int64, size int) ([]store.HistoryRow, error) {
	defer rows.Close()
	out := make([]store.HistoryRow, 0, size)
	var id, ts, created int64
	var messageID, contact, direction, contentType, disposition, state string
	var content []byte
	dest := []any{&id, &messageID, &contact, &direction, &contentType, &content, &ts, &disposition, &state, &created}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, s.wrap(op, err)
		}
		d, err := engine.DecodeDisposition(disposition)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		if len(out) == cap(out) {
			out = slices.Grow(out, len(out)) // double: append grows big slices by a quarter
		}
		out = append(out, store.HistoryRow{
			ID:          id,
			AccountID:   account,
			MessageID:   messageID,
			Contact:     contact,
			Direction:   direction,
			ContentType: contentType,
			Content:     engine.OrEmpty(content),
			Timestamp:   time.UnixMicro(ts).UTC(),
			Disposition: d,
			State:       state,
			CreatedAt:   time.UnixMicro(created).UTC(),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// HistoryPurge removes the rows created before before and returns how
// many. It deletes in batches as JournalPurge does. The id counters stay,
// so that no id is given out again.
func (s *Store) HistoryPurge(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, "history purge", `DELETE FROM history WHERE rowid IN (
		SELECT rowid FROM history WHERE created_at < ? LIMIT ?)`, engine.Micro(engine.CeilMicro(before)))
}

// TokenPut stores t and, in the same transaction, evicts the oldest other
// tokens of its account beyond maxPerAccount.
func (s *Store) TokenPut(ctx context.Context, t store.APIToken, maxPerAccount int) error {
	const op = "token put"
	if err := engine.CheckToken(t, maxPerAccount); err != nil {
		return fmt.Errorf("litestore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil {
		return err
	}
	if err := s.tokenPut(ctx, t, maxPerAccount); err != nil {
		return s.wrap(op, err)
	}
	return nil
}

func (s *Store) tokenPut(ctx context.Context, t store.APIToken, maxPerAccount int) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (digest, account_id, device, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, t.Digest, t.AccountID, t.Device, engine.Micro(t.CreatedAt), engine.Micro(t.ExpiresAt)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, evictTokens, t.AccountID, t.Digest, maxPerAccount-1); err != nil {
		return err
	}
	return tx.Commit()
}

// evictTokens removes the tokens of account ?1 other than ?2 except the
// ?3 newest, by creation time, then digest.
const evictTokens = `DELETE FROM api_tokens WHERE account_id = ?1 AND digest <> ?2 AND digest NOT IN (
	SELECT digest FROM api_tokens WHERE account_id = ?1 AND digest <> ?2
	ORDER BY created_at DESC, digest DESC LIMIT ?3)`

// TokenGet returns the token with this digest, expired or not, or
// store.ErrNotFound.
func (s *Store) TokenGet(ctx context.Context, digest []byte) (store.APIToken, error) {
	var t store.APIToken
	var created, expires int64
	err := s.queryRow(ctx, `SELECT digest, account_id, device, created_at, expires_at FROM api_tokens WHERE digest = ?`,
		engine.OrEmpty(digest)).Scan(&t.Digest, &t.AccountID, &t.Device, &created, &expires)
	if err != nil {
		return store.APIToken{}, s.wrap("token get", err)
	}
	t.CreatedAt, t.ExpiresAt = time.UnixMicro(created).UTC(), time.UnixMicro(expires).UTC()
	return t, nil
}

// TokenPurge removes the tokens that expired before before and returns
// how many.
func (s *Store) TokenPurge(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, "token purge", `DELETE FROM api_tokens WHERE digest IN (
		SELECT digest FROM api_tokens WHERE expires_at < ? LIMIT ?)`, engine.Micro(engine.CeilMicro(before)))
}

// PublicKeyPut publishes the account's key, replacing any.
func (s *Store) PublicKeyPut(ctx context.Context, accountID int64, key []byte) error {
	const op = "public key put"
	if err := engine.CheckPublicKey(key); err != nil {
		return fmt.Errorf("litestore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO public_keys (account_id, key, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET key = excluded.key, updated_at = excluded.updated_at`,
		accountID, key, s.now().UnixMicro())
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// PublicKeyGet returns the account's key, or store.ErrNotFound.
func (s *Store) PublicKeyGet(ctx context.Context, accountID int64) ([]byte, error) {
	var key []byte
	if err := s.queryRow(ctx, `SELECT key FROM public_keys WHERE account_id = ?`, accountID).Scan(&key); err != nil {
		return nil, s.wrap("public key get", err)
	}
	return key, nil
}
