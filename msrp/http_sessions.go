package msrp

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-chat/cairn/auth"
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

// SessionAPIConfig configures the session record API.
type SessionAPIConfig struct {
	Retention time.Duration
	// Operators may read every record; other accounts read their own.
	Operators []string
	// Realm is the Digest realm when a request names none.
	Realm string
}

// SessionAPI serves MSRP session records over HTTP: GET SessionsPath with
// optional after (a record id), limit (at most 1000) and, for operators,
// account. Requests authenticate as the journal's do.
type SessionAPI struct {
	st        store.MSRPSessions
	auth      *auth.HTTP
	cfg       SessionAPIConfig
	now       func() time.Time
	log       *slog.Logger
	operators map[string]bool
}

// NewSessionAPI returns the session record API handler.
func NewSessionAPI(st store.MSRPSessions, a *auth.HTTP, cfg SessionAPIConfig, now func() time.Time, log *slog.Logger) *SessionAPI {
	ops := make(map[string]bool)
	for _, o := range cfg.Operators {
		user, domain, _ := strings.Cut(o, "@")
		ops[user+"@"+strings.ToLower(domain)] = true
	}
	return &SessionAPI{st: st, auth: a, cfg: cfg, now: now, log: log, operators: ops}
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
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	realm := strings.ToLower(q.Get("realm"))
	if realm == "" {
		realm = h.cfg.Realm
	}
	acct, ok := h.auth.Require(w, r, realm, h.log)
	if !ok {
		return
	}
	sq := store.MSRPSessionQuery{
		Since:   h.now().Add(-h.cfg.Retention),
		Account: acct.Address(),
		Limit:   recordDefaultLimit,
	}
	if h.operators[acct.Address()] {
		sq.Account = q.Get("account")
	} else if a := q.Get("account"); a != "" && a != acct.Address() {
		http.Error(w, "account: only operators read other accounts' records", http.StatusForbidden)
		return
	}
	var err error
	if v := q.Get("after"); v != "" {
		if sq.AfterID, err = strconv.ParseInt(v, 10, 64); err != nil || sq.AfterID < 0 {
			http.Error(w, "after: want a record id", http.StatusBadRequest)
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if sq.Limit, err = strconv.Atoi(v); err != nil || sq.Limit < 1 || sq.Limit > recordMaxLimit {
			http.Error(w, "limit: want 1 to "+strconv.Itoa(recordMaxLimit), http.StatusBadRequest)
			return
		}
	}
	if len(sq.Account) > maxAccountLen {
		http.Error(w, "account too long", http.StatusBadRequest)
		return
	}
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
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}
