package history_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/litestore/litetest"
	"github.com/cairn-chat/cairn/store/pgstore/pgtest"
	"github.com/cairn-chat/cairn/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of a test.
const wait = 20 * time.Second

// engine opens a migrated store of one engine for a test.
type engine struct {
	name string
	open func(testing.TB, store.Clock) store.Store
}

// engines are the embedded SQLite engine and PostgreSQL; PostgreSQL skips
// or fails as pgtest decides when no server is reachable.
var engines = []engine{
	{"sqlite", func(t testing.TB, c store.Clock) store.Store { return litetest.Open(t, c) }},
	{"postgres", func(t testing.TB, c store.Clock) store.Store { return pgtest.Open(t, c) }},
}

// forEngines runs f as a parallel subtest on each engine.
func forEngines(t *testing.T, f func(t *testing.T, e engine)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			f(t, e)
		})
	}
}

// start is the fake clock's first reading.
var start = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

const baseURL = "https://cairn.example.com:8443"

// fixture is a history service over a store of one engine, with its HTTP
// handlers on a loopback server.
type fixture struct {
	t     testing.TB
	st    store.Store
	clock *storetest.Clock
	svc   *history.Service
	reg   *prometheus.Registry
	srv   *httptest.Server
}

func newFixture(t testing.TB, e engine, cfg history.Config) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: storetest.NewClock(start), reg: prometheus.NewRegistry()}
	f.st = e.open(t, f.clock.Now)
	if cfg.BaseURL == "" {
		cfg.BaseURL = baseURL
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f.svc = history.New(cfg, f.st, f.clock.Now, log, f.reg)
	t.Cleanup(f.svc.Close)
	mux := http.NewServeMux()
	mux.Handle(history.HistoryPath, f.svc)
	mux.Handle(history.SyncPath, f.svc.Sync())
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) account(user, domain string) store.Account {
	f.t.Helper()
	a := store.Account{User: user, Domain: domain, Credentials: []byte("sealed " + user)}
	if err := f.st.AccountCreate(f.t.Context(), &a); err != nil {
		f.t.Fatalf("AccountCreate(%s): %v", a.Address(), err)
	}
	return a
}

// tokenReply is the body of the token reply MESSAGE.
type tokenReply struct {
	Token string `json:"token"`
	URL   string `json:"url"`
}

func (f *fixture) token(a store.Account, device string) tokenReply {
	f.t.Helper()
	body, err := f.svc.IssueToken(f.t.Context(), a, device)
	if err != nil {
		f.t.Fatalf("IssueToken(%s, %s): %v", a.Address(), device, err)
	}
	var r tokenReply
	if err := json.Unmarshal(body, &r); err != nil || r.Token == "" {
		f.t.Fatalf("IssueToken body %s: %v", body, err)
	}
	return r
}

// row returns a plain text message row of account a.
func row(a store.Account, messageID string) store.HistoryRow {
	return store.HistoryRow{
		AccountID: a.ID, MessageID: messageID, Contact: "bob@example.com", Direction: "incoming",
		ContentType: "text/plain", Content: []byte("hello " + messageID), Timestamp: start,
		Disposition: []string{"positive-delivery", "display"}, State: "received",
	}
}

func (f *fixture) append(rows ...store.HistoryRow) []store.HistoryRow {
	f.t.Helper()
	got, err := f.svc.Append(f.t.Context(), rows...)
	if err != nil {
		f.t.Fatalf("Append: %v", err)
	}
	return got
}

// get does GET path on the history API with the Authorization header auth
// (none when empty), through ServeHTTP.
func (f *fixture) get(path, auth string) *httptest.ResponseRecorder {
	f.t.Helper()
	req := httptest.NewRequestWithContext(f.t.Context(), http.MethodGet, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	f.svc.ServeHTTP(w, req)
	return w
}

// answer is a history answer as a strict client reads it.
type answer struct {
	Account  string `json:"account"`
	Messages []item `json:"messages"`
	More     bool   `json:"more"`
	LastID   *int64 `json:"last_id"`
}

type item struct {
	ID          int64    `json:"id"`
	MessageID   string   `json:"message_id"`
	Contact     string   `json:"contact"`
	Timestamp   string   `json:"timestamp"`
	Disposition []string `json:"disposition"`
	ContentType string   `json:"content_type"`
	Content     string   `json:"content"`
	Direction   string   `json:"direction"`
	State       string   `json:"state"`
}

// history GETs path and returns the answer, failing unless it is a 200.
func (f *fixture) history(path, token string) answer {
	f.t.Helper()
	w := f.get(path, "Apikey "+token)
	if w.Code != http.StatusOK {
		f.t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	var a answer
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	if a.LastID == nil || a.Messages == nil {
		f.t.Fatalf("GET %s: last_id or messages missing: %s", path, w.Body)
	}
	return a
}

func ids(items []item) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func messageIDs(items []item) string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.MessageID
	}
	return strings.Join(out, ",")
}

// wsURL is the live sync URL of account addr after id.
func (f *fixture) wsURL(addr string, after int64) string {
	return fmt.Sprintf("ws%s%s%s?after=%d", strings.TrimPrefix(f.srv.URL, "http"), history.SyncPath, addr, after)
}

// dial opens the live sync of addr after id with token, failing unless it
// upgrades.
func (f *fixture) dial(addr, token string, after int64) *websocket.Conn {
	f.t.Helper()
	ws, resp, err := websocket.DefaultDialer.DialContext(f.t.Context(), f.wsURL(addr, after),
		http.Header{"Authorization": {"Apikey " + token}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		f.t.Fatalf("dial %s: %v (HTTP %d)", addr, err, status)
	}
	f.t.Cleanup(func() { ws.Close() })
	return ws
}

// readItem reads one row from the live sync.
func readItem(t testing.TB, ws *websocket.Conn) item {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(wait))
	kind, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("live sync read: %v", err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("live sync: message type %d, want text", kind)
	}
	var it item
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&it); err != nil {
		t.Fatalf("live sync item %s: %v", b, err)
	}
	return it
}

// readIDs reads n rows and returns their ids.
func readIDs(t testing.TB, ws *websocket.Conn, n int) []int64 {
	t.Helper()
	out := make([]int64, n)
	for i := range out {
		out[i] = readItem(t, ws).ID
	}
	return out
}

// metric returns the value of the metric name with these label values
// (name=value pairs), or 0 when there is none.
func (f *fixture) metric(name string, labels ...string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// waitFor polls cond until it holds, or fails t after wait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
