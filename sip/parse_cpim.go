package sip

import (
	"bytes"
	"errors"
	"strings"
)

// CPIM is the parsed envelope of a message/cpim body.
type CPIM struct {
	Headers     []CPIMHeader // the message headers in order, names as written (prefix included)
	MessageID   string       // imdn.Message-ID, resolved through the NS declaration of urn:ietf:params:imdn (any prefix)
	Disposition []string     // imdn.Disposition-Notification values, trimmed, lower case
	DateTime    string       // DateTime header value as written
	ContentType string       // content Content-Type
	Content     []byte       // the content, a subslice of the input
}

// CPIMHeader is one header of a message/cpim body: its name as written and
// its value with the surrounding spaces and tabs removed, folded lines joined.
type CPIMHeader struct{ Name, Value string }

// Errors of ParseCPIM. Every error it returns wraps one of them.
var (
	// ErrCPIMMalformed reports a body that does not follow the syntax
	// ParseCPIM accepts.
	ErrCPIMMalformed = errors.New("sip: cpim: malformed body")
	// ErrCPIMTooLarge reports a body that goes over one of ParseCPIM's limits.
	ErrCPIMTooLarge = errors.New("sip: cpim: body over a limit")
)

// Limits of ParseCPIM.
const (
	cpimMaxHeaders      = 64      // headers in each block
	cpimMaxHeaderLen    = 8 << 10 // bytes of one header, folded lines and their line ends included
	cpimMaxMessageIDLen = 256     // bytes of the imdn.Message-ID value
	cpimMaxDispositions = 16      // values of imdn.Disposition-Notification, all headers together
)

// Namespaces that ParseCPIM resolves header names to (RFC 3862 §3.4, RFC 5438 §6.1).
const (
	cpimNamespace = "urn:ietf:params:cpim-headers:" // the default namespace
	imdnNamespace = "urn:ietf:params:imdn"
)

// cpimError is an error of ParseCPIM: a message for people and the sentinel
// it wraps.
type cpimError struct {
	kind error
	msg  string
}

func (e *cpimError) Error() string { return "sip: cpim: " + e.msg }
func (e *cpimError) Unwrap() error { return e.kind }

func cpimMalformed(msg string) error { return &cpimError{ErrCPIMMalformed, msg} }
func cpimTooLarge(msg string) error  { return &cpimError{ErrCPIMTooLarge, msg} }

// IsCPIM reports whether a Content-Type value names message/cpim, in any
// letter case and with any parameters.
func IsCPIM(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.Trim(mediaType, " \t"), "message/cpim")
}

// ParseCPIM parses a message/cpim body (RFC 3862) and the IMDN headers of
// RFC 5438 in it.
//
// The body is two header blocks and the content: the message headers, an
// empty line, the content headers (the MIME headers of the content), an empty
// line, and the content, returned untouched: Content shares the memory of
// body, and its capacity ends where body ends. A line ends in CRLF or in a bare
// LF, and a block ends at its first empty line, so each separator may be
// CRLF CRLF, LF LF or a mix of the two: Blink ends its CPIM headers with
// CRLF CRLF and the MIME headers Python writes with LF LF. A line that starts
// with a space or a tab continues the header above it (MIME folding; RFC 3862
// forbids it in the message headers but it costs nothing to accept). A header
// is a name of printable ASCII without a colon, a colon and a value; the value
// may be empty and may hold any byte but the ASCII controls other than tab.
// Escapes (RFC 3862 §2.3) are not decoded.
//
// Header names are resolved as RFC 3862 §3.4 says: a prefix counts only once
// an earlier NS header of the message headers has declared it (a later NS for
// the same prefix replaces the binding), an undeclared prefix leaves the
// header without a namespace (as Blink does), names match exactly and
// namespace URIs in any letter case. MessageID is the value of Message-ID in the
// urn:ietf:params:imdn namespace, whatever its prefix; it must be 1 to 256
// bytes of printable ASCII without spaces and appear at most once.
// Disposition gathers the comma-separated values of every
// Disposition-Notification header of that namespace, 16 at most. DateTime is
// the first DateTime of the default namespace. ContentType is the first
// Content-Type of the content headers, in any letter case; it is empty when
// there is none.
//
// Each block holds at most 64 headers of at most 8 KiB each. Errors wrap
// ErrCPIMMalformed or ErrCPIMTooLarge.
func ParseCPIM(body []byte) (CPIM, error) {
	var c CPIM
	headers, pos, err := readCPIMBlock(body, 0, "message headers")
	if err != nil {
		return CPIM{}, err
	}
	content, pos, err := readCPIMBlock(body, pos, "content headers")
	if err != nil {
		return CPIM{}, err
	}
	c.Headers = headers
	if err := c.resolve(); err != nil {
		return CPIM{}, err
	}
	for _, h := range content {
		if strings.EqualFold(h.Name, "Content-Type") {
			c.ContentType = h.Value
			break
		}
	}
	c.Content = body[pos:len(body):len(body)]
	return c, nil
}

// cpimBinding is a namespace declaration: a prefix ("" for the default
// namespace) and its namespace URI.
type cpimBinding struct{ prefix, uri string }

// resolve reads the NS, DateTime and IMDN headers of c.Headers.
func (c *CPIM) resolve() error {
	bindings := []cpimBinding{{"", cpimNamespace}}
	seenID, seenDate := false, false
	for _, h := range c.Headers {
		prefix, name, ok := strings.Cut(h.Name, ".")
		if !ok {
			prefix, name = "", h.Name
		}
		uri, ok := lookupCPIMPrefix(bindings, prefix)
		if !ok {
			continue
		}
		switch {
		case strings.EqualFold(uri, cpimNamespace):
			switch name {
			case "NS":
				if p, u, ok := parseCPIMNamespace(h.Value); ok {
					bindings = append(bindings, cpimBinding{p, u})
				}
			case "DateTime":
				if !seenDate {
					c.DateTime, seenDate = h.Value, true
				}
			}
		case strings.EqualFold(uri, imdnNamespace):
			switch name {
			case "Message-ID":
				if seenID {
					return cpimMalformed("more than one imdn message-id")
				}
				if err := checkCPIMMessageID(h.Value); err != nil {
					return err
				}
				c.MessageID, seenID = h.Value, true
			case "Disposition-Notification":
				for v := range strings.SplitSeq(h.Value, ",") {
					v = strings.Trim(v, " \t")
					if v == "" {
						continue
					}
					if len(c.Disposition) == cpimMaxDispositions {
						return cpimTooLarge("more than 16 imdn disposition-notification values")
					}
					c.Disposition = append(c.Disposition, asciiLower(v))
				}
			}
		}
	}
	return nil
}

// lookupCPIMPrefix returns the URI that the latest declaration binds prefix to.
func lookupCPIMPrefix(bindings []cpimBinding, prefix string) (string, bool) {
	for i := len(bindings) - 1; i >= 0; i-- {
		if bindings[i].prefix == prefix {
			return bindings[i].uri, true
		}
	}
	return "", false
}

// parseCPIMNamespace parses an NS value, `[prefix] "<" URI ">"`. A value of
// another form declares nothing, as in Blink.
func parseCPIMNamespace(v string) (prefix, uri string, ok bool) {
	open := strings.IndexByte(v, '<')
	if open < 0 || !strings.HasSuffix(v, ">") || open == len(v)-1 {
		return "", "", false
	}
	prefix, uri = strings.TrimRight(v[:open], " \t"), v[open+1:len(v)-1]
	if uri == "" || strings.ContainsAny(uri, "<> \t") || strings.ContainsAny(prefix, ". \t<>") {
		return "", "", false
	}
	return prefix, uri, true
}

// checkCPIMMessageID checks an imdn Message-ID value.
func checkCPIMMessageID(id string) error {
	if len(id) > cpimMaxMessageIDLen {
		return cpimTooLarge("imdn message-id longer than 256 bytes")
	}
	if id == "" {
		return cpimMalformed("empty imdn message-id")
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return cpimMalformed("imdn message-id not printable ascii")
		}
	}
	return nil
}

// readCPIMBlock reads the header block that starts at body[pos:], up to and
// including its empty line, and returns its headers and the offset after the
// empty line.
func readCPIMBlock(body []byte, pos int, block string) ([]CPIMHeader, int, error) {
	var headers []CPIMHeader
	start, end := -1, -1 // body[start:end] is the header being read, without its last line end
	for {
		window := body[pos:min(len(body), pos+cpimMaxHeaderLen+2)]
		n := bytes.IndexByte(window, '\n')
		if n < 0 {
			if len(window) == cpimMaxHeaderLen+2 {
				return nil, 0, cpimTooLarge(block + ": line longer than 8192 bytes")
			}
			return nil, 0, cpimMalformed(block + ": no empty line at the end")
		}
		lineEnd := pos + n
		if n > 0 && body[lineEnd-1] == '\r' {
			lineEnd--
		}
		folded := lineEnd > pos && (body[pos] == ' ' || body[pos] == '\t')
		if !folded && start >= 0 {
			h, err := parseCPIMHeader(body[start:end], block)
			if err != nil {
				return nil, 0, err
			}
			headers = append(headers, h)
			start = -1
		}
		switch {
		case lineEnd == pos:
			return headers, pos + n + 1, nil
		case folded && start < 0:
			return nil, 0, cpimMalformed(block + ": folded line with no header above it")
		case !folded:
			if len(headers) == cpimMaxHeaders {
				return nil, 0, cpimTooLarge(block + ": more than 64 headers")
			}
			start = pos
		}
		end = lineEnd
		if end-start > cpimMaxHeaderLen {
			return nil, 0, cpimTooLarge(block + ": header longer than 8192 bytes")
		}
		pos += n + 1
	}
}

// parseCPIMHeader parses one header, its folded lines included.
func parseCPIMHeader(raw []byte, block string) (CPIMHeader, error) {
	if bytes.IndexByte(raw, '\n') >= 0 {
		unfolded := make([]byte, 0, len(raw))
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\n' || raw[i] == '\r' && i+1 < len(raw) && raw[i+1] == '\n' {
				continue
			}
			unfolded = append(unfolded, raw[i])
		}
		raw = unfolded
	}
	name, value, ok := bytes.Cut(raw, []byte{':'})
	if !ok {
		return CPIMHeader{}, cpimMalformed(block + ": line without a colon")
	}
	if len(name) == 0 {
		return CPIMHeader{}, cpimMalformed(block + ": empty header name")
	}
	for _, b := range name {
		if b < 0x21 || b > 0x7e {
			return CPIMHeader{}, cpimMalformed(block + ": header name not printable ascii")
		}
	}
	for _, b := range value {
		if b < 0x20 && b != '\t' || b == 0x7f {
			return CPIMHeader{}, cpimMalformed(block + ": control character in a header value")
		}
	}
	return CPIMHeader{Name: string(name), Value: string(bytes.Trim(value, " \t"))}, nil
}

// asciiLower lowers the ASCII letters of s and leaves every other byte as it is.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
