package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

var msrpSessionColumns = []string{"session", "account", "transport", "client", "peer", "started_at", "ended_at", "bytes_in", "bytes_out", "chunks", "ended"}

// MSRPSessionAppend stores the records with one COPY, a transaction of its
// own. A batch with a record that cannot be stored stores nothing.
func (s *Store) MSRPSessionAppend(ctx context.Context, rs []store.MSRPSession) error {
	const op = "msrp session append"
	if err := s.checkOpen(op); err != nil {
		return err
	}
	if err := engine.CheckMSRPSessions(rs); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if len(rs) == 0 {
		return nil
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"msrp_sessions"}, msrpSessionColumns, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
		r := &rs[i]
		return []any{r.Session, r.Account, r.Transport, r.Client, r.Peer, r.StartedAt, r.EndedAt,
			r.BytesIn, r.BytesOut, r.Chunks, r.Ended}, nil
	}))
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// MSRPSessionList returns the records that ended after q.Since with an id
// above q.AfterID, of q.Account when it is set, in id order.
func (s *Store) MSRPSessionList(ctx context.Context, q store.MSRPSessionQuery) ([]store.MSRPSession, error) {
	const op = "msrp session list"
	if err := engine.CheckMSRPSessionQuery(q); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	where, args := `id > $1 AND ended_at > $2`, []any{q.AfterID, q.Since, q.Limit}
	if q.Account != "" {
		where += ` AND account = $4`
		args = append(args, q.Account)
	}
	rows, _ := s.pool.Query(ctx, `SELECT id, session, account, transport, client, peer, started_at, ended_at, bytes_in, bytes_out, chunks, ended
		FROM msrp_sessions WHERE `+where+` ORDER BY id LIMIT $3`, args...)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.MSRPSession, error) {
		var r store.MSRPSession
		err := row.Scan(&r.ID, &r.Session, &r.Account, &r.Transport, &r.Client, &r.Peer, &r.StartedAt, &r.EndedAt,
			&r.BytesIn, &r.BytesOut, &r.Chunks, &r.Ended)
		r.StartedAt, r.EndedAt = r.StartedAt.UTC(), r.EndedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// MSRPSessionPurge removes the records that ended before before and returns
// how many.
func (s *Store) MSRPSessionPurge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM msrp_sessions WHERE ended_at < $1`, engine.CeilMicro(before))
	if err != nil {
		return 0, s.wrap("msrp session purge", err)
	}
	return tag.RowsAffected(), nil
}
