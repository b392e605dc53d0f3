package sip

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/store"
)

// Trace writing bounds: traces wait in a queue of traceQueue and are written
// in batches of up to traceBatch, at most traceLinger after the first. When the store falls behind and the queue
// is full, new traces are dropped and counted, so that signaling never
// waits for its own traces.
const (
	traceQueue  = 1 << 16
	traceBatch  = 1024
	traceLinger = 100 * time.Millisecond
)

// tracer writes SIP traces behind the traffic.
type tracer struct {
	st      store.Traces
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	queue   chan store.Trace
	done    chan struct{}

	// mu guards closed: sipgo may still hand over messages while the
	// server stops, and the queue closes only once.
	mu     sync.RWMutex
	closed bool
}

func newTracer(st store.Traces, now func() time.Time, log *slog.Logger, m *metrics) *tracer {
	t := &tracer{st: st, now: now, log: log, metrics: m, queue: make(chan store.Trace, traceQueue), done: make(chan struct{})}
	go t.run()
	return t
}

// traceIn records a message the transport layer parsed.
func (s *Server) traceIn(msg sipmsg.Message) {
	s.tracer.add(msg, "in", msg.Transport(), msg.Source())
}

// out records a message cairn wrote to remote over transport.
func (t *tracer) out(msg sipmsg.Message, transport, remote string) {
	t.add(msg, "out", transport, remote)
}

func (t *tracer) add(msg sipmsg.Message, dir, transport, remote string) {
	tr := store.Trace{
		Time:      t.now().UTC(),
		Direction: dir,
		Transport: transport,
		Remote:    remote,
		Message:   []byte(msg.String()),
	}
	if h := msg.CallID(); h != nil {
		tr.CallID = h.Value()
	}
	switch m := msg.(type) {
	case *sipmsg.Request:
		tr.Method = string(m.Method)
	case *sipmsg.Response:
		tr.Status = m.StatusCode
		if h := m.CSeq(); h != nil {
			tr.Method = string(h.MethodName)
		}
	}
	if h := msg.From(); h != nil {
		tr.FromAddr = addrOf(&h.Address)
	}
	if h := msg.To(); h != nil {
		tr.ToAddr = addrOf(&h.Address)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		t.metrics.tracesDropped.Inc()
		return
	}
	select {
	case t.queue <- tr:
	default:
		t.metrics.tracesDropped.Inc()
	}
}

// run writes queued traces in batches until stop closes the queue. A
// batch is written when it is full or traceLinger after its first trace:
// under light traffic that costs one commit per traceLinger, not one per
// message.
func (t *tracer) run() {
	defer close(t.done)
	batch := make([]store.Trace, 0, traceBatch)
	linger := time.NewTimer(0)
	<-linger.C
	for tr := range t.queue {
		batch = append(batch[:0], tr)
		linger.Reset(traceLinger)
	fill:
		for len(batch) < traceBatch {
			select {
			case tr, ok := <-t.queue:
				if !ok {
					break fill
				}
				batch = append(batch, tr)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		if err := t.st.TraceAppend(context.Background(), batch); err != nil {
			t.metrics.tracesDropped.Add(float64(len(batch)))
			t.log.Error("SIP traces not written", "err", err, "traces", len(batch))
		}
	}
}

// stop writes what is queued and ends the writer, or gives up at ctx.
func (t *tracer) stop(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.queue)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func statusClass(code int) string {
	return strconv.Itoa(code/100) + "xx"
}
