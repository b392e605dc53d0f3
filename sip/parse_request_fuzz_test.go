package sip

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/auth"
)

// FuzzSIPRequest parses any datagram with sipgo and, when it is a request,
// reads every part of it that the server reads (readRequest), which must not
// panic. Seeds: the RFC 4475 messages of testdata/rfc4475 and the requests of
// sipRequestSeeds.
func FuzzSIPRequest(f *testing.F) {
	for _, data := range rfc4475Files(f) {
		f.Add(data)
	}
	for _, data := range sipRequestSeeds() {
		f.Add([]byte(data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sipmsg.NewParser().ParseSIP(data)
		if err != nil {
			return
		}
		if req, ok := msg.(*sipmsg.Request); ok {
			readRequest(t, req)
		}
	})
}

// TestSIPRequestSeeds checks that the seeds of FuzzSIPRequest reach what they
// were written for: sipgo parses them, the MESSAGE carries a CPIM body that
// ParseCPIM reads, and the credentials and instance id are where
// readRequest looks.
func TestSIPRequestSeeds(t *testing.T) {
	t.Parallel()
	for i, data := range sipRequestSeeds() {
		msg, err := sipmsg.NewParser().ParseSIP([]byte(data))
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		req, ok := msg.(*sipmsg.Request)
		if !ok {
			t.Fatalf("seed %d: %T, want a request", i, msg)
		}
		readRequest(t, req)
		h := req.GetHeader("Authorization")
		if h == nil {
			t.Fatalf("seed %d: no Authorization", i)
		}
		if _, err := auth.ParseDigest(h.Value()); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		switch req.Method {
		case sipmsg.MESSAGE:
			c, err := ParseCPIM(req.Body())
			if err != nil || c.MessageID != "6f1d3c1e-2b7a-4c1e-9d3f-0a1b2c3d4e5f" {
				t.Fatalf("seed %d: ParseCPIM = %+v, %v", i, c, err)
			}
		case sipmsg.REGISTER:
			id, _ := req.Contact().Params.Get("+sip.instance")
			if id != `"<urn:uuid:11111111-1111-4111-8111-111111111111>"` {
				t.Fatalf("seed %d: +sip.instance %q", i, id)
			}
		}
	}
}

// readRequest reads what the server reads of a request: the Request-URI,
// the From and To addresses, Call-ID, CSeq, the Contact bindings and their
// parameters (expires, +sip.instance, reg-id), Expires, Content-Type, the
// body and its CPIM envelope, and the Digest credentials. A message/cpim body
// that ParseCPIM accepts must keep ParseCPIM's promises (checkCPIM).
func readRequest(t testing.TB, req *sipmsg.Request) {
	t.Helper()
	_ = req.Method.String()
	_ = addrOf(&req.Recipient)
	if from := req.From(); from != nil {
		if a := addrOf(&from.Address); a != "" && !strings.Contains(a, "@") {
			t.Fatalf("addrOf(From) = %q", a)
		}
		_ = withoutTag(from.Address, from.DisplayName, from.Params)
	}
	if to := req.To(); to != nil {
		v := withoutTag(to.Address, to.DisplayName, to.Params)
		var uri sipmsg.Uri
		var params sipmsg.HeaderParams
		if _, err := sipmsg.ParseAddressValue(v, &uri, &params); err == nil && params.Has("tag") {
			t.Fatalf("withoutTag kept the tag: %q", v)
		}
	}
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sipmsg.ContactHeader)
		if !ok {
			t.Fatalf("Contact header of type %T", h)
		}
		if inst, err := instanceOf(c); err == nil && (inst == "" || len(inst) > maxInstanceLen || !printable(inst)) {
			t.Fatalf("instanceOf = %q", inst)
		}
		if d, err := contactExpires(c, req, time.Hour); err == nil && d < 0 {
			t.Fatalf("contactExpires = %v", d)
		}
	}
	if d, _, err := messageExpires(req); err == nil && d < 0 {
		t.Fatalf("messageExpires = %v", d)
	}
	body := req.Body()
	if ct := req.ContentType(); ct != nil {
		var callID string
		if id := req.CallID(); id != nil {
			callID = id.Value()
		}
		var seq uint32
		if cseq := req.CSeq(); cseq != nil {
			seq = cseq.SeqNo
		}
		if k := dedupKey(ct.Value(), body, callID, seq); k == "" || len(k) > maxKeyLen+len("imdn:") {
			t.Fatalf("dedupKey = %q", k)
		}
		if IsCPIM(ct.Value()) {
			if c, err := ParseCPIM(body); err == nil {
				checkCPIM(t, body, c)
			}
		}
	}
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		for _, h := range req.GetHeaders(name) {
			_, _ = auth.ParseDigest(h.Value())
		}
	}
}

// rfc4475Files returns the messages of testdata/rfc4475 by name, without the
// .dat suffix.
func rfc4475Files(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "rfc4475", "*.dat"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no messages in testdata/rfc4475: %v", err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".dat")] = b
	}
	return out
}

// sipRequestSeeds returns requests of the kinds the server reads most: a
// Blink MESSAGE with a CPIM body and a REGISTER with an instance id and
// Digest credentials.
func sipRequestSeeds() []string {
	message := "MESSAGE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS 192.0.2.10:50321;rport;branch=z9hG4bKPj0a1b2c3d\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: \"Alice\" <sip:alice@example.com>;tag=4f2a9c\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: 8d1f0e2c3b4a59687766554433221100\r\n" +
		"CSeq: 17 MESSAGE\r\n" +
		"Route: <sip:proxy.example.com;transport=tls;lr>\r\n" +
		"Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"bm9uY2U\", uri=\"sip:bob@example.com\", " +
		"response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, cnonce=\"Y25vbmNl\", qop=auth, nc=00000001\r\n" +
		"Content-Type: message/cpim\r\n" +
		"Content-Length: " + strconv.Itoa(len(blinkCocoaText)) + "\r\n" +
		"\r\n" + blinkCocoaText
	register := "REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP 192.0.2.20:5060;rport;branch=z9hG4bKPj9f8e7d\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: \"Alice\" <sip:alice@example.com>;tag=9c8b7a\r\n" +
		"To: \"Alice\" <sip:alice@example.com>\r\n" +
		"Call-ID: 11223344556677889900aabbccddeeff\r\n" +
		"CSeq: 2 REGISTER\r\n" +
		"Contact: <sip:alice@192.0.2.20:5060;transport=tcp>;+sip.instance=\"<urn:uuid:11111111-1111-4111-8111-111111111111>\";reg-id=1;expires=600\r\n" +
		"Expires: 600\r\n" +
		"Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"bm9uY2U\", uri=\"sip:example.com\", " +
		"response=\"fedcba9876543210fedcba9876543210\", algorithm=MD5, cnonce=\"Y25vbmNl\", qop=auth, nc=00000002\r\n" +
		"Content-Length: 0\r\n" +
		"\r\n"
	return []string{message, register}
}
