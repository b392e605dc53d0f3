package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

type countingAccounts struct {
	reads int
	fail  error
}

func (c *countingAccounts) AccountGet(_ context.Context, user, domain string) (store.Account, error) {
	c.reads++
	if c.fail != nil {
		return store.Account{}, c.fail
	}
	if user != "alice" {
		return store.Account{}, store.ErrNotFound
	}
	return store.Account{ID: 1, User: user, Domain: domain}, nil
}

func (c *countingAccounts) AccountDomainExists(context.Context, string) (bool, error) {
	c.reads++
	return true, c.fail
}

func TestAccountCache(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	src := &countingAccounts{}
	c := NewAccountCache(src, 10*time.Second, func() time.Time { return now })
	ctx := t.Context()
	for range 3 {
		if a, err := c.AccountGet(ctx, "alice", "example.com"); err != nil || a.ID != 1 {
			t.Fatalf("AccountGet = %v, %v", a, err)
		}
		if _, err := c.AccountGet(ctx, "bob", "example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AccountGet(bob) = %v, want ErrNotFound", err)
		}
		if ok, err := c.AccountDomainExists(ctx, "example.com"); !ok || err != nil {
			t.Fatalf("AccountDomainExists = %v, %v", ok, err)
		}
	}
	if src.reads != 3 {
		t.Errorf("9 lookups read the source %d times, want 3", src.reads)
	}
	now = now.Add(10 * time.Second)
	c.AccountGet(ctx, "alice", "example.com")
	if src.reads != 4 {
		t.Error("an answer outlived its TTL")
	}
	// Failures are not kept.
	src.fail = errors.New("down")
	now = now.Add(time.Minute)
	for range 2 {
		if _, err := c.AccountGet(ctx, "alice", "example.com"); err == nil {
			t.Fatal("a failure was hidden")
		}
	}
	if src.reads != 6 {
		t.Errorf("failures were cached: %d reads, want 6", src.reads)
	}
}
