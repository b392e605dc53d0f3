package groupcommit

import (
	"context"
	"errors"
	"slices"
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
	const linger = 100 * time.Millisecond
	var sizes []int
	var mu sync.Mutex
	g := New(4, time.Second, func(_ context.Context, batch []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		return batch, nil
	}).WithLinger(linger)

	// A request that comes alone does not wait: company is not coming.
	start := time.Now()
	if _, err := g.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= linger/2 {
		t.Errorf("a lone request flushed after %v: it lingered", d)
	}
	// In a burst, the first flushes alone; the next ones, each less than
	// the linger after the one before, wait for each other.
	time.Sleep(linger + linger/2)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
			g.Do(t.Context(), i)
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sizes, []int{1, 1, 3}) {
		t.Errorf("flush sizes %v, want [1 1 3]", sizes)
	}
}

// TestGroupLingerCountsFromArrival checks that requests which queued
// during a flush do not wait the linger again once they lead: they have
// waited for company already.
func TestGroupLingerCountsFromArrival(t *testing.T) {
	t.Parallel()
	const linger, slow = 200 * time.Millisecond, 300 * time.Millisecond
	var sizes []int
	g := New(4, time.Second, func(_ context.Context, batch []int) ([]int, error) {
		if sizes = append(sizes, len(batch)); len(sizes) == 1 { // one flush at a time
			time.Sleep(slow)
		}
		return batch, nil
	}).WithLinger(linger)
	start := time.Now()
	var wg sync.WaitGroup
	for i, at := range []time.Duration{0, linger / 2, linger - 10*time.Millisecond} {
		wg.Go(func() {
			time.Sleep(at)
			g.Do(t.Context(), i)
		})
	}
	wg.Wait()
	// The first flushes alone at once and takes slow; the others queue
	// during it, each with company, and flush when it ends: by then the
	// older of them has waited out the linger. Lingering again would take
	// until slow + linger.
	if d := time.Since(start); d >= slow+linger*3/4 {
		t.Errorf("answered after %v: the second batch lingered again", d)
	}
	if !slices.Equal(sizes, []int{1, 2}) {
		t.Errorf("flush sizes %v, want [1 2]", sizes)
	}
}
