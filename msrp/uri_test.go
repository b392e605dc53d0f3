package msrp

import (
	"testing"
)

func TestParseURI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, out string // out is String(); "" when it is in
		want    URI
	}{
		{exBiloxi, "", URI{Host: "biloxi.example.com", Port: 12763, SessionID: "kjhd37s2s20w2a", Transport: "tcp"}},
		{exIntraAuth, "", URI{Secure: true, User: "alice", Host: "intra.example.com", Transport: "tcp"}},
		{"msrp://example.com;tcp", "", URI{Host: "example.com", Transport: "tcp"}},
		{"MSRPS://Example.COM:2855/aB3;TCP", "msrps://Example.COM:2855/aB3;tcp",
			URI{Secure: true, Host: "Example.COM", Port: 2855, SessionID: "aB3", Transport: "tcp"}},
		{"msrp://h.example.com:0080/s;tcp", "msrp://h.example.com:80/s;tcp", URI{Host: "h.example.com", Port: 80, SessionID: "s", Transport: "tcp"}},
		{"msrp://h:65535;ws", "", URI{Host: "h", Port: 65535, Transport: "ws"}},
		{"msrp://192.0.2.1:2855/abc;tcp", "", URI{Host: "192.0.2.1", Port: 2855, SessionID: "abc", Transport: "tcp"}},
		{"msrp://[2001:db8::1]:2855/abc;tcp", "", URI{Host: "2001:db8::1", Port: 2855, SessionID: "abc", Transport: "tcp"}},
		{"msrp://[::1];tcp", "", URI{Host: "::1", Transport: "tcp"}},
		{"msrp://[::ffff:192.0.2.1]/s;tcp", "", URI{Host: "::ffff:192.0.2.1", SessionID: "s", Transport: "tcp"}},
		{"msrp://[192.0.2.1]:1;tcp", "msrp://192.0.2.1:1;tcp", URI{Host: "192.0.2.1", Port: 1, Transport: "tcp"}},
		{"msrp://u:pw@[2001:db8::1]:9/s;tcp", "", URI{User: "u:pw", Host: "2001:db8::1", Port: 9, SessionID: "s", Transport: "tcp"}},
		{"msrp://a@b@h;tcp", "", URI{User: "a@b", Host: "h", Transport: "tcp"}},
		{"msrp://@h;tcp", "msrp://h;tcp", URI{Host: "h", Transport: "tcp"}},
		{"msrp://h/a-._~+=/%2F;tcp", "", URI{Host: "h", SessionID: "a-._~+=/%2F", Transport: "tcp"}},
		{"msrp://h/x;tcp;foo=bar;baz", "", URI{Host: "h", SessionID: "x", Transport: "tcp", Params: "foo=bar;baz"}},
		{"msrp://h;tcp;", "msrp://h;tcp", URI{Host: "h", Transport: "tcp"}},
		{"msrp://h;sctp", "", URI{Host: "h", Transport: "sctp"}},
	}
	for _, tt := range tests {
		got, err := ParseURI(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		out := tt.out
		if out == "" {
			out = tt.in
		}
		if got.String() != out {
			t.Errorf("ParseURI(%q).String() = %q, want %q", tt.in, got.String(), out)
		}
		if again, err := ParseURI(got.String()); err != nil || again != got {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseURIRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		"msrp://h",                  // no transport
		"msrp://h/s",                // no transport
		"msrp://h;",                 // empty transport
		"msrp://h;t c p",            // transport not a token
		"msrp://h;tcp;a b",          // space in a parameter
		"msrp://h;tcp;x\r\nEvil: 1", // CRLF in a parameter
		"msrp://h;tcp;\xc2\xa0",     // non-ASCII in a parameter
		"msrp://a b@h;tcp",          // space in user info
		"msrp://a\x00@h;tcp",        // control in user info
		"msrp://\xc2\x85@h;tcp",     // non-ASCII in user info
		"sip://h;tcp",
		"msrpx://h;tcp",
		"msrp:/h;tcp",
		"msrp:h;tcp",
		"msrp://;tcp",                 // no host
		"msrp://u@;tcp",               // no host
		"msrp://:80;tcp",              // no host
		"msrp://h:;tcp",               // empty port
		"msrp://h:0;tcp",              // port 0
		"msrp://h:65536;tcp",          // port too large
		"msrp://h:-1;tcp",             // negative port
		"msrp://h:+80;tcp",            // sign
		"msrp://h:8o;tcp",             // not a number
		"msrp://h:80:81;tcp",          // two ports
		"msrp://h/;tcp",               // empty session id
		"msrp://h/a b;tcp",            // space in session id
		"msrp://h/a@b;tcp",            // @ in session id
		"msrp://h/a?b;tcp",            // ? in session id
		"msrp://h_x;tcp",              // _ in host
		"msrp://h%41;tcp",             // % in host
		"msrp://::1;tcp",              // IPv6 without brackets
		"msrp://[::1;tcp",             // no closing bracket
		"msrp://[::1]x;tcp",           // junk after bracket
		"msrp://[::1]:;tcp",           // empty port
		"msrp://[host]:80;tcp",        // not an address in brackets
		"msrp://[fe80::1%25eth0];tcp", // zone
		"msrp://[];tcp",
	} {
		if u, err := ParseURI(in); err != ErrURI {
			t.Errorf("ParseURI(%q) = %+v, %v; want ErrURI", in, u, err)
		}
	}
}

func TestURIEqual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{exBiloxi, exBiloxi, true},
		{"msrp://Host.Example.COM:80/s;tcp", "msrp://host.example.com:80/s;tcp", true}, // host case
		{"MSRP://h/s;TCP", "msrp://h/s;tcp", true},                                     // scheme and transport case
		{"msrp://alice@h/s;tcp", "msrp://bob@h/s;tcp", true},                           // user info ignored
		{"msrp://h/s;tcp;a=1", "msrp://h/s;tcp;b=2", true},                             // parameters ignored
		{"msrp://h:0080/s;tcp", "msrp://h:80/s;tcp", true},
		{"msrp://[2001:DB8::1]/s;tcp", "msrp://[2001:db8::1]/s;tcp", true},
		{"msrp://[2001:db8:0:0::1]/s;tcp", "msrp://[2001:db8::1]/s;tcp", true}, // same address
		{"msrp://[::ffff:192.0.2.1]/s;tcp", "msrp://192.0.2.1/s;tcp", true},    // same address
		{"msrp://h:2855/s;tcp", "msrp://h/s;tcp", false},                       // explicit port vs none
		{"msrp://h:2855/s;tcp", "msrp://h:2856/s;tcp", false},
		{"msrp://h/abc;tcp", "msrp://h/ABC;tcp", false}, // session id is case sensitive
		{"msrp://h/s;tcp", "msrp://h;tcp", false},       // session id vs none
		{"msrp://h/s;tcp", "msrp://h/s;ws", false},      // transport
		{"msrp://h/s;tcp", "msrps://h/s;tcp", false},    // scheme
		{"msrp://h1/s;tcp", "msrp://h2/s;tcp", false},
		{"msrp://[::1]/s;tcp", "msrp://[::2]/s;tcp", false},
		{"msrp://192.0.2.1/s;tcp", "msrp://192.0.2.10/s;tcp", false},
	}
	for _, tt := range tests {
		a, errA := ParseURI(tt.a)
		b, errB := ParseURI(tt.b)
		if errA != nil || errB != nil {
			t.Fatalf("%q, %q: %v, %v", tt.a, tt.b, errA, errB)
		}
		if a.Equal(b) != tt.want || b.Equal(a) != tt.want {
			t.Errorf("%q equal %q = %v, want %v", tt.a, tt.b, a.Equal(b), tt.want)
		}
	}
}

func TestURIParsePath(t *testing.T) {
	t.Parallel()
	p, err := ParsePath("  " + exIntra + " \t" + exRelayNet + "  " + exBobTLS + " ")
	if err != nil || len(p) != 3 || p[0].Host != "intra.example.com" || p[2].SessionID != "foo" {
		t.Fatalf("ParsePath = %+v, %v", p, err)
	}
	if got, want := FormatPath(p), exIntra+" "+exRelayNet+" "+exBobTLS; got != want {
		t.Errorf("FormatPath = %q, want %q", got, want)
	}
	q := mustParsePath("MSRPS://INTRA.example.com:9000/jui787s2f;TCP", exRelayNet, exBobTLS)
	if !EqualPaths(p, q) || EqualPaths(p, q[:2]) || EqualPaths(p, mustParsePath(exRelayNet, exIntra, exBobTLS)) || !EqualPaths(nil, nil) {
		t.Error("EqualPaths")
	}
	for _, in := range []string{"", "   ", "msrp://h", exIntra + " msrp://h", exIntra + " msrp://h:x;tcp", "http://x;tcp"} {
		if p, err := ParsePath(in); err != ErrURI || p != nil {
			t.Errorf("ParsePath(%q) = %+v, %v; want ErrURI", in, p, err)
		}
	}
}
