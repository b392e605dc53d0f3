package msrp

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(c.n, len(p))]) }

// FuzzReader reads a stream through a buffer, read size and body piece size
// chosen by the fuzzer. It must not panic, must return body pieces no longer
// than the buffer, must read as a single large read does, and every frame it
// accepts must marshal to a frame that reads back the same.
func FuzzReader(f *testing.F) {
	for _, name := range rfcExampleFiles(f) {
		f.Add(readTestdata(f, name), uint16(0), uint8(0))
		f.Add(readTestdata(f, name), uint16(300), uint8(5))
	}
	for _, body := range trickyBodies("k2+x.9=Q") {
		fr := &Frame{TID: "k2+x.9=Q", Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice), HasBody: true}
		f.Add(fr.Marshal([]byte(body)), uint16(64), uint8(1))
	}
	lim := Limits{MaxLine: 512, MaxHeaders: 16}
	f.Fuzz(func(t *testing.T, data []byte, size uint16, chunk uint8) {
		want, wantErr := readFrames(t, NewReader(bytes.NewReader(data), 1<<16, lim), 1<<16)
		var src io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			src = chunkReader{src, int(chunk)}
		}
		piece := 1 + (int(size)*31+int(chunk))%5000
		got, err := readFrames(t, NewReader(src, int(size)%8192, lim), piece)
		if !sameResults(got, want) || err != wantErr && !(errors.Is(err, ErrSyntax) && errors.Is(wantErr, ErrSyntax)) {
			t.Fatalf("buffer %d, chunk %d, piece %d: got\n%v\nthen %v; one read gave\n%v\nthen %v",
				size, chunk, piece, got, err, want, wantErr)
		}
		if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrSyntax) {
			t.Fatalf("stream ended with %v", err)
		}
		for _, g := range want {
			if g.err != nil {
				continue
			}
			wire := g.frame.Marshal(g.body)
			// Marshal may add the space after a header's colon: one byte.
			again, err := readFrames(t, NewReader(bytes.NewReader(wire), 4096, Limits{MaxLine: lim.MaxLine + 1, MaxHeaders: lim.MaxHeaders}), 4096)
			if err != io.EOF || len(again) != 1 || again[0].err != nil ||
				!reflect.DeepEqual(again[0].frame, g.frame) || !bytes.Equal(again[0].body, g.body) {
				t.Fatalf("frame %v\nmarshals to %q\nwhich reads as %v then %v", g, wire, again, err)
			}
		}
	})
}

// FuzzURI checks that a parsed URI or path, formatted, parses to the same.
func FuzzURI(f *testing.F) {
	for _, s := range []string{
		exAlice, exBob, exAtlanta, exBiloxi, exAliceTLS, exIntraAuth, exIntra, exRelayNet, exBobTLS,
		exIntra + " " + exRelayNet + " " + exBobTLS,
		"MSRPS://Example.COM:0080/aB3;TCP;x=y",
		"msrp://u:pw@[2001:db8::1]:9/s;tcp",
		"msrp://[192.0.2.1]:1;tcp",
		"msrp://h/a-._~+=/%2F;tcp;foo=bar;baz",
		"msrp://@h;tcp;",
		"msrp://a@b@h;ws",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if u, err := ParseURI(s); err == nil {
			v, err := ParseURI(u.String())
			if err != nil || v != u || !v.Equal(u) || !u.Equal(v) {
				t.Fatalf("ParseURI(%q) = %+v; its String %q parses as %+v, %v", s, u, u.String(), v, err)
			}
			p, err := ParsePath(u.String())
			if err != nil || len(p) != 1 || p[0] != u {
				t.Fatalf("ParseURI(%q) = %+v; its String %q is the path %+v, %v", s, u, u.String(), p, err)
			}
		}
		if p, err := ParsePath(s); err == nil {
			q, err := ParsePath(FormatPath(p))
			if err != nil || !reflect.DeepEqual(p, q) || !EqualPaths(p, q) {
				t.Fatalf("ParsePath(%q) = %+v; FormatPath %q parses as %+v, %v", s, p, FormatPath(p), q, err)
			}
		}
	})
}
