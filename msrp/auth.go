package msrp

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-chat/cairn/auth"
)

// authTimeout bounds the store lookups of one AUTH.
const authTimeout = 5 * time.Second

// auth answers an AUTH addressed to this relay (RFC 4976 §5): a digest
// challenge, then a session whose URI goes back in Use-Path. An AUTH on the
// connection of a live session refreshes its expiry.
func (r *Relay) auth(c *conn, f *Frame) {
	c.mu.Lock()
	rl, s := c.role, c.session
	c.mu.Unlock()
	if rl == roleFar || c.kind == "out" {
		c.respond(f, 403, "AUTH Not Allowed On This Connection")
		return
	}
	if r.limiter.blocked(c.ip) {
		r.metrics.authFailures.Inc()
		c.respond(f, 403, "Too Many Failed Attempts")
		c.hangUp()
		return
	}
	to := f.ToPath[0]
	if to.SessionID != "" {
		c.respond(f, 400, "AUTH To-Path Names A Session")
		return
	}
	realm := r.cfg.Realm
	if realm == "" {
		realm = strings.ToLower(to.Host)
	}
	challenge := func(stale bool) {
		var hdrs []Header
		for _, ch := range auth.Challenges(r.digest, realm, stale, r.cfg.Algorithms...) {
			hdrs = append(hdrs, Header{Name: "WWW-Authenticate", Value: ch})
		}
		c.respond(f, 401, "Unauthorized", hdrs...)
	}
	value := f.Get("Authorization")
	if value == "" {
		challenge(false)
		return
	}
	d, err := auth.ParseDigest(value)
	if err != nil || !strings.EqualFold(d.Realm, realm) {
		challenge(false)
		return
	}
	if u, err := ParseURI(d.URI); err != nil || !u.Equal(to) {
		c.respond(f, 400, "Digest URI Does Not Match To-Path")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	acct, err := r.digest.Verify(ctx, "AUTH", d, realm)
	cancel()
	switch {
	case errors.Is(err, auth.ErrStale):
		challenge(true)
		return
	case errors.Is(err, auth.ErrBadCredentials):
		r.metrics.authFailures.Inc()
		r.limiter.fail(c.ip)
		c.mu.Lock()
		c.authAttempts++
		attempts := c.authAttempts
		c.mu.Unlock()
		c.respond(f, 403, "Wrong Credentials")
		if attempts >= r.cfg.MaxAuthAttempts {
			c.hangUp()
		}
		return
	case err != nil:
		r.log.Error("MSRP AUTH failed: store error", "err", err)
		c.respond(f, 500, "Server Error")
		return
	}
	expires := r.cfg.DefaultExpires
	if v := f.Get("Expires"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			c.respond(f, 400, "Bad Expires")
			return
		}
		expires = time.Duration(n) * time.Second
		if expires < r.cfg.MinExpires {
			c.respond(f, 423, "Interval Out Of Bounds", Header{Name: "Min-Expires", Value: seconds(r.cfg.MinExpires)})
			return
		}
		if expires > r.cfg.MaxExpires {
			c.respond(f, 423, "Interval Out Of Bounds", Header{Name: "Max-Expires", Value: seconds(r.cfg.MaxExpires)})
			return
		}
	}
	account := acct.Address()
	if s == nil {
		if s = r.newSession(c, account, f.FromPath, expires); s == nil {
			c.respond(f, 403, "Too Many Sessions")
			return
		}
		c.bind(s, roleClient)
		r.log.Info("MSRP session started", "session", digestOf(s.id), "account", account,
			"transport", c.kind, "client", c.remote)
	} else {
		s.mu.Lock()
		ok := s.account == account && EqualPaths(f.FromPath, s.clientPath)
		if ok {
			s.expires = r.now().Add(expires)
		}
		s.mu.Unlock()
		if !ok {
			c.respond(f, 403, "Session Belongs To Another Client")
			return
		}
	}
	c.respond(f, 200, "OK", Header{Name: "Use-Path", Value: s.uri.String()}, Header{Name: "Expires", Value: seconds(expires)})
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// failureLimiter counts failed AUTHs per client address in one-minute
// windows. It tracks at most maxTracked addresses; beyond that, new ones
// are bounded only by the per-connection limit.
type failureLimiter struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	windows map[netip.Addr]*failureWindow
}

type failureWindow struct {
	start time.Time
	n     int
}

const (
	failureWindowLength = time.Minute
	maxTracked          = 1 << 16
)

func newFailureLimiter(max int, now func() time.Time) *failureLimiter {
	return &failureLimiter{max: max, now: now, windows: make(map[netip.Addr]*failureWindow)}
}

func (l *failureLimiter) blocked(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[ip]
	return w != nil && l.now().Sub(w.start) < failureWindowLength && w.n >= l.max
}

func (l *failureLimiter) fail(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.windows[ip]
	if w == nil || now.Sub(w.start) >= failureWindowLength {
		if w == nil && len(l.windows) >= maxTracked {
			return
		}
		w = &failureWindow{start: now}
		l.windows[ip] = w
	}
	w.n++
}

// prune forgets windows that are over.
func (l *failureLimiter) prune() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for ip, w := range l.windows {
		if now.Sub(w.start) >= failureWindowLength {
			delete(l.windows, ip)
		}
	}
}
