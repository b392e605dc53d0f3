// Package behind writes records behind the work that makes them: SIP
// traces, MSRP session records, history rows that no answer waits for. A
// Writer queues items and one goroutine hands them to a write function in
// batches, each as full as it gets within a linger after its first item,
// so that light traffic costs one write per linger and heavy traffic one
// per full batch, never one per item.
package behind

import (
	"context"
	"sync"
	"time"
)

// Writer queues items for its write function.
type Writer[T any] struct {
	write  func([]T)
	max    int
	linger time.Duration
	queue  chan T
	done   chan struct{}

	// mu guards closed: items may still come while the writer closes, and
	// the queue closes only once.
	mu     sync.RWMutex
	closed bool
}

// New starts a Writer with room for queue items, whose write gets batches
// of at most max items, at most linger after the first of each. write owns
// the slice it is given, and must return: Add waits for it when the queue
// is full, and Close waits for what is queued.
func New[T any](queue, max int, linger time.Duration, write func([]T)) *Writer[T] {
	w := &Writer[T]{write: write, max: max, linger: linger, queue: make(chan T, queue), done: make(chan struct{})}
	go w.run()
	return w
}

// TryAdd queues item unless the queue is full or the writer closed; it
// reports whether it did.
func (w *Writer[T]) TryAdd(item T) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	select {
	case w.queue <- item:
		return true
	default:
		return false
	}
}

// Add queues item, waiting for room; it reports false, without queuing,
// once the writer has closed.
func (w *Writer[T]) Add(item T) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	w.queue <- item
	return true
}

func (w *Writer[T]) run() {
	defer close(w.done)
	for item := range w.queue {
		batch := []T{item}
		// A new timer each time: resetting one that was stopped while
		// still queued makes the runtime scan every timer of its P when
		// it comes due, and sipgo keeps one per transaction.
		linger := time.NewTimer(w.linger)
	fill:
		for len(batch) < w.max {
			select {
			case item, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, item)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		w.write(batch)
	}
}

// Close writes what is queued and ends the writer, or gives up at ctx;
// items added afterwards are refused. It may be called more than once.
func (w *Writer[T]) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
