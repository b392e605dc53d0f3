package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cairn-chat/cairn/store"
)

// Outcomes of HTTP.Authenticate other than success; each is answered with a
// 401 challenge. Any other error is a server fault (the store did not answer).
var (
	ErrNoCredentials  = errors.New("auth: no credentials")
	ErrBadCredentials = errors.New("auth: wrong credentials")
	ErrStale          = errors.New("auth: stale nonce")
)

// AccountGetter is the part of the store an authenticator reads.
type AccountGetter interface {
	AccountGet(ctx context.Context, user, domain string) (store.Account, error)
}

// HTTP authenticates HTTP requests with Digest (MD5 or SHA-256, qop=auth),
// against both the SIP and the web password, and with Basic over TLS only.
type HTTP struct {
	accounts AccountGetter
	keys     *Keyring
	nonces   *Nonces
	slow     chan struct{} // bounds concurrent argon2id checks
	// noWebHash is checked in place of a web password that does not exist.
	noWebHash string
}

// NewHTTP returns an HTTP authenticator.
func NewHTTP(accounts AccountGetter, keys *Keyring, nonces *Nonces) *HTTP {
	noWebHash, _ := HashPassword(rand.Text()) // fails only if crypto/rand does, which it does not
	return &HTTP{accounts: accounts, keys: keys, nonces: nonces, slow: make(chan struct{}, 4), noWebHash: noWebHash}
}

// Challenge answers 401 with Digest challenges for realm: MD5 first, written
// exactly as cdrtool did because Blink was built against it, then SHA-256.
func (h *HTTP) Challenge(w http.ResponseWriter, realm string, stale bool) {
	opaque := MD5.H(realm)
	extra := ""
	if stale {
		extra = ", stale=true"
	}
	for _, alg := range []string{"", ", algorithm=SHA-256"} {
		w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Digest realm=%q, qop="auth", nonce=%q, opaque=%q%s%s`,
			realm, h.nonces.Issue(realm), opaque, alg, extra))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("401 Unauthorized\n"))
}

// Authenticate returns the account that r authenticates as in realm (a domain).
func (h *HTTP) Authenticate(r *http.Request, realm string) (store.Account, error) {
	header := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(header, " ")
	switch {
	case header == "":
		return store.Account{}, ErrNoCredentials
	case strings.EqualFold(scheme, "Digest"):
		return h.digest(r, header, realm)
	case strings.EqualFold(scheme, "Basic") && r.TLS != nil:
		return h.basic(r.Context(), strings.TrimSpace(rest), realm)
	default:
		return store.Account{}, ErrNoCredentials
	}
}

// account looks up the account a username names in realm: "user" or
// "user@domain", whose domain must then be realm. full reports the second form.
func (h *HTTP) account(ctx context.Context, username, realm string) (acct store.Account, creds Credentials, full bool, err error) {
	user, domain := username, realm
	if i := strings.LastIndexByte(username, '@'); i >= 0 {
		user, domain, full = username[:i], username[i+1:], true
		if !strings.EqualFold(domain, realm) {
			return acct, creds, full, ErrBadCredentials
		}
	}
	acct, err = h.accounts.AccountGet(ctx, user, strings.ToLower(domain))
	if errors.Is(err, store.ErrNotFound) {
		return acct, creds, full, ErrBadCredentials
	}
	if err != nil {
		return acct, creds, full, fmt.Errorf("auth: %w", err)
	}
	creds, err = h.keys.Open(acct.Address(), acct.Credentials)
	if err != nil {
		return acct, creds, full, fmt.Errorf("auth: account %s: %w", acct.Address(), err)
	}
	return acct, creds, full, nil
}

func (h *HTTP) digest(r *http.Request, header, realm string) (store.Account, error) {
	d, err := ParseDigest(header)
	if err != nil || !strings.EqualFold(d.Realm, realm) || !sameURI(d.URI, r) {
		return store.Account{}, ErrBadCredentials
	}
	check := h.nonces.Check(d.Nonce, realm)
	if check == NonceInvalid {
		return store.Account{}, ErrBadCredentials
	}
	acct, creds, full, err := h.account(r.Context(), d.Username, realm)
	if err != nil {
		return store.Account{}, err
	}
	ha2 := d.Algorithm.H(r.Method, d.URI)
	ok := false
	for _, ha1 := range creds.HA1s(d.Algorithm, full) {
		if d.Sess {
			ha1 = d.Algorithm.H(ha1, d.Nonce, d.CNonce)
		}
		ok = ok || equal(d.Algorithm.H(ha1, d.Nonce, d.NC, d.CNonce, d.QOP, ha2), d.Response)
	}
	if !ok {
		return store.Account{}, ErrBadCredentials
	}
	if check == NonceStale || h.nonces.Use(d.Nonce, realm, d.Count) != NonceValid {
		return store.Account{}, ErrStale
	}
	return acct, nil
}

// sameURI reports whether the digest uri names the request's target: the same
// string, or the same path and query once parsed.
func sameURI(uri string, r *http.Request) bool {
	if uri == r.RequestURI {
		return true
	}
	u, err := url.ParseRequestURI(uri)
	return err == nil && u.Path == r.URL.Path && u.RawQuery == r.URL.RawQuery
}

func (h *HTTP) basic(ctx context.Context, token, realm string) (store.Account, error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return store.Account{}, ErrBadCredentials
	}
	username, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return store.Account{}, ErrBadCredentials
	}
	if i := strings.LastIndexByte(username, '@'); i >= 0 {
		realm = username[i+1:]
	}
	acct, creds, _, err := h.account(ctx, username, realm)
	known := err == nil
	if !known && !errors.Is(err, ErrBadCredentials) {
		return store.Account{}, err
	}
	if known && equal(MD5.H(acct.User, acct.Domain, password), creds.SIP.MD5) {
		return acct, nil
	}
	// Every other answer costs one argon2id check, against a hash made up for
	// the purpose when there is no web password, so that the time taken does
	// not tell which accounts exist or have one.
	hash := h.noWebHash
	if known && acct.WebHash != "" {
		hash = acct.WebHash
	}
	select {
	case h.slow <- struct{}{}:
	case <-ctx.Done():
		return store.Account{}, ctx.Err()
	}
	ok = CheckPassword(hash, password)
	<-h.slow
	if ok && hash != h.noWebHash {
		return acct, nil
	}
	return store.Account{}, ErrBadCredentials
}
