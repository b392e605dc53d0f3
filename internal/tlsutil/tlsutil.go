// Package tlsutil loads the server's TLS certificate, or makes a self-signed
// one on first start so that `cairn serve` needs no setup.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// selfSignedLifetime is how long a generated certificate is valid; it is
// made anew when less than renewBefore is left.
const (
	selfSignedLifetime = 397 * 24 * time.Hour
	renewBefore        = 7 * 24 * time.Hour
)

// reloadCheck is how often a Reloader looks at its files' modification times.
const reloadCheck = 10 * time.Second

// Reloader serves the PEM certificate and key at certFile and keyFile, and
// reads them again when either file changes, so that a renewed certificate
// takes effect without a restart. A pair that does not load leaves the one
// in use in place, and is reported to onError.
type Reloader struct {
	certFile, keyFile string
	onError           func(error)
	now               func() time.Time

	mu       sync.Mutex
	cert     *tls.Certificate
	modTimes [2]time.Time
	checked  time.Time
}

// NewReloader loads the pair at certFile and keyFile, failing if it does not
// load. onError hears of later reloads that fail.
func NewReloader(certFile, keyFile string, onError func(error)) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, onError: onError, now: time.Now}
	if err := r.load(); err != nil {
		return nil, err
	}
	r.checked = r.now()
	return r, nil
}

func (r *Reloader) load() error {
	mod, err := r.modified()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tlsutil: %w", err)
	}
	r.cert, r.modTimes = &cert, mod
	return nil
}

func (r *Reloader) modified() ([2]time.Time, error) {
	var mod [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return mod, fmt.Errorf("tlsutil: %w", err)
		}
		mod[i] = fi.ModTime()
	}
	return mod, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= reloadCheck {
		r.checked = now
		if mod, err := r.modified(); err != nil || mod != r.modTimes {
			if err == nil {
				err = r.load()
			}
			if err != nil {
				r.onError(err)
			}
		}
	}
	return r.cert, nil
}

// SelfSigned returns the self-signed certificate kept in dir (cert.pem and
// key.pem, the key with mode 0600), making a new one when there is none or
// it is about to expire. generated reports whether it made one.
func SelfSigned(dir string, now time.Time) (cert tls.Certificate, generated bool, err error) {
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && cert.Leaf != nil && now.Add(renewBefore).Before(cert.Leaf.NotAfter) {
		return cert, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return cert, false, fmt.Errorf("tlsutil: %s: %w (delete both files to have new ones made)", dir, err)
	}
	certPEM, keyPEM, err := generate(now)
	if err != nil {
		return cert, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, fmt.Errorf("tlsutil: %w", err)
	}
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return cert, false, err
	}
	if err := writeFile(certFile, certPEM, 0o644); err != nil {
		return cert, false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return cert, false, fmt.Errorf("tlsutil: %w", err)
	}
	return cert, true, nil
}

func generate(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	names := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "localhost" {
		names = append(names, h)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cairn self-signed", Organization: []string{"cairn"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFile replaces path atomically with data of the given mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("tlsutil: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsutil: %w", err)
	}
	return nil
}
