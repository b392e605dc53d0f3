package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/internal/engine"
)

var traceColumns = []string{"at", "direction", "transport", "local", "remote", "call_id", "method", "status", "from_addr", "to_addr", "message"}

// TraceAppend stores the traces with one COPY, a transaction of its own. A
// batch with a trace that cannot be stored stores nothing.
func (s *Store) TraceAppend(ctx context.Context, ts []store.Trace) error {
	const op = "trace append"
	if err := s.checkOpen(op); err != nil {
		return err
	}
	if err := engine.CheckTraces(ts); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if len(ts) == 0 {
		return nil
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"sip_traces"}, traceColumns, pgx.CopyFromSlice(len(ts), func(i int) ([]any, error) {
		t := &ts[i]
		return []any{t.Time, t.Direction, t.Transport, t.Local, t.Remote, t.CallID, t.Method, int32(t.Status),
			t.FromAddr, t.ToAddr, engine.OrEmpty(t.Message)}, nil
	}))
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// TraceList returns the traces newer than q.Since with an id above
// q.AfterID, of q.Addr and of call q.CallID when they are set, in id order.
func (s *Store) TraceList(ctx context.Context, q store.TraceQuery) ([]store.Trace, error) {
	const op = "trace list"
	if err := engine.CheckTraceQuery(q); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	where, args := traceFilter(q)
	args = append(args, q.Limit)
	limit := "$" + strconv.Itoa(len(args))
	rows, _ := s.pool.Query(ctx, `SELECT id, at, direction, transport, local, remote, call_id, method, status, from_addr, to_addr, message
		FROM sip_traces WHERE `+where+` ORDER BY id LIMIT `+limit, args...)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Trace, error) {
		var t store.Trace
		var status int32
		err := row.Scan(&t.ID, &t.Time, &t.Direction, &t.Transport, &t.Local, &t.Remote, &t.CallID, &t.Method,
			&status, &t.FromAddr, &t.ToAddr, &t.Message)
		t.Time, t.Status = t.Time.UTC(), int(status)
		return t, err
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// traceFilter returns the condition of a TraceList and its parameters but
// the last, the limit. For an address, it takes the first traces from it
// and to it (from another: the index on To keeps only those), each along
// its own index, and keeps the union.
func traceFilter(q store.TraceQuery) (string, []any) {
	where := `id > $1 AND at > $2`
	args := []any{q.AfterID, q.Since}
	if q.CallID != "" {
		args = append(args, q.CallID)
		where += ` AND call_id = $3`
	}
	if q.Addr == "" {
		return where, args
	}
	args = append(args, q.Addr)
	addr, limit := "$"+strconv.Itoa(len(args)), "$"+strconv.Itoa(len(args)+1)
	return `id IN (
		SELECT id FROM (SELECT id FROM sip_traces WHERE from_addr = ` + addr + ` AND ` + where + ` ORDER BY id LIMIT ` + limit + `) AS f
		UNION
		SELECT id FROM (SELECT id FROM sip_traces WHERE to_addr = ` + addr + ` AND to_addr <> from_addr AND ` + where + ` ORDER BY id LIMIT ` + limit + `) AS t)`, args
}

// TracePurge removes the traces older than before and returns how many.
func (s *Store) TracePurge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sip_traces WHERE at < $1`, engine.CeilMicro(before))
	if err != nil {
		return 0, s.wrap("trace purge", err)
	}
	return tag.RowsAffected(), nil
}
