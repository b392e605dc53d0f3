package msrp

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/internal/listing"
	"github.com/cairn-chat/cairn/store"
)

// SessionsPath is where the session record API is served.
const SessionsPath = "/msrp/sessions"

// Session record API bounds.
const (
	recordDefaultLimit = 100
	recordMaxLimit     = 1000
	maxAccountLen      = 512
)

// SessionAPI serves MSRP session records over HTTP: GET SessionsPath with
// optional after (a record id), limit (at most 1000) and, for operators,
// account. Requests authenticate as the journal's do.
type SessionAPI struct {
	st  store.MSRPSessions
	api *listing.API
	now func() time.Time
	log *slog.Logger
}

// NewSessionAPI returns the session record API handler.
func NewSessionAPI(st store.MSRPSessions, a *auth.HTTP, cfg listing.Config, now func() time.Time, log *slog.Logger) *SessionAPI {
	return &SessionAPI{st: st, now: now, log: log, api: listing.New(cfg, a, "account", recordDefaultLimit, recordMaxLimit, log)}
}

// recordJSON is one session record as the API writes it.
type recordJSON struct {
	ID        int64     `json:"id"`
	Session   string    `json:"session"`
	Account   string    `json:"account"`
	Transport string    `json:"transport"`
	Client    string    `json:"client"`
	Peer      string    `json:"peer"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	BytesIn   int64     `json:"bytes_in"`
	BytesOut  int64     `json:"bytes_out"`
	Chunks    int64     `json:"chunks"`
	Ended     string    `json:"ended"`
}

func (h *SessionAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	account, page, ok := h.api.Begin(w, r)
	if !ok {
		return
	}
	if len(account) > maxAccountLen {
		http.Error(w, "account too long", http.StatusBadRequest)
		return
	}
	sq := store.MSRPSessionQuery{Since: h.api.Since(h.now()), Account: account, AfterID: page.After, Limit: page.Limit}
	recs, err := h.st.MSRPSessionList(r.Context(), sq)
	if err != nil {
		h.log.Error("MSRP session API: list failed", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	out := struct {
		Sessions []recordJSON `json:"sessions"`
		// More is true when there may be records after the last one.
		More bool `json:"more"`
	}{Sessions: make([]recordJSON, len(recs)), More: len(recs) == sq.Limit}
	for i, s := range recs {
		out.Sessions[i] = recordJSON{
			ID: s.ID, Session: s.Session, Account: s.Account, Transport: s.Transport, Client: s.Client,
			Peer: s.Peer, StartedAt: s.StartedAt, EndedAt: s.EndedAt, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
			Chunks: s.Chunks, Ended: s.Ended,
		}
	}
	listing.Write(w, out)
}
