package history_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/store"
)

// TestSyncBacklogThenLive checks the backlog after after, then live rows,
// each one message shaped as an API item.
func TestSyncBacklogThenLive(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{})
		alice, bob := f.account("alice", "example.com"), f.account("bob", "example.com")
		tok := f.token(alice, "d1")
		got := f.append(row(alice, "m1"), row(alice, "m2"), row(alice, "m3"))
		ws := f.dial("alice@example.com", tok.Token, got[0].ID)
		if ids := readIDs(t, ws, 2); !slices.Equal(ids, []int64{got[1].ID, got[2].ID}) {
			t.Fatalf("backlog %v", ids)
		}
		waitFor(t, "the subscriber", func() bool { return f.metric("cairn_history_sync_subscribers") == 1 })
		f.append(row(bob, "b1")) // not alice's
		live := f.append(row(alice, "m4"), row(bob, "b2"), row(alice, "m5"))
		it := readItem(t, ws)
		api := f.history(history.HistoryPath+"alice@example.com/m3", tok.Token)
		if len(api.Messages) != 2 || !equalItems(it, api.Messages[0]) {
			t.Fatalf("live item %+v, API item %+v", it, api.Messages)
		}
		if it2 := readItem(t, ws); it2.ID != live[2].ID || it2.MessageID != "m5" {
			t.Fatalf("second live item %+v", it2)
		}
		waitFor(t, "4 rows served by sync", func() bool { return f.metric("cairn_history_rows_served_total", "via", "sync") == 4 })
		// The client goes; the subscriber with it.
		ws.Close()
		waitFor(t, "the subscriber to go", func() bool { return f.metric("cairn_history_sync_subscribers") == 0 })
	})
}

func equalItems(a, b item) bool {
	return a.ID == b.ID && a.MessageID == b.MessageID && a.Contact == b.Contact && a.Timestamp == b.Timestamp &&
		slices.Equal(a.Disposition, b.Disposition) && a.ContentType == b.ContentType && a.Content == b.Content &&
		a.Direction == b.Direction && a.State == b.State
}

// TestSyncAuth checks the Authorization header, the apikey.<token>
// subprotocol (echoed), and refusals.
func TestSyncAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, engines[0], history.Config{})
	alice := f.account("alice", "example.com")
	f.account("bob", "example.com")
	tok := f.token(alice, "d1")
	f.append(row(alice, "m1"))

	d := websocket.Dialer{Subprotocols: []string{"other", "apikey." + tok.Token}}
	ws, resp, err := d.DialContext(t.Context(), f.wsURL("alice%40example.com", 0), nil)
	if err != nil {
		t.Fatalf("dial with the subprotocol: %v", err)
	}
	defer ws.Close()
	if ws.Subprotocol() != "apikey."+tok.Token || resp.Header.Get("Sec-WebSocket-Protocol") != "apikey."+tok.Token {
		t.Errorf("subprotocol %q not echoed", ws.Subprotocol())
	}
	if it := readItem(t, ws); it.MessageID != "m1" {
		t.Errorf("item %+v", it)
	}

	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		protos []string
		code   int
	}{
		{"no token", f.wsURL("alice@example.com", 0), nil, nil, http.StatusUnauthorized},
		{"token in the URL", f.wsURL("alice@example.com", 0) + "&apikey=" + tok.Token + "&token=" + tok.Token, nil, nil, http.StatusUnauthorized},
		{"wrong token", f.wsURL("alice@example.com", 0), http.Header{"Authorization": {"Apikey " + flipLast(tok.Token)}}, nil, http.StatusUnauthorized},
		{"wrong subprotocol token", f.wsURL("alice@example.com", 0), nil, []string{"apikey.x"}, http.StatusUnauthorized},
		{"another account", f.wsURL("bob@example.com", 0), http.Header{"Authorization": {"Apikey " + tok.Token}}, nil, http.StatusUnauthorized},
		{"bad after", strings.Replace(f.wsURL("alice@example.com", 0), "after=0", "after=x", 1), http.Header{"Authorization": {"Apikey " + tok.Token}}, nil, http.StatusBadRequest},
		{"negative after", strings.Replace(f.wsURL("alice@example.com", 0), "after=0", "after=-1", 1), http.Header{"Authorization": {"Apikey " + tok.Token}}, nil, http.StatusBadRequest},
		{"trailing path", strings.Replace(f.wsURL("alice@example.com", 0), "?", "/x?", 1), http.Header{"Authorization": {"Apikey " + tok.Token}}, nil, http.StatusNotFound},
	} {
		d := websocket.Dialer{Subprotocols: tc.protos}
		ws, resp, err := d.DialContext(t.Context(), tc.url, tc.header)
		if err == nil {
			ws.Close()
			t.Errorf("%s: upgraded", tc.name)
			continue
		}
		if resp == nil || resp.StatusCode != tc.code {
			t.Errorf("%s: %v %v, want %d", tc.name, err, resp, tc.code)
		}
	}
	// Not a WebSocket.
	resp, err = http.Get(f.srv.URL + history.SyncPath + "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %d", resp.StatusCode)
	}
}

// TestSyncNoGapNoRepeat runs appends from several goroutines (whose
// publishes race, so that subscribers see ids out of order) while
// subscribers connect, disconnect and resume with after=<last id>: each
// must get every row once, in id order.
func TestSyncNoGapNoRepeat(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{})
		alice, bob := f.account("alice", "example.com"), f.account("bob", "example.com")
		tok := f.token(alice, "d1")
		f.append(row(alice, "first"))
		const writers, appends = 8, 40
		total := 1 + writers*appends*3/2 // rows of 1 or 2 per append

		// Readers: one steady, one that resumes every 50 rows, one that
		// joins late from the start.
		type result struct {
			name string
			ids  []int64
			err  error
		}
		results := make(chan result, 3)
		reader := func(name string, resumeEvery int, delay time.Duration) {
			var got []int64
			var last int64
			defer func() { results <- result{name, got, nil} }()
			time.Sleep(delay)
			for len(got) < total {
				ws, _, err := websocket.DefaultDialer.Dial(f.wsURL("alice@example.com", last),
					http.Header{"Authorization": {"Apikey " + tok.Token}})
				if err != nil {
					results <- result{name, got, err}
					return
				}
				for n := 0; len(got) < total && (resumeEvery == 0 || n < resumeEvery); n++ {
					ws.SetReadDeadline(time.Now().Add(wait))
					_, b, err := ws.ReadMessage()
					if err != nil {
						ws.Close()
						results <- result{name, got, err}
						return
					}
					var id int64
					fmt.Sscanf(string(b), `{"id":%d`, &id)
					got = append(got, id)
					last = id
				}
				ws.Close()
			}
		}
		go reader("steady", 0, 0)
		go reader("resuming", 50, 0)
		go reader("late", 0, 30*time.Millisecond)
		waitFor(t, "the first subscribers", func() bool { return f.metric("cairn_history_sync_subscribers") >= 2 })

		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range appends {
					rows := []store.HistoryRow{row(alice, fmt.Sprintf("w%d-%d", w, i))}
					if i%2 == 1 {
						rows = append(rows, row(bob, "b"), row(alice, fmt.Sprintf("w%d-%d-bis", w, i)))
					}
					if _, err := f.svc.Append(t.Context(), rows...); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		want := make([]int64, total)
		for i := range want {
			want[i] = int64(i + 1)
		}
		for range 3 {
			select {
			case r := <-results:
				if r.err != nil || !slices.Equal(r.ids, want) {
					t.Errorf("%s: %d rows (%v), want ids 1 to %d once each in order; got %v", r.name, len(r.ids), r.err, total, r.ids)
				}
			case <-time.After(wait):
				t.Fatalf("readers did not finish")
			}
		}
	})
}

// TestSyncSlowCut checks that a subscriber that does not read is cut with
// 4008 once SubscriberQueue rows wait for it, after the rows it was sent,
// and resumes with after=<last id> without a gap.
func TestSyncSlowCut(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{SubscriberQueue: 4})
		alice := f.account("alice", "example.com")
		tok := f.token(alice, "d1")
		ws := f.dial("alice@example.com", tok.Token, 0)
		waitFor(t, "the subscriber", func() bool { return f.metric("cairn_history_sync_subscribers") == 1 })
		// Rows of 256 KiB fill the socket buffers, then the queue.
		big := row(alice, "")
		big.Content = bytes.Repeat([]byte("x"), 256<<10)
		var stored []store.HistoryRow
		for i := 0; f.metric("cairn_history_sync_cut_total", "reason", "slow") == 0; i++ {
			if i == 1000 {
				t.Fatalf("not cut after %d rows", i)
			}
			big.MessageID = fmt.Sprintf("m%d", i)
			stored = append(stored, f.append(big)...)
		}
		f.append(row(alice, "after-cut"))
		var got []int64
		var closeErr *websocket.CloseError
		for {
			ws.SetReadDeadline(time.Now().Add(wait))
			_, b, err := ws.ReadMessage()
			if errors.As(err, &closeErr) {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var id int64
			fmt.Sscanf(string(b), `{"id":%d`, &id)
			got = append(got, id)
		}
		if len(got) == 0 || len(got) >= len(stored) {
			t.Fatalf("got %d rows of %d before the cut", len(got), len(stored))
		}
		last := got[len(got)-1]
		if want := fmt.Sprintf("too slow: reconnect with after=%d", last); closeErr.Code != history.CloseTooSlow || closeErr.Text != want {
			t.Errorf("close %d %q, want 4008 %q", closeErr.Code, closeErr.Text, want)
		}
		for i, id := range got {
			if id != stored[i].ID {
				t.Fatalf("rows before the cut %v, want a prefix of the stored ids", got)
			}
		}
		// Resume: the rest, then the row appended after the cut.
		ws2 := f.dial("alice@example.com", tok.Token, last)
		rest := readIDs(t, ws2, len(stored)-len(got)+1)
		if rest[0] != last+1 || !slices.IsSorted(rest) || rest[len(rest)-1] != stored[len(stored)-1].ID+1 {
			t.Errorf("after resuming: %v", rest)
		}
	})
}

// TestSyncClose checks that Close cuts every subscriber with 1001 and a
// reason, waits for them, and refuses new ones.
func TestSyncClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, engines[0], history.Config{})
	alice := f.account("alice", "example.com")
	tok := f.token(alice, "d1")
	got := f.append(row(alice, "m1"))
	var conns []*websocket.Conn
	for range 3 {
		ws := f.dial("alice@example.com", tok.Token, 0)
		readItem(t, ws)
		conns = append(conns, ws)
	}
	// One client that never reads, with a write stuck on it.
	stuck := f.dial("alice@example.com", tok.Token, 0)
	big := row(alice, "big")
	big.Content = bytes.Repeat([]byte("y"), 1<<20)
	for range 12 {
		f.append(big)
	}
	for _, ws := range conns {
		readIDs(t, ws, 12)
	}
	f.svc.Close()
	if got := f.metric("cairn_history_sync_subscribers"); got != 0 {
		t.Errorf("%v subscribers after Close", got)
	}
	want := fmt.Sprintf("server shutting down: reconnect with after=%d", got[0].ID+12)
	for _, ws := range conns {
		var ce *websocket.CloseError
		for {
			ws.SetReadDeadline(time.Now().Add(wait))
			_, _, err := ws.ReadMessage()
			if errors.As(err, &ce) {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
		}
		if ce.Code != websocket.CloseGoingAway || ce.Text != want {
			t.Errorf("close %d %q, want 1001 %q", ce.Code, ce.Text, want)
		}
	}
	stuck.Close()
	_, resp, err := websocket.DefaultDialer.Dial(f.wsURL("alice@example.com", 0), http.Header{"Authorization": {"Apikey " + tok.Token}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v %v", err, resp)
	}
	f.svc.Close() // idempotent
}

// TestSyncLimits checks the bound on subscribers per account.
func TestSyncLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, engines[0], history.Config{})
	alice, bob := f.account("alice", "example.com"), f.account("bob", "example.com")
	tok, bobTok := f.token(alice, "d1"), f.token(bob, "d1")
	for range 16 {
		f.dial("alice@example.com", tok.Token, 0)
	}
	_, resp, err := websocket.DefaultDialer.Dial(f.wsURL("alice@example.com", 0), http.Header{"Authorization": {"Apikey " + tok.Token}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("17th subscriber: %v %v", err, resp)
	}
	f.dial("bob@example.com", bobTok.Token, 0) // another account still may
}
