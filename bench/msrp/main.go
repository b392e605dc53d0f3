// Command msrp benchmarks cairn's MSRP relay (RFC 4975/4976) beside a
// direct endpoint-to-endpoint TLS connection and beside Kamailio 5.6's msrp
// module as a reference relay, all on loopback:
//
//	go run ./bench/msrp [flags]
//
// It builds cairn from the working tree, starts `cairn serve` and Kamailio
// (bench/kamailio/msrp-run.sh) as separate processes, each in its own
// process group, and stops them by pid at the end, on failure and on
// Ctrl-C. It measures
//
//   - throughput: one file of -size random bytes from endpoint A to B
//     (msrp/msrptest), in chunks of each -chunks size with -window chunks
//     awaiting their 200: direct (A and B on the two ends of one TLS
//     connection), through cairn, and through Kamailio (chunks up to 2048
//     bytes only: it refuses frames over about 11 KB). After a warm-up
//     round, each -runs times, interleaved; the SHA-256 is checked at B
//     every time. A plain TLS copy of the same bytes with no MSRP shows the
//     ceiling of one TLS stream. The CPU time of the relay's processes and
//     of this one (both endpoints) is read around every run.
//   - latency: -lat-n single-chunk messages of -lat-size bytes over each
//     path, sent one after the other and the paths in turn, each timed from
//     A's write to B holding the whole message.
//   - memory: -sessions TLS connections that authenticate (digest) and
//     stay idle; the relay's resident memory before and after, read from
//     /proc. Each relay is a fresh process for this phase. Kamailio runs
//     from a copy of msrp.cfg whose connection limits are raised, and its
//     sessions are opened one at a time (see -kamailio-concurrency).
//
// Every connection is TLS 1.3 with a self-signed ECDSA P-256 certificate
// made for the run. The results go to stdout as Markdown and to -out. The
// exit status is 1 when a transfer is corrupt or fails, or a phase cannot
// run.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

type options struct {
	size        int
	chunks      []int
	window      int
	runs        int
	warmup      bool
	latN        int
	latWarm     int
	latSize     int
	sessions    int
	conc        int
	kamConc     int
	idleUsers   int
	kamailio    bool
	kamMaxChunk int
	kamShmMB    int
	phases      map[string]bool
	out         string
	cairnBin    string
	keep        bool
	timeout     time.Duration
	quietWait   time.Duration
}

func parseFlags() (options, error) {
	var o options
	var chunks, phases string
	flag.IntVar(&o.size, "size", 256<<20, "file size in bytes for the throughput runs")
	flag.StringVar(&chunks, "chunks", "2048,65536", "chunk sizes in bytes, comma-separated")
	flag.IntVar(&o.window, "window", 64, "chunks A keeps awaiting their 200")
	flag.IntVar(&o.runs, "runs", 3, "runs of each throughput measurement (the median is reported)")
	flag.BoolVar(&o.warmup, "warmup", true, "before the measured runs, send a quarter of -size once over every path, unmeasured")
	flag.IntVar(&o.latN, "lat-n", 2000, "messages timed in the latency phase")
	flag.IntVar(&o.latWarm, "lat-warm", 100, "messages sent before timing starts")
	flag.IntVar(&o.latSize, "lat-size", 2048, "body bytes of a latency message")
	flag.IntVar(&o.sessions, "sessions", 10000, "idle authenticated sessions in the memory phase")
	flag.IntVar(&o.conc, "concurrency", 64, "sessions being opened at once in the memory phase")
	flag.IntVar(&o.kamConc, "kamailio-concurrency", 1, "sessions being opened at once on Kamailio: 5.6.3 with OpenSSL 3 corrupts its shared memory on concurrent TLS handshakes (kamailio/kamailio#3791)")
	flag.IntVar(&o.idleUsers, "idle-users", 10, "cairn accounts the idle sessions authenticate as, in turn")
	flag.BoolVar(&o.kamailio, "kamailio", true, "also measure Kamailio's msrp module (skipped when not installed)")
	flag.IntVar(&o.kamMaxChunk, "kamailio-max-chunk", 2048, "largest chunk sent through Kamailio")
	flag.IntVar(&o.kamShmMB, "kamailio-shm-mb", 2048, "Kamailio shared memory (MB) in the memory phase")
	flag.StringVar(&phases, "phases", "throughput,latency,memory", "phases to run")
	flag.StringVar(&o.out, "out", "", "results file (default: results.md in the work directory)")
	flag.StringVar(&o.cairnBin, "cairn", "", "prebuilt cairn binary (default: go build ./cmd/cairn)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, data) even after a clean run")
	flag.DurationVar(&o.quietWait, "quiet-wait", time.Minute, "before each measurement, wait up to this long for the rest of the machine to be idle (0: never wait); the machine is shared")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.Parse()
	for s := range strings.SplitSeq(chunks, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-chunks: %q", s)
		}
		o.chunks = append(o.chunks, n)
	}
	o.phases = make(map[string]bool)
	for s := range strings.SplitSeq(phases, ",") {
		switch s = strings.TrimSpace(s); s {
		case "throughput", "latency", "memory":
			o.phases[s] = true
		default:
			return o, fmt.Errorf("-phases: unknown phase %q", s)
		}
	}
	if o.size < 1 || o.window < 1 || o.runs < 1 || o.latN < 1 || o.sessions < 1 || o.conc < 1 || o.idleUsers < 1 {
		return o, errors.New("sizes and counts must be positive")
	}
	return o, nil
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "msrp bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, o)
	stop()
	os.Exit(code)
}

// repoRoot is the directory of the go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/cairn-chat/cairn\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the cairn repository")
		}
		dir = parent
	}
}

// report collects the results as they come.
type report struct {
	o        options
	started  time.Time
	machine  []string
	command  string
	tput     map[string][]transferResult // key: path + "/" + chunk
	lat      map[string]latencyResult
	mem      []memResult
	problems []string
	failed   bool
	// quietTimeouts counts measurements started on a busy machine.
	quietTimeouts int
}

type memResult struct {
	relay               string
	sessions, failed    int
	beforeKiB, afterKiB int64 // VmRSS (cairn) or summed Pss (Kamailio)
	rssSumKiB, hwmKiB   int64
	procs               int
	conc                int // sessions opened at once
	openTime            time.Duration
	extra               string
	driverKiB           int64
}

// waitQuiet waits, up to -quiet-wait, until the machine has been idle
// (under 5 % of one CPU busy) for a second: other jobs share it, and a
// measurement should not start in the middle of one. Waits that run out
// are counted in the report.
func (r *report) waitQuiet(ctx context.Context) {
	if r.o.quietWait <= 0 {
		return
	}
	deadline := time.Now().Add(r.o.quietWait)
	start := time.Now()
	for ctx.Err() == nil {
		before := machineCPU()
		if sleep(ctx, time.Second) != nil {
			return
		}
		if machineCPU()-before < 0.05 {
			if w := time.Since(start); w > 2*time.Second {
				logf("waited %.0f s for other jobs on the machine to finish", w.Seconds())
			}
			return
		}
		if time.Now().After(deadline) {
			r.quietTimeouts++
			logf("the machine is still busy after %v: measuring anyway", r.o.quietWait)
			return
		}
	}
}

func (r *report) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	logf("PROBLEM: %s", msg)
	r.problems = append(r.problems, msg)
	r.failed = true
}

func run(ctx context.Context, o options) int {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	root, err := repoRoot()
	if err != nil {
		logf("%v", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "msrp-bench-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	logf("work directory %s", dir)
	if o.out == "" {
		o.out = filepath.Join(dir, "results.md")
	}
	var ps procs
	defer ps.stopAll()

	r := &report{o: o, started: time.Now(), tput: map[string][]transferResult{}, lat: map[string]latencyResult{}}
	r.machine = machine(root)
	r.command = "go run ./bench/msrp " + strings.Join(os.Args[1:], " ")
	err = runPhases(ctx, o, root, dir, &ps, r)
	ps.stopAll()
	if err != nil {
		r.problem("%v", err)
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.machine = append(r.machine, "load average at the end: "+strings.Join(strings.Fields(string(load))[:3], " "))
	}
	md := r.markdown()
	fmt.Print(md)
	if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
		logf("write %s: %v", o.out, err)
		return 1
	}
	logf("results written to %s", o.out)
	if !r.failed && !o.keep && !strings.HasPrefix(o.out, dir+string(filepath.Separator)) {
		os.RemoveAll(dir)
	} else if !o.keep {
		os.Remove(filepath.Join(dir, "cairn")) // the binary; logs and results stay
	}
	if r.failed {
		return 1
	}
	return 0
}

func runPhases(ctx context.Context, o options, root, dir string, ps *procs, r *report) error {
	certFile, keyFile, serverTLS, clientTLS, err := makeCert(dir)
	if err != nil {
		return err
	}
	bin, cfgFile, err := setupCairn(ctx, root, dir, o.cairnBin, certFile, keyFile, o.idleUsers)
	if err != nil {
		return err
	}
	kam := o.kamailio
	if kam {
		if _, err := exec.LookPath(kamailioBinary()); err != nil {
			r.problems = append(r.problems, "Kamailio not installed: its rows are missing")
			kam = false
		}
	}
	kcfg := kamailioConfig{root: root, dir: dir, certFile: certFile, key: keyFile, shmMB: 256}

	if o.phases["throughput"] || o.phases["latency"] {
		cs, err := startCairn(ctx, ps, bin, cfgFile, filepath.Join(dir, "cairn-1.log"))
		if err != nil {
			return err
		}
		logf("cairn pid %d, MSRP on %s", cs.pid(), cs.msrpAddr)
		targets := []target{
			directTarget(serverTLS, clientTLS),
			relayTarget("cairn", cs.msrpAddr, clientTLS, "alice", "bob", cairnPassword,
				func() cpuTime { return cpuSeconds([]int{cs.pid()}) }),
		}
		var kp *proc
		if kam {
			k := kcfg
			k.logFile, k.runName = filepath.Join(dir, "kamailio-1.log"), "kamailio-1"
			var addr string
			if kp, addr, err = startKamailio(ctx, ps, k); err != nil {
				return err
			}
			logf("kamailio pid %d, MSRP on %s", kp.pid(), addr)
			pgid := kp.pid()
			targets = append(targets, relayTarget("kamailio", addr, clientTLS, kamailioUser, kamailioUser, kamailioPassword,
				func() cpuTime { return cpuSeconds(groupPids(pgid)) }))
		}
		if o.phases["throughput"] {
			if err := throughputPhase(ctx, o, targets, serverTLS, clientTLS, r); err != nil {
				return err
			}
		}
		if o.phases["latency"] {
			r.waitQuiet(ctx)
			logf("latency: %d messages of %d bytes over each path in turn", o.latN, o.latSize)
			r.lat = latency(ctx, targets, o.latN, o.latWarm, o.latSize)
			for _, t := range targets {
				res := r.lat[t.name]
				if res.err != nil {
					r.problem("latency %s: %v", t.name, res.err)
				} else {
					logf("  %s: p50 %v p99 %v", t.name, res.pct(0.50), res.pct(0.99))
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if kp != nil && kp.exited() {
			r.problem("kamailio exited during the run: %v\n%s", kp.err, kp.tail(5))
		}
		cs.stop()
		kp.stop()
	}

	if o.phases["memory"] {
		user := func(i int) string { return fmt.Sprintf("idle%d", i%o.idleUsers) }
		cs, err := startCairn(ctx, ps, bin, cfgFile, filepath.Join(dir, "cairn-2.log"))
		if err != nil {
			return err
		}
		m, err := memoryPhase(ctx, r, o, "cairn", o.conc, func() []int { return []int{cs.pid()} }, false,
			newIdleClient(cs.msrpAddr, clientTLS, cairnPassword, user), cs)
		r.mem = append(r.mem, m)
		cs.stop()
		if err != nil {
			r.problem("memory cairn: %v", err)
		}
		if kam && ctx.Err() == nil {
			k := kcfg
			k.logFile, k.runName = filepath.Join(dir, "kamailio-2.log"), "kamailio-2"
			k.maxConnections = o.sessions + 1000
			k.shmMB = o.kamShmMB
			kp, addr, err := startKamailio(ctx, ps, k)
			if err != nil {
				return err
			}
			logf("kamailio pid %d, MSRP on %s", kp.pid(), addr)
			pgid := kp.pid()
			m, err := memoryPhase(ctx, r, o, "kamailio", o.kamConc, func() []int { return groupPids(pgid) }, true,
				newIdleClient(addr, clientTLS, kamailioPassword, func(int) string { return kamailioUser }), nil)
			m.extra = fmt.Sprintf("%d MB shared memory reserved (-m); cfg copy with tcp/tls_max_connections=%d", k.shmMB, k.maxConnections)
			r.mem = append(r.mem, m)
			if kp.exited() {
				r.problem("kamailio exited during the memory phase: %v\n%s", kp.err, kp.tail(5))
			}
			kp.stop()
			if err != nil {
				r.problem("memory kamailio: %v", err)
			}
		}
	}
	return ctx.Err()
}

const (
	kamailioUser     = "msrptest"
	kamailioPassword = "msrptest-secret"
)

func kamailioBinary() string {
	if k := os.Getenv("KAMAILIO"); k != "" {
		return k
	}
	return "/usr/sbin/kamailio"
}

// throughputPhase runs every transfer o.runs times, the paths interleaved
// so that a noisy moment does not hit one path only.
func throughputPhase(ctx context.Context, o options, targets []target, st, ct *tls.Config, r *report) error {
	payload := make([]byte, o.size)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	if o.warmup {
		part := payload[:max(1, len(payload)/4)]
		psum := sha256.Sum256(part)
		logf("throughput: warm-up round, %d MiB over every path", len(part)>>20)
		if res := rawCopy(ctx, st, ct, part, psum); res.err != nil {
			r.problem("warm-up raw TLS: %v", res.err)
		}
		for _, chunk := range o.chunks {
			for _, t := range targets {
				if t.name == "kamailio" && chunk > o.kamMaxChunk {
					continue
				}
				if res := transfer(ctx, t, chunk, o.window, part, psum); res.err != nil {
					r.problem("warm-up %s: %v", tputKey(t.name, chunk), res.err)
				}
			}
		}
	}
	for run := 1; run <= o.runs; run++ {
		r.waitQuiet(ctx)
		res := rawCopy(ctx, st, ct, payload, sum)
		r.addTransfer(ctx, "raw TLS", 0, run, res)
		for _, chunk := range o.chunks {
			for _, t := range targets {
				if t.name == "kamailio" && chunk > o.kamMaxChunk {
					continue
				}
				runtime.GC()
				r.waitQuiet(ctx)
				res := transfer(ctx, t, chunk, o.window, payload, sum)
				r.addTransfer(ctx, t.name, chunk, run, res)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
	}
	return nil
}

func (r *report) addTransfer(ctx context.Context, path string, chunk, run int, res transferResult) {
	key := tputKey(path, chunk)
	r.tput[key] = append(r.tput[key], res)
	switch {
	case res.err != nil && ctx.Err() == nil:
		kind := "failed"
		if res.corrupt {
			kind = "CORRUPT"
		}
		r.problem("throughput %s run %d: %s: %v", key, run, kind, res.err)
	case res.err == nil:
		logf("throughput %s run %d: %.1f MB/s (%.2f s; CPU s user+sys: relay %.2f+%.2f, endpoints %.2f+%.2f, rest of the machine %.2f; %s)", key, run,
			res.mbps(r.o.size), res.elapsed.Seconds(), res.relayCPU.user, res.relayCPU.sys, res.selfCPU.user, res.selfCPU.sys, res.otherCPU, res.cipher)
	}
}

func tputKey(path string, chunk int) string {
	if chunk == 0 {
		return path
	}
	return fmt.Sprintf("%s/%d", path, chunk)
}

// memoryPhase opens o.sessions idle sessions and reads the relay's memory
// before and after. For cairn it is VmRSS of its one process; for
// Kamailio, whose processes share memory, the sum of their Pss (each
// shared page divided among the processes that map it), with the plain
// VmRSS sum beside it.
func memoryPhase(ctx context.Context, r *report, o options, name string, conc int, getPids func() []int, shared bool, c *idleClient, cs *cairnServer) (memResult, error) {
	m := memResult{relay: name, conc: conc}
	read := func() int64 {
		if shared {
			return memKiB(getPids(), "smaps_rollup", "Pss")
		}
		return memKiB(getPids(), "status", "VmRSS")
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return m, err
	}
	r.waitQuiet(ctx)
	m.beforeKiB = read()
	var before map[string]float64
	if cs != nil {
		before = cs.metrics(cairnMetrics...)
	}
	logf("memory %s: %d KiB before; opening %d sessions, %d at a time", name, m.beforeKiB, o.sessions, conc)
	start := time.Now()
	conns, failed, err := openIdle(ctx, c, o.sessions, conc, 5*time.Minute)
	m.openTime = time.Since(start)
	defer closeAll(conns)
	m.sessions, m.failed = len(conns), failed
	logf("memory %s: %d sessions in %.1f s (%d failed)", name, len(conns), m.openTime.Seconds(), failed)
	if len(conns) == 0 {
		return m, err
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return m, err
	}
	m.afterKiB = read()
	p := getPids()
	m.procs = len(p)
	m.rssSumKiB = memKiB(p, "status", "VmRSS")
	m.hwmKiB = memKiB(p, "status", "VmHWM")
	m.driverKiB = memKiB([]int{os.Getpid()}, "status", "VmRSS")
	if cs != nil {
		after := cs.metrics(cairnMetrics...)
		if got := after["cairn_msrp_sessions"]; int(got) != len(conns) {
			err = errors.Join(err, fmt.Errorf("cairn reports %v live sessions, want %d", got, len(conns)))
		}
		per := func(k string) float64 { return (after[k] - before[k]) / float64(len(conns)) }
		mib := func(k string) float64 { return after[k] / (1 << 20) }
		m.extra = fmt.Sprintf("per session: Go heap in use %.1f KiB, goroutine stacks %.1f KiB, %.2f goroutines. In total: heap in use %.0f MiB (next GC at %.0f MiB), "+
			"stacks %.0f MiB, heap idle %.0f MiB of which %.0f MiB returned to the OS, %.0f MiB obtained from the OS",
			per("go_memstats_heap_inuse_bytes")/1024, per("go_memstats_stack_inuse_bytes")/1024, per("go_goroutines"),
			mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_next_gc_bytes"), mib("go_memstats_stack_inuse_bytes"),
			mib("go_memstats_heap_idle_bytes"), mib("go_memstats_heap_released_bytes"), mib("go_memstats_sys_bytes"))
	}
	logf("memory %s: %d KiB after (%.1f KiB a session)", name, m.afterKiB, float64(m.afterKiB-m.beforeKiB)/float64(len(conns)))
	return m, err
}

var cairnMetrics = []string{"cairn_msrp_sessions", "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes",
	"go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_sys_bytes", "go_memstats_next_gc_bytes"}

// machine describes where the run happens.
func machine(root string) []string {
	var out []string
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	out = append(out, fmt.Sprintf("%d CPUs (`nproc`), %s, Linux %s, %s", runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), runtime.Version()))
	if b, err := exec.Command(kamailioBinary(), "-v").Output(); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		out = append(out, strings.TrimSpace(strings.TrimPrefix(first, "version: ")))
	}
	commit := "?"
	if b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(b))
	}
	out = append(out, "cairn "+commit+" (working tree)", "load average at start: "+strings.Join(strings.Fields(string(load))[:3], " "))
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func (r *report) markdown() string {
	var b strings.Builder
	o := r.o
	fmt.Fprintf(&b, "## MSRP relay results (%s)\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"))
	for _, m := range r.machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	fmt.Fprintf(&b, "- command: `%s`\n\n", strings.TrimSpace(r.command))

	if o.phases["throughput"] {
		warm := ""
		if o.warmup {
			warm = ", after one unmeasured warm-up round of a quarter of the size over every path"
		}
		fmt.Fprintf(&b, "### Throughput: %d MiB from A to B, window %d, median of %d interleaved runs%s\n\n", o.size>>20, o.window, o.runs, warm)
		b.WriteString("| chunk | path | MB/s, each run | median MB/s | / direct MSRP | / raw TLS | relay CPU s, user + sys | endpoints' CPU s, user + sys | rest of the machine, CPU s | TLS 1.3 cipher (A's connection) |\n|---|---|---|---|---|---|---|---|---|---|\n")
		rawMed := r.medianMBps("raw TLS")
		r.tputRow(&b, "—", "raw TLS copy, no MSRP", "raw TLS", 0, rawMed)
		for _, chunk := range o.chunks {
			direct := r.medianMBps(tputKey("direct", chunk))
			for _, path := range []string{"direct", "cairn", "kamailio"} {
				if _, ok := r.tput[tputKey(path, chunk)]; ok {
					r.tputRow(&b, fmt.Sprintf("%d B", chunk), path, tputKey(path, chunk), direct, rawMed)
				}
			}
		}
		b.WriteString("\n")
	}
	if o.phases["latency"] && len(r.lat) > 0 {
		fmt.Fprintf(&b, "### Latency: %d messages of one %d-byte chunk per path, one at a time and the paths in turn (after %d unmeasured), from A's write to B holding the message\n\n", o.latN, o.latSize, o.latWarm)
		b.WriteString("| path | p50 | p99 | mean | max | added p50 | added p99 |\n|---|---|---|---|---|---|---|\n")
		d, haveDirect := r.lat["direct"]
		for _, path := range []string{"direct", "cairn", "kamailio"} {
			l, ok := r.lat[path]
			if !ok {
				continue
			}
			if l.err != nil {
				fmt.Fprintf(&b, "| %s | failed: %v | | | | | |\n", path, l.err)
				continue
			}
			add50, add99 := "—", "—"
			if path != "direct" && haveDirect && d.err == nil {
				add50, add99 = ms(l.pct(0.5)-d.pct(0.5)), "**"+ms(l.pct(0.99)-d.pct(0.99))+"**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", path, ms(l.pct(0.5)), ms(l.pct(0.99)), ms(l.mean()), ms(l.samples[len(l.samples)-1]), add50, add99)
		}
		b.WriteString("\n")
	}
	if o.phases["memory"] && len(r.mem) > 0 {
		fmt.Fprintf(&b, "### Memory: %d idle authenticated TLS sessions\n\n", o.sessions)
		b.WriteString("| relay | sessions open | opened in (at once) | measure | before | after | per session | processes; VmRSS sum; VmHWM sum |\n|---|---|---|---|---|---|---|---|\n")
		for _, m := range r.mem {
			what := "VmRSS"
			if m.relay == "kamailio" {
				what = "Pss sum"
			}
			per := "—"
			if m.sessions > 0 {
				per = fmt.Sprintf("**%.1f KiB**", float64(m.afterKiB-m.beforeKiB)/float64(m.sessions))
			}
			fmt.Fprintf(&b, "| %s | %d (%d failed) | %.1f s (%d) | %s | %.1f MiB | **%.1f MiB** | %s | %d; %.1f MiB; %.1f MiB |\n",
				m.relay, m.sessions, m.failed, m.openTime.Seconds(), m.conc, what, float64(m.beforeKiB)/1024, float64(m.afterKiB)/1024, per,
				m.procs, float64(m.rssSumKiB)/1024, float64(m.hwmKiB)/1024)
		}
		b.WriteString("\n")
		for _, m := range r.mem {
			if m.extra != "" {
				fmt.Fprintf(&b, "- %s: %s\n", m.relay, m.extra)
			}
			if m.driverKiB > 0 {
				fmt.Fprintf(&b, "- %s: the benchmark process itself held %.1f MiB with the %d client connections open\n", m.relay, float64(m.driverKiB)/1024, m.sessions)
			}
		}
		b.WriteString("\n")
	}
	if r.o.quietWait > 0 {
		fmt.Fprintf(&b, "Each measurement started once the machine had been idle for a second (waiting up to %v); %d started on a busy machine anyway.\n\n", r.o.quietWait, r.quietTimeouts)
	}
	if len(r.problems) > 0 {
		b.WriteString("### Problems\n\n")
		for _, p := range r.problems {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(p, "\n", " / "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *report) medianMBps(key string) float64 {
	var xs []float64
	for _, res := range r.tput[key] {
		if res.err == nil {
			xs = append(xs, res.mbps(r.o.size))
		}
	}
	return median(xs)
}

func (r *report) tputRow(b *strings.Builder, chunk, label, key string, direct, raw float64) {
	var each []string
	var ru, rs, eu, es, oc []float64
	cipher := ""
	for _, res := range r.tput[key] {
		switch {
		case res.corrupt:
			each = append(each, "CORRUPT")
		case res.err != nil:
			each = append(each, "failed")
		default:
			each = append(each, fmt.Sprintf("%.1f", res.mbps(r.o.size)))
			ru, rs = append(ru, res.relayCPU.user), append(rs, res.relayCPU.sys)
			eu, es = append(eu, res.selfCPU.user), append(es, res.selfCPU.sys)
			oc = append(oc, res.otherCPU)
		}
		if res.cipher != "" {
			cipher = res.cipher
		}
	}
	med := r.medianMBps(key)
	ratio := func(base float64) string {
		if base == 0 || med == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", med/base)
	}
	dr := ratio(direct)
	if label == "cairn" {
		dr = "**" + dr + "**"
	}
	if label == "direct" || key == "raw TLS" {
		dr = "—"
	}
	relayCPU := "—"
	if label == "cairn" || label == "kamailio" {
		relayCPU = fmt.Sprintf("%.2f + %.2f", median(ru), median(rs))
	}
	rr := ratio(raw)
	if key == "raw TLS" {
		rr = "—"
	}
	fmt.Fprintf(b, "| %s | %s | %s | %.1f | %s | %s | %s | %.2f + %.2f | %.2f | %s |\n", chunk, label, strings.Join(each, " / "), med, dr, rr,
		relayCPU, median(eu), median(es), median(oc), cipher)
}
