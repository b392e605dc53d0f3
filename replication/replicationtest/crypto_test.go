package replicationtest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

const vectorPassword = "Abc123Def456Ghi7"

func TestDeriveKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		password string
		want     string
	}{
		{vectorPassword, "1111645aa24bad28cc99d8e1c48d9e08"},
		{"ABCDEFGHIJKLMNOPQRSTUVWX", "3b617c19e8c6e76e7d68eac72c8214fdb94045763e7ff601"},
	}
	for _, tt := range tests {
		key, err := DeriveKey(tt.password)
		if err != nil {
			t.Fatalf("DeriveKey(%q): %v", tt.password, err)
		}
		if got := hex.EncodeToString(key); got != tt.want {
			t.Errorf("DeriveKey(%q) = %s, want %s", tt.password, got, tt.want)
		}
	}
	// 32 bytes take a second EVP_BytesToKey round; its first 24 are the 24-byte key's.
	key32, err := DeriveKey(strings.Repeat("k", 32))
	if err != nil || len(key32) != 32 {
		t.Fatalf("DeriveKey(32 bytes) = %x, %v; want 32 bytes", key32, err)
	}
	for _, pw := range []string{"", "short", strings.Repeat("x", 15), strings.Repeat("x", 17), strings.Repeat("x", 33)} {
		if _, err := DeriveKey(pw); err == nil {
			t.Errorf("DeriveKey(%d bytes) succeeded, want an error", len(pw))
		}
	}
}

func TestEncryptVectors(t *testing.T) {
	t.Parallel()
	blob := Encrypt(vectorPassword, []byte(`{"msgid": "x"}`))
	if want := "/rx+YPZpVt+PhQjJpcFTrA==\n"; blob != want {
		t.Errorf("Encrypt(short) = %q, want %q", blob, want)
	}

	plain := SampleEntry().JSON()
	want := `{"msgid": "5f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c", "time": "2015-02-09 10:12:10", "date": "2015-02-09", "media_type": "chat", "direction": "outgoing", "local_uri": "alice@example.com", "remote_uri": "bob@example.com", "cpim_from": "Alice <alice@example.com>", "cpim_to": "Bob <bob@example.com>", "cpim_timestamp": "2015-02-09T11:12:10.123456+01:00", "body": "Hello Bob", "content_type": "text", "private": "0", "status": "delivered", "call_id": "abc123", "encryption": ""}`
	if string(plain) != want {
		t.Fatalf("SampleEntry().JSON() =\n%s\nwant the §4 example\n%s", plain, want)
	}
	blob = Encrypt(vectorPassword, plain)
	lines := strings.SplitAfter(blob, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(blob) != 649 || len(lines) != 9 {
		t.Errorf("full-entry blob: %d chars in %d lines, want 649 in 9", len(blob), len(lines))
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, "\n") || i < len(lines)-1 && len(l) != 77 {
			t.Errorf("line %d = %q: want 76 characters and \\n", i+1, l)
		}
	}
	if sum := sha256.Sum256([]byte(blob)); hex.EncodeToString(sum[:]) != "7dd39b9190fcea67db213511b86157079c31ece9095274feb27c2494521a623c" {
		t.Errorf("full-entry blob SHA-256 = %x, want 7dd39b91…", sum)
	}
}

func TestDecrypt(t *testing.T) {
	t.Parallel()
	plain := SampleEntry().JSON()
	for _, pw := range []string{vectorPassword, "ABCDEFGHIJKLMNOPQRSTUVWX", strings.Repeat("0123456789abcdef", 2)} {
		blob := Encrypt(pw, plain)
		for name, in := range map[string]string{
			"py2":          blob,
			"no newlines":  strings.ReplaceAll(blob, "\n", ""),
			"CRLF, spaces": strings.ReplaceAll(blob, "\n", "\r\n "),
		} {
			got, err := Decrypt(pw, in)
			if err != nil || string(got) != string(plain) {
				t.Errorf("Decrypt(%d-byte password, %s) = %q, %v; want the plaintext", len(pw), name, got, err)
			}
		}
	}
	// Every length round-trips, block-aligned ones with a full block of padding.
	for n := range 40 {
		p := []byte(strings.Repeat("é", n/2) + strings.Repeat("a", n%2))
		blob := Encrypt(vectorPassword, p)
		if got, err := Decrypt(vectorPassword, blob); err != nil || string(got) != string(p) {
			t.Errorf("round trip of %d bytes = %q, %v", len(p), got, err)
		}
	}

	blob := Encrypt(vectorPassword, plain)
	bad := []struct{ name, password, blob string }{
		{"wrong password", "Zbc123Def456Ghi7", blob},
		{"bad password length", "short", blob},
		{"not base64", vectorPassword, "!!!!\n"},
		{"not whole blocks", vectorPassword, "AAAA\n"},
		{"empty", vectorPassword, ""},
	}
	for _, tt := range bad {
		if got, err := Decrypt(tt.password, tt.blob); err == nil {
			t.Errorf("Decrypt(%s) = %q, want an error", tt.name, got)
		}
	}
}

func TestParseEntry(t *testing.T) {
	t.Parallel()
	if _, err := ParseEntry(SampleEntry().JSON()); err != nil {
		t.Errorf("ParseEntry(sample): %v", err)
	}
	bad := map[string]string{
		"not JSON":      `{"msgid": `,
		"array":         `[]`,
		"missing body":  `{"msgid": "m", "media_type": "chat", "local_uri": "a", "remote_uri": "b", "direction": "incoming", "cpim_from": "", "cpim_to": "", "cpim_timestamp": "", "content_type": "text", "private": "0", "status": "sent", "time": "2015-02-09 10:12:10"}`,
		"numeric msgid": strings.Replace(string(SampleEntry().JSON()), `"5f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"`, `5`, 1),
		"ISO 8601 time": strings.Replace(string(SampleEntry().JSON()), `"2015-02-09 10:12:10"`, `"2015-02-09T10:12:10Z"`, 1),
	}
	for name, in := range bad {
		if _, err := ParseEntry([]byte(in)); err == nil {
			t.Errorf("ParseEntry(%s) succeeded, want an error", name)
		}
	}
}

func TestPyString(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"plain":                   `"plain"`,
		"a/b <c> & d":             `"a/b <c> & d"`,
		"q\"b\\n\nr\rt\t\x01\x7f": `"q\"b\\n\nr\rt\t\u0001\u007f"`,
		"zoë €":                   `"zo\u00eb \u20ac"`,
		"😀":                       `"\ud83d\ude00"`,
	}
	for in, want := range tests {
		if got := PyString(in); got != want {
			t.Errorf("PyString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckTimestamp(t *testing.T) {
	t.Parallel()
	good := map[string]int64{"1423476730": 1423476730, "1": 1, "253402300799": 253402300799}
	for in, want := range good {
		if got, err := CheckTimestamp([]byte(in)); err != nil || got != want {
			t.Errorf("CheckTimestamp(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{`"1423476730"`, "1423476730.5", "1.4e9", "0", "-5", "253402300800", "null", `"2015-02-09 10:12:10"`} {
		if _, err := CheckTimestamp([]byte(in)); err == nil {
			t.Errorf("CheckTimestamp(%s) succeeded, want an error", in)
		}
	}
}
