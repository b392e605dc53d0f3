package history

import (
	"context"
	"time"

	"github.com/cairn-chat/cairn/store"
)

// Rows written behind the answer they record (Outcome) wait at most
// laterLinger and are committed laterBatch at a time: under load that is
// one commit for many answers instead of one each. A crash loses the rows
// still queued (normally those of the last laterLinger); no answer waited
// for them.
const (
	laterQueue  = 4096
	laterBatch  = 256
	laterLinger = 20 * time.Millisecond
	laterWrite  = 10 * time.Second // bound of one batch's commit
)

// later is the writer of the rows that may wait.
type later struct {
	rows chan store.HistoryRow
	done chan struct{}
}

// appendLater queues row for the writer, which it starts on first use.
// When the queue is full it waits for room; once the service is closed it
// appends row at once.
func (s *Service) appendLater(row store.HistoryRow) {
	s.laterMu.RLock()
	defer s.laterMu.RUnlock()
	if s.laterClosed {
		ctx, cancel := context.WithTimeout(context.Background(), laterWrite)
		defer cancel()
		if _, err := s.Append(ctx, row); err != nil {
			s.log.Error("history rows not written", "err", err, "rows", 1)
		}
		return
	}
	s.laterOnce.Do(func() {
		s.later = &later{rows: make(chan store.HistoryRow, laterQueue), done: make(chan struct{})}
		go s.writeLater(s.later)
	})
	s.later.rows <- row
}

// writeLater appends queued rows in batches until closeLater closes the
// queue. A batch is written when it is full or laterLinger after its first
// row.
func (s *Service) writeLater(l *later) {
	defer close(l.done)
	linger := time.NewTimer(0)
	<-linger.C
	for row := range l.rows {
		// A fresh slice each time: the stored rows go on to subscribers.
		batch := []store.HistoryRow{row}
		linger.Reset(laterLinger)
	fill:
		for len(batch) < laterBatch {
			select {
			case row, ok := <-l.rows:
				if !ok {
					break fill
				}
				batch = append(batch, row)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), laterWrite)
		if _, err := s.Append(ctx, batch...); err != nil {
			s.log.Error("history rows not written", "err", err, "rows", len(batch))
		}
		cancel()
	}
}

// closeLater writes what is queued and ends the writer; rows that come
// after it are appended at once.
func (s *Service) closeLater() {
	s.laterMu.Lock()
	s.laterClosed = true
	l := s.later
	s.laterMu.Unlock()
	if l != nil {
		close(l.rows)
		<-l.done
	}
}
