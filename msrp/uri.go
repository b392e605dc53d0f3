package msrp

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// URI is an MSRP URI (RFC 4975 §6): msrp or msrps, an authority, an optional
// session id and a transport. Params keeps any further ";" parameters as
// written.
type URI struct {
	Secure    bool
	User      string
	Host      string
	Port      int // 0 when absent
	SessionID string
	Transport string // lower case: tcp, ws
	Params    string
}

// ErrURI is returned for a malformed MSRP URI or path.
var ErrURI = errors.New("msrp: malformed URI")

// ParseURI parses one MSRP URI.
func ParseURI(s string) (URI, error) {
	var u URI
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok:
		return u, ErrURI
	case strings.EqualFold(scheme, "msrps"):
		u.Secure = true
	case !strings.EqualFold(scheme, "msrp"):
		return u, ErrURI
	}
	rest, params, ok := strings.Cut(rest, ";")
	if !ok {
		return u, ErrURI // the transport is mandatory
	}
	transport, more, _ := strings.Cut(params, ";")
	if transport == "" || !isToken(transport) || !isVisible(more) {
		return u, ErrURI
	}
	u.Transport, u.Params = strings.ToLower(transport), more
	authority, sid, hasSID := strings.Cut(rest, "/")
	if hasSID {
		if sid == "" || !isSessionID(sid) {
			return u, ErrURI
		}
		u.SessionID = sid
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		u.User, authority = authority[:i], authority[i+1:]
		if !isVisible(u.User) {
			return u, ErrURI
		}
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return u, ErrURI
		}
		host, port = authority[1:end], authority[end+1:]
		if net.ParseIP(host) == nil {
			return u, ErrURI
		}
		if port != "" {
			if port[0] != ':' {
				return u, ErrURI
			}
			port = port[1:]
			if port == "" {
				return u, ErrURI
			}
		}
	} else if i := strings.IndexByte(authority, ':'); i >= 0 {
		host, port = authority[:i], authority[i+1:]
		if port == "" {
			return u, ErrURI
		}
	}
	if host == "" || !isHost(host) {
		return u, ErrURI
	}
	u.Host = host
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 || port[0] == '+' {
			return u, ErrURI
		}
		u.Port = p
	}
	return u, nil
}

// String formats u as it would be written in a path.
func (u URI) String() string {
	var b strings.Builder
	if u.Secure {
		b.WriteString("msrps://")
	} else {
		b.WriteString("msrp://")
	}
	if u.User != "" {
		b.WriteString(u.User)
		b.WriteByte('@')
	}
	if strings.IndexByte(u.Host, ':') >= 0 {
		b.WriteByte('[')
		b.WriteString(u.Host)
		b.WriteByte(']')
	} else {
		b.WriteString(u.Host)
	}
	if u.Port != 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(u.Port))
	}
	if u.SessionID != "" {
		b.WriteByte('/')
		b.WriteString(u.SessionID)
	}
	b.WriteByte(';')
	b.WriteString(u.Transport)
	if u.Params != "" {
		b.WriteByte(';')
		b.WriteString(u.Params)
	}
	return b.String()
}

// Equal compares two URIs as RFC 4975 §6.1 says: scheme, host (case
// insensitive; IP addresses by address), port (an explicit port never equals
// an absent one), session id (case sensitive) and transport; user info and
// parameters are ignored.
func (u URI) Equal(v URI) bool {
	return u.Secure == v.Secure && equalHosts(u.Host, v.Host) && u.Port == v.Port &&
		u.SessionID == v.SessionID && u.Transport == v.Transport
}

func equalHosts(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	ipa, ipb := net.ParseIP(a), net.ParseIP(b)
	return ipa != nil && ipb != nil && ipa.Equal(ipb)
}

// ParsePath parses a To-Path or From-Path value: one or more URIs separated
// by spaces.
func ParsePath(s string) ([]URI, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, ErrURI
	}
	path := make([]URI, len(fields))
	for i, f := range fields {
		u, err := ParseURI(f)
		if err != nil {
			return nil, err
		}
		path[i] = u
	}
	return path, nil
}

// FormatPath writes a path as a header value.
func FormatPath(path []URI) string {
	parts := make([]string, len(path))
	for i, u := range path {
		parts[i] = u.String()
	}
	return strings.Join(parts, " ")
}

// EqualPaths reports whether two paths hold equal URIs in the same order.
func EqualPaths(a, b []URI) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// isSessionID accepts RFC 4975's session-id: unreserved / "+" / "=" / "/".
func isSessionID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("-._~+=/%", rune(c)) {
			return false
		}
	}
	return true
}

func isHost(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return net.ParseIP(s) != nil
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isVisible reports whether s holds only visible ASCII, so that a URI
// written into a path stays one field of one header line.
func isVisible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isToken accepts RFC 4975's token characters.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return s != ""
}
