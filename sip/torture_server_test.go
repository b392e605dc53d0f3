package sip_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
)

// invalid4475 are the messages RFC 4475 §3.1.2 calls invalid.
var invalid4475 = map[string]bool{
	"badinv01": true, "clerr": true, "ncl": true, "scalar02": true, "scalarlg": true,
	"quotbal": true, "ltgtruri": true, "lwsruri": true, "lwsstart": true, "trws": true,
	"escruri": true, "baddate": true, "regbadct": true, "badaspec": true, "badbranch": true,
	"badvers": true, "mismatch01": true, "mismatch02": true, "bcast": true, "insuf": true,
}

// TestTortureServer sends every RFC 4475 message to a running node over UDP
// and TCP, then a request with 1 MiB of header. No REGISTER or MESSAGE is
// accepted (its metrics count every response it sends, by method and
// class), and what cairn stores (a message, a binding) it answers 2xx after
// the commit, so none of them stored anything. Answers to UDP requests go where
// their Via says, not to us: the metrics see them all. The node then still
// registers a device.
func TestTortureServer(t *testing.T) {
	e := start(t, apptest.Engines[0], func(c *config.Config) { c.SIP.Domains = []string{domain} })
	files, err := filepath.Glob(filepath.Join("testdata", "rfc4475", "*.dat"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no torture messages: %v", err)
	}
	// Connections stay open to the end: sipgo answers a stream request
	// whose connection is gone by dialling its Via address (RFC 3261
	// §18.2.2), which here is a documentation address that never answers.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	send := func(network string, data []byte) {
		conn, err := net.Dial(network, e.srv.Node.Addr("sip-"+network).String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		conn.Write(data)
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			send(network, data)
		}
	}
	send("tcp", []byte("MESSAGE sip:bob@example.com SIP/2.0\r\nX-Big: "+strings.Repeat("a", 1<<20)+"\r\n\r\n"))

	var answered int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		answered = 0
		for _, line := range strings.Split(metrics(t, e), "\n") {
			if !strings.HasPrefix(line, "cairn_sip_responses_total{") {
				continue
			}
			stores := strings.Contains(line, `method="MESSAGE"`) || strings.Contains(line, `method="REGISTER"`)
			if stores && strings.Contains(line, `class="2xx"`) {
				t.Fatalf("a torture message was accepted: %s", line)
			}
			var n int
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
			answered += n
		}
		if answered >= 2*6 { // the requests of RFC 4475 that sipgo parses, on both transports
			break
		}
	}
	t.Logf("cairn answered %d of the %d torture messages (the others are not parsed, so cannot be answered)", answered, 2*len(files))
	if answered == 0 {
		t.Error("no torture message was answered")
	}
	register(t, e.device("bob", bobPW, "udp", inst1))
}

func metrics(t *testing.T, e *env) string {
	t.Helper()
	resp, err := e.srv.HTTP.Get(e.srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
