package history

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-chat/cairn/store"
)

// The JSON of history rows is written by hand: an answer carries up to
// 5,000 of them, and every byte of the shape matters to Blink. These
// functions are pure.

// appendItem appends r as one history item:
//
//	{"id":7,"message_id":"…","contact":"…","timestamp":"2025-03-14T15:00:00.123456+00:00",
//	 "disposition":["positive-delivery","display"],"content_type":"text/plain",
//	 "content":"…","direction":"incoming","state":"received"}
//
// Every field is always present; none is ever null.
func appendItem(b []byte, r *store.HistoryRow) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, `,"message_id":`...)
	b = appendString(b, r.MessageID)
	b = append(b, `,"contact":`...)
	b = appendString(b, r.Contact)
	b = append(b, `,"timestamp":`...)
	b = appendTimestamp(b, r.Timestamp)
	b = append(b, `,"disposition":[`...)
	for i, d := range r.Disposition {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, d)
	}
	b = append(b, `],"content_type":`...)
	b = appendString(b, r.ContentType)
	b = append(b, `,"content":`...)
	b = appendContent(b, r.Content)
	b = append(b, `,"direction":`...)
	b = appendString(b, r.Direction)
	b = append(b, `,"state":`...)
	b = appendString(b, r.State)
	return append(b, '}')
}

// itemSize estimates the bytes appendItem writes for r, for sizing
// buffers and bounding answers.
func itemSize(r *store.HistoryRow) int {
	n := 200 + len(r.MessageID) + len(r.Contact) + len(r.ContentType) + len(r.Content) + len(r.Direction) + len(r.State)
	for _, d := range r.Disposition {
		n += len(d) + 3
	}
	return n
}

// timestampLayout is what Python's datetime.isoformat() writes for an
// aware UTC time with microseconds; the fraction is always written, so
// that every timestamp has the same shape.
const timestampLayout = "2006-01-02T15:04:05.000000+00:00"

// appendTimestamp appends t in UTC as a quoted ISO 8601 timestamp:
// "2025-03-14T15:00:00.123456+00:00". Blink Qt forces history times to
// UTC whatever offset they carry, so any other offset would shift them.
func appendTimestamp(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, timestampLayout)
	return append(b, '"')
}

// appendContent appends content as a JSON string: UTF-8 content as it is,
// anything else byte by byte as Latin-1 (each byte the code point of the
// same value), as SylkServer turns bodies that are not text into strings.
func appendContent(b []byte, content []byte) []byte {
	if utf8.Valid(content) {
		return appendValid(b, content)
	}
	b = append(b, '"')
	for _, c := range content {
		if c < utf8.RuneSelf {
			b = appendASCII(b, c)
		} else {
			b = utf8.AppendRune(b, rune(c))
		}
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a quoted JSON string. Besides what JSON
// requires, it escapes the backslash as \u005c, so that the answer never
// holds the two characters \/: Blink Cocoa replaces every \/ with / in
// the raw answer before it parses it, which would corrupt a string with
// a backslash before a slash. It escapes U+2028 and U+2029 for
// JavaScript readers, and writes U+FFFD for bytes that are not UTF-8
// (the store keeps text fields valid, so this should not happen).
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\ufffd")
	}
	return appendValid(b, s)
}

// appendValid appends the valid UTF-8 text s as appendString does.
func appendValid[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x20 && c != '"' && c != '\\' && c != 0xe2:
			continue
		case c == 0xe2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9
			if i+2 >= len(s) || s[i+1] != 0x80 || s[i+2]&^1 != 0xa8 {
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[8+s[i+2]&1])
			i += 2
		default:
			b = append(b, s[start:i]...)
			b = appendASCII(b, c)
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendASCII appends the ASCII byte c as it goes inside a JSON string.
func appendASCII(b []byte, c byte) []byte {
	switch c {
	case '"':
		return append(b, `\"`...)
	case '\\':
		return append(b, `\u005c`...)
	case '\n':
		return append(b, `\n`...)
	case '\r':
		return append(b, `\r`...)
	case '\t':
		return append(b, `\t`...)
	}
	if c < 0x20 {
		return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, c)
}
