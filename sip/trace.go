package sip

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/internal/behind"
	"github.com/cairn-chat/cairn/store"
)

// Trace writing bounds: traces wait in a queue of traceQueue and are written
// in batches of up to traceBatch, at most traceLinger after the first. When
// the store falls behind and the queue is full, new traces are dropped and
// counted, so that signaling never waits for its own traces.
const (
	traceQueue  = 1 << 16
	traceBatch  = 1024
	traceLinger = 100 * time.Millisecond
)

// tracer writes SIP traces behind the traffic.
type tracer struct {
	now     func() time.Time
	metrics *metrics
	w       *behind.Writer[store.Trace]
}

func newTracer(st store.Traces, now func() time.Time, log *slog.Logger, m *metrics) *tracer {
	write := func(batch []store.Trace) {
		if err := st.TraceAppend(context.Background(), batch); err != nil {
			m.tracesDropped.Add(float64(len(batch)))
			log.Error("SIP traces not written", "err", err, "traces", len(batch))
		}
	}
	return &tracer{now: now, metrics: m, w: behind.New(traceQueue, traceBatch, traceLinger, write)}
}

// traceIn records a message the transport layer parsed.
func (s *Server) traceIn(msg sipmsg.Message) {
	s.tracer.add(msg, "in", msg.Transport(), msg.Source())
}

// out records a message cairn wrote to remote over transport.
func (t *tracer) out(msg sipmsg.Message, transport, remote string) {
	t.add(msg, "out", transport, remote)
}

// traceHeadroom is room for the start line and headers of a message.
const traceHeadroom = 1024

func (t *tracer) add(msg sipmsg.Message, dir, transport, remote string) {
	// Written once into a buffer sized for most messages: String would
	// grow a builder and then be copied.
	var wire bytes.Buffer
	wire.Grow(traceHeadroom + len(msg.Body()))
	msg.StringWrite(&wire)
	tr := store.Trace{
		Time:      t.now().UTC(),
		Direction: dir,
		Transport: transport,
		Remote:    remote,
		Message:   wire.Bytes(),
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
	if !t.w.TryAdd(tr) {
		t.metrics.tracesDropped.Inc()
	}
}

// stop writes what is queued and ends the writer, or gives up at ctx.
func (t *tracer) stop(ctx context.Context) error { return t.w.Close(ctx) }

func statusClass(code int) string {
	return strconv.Itoa(code/100) + "xx"
}
