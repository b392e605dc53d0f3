package pgstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/store"
)

const (
	putMaxBatch = 256         // put requests per group commit
	putTimeout  = time.Minute // bound of one group commit
	insertChunk = 2000        // rows per INSERT, to bound a statement's size
)

// putRequest is one JournalPut waiting for a group commit.
type putRequest struct {
	p      store.JournalPutParams
	hashes [][sha256.Size]byte // of each item's data
}

// putResult is the outcome of one putRequest: its ids, or its own failure,
// which does not fail the rest of the batch.
type putResult struct {
	ids []int64
	err error
}

// identity is the natural key of a journal row (index journal_identity).
type identity struct {
	account       int64
	device, msgID string
	hash          [sha256.Size]byte
}

// JournalPut stores the items and returns their ids in input order, once
// they are committed. Items already stored, or repeated, get the first id.
func (s *Store) JournalPut(ctx context.Context, p store.JournalPutParams) ([]int64, error) {
	const op = "journal put"
	if err := s.checkOpen(op); err != nil {
		return nil, err
	}
	if err := checkPut(p); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if len(p.Items) == 0 {
		return nil, nil
	}
	req := putRequest{p: p, hashes: make([][sha256.Size]byte, len(p.Items))}
	for i, it := range p.Items {
		req.hashes[i] = sha256.Sum256([]byte(it.Data))
	}
	res, err := s.puts.Do(ctx, req)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return res.ids, res.err
}

func checkPut(p store.JournalPutParams) error {
	if err := errors.Join(checkText("device", p.Device), checkText("ip", p.IP)); err != nil {
		return err
	}
	for i, it := range p.Items {
		if err := errors.Join(checkText("msgid", it.MsgID), checkText("data", it.Data)); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}
	return nil
}

// flushPuts stores a batch of puts in one transaction. The rows share one
// time, taken when the flush starts: a node runs one flush at a time, so its
// ids and times grow together.
func (s *Store) flushPuts(ctx context.Context, batch []putRequest) ([]putResult, error) {
	ts := s.clock().Unix()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)

	// FOR KEY SHARE makes a concurrent AccountDelete wait for this commit,
	// so that its cascade takes these rows too.
	accounts := make([]int64, len(batch))
	for i, r := range batch {
		accounts[i] = r.p.AccountID
	}
	rows, _ := tx.Query(ctx, `SELECT id FROM accounts WHERE id = ANY($1) FOR KEY SHARE`, accounts)
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	exists := make(map[int64]bool, len(found))
	for _, id := range found {
		exists[id] = true
	}

	var nr newRows
	index := map[identity]int{} // row of each identity in nr
	slots := make([][]int, len(batch))
	res := make([]putResult, len(batch))
	for i, r := range batch {
		if !exists[r.p.AccountID] {
			res[i].err = fmt.Errorf("pgstore: journal put: account %d: %w", r.p.AccountID, store.ErrNotFound)
			continue
		}
		slots[i] = make([]int, len(r.p.Items))
		for j, it := range r.p.Items {
			key := identity{r.p.AccountID, r.p.Device, it.MsgID, r.hashes[j]}
			k, ok := index[key]
			if !ok {
				k = nr.add(key, it.Data, r.p.IP)
				index[key] = k
			}
			slots[i][j] = k
		}
	}
	ids := make([]int64, 0, len(nr.keys))
	for lo := 0; lo < len(nr.keys); lo += insertChunk {
		hi := min(lo+insertChunk, len(nr.keys))
		chunk, err := insertRows(ctx, tx, nr.keys[lo:hi], nr.data[lo:hi], nr.ip[lo:hi], ts)
		if err != nil {
			return nil, err
		}
		ids = append(ids, chunk...)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	for i := range res {
		if res[i].err != nil {
			continue
		}
		res[i].ids = make([]int64, len(slots[i]))
		for j, k := range slots[i] {
			res[i].ids[j] = ids[k]
		}
	}
	return res, nil
}

// newRows holds the distinct rows of a batch.
type newRows struct {
	keys     []identity
	data, ip []string
}

// add appends a row and returns its index.
func (nr *newRows) add(key identity, data, ip string) int {
	nr.keys = append(nr.keys, key)
	nr.data = append(nr.data, data)
	nr.ip = append(nr.ip, ip)
	return len(nr.keys) - 1
}

// keyColumns returns the identities as the arrays that unnest takes.
func keyColumns(keys []identity) (account []int64, device, msgID []string, hash [][]byte) {
	account = make([]int64, len(keys))
	device = make([]string, len(keys))
	msgID = make([]string, len(keys))
	hash = make([][]byte, len(keys))
	for i := range keys {
		account[i], device[i], msgID[i], hash[i] = keys[i].account, keys[i].device, keys[i].msgID, keys[i].hash[:]
	}
	return account, device, msgID, hash
}

// insertJournal inserts the rows passed as arrays, in array order, and
// returns the array index (from 1) and id of each row it inserted; a row
// stored before is skipped. Benchmarked against COPY into a temporary table
// and INSERT from there, it was as fast for batches of 1600 rows and faster
// for small ones.
const insertJournal = `
WITH new AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[])
        WITH ORDINALITY AS new (account_id, device, msg_id, data, data_hash, ip, n)
), ins AS (
    INSERT INTO journal (account_id, device, msg_id, data, data_hash, ip, ts)
    SELECT account_id, device, msg_id, data, data_hash, ip, $7 FROM new ORDER BY n
    ON CONFLICT (account_id, device, msg_id, data_hash) DO NOTHING
    RETURNING id, account_id, device, msg_id, data_hash
)
SELECT new.n, ins.id FROM new JOIN ins USING (account_id, device, msg_id, data_hash)`

// lookupJournal returns the array index (from 1) and id of the stored rows
// whose identities are passed as arrays.
const lookupJournal = `
SELECT k.n, j.id
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS k (account_id, device, msg_id, data_hash, n)
JOIN journal j USING (account_id, device, msg_id, data_hash)`

// insertRows stores the rows, distinct identities with their data and ip,
// at time ts, and returns the id of each, new or stored before.
func insertRows(ctx context.Context, tx pgx.Tx, keys []identity, data, ip []string, ts int64) ([]int64, error) {
	ids := make([]int64, len(keys))
	account, device, msgID, hash := keyColumns(keys)
	// pgx reports a failed Query through the rows.
	rows, _ := tx.Query(ctx, insertJournal, account, device, msgID, data, hash, ip, ts)
	if err := scanIDs(rows, func(k int, id int64) { ids[k] = id }); err != nil {
		return nil, err
	}
	var stored []int // rows stored before this put, by index in keys
	var storedKeys []identity
	for k, id := range ids {
		if id == 0 {
			stored = append(stored, k)
			storedKeys = append(storedKeys, keys[k])
		}
	}
	if len(stored) == 0 {
		return ids, nil
	}
	account, device, msgID, hash = keyColumns(storedKeys)
	rows, _ = tx.Query(ctx, lookupJournal, account, device, msgID, hash)
	if err := scanIDs(rows, func(k int, id int64) { ids[stored[k]] = id }); err != nil {
		return nil, err
	}
	for _, k := range stored {
		if ids[k] == 0 {
			return nil, fmt.Errorf("journal row %q of device %q neither inserted nor found", keys[k].msgID, keys[k].device)
		}
	}
	return ids, nil
}

// scanIDs calls set with each (n, id) row, k being n-1: the index in the
// arrays the query took.
func scanIDs(rows pgx.Rows, set func(k int, id int64)) error {
	var n, id int64
	_, err := pgx.ForEachRow(rows, []any{&n, &id}, func() error {
		set(int(n-1), id)
		return nil
	})
	return err
}

// journalWhere selects the rows of a JournalQuery in order; its arguments
// come from queryArgs.
const journalWhere = ` FROM journal
	WHERE account_id = $1 AND ts >= $2 AND id > $3 AND ($4::text = '' OR device <> $4)
	ORDER BY ts, id LIMIT $5`

func queryArgs(q store.JournalQuery) ([]any, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("limit %d is not positive", q.Limit)
	}
	from := max(ceilUnix(q.Since), ceilUnix(q.AfterTime))
	return []any{q.AccountID, from, q.AfterID, q.ExceptDevice, q.Limit}, nil
}

// JournalList returns the rows that match q, ordered by time then id.
func (s *Store) JournalList(ctx context.Context, q store.JournalQuery) ([]store.JournalEntry, error) {
	const op = "journal list"
	args, err := queryArgs(q)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	rows, _ := s.pool.Query(ctx, `SELECT id, account_id, device, msg_id, data, ip, ts`+journalWhere, args...)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.JournalEntry, error) {
		var e store.JournalEntry
		var ts int64
		err := row.Scan(&e.ID, &e.AccountID, &e.Device, &e.MsgID, &e.Data, &e.IP, &ts)
		e.Time = time.Unix(ts, 0).UTC()
		return e, err
	})
	if err != nil {
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
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	rows, _ := s.pool.Query(ctx, `SELECT id, ts`+journalWhere, args...)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.JournalStamp, error) {
		var st store.JournalStamp
		var ts int64
		err := row.Scan(&st.ID, &ts)
		st.Time = time.Unix(ts, 0).UTC()
		return st, err
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// JournalDelete removes the listed rows of one account and returns how many
// it removed. Other ids are ignored.
func (s *Store) JournalDelete(ctx context.Context, accountID int64, ids []int64) (int64, error) {
	const op = "journal delete"
	if err := s.checkOpen(op); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM journal WHERE account_id = $1 AND id = ANY($2)`, accountID, ids)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	return tag.RowsAffected(), nil
}

// JournalPurge removes every row older than before and returns the count.
func (s *Store) JournalPurge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM journal WHERE ts < $1`, ceilUnix(before))
	if err != nil {
		return 0, s.wrap("journal purge", err)
	}
	return tag.RowsAffected(), nil
}
