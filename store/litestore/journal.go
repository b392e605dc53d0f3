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
// they are committed. Items already stored, unless expired, or repeated, get
// the first id.
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
// time, the clock's but never below the last one stamped: flushes run one
// at a time, so ids and times grow together even when the clock steps back.
func (s *Store) flushPuts(ctx context.Context, batch []engine.PutRequest) ([]engine.PutResult, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	w := rowWriter{tx: tx}
	w.insert, err = tx.PrepareContext(ctx, `INSERT INTO journal (account_id, device, msg_id, data, data_hash, ip, ts)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account_id, device, msg_id, data_hash) DO NOTHING
		RETURNING id`)
	if err != nil {
		return nil, err
	}
	w.lookup, err = tx.PrepareContext(ctx, `SELECT id, ts FROM journal WHERE account_id = ? AND device = ? AND msg_id = ? AND data_hash = ?`)
	if err != nil {
		return nil, err
	}

	ts := max(s.clock().Unix(), s.lastTS)
	s.lastTS = ts
	b := engine.NewBatch(batch)
	missing := map[int64]bool{}
	for _, r := range b.Reqs {
		id := r.P.AccountID
		if _, ok := missing[id]; ok {
			continue
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?)`, id).Scan(&exists); err != nil {
			return nil, err
		}
		missing[id] = !exists
	}
	ids := make([]int64, len(b.Rows))
	for k, r := range b.Rows {
		if missing[r.Account] {
			continue
		}
		if ids[k], err = w.put(ctx, r, ts); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return b.Results("litestore", ids, missing), nil
}

// rowWriter stores the rows of a flush in its transaction.
type rowWriter struct {
	tx             *sql.Tx
	insert, lookup *sql.Stmt
}

// put stores r with time ts and returns its id. A row stored before keeps
// its id, unless it is expired: then put deletes it and stores r anew.
func (w rowWriter) put(ctx context.Context, r engine.Row, ts int64) (int64, error) {
	row := []any{r.Account, r.Device, r.MsgID, r.Data, r.Hash[:], r.IP, ts}
	var id, stored int64
	err := w.insert.QueryRowContext(ctx, row...).Scan(&id)
	if !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	err = w.lookup.QueryRowContext(ctx, r.Account, r.Device, r.MsgID, r.Hash[:]).Scan(&id, &stored)
	if err != nil || stored >= r.Cutoff {
		return id, err
	}
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM journal WHERE id = ?`, id); err != nil {
		return 0, err
	}
	err = w.insert.QueryRowContext(ctx, row...).Scan(&id)
	return id, err
}

// journalRows selects the rows that match a JournalQuery, in order. The
// statements that use it take engine.QueryArgs, ?5 being the limit.
const journalRows = ` FROM journal
	WHERE account_id = ?1 AND ts >= ?2 AND id > ?3 AND (?4 = '' OR device <> ?4)
	ORDER BY ts, id`

// byteLimit is the LIMIT of a JournalList: the length of the longest run
// of journalRows whose data takes at most ?6 bytes, or 1. When the whole
// run up to the limit fits, as it mostly does, a plain sum shows it; only
// otherwise does a running sum find where to stop. Both read only the sizes
// of the data, which octet_length takes from the record headers without
// loading the text.
const byteLimit = `(SELECT CASE WHEN sum(size) <= ?6 THEN ?5 ELSE (
	SELECT max(1, count(*)) FROM (
		SELECT sum(size) OVER (ORDER BY ts, id ROWS UNBOUNDED PRECEDING) AS total FROM ` + dataSizes + `
	) AS prefix WHERE total <= ?6
) END FROM ` + dataSizes + `)`

// dataSizes is the size in bytes of the data of each row of journalRows.
const dataSizes = `(SELECT ts, id, octet_length(data) AS size` + journalRows + ` LIMIT ?5) AS sizes`

// JournalList returns the rows that match q, ordered by time then id: the
// longest run of them whose data fits in q.MaxBytes, or the first one.
func (s *Store) JournalList(ctx context.Context, q store.JournalQuery) ([]store.JournalEntry, error) {
	const op = "journal list"
	args, err := engine.QueryArgs(q)
	if err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	args = append(args, engine.ByteCap(q))
	rows, err := s.query(ctx, `SELECT id, account_id, device, msg_id, data, ip, ts`+journalRows+` LIMIT `+byteLimit, args...)
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
	args, err := engine.QueryArgs(q)
	if err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	rows, err := s.query(ctx, `SELECT id, ts`+journalRows+` LIMIT ?5`, args...)
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
// It deletes in batches of a transaction each (see purge); on error, the
// count is of the rows already removed.
func (s *Store) JournalPurge(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, "journal purge", `DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE ts < ? LIMIT ?)`, engine.CeilUnix(before))
}
