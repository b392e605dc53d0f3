package replication

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON reader for the shapes the journal takes: a collection (object
// or array) of entries, and the strings inside them. encoding/json would scan
// every byte of a put several times over (value, then object, then string);
// this reads each byte once and copies a string only when it has escapes.
// It accepts exactly RFC 8259 JSON.

var errJSON = errors.New("replication: invalid JSON")

// maxJSONDepth bounds the nesting skipValue follows.
const maxJSONDepth = 64

type jsonReader struct {
	s string
	i int
}

func (r *jsonReader) ws() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.i < len(r.s) {
		return r.s[r.i]
	}
	return 0
}

func (r *jsonReader) expect(c byte) error {
	if r.peek() != c {
		return errJSON
	}
	r.i++
	return nil
}

// str reads a string; it shares the input's memory when there is no escape.
func (r *jsonReader) str() (string, error) {
	if err := r.expect('"'); err != nil {
		return "", err
	}
	start := r.i
	for r.i < len(r.s) {
		switch c := r.s[r.i]; {
		case c == '"':
			s := r.s[start:r.i]
			r.i++
			return s, nil
		case c == '\\':
			return r.unescape(start)
		case c < 0x20:
			return "", errJSON
		default:
			r.i++
		}
	}
	return "", errJSON
}

// unescape finishes a string that has escapes, from its first byte at start.
func (r *jsonReader) unescape(start int) (string, error) {
	var b strings.Builder
	b.Grow(r.i - start + 64)
	b.WriteString(r.s[start:r.i])
	for r.i < len(r.s) {
		c := r.s[r.i]
		switch {
		case c == '"':
			r.i++
			return b.String(), nil
		case c < 0x20:
			return "", errJSON
		case c != '\\':
			// Copy the run up to the next quote or backslash at once.
			j := r.i
			for j < len(r.s) && r.s[j] != '"' && r.s[j] != '\\' && r.s[j] >= 0x20 {
				j++
			}
			b.WriteString(r.s[r.i:j])
			r.i = j
			continue
		}
		if r.i+1 >= len(r.s) {
			return "", errJSON
		}
		r.i += 2
		switch e := r.s[r.i-1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r1, ok := r.hex4()
			if !ok {
				return "", errJSON
			}
			if utf16.IsSurrogate(r1) {
				// A high surrogate followed by an escaped low one makes one rune;
				// any other surrogate is replaced, as encoding/json does.
				r2, ok := rune(0), false
				if r1 < 0xDC00 {
					r2, ok = r.lowSurrogate()
				}
				if ok {
					r1 = utf16.DecodeRune(r1, r2)
				} else {
					r1 = utf8.RuneError
				}
			}
			b.WriteRune(r1)
		default:
			return "", errJSON
		}
	}
	return "", errJSON
}

func (r *jsonReader) hex4() (rune, bool) {
	if r.i+4 > len(r.s) {
		return 0, false
	}
	n, err := strconv.ParseUint(r.s[r.i:r.i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	r.i += 4
	return rune(n), true
}

func (r *jsonReader) lowSurrogate() (rune, bool) {
	if !strings.HasPrefix(r.s[r.i:], `\u`) {
		return 0, false
	}
	save := r.i
	r.i += 2
	r2, ok := r.hex4()
	if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
		r.i = save
		return 0, false
	}
	return r2, true
}

// skipValue reads and checks one value of any kind.
func (r *jsonReader) skipValue(depth int) error {
	if depth > maxJSONDepth {
		return errJSON
	}
	switch c := r.peek(); {
	case c == '"':
		_, err := r.str()
		return err
	case c == '{' || c == '[':
		return r.each(c, depth+1, func(string) error { return r.skipValue(depth + 1) })
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return r.number()
	default:
		return errJSON
	}
}

func (r *jsonReader) literal(word string) error {
	if !strings.HasPrefix(r.s[r.i:], word) {
		return errJSON
	}
	r.i += len(word)
	return nil
}

// number reads a number in RFC 8259's grammar.
func (r *jsonReader) number() error {
	start := r.i
	if r.s[r.i] == '-' {
		r.i++
	}
	digits := func() int {
		n := 0
		for r.i < len(r.s) && '0' <= r.s[r.i] && r.s[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	intStart := r.i
	if n := digits(); n == 0 || n > 1 && r.s[intStart] == '0' {
		return errJSON
	}
	if r.i < len(r.s) && r.s[r.i] == '.' {
		r.i++
		if digits() == 0 {
			return errJSON
		}
	}
	if r.i < len(r.s) && (r.s[r.i] == 'e' || r.s[r.i] == 'E') {
		r.i++
		if r.i < len(r.s) && (r.s[r.i] == '+' || r.s[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			return errJSON
		}
	}
	if r.i == start {
		return errJSON
	}
	return nil
}

// each reads an object ('{') or array ('[') and calls value once per member,
// with the reader at the member's value and the member's key ("" in an array).
func (r *jsonReader) each(open byte, depth int, value func(key string) error) error {
	if depth > maxJSONDepth {
		return errJSON
	}
	if err := r.expect(open); err != nil {
		return err
	}
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	if r.peek() == closer {
		r.i++
		return nil
	}
	for {
		var key string
		if open == '{' {
			var err error
			if key, err = r.str(); err != nil {
				return err
			}
			if err := r.expect(':'); err != nil {
				return err
			}
		}
		if err := value(key); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.i++
		case closer:
			r.i++
			return nil
		default:
			return errJSON
		}
	}
}

// end checks that only white space is left.
func (r *jsonReader) end() error {
	if r.peek() != 0 || r.i != len(r.s) {
		return errJSON
	}
	return nil
}
