package sip_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/sip/siptest"
	"github.com/cairn-chat/cairn/store"
)

// End-to-end benchmarks of the message history through a whole node on
// PostgreSQL (issue 4): the history API over HTTPS, and the live sync over
// secure WebSockets fed by authenticated SIP MESSAGEs. Run them with
//
//	go test -run '^$' -bench 'BenchmarkHistory(Get5000|LiveFanout)' -benchtime 2000x -count 3 ./sip/
//
// See BENCHMARKS.md, "Message history".

const (
	hbenchDomain = "example.com"
	hbenchPW     = "hbench-sip-pw"
	hbenchWait   = 20 * time.Second
)

// hbenchStart runs a node on PostgreSQL with the given users, all with
// the password hbenchPW.
func hbenchStart(b *testing.B, users ...string) *apptest.Server {
	b.Helper()
	accts := make([]apptest.Account, len(users))
	for i, u := range users {
		accts[i] = apptest.Account{Address: u + "@" + hbenchDomain, Passwords: app.Passwords{SIP: hbenchPW}}
	}
	return apptest.Start(b, apptest.Engines[1], nil, accts...)
}

// hbenchOpenStore opens a second store on the node's database, as another
// process would, to fill it and issue tokens faster than SIP could.
func hbenchOpenStore(b *testing.B, srv *apptest.Server) store.Store {
	b.Helper()
	st, err := app.OpenStore(b.Context(), srv.Config, srv.Clock.Now, false, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatalf("OpenStore: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func hbenchAccount(b *testing.B, st store.Store, user string) store.Account {
	b.Helper()
	a, err := st.AccountGet(b.Context(), user, hbenchDomain)
	if err != nil {
		b.Fatalf("AccountGet(%s): %v", user, err)
	}
	return a
}

// hbenchDevice is a SIP device of user on the node's transport.
func hbenchDevice(b *testing.B, srv *apptest.Server, user, transport, instance string) *siptest.Device {
	return siptest.New(b, siptest.Options{
		User: user, Domain: hbenchDomain, Password: hbenchPW, Transport: transport,
		Server: srv.Node.Addr("sip-" + transport).String(), Instance: instance,
	})
}

// hbenchMessageID is a uuid4-shaped message id whose last group is i, so
// that a subscriber can tell which message a row is without a lookup.
func hbenchMessageID(run uint32, i int) string {
	return fmt.Sprintf("%08x-7c2d-4e51-9a3b-%012x", run, i)
}

// hbenchIndex returns the i of a live sync item's hbenchMessageID.
func hbenchIndex(item []byte) (int, bool) {
	const key = `"message_id":"`
	at := bytes.Index(item, []byte(key))
	if at < 0 || len(item) < at+len(key)+36 {
		return 0, false
	}
	id := item[at+len(key) : at+len(key)+36]
	i, err := strconv.ParseUint(string(id[24:]), 16, 63)
	return int(i), err == nil
}

// hbenchCPIM is a MESSAGE body as Blink Cocoa writes it (blink.md §6.1):
// CPIM headers joined by CRLF, then a MIME part with LF lines.
func hbenchCPIM(from, to, id string, at time.Time, text string) []byte {
	return []byte("From: <sip:" + from + ">\r\nTo: <sip:" + to + ">\r\n" +
		"DateTime: " + at.Format("2006-01-02T15:04:05.000000-07:00") + "\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: " + id + "\r\n" +
		"imdn.Disposition-Notification: positive-delivery, display\r\n\r\n" +
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=\"utf-8\"\n\n" + text)
}

// hbenchText is a line of chat about as long as the usual one.
func hbenchText(i int) string {
	return fmt.Sprintf("message %d: a line of chat, about as long as the usual one, with an émoji 🙂", i)
}

// hbenchPercentiles reports the p50 and p99 of ds in milliseconds.
func hbenchPercentiles(b *testing.B, prefix string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[int(float64(len(ds)-1)*q)]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
}

// hbenchWaitFor polls cond until it holds or the deadline passes, and
// reports whether it held.
func hbenchWaitFor(deadline time.Duration, cond func() bool) bool {
	for end := time.Now().Add(deadline); ; time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// hbenchMetric returns the sum of a metric's series on the node's
// /metrics.
func hbenchMetric(b *testing.B, srv *apptest.Server, name string) float64 {
	b.Helper()
	res, err := srv.HTTP.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		b.Fatalf("/metrics: %v", err)
	}
	defer res.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// hbenchCPU is a reading of CPU time in clock ticks (USER_HZ, 100 a
// second on Linux): the whole machine's user and system time, this
// process's, and that of the processes named postgres.
type hbenchCPU struct{ busy, self, pg int64 }

func hbenchReadCPU() hbenchCPU {
	var c hbenchCPU
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		for i, f := range strings.Fields(string(line))[1:] {
			// user, nice and system: interrupts, which also serve this
			// process's loopback traffic, are left out, as is steal.
			if v, err := strconv.ParseInt(f, 10, 64); err == nil && i < 3 {
				c.busy += v
			}
		}
	}
	procTicks := func(pid string) (comm string, ticks int64) {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return "", 0
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open {
			return "", 0
		}
		f := strings.Fields(string(b[close+1:])) // f[0] is field 3, state
		if len(f) < 13 {
			return "", 0
		}
		u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
		s, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
		return string(b[open+1 : close]), u + s
	}
	_, c.self = procTicks("self")
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if n := e.Name(); n[0] >= '0' && n[0] <= '9' {
				if comm, t := procTicks(n); comm == "postgres" {
					c.pg += t
				}
			}
		}
	}
	return c
}

// hbenchReportCPU reports, since from, the CPU this process and
// PostgreSQL used per operation (cpu-ms/op, pg-cpu-ms/op) and the share of
// the machine's cores everything else used (other-cpu-%): other sessions'
// work, which the numbers then include.
func hbenchReportCPU(b *testing.B, from hbenchCPU, since time.Time, ops int) {
	to, elapsed := hbenchReadCPU(), time.Since(since)
	const tick = 10 * time.Millisecond
	other := time.Duration((to.busy-from.busy)-(to.self-from.self)-(to.pg-from.pg)) * tick
	b.ReportMetric(float64(time.Duration(to.self-from.self)*tick)/float64(time.Millisecond)/float64(max(ops, 1)), "cpu-ms/op")
	b.ReportMetric(float64(time.Duration(to.pg-from.pg)*tick)/float64(time.Millisecond)/float64(max(ops, 1)), "pg-cpu-ms/op")
	b.ReportMetric(100*max(0, float64(other)/float64(elapsed)/float64(runtime.NumCPU())), "other-cpu-%")
}

// hbenchPage is a history answer.
type hbenchPage struct {
	Account  string            `json:"account"`
	Messages []json.RawMessage `json:"messages"`
	More     bool              `json:"more"`
	LastID   int64             `json:"last_id"`
}

// BenchmarkHistoryGet5000 reads alice's whole history, 5,000 rows, through
// a node on PostgreSQL over HTTPS, with a token alice got over SIP. Bob has
// as many rows in the same table. 50 of alice's rows come from MESSAGEs bob
// sent; the rest are written through a second store on the same database.
// Each GET is timed at the client from the request to the last byte of the
// answer. Target: p99 ≤ 50 ms.
func BenchmarkHistoryGet5000(b *testing.B) {
	const rows, viaSIP, batch = 5000, 50, 1000
	srv := hbenchStart(b, "alice", "bob")
	st := hbenchOpenStore(b, srv)
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	alice, bob := hbenchAccount(b, st, "alice"), hbenchAccount(b, st, "bob")
	run := uint32(time.Now().UnixNano())

	bobDev := hbenchDevice(b, srv, "bob", "tcp", "")
	for i := range viaSIP {
		id := hbenchMessageID(run, i)
		res, err := bobDev.Send(ctx, "sip:alice@"+hbenchDomain, "message/cpim",
			hbenchCPIM(bob.Address(), alice.Address(), id, time.Now(), hbenchText(i)))
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("MESSAGE %d: %v %v", i, res, err)
		}
	}
	// The rest as Record would write them: alice's side and bob's.
	at := srv.Clock.Now().UTC().Add(-rows * time.Second)
	var buf []store.HistoryRow
	for i := viaSIP; i < rows; i++ {
		id := hbenchMessageID(run, i)
		row := func(a store.Account, contact, dir, state string) store.HistoryRow {
			return store.HistoryRow{AccountID: a.ID, MessageID: id, Contact: contact, Direction: dir,
				ContentType: "text/plain", Content: []byte(hbenchText(i)), Timestamp: at.Add(time.Duration(i) * time.Second),
				Disposition: []string{"positive-delivery", "display"}, State: state}
		}
		if i%2 == 0 {
			buf = append(buf, row(alice, bob.Address(), "incoming", "received"), row(bob, alice.Address(), "outgoing", "delivered"))
		} else {
			buf = append(buf, row(alice, bob.Address(), "outgoing", "displayed"), row(bob, alice.Address(), "incoming", "received"))
		}
		if len(buf) >= batch || i == rows-1 {
			if _, err := st.HistoryAppend(ctx, buf); err != nil {
				b.Fatalf("HistoryAppend: %v", err)
			}
			buf = buf[:0]
		}
	}

	// Alice's token, as Blink asks for it (blink.md §6.3).
	aliceDev := hbenchDevice(b, srv, "alice", "tcp", "urn:uuid:a11ce000-0000-4000-8000-000000000001")
	if res, err := aliceDev.Register(ctx, time.Hour); err != nil || res.StatusCode != 200 {
		b.Fatalf("REGISTER: %v %v", res, err)
	}
	if res, err := aliceDev.Send(ctx, "sip:alice@"+hbenchDomain, history.TypeToken, []byte("I need a token")); err != nil || res.StatusCode != 200 {
		b.Fatalf("token request: %v %v", res, err)
	}
	// The device also gets bob's 50 MESSAGEs, stored while it was away.
	var tokenReply []byte
	if !hbenchWaitFor(hbenchWait, func() bool {
		for _, m := range aliceDev.Received() {
			if ct := m.ContentType(); ct != nil && ct.Value() == history.TypeToken {
				tokenReply = m.Body()
				return true
			}
		}
		return false
	}) {
		b.Fatalf("no token reply")
	}
	var reply struct{ Token, URL string }
	if err := json.Unmarshal(tokenReply, &reply); err != nil || reply.Token == "" ||
		!strings.HasSuffix(reply.URL, history.HistoryPath+"alice@"+hbenchDomain) {
		b.Fatalf("token reply %q: %v", tokenReply, err)
	}
	// The reply's host is the node's name; its port is the configured 0.
	// Blink Cocoa writes the "@" as "%40".
	url := srv.HTTPSURL + history.HistoryPath + "alice%40" + hbenchDomain

	get := func() (time.Duration, []byte) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Apikey "+reply.Token)
		t0 := time.Now()
		res, err := srv.HTTPS.Do(req)
		if err != nil {
			b.Fatalf("GET: %v", err)
		}
		body, err := io.ReadAll(res.Body)
		d := time.Since(t0)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("GET: %d %v", res.StatusCode, err)
		}
		return d, body
	}
	// decode checks an answer in full; count, cheap enough for every
	// answer, counts its items: each starts with {"id": which cannot occur
	// inside a JSON string, whose quotes are escaped.
	decode := func(body []byte) {
		var p hbenchPage
		if err := json.Unmarshal(body, &p); err != nil {
			b.Fatalf("answer: %v", err)
		}
		if len(p.Messages) != rows || p.More || p.Account != alice.Address() {
			b.Errorf("answer: %d rows, more %v, account %q; want %d rows of %s", len(p.Messages), p.More, p.Account, rows, alice.Address())
		}
	}
	head := []byte(`{"account":"` + alice.Address() + `","messages":[{"id":`)
	count := func(body []byte) {
		if n := bytes.Count(body, []byte(`{"id":`)); n != rows || !bytes.HasPrefix(body, head) ||
			!bytes.Contains(body[max(0, len(body)-64):], []byte(`],"more":false,"last_id":`)) {
			b.Errorf("answer: %d rows or not alice's whole history: %.80q…%q", n, body, body[max(0, len(body)-64):])
		}
	}
	_, body := get() // the TLS handshake, and a look at the answer
	decode(body)
	var lat []time.Duration
	cpu0, t0 := hbenchReadCPU(), time.Now()
	for b.Loop() {
		var d time.Duration
		d, body = get()
		lat = append(lat, d)
		count(body)
	}
	decode(body)
	hbenchReportCPU(b, cpu0, t0, len(lat))
	b.SetBytes(int64(len(body)))
	hbenchPercentiles(b, "", lat)
}

// hbenchArrival is a row's arrival at a live subscriber.
type hbenchArrival struct {
	msg int
	at  time.Time
}

// hbenchSent is what a sender saw of one MESSAGE.
type hbenchSent struct {
	msg             int
	start, answered time.Time
	code            int // 0: no answer
}

// BenchmarkHistoryLiveFanout has 250 accounts with 4 devices each on the
// live sync (1,000 secure WebSockets, one token per device), and 4 sender
// accounts whose SIP devices (TCP, Digest on every MESSAGE) send Blink
// CPIM MESSAGEs to them at a steady 500 a second, 64 at most in flight;
// an iteration is one MESSAGE. The recipients have no SIP device, so each
// MESSAGE is stored for later and answered 200 once it is in the history
// and the offline store. It reports:
//
//   - p50-ms, p99-ms: for every MESSAGE and each of its 4 subscribers, the
//     time from the 2xx reaching the sender to the row reaching the
//     subscriber, a row that comes first counting 0 (early-% of them do);
//   - last-p50-ms, last-p99-ms: the same per MESSAGE, for the last of its
//     4 subscribers;
//   - send-p50-ms, send-p99-ms: from the MESSAGE being sent to the row
//     reaching each subscriber;
//   - 2xx-p50-ms, 2xx-p99-ms: the MESSAGE's round trip, challenge included;
//   - msgs/s reached, rows that never arrived (missing) and subscribers cut
//     (cut); these two must be 0.
//
// Target: p99 ≤ 50 ms.
func BenchmarkHistoryLiveFanout(b *testing.B) {
	const (
		accounts = 250
		devices  = 4
		senders  = 4
		rate     = 500
		inFlight = 64
		subs     = accounts * devices
	)
	users := make([]string, 0, accounts+senders)
	for a := range accounts {
		users = append(users, fmt.Sprintf("r%03d", a))
	}
	for s := range senders {
		users = append(users, fmt.Sprintf("s%d", s))
	}
	srv := hbenchStart(b, users...)
	st := hbenchOpenStore(b, srv)
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	run := uint32(time.Now().UnixNano())

	// A token for each device, issued as IssueToken does.
	tokens := make([]string, subs)
	var wg sync.WaitGroup
	for p := range 16 {
		wg.Go(func() {
			for a := p; a < accounts; a += 16 {
				acct, err := st.AccountGet(ctx, users[a], hbenchDomain)
				if err != nil {
					b.Errorf("AccountGet: %v", err)
					return
				}
				for d := range devices {
					var raw [32]byte
					rand.Read(raw[:])
					tok := base64.RawURLEncoding.EncodeToString(raw[:])
					digest := sha256.Sum256([]byte(tok))
					now := srv.Clock.Now()
					if err := st.TokenPut(ctx, store.APIToken{Digest: digest[:], AccountID: acct.ID,
						Device:    fmt.Sprintf("urn:uuid:%08x-0000-4000-8000-%012x", a, d),
						CreatedAt: now, ExpiresAt: now.Add(history.DefaultTokenLifetime)}, history.DefaultMaxTokens); err != nil {
						b.Errorf("TokenPut: %v", err)
						return
					}
					tokens[a*devices+d] = tok
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}

	// The subscribers: subscriber k is device k%devices of account k/devices.
	dialer := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: srv.CA}, HandshakeTimeout: hbenchWait}
	base := "wss://" + strings.TrimPrefix(srv.HTTPSURL, "https://") + history.SyncPath
	conns := make([]*websocket.Conn, subs)
	for p := range 32 {
		wg.Go(func() {
			for k := p; k < subs; k += 32 {
				ws, _, err := dialer.DialContext(ctx, base+users[k/devices]+"@"+hbenchDomain+"?after=0",
					http.Header{"Authorization": {"Apikey " + tokens[k]}})
				if err != nil {
					b.Errorf("subscriber %d: %v", k, err)
					return
				}
				conns[k] = ws
			}
		})
	}
	wg.Wait()
	closeAll := func() {
		for _, ws := range conns {
			if ws != nil {
				ws.Close()
			}
		}
	}
	if b.Failed() {
		closeAll()
		b.FailNow()
	}
	arrivals := make([][]hbenchArrival, subs)
	var arrived, strays atomic.Int64
	var readers sync.WaitGroup
	for k, ws := range conns {
		readers.Go(func() {
			for {
				_, item, err := ws.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now()
				i, ok := hbenchIndex(item)
				if !ok || i%accounts != k/devices {
					strays.Add(1)
					continue
				}
				arrivals[k] = append(arrivals[k], hbenchArrival{i, now})
				arrived.Add(1)
			}
		})
	}
	defer readers.Wait()
	defer closeAll()
	if !hbenchWaitFor(hbenchWait, func() bool { return hbenchMetric(b, srv, "cairn_history_sync_subscribers") == subs }) {
		b.Fatalf("%v live subscribers, want %d", hbenchMetric(b, srv, "cairn_history_sync_subscribers"), subs)
	}

	// The senders: message i goes from sender i%senders to account
	// i%accounts.
	devs := make([]*siptest.Device, senders)
	for s := range devs {
		devs[s] = hbenchDevice(b, srv, users[accounts+s], "tcp", "")
	}
	results := make([][]hbenchSent, inFlight) // each worker's, in any order
	work := make(chan int)
	var senderWG sync.WaitGroup
	for w := range inFlight {
		senderWG.Go(func() {
			for i := range work {
				from, to := users[accounts+i%senders]+"@"+hbenchDomain, users[i%accounts]+"@"+hbenchDomain
				body := hbenchCPIM(from, to, hbenchMessageID(run, i), time.Now(), hbenchText(i))
				sctx, cancel := context.WithTimeout(ctx, hbenchWait)
				r := hbenchSent{msg: i, start: time.Now()}
				res, err := devs[i%senders].Send(sctx, "sip:"+to, "message/cpim", body)
				r.answered = time.Now()
				cancel()
				if err == nil {
					r.code = res.StatusCode
				}
				results[w] = append(results[w], r)
			}
		})
	}
	n := 0
	var t0 time.Time
	var cpu0 hbenchCPU
	interval := time.Second / rate
	for b.Loop() {
		if n == 0 {
			cpu0, t0 = hbenchReadCPU(), time.Now()
		} else if d := time.Until(t0.Add(time.Duration(n) * interval)); d > 0 {
			time.Sleep(d) // pacing, not a wait for a condition
		}
		work <- n
		n++
	}
	sendTime := time.Since(t0)
	close(work)
	senderWG.Wait()

	sent := make([]hbenchSent, n)
	var rtt []time.Duration
	failed := 0
	for _, rs := range results {
		for _, r := range rs {
			sent[r.msg] = r
			if r.code/100 == 2 {
				rtt = append(rtt, r.answered.Sub(r.start))
			} else {
				failed++
			}
		}
	}
	if failed > 0 {
		b.Errorf("%d of %d MESSAGEs got no 2xx", failed, n)
	}
	want := int64(len(rtt) * devices)
	hbenchWaitFor(hbenchWait, func() bool { return arrived.Load() >= want })
	hbenchReportCPU(b, cpu0, t0, n)
	cut := hbenchMetric(b, srv, "cairn_history_sync_cut_total")
	closeAll()
	readers.Wait()

	var fromOK, fromSend []time.Duration
	last := make([]time.Duration, n) // by message: its last subscriber's, 0 at least
	seen := make([]bool, n*devices)
	dups, early := 0, 0
	for k, as := range arrivals {
		for _, a := range as {
			if a.msg >= n || seen[a.msg*devices+k%devices] {
				dups++
				continue
			}
			seen[a.msg*devices+k%devices] = true
			s := sent[a.msg]
			if s.code/100 != 2 {
				continue
			}
			d := a.at.Sub(s.answered)
			if d < 0 {
				early++
			}
			fromOK = append(fromOK, max(0, d))
			fromSend = append(fromSend, a.at.Sub(s.start))
			last[a.msg] = max(last[a.msg], d)
		}
	}
	missing := int(want) - len(fromOK)
	if missing != 0 || dups != 0 || strays.Load() != 0 || cut != 0 {
		b.Errorf("of %d rows due at subscribers: %d missing, %d repeated, %d at the wrong subscriber; %v subscribers cut",
			want, missing, dups, strays.Load(), cut)
	}
	hbenchPercentiles(b, "", fromOK)
	var lastOK []time.Duration
	for i, d := range last {
		if sent[i].code/100 == 2 {
			lastOK = append(lastOK, d)
		}
	}
	hbenchPercentiles(b, "last-", lastOK)
	hbenchPercentiles(b, "send-", fromSend)
	hbenchPercentiles(b, "2xx-", rtt)
	b.ReportMetric(float64(n)/sendTime.Seconds(), "msgs/s")
	b.ReportMetric(float64(missing), "missing")
	b.ReportMetric(100*float64(early)/float64(max(1, len(fromOK))), "early-%")
	b.ReportMetric(cut, "cut")
}
