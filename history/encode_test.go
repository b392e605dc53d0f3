package history

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-chat/cairn/store"
)

func TestAppendString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`a"b`, `"a\"b"`},
		{`back\slash`, `"back\u005cslash"`},
		{`\/`, `"\u005c/"`},
		{"</script>&", `"</script>&"`},
		{"tab\tnl\ncr\r", `"tab\tnl\ncr\r"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"é✓𝄞", `"é✓𝄞"`},
		{"\u2028\u2029\u2027", `"\u2028\u2029` + "\u2027" + `"`},
		{"\xe2\x80", "\"\ufffd\""}, // not UTF-8: the store never has it
		{"a\xffb", "\"a\ufffdb\""},
	} {
		if got := string(appendString(nil, tc.in)); got != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAppendContent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte("héllo"), "héllo"},
		{[]byte{0xff, 0xfe, 'a', 0x80, 0}, "\u00ff\u00fea\u0080\x00"},
		{[]byte("é\xe9"), "\u00c3\u00a9\u00e9"}, // one bad byte: all Latin-1
		{[]byte("\xe2\x80\xa8\\"), "\u2028\\"},
	} {
		b := appendContent(nil, tc.in)
		var got string
		if err := json.Unmarshal(b, &got); err != nil || got != tc.want {
			t.Errorf("appendContent(%q) = %s (%q, %v), want %q", tc.in, b, got, err, tc.want)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 3, 14, 16, 0, 0, 123456789, time.FixedZone("CET", 3600)), `"2025-03-14T15:00:00.123456+00:00"`},
		{time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC), `"2025-03-14T15:00:00.000000+00:00"`},
		{time.Date(2024, 12, 31, 23, 30, 0, 1000, time.FixedZone("", -3600)), `"2025-01-01T00:30:00.000001+00:00"`},
		{time.Time{}, `"0001-01-01T00:00:00.000000+00:00"`},
	} {
		if got := string(appendTimestamp(nil, tc.in)); got != tc.want {
			t.Errorf("appendTimestamp(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzAppendItem checks that any row gives valid JSON that decodes to the
// row, with content mapped as appendContent documents, and never holds \/.
func FuzzAppendItem(f *testing.F) {
	f.Add(int64(1), "m1", "bob@example.com", "text/plain", []byte("hi"), "incoming", "received", "display", int64(1741964400123456))
	f.Add(int64(9), `a\/b`, "\u2028", "message/imdn", []byte(`{"state": "delivered"}`), "", "", "", int64(0))
	f.Add(int64(1<<62), "\x00", "\"", "", []byte{0xff, 0, '\\', '/'}, "outgoing", "pending", `"`, int64(-1))
	f.Fuzz(func(t *testing.T, id int64, messageID, contact, contentType string, content []byte, direction, state, disp string, micros int64) {
		for _, s := range []*string{&messageID, &contact, &contentType, &direction, &state, &disp} {
			*s = strings.ToValidUTF8(*s, "\ufffd") // the store keeps text valid
		}
		r := store.HistoryRow{
			ID: id, MessageID: messageID, Contact: contact, ContentType: contentType, Content: content,
			Direction: direction, State: state, Disposition: []string{disp, disp}, Timestamp: time.UnixMicro(micros % (1 << 50)),
		}
		b := appendItem(nil, &r)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %s", b)
		}
		if strings.Contains(string(b), `\/`) {
			t.Fatalf(`JSON holds \/: %s`, b)
		}
		var got struct {
			ID          int64    `json:"id"`
			MessageID   string   `json:"message_id"`
			Contact     string   `json:"contact"`
			Timestamp   string   `json:"timestamp"`
			Disposition []string `json:"disposition"`
			ContentType string   `json:"content_type"`
			Content     string   `json:"content"`
			Direction   string   `json:"direction"`
			State       string   `json:"state"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := string(content)
		if !utf8.Valid(content) {
			rs := make([]rune, len(content))
			for i, c := range content {
				rs[i] = rune(c)
			}
			want = string(rs)
		}
		ts, err := time.Parse("2006-01-02T15:04:05.999999-07:00", got.Timestamp)
		if got.ID != id || got.MessageID != messageID || got.Contact != contact || got.ContentType != contentType ||
			got.Content != want || got.Direction != direction || got.State != state ||
			len(got.Disposition) != 2 || got.Disposition[0] != disp || err != nil || !ts.Equal(r.Timestamp) {
			t.Fatalf("%s decodes to %+v (%v)", b, got, err)
		}
	})
}
