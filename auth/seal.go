package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// sealVersion is the first byte of every sealed blob, so that the format can
// change later without guessing.
const sealVersion = 1

// ErrUnseal is returned when a sealed blob does not open with this key, or
// was sealed for another account.
var ErrUnseal = errors.New("auth: credentials do not open with this key")

// Keyring derives the keys cairn needs from the one sealing key.
type Keyring struct {
	aead     cipher.AEAD
	nonceKey []byte

	// opened remembers what Open returned, by address and blob, so that an
	// account that authenticates often is decrypted and decoded once (the
	// decoding is most of the cost). It holds nothing the key in this
	// process could not open again; at most maxOpened, then afresh.
	mu     sync.Mutex
	opened map[string]Credentials
}

const maxOpened = 1 << 16

// NewKeyring returns a Keyring for a KeySize-byte key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("auth: key must be %d bytes", KeySize)
	}
	block, err := aes.NewCipher(derive(key, "cairn credentials seal v1"))
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Keyring{aead: aead, nonceKey: derive(key, "cairn digest nonce v1"), opened: make(map[string]Credentials)}, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Seal encrypts c for the account address (user@domain); the address is bound
// as associated data, so a blob copied to another account does not open.
func (k *Keyring) Seal(address string, c Credentials) ([]byte, error) {
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return k.aead.Seal(out, out[1:], plain, []byte(address)), nil
}

// Open decrypts a blob made by Seal for address.
func (k *Keyring) Open(address string, sealed []byte) (Credentials, error) {
	memo := address + "\x00" + string(sealed)
	k.mu.Lock()
	c, ok := k.opened[memo]
	k.mu.Unlock()
	if ok {
		return c.clone(), nil
	}
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns || sealed[0] != sealVersion {
		return Credentials{}, ErrUnseal
	}
	plain, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(address))
	if err != nil {
		return Credentials{}, ErrUnseal
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return Credentials{}, ErrUnseal
	}
	k.mu.Lock()
	if len(k.opened) >= maxOpened {
		clear(k.opened)
	}
	k.opened[memo] = c
	k.mu.Unlock()
	return c.clone(), nil
}
