package tlsutil

import (
	"bytes"
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
	if _, err := NewReloader(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), nil); err == nil {
		t.Fatal("NewReloader of damaged files succeeded")
	}
}

// TestReloaderPicksUpRenewal checks that a renewed pair is served without a
// restart, and that a broken one leaves the previous pair in use.
func TestReloaderPicksUpRenewal(t *testing.T) {
	t.Parallel()
	now := time.Now()
	pair := func(name string) (certPEM, keyPEM []byte) {
		dir := filepath.Join(t.TempDir(), name)
		if _, _, err := SelfSigned(dir, now); err != nil {
			t.Fatal(err)
		}
		c, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
		k, _ := os.ReadFile(filepath.Join(dir, "key.pem"))
		return c, k
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(c, k []byte, mod time.Time) {
		t.Helper()
		for f, b := range map[string][]byte{certFile: c, keyFile: k} {
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(f, mod, mod)
		}
	}
	c1, k1 := pair("one")
	install(c1, k1, now.Add(-time.Hour))
	var reported []error
	r, err := NewReloader(certFile, keyFile, func(err error) { reported = append(reported, err) })
	if err != nil {
		t.Fatal(err)
	}
	clock := r.checked
	r.now = func() time.Time { return clock }
	serving := func() []byte {
		t.Helper()
		cert, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return cert.Certificate[0]
	}
	first := serving()

	c2, k2 := pair("two")
	install(c2, k2, now)
	if got := serving(); !bytes.Equal(got, first) {
		t.Fatal("reloaded before reloadCheck passed")
	}
	clock = clock.Add(reloadCheck)
	renewed := serving()
	if bytes.Equal(renewed, first) {
		t.Fatal("the renewed certificate is not served")
	}

	install([]byte("broken"), k2, now.Add(time.Minute))
	clock = clock.Add(reloadCheck)
	if got := serving(); !bytes.Equal(got, renewed) || len(reported) != 1 {
		t.Fatalf("after a broken renewal: same=%v, %d errors reported; want the previous pair and 1 error", bytes.Equal(got, renewed), len(reported))
	}
}
