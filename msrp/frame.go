package msrp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// Continuation flags of an end-line (RFC 4975 §7.1.1).
const (
	FlagEnd      byte = '$' // last chunk of the message
	FlagMore     byte = '+' // more chunks follow
	FlagAborted  byte = '#' // the sender abandoned the message
	endDashes         = "-------"
	maxTIDLength      = 32
)

// Header is one header other than To-Path and From-Path, as received.
type Header struct {
	Name, Value string
}

// Frame is one MSRP request or response without its body: the start line,
// the paths, every other header in order, and once the end-line has been
// read, its continuation flag. Method is empty for a response.
type Frame struct {
	TID      string
	Method   string
	Status   int
	Comment  string
	ToPath   []URI
	FromPath []URI
	Headers  []Header
	HasBody  bool // a blank line and a body follow the headers
	Flag     byte // set once the end-line is read
}

// IsResponse reports whether f is a response.
func (f *Frame) IsResponse() bool { return f.Method == "" }

// Get returns the value of the first header named name (case insensitive),
// or "".
func (f *Frame) Get(name string) string {
	for _, h := range f.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Set replaces the value of the first header named name, or adds it before
// the MIME headers (RFC 4975 puts Content-* last).
func (f *Frame) Set(name, value string) {
	at := len(f.Headers)
	for i, h := range f.Headers {
		if strings.EqualFold(h.Name, name) {
			f.Headers[i].Value = value
			return
		}
		if at == len(f.Headers) && isMIMEHeader(h.Name) {
			at = i
		}
	}
	f.Headers = append(f.Headers, Header{})
	copy(f.Headers[at+1:], f.Headers[at:])
	f.Headers[at] = Header{Name: name, Value: value}
}

func isMIMEHeader(name string) bool {
	return len(name) >= 8 && strings.EqualFold(name[:8], "Content-")
}

// AppendHead appends the start line and headers of f and, when f.HasBody, the
// blank line that opens the body.
func (f *Frame) AppendHead(dst []byte) []byte {
	dst = append(dst, "MSRP "...)
	dst = append(dst, f.TID...)
	dst = append(dst, ' ')
	if f.IsResponse() {
		dst = strconv.AppendInt(dst, int64(f.Status), 10)
		if f.Comment != "" {
			dst = append(dst, ' ')
			dst = append(dst, f.Comment...)
		}
	} else {
		dst = append(dst, f.Method...)
	}
	dst = append(dst, "\r\nTo-Path: "...)
	dst = appendPath(dst, f.ToPath)
	dst = append(dst, "\r\nFrom-Path: "...)
	dst = appendPath(dst, f.FromPath)
	dst = append(dst, "\r\n"...)
	for _, h := range f.Headers {
		dst = append(dst, h.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Value...)
		dst = append(dst, "\r\n"...)
	}
	if f.HasBody {
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// AppendEnd appends the end-line of f with flag, preceded by the CRLF that
// closes a body when f.HasBody.
func (f *Frame) AppendEnd(dst []byte, flag byte) []byte {
	if f.HasBody {
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, endDashes...)
	dst = append(dst, f.TID...)
	return append(dst, flag, '\r', '\n')
}

// Marshal returns f with body as one frame on the wire, ended with f.Flag
// ('$' when unset).
func (f *Frame) Marshal(body []byte) []byte {
	flag := f.Flag
	if flag == 0 {
		flag = FlagEnd
	}
	out := f.AppendHead(make([]byte, 0, 256+len(body)))
	out = append(out, body...)
	return f.AppendEnd(out, flag)
}

func appendPath(dst []byte, path []URI) []byte {
	for i, u := range path {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, u.String()...)
	}
	return dst
}

// NewTID returns a fresh transaction id: 96 random bits in hex.
func NewTID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isTID accepts RFC 4975's transact-id: an alphanumeric and 3 to 31 more of
// alphanumerics and ".-+%=".
func isTID(s string) bool {
	if len(s) < 4 || len(s) > maxTIDLength || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune(".-+%=", rune(c)) {
			return false
		}
	}
	return true
}

// ByteRange is a Byte-Range value (RFC 4975 §9); End and Total are -1 for "*".
type ByteRange struct {
	Start, End, Total int64
}

// ErrByteRange is returned for a malformed Byte-Range value.
var ErrByteRange = errors.New("msrp: malformed Byte-Range")

// ParseByteRange parses a Byte-Range value; an empty value is the default
// "1-*/*".
func ParseByteRange(s string) (ByteRange, error) {
	if s == "" {
		return ByteRange{Start: 1, End: -1, Total: -1}, nil
	}
	span, total, ok := strings.Cut(s, "/")
	if !ok {
		return ByteRange{}, ErrByteRange
	}
	start, end, ok := strings.Cut(span, "-")
	if !ok {
		return ByteRange{}, ErrByteRange
	}
	var r ByteRange
	var err error
	if r.Start, err = rangeNumber(start, false); err != nil || r.Start < 1 {
		return ByteRange{}, ErrByteRange
	}
	if r.End, err = rangeNumber(end, true); err != nil || r.End != -1 && r.End < r.Start-1 {
		return ByteRange{}, ErrByteRange
	}
	if r.Total, err = rangeNumber(total, true); err != nil || r.Total != -1 && r.End > r.Total {
		return ByteRange{}, ErrByteRange
	}
	return r, nil
}

func rangeNumber(s string, star bool) (int64, error) {
	if star && s == "*" {
		return -1, nil
	}
	if s == "" || len(s) > 18 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, ErrByteRange
	}
	return strconv.ParseInt(s, 10, 64)
}

// String formats r as a header value.
func (r ByteRange) String() string {
	b := strconv.AppendInt(nil, r.Start, 10)
	b = append(b, '-')
	b = appendStar(b, r.End)
	b = append(b, '/')
	return string(appendStar(b, r.Total))
}

func appendStar(b []byte, n int64) []byte {
	if n < 0 {
		return append(b, '*')
	}
	return strconv.AppendInt(b, n, 10)
}

// StatusValue formats a REPORT's Status header value (RFC 4975 §9):
// namespace 000, the code and a comment.
func StatusValue(code int, comment string) string {
	s := "000 " + strconv.Itoa(code)
	if comment != "" {
		s += " " + comment
	}
	return s
}

// ParseStatus returns the code of a Status header value.
func ParseStatus(s string) (int, error) {
	ns, rest, ok := strings.Cut(s, " ")
	if !ok || len(ns) != 3 || strings.TrimLeft(ns, "0123456789") != "" {
		return 0, errors.New("msrp: malformed Status")
	}
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || !isDigits(code) {
		return 0, errors.New("msrp: malformed Status")
	}
	return n, nil
}
