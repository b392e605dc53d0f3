package sip

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/internal/listing"
	"github.com/cairn-chat/cairn/store"
)

// TracesPath is where the trace API is served.
const TracesPath = "/sip/traces"

// Trace API bounds.
const (
	traceDefaultLimit = 100
	traceMaxLimit     = 1000
)

// TraceAPI serves SIP traces over HTTP: GET TracesPath with optional
// call_id, after (a trace id), limit (at most 1000) and, for operators,
// addr (one account's traces). Requests authenticate as the journal's do,
// with realm naming the account's domain.
type TraceAPI struct {
	st  store.Traces
	api *listing.API
	now func() time.Time
	log *slog.Logger
}

// NewTraceAPI returns the trace API handler.
func NewTraceAPI(st store.Traces, a *auth.HTTP, cfg listing.Config, now func() time.Time, log *slog.Logger) *TraceAPI {
	return &TraceAPI{st: st, now: now, log: log, api: listing.New(cfg, a, "addr", traceDefaultLimit, traceMaxLimit, log)}
}

// traceJSON is one trace as the API writes it.
type traceJSON struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Direction string    `json:"direction"`
	Transport string    `json:"transport"`
	Remote    string    `json:"remote"`
	CallID    string    `json:"call_id"`
	Method    string    `json:"method"`
	Status    int       `json:"status,omitempty"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Message   string    `json:"message"`
}

func (h *TraceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addr, page, ok := h.api.Begin(w, r)
	if !ok {
		return
	}
	tq := store.TraceQuery{Since: h.api.Since(h.now()), Addr: addr, CallID: r.URL.Query().Get("call_id"), AfterID: page.After, Limit: page.Limit}
	if len(tq.CallID) > 256 || len(tq.Addr) > maxAddrLen {
		http.Error(w, "call_id or addr too long", http.StatusBadRequest)
		return
	}
	traces, err := h.st.TraceList(r.Context(), tq)
	if err != nil {
		h.log.Error("trace API: list failed", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	out := struct {
		Traces []traceJSON `json:"traces"`
		// More is true when there may be traces after the last one.
		More bool `json:"more"`
	}{Traces: make([]traceJSON, len(traces)), More: len(traces) == tq.Limit}
	for i, t := range traces {
		out.Traces[i] = traceJSON{
			ID: t.ID, Time: t.Time, Direction: t.Direction, Transport: t.Transport, Remote: t.Remote,
			CallID: t.CallID, Method: t.Method, Status: t.Status, From: t.FromAddr, To: t.ToAddr,
			Message: string(t.Message),
		}
	}
	listing.Write(w, out)
}
