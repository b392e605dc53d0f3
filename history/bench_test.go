package history_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/store"
)

// percentiles reports the p50 and p99 of ds in milliseconds under prefix.
func percentiles(b *testing.B, prefix string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[int(float64(len(ds)-1)*q)]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
}

// benchRow is a typical chat row: a short text with its receipts.
func benchRow(a store.Account, i int) store.HistoryRow {
	r := row(a, fmt.Sprintf("%08x-1f2e-4c3b-9a8d-%012x", i, i))
	r.Content = fmt.Appendf(nil, "message %d: a line of chat, about as long as the usual one, with an émoji 🙂", i)
	return r
}

// BenchmarkHistoryGet5000 answers a 5,000-row history request on
// PostgreSQL through ServeHTTP: token check, cursor, list and JSON. Target:
// p99 ≤ 50 ms.
func BenchmarkHistoryGet5000(b *testing.B) {
	f := newFixture(b, engines[1], history.Config{})
	alice := f.account("alice", "example.com")
	tok := f.token(alice, "d1")
	rows := make([]store.HistoryRow, 0, 1000)
	for i := range 5000 {
		rows = append(rows, benchRow(alice, i))
		if len(rows) == cap(rows) {
			f.append(rows...)
			rows = rows[:0]
		}
	}
	path := history.HistoryPath + "alice@example.com"
	var lat []time.Duration
	var size int
	for b.Loop() {
		req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Apikey "+tok.Token)
		w := httptest.NewRecorder()
		t0 := time.Now()
		f.svc.ServeHTTP(w, req)
		lat = append(lat, time.Since(t0))
		if w.Code != http.StatusOK {
			b.Fatalf("GET: %d", w.Code)
		}
		size = w.Body.Len()
	}
	b.SetBytes(int64(size))
	percentiles(b, "", lat)
}

// BenchmarkSyncFanout has 1,000 accounts with one live sync subscriber
// each over a loopback server, and appends rows to them from 16
// goroutines; it reports the time from Append returning to the row's
// arrival at its subscriber (p50, p99; a row that arrives before Append
// returns counts 0), and from Append being called (call-p50, call-p99).
// Target: p99 ≤ 50 ms.
func BenchmarkSyncFanout(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) { benchFanout(b, e) })
	}
}

func benchFanout(b *testing.B, e engine) {
	const accounts, appenders = 1000, 16
	f := newFixture(b, e, history.Config{})
	accts := make([]store.Account, accounts)
	toks := make([]string, accounts)
	var wg sync.WaitGroup
	for p := range appenders {
		wg.Go(func() {
			for i := p; i < accounts; i += appenders {
				accts[i] = f.account(fmt.Sprintf("u%d", i), "example.com")
				toks[i] = f.token(accts[i], "d1").Token
			}
		})
	}
	wg.Wait()

	// Per account: when each row's Append was called and returned (written
	// by its appender), and when it arrived (written by its reader), by id.
	called := make([][]time.Time, accounts)
	returned := make([][]time.Time, accounts)
	arrived := make([][]time.Time, accounts)
	var arrivals atomic.Int64
	conns := make([]*websocket.Conn, accounts)
	for i := range accounts {
		ws, _, err := websocket.DefaultDialer.DialContext(b.Context(), f.wsURL(accts[i].Address(), 0),
			http.Header{"Authorization": {"Apikey " + toks[i]}})
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = ws
	}
	var readers sync.WaitGroup
	for i, ws := range conns {
		readers.Go(func() {
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now()
				var id int
				fmt.Sscanf(string(msg), `{"id":%d`, &id)
				if id != len(arrived[i])+1 {
					b.Errorf("account %d: id %d after %d", i, id, len(arrived[i]))
				}
				arrived[i] = append(arrived[i], now)
				arrivals.Add(1)
			}
		})
	}
	waitFor(b, "the subscribers", func() bool { return f.metric("cairn_history_sync_subscribers") == accounts })

	work := make([]chan int, appenders)
	for p := range work {
		work[p] = make(chan int, 64)
		wg.Go(func() {
			for i := range work[p] {
				r := benchRow(accts[i], len(called[i]))
				t0 := time.Now()
				if _, err := f.svc.Append(b.Context(), r); err != nil {
					b.Errorf("Append: %v", err)
				}
				called[i], returned[i] = append(called[i], t0), append(returned[i], time.Now())
			}
		})
	}
	n := 0
	for b.Loop() {
		i := n % accounts
		work[i%appenders] <- i
		n++
	}
	for _, w := range work {
		close(w)
	}
	wg.Wait()
	waitFor(b, "every row to arrive", func() bool { return arrivals.Load() == int64(n) })
	for _, ws := range conns {
		ws.Close()
	}
	readers.Wait()

	var fromReturn, fromCall []time.Duration
	for i := range accounts {
		for j, at := range arrived[i] {
			fromReturn = append(fromReturn, max(0, at.Sub(returned[i][j])))
			fromCall = append(fromCall, at.Sub(called[i][j]))
		}
	}
	percentiles(b, "", fromReturn)
	percentiles(b, "call-", fromCall)
}
