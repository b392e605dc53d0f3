package pgstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// RegistrationPut stores r, replacing the binding with the same account and
// instance. It returns store.ErrNotFound when the account does not exist.
// Concurrent puts share commits: a registrar refreshing many devices at once
// waits for one WAL flush, not one each.
func (s *Store) RegistrationPut(ctx context.Context, r store.Registration) error {
	const op = "registration put"
	if err := engine.CheckRegistration(r); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if err := s.checkOpen(op); err != nil {
		return err
	}
	res, err := s.regs.Do(ctx, r)
	if err != nil {
		return s.wrap(op, err)
	}
	return res
}

// upsertRegistration stores one binding if its account exists.
const upsertRegistration = `INSERT INTO registrations
	(account_id, instance, contact, transport, source, node, call_id, cseq, user_agent, expires_at, updated_at)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $1)
	ON CONFLICT (account_id, instance) DO UPDATE SET
		contact = excluded.contact, transport = excluded.transport, source = excluded.source,
		node = excluded.node, call_id = excluded.call_id, cseq = excluded.cseq,
		user_agent = excluded.user_agent, expires_at = excluded.expires_at, updated_at = excluded.updated_at`

// flushRegistrations upserts a batch of bindings in one transaction, one
// round trip; a binding whose account does not exist gets
// store.ErrNotFound.
func (s *Store) flushRegistrations(ctx context.Context, batch []store.Registration) ([]error, error) {
	now := s.now()
	errs := make([]error, len(batch))
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for i, r := range batch {
		b.Queue(upsertRegistration, r.AccountID, r.Instance, r.Contact, r.Transport, r.Source, r.Node, r.CallID,
			int64(r.CSeq), r.UserAgent, r.Expires, now).Exec(func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() == 0 {
				errs[i] = fmt.Errorf("pgstore: registration put: account %d: %w", r.AccountID, store.ErrNotFound)
			}
			return nil
		})
	}
	b.Queue("COMMIT")
	return errs, s.pool.SendBatch(ctx, b).Close()
}

// RegistrationDelete removes one binding, if there is one.
func (s *Store) RegistrationDelete(ctx context.Context, accountID int64, instance string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM registrations WHERE account_id = $1 AND instance = $2`, accountID, instance); err != nil {
		return s.wrap("registration delete", err)
	}
	return nil
}

// RegistrationDeleteAll removes every binding of an account.
func (s *Store) RegistrationDeleteAll(ctx context.Context, accountID int64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM registrations WHERE account_id = $1`, accountID); err != nil {
		return s.wrap("registration delete all", err)
	}
	return nil
}

// RegistrationList returns the bindings of an account that expire after
// now, ordered by instance, byte by byte: the column has collation "C".
// Concurrent lists share one query: every REGISTER reads its account's
// bindings before it writes them.
func (s *Store) RegistrationList(ctx context.Context, accountID int64, now time.Time) ([]store.Registration, error) {
	const op = "registration list"
	if err := s.checkOpen(op); err != nil {
		return nil, err
	}
	out, err := s.lists.Do(ctx, listRequest{accountID: accountID, now: now})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// listRequest is one RegistrationList waiting for its batch.
type listRequest struct {
	accountID int64
	now       time.Time
}

// listBindings reads the unexpired bindings of the accounts $1. Each
// account is its own descent of the primary key: over a small table,
// "account_id = ANY($1)" is planned as a scan of every row.
const listBindings = `
SELECT r.account_id, r.instance, r.contact, r.transport, r.source, r.node, r.call_id, r.cseq, r.user_agent, r.expires_at, r.updated_at
FROM unnest($1::bigint[]) AS k (id)
CROSS JOIN LATERAL (
    SELECT * FROM registrations WHERE account_id = k.id AND expires_at > $2 ORDER BY instance
) AS r`

// flushLists reads the bindings of a batch's accounts in one query, from
// the earliest now of the batch, and gives each request those unexpired
// at its own now.
func (s *Store) flushLists(ctx context.Context, batch []listRequest) ([][]store.Registration, error) {
	ids := make([]int64, len(batch))
	from := batch[0].now
	for i, q := range batch {
		ids[i] = q.accountID
		if q.now.Before(from) {
			from = q.now
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	rows, _ := s.pool.Query(ctx, listBindings, ids, from)
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Registration, error) {
		var r store.Registration
		var cseq int64
		err := row.Scan(&r.AccountID, &r.Instance, &r.Contact, &r.Transport, &r.Source, &r.Node, &r.CallID, &cseq, &r.UserAgent, &r.Expires, &r.UpdatedAt)
		r.CSeq = uint32(cseq)
		r.Expires, r.UpdatedAt = r.Expires.UTC(), r.UpdatedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, err
	}
	byAccount := make(map[int64][]store.Registration, len(batch))
	for _, r := range found {
		byAccount[r.AccountID] = append(byAccount[r.AccountID], r)
	}
	out := make([][]store.Registration, len(batch))
	for i, q := range batch {
		for _, r := range byAccount[q.accountID] {
			if r.Expires.After(q.now) {
				out[i] = append(out[i], r)
			}
		}
	}
	return out, nil
}

// RegistrationPurge removes the bindings that expired at or before before
// and returns how many.
func (s *Store) RegistrationPurge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM registrations WHERE expires_at <= $1`, before)
	if err != nil {
		return 0, s.wrap("registration purge", err)
	}
	return tag.RowsAffected(), nil
}
