package history

import (
	"context"
	"time"

	"github.com/cairn-chat/cairn/internal/behind"
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

// appendLater queues row for the writer, which it starts on first use
// unless the service has closed, waiting for room when the queue is full.
// Once the service is closed it appends row at once.
func (s *Service) appendLater(row store.HistoryRow) {
	s.laterOnce.Do(func() {
		s.later = behind.New(laterQueue, laterBatch, laterLinger, func(batch []store.HistoryRow) {
			s.appendNow(batch...)
		})
	})
	if s.later == nil || !s.later.Add(row) { // closed
		s.appendNow(row)
	}
}

// appendNow appends rows within laterWrite and logs a failure.
func (s *Service) appendNow(rows ...store.HistoryRow) {
	ctx, cancel := context.WithTimeout(context.Background(), laterWrite)
	defer cancel()
	if _, err := s.Append(ctx, rows...); err != nil {
		s.log.Error("history rows not written", "err", err, "rows", len(rows))
	}
}

// closeLater writes what is queued and ends the writer; rows that come
// after it are appended at once.
func (s *Service) closeLater() {
	s.laterOnce.Do(func() {}) // no writer starts after this
	if s.later != nil {
		s.later.Close(context.Background())
	}
}
