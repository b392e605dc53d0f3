package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// AccountSource is what an AccountCache reads through.
type AccountSource interface {
	AccountGetter
	AccountDomainExists(ctx context.Context, domain string) (bool, error)
}

// AccountCache keeps the answers of an AccountSource for a short time:
// every SIP request reads an account or two, and accounts change seldom.
// A change made elsewhere (cairn user, another node) shows within the TTL.
// It holds at most maxCached answers of each kind and starts afresh when
// full.
type AccountCache struct {
	src AccountSource
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	accounts map[[2]string]cachedAccount
	domains  map[string]cachedDomain
}

type cachedAccount struct {
	acct    store.Account
	missing bool
	until   time.Time
}

type cachedDomain struct {
	exists bool
	until  time.Time
}

const maxCached = 1 << 16

// NewAccountCache returns a cache over src whose answers live for ttl.
func NewAccountCache(src AccountSource, ttl time.Duration, now func() time.Time) *AccountCache {
	return &AccountCache{src: src, ttl: ttl, now: now,
		accounts: make(map[[2]string]cachedAccount), domains: make(map[string]cachedDomain)}
}

// AccountGet returns the account user@domain, or store.ErrNotFound.
func (c *AccountCache) AccountGet(ctx context.Context, user, domain string) (store.Account, error) {
	k := [2]string{user, domain}
	now := c.now()
	c.mu.Lock()
	e, ok := c.accounts[k]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		if e.missing {
			return store.Account{}, store.ErrNotFound
		}
		return e.acct, nil
	}
	acct, err := c.src.AccountGet(ctx, user, domain)
	missing := errors.Is(err, store.ErrNotFound)
	if err != nil && !missing {
		return acct, err
	}
	c.mu.Lock()
	if len(c.accounts) >= maxCached {
		clear(c.accounts)
	}
	c.accounts[k] = cachedAccount{acct: acct, missing: missing, until: now.Add(c.ttl)}
	c.mu.Unlock()
	return acct, err
}

// AccountDomainExists reports whether any account belongs to domain.
func (c *AccountCache) AccountDomainExists(ctx context.Context, domain string) (bool, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.domains[domain]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.exists, nil
	}
	exists, err := c.src.AccountDomainExists(ctx, domain)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	if len(c.domains) >= maxCached {
		clear(c.domains)
	}
	c.domains[domain] = cachedDomain{exists: exists, until: now.Add(c.ttl)}
	c.mu.Unlock()
	return exists, nil
}
