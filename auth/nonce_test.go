package auth

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store/storetest"
)

func newTestNonces(t testing.TB, max int) (*Nonces, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock(time.Date(2015, 2, 9, 10, 12, 10, 0, time.UTC))
	return NewNonces(newTestKeyring(t, 1), time.Minute, max, clock.Now), clock
}

func TestNonceCheck(t *testing.T) {
	t.Parallel()
	n, clock := newTestNonces(t, 16)
	nonce := n.Issue("example.com")
	otherKey := NewNonces(newTestKeyring(t, 2), time.Minute, 16, clock.Now)
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen {
		t.Fatalf("Issue = %q: want %d bytes of base64url (%v)", nonce, nonceRawLen, err)
	}
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name  string
		nonce string
		realm string
		want  NonceCheck
	}{
		{"fresh", nonce, "example.com", NonceValid},
		{"another realm", nonce, "example.org", NonceInvalid},
		{"realm in another case", nonce, "Example.com", NonceInvalid},
		{"another key", otherKey.Issue("example.com"), "example.com", NonceInvalid},
		{"expiry changed", flip(7), "example.com", NonceInvalid},
		{"random part changed", flip(8 + nonceRandLen - 1), "example.com", NonceInvalid},
		{"MAC changed", flip(nonceRawLen - 1), "example.com", NonceInvalid},
		{"truncated", nonce[:len(nonce)-2], "example.com", NonceInvalid},
		{"extended", nonce + "AA", "example.com", NonceInvalid},
		{"padded", nonce + "=", "example.com", NonceInvalid},
		{"not base64", strings.Repeat("*", len(nonce)), "example.com", NonceInvalid},
		{"empty", "", "example.com", NonceInvalid},
		{"RFC 7616 nonce", rfc7616Nonce, rfc7616Realm, NonceInvalid},
	}
	for _, tt := range tests {
		if got := n.Check(tt.nonce, tt.realm); got != tt.want {
			t.Errorf("%s: Check = %v, want %v", tt.name, got, tt.want)
		}
		if got := n.Use(tt.nonce, tt.realm, 1); got != tt.want {
			t.Errorf("%s: Use = %v, want %v", tt.name, got, tt.want)
		}
	}
	if a, b := n.Issue("example.com"), n.Issue("example.com"); a == b {
		t.Errorf("two nonces issued at the same instant are equal: %s", a)
	}
}

func TestNonceExpiry(t *testing.T) {
	t.Parallel()
	n, clock := newTestNonces(t, 16)
	nonce := n.Issue("example.com")
	used := n.Issue("example.com")
	if got := n.Use(used, "example.com", 1); got != NonceValid {
		t.Fatalf("Use = %v", got)
	}
	clock.Advance(time.Minute - time.Second)
	if got := n.Check(nonce, "example.com"); got != NonceValid {
		t.Errorf("a second before expiry: Check = %v, want NonceValid", got)
	}
	clock.Advance(time.Second)
	for _, c := range []string{nonce, used} {
		if got := n.Check(c, "example.com"); got != NonceStale {
			t.Errorf("at expiry: Check = %v, want NonceStale", got)
		}
		if got := n.Use(c, "example.com", 2); got != NonceStale {
			t.Errorf("at expiry: Use = %v, want NonceStale", got)
		}
		// An expired nonce of another realm is still invalid, not stale:
		// stale=true must only invite a retry with the same credentials.
		if got := n.Check(c, "example.org"); got != NonceInvalid {
			t.Errorf("expired, another realm: Check = %v, want NonceInvalid", got)
		}
	}
	if got := n.Use(n.Issue("example.com"), "example.com", 1); got != NonceValid {
		t.Errorf("a nonce issued after the expiry: Use = %v, want NonceValid", got)
	}
}

func TestNonceCount(t *testing.T) {
	t.Parallel()
	n, _ := newTestNonces(t, 16)
	a, b := n.Issue("example.com"), n.Issue("example.com")
	steps := []struct {
		nonce string
		nc    uint64
		want  NonceCheck
	}{
		{a, 1, NonceValid},
		{a, 1, NonceStale}, // replay
		{a, 0, NonceStale},
		{a, 2, NonceValid},
		{b, 1, NonceValid}, // counts are per nonce
		{a, 7, NonceValid}, // counts may skip
		{a, 6, NonceStale},
		{b, 2, NonceValid},
		{a, 1<<32 - 1, NonceValid},
		{a, 1<<32 - 1, NonceStale},
	}
	for i, s := range steps {
		if got := n.Use(s.nonce, "example.com", s.nc); got != s.want {
			t.Fatalf("step %d: Use(nc=%d) = %v, want %v", i, s.nc, got, s.want)
		}
	}
	// Check never consumes a count.
	c := n.Issue("example.com")
	for range 3 {
		if got := n.Check(c, "example.com"); got != NonceValid {
			t.Fatalf("Check = %v", got)
		}
	}
	if got := n.Use(c, "example.com", 1); got != NonceValid {
		t.Fatalf("Use after Check = %v", got)
	}
}

// Beyond max tracked nonces the oldest give way, and a nonce forgotten
// while still live is refused from then on: forgetting its counts must not
// open it to replay.
func TestNoncePruneFloor(t *testing.T) {
	t.Parallel()
	const max = 4
	n, clock := newTestNonces(t, max)
	// An unused nonce issued in the same second as the ones that will be
	// pruned: it shares their expiry.
	unused := n.Issue("example.com")
	var early []string
	for range max + 2 {
		early = append(early, n.Issue("example.com"))
		clock.Advance(time.Second)
	}
	for i, c := range early {
		if got := n.Use(c, "example.com", 1); got != NonceValid {
			t.Fatalf("first use of nonce %d = %v", i, got)
		}
	}
	if len(n.order) > max || len(n.seen) > max {
		t.Fatalf("tracking %d/%d nonces, want at most %d", len(n.order), len(n.seen), max)
	}
	// early[0] and early[1] were pruned while live. Any count, even one
	// never used, is refused: it may be a replay.
	for i, c := range early[:2] {
		for _, nc := range []uint64{1, 2, 100} {
			if got := n.Use(c, "example.com", nc); got != NonceStale {
				t.Errorf("pruned live nonce %d, nc %d: Use = %v, want NonceStale", i, nc, got)
			}
		}
	}
	// A nonce never used but no younger than a pruned one may be refused
	// too: the client retries with a fresh nonce. That is the price of
	// bounded tracking; a replay is never accepted.
	if got := n.Use(unused, "example.com", 1); got != NonceStale {
		t.Errorf("unused nonce as old as a pruned one: Use = %v, want NonceStale", got)
	}
	// The nonces still tracked keep their counts.
	for i, c := range early[2:] {
		if got := n.Use(c, "example.com", 1); got != NonceStale {
			t.Errorf("tracked nonce %d replayed: Use = %v, want NonceStale", i+2, got)
		}
		if got := n.Use(c, "example.com", 2); got != NonceValid {
			t.Errorf("tracked nonce %d, higher count: Use = %v, want NonceValid", i+2, got)
		}
	}
	// A nonce issued later than every pruned one is unaffected.
	clock.Advance(time.Second)
	later := n.Issue("example.com")
	if got := n.Use(later, "example.com", 1); got != NonceValid {
		t.Errorf("a later nonce: Use = %v, want NonceValid", got)
	}
	if got := n.Use(later, "example.com", 1); got != NonceStale {
		t.Errorf("a later nonce replayed: Use = %v, want NonceStale", got)
	}
	// Keep going well past max: pruned-but-live nonces stay refused, and the
	// tracking stays bounded.
	for i := range 10 * max {
		clock.Advance(time.Second)
		c := n.Issue("example.com")
		if got := n.Use(c, "example.com", 1); got != NonceValid {
			t.Fatalf("round %d: Use = %v", i, got)
		}
		if len(n.order) > max || len(n.seen) > max {
			t.Fatalf("round %d: tracking %d/%d nonces, want at most %d", i, len(n.order), len(n.seen), max)
		}
	}
	for _, c := range append(early, later) {
		if got := n.Use(c, "example.com", 1000); got != NonceStale {
			t.Errorf("after many prunes: Use = %v, want NonceStale", got)
		}
	}
	// Once everything has expired, expired entries are dropped first.
	clock.Advance(2 * time.Minute)
	fresh := n.Issue("example.com")
	if got := n.Use(fresh, "example.com", 1); got != NonceValid {
		t.Errorf("after expiry: Use = %v, want NonceValid", got)
	}
	if len(n.order) != 1 || len(n.seen) != 1 {
		t.Errorf("after expiry: tracking %d/%d nonces, want only the fresh one", len(n.order), len(n.seen))
	}
}

// BenchmarkNoncesUse measures the first use of a nonce with the table full
// of live nonces, each Use pruning one: the steady state of a busy node.
func BenchmarkNoncesUse(b *testing.B) {
	for _, tracked := range []int{1 << 10, 1 << 14, 1 << 16} {
		b.Run(fmt.Sprint(tracked), func(b *testing.B) {
			clock := storetest.NewClock(time.Date(2015, 2, 9, 10, 12, 10, 0, time.UTC))
			n := NewNonces(newTestKeyring(b, 1), 1000*time.Hour, tracked, clock.Now)
			nonces := make([]string, tracked+b.N)
			for i := range nonces {
				nonces[i] = n.Issue("example.com")
				clock.Advance(time.Second) // distinct expiries: no nonce falls under the floor
			}
			for _, c := range nonces[:tracked] {
				n.Use(c, "example.com", 1)
			}
			b.ResetTimer()
			for i := range b.N {
				if n.Use(nonces[tracked+i], "example.com", 1) != NonceValid {
					b.Fatal("Use refused a fresh nonce")
				}
			}
		})
	}
}
