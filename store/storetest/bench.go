package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"

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
