package sip

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParseCPIM checks, for any body, that ParseCPIM does not panic, fails
// only with its own errors, and that what it accepts keeps its limits: the
// content is a subslice at the end of the body and the Message-ID is
// printable ASCII. Seeds: the RFC 3862 and RFC 5438 examples of
// testdata/cpim and the bodies of TestParseCPIM.
func FuzzParseCPIM(f *testing.F) {
	for _, body := range cpimTestdata(f) {
		f.Add(body)
	}
	for _, tc := range cpimCases() {
		if len(tc.body) <= 1<<16 {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseCPIM(body)
		if err != nil {
			if !errors.Is(err, ErrCPIMMalformed) && !errors.Is(err, ErrCPIMTooLarge) {
				t.Fatalf("ParseCPIM(%q): unexpected error %v", body, err)
			}
			if !reflect.DeepEqual(c, CPIM{}) {
				t.Fatalf("ParseCPIM(%q) returned %+v with its error", body, c)
			}
			return
		}
		checkCPIM(t, body, c)
	})
}

// checkCPIM fails t unless c, parsed from body, keeps ParseCPIM's promises.
func checkCPIM(t testing.TB, body []byte, c CPIM) {
	t.Helper()
	checkCPIMContent(t, body, c)
	if len(c.MessageID) > cpimMaxMessageIDLen {
		t.Fatalf("Message-ID of %d bytes", len(c.MessageID))
	}
	for i := 0; i < len(c.MessageID); i++ {
		if b := c.MessageID[i]; b < 0x21 || b > 0x7e {
			t.Fatalf("Message-ID %q is not printable ASCII", c.MessageID)
		}
	}
	if len(c.Headers) > cpimMaxHeaders {
		t.Fatalf("%d message headers", len(c.Headers))
	}
	if len(c.Disposition) > cpimMaxDispositions {
		t.Fatalf("%d disposition values", len(c.Disposition))
	}
	for _, d := range c.Disposition {
		if d == "" || d != asciiLower(d) || d[0] == ' ' || d[len(d)-1] == ' ' {
			t.Fatalf("disposition value %q is not trimmed and lower case", d)
		}
	}
	for _, h := range c.Headers {
		if h.Name == "" || len(h.Name)+len(h.Value) > cpimMaxHeaderLen {
			t.Fatalf("header %q: %q", h.Name, h.Value)
		}
	}
}
