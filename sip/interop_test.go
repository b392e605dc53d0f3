package sip_test

// Interop tests: cairn against real third-party SIP peers, on both engines.
//
//   - SIPp (Debian sip-tester) over UDP and TCP, and over TLS through socat
//     (Debian's SIPp has no TLS): scenario files in testdata/sipp.
//   - JsSIP (npm jssip, with npm ws as Node's WebSocket) over ws:// and
//     wss://: testdata/jssip/interop.js, whose npm packages the test
//     installs into a cache folder outside the repository.
//
// A peer that is not installed skips its test with a message, unless
// CI=true: CI installs every peer (.ci/run), so there a missing one fails.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/internal/app/apptest"
)

const (
	interopN       = 5                   // MESSAGEs per SIPp run
	interopTimeout = 20 * time.Second    // SIPp's -timeout, the JsSIP script's deadline
	procTimeout    = 30 * time.Second    // a peer process is killed past this
	interopBody    = "héllo ✓ <&> \"x\"" // sent with " #N" appended
	interopCType   = "text/plain;charset=UTF-8"
	interopDate    = "Sat, 28 Nov 2026 10:00:00 GMT"
	jssipVersion   = "3.13.8"
	wsVersion      = "8.18.0"
)

func TestInterop(t *testing.T) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Run("sipp_udp", func(t *testing.T) { testSIPpOffline(t, eng, "udp") })
			t.Run("sipp_tcp", func(t *testing.T) { testSIPpOffline(t, eng, "tcp") })
			t.Run("sipp_tls_socat", func(t *testing.T) { testSIPpOffline(t, eng, "tls") })
			t.Run("sipp_wrong_password", func(t *testing.T) { testSIPpWrongPassword(t, eng) })
			t.Run("sipp_multi_device", func(t *testing.T) { testSIPpMultiDevice(t, eng) })
			t.Run("jssip_ws", func(t *testing.T) { testJsSIP(t, eng, "ws") })
			t.Run("jssip_wss", func(t *testing.T) { testJsSIP(t, eng, "wss") })
		})
	}
}

// testSIPpOffline: alice (SIPp) sends interopN MESSAGEs with digest to bob,
// who has no device: each is answered 200. Then bob's SIPp registers and
// gets every one, once, in order, byte for byte, with the original Date.
// Over TLS each SIPp reaches cairn through its own socat connection, and
// the stored messages come back over bob's.
func testSIPpOffline(t *testing.T, eng apptest.Engine, transport string) {
	needPeer(t, "sipp", "sip-tester")
	e := start(t, eng, nil)
	target, mode := sippTarget(t, e, transport)

	alice := runSIPp(t, sippRun{name: "alice", scenario: "it_message.xml", target: target, mode: mode,
		user: "alice", password: alicePW, calls: interopN,
		keys: []string{"to", "bob", "body", interopBody, "ctype", interopCType, "sent_date", interopDate}, authURI: "bob@" + domain})
	checkSent(t, alice, interopN)

	bob := runSIPp(t, sippRun{name: "bob", scenario: "it_device.xml", ooc: "it_ooc.xml", target: target, mode: mode,
		user: "bob", password: bobPW, keys: []string{"expires", "300", "want", strconv.Itoa(interopN), "linger", "300"}})
	bob.mustSucceed(t)
	sentOver(t, e, "bob", bobPW, transport, checkDelivered(t, bob, interopN))
}

// testSIPpWrongPassword: register.xml with a wrong password answers the
// challenge and is challenged again, so SIPp fails.
func testSIPpWrongPassword(t *testing.T, eng apptest.Engine) {
	needPeer(t, "sipp", "sip-tester")
	e := start(t, eng, nil)
	target, mode := sippTarget(t, e, "udp")
	r := runSIPp(t, sippRun{name: "bob-wrong", scenario: "register.xml", target: target, mode: mode,
		user: "bob", password: "not-" + bobPW, keys: []string{"expires", "300"}, extra: []string{"-d", "0"}})
	if r.code == 0 {
		t.Fatalf("SIPp registered with a wrong password\n%s", r.diag())
	}
	// The trace shows why: REGISTER, 401, REGISTER with credentials, 401.
	var seq []string
	for _, m := range r.trace {
		switch {
		case !m.received && m.method == "REGISTER" && m.header("Authorization") != "":
			seq = append(seq, "REGISTER+auth")
		case !m.received && m.method == "REGISTER":
			seq = append(seq, "REGISTER")
		case m.received && m.status != 0:
			seq = append(seq, strconv.Itoa(m.status))
		}
	}
	if got, want := strings.Join(seq, " "), "REGISTER 401 REGISTER+auth 401"; got != want {
		t.Errorf("exchange %q, want %q\n%s", got, want, r.diag())
	}
}

// testSIPpMultiDevice: bob's device 1 registers and un-registers (the
// other engineer's register.xml, +sip.instance set); alice sends interopN
// MESSAGEs; then device 1 (TCP) and a device 2 never seen before (UDP)
// register at once, each with its own +sip.instance: each gets every
// message exactly once, in order, while the other is registered too. When
// both register again they get nothing more.
func testSIPpMultiDevice(t *testing.T, eng apptest.Engine) {
	needPeer(t, "sipp", "sip-tester")
	e := start(t, eng, nil)
	udp, u1 := sippTarget(t, e, "udp")
	tcp, t1 := sippTarget(t, e, "tcp")
	for _, expires := range []string{"300", "0"} {
		r := runSIPp(t, sippRun{name: "dev1-reg" + expires, scenario: "register.xml", target: udp, mode: u1,
			user: "bob", password: bobPW, keys: []string{"expires", expires}, set: []string{"instance", inst1},
			extra: []string{"-d", "0"}})
		r.mustSucceed(t)
	}
	alice := runSIPp(t, sippRun{name: "alice", scenario: "it_message.xml", target: udp, mode: u1,
		user: "alice", password: alicePW, calls: interopN,
		keys: []string{"to", "bob", "body", interopBody, "ctype", interopCType, "sent_date", interopDate}, authURI: "bob@" + domain})
	checkSent(t, alice, interopN)

	devices := func(round string, want int) {
		d1 := startSIPp(t, sippRun{name: "dev1-" + round, scenario: "it_device.xml", ooc: "it_ooc.xml", target: tcp, mode: t1,
			user: "bob", password: bobPW, keys: []string{"expires", "300", "want", strconv.Itoa(want), "linger", "500"},
			set: []string{"instance", inst1}})
		d2 := startSIPp(t, sippRun{name: "dev2-" + round, scenario: "it_device.xml", ooc: "it_ooc.xml", target: udp, mode: u1,
			user: "bob", password: bobPW, keys: []string{"expires", "300", "want", strconv.Itoa(want), "linger", "500"},
			set: []string{"instance", inst2}})
		for _, d := range []*sippProc{d1, d2} {
			r := d.wait(t)
			r.mustSucceed(t)
			sentOver(t, e, "bob", bobPW, d.transport, checkDelivered(t, r, want))
			for _, m := range r.trace {
				if !m.received && m.method == "REGISTER" && !strings.Contains(m.header("Contact"), "+sip.instance=") {
					t.Errorf("%s: REGISTER without +sip.instance: %s", r.name, m.header("Contact"))
					break
				}
			}
		}
	}
	devices("first", interopN)
	devices("again", 0)
}

// testJsSIP runs testdata/jssip/interop.js against the node's WebSocket
// listener ("ws") or secure one ("wss", self-signed): offline delivery on
// REGISTER, live MESSAGEs both ways, a wrong password; the script reports
// each step in JSON, and the test checks them.
func testJsSIP(t *testing.T, eng apptest.Engine, transport string) {
	nodePath := jssipModules(t)
	e := start(t, eng, nil)
	wsURL := transport + "://" + e.srv.Node.Addr("sip-"+transport).String()
	body := "héllo ✓ <&> over " + transport + "\r\nsecond line"
	res, r := runJsSIP(t, nodePath, wsURL, body)
	if r.code != 0 || !res.OK {
		t.Fatalf("JsSIP script failed (exit %d)\n%s", r.code, r.out.String())
	}
	var done []string
	for _, s := range res.Steps {
		if !s.OK {
			t.Errorf("step %s: %s", s.Name, s.Detail)
		}
		done = append(done, s.Name)
	}
	want := "alice_register bad_password offline_send offline_receive live_to_bob live_to_alice exactly_once unregister"
	if got := strings.Join(done, " "); got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
	if len(res.Bob) != 2 || len(res.Alice) != 1 {
		t.Fatalf("bob got %d MESSAGEs (want 2), alice %d (want 1)", len(res.Bob), len(res.Alice))
	}
	for i, c := range []struct {
		got        jssipMessage
		body, from string
	}{
		{res.Bob[0], body, "alice"},
		{res.Bob[1], body + " (live)", "alice"},
		{res.Alice[0], body + " (reply)", "bob"},
	} {
		if c.got.Body != c.body || c.got.ContentType != interopCType || c.got.From != "sip:"+c.from+"@"+domain {
			t.Errorf("message %d: %+v, want body %q, type %q, from %s", i, c.got, c.body, interopCType, c.from)
		}
		if c.got.Date == "" {
			t.Errorf("message %d has no Date", i)
		}
	}
	sentOver(t, e, "bob", bobPW, transport, []string{res.Bob[0].CallID, res.Bob[1].CallID})
	sentOver(t, e, "alice", alicePW, transport, []string{res.Alice[0].CallID})
}

// ---- peers ----

// needPeer returns the path of an installed program, or skips t (fails it
// when CI=true, where the peers are installed).
func needPeer(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop: %s is not installed (%s); CI installs it", name, pkg)
		}
		t.Skipf("interop: %s is not installed (%s); skipping", name, pkg)
	}
	return p
}

// freePort returns a loopback port free for both UDP and TCP just now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("interop: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("interop: no port free for both UDP and TCP")
	return 0
}

// proc is a peer process the test started; it is killed, by its pid, when
// it outlives procTimeout or the test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    syncBuffer
	waited bool
	code   int
}

func startProc(t *testing.T, name, dir string, env []string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(path, args...)}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("interop: start %s: %v", name, err)
	}
	timer := time.AfterFunc(procTimeout, func() { p.cmd.Process.Kill() })
	t.Cleanup(func() {
		timer.Stop()
		if !p.waited {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// wait waits for p to end and returns its exit code (-1 when killed).
func (p *proc) wait() int {
	if !p.waited {
		p.waited = true
		err := p.cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			p.code = exit.ExitCode()
		default:
			p.code = -1
		}
	}
	return p.code
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ---- SIPp ----

// sippTarget returns where SIPp sends for transport (udp, tcp, or tls
// through socat) and its -t mode.
func sippTarget(t *testing.T, e *env, transport string) (addr, mode string) {
	t.Helper()
	switch transport {
	case "udp":
		return e.srv.Node.Addr("sip-udp").String(), "u1"
	case "tcp":
		return e.srv.Node.Addr("sip-tcp").String(), "t1"
	case "tls":
		return startSocat(t, e.srv.Node.Addr("sip-tls").String()), "t1"
	default:
		t.Fatalf("interop: no SIPp transport %q", transport)
		return "", ""
	}
}

type sippRun struct {
	name           string // names its files and its messages
	scenario, ooc  string // files in testdata/sipp; ooc is the -oocsf one
	target, mode   string // host:port and -t (u1, t1)
	user, password string
	authURI        string   // -auth_uri: the digest uri's user@host; domain when ""
	calls          int      // -m; 1 when 0
	keys, set      []string // -key and -set, name value pairs
	extra          []string
}

type sippProc struct {
	*proc
	run       sippRun
	dir       string
	transport string // udp or tcp, as -t says
}

type sippResult struct {
	name, out, errs, log string
	code                 int
	trace                []traceMsg
}

// startSIPp starts one SIPp process; wait reads what it left.
func startSIPp(t *testing.T, r sippRun) *sippProc {
	t.Helper()
	sipp := needPeer(t, "sipp", "sip-tester")
	dir := t.TempDir()
	scenarios, err := filepath.Abs(filepath.Join("testdata", "sipp"))
	if err != nil {
		t.Fatal(err)
	}
	calls := max(r.calls, 1)
	authURI := r.authURI
	if authURI == "" {
		authURI = domain
	}
	args := []string{r.target, "-sf", filepath.Join(scenarios, r.scenario), "-t", r.mode,
		"-i", "127.0.0.1", "-p", strconv.Itoa(freePort(t)),
		"-m", strconv.Itoa(calls), "-l", "1", "-r", "200", "-nostdin", "-aa",
		// A call that fails ends there: no BYE for a MESSAGE or REGISTER.
		"-default_behaviors", "abortunexp",
		"-timeout", strconv.Itoa(int(interopTimeout/time.Second)) + "s", "-timeout_error",
		"-trace_msg", "-message_file", filepath.Join(dir, "msg.log"),
		"-trace_err", "-error_file", filepath.Join(dir, "err.log"),
		"-trace_logs", "-log_file", filepath.Join(dir, "log.log"),
		// By default SIPp's digest uri is the remote address, which cairn
		// refuses: the uri must name the Request-URI's host.
		"-au", r.user, "-ap", r.password, "-auth_uri", authURI,
		"-key", "user", r.user, "-key", "domain", domain}
	if r.ooc != "" {
		args = append(args, "-oocsf", filepath.Join(scenarios, r.ooc))
	}
	for i := 0; i+1 < len(r.keys); i += 2 {
		args = append(args, "-key", r.keys[i], r.keys[i+1])
	}
	for i := 0; i+1 < len(r.set); i += 2 {
		args = append(args, "-set", r.set[i], r.set[i+1])
	}
	args = append(args, r.extra...)
	transport := map[string]string{"u1": "udp", "t1": "tcp"}[r.mode]
	return &sippProc{proc: startProc(t, "sipp "+r.name, dir, nil, sipp, args...), run: r, dir: dir, transport: transport}
}

func (p *sippProc) wait(t *testing.T) sippResult {
	t.Helper()
	res := sippResult{name: p.run.name, code: p.proc.wait(), out: p.out.String()}
	read := func(f string) []byte {
		b, _ := os.ReadFile(filepath.Join(p.dir, f))
		return b
	}
	res.errs, res.log = string(read("err.log")), string(read("log.log"))
	res.trace = parseSIPpTrace(read("msg.log"))
	return res
}

func runSIPp(t *testing.T, r sippRun) sippResult {
	t.Helper()
	return startSIPp(t, r).wait(t)
}

func (r sippResult) mustSucceed(t *testing.T) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("SIPp %s exited %d\n%s", r.name, r.code, r.diag())
	}
}

// diag is what to show when a SIPp run went wrong: its errors, log, and
// the last screen it printed.
func (r sippResult) diag() string {
	out := r.out
	if i := strings.LastIndex(out, "Scenario Screen"); i > 0 {
		out = out[strings.LastIndex(out[:i], "\n")+1:]
	}
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	var ex strings.Builder
	for _, m := range r.trace {
		dir := "→"
		if m.received {
			dir = "←"
		}
		fmt.Fprintf(&ex, "  %s %s\n", dir, m.first)
	}
	return fmt.Sprintf("-- exchange:\n%s-- errors:\n%s\n-- log:\n%s\n-- screen:\n%s", ex.String(), r.errs, r.log, out)
}

// checkSent: a sender's n calls each ended with a 200 to its MESSAGE.
func checkSent(t *testing.T, r sippResult, n int) {
	t.Helper()
	r.mustSucceed(t)
	ok := 0
	for _, m := range r.trace {
		if m.received && m.status == 200 && strings.HasSuffix(m.header("CSeq"), "MESSAGE") {
			ok++
		}
	}
	if ok != n {
		t.Fatalf("%s: %d MESSAGEs answered 200, want %d\n%s", r.name, ok, n, r.diag())
	}
}

// checkDelivered: a device got n MESSAGEs from alice, each once (a
// retransmission, same Via branch, is not another copy), in order, with
// body, Content-Type and Date as alice sent them, each its own Call-ID.
func checkDelivered(t *testing.T, r sippResult, n int) (callIDs []string) {
	t.Helper()
	var got []traceMsg
	branches := make(map[string]bool)
	seenID := make(map[string]bool)
	for _, m := range r.trace {
		if !m.received || m.method != "MESSAGE" {
			continue
		}
		b := m.branch()
		if branches[b] {
			continue
		}
		branches[b] = true
		if seenID[m.header("Call-ID")] {
			t.Errorf("%s: a second MESSAGE with Call-ID %s (body %q)", r.name, m.header("Call-ID"), m.body)
		}
		seenID[m.header("Call-ID")] = true
		callIDs = append(callIDs, m.header("Call-ID"))
		got = append(got, m)
	}
	if len(got) != n {
		var bodies []string
		for _, m := range got {
			bodies = append(bodies, strconv.Quote(string(m.body)))
		}
		t.Fatalf("%s got %d MESSAGEs, want %d: %s\n%s", r.name, len(got), n, strings.Join(bodies, ", "), r.diag())
	}
	for i, m := range got {
		if want := fmt.Sprintf("%s #%d", interopBody, i+1); string(m.body) != want {
			t.Errorf("%s: MESSAGE %d body %q, want %q", r.name, i, m.body, want)
		}
		if ct := m.header("Content-Type"); ct != interopCType {
			t.Errorf("%s: MESSAGE %d Content-Type %q, want %q", r.name, i, ct, interopCType)
		}
		if d := m.header("Date"); d != interopDate {
			t.Errorf("%s: MESSAGE %d Date %q, want the original %q", r.name, i, d, interopDate)
		}
		if f := m.header("From"); !strings.Contains(f, "sip:alice@"+domain) {
			t.Errorf("%s: MESSAGE %d From %q, want alice", r.name, i, f)
		}
		if to := m.header("To"); !strings.Contains(to, "sip:bob@"+domain) {
			t.Errorf("%s: MESSAGE %d To %q, want bob", r.name, i, to)
		}
	}
	return callIDs
}

// sentOver checks, in cairn's SIP traces as user reads them, that the
// MESSAGEs with these Call-IDs went out to the device over transport (the
// connection it registered on, for a stream transport). Traces are written
// behind the traffic: it polls.
func sentOver(t *testing.T, e *env, user, pw, transport string, callIDs []string) {
	t.Helper()
	for _, id := range callIDs {
		var seen []string
		for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
			var out struct {
				Traces []struct{ Direction, Transport, Method string }
			}
			req, _ := http.NewRequest("GET", e.srv.HTTPSURL+"/sip/traces?call_id="+url.QueryEscape(id), nil)
			req.SetBasicAuth(user+"@"+domain, pw)
			resp, err := e.srv.HTTPS.Do(req)
			if err != nil {
				t.Fatalf("traces: %v", err)
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("traces: %d %v", resp.StatusCode, err)
			}
			seen = seen[:0]
			for _, tr := range out.Traces {
				if tr.Direction == "out" && tr.Method == "MESSAGE" {
					seen = append(seen, tr.Transport)
				}
			}
			if len(seen) > 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(seen) == 0 {
			t.Errorf("no trace of MESSAGE %s going out", id)
		}
		for _, tr := range seen {
			if tr != transport {
				t.Errorf("MESSAGE %s went out over %q, want %q", id, tr, transport)
			}
		}
	}
}

// traceMsg is one SIP message of a SIPp -trace_msg file.
type traceMsg struct {
	received bool
	first    string // start line
	method   string // of a request
	status   int    // of a response
	headers  [][2]string
	body     []byte
}

func (m traceMsg) header(name string) string {
	for _, h := range m.headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// branch is the branch parameter of the top Via.
func (m traceMsg) branch() string {
	v := m.header("Via")
	_, b, _ := strings.Cut(v, "branch=")
	b, _, _ = strings.Cut(b, ";")
	b, _, _ = strings.Cut(b, ",")
	return strings.TrimSpace(b)
}

var (
	traceSep   = regexp.MustCompile(`(?m)^-{47} \d{4}-\d\d-\d\d [0-9:.]+\n`)
	traceHead  = regexp.MustCompile(`^[A-Z]+ message (received|sent) (?:\[\d+\] bytes :|\(\d+ bytes\):)\n\n`)
	traceStart = regexp.MustCompile(`^(SIP/2\.0 \d{3} |[A-Z]+ \S+ SIP/2\.0\r\n)`)
	compact    = map[string]string{"i": "Call-ID", "l": "Content-Length", "c": "Content-Type", "f": "From", "t": "To", "v": "Via", "m": "Contact"}
)

// parseSIPpTrace reads a -trace_msg file: blocks, each under a line of
// dashes and a time, "UDP message received [N] bytes :" (or "… sent (N
// bytes):"), a blank line, then the message as it went on the wire.
func parseSIPpTrace(data []byte) []traceMsg {
	var out []traceMsg
	for _, block := range traceSep.Split(string(data), -1) {
		head := traceHead.FindStringSubmatch(block)
		if head == nil {
			continue
		}
		rest := []byte(block[len(head[0]):])
		// One message per block, more only when SIPp logged a TCP read
		// holding several; notes such as "Unexpected UDP message
		// received:" follow under a bare line of dashes.
		for traceStart.Match(rest) {
			m, n, ok := parseSIPMessage(rest)
			if !ok {
				break
			}
			m.received = head[1] == "received"
			out = append(out, m)
			rest = bytes.TrimLeft(rest[n:], "\r\n")
		}
	}
	return out
}

// parseSIPMessage reads one message from b and returns how many bytes it
// took; the body is Content-Length bytes.
func parseSIPMessage(b []byte) (traceMsg, int, bool) {
	var m traceMsg
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return m, 0, false
	}
	lines := strings.Split(string(b[:end]), "\r\n")
	m.first = lines[0]
	if code, ok := strings.CutPrefix(m.first, "SIP/2.0 "); ok {
		m.status, _ = strconv.Atoi(strings.Fields(code + " ")[0])
	} else {
		m.method, _, _ = strings.Cut(m.first, " ")
	}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if long, ok := compact[strings.ToLower(name)]; ok {
			name = long
		}
		m.headers = append(m.headers, [2]string{name, strings.TrimSpace(value)})
	}
	n, _ := strconv.Atoi(m.header("Content-Length"))
	start := end + 4
	if n < 0 || start+n > len(b) {
		return m, 0, false
	}
	m.body = b[start : start+n]
	return m, start + n, true
}

// ---- socat ----

// startSocat runs socat as a TLS client of cairn's TLS listener tls,
// accepting plain TCP on a free loopback port whose address it returns. It
// is stopped, with the children it forked (one per connection), through its
// process group when t ends.
func startSocat(t *testing.T, tls string) string {
	t.Helper()
	socat := needPeer(t, "socat", "socat")
	for range 3 {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(socat, "TCP-LISTEN:"+port+",bind=127.0.0.1,reuseaddr,fork", "OPENSSL:"+tls+",verify=0")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("interop: socat: %v", err)
		}
		pid := cmd.Process.Pid
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
				syscall.Kill(-pid, syscall.SIGKILL)
				<-exited
			}
		})
		// Ready once it accepts; the probe costs one TLS connection to
		// cairn, closed at once. Another process may have taken the port
		// meanwhile: then socat exits, and another port is tried.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return addr
			}
			select {
			case <-exited:
				t.Logf("interop: socat on %s exited: %s", addr, out.String())
			default:
				if time.Now().Before(deadline) {
					continue
				}
				t.Logf("interop: socat on %s does not accept", addr)
			}
			break
		}
	}
	t.Fatal("interop: socat did not start")
	return ""
}

// ---- JsSIP ----

type jssipMessage struct {
	Body, ContentType, From, To, CallID, Date string
}

type jssipResult struct {
	OK    bool
	Steps []struct {
		Name, Detail string
		OK           bool
	}
	Bob, Alice []jssipMessage
}

// runJsSIP runs testdata/jssip/interop.js against wsURL.
func runJsSIP(t *testing.T, nodePath, wsURL, body string) (jssipResult, *proc) {
	t.Helper()
	node := needPeer(t, "node", "nodejs")
	script, err := filepath.Abs(filepath.Join("testdata", "jssip", "interop.js"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"url": wsURL, "domain": domain, "body": body, "contentType": interopCType,
		"alice":     map[string]string{"user": "alice", "password": alicePW},
		"bob":       map[string]string{"user": "bob", "password": bobPW},
		"timeoutMs": interopTimeout.Milliseconds(),
	})
	p := startProc(t, "node", t.TempDir(), []string{"NODE_PATH=" + nodePath}, node, script, string(cfg))
	p.wait()
	var res jssipResult
	out := strings.TrimSpace(p.out.String())
	last := out[strings.LastIndex(out, "\n")+1:]
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		t.Fatalf("JsSIP script: no JSON result (exit %d): %v\n%s", p.code, err, out)
	}
	return res, p
}

var jssipInstall sync.Mutex

// jssipModules returns a node_modules folder holding jssip and ws at the
// pinned versions, installed with npm on first use into a cache folder
// outside the repository (a temporary one when there is no cache folder).
func jssipModules(t *testing.T) string {
	t.Helper()
	needPeer(t, "node", "nodejs")
	npm := needPeer(t, "npm", "npm")
	jssipInstall.Lock()
	defer jssipInstall.Unlock()
	root := t.TempDir()
	if cache, err := os.UserCacheDir(); err == nil {
		root = filepath.Join(cache, "cairn-test-jssip")
	}
	dir := filepath.Join(root, "jssip-"+jssipVersion+"-ws-"+wsVersion)
	installed := func() bool {
		for pkg, v := range map[string]string{"jssip": jssipVersion, "ws": wsVersion} {
			b, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
			var meta struct{ Version string }
			if err != nil || json.Unmarshal(b, &meta) != nil || meta.Version != v {
				return false
			}
		}
		return true
	}
	if installed() {
		return filepath.Join(dir, "node_modules")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatalf("interop: %v", err)
	}
	// Install beside, then rename into place: a run cut short leaves no
	// half-made folder that looks installed.
	tmp, err := os.MkdirTemp(root, "install-")
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--loglevel=error",
		"jssip@"+jssipVersion, "ws@"+wsVersion)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop: npm install jssip ws: %v\n%s", err, out)
		}
		t.Skipf("interop: npm install jssip ws failed (no registry?): %v\n%s", err, out)
	}
	// Another test process may have installed it meanwhile: keep theirs.
	if !installed() {
		os.RemoveAll(dir) // left broken by hand, since renames are whole
		if err := os.Rename(tmp, dir); err != nil && !installed() {
			t.Fatalf("interop: %v", err)
		}
	}
	if !installed() {
		t.Fatalf("interop: npm did not install jssip %s and ws %s in %s", jssipVersion, wsVersion, dir)
	}
	return filepath.Join(dir, "node_modules")
}
