package msrp

import (
	"context"
	"log/slog"
	"time"

	"github.com/cairn-chat/cairn/internal/behind"
	"github.com/cairn-chat/cairn/store"
)

// Session records wait in a queue of recordQueue and are written in batches
// of up to recordBatch, at most recordLinger after the first; when the store
// falls behind, new records are dropped and counted.
const (
	recordQueue  = 1 << 14
	recordBatch  = 512
	recordLinger = 100 * time.Millisecond
)

// recorder writes session records behind the traffic.
type recorder struct {
	metrics *metrics
	w       *behind.Writer[store.MSRPSession]
}

func newRecorder(st Recorder, log *slog.Logger, m *metrics) *recorder {
	write := func(batch []store.MSRPSession) {
		if err := st.MSRPSessionAppend(context.Background(), batch); err != nil {
			m.recordsDropped.Add(float64(len(batch)))
			log.Error("MSRP session records not written", "err", err, "records", len(batch))
		}
	}
	return &recorder{metrics: m, w: behind.New(recordQueue, recordBatch, recordLinger, write)}
}

func (rc *recorder) add(rec store.MSRPSession) {
	if !rc.w.TryAdd(rec) {
		rc.metrics.recordsDropped.Inc()
	}
}

// stop writes what is queued and ends the writer, or gives up at ctx.
func (rc *recorder) stop(ctx context.Context) error { return rc.w.Close(ctx) }
