package replication

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/cairn-chat/cairn/auth"
	rt "github.com/cairn-chat/cairn/replication/replicationtest"
	"github.com/cairn-chat/cairn/store"
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

// failingJournal is a store whose every journal call fails, as a database
// that went away does.
type failingJournal struct{}

func (failingJournal) JournalSummary(context.Context, store.JournalQuery) ([]store.JournalStamp, error) {
	return nil, errDatabaseDown
}

func (failingJournal) JournalDelete(context.Context, int64, []int64) (int64, error) {
	return 0, errDatabaseDown
}

func (failingJournal) JournalPurge(context.Context, time.Time) (int64, error) {
	return 0, errDatabaseDown
}

func (failingJournal) JournalPut(context.Context, store.JournalPutParams) ([]int64, error) {
	return nil, errDatabaseDown
}

func (failingJournal) JournalList(context.Context, store.JournalQuery) ([]store.JournalEntry, error) {
	return nil, errDatabaseDown
}

var errDatabaseDown = errors.New("database down")

// oneAccount is an AccountGetter with alice@example.com.
type oneAccount struct{ a store.Account }

func (o oneAccount) AccountGet(_ context.Context, user, domain string) (store.Account, error) {
	if user+"@"+domain != o.a.Address() {
		return store.Account{}, store.ErrNotFound
	}
	return o.a, nil
}

// TestStoreFailureDropsConnection checks that a request whose store call
// fails gets no answer at all: Blink keeps and retries its entries only
// after a transport failure, and drops them on any answer.
func TestStoreFailureDropsConnection(t *testing.T) {
	t.Parallel()
	keys, err := auth.NewKeyring(make([]byte, auth.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	acct := store.Account{ID: 1, User: "alice", Domain: "example.com"}
	if acct.Credentials, err = keys.Seal(acct.Address(), auth.NewCredentials("alice", "example.com", "alice-sip-pw", "")); err != nil {
		t.Fatal(err)
	}
	nonces := auth.NewNonces(keys, time.Minute, 16, time.Now)
	h := New(Config{Retention: time.Hour, MaxBody: 1 << 20, MaxEntry: 1 << 10, DefaultRealm: "x"},
		failingJournal{}, auth.NewHTTP(auth.NewDigest(oneAccount{acct}, keys, nonces)), time.Now,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	srv := httptest.NewServer(h)
	defer srv.Close()

	for _, req := range []rt.Request{
		{Method: "POST", Query: "action=put_journal_entries&realm=example.com",
			Body: []byte(rt.Form("uuid", "urn:uuid:1", "data", rt.EntriesObject(rt.Item{ID: "m1", Data: "blob"})))},
		{Method: "GET", Query: "action=get_journal_entries&realm=example.com&after_timestamp=0"},
		{Method: "POST", Query: "action=delete_journal_entries&realm=example.com", Body: []byte(`data=["41"]`)},
	} {
		// No keep-alive: Go's client would resend a GET whose reused
		// connection dropped, and its replayed nonce would earn a 401.
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		c := &rt.Client{URL: srv.URL + "/settings.phtml", Username: "alice", Password: "alice-sip-pw", HTTP: hc}
		resp, err := c.Do(t.Context(), req)
		if err == nil {
			t.Fatalf("%s ?%s: answered %d %q, want the connection dropped", req.Method, req.Query, resp.StatusCode, resp.Body)
		}
	}
}

// TestCompleteSummary checks when a get's rows may stand for its summary:
// only when the byte cap did not cut them short.
func TestCompleteSummary(t *testing.T) {
	t.Parallel()
	h := &Handler{cfg: Config{MaxEntry: 1 << 20}}
	rows := func(n, size int) []store.JournalEntry {
		out := make([]store.JournalEntry, n)
		for i := range out {
			out[i].Data = strings.Repeat("x", size)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		rows []store.JournalEntry
		want bool
	}{
		{"no rows", nil, true},
		{"small rows", rows(10, 700), true},
		{"the row limit reached", rows(maxRows, 700), true},
		{"near the byte cap", rows(32, 1<<20), false},
		{"room for one more entry", rows(31, 1<<20), true},
	} {
		if got := h.complete(tt.rows); got != tt.want {
			t.Errorf("%s: complete = %v, want %v", tt.name, got, tt.want)
		}
	}
}
