package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
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

// Digest checks Digest answers (RFC 7616, RFC 8760) against the accounts'
// sealed HA1 values. HTTP and SIP share it: only the method and the check of
// the digest uri differ.
type Digest struct {
	accounts AccountGetter
	keys     *Keyring
	nonces   *Nonces
}

// NewDigest returns a Digest checker.
func NewDigest(accounts AccountGetter, keys *Keyring, nonces *Nonces) *Digest {
	return &Digest{accounts: accounts, keys: keys, nonces: nonces}
}

// Nonce returns a fresh nonce for realm.
func (v *Digest) Nonce(realm string) string { return v.nonces.Issue(realm) }

// Verify returns the account that d, the answer to a challenge for realm on a
// request with this method, authenticates. It fails with ErrBadCredentials
// or, when the answer was right but its nonce expired or was used with this
// count, with ErrStale; any other error is a store fault. The caller checks
// d.URI against its request first.
func (v *Digest) Verify(ctx context.Context, method string, d DigestResponse, realm string) (store.Account, error) {
	if !strings.EqualFold(d.Realm, realm) {
		return store.Account{}, ErrBadCredentials
	}
	check := v.nonces.Check(d.Nonce, realm)
	if check == NonceInvalid {
		return store.Account{}, ErrBadCredentials
	}
	acct, creds, full, err := v.account(ctx, d.Username, realm)
	if err != nil {
		return store.Account{}, err
	}
	ha2 := d.Algorithm.H(method, d.URI)
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
	if check == NonceStale || v.nonces.Use(d.Nonce, realm, d.Count) != NonceValid {
		return store.Account{}, ErrStale
	}
	return acct, nil
}

// account looks up the account a username names in realm: "user" or
// "user@domain", whose domain must then be realm. full reports the second form.
func (v *Digest) account(ctx context.Context, username, realm string) (acct store.Account, creds Credentials, full bool, err error) {
	user, domain := username, realm
	if i := strings.LastIndexByte(username, '@'); i >= 0 {
		user, domain, full = username[:i], username[i+1:], true
		if !strings.EqualFold(domain, realm) {
			return acct, creds, full, ErrBadCredentials
		}
	}
	acct, err = v.accounts.AccountGet(ctx, user, strings.ToLower(domain))
	if errors.Is(err, store.ErrNotFound) {
		return acct, creds, full, ErrBadCredentials
	}
	if err != nil {
		return acct, creds, full, fmt.Errorf("auth: %w", err)
	}
	creds, err = v.keys.Open(acct.Address(), acct.Credentials)
	if err != nil {
		return acct, creds, full, fmt.Errorf("auth: account %s: %w", acct.Address(), err)
	}
	return acct, creds, full, nil
}

// HTTP authenticates HTTP requests with Digest (MD5 or SHA-256, qop=auth),
// against both the SIP and the web password, and with Basic over TLS only.
type HTTP struct {
	digest *Digest
	slow   chan struct{} // bounds concurrent argon2id checks
	// noWebHash is checked in place of a web password that does not exist.
	noWebHash string
}

// NewHTTP returns an HTTP authenticator.
func NewHTTP(d *Digest) *HTTP {
	noWebHash, _ := HashPassword(rand.Text()) // fails only if crypto/rand does, which it does not
	return &HTTP{digest: d, slow: make(chan struct{}, 4), noWebHash: noWebHash}
}

// Challenge answers 401 with Digest challenges for realm: MD5 first, then
// SHA-256.
func (h *HTTP) Challenge(w http.ResponseWriter, realm string, stale bool) {
	for _, c := range Challenges(h.digest, realm, stale, MD5, SHA256) {
		w.Header().Add("WWW-Authenticate", c)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("401 Unauthorized\n"))
}

// Challenges returns one Digest challenge for realm per algorithm, in the
// order given, each with its own nonce. An MD5 challenge names no
// algorithm, as cdrtool wrote it (Blink was built against it).
func Challenges(v *Digest, realm string, stale bool, algs ...Algorithm) []string {
	opaque := MD5.H(realm)
	extra := ""
	if stale {
		extra = ", stale=true"
	}
	out := make([]string, 0, len(algs))
	for _, alg := range algs {
		named := ""
		if alg != MD5 {
			named = ", algorithm=" + string(alg)
		}
		out = append(out, fmt.Sprintf(`Digest realm=%q, qop="auth", nonce=%q, opaque=%q%s%s`,
			realm, v.Nonce(realm), opaque, named, extra))
	}
	return out
}

// Authenticate returns the account that r authenticates as in realm (a domain).
func (h *HTTP) Authenticate(r *http.Request, realm string) (store.Account, error) {
	header := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(header, " ")
	switch {
	case header == "":
		return store.Account{}, ErrNoCredentials
	case strings.EqualFold(scheme, "Digest"):
		d, err := ParseDigest(header)
		if err != nil || !sameURI(d.URI, r) {
			return store.Account{}, ErrBadCredentials
		}
		return h.digest.Verify(r.Context(), r.Method, d, realm)
	case strings.EqualFold(scheme, "Basic") && r.TLS != nil:
		return h.basic(r.Context(), strings.TrimSpace(rest), realm)
	default:
		return store.Account{}, ErrNoCredentials
	}
}

// Require authenticates r in realm for an API that answers JSON: on failure
// it has answered (401 with a challenge, or 503 when the store fails) and
// returns false.
func (h *HTTP) Require(w http.ResponseWriter, r *http.Request, realm string, log *slog.Logger) (store.Account, bool) {
	acct, err := h.Authenticate(r, realm)
	switch {
	case err == nil:
		return acct, true
	case errors.Is(err, ErrStale):
		h.Challenge(w, realm, true)
	case errors.Is(err, ErrNoCredentials), errors.Is(err, ErrBadCredentials):
		h.Challenge(w, realm, false)
	default:
		log.Error("authentication failed: store error", "path", r.URL.Path, "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
	}
	return store.Account{}, false
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
	acct, creds, _, err := h.digest.account(ctx, username, realm)
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
