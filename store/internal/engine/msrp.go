package engine

import (
	"errors"
	"fmt"

	"github.com/cairn-chat/cairn/store"
)

// CheckMSRPSessions returns an error naming the first record that cannot be
// stored.
func CheckMSRPSessions(rs []store.MSRPSession) error {
	for i, r := range rs {
		err := errors.Join(
			checkField("session", r.Session),
			checkField("account", r.Account),
			checkField("transport", r.Transport),
			checkField("client", r.Client),
			checkField("peer", r.Peer),
			checkField("ended", r.Ended),
			checkTime("start", r.StartedAt),
			checkTime("end", r.EndedAt),
		)
		if r.BytesIn < 0 || r.BytesOut < 0 || r.Chunks < 0 {
			err = errors.Join(err, fmt.Errorf("counts %d bytes in, %d bytes out, %d chunks: negative", r.BytesIn, r.BytesOut, r.Chunks))
		}
		if err != nil {
			return fmt.Errorf("msrp session %d: %w", i, err)
		}
	}
	return nil
}

// CheckMSRPSessionQuery returns an error unless q is a valid query.
func CheckMSRPSessionQuery(q store.MSRPSessionQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d is not positive", q.Limit)
	}
	return checkField("account", q.Account)
}
