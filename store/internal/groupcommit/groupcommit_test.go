package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGroupSharesFlushesAndKeepsOrder(t *testing.T) {
	t.Parallel()
	var flushes, maxSeen atomic.Int64
	release := make(chan struct{})
	first := true
	g := New(1000, time.Second, func(_ context.Context, batch []int) ([]int, error) {
		flushes.Add(1)
		if n := int64(len(batch)); n > maxSeen.Load() {
			maxSeen.Store(n)
		}
		if first { // hold the first flush so that the others queue behind it
			first = false
			<-release
		}
		out := make([]int, len(batch))
		for i, v := range batch {
			out[i] = v * 2
		}
		return out, nil
	})

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	started := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		close(started)
		if got, err := g.Do(context.Background(), -1); err != nil || got != -2 {
			errs <- errors.New("leader got a wrong result")
		}
	}()
	<-started
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := g.Do(context.Background(), i); err != nil || got != 2*i {
				errs <- errors.New("follower got a wrong result")
			}
		}()
	}
	// Let the followers queue, then release the first flush.
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		queued := len(g.queue)
		g.mu.Unlock()
		if queued == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f := flushes.Load(); f != 2 {
		t.Errorf("flushes = %d, want 2 (the held one, then every follower together)", f)
	}
	if m := maxSeen.Load(); m != n {
		t.Errorf("largest batch = %d, want %d", m, n)
	}
}

func TestGroupErrorFailsWholeBatchAndMaxBatch(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	g := New(2, time.Second, func(_ context.Context, batch []string) ([]string, error) {
		if len(batch) > 2 {
			t.Errorf("batch of %d exceeds maxBatch 2", len(batch))
		}
		for _, s := range batch {
			if s == "bad" {
				return nil, boom
			}
		}
		return batch, nil
	})
	if _, err := g.Do(context.Background(), "bad"); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if got, err := g.Do(context.Background(), "good"); err != nil || got != "good" {
		t.Fatalf("Do = %q, %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Do(ctx, "late"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do on an ended context = %v, want context.Canceled", err)
	}
}

func TestGroupFlushTimeout(t *testing.T) {
	t.Parallel()
	g := New(10, 20*time.Millisecond, func(ctx context.Context, batch []int) ([]int, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if _, err := g.Do(context.Background(), 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestGroupLinger(t *testing.T) {
	t.Parallel()
	var sizes []int
	var mu sync.Mutex
	g := New(4, time.Second, func(_ context.Context, batch []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		return batch, nil
	}).WithLinger(50 * time.Millisecond)

	// A lone request waits for company, then flushes alone.
	start := time.Now()
	if _, err := g.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("a lone request flushed after %v, before the linger", d)
	}
	// Requests that come during the linger share the flush.
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
			g.Do(t.Context(), i)
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 3 {
		t.Errorf("flush sizes %v, want [1 3]", sizes)
	}
}
