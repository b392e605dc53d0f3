package replicationtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client talks to a journal API as Blink Cocoa's NSURLConnection does: each
// call sends the request without credentials, answers the 401 Digest
// challenge once (qop=auth) and sends the request again, body included.
// Its hashing is its own, independent of package auth.
type Client struct {
	// URL is settings_url without its query, e.g. http://127.0.0.1:8080/settings.phtml.
	URL string
	// Username is what the Digest answer names: "alice", as Blink sends it,
	// or "alice@example.com".
	Username string
	// Password is the web password, or the SIP password.
	Password string
	// Algorithm picks the challenge to answer: "" or "MD5", or "SHA-256".
	Algorithm string
	// HTTP sends the requests; nil means a client of its own.
	HTTP *http.Client
}

// Request is one request to the journal API.
type Request struct {
	// Method defaults to POST when Body is set, else GET.
	Method string
	// Query is the raw query string, sent byte for byte: Blink does not
	// percent-encode it (except_uuid=urn:uuid:… keeps its colons).
	Query string
	// Body is sent on both tries, as NSURLConnection does.
	Body []byte
	// ContentType is sent when set; "" sends no Content-Type header at all.
	ContentType string
	// Authorization, when set, is sent on the first try and no challenge is answered.
	Authorization string
}

// Response is the final answer to a request.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	// Challenge is the one answered, zero when the first try was not a 401.
	Challenge Challenge
}

// Decode unmarshals the body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("replicationtest: answer %d %q: %w", r.StatusCode, truncate(r.Body), err)
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// Challenge is one Digest challenge of a WWW-Authenticate header.
type Challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	QOP       string
	Algorithm string // as sent; "" means MD5
	Stale     bool
	Params    map[string]string // every parameter, names lowercased
}

// Do sends req and answers a Digest challenge once. A first answer other than
// 401 is returned as it is; so is a 401 without a challenge it can answer.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	first, err := c.Send(ctx, req)
	if err != nil || first.StatusCode != http.StatusUnauthorized || req.Authorization != "" {
		return first, err
	}
	ch, ok := c.pick(ParseChallenges(first.Header))
	if !ok {
		return first, nil
	}
	req.Authorization = c.Authorization(ch, req.method(), c.RequestURI(req.Query), 1)
	final, err := c.Send(ctx, req)
	if err != nil {
		return nil, err
	}
	final.Challenge = ch
	return final, nil
}

// pick returns the challenge for c.Algorithm.
func (c *Client) pick(chs []Challenge) (Challenge, bool) {
	want := strings.ToUpper(c.Algorithm)
	if want == "" {
		want = "MD5"
	}
	for _, ch := range chs {
		alg := strings.ToUpper(ch.Algorithm)
		if alg == "" {
			alg = "MD5"
		}
		if alg == want {
			return ch, true
		}
	}
	return Challenge{}, false
}

func (r Request) method() string {
	switch {
	case r.Method != "":
		return r.Method
	case r.Body != nil:
		return http.MethodPost
	default:
		return http.MethodGet
	}
}

// RequestURI returns the request-target sent for a raw query: the path of
// c.URL, then '?' and the query as it is.
func (c *Client) RequestURI(rawQuery string) string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return ""
	}
	u.RawQuery = rawQuery
	return u.RequestURI()
}

// Send sends req once, with req.Authorization if set, and reads the answer.
func (c *Client) Send(ctx context.Context, req Request) (*Response, error) {
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method(), c.URL, body)
	if err != nil {
		return nil, fmt.Errorf("replicationtest: %w", err)
	}
	hr.URL.RawQuery = req.Query // verbatim: no encoding, no reordering
	if req.ContentType != "" {
		hr.Header.Set("Content-Type", req.ContentType)
	}
	if req.Authorization != "" {
		hr.Header.Set("Authorization", req.Authorization)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{}
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("replicationtest: %s %s: %w", hr.Method, hr.URL.RequestURI(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("replicationtest: %s %s: read answer: %w", hr.Method, hr.URL.RequestURI(), err)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Authorization returns the Digest answer to ch for method and uri (the
// request-target exactly as sent), with nonce count nc and a fresh cnonce,
// computed from c.Username and c.Password. The hash follows ch.Algorithm.
func (c *Client) Authorization(ch Challenge, method, uri string, nc uint32) string {
	return DigestAuthorization(ch, c.Username, c.Password, method, uri, nc)
}

// DigestAuthorization is Client.Authorization for any username and password.
// It returns "" for an algorithm other than MD5 and SHA-256.
func DigestAuthorization(ch Challenge, username, password, method, uri string, nc uint32) string {
	raw := make([]byte, 8)
	rand.Read(raw)
	cnonce, ncs := hex.EncodeToString(raw), fmt.Sprintf("%08x", nc)
	resp := digestResponse(ch.Algorithm, username, ch.Realm, password, ch.Nonce, ncs, cnonce, method, uri)
	if resp == "" {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username=%s, realm=%s, nonce=%s, uri=%s, response="%s"`,
		quote(username), quote(ch.Realm), quote(ch.Nonce), quote(uri), resp)
	if ch.Algorithm != "" {
		fmt.Fprintf(&b, ", algorithm=%s", ch.Algorithm)
	}
	fmt.Fprintf(&b, `, cnonce="%s"`, cnonce)
	if ch.Opaque != "" {
		fmt.Fprintf(&b, ", opaque=%s", quote(ch.Opaque))
	}
	fmt.Fprintf(&b, ", qop=auth, nc=%s", ncs)
	return b.String()
}

// digestResponse computes the qop=auth response of RFC 7616 §3.4.1.
func digestResponse(algorithm, username, realm, password, nonce, nc, cnonce, method, uri string) string {
	var newHash func() hash.Hash
	switch strings.ToUpper(algorithm) {
	case "", "MD5":
		newHash = md5.New
	case "SHA-256":
		newHash = sha256.New
	default:
		return ""
	}
	h := func(parts ...string) string {
		d := newHash()
		d.Write([]byte(strings.Join(parts, ":")))
		return hex.EncodeToString(d.Sum(nil))
	}
	return h(h(username, realm, password), nonce, nc, cnonce, "auth", h(method, uri))
}

// BasicAuthorization returns a Basic Authorization header value.
func BasicAuthorization(username, password string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(username, password)
	return req.Header.Get("Authorization")
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// ParseChallenges returns the Digest challenges of the WWW-Authenticate
// headers of h, one challenge per header value, in order.
func ParseChallenges(h http.Header) []Challenge {
	var out []Challenge
	for _, v := range h.Values("WWW-Authenticate") {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Digest") {
			continue
		}
		p, err := parseParams(rest)
		if err != nil {
			continue
		}
		out = append(out, Challenge{
			Realm: p["realm"], Nonce: p["nonce"], Opaque: p["opaque"], QOP: p["qop"],
			Algorithm: p["algorithm"], Stale: strings.EqualFold(p["stale"], "true"), Params: p,
		})
	}
	return out
}

var errBadParams = errors.New("replicationtest: malformed auth parameters")

// parseParams parses name=token and name="quoted" pairs separated by commas.
func parseParams(s string) (map[string]string, error) {
	p := make(map[string]string)
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return p, nil
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, errBadParams
		}
		name = strings.ToLower(strings.TrimSpace(name))
		rest = strings.TrimLeft(rest, " \t")
		var v strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				v.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return nil, errBadParams
			}
			s = rest[i+1:]
		} else {
			end := strings.IndexAny(rest, ", \t")
			if end < 0 {
				end = len(rest)
			}
			v.WriteString(rest[:end])
			s = rest[end:]
		}
		p[name] = v.String()
	}
}

// Item is one entry of a put: the client's message id and the blob.
type Item struct {
	ID   string
	Data string
}

// EntriesObject returns the data parameter of a put as Blink builds it: a
// JSON object keyed by message id, {"<id>": {"data": "<blob>", "id": "<id>"}, …},
// in the order given.
func EntriesObject(items ...Item) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `%s: {"data": %s, "id": %s}`, PyString(it.ID), PyString(it.Data), PyString(it.ID))
	}
	b.WriteByte('}')
	return b.String()
}

// EntriesArray returns the data parameter of a put as a JSON array of
// {"data", "id"} objects, the other form the server takes.
func EntriesArray(items ...Item) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"data": %s, "id": %s}`, PyString(it.Data), PyString(it.ID))
	}
	b.WriteByte(']')
	return b.String()
}

// Form encodes name, value pairs as Python's urlencode does (quote_plus),
// keeping their order.
func Form(pairs ...string) string {
	if len(pairs)%2 != 0 {
		panic("replicationtest: Form takes name, value pairs")
	}
	var b strings.Builder
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(pairs[i]))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(pairs[i+1]))
	}
	return b.String()
}
