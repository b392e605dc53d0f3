package msrp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readResult is one frame as a Reader gave it: the head and whole body, or the
// *FrameError that replaced it.
type readResult struct {
	frame *Frame
	body  []byte
	err   error
}

func (r readResult) String() string {
	if r.err != nil {
		return fmt.Sprintf("error %v", r.err)
	}
	return fmt.Sprintf("%+v body %q", *r.frame, r.body)
}

// readFrames reads frames and their bodies, piece bytes at a time, until an
// error other than a *FrameError, which it returns. It fails t when a body
// piece is longer than p or the buffer.
func readFrames(t testing.TB, r *Reader, piece int) ([]readResult, error) {
	t.Helper()
	var out []readResult
	p := make([]byte, piece)
	for len(out) < 10000 {
		f, err := r.ReadFrame()
		var fe *FrameError
		if errors.As(err, &fe) {
			out = append(out, readResult{err: err})
			continue
		}
		if err != nil {
			return out, err
		}
		var body []byte
		for {
			n, err := r.ReadBody(p)
			if n > len(p) || n > r.br.Size() {
				t.Fatalf("ReadBody returned %d bytes: p holds %d, the buffer %d", n, len(p), r.br.Size())
			}
			body = append(body, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return out, err
			}
		}
		if !f.HasBody && len(body) > 0 {
			t.Fatalf("frame without body gave body %q", body)
		}
		out = append(out, readResult{frame: f, body: body})
	}
	t.Fatal("more than 10000 frames")
	return nil, nil
}

// sameResults compares two reads of one stream; FrameErrors compare by
// code and reason.
func sameResults(a, b []readResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		var ea, eb *FrameError
		switch {
		case errors.As(a[i].err, &ea) && errors.As(b[i].err, &eb):
			if ea.Code != eb.Code || ea.Reason != eb.Reason || ea.Frame.TID != eb.Frame.TID {
				return false
			}
		case a[i].err != nil || b[i].err != nil:
			return false
		case !reflect.DeepEqual(a[i].frame, b[i].frame) || !bytes.Equal(a[i].body, b[i].body):
			return false
		}
	}
	return true
}

func mustParsePath(uris ...string) []URI {
	p, err := ParsePath(strings.Join(uris, " "))
	if err != nil {
		panic(err)
	}
	return p
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc4975", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	exAlice     = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp"
	exBob       = "msrp://bob.example.com:8888/9di4eae923wzd;tcp"
	exAtlanta   = "msrp://atlanta.example.com:7654/jshA7weztas;tcp"
	exBiloxi    = "msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp"
	exAliceTLS  = "msrps://alice.example.com:9892/98cjs;tcp"
	exIntraAuth = "msrps://alice@intra.example.com;tcp"
	exIntra     = "msrps://intra.example.com:9000/jui787s2f;tcp"
	exRelayNet  = "msrps://relay.example.net:9000/hjdhfha;tcp"
	exBobTLS    = "msrps://bob.example.net:8145/foo;tcp"
	exHTMLBody  = "<html><body>\r\n<p>Here is that important link...\r\n" +
		"<a href=\"http://www.example.com/foobar\">foobar</a>\r\n</p>\r\n</body></html>"
	exDigest = `Digest username="Alice", realm="intra.example.com", ` +
		`nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop=auth, nc=00000001, ` +
		`cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1"`
)

// rfcExpect holds what each file of testdata/rfc4975 must read as.
var rfcExpect = map[string][]readResult{
	"rfc4975-send.msrp": {{frame: &Frame{
		TID: "a786hjs2", Method: "SEND", ToPath: mustParsePath(exBiloxi), FromPath: mustParsePath(exAtlanta),
		Headers: []Header{{"Message-ID", "87652491"}, {"Byte-Range", "1-25/25"}, {"Content-Type", "text/plain"}},
		HasBody: true, Flag: '$',
	}, body: []byte("Hey Bob, are you there?")}},
	"rfc4975-send-200.msrp": {{frame: &Frame{
		TID: "a786hjs2", Status: 200, Comment: "OK", ToPath: mustParsePath(exAtlanta), FromPath: mustParsePath(exBiloxi), Flag: '$',
	}}},
	"rfc4975-chunked.msrp": {{frame: &Frame{
		TID: "dkei38sd", Method: "SEND", ToPath: mustParsePath(exAlice), FromPath: mustParsePath(exBob),
		Headers: []Header{{"Message-ID", "4564dpWd"}, {"Byte-Range", "1-*/8"}, {"Content-Type", "text/plain"}},
		HasBody: true, Flag: '+',
	}, body: []byte("abcd")}, {frame: &Frame{
		TID: "dkei38ia", Method: "SEND", ToPath: mustParsePath(exAlice), FromPath: mustParsePath(exBob),
		Headers: []Header{{"Message-ID", "4564dpWd"}, {"Byte-Range", "5-8/8"}, {"Content-Type", "text/plain"}},
		HasBody: true, Flag: '$',
	}, body: []byte("EFGH")}},
	"rfc4975-empty-send.msrp": {{frame: &Frame{
		TID: "8dfy2nwe", Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice),
		Headers: []Header{{"Message-ID", "34kqj2s"}, {"Byte-Range", "1-0/0"}}, Flag: '$',
	}}},
	"rfc4975-session.msrp": {{frame: &Frame{
		TID: "d93kswow", Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice),
		Headers: []Header{{"Message-ID", "12339sdqwer"}, {"Byte-Range", "1-16/16"}, {"Content-Type", "text/plain"}},
		HasBody: true, Flag: '$',
	}, body: []byte("Hi, I'm Alice!")}, {frame: &Frame{
		TID: "d93kswow", Status: 200, Comment: "OK", ToPath: mustParsePath(exAlice), FromPath: mustParsePath(exBob), Flag: '$',
	}}},
	"rfc4975-html-send.msrp": {{frame: &Frame{
		TID: "d93kswow", Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice),
		Headers: []Header{{"Message-ID", "12339sdqwer"}, {"Byte-Range", "1-106/106"},
			{"Success-Report", "yes"}, {"Failure-Report", "no"}, {"Content-Type", "text/html"}},
		HasBody: true, Flag: '$',
	}, body: []byte(exHTMLBody)}},
	"rfc4975-report.msrp": {{frame: &Frame{
		TID: "dkei38sd", Method: "REPORT", ToPath: mustParsePath(exAlice), FromPath: mustParsePath(exBob),
		Headers: []Header{{"Message-ID", "12339sdqwer"}, {"Byte-Range", "1-106/106"}, {"Status", "000 200 OK"}},
		Flag:    '$',
	}}},
	"rfc4976-auth.msrp": {{frame: &Frame{
		TID: "49fh", Method: "AUTH", ToPath: mustParsePath(exIntraAuth), FromPath: mustParsePath(exAliceTLS), Flag: '$',
	}}},
	"rfc4976-auth-401.msrp": {{frame: &Frame{
		TID: "49fh", Status: 401, Comment: "Unauthorized", ToPath: mustParsePath(exAliceTLS), FromPath: mustParsePath(exIntraAuth),
		Headers: []Header{{"WWW-Authenticate",
			`Digest realm="intra.example.com", qop="auth", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"`}},
		Flag: '$',
	}}},
	"rfc4976-auth-digest.msrp": {{frame: &Frame{
		TID: "49fi", Method: "AUTH", ToPath: mustParsePath(exIntraAuth), FromPath: mustParsePath(exAliceTLS),
		Headers: []Header{{"Authorization", exDigest}}, Flag: '$',
	}}},
	"rfc4976-auth-200.msrp": {{frame: &Frame{
		TID: "49fi", Status: 200, Comment: "OK", ToPath: mustParsePath(exAliceTLS), FromPath: mustParsePath(exIntraAuth),
		Headers: []Header{{"Use-Path", exIntra}, {"Expires", "900"}}, Flag: '$',
	}}},
	"rfc4976-send-relays.msrp": {{frame: &Frame{
		TID: "6aef", Method: "SEND", ToPath: mustParsePath(exIntra, exRelayNet, exBobTLS), FromPath: mustParsePath(exAliceTLS),
		Headers: []Header{{"Message-ID", "87652"}, {"Content-Type", "text/plain"}}, HasBody: true, Flag: '$',
	}, body: []byte("Hi Bob, I'm about to send you file.mpeg")}},
	"rfc4976-send-forwarded.msrp": {{frame: &Frame{
		TID: "juh76", Method: "SEND", ToPath: mustParsePath(exRelayNet, exBobTLS), FromPath: mustParsePath(exIntra, exAliceTLS),
		Headers: []Header{{"Message-ID", "87652"}, {"Content-Type", "text/plain"}}, HasBody: true, Flag: '$',
	}, body: []byte("Hi Bob, I'm about to send you file.mpeg")}},
}

// rfcExampleFiles returns the names of testdata/rfc4975, sorted, and checks that
// each has an entry in rfcExpect.
func rfcExampleFiles(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "rfc4975", "*.msrp"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
		if _, ok := rfcExpect[names[i]]; !ok {
			t.Fatalf("%s has no expectation in rfcExpect", names[i])
		}
	}
	if len(names) != len(rfcExpect) {
		t.Fatalf("rfcExpect lists %d files, testdata holds %d", len(rfcExpect), len(names))
	}
	return names
}

func TestReaderRFCExamples(t *testing.T) {
	t.Parallel()
	for _, name := range rfcExampleFiles(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := NewReader(bytes.NewReader(readTestdata(t, name)), 4096, DefaultLimits)
			got, err := readFrames(t, r, 4096)
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want io.EOF", err)
			}
			want := rfcExpect[name]
			if !sameResults(got, want) {
				t.Fatalf("got\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// TestReaderStream reads every example back to back on one stream.
func TestReaderStream(t *testing.T) {
	t.Parallel()
	var stream []byte
	var want []readResult
	for _, name := range rfcExampleFiles(t) {
		stream = append(stream, readTestdata(t, name)...)
		want = append(want, rfcExpect[name]...)
	}
	for _, size := range []int{64, 100, 4096} {
		r := NewReader(bytes.NewReader(stream), size, DefaultLimits)
		got, err := readFrames(t, r, 4096)
		if err != io.EOF || !sameResults(got, want) {
			t.Fatalf("buffer %d: got %d frames then %v, want %d then io.EOF", size, len(got), err, len(want))
		}
	}
}

// splitReader returns its parts one per Read, as a network would.
type splitReader struct{ parts [][]byte }

func (s *splitReader) Read(p []byte) (int, error) {
	for len(s.parts) > 0 && len(s.parts[0]) == 0 {
		s.parts = s.parts[1:]
	}
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	return n, nil
}

// randomReader returns pieces of random size between 1 and max.
type randomReader struct {
	r   io.Reader
	rng *rand.Rand
	max int
}

func (rr *randomReader) Read(p []byte) (int, error) {
	n := 1 + rr.rng.IntN(rr.max)
	return rr.r.Read(p[:min(n, len(p))])
}

// chunkingStreams returns the examples and frames whose bodies hold bytes
// that look like end-lines, for the chunking tests.
func chunkingStreams(t *testing.T) map[string][]byte {
	streams := map[string][]byte{}
	for _, name := range rfcExampleFiles(t) {
		streams[name] = readTestdata(t, name)
	}
	const tid = "k2+x.9=Q"
	var all []byte
	for i, body := range trickyBodies(tid) {
		f := &Frame{TID: tid, Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice), HasBody: true, Flag: FlagMore}
		wire := f.Marshal([]byte(body))
		streams[fmt.Sprintf("tricky-%d", i)] = wire
		all = append(all, wire...)
	}
	streams["tricky-all"] = all
	return streams
}

// trickyBodies returns bodies that hold end-line look-alikes for tid.
func trickyBodies(tid string) []string {
	end := "\r\n-------" + tid
	return []string{
		"",
		"\r\n",
		"\r",
		"\r\n\r\n",
		end[2:] + "$\r\n",                  // end-line without its CRLF, at the start
		end + "X\r\nafter",                 // bad flag
		end + "$ \r\n",                     // flag not followed by CRLF
		end + "$\r",                        // flag and CR only, at the end
		end + "$\rX\n",                     // CR then something else
		end,                                // marker without flag, at the end
		end[:len(end)-1],                   // partial marker, at the end
		end + "0$\r\n",                     // a longer tid
		"\r\n-------other1$\r\n",           // another tid
		"\r\n------" + tid + "$\r\n",       // six dashes
		"\n-------" + tid + "$\r\n",        // LF only
		"x\r\r\n-------" + tid + "#\r\rx",  // CR CR
		strings.Repeat(end+"X", 40),        // many look-alikes, longer than small buffers
		strings.Repeat("\r\n-------", 100), // dashes without tid
		"\x00\xff\x00" + end + "\x00",
		allBytes(),
	}
}

func allBytes() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}

// TestReaderChunking reads each stream through readers that split it
// differently, with small and large buffers and body pieces, and expects the
// same frames and bodies as a single read.
func TestReaderChunking(t *testing.T) {
	t.Parallel()
	for name, data := range chunkingStreams(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := readFrames(t, NewReader(bytes.NewReader(data), 1<<16, DefaultLimits), 1<<16)
			if err != io.EOF || len(want) == 0 {
				t.Fatalf("reference read: %d frames, %v", len(want), err)
			}
			check := func(desc string, src io.Reader, size, piece int) {
				t.Helper()
				got, err := readFrames(t, NewReader(src, size, DefaultLimits), piece)
				if err != io.EOF || !sameResults(got, want) {
					t.Fatalf("%s, buffer %d, piece %d: got\n%v\nthen %v; want\n%v", desc, size, piece, got, err, want)
				}
			}
			for _, size := range []int{16, 64, 100, 4096} {
				for _, piece := range []int{1, 3, 4096} {
					check("OneByteReader", iotest.OneByteReader(bytes.NewReader(data)), size, piece)
					check("HalfReader", iotest.HalfReader(bytes.NewReader(data)), size, piece)
					check("DataErrReader", iotest.DataErrReader(bytes.NewReader(data)), size, piece)
					rng := rand.New(rand.NewPCG(uint64(size), uint64(piece)))
					for range 5 {
						check("randomReader", &randomReader{bytes.NewReader(data), rng, 1 + rng.IntN(80)}, size, piece)
					}
				}
			}
			// Every split point, for two reads.
			for k := 0; k <= len(data); k++ {
				for _, size := range []int{64, 4096} {
					check(fmt.Sprintf("split at %d", k), &splitReader{[][]byte{data[:k:k], data[k:]}}, size, 7)
				}
			}
		})
	}
}

// TestReaderTrickyBodies checks that each look-alike body comes back intact
// and that the frame after it is read normally.
func TestReaderTrickyBodies(t *testing.T) {
	t.Parallel()
	const tid = "k2+x.9=Q"
	next := readTestdata(t, "rfc4975-send-200.msrp")
	for i, body := range trickyBodies(tid) {
		f := &Frame{TID: tid, Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice), HasBody: true, Flag: FlagAborted}
		stream := append(f.Marshal([]byte(body)), next...)
		for _, size := range []int{16, 4096} {
			r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), size, DefaultLimits)
			got, err := readFrames(t, r, 5)
			if err != io.EOF || len(got) != 2 || got[0].err != nil || got[1].err != nil {
				t.Fatalf("body %d, buffer %d: got %v then %v", i, size, got, err)
			}
			if !bytes.Equal(got[0].body, []byte(body)) || got[0].frame.Flag != FlagAborted {
				t.Fatalf("body %d, buffer %d: got %q flag %q, want %q flag '#'", i, size, got[0].body, got[0].frame.Flag, body)
			}
			if got[1].frame.Status != 200 {
				t.Fatalf("body %d: next frame %v", i, got[1])
			}
		}
	}
}

func TestReaderRandomBinaryBodies(t *testing.T) {
	t.Parallel()
	const tid = "Zq9-x"
	rng := rand.New(rand.NewPCG(1, 2))
	fragments := []string{"\r\n-------" + tid, "\r\n-------", "-------" + tid + "$\r\n", "\r", "\n", "$", "+", "#", tid}
	for i := range 200 {
		var body []byte
		for range rng.IntN(40) {
			if rng.IntN(2) == 0 {
				body = append(body, fragments[rng.IntN(len(fragments))]...)
			} else {
				for range rng.IntN(300) {
					body = append(body, byte(rng.Uint32()))
				}
			}
		}
		if !validBody(body, tid) {
			continue
		}
		f := &Frame{TID: tid, Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice), HasBody: true}
		stream := f.Marshal(body)
		r := NewReader(&randomReader{bytes.NewReader(stream), rng, 1 + rng.IntN(100)}, 16+rng.IntN(200), DefaultLimits)
		got, err := readFrames(t, r, 1+rng.IntN(100))
		if err != io.EOF || len(got) != 1 || got[0].err != nil || !bytes.Equal(got[0].body, body) {
			t.Fatalf("body %d (%q): got %v then %v", i, body, got, err)
		}
	}
}

// validBody reports whether body can be sent in a frame of tid: it holds no
// end-line and does not end with one missing its CRLF.
func validBody(body []byte, tid string) bool {
	s := string(body) + "\r\n"
	end := "\r\n-------" + tid
	for i := 0; ; {
		j := strings.Index(s[i:], end)
		if j < 0 {
			return true
		}
		rest := s[i+j+len(end):]
		if len(rest) >= 3 && strings.IndexByte("$+#", rest[0]) >= 0 && rest[1:3] == "\r\n" {
			return false
		}
		i += j + 1
	}
}

func TestReaderSkipsUnreadBody(t *testing.T) {
	t.Parallel()
	big := &Frame{TID: "bigbody1", Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice), HasBody: true}
	stream := big.Marshal(bytes.Repeat([]byte("0123456789\r\n"), 1000))
	stream = append(stream, readTestdata(t, "rfc4975-send.msrp")...)
	stream = append(stream, readTestdata(t, "rfc4975-send-200.msrp")...)
	for _, read := range []int{0, 1, 100} {
		r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), 64, DefaultLimits)
		var frames []*Frame
		for {
			f, err := r.ReadFrame()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read %d: %v", read, err)
			}
			frames = append(frames, f)
			if f.HasBody && read > 0 {
				if n, err := r.ReadBody(make([]byte, read)); n == 0 || err != nil {
					t.Fatalf("ReadBody: %d, %v", n, err)
				}
			}
		}
		if len(frames) != 3 || frames[0].TID != "bigbody1" || frames[1].TID != "a786hjs2" || frames[2].Status != 200 {
			t.Fatalf("read %d: frames %v", read, frames)
		}
		for _, f := range frames {
			if f.Flag != FlagEnd {
				t.Fatalf("read %d: frame %s skipped with flag %q", read, f.TID, f.Flag)
			}
		}
	}
}

func TestReaderReadBodyStates(t *testing.T) {
	t.Parallel()
	r := NewReader(bytes.NewReader(readTestdata(t, "rfc4975-session.msrp")), 64, DefaultLimits)
	if n, err := r.ReadBody(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("ReadBody before a frame: %d, %v", n, err)
	}
	f, err := r.ReadFrame()
	if err != nil || !f.HasBody || f.Flag != 0 {
		t.Fatalf("ReadFrame: %+v, %v", f, err)
	}
	p := make([]byte, 1000)
	n, err := r.ReadBody(p)
	if err != nil || n == 0 || n > 64 {
		t.Fatalf("first piece: %d, %v", n, err)
	}
	for err == nil {
		_, err = r.ReadBody(nil)
	}
	if err != io.EOF || f.Flag != FlagEnd {
		t.Fatalf("end of body: %v, flag %q", err, f.Flag)
	}
	if n, err := r.ReadBody(p); n != 0 || err != io.EOF {
		t.Fatalf("ReadBody after the end: %d, %v", n, err)
	}
	f, err = r.ReadFrame()
	if err != nil || f.HasBody || f.Flag != FlagEnd {
		t.Fatalf("response: %+v, %v", f, err)
	}
	if n, err := r.ReadBody(p); n != 0 || err != io.EOF {
		t.Fatalf("ReadBody of a frame without body: %d, %v", n, err)
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
}

// TestReaderSmallBuffer uses a buffer smaller than an end-line with the
// longest transaction id.
func TestReaderSmallBuffer(t *testing.T) {
	t.Parallel()
	tid := strings.Repeat("a", maxTIDLength)
	f := &Frame{TID: tid, Method: "SEND", ToPath: mustParsePath(exBob), FromPath: mustParsePath(exAlice), HasBody: true}
	for _, size := range []int{0, 1, 16, 43, 44} {
		r := NewReader(bytes.NewReader(f.Marshal([]byte("hello"))), size, DefaultLimits)
		got, err := readFrames(t, r, 100)
		if err != io.EOF || len(got) != 1 || got[0].err != nil || string(got[0].body) != "hello" {
			t.Fatalf("buffer %d: %v then %v", size, got, err)
		}
	}
}

func TestReaderFrameErrors(t *testing.T) {
	t.Parallel()
	const (
		to   = "To-Path: " + exBob + "\r\n"
		from = "From-Path: " + exAlice + "\r\n"
		body = "Content-Type: text/plain\r\n\r\nsome body\r\n-------bad1tid$\r\n"
		end  = "-------bad1tid+\r\n"
	)
	tests := []struct {
		name, frame, reason string
		flag                byte
	}{
		{"missing To-Path", "MSRP bad1tid SEND\r\n" + from + end, "Missing Path", '+'},
		{"missing From-Path with body", "MSRP bad1tid SEND\r\n" + to + body, "Missing Path", '$'},
		{"no headers", "MSRP bad1tid SEND\r\n" + end, "Missing Path", '+'},
		{"response without paths", "MSRP bad1tid 200 OK\r\n" + end, "Missing Path", '+'},
		{"malformed To-Path", "MSRP bad1tid SEND\r\nTo-Path: http://bob.example.com;tcp\r\n" + from + end, "Malformed To-Path", '+'},
		{"To-Path without transport", "MSRP bad1tid SEND\r\nTo-Path: msrp://bob.example.com:8888/x\r\n" + from + body, "Malformed To-Path", '$'},
		{"empty To-Path", "MSRP bad1tid SEND\r\nTo-Path:\r\n" + from + end, "Malformed To-Path", '+'},
		{"malformed From-Path", "MSRP bad1tid SEND\r\n" + to + "From-Path: msrp://[::1;tcp\r\n" + end, "Malformed From-Path", '+'},
		{"one bad URI in path", "MSRP bad1tid SEND\r\n" + to + "From-Path: " + exAlice + " msrp://x:99999;tcp\r\n" + end, "Malformed From-Path", '+'},
		{"duplicate To-Path", "MSRP bad1tid SEND\r\n" + to + to + from + end, "Duplicate To-Path", '+'},
		{"duplicate From-Path", "MSRP bad1tid SEND\r\n" + to + from + from + body, "Duplicate From-Path", '$'},
		{"header without colon", "MSRP bad1tid SEND\r\n" + to + from + "Message-ID 12\r\n" + end, "Malformed Header", '+'},
		{"space in header name", "MSRP bad1tid SEND\r\n" + to + from + "Message ID: 12\r\n" + body, "Malformed Header", '$'},
		{"empty header name", "MSRP bad1tid SEND\r\n" + to + from + ": 12\r\n" + end, "Malformed Header", '+'},
		{"first error wins", "MSRP bad1tid SEND\r\nbad\r\n" + to + to + end, "Malformed Header", '+'},
		{"too many headers", "MSRP bad1tid SEND\r\n" + to + from + strings.Repeat("X-A: 1\r\n", 4) + end, "Too Many Headers", '+'},
		{"too many headers with body", "MSRP bad1tid SEND\r\n" + to + from + strings.Repeat("X-A: 1\r\n", 30) + body, "Too Many Headers", '$'},
	}
	next := readTestdata(t, "rfc4975-send.msrp")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stream := append([]byte(tt.frame), next...)
			for _, size := range []int{16, 4096} {
				r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), size, Limits{MaxLine: 1024, MaxHeaders: 5})
				f, err := r.ReadFrame()
				var fe *FrameError
				if !errors.As(err, &fe) {
					t.Fatalf("got %+v, %v; want *FrameError", f, err)
				}
				if f != nil || fe.Code != 400 || fe.Reason != tt.reason || fe.Frame.TID != "bad1tid" || fe.Frame.Flag != tt.flag {
					t.Fatalf("got frame %v, error %+v (flag %q); want 400 %s, flag %q", f, fe, fe.Frame.Flag, tt.reason, tt.flag)
				}
				if want := "msrp: transaction bad1tid: 400 " + tt.reason; err.Error() != want {
					t.Fatalf("Error() = %q, want %q", err, want)
				}
				got, err := readFrames(t, r, 100)
				if err != io.EOF || !sameResults(got, rfcExpect["rfc4975-send.msrp"]) {
					t.Fatalf("after the error: %v then %v", got, err)
				}
			}
		})
	}
}

func TestReaderSyntaxErrors(t *testing.T) {
	t.Parallel()
	lim := Limits{MaxLine: 128, MaxHeaders: 8}
	const head = "MSRP abcd SEND\r\nTo-Path: " + exBob + "\r\nFrom-Path: " + exAlice + "\r\n"
	// pad returns a header line of n bytes, CRLF included.
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n-len("X-Pad: \r\n")) + "\r\n" }
	tests := []struct{ name, stream string }{
		{"HTTP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"empty line", "\r\n"},
		{"MSRP alone", "MSRP\r\n"},
		{"lower-case protocol", "msrp abcd SEND\r\n"},
		{"no method", "MSRP abcdef\r\n"},
		{"short tid", "MSRP abc SEND\r\n"},
		{"long tid", "MSRP " + strings.Repeat("a", maxTIDLength+1) + " SEND\r\n"},
		{"tid starts with dash", "MSRP -abcd SEND\r\n"},
		{"tid with slash", "MSRP ab/cd SEND\r\n"},
		{"two spaces", "MSRP abcd  SEND\r\n"},
		{"lower-case method", "MSRP abcd send\r\n"},
		{"method and more", "MSRP abcd SEND x\r\n"},
		{"status below 100", "MSRP abcd 099 Low\r\n"},
		{"two-digit status", "MSRP abcd 20 OK\r\n"},
		{"four-digit status", "MSRP abcd 2000\r\n"},
		{"status without space", "MSRP abcd 200OK\r\n"},
		{"bare LF start line", "MSRP abcd SEND\n"},
		{"bare LF header", "MSRP abcd SEND\r\nTo-Path: " + exBob + "\n"},
		{"bare LF end-line", head + "-------abcd$\n"},
		{"long start line", "MSRP abcd SEND" + strings.Repeat(" ", 200) + "\r\n"},
		{"long header line", head + pad(129) + "-------abcd$\r\n"},
		{"long line without LF", head + strings.Repeat("x", 1000)},
		{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"},
		{"garbage after a frame", string(readTestdata(t, "rfc4975-send-200.msrp")) + "hello\r\n"},
		{"body ends with end-line", head + "\r\nbody\r\n-------abcd$\r\n-------abcd$\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, size := range []int{16, 4096} {
				r := NewReader(bytes.NewReader([]byte(tt.stream)), size, lim)
				_, err := readFrames(t, r, 100)
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("buffer %d: got %v, want ErrSyntax", size, err)
				}
			}
		})
	}
	// A line of MaxLine bytes is accepted.
	for _, size := range []int{16, 4096} {
		r := NewReader(strings.NewReader(head+pad(128)+"-------abcd$\r\n"), size, lim)
		got, err := readFrames(t, r, 100)
		if err != io.EOF || len(got) != 1 || got[0].frame.Get("X-Pad") == "" {
			t.Fatalf("buffer %d: line of MaxLine bytes: %v then %v", size, got, err)
		}
	}
}

// TestReaderTruncated cuts each example at every byte: a stream that ends
// inside a frame gives io.ErrUnexpectedEOF, one that ends between frames
// io.EOF.
func TestReaderTruncated(t *testing.T) {
	t.Parallel()
	for _, name := range rfcExampleFiles(t) {
		data := readTestdata(t, name)
		ends := map[int]int{0: 0} // offset of a frame boundary: frames before it
		off := 0
		for i, want := range rfcExpect[name] {
			off += len(want.frame.Marshal(want.body))
			ends[off] = i + 1
		}
		for k := range len(data) {
			r := NewReader(bytes.NewReader(data[:k]), 64, DefaultLimits)
			got, err := readFrames(t, r, 100)
			n, atEnd := ends[k]
			switch {
			case atEnd && (err != io.EOF || len(got) != n):
				t.Fatalf("%s cut at %d: %d frames then %v, want %d then io.EOF", name, k, len(got), err, n)
			case !atEnd && err != io.ErrUnexpectedEOF:
				t.Fatalf("%s cut at %d: %d frames then %v, want io.ErrUnexpectedEOF", name, k, len(got), err)
			}
		}
	}
}

func TestReaderEOFMidBody(t *testing.T) {
	t.Parallel()
	r := NewReader(strings.NewReader("MSRP abcd SEND\r\nTo-Path: "+exBob+"\r\nFrom-Path: "+exAlice+"\r\n\r\nhalf a bo"), 64, DefaultLimits)
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(bodyReader{r})
	if err != io.ErrUnexpectedEOF || !f.HasBody || f.Flag != 0 {
		t.Fatalf("body %q, %v, flag %q", body, err, f.Flag)
	}
	if _, err := r.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadFrame after a cut body: %v", err)
	}
}

// bodyReader adapts ReadBody to io.Reader for io.ReadAll.
type bodyReader struct{ r *Reader }

func (b bodyReader) Read(p []byte) (int, error) { return b.r.ReadBody(p) }

func TestReaderIOError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	data := readTestdata(t, "rfc4975-send.msrp")
	for k := range len(data) {
		r := NewReader(io.MultiReader(bytes.NewReader(data[:k]), iotest.ErrReader(boom)), 64, DefaultLimits)
		if _, err := readFrames(t, r, 100); err != boom {
			t.Fatalf("cut at %d: %v, want the reader's error", k, err)
		}
	}
}

// A line that starts another frame inside a frame's headers loses the frame
// boundaries: the stream is not MSRP any more.
func TestReaderLostBoundary(t *testing.T) {
	for _, line := range []string{"-------othertid$", "MSRP abcd1234 SEND"} {
		in := "MSRP a1b2c3d4 SEND\r\nTo-Path: msrp://b.example.com:7777/s;tcp\r\n" + line + "\r\n"
		r := NewReader(strings.NewReader(in), 4096, DefaultLimits)
		if _, err := r.ReadFrame(); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q in the headers: err %v, want ErrSyntax", line, err)
		}
	}
}
