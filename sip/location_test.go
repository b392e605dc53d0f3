package sip

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// countingRegs is a store.Registrations that counts its reads.
type countingRegs struct {
	store.Registrations
	reads int
	regs  []store.Registration
}

func (c *countingRegs) RegistrationList(context.Context, int64, time.Time) ([]store.Registration, error) {
	c.reads++
	return c.regs, nil
}

func TestLocationCache(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	st := &countingRegs{regs: []store.Registration{{Instance: "d1", Expires: now.Add(time.Minute)}}}
	l := newLocation(st, func() time.Time { return now })
	ctx := t.Context()

	for range 3 {
		if got, _ := l.list(ctx, 1); len(got) != 1 {
			t.Fatalf("list = %v", got)
		}
	}
	if st.reads != 1 {
		t.Errorf("3 lists read the store %d times, want 1", st.reads)
	}

	// A write drops the entry; the list read after it is cached under its
	// generation, unless another write came between.
	gen, epoch := l.invalidate(1)
	l.invalidate(1)
	l.set(1, nil, gen, epoch)
	if got, _ := l.list(ctx, 1); len(got) != 1 || st.reads != 2 {
		t.Errorf("a list set after a later write was cached: %v (reads %d)", got, st.reads)
	}
	gen, epoch = l.invalidate(1)
	l.set(1, nil, gen, epoch)
	if got, _ := l.list(ctx, 1); len(got) != 0 || st.reads != 2 {
		t.Errorf("the list set after the last write was not used: %v (reads %d)", got, st.reads)
	}

	// Entries expire with their bindings, and the cache with its TTL.
	st.regs = []store.Registration{{Instance: "d1", Expires: now.Add(time.Second)}}
	l.invalidate(1)
	l.list(ctx, 1)
	now = now.Add(2 * time.Second)
	if got, _ := l.list(ctx, 1); len(got) != 0 {
		t.Errorf("an expired binding is listed: %v", got)
	}
	now = now.Add(locationTTL)
	reads := st.reads
	l.list(ctx, 1)
	if st.reads != reads+1 {
		t.Error("the cache outlived its TTL")
	}
}
