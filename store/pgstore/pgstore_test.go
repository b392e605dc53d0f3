package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/schema"
	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/pgstore"
	"github.com/cairn-chat/cairn/store/pgstore/pgtest"
	"github.com/cairn-chat/cairn/store/storetest"
)

func TestConformance(t *testing.T) {
	pgtest.URL(t) // skip once, not in every subtest
	storetest.Run(t, func(t *testing.T, clock store.Clock) store.Store {
		return pgtest.Open(t, clock)
	})
}

func TestReopen(t *testing.T) {
	opts := pgtest.Options(t)
	opts.Migrate = true
	storetest.RunReopen(t, func(t *testing.T, clock store.Clock) store.Store {
		opts.Clock = clock
		s, err := open(t, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func BenchmarkJournalPut(b *testing.B) {
	storetest.BenchJournalPut(b, pgtest.Open(b, nil))
}

func BenchmarkOfflineEnqueue(b *testing.B) {
	storetest.BenchOfflineEnqueue(b, pgtest.Open(b, nil))
}

func BenchmarkHistoryList5000(b *testing.B) {
	storetest.BenchHistoryList5000(b, pgtest.Open(b, nil))
}

// open opens the store and closes it when t ends.
func open(t *testing.T, opts pgstore.Options) (*pgstore.Store, error) {
	t.Helper()
	s, err := pgstore.Open(t.Context(), opts)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// openMigrated opens a migrated store in a schema of its own, closed when
// t ends, and returns it with the options that opened it.
func openMigrated(t *testing.T) (*pgstore.Store, pgstore.Options) {
	t.Helper()
	opts := pgtest.Options(t)
	opts.Migrate = true
	s, err := open(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, opts
}

// exec runs sql in the test database.
func exec(t *testing.T, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	tests := []struct {
		name string
		opts pgstore.Options
	}{
		{"no URL", pgstore.Options{Migrate: true}},
		{"bad URL", pgstore.Options{URL: "postgres://%zz", Migrate: true}},
		{"no server", pgstore.Options{URL: "postgres://postgres@127.0.0.1:1/test?connect_timeout=5", Migrate: true}},
		{"missing schema", pgstore.Options{URL: url, Schema: "cairn_test_missing", Migrate: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := open(t, tt.opts); err == nil {
				t.Errorf("Open succeeded, want an error")
			}
		})
	}
}

func TestOpenSchemaOld(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	if _, err := open(t, opts); !errors.Is(err, store.ErrSchemaOld) {
		t.Fatalf("Open of an empty schema without Migrate = %v, want ErrSchemaOld", err)
	}
	inspectOpts := opts
	inspectOpts.Inspect = true
	inspect, err := open(t, inspectOpts)
	if err != nil {
		t.Fatalf("Open with Inspect: %v", err)
	}
	if status, err := inspect.MigrateStatus(t.Context()); err != nil || len(status) == 0 || !status[0].AppliedAt.IsZero() {
		t.Fatalf("MigrateStatus with Inspect = %v, %v; want version 1 pending", status, err)
	}
	opts.Migrate = true
	if _, err := open(t, opts); err != nil {
		t.Fatalf("Open with Migrate: %v", err)
	}
	opts.Migrate = false
	s, err := open(t, opts)
	if err != nil {
		t.Fatalf("Open of a migrated schema without Migrate: %v", err)
	}
	status, err := s.MigrateStatus(t.Context())
	if err != nil || len(status) == 0 || slices.ContainsFunc(status, func(m store.Migration) bool { return m.AppliedAt.IsZero() }) {
		t.Errorf("MigrateStatus = %+v, %v; want every migration applied", status, err)
	}
}

func TestOpenSchemaTooNew(t *testing.T) {
	t.Parallel()
	s, opts := openMigrated(t)
	exec(t, `INSERT INTO `+pgx.Identifier{opts.Schema, "schema_migrations"}.Sanitize()+` (version, name, applied_at) VALUES (999, 'future', now())`)

	if _, err := s.MigrateStatus(t.Context()); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("MigrateStatus = %v, want ErrSchemaTooNew", err)
	}
	if _, err := s.MigrateUp(t.Context()); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("MigrateUp = %v, want ErrSchemaTooNew", err)
	}
	for _, migrate := range []bool{false, true} {
		opts.Migrate = migrate
		_, err := open(t, opts)
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Open(Migrate: %t) = %v, want ErrSchemaTooNew", migrate, err)
		}
		if tooNew, ok := errors.AsType[*schema.TooNewError](err); !ok || !slices.Equal(tooNew.Unknown, []int{999}) {
			t.Errorf("Open(Migrate: %t) = %v, want a TooNewError naming version 999", migrate, err)
		}
	}
}

// TestOpenConcurrent starts several nodes on one new schema at once: each
// migration must be applied once, and every node must start.
func TestOpenConcurrent(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if _, err := open(t, opts); err != nil {
				t.Errorf("Open: %v", err)
			}
		})
	}
	wg.Wait()
	s, err := open(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	status, err := s.MigrateStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range status {
		if m.AppliedAt.IsZero() || m.AppliedAt.After(time.Now()) {
			t.Errorf("migration %+v, want it applied", m)
		}
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestJournalPutNodes runs two nodes on one database whose writers put the
// same items at once, each in an order of its own: each item must be stored
// once, every writer must get its id, and the nodes must not deadlock.
func TestJournalPutNodes(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	nodes, a := twoNodes(t, opts)
	const writers, rounds, items = 16, 20, 20 // writers alternate between the nodes
	var mu sync.Mutex
	ids := map[string]int64{} // by msgid
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for r := range rounds {
				p := store.JournalPutParams{AccountID: a.ID, Device: "d1"}
				for _, i := range rng.Perm(items) {
					m := fmt.Sprintf("r%d-i%d", r, i)
					p.Items = append(p.Items, store.JournalItem{MsgID: m, Data: m})
				}
				got, err := nodes[w%2].JournalPut(t.Context(), p)
				if err != nil {
					t.Errorf("writer %d round %d: JournalPut: %v", w, r, err)
					return
				}
				mu.Lock()
				for i, it := range p.Items {
					if prev, ok := ids[it.MsgID]; ok && prev != got[i] {
						t.Errorf("writer %d: %s got id %d, another writer %d", w, it.MsgID, got[i], prev)
					}
					ids[it.MsgID] = got[i]
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rows, err := nodes[1].JournalList(t.Context(), store.JournalQuery{AccountID: a.ID, Limit: 2 * rounds * items})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != rounds*items {
		t.Errorf("%d rows stored, want %d", len(rows), rounds*items)
	}
	for _, r := range rows {
		if ids[r.MsgID] != r.ID {
			t.Errorf("row %d holds %s, whose id is %d", r.ID, r.MsgID, ids[r.MsgID])
		}
	}
}

// TestJournalPutAccountDelete deletes an account while puts to it and to
// another account share commits: puts to the other account must succeed,
// those to the deleted one succeed or fail with ErrNotFound, and none of the
// deleted account's rows may remain.
func TestJournalPutAccountDelete(t *testing.T) {
	t.Parallel()
	s := pgtest.Open(t, nil)
	gone := store.Account{User: "gone", Domain: "example.com"}
	kept := store.Account{User: "kept", Domain: "example.com"}
	for _, a := range []*store.Account{&gone, &kept} {
		if err := s.AccountCreate(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	const writers, calls, items = 8, 20, 10
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				if w == 0 && c == calls/2 {
					if err := s.AccountDelete(t.Context(), gone.User, gone.Domain); err != nil {
						t.Errorf("AccountDelete: %v", err)
					}
				}
				for _, a := range []store.Account{gone, kept} {
					p := store.JournalPutParams{AccountID: a.ID, Device: fmt.Sprintf("d%d", w)}
					for i := range items {
						p.Items = append(p.Items, store.JournalItem{MsgID: fmt.Sprintf("c%d-i%d", c, i), Data: "x"})
					}
					_, err := s.JournalPut(t.Context(), p)
					switch {
					case a.ID == gone.ID && errors.Is(err, store.ErrNotFound):
						refused.Add(1)
					case err != nil:
						t.Errorf("writer %d: JournalPut to %s: %v", w, a.User, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() == 0 {
		t.Errorf("no put to the deleted account was refused")
	}
	for _, tt := range []struct {
		a    store.Account
		want int
	}{{gone, 0}, {kept, writers * calls * items}} {
		rows, err := s.JournalList(t.Context(), store.JournalQuery{AccountID: tt.a.ID, Limit: 2 * writers * calls * items})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != tt.want {
			t.Errorf("account %s holds %d rows, want %d", tt.a.User, len(rows), tt.want)
		}
	}
}

// TestJournalPutNodesExpired runs two nodes whose writers all offer, at
// once, items identical to expired rows: each row must be replaced once,
// and every writer must get the id of the new row.
func TestJournalPutNodesExpired(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	clock := storetest.NewClock(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC))
	opts.Clock = clock.Now
	nodes, a := twoNodes(t, opts)
	const writers, items = 16, 50
	p := store.JournalPutParams{AccountID: a.ID, Device: "d1"}
	for i := range items {
		p.Items = append(p.Items, store.JournalItem{MsgID: fmt.Sprint(i), Data: "x"})
	}
	old, err := nodes[0].JournalPut(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	since := clock.Now().Add(-time.Minute)

	var mu sync.Mutex
	ids := map[string]int64{} // by msgid
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			q := store.JournalPutParams{AccountID: a.ID, Device: "d1", Since: since}
			for _, i := range rand.New(rand.NewPCG(uint64(w), 2)).Perm(items) {
				q.Items = append(q.Items, p.Items[i])
			}
			got, err := nodes[w%2].JournalPut(t.Context(), q)
			if err != nil {
				t.Errorf("writer %d: JournalPut: %v", w, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for i, it := range q.Items {
				if prev, ok := ids[it.MsgID]; ok && prev != got[i] {
					t.Errorf("writer %d: %s got id %d, another writer %d", w, it.MsgID, got[i], prev)
				}
				ids[it.MsgID] = got[i]
			}
		})
	}
	wg.Wait()
	rows, err := nodes[1].JournalList(t.Context(), store.JournalQuery{AccountID: a.ID, Limit: 2 * items})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != items {
		t.Errorf("%d rows stored, want %d", len(rows), items)
	}
	for _, r := range rows {
		if ids[r.MsgID] != r.ID || slices.Contains(old, r.ID) {
			t.Errorf("row %d holds %s, whose id is %d; the expired rows were %v", r.ID, r.MsgID, ids[r.MsgID], old)
		}
	}
}

// TestHistoryNodes runs history appends and cursor readers on three
// nodes sharing one database: ids must rise in commit order per account,
// so that no reader passes over a row.
func TestHistoryNodes(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	var nodes []store.Store
	for range 3 {
		s, err := open(t, opts)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, s)
	}
	storetest.HistoryNodes(t, nodes)
}

// TestHistoryAccountDelete deletes an account while appends to it and to
// another account share commits on two nodes: appends to the other
// account must succeed, those to the deleted one succeed or fail with
// ErrNotFound, and none of the deleted account's rows may remain.
func TestHistoryAccountDelete(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	nodes, gone := twoNodes(t, opts)
	kept := store.Account{User: "kept", Domain: "example.com"}
	if err := nodes[0].AccountCreate(t.Context(), &kept); err != nil {
		t.Fatal(err)
	}
	const writers, calls = 8, 20
	var refused, stored atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				if w == 0 && c == calls/2 {
					if err := nodes[0].AccountDelete(t.Context(), gone.User, gone.Domain); err != nil {
						t.Errorf("AccountDelete: %v", err)
					}
				}
				row := func(a int64) store.HistoryRow {
					return store.HistoryRow{AccountID: a, MessageID: fmt.Sprintf("w%d-c%d", w, c), Content: []byte("x")}
				}
				// One append to both accounts, one to each.
				for _, rows := range [][]store.HistoryRow{{row(kept.ID), row(gone.ID)}, {row(gone.ID)}, {row(kept.ID)}} {
					_, err := nodes[(w+c)%2].HistoryAppend(t.Context(), rows)
					switch {
					case rows[len(rows)-1].AccountID == gone.ID && errors.Is(err, store.ErrNotFound):
						refused.Add(1)
					case err != nil:
						t.Errorf("writer %d: HistoryAppend: %v", w, err)
					case len(rows) == 1 && rows[0].AccountID == kept.ID:
						stored.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() == 0 {
		t.Errorf("no append to the deleted account was refused")
	}
	for _, tt := range []struct {
		a   store.Account
		min int64
	}{{gone, 0}, {kept, stored.Load()}} {
		rows, err := nodes[1].HistoryList(t.Context(), store.HistoryQuery{AccountID: tt.a.ID, Limit: 10 * writers * calls})
		if err != nil {
			t.Fatal(err)
		}
		if tt.a.ID == gone.ID && len(rows) != 0 || int64(len(rows)) < tt.min {
			t.Errorf("account %s holds %d rows, want %d or more (none for the deleted one)", tt.a.User, len(rows), tt.min)
		}
	}
}

// twoNodes opens two stores on one schema, as two cairn nodes sharing a
// database, with the account alice@example.com.
func twoNodes(t *testing.T, opts pgstore.Options) ([2]*pgstore.Store, store.Account) {
	t.Helper()
	var nodes [2]*pgstore.Store
	for i := range nodes {
		s, err := open(t, opts)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = s
	}
	a := store.Account{User: "alice", Domain: "example.com"}
	if err := nodes[0].AccountCreate(t.Context(), &a); err != nil {
		t.Fatal(err)
	}
	return nodes, a
}

// TestOfflineEnqueueNodes runs two nodes on one database whose writers
// enqueue to one account at once: the nodes together must not pass its
// quota, and a message sent to both must be stored once.
func TestOfflineEnqueueNodes(t *testing.T) {
	t.Parallel()
	opts := pgtest.Options(t)
	opts.Migrate = true
	nodes, a := twoNodes(t, opts)
	const writers, maxCount = 50, 10
	var passed, stored atomic.Int64
	ids := make([]int64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			now := time.Now()
			m := store.OfflineMessage{AccountID: a.ID, Sender: "bob@example.com", Key: fmt.Sprint(w), Body: []byte("hi"), ExpiresAt: now.Add(time.Hour)}
			_, err := nodes[w%2].OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{Message: m, Now: now, MaxCount: maxCount})
			switch {
			case err == nil:
				passed.Add(1)
			case !errors.Is(err, store.ErrQuota):
				t.Errorf("writer %d: OfflineEnqueue = %v, want nil or ErrQuota", w, err)
			}
			m.Key, m.Sender = "same", "carol@example.com"
			res, err := nodes[w%2].OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{Message: m, Now: now})
			if err != nil {
				t.Errorf("writer %d: OfflineEnqueue: %v", w, err)
				return
			}
			ids[w] = res.ID
			if !res.Duplicate {
				stored.Add(1)
			}
		})
	}
	wg.Wait()
	if passed.Load() != maxCount {
		t.Errorf("%d enqueues passed a quota of %d", passed.Load(), maxCount)
	}
	if stored.Load() != 1 || slices.ContainsFunc(ids, func(id int64) bool { return id != ids[0] }) {
		t.Errorf("the shared message was stored %d times, with ids %v; want once, one id", stored.Load(), ids)
	}
	owed, err := nodes[1].OfflinePending(t.Context(), store.OfflinePendingQuery{AccountID: a.ID, Instance: "d1", Now: time.Now(), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(owed) != maxCount+1 {
		t.Errorf("%d messages stored, want %d", len(owed), maxCount+1)
	}
}

// TestOfflineEnqueueAccountDelete deletes an account while enqueues to it
// and to another account share commits: those to the other account must
// succeed, those to the deleted one succeed or fail with ErrNotFound, and
// none of the deleted account's messages may remain.
func TestOfflineEnqueueAccountDelete(t *testing.T) {
	t.Parallel()
	s := pgtest.Open(t, nil)
	gone := store.Account{User: "gone", Domain: "example.com"}
	kept := store.Account{User: "kept", Domain: "example.com"}
	for _, a := range []*store.Account{&gone, &kept} {
		if err := s.AccountCreate(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	const writers, calls = 8, 20
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				if w == 0 && c == calls/2 {
					if err := s.AccountDelete(t.Context(), gone.User, gone.Domain); err != nil {
						t.Errorf("AccountDelete: %v", err)
					}
				}
				for _, a := range []store.Account{gone, kept} {
					now := time.Now()
					m := store.OfflineMessage{AccountID: a.ID, Sender: "bob@example.com", Key: fmt.Sprintf("w%d-c%d", w, c), ExpiresAt: now.Add(time.Hour)}
					_, err := s.OfflineEnqueue(t.Context(), store.OfflineEnqueueParams{Message: m, Now: now, MaxCount: 1000, Delivered: []string{"d2"}})
					switch {
					case a.ID == gone.ID && errors.Is(err, store.ErrNotFound):
						refused.Add(1)
					case err != nil:
						t.Errorf("writer %d: OfflineEnqueue to %s: %v", w, a.User, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() == 0 {
		t.Errorf("no enqueue to the deleted account was refused")
	}
	for _, tt := range []struct {
		a    store.Account
		want int
	}{{gone, 0}, {kept, writers * calls}} {
		owed, err := s.OfflinePending(t.Context(), store.OfflinePendingQuery{AccountID: tt.a.ID, Instance: "d1", Limit: 2 * writers * calls})
		if err != nil {
			t.Fatal(err)
		}
		if len(owed) != tt.want {
			t.Errorf("account %s holds %d messages, want %d", tt.a.User, len(owed), tt.want)
		}
	}
}
