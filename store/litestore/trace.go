package litestore

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

// TraceAppend stores the traces in one transaction. A batch with a trace
// that cannot be stored stores nothing.
func (s *Store) TraceAppend(ctx context.Context, ts []store.Trace) error {
	const op = "trace append"
	if err := s.checkOpen(op); err != nil {
		return err
	}
	if err := engine.CheckTraces(ts); err != nil {
		return fmt.Errorf("litestore: %s: %w", op, err)
	}
	if len(ts) == 0 {
		return nil
	}
	if err := s.traceAppend(ctx, ts); err != nil {
		return s.wrap(op, err)
	}
	return nil
}

func (s *Store) traceAppend(ctx context.Context, ts []store.Trace) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO sip_traces
		(at, direction, transport, local, remote, call_id, method, status, from_addr, to_addr, message)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := insert.ExecContext(ctx, engine.Micro(t.Time), t.Direction, t.Transport, t.Local, t.Remote,
			t.CallID, t.Method, t.Status, t.FromAddr, t.ToAddr, engine.OrEmpty(t.Message)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// TraceList returns the traces newer than q.Since with an id above
// q.AfterID, of q.Addr and of call q.CallID when they are set, in id order.
func (s *Store) TraceList(ctx context.Context, q store.TraceQuery) ([]store.Trace, error) {
	const op = "trace list"
	if err := engine.CheckTraceQuery(q); err != nil {
		return nil, fmt.Errorf("litestore: %s: %w", op, err)
	}
	rows, err := s.query(ctx, `SELECT id, at, direction, transport, local, remote, call_id, method, status, from_addr, to_addr, message
		FROM sip_traces WHERE `+traceFilter(q)+` ORDER BY id LIMIT ?5`,
		q.AfterID, engine.Micro(q.Since), q.CallID, q.Addr, q.Limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []store.Trace
	for rows.Next() {
		var t store.Trace
		var at int64
		if err := rows.Scan(&t.ID, &at, &t.Direction, &t.Transport, &t.Local, &t.Remote, &t.CallID, &t.Method,
			&t.Status, &t.FromAddr, &t.ToAddr, &t.Message); err != nil {
			return nil, s.wrap(op, err)
		}
		t.Time = time.UnixMicro(at).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// traceFilter returns the condition of a TraceList, whose parameters are
// after id, since, call-id, address and limit. For an address, it takes
// the first traces from it and to it (from another: the index on To keeps
// only those), each along its own index, and keeps the union.
func traceFilter(q store.TraceQuery) string {
	where := `id > ?1 AND at > ?2`
	if q.CallID != "" {
		where += ` AND call_id = ?3`
	}
	if q.Addr == "" {
		return where
	}
	return `id IN (
		SELECT id FROM (SELECT id FROM sip_traces WHERE from_addr = ?4 AND ` + where + ` ORDER BY id LIMIT ?5)
		UNION
		SELECT id FROM (SELECT id FROM sip_traces WHERE to_addr = ?4 AND to_addr <> from_addr AND ` + where + ` ORDER BY id LIMIT ?5))`
}

// TracePurge removes the traces older than before and returns how many. It
// deletes in batches as JournalPurge does.
func (s *Store) TracePurge(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, "trace purge", `DELETE FROM sip_traces WHERE id IN (
		SELECT id FROM sip_traces WHERE at < ? LIMIT ?)`, engine.Micro(engine.CeilMicro(before)))
}
