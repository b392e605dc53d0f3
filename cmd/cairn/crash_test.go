package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/sip/siptest"
)

// The crash test's accounts and load.
const (
	crashDomain     = "crash.test"
	crashRecipients = 20
	crashPassword   = "crash-test-pw-1234"
	crashRate       = 400              // MESSAGEs per second from SIPp
	crashLoad       = time.Second      // load before the SIGKILL, at least
	crashMinAcked   = 20               // 2xx seen before the SIGKILL, at least…
	crashMaxLoad    = 8 * time.Second  // …unless the load lasted this long
	crashAfterKill  = 20               // MESSAGEs SIPp sends into the dead server, at least
	crashSettle     = time.Second      // quiet time that ends the collection
	crashWait       = 15 * time.Second // bound on each other wait
)

// TestCrash is the durability test of the offline store: SIPp sends
// MESSAGEs to users with no device while the server is killed with SIGKILL;
// after a restart on the same data, two devices of each user register one
// after the other, and each must get every message that was answered 2xx,
// once. Messages in flight at the kill (sent, never answered) may or may
// not arrive: they are counted, not judged, except that one stored for a
// user must reach both of the user's devices.
//
// SIPp does not authenticate: the server trusts 127.0.0.1 (see
// testdata/it_crash_message.xml for why).
func TestCrash(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sipp is not installed (Debian package sip-tester): %v", err)
		}
		t.Skipf("sipp is not installed (Debian package sip-tester): %v", err)
	}
	scenario, err := filepath.Abs(filepath.Join("testdata", "it_crash_message.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) { testCrash(t, eng, sipp, scenario) })
	}
}

func testCrash(t *testing.T, eng apptest.Engine, sipp, scenario string) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "cairn.json")
	cfg := map[string]any{
		"data_dir":  filepath.Join(dir, "data"),
		"db":        eng.DB(t),
		"log_level": "info",
		"http":      map[string]any{"listen": "127.0.0.1:0", "tls_listen": ""},
		"sip": map[string]any{
			"udp": "127.0.0.1:0", "tcp": "127.0.0.1:0", "tls": "", "ws": "", "wss": "",
			"trusted": []string{"127.0.0.1"},
		},
		"offline": map[string]any{"retry_min": "200ms", "retry_max": "1s"},
		"msrp":    map[string]any{"tls": "", "wss": ""},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	users := make([]string, crashRecipients)
	csv := []string{"SEQUENTIAL"}
	for i := range users {
		users[i] = fmt.Sprintf("r%02d", i)
		csv = append(csv, users[i])
		if code, _, errOut := cairn(t, crashPassword+"\n", "user", "add", users[i]+"@"+crashDomain, "-password-stdin", "-config="+cfgFile); code != 0 {
			t.Fatalf("user add %s: exit %d: %s", users[i], code, errOut)
		}
	}
	csvFile := filepath.Join(dir, "recipients.csv")
	if err := os.WriteFile(csvFile, []byte(strings.Join(csv, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Load, then the kill while SIPp is still sending.
	srv := startChild(t, cfgFile)
	load := startSIPp(t, sipp, scenario, dir, csvFile, srv.addrs["sip-udp"])
	start := time.Now()
	if !waitFor(crashMaxLoad, func() bool {
		return time.Since(start) >= crashLoad && load.read(t).acks() >= crashMinAcked
	}) {
		t.Logf("SIPp saw %d 2xx within %v; killing the server anyway", load.read(t).acks(), crashMaxLoad)
	}
	srv.kill(t)
	atKill := load.read(t)
	sentAtKill := atKill.sentCount()
	t.Logf("SIGKILL after %v of load: %d sent, %d acknowledged", time.Since(start).Round(time.Millisecond), sentAtKill, atKill.acks())
	if !waitFor(5*time.Second, func() bool { return load.read(t).sentCount() >= sentAtKill+crashAfterKill }) {
		t.Errorf("SIPp sent %d MESSAGEs after the kill, want %d: the kill did not happen under load",
			load.read(t).sentCount()-sentAtKill, crashAfterKill)
	}
	load.stop(t)
	sent := load.read(t)
	srv.logWarnings(t, "before the kill")

	// Restart on the same data; two devices per user, registering one
	// after the other, collect what they are owed.
	srv = startChild(t, cfgFile)
	devices := make([][2]*siptest.Device, len(users))
	for i, u := range users {
		for k := range devices[i] {
			devices[i][k] = siptest.New(t, siptest.Options{
				User: u, Domain: crashDomain, Password: crashPassword, Transport: "udp",
				Server: srv.addrs["sip-udp"], Instance: fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%06d%06d", i, k),
			})
		}
	}
	// A device tries again after a timeout or a 5xx, as one that honours
	// Retry-After would, only sooner; the retries are counted.
	var retries atomic.Int64
	register := func(d *siptest.Device) {
		deadline := time.Now().Add(crashWait)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), crashWait)
			res, err := d.Register(ctx, time.Hour)
			cancel()
			switch {
			case err == nil && res.StatusCode == 200:
				return
			case (err != nil || res.StatusCode >= 500) && time.Now().Before(deadline):
				retries.Add(1)
				time.Sleep(100 * time.Millisecond) // the backoff of a retry
			case err != nil:
				t.Errorf("REGISTER %s: %v", d.AOR(), err)
				return
			default:
				t.Errorf("REGISTER %s: %d %s", d.AOR(), res.StatusCode, res.Reason)
				return
			}
		}
	}
	registerAll := func() {
		var wg sync.WaitGroup
		for i := range devices {
			wg.Go(func() {
				for _, d := range devices[i] {
					register(d)
				}
			})
		}
		wg.Wait()
	}
	registerAll()
	// Every acknowledged message is owed to both devices, and so is every
	// other one the server stored: wait for them.
	if !waitFor(crashWait, func() bool {
		c, _ := tally(sent, users, devices)
		return c.lost == 0 && c.partial == 0
	}) {
		t.Logf("deliveries still missing after %v", crashWait)
	}
	// A REGISTER drains the device again: what was delivered and recorded
	// must not come twice. Then wait for quiet.
	registerAll()
	total := func() int {
		n := 0
		for i := range devices {
			for _, d := range devices[i] {
				n += len(d.Received())
			}
		}
		return n
	}
	last, quietSince := total(), time.Now()
	if !waitFor(crashWait, func() bool {
		if n := total(); n != last {
			last, quietSince = n, time.Now()
		}
		return time.Since(quietSince) >= crashSettle
	}) {
		t.Errorf("deliveries did not stop within %v", crashWait)
	}

	c, problems := tally(sent, users, devices)
	for _, p := range problems {
		t.Log(p)
	}
	srv.logWarnings(t, "after the restart")
	if n := retries.Load(); n > 0 {
		t.Logf("REGISTER was tried again %d times after a timeout or a 5xx", n)
	}
	t.Logf("%s: sent=%d acknowledged=%d failed=%d unanswered=%d sent_after_kill=%d delivered=%d devices=%d lost=%d duplicated=%d unacknowledged_delivered=%d partial=%d foreign=%d out_of_order=%d",
		eng.Name, c.sent, c.acked, c.failed, c.sent-c.acked-c.failed, sent.sentCount()-sentAtKill, c.delivered, 2*len(users),
		c.lost, c.duplicated, c.unackedDelivered, c.partial, c.foreign, c.outOfOrder)
	if c.acked == 0 {
		t.Error("no MESSAGE was acknowledged before the kill: the test tested nothing")
	}
	if c.lost > 0 || c.duplicated > 0 || c.partial > 0 || c.foreign > 0 || c.outOfOrder > 0 {
		t.Errorf("lost %d, duplicated %d, partially delivered %d, foreign %d, out of order %d (details above); server log after the restart:\n%s",
			c.lost, c.duplicated, c.partial, c.foreign, c.outOfOrder, srv.logTail())
	}
}

// counts are the outcome of a crash run.
type counts struct {
	sent, acked, failed int
	// delivered counts every MESSAGE the devices took, copies included.
	delivered int
	// lost: acknowledged messages missing on a device; duplicated: extra
	// copies on one device.
	lost, duplicated int
	// unackedDelivered: unacknowledged messages that reached a device;
	// partial: those of them that reached one device of the user only.
	unackedDelivered, partial int
	// foreign: deliveries that no call sent to that user.
	foreign int
	// outOfOrder: messages a device took before one stored earlier.
	outOfOrder int
}

var crashBody = regexp.MustCompile(`^cairn-crash run=(\S+) n=(\d+) to=(\S+)$`)

// tally compares what SIPp sent and saw answered with what the devices
// took, and describes the first few problems of each kind.
func tally(s *sippLog, users []string, devices [][2]*siptest.Device) (c counts, problems []string) {
	c = counts{sent: len(s.sent), acked: len(s.acked), failed: len(s.failed)}
	const show = 5
	shown := map[string]int{}
	report := func(kind, format string, args ...any) {
		if shown[kind]++; shown[kind] <= show {
			problems = append(problems, kind+": "+fmt.Sprintf(format, args...))
		}
	}
	acked := s.ackedByUser()
	for i, u := range users {
		var got [2]map[int]int
		for k, d := range devices[i] {
			got[k] = map[int]int{}
			callIDs := map[int][]string{}
			var order []int // call numbers, first copies, in the order taken
			for _, req := range d.Received() {
				c.delivered++
				m := crashBody.FindStringSubmatch(string(req.Body()))
				if m == nil || m[1] != s.run || m[3] != u || s.sent[atoi(m[2])] != u {
					c.foreign++
					report("foreign", "%s device %d took %q", u, k, req.Body())
					continue
				}
				n := atoi(m[2])
				if got[k][n]++; got[k][n] == 1 {
					order = append(order, n)
				}
				if req.CallID() != nil {
					callIDs[n] = append(callIDs[n], req.CallID().Value())
				}
			}
			for n, times := range got[k] {
				if times > 1 {
					c.duplicated += times - 1
					report("duplicated", "%s device %d took message %d %d times, Call-IDs %v", u, k, n, times, callIDs[n])
				}
			}
			for _, n := range acked[u] {
				if got[k][n] == 0 {
					c.lost++
					report("lost", "%s device %d never took acknowledged message %d", u, k, n)
				}
			}
			// Message a was stored before b when SIPp saw a answered
			// before it sent b: then a must come first.
			first, firstAck := -1, math.MaxInt
			for j := len(order) - 1; j >= 0; j-- {
				b := order[j]
				if first >= 0 && firstAck < s.sentAt[b] {
					c.outOfOrder++
					report("out of order", "%s device %d took message %d before %d, which was acknowledged before %d was sent", u, k, b, first, b)
				}
				if at, ok := s.ackedAt[b]; ok && at < firstAck {
					first, firstAck = b, at
				}
			}
		}
		for n, to := range s.sent {
			if to != u || s.acked[n] {
				continue
			}
			if got[0][n] > 0 || got[1][n] > 0 {
				c.unackedDelivered++
				if got[0][n] == 0 || got[1][n] == 0 {
					c.partial++
					report("partial", "%s: unacknowledged message %d reached one device only (%d, %d)", u, n, got[0][n], got[1][n])
				}
			}
		}
	}
	return c, problems
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// waitFor polls cond until it holds or timeout passes, and reports which.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// child is `cairn serve` running as a process of its own: the test binary
// re-executed as main (see TestMain).
type child struct {
	cmd   *exec.Cmd
	addrs map[string]string // listener addresses by protocol: http, sip-udp, sip-tcp
	done  chan struct{}     // closed once the process has exited

	mu       sync.Mutex
	log      []string // the last lines of its log
	warnings []string // its first WARN and ERROR lines
	nwarn    int      // how many there were
}

// startChild runs `cairn serve -config=cfgFile` and waits until its HTTP and
// SIP UDP and TCP listeners serve. It is killed, by pid, when t ends.
func startChild(t *testing.T, cfgFile string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "-config="+cfgFile)
	// Only the config file configures it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, beMain+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addrs: map[string]string{}, done: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	listening := regexp.MustCompile(`msg=listening .*protocol=(\S+) addr=(\S+)`)
	found := make(chan [2]string, 8)
	go func() {
		defer close(c.done)
		lines := bufio.NewScanner(stderr)
		lines.Buffer(make([]byte, 64<<10), 1<<20)
		for lines.Scan() {
			line := lines.Text()
			if m := listening.FindStringSubmatch(line); m != nil {
				found <- [2]string{m[1], m[2]}
			}
			c.mu.Lock()
			if c.log = append(c.log, line); len(c.log) > 200 {
				c.log = c.log[len(c.log)-100:]
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				if c.nwarn++; c.nwarn <= 10 {
					c.warnings = append(c.warnings, line)
				}
			}
			c.mu.Unlock()
		}
		cmd.Wait()
	}()
	timeout := time.After(crashWait)
	for c.addrs["http"] == "" || c.addrs["sip-udp"] == "" || c.addrs["sip-tcp"] == "" {
		select {
		case a := <-found:
			c.addrs[a[0]] = a[1]
		case <-c.done:
			t.Fatalf("cairn serve exited before it listened:\n%s", c.logTail())
		case <-timeout:
			t.Fatalf("cairn serve did not listen within %v:\n%s", crashWait, c.logTail())
		}
	}
	return c
}

// kill sends SIGKILL and waits for the process to end.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(crashWait):
		t.Fatal("cairn serve did not die of SIGKILL")
	}
}

// logWarnings logs how many WARN and ERROR lines the server wrote, and the
// first few.
func (c *child) logWarnings(t *testing.T, what string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nwarn > 0 {
		t.Logf("%s: the server logged %d warnings and errors, first:\n%s", what, c.nwarn, strings.Join(c.warnings, "\n"))
	}
}

func (c *child) logTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := c.log
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	return strings.Join(tail, "\n")
}

// sippRun is a SIPp process sending the crash scenario.
type sippRun struct {
	cmd     *exec.Cmd
	done    chan struct{}
	run     string
	logFile string
	outFile string
}

// startSIPp sends MESSAGEs over UDP to server at crashRate until stop; it is
// killed, by pid, when t ends.
func startSIPp(t *testing.T, sipp, scenario, dir, csvFile, server string) *sippRun {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	s := &sippRun{
		done:    make(chan struct{}),
		run:     strconv.FormatInt(time.Now().UnixNano(), 36),
		logFile: filepath.Join(dir, "sipp-actions.log"),
		outFile: filepath.Join(dir, "sipp.out"),
	}
	out, err := os.Create(s.outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	s.cmd = exec.Command(sipp, server, "-sf", scenario, "-inf", csvFile, "-t", "u1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-r", strconv.Itoa(crashRate), "-l", "5000", "-m", "1000000",
		"-nostdin", "-timeout", "60s",
		"-key", "user", "sender", "-key", "domain", crashDomain, "-key", "run", s.run,
		"-trace_logs", "-log_file", s.logFile,
		"-trace_err", "-error_file", filepath.Join(dir, "sipp-errors.log"))
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		s.cmd.Wait()
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// stop ends SIPp. Its SIGUSR1 "quit now" waits in 3.6.1 for calls that
// never end once the server is gone, so it is killed: every line of its
// action log is already written (SIPp flushes each one), and read ignores a
// last line cut short.
func (s *sippRun) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		b, _ := os.ReadFile(s.outFile)
		t.Fatalf("SIPp ended before it was stopped (%v):\n%s", s.cmd.ProcessState, tail(b, 3000))
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(crashWait):
		t.Fatal("SIPp did not die of SIGKILL")
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// sippLog is what SIPp's action log says so far.
type sippLog struct {
	run    string
	sent   map[int]string // call number: recipient
	acked  map[int]bool
	failed map[int]string // call number: status
	// sentAt and ackedAt are the line numbers of a call's events: the log
	// is in the order SIPp saw them.
	sentAt, ackedAt map[int]int
}

// read parses the complete lines of the action log.
func (s *sippRun) read(t *testing.T) *sippLog {
	t.Helper()
	l := &sippLog{run: s.run, sent: map[int]string{}, acked: map[int]bool{}, failed: map[int]string{},
		sentAt: map[int]int{}, ackedAt: map[int]int{}}
	b, err := os.ReadFile(s.logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		b = nil
	}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		n := atoi(f[1])
		switch f[0] {
		case "sent":
			l.sent[n], l.sentAt[n] = f[2], i
		case "ack":
			l.acked[n], l.ackedAt[n] = true, i
		case "fail":
			if len(f) > 3 {
				l.failed[n] = f[3]
			}
		}
	}
	return l
}

func (l *sippLog) sentCount() int { return len(l.sent) }
func (l *sippLog) acks() int      { return len(l.acked) }

// ackedByUser returns the acknowledged call numbers by recipient.
func (l *sippLog) ackedByUser() map[string][]int {
	m := map[string][]int{}
	for n := range l.acked {
		m[l.sent[n]] = append(m[l.sent[n]], n)
	}
	return m
}
