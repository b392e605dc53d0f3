package msrp_test

// Interop: one scenario run against two MSRP relays, Kamailio's msrp module
// (bench/kamailio/msrp.cfg, the reference RFC 4976 relay) and cairn's, with
// the same observable results asserted on both. Kamailio is a Debian package
// (kamailio, kamailio-tls-modules); when it is missing the test skips, unless
// CI=true: CI installs it (.ci/run), so there a missing one fails.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/msrp"
	"github.com/cairn-chat/cairn/msrp/msrptest"
)

const (
	kamUser        = "msrptest"
	kamPassword    = "msrptest-secret"
	kamModules     = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
	kamStartWait   = 10 * time.Second // Kamailio must accept TLS within this
	kamStopWait    = 5 * time.Second  // after SIGTERM, then SIGKILL
	interopFile    = 5 << 20          // bytes of the file step
	interopChunk   = 2048             // Kamailio answers 413 to frames over ~11 KB
	interopTimeout = 30 * time.Second // the whole scenario, per relay
)

// interopRelay is one relay under test, as the scenario sees it: where to
// dial, how to trust it, what to AUTH to, and who logs in.
type interopRelay struct {
	name    string
	addr    string // host:port of the TLS listener
	tls     *tls.Config
	authURI msrp.URI // the AUTH's To-Path
	userA   string
	passA   string
	userB   string
	passB   string
	logs    func() string // the relay's log so far, shown on failure
}

// interopStep is one line of the side-by-side table.
type interopStep struct {
	relay, step, result string
	took                time.Duration
}

func TestInteropKamailio(t *testing.T) {
	kamailio := needKamailio(t)

	var mu sync.Mutex
	var steps []interopStep
	record := func(s interopStep) {
		mu.Lock()
		steps = append(steps, s)
		mu.Unlock()
	}
	t.Cleanup(func() {
		var b strings.Builder
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "relay\tstep\tresult\tduration")
		mu.Lock()
		for _, s := range steps {
			fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", s.relay, s.step, s.result, s.took.Round(100*time.Microsecond))
		}
		mu.Unlock()
		w.Flush()
		t.Logf("side by side:\n%s", b.String())
	})

	t.Run("kamailio", func(t *testing.T) {
		interopScenario(t, startKamailio(t, kamailio), record)
	})
	t.Run("cairn", func(t *testing.T) {
		r := startRelay(t, apptest.Engines[0], nil) // SQLite
		u := r.uri("msrp-tls")
		interopScenario(t, interopRelay{
			name: "cairn", addr: r.srv.Node.Addr("msrp-tls").String(),
			tls: &tls.Config{RootCAs: r.srv.CA}, authURI: u,
			userA: "alice", passA: alicePW, userB: "bob", passB: bobPW,
			logs: r.srv.Logs.String,
		}, record)
	})
}

// interopScenario runs every step against r, recording each step's result
// and duration. A failed step is recorded as FAILED and ends the scenario.
func interopScenario(t *testing.T, r interopRelay, record func(interopStep)) {
	ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
	defer cancel()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", r.name, interopTail(r.logs(), 8000))
		}
	})
	step := func(name string, f func() string) {
		t.Helper()
		start := time.Now()
		res := "FAILED" // kept when f ends the test
		defer func() { record(interopStep{relay: r.name, step: name, result: res, took: time.Since(start)}) }()
		res = f()
	}
	dial := func(o msrptest.Options) *msrptest.Endpoint {
		t.Helper()
		o.TLS = r.tls.Clone()
		e, err := msrptest.Dial(ctx, r.addr, o)
		if err != nil {
			t.Fatalf("%s: dial %s: %v", r.name, r.addr, err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	login := func(e *msrptest.Endpoint, user, pw string) ([]msrp.URI, int) {
		t.Helper()
		res, err := e.Auth(ctx, r.authURI, user, pw, 0) // no Expires: it crashes Kamailio 5.6
		if err != nil {
			t.Fatalf("%s: AUTH %s: %v", r.name, user, err)
		}
		if len(res.UsePath) != 1 || !res.UsePath[0].Secure || res.UsePath[0].SessionID == "" {
			t.Fatalf("%s: AUTH %s: Use-Path %s; want one msrps URI with a session id", r.name, user, msrp.FormatPath(res.UsePath))
		}
		return res.UsePath, res.Expires
	}

	// B streams the file through a hash; chat messages stay in memory.
	var fileSum hash.Hash
	sink := func(id string) io.Writer {
		if id != "file" {
			return nil
		}
		fileSum = sha256.New() // only B's read goroutine touches it until delivery
		return fileSum
	}
	a := dial(msrptest.Options{ChunkSize: interopChunk})
	b := dial(msrptest.Options{ChunkSize: interopChunk, Sink: sink})
	var aUse, bUse []msrp.URI

	step("auth", func() string {
		var aExp, bExp int
		aUse, aExp = login(a, r.userA, r.passA)
		bUse, bExp = login(b, r.userB, r.passB)
		if msrp.EqualPaths(aUse, bUse) {
			t.Fatalf("%s: A and B got the same Use-Path %s", r.name, msrp.FormatPath(aUse))
		}
		return fmt.Sprintf("200 both, Use-Path %s, Expires %d/%d", aUse[0], aExp, bExp)
	})

	step("chat A→B", func() string {
		body := []byte("Hi B, 🙂 über MSRP\r\n-------not-an-end-line$\r\n")
		if err := a.Send(ctx, to(aUse, bUse, self(b)), msrptest.Message{
			ID: "m1", ContentType: "text/plain", Body: bytes.NewReader(body), Size: int64(len(body)), SuccessReport: true,
		}); err != nil {
			t.Fatalf("%s: A's SEND: %v", r.name, err)
		}
		in := receive(t, ctx, b, "SEND")
		if in.MessageID != "m1" || !bytes.Equal(in.Body, body) || in.ContentType != "text/plain" || in.Err != nil {
			t.Fatalf("%s: B got %q %q %q (err %v)", r.name, in.MessageID, in.ContentType, in.Body, in.Err)
		}
		if want := to(bUse, aUse, self(a)); !msrp.EqualPaths(in.FromPath, want) {
			t.Fatalf("%s: From-Path at B = %s, want %s", r.name, msrp.FormatPath(in.FromPath), msrp.FormatPath(want))
		}
		if !msrp.EqualPaths(in.ToPath, self(b)) {
			t.Fatalf("%s: To-Path at B = %s, want B only", r.name, msrp.FormatPath(in.ToPath))
		}
		rep := receive(t, ctx, a, "REPORT")
		if rep.MessageID != "m1" || rep.Status != 200 {
			t.Fatalf("%s: A's REPORT: Message-ID %q, status %d", r.name, rep.MessageID, rep.Status)
		}
		if want := to(aUse, bUse, self(b)); !msrp.EqualPaths(rep.FromPath, want) {
			t.Fatalf("%s: REPORT From-Path at A = %s, want %s", r.name, msrp.FormatPath(rep.FromPath), msrp.FormatPath(want))
		}
		return "200 to A, B got body+Message-ID, From-Path [B relay, A relay, A], REPORT 200 to A"
	})

	step("chat B→A", func() string {
		body := []byte("Hi A")
		if err := b.Send(ctx, to(bUse, aUse, self(a)), msrptest.Message{
			ID: "m2", ContentType: "text/plain", Body: bytes.NewReader(body), Size: int64(len(body)),
		}); err != nil {
			t.Fatalf("%s: B's SEND: %v", r.name, err)
		}
		in := receive(t, ctx, a, "SEND")
		if in.MessageID != "m2" || !bytes.Equal(in.Body, body) {
			t.Fatalf("%s: A got %q %q", r.name, in.MessageID, in.Body)
		}
		if want := to(aUse, bUse, self(b)); !msrp.EqualPaths(in.FromPath, want) {
			t.Fatalf("%s: From-Path at A = %s, want %s", r.name, msrp.FormatPath(in.FromPath), msrp.FormatPath(want))
		}
		// and A again, on the same sessions
		again := []byte("and back")
		if err := a.Send(ctx, to(aUse, bUse, self(b)), msrptest.Message{
			ID: "m3", ContentType: "text/plain", Body: bytes.NewReader(again), Size: int64(len(again)),
		}); err != nil {
			t.Fatalf("%s: A's second SEND: %v", r.name, err)
		}
		if in := receive(t, ctx, b, "SEND"); in.MessageID != "m3" || !bytes.Equal(in.Body, again) {
			t.Fatalf("%s: B got %q %q", r.name, in.MessageID, in.Body)
		}
		return "200 to B, A got it with From-Path [A relay, B relay, B]; A→B again ok"
	})

	step("file 5 MiB", func() string {
		sent := sha256.New()
		src := io.TeeReader(io.LimitReader(rand.Reader, interopFile), sent)
		if err := a.Send(ctx, to(aUse, bUse, self(b)), msrptest.Message{
			ID: "file", ContentType: "application/octet-stream", Body: src, Size: interopFile, SuccessReport: true,
		}); err != nil {
			t.Fatalf("%s: file SEND: %v", r.name, err)
		}
		in := receive(t, ctx, b, "SEND")
		if in.MessageID != "file" || in.Err != nil || in.Bytes != interopFile || in.Aborted {
			t.Fatalf("%s: B got %q: %d bytes, aborted %v, err %v", r.name, in.MessageID, in.Bytes, in.Aborted, in.Err)
		}
		if !bytes.Equal(fileSum.Sum(nil), sent.Sum(nil)) {
			t.Fatalf("%s: SHA-256 at B differs from what A sent", r.name)
		}
		if rep := receive(t, ctx, a, "REPORT"); rep.MessageID != "file" || rep.Status != 200 {
			t.Fatalf("%s: file REPORT: Message-ID %q, status %d", r.name, rep.MessageID, rep.Status)
		}
		return fmt.Sprintf("%d chunks all 200, SHA-256 matches, REPORT 200", (interopFile+interopChunk-1)/interopChunk)
	})

	step("wrong password", func() string {
		c := dial(msrptest.Options{})
		defer c.Close()
		res, err := c.Auth(ctx, r.authURI, r.userA, "not-"+r.passA, 0)
		var se *msrptest.StatusError
		if !errors.As(err, &se) || se.Code == 200 || len(res.UsePath) != 0 {
			t.Fatalf("%s: AUTH with a wrong password: %+v, %v; want a refusal without Use-Path", r.name, res, err)
		}
		t.Logf("%s refuses a wrong password with %d %s", r.name, se.Code, se.Comment)
		return fmt.Sprintf("refused: %d %s, no Use-Path", se.Code, se.Comment)
	})

	step("unknown session", func() string {
		bogus := aUse[0]
		bogus.SessionID = "no-such-session-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		err := a.Send(ctx, to([]msrp.URI{bogus}, self(b)), msrptest.Message{
			ID: "lost", ContentType: "text/plain", Body: strings.NewReader("x"), Size: 1,
		})
		var se *msrptest.StatusError
		if !errors.As(err, &se) || se.Code != 481 {
			t.Fatalf("%s: SEND to %s: %v; want 481", r.name, bogus, err)
		}
		return fmt.Sprintf("%d %s", se.Code, se.Comment)
	})
}

// needKamailio returns the Kamailio binary, or skips t (fails it when
// CI=true, where it is installed) when it or its tls and msrp modules are
// missing.
func needKamailio(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop: %s is not installed (kamailio, kamailio-tls-modules); CI installs it", what)
		}
		t.Skipf("interop: %s is not installed (kamailio, kamailio-tls-modules); skipping", what)
	}
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		bin = "/usr/sbin/kamailio" // not on a non-root PATH
		if _, err := os.Stat(bin); err != nil {
			missing("kamailio")
		}
	}
	for _, m := range []string{"tls.so", "msrp.so"} {
		if _, err := os.Stat(filepath.Join(kamModules, m)); err != nil {
			missing(filepath.Join(kamModules, m))
		}
	}
	return bin
}

// startKamailio runs bench/kamailio/msrp-run.sh on a free loopback port
// with a fresh self-signed certificate for 127.0.0.1, waits until it
// accepts TLS, and stops it, by its pid, when t ends.
func startKamailio(t *testing.T, bin string) interopRelay {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "bench", "kamailio", "msrp-run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pool := kamCert(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	conf := &tls.Config{RootCAs: pool}

	for attempt := 1; ; attempt++ {
		port := kamFreePort(t)
		scratch := filepath.Join(dir, "run"+strconv.Itoa(attempt))
		p := startKamProc(t, bin, script, port, dir, scratch)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := kamWaitTLS(addr, conf, p); err == nil {
			u := msrp.URI{Secure: true, Host: "127.0.0.1", Port: port, Transport: "tcp"}
			return interopRelay{name: "kamailio", addr: addr, tls: conf, authURI: u,
				userA: kamUser, passA: kamPassword, userB: kamUser, passB: kamPassword, logs: p.out.String}
		} else if attempt == 3 {
			t.Fatalf("interop: kamailio on %s: %v\n%s", addr, err, interopTail(p.out.String(), 8000))
		} else {
			// most likely the port was taken meanwhile: try another
			t.Logf("interop: kamailio on %s: %v; retrying", addr, err)
			p.stop()
		}
	}
}

// kamProc is a Kamailio the test started; msrp-run.sh execs it, so the
// process's pid is Kamailio's main pid, and SIGTERM to it stops the
// children too.
type kamProc struct {
	cmd    *exec.Cmd
	out    kamBuffer
	exited chan struct{}
	once   sync.Once
}

func startKamProc(t *testing.T, bin, script string, port int, certDir, scratch string) *kamProc {
	t.Helper()
	p := &kamProc{exited: make(chan struct{})}
	p.cmd = exec.Command(script, strconv.Itoa(port), "0",
		filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem"), scratch)
	p.cmd.Env = append(os.Environ(), "KAMAILIO="+bin)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	// its own process group, so that a Kamailio that ignores SIGTERM can be
	// killed with every child it forked
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("interop: start kamailio: %v", err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM to Kamailio's pid and waits for it; past kamStopWait
// it kills its process group.
func (p *kamProc) stop() {
	p.once.Do(func() {
		pid := p.cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-p.exited:
			return
		case <-time.After(kamStopWait):
		}
		syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	})
}

// kamWaitTLS polls addr until a TLS handshake that verifies the
// certificate succeeds, the process exits, or kamStartWait passes.
func kamWaitTLS(addr string, conf *tls.Config, p *kamProc) error {
	deadline := time.Now().Add(kamStartWait)
	for {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: conf}
		c, err := d.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before accepting TLS: %v", p.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no TLS within %v: %w", kamStartWait, err)
		}
	}
}

// kamFreePort returns a loopback TCP port that was free just now.
func kamFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// kamCert writes a self-signed certificate for 127.0.0.1 and its key as PEM
// files and returns a pool that trusts it.
func kamCert(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// kamBuffer collects a process's output for several goroutines.
type kamBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *kamBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *kamBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// interopTail returns the last n bytes of s.
func interopTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
