package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/pgstore/pgtest"
)

// TestRegistrationRefreshInPlace refreshes one binding as re-REGISTERs do
// and checks that PostgreSQL updated it in place (HOT): no new index
// entries, no dead row for every read to step over
// (schema/postgres/0006_registrations_hot.sql).
func TestRegistrationRefreshInPlace(t *testing.T) {
	t.Parallel()
	s, opts := openMigrated(t)
	ctx := t.Context()
	a := store.Account{User: "alice", Domain: "example.com", Credentials: []byte("sealed")}
	if err := s.AccountCreate(ctx, &a); err != nil {
		t.Fatal(err)
	}
	const refreshes = 50
	start := time.Now()
	for i := range refreshes + 1 {
		r := store.Registration{AccountID: a.ID, Instance: "urn:uuid:1", Contact: "sip:alice@192.0.2.1:5060",
			Transport: "udp", Source: "192.0.2.1:5060", Node: "n1", CallID: "c1", CSeq: uint32(i + 1),
			Expires: start.Add(time.Hour + time.Duration(i)*time.Second)}
		if err := s.RegistrationPut(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	// A session reports its counts when it ends (when idle, only after 10 s).
	s.Close()
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var upd, hot int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		err := conn.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = $1::regclass`,
			pgx.Identifier{opts.Schema, "registrations"}.Sanitize()).Scan(&upd, &hot)
		if err != nil {
			t.Fatal(err)
		}
		if upd >= refreshes {
			break
		}
	}
	if upd < refreshes {
		t.Fatalf("PostgreSQL reported %d updates of %d", upd, refreshes)
	}
	if hot < upd*9/10 {
		t.Errorf("%d of %d refreshes were HOT updates, want nearly all", hot, upd)
	}
}
