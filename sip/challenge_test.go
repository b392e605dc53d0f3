package sip_test

import (
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
)

// TestChallengeIsStateless retransmits a REGISTER that was challenged: a
// transaction kept for it would repeat the first 401, but the challenge is
// stateless, so the retransmission gets a fresh nonce.
func TestChallengeIsStateless(t *testing.T) {
	e := start(t, apptest.Engines[0], func(c *config.Config) { c.SIP.Domains = []string{domain} })
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server, err := net.ResolveUDPAddr("udp", e.srv.Node.Addr("sip-udp").String())
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	req := fmt.Sprintf("REGISTER sip:%[1]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[2]s;branch=z9hG4bK-stateless-challenge;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:bob@%[1]s>;tag=t1\r\n"+
		"To: <sip:bob@%[1]s>\r\n"+
		"Call-ID: stateless-challenge@test\r\n"+
		"CSeq: 1 REGISTER\r\n"+
		"Contact: <sip:bob@%[2]s>\r\n"+
		"Expires: 600\r\n"+
		"Content-Length: 0\r\n\r\n", domain, local)
	nonce := regexp.MustCompile(`(?i)WWW-Authenticate:.*nonce="([^"]+)"`)
	challenge := func() string {
		t.Helper()
		if _, err := conn.WriteToUDP([]byte(req), server); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		m := nonce.FindSubmatch(buf[:n])
		if m == nil {
			t.Fatalf("answer without a challenge:\n%s", buf[:n])
		}
		return string(m[1])
	}
	first := challenge()
	// A client retransmits after T1 (500 ms); this one sooner, but not
	// before the handler that answered has returned.
	time.Sleep(100 * time.Millisecond)
	again := challenge()
	if first == again {
		t.Errorf("the retransmission got the first 401 again (nonce %s): its transaction was kept", first)
	}
}
