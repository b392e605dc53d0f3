package history

import (
	"errors"
	"strings"
	"testing"
)

// blinkIMDN is what Blink sends (blink.md §6.3: sipsimple's IMDNDocument).
func blinkIMDN(notification, status string) string {
	return `<?xml version='1.0' encoding='UTF-8'?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>5b0c9d7e-3a1f-4c55-9a0e-2f4b7d1c8e90</message-id>` +
		`<datetime>2026-11-28T10:00:01.000000+00:00</datetime><recipient-uri>sip:bob@example.com</recipient-uri>` +
		`<original-recipient-uri>sip:bob@example.com</original-recipient-uri>` +
		`<` + notification + `><status><` + status + `/></status></` + notification + `></imdn>`
}

func TestParseIMDN(t *testing.T) {
	for _, c := range []struct{ notification, status string }{
		{"delivery-notification", "delivered"},
		{"delivery-notification", "failed"},
		{"display-notification", "displayed"},
		{"display-notification", "forbidden"},
		{"processing-notification", "processed"},
		{"processing-notification", "stored"},
	} {
		n, err := ParseIMDN([]byte(blinkIMDN(c.notification, c.status)))
		if err != nil {
			t.Fatalf("%s/%s: %v", c.notification, c.status, err)
		}
		if n.MessageID != "5b0c9d7e-3a1f-4c55-9a0e-2f4b7d1c8e90" || n.Status != c.status || n.DateTime != "2026-11-28T10:00:01.000000+00:00" {
			t.Errorf("%s/%s: %+v", c.notification, c.status, n)
		}
	}
	for name, body := range map[string]string{
		"not XML":          "delivered",
		"other namespace":  strings.Replace(blinkIMDN("delivery-notification", "delivered"), "urn:ietf:params:xml:ns:imdn", "urn:x", 1),
		"no message id":    strings.Replace(blinkIMDN("delivery-notification", "delivered"), "5b0c9d7e-3a1f-4c55-9a0e-2f4b7d1c8e90", "", 1),
		"no notification":  `<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>m</message-id></imdn>`,
		"unknown status":   blinkIMDN("delivery-notification", "eaten"),
		"two statuses":     strings.Replace(blinkIMDN("delivery-notification", "delivered"), "<delivered/>", "<delivered/><failed/>", 1),
		"too large":        blinkIMDN("delivery-notification", "delivered") + strings.Repeat(" ", maxIMDN),
		"long message id":  strings.Replace(blinkIMDN("delivery-notification", "delivered"), "5b0c9d7e-3a1f-4c55-9a0e-2f4b7d1c8e90", strings.Repeat("x", 257), 1),
		"entity expansion": `<!DOCTYPE imdn [<!ENTITY a "aaaa">]><imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&a;</message-id><delivery-notification><status><delivered/></status></delivery-notification></imdn>`,
	} {
		if _, err := ParseIMDN([]byte(body)); !errors.Is(err, ErrIMDN) {
			t.Errorf("%s: err %v, want ErrIMDN", name, err)
		}
	}
}

// FuzzParseIMDN: any body is either an IMDN with a message id and a known
// status, or ErrIMDN; never a panic.
func FuzzParseIMDN(f *testing.F) {
	f.Add([]byte(blinkIMDN("delivery-notification", "delivered")))
	f.Add([]byte(blinkIMDN("display-notification", "displayed")))
	f.Add([]byte(`<imdn xmlns="urn:ietf:params:xml:ns:imdn"/>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseIMDN(body)
		if err != nil {
			if !errors.Is(err, ErrIMDN) {
				t.Fatalf("error %v is not ErrIMDN", err)
			}
			return
		}
		if n.MessageID == "" || len(n.MessageID) > 256 || n.Status == "" {
			t.Fatalf("accepted %+v", n)
		}
	})
}
