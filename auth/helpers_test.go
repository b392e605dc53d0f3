package auth

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
	"github.com/cairn-chat/cairn/store/storetest"
)

// The helpers below are the client side of the tests. They hash with the
// standard library directly, so that a test never checks auth.H against itself.

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clientResponse computes an RFC 7616 qop=auth response as a client does.
// alg is MD5, SHA-256, or either with -sess.
func clientResponse(alg, username, realm, password, method, uri, nonce, nc, cnonce string) string {
	base, sess := strings.CutSuffix(strings.ToUpper(alg), "-SESS")
	h := md5Hex
	if base == "SHA-256" {
		h = sha256Hex
	}
	ha1 := h(username + ":" + realm + ":" + password)
	if sess {
		ha1 = h(ha1 + ":" + nonce + ":" + cnonce)
	}
	ha2 := h(method + ":" + uri)
	return h(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
}

// digestClient builds the Authorization header of one answer to a challenge.
type digestClient struct {
	alg      string // "" sends no algorithm parameter (MD5, as Blink does)
	username string
	realm    string
	password string
	method   string
	uri      string
	nonce    string
	nc       string
	cnonce   string
}

func (c digestClient) header() string {
	alg := c.alg
	if alg == "" {
		alg = "MD5"
	}
	resp := clientResponse(alg, c.username, c.realm, c.password, c.method, c.uri, c.nonce, c.nc, c.cnonce)
	h := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", cnonce="%s", nc=%s, qop="auth", opaque="%s"`,
		c.username, c.realm, c.nonce, c.uri, resp, c.cnonce, c.nc, md5Hex(c.realm))
	if c.alg != "" {
		h += ", algorithm=" + c.alg
	}
	return h
}

// fakeAccounts is an AccountGetter over a map keyed by user@domain.
type fakeAccounts struct {
	accounts map[string]store.Account
	err      error // returned for every lookup when set
}

func (f *fakeAccounts) AccountGet(_ context.Context, user, domain string) (store.Account, error) {
	if f.err != nil {
		return store.Account{}, f.err
	}
	a, ok := f.accounts[user+"@"+domain]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

func testKey(b byte) []byte {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = b + byte(i)
	}
	return key
}

func newTestKeyring(t testing.TB, b byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(testKey(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// webHash is the argon2id hash of testWebPassword, computed once: argon2id is
// slow on purpose.
var webHash = sync.OnceValue(func() string {
	h, err := HashPassword(testWebPassword)
	if err != nil {
		panic(err)
	}
	return h
})

const (
	testSIPPassword = "sip-secret-1"
	testWebPassword = "web-secret-1"
	testBobPassword = "bob-secret-1"
	testRealm       = "example.com"
	testURI         = "/settings.phtml?realm=example.com&action=get_journal_entries&except_uuid=urn:uuid:22222222-2222-4222-8222-222222222222&after_timestamp=1423476730&summary=1"
)

// authEnv is an HTTP authenticator over three accounts: alice@example.com
// with a SIP and a web password, bob@other.org with a SIP password only, and
// the RFC 7616 example account Mufasa in realm http-auth@example.org.
type authEnv struct {
	http     *HTTP
	nonces   *Nonces
	clock    *storetest.Clock
	accounts *fakeAccounts
}

func newAuthEnv(t testing.TB) *authEnv {
	t.Helper()
	keys := newTestKeyring(t, 1)
	clock := storetest.NewClock(time.Date(2015, 2, 9, 10, 12, 10, 0, time.UTC))
	nonces := NewNonces(keys, 5*time.Minute, 1024, clock.Now)
	accts := &fakeAccounts{accounts: make(map[string]store.Account)}
	add := func(id int64, user, domain string, c Credentials, web string) {
		a := store.Account{ID: id, User: user, Domain: domain, WebHash: web}
		sealed, err := keys.Seal(a.Address(), c)
		if err != nil {
			t.Fatal(err)
		}
		a.Credentials = sealed
		accts.accounts[a.Address()] = a
	}
	add(1, "alice", testRealm, NewCredentials("alice", testRealm, testSIPPassword, testWebPassword), webHash())
	add(2, "bob", "other.org", NewCredentials("bob", "other.org", testBobPassword, ""), "")
	add(3, rfc7616User, rfc7616Realm, NewCredentials(rfc7616User, rfc7616Realm, rfc7616Password, ""), "")
	return &authEnv{http: NewHTTP(NewDigest(accts, keys, nonces)), nonces: nonces, clock: clock, accounts: accts}
}
