package pgstore

import (
	"slices"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// TestHistoryChunks checks that the ids appendHistory computes from the
// chunks, statement after statement, are those the flush answers with,
// and that the chunks keep their bounds and take counters in account
// order.
func TestHistoryChunks(t *testing.T) {
	t.Parallel()
	big := make([]byte, 1<<20)
	rows := func(content []byte, accounts ...int64) []store.HistoryRow {
		var out []store.HistoryRow
		for _, a := range accounts {
			out = append(out, store.HistoryRow{AccountID: a, Content: content})
		}
		return out
	}
	alternate := func(n int, accounts ...int64) []int64 {
		var out []int64
		for i := range n {
			out = append(out, accounts[i%len(accounts)])
		}
		return out
	}
	tests := []struct {
		name    string
		reqs    [][]store.HistoryRow
		missing map[int64]bool
		chunks  int
	}{
		{"one row", [][]store.HistoryRow{rows(nil, 1)}, nil, 1},
		{"several accounts", [][]store.HistoryRow{rows(nil, 3, 1, 2, 1), rows(nil, 2), rows(nil, 1, 3)}, nil, 1},
		{"a missing account", [][]store.HistoryRow{rows(nil, 3, 1), rows(nil, 2, 4), rows(nil, 4)}, map[int64]bool{4: true}, 1},
		{"every account missing", [][]store.HistoryRow{rows(nil, 4)}, map[int64]bool{4: true}, 0},
		{"rows", [][]store.HistoryRow{rows(nil, alternate(2500, 2, 1)...), rows(nil, alternate(1500, 3, 1)...)}, nil, 2},
		{"exactly the rows of a chunk", [][]store.HistoryRow{rows(nil, alternate(historyChunkRows, 1, 2)...)}, nil, 1},
		{"bytes", [][]store.HistoryRow{rows(big, alternate(40, 1, 2)...), rows(big, 1)}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs []engine.HistoryRequest
			for _, rs := range tt.reqs {
				r, err := engine.NewHistoryRequest(rs)
				if err != nil {
					t.Fatal(err)
				}
				reqs = append(reqs, r)
			}
			b := engine.NewHistoryBatch(reqs, tt.missing)
			chunks := historyChunks(b)
			if len(chunks) != tt.chunks {
				t.Errorf("%d chunks, want %d", len(chunks), tt.chunks)
			}
			// Run the chunks as appendHistory would, counters starting at 100.
			counter := map[int64]int64{1: 100, 2: 100, 3: 100}
			var prev int64
			var sqlIDs []int64 // in chunk order
			var sqlAccounts []int64
			for i, ch := range chunks {
				if len(ch.account) > historyChunkRows || len(ch.account) > 1 && ch.bytes > historyChunkBytes {
					t.Errorf("chunk %d: %d rows, %d bytes", i, len(ch.account), ch.bytes)
				}
				if !slices.IsSorted(ch.accounts) || len(ch.accounts) == 0 || ch.accounts[0] < prev {
					t.Errorf("chunk %d takes counters %v after %d", i, ch.accounts, prev)
				}
				prev = ch.accounts[len(ch.accounts)-1]
				for k, a := range ch.accounts {
					counter[a] += ch.counts[k]
				}
				for k, a := range ch.account {
					sqlIDs, sqlAccounts = append(sqlIDs, counter[a]-ch.back[k]), append(sqlAccounts, a)
				}
			}
			var want []int64 // the flush's answer, in the same order: by account, then input order
			var wantAccounts []int64
			type slot struct{ account, id int64 }
			var all []slot
			for _, r := range b.Results("test", counter, time.Time{}) {
				for _, row := range r.Rows {
					all = append(all, slot{row.AccountID, row.ID})
				}
			}
			slices.SortStableFunc(all, func(x, y slot) int { return int(x.account - y.account) })
			for _, s := range all {
				want, wantAccounts = append(want, s.id), append(wantAccounts, s.account)
			}
			if !slices.Equal(sqlIDs, want) || !slices.Equal(sqlAccounts, wantAccounts) {
				t.Errorf("ids taken by the statements %v (accounts %v), answered %v (accounts %v)", short(sqlIDs), short(sqlAccounts), short(want), short(wantAccounts))
			}
			for a, n := range b.Counts {
				if counter[a] != 100+n {
					t.Errorf("account %d: counter at %d, want %d", a, counter[a], 100+n)
				}
			}
		})
	}
}

func short(s []int64) []int64 { return s[:min(len(s), 20)] }
