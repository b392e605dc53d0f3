package litestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

const (
	putMaxBatch = 256         // put requests per group commit
	putTimeout  = time.Minute // bound of one group commit
	deleteChunk = 500         // ids per DELETE statement
	purgeBatch  = 1000        // rows per purge transaction
)

// JournalPut stores the items and returns their ids in input order, once
// they are committed. Items already stored, or repeated, get the first id.
func (s *Store) JournalPut(ctx context.Context, p store.JournalPutParams) ([]int64, error) {
	const op = "journal put"
	if err := s.checkOpen(op); err != nil {
		return nil, err
	}
	req, err := engine.NewPutRequest(p)
	if err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	if len(p.Items) == 0 {
		return nil, nil
	}
	res, err := s.puts.Do(ctx, req)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return res.IDs, res.Err
}

// flushPuts stores a batch of puts in one transaction. The rows share one
// time, taken when the flush starts: flushes run one at a time, so ids and
// times grow together.
func (s *Store) flushPuts(ctx context.Context, batch []engine.PutRequest) ([]engine.PutResult, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO journal (account_id, device, msg_id, data, data_hash, ip, ts)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account_id, device, msg_id, data_hash) DO NOTHING
		RETURNING id`)
	if err != nil {
		return nil, err
	}
	lookup, err := tx.PrepareContext(ctx, `SELECT id FROM journal WHERE account_id = ? AND device = ? AND msg_id = ? AND data_hash = ?`)
	if err != nil {
		return nil, err
	}

	ts := s.clock().Unix()
	stored := map[engine.Identity]int64{} // rows of this batch
	res := make([]engine.PutResult, len(batch))
	for i, r := range batch {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?)`, r.P.AccountID).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			res[i].Err = fmt.Errorf("litestore: journal put: account %d: %w", r.P.AccountID, store.ErrNotFound)
			continue
		}
		ids := make([]int64, len(r.P.Items))
		for j, it := range r.P.Items {
			key := r.Key(j)
			id, ok := stored[key]
			if !ok {
				err := insert.QueryRowContext(ctx, key.Account, key.Device, key.MsgID, it.Data, key.Hash[:], r.P.IP, ts).Scan(&id)
				if errors.Is(err, sql.ErrNoRows) { // stored by an earlier put
					err = lookup.QueryRowContext(ctx, key.Account, key.Device, key.MsgID, key.Hash[:]).Scan(&id)
				}
				if err != nil {
					return nil, err
				}
				stored[key] = id
			}
			ids[j] = id
		}
		res[i].IDs = ids
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// journalWhere selects the rows of a JournalQuery in order; its arguments
// come from queryArgs.
const journalWhere = ` FROM journal
	WHERE account_id = ? AND ts >= ? AND id > ? AND (? = '' OR device <> ?)
	ORDER BY ts, id LIMIT ?`

func queryArgs(q store.JournalQuery) ([]any, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("limit %d is not positive", q.Limit)
	}
	from := max(engine.CeilUnix(q.Since), engine.CeilUnix(q.AfterTime))
	return []any{q.AccountID, from, q.AfterID, q.ExceptDevice, q.ExceptDevice, q.Limit}, nil
}

// JournalList returns the rows that match q, ordered by time then id.
func (s *Store) JournalList(ctx context.Context, q store.JournalQuery) ([]store.JournalEntry, error) {
	const op = "journal list"
	args, err := queryArgs(q)
	if err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, account_id, device, msg_id, data, ip, ts`+journalWhere, args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []store.JournalEntry
	for rows.Next() {
		var e store.JournalEntry
		var ts int64
		if err := rows.Scan(&e.ID, &e.AccountID, &e.Device, &e.MsgID, &e.Data, &e.IP, &ts); err != nil {
			return nil, s.wrap(op, err)
		}
		e.Time = time.Unix(ts, 0).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// JournalSummary returns the id and time of the rows that match q, in the
// order of JournalList.
func (s *Store) JournalSummary(ctx context.Context, q store.JournalQuery) ([]store.JournalStamp, error) {
	const op = "journal summary"
	args, err := queryArgs(q)
	if err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, ts`+journalWhere, args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []store.JournalStamp
	for rows.Next() {
		var st store.JournalStamp
		var ts int64
		if err := rows.Scan(&st.ID, &ts); err != nil {
			return nil, s.wrap(op, err)
		}
		st.Time = time.Unix(ts, 0).UTC()
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// JournalDelete removes the listed rows of one account, in one transaction,
// and returns how many it removed. Other ids are ignored.
func (s *Store) JournalDelete(ctx context.Context, accountID int64, ids []int64) (int64, error) {
	const op = "journal delete"
	if err := s.checkOpen(op); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.journalDelete(ctx, accountID, ids)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	return n, nil
}

func (s *Store) journalDelete(ctx context.Context, accountID int64, ids []int64) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var n int64
	for chunk := range slices.Chunk(ids, deleteChunk) {
		args := make([]any, 0, 1+len(chunk))
		args = append(args, accountID)
		for _, id := range chunk {
			args = append(args, id)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM journal WHERE account_id = ? AND id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
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

// JournalPurge removes every row older than before and returns the count.
// It deletes in batches of a transaction each, so that puts waiting for the
// writer are not held up by one long delete; on error, the count is of the
// rows already removed.
func (s *Store) JournalPurge(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	for {
		res, err := s.w.ExecContext(ctx, `DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE ts < ? LIMIT ?)`,
			engine.CeilUnix(before), purgeBatch)
		if err != nil {
			return n, s.wrap("journal purge", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return n, s.wrap("journal purge", err)
		}
		n += k
		if k < purgeBatch {
			return n, nil
		}
	}
}
