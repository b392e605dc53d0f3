package history_test

import (
	"testing"
	"time"

	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/store"
)

// TestOutcomesWrittenBehind records outcomes from many goroutines, more
// than a batch and more than the queue holds, and closes the service at
// once: each is stored exactly once, and one recorded after Close too.
func TestOutcomesWrittenBehind(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{})
		alice := f.account("alice", "example.com")
		const senders, each = 8, 700
		done := make(chan struct{})
		for range senders {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := range each {
					code := 200
					if i%2 == 1 {
						code = 486
					}
					f.svc.Outcome(&alice, "bob@example.com", "m", start, code, "reason")
				}
			}()
		}
		for range senders {
			<-done
		}
		f.svc.Close()
		f.svc.Outcome(&alice, "bob@example.com", "last", start, 200, "OK")

		var rows []store.HistoryRow
		after := int64(0)
		for {
			page, err := f.st.HistoryList(t.Context(), store.HistoryQuery{AccountID: alice.ID, AfterID: after, Since: start.Add(-time.Hour), Limit: 5000})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			rows = append(rows, page...)
			after = page[len(page)-1].ID
		}
		if want := senders*each + 1; len(rows) != want {
			t.Fatalf("%d outcome rows stored, want %d", len(rows), want)
		}
		for i, r := range rows {
			if r.ID != int64(i+1) || r.Direction != "incoming" || r.Contact != "bob@example.com" {
				t.Fatalf("row %d: id %d, %s, %s", i, r.ID, r.Direction, r.Contact)
			}
		}
	})
}
