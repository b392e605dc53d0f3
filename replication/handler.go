package replication

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/store"
)

// Config configures the journal API.
type Config struct {
	Retention    time.Duration // entries older than this are never returned
	MaxBody      int64         // request body limit, bytes
	MaxEntry     int           // one entry's data limit, bytes
	DefaultRealm string        // the Digest realm when a request names none
}

// Handler serves the journal API at one path. It answers Blink's way: HTTP
// 200 with success:false and an error_message for bad input, 401 with a
// Digest challenge for missing or wrong credentials, 413 for an oversized
// body. When the store fails it drops the connection without an answer:
// Blink empties its queue of pending entries on any answer at all, even an
// error, but keeps it and retries 80 s later when the connection fails.
type Handler struct {
	cfg     Config
	journal store.Journal
	auth    *auth.HTTP
	now     func() time.Time
	log     *slog.Logger
	bodies  *semaphore.Weighted // bytes of request bodies held in memory
	gets    *semaphore.Weighted // gets under way
	m       metrics
}

// Memory bounds: how many maximum-size bodies may be held at once, how much
// entry data one get answer carries, and how many gets run at once. Requests
// past a bound wait rather than being refused: Blink would take a refusal as
// an answer, dropping the entries of a put or stopping replication.
const (
	bodyBudget    = 8
	maxAnswerData = 32 << 20
	maxGets       = 16
)

type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	stored   prometheus.Counter
}

// New returns a Handler. Its metrics are registered with reg.
func New(cfg Config, journal store.Journal, a *auth.HTTP, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *Handler {
	h := &Handler{cfg: cfg, journal: journal, auth: a, now: now, log: log,
		bodies: semaphore.NewWeighted(bodyBudget * (cfg.MaxBody + 1)), gets: semaphore.NewWeighted(maxGets)}
	h.m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_journal_requests_total",
		Help: "Journal API requests by action and outcome (ok, input_error, unauthorized, too_large, store_failure).",
	}, []string{"action", "outcome"})
	h.m.seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cairn_journal_request_seconds",
		Help:    "Time to answer an authenticated journal API request, by action.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"action"})
	h.m.stored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_journal_entries_put_total",
		Help: "Journal entries acknowledged to clients (new rows and idempotent repeats).",
	})
	reg.MustRegister(h.m.requests, h.m.seconds, h.m.stored)
	return h
}

// knownActions bounds the action label of the metrics.
var knownActions = map[string]bool{
	"put_journal_entries": true, "get_journal_entries": true,
	"delete_journal_entries": true, "get_history": true,
}

// ServeHTTP answers one journal API request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Only the query is read before authentication: an unauthenticated client
	// must not make us buffer a body. Blink puts realm and action there.
	query := make(params)
	addURLEncoded(query, r.URL.RawQuery)
	realm := h.realm(query["realm"])
	label := metricAction(query["action"])

	acct, err := h.auth.Authenticate(r, realm)
	switch {
	case errors.Is(err, auth.ErrStale):
		h.m.requests.WithLabelValues(label, "unauthorized").Inc()
		h.auth.Challenge(w, realm, true)
		return
	case errors.Is(err, auth.ErrNoCredentials), errors.Is(err, auth.ErrBadCredentials):
		h.m.requests.WithLabelValues(label, "unauthorized").Inc()
		h.auth.Challenge(w, realm, false)
		return
	case r.Context().Err() != nil:
		return // the client went away while waiting
	case errors.Is(err, auth.ErrUnseal):
		h.m.requests.WithLabelValues(label, "store_failure").Inc()
		h.log.Error("account credentials do not open with the sealing key: is key_file the one the accounts were made with?",
			"remote", r.RemoteAddr, "err", err)
		panic(http.ErrAbortHandler)
	case err != nil:
		h.fail(r, label, "authenticate", err)
	}

	start := time.Now()
	body, release, err := h.readBody(w, r)
	defer release()
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		h.m.requests.WithLabelValues(label, "too_large").Inc()
		writeJSON(w, http.StatusRequestEntityTooLarge, errorAnswer(inputError(
			fmt.Sprintf("Request body too large: the limit is %d bytes", h.cfg.MaxBody))))
		return
	}
	if err != nil {
		return // the client went away
	}
	p, err := parseParams(r.URL.RawQuery, r.Header.Get("Content-Type"), body)
	if err != nil {
		h.answerError(w, label, errBadFormBody)
		return
	}
	action := p["action"]
	label = metricAction(action)

	var answer any
	switch action {
	case "put_journal_entries":
		answer, err = h.put(r.Context(), acct, clientIP(r), p)
	case "get_journal_entries":
		if err = h.gets.Acquire(r.Context(), 1); err != nil {
			return // the client went away while waiting
		}
		defer h.gets.Release(1)
		answer, err = h.get(r.Context(), acct, p)
	case "delete_journal_entries":
		answer, err = h.delete(r.Context(), acct, p)
	case "get_history":
		answer = historyAnswer{Received: []struct{}{}, Placed: []struct{}{}}
	default:
		err = errUnknownAction
	}
	var bad inputError
	switch {
	case errors.As(err, &bad):
		h.answerError(w, label, bad)
		return
	case err != nil:
		h.fail(r, label, action, err)
	}
	h.m.requests.WithLabelValues(label, "ok").Inc()
	if a, ok := answer.(getAnswer); ok {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(appendGetAnswer(make([]byte, 0, answerSize(a)), a))
	} else {
		writeJSON(w, http.StatusOK, answer)
	}
	h.m.seconds.WithLabelValues(label).Observe(time.Since(start).Seconds())
	h.log.Debug("journal request", "action", action, "account", acct.Address(), "duration", time.Since(start))
}

// readBody reads the body within MaxBody, holding its size of the budget of
// bodies in memory until release is called. A request waits for budget
// rather than being refused: Blink would take a refusal as an answer and drop
// the entries it sent.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	size := h.cfg.MaxBody
	if r.ContentLength >= 0 && r.ContentLength < size {
		size = r.ContentLength
	}
	if err := h.bodies.Acquire(r.Context(), size+1); err != nil {
		return nil, func() {}, err
	}
	release = func() { h.bodies.Release(size + 1) }
	capacity := size + bytes.MinRead // room for the read that finds EOF
	if r.ContentLength < 0 {
		capacity = 64 << 10 // a chunked body grows as it comes
	}
	buf := bytes.NewBuffer(make([]byte, 0, capacity))
	_, err = buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	return buf.Bytes(), release, err
}

// realm returns the Digest realm a request names: the realm parameter, the
// part after '@' when it is user@domain, lowercased.
func (h *Handler) realm(param string) string {
	if i := strings.LastIndexByte(param, '@'); i >= 0 {
		param = param[i+1:]
	}
	if param == "" {
		return h.cfg.DefaultRealm
	}
	return strings.ToLower(param)
}

func metricAction(a string) string {
	if knownActions[a] {
		return a
	}
	return "other"
}

func (h *Handler) answerError(w http.ResponseWriter, label string, e inputError) {
	h.m.requests.WithLabelValues(label, "input_error").Inc()
	writeJSON(w, http.StatusOK, errorAnswer(e))
}

// fail logs a store failure and drops the connection without an answer.
func (h *Handler) fail(r *http.Request, label, action string, err error) {
	h.m.requests.WithLabelValues(label, "store_failure").Inc()
	h.log.Error("journal request failed; connection dropped so that the client retries",
		"action", action, "remote", r.RemoteAddr, "err", err)
	panic(http.ErrAbortHandler)
}

type errorJSON struct {
	Success      bool       `json:"success"`
	ErrorMessage string     `json:"error_message"`
	Results      []struct{} `json:"results"`
}

func errorAnswer(e inputError) errorJSON {
	return errorJSON{ErrorMessage: string(e), Results: []struct{}{}}
}

type putResult struct {
	ID        string `json:"id"`
	JournalID string `json:"journal_id"`
	Source    string `json:"source"`
}

type putAnswer struct {
	Success bool        `json:"success"`
	Results []putResult `json:"results"`
}

func (h *Handler) put(ctx context.Context, acct store.Account, ip string, p params) (any, error) {
	req, err := parsePut(p, h.cfg.MaxEntry)
	if err != nil {
		return nil, err
	}
	answer := putAnswer{Success: true, Results: make([]putResult, 0, len(req.items))}
	if len(req.items) == 0 {
		return answer, nil
	}
	ids, err := h.journal.JournalPut(ctx, store.JournalPutParams{
		AccountID: acct.ID, Device: req.device, IP: ip, Items: req.items,
		Since: h.now().Add(-h.cfg.Retention),
	})
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		answer.Results = append(answer.Results, putResult{ID: req.ids[i], JournalID: strconv.FormatInt(id, 10), Source: "default"})
	}
	h.m.stored.Add(float64(len(ids)))
	return answer, nil
}

// getResult is one row of a get answer; its source is always "default".
type getResult struct {
	ID        string
	Timestamp int64
	Account   string
	UUID      string
	IPAddress string
	Data      string
}

type summaryItem struct {
	JournalID string
	Timestamp int64
}

// getAnswer is get_journal_entries' answer, written by appendGetAnswer.
type getAnswer struct {
	Results []getResult
	Rows    int
	Summary *[]summaryItem // nil: no summary key
}

// answerSize estimates the JSON size of a, so that it is built in one buffer.
func answerSize(a getAnswer) int {
	n := 128
	for _, r := range a.Results {
		n += 128 + len(r.Account) + len(r.UUID) + len(r.IPAddress) + len(r.Data) + len(r.Data)/38
	}
	if a.Summary != nil {
		n += 48 * len(*a.Summary)
	}
	return n
}

func (h *Handler) get(ctx context.Context, acct store.Account, p params) (any, error) {
	req := parseGet(p)
	q := store.JournalQuery{
		AccountID:    acct.ID,
		Since:        h.now().Add(-h.cfg.Retention),
		ExceptDevice: req.exceptDevice,
		AfterID:      req.afterID,
		Limit:        req.limit,
		MaxBytes:     maxAnswerData,
	}
	if req.afterTime > 0 {
		q.AfterTime = time.Unix(req.afterTime, 0)
	}
	rows, err := h.journal.JournalList(ctx, q)
	if err != nil {
		return nil, err
	}
	answer := getAnswer{Results: make([]getResult, len(rows)), Rows: len(rows)}
	address := acct.Address()
	for i, e := range rows {
		answer.Results[i] = getResult{
			ID: strconv.FormatInt(e.ID, 10), Timestamp: e.Time.Unix(),
			Account: address, UUID: e.Device, IPAddress: e.IP, Data: e.Data,
		}
	}
	if req.summary {
		// The summary lists every row the client may hold, whatever it asked
		// after. When the get itself had no after_* filter, no smaller limit
		// and was not cut short by maxAnswerData, its rows are that list.
		var stamps []store.JournalStamp
		if req.afterID == 0 && req.afterTime == 0 && req.limit == maxRows && h.complete(rows) {
			stamps = make([]store.JournalStamp, len(rows))
			for i, e := range rows {
				stamps[i] = store.JournalStamp{ID: e.ID, Time: e.Time}
			}
		} else if stamps, err = h.journal.JournalSummary(ctx, store.JournalQuery{
			AccountID: acct.ID, Since: q.Since, ExceptDevice: q.ExceptDevice, Limit: maxRows,
		}); err != nil {
			return nil, err
		}
		summary := make([]summaryItem, len(stamps))
		for i, s := range stamps {
			summary[i] = summaryItem{JournalID: strconv.FormatInt(s.ID, 10), Timestamp: s.Time.Unix()}
		}
		answer.Summary = &summary
	}
	return answer, nil
}

// complete reports whether maxAnswerData did not cut rows short: the row
// limit was reached first, or one more entry of the largest size would
// still have fitted.
func (h *Handler) complete(rows []store.JournalEntry) bool {
	if len(rows) == maxRows {
		return true
	}
	n := int64(h.cfg.MaxEntry)
	for _, e := range rows {
		n += int64(len(e.Data))
	}
	return n <= maxAnswerData
}

type successAnswer struct {
	Success bool `json:"success"`
}

func (h *Handler) delete(ctx context.Context, acct store.Account, p params) (any, error) {
	ids, err := parseDelete(p)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		if _, err := h.journal.JournalDelete(ctx, acct.ID, ids); err != nil {
			return nil, err
		}
	}
	return successAnswer{Success: true}, nil
}

// historyAnswer is get_history's answer. Call records are not kept yet, so
// both lists are empty; Blink needs both keys.
type historyAnswer struct {
	Received []struct{} `json:"received"`
	Placed   []struct{} `json:"placed"`
}

// Purge removes the entries older than retention at now and returns how
// many it removed. The sweep and `cairn purge` call it.
func Purge(ctx context.Context, j store.Journal, now time.Time, retention time.Duration) (int64, error) {
	return j.JournalPurge(ctx, now.Add(-retention))
}

// clientIP is the address the request came from, without the port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeJSON writes v as the JSON answer. Blink ignores the Content-Type;
// other clients get the right one.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) == nil {
		bw.Flush()
	}
}
