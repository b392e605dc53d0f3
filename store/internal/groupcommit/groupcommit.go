// Package groupcommit lets concurrent writers share one commit, and
// concurrent readers one query. A caller that arrives while no flush is
// running becomes the leader: it takes the requests queued so far (its own
// first) and hands them to the flush function as one batch. Requests that arrive meanwhile queue up; when the flush ends, the
// leader passes the lead to the oldest of them, whose batch is everything that
// queued during the previous flush. No goroutine is started, so there is
// nothing to stop, and no caller flushes a batch other than its own.
package groupcommit

import (
	"context"
	"sync"
	"time"
)

// Flush commits a batch and returns one result per request, in order. If it
// returns an error, no request of the batch was committed.
type Flush[Req, Res any] func(ctx context.Context, batch []Req) ([]Res, error)

// Group batches requests into shared flushes.
type Group[Req, Res any] struct {
	flush    Flush[Req, Res]
	maxBatch int
	timeout  time.Duration
	linger   time.Duration

	mu       sync.Mutex
	queue    []*call[Req, Res]
	flushing bool
	last     time.Time // when the latest request was queued
}

type call[Req, Res any] struct {
	req     Req
	at      time.Time // when it was queued
	company bool      // another request was queued less than the linger before it
	res     Res
	err     error
	lead    chan struct{} // closed when this call must flush the next batch
	done    chan struct{} // closed when res and err are set
}

// New returns a Group that flushes at most maxBatch requests at a time and
// gives each flush at most timeout.
func New[Req, Res any](maxBatch int, timeout time.Duration, flush Flush[Req, Res]) *Group[Req, Res] {
	return &Group[Req, Res]{flush: flush, maxBatch: maxBatch, timeout: timeout}
}

// WithLinger makes a leader whose batch is not full wait for more requests
// until d after the oldest request of the batch was queued, when that one
// came less than d after the request before it: at a few hundred requests
// a second, where every flush would carry one request, a few share it
// instead. No request waits more than d for company (a batch that queued
// during the previous flush has waited already), and one that comes alone
// does not wait at all: company is not coming.
func (g *Group[Req, Res]) WithLinger(d time.Duration) *Group[Req, Res] {
	g.linger = d
	return g
}

// Do queues req and returns its result once its batch has been flushed. It
// returns ctx.Err() without queuing when ctx has ended; once queued, it waits
// for its batch, whose flush is bounded by the group's timeout, so that the
// caller never answers before it knows whether its request was committed.
func (g *Group[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	if err := ctx.Err(); err != nil {
		var zero Res
		return zero, err
	}
	c := &call[Req, Res]{req: req, at: time.Now(), lead: make(chan struct{}), done: make(chan struct{})}
	g.mu.Lock()
	c.company = c.at.Sub(g.last) < g.linger
	g.last = c.at
	g.queue = append(g.queue, c)
	if !g.flushing {
		g.flushing = true
		close(c.lead)
	}
	g.mu.Unlock()

	select {
	case <-c.lead:
		g.flushHead()
		<-c.done // the leader's batch starts with its own request
	case <-c.done:
	}
	return c.res, c.err
}

// flushHead flushes one batch from the head of the queue, then passes the
// lead on or clears the flushing flag.
func (g *Group[Req, Res]) flushHead() {
	if g.linger > 0 {
		g.mu.Lock()
		full := len(g.queue) >= g.maxBatch
		oldest := g.queue[0]
		wait := time.Until(oldest.at.Add(g.linger))
		g.mu.Unlock()
		if !full && oldest.company && wait > 0 {
			time.Sleep(wait)
		}
	}
	g.mu.Lock()
	n := min(len(g.queue), g.maxBatch)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	reqs := make([]Req, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	// The flush has a context of its own: one caller giving up must not fail
	// the commit of the others.
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	res, err := g.flush(ctx, reqs)
	cancel()
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}

	g.mu.Lock()
	if len(g.queue) > 0 {
		close(g.queue[0].lead)
	} else {
		g.flushing = false
	}
	g.mu.Unlock()
}
