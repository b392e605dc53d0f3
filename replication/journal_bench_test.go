package replication_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	rt "github.com/cairn-chat/cairn/replication/replicationtest"
)

// The journal benchmarks. Run them as BENCHMARKS.md says:
//
//	go test -run '^$' -bench Journal -benchtime 3x -count 3 ./replication
//
// BenchmarkJournalPut: 16 clients each send benchPutRequests puts of 100
// entries over HTTP with Digest (one nonce per client, nc counting up, as a
// client that keeps its nonce does); every entry is committed before its
// answer. On PostgreSQL each iteration then loads as many fresh rows into the
// same journal table with one pgx CopyFrom, the raw rate the target is
// measured against, and reports the ratio.
//
// BenchmarkJournalGet5000: Blink's poll (except_uuid, after_timestamp=0,
// summary=1) of an account holding 5,000 entries, benchGets times an iteration.

const (
	benchClients     = 16
	benchBatch       = 100
	benchPutRequests = 20
	benchGets        = 50
	benchUser        = "alice"
	benchPassword    = "bench-password-1"
)

// benchSession is one client that answered a challenge once and keeps its nonce.
type benchSession struct {
	c  *rt.Client
	ch rt.Challenge
	nc uint32
}

func newBenchSession(b *testing.B, s *apptest.Server) *benchSession {
	b.Helper()
	c := &rt.Client{URL: s.HTTPURL + "/settings.phtml", Username: benchUser, Password: benchPassword, HTTP: s.HTTP}
	resp, err := c.Send(context.Background(), rt.Request{Query: "action=get_history&realm=example.com"})
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		b.Fatalf("challenge: %v %v", err, resp)
	}
	return &benchSession{c: c, ch: rt.ParseChallenges(resp.Header)[0]}
}

func (bs *benchSession) do(req rt.Request) (*rt.Response, error) {
	bs.nc++
	req.Authorization = bs.c.Authorization(bs.ch, req.Method, bs.c.RequestURI(req.Query), bs.nc)
	resp, err := bs.c.Send(context.Background(), req)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %.200s", resp.StatusCode, resp.Body)
	}
	return resp, err
}

func startBench(b *testing.B, eng apptest.Engine) *apptest.Server {
	b.Helper()
	return apptest.Start(b, eng, nil, apptest.Account{
		Address: benchUser + "@example.com", Passwords: app.Passwords{SIP: benchPassword},
	})
}

// benchBlob is a blob of the size Blink makes for a short chat message.
func benchBlob(msgID string) string {
	return rt.Encrypt("Abc123Def456Ghi7", rt.NewEntry(msgID, "Hello Bob, see you at eight?", time.Unix(1764331200, 0)).JSON())
}

// putBodies makes the bodies of one round: per client, benchPutRequests forms
// of benchBatch fresh entries.
func putBodies(round int) [][][]byte {
	out := make([][][]byte, benchClients)
	for c := range out {
		for r := range benchPutRequests {
			items := make([]rt.Item, benchBatch)
			for i := range items {
				id := fmt.Sprintf("put-%d-%d-%d-%d", round, c, r, i)
				items[i] = rt.Item{ID: id, Data: benchBlob(id)}
			}
			body := rt.Form("uuid", fmt.Sprintf("urn:uuid:bench-%d", c), "data", rt.EntriesObject(items...))
			out[c] = append(out[c], []byte(body))
		}
	}
	return out
}

func BenchmarkJournalPut(b *testing.B) {
	for _, eng := range apptest.Engines {
		b.Run(eng.Name, func(b *testing.B) {
			s := startBench(b, eng)
			sessions := make([]*benchSession, benchClients)
			for i := range sessions {
				sessions[i] = newBenchSession(b, s)
			}
			var conn *pgx.Conn
			var accountID int64
			if eng.Name == "postgres" {
				var err error
				if conn, err = pgx.Connect(context.Background(), s.Config.DB); err != nil {
					b.Fatal(err)
				}
				defer conn.Close(context.Background())
				if err := conn.QueryRow(context.Background(), "SELECT id FROM accounts").Scan(&accountID); err != nil {
					b.Fatal(err)
				}
			}
			perRound := benchClients * benchPutRequests * benchBatch
			var putTime, copyTime time.Duration
			b.ResetTimer()
			for round := 0; b.Loop(); round++ {
				b.StopTimer()
				bodies := putBodies(round)
				b.StartTimer()

				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, benchClients)
				for c, bs := range sessions {
					wg.Go(func() {
						for _, body := range bodies[c] {
							resp, err := bs.do(rt.Request{Method: http.MethodPost, Query: "action=put_journal_entries&realm=example.com",
								Body: body, ContentType: "application/x-www-form-urlencoded"})
							if err == nil && len(resp.Body) < benchBatch*20 {
								err = fmt.Errorf("short answer: %s", resp.Body)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				putTime += time.Since(start)
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}

				if conn != nil {
					b.StopTimer()
					rows := copyRows(accountID, round, perRound)
					b.StartTimer()
					start = time.Now()
					n, err := conn.CopyFrom(context.Background(), pgx.Identifier{"journal"},
						[]string{"account_id", "device", "msg_id", "data", "data_hash", "ip", "ts"}, pgx.CopyFromRows(rows))
					if err != nil || n != int64(perRound) {
						b.Fatalf("CopyFrom: %d rows, %v", n, err)
					}
					copyTime += time.Since(start)
				}
			}
			entries := float64(b.N * perRound)
			b.ReportMetric(entries/putTime.Seconds(), "put-entries/s")
			if conn != nil {
				b.ReportMetric(entries/copyTime.Seconds(), "copy-entries/s")
				b.ReportMetric(copyTime.Seconds()/putTime.Seconds(), "put/copy")
			}
		})
	}
}

// copyRows makes n journal rows like those the puts store, with fresh msgids.
func copyRows(accountID int64, round, n int) [][]any {
	rows := make([][]any, n)
	ts := time.Now().Unix()
	for i := range rows {
		id := fmt.Sprintf("copy-%d-%d", round, i)
		data := benchBlob(id)
		sum := sha256.Sum256([]byte(data))
		rows[i] = []any{accountID, fmt.Sprintf("urn:uuid:bench-%d", i%benchClients), id, data, sum[:], "127.0.0.1", ts}
	}
	return rows
}

func BenchmarkJournalGet5000(b *testing.B) {
	for _, eng := range apptest.Engines {
		b.Run(eng.Name, func(b *testing.B) {
			s := startBench(b, eng)
			bs := newBenchSession(b, s)
			for r := range 50 {
				items := make([]rt.Item, benchBatch)
				for i := range items {
					id := fmt.Sprintf("get-%d-%d", r, i)
					items[i] = rt.Item{ID: id, Data: benchBlob(id)}
				}
				body := rt.Form("uuid", "urn:uuid:bench-writer", "data", rt.EntriesObject(items...))
				if _, err := bs.do(rt.Request{Method: http.MethodPost, Query: "action=put_journal_entries&realm=example.com",
					Body: []byte(body), ContentType: "application/x-www-form-urlencoded"}); err != nil {
					b.Fatal(err)
				}
			}
			query := "realm=example.com&action=get_journal_entries&except_uuid=urn:uuid:bench-reader&after_timestamp=0&summary=1"
			var times []time.Duration
			b.ResetTimer()
			for b.Loop() {
				for range benchGets {
					start := time.Now()
					resp, err := bs.do(rt.Request{Method: http.MethodGet, Query: query})
					times = append(times, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
					if len(resp.Body) < 5000*600 {
						b.Fatalf("answer of %d bytes is too short for 5,000 rows", len(resp.Body))
					}
				}
			}
			slices.Sort(times)
			pct := func(p float64) float64 {
				return float64(times[int(p*float64(len(times)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
