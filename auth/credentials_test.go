package auth

import (
	"testing"
)

// RFC 7616 §3.9.1 and RFC 2617 §3.5: the published examples.
const (
	rfc7616User     = "Mufasa"
	rfc7616Password = "Circle of Life"
	rfc7616Realm    = "http-auth@example.org"
	rfc7616Nonce    = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
	rfc7616CNonce   = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	rfc7616Opaque   = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
	rfc7616URI      = "/dir/index.html"
	rfc7616MD5      = "8ca523f5e9506fed4657c9700eebdbec"
	rfc7616SHA256   = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"

	rfc2617Password = "Circle Of Life"
	rfc2617Realm    = "testrealm@host.com"
	rfc2617Nonce    = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
	rfc2617CNonce   = "0a4f113b"
	rfc2617Opaque   = "5ccc069c403ebaf9f0171e9517f40e41"
	rfc2617Response = "6629fae49393a05397450978507c4ef1"
)

func TestAlgorithmKnownAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		alg                    Algorithm
		realm, password, nonce string
		cnonce                 string
		wantHA1, wantResponse  string
	}{
		{
			name: "RFC 7616 3.9.1 MD5", alg: MD5, realm: rfc7616Realm, password: rfc7616Password,
			nonce: rfc7616Nonce, cnonce: rfc7616CNonce, wantResponse: rfc7616MD5,
		},
		{
			name: "RFC 7616 3.9.1 SHA-256", alg: SHA256, realm: rfc7616Realm, password: rfc7616Password,
			nonce: rfc7616Nonce, cnonce: rfc7616CNonce, wantResponse: rfc7616SHA256,
		},
		{
			name: "RFC 2617 3.5", alg: MD5, realm: rfc2617Realm, password: rfc2617Password,
			nonce: rfc2617Nonce, cnonce: rfc2617CNonce, wantResponse: rfc2617Response,
			wantHA1: "939e7578ed9e3c518a452acee763bce9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ha1 := tt.alg.H(rfc7616User, tt.realm, tt.password)
			if tt.wantHA1 != "" && ha1 != tt.wantHA1 {
				t.Errorf("HA1 = %s, want %s", ha1, tt.wantHA1)
			}
			// The HA1 cairn stores for the account is the one the RFC computes.
			set := NewHA1Set(rfc7616User, tt.realm, tt.password)
			if got := set.get(tt.alg, false); got != ha1 {
				t.Errorf("NewHA1Set(...).get(%s) = %s, want %s", tt.alg, got, ha1)
			}
			ha2 := tt.alg.H("GET", rfc7616URI)
			got := tt.alg.H(ha1, tt.nonce, "00000001", tt.cnonce, "auth", ha2)
			if got != tt.wantResponse {
				t.Errorf("response = %s, want %s", got, tt.wantResponse)
			}
			// The client-side reference used by the HTTP tests agrees.
			if got := clientResponse(string(tt.alg), rfc7616User, tt.realm, tt.password, "GET", rfc7616URI, tt.nonce, "00000001", tt.cnonce); got != tt.wantResponse {
				t.Errorf("clientResponse = %s, want %s", got, tt.wantResponse)
			}
		})
	}
}

func TestNewHA1Set(t *testing.T) {
	t.Parallel()
	s := NewHA1Set("alice", "example.com", "pw")
	tests := []struct {
		alg  Algorithm
		full bool
		want string
	}{
		{MD5, false, md5Hex("alice:example.com:pw")},
		{MD5, true, md5Hex("alice@example.com:example.com:pw")},
		{SHA256, false, sha256Hex("alice:example.com:pw")},
		{SHA256, true, sha256Hex("alice@example.com:example.com:pw")},
	}
	for _, tt := range tests {
		if got := s.get(tt.alg, tt.full); got != tt.want {
			t.Errorf("get(%s, full=%v) = %s, want %s", tt.alg, tt.full, got, tt.want)
		}
	}
}

func TestCredentialsHA1s(t *testing.T) {
	t.Parallel()
	c := NewCredentials("alice", "example.com", "sip-pw", "")
	if c.Web != nil {
		t.Fatalf("Web = %+v, want nil without a web password", c.Web)
	}
	if got := c.HA1s(MD5, false); len(got) != 1 || got[0] != md5Hex("alice:example.com:sip-pw") {
		t.Errorf("HA1s without web password = %v", got)
	}
	c = NewCredentials("alice", "example.com", "sip-pw", "web-pw")
	got := c.HA1s(SHA256, true)
	want := []string{sha256Hex("alice@example.com:example.com:sip-pw"), sha256Hex("alice@example.com:example.com:web-pw")}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("HA1s(SHA-256, full) = %v, want %v (SIP first, then web)", got, want)
	}
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pw     string
		wantOK bool
	}{
		{"", false},
		{"1234567", false},
		{"12345678", true},
		{string(make([]byte, 256)), true},
		{string(make([]byte, 257)), false},
	}
	for _, tt := range tests {
		_, sipErr := NewSIPPassword("alice", "example.com", tt.pw)
		_, hash, webErr := NewWebPassword("alice", "example.com", tt.pw)
		if (sipErr == nil) != tt.wantOK || (webErr == nil) != tt.wantOK {
			t.Errorf("len %d: SIP err %v, web err %v; want ok=%v", len(tt.pw), sipErr, webErr, tt.wantOK)
		}
		if tt.wantOK && !CheckPassword(hash, tt.pw) {
			t.Errorf("len %d: the web hash does not check", len(tt.pw))
		}
	}
}
