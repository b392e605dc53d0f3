package auth

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func TestHashPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"web-secret-1", "pässwörd ünïcode", strings.Repeat("x", 256), ""} {
		h, err := HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Errorf("HashPassword = %q, want the PHC form with OWASP's parameters", h)
		}
		if !CheckPassword(h, pw) {
			t.Errorf("CheckPassword(HashPassword(%q)) = false", pw)
		}
		for _, wrong := range []string{pw + "x", strings.ToUpper(pw) + "X", "web-secret-2"} {
			if CheckPassword(h, wrong) {
				t.Errorf("CheckPassword(hash of %q, %q) = true", pw, wrong)
			}
		}
	}
	a, _ := HashPassword("same")
	b, _ := HashPassword("same")
	if a == b {
		t.Error("two hashes of the same password are equal: the salt is not random")
	}
}

// phc formats an argon2id hash of password "password" with salt "somesalt".
func phc(m, t, p int, hexHash string) string {
	sum, err := hex.DecodeString(hexHash)
	if err != nil {
		panic(err)
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, b64.EncodeToString([]byte("somesalt")), b64.EncodeToString(sum))
}

// Hashes made elsewhere check: the argon2id vectors of the reference
// implementation's CLI (as golang.org/x/crypto/argon2 tests them), written in
// PHC form, so that the m, t and p fields are shown to be read in order.
func TestCheckPasswordKnownAnswers(t *testing.T) {
	t.Parallel()
	tests := []string{
		phc(64, 1, 1, "655ad15eac652dc59f7170a7332bf49b8469be1fdb9c28bb"),
		phc(64, 2, 1, "068d62b26455936aa6ebe60060b0a65870dbfa3ddf8d41f7"),
		phc(64, 2, 2, "350ac37222f436ccb5c0972f1ebd3bf6b958bf2071841362"),
	}
	for _, h := range tests {
		if !CheckPassword(h, "password") {
			t.Errorf("CheckPassword(%s, password) = false", h)
		}
		if CheckPassword(h, "Password") {
			t.Errorf("CheckPassword(%s, Password) = true", h)
		}
	}
}

func TestCheckPasswordMalformed(t *testing.T) {
	t.Parallel()
	good := phc(64, 1, 1, "655ad15eac652dc59f7170a7332bf49b8469be1fdb9c28bb")
	salt, sum := "c29tZXNhbHQ", "ZVrRXqxlLcWfcXCnMyv0m4Rpvh/bnCi7"
	if want := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + sum; good != want {
		t.Fatalf("phc = %s, want %s", good, want)
	}
	tests := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"clear text", "password"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + sum},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + sum},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + sum},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + sum},
		{"bcrypt", "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"too few fields", "$argon2id$v=19$m=64,t=1,p=1$" + sum},
		{"too many fields", good + "$x"},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + sum},
		{"zero passes", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + sum},
		{"zero lanes", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + sum},
		{"lanes overflow", "$argon2id$v=19$m=64,t=1,p=257$" + salt + "$" + sum},
		{"negative memory", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + sum},
		{"huge memory", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + sum},
		{"many passes", "$argon2id$v=19$m=64,t=4294967295,p=1$" + salt + "$" + sum},
		{"padded base64 salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + sum},
		{"bad base64 hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + sum + "!"},
		{"empty hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"hash too long", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 88)},
		{"truncated hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + sum[:len(sum)-4]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("CheckPassword(%q) panicked: %v", tt.hash, r)
				}
			}()
			if CheckPassword(tt.hash, "password") {
				t.Errorf("CheckPassword(%q, password) = true", tt.hash)
			}
		})
	}
}
