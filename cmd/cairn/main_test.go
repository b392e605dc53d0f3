package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	_ "modernc.org/sqlite"
)

// cairn runs one command in-process and returns its exit code and output.
func cairn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	data := "-data-dir=" + filepath.Join(dir, "data")

	if code, out, _ := cairn(t, "", "version"); code != 0 || !strings.HasPrefix(out, "cairn ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, _ := cairn(t, "", "bogus"); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
	if code, _, _ := cairn(t, "", "user", "add", data); code != 2 {
		t.Fatalf("user add without an address: exit %d, want 2", code)
	}
	if code, _, _ := cairn(t, "", "user", "del", "a@example.com", "b@example.com", data); code != 2 {
		t.Fatalf("user del of two addresses: exit %d, want 2", code)
	}

	if code, out, _ := cairn(t, "", "migrate", "status", data); code != 0 || !regexp.MustCompile(`0001 init\s+pending`).MatchString(out) {
		t.Fatalf("migrate status of a new database: %d %q", code, out)
	}

	// Accounts: SIP password only, then with a web password.
	const sipPW, webPW = "sip-secret-123", "web-secret-456"
	if code, _, errOut := cairn(t, sipPW+"\n", "user", "add", "alice@Example.com", "-password-stdin", data); code != 0 {
		t.Fatalf("user add: %d %s", code, errOut)
	}
	if code, _, errOut := cairn(t, sipPW+"\n"+webPW+"\n", "user", "add", "--web", "--password-stdin", "bob@example.com", data); code != 0 {
		t.Fatalf("user add -web: %d %s", code, errOut)
	}
	if code, _, errOut := cairn(t, sipPW+"\n", "user", "add", "alice@example.com", "-password-stdin", data); code != 1 || !strings.Contains(errOut, "conflict") {
		t.Fatalf("duplicate user add: %d %q", code, errOut)
	}
	if code, _, errOut := cairn(t, "short\n", "user", "add", "carol@example.com", "-password-stdin", data); code != 1 || !strings.Contains(errOut, "password must be") {
		t.Fatalf("short password: %d %q", code, errOut)
	}
	if code, _, errOut := cairn(t, sipPW+"\n", "user", "add", "not-an-address", "-password-stdin", data); code != 1 || !strings.Contains(errOut, "user@domain") {
		t.Fatalf("bad address: %d %q", code, errOut)
	}
	code, out, _ := cairn(t, "", "user", "list", data)
	if code != 0 || !strings.Contains(out, "alice@example.com\tweb-password=false") || !strings.Contains(out, "bob@example.com\tweb-password=true") {
		t.Fatalf("user list: %d %q", code, out)
	}
	if code, _, errOut := cairn(t, webPW+"\n", "user", "passwd", "alice@example.com", "-web", "-password-stdin", data); code != 0 {
		t.Fatalf("user passwd -web: %d %s", code, errOut)
	}
	if code, out, _ := cairn(t, "", "user", "list", data); !strings.Contains(out, "alice@example.com\tweb-password=true") {
		t.Fatalf("after passwd -web: %d %q", code, out)
	}
	if code, _, errOut := cairn(t, "", "user", "del", "bob@example.com", data); code != 0 {
		t.Fatalf("user del: %d %s", code, errOut)
	}
	if code, _, _ := cairn(t, "", "user", "del", "bob@example.com", data); code != 1 {
		t.Fatalf("user del of a missing account: exit %d, want 1", code)
	}

	// Secrets: the key file is private, and no password is in the database.
	fi, err := os.Stat(filepath.Join(dir, "data", "secret.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v, mode %v", err, fi.Mode())
	}
	for _, f := range []string{"cairn.db", "cairn.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(dir, "data", f))
		if bytes.Contains(b, []byte(sipPW)) || bytes.Contains(b, []byte(webPW)) {
			t.Fatalf("%s holds a cleartext password", f)
		}
	}

	// A lost key is not silently replaced while accounts sealed with it exist.
	keyFile := filepath.Join(dir, "data", "secret.key")
	if err := os.Rename(keyFile, keyFile+".away"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"user", "add", "carol@example.com", "-password-stdin", data}, {"serve", data, "-http=127.0.0.1:0", "-https=off", "-sip-udp=off", "-sip-tcp=off", "-sip-tls=off", "-sip-ws=off", "-sip-wss=off", "-msrp-tls=off", "-msrp-wss=off"}} {
		if code, _, errOut := cairn(t, sipPW+"\n", args...); code != 1 || !strings.Contains(errOut, "sealing key") {
			t.Errorf("%v without the key: exit %d, %q", args, code, errOut)
		}
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Fatal("a new key was made while accounts exist")
	}
	if err := os.Rename(keyFile+".away", keyFile); err != nil {
		t.Fatal(err)
	}

	if code, out, _ := cairn(t, "", "migrate", "status", data); code != 0 || !regexp.MustCompile(`0001 init\s+applied`).MatchString(out) {
		t.Fatalf("migrate status: %d %q", code, out)
	}
	if code, out, _ := cairn(t, "", "purge", data); code != 0 || !strings.Contains(out, "removed 0 journal entries") {
		t.Fatalf("purge: %d %q", code, out)
	}

	// check-config reports every problem at once, and unknown keys.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"log_level":"loud","journal":{"path":"nope","retention":"1s"}}`), 0o600)
	code, _, errOut := cairn(t, "", "check-config", "-config="+bad)
	if code != 1 || !strings.Contains(errOut, "log_level") || !strings.Contains(errOut, "journal.path") || !strings.Contains(errOut, "journal.retention") {
		t.Fatalf("check-config: %d %q", code, errOut)
	}
	os.WriteFile(bad, []byte(`{"jurnal":{}}`), 0o600)
	if code, _, errOut := cairn(t, "", "check-config", "-config="+bad); code != 1 || !strings.Contains(errOut, "jurnal") {
		t.Fatalf("check-config unknown key: %d %q", code, errOut)
	}

	testServe(t, data, webPW)

	// A database from a newer cairn is refused, by serve and by every command.
	db, err := sql.Open("sqlite", filepath.Join(dir, "data", "cairn.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", data, "-http=127.0.0.1:0", "-https=off", "-sip-udp=off", "-sip-tcp=off", "-sip-tls=off", "-sip-ws=off", "-sip-wss=off", "-msrp-tls=off", "-msrp-wss=off"}, {"user", "list", data}, {"migrate", "status", data}} {
		if code, _, errOut := cairn(t, "", args...); code != 1 || !strings.Contains(errOut, "upgrade cairn") {
			t.Errorf("%v on a newer schema: exit %d, %q", args, code, errOut)
		}
	}
}

// testServe runs `cairn serve` until it logs its listeners, checks them, and
// stops it with a cancelled context as SIGTERM would.
func testServe(t *testing.T, data, webPW string) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", data, "-http=127.0.0.1:0", "-https=127.0.0.1:0", "-sip-udp=127.0.0.1:0", "-sip-tcp=127.0.0.1:0", "-sip-tls=127.0.0.1:0", "-sip-ws=127.0.0.1:0", "-sip-wss=127.0.0.1:0", "-msrp-tls=127.0.0.1:0", "-msrp-wss=127.0.0.1:0"}, strings.NewReader(""), io.Discard, pw)
		pw.Close()
	}()
	addrs := map[string]string{}
	lines := bufio.NewScanner(pr)
	listening := regexp.MustCompile(`msg=listening protocol=(\w+) addr=(\S+)`)
	for len(addrs) < 2 && lines.Scan() {
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			addrs[m[1]] = m[2]
		}
	}
	go io.Copy(io.Discard, pr)
	if addrs["http"] == "" || addrs["https"] == "" {
		t.Fatalf("serve did not log both listeners: %v", addrs)
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the generated self-signed certificate
	}}
	resp, err := client.Get("http://" + addrs["http"] + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	resp.Body.Close()

	url := "https://" + addrs["https"] + "/settings.phtml?action=get_journal_entries&realm=example.com"
	resp, err = client.Get(url)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("alice", webPW)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Success bool              `json:"success"`
		Results []json.RawMessage `json:"results"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if err != nil || !answer.Success || answer.Results == nil {
		t.Fatalf("get over HTTPS with Basic: %v %+v", err, answer)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d after the stop signal", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestMain runs the test binary as cairn itself when beMain is set, so that
// TestSignals can run the real main in a child process. Otherwise it checks
// that serve leaves no goroutine behind once stopped; the signal package's
// own loop, started by the drain's signal.Notify, stays.
func TestMain(m *testing.M) {
	if os.Getenv(beMain) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("os/signal.signal_recv"), goleak.IgnoreTopFunction("os/signal.loop"))
}

const beMain = "CAIRN_TEST_BE_MAIN"

// TestSignals runs `cairn serve` as a process and stops it with SIGTERM, as
// an init system does: it drains and exits 0.
func TestSignals(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "serve", "-data-dir="+t.TempDir(), "-http=127.0.0.1:0", "-https=127.0.0.1:0", "-sip-udp=127.0.0.1:0", "-sip-tcp=127.0.0.1:0", "-sip-tls=127.0.0.1:0", "-sip-ws=127.0.0.1:0", "-sip-wss=127.0.0.1:0", "-msrp-tls=127.0.0.1:0", "-msrp-wss=127.0.0.1:0")
	cmd.Env = append(os.Environ(), beMain+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	listening := 0
	for listening < 2 && lines.Scan() {
		if strings.Contains(lines.Text(), "msg=listening") {
			listening++
		}
	}
	if listening < 2 {
		t.Fatalf("serve logged %d listeners before its output ended", listening)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM; it logged:\n%s", err, rest.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit within 20 s of SIGTERM")
	}
	if !strings.Contains(rest.String(), "draining") {
		t.Errorf("serve did not log its drain:\n%s", rest.String())
	}
}
