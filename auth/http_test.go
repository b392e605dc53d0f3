package auth

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuthenticateDigest(t *testing.T) {
	t.Parallel()
	// alice answers a fresh MD5 challenge for example.com the way Blink does.
	alice := func(e *authEnv) digestClient {
		return digestClient{
			username: "alice", realm: testRealm, password: testSIPPassword, method: "GET", uri: testURI,
			nonce: e.nonces.Issue(testRealm), nc: "00000001", cnonce: "0a4f113b",
		}
	}
	// mufasa answers with the RFC 7616 §3.9.1 parameters, but our nonce.
	mufasa := func(alg string) func(e *authEnv) digestClient {
		return func(e *authEnv) digestClient {
			return digestClient{
				alg: alg, username: rfc7616User, realm: rfc7616Realm, password: rfc7616Password, method: "GET",
				uri: rfc7616URI, nonce: e.nonces.Issue(rfc7616Realm), nc: "00000001", cnonce: rfc7616CNonce,
			}
		}
	}
	with := func(f func(*digestClient)) func(e *authEnv) digestClient {
		return func(e *authEnv) digestClient {
			c := alice(e)
			f(&c)
			return c
		}
	}
	tests := []struct {
		name     string
		target   string // request target; testURI when ""
		realm    string // realm the request is checked in; testRealm when ""
		client   func(e *authEnv) digestClient
		before   func(e *authEnv)      // runs after the client is built, e.g. to let time pass
		header   func(h string) string // rewrites the header, when set
		wantErr  error
		wantUser string // user@domain authenticated, when wantErr is nil
	}{
		{name: "MD5 without algorithm, SIP password (Blink)", client: alice, wantUser: "alice@example.com"},
		{name: "MD5 without algorithm, web password", client: with(func(c *digestClient) { c.password = testWebPassword }), wantUser: "alice@example.com"},
		{name: "algorithm=MD5", client: with(func(c *digestClient) { c.alg = "MD5" }), wantUser: "alice@example.com"},
		{name: "algorithm=SHA-256, SIP password", client: with(func(c *digestClient) { c.alg = "SHA-256" }), wantUser: "alice@example.com"},
		{name: "algorithm=SHA-256, web password", client: with(func(c *digestClient) { c.alg = "SHA-256"; c.password = testWebPassword }), wantUser: "alice@example.com"},
		{name: "algorithm=MD5-sess", client: with(func(c *digestClient) { c.alg = "MD5-sess" }), wantUser: "alice@example.com"},
		{name: "algorithm=SHA-256-sess, web password", client: with(func(c *digestClient) { c.alg = "SHA-256-sess"; c.password = testWebPassword }), wantUser: "alice@example.com"},
		{name: "username user@domain, MD5", client: with(func(c *digestClient) { c.username = "alice@example.com" }), wantUser: "alice@example.com"},
		{name: "username user@domain, SHA-256, web password", client: with(func(c *digestClient) {
			c.username, c.alg, c.password = "alice@example.com", "SHA-256", testWebPassword
		}), wantUser: "alice@example.com"},
		{name: "RFC 7616 example parameters, MD5", target: rfc7616URI, realm: rfc7616Realm, client: mufasa("MD5"), wantUser: "Mufasa@http-auth@example.org"},
		{name: "RFC 7616 example parameters, SHA-256", target: rfc7616URI, realm: rfc7616Realm, client: mufasa("SHA-256"), wantUser: "Mufasa@http-auth@example.org"},
		{name: "response in upper-case hex", client: alice, header: func(h string) string {
			re := regexp.MustCompile(`response="[0-9a-f]+"`)
			return re.ReplaceAllStringFunc(h, strings.ToUpper)
		}, wantUser: "alice@example.com"},
		{name: "lower-case scheme", client: alice, header: func(h string) string { return "digest" + strings.TrimPrefix(h, "Digest") }, wantUser: "alice@example.com"},
		{name: "origin-form uri for an absolute-form request", target: "http://cairn.example.com" + testURI, client: alice, wantUser: "alice@example.com"},

		{name: "user@domain whose domain is not the realm", client: with(func(c *digestClient) {
			c.username, c.password = "bob@other.org", testBobPassword
		}), wantErr: ErrBadCredentials},
		{name: "user@domain whose domain is not the realm, hashed for it", client: with(func(c *digestClient) {
			c.username, c.realm, c.password = "bob@other.org", "other.org", testBobPassword
		}), wantErr: ErrBadCredentials},
		{name: "wrong password", client: with(func(c *digestClient) { c.password = "not-the-password" }), wantErr: ErrBadCredentials},
		{name: "realm in another case hashes to another HA1", client: with(func(c *digestClient) { c.realm = "EXAMPLE.com" }), wantErr: ErrBadCredentials},
		{name: "unknown account", client: with(func(c *digestClient) { c.username = "carol" }), wantErr: ErrBadCredentials},
		{name: "unknown account as user@domain", client: with(func(c *digestClient) { c.username = "carol@example.com" }), wantErr: ErrBadCredentials},
		{name: "header realm is not the request realm", realm: "example.org", client: alice, wantErr: ErrBadCredentials},
		{name: "uri names another resource", client: with(func(c *digestClient) { c.uri = "/settings.phtml?action=get_history" }), wantErr: ErrBadCredentials},
		{name: "nonce for another realm", client: with(func(c *digestClient) { c.nonce = "" }), wantErr: ErrBadCredentials}, // "" means: issued for other.org
		{name: "nonce not made by us (RFC 7616 verbatim)", target: rfc7616URI, realm: rfc7616Realm, client: func(*authEnv) digestClient {
			return digestClient{
				alg: "MD5", username: rfc7616User, realm: rfc7616Realm, password: rfc7616Password, method: "GET",
				uri: rfc7616URI, nonce: rfc7616Nonce, nc: "00000001", cnonce: rfc7616CNonce,
			}
		}, wantErr: ErrBadCredentials},
		{name: "tampered nonce", client: with(func(c *digestClient) {
			b := []byte(c.nonce)
			if b[3] = 'A'; c.nonce[3] == 'A' {
				b[3] = 'B'
			}
			c.nonce = string(b) // still base64url, but the MAC no longer matches
		}), wantErr: ErrBadCredentials},
		{name: "expired nonce, right password", client: alice, before: func(e *authEnv) { e.clock.Advance(5 * time.Minute) }, wantErr: ErrStale},
		{name: "expired nonce, wrong password", client: with(func(c *digestClient) { c.password = "not-the-password" }),
			before: func(e *authEnv) { e.clock.Advance(5 * time.Minute) }, wantErr: ErrBadCredentials},
		{name: "nonce close to expiry", client: alice, before: func(e *authEnv) { e.clock.Advance(5*time.Minute - time.Second) }, wantUser: "alice@example.com"},
		{name: "qop missing (RFC 2069)", client: alice, header: func(h string) string { return strings.Replace(h, `, qop="auth"`, "", 1) }, wantErr: ErrBadCredentials},
		{name: "unsupported algorithm", client: alice, header: func(h string) string { return h + ", algorithm=SHA-512-256" }, wantErr: ErrBadCredentials},
		{name: "malformed header", client: alice, header: func(h string) string { return h + `, x="unterminated` }, wantErr: ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newAuthEnv(t)
			c := tt.client(e)
			if c.nonce == "" {
				c.nonce = e.nonces.Issue("other.org")
			}
			if tt.before != nil {
				tt.before(e)
			}
			target, realm := tt.target, tt.realm
			if target == "" {
				target = testURI
			}
			if realm == "" {
				realm = testRealm
			}
			h := c.header()
			if tt.header != nil {
				h = tt.header(h)
			}
			r := httptest.NewRequest(c.method, target, nil)
			r.Header.Set("Authorization", h)
			acct, err := e.http.Authenticate(r, realm)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Authenticate(%s) = %v, want %v", h, err, tt.wantErr)
			}
			if err == nil && acct.Address() != tt.wantUser {
				t.Errorf("authenticated %s, want %s", acct.Address(), tt.wantUser)
			}
		})
	}
}

func TestAuthenticateDigestNonceCount(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	nonce := e.nonces.Issue(testRealm)
	try := func(nc, password string) error {
		c := digestClient{
			username: "alice", realm: testRealm, password: password, method: "GET", uri: testURI,
			nonce: nonce, nc: nc, cnonce: "cnonce-" + nc,
		}
		r := httptest.NewRequest("GET", testURI, nil)
		r.Header.Set("Authorization", c.header())
		_, err := e.http.Authenticate(r, testRealm)
		return err
	}
	steps := []struct {
		nc, password string
		want         error
	}{
		{"00000001", testSIPPassword, nil},
		{"00000001", testSIPPassword, ErrStale}, // replay
		{"00000002", testWebPassword, nil},      // higher count, either password
		{"00000002", testSIPPassword, ErrStale},
		{"00000001", testSIPPassword, ErrStale}, // lower count
		{"00000005", "not-the-password", ErrBadCredentials},
		{"00000005", testSIPPassword, nil}, // the wrong guess burnt nothing
		{"0000000a", testSIPPassword, nil}, // counts are hex
		{"00000009", testSIPPassword, ErrStale},
	}
	for i, s := range steps {
		if err := try(s.nc, s.password); !errors.Is(err, s.want) {
			t.Fatalf("step %d (nc=%s): %v, want %v", i, s.nc, err, s.want)
		}
	}
}

// Every goroutine replays the same answer: exactly one of them gets in.
func TestAuthenticateDigestConcurrentReplay(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	c := digestClient{
		username: "alice", realm: testRealm, password: testSIPPassword, method: "GET", uri: testURI,
		nonce: e.nonces.Issue(testRealm), nc: "00000001", cnonce: "0a4f113b",
	}
	h := c.header()
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r := httptest.NewRequest("GET", testURI, nil)
			r.Header.Set("Authorization", h)
			_, errs[i] = e.http.Authenticate(r, testRealm)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrStale):
			t.Errorf("replay: %v, want nil or ErrStale", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d identical answers accepted, want 1", ok, n)
	}
}

func TestAuthenticateNoCredentials(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	for _, h := range []string{"", "Bearer abc", "Apikey abc", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+testSIPPassword))} {
		r := httptest.NewRequest("GET", testURI, nil) // plain HTTP: r.TLS is nil
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		if _, err := e.http.Authenticate(r, testRealm); !errors.Is(err, ErrNoCredentials) {
			t.Errorf("Authorization %q: %v, want ErrNoCredentials", h, err)
		}
	}
}

func TestAuthenticateBasic(t *testing.T) {
	t.Parallel()
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name     string
		header   string
		realm    string // testRealm when ""
		noTLS    bool
		wantErr  error
		wantUser string
	}{
		{name: "SIP password over TLS", header: basic("alice:" + testSIPPassword), wantUser: "alice@example.com"},
		{name: "web password over TLS", header: basic("alice:" + testWebPassword), wantUser: "alice@example.com"},
		{name: "user@domain, web password", header: basic("alice@example.com:" + testWebPassword), wantUser: "alice@example.com"},
		{name: "lower-case scheme", header: "basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+testSIPPassword)), wantUser: "alice@example.com"},
		{name: "password with a colon", header: basic("alice:" + testSIPPassword + ":"), wantErr: ErrBadCredentials},
		// Basic carries the password itself, so the domain of a user@domain
		// username names the account whatever realm the request named.
		{name: "user@domain of another realm", header: basic("bob@other.org:" + testBobPassword), wantUser: "bob@other.org"},
		{name: "user@domain of another realm, wrong password", header: basic("bob@other.org:" + testSIPPassword), wantErr: ErrBadCredentials},
		{name: "SIP password without TLS", header: basic("alice:" + testSIPPassword), noTLS: true, wantErr: ErrNoCredentials},
		{name: "web password without TLS", header: basic("alice:" + testWebPassword), noTLS: true, wantErr: ErrNoCredentials},
		{name: "wrong password", header: basic("alice:not-the-password"), wantErr: ErrBadCredentials},
		{name: "empty password", header: basic("alice:"), wantErr: ErrBadCredentials},
		{name: "password of another account", header: basic("alice:" + testBobPassword), wantErr: ErrBadCredentials},
		{name: "unknown account", header: basic("carol:" + testSIPPassword), wantErr: ErrBadCredentials},
		{name: "bob without domain in alice's realm", header: basic("bob:" + testBobPassword), wantErr: ErrBadCredentials},
		{name: "no colon", header: basic("alice"), wantErr: ErrBadCredentials},
		{name: "not base64", header: "Basic !!!", wantErr: ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newAuthEnv(t)
			r := httptest.NewRequest("GET", testURI, nil)
			if !tt.noTLS {
				r.TLS = &tls.ConnectionState{}
			}
			r.Header.Set("Authorization", tt.header)
			realm := tt.realm
			if realm == "" {
				realm = testRealm
			}
			acct, err := e.http.Authenticate(r, realm)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Authenticate = %v, want %v", err, tt.wantErr)
			}
			if err == nil && acct.Address() != tt.wantUser {
				t.Errorf("authenticated %s, want %s", acct.Address(), tt.wantUser)
			}
		})
	}
}

// While the slow-hash slots are taken, a Basic check with the web password
// gives up when its request does.
func TestAuthenticateBasicHonoursContext(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	for range cap(e.http.slow) {
		e.http.slow <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", testURI, nil)
	r.TLS = &tls.ConnectionState{}
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:"+testWebPassword)))
	if _, err := e.http.Authenticate(r, testRealm); !errors.Is(err, context.Canceled) {
		t.Fatalf("Authenticate = %v, want context.Canceled", err)
	}
	// Every failure takes a slot too, known account or not, so that the time
	// an answer takes does not tell which accounts exist.
	for _, userPass := range []string{"carol:some-password", "alice:not-the-password", "bob@other.org:not-the-password"} {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(userPass)))
		if _, err := e.http.Authenticate(r, testRealm); !errors.Is(err, context.Canceled) {
			t.Errorf("Authenticate(%s) = %v, want it waiting for a slow-hash slot", userPass, err)
		}
	}
	// The SIP password needs no slot.
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:"+testSIPPassword)))
	if _, err := e.http.Authenticate(r, testRealm); err != nil {
		t.Fatalf("Authenticate with the SIP password = %v", err)
	}
}

func TestAuthenticateServerFaults(t *testing.T) {
	t.Parallel()
	sentinels := []error{ErrNoCredentials, ErrBadCredentials, ErrStale}
	isSentinel := func(err error) bool {
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return true
			}
		}
		return false
	}

	t.Run("store down", func(t *testing.T) {
		t.Parallel()
		e := newAuthEnv(t)
		down := errors.New("connection refused")
		e.accounts.err = down
		c := digestClient{username: "alice", realm: testRealm, password: testSIPPassword, method: "GET",
			uri: testURI, nonce: e.nonces.Issue(testRealm), nc: "00000001", cnonce: "x"}
		r := httptest.NewRequest("GET", testURI, nil)
		r.Header.Set("Authorization", c.header())
		_, err := e.http.Authenticate(r, testRealm)
		if !errors.Is(err, down) || isSentinel(err) {
			t.Errorf("Authenticate = %v, want a server fault wrapping %v", err, down)
		}
	})

	t.Run("credentials sealed with another key", func(t *testing.T) {
		t.Parallel()
		e := newAuthEnv(t)
		other := newTestKeyring(t, 2)
		a := e.accounts.accounts["alice@example.com"]
		var err error
		if a.Credentials, err = other.Seal(a.Address(), NewCredentials("alice", testRealm, testSIPPassword, "")); err != nil {
			t.Fatal(err)
		}
		e.accounts.accounts[a.Address()] = a
		r := httptest.NewRequest("GET", testURI, nil)
		r.TLS = &tls.ConnectionState{}
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:"+testSIPPassword)))
		_, err = e.http.Authenticate(r, testRealm)
		if !errors.Is(err, ErrUnseal) || isSentinel(err) {
			t.Errorf("Authenticate = %v, want a server fault wrapping ErrUnseal", err)
		}
	})
}

func TestChallenge(t *testing.T) {
	t.Parallel()
	challenge := regexp.MustCompile(`^Digest realm="example\.com", qop="auth", nonce="([A-Za-z0-9_-]+)", opaque="([0-9a-f]{32})"(.*)$`)
	for _, stale := range []bool{false, true} {
		e := newAuthEnv(t)
		w := httptest.NewRecorder()
		e.http.Challenge(w, testRealm, stale)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("stale=%v: status %d, want 401", stale, w.Code)
		}
		got := w.Result().Header.Values("WWW-Authenticate")
		if len(got) != 2 {
			t.Fatalf("stale=%v: WWW-Authenticate = %q, want two challenges", stale, got)
		}
		staleParam := ""
		if stale {
			staleParam = ", stale=true"
		}
		// MD5 first and written as cdrtool wrote it, with no algorithm
		// parameter: Blink was built against that. Then SHA-256.
		for i, wantTail := range []string{staleParam, ", algorithm=SHA-256" + staleParam} {
			m := challenge.FindStringSubmatch(got[i])
			if m == nil {
				t.Fatalf("stale=%v: challenge %d = %q, want the cdrtool form", stale, i, got[i])
			}
			if m[3] != wantTail {
				t.Errorf("stale=%v: challenge %d ends %q, want %q", stale, i, m[3], wantTail)
			}
			if m[2] != md5Hex(testRealm) {
				t.Errorf("opaque = %s, want md5(realm) as cdrtool sends", m[2])
			}
			if c := e.nonces.Check(m[1], testRealm); c != NonceValid {
				t.Errorf("challenge nonce: Check = %v, want NonceValid", c)
			}
			// The challenge parses with the same parameter grammar as the answer.
			params, err := parseAuthParams(strings.TrimPrefix(got[i], "Digest "))
			if err != nil || params["realm"] != testRealm || params["qop"] != "auth" {
				t.Errorf("challenge %d: params %v, %v", i, params, err)
			}
		}
		if got[0] == got[1] {
			t.Error("both challenges are identical")
		}
	}
}

// An answer computed for the challenge's nonce and algorithm is accepted:
// the full round trip a client makes.
func TestChallengeThenAnswer(t *testing.T) {
	t.Parallel()
	for i, alg := range []string{"", "SHA-256"} {
		e := newAuthEnv(t)
		w := httptest.NewRecorder()
		e.http.Challenge(w, testRealm, false)
		params, err := parseAuthParams(strings.TrimPrefix(w.Result().Header.Values("WWW-Authenticate")[i], "Digest "))
		if err != nil {
			t.Fatal(err)
		}
		c := digestClient{alg: alg, username: "alice", realm: params["realm"], password: testWebPassword,
			method: "POST", uri: testURI, nonce: params["nonce"], nc: "00000001", cnonce: "abc"}
		r := httptest.NewRequest("POST", testURI, strings.NewReader("uuid=x"))
		r.Header.Set("Authorization", c.header())
		acct, err := e.http.Authenticate(r, testRealm)
		if err != nil || acct.ID != 1 || acct.Address() != "alice@example.com" {
			t.Errorf("alg %q: Authenticate = %+v, %v", alg, acct, err)
		}
	}
}

var _ AccountGetter = (*fakeAccounts)(nil)
