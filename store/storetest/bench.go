package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// BenchJournalPut measures puts of 100 items each from 8 goroutines per CPU,
// the load that group commit is for. s must be empty.
func BenchJournalPut(b *testing.B, s store.Store) {
	const items = 100
	a := store.Account{User: "alice", Domain: "example.com"}
	if err := s.AccountCreate(b.Context(), &a); err != nil {
		b.Fatal(err)
	}
	data := blob(384) // about 520 bytes: a short message, encrypted
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			p := store.JournalPutParams{AccountID: a.ID, Device: fmt.Sprintf("d%d", n%16), IP: "192.0.2.1"}
			for i := range items {
				p.Items = append(p.Items, store.JournalItem{MsgID: fmt.Sprintf("m%d-%d", n, i), Data: data})
			}
			if _, err := s.JournalPut(b.Context(), p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*items)/b.Elapsed().Seconds(), "rows/s")
}

// BenchOfflineEnqueue measures single-message enqueues from many
// goroutines at once, the load that group commit is for: one operation is
// 8,192 enqueues spread over the callers, to 1,024 recipients, each with a
// quota to check, one in four taken by a device already. It reports
// enqueues/s. s must be empty.
func BenchOfflineEnqueue(b *testing.B, s store.Store) {
	const recipients, perOp = 1024, 8192
	accounts := make([]int64, recipients)
	for i := range accounts {
		a := store.Account{User: fmt.Sprintf("u%d", i), Domain: "example.com"}
		if err := s.AccountCreate(b.Context(), &a); err != nil {
			b.Fatal(err)
		}
		accounts[i] = a.ID
	}
	body := []byte(strings.Repeat("A short message, as people send them. ", 4)) // 152 bytes
	var seq atomic.Int64
	for _, callers := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			for b.Loop() {
				var wg sync.WaitGroup
				for range callers {
					wg.Go(func() {
						for range perOp / callers {
							n := seq.Add(1)
							now := time.Now()
							p := store.OfflineEnqueueParams{
								Message: store.OfflineMessage{
									AccountID: accounts[n%recipients], Sender: "sender@example.com",
									From: "<sip:sender@example.com>", To: "<sip:recipient@example.com>",
									Date: now.UTC().Format(time.RFC1123), ContentType: "text/plain",
									Body: body, Key: fmt.Sprintf("call-%d@192.0.2.1 1", n), ExpiresAt: now.Add(30 * 24 * time.Hour),
								},
								MaxCount: 10000, MaxBytes: 10 << 20, Now: now,
							}
							if n%4 == 0 {
								p.Delivered = []string{"urn:uuid:00000000-0000-0000-0000-000000000001"}
							}
							if _, err := s.OfflineEnqueue(b.Context(), p); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "enqueues/s")
		})
	}
}

// BenchHistoryList5000 measures HistoryList of 5,000 rows, the most a
// client syncs at once, of one account whose rows lie among those of
// three others (20,000 rows in all, appended 100 per account at a time),
// each with 600 bytes of incompressible content, about a short PGP
// message. Each operation is one list, with a retention cutoff as the
// callers pass one; it reports the p50 and p99 latency in ms. s must be
// empty.
func BenchHistoryList5000(b *testing.B, s store.Store) {
	const rows, others, perAppend = 5000, 3, 100
	var accounts []int64
	for i := range 1 + others {
		a := store.Account{User: fmt.Sprintf("u%d", i), Domain: "example.com"}
		if err := s.AccountCreate(b.Context(), &a); err != nil {
			b.Fatal(err)
		}
		accounts = append(accounts, a.ID)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	content := make([]byte, 600)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	for i := 0; i < rows; i += perAppend {
		var batch []store.HistoryRow
		for _, a := range accounts {
			for j := range perAppend {
				r := historyRow(a, fmt.Sprintf("%08x-%d", rng.Uint32(), i+j))
				r.Content, r.Timestamp = content, time.Now()
				batch = append(batch, r)
			}
		}
		if _, err := s.HistoryAppend(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	q := store.HistoryQuery{AccountID: accounts[0], Since: time.Now().Add(-60 * 24 * time.Hour), Limit: rows}
	list := func() {
		got, err := s.HistoryList(b.Context(), q)
		if err != nil || len(got) != rows {
			b.Fatalf("HistoryList = %d rows, %v; want %d", len(got), err, rows)
		}
	}
	list() // as a server that has run a while: the first read of new rows writes hint bits
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		list()
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	at := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
