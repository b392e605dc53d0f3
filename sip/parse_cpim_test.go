package sip

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Bodies as Blink builds them (blink.md §6.1, §7): the CPIM headers joined by
// CRLF, then CRLF CRLF, then a MIME part written by Python's email package,
// whose lines end in LF alone.
const (
	blinkCocoaText = "From: Alice <sip:alice@example.com>\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"DateTime: 2025-01-20T10:00:00.123456+01:00\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: 6f1d3c1e-2b7a-4c1e-9d3f-0a1b2c3d4e5f\r\n" +
		"imdn.Disposition-Notification: positive-delivery, display\r\n" +
		"\r\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=\"utf-8\"\n" +
		"\n" +
		"Hello Bob"

	// Blink Qt: the same encoder; a non-ASCII text makes Python add an empty
	// Content-Transfer-Encoding header, trailing space included.
	blinkQtText = "From: Alice <sip:alice@example.com>\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"DateTime: 2025-01-20T09:00:00.654321+00:00\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: 0b6f3d2e-8c1a-4f5e-9a7b-3c2d1e0f9a8b\r\n" +
		"imdn.Disposition-Notification: positive-delivery, display\r\n" +
		"\r\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=\"utf-8\"\n" +
		"Content-Transfer-Encoding: \n" +
		"\n" +
		"Grüße, Bob 👋"

	// An IMDN from Blink Cocoa: a new id, and Disposition-Notification
	// positive-delivery (sic).
	blinkCocoaIMDN = "From: Bob <sip:bob@example.com>\r\n" +
		"To: <sip:alice@example.com>\r\n" +
		"DateTime: 2025-01-20T10:00:05+01:00\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d\r\n" +
		"imdn.Disposition-Notification: positive-delivery\r\n" +
		"\r\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: message/imdn+xml\n" +
		"\n" +
		blinkIMDNDocument

	// An IMDN from Blink Qt: no Disposition-Notification for IMDN content.
	blinkQtIMDN = "From: Bob <sip:bob@example.com>\r\n" +
		"To: <sip:alice@example.com>\r\n" +
		"DateTime: 2025-01-20T09:00:05.000001+00:00\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: 1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f\r\n" +
		"\r\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: message/imdn+xml\n" +
		"\n" +
		blinkIMDNDocument

	blinkIMDNDocument = "<?xml version='1.0' encoding='UTF-8'?>\n" +
		"<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\"><message-id>6f1d3c1e-2b7a-4c1e-9d3f-0a1b2c3d4e5f</message-id>" +
		"<datetime>2025-01-20T10:00:05+01:00</datetime><recipient-uri>sip:bob@example.com</recipient-uri>" +
		"<original-recipient-uri>sip:bob@example.com</original-recipient-uri>" +
		"<delivery-notification><status><delivered/></status></delivery-notification></imdn>"
)

// binaryContent has NUL, CR, LF and CRLF CRLF bytes that must come back as they are.
var binaryContent = "\x00\r\n\r\n\x00\xff\rX: y\n\n\x7f\x00\r\n"

// cpimCase is one ParseCPIM example: a body and either the result or the
// sentinel its error wraps.
type cpimCase struct {
	name string
	body string
	want CPIM // Content is compared as a suffix of body; nil Headers are not compared
	err  error
}

// cpimCases returns the table of TestParseCPIM; FuzzParseCPIM seeds from it.
func cpimCases() []cpimCase {
	headers := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-H" + strings.Repeat("a", i%7) + ": v\r\n")
		}
		return b.String()
	}
	line := func(n int) string { // one header of exactly n bytes
		return "Subject: " + strings.Repeat("s", n-len("Subject: "))
	}
	return []cpimCase{
		{
			name: "blink cocoa text",
			body: blinkCocoaText,
			want: CPIM{
				Headers: []CPIMHeader{
					{"From", "Alice <sip:alice@example.com>"},
					{"To", "<sip:bob@example.com>"},
					{"DateTime", "2025-01-20T10:00:00.123456+01:00"},
					{"NS", "imdn <urn:ietf:params:imdn>"},
					{"imdn.Message-ID", "6f1d3c1e-2b7a-4c1e-9d3f-0a1b2c3d4e5f"},
					{"imdn.Disposition-Notification", "positive-delivery, display"},
				},
				MessageID:   "6f1d3c1e-2b7a-4c1e-9d3f-0a1b2c3d4e5f",
				Disposition: []string{"positive-delivery", "display"},
				DateTime:    "2025-01-20T10:00:00.123456+01:00",
				ContentType: `text/plain; charset="utf-8"`,
				Content:     []byte("Hello Bob"),
			},
		},
		{
			name: "blink qt text with an empty content-transfer-encoding",
			body: blinkQtText,
			want: CPIM{
				MessageID:   "0b6f3d2e-8c1a-4f5e-9a7b-3c2d1e0f9a8b",
				Disposition: []string{"positive-delivery", "display"},
				DateTime:    "2025-01-20T09:00:00.654321+00:00",
				ContentType: `text/plain; charset="utf-8"`,
				Content:     []byte("Grüße, Bob 👋"),
			},
		},
		{
			name: "blink cocoa imdn",
			body: blinkCocoaIMDN,
			want: CPIM{
				MessageID:   "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
				Disposition: []string{"positive-delivery"},
				DateTime:    "2025-01-20T10:00:05+01:00",
				ContentType: "message/imdn+xml",
				Content:     []byte(blinkIMDNDocument),
			},
		},
		{
			name: "blink qt imdn without disposition",
			body: blinkQtIMDN,
			want: CPIM{
				MessageID:   "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
				DateTime:    "2025-01-20T09:00:05.000001+00:00",
				ContentType: "message/imdn+xml",
				Content:     []byte(blinkIMDNDocument),
			},
		},
		{
			name: "binary content kept byte for byte",
			body: "From: <sip:a@example.com>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n" + binaryContent,
			want: CPIM{ContentType: "application/octet-stream", Content: []byte(binaryContent)},
		},
		{
			name: "empty content",
			body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: a\r\n\r\nContent-Type: text/plain\r\n\r\n",
			want: CPIM{MessageID: "a", ContentType: "text/plain", Content: []byte{}},
		},
		{
			name: "prefix not declared",
			body: "imdn.Message-ID: abc\r\nimdn.Disposition-Notification: display\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "prefix declared after its use",
			body: "imdn.Message-ID: abc\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "other prefix",
			body: "NS: foo <urn:ietf:params:imdn>\r\nfoo.Message-ID: id-1\r\nfoo.Disposition-Notification: Display\r\n" +
				"imdn.Message-ID: not-this-one\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{MessageID: "id-1", Disposition: []string{"display"}, ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "imdn prefix bound to another namespace",
			body: "NS: imdn <urn:example:other>\r\nimdn.Message-ID: abc\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "prefix rebound to imdn",
			body: "NS: p <urn:example:other>\r\np.Message-ID: first\r\nNS: p <URN:IETF:PARAMS:IMDN>\r\np.Message-ID: second\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{MessageID: "second", ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "imdn as the default namespace",
			body: "DateTime: 2000-12-13T13:40:00-08:00\r\nNS: <urn:ietf:params:imdn>\r\nMessage-ID: xyz\r\nDateTime: 2001-01-01T00:00:00Z\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{MessageID: "xyz", DateTime: "2000-12-13T13:40:00-08:00", ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "names match exactly",
			body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.message-id: abc\r\nIMDN.Message-ID: abd\r\ndatetime: x\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "malformed ns declares nothing",
			body: "NS: imdn urn:ietf:params:imdn\r\nNS: a.b <urn:ietf:params:imdn>\r\nNS: imdn <>\r\nimdn.Message-ID: abc\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "disposition values across headers, empty ones dropped",
			body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Disposition-Notification: \r\nimdn.Disposition-Notification: Positive-Delivery ,, NEGATIVE-delivery;x=Y\r\n" +
				"imdn.Disposition-Notification: display\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{Disposition: []string{"positive-delivery", "negative-delivery;x=y", "display"}, ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "lf line ends throughout",
			body: strings.ReplaceAll(blinkCocoaText, "\r\n", "\n"),
			want: CPIM{
				MessageID:   "6f1d3c1e-2b7a-4c1e-9d3f-0a1b2c3d4e5f",
				Disposition: []string{"positive-delivery", "display"},
				DateTime:    "2025-01-20T10:00:00.123456+01:00",
				ContentType: `text/plain; charset="utf-8"`,
				Content:     []byte("Hello Bob"),
			},
		},
		{
			name: "crlf then lf as a separator",
			body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: a\r\n\nContent-Type: text/plain\n\r\nhi",
			want: CPIM{MessageID: "a", ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "folded content header, lower-case name",
			body: "From: <im:bob@example.com>\r\n\r\ncontent-type: multipart/mixed;\r\n    boundary=\"b\"\r\n\tcharset=x\r\n\r\n--b--\r\n",
			want: CPIM{ContentType: "multipart/mixed;    boundary=\"b\"\tcharset=x", Content: []byte("--b--\r\n")},
		},
		{
			name: "no message headers",
			body: "\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "no content type",
			body: "From: <im:a@example.com>\r\n\r\nContent-ID: <1@example.com>\r\n\r\nhi",
			want: CPIM{Content: []byte("hi")},
		},
		{
			name: "64 headers per block",
			body: headers(64) + "\r\n" + headers(63) + "Content-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "8 KiB header",
			body: line(8<<10) + "\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{ContentType: "text/plain", Content: []byte("hi")},
		},
		{
			name: "256-byte message id",
			body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: " + strings.Repeat("~", 256) + "\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
			want: CPIM{MessageID: strings.Repeat("~", 256), ContentType: "text/plain", Content: []byte("hi")},
		},

		// Errors.
		{name: "empty body", body: "", err: ErrCPIMMalformed},
		{name: "no separator", body: "From: <im:a@example.com>\r\nTo: <im:b@example.com>\r\n", err: ErrCPIMMalformed},
		{name: "no separator after the content headers", body: "From: <im:a@example.com>\r\n\r\nContent-Type: text/plain\r\nhi", err: ErrCPIMMalformed},
		{name: "content without content headers", body: "From: <im:a@example.com>\r\n\r\nHello World\r\n", err: ErrCPIMMalformed},
		{name: "single cr line ends", body: "From: a\rTo: b\r\r" + "Content-Type: text/plain\r\r", err: ErrCPIMMalformed},
		{name: "65 message headers", body: headers(65) + "\r\nContent-Type: text/plain\r\n\r\nhi", err: ErrCPIMTooLarge},
		{name: "65 content headers", body: "\r\n" + headers(64) + "Content-Type: text/plain\r\n\r\nhi", err: ErrCPIMTooLarge},
		{name: "header over 8 KiB", body: line(8<<10+1) + "\r\n\r\nContent-Type: text/plain\r\n\r\nhi", err: ErrCPIMTooLarge},
		{name: "unterminated line over 8 KiB", body: line(1 << 20), err: ErrCPIMTooLarge},
		{name: "content header over 8 KiB", body: "\r\nContent-Type: text/plain\r\n" + line(8<<10+1) + "\n\r\nhi", err: ErrCPIMTooLarge},
		{name: "folded header over 8 KiB", body: "\r\nContent-Type: text/plain;" + strings.Repeat("\r\n x", 3000) + "\r\n\r\nhi", err: ErrCPIMTooLarge},
		{name: "message id over 256 bytes", body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: " + strings.Repeat("a", 257) + "\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMTooLarge},
		{name: "message id with a space", body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: a b\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "message id not ascii", body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: é\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "empty message id", body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: \r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "two message ids", body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: a\r\nimdn.Message-ID: a\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "17 disposition values", body: "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Disposition-Notification: " + strings.Repeat("display,", 17) + "\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMTooLarge},
		{name: "line without a colon", body: "From <im:a@example.com>\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "empty header name", body: ": x\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "space in a header name", body: "Content Type: x\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "nul in a header value", body: "Subject: a\x00b\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
		{name: "folded first line", body: " From: <im:a@example.com>\r\n\r\nContent-Type: text/plain\r\n\r\n", err: ErrCPIMMalformed},
	}
}

func TestParseCPIM(t *testing.T) {
	t.Parallel()
	for _, tc := range cpimCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tc.body)
			got, err := ParseCPIM(body)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseCPIM: error %v, want %v", err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), "sip: cpim: ") || err.Error() != strings.ToLower(err.Error()) {
					t.Fatalf("error %q: want lower case with the prefix sip: cpim: ", err)
				}
				if !reflect.DeepEqual(got, CPIM{}) {
					t.Fatalf("ParseCPIM returned %+v with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCPIM: %v", err)
			}
			checkCPIMContent(t, body, got)
			want := tc.want
			if want.Headers == nil {
				want.Headers = got.Headers
			}
			if !bytes.Equal(got.Content, want.Content) {
				t.Fatalf("Content = %q, want %q", got.Content, want.Content)
			}
			got.Content, want.Content = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ParseCPIM =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// checkCPIMContent fails t unless c.Content is the tail of body, sharing
// its memory, with no capacity beyond it.
func checkCPIMContent(t testing.TB, body []byte, c CPIM) {
	t.Helper()
	n := len(c.Content)
	if n > len(body) || !bytes.Equal(c.Content, body[len(body)-n:]) {
		t.Fatalf("Content %q is not the end of the body", c.Content)
	}
	if n > 0 && &c.Content[0] != &body[len(body)-n] {
		t.Fatal("Content is a copy, not a subslice of the body")
	}
	if cap(c.Content) != n {
		t.Fatalf("Content has capacity %d for length %d: an append would write past the body", cap(c.Content), n)
	}
}

// cpimTestdata returns the bodies of testdata/cpim by file name.
func cpimTestdata(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "cpim", "*.cpim"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bodies in testdata/cpim: %v", err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestParseCPIMTestdata(t *testing.T) {
	t.Parallel()
	type result struct {
		messageID, dateTime, contentType string
		disposition                      []string
		headers                          int
		err                              error
	}
	want := map[string]result{
		"rfc3862-5.1.cpim": {dateTime: "2000-12-13T13:40:00-08:00", contentType: "text/xml; charset=utf-8", headers: 9},
		// RFC 5438 prints its examples without the empty line between the
		// message headers and the content headers.
		"rfc5438-7.1.1.3-as-printed.cpim": {err: ErrCPIMMalformed},
		"rfc5438-7.1.1.3.cpim": {
			messageID: "34jk324j", dateTime: "2006-04-04T12:16:49-05:00", contentType: "text/plain",
			disposition: []string{"positive-delivery", "negative-delivery"}, headers: 6,
		},
		"rfc5438-7.2.1.1.cpim": {messageID: "d834jied93rf", contentType: "message/imdn+xml", headers: 4},
		"rfc5438-7.2.1.2.cpim": {messageID: "dfjkleriou432333", contentType: "message/imdn+xml", headers: 4},
		"rfc5438-8.1.cpim":     {contentType: "message/imdn+xml", headers: 2},
		"rfc5438-8.3.cpim":     {messageID: "d834jied93rf", contentType: `multipart/mixed;                   boundary="imdn-boundary"`, headers: 4},
	}
	bodies := cpimTestdata(t)
	for name, body := range bodies {
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no expected result", name)
			continue
		}
		c, err := ParseCPIM(body)
		if w.err != nil {
			if !errors.Is(err, w.err) {
				t.Errorf("%s: error %v, want %v", name, err, w.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkCPIMContent(t, body, c)
		got := result{c.MessageID, c.DateTime, c.ContentType, c.Disposition, len(c.Headers), nil}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: got %+v, want %+v", name, got, w)
		}
	}
	for name := range want {
		if _, ok := bodies[name]; !ok {
			t.Errorf("%s: missing from testdata/cpim", name)
		}
	}
}

func TestIsCPIM(t *testing.T) {
	t.Parallel()
	for ct, want := range map[string]bool{
		"message/cpim":                  true,
		"Message/CPIM":                  true,
		" message/cpim ; charset=utf-8": true,
		"message/cpim;x=y":              true,
		"message/cpim+xml":              false,
		"text/plain":                    false,
		"":                              false,
		"message/cpimx":                 false,
		"messagecpim":                   false,
	} {
		if got := IsCPIM(ct); got != want {
			t.Errorf("IsCPIM(%q) = %v, want %v", ct, got, want)
		}
	}
}
