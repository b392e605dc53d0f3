package replicationtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Blink's key derivation: OpenSSL EVP_BytesToKey with SHA-1, this salt and
// this count; the IV is all zero.
const (
	kdfSalt  = "saltsalt"
	kdfCount = 5
)

// mimeLineLen is the line length of Python 2's str.encode('base64').
const mimeLineLen = 76

// DeriveKey returns Blink's AES key for password: EVP_BytesToKey(SHA-1,
// "saltsalt", 5 rounds) cut to len(password) bytes, as the PyCrypto code
// does. It fails unless len(password) is 16, 24 or 32, which is when
// Blink's AES.new fails too.
func DeriveKey(password string) ([]byte, error) {
	n := len(password)
	if n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("replicationtest: password of %d bytes: Blink needs 16, 24 or 32", n)
	}
	var key, prev []byte
	for len(key) < n {
		d := append(append(prev, password...), kdfSalt...)
		for range kdfCount {
			sum := sha1.Sum(d)
			d = sum[:]
		}
		key, prev = append(key, d...), d
	}
	return key[:n], nil
}

// Encrypt returns Blink's blob of plaintext: AES-CBC under DeriveKey(password)
// with a zero IV and PKCS#7 padding, in MIME base64 (76-column lines, each
// ending in "\n") as Python 2 Blink sent it. It panics when the password
// length is not 16, 24 or 32: that is a bug in the test.
func Encrypt(password string, plaintext []byte) string {
	key, err := DeriveKey(password)
	if err != nil {
		panic(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, make([]byte, aes.BlockSize)).CryptBlocks(buf, buf)
	return mimeBase64(buf)
}

// mimeBase64 encodes b as Python 2's str.encode('base64') does.
func mimeBase64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	out.Grow(len(s) + len(s)/mimeLineLen + 1)
	for len(s) > mimeLineLen {
		out.WriteString(s[:mimeLineLen])
		out.WriteByte('\n')
		s = s[mimeLineLen:]
	}
	out.WriteString(s)
	out.WriteByte('\n')
	return out.String()
}

// Decrypt reverses Encrypt. It accepts base64 with or without line breaks
// (Blink's decoder ignores them) and checks the padding in full.
func Decrypt(password, blob string) ([]byte, error) {
	key, err := DeriveKey(password)
	if err != nil {
		return nil, err
	}
	b64 := blob
	for _, ws := range []string{"\n", "\r", " ", "\t"} {
		b64 = strings.ReplaceAll(b64, ws, "")
	}
	buf, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("replicationtest: blob: %w", err)
	}
	if len(buf) == 0 || len(buf)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("replicationtest: blob of %d bytes is not whole AES blocks", len(buf))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	cipher.NewCBCDecrypter(block, make([]byte, aes.BlockSize)).CryptBlocks(buf, buf)
	pad := int(buf[len(buf)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(buf[len(buf)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, errors.New("replicationtest: bad PKCS#7 padding (wrong password?)")
	}
	return buf[:len(buf)-pad], nil
}
