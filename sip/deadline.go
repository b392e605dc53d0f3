package sip

import (
	"context"
	"sync"
	"time"
)

// deadlineTick is how long one shared context is handed out.
const deadlineTick = 50 * time.Millisecond

// deadlines hands out contexts that end d after they were made, with
// their parent at the latest: one made per deadlineTick serves every request
// of that tick, so a request ends between d-deadlineTick and d after it
// began. Under load a context per request cost more than the store calls
// it bounds: a runtime timer each, and a child of the server's context
// added and removed under its lock.
type deadlines struct {
	parent context.Context
	d      time.Duration

	mu   sync.Mutex
	cur  context.Context
	made time.Time
}

func newDeadlines(parent context.Context, d time.Duration) *deadlines {
	return &deadlines{parent: parent, d: d}
}

// get returns a context that ends within d from now.
func (x *deadlines) get() context.Context {
	now := time.Now()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cur == nil || now.Sub(x.made) >= deadlineTick {
		ctx, cancel := context.WithTimeout(x.parent, x.d)
		// It ends by itself at its deadline, or with its parent: the
		// requests sharing it need no earlier end.
		_ = cancel
		x.cur, x.made = ctx, now
	}
	return x.cur
}
