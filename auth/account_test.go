package auth

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in         string
		user, dom  string
		wantErrSub string // "" when the address is good
	}{
		{in: "alice@example.com", user: "alice", dom: "example.com"},
		{in: "Alice@Example.COM", user: "Alice", dom: "example.com"}, // user case kept, domain lowered
		{in: "a@b", user: "a", dom: "b"},
		{in: "alice.smith+chat@sip2sip.info", user: "alice.smith+chat", dom: "sip2sip.info"},
		{in: "-_.!~*'()&=+$,;?/@example.com", user: "-_.!~*'()&=+$,;?/", dom: "example.com"},
		{in: "31208005169@voip-1.example.co.uk", user: "31208005169", dom: "voip-1.example.co.uk"},
		{in: strings.Repeat("u", 64) + "@example.com", user: strings.Repeat("u", 64), dom: "example.com"},
		{in: "u@" + strings.Repeat("a", 63) + ".com", user: "u", dom: strings.Repeat("a", 63) + ".com"},
		{in: "u@" + strings.Repeat("a.", 126) + "a", user: "u", dom: strings.Repeat("a.", 126) + "a"}, // 253 bytes

		{in: "", wantErrSub: "want user@domain"},
		{in: "alice", wantErrSub: "want user@domain"},
		{in: "@example.com", wantErrSub: "want user@domain"},
		{in: "alice@", wantErrSub: "want user@domain"},
		{in: "alice@@example.com", wantErrSub: "user part"},
		{in: "al@ice@example.com", wantErrSub: "user part"},
		{in: "al ice@example.com", wantErrSub: "user part"},
		{in: "al:ice@example.com", wantErrSub: "user part"},
		{in: "al%40ice@example.com", wantErrSub: "user part"},
		{in: "alice\x00@example.com", wantErrSub: "user part"},
		{in: "ålice@example.com", wantErrSub: "user part"},
		{in: strings.Repeat("u", 65) + "@example.com", wantErrSub: "user part"},
		{in: "sip:alice@example.com", wantErrSub: "user part"},
		{in: "alice@example.com.", wantErrSub: "domain"},
		{in: "alice@.example.com", wantErrSub: "domain"},
		{in: "alice@example..com", wantErrSub: "domain"},
		{in: "alice@-example.com", wantErrSub: "domain"},
		{in: "alice@example-.com", wantErrSub: "domain"},
		{in: "alice@exa_mple.com", wantErrSub: "domain"},
		{in: "alice@example.com:5060", wantErrSub: "domain"},
		{in: "alice@[2001:db8::1]", wantErrSub: "domain"},
		{in: "alice@exämple.com", wantErrSub: "domain"},
		{in: "alice@\u212Aexample.com", wantErrSub: "domain"}, // KELVIN SIGN lowercases to ASCII k
		{in: "alice@\u0130nfo.example", wantErrSub: "domain"}, // İ lowercases to ASCII i
		{in: "alice@xn--exmple-cua.com", user: "alice", dom: "xn--exmple-cua.com"},
		{in: "u@" + strings.Repeat("a", 64) + ".com", wantErrSub: "domain"},
		{in: "u@" + strings.Repeat("a.", 126) + "ab", wantErrSub: "domain"}, // 254 bytes
	}
	for _, tt := range tests {
		user, dom, err := ParseAddress(tt.in)
		switch {
		case tt.wantErrSub == "" && err != nil:
			t.Errorf("ParseAddress(%q): %v", tt.in, err)
		case tt.wantErrSub == "" && (user != tt.user || dom != tt.dom):
			t.Errorf("ParseAddress(%q) = %q, %q; want %q, %q", tt.in, user, dom, tt.user, tt.dom)
		case tt.wantErrSub != "" && err == nil:
			t.Errorf("ParseAddress(%q) = %q, %q; want an error", tt.in, user, dom)
		case tt.wantErrSub != "" && !strings.Contains(err.Error(), tt.wantErrSub):
			t.Errorf("ParseAddress(%q): error %q does not mention %q", tt.in, err, tt.wantErrSub)
		case err != nil && (user != "" || dom != ""):
			t.Errorf("ParseAddress(%q) returned %q, %q with its error", tt.in, user, dom)
		}
	}
}
