package replication

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"
)

// TestReadBodyWaitsForBudget checks that bodies in memory are bounded: a
// request waits while the budget is spent, proceeds once it is released, and
// gives up with its context.
func TestReadBodyWaitsForBudget(t *testing.T) {
	t.Parallel()
	h := &Handler{cfg: Config{MaxBody: 1000}, bodies: semaphore.NewWeighted(1001)}
	if !h.bodies.TryAcquire(1001) {
		t.Fatal("budget not free at start")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, "POST", "/settings.phtml", strings.NewReader("data=x"))
	if _, release, err := h.readBody(httptest.NewRecorder(), r); err == nil {
		release()
		t.Fatal("readBody read while the budget was spent")
	}

	done := make(chan string)
	go func() {
		r := httptest.NewRequest("POST", "/settings.phtml", strings.NewReader("data=x"))
		body, release, err := h.readBody(httptest.NewRecorder(), r)
		release()
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		done <- string(body)
	}()
	select {
	case got := <-done:
		t.Fatalf("readBody returned %q before the budget was released", got)
	case <-time.After(20 * time.Millisecond):
	}
	h.bodies.Release(1001)
	if got := <-done; got != "data=x" {
		t.Fatalf("readBody = %q, want data=x", got)
	}
	if !h.bodies.TryAcquire(1001) {
		t.Fatal("readBody did not give its budget back")
	}
}
