package auth

import (
	"errors"
	"strconv"
	"strings"
)

// DigestResponse is the parsed value of an Authorization header with the
// Digest scheme (RFC 7616 §3.4).
type DigestResponse struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm Algorithm
	Sess      bool // the -sess variant of Algorithm
	Opaque    string
	QOP       string
	NC        string // as sent: eight hex digits, hashed verbatim
	Count     uint64 // NC as a number
	CNonce    string
}

// Errors of ParseDigest.
var (
	ErrNotDigest = errors.New("auth: not a Digest authorization")
	ErrBadDigest = errors.New("auth: malformed Digest authorization")
	ErrAlgorithm = errors.New("auth: unsupported digest algorithm")
	ErrQOP       = errors.New("auth: digest qop must be auth")
)

// maxHeaderSize bounds the Authorization header ParseDigest reads.
const maxHeaderSize = 8 << 10

// ParseDigest parses an Authorization header value. It requires username,
// realm, nonce, uri and response, and, since cairn always offers qop=auth,
// qop=auth with nc and cnonce.
func ParseDigest(header string) (DigestResponse, error) {
	var d DigestResponse
	if len(header) > maxHeaderSize {
		return d, ErrBadDigest
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return d, ErrNotDigest
	}
	params, err := parseAuthParams(rest)
	if err != nil {
		return d, err
	}
	d.Username, d.Realm, d.Nonce = params["username"], params["realm"], params["nonce"]
	d.URI, d.Response, d.Opaque = params["uri"], strings.ToLower(params["response"]), params["opaque"]
	d.QOP, d.CNonce = params["qop"], params["cnonce"]
	if d.Username == "" || d.Nonce == "" || d.URI == "" || d.Response == "" {
		return d, ErrBadDigest
	}
	if _, ok := params["realm"]; !ok {
		return d, ErrBadDigest
	}
	alg := params["algorithm"]
	if alg == "" {
		alg = string(MD5)
	}
	base, sess := strings.CutSuffix(strings.ToUpper(alg), "-SESS")
	switch Algorithm(base) {
	case MD5, SHA256:
		d.Algorithm, d.Sess = Algorithm(base), sess
	default:
		return d, ErrAlgorithm
	}
	if d.QOP != "auth" {
		return d, ErrQOP
	}
	nc, err := strconv.ParseUint(params["nc"], 16, 64)
	if err != nil || len(params["nc"]) != 8 || d.CNonce == "" {
		return d, ErrBadDigest
	}
	d.NC, d.Count = params["nc"], nc
	return d, nil
}

// parseAuthParams parses a comma-separated list of name=value or
// name="quoted value" pairs. Names are lowercased; a repeated name is an error.
func parseAuthParams(s string) (map[string]string, error) {
	params := make(map[string]string)
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return params, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, ErrBadDigest
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var value string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, ErrBadDigest
			}
			value, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			value, s = s[:end], s[end:]
		}
		if _, dup := params[name]; dup {
			return nil, ErrBadDigest
		}
		params[name] = value
	}
}
