package sip

import (
	"context"
	"testing"
	"time"
)

func TestDeadlinesShared(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithCancel(context.Background())
	const d = time.Second
	x := newDeadlines(parent, d)

	start := time.Now()
	a, b := x.get(), x.get()
	if a != b {
		t.Error("two requests within one tick got two contexts")
	}
	dl, ok := a.Deadline()
	if !ok || dl.Before(start.Add(d-deadlineTick)) || dl.After(time.Now().Add(d)) {
		t.Errorf("deadline %v after the first get, want within (%v, %v]", dl.Sub(start), d-deadlineTick, d)
	}
	time.Sleep(deadlineTick)
	c := x.get()
	if c == a {
		t.Error("a request after the tick got the old context")
	}
	if dl2, _ := c.Deadline(); !dl2.After(dl) {
		t.Errorf("the new context ends at %v, not after the old one (%v)", dl2, dl)
	}
	cancel()
	for _, ctx := range []context.Context{a, c} {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			t.Fatal("a context outlived its parent")
		}
	}
}
