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
		return store.OfflineEnqueueResult{}, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	res, err := s.queue.Do(ctx, req)
	if err != nil {
		return store.OfflineEnqueueResult{}, s.wrap(op, err)
	}
	return res.Res, res.Err
}

// lockRecipients locks the accounts $1 that exist, in id order, and
// returns their ids. NO KEY UPDATE makes the enqueues to one account,
// from every node, wait for each other, but not foreign key checks
// (journal puts) or reads; AccountDelete waits for the flush, then takes
// its messages too. Locking in one order, nodes cannot deadlock.
const lockRecipients = `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`

// reserveMessageIDs takes $1 ids from the sequence of offline_messages.id.
// Taken under the recipients' locks, one account's ids rise in commit order.
const reserveMessageIDs = `SELECT nextval(seq) FROM CAST(pg_get_serial_sequence('offline_messages', 'id') AS regclass) AS seq, generate_series(1, $1)`

// lookupMessages returns the array index (from 1), id, expiry and size of
// the stored messages with the identities passed as arrays. LIMIT keeps the
// subquery apart, so that each identity is one probe of index
// offline_messages_identity: a join would be planned as a hash join over
// the whole table as long as that is not much bigger than a batch.
const lookupMessages = `
SELECT k.n, m.id, m.expires_at, m.size
FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS k (account_id, sender, dedup_key, n)
CROSS JOIN LATERAL (
    SELECT id, expires_at, size FROM offline_messages
    WHERE account_id = k.account_id AND sender = k.sender AND dedup_key = k.dedup_key
    LIMIT 1
) AS m`

// messageUsage returns, for each account and time passed as arrays, its
// index (from 1) and the count and bytes of the account's messages
// unexpired at that time that no device has taken. It reads them from index offline_messages_account
// alone: the filter on expiry is no index condition, so that the planner
// cannot pick offline_messages_expires, which holds nearly every row.
const messageUsage = `
SELECT k.n, u.count, u.bytes
FROM unnest($1::bigint[], $2::timestamptz[]) WITH ORDINALITY AS k (account_id, now, n)
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE m.expires_at > k.now) AS count,
        coalesce(sum(m.size) FILTER (WHERE m.expires_at > k.now), 0)::bigint AS bytes
    FROM offline_messages m WHERE m.account_id = k.account_id
    AND NOT EXISTS (SELECT 1 FROM offline_deliveries d WHERE d.message_id = m.id AND d.state = 2)
) AS u`

// insertMessages inserts the messages passed as arrays, with creation time $11.
const insertMessages = `
INSERT INTO offline_messages (id, account_id, sender, from_hdr, to_hdr, date_hdr, content_type, body, dedup_key, size, created_at, expires_at)
SELECT id, account_id, sender, from_hdr, to_hdr, date_hdr, content_type, body, dedup_key, octet_length(body), $11, expires_at
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::text[], $10::timestamptz[])
    AS new (id, account_id, sender, from_hdr, to_hdr, date_hdr, content_type, body, dedup_key, expires_at)`

// insertDelivered marks the messages $1 done for the instances $2.
const insertDelivered = `
INSERT INTO offline_deliveries (message_id, instance, state, attempts)
SELECT message_id, instance, 2, 0 FROM unnest($1::bigint[], $2::text[]) AS new (message_id, instance)`

// flushEnqueues stores a batch of enqueues in one transaction of two round
// trips, each a pipeline: the first begins, locks the recipients, reserves
// ids and reads what the checks need; the second writes and commits. In
// between, planEnqueues decides each request in order, as if they ran one
// after the other.
func (s *Store) flushEnqueues(ctx context.Context, batch []engine.EnqueueRequest) ([]engine.EnqueueResult, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release() // a connection left in a transaction is closed, not reused
	in, err := readEnqueues(ctx, conn.Conn(), batch)
	var p enqueuePlan
	if err == nil {
		p = planEnqueues(batch, in)
		err = writeEnqueues(ctx, conn.Conn(), batch, p, s.now())
	}
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(ctx, "ROLLBACK")
		}
		return nil, err
	}
	return p.res, nil
}

// enqueueState is what the database holds for a batch of enqueues.
type enqueueState struct {
	found  map[int64]bool   // the recipients that exist
	ids    []int64          // reserved, rising, one per request
	stored []*storedMessage // the message with each request's identity, or nil
	usage  [][2]int64       // count and bytes unexpired at each request's Now, for those with a quota
}

// storedMessage is a message with the identity of a request.
type storedMessage struct {
	id      int64
	expires time.Time
	size    int64
	req     int // the request of the batch that inserts it, or -1
}

// readEnqueues begins a transaction, locks the recipients of batch and
// reads what planEnqueues needs.
func readEnqueues(ctx context.Context, conn *pgx.Conn, batch []engine.EnqueueRequest) (enqueueState, error) {
	n := len(batch)
	accounts := make([]int64, n)
	senders, keys := make([]string, n), make([]string, n)
	var limited []int64
	var nows []time.Time
	for i, r := range batch {
		m := r.P.Message
		accounts[i], senders[i], keys[i] = m.AccountID, m.Sender, m.Key
		if r.Limited() {
			limited, nows = append(limited, m.AccountID), append(nows, r.P.Now)
		}
	}
	recipients := slices.Compact(slices.Sorted(slices.Values(accounts)))

	st := enqueueState{found: map[int64]bool{}, stored: make([]*storedMessage, n), usage: make([][2]int64, n)}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// A generic plan, cached after a few runs, is made for arrays of any
	// length and for the table as it was then: one made while the table
	// was small scans it whole ever after. Plan each statement for its
	// arrays instead, which costs less than one such scan.
	b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
	b.Queue(lockRecipients, recipients).Query(func(rows pgx.Rows) error {
		found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		for _, id := range found {
			st.found[id] = true
		}
		return err
	})
	b.Queue(reserveMessageIDs, n).Query(func(rows pgx.Rows) error {
		var err error
		st.ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		slices.Sort(st.ids)
		return err
	})
	b.Queue(lookupMessages, accounts, senders, keys).Query(func(rows pgx.Rows) error {
		var k int
		var m storedMessage
		_, err := pgx.ForEachRow(rows, []any{&k, &m.id, &m.expires, &m.size}, func() error {
			st.stored[k-1] = &storedMessage{id: m.id, expires: m.expires, size: m.size, req: -1}
			return nil
		})
		return err
	})
	if len(limited) > 0 {
		b.Queue(messageUsage, limited, nows).Query(func(rows pgx.Rows) error {
			usage := make([][2]int64, len(limited)) // of the requests with a quota, in order
			var k int
			var count, bytes int64
			_, err := pgx.ForEachRow(rows, []any{&k, &count, &bytes}, func() error {
				usage[k-1] = [2]int64{count, bytes}
				return nil
			})
			for i, r := range batch {
				if r.Limited() {
					st.usage[i], usage = usage[0], usage[1:]
				}
			}
			return err
		})
	}
	err := conn.SendBatch(ctx, b).Close() // runs the callbacks, which fill st
	return st, err
}

// enqueuePlan is what a flush writes and answers.
type enqueuePlan struct {
	res    []engine.EnqueueResult
	insert []int   // the requests whose messages are stored, in order
	delete []int64 // expired messages that new ones replace
}

// planEnqueues decides the requests of a batch one after the other, each
// seeing the database as in and what the requests before it did.
func planEnqueues(batch []engine.EnqueueRequest, in enqueueState) enqueuePlan {
	type identity struct {
		account     int64
		sender, key string
	}
	type change struct {
		sign    int64 // +1 stored, -1 removed
		expires time.Time
		size    int64
	}
	p := enqueuePlan{res: make([]engine.EnqueueResult, len(batch))}
	byKey := map[identity]*storedMessage{}
	for i, m := range in.stored {
		if m != nil {
			r := batch[i].P.Message
			byKey[identity{r.AccountID, r.Sender, r.Key}] = m
		}
	}
	changes := map[int64][]change{} // by account: what the batch did to the stored messages
	dropped := map[int]bool{}       // requests of the batch whose messages a later one replaced
	next := 0                       // the next reserved id
	for i, r := range batch {
		m := r.P.Message
		if !in.found[m.AccountID] {
			p.res[i].Err = engine.MissingError("pgstore", r.P)
			continue
		}
		key := identity{m.AccountID, m.Sender, m.Key}
		old := byKey[key]
		if old != nil && old.expires.After(r.P.Now) {
			p.res[i].Res = store.OfflineEnqueueResult{ID: old.id, Duplicate: true}
			continue
		}
		if r.Limited() {
			count, bytes := in.usage[i][0], in.usage[i][1]
			for _, c := range changes[m.AccountID] {
				if c.expires.After(r.P.Now) {
					count, bytes = count+c.sign, bytes+c.sign*c.size
				}
			}
			if !r.Quota(count, bytes) {
				p.res[i].Err = engine.QuotaError("pgstore", r.P)
				continue
			}
		}
		if old != nil { // expired: it would never be delivered
			if old.req < 0 {
				p.delete = append(p.delete, old.id)
			} else {
				dropped[old.req] = true
			}
			changes[m.AccountID] = append(changes[m.AccountID], change{-1, old.expires, old.size})
		}
		id := in.ids[next]
		next++
		p.res[i].Res.ID = id
		// As stored: to the microsecond.
		added := &storedMessage{id: id, expires: m.ExpiresAt.Truncate(time.Microsecond), size: int64(len(m.Body)), req: i}
		byKey[key] = added
		if len(r.Delivered) == 0 { // one a device took counts no more
			changes[m.AccountID] = append(changes[m.AccountID], change{+1, added.expires, added.size})
		}
		p.insert = append(p.insert, i)
	}
	if len(dropped) > 0 {
		p.insert = slices.DeleteFunc(p.insert, func(i int) bool { return dropped[i] })
	}
	return p
}

// writeEnqueues writes what p decided and commits, in one pipeline.
func writeEnqueues(ctx context.Context, conn *pgx.Conn, batch []engine.EnqueueRequest, p enqueuePlan, created time.Time) error {
	b := &pgx.Batch{}
	if len(p.delete) > 0 {
		b.Queue(`DELETE FROM offline_messages WHERE id = ANY($1)`, p.delete)
	}
	if n := len(p.insert); n > 0 {
		ids, accounts := make([]int64, n), make([]int64, n)
		senders, froms, tos, dates, types, keys := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		bodies, expires := make([][]byte, n), make([]time.Time, n)
		var delivered []int64
		var instances []string
		for j, i := range p.insert {
			m := batch[i].P.Message
			ids[j], accounts[j] = p.res[i].Res.ID, m.AccountID
			senders[j], froms[j], tos[j], dates[j], types[j], keys[j] = m.Sender, m.From, m.To, m.Date, m.ContentType, m.Key
			bodies[j], expires[j] = engine.OrEmpty(m.Body), m.ExpiresAt
			for _, inst := range batch[i].Delivered {
				delivered, instances = append(delivered, ids[j]), append(instances, inst)
			}
		}
		b.Queue(insertMessages, ids, accounts, senders, froms, tos, dates, types, bodies, keys, expires, created)
		if len(delivered) > 0 {
			b.Queue(insertDelivered, delivered, instances)
		}
	}
	b.Queue("COMMIT")
	return conn.SendBatch(ctx, b).Close()
}

// owedAccounts returns those of the accounts $1 that hold a message
// unexpired at $2, in id order. LIMIT keeps the subquery apart, so that
// each account is one probe of index offline_messages_account that stops at
// its first unexpired message: a semi-join could be planned as a hash join
// over the whole table, and DISTINCT would read every message of an account.
const owedAccounts = `
SELECT k.id
FROM unnest($1::bigint[]) AS k (id)
CROSS JOIN LATERAL (
    SELECT 1 FROM offline_messages WHERE account_id = k.id AND expires_at > $2 LIMIT 1
) AS m
ORDER BY k.id`

// OfflineOwed returns those of accountIDs that hold a message unexpired at
// now, in id order, each once.
func (s *Store) OfflineOwed(ctx context.Context, accountIDs []int64, now time.Time) ([]int64, error) {
	const op = "offline owed"
	ids, err := engine.OwedIDs(accountIDs)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil || len(ids) == 0 {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx, owedAccounts, ids, now)
	owed, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
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
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	rows, _ := s.pool.Query(ctx, `SELECT m.id, m.account_id, m.sender, m.from_hdr, m.to_hdr, m.date_hdr, m.content_type,
			m.body, m.dedup_key, m.created_at, m.expires_at, coalesce(d.attempts, 0), d.next_at
		FROM offline_messages m
		LEFT JOIN offline_deliveries d ON d.message_id = m.id AND d.instance = $2
		WHERE m.account_id = $1 AND m.expires_at > $3 AND m.id > $4 AND coalesce(d.state, 1) = 1
		ORDER BY m.id LIMIT $5`,
		q.AccountID, q.Instance, q.Now, q.AfterID, q.Limit)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.OfflinePending, error) {
		var p store.OfflinePending
		m := &p.Message
		var next *time.Time
		err := row.Scan(&m.ID, &m.AccountID, &m.Sender, &m.From, &m.To, &m.Date, &m.ContentType,
			&m.Body, &m.Key, &m.CreatedAt, &m.ExpiresAt, &p.Attempts, &next)
		m.CreatedAt, m.ExpiresAt = m.CreatedAt.UTC(), m.ExpiresAt.UTC()
		if next != nil {
			p.NextAt = next.UTC()
		}
		return p, err
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// markDelivery records an outcome for the messages $1 of the account $2,
// in id order. A retry counts an attempt and keeps its time, unless the
// device is done with the message already (done or rejected): that stands.
// Done and rejected replace the state and keep the count.
const markDelivery = `INSERT INTO offline_deliveries (message_id, instance, state, attempts, next_at)
	SELECT id, $3, $4, $5, $6 FROM offline_messages WHERE id = ANY($1) AND account_id = $2 ORDER BY id
	ON CONFLICT (message_id, instance) DO UPDATE SET
		state = CASE WHEN excluded.state = 1 THEN offline_deliveries.state ELSE excluded.state END,
		attempts = offline_deliveries.attempts + CASE WHEN excluded.state = 1 AND offline_deliveries.state = 1 THEN 1 ELSE 0 END,
		next_at = CASE WHEN excluded.state = 1 AND offline_deliveries.state = 1 THEN excluded.next_at ELSE offline_deliveries.next_at END`

// markTries bounds how often OfflineMark runs again after a message it
// found was removed before its row went in.
const markTries = 3

// OfflineMark records the outcome for each message, in one statement. It
// skips the messages that do not exist or belong to another account, and
// returns store.ErrNotFound when it skipped every one.
func (s *Store) OfflineMark(ctx context.Context, p store.OfflineMarkParams) error {
	const op = "offline mark"
	ids, err := engine.MarkIDs(p)
	if err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil || len(ids) == 0 {
		return err
	}
	attempts, next := 0, (*time.Time)(nil)
	if p.State == store.DeliveryRetry {
		attempts, next = 1, &p.NextAt
	}
	var tag pgconn.CommandTag
	for range markTries {
		tag, err = s.pool.Exec(ctx, markDelivery, ids, p.AccountID, p.Instance, int16(p.State), attempts, next)
		// A purge, an account deletion or an enqueue replacing an expired
		// message removed one of the messages meanwhile: the next try
		// skips it, as it would have had it been gone before.
		if pe, _ := errors.AsType[*pgconn.PgError](err); pe == nil || pe.Code != foreignKeyViolation {
			break
		}
	}
	if err != nil {
		return s.wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: %s: none of %d messages of account %d: %w", op, len(ids), p.AccountID, store.ErrNotFound)
	}
	return nil
}

// OfflinePurge removes the messages that expired at or before before, with
// their delivery states, and returns how many messages. It skips those that
// another transaction holds at that moment (an enqueue replacing one, a
// mark): taking rows in an order of its own, it could deadlock with it. The
// next purge takes them.
func (s *Store) OfflinePurge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM offline_messages WHERE id IN (
		SELECT id FROM offline_messages WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED)`, before)
	if err != nil {
		return 0, s.wrap("offline purge", err)
	}
	return tag.RowsAffected(), nil
}
