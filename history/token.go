package history

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/store"
)

// tokenBytes is the entropy of a token: 256 bits.
const tokenBytes = 32

// maxTokenLen bounds what a client may present as a token before it is
// hashed: tokens are 43 characters.
const maxTokenLen = 256

// IssueToken makes a new API token for one device of acct (device = its
// +sip.instance or contact), keeping at most MaxTokens per account, and
// returns the body of the reply MESSAGE, {"token":"…","url":"…"}
// (application/sylk-api-token). Tokens are 256-bit random, base64url
// without padding, and stored only as SHA-256 digests. Issuing one does not
// invalidate the account's other tokens: each device keeps its own, unlike
// SylkServer's single token per account, which devices of one account keep
// taking from each other.
func (s *Service) IssueToken(ctx context.Context, acct store.Account, device string) ([]byte, error) {
	if device == "" {
		device = acct.Address()
	}
	var raw [tokenBytes]byte
	rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.now()
	t := store.APIToken{
		Digest:    tokenDigest(token),
		AccountID: acct.ID,
		Device:    device,
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.TokenLifetime),
	}
	if err := s.st.TokenPut(ctx, t, s.cfg.MaxTokens); err != nil {
		return nil, fmt.Errorf("history: token for %s: %w", acct.Address(), err)
	}
	s.m.tokens.Inc()
	return json.Marshal(struct {
		Token string `json:"token"`
		URL   string `json:"url"`
	}{token, s.cfg.BaseURL + HistoryPath + url.PathEscape(acct.Address())})
}

func tokenDigest(token string) []byte {
	d := sha256.Sum256([]byte(token))
	return d[:]
}

// errUnauthorized is any failure the client is answered 401 for: no
// token, an unknown or expired one, another account's.
var errUnauthorized = errors.New("history: unauthorized")

// authorize returns the account whose address is addr (as it appears in the
// request path, decoded) if token is a live token of it. Every failure
// that is the client's is errUnauthorized; others are the store's. The
// token is looked up by its SHA-256 digest, so its lookup time tells
// nothing about tokens that exist, and it never reaches a log.
func (s *Service) authorize(ctx context.Context, addr, token string) (store.Account, error) {
	if token == "" || len(token) > maxTokenLen {
		return store.Account{}, errUnauthorized
	}
	user, domain, err := auth.ParseAddress(addr)
	if err != nil {
		return store.Account{}, errUnauthorized
	}
	digest := tokenDigest(token)
	t, err := s.st.TokenGet(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Account{}, errUnauthorized
	case err != nil:
		return store.Account{}, fmt.Errorf("history: token: %w", err)
	case subtle.ConstantTimeCompare(t.Digest, digest) != 1, !s.now().Before(t.ExpiresAt):
		return store.Account{}, errUnauthorized
	}
	acct, err := s.st.AccountGet(ctx, user, domain)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Account{}, errUnauthorized
	case err != nil:
		return store.Account{}, fmt.Errorf("history: account: %w", err)
	case acct.ID != t.AccountID:
		return store.Account{}, errUnauthorized
	}
	return acct, nil
}

// apikey returns the token of an "Authorization: Apikey <token>" header
// (the scheme in any case), or "".
func apikey(h http.Header) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Apikey") {
		return ""
	}
	return strings.TrimSpace(token)
}

// subprotocolPrefix is how a browser, which cannot set Authorization on a
// WebSocket, presents its token: the subprotocol "apikey.<token>".
const subprotocolPrefix = "apikey."

// splitAccount splits the path after a mount point into the account and
// what follows it: "alice@example.com/abc" gives "alice@example.com" and
// "abc". The account ends at the first "/" after its "@", so that a user
// part with a "/" (which SIP allows) still parses. A path whose account is
// percent-encoded twice (Blink Qt quotes the URL it was given, which may
// be encoded already) is decoded once more: an account never holds "%".
func splitAccount(rest string) (account, tail string) {
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		account, tail, _ = strings.Cut(rest, "/")
	} else if slash := strings.IndexByte(rest[at:], '/'); slash >= 0 {
		account, tail = rest[:at+slash], rest[at+slash+1:]
	} else {
		account = rest
	}
	if strings.IndexByte(account, '%') >= 0 {
		if a, err := url.PathUnescape(account); err == nil {
			account = a
		}
	}
	return account, tail
}
