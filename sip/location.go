package sip

import (
	"context"
	"sync"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// location caches each account's bindings for locationTTL, so that a
// MESSAGE does not read them from the store. The registrar invalidates an
// account when it writes; a generation per account keeps a read that began
// before a write from caching what it read. Changes made by other nodes
// show within locationTTL. At most maxLocations accounts are cached.
type location struct {
	st  store.Registrations
	now func() time.Time

	mu    sync.Mutex
	regs  map[int64]cachedBindings
	gen   map[int64]uint64
	epoch uint64 // rises when gen starts afresh
}

type cachedBindings struct {
	regs  []store.Registration
	until time.Time
}

const (
	locationTTL  = 10 * time.Second
	maxLocations = 1 << 16
)

func newLocation(st store.Registrations, now func() time.Time) *location {
	return &location{st: st, now: now, regs: make(map[int64]cachedBindings), gen: make(map[int64]uint64)}
}

// list returns the bindings of an account unexpired now.
func (l *location) list(ctx context.Context, accountID int64) ([]store.Registration, error) {
	now := l.now()
	l.mu.Lock()
	e, ok := l.regs[accountID]
	gen, epoch := l.gen[accountID], l.epoch
	l.mu.Unlock()
	if !ok || !now.Before(e.until) {
		regs, err := l.st.RegistrationList(ctx, accountID, now)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.gen[accountID] == gen && l.epoch == epoch {
			if len(l.regs) >= maxLocations {
				clear(l.regs)
			}
			l.regs[accountID] = cachedBindings{regs: regs, until: now.Add(locationTTL)}
		}
		l.mu.Unlock()
		return regs, nil
	}
	live := make([]store.Registration, 0, len(e.regs))
	for _, r := range e.regs {
		if r.Expires.After(now) {
			live = append(live, r)
		}
	}
	return live, nil
}

// generation returns the account's generation and the epoch, which
// invalidate advances on each write.
func (l *location) generation(accountID int64) (gen, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen[accountID], l.epoch
}

// invalidate forgets an account's bindings; call it after writing them.
// It returns the generation that a list read after the write may be
// cached under (set).
func (l *location) invalidate(accountID int64) (gen, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.regs, accountID)
	l.gen[accountID]++
	if len(l.gen) >= maxLocations {
		// No read under way may cache what it read.
		clear(l.gen)
		l.epoch++
	}
	return l.gen[accountID], l.epoch
}

// set caches regs, read after the write that invalidate returned gen and
// epoch for, unless another write came since.
func (l *location) set(accountID int64, regs []store.Registration, gen, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen[accountID] != gen || l.epoch != epoch {
		return
	}
	if len(l.regs) >= maxLocations {
		clear(l.regs)
	}
	l.regs[accountID] = cachedBindings{regs: regs, until: l.now().Add(locationTTL)}
}
