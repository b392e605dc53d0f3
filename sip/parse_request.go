package sip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Bounds on what a request may carry.
const (
	maxInstanceLen = 256
	maxAddrLen     = 320 // a user part of 64 and a domain of 255, with room
	maxKeyLen      = 300
	maxContentType = 256
)

// addrOf returns user@host of a SIP URI, with the host in lower case (the
// user part is compared as written, as RFC 3261 §19.1.4 says).
func addrOf(u *sipmsg.Uri) string {
	if u == nil || u.User == "" || u.Host == "" {
		return ""
	}
	return u.User + "@" + strings.ToLower(u.Host)
}

// instanceOf returns the device key of a Contact: its +sip.instance
// (RFC 5626 §4.1) without quotes, else the Contact URI.
func instanceOf(c *sipmsg.ContactHeader) (string, error) {
	if v, ok := c.Params.Get("+sip.instance"); ok {
		v = strings.Trim(v, `"`)
		if v == "" || len(v) > maxInstanceLen || !printable(v) {
			return "", errors.New("sip: bad +sip.instance")
		}
		return v, nil
	}
	uri := c.Address.String()
	if len(uri) > maxInstanceLen || !printable(uri) {
		return "", errors.New("sip: contact URI too long")
	}
	return uri, nil
}

// contactExpires returns the lifetime a Contact asks for: its expires
// parameter, else the request's Expires header, else def.
func contactExpires(c *sipmsg.ContactHeader, req *sipmsg.Request, def time.Duration) (time.Duration, error) {
	if v, ok := c.Params.Get("expires"); ok {
		return parseSeconds(v)
	}
	if h := req.GetHeader("Expires"); h != nil {
		return parseSeconds(h.Value())
	}
	return def, nil
}

// messageExpires returns the lifetime a MESSAGE's Expires header asks for,
// and whether it has one.
func messageExpires(req *sipmsg.Request) (time.Duration, bool, error) {
	h := req.GetHeader("Expires")
	if h == nil {
		return 0, false, nil
	}
	d, err := parseSeconds(h.Value())
	return d, true, err
}

// parseSeconds reads a delta-seconds value (RFC 3261 §25.1), capped at
// 2**32-1 as §20.19 allows.
func parseSeconds(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 10 || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("sip: bad delta-seconds %q", v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sip: bad delta-seconds %q", v)
	}
	return time.Duration(min(n, 1<<32-1)) * time.Second, nil
}

// dedupKey identifies a MESSAGE across resends from one sender: the IMDN
// Message-ID of a CPIM body when it has one (RFC 5438 §6.3), else the
// Call-ID and CSeq number, which a client keeps when it resends.
func dedupKey(contentType string, body []byte, callID string, cseq uint32) string {
	if IsCPIM(contentType) {
		if c, err := ParseCPIM(body); err == nil && c.MessageID != "" {
			return "imdn:" + c.MessageID
		}
	}
	k := "call:" + callID + ":" + strconv.FormatUint(uint64(cseq), 10)
	if len(k) > maxKeyLen {
		k = k[:maxKeyLen]
	}
	return k
}

// withoutTag returns a From or To header value with its tag removed.
func withoutTag(addr sipmsg.Uri, display string, params sipmsg.HeaderParams) string {
	h := sipmsg.ToHeader{DisplayName: display, Address: addr}
	for _, kv := range params {
		if !strings.EqualFold(kv.K, "tag") {
			h.Params = append(h.Params, kv)
		}
	}
	return h.Value()
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
