package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cairn-chat/cairn/msrp"
	"github.com/cairn-chat/cairn/msrp/msrptest"
)

// target is a way from endpoint A to endpoint B: directly, or through a
// relay both authenticate to.
type target struct {
	name string
	// pair connects A and B and returns the To-Path A sends to.
	pair func(ctx context.Context, oa, ob msrptest.Options) (a, b *msrptest.Endpoint, toPath []msrp.URI, cipher string, err error)
	// cpu is the CPU time the relay's processes have used so far; nil for
	// direct.
	cpu func() cpuTime
}

// dialTLS connects to addr with TLS 1.3 and completes the handshake.
func dialTLS(ctx context.Context, addr string, conf *tls.Config) (*tls.Conn, error) {
	nc, err := (&tls.Dialer{Config: conf}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return nc.(*tls.Conn), nil
}

// directTarget connects A and B over one loopback TLS connection: A dials,
// B is the accepted end.
func directTarget(server, client *tls.Config) target {
	return target{name: "direct", pair: func(ctx context.Context, oa, ob msrptest.Options) (*msrptest.Endpoint, *msrptest.Endpoint, []msrp.URI, string, error) {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
		if err != nil {
			return nil, nil, nil, "", err
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				accepted <- nil
				return
			}
			c.(*tls.Conn).HandshakeContext(ctx)
			accepted <- c
		}()
		ca, err := dialTLS(ctx, ln.Addr().String(), client)
		if err != nil {
			return nil, nil, nil, "", err
		}
		cb := <-accepted
		if cb == nil {
			ca.Close()
			return nil, nil, nil, "", errors.New("direct: accept failed")
		}
		a, b := msrptest.NewEndpoint(ca, oa), msrptest.NewEndpoint(cb, ob)
		return a, b, []msrp.URI{b.Self()}, tls.CipherSuiteName(ca.ConnectionState().CipherSuite), nil
	}}
}

// relayTarget connects A and B each to the relay at addr, authenticates
// both as user/password, and returns To-Path [relay/A, relay/B, B].
func relayTarget(name, addr string, client *tls.Config, userA, userB, password string, cpu func() cpuTime) target {
	host, portS, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portS)
	relay := msrp.URI{Secure: true, Host: host, Port: port, Transport: "tcp"}
	return target{name: name, cpu: cpu, pair: func(ctx context.Context, oa, ob msrptest.Options) (*msrptest.Endpoint, *msrptest.Endpoint, []msrp.URI, string, error) {
		connect := func(o msrptest.Options, user string) (*msrptest.Endpoint, msrp.URI, string, error) {
			c, err := dialTLS(ctx, addr, client)
			if err != nil {
				return nil, msrp.URI{}, "", err
			}
			e := msrptest.NewEndpoint(c, o)
			// Never an Expires header: Kamailio 5.6's msrp module crashes on it.
			res, err := e.Auth(ctx, relay, user, password, 0)
			if err != nil {
				e.Close()
				return nil, msrp.URI{}, "", fmt.Errorf("%s: AUTH as %s: %w", name, user, err)
			}
			if len(res.UsePath) != 1 {
				e.Close()
				return nil, msrp.URI{}, "", fmt.Errorf("%s: Use-Path %v", name, res.UsePath)
			}
			return e, res.UsePath[0], tls.CipherSuiteName(c.ConnectionState().CipherSuite), nil
		}
		a, ua, cipher, err := connect(oa, userA)
		if err != nil {
			return nil, nil, nil, "", err
		}
		b, ub, _, err := connect(ob, userB)
		if err != nil {
			a.Close()
			return nil, nil, nil, "", err
		}
		return a, b, []msrp.URI{ua, ub, b.Self()}, cipher, nil
	}}
}

// transferResult is one file transfer.
type transferResult struct {
	elapsed  time.Duration // from the first chunk written to B holding the whole file
	relayCPU cpuTime       // the relay's CPU time meanwhile
	selfCPU  cpuTime       // this process's (endpoints A and B) meanwhile
	otherCPU float64       // the rest of the machine's busy CPU time meanwhile
	cipher   string
	err      error
	corrupt  bool // B got a whole message whose bytes differ
}

func (r transferResult) mbps(size int) float64 {
	return float64(size) / r.elapsed.Seconds() / 1e6
}

// hashSink is B's Sink: it hashes what arrives.
type hashSink struct {
	h hash.Hash
	n atomic.Int64
}

func (s *hashSink) Write(p []byte) (int, error) {
	s.n.Add(int64(len(p)))
	return s.h.Write(p)
}

// stallTimeout ends a transfer during which B received nothing for so
// long: a relay without backpressure may drop frames, and B then waits
// for bytes that never come.
const stallTimeout = 20 * time.Second

var errStalled = errors.New("stalled")

// transfer sends payload from A to B as one message in chunks of chunk
// bytes with window chunks awaiting their 200, and checks its SHA-256 at B.
func transfer(ctx context.Context, t target, chunk, window int, payload []byte, sum [32]byte) (res transferResult) {
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelTimeout()
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(context.Canceled) }
	defer cancel()
	sink := &hashSink{h: sha256.New()}
	go func() {
		last, since := int64(-1), time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if n := sink.n.Load(); n != last {
					last, since = n, now
				} else if now.Sub(since) > stallTimeout {
					cancelCause(fmt.Errorf("%w: B received nothing for %v, after %d of %d bytes", errStalled, stallTimeout, n, len(payload)))
					return
				}
			}
		}
	}()
	oa := msrptest.Options{ChunkSize: chunk, Window: window}
	ob := msrptest.Options{ChunkSize: chunk, Window: window, Sink: func(string) io.Writer { return sink }}
	a, b, toPath, cipher, err := t.pair(ctx, oa, ob)
	if err != nil {
		return transferResult{err: err}
	}
	defer a.Close()
	defer b.Close()
	res.cipher = cipher
	var cpu0 cpuTime
	if t.cpu != nil {
		cpu0 = t.cpu()
	}
	self0, all0 := selfCPU(), machineCPU()
	msg := msrptest.Message{ID: "file-" + msrp.NewTID(), ContentType: "application/octet-stream",
		Body: bytes.NewReader(payload), Size: int64(len(payload))}
	start := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- a.Send(ctx, toPath, msg) }()
	in, err := b.Received(ctx)
	res.elapsed = time.Since(start)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = cause
		}
		cancel() // ends Send too
		<-sent
		res.err = fmt.Errorf("B: %w", err)
		return res
	}
	if err := <-sent; err != nil {
		res.err = fmt.Errorf("A: %w", err)
		return res
	}
	res.selfCPU = selfCPU().sub(self0)
	if t.cpu != nil {
		res.relayCPU = t.cpu().sub(cpu0)
	}
	res.otherCPU = max(0, machineCPU()-all0-res.selfCPU.total()-res.relayCPU.total())
	var got [32]byte
	sink.h.Sum(got[:0])
	switch {
	case in.MessageID != msg.ID:
		res.err = fmt.Errorf("B received message %q, want %q", in.MessageID, msg.ID)
	case in.Err != nil:
		res.err, res.corrupt = fmt.Errorf("B: %w", in.Err), true
	case in.Aborted:
		res.err = errors.New("B: message aborted")
	case sink.n.Load() != int64(len(payload)) || got != sum:
		res.err, res.corrupt = fmt.Errorf("B: %d bytes, SHA-256 %x, want %d bytes, %x", sink.n.Load(), got[:8], len(payload), sum[:8]), true
	}
	return res
}

// rawCopy sends payload over one loopback TLS connection with no MSRP at
// all (64 KiB writes), the ceiling of what TLS on this machine gives one
// stream, and checks its SHA-256 at the receiver.
func rawCopy(ctx context.Context, server, client *tls.Config, payload []byte, sum [32]byte) transferResult {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		return transferResult{err: err}
	}
	defer ln.Close()
	type got struct {
		n   int64
		sum [32]byte
		at  time.Time
		err error
	}
	done := make(chan got, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- got{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, c, make([]byte, 64<<10))
		var g got
		g.n, g.at, g.err = n, time.Now(), err
		h.Sum(g.sum[:0])
		done <- g
	}()
	c, err := dialTLS(ctx, ln.Addr().String(), client)
	if err != nil {
		return transferResult{err: err}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	self0, all0 := selfCPU(), machineCPU()
	start := time.Now()
	for off := 0; off < len(payload); off += 64 << 10 {
		if _, err := c.Write(payload[off:min(off+64<<10, len(payload))]); err != nil {
			return transferResult{err: err}
		}
	}
	c.CloseWrite()
	g := <-done
	res := transferResult{elapsed: g.at.Sub(start), selfCPU: selfCPU().sub(self0), cipher: tls.CipherSuiteName(c.ConnectionState().CipherSuite)}
	res.otherCPU = max(0, machineCPU()-all0-res.selfCPU.total())
	switch {
	case g.err != nil:
		res.err = g.err
	case g.n != int64(len(payload)) || g.sum != sum:
		res.err, res.corrupt = fmt.Errorf("raw TLS: %d bytes, SHA-256 %x", g.n, g.sum[:8]), true
	}
	return res
}

// latencyResult is a series of single-chunk messages sent one at a time.
type latencyResult struct {
	samples []time.Duration // sorted
	err     error
	corrupt bool
}

func (r latencyResult) pct(p float64) time.Duration {
	if len(r.samples) == 0 {
		return 0
	}
	i := int(p*float64(len(r.samples))+0.5) - 1
	return r.samples[max(0, min(i, len(r.samples)-1))]
}

func (r latencyResult) mean() time.Duration {
	var t time.Duration
	for _, s := range r.samples {
		t += s
	}
	return t / time.Duration(max(1, len(r.samples)))
}

// latency sends n (after warm unmeasured ones) messages of one size-byte
// chunk from A to B over every target, one message at a time and the
// targets in turn (message i goes over each path before message i+1, so
// that every path sees the same moments of the machine). Each is timed
// from just before A writes it to B holding the whole message (B's
// Received returning) and compared with what was sent. A waits for the
// chunk's 200 before the next one (Failure-Report yes, the default).
func latency(ctx context.Context, targets []target, n, warm, size int) map[string]latencyResult {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	type path struct {
		name   string
		a, b   *msrptest.Endpoint
		toPath []msrp.URI
		res    latencyResult
	}
	var paths []*path
	out := make(map[string]latencyResult)
	o := msrptest.Options{ChunkSize: size, Window: 1}
	for _, t := range targets {
		a, b, toPath, _, err := t.pair(ctx, o, o)
		if err != nil {
			out[t.name] = latencyResult{err: err}
			continue
		}
		defer a.Close()
		defer b.Close()
		paths = append(paths, &path{name: t.name, a: a, b: b, toPath: toPath})
	}
	body := make([]byte, size)
	rand.Read(body)
	sent := make(chan error, 1)
	for i := range warm + n {
		for _, p := range paths {
			if p.res.err != nil {
				continue
			}
			msg := msrptest.Message{ContentType: "application/octet-stream", Body: bytes.NewReader(body), Size: int64(size)}
			start := time.Now()
			go func() { sent <- p.a.Send(ctx, p.toPath, msg) }()
			in, err := p.b.Received(ctx)
			d := time.Since(start)
			if err != nil {
				p.a.Close() // ends Send
				<-sent
				p.res.err = fmt.Errorf("message %d: B: %w", i, err)
				continue
			}
			if err := <-sent; err != nil {
				p.res.err = fmt.Errorf("message %d: A: %w", i, err)
				continue
			}
			if !bytes.Equal(in.Body, body) {
				p.res.err, p.res.corrupt = fmt.Errorf("message %d: B received %d bytes that differ", i, len(in.Body)), true
				continue
			}
			if i >= warm {
				p.res.samples = append(p.res.samples, d)
			}
		}
	}
	for _, p := range paths {
		slices.Sort(p.res.samples)
		out[p.name] = p.res
	}
	return out
}
