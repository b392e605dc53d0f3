package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-chat/cairn/internal/config"
)

// TestHealthzStates checks the three answers of /healthz: ok, draining, and
// a store that does not answer.
func TestHealthzStates(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.TLSListen = ""
	n, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	check := func(wantCode int, wantStatus string) {
		t.Helper()
		w := httptest.NewRecorder()
		n.healthz(w, httptest.NewRequest("GET", "/healthz", nil))
		if w.Code != wantCode || !strings.Contains(w.Body.String(), `"status":"`+wantStatus+`"`) {
			t.Errorf("healthz = %d %s, want %d %q", w.Code, w.Body, wantCode, wantStatus)
		}
	}
	check(http.StatusOK, "ok")
	n.store.Close()
	check(http.StatusServiceUnavailable, "store unreachable")
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	check(http.StatusServiceUnavailable, "draining")
}
