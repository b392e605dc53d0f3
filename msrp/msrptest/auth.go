package msrptest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/msrp"
)

// AuthResult is what a relay granted to an AUTH.
type AuthResult struct {
	UsePath []msrp.URI  // to put before the peer's path in To-Path
	Expires int         // seconds; 0 when the 200 has no Expires
	Frame   *msrp.Frame // the 200
}

// Auth authenticates to relay (RFC 4976 §5): an AUTH with To-Path [relay]
// and From-Path [Self], and on a 401 a second one answering the first
// usable Digest challenge (MD5 or SHA-256, qop auth or none) with method
// AUTH and uri relay.String(). expires, when not 0, is sent as Expires. A
// final answer other than 200 is a *StatusError.
func (e *Endpoint) Auth(ctx context.Context, relay msrp.URI, user, password string, expires int) (AuthResult, error) {
	request := func(authorization string) (*msrp.Frame, error) {
		f := &msrp.Frame{Method: "AUTH", ToPath: []msrp.URI{relay}}
		if authorization != "" {
			f.Headers = append(f.Headers, msrp.Header{Name: "Authorization", Value: authorization})
		}
		if expires != 0 {
			f.Headers = append(f.Headers, msrp.Header{Name: "Expires", Value: strconv.Itoa(expires)})
		}
		return e.Request(ctx, f, nil)
	}
	r, err := request("")
	if err != nil {
		return AuthResult{}, err
	}
	if r.Status == 401 {
		c, err := findChallenge(r)
		if err != nil {
			return AuthResult{}, err
		}
		if r, err = request(c.authorization(user, password, relay.String())); err != nil {
			return AuthResult{}, err
		}
	}
	if r.Status != 200 {
		return AuthResult{}, &StatusError{Code: r.Status, Comment: r.Comment, Frame: r}
	}
	res := AuthResult{Frame: r}
	if res.UsePath, err = msrp.ParsePath(r.Get("Use-Path")); err != nil {
		return res, fmt.Errorf("msrptest: AUTH 200: Use-Path %q: %w", r.Get("Use-Path"), err)
	}
	if v := r.Get("Expires"); v != "" {
		if res.Expires, err = strconv.Atoi(v); err != nil {
			return res, fmt.Errorf("msrptest: AUTH 200: Expires %q", v)
		}
	}
	return res, nil
}

// challenge is a Digest WWW-Authenticate this endpoint can answer.
type challenge struct {
	realm, nonce, opaque string
	alg                  auth.Algorithm
	qop                  bool // qop=auth offered
}

func findChallenge(r *msrp.Frame) (challenge, error) {
	for _, h := range r.Headers {
		if !strings.EqualFold(h.Name, "WWW-Authenticate") {
			continue
		}
		if c, ok := parseChallenge(h.Value); ok {
			return c, nil
		}
	}
	return challenge{}, errors.New("msrptest: 401 without a usable Digest challenge")
}

func parseChallenge(v string) (challenge, bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	params, ok := authParams(rest)
	if !strings.EqualFold(scheme, "Digest") || !ok || params["nonce"] == "" {
		return challenge{}, false
	}
	c := challenge{realm: params["realm"], nonce: params["nonce"], opaque: params["opaque"], alg: auth.MD5}
	switch alg := strings.ToUpper(params["algorithm"]); alg {
	case "", string(auth.MD5):
	case string(auth.SHA256):
		c.alg = auth.SHA256
	default:
		return challenge{}, false
	}
	if qop, offered := params["qop"]; offered {
		for o := range strings.SplitSeq(qop, ",") {
			c.qop = c.qop || strings.TrimSpace(o) == "auth"
		}
		if !c.qop {
			return challenge{}, false
		}
	}
	return c, true
}

// authorization answers c (RFC 7616 §3.4.1; RFC 2069's form without qop).
func (c challenge) authorization(user, password, uri string) string {
	ha1 := c.alg.H(user, c.realm, password)
	ha2 := c.alg.H("AUTH", uri)
	var b strings.Builder
	fmt.Fprintf(&b, "Digest username=%s, realm=%s, nonce=%s, uri=%s", quote(user), quote(c.realm), quote(c.nonce), quote(uri))
	if c.qop {
		const nc = "00000001"
		cnonce := randomHex(16)
		fmt.Fprintf(&b, ", response=%s, qop=auth, nc=%s, cnonce=%s",
			quote(c.alg.H(ha1, c.nonce, nc, cnonce, "auth", ha2)), nc, quote(cnonce))
	} else {
		fmt.Fprintf(&b, ", response=%s", quote(c.alg.H(ha1, c.nonce, ha2)))
	}
	fmt.Fprintf(&b, ", algorithm=%s", c.alg)
	if c.opaque != "" {
		fmt.Fprintf(&b, ", opaque=%s", quote(c.opaque))
	}
	return b.String()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// authParams parses comma-separated name=value and name="quoted value"
// pairs; names are lowercased.
func authParams(s string) (map[string]string, bool) {
	params := make(map[string]string)
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return params, true
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, false
		}
		name = strings.ToLower(strings.TrimSpace(name))
		s = strings.TrimLeft(rest, " \t")
		var value strings.Builder
		if strings.HasPrefix(s, `"`) {
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				value.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false
			}
			s = s[i+1:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			value.WriteString(s[:end])
			s = s[end:]
		}
		params[name] = value.String()
	}
}
