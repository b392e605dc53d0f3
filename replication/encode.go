package replication

import (
	"strconv"
	"unicode/utf8"
)

// The get_journal_entries answer is the one large answer (5,000 rows of
// blobs, megabytes), so it is written by hand rather than through
// encoding/json's reflection; the other answers are small and use writeJSON.

// appendGetAnswer appends the JSON of a to dst, with the keys in the order
// cdrtool wrote them.
func appendGetAnswer(dst []byte, a getAnswer) []byte {
	dst = append(dst, `{"success":true,"error_message":null,"results":[`...)
	for i, r := range a.Results {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":"`...)
		dst = append(dst, r.ID...)
		dst = append(dst, `","source":"default","timestamp":`...)
		dst = strconv.AppendInt(dst, r.Timestamp, 10)
		dst = append(dst, `,"account":`...)
		dst = appendString(dst, r.Account)
		dst = append(dst, `,"uuid":`...)
		dst = appendString(dst, r.UUID)
		dst = append(dst, `,"ip_address":`...)
		dst = appendString(dst, r.IPAddress)
		dst = append(dst, `,"data":`...)
		dst = appendString(dst, r.Data)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"rows":`...)
	dst = strconv.AppendInt(dst, int64(a.Rows), 10)
	if a.Summary != nil {
		dst = append(dst, `,"summary":[`...)
		for i, s := range *a.Summary {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"journal_id":"`...)
			dst = append(dst, s.JournalID...)
			dst = append(dst, `","timestamp":`...)
			dst = strconv.AppendInt(dst, s.Timestamp, 10)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Like encoding/json, it escapes
// control characters, quotes, backslashes, U+2028 and U+2029, and replaces
// invalid UTF-8 with U+FFFD; it leaves '<', '>' and '&' alone.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
