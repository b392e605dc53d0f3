package tlsutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedIsMadeOnceAndRenewed(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	first, generated, err := SelfSigned(dir, now)
	if err != nil || !generated {
		t.Fatalf("first SelfSigned: generated=%v, %v", generated, err)
	}
	if err := first.Leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("certificate does not name localhost: %v", err)
	}
	if err := first.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not name 127.0.0.1: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v, mode %v", err, fi.Mode())
	}

	again, generated, err := SelfSigned(dir, now.Add(24*time.Hour))
	if err != nil || generated || !again.Leaf.Equal(first.Leaf) {
		t.Fatalf("second SelfSigned: generated=%v, same=%v, %v", generated, again.Leaf.Equal(first.Leaf), err)
	}
	// Close to expiry a new one is made.
	renewed, generated, err := SelfSigned(dir, first.Leaf.NotAfter.Add(-time.Hour))
	if err != nil || !generated || renewed.Leaf.Equal(first.Leaf) {
		t.Fatalf("SelfSigned near expiry: generated=%v, %v", generated, err)
	}
}

func TestSelfSignedRefusesDamagedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("not a certificate"), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), []byte("not a key"), 0o600)
	if _, _, err := SelfSigned(dir, time.Now()); err == nil {
		t.Fatal("SelfSigned over damaged files succeeded; it must not overwrite what an operator put there")
	}
	if _, err := Load(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err == nil {
		t.Fatal("Load of damaged files succeeded")
	}
}
