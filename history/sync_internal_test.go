package history

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/litestore/litetest"
)

// internalSetup returns a service over a new SQLite store with account
// alice, a token of hers, and a loopback server of the live sync.
func internalSetup(t *testing.T, cfg Config, tune func(*Service)) (*Service, store.Store, store.Account, string, string) {
	t.Helper()
	now := func() time.Time { return time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC) }
	st := litetest.Open(t, now)
	a := store.Account{User: "alice", Domain: "example.com", Credentials: []byte("x")}
	if err := st.AccountCreate(t.Context(), &a); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, st, now, nil, nil)
	if tune != nil {
		tune(s)
	}
	t.Cleanup(s.Close)
	body, err := s.IssueToken(t.Context(), a, "d1")
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	json.Unmarshal(body, &tok)
	srv := httptest.NewServer(s.Sync())
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + SyncPath + "alice@example.com"
	return s, st, a, tok.Token, url
}

func dialSync(t *testing.T, url, token string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.DialContext(t.Context(), url, http.Header{"Authorization": {"Apikey " + token}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func readID(t *testing.T, ws *websocket.Conn) int64 {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var it struct{ ID int64 }
	if err := json.Unmarshal(b, &it); err != nil {
		t.Fatal(err)
	}
	return it.ID
}

func subscribers(s *Service) int {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	return s.hub.total
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPublishOutOfOrder publishes two commits in the opposite order: the
// subscriber reads the gap from the store and skips the late publish.
func TestPublishOutOfOrder(t *testing.T) {
	t.Parallel()
	s, st, a, tok, url := internalSetup(t, Config{}, nil)
	ws := dialSync(t, url, tok)
	waitUntil(t, "the subscriber", func() bool { return subscribers(s) == 1 })
	row := func(id string) store.HistoryRow {
		return store.HistoryRow{AccountID: a.ID, MessageID: id, ContentType: "text/plain", Content: []byte(id)}
	}
	first, err := st.HistoryAppend(t.Context(), []store.HistoryRow{row("a1"), row("a2")})
	if err != nil {
		t.Fatal(err)
	}
	second, err := st.HistoryAppend(t.Context(), []store.HistoryRow{row("b1")})
	if err != nil {
		t.Fatal(err)
	}
	s.publish(second)
	for _, want := range []int64{first[0].ID, first[1].ID, second[0].ID} {
		if got := readID(t, ws); got != want {
			t.Fatalf("got id %d, want %d", got, want)
		}
	}
	s.publish(first) // late: sent already
	s.publish(second)
	third, err := s.Append(t.Context(), row("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readID(t, ws); got != third[0].ID {
		t.Fatalf("got id %d, want %d", got, third[0].ID)
	}
}

// TestSubscriberQueueBound checks that a queue never holds more than its
// bound of rows or bytes, and that a cut subscriber takes nothing more.
func TestSubscriberQueueBound(t *testing.T) {
	t.Parallel()
	rows := func(n, size int) []store.HistoryRow {
		out := make([]store.HistoryRow, n)
		for i := range out {
			out[i].Content = make([]byte, size)
		}
		return out
	}
	sub := &subscriber{wake: make(chan struct{}, 1)}
	if sub.push(rows(3, 10), 4) || sub.push(rows(1, 10), 4) || len(sub.queue) != 4 {
		t.Fatalf("cut within the bound, or rows lost: %d queued", len(sub.queue))
	}
	if !sub.push(rows(1, 10), 4) || !sub.cut || sub.queue != nil {
		t.Fatalf("not cut past the bound: %d queued", len(sub.queue))
	}
	if sub.push(rows(1, 10), 4) || sub.queue != nil {
		t.Fatalf("a cut subscriber queued rows")
	}
	q, cut := sub.take(nil)
	if !cut || len(q) != 0 {
		t.Fatalf("take: %d rows, cut %v", len(q), cut)
	}

	sub = &subscriber{wake: make(chan struct{}, 1)}
	if sub.push(rows(15, 1<<20), 1024) || !sub.push(rows(2, 1<<20), 1024) {
		t.Fatalf("bytes bound: cut %v with %d bytes", sub.cut, sub.bytes)
	}
}

// TestPongTimeout checks that a client that answers no ping is cut.
func TestPongTimeout(t *testing.T) {
	t.Parallel()
	s, _, _, tok, url := internalSetup(t, Config{}, func(s *Service) {
		s.pingEvery, s.pongWait = 20*time.Millisecond, 150*time.Millisecond
	})
	dialSync(t, url, tok) // never reads, so never answers a ping
	waitUntil(t, "the subscriber", func() bool { return subscribers(s) == 1 })
	waitUntil(t, "the cut", func() bool { return subscribers(s) == 0 })

	// One that reads answers pings and stays.
	ws := dialSync(t, url, tok)
	done := make(chan error, 1)
	go func() {
		_, _, err := ws.ReadMessage()
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // several pong waits
	if n := subscribers(s); n != 1 {
		t.Errorf("%d subscribers, want the reading one", n)
	}
	ws.Close()
	<-done
}

// TestOtherNodeRows checks that rows appended without a publish here (by
// another node) reach the subscriber at its next ping.
func TestOtherNodeRows(t *testing.T) {
	t.Parallel()
	s, st, a, tok, url := internalSetup(t, Config{}, func(s *Service) { s.pingEvery = 50 * time.Millisecond })
	ws := dialSync(t, url, tok)
	waitUntil(t, "the subscriber", func() bool { return subscribers(s) == 1 })
	rows, err := st.HistoryAppend(t.Context(), []store.HistoryRow{{AccountID: a.ID, MessageID: "elsewhere"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := readID(t, ws); got != rows[0].ID {
		t.Fatalf("got id %d, want %d", got, rows[0].ID)
	}
}
