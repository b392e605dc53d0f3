package auth

import (
	"fmt"
	"strings"
)

// Limits on account names and passwords.
const (
	maxUserLen     = 64
	maxDomainLen   = 253
	minPasswordLen = 8
	maxPasswordLen = 256
)

// ParseAddress splits "user@domain" and checks both parts: the user part
// takes letters, digits and RFC 3261's unreserved and user-unreserved marks;
// the domain is a host name. The domain is lowercased; the user part is kept
// as given, since SIP compares it case-sensitively.
func ParseAddress(s string) (user, domain string, err error) {
	i := strings.LastIndexByte(s, '@')
	if i <= 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("auth: account %q: want user@domain", s)
	}
	user, domain = s[:i], s[i+1:]
	if len(user) > maxUserLen || strings.IndexFunc(user, func(r rune) bool { return !userChar(r) }) >= 0 {
		return "", "", fmt.Errorf("auth: account %q: the user part takes at most %d of A-Z a-z 0-9 - _ . ! ~ * ' ( ) & = + $ , ; ? /", s, maxUserLen)
	}
	// Checked before lowercasing: strings.ToLower maps some non-ASCII
	// letters to ASCII ones (KELVIN SIGN to k).
	if !validDomain(domain) {
		return "", "", fmt.Errorf("auth: account %q: %q is not a valid domain name", s, domain)
	}
	return user, strings.ToLower(domain), nil
}

func userChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		strings.ContainsRune("-_.!~*'()&=+$,;?/", r)
}

func validDomain(d string) bool {
	if d == "" || len(d) > maxDomainLen {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// CheckPasswordPolicy rejects passwords too short or too long to keep.
func CheckPasswordPolicy(what, pw string) error {
	if len(pw) < minPasswordLen || len(pw) > maxPasswordLen {
		return fmt.Errorf("auth: %s password must be %d to %d bytes long", what, minPasswordLen, maxPasswordLen)
	}
	return nil
}

// NewSIPPassword checks a SIP password against the policy and returns its HA1 values.
func NewSIPPassword(user, domain, pw string) (HA1Set, error) {
	if err := CheckPasswordPolicy("SIP", pw); err != nil {
		return HA1Set{}, err
	}
	return NewHA1Set(user, domain, pw), nil
}

// NewWebPassword checks a web password against the policy and returns its
// HA1 values (for Digest) and its slow hash (for Basic and web log-in).
func NewWebPassword(user, domain, pw string) (HA1Set, string, error) {
	if err := CheckPasswordPolicy("web", pw); err != nil {
		return HA1Set{}, "", err
	}
	hash, err := HashPassword(pw)
	return NewHA1Set(user, domain, pw), hash, err
}
