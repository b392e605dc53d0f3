// Package listing holds what cairn's record-listing APIs (SIP traces, MSRP
// session records) share: who may read whose records, paging by id, and
// how answers are written.
package listing

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

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
