package offline

import "time"

// Batch is how many owed messages a drain reads at a time.
const Batch = batch

// Backoff is backoff, for the tests.
func (q *Queue) Backoff(attempts int) time.Duration { return q.backoff(attempts) }

// ProbeMax is how many accounts one OfflineOwed asks for at most.
const ProbeMax = probeMax

// Idle reports whether no probe and no drain runs and none is due: every
// device state is dropped when its drain ends with nothing to retry.
func (q *Queue) Idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.devices) == 0 && len(q.asked) == 0 && q.window == nil && !q.probing
}

// RetryPending reports whether a drain of the device waits on its timer.
func (q *Queue) RetryPending(accountID int64, instance string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.devices[deviceKey{accountID, instance}]
	return s != nil && !s.running && s.timer != nil
}

// Draining reports whether a drain of the device runs.
func (q *Queue) Draining(accountID int64, instance string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.devices[deviceKey{accountID, instance}]
	return s != nil && s.running
}
