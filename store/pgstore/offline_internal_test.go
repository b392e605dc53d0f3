package pgstore

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// TestPlanEnqueues checks the decisions a flush takes without the database:
// each request must see what the requests before it in the batch did.
func TestPlanEnqueues(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	// req is one enqueue to account 1 (2 is missing) from s@x.
	type req struct {
		account   int64
		key       string
		now       time.Time
		expires   time.Time
		size      int
		maxCount  int
		maxBytes  int64
		delivered []string
	}
	type stored struct {
		id      int64
		expires time.Time
		size    int64
	}
	tests := []struct {
		name   string
		reqs   []req
		stored map[int]stored // the stored message with request i's key
		usage  map[int][2]int64
		want   []string // per request: "id N", "dup N", "quota", "missing"
		insert []int
		delete []int64
	}{
		{
			name: "missing account",
			reqs: []req{{account: 2, key: "a", now: t0, expires: at(60)}, {account: 1, key: "b", now: t0, expires: at(60)}},
			want: []string{"missing", "id 100"}, insert: []int{1},
		},
		{
			name: "same key twice in a batch",
			reqs: []req{{account: 1, key: "a", now: t0, expires: at(60)}, {account: 1, key: "a", now: t0, expires: at(60)}},
			want: []string{"id 100", "dup 100"}, insert: []int{0},
		},
		{
			name:   "stored before",
			reqs:   []req{{account: 1, key: "a", now: t0, expires: at(60)}},
			stored: map[int]stored{0: {7, at(30), 10}},
			want:   []string{"dup 7"},
		},
		{
			name:   "stored before, expired",
			reqs:   []req{{account: 1, key: "a", now: at(31), expires: at(90)}},
			stored: map[int]stored{0: {7, at(30), 10}},
			want:   []string{"id 100"}, insert: []int{0}, delete: []int64{7},
		},
		{
			name: "quota shared by a batch",
			reqs: []req{
				{account: 1, key: "a", now: t0, expires: at(60), maxCount: 3},
				{account: 1, key: "b", now: t0, expires: at(60), maxCount: 3},
				{account: 1, key: "c", now: t0, expires: at(60), maxCount: 3},
			},
			usage: map[int][2]int64{0: {1, 0}, 1: {1, 0}, 2: {1, 0}},
			want:  []string{"id 100", "id 101", "quota"}, insert: []int{0, 1},
		},
		{
			name: "bytes shared by a batch",
			reqs: []req{
				{account: 1, key: "a", now: t0, expires: at(60), size: 60, maxBytes: 100},
				{account: 1, key: "b", now: t0, expires: at(60), size: 41, maxBytes: 100},
				{account: 1, key: "c", now: t0, expires: at(60), size: 40, maxBytes: 100},
			},
			want: []string{"id 100", "quota", "id 101"}, insert: []int{0, 2},
		},
		{
			name: "a message of the batch expired at a later request's now",
			reqs: []req{
				{account: 1, key: "a", now: t0, expires: at(1), maxCount: 1},
				{account: 1, key: "b", now: at(2), expires: at(60), maxCount: 1},
			},
			want: []string{"id 100", "id 101"}, insert: []int{0, 1},
		},
		{
			name: "a message of the batch replaced by a later request",
			reqs: []req{
				{account: 1, key: "a", now: t0, expires: at(1), delivered: []string{"d1"}},
				{account: 1, key: "a", now: at(2), expires: at(60), maxCount: 1},
				{account: 1, key: "b", now: t0, expires: at(60), maxCount: 2},
			},
			// At t0 the replaced message would count, but it is gone.
			want: []string{"id 100", "id 101", "id 102"}, insert: []int{1, 2},
		},
		{
			name: "a stored message replaced, counted at an earlier now",
			reqs: []req{
				{account: 1, key: "a", now: at(10), expires: at(60), maxCount: 1},
				{account: 1, key: "b", now: t0, expires: at(60), maxCount: 2},
			},
			stored: map[int]stored{0: {7, at(5), 10}},
			usage:  map[int][2]int64{0: {0, 0}, 1: {1, 10}},
			want:   []string{"id 100", "id 101"}, insert: []int{0, 1}, delete: []int64{7},
		},
		{
			name:   "duplicate at the quota",
			reqs:   []req{{account: 1, key: "a", now: t0, expires: at(60), maxCount: 1}},
			stored: map[int]stored{0: {7, at(30), 10}},
			usage:  map[int][2]int64{0: {1, 10}},
			want:   []string{"dup 7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batch []engine.EnqueueRequest
			for _, r := range tt.reqs {
				p := store.OfflineEnqueueParams{
					Message: store.OfflineMessage{AccountID: r.account, Sender: "s@x", Key: r.key, Body: make([]byte, r.size), ExpiresAt: r.expires},
					Now:     r.now, MaxCount: r.maxCount, MaxBytes: r.maxBytes, Delivered: r.delivered,
				}
				req, err := engine.NewEnqueueRequest(p)
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, req)
			}
			in := enqueueState{found: map[int64]bool{1: true}, stored: make([]*storedMessage, len(batch)), usage: make([][2]int64, len(batch))}
			for i := range batch {
				in.ids = append(in.ids, int64(100+i))
				if u, ok := tt.usage[i]; ok {
					in.usage[i] = u
				}
				if m, ok := tt.stored[i]; ok {
					in.stored[i] = &storedMessage{id: m.id, expires: m.expires, size: m.size, req: -1}
				}
			}
			p := planEnqueues(batch, in)
			var got []string
			for _, r := range p.res {
				switch {
				case errors.Is(r.Err, store.ErrQuota):
					got = append(got, "quota")
				case errors.Is(r.Err, store.ErrNotFound):
					got = append(got, "missing")
				case r.Err != nil:
					got = append(got, r.Err.Error())
				case r.Res.Duplicate:
					got = append(got, fmt.Sprintf("dup %d", r.Res.ID))
				default:
					got = append(got, fmt.Sprintf("id %d", r.Res.ID))
				}
			}
			if !slices.Equal(got, tt.want) || !slices.Equal(p.insert, tt.insert) || !slices.Equal(p.delete, tt.delete) {
				t.Errorf("plan: results %v, insert %v, delete %v; want %v, %v, %v", got, p.insert, p.delete, tt.want, tt.insert, tt.delete)
			}
		})
	}
}
