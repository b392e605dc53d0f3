package litestore

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// MSRPSessionAppend stores the records in one transaction. A batch with a
// record that cannot be stored stores nothing.
func (s *Store) MSRPSessionAppend(ctx context.Context, rs []store.MSRPSession) error {
	const op = "msrp session append"
	if err := s.checkOpen(op); err != nil {
		return err
	}
	if err := engine.CheckMSRPSessions(rs); err != nil {
		return fmt.Errorf("litestore: %s: %w", op, err)
	}
	if len(rs) == 0 {
		return nil
	}
	if err := s.msrpSessionAppend(ctx, rs); err != nil {
		return s.wrap(op, err)
	}
	return nil
}

func (s *Store) msrpSessionAppend(ctx context.Context, rs []store.MSRPSession) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO msrp_sessions
		(session, account, transport, client, peer, started_at, ended_at, bytes_in, bytes_out, chunks, ended)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if _, err := insert.ExecContext(ctx, r.Session, r.Account, r.Transport, r.Client, r.Peer,
			engine.Micro(r.StartedAt), engine.Micro(r.EndedAt), r.BytesIn, r.BytesOut, r.Chunks, r.Ended); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// MSRPSessionList returns the records that ended after q.Since with an id
// above q.AfterID, of q.Account when it is set, in id order.
func (s *Store) MSRPSessionList(ctx context.Context, q store.MSRPSessionQuery) ([]store.MSRPSession, error) {
	const op = "msrp session list"
	if err := engine.CheckMSRPSessionQuery(q); err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	where := `id > ?1 AND ended_at > ?2`
	if q.Account != "" {
		where += ` AND account = ?3`
	}
	rows, err := s.query(ctx, `SELECT id, session, account, transport, client, peer, started_at, ended_at, bytes_in, bytes_out, chunks, ended
		FROM msrp_sessions WHERE `+where+` ORDER BY id LIMIT ?4`,
		q.AfterID, engine.Micro(q.Since), q.Account, q.Limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []store.MSRPSession
	for rows.Next() {
		var r store.MSRPSession
		var started, ended int64
		if err := rows.Scan(&r.ID, &r.Session, &r.Account, &r.Transport, &r.Client, &r.Peer, &started, &ended,
			&r.BytesIn, &r.BytesOut, &r.Chunks, &r.Ended); err != nil {
			return nil, s.wrap(op, err)
		}
		r.StartedAt, r.EndedAt = time.UnixMicro(started).UTC(), time.UnixMicro(ended).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// MSRPSessionPurge removes the records that ended before before and returns
// how many. It deletes in batches as JournalPurge does.
func (s *Store) MSRPSessionPurge(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, "msrp session purge", `DELETE FROM msrp_sessions WHERE id IN (
		SELECT id FROM msrp_sessions WHERE ended_at < ? LIMIT ?)`, engine.Micro(engine.CeilMicro(before)))
}
