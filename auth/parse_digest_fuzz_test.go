package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseDigest checks, for any header, that ParseDigest does not panic,
// fails only with its own errors, returns only complete answers, and that an
// answer it accepts, written out again, parses to the same thing.
func FuzzParseDigest(f *testing.F) {
	for _, h := range digestExamples(f) {
		f.Add(h)
	}
	f.Add(`Digest username="al\"ice", realm="", nonce="n", uri="/", response="R", cnonce="c", nc=00000001, qop="auth", algorithm=sha-256-sess`)
	f.Add("Digest ")
	f.Add("Basic YWxpY2U6cHc=")
	f.Fuzz(func(t *testing.T, header string) {
		d, err := ParseDigest(header)
		if err != nil {
			if !errors.Is(err, ErrNotDigest) && !errors.Is(err, ErrBadDigest) && !errors.Is(err, ErrAlgorithm) && !errors.Is(err, ErrQOP) {
				t.Fatalf("ParseDigest(%q): unexpected error %v", header, err)
			}
			return
		}
		if len(header) > maxHeaderSize {
			t.Fatalf("accepted a %d-byte header", len(header))
		}
		if d.Username == "" || d.Nonce == "" || d.URI == "" || d.Response == "" || d.CNonce == "" {
			t.Fatalf("ParseDigest(%q) = %+v: a required field is empty", header, d)
		}
		if d.Algorithm != MD5 && d.Algorithm != SHA256 {
			t.Fatalf("ParseDigest(%q): algorithm %q", header, d.Algorithm)
		}
		if d.QOP != "auth" {
			t.Fatalf("ParseDigest(%q): qop %q", header, d.QOP)
		}
		if n, err := strconv.ParseUint(d.NC, 16, 64); len(d.NC) != 8 || err != nil || n != d.Count {
			t.Fatalf("ParseDigest(%q): nc %q, count %d", header, d.NC, d.Count)
		}
		if d.Response != strings.ToLower(d.Response) {
			t.Fatalf("ParseDigest(%q): response %q not lowercased", header, d.Response)
		}
		again := formatDigest(d)
		if len(again) > maxHeaderSize {
			return // escaping made it longer than the limit
		}
		d2, err := ParseDigest(again)
		if err != nil || d2 != d {
			t.Fatalf("round trip of %q through %q:\n got %+v, %v\nwant %+v", header, again, d2, err, d)
		}
	})
}

// formatDigest writes d as a client would, quoting every string value.
func formatDigest(d DigestResponse) string {
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	alg := string(d.Algorithm)
	if d.Sess {
		alg += "-sess"
	}
	return fmt.Sprintf("Digest username=%s, realm=%s, nonce=%s, uri=%s, response=%s, algorithm=%s, opaque=%s, qop=%s, nc=%s, cnonce=%s",
		q(d.Username), q(d.Realm), q(d.Nonce), q(d.URI), q(d.Response), alg, q(d.Opaque), d.QOP, d.NC, q(d.CNonce))
}
