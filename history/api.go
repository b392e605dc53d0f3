package history

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-chat/cairn/store"
)

// ServeHTTP answers the history API, mounted at HistoryPath (without
// StripPrefix): GET HistoryPath<user@domain>[/<last_id>] with
// "Authorization: Apikey <token>", and OPTIONS for CORS preflights.
//
// The answer is 200 application/json:
//
//	{"account":"alice@example.com","messages":[item…],"more":false,"last_id":42}
//
// with the rows after the cursor in id order, at most PageLimit of them
// (and about 32 MiB). more is true when rows remain after them; last_id is
// the id of the last row, or the cursor's when there is none. last_id in
// the path is what Blink sends, the message_id of the last row it
// processed: it stands for the highest row with that message_id; a number
// that is no row's message_id is a row id; anything else (an unknown id, a
// row gone past retention) starts from the oldest row kept. A missing,
// unknown, expired or other account's token is answered 401
// "Unauthorized".
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := s.serveHistory(w, r)
	s.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (s *Service) serveHistory(w http.ResponseWriter, r *http.Request) int {
	h := w.Header()
	// Tokens, not cookies, authenticate: any page may read.
	h.Set("Access-Control-Allow-Origin", "*")
	rest, ok := strings.CutPrefix(r.URL.Path, HistoryPath)
	if !ok || rest == "" {
		http.NotFound(w, r)
		return http.StatusNotFound
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	default:
		h.Set("Allow", "GET, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return http.StatusMethodNotAllowed
	}
	addr, cursor := splitAccount(rest)
	acct, err := s.authorize(r.Context(), addr, apikey(r.Header))
	if errors.Is(err, errUnauthorized) {
		unauthorized(w)
		return http.StatusUnauthorized
	}
	if err != nil {
		return s.storeFailed(w, r, err)
	}

	if err := s.gets.Acquire(r.Context(), 1); err != nil {
		return 499 // the client went away while waiting
	}
	defer s.gets.Release(1)
	since := s.Since()
	after, err := s.resolveCursor(r.Context(), acct.ID, cursor, since)
	if err != nil {
		return s.storeFailed(w, r, err)
	}
	rows, err := s.st.HistoryList(r.Context(), store.HistoryQuery{
		AccountID: acct.ID, AfterID: after, Since: since, Limit: s.cfg.PageLimit + 1,
	})
	if err != nil {
		return s.storeFailed(w, r, err)
	}
	more := len(rows) > s.cfg.PageLimit
	rows = rows[:min(len(rows), s.cfg.PageLimit)]
	size := 0
	for i := range rows {
		if size += itemSize(&rows[i]); size > maxAnswerBytes && i > 0 {
			rows, more = rows[:i], true
			break
		}
	}
	last := after
	if len(rows) > 0 {
		last = rows[len(rows)-1].ID
	}

	b := make([]byte, 0, size+len(acct.Address())+64)
	b = append(b, `{"account":`...)
	b = appendString(b, acct.Address())
	b = append(b, `,"messages":[`...)
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendItem(b, &rows[i])
	}
	b = append(b, `],"more":`...)
	b = strconv.AppendBool(b, more)
	b = append(b, `,"last_id":`...)
	b = strconv.AppendInt(b, last, 10)
	b = append(b, "}\n"...)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	w.Write(b)
	s.m.rows.WithLabelValues("api").Add(float64(len(rows)))
	return http.StatusOK
}

// resolveCursor returns the row id a history request's last_id stands
// for: the highest row with that message_id, else the number itself, else
// 0 (the oldest row kept). HistoryFind returns the lowest 100 rows with a
// message_id; if there are more, the highest of those is taken, which can
// only repeat rows, never skip them (Blink drops repeats by message_id).
func (s *Service) resolveCursor(ctx context.Context, account int64, cursor string, since time.Time) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	if len(cursor) <= maxMessageID && utf8.ValidString(cursor) && strings.IndexByte(cursor, 0) < 0 {
		found, err := s.st.HistoryFind(ctx, account, cursor, since)
		if err != nil {
			return 0, err
		}
		if len(found) > 0 {
			return found[len(found)-1].ID, nil
		}
	}
	if id, err := strconv.ParseInt(cursor, 10, 64); err == nil && id > 0 {
		return id, nil
	}
	return 0, nil
}

// maxMessageID is the longest message id the store keeps; a longer cursor
// matches no row.
const maxMessageID = 256

func unauthorized(w http.ResponseWriter) {
	h := w.Header()
	h.Set("WWW-Authenticate", "Apikey")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("Unauthorized"))
}

// storeFailed answers 503 when the store failed, or nothing when the
// client went away.
func (s *Service) storeFailed(w http.ResponseWriter, r *http.Request, err error) int {
	if r.Context().Err() != nil {
		return 499
	}
	s.log.Error("history API: store failed", "err", err)
	http.Error(w, "store unavailable", http.StatusServiceUnavailable)
	return http.StatusServiceUnavailable
}
