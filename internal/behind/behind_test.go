package behind

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a write function that keeps the batches it was given.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
}

func (r *recorder) write(b []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, b)
}

func (r *recorder) all() (items []int, batches int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.batches {
		items = append(items, b...)
	}
	return items, len(r.batches)
}

// TestBatches queues more than a batch at once: every item is written
// once, in order, in full batches but the last, and Close writes what is
// queued without waiting for the linger.
func TestBatches(t *testing.T) {
	t.Parallel()
	var r recorder
	w := New(100, 10, time.Hour, r.write)
	for i := range 95 {
		if !w.TryAdd(i) {
			t.Fatalf("TryAdd(%d) refused with room in the queue", i)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	items, batches := r.all()
	if want := 10; batches != want {
		t.Errorf("%d batches, want %d", batches, want)
	}
	for i, b := range r.batches[:batches-1] {
		if len(b) != 10 {
			t.Errorf("batch %d holds %d items, want 10", i, len(b))
		}
	}
	if !slices.Equal(items, seq(95)) {
		t.Errorf("written %v", items)
	}
	if w.TryAdd(1) || w.Add(1) {
		t.Error("an item was queued after Close")
	}
	if err := w.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLinger checks that a lone item is written after the linger, not
// before, and that items arriving within it share its batch.
func TestLinger(t *testing.T) {
	t.Parallel()
	var r recorder
	const linger = 50 * time.Millisecond
	w := New(100, 10, linger, r.write)
	defer w.Close(context.Background())
	start := time.Now()
	w.Add(1)
	w.Add(2)
	for {
		if items, _ := r.all(); len(items) > 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("nothing written after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	if d := time.Since(start); d < linger {
		t.Errorf("written after %v, before the linger", d)
	}
	if items, batches := r.all(); batches != 1 || !slices.Equal(items, []int{1, 2}) {
		t.Errorf("%d batches holding %v, want one holding [1 2]", batches, items)
	}
}

// TestFull checks TryAdd refuses and Add waits while the queue is full,
// and Close gives up at its context while the writer is stuck.
func TestFull(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	w := New(1, 1, 0, func([]int) { <-release })
	w.Add(1) // taken by the writer, which blocks
	for !w.TryAdd(2) {
		time.Sleep(time.Millisecond) // until the writer took 1
	}
	if w.TryAdd(3) {
		t.Fatal("TryAdd queued into a full queue")
	}
	added := make(chan bool)
	go func() { added <- w.Add(3) }()
	select {
	case <-added:
		t.Fatal("Add returned while the queue was full")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if !<-added {
		t.Error("Add refused once there was room")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}

	block := make(chan struct{})
	defer close(block)
	stuck := New(1, 1, 0, func([]int) { <-block })
	stuck.Add(1)
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := stuck.Close(ctx); err == nil {
		t.Error("Close of a stuck writer returned nil before its context ended")
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
