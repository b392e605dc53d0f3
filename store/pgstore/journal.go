package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

const (
	putMaxBatch = 256         // put requests per group commit
	putTimeout  = time.Minute // bound of one group commit
	// listTimeout bounds a shared read; its callers wait for it whatever
	// their own contexts say, so it is short.
	listTimeout = 5 * time.Second
	insertChunk = 2000 // rows per INSERT, to bound a statement's size
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
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
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

// flushPuts stores a batch of puts. The rows share one time, the clock's
// but never below the last one stamped: a node runs one flush at a time, so
// its ids and times grow together even when its clock steps back. It
// reserves the ids, then loads the rows with COPY; if a row was stored
// before or an account is missing, the COPY stores nothing and insertPuts
// stores the batch instead, with the same ids, which no row took.
func (s *Store) flushPuts(ctx context.Context, batch []engine.PutRequest) ([]engine.PutResult, error) {
	ts := max(s.clock().Unix(), s.lastTS)
	s.lastTS = ts
	b := newPutBatch(batch)
	rows, _ := s.pool.Query(ctx, reserveIDs, len(b.Rows))
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	slices.Sort(ids) // so that they rise in input order
	var missing map[int64]bool
	err = s.copyPuts(ctx, b, ids, ts)
	if pe, _ := errors.AsType[*pgconn.PgError](err); pe != nil && (pe.Code == uniqueViolation || pe.Code == foreignKeyViolation) {
		missing, err = s.insertPuts(ctx, b, ids, ts)
	}
	if err != nil {
		return nil, err
	}
	return b.Results("pgstore", ids, missing), nil
}

// reserveIDs takes $1 ids from the sequence of journal.id.
const reserveIDs = `SELECT nextval(seq) FROM CAST(pg_get_serial_sequence('journal', 'id') AS regclass) AS seq, generate_series(1, $1)`

// putBatch is a batch of puts reduced to its distinct rows.
type putBatch struct {
	*engine.Batch
	// order lists the rows in engine.Identity order, the order in which they are
	// written: two nodes that store some of the same rows at once then wait
	// for each other in one direction only, and cannot deadlock.
	order []int
}

func newPutBatch(reqs []engine.PutRequest) *putBatch {
	b := &putBatch{Batch: engine.NewBatch(reqs)}
	b.order = make([]int, len(b.Rows))
	for k := range b.order {
		b.order[k] = k
	}
	slices.SortFunc(b.order, func(k, l int) int { return b.Rows[k].Compare(b.Rows[l].Identity) })
	return b
}

var journalColumns = []string{"id", "account_id", "device", "msg_id", "data", "data_hash", "ip", "ts"}

// copyPuts loads the rows of the batch, with their ids, in one COPY, a
// transaction of its own. The COPY fails with a unique violation if a row
// was stored before, or a foreign key violation if an account is missing.
// Its foreign key checks lock the accounts as an INSERT's do: an
// AccountDelete either fails the COPY or waits for it and takes its rows.
func (s *Store) copyPuts(ctx context.Context, b *putBatch, ids []int64, ts int64) error {
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"journal"}, journalColumns, pgx.CopyFromSlice(len(b.order), func(i int) ([]any, error) {
		k := b.order[i]
		r := &b.Rows[k]
		return []any{ids[k], r.Account, r.Device, r.MsgID, r.Data, r.Hash[:], r.IP, ts}, nil
	}))
	return err
}

// insertPuts stores the batch in one transaction that inserts with ON
// CONFLICT DO NOTHING, and sets ids to the stored ids of the rows stored
// before, except expired ones, which it replaces. It returns the accounts
// that are missing, whose rows it skips.
func (s *Store) insertPuts(ctx context.Context, b *putBatch, ids []int64, ts int64) (map[int64]bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)

	// FOR KEY SHARE keeps the accounts found until the commit: a concurrent
	// AccountDelete waits for it, then its cascade takes these rows too.
	accounts := make([]int64, len(b.Reqs))
	for i, r := range b.Reqs {
		accounts[i] = r.P.AccountID
	}
	rows, _ := tx.Query(ctx, `SELECT id FROM accounts WHERE id = ANY($1) FOR KEY SHARE`, accounts)
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	missing := map[int64]bool{}
	for _, id := range accounts {
		missing[id] = !slices.Contains(found, id)
	}

	var todo []int // rows of the accounts found, in engine.Identity order
	for _, k := range b.order {
		if !missing[b.Rows[k].Account] {
			todo = append(todo, k)
		}
	}
	for chunk := range slices.Chunk(todo, insertChunk) {
		if err := insertRows(ctx, tx, b.Rows, chunk, ids, ts); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return missing, nil
}

// insertJournal inserts the rows passed as arrays, in array order, except
// those stored before, and returns the ids of those it inserted.
const insertJournal = `
INSERT INTO journal (id, account_id, device, msg_id, data, data_hash, ip, ts)
SELECT id, account_id, device, msg_id, data, data_hash, ip, $8
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[])
    WITH ORDINALITY AS new (id, account_id, device, msg_id, data, data_hash, ip, n)
ORDER BY n
ON CONFLICT (account_id, device, msg_id, data_hash) DO NOTHING
RETURNING id`

// lookupJournal returns the array index (from 1), id and time of the stored
// rows whose identities are passed as arrays.
const lookupJournal = `
SELECT k.n, j.id, j.ts
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS k (account_id, device, msg_id, data_hash, n)
JOIN journal j USING (account_id, device, msg_id, data_hash)`

// insertRows inserts the rows listed, indexes in all, with their ids and
// time ts. For those stored before, it sets ids to the stored ids, unless
// the stored row is expired: then it deletes that row and inserts anew.
func insertRows(ctx context.Context, tx pgx.Tx, all []engine.Row, list []int, ids []int64, ts int64) error {
	c := newColumns(all, list, ids)
	// pgx reports a failed Query through the rows.
	rows, _ := tx.Query(ctx, insertJournal, c.id, c.account, c.device, c.msgID, c.data, c.hash, c.ip, ts)
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	slices.Sort(inserted)
	var stored []int // rows stored before, indexes in all
	for _, k := range list {
		if _, ok := slices.BinarySearch(inserted, ids[k]); !ok {
			stored = append(stored, k)
		}
	}
	if len(stored) == 0 {
		return nil
	}
	c = newColumns(all, stored, nil)
	rows, _ = tx.Query(ctx, lookupJournal, c.account, c.device, c.msgID, c.hash)
	type hit struct{ id, ts int64 }
	hits := make([]hit, len(stored)) // zero if not found
	var n, id, at int64
	_, err = pgx.ForEachRow(rows, []any{&n, &id, &at}, func() error {
		hits[n-1] = hit{id, at}
		return nil
	})
	if err != nil {
		return err
	}
	var expired []int // rows to insert anew, in the order of list
	var old []int64   // ids of the expired rows they replace
	for i, k := range stored {
		switch h := hits[i]; {
		case h.id == 0:
			return fmt.Errorf("journal row %q of device %q neither inserted nor found", all[k].MsgID, all[k].Device)
		case h.ts < all[k].Cutoff:
			expired = append(expired, k)
			old = append(old, h.id)
		default:
			ids[k] = h.id
		}
	}
	if len(expired) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM journal WHERE id = ANY($1)`, old); err != nil {
		return err
	}
	// The rows keep the ids reserved for them. If another node replaced one
	// meanwhile, the insert skips it and the lookup finds that node's row.
	return insertRows(ctx, tx, all, expired, ids, ts)
}

// columns holds rows as the arrays that unnest takes.
type columns struct {
	id, account             []int64
	device, msgID, data, ip []string
	hash                    [][]byte
}

// newColumns returns the rows listed, indexes in all, with their ids
// unless ids is nil.
func newColumns(all []engine.Row, list []int, ids []int64) columns {
	var c columns
	for _, k := range list {
		r := &all[k]
		if ids != nil {
			c.id = append(c.id, ids[k])
		}
		c.account = append(c.account, r.Account)
		c.device = append(c.device, r.Device)
		c.msgID = append(c.msgID, r.MsgID)
		c.data = append(c.data, r.Data)
		c.hash = append(c.hash, r.Hash[:])
		c.ip = append(c.ip, r.IP)
	}
	return c
}

// journalRows selects the rows that match a JournalQuery, in order. The
// statements that use it take engine.QueryArgs, $5 being the limit.
const journalRows = ` FROM journal
	WHERE account_id = $1 AND ts >= $2 AND id > $3 AND ($4::text = '' OR device <> $4)
	ORDER BY ts, id`

// byteLimit is the LIMIT of a JournalList: the length of the longest run
// of journalRows whose data takes at most $6 bytes, or 1. When the whole
// run up to the limit fits, as it mostly does, a plain sum shows it; only
// otherwise does a running sum find where to stop. Both read only the sizes
// of the data, which octet_length takes from the headers of TOASTed values,
// and a sort the planner adds sorts sizes, not data.
const byteLimit = `(SELECT CASE WHEN sum(size) <= $6 THEN $5 ELSE (
	SELECT greatest(1, count(*)) FROM (
		SELECT sum(size) OVER (ORDER BY ts, id ROWS UNBOUNDED PRECEDING) AS total FROM ` + dataSizes + `
	) AS prefix WHERE total <= $6
) END FROM ` + dataSizes + `)`

// dataSizes is the size in bytes of the data of each row of journalRows.
const dataSizes = `(SELECT ts, id, octet_length(data) AS size` + journalRows + ` LIMIT $5) AS sizes`

// JournalList returns the rows that match q, ordered by time then id: the
// longest run of them whose data fits in q.MaxBytes, or the first one.
func (s *Store) JournalList(ctx context.Context, q store.JournalQuery) ([]store.JournalEntry, error) {
	const op = "journal list"
	args, err := engine.QueryArgs(q)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	args = append(args, engine.ByteCap(q))
	rows, _ := s.pool.Query(ctx, `SELECT id, account_id, device, msg_id, data, ip, ts`+journalRows+` LIMIT `+byteLimit, args...)
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
	args, err := engine.QueryArgs(q)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	rows, _ := s.pool.Query(ctx, `SELECT id, ts`+journalRows+` LIMIT $5`, args...)
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM journal WHERE ts < $1`, engine.CeilUnix(before))
	if err != nil {
		return 0, s.wrap("journal purge", err)
	}
	return tag.RowsAffected(), nil
}
