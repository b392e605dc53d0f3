package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"time"
)

// Nonces issues digest nonces and accepts each nonce count once. A nonce is
// base64url(expiry ‖ random ‖ MAC(expiry ‖ random ‖ realm)): any node with the
// same key can check it without shared state. Replay protection is per node.
type Nonces struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
	max      int

	mu    sync.Mutex
	seen  map[string]nonceUse
	order []string // nonces in first-use order, for pruning
	floor int64    // expiry of the newest nonce pruned before it expired
}

type nonceUse struct {
	nc     uint64
	expiry int64
}

const (
	nonceRandLen = 12
	nonceMACLen  = 16
	nonceRawLen  = 8 + nonceRandLen + nonceMACLen
)

// NonceCheck is the outcome of checking a nonce.
type NonceCheck int

// Outcomes of Nonces.Check and Nonces.Use.
const (
	NonceValid   NonceCheck = iota
	NonceInvalid            // not made by us, or for another realm
	NonceStale              // made by us, but expired or its count was used
)

// NewNonces returns a nonce source. Nonces live for lifetime; at most max
// nonces are tracked for replay, and the oldest give way beyond that.
func NewNonces(k *Keyring, lifetime time.Duration, max int, now func() time.Time) *Nonces {
	return &Nonces{key: k.nonceKey, lifetime: lifetime, now: now, max: max, seen: make(map[string]nonceUse)}
}

// Issue returns a fresh nonce for realm.
func (n *Nonces) Issue(realm string) string {
	raw := make([]byte, nonceRawLen)
	binary.BigEndian.PutUint64(raw, uint64(n.now().Add(n.lifetime).Unix()))
	rand.Read(raw[8 : 8+nonceRandLen])
	copy(raw[8+nonceRandLen:], n.mac(raw[:8+nonceRandLen], realm))
	return base64.RawURLEncoding.EncodeToString(raw)
}

func (n *Nonces) mac(body []byte, realm string) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write(body)
	m.Write([]byte(realm))
	return m.Sum(nil)[:nonceMACLen]
}

// Check reports whether nonce was issued by us for realm and has not expired.
func (n *Nonces) Check(nonce, realm string) NonceCheck {
	_, c := n.parse(nonce, realm)
	return c
}

func (n *Nonces) parse(nonce, realm string) (int64, NonceCheck) {
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen {
		return 0, NonceInvalid
	}
	if !hmac.Equal(raw[8+nonceRandLen:], n.mac(raw[:8+nonceRandLen], realm)) {
		return 0, NonceInvalid
	}
	expiry := int64(binary.BigEndian.Uint64(raw))
	if n.now().Unix() >= expiry {
		return expiry, NonceStale
	}
	return expiry, NonceValid
}

// Use checks nonce like Check and also records nc, which must be higher than
// every count used before with this nonce. Call it only once the answer that
// carried the nonce has been verified, so that a wrong guess burns nothing.
func (n *Nonces) Use(nonce, realm string, nc uint64) NonceCheck {
	expiry, c := n.parse(nonce, realm)
	if c != NonceValid {
		return c
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	u, ok := n.seen[nonce]
	switch {
	case ok && nc <= u.nc:
		return NonceStale
	case !ok && expiry <= n.floor:
		// It may have been pruned while still valid: refuse rather than risk a replay.
		return NonceStale
	case !ok:
		n.prune()
		n.order = append(n.order, nonce)
	}
	n.seen[nonce] = nonceUse{nc: nc, expiry: expiry}
	return NonceValid
}

// prune forgets expired nonces from the front of the first-use order, and the
// oldest live ones while more than max are tracked.
func (n *Nonces) prune() {
	now := n.now().Unix()
	i := 0
	for ; i < len(n.order); i++ {
		u := n.seen[n.order[i]]
		if u.expiry > now && len(n.order)-i < n.max {
			break
		}
		if u.expiry > n.floor && u.expiry > now {
			n.floor = u.expiry
		}
		delete(n.seen, n.order[i])
	}
	// Reslice rather than copy: a copy of every tracked nonce on each new one
	// made Use O(tracked) under the lock. append reallocates, dropping the
	// pruned prefix, once the capacity runs out.
	clear(n.order[:i])
	n.order = n.order[i:]
}
