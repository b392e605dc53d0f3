package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/store"
)

// Passwords says which passwords to set. An empty one is kept as it is.
type Passwords struct {
	SIP       string
	Web       string
	RemoveWeb bool // drop the web password
}

// apply sets the passwords p names on creds and webHash.
func (p Passwords) apply(user, domain string, creds *auth.Credentials, webHash *string) error {
	var err error
	if p.SIP != "" {
		if creds.SIP, err = auth.NewSIPPassword(user, domain, p.SIP); err != nil {
			return err
		}
	}
	switch {
	case p.RemoveWeb:
		creds.Web, *webHash = nil, ""
	case p.Web != "":
		var web auth.HA1Set
		if web, *webHash, err = auth.NewWebPassword(user, domain, p.Web); err != nil {
			return err
		}
		creds.Web = &web
	}
	return nil
}

// AccountAdd creates the account address ("user@domain") with a SIP password
// and an optional web password.
func AccountAdd(ctx context.Context, st store.Accounts, keys *auth.Keyring, address string, p Passwords) error {
	user, domain, err := auth.ParseAddress(address)
	if err != nil {
		return err
	}
	if p.SIP == "" {
		return errors.New("app: a SIP password is required")
	}
	var creds auth.Credentials
	a := store.Account{User: user, Domain: domain}
	if err := p.apply(user, domain, &creds, &a.WebHash); err != nil {
		return err
	}
	if a.Credentials, err = keys.Seal(a.Address(), creds); err != nil {
		return err
	}
	if err := st.AccountCreate(ctx, &a); err != nil {
		return fmt.Errorf("app: add %s: %w", address, err)
	}
	return nil
}

// AccountPasswd replaces the passwords p names of an existing account; the
// others keep their HA1 values, taken from the sealed credentials.
func AccountPasswd(ctx context.Context, st store.Accounts, keys *auth.Keyring, address string, p Passwords) error {
	user, domain, err := auth.ParseAddress(address)
	if err != nil {
		return err
	}
	a, err := st.AccountGet(ctx, user, domain)
	if err != nil {
		return fmt.Errorf("app: %s: %w", address, err)
	}
	creds, err := keys.Open(a.Address(), a.Credentials)
	if err != nil {
		return fmt.Errorf("app: %s: %w", address, err)
	}
	if err := p.apply(user, domain, &creds, &a.WebHash); err != nil {
		return err
	}
	sealed, err := keys.Seal(a.Address(), creds)
	if err != nil {
		return err
	}
	return st.AccountSetCredentials(ctx, store.AccountCredentialsParams{
		User: user, Domain: domain, Credentials: sealed, WebHash: a.WebHash,
	})
}

// AccountDelete removes an account and everything stored for it.
func AccountDelete(ctx context.Context, st store.Accounts, address string) error {
	user, domain, err := auth.ParseAddress(address)
	if err != nil {
		return err
	}
	if err := st.AccountDelete(ctx, user, domain); err != nil {
		return fmt.Errorf("app: delete %s: %w", address, err)
	}
	return nil
}
