package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"strings"
)

// Algorithm is a digest algorithm of RFC 7616 / RFC 8760.
type Algorithm string

// The digest algorithms cairn accepts.
const (
	MD5    Algorithm = "MD5"
	SHA256 Algorithm = "SHA-256"
)

func (a Algorithm) hash() hash.Hash {
	if a == SHA256 {
		return sha256.New()
	}
	return md5.New()
}

// H returns the lowercase hex digest of the parts joined by ':'.
func (a Algorithm) H(parts ...string) string {
	h := a.hash()
	h.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(h.Sum(nil))
}

// HA1Set holds the HA1 values of one password for one account, realm being
// the account's domain: for the username alone (what SIP clients and Blink
// send) and for user@domain (what some web clients send).
type HA1Set struct {
	MD5        string `json:"md5"`
	SHA256     string `json:"sha256"`
	MD5Full    string `json:"md5_full"`
	SHA256Full string `json:"sha256_full"`
}

// NewHA1Set computes the HA1 values of password for user@domain.
func NewHA1Set(user, domain, password string) HA1Set {
	full := user + "@" + domain
	return HA1Set{
		MD5:        MD5.H(user, domain, password),
		SHA256:     SHA256.H(user, domain, password),
		MD5Full:    MD5.H(full, domain, password),
		SHA256Full: SHA256.H(full, domain, password),
	}
}

// get returns the HA1 for the algorithm and username form, or "".
func (s HA1Set) get(alg Algorithm, fullUsername bool) string {
	switch {
	case alg == MD5 && !fullUsername:
		return s.MD5
	case alg == MD5:
		return s.MD5Full
	case !fullUsername:
		return s.SHA256
	default:
		return s.SHA256Full
	}
}

// Credentials are the secrets of one account, sealed as a whole in the store.
// Web is nil when the account has no web password.
type Credentials struct {
	SIP HA1Set  `json:"sip"`
	Web *HA1Set `json:"web,omitempty"`
}

// clone returns a copy that shares nothing with c.
func (c Credentials) clone() Credentials {
	if c.Web != nil {
		w := *c.Web
		c.Web = &w
	}
	return c
}

// NewCredentials computes the credentials of user@domain from its SIP password
// and its optional web password ("" for none).
func NewCredentials(user, domain, sipPassword, webPassword string) Credentials {
	c := Credentials{SIP: NewHA1Set(user, domain, sipPassword)}
	if webPassword != "" {
		w := NewHA1Set(user, domain, webPassword)
		c.Web = &w
	}
	return c
}

// HA1s returns the HA1 values a digest answer may have been computed from:
// the SIP password's, then the web password's.
func (c Credentials) HA1s(alg Algorithm, fullUsername bool) []string {
	out := []string{c.SIP.get(alg, fullUsername)}
	if c.Web != nil {
		out = append(out, c.Web.get(alg, fullUsername))
	}
	return out
}

// equal compares two hex strings in constant time.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
