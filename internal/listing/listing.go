// Package listing holds what cairn's record-listing APIs (SIP traces, MSRP
// session records) share: authentication, who may read whose records,
// paging by id, and how answers are written.
package listing

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-chat/cairn/auth"
)

// Config is what the operator configures of a listing API.
type Config struct {
	// Retention is how long records are listed.
	Retention time.Duration
	// Operators may read every account's records; others read their own.
	Operators []string
	// Realm is the Digest realm when a request names none.
	Realm string
}

// API is the common part of one listing API: how it authenticates, who its
// operators are, the query parameter naming the account to list, and its
// page sizes.
type API struct {
	auth      *auth.HTTP
	retention time.Duration
	realm     string
	operators Operators
	param     string // "addr", "account"
	def, max  int
	log       *slog.Logger
}

// New returns the API of cfg whose query parameter param names the
// account to list, with pages of def records by default and max at most.
func New(cfg Config, a *auth.HTTP, param string, def, max int, log *slog.Logger) *API {
	return &API{auth: a, retention: cfg.Retention, realm: cfg.Realm, operators: NewOperators(cfg.Operators),
		param: param, def: def, max: max, log: log}
}

// Since is the oldest time a listing at now shows: now less the retention.
func (a *API) Since(now time.Time) time.Time { return now.Add(-a.retention) }

// Begin checks a listing request: a GET, authenticated (realm=<domain>
// in the query, else Realm). It returns whose records to list and the
// page, or answers the request and returns ok false.
func (a *API) Begin(w http.ResponseWriter, r *http.Request) (account string, page Page, ok bool) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return "", page, false
	}
	q := r.URL.Query()
	realm := strings.ToLower(q.Get("realm"))
	if realm == "" {
		realm = a.realm
	}
	acct, ok := a.auth.Require(w, r, realm, a.log)
	if !ok {
		return "", page, false
	}
	if account, ok = a.operators.Scope(acct.Address(), q.Get(a.param)); !ok {
		http.Error(w, a.param+": only operators read other accounts' records", http.StatusForbidden)
		return "", page, false
	}
	page, bad := ParsePage(q, a.def, a.max)
	if bad != "" {
		http.Error(w, bad, http.StatusBadRequest)
		return "", page, false
	}
	return account, page, true
}

// Operators are the accounts (user@domain) that may read every account's
// records; any other account reads only its own.
type Operators map[string]bool

// NewOperators returns the operators among addrs, domains in lower case.
func NewOperators(addrs []string) Operators {
	ops := make(Operators, len(addrs))
	for _, a := range addrs {
		user, domain, _ := strings.Cut(a, "@")
		ops[user+"@"+strings.ToLower(domain)] = true
	}
	return ops
}

// Scope returns whose records self may list when it asks for asked: an
// operator the account asked for ("" for everyone), anyone else its own.
// ok is false when someone who is not an operator asks for another account.
func (o Operators) Scope(self, asked string) (account string, ok bool) {
	if o[self] {
		return asked, true
	}
	return self, asked == "" || asked == self
}

// Page is where a listing starts (after the record with id After) and how
// many records it holds at most.
type Page struct {
	After int64
	Limit int
}

// ParsePage reads the query parameters after and limit: Limit defaults to
// def and must be between 1 and max. On a bad value it returns a message
// for a 400.
func ParsePage(q url.Values, def, max int) (Page, string) {
	p := Page{Limit: def}
	var err error
	if v := q.Get("after"); v != "" {
		if p.After, err = strconv.ParseInt(v, 10, 64); err != nil || p.After < 0 {
			return p, "after: want a record id"
		}
	}
	if v := q.Get("limit"); v != "" {
		if p.Limit, err = strconv.Atoi(v); err != nil || p.Limit < 1 || p.Limit > max {
			return p, "limit: want 1 to " + strconv.Itoa(max)
		}
	}
	return p, ""
}

// Write answers 200 with v as JSON, not to be cached.
func Write(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
