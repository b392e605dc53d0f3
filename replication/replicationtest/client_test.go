package replicationtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// MD5: RFC 2617 §3.5. SHA-256: the same inputs through Python's hashlib.
func TestDigestResponse(t *testing.T) {
	t.Parallel()
	tests := []struct{ alg, want string }{
		{"", "6629fae49393a05397450978507c4ef1"},
		{"MD5", "6629fae49393a05397450978507c4ef1"},
		{"SHA-256", "5abdd07184ba512a22c53f41470e5eea7dcaa3a93a59b630c13dfe0a5dc6e38b"},
		{"SHA-512-256", ""},
	}
	for _, tt := range tests {
		got := digestResponse(tt.alg, "Mufasa", "testrealm@host.com", "Circle Of Life",
			"dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "GET", "/dir/index.html")
		if got != tt.want {
			t.Errorf("%q response = %q, want %q", tt.alg, got, tt.want)
		}
	}
}

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Add("WWW-Authenticate", `Basic realm="x"`)
	h.Add("WWW-Authenticate", `Digest realm="example.com", qop="auth", nonce="n1", opaque="o\"1"`)
	h.Add("WWW-Authenticate", `Digest realm="example.com", qop="auth", nonce="n2", opaque="o", algorithm=SHA-256, stale=true`)
	got := ParseChallenges(h)
	if len(got) != 2 {
		t.Fatalf("ParseChallenges = %+v, want 2 Digest challenges", got)
	}
	if c := got[0]; c.Realm != "example.com" || c.QOP != "auth" || c.Nonce != "n1" || c.Opaque != `o"1` || c.Algorithm != "" || c.Stale {
		t.Errorf("first challenge = %+v", c)
	}
	if c := got[1]; c.Nonce != "n2" || c.Algorithm != "SHA-256" || !c.Stale {
		t.Errorf("second challenge = %+v", c)
	}
}

// TestClientDo checks what goes on the wire: the raw query, no Content-Type,
// the body on both tries, and a Digest uri equal to the request-target.
func TestClientDo(t *testing.T) {
	t.Parallel()
	type seen struct {
		uri, contentType, auth string
		hasContentType         bool
		body                   []byte
	}
	var mu sync.Mutex
	var reqs []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, hasCT := r.Header["Content-Type"]
		mu.Lock()
		reqs = append(reqs, seen{r.RequestURI, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), hasCT, b})
		mu.Unlock()
		if r.Header.Get("Authorization") == "" {
			w.Header().Add("WWW-Authenticate", `Digest realm="example.com", qop="auth", nonce="abc", opaque="op"`)
			w.Header().Add("WWW-Authenticate", `Digest realm="example.com", qop="auth", nonce="def", opaque="op", algorithm=SHA-256`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"success":true}`))
	}))
	defer srv.Close()

	const query = "realm=example.com&action=put_journal_entries&except_uuid=urn:uuid:2222"
	body := []byte(Form("uuid", "urn:uuid:1111", "data", `{"m": {"data": "x\n", "id": "m"}}`))
	for _, alg := range []string{"", "SHA-256"} {
		mu.Lock()
		reqs = nil
		mu.Unlock()
		c := &Client{URL: srv.URL + "/settings.phtml", Username: "alice", Password: "wpw", Algorithm: alg}
		resp, err := c.Do(context.Background(), Request{Query: query, Body: body})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("Do(%q) = %v, %v", alg, resp, err)
		}
		wantNonce := map[string]string{"": "abc", "SHA-256": "def"}[alg]
		if resp.Challenge.Nonce != wantNonce {
			t.Errorf("answered nonce %q, want %q", resp.Challenge.Nonce, wantNonce)
		}
		mu.Lock()
		got := reqs
		mu.Unlock()
		if len(got) != 2 {
			t.Fatalf("server saw %d requests, want 2", len(got))
		}
		for i, r := range got {
			if r.uri != "/settings.phtml?"+query || r.hasContentType || !bytes.Equal(r.body, body) {
				t.Errorf("request %d: uri %q, Content-Type %v %q, body %q", i, r.uri, r.hasContentType, r.contentType, r.body)
			}
		}
		if a := got[1].auth; !bytes.Contains([]byte(a), []byte(`uri="/settings.phtml?`+query+`"`)) ||
			!bytes.Contains([]byte(a), []byte("qop=auth, nc=00000001")) || !bytes.Contains([]byte(a), []byte(`username="alice"`)) {
			t.Errorf("Authorization = %s", a)
		}
	}
}
