package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/msrp"
)

// idleClient opens connections that authenticate to a relay and then stay
// idle. It is deliberately minimal, so that the benchmark's own memory for
// 10,000 of them stays small: no goroutine and no buffer per connection
// once its AUTH is done, only the tls.Conn.
type idleClient struct {
	addr     string
	relay    msrp.URI
	tls      *tls.Config
	password string
	user     func(i int) string // the account of connection i
}

func newIdleClient(addr string, conf *tls.Config, password string, user func(int) string) *idleClient {
	host, portS, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portS)
	return &idleClient{addr: addr, relay: msrp.URI{Secure: true, Host: host, Port: port, Transport: "tcp"},
		tls: conf, password: password, user: user}
}

// auth opens connection i and authenticates it (AUTH, 401, AUTH with
// Digest, 200 with Use-Path). The connection is returned idle.
func (c *idleClient) auth(ctx context.Context, i int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tc, err := dialTLS(ctx, c.addr, c.tls)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	tc.SetDeadline(dl)
	rd := msrp.NewReader(tc, 4096, msrp.DefaultLimits)
	var sid [8]byte
	rand.Read(sid[:])
	self := msrp.URI{Secure: true, Host: "idle.invalid", Port: 2855, SessionID: hex.EncodeToString(sid[:]), Transport: "tcp"}
	roundTrip := func(authorization string) (*msrp.Frame, error) {
		f := &msrp.Frame{TID: msrp.NewTID(), Method: "AUTH", ToPath: []msrp.URI{c.relay}, FromPath: []msrp.URI{self}}
		if authorization != "" {
			f.Headers = []msrp.Header{{Name: "Authorization", Value: authorization}}
		}
		if _, err := tc.Write(f.Marshal(nil)); err != nil {
			return nil, err
		}
		for {
			r, err := rd.ReadFrame()
			if err != nil {
				return nil, err
			}
			if r.IsResponse() && r.TID == f.TID {
				return r, nil
			}
		}
	}
	fail := func(err error) (net.Conn, error) {
		tc.Close()
		return nil, err
	}
	r, err := roundTrip("")
	if err != nil {
		return fail(err)
	}
	if r.Status != 401 {
		return fail(fmt.Errorf("first AUTH: %d %s", r.Status, r.Comment))
	}
	var realm, nonce, opaque string
	var qop bool
	for _, h := range r.Headers {
		if !strings.EqualFold(h.Name, "WWW-Authenticate") {
			continue
		}
		p := challengeParams(h.Value)
		if alg := p["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
			continue
		}
		realm, nonce, opaque = p["realm"], p["nonce"], p["opaque"]
		qop = strings.Contains(p["qop"], "auth")
		break
	}
	if nonce == "" {
		return fail(errors.New("401 without an MD5 Digest challenge"))
	}
	user := c.user(i)
	uri := c.relay.String()
	ha1, ha2 := auth.MD5.H(user, realm, c.password), auth.MD5.H("AUTH", uri)
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s"`, user, realm, nonce, uri)
	if qop {
		var cn [8]byte
		rand.Read(cn[:])
		cnonce := hex.EncodeToString(cn[:])
		fmt.Fprintf(&b, `, response="%s", qop=auth, nc=00000001, cnonce="%s"`,
			auth.MD5.H(ha1, nonce, "00000001", cnonce, "auth", ha2), cnonce)
	} else {
		fmt.Fprintf(&b, `, response="%s"`, auth.MD5.H(ha1, nonce, ha2))
	}
	b.WriteString(", algorithm=MD5")
	if opaque != "" {
		fmt.Fprintf(&b, `, opaque="%s"`, opaque)
	}
	if r, err = roundTrip(b.String()); err != nil {
		return fail(err)
	}
	if r.Status != 200 || r.Get("Use-Path") == "" {
		return fail(fmt.Errorf("second AUTH: %d %s", r.Status, r.Comment))
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// challengeParams parses the name=value pairs of a Digest challenge.
func challengeParams(v string) map[string]string {
	out := make(map[string]string)
	_, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t,")
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		name = strings.ToLower(strings.TrimSpace(name))
		after = strings.TrimLeft(after, " \t")
		var val string
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				break
			}
			val, rest = after[1:1+end], after[2+end:]
		} else {
			end := strings.IndexAny(after, ", \t")
			if end < 0 {
				end = len(after)
			}
			val, rest = after[:end], after[end:]
		}
		out[name] = val
	}
	return out
}

// openIdle opens n authenticated idle connections, at most conc at a time,
// within limit. It returns those opened (also on error) and the first
// error once more than 1 % have failed.
func openIdle(ctx context.Context, c *idleClient, n, conc int, limit time.Duration) ([]net.Conn, int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	conns := make([]net.Conn, n)
	var next, failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				conn, err := c.auth(ctx, i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					if failed.Add(1) > int64(n/100) {
						cancel()
					}
					continue
				}
				conns[i] = conn
			}
		}()
	}
	wg.Wait()
	var out []net.Conn
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	if len(out) < n {
		if firstErr == nil {
			firstErr = ctx.Err()
		}
		return out, int(failed.Load()), fmt.Errorf("%d of %d sessions opened: %w", len(out), n, firstErr)
	}
	return out, int(failed.Load()), nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
