package replicationtest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Entry is the journal entry Blink encrypts into a blob (blink.md §4).
// Every field is a string on the wire.
type Entry struct {
	MsgID         string `json:"msgid"`
	Time          string `json:"time"` // TimeFormat, UTC
	Date          string `json:"date"` // DateFormat, UTC
	MediaType     string `json:"media_type"`
	Direction     string `json:"direction"`
	LocalURI      string `json:"local_uri"`
	RemoteURI     string `json:"remote_uri"`
	CPIMFrom      string `json:"cpim_from"`
	CPIMTo        string `json:"cpim_to"`
	CPIMTimestamp string `json:"cpim_timestamp"`
	Body          string `json:"body"`
	ContentType   string `json:"content_type"`
	Private       string `json:"private"`
	Status        string `json:"status"`
	CallID        string `json:"call_id"`
	Encryption    string `json:"encryption"`
}

// The formats of Entry.Time and Entry.Date; the receiving Blink parses Time
// with exactly this format.
const (
	TimeFormat = "2006-01-02 15:04:05"
	DateFormat = "2006-01-02"
)

// RequiredKeys are the keys a receiving Blink reads from every entry; a
// missing one stops its processing of the whole batch.
var RequiredKeys = []string{
	"msgid", "media_type", "local_uri", "remote_uri", "direction", "cpim_from",
	"cpim_to", "cpim_timestamp", "body", "content_type", "private", "status", "time",
}

// NewEntry returns an outgoing chat entry from alice@example.com to
// bob@example.com, created at t.
func NewEntry(msgID, body string, t time.Time) Entry {
	u := t.UTC()
	return Entry{
		MsgID: msgID, Time: u.Format(TimeFormat), Date: u.Format(DateFormat),
		MediaType: "chat", Direction: "outgoing",
		LocalURI: "alice@example.com", RemoteURI: "bob@example.com",
		CPIMFrom: "Alice <alice@example.com>", CPIMTo: "Bob <bob@example.com>",
		CPIMTimestamp: u.Format("2006-01-02T15:04:05.000000-07:00"),
		Body:          body, ContentType: "text", Private: "0", Status: "delivered",
		CallID: "call-" + msgID,
	}
}

// SampleEntry returns the example entry of blink.md §4, whose JSON is the
// plaintext of the full-entry test vector of §3.
func SampleEntry() Entry {
	return Entry{
		MsgID: "5f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c", Time: "2015-02-09 10:12:10", Date: "2015-02-09",
		MediaType: "chat", Direction: "outgoing",
		LocalURI: "alice@example.com", RemoteURI: "bob@example.com",
		CPIMFrom: "Alice <alice@example.com>", CPIMTo: "Bob <bob@example.com>",
		CPIMTimestamp: "2015-02-09T11:12:10.123456+01:00",
		Body:          "Hello Bob", ContentType: "text", Private: "0", Status: "delivered",
		CallID: "abc123",
	}
}

// JSON returns e as Python's json.dumps writes it: keys in the order of §4,
// ", " and ": " separators, non-ASCII escaped as \uXXXX.
func (e Entry) JSON() []byte {
	fields := []struct{ k, v string }{
		{"msgid", e.MsgID}, {"time", e.Time}, {"date", e.Date}, {"media_type", e.MediaType},
		{"direction", e.Direction}, {"local_uri", e.LocalURI}, {"remote_uri", e.RemoteURI},
		{"cpim_from", e.CPIMFrom}, {"cpim_to", e.CPIMTo}, {"cpim_timestamp", e.CPIMTimestamp},
		{"body", e.Body}, {"content_type", e.ContentType}, {"private", e.Private},
		{"status", e.Status}, {"call_id", e.CallID}, {"encryption", e.Encryption},
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(PyString(f.k))
		b.WriteString(": ")
		b.WriteString(PyString(f.v))
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// PyString returns s as a JSON string the way Python's json.dumps writes it
// with ensure_ascii: only '"', '\\' and control characters are escaped, and
// everything beyond ASCII becomes \uXXXX (surrogate pairs above U+FFFF).
func PyString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/32 + 2)
	b.WriteByte('"')
	for s != "" {
		// Copy the run of bytes that need no escape in one go: blobs are long.
		i := strings.IndexFunc(s, needsEscape)
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		r, size := utf8.DecodeRuneInString(s[i:])
		s = s[i+size:]
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// needsEscape reports whether json.dumps escapes r: anything outside ' '..'~',
// and '"' and '\\'.
func needsEscape(r rune) bool { return r < 0x20 || r > 0x7e || r == '"' || r == '\\' }

// ParseEntry reads a decrypted blob as a receiving Blink does: it must be a
// JSON object with every one of RequiredKeys as a string, and a time that
// parses with TimeFormat.
func ParseEntry(plaintext []byte) (Entry, error) {
	var m map[string]any
	if err := json.Unmarshal(plaintext, &m); err != nil {
		return Entry{}, fmt.Errorf("replicationtest: entry is not a JSON object: %w", err)
	}
	for _, k := range RequiredKeys {
		v, ok := m[k]
		if !ok {
			return Entry{}, fmt.Errorf("replicationtest: entry has no %q", k)
		}
		if _, ok := v.(string); !ok {
			return Entry{}, fmt.Errorf("replicationtest: entry %q is %T, want a string", k, v)
		}
	}
	var e Entry
	if err := json.Unmarshal(plaintext, &e); err != nil {
		return Entry{}, fmt.Errorf("replicationtest: entry: %w", err)
	}
	if _, err := time.Parse(TimeFormat, e.Time); err != nil {
		return Entry{}, fmt.Errorf("replicationtest: entry time %q: %w", e.Time, err)
	}
	return e, nil
}

// maxPyTimestamp is the first Unix time Python's datetime.fromtimestamp
// refuses: year 10000.
const maxPyTimestamp = 253402300800

// CheckTimestamp reports whether raw, a JSON value of a get answer, is what
// Blink needs: a JSON integer that int() and datetime.fromtimestamp() take.
// It returns the value.
func CheckTimestamp(raw json.RawMessage) (int64, error) {
	s := string(raw)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("replicationtest: timestamp %s is not a JSON integer", s)
	}
	if n <= 0 || n >= maxPyTimestamp {
		return 0, fmt.Errorf("replicationtest: timestamp %d is outside what datetime.fromtimestamp takes", n)
	}
	return n, nil
}
