package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

const accountColumns = `id, username, domain, credentials, web_hash, created_at, updated_at`

// AccountCreate stores a new account and sets its ID and times. It returns
// store.ErrConflict when user@domain exists already.
func (s *Store) AccountCreate(ctx context.Context, a *store.Account) error {
	op := "account create " + a.Address()
	if err := errors.Join(engine.CheckText("user", a.User), engine.CheckText("domain", a.Domain), engine.CheckText("web hash", a.WebHash)); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	now := s.now()
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO accounts (username, domain, credentials, web_hash, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5) RETURNING id`,
		a.User, a.Domain, engine.OrEmpty(a.Credentials), a.WebHash, now).Scan(&id)
	if err != nil {
		return s.wrap(op, err)
	}
	a.ID, a.CreatedAt, a.UpdatedAt = id, now, now
	return nil
}

// AccountGet returns the account user@domain, or store.ErrNotFound.
func (s *Store) AccountGet(ctx context.Context, user, domain string) (store.Account, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts WHERE domain = $1 AND username = $2`, domain, user)
	a, err := pgx.CollectExactlyOneRow(rows, scanAccount)
	if err != nil {
		return store.Account{}, s.wrap("account get "+user+"@"+domain, err)
	}
	return a, nil
}

// AccountDomainExists reports whether any account belongs to domain.
func (s *Store) AccountDomainExists(ctx context.Context, domain string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = $1)`, domain).Scan(&ok)
	if err != nil {
		return false, s.wrap("account domain "+domain, err)
	}
	return ok, nil
}

// AccountSetCredentials replaces the credentials and web hash of
// user@domain, or returns store.ErrNotFound.
func (s *Store) AccountSetCredentials(ctx context.Context, p store.AccountCredentialsParams) error {
	op := "account set credentials " + p.User + "@" + p.Domain
	if err := engine.CheckText("web hash", p.WebHash); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE accounts SET credentials = $1, web_hash = $2, updated_at = $3 WHERE domain = $4 AND username = $5`,
		engine.OrEmpty(p.Credentials), p.WebHash, s.now(), p.Domain, p.User)
	return s.wrapOne(op, tag, err)
}

// AccountDelete removes user@domain with its journal, registrations,
// history and offline messages, or returns store.ErrNotFound. Traces stay:
// they belong to addresses, not accounts, and go by age.
//
// The foreign keys cascade to most tables; history and offline_messages
// have none (schema/postgres/0005_hot_paths.sql) and are emptied here,
// after the account row is gone: a flush writing for the account has
// committed by then (it held the account), and a later one finds none.
func (s *Store) AccountDelete(ctx context.Context, user, domain string) error {
	op := "account delete " + user + "@" + domain
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `DELETE FROM accounts WHERE domain = $1 AND username = $2 RETURNING id`, domain, user).Scan(&id)
		if err != nil {
			return err // pgx.ErrNoRows: store.ErrNotFound
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM history WHERE account_id = $1`, id)
		b.Queue(`DELETE FROM offline_messages WHERE account_id = $1`, id)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// AccountList returns every account, ordered by domain then user, byte by
// byte: the columns have collation "C".
func (s *Store) AccountList(ctx context.Context) ([]store.Account, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY domain, username`)
	out, err := pgx.CollectRows(rows, scanAccount)
	if err != nil {
		return nil, s.wrap("account list", err)
	}
	return out, nil
}

func scanAccount(row pgx.CollectableRow) (store.Account, error) {
	var a store.Account
	if err := row.Scan(&a.ID, &a.User, &a.Domain, &a.Credentials, &a.WebHash, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return store.Account{}, err
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

// wrapOne wraps the error of a statement that must change one row: no row
// changed is store.ErrNotFound.
func (s *Store) wrapOne(op string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return s.wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: %s: %w", op, store.ErrNotFound)
	}
	return nil
}
