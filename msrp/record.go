package msrp

import (
	"context"
	"log/slog"
	"sync"
	"time"

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
	st      Recorder
	log     *slog.Logger
	metrics *metrics
	queue   chan store.MSRPSession
	done    chan struct{}

	mu     sync.RWMutex
	closed bool
}

func newRecorder(st Recorder, log *slog.Logger, m *metrics) *recorder {
	rc := &recorder{st: st, log: log, metrics: m, queue: make(chan store.MSRPSession, recordQueue), done: make(chan struct{})}
	go rc.run()
	return rc
}

func (rc *recorder) add(rec store.MSRPSession) {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	if rc.closed {
		rc.metrics.recordsDropped.Inc()
		return
	}
	select {
	case rc.queue <- rec:
	default:
		rc.metrics.recordsDropped.Inc()
	}
}

func (rc *recorder) run() {
	defer close(rc.done)
	batch := make([]store.MSRPSession, 0, recordBatch)
	linger := time.NewTimer(0)
	<-linger.C
	for rec := range rc.queue {
		batch = append(batch[:0], rec)
		linger.Reset(recordLinger)
	fill:
		for len(batch) < recordBatch {
			select {
			case rec, ok := <-rc.queue:
				if !ok {
					break fill
				}
				batch = append(batch, rec)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		if err := rc.st.MSRPSessionAppend(context.Background(), batch); err != nil {
			rc.metrics.recordsDropped.Add(float64(len(batch)))
			rc.log.Error("MSRP session records not written", "err", err, "records", len(batch))
		}
	}
}

// stop writes what is queued and ends the writer, or gives up at ctx.
func (rc *recorder) stop(ctx context.Context) error {
	rc.mu.Lock()
	if !rc.closed {
		rc.closed = true
		close(rc.queue)
	}
	rc.mu.Unlock()
	select {
	case <-rc.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
