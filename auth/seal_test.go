package auth

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealRoundTrip(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, 1)
	tests := []struct {
		name    string
		address string
		creds   Credentials
	}{
		{"SIP only", "alice@example.com", NewCredentials("alice", "example.com", "sip-secret-1", "")},
		{"SIP and web", "alice@example.com", NewCredentials("alice", "example.com", "sip-secret-1", "web-secret-1")},
		{"RFC 7616 account", "Mufasa@http-auth@example.org", NewCredentials(rfc7616User, rfc7616Realm, rfc7616Password, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := k.Seal(tt.address, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			if sealed[0] != sealVersion {
				t.Errorf("version byte %d, want %d", sealed[0], sealVersion)
			}
			if bytes.Contains(sealed, []byte(tt.creds.SIP.MD5)) {
				t.Error("the sealed blob holds the HA1 in clear")
			}
			got, err := k.Open(tt.address, sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got.SIP != tt.creds.SIP || (got.Web == nil) != (tt.creds.Web == nil) || got.Web != nil && *got.Web != *tt.creds.Web {
				t.Errorf("Open = %+v, want %+v", got, tt.creds)
			}
			again, err := k.Seal(tt.address, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(sealed, again) {
				t.Error("two seals of the same credentials are equal: the nonce is not random")
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, 1)
	const address = "alice@example.com"
	sealed, err := k.Seal(address, NewCredentials("alice", "example.com", "sip-secret-1", "web-secret-1"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x80
		return b
	}
	tests := []struct {
		name    string
		keyring *Keyring
		address string
		blob    []byte
	}{
		{"another account", k, "bob@example.com", sealed},
		{"another domain", k, "alice@example.org", sealed},
		{"address in another case", k, "Alice@example.com", sealed},
		{"another key", newTestKeyring(t, 2), address, sealed},
		{"version byte", k, address, flip(0)},
		{"nonce", k, address, flip(1)},
		{"ciphertext", k, address, flip(1 + 12 + 3)},
		{"tag", k, address, flip(len(sealed) - 1)},
		{"truncated", k, address, sealed[:len(sealed)-1]},
		{"extended", k, address, append(bytes.Clone(sealed), 0)},
		{"header only", k, address, sealed[:13]},
		{"version only", k, address, sealed[:1]},
		{"empty", k, address, nil},
	}
	// Once opened for its own address, the blob is remembered: that must
	// open nothing else.
	if _, err := k.Open(address, sealed); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if _, err := tt.keyring.Open(tt.address, tt.blob); !errors.Is(err, ErrUnseal) {
			t.Errorf("%s: Open = %v, want ErrUnseal", tt.name, err)
		}
	}
}

func TestOpenRemembers(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, 1)
	const address = "alice@example.com"
	want := NewCredentials("alice", "example.com", "sip-secret-1", "web-secret-1")
	sealed, err := k.Seal(address, want)
	if err != nil {
		t.Fatal(err)
	}
	first, err := k.Open(address, sealed)
	if err != nil {
		t.Fatal(err)
	}
	// What a caller does with its copy does not reach the next caller.
	first.SIP.MD5, first.Web.MD5 = "changed", "changed"
	for range 2 {
		got, err := k.Open(address, sealed)
		if err != nil || got.SIP != want.SIP || *got.Web != *want.Web {
			t.Fatalf("Open = %+v, %v; want %+v", got, err, want)
		}
	}
	if len(k.opened) != 1 {
		t.Errorf("%d blobs remembered after opening one three times, want 1", len(k.opened))
	}
	// A blob that did not open is not remembered.
	if _, err := k.Open("bob@example.com", sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open for another address = %v", err)
	}
	if len(k.opened) != 1 {
		t.Errorf("%d blobs remembered, want 1", len(k.opened))
	}
}

func TestNewKeyringKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewKeyring(make([]byte, n)); err == nil {
			t.Errorf("NewKeyring with a %d-byte key: no error", n)
		}
	}
	if _, err := NewKeyring(make([]byte, KeySize)); err != nil {
		t.Errorf("NewKeyring with a %d-byte key: %v", KeySize, err)
	}
}

// The sealing and nonce keys are derived apart from each other and from the
// master key: a nonce MAC reveals nothing about the sealing key.
func TestKeyringDerivesDistinctKeys(t *testing.T) {
	t.Parallel()
	key := testKey(1)
	k := newTestKeyring(t, 1)
	if bytes.Equal(k.nonceKey, key) || bytes.Equal(k.nonceKey, derive(key, "cairn credentials seal v1")) {
		t.Error("the nonce key is the master key or the sealing key")
	}
}
