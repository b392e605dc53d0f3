package litestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

const accountColumns = `id, username, domain, credentials, web_hash, created_at, updated_at`

// AccountCreate stores a new account and sets its ID and times. It returns
// store.ErrConflict when user@domain exists already.
func (s *Store) AccountCreate(ctx context.Context, a *store.Account) error {
	op := "account create " + a.Address()
	if err := errors.Join(engine.CheckText("user", a.User), engine.CheckText("domain", a.Domain), engine.CheckText("web hash", a.WebHash)); err != nil {
		return fmt.Errorf("litestore: %s: %w", op, err)
	}
	now := s.now()
	var id int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO accounts (username, domain, credentials, web_hash, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		a.User, a.Domain, engine.OrEmpty(a.Credentials), a.WebHash, now.UnixMicro(), now.UnixMicro()).Scan(&id)
	if err != nil {
		return s.wrap(op, err)
	}
	a.ID, a.CreatedAt, a.UpdatedAt = id, now, now
	return nil
}

// AccountGet returns the account user@domain, or store.ErrNotFound.
func (s *Store) AccountGet(ctx context.Context, user, domain string) (store.Account, error) {
	row := s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE domain = ? AND username = ?`, domain, user)
	a, err := scanAccount(row)
	if err != nil {
		return store.Account{}, s.wrap("account get "+user+"@"+domain, err)
	}
	return a, nil
}

// AccountDomainExists reports whether any account belongs to domain.
func (s *Store) AccountDomainExists(ctx context.Context, domain string) (bool, error) {
	var ok bool
	err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = ?)`, domain).Scan(&ok)
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
		return fmt.Errorf("litestore: %s: %w", op, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE accounts SET credentials = ?, web_hash = ?, updated_at = ? WHERE domain = ? AND username = ?`,
		engine.OrEmpty(p.Credentials), p.WebHash, s.now().UnixMicro(), p.Domain, p.User)
	return s.wrapOne(op, res, err)
}

// AccountDelete removes user@domain with its journal, registrations and
// offline messages (the foreign keys cascade), or returns
// store.ErrNotFound. Traces stay: they belong to addresses, not accounts,
// and go by age.
func (s *Store) AccountDelete(ctx context.Context, user, domain string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM accounts WHERE domain = ? AND username = ?`, domain, user)
	return s.wrapOne("account delete "+user+"@"+domain, res, err)
}

// AccountList returns every account, ordered by domain then user, byte by byte.
func (s *Store) AccountList(ctx context.Context) ([]store.Account, error) {
	rows, err := s.query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY domain, username`)
	if err != nil {
		return nil, s.wrap("account list", err)
	}
	defer rows.Close()
	var out []store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, s.wrap("account list", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("account list", err)
	}
	return out, nil
}

func scanAccount(row interface{ Scan(...any) error }) (store.Account, error) {
	var a store.Account
	var created, updated int64
	if err := row.Scan(&a.ID, &a.User, &a.Domain, &a.Credentials, &a.WebHash, &created, &updated); err != nil {
		return store.Account{}, err
	}
	a.CreatedAt, a.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return a, nil
}

// wrapOne wraps the error of a statement that must change one row: no row
// changed is store.ErrNotFound.
func (s *Store) wrapOne(op string, res sql.Result, err error) error {
	if err != nil {
		return s.wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(op, err)
	}
	if n == 0 {
		return fmt.Errorf("litestore: %s: %w", op, store.ErrNotFound)
	}
	return nil
}
