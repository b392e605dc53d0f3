package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// digestExamples returns the header values in testdata/digest, by file name.
func digestExamples(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "digest", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in testdata/digest: %v", err)
	}
	out := make(map[string]string, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = strings.TrimRight(string(b), "\r\n")
	}
	return out
}

func TestParseDigestExamples(t *testing.T) {
	t.Parallel()
	want := map[string]DigestResponse{
		"rfc7616-md5.txt": {
			Username: "Mufasa", Realm: rfc7616Realm, Nonce: rfc7616Nonce, URI: rfc7616URI, Response: rfc7616MD5,
			Algorithm: MD5, Opaque: rfc7616Opaque, QOP: "auth", NC: "00000001", Count: 1, CNonce: rfc7616CNonce,
		},
		"rfc7616-sha256.txt": {
			Username: "Mufasa", Realm: rfc7616Realm, Nonce: rfc7616Nonce, URI: rfc7616URI, Response: rfc7616SHA256,
			Algorithm: SHA256, Opaque: rfc7616Opaque, QOP: "auth", NC: "00000001", Count: 1, CNonce: rfc7616CNonce,
		},
		"rfc2617.txt": {
			Username: "Mufasa", Realm: rfc2617Realm, Nonce: rfc2617Nonce, URI: rfc7616URI, Response: rfc2617Response,
			Algorithm: MD5, Opaque: rfc2617Opaque, QOP: "auth", NC: "00000001", Count: 1, CNonce: rfc2617CNonce,
		},
	}
	for name, h := range digestExamples(t) {
		d, err := ParseDigest(h)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if w, ok := want[name]; ok && d != w {
			t.Errorf("%s:\n got %+v\nwant %+v", name, d, w)
		}
		// Every example's response is right for its own parameters.
		pw := map[string]string{"Mufasa": rfc7616Password, "alice": testSIPPassword, "alice@example.com": testWebPassword}[d.Username]
		if d.Realm == rfc2617Realm {
			pw = rfc2617Password
		}
		method := "GET"
		if strings.Contains(d.URI, "put_journal_entries") {
			method = "POST"
		}
		alg := string(d.Algorithm)
		if d.Sess {
			alg += "-sess"
		}
		got := clientResponse(alg, d.Username, d.Realm, pw, method, d.URI, d.Nonce, d.NC, d.CNonce)
		if got != d.Response && clientResponse(alg, d.Username, d.Realm, testWebPassword, method, d.URI, d.Nonce, d.NC, d.CNonce) != d.Response {
			t.Errorf("%s: response %s is not right for its parameters", name, d.Response)
		}
	}
}

func TestParseDigest(t *testing.T) {
	t.Parallel()
	const base = `username="alice", realm="example.com", nonce="n", uri="/s", response="ABCDEF", cnonce="c", nc=0000002a, qop=auth`
	tests := []struct {
		name    string
		header  string
		wantErr error
		check   func(d DigestResponse) bool
	}{
		{name: "base", header: "Digest " + base, check: func(d DigestResponse) bool {
			return d.Username == "alice" && d.Realm == "example.com" && d.Nonce == "n" && d.URI == "/s" &&
				d.Response == "abcdef" && d.CNonce == "c" && d.NC == "0000002a" && d.Count == 42 &&
				d.QOP == "auth" && d.Algorithm == MD5 && !d.Sess && d.Opaque == ""
		}},
		{name: "scheme in lower case", header: "digest " + base},
		{name: "scheme in upper case, leading space", header: "  DIGEST " + base},
		{name: "quoted qop", header: "Digest " + strings.Replace(base, "qop=auth", `qop="auth"`, 1)},
		{name: "names in any case", header: `Digest UserName="alice", REALM="example.com", Nonce="n", URI="/s", Response="ab", CNonce="c", NC=00000001, QOP=auth`},
		{name: "no spaces after commas", header: "Digest " + strings.ReplaceAll(base, ", ", ",")},
		{name: "no commas", header: "Digest " + strings.ReplaceAll(base, ", ", " ")},
		{name: "spaces around =", header: `Digest username = "alice", realm= "example.com", nonce ="n", uri="/s", response="ab", cnonce="c", nc=00000001, qop=auth`},
		{name: "tabs", header: "Digest " + strings.ReplaceAll(base, ", ", ",\t")},
		{name: "trailing comma", header: "Digest " + base + ","},
		{name: "escaped quote", header: `Digest username="al\"ice", realm="example.com", nonce="n", uri="/s", response="ab", cnonce="c", nc=00000001, qop=auth`,
			check: func(d DigestResponse) bool { return d.Username == `al"ice` }},
		{name: "escaped backslash", header: `Digest username="al\\ice", realm="example.com", nonce="n", uri="/s", response="ab", cnonce="c", nc=00000001, qop=auth`,
			check: func(d DigestResponse) bool { return d.Username == `al\ice` }},
		{name: "comma inside a quoted uri", header: `Digest username="alice", realm="example.com", nonce="n", uri="/s?a=1,2", response="ab", cnonce="c", nc=00000001, qop=auth`,
			check: func(d DigestResponse) bool { return d.URI == "/s?a=1,2" }},
		{name: "empty realm is present", header: "Digest " + strings.Replace(base, `realm="example.com"`, `realm=""`, 1),
			check: func(d DigestResponse) bool { return d.Realm == "" }},
		{name: "algorithm MD5", header: "Digest " + base + ", algorithm=MD5", check: func(d DigestResponse) bool { return d.Algorithm == MD5 && !d.Sess }},
		{name: "algorithm md5 quoted", header: "Digest " + base + `, algorithm="md5"`, check: func(d DigestResponse) bool { return d.Algorithm == MD5 }},
		{name: "algorithm SHA-256", header: "Digest " + base + ", algorithm=SHA-256", check: func(d DigestResponse) bool { return d.Algorithm == SHA256 && !d.Sess }},
		{name: "algorithm MD5-sess", header: "Digest " + base + ", algorithm=MD5-sess", check: func(d DigestResponse) bool { return d.Algorithm == MD5 && d.Sess }},
		{name: "algorithm sha-256-SESS", header: "Digest " + base + ", algorithm=sha-256-SESS", check: func(d DigestResponse) bool { return d.Algorithm == SHA256 && d.Sess }},
		{name: "unknown parameters ignored", header: "Digest " + base + `, userhash=false, foo="bar"`},
		{name: "nc ffffffff", header: "Digest " + strings.Replace(base, "nc=0000002a", "nc=FFFFFFFF", 1), check: func(d DigestResponse) bool { return d.Count == 1<<32-1 && d.NC == "FFFFFFFF" }},

		{name: "empty", header: "", wantErr: ErrNotDigest},
		{name: "scheme only", header: "Digest", wantErr: ErrBadDigest},
		{name: "Basic", header: "Basic YWxpY2U6cHc=", wantErr: ErrNotDigest},
		{name: "Digestion", header: "Digestion " + base, wantErr: ErrNotDigest},
		{name: "tab after scheme", header: "Digest\t" + base, wantErr: ErrNotDigest},
		{name: "missing username", header: "Digest " + strings.Replace(base, `username="alice", `, "", 1), wantErr: ErrBadDigest},
		{name: "empty username", header: "Digest " + strings.Replace(base, `username="alice"`, `username=""`, 1), wantErr: ErrBadDigest},
		{name: "username* only", header: "Digest " + strings.Replace(base, `username="alice"`, `username*=UTF-8''alice`, 1), wantErr: ErrBadDigest},
		{name: "missing realm", header: "Digest " + strings.Replace(base, `realm="example.com", `, "", 1), wantErr: ErrBadDigest},
		{name: "missing nonce", header: "Digest " + strings.Replace(base, `nonce="n", `, "", 1), wantErr: ErrBadDigest},
		{name: "missing uri", header: "Digest " + strings.Replace(base, `uri="/s", `, "", 1), wantErr: ErrBadDigest},
		{name: "missing response", header: "Digest " + strings.Replace(base, `response="ABCDEF", `, "", 1), wantErr: ErrBadDigest},
		{name: "missing cnonce", header: "Digest " + strings.Replace(base, `cnonce="c", `, "", 1), wantErr: ErrBadDigest},
		{name: "missing nc", header: "Digest " + strings.Replace(base, `nc=0000002a, `, "", 1), wantErr: ErrBadDigest},
		{name: "short nc", header: "Digest " + strings.Replace(base, `nc=0000002a`, `nc=2a`, 1), wantErr: ErrBadDigest},
		{name: "long nc", header: "Digest " + strings.Replace(base, `nc=0000002a`, `nc=00000000002a`, 1), wantErr: ErrBadDigest},
		{name: "nc not hex", header: "Digest " + strings.Replace(base, `nc=0000002a`, `nc=0000002g`, 1), wantErr: ErrBadDigest},
		{name: "nc with sign", header: "Digest " + strings.Replace(base, `nc=0000002a`, `nc=+000002a`, 1), wantErr: ErrBadDigest},
		{name: "nc with 0x", header: "Digest " + strings.Replace(base, `nc=0000002a`, `nc=0x00002a`, 1), wantErr: ErrBadDigest},
		{name: "no qop (RFC 2069)", header: "Digest " + strings.Replace(base, `, qop=auth`, "", 1), wantErr: ErrQOP},
		{name: "qop auth-int", header: "Digest " + strings.Replace(base, `qop=auth`, `qop=auth-int`, 1), wantErr: ErrQOP},
		{name: "qop list", header: "Digest " + strings.Replace(base, `qop=auth`, `qop="auth,auth-int"`, 1), wantErr: ErrQOP},
		{name: "algorithm SHA-512-256", header: "Digest " + base + ", algorithm=SHA-512-256", wantErr: ErrAlgorithm},
		{name: "algorithm -sess alone", header: "Digest " + base + ", algorithm=-sess", wantErr: ErrAlgorithm},
		{name: "algorithm MD4 quoted", header: "Digest " + base + `, algorithm="MD4"`, wantErr: ErrAlgorithm},
		{name: "repeated parameter", header: "Digest " + base + `, username="bob"`, wantErr: ErrBadDigest},
		{name: "repeated parameter in another case", header: "Digest " + base + `, USERNAME="alice"`, wantErr: ErrBadDigest},
		{name: "unterminated quote", header: "Digest " + base + `, opaque="abc`, wantErr: ErrBadDigest},
		{name: "backslash at the end", header: "Digest " + base + `, opaque="abc\`, wantErr: ErrBadDigest},
		{name: "no =", header: "Digest " + base + ", stale", wantErr: ErrBadDigest},
		{name: "empty name", header: "Digest " + base + `, ="x"`, wantErr: ErrBadDigest},
		{name: "too long", header: "Digest " + base + `, opaque="` + strings.Repeat("x", maxHeaderSize) + `"`, wantErr: ErrBadDigest},
	}
	for _, tt := range tests {
		d, err := ParseDigest(tt.header)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: ParseDigest(%q) error %v, want %v", tt.name, tt.header, err, tt.wantErr)
			continue
		}
		if tt.check != nil && !tt.check(d) {
			t.Errorf("%s: ParseDigest(%q) = %+v", tt.name, tt.header, d)
		}
	}
}
