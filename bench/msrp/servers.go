package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// makeCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 to
// dir/cert.pem and dir/key.pem, used by cairn, Kamailio and the direct
// listener alike, and returns the server and client TLS configurations.
// Every connection is TLS 1.3 with Go's default cipher suites on the
// client; the server side picks (Go's, or OpenSSL's in Kamailio).
func makeCert(dir string) (certFile, keyFile string, server, client *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", nil, nil, err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", nil, nil, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "", "", nil, nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	server = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}
	client = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13}
	return certFile, keyFile, server, client, nil
}

// proc is a server process this program started, in its own process group
// whose id is its pid.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // its stderr and stdout
	done chan struct{}
	err  error // set when done is closed
}

// startProc starts cmd in a new process group with its output in logFile.
func startProc(name string, cmd *exec.Cmd, logFile string) (*proc, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr, cmd.Stdin = f, f, nil
	// Its own process group, so that a Ctrl-C on the terminal reaches
	// only this program, which then stops it; SIGTERM if this program dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process, and after 10 s SIGKILL to its process
// group (which only it and its children are in), and waits for it.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	// Kamailio's children may outlive a main process that died badly.
	syscall.Kill(-p.pid(), syscall.SIGKILL)
}

// tail returns the last lines of the process's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procs tracks what is running so that every exit path stops it.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

func (ps *procs) add(p *proc) {
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for _, p := range list {
		p.stop()
	}
}

// cairnServer is a running `cairn serve`.
type cairnServer struct {
	*proc
	msrpAddr string // host:port of the MSRP TLS listener
	httpAddr string // host:port of the plain HTTP listener (/metrics)
}

// The accounts the benchmark creates are alice and bob (the transfers) and
// idle0… (the idle sessions), all of this domain with this password.
const (
	cairnDomain   = "example.com"
	cairnPassword = "benchpass1"
)

// setupCairn builds cairn (unless bin is given), writes its configuration
// and creates the accounts. It returns the binary and the configuration
// file.
func setupCairn(ctx context.Context, root, dir, bin, certFile, keyFile string, idleUsers int) (string, string, error) {
	if bin == "" {
		bin = filepath.Join(dir, "cairn")
		logf("building cairn")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cairn")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build ./cmd/cairn: %v\n%s", err, out)
		}
	}
	data := filepath.Join(dir, "cairn-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", "", err
	}
	cfg := map[string]any{
		"data_dir":  data,
		"log_level": "info",
		"http": map[string]any{"listen": "127.0.0.1:0", "tls_listen": "",
			"cert_file": certFile, "key_file": keyFile},
		"sip": map[string]any{"udp": "", "tcp": "", "tls": "", "ws": "", "wss": ""},
		"msrp": map[string]any{"tls": "127.0.0.1:0", "tcp": "", "wss": "",
			"host": "127.0.0.1", "realm": cairnDomain},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(dir, "cairn.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return "", "", err
	}
	users := []string{"alice", "bob"}
	for i := range idleUsers {
		users = append(users, fmt.Sprintf("idle%d", i))
	}
	logf("creating %d cairn accounts", len(users))
	for _, u := range users {
		cmd := exec.CommandContext(ctx, bin, "user", "add", u+"@"+cairnDomain, "-password-stdin", "-config", cfgFile)
		cmd.Stdin = strings.NewReader(cairnPassword + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("cairn user add %s: %v\n%s", u, err, out)
		}
	}
	return bin, cfgFile, nil
}

var listeningRE = regexp.MustCompile(`msg=listening protocol=(\S+) addr=(\S+)`)

// startCairn starts `cairn serve` and waits for its MSRP and HTTP
// listeners (read from its log, since both bind port 0).
func startCairn(ctx context.Context, ps *procs, bin, cfgFile, logFile string) (*cairnServer, error) {
	p, err := startProc("cairn", exec.Command(bin, "serve", "-config", cfgFile), logFile)
	if err != nil {
		return nil, err
	}
	ps.add(p)
	s := &cairnServer{proc: p}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			return nil, fmt.Errorf("cairn exited: %v\n%s", p.err, p.tail(10))
		}
		b, _ := os.ReadFile(logFile)
		ready := strings.Contains(string(b), "msg=\"cairn ready\"")
		for _, m := range listeningRE.FindAllStringSubmatch(string(b), -1) {
			switch m[1] {
			case "msrp-tls":
				s.msrpAddr = m[2]
			case "http":
				s.httpAddr = m[2]
			}
		}
		if ready && s.msrpAddr != "" && s.httpAddr != "" {
			return s, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cairn not ready within 30 s:\n%s", p.tail(10))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// metrics reads some series of cairn's /metrics.
func (s *cairnServer) metrics(names ...string) map[string]float64 {
	out := make(map[string]float64)
	c := net.Dialer{Timeout: 5 * time.Second}
	conn, err := c.Dial("tcp", s.httpAddr)
	if err != nil {
		return out
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", s.httpAddr)
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if rest, ok := strings.CutPrefix(line, n+" "); ok {
				if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
					out[n] = v
				}
			}
		}
	}
	return out
}

// kamailioConfig describes a Kamailio started through msrp-run.sh.
type kamailioConfig struct {
	root, dir        string // repository root, scratch directory
	certFile, key    string
	shmMB            int
	maxConnections   int // 0: msrp.cfg as it is; else a copy with tcp/tls_max_connections raised
	logFile, runName string
}

// startKamailio runs bench/kamailio/msrp-run.sh on a free port and waits
// until it accepts connections. For a connection limit above msrp.cfg's
// (4096 TCP, and Kamailio's default of 2048 TLS), the script and the cfg
// are copied to the scratch directory and only those two settings change.
func startKamailio(ctx context.Context, ps *procs, k kamailioConfig) (*proc, string, error) {
	script := filepath.Join(k.root, "bench/kamailio/msrp-run.sh")
	if k.maxConnections > 0 {
		cfgDir := filepath.Join(k.dir, k.runName+"-cfg")
		if err := os.MkdirAll(cfgDir, 0o755); err != nil {
			return nil, "", err
		}
		cfg, err := os.ReadFile(filepath.Join(k.root, "bench/kamailio/msrp.cfg"))
		if err != nil {
			return nil, "", err
		}
		re := regexp.MustCompile(`(?m)^tcp_max_connections=\d+$`)
		if !re.Match(cfg) {
			return nil, "", errors.New("msrp.cfg: no tcp_max_connections line to raise")
		}
		cfg = re.ReplaceAll(cfg, fmt.Appendf(nil, "tcp_max_connections=%d\ntls_max_connections=%d", k.maxConnections, k.maxConnections))
		sh, err := os.ReadFile(script)
		if err != nil {
			return nil, "", err
		}
		script = filepath.Join(cfgDir, "msrp-run.sh")
		if err := os.WriteFile(filepath.Join(cfgDir, "msrp.cfg"), cfg, 0o644); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(script, sh, 0o755); err != nil {
			return nil, "", err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(script, strconv.Itoa(port), "0", k.certFile, k.key, filepath.Join(k.dir, k.runName))
	cmd.Env = append(os.Environ(), "KAM_SHM_MB="+strconv.Itoa(k.shmMB))
	p, err := startProc("kamailio", cmd, k.logFile)
	if err != nil {
		return nil, "", err
	}
	ps.add(p)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p.exited() {
			return nil, "", fmt.Errorf("kamailio exited: %v\n%s", p.err, p.tail(10))
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			// the TCP workers start a moment after the listener
			return p, addr, sleep(ctx, time.Second)
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("kamailio not listening on %s within 20 s:\n%s", addr, p.tail(10))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, "", err
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// groupPids lists the processes of process group pgid.
func groupPids(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// statFields returns the fields of /proc/PID/stat after "pid (comm)",
// numbered from 0 = state (field 3 of proc(5)).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

var clkTck = 100.0 // sysconf(_SC_CLK_TCK) on Linux

// cpuTime is CPU time in seconds, user and system.
type cpuTime struct{ user, sys float64 }

func (c cpuTime) sub(d cpuTime) cpuTime { return cpuTime{c.user - d.user, c.sys - d.sys} }
func (c cpuTime) total() float64        { return c.user + c.sys }

// cpuSeconds is the CPU time of the given processes (utime and stime of
// /proc/PID/stat).
func cpuSeconds(pids []int) cpuTime {
	var t cpuTime
	for _, pid := range pids {
		f := statFields(pid)
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		t.user += u / clkTck
		t.sys += s / clkTck
	}
	return t
}

// machineCPU is the busy CPU time of the whole machine (/proc/stat: all
// but idle and iowait), in seconds.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy float64
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 {
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clkTck
}

// selfCPU is the CPU time of this process.
func selfCPU() cpuTime {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return cpuTime{tv(ru.Utime), tv(ru.Stime)}
}

// memKiB returns the sum over pids of a "Name: N kB" line of
// /proc/PID/status (VmRSS, VmHWM) or /proc/PID/smaps_rollup (Pss).
func memKiB(pids []int, file, name string) int64 {
	var total int64
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
				v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total += v
				break
			}
		}
		f.Close()
	}
	return total
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
