package history

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
)

// IMDN is a disposition notification (RFC 5438): which message, and what
// became of it.
type IMDN struct {
	MessageID string
	DateTime  string
	// Status is delivered, displayed, failed, processed, stored,
	// forbidden or error.
	Status string
}

// ErrIMDN is returned for a body that is not an IMDN document.
var ErrIMDN = errors.New("history: malformed IMDN document")

// maxIMDN bounds the IMDN documents parsed.
const maxIMDN = 16 << 10

// ParseIMDN reads a message/imdn+xml document.
func ParseIMDN(body []byte) (IMDN, error) {
	if len(body) > maxIMDN {
		return IMDN{}, ErrIMDN
	}
	var doc struct {
		XMLName   xml.Name `xml:"urn:ietf:params:xml:ns:imdn imdn"`
		MessageID string   `xml:"message-id"`
		DateTime  string   `xml:"datetime"`
		Delivery  *status  `xml:"delivery-notification>status"`
		Display   *status  `xml:"display-notification>status"`
		Process   *status  `xml:"processing-notification>status"`
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	if err := dec.Decode(&doc); err != nil {
		return IMDN{}, ErrIMDN
	}
	n := IMDN{MessageID: strings.TrimSpace(doc.MessageID), DateTime: strings.TrimSpace(doc.DateTime)}
	for _, st := range []*status{doc.Delivery, doc.Display, doc.Process} {
		if st != nil {
			n.Status = st.name()
			break
		}
	}
	if n.MessageID == "" || len(n.MessageID) > 256 || n.Status == "" {
		return IMDN{}, ErrIMDN
	}
	return n, nil
}

// status is the <status> element: one empty child names the outcome.
type status struct {
	Children []struct {
		XMLName xml.Name
	} `xml:",any"`
}

func (s *status) name() string {
	if len(s.Children) != 1 {
		return ""
	}
	switch n := s.Children[0].XMLName.Local; n {
	case "delivered", "displayed", "failed", "processed", "stored", "forbidden", "error":
		return n
	}
	return ""
}
