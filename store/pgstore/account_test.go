package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/pgstore/pgtest"
)

// TestAccountDeleteLeavesNoRows deletes accounts while history appends and
// offline enqueues write for them. history and offline_messages have no
// foreign key to accounts (schema/postgres/0005_hot_paths.sql): whichever
// commits first, no row may outlive its account.
func TestAccountDeleteLeavesNoRows(t *testing.T) {
	t.Parallel()
	s, opts := openMigrated(t)
	ctx := t.Context()
	const rounds, writers = 20, 6
	for round := range rounds {
		a := store.Account{User: fmt.Sprintf("gone%d", round), Domain: "example.com", Credentials: []byte("sealed")}
		if err := s.AccountCreate(ctx, &a); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("w%d-%d", w, i)
					// Errors are expected once the account is gone.
					if w%2 == 0 {
						_, _ = s.HistoryAppend(ctx, []store.HistoryRow{{AccountID: a.ID, MessageID: id, Contact: "bob@example.com",
							Direction: "incoming", ContentType: "text/plain", Content: []byte(id), Timestamp: time.Now(), State: "received"}})
					} else {
						_, _ = s.OfflineEnqueue(ctx, store.OfflineEnqueueParams{Now: time.Now(), Message: store.OfflineMessage{
							AccountID: a.ID, Sender: "bob@example.com", From: "<sip:bob@example.com>", To: "<sip:" + a.Address() + ">",
							Date: "x", ContentType: "text/plain", Body: []byte(id), Key: id, ExpiresAt: time.Now().Add(time.Hour)}})
					}
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := s.AccountDelete(ctx, a.User, a.Domain); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // writes after the delete, too
		close(stop)
		wg.Wait()
	}

	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, table := range []string{"history", "offline_messages"} {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{opts.Schema, table}.Sanitize()).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s holds %d rows of deleted accounts", table, n)
		}
	}
}
