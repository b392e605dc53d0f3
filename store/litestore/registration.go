package litestore

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// RegistrationPut stores r, replacing the binding with the same account and
// instance. It returns store.ErrNotFound when the account does not exist.
// Concurrent puts share commits: a registrar refreshing many devices at once
// waits for one disk flush, not one each.
func (s *Store) RegistrationPut(ctx context.Context, r store.Registration) error {
	const op = "registration put"
	if err := engine.CheckRegistration(r); err != nil {
		return fmt.Errorf("litestore: %s: %w", op, err)
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

// flushRegistrations upserts a batch of bindings in one transaction; a
// binding whose account does not exist gets store.ErrNotFound.
func (s *Store) flushRegistrations(ctx context.Context, batch []store.Registration) ([]error, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO registrations
		(account_id, instance, contact, transport, source, node, call_id, cseq, user_agent, expires_at, updated_at)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)
		ON CONFLICT (account_id, instance) DO UPDATE SET
			contact = excluded.contact, transport = excluded.transport, source = excluded.source,
			node = excluded.node, call_id = excluded.call_id, cseq = excluded.cseq,
			user_agent = excluded.user_agent, expires_at = excluded.expires_at, updated_at = excluded.updated_at`)
	if err != nil {
		return nil, err
	}
	now := s.now().UnixMicro()
	errs := make([]error, len(batch))
	for i, r := range batch {
		res, err := stmt.ExecContext(ctx, r.AccountID, r.Instance, r.Contact, r.Transport, r.Source, r.Node, r.CallID,
			int64(r.CSeq), r.UserAgent, engine.Micro(r.Expires), now)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			errs[i] = fmt.Errorf("litestore: registration put: account %d: %w", r.AccountID, store.ErrNotFound)
		}
	}
	return errs, tx.Commit()
}

// RegistrationDelete removes one binding, if there is one.
func (s *Store) RegistrationDelete(ctx context.Context, accountID int64, instance string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM registrations WHERE account_id = ? AND instance = ?`, accountID, instance); err != nil {
		return s.wrap("registration delete", err)
	}
	return nil
}

// RegistrationDeleteAll removes every binding of an account.
func (s *Store) RegistrationDeleteAll(ctx context.Context, accountID int64) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM registrations WHERE account_id = ?`, accountID); err != nil {
		return s.wrap("registration delete all", err)
	}
	return nil
}

// RegistrationList returns the bindings of an account that expire after
// now, ordered by instance, byte by byte.
func (s *Store) RegistrationList(ctx context.Context, accountID int64, now time.Time) ([]store.Registration, error) {
	const op = "registration list"
	rows, err := s.query(ctx, `SELECT account_id, instance, contact, transport, source, node, call_id, cseq, user_agent, expires_at, updated_at
		FROM registrations WHERE account_id = ? AND expires_at > ? ORDER BY instance`, accountID, engine.Micro(now))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []store.Registration
	for rows.Next() {
		var r store.Registration
		var cseq, expires, updated int64
		if err := rows.Scan(&r.AccountID, &r.Instance, &r.Contact, &r.Transport, &r.Source, &r.Node, &r.CallID, &cseq, &r.UserAgent, &expires, &updated); err != nil {
			return nil, s.wrap(op, err)
		}
		r.CSeq = uint32(cseq)
		r.Expires, r.UpdatedAt = time.UnixMicro(expires).UTC(), time.UnixMicro(updated).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// RegistrationPurge removes the bindings that expired at or before before
// and returns how many.
func (s *Store) RegistrationPurge(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, "registration purge", `DELETE FROM registrations WHERE (account_id, instance) IN (
		SELECT account_id, instance FROM registrations WHERE expires_at <= ? LIMIT ?)`, engine.Micro(before))
}

// purge runs query, a DELETE of at most purgeBatch rows that takes arg and
// the batch size, until it deletes fewer, each time in a transaction of its
// own, so that writers waiting for the connection are not held up by one
// long delete; it returns how many rows it removed, on error those removed
// already.
func (s *Store) purge(ctx context.Context, op, query string, arg any) (int64, error) {
	var n int64
	for {
		res, err := s.w.ExecContext(ctx, query, arg, purgeBatch)
		if err != nil {
			return n, s.wrap(op, err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return n, s.wrap(op, err)
		}
		n += k
		if k < purgeBatch {
			return n, nil
		}
	}
}
