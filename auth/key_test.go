package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "secret.key")
	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != KeySize || bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatalf("key = %x, want %d random bytes", key, KeySize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %04o, want 0700", di.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(key) + "\n"; string(b) != want {
		t.Errorf("key file holds %q, want %q", b, want)
	}
	// Loaded again, it is the same key.
	for _, load := range []func(string) ([]byte, error){LoadOrCreateKey, LoadKey} {
		again, err := load(path)
		if err != nil || !bytes.Equal(again, key) {
			t.Errorf("reload = %x, %v; want %x", again, err, key)
		}
	}
	// Two nodes that share the key file share the key.
	other, err := LoadOrCreateKey(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, key) {
		t.Error("two new key files hold the same key")
	}
}

func TestLoadKeyRefusesReadableFile(t *testing.T) {
	t.Parallel()
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		path := filepath.Join(t.TempDir(), "secret.key")
		content := []byte(strings.Repeat("ab", KeySize) + "\n")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		for name, load := range map[string]func(string) ([]byte, error){"LoadKey": LoadKey, "LoadOrCreateKey": LoadOrCreateKey} {
			key, err := load(path)
			if err == nil || key != nil {
				t.Errorf("%s of a mode %04o file = %x, %v; want an error", name, mode, key, err)
				continue
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("%s: error %q does not say how to fix it", name, err)
			}
		}
		// The file is left alone, not replaced by a new key.
		if b, _ := os.ReadFile(path); !bytes.Equal(b, content) {
			t.Errorf("mode %04o: the key file was rewritten", mode)
		}
	}
}

func TestLoadKeyOwnerOnlyModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		path := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(path, []byte(strings.Repeat("AB", KeySize)), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		key, err := LoadKey(path)
		if err != nil || !bytes.Equal(key, bytes.Repeat([]byte{0xab}, KeySize)) {
			t.Errorf("mode %04o: LoadKey = %x, %v", mode, key, err)
		}
	}
}

func TestLoadKeyBadContent(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"empty":     "",
		"short":     strings.Repeat("ab", KeySize-1),
		"long":      strings.Repeat("ab", KeySize+1),
		"not hex":   strings.Repeat("zz", KeySize),
		"odd":       strings.Repeat("ab", KeySize) + "a",
		"raw bytes": string(bytes.Repeat([]byte{0xab}, KeySize)),
	} {
		path := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if key, err := LoadKey(path); err == nil {
			t.Errorf("%s: LoadKey = %x, want an error", name, key)
		}
		if key, err := LoadOrCreateKey(path); err == nil {
			t.Errorf("%s: LoadOrCreateKey = %x, want an error, not a new key", name, key)
		}
	}
}

func TestLoadKeyMissing(t *testing.T) {
	t.Parallel()
	_, err := LoadKey(filepath.Join(t.TempDir(), "none.key"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKey of a missing file = %v, want fs.ErrNotExist", err)
	}
}
