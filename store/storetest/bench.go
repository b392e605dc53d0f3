package storetest

import (
	"fmt"
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
