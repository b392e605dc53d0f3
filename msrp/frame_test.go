package msrp

import (
	"bytes"
	"io"
	"reflect"
	"testing"
)

// TestFrameMarshalRFCExamples marshals each parsed example and expects the bytes
// of the file: the examples are written as Marshal writes.
func TestFrameMarshalRFCExamples(t *testing.T) {
	t.Parallel()
	for _, name := range rfcExampleFiles(t) {
		data := readTestdata(t, name)
		got, err := readFrames(t, NewReader(bytes.NewReader(data), 4096, DefaultLimits), 4096)
		if err != io.EOF {
			t.Fatalf("%s: %v", name, err)
		}
		var out []byte
		for _, g := range got {
			out = append(out, g.frame.Marshal(g.body)...)
		}
		if !bytes.Equal(out, data) {
			t.Errorf("%s: Marshal gave\n%q\nwant\n%q", name, out, data)
		}
	}
}

func TestFrameMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	to, from := mustParsePath(exIntra, exRelayNet, exBobTLS), mustParsePath(exAliceTLS)
	tests := []struct {
		name  string
		frame Frame
		body  string
	}{
		{"request with body", Frame{TID: "t1xy", Method: "SEND", ToPath: to, FromPath: from,
			Headers: []Header{{"Message-ID", "m1"}, {"Content-Type", "text/plain"}}, HasBody: true, Flag: FlagMore}, "hi\r\nthere"},
		{"empty body", Frame{TID: "t2xy", Method: "SEND", ToPath: to, FromPath: from,
			Headers: []Header{{"Content-Type", "text/plain"}}, HasBody: true, Flag: FlagEnd}, ""},
		{"aborted", Frame{TID: "t3xy", Method: "SEND", ToPath: to, FromPath: from, HasBody: true, Flag: FlagAborted}, "\x00\r\n-------t3xy"},
		{"no body", Frame{TID: "t4xy", Method: "REPORT", ToPath: to, FromPath: from,
			Headers: []Header{{"Status", StatusValue(413, "Stop")}}, Flag: FlagEnd}, ""},
		{"response", Frame{TID: "t5xy", Status: 481, Comment: "No Such Session", ToPath: from, FromPath: to, Flag: FlagEnd}, ""},
		{"response without comment", Frame{TID: "t6xy", Status: 200, ToPath: from, FromPath: to, Flag: FlagEnd}, ""},
		{"empty header value", Frame{TID: "t7xy", Method: "NICKNAME", ToPath: to, FromPath: from,
			Headers: []Header{{"X-Empty", ""}}, Flag: FlagEnd}, ""},
		{"flag unset", Frame{TID: "t8xy", Method: "SEND", ToPath: to, FromPath: from, HasBody: true}, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wire := tt.frame.Marshal([]byte(tt.body))
			got, err := readFrames(t, NewReader(bytes.NewReader(wire), 64, DefaultLimits), 3)
			if err != io.EOF || len(got) != 1 || got[0].err != nil {
				t.Fatalf("%q: %v then %v", wire, got, err)
			}
			want := tt.frame
			if want.Flag == 0 {
				want.Flag = FlagEnd
			}
			if !reflect.DeepEqual(*got[0].frame, want) || string(got[0].body) != tt.body {
				t.Fatalf("got %+v body %q, want %+v body %q", *got[0].frame, got[0].body, want, tt.body)
			}
		})
	}
}

func TestFrameAppendHeadEnd(t *testing.T) {
	t.Parallel()
	f := &Frame{TID: "ab12", Method: "SEND", ToPath: mustParsePath("msrp://b.example.com;tcp"), FromPath: mustParsePath("msrp://a.example.com:1/s;tcp"),
		Headers: []Header{{"Message-ID", "1"}}}
	const head = "MSRP ab12 SEND\r\nTo-Path: msrp://b.example.com;tcp\r\nFrom-Path: msrp://a.example.com:1/s;tcp\r\nMessage-ID: 1\r\n"
	if got := string(f.AppendHead([]byte("x"))); got != "x"+head {
		t.Errorf("AppendHead without body = %q", got)
	}
	if got := string(f.AppendEnd(nil, FlagMore)); got != "-------ab12+\r\n" {
		t.Errorf("AppendEnd without body = %q", got)
	}
	f.HasBody = true
	if got := string(f.AppendHead(nil)); got != head+"\r\n" {
		t.Errorf("AppendHead with body = %q", got)
	}
	if got := string(f.AppendEnd(nil, FlagAborted)); got != "\r\n-------ab12#\r\n" {
		t.Errorf("AppendEnd with body = %q", got)
	}
	r := &Frame{TID: "ab12", Status: 200, Comment: "OK"}
	if got := string(r.AppendHead(nil)); got != "MSRP ab12 200 OK\r\nTo-Path: \r\nFrom-Path: \r\n" {
		t.Errorf("AppendHead of a response = %q", got)
	}
}

func TestFrameHeaders(t *testing.T) {
	t.Parallel()
	f := &Frame{Headers: []Header{{"Message-ID", "1"}, {"Byte-Range", "1-*/*"}, {"Content-Type", "text/plain"}, {"message-id", "2"}}}
	if f.IsResponse() != true || (&Frame{Method: "SEND"}).IsResponse() {
		t.Error("IsResponse")
	}
	if got := f.Get("MESSAGE-ID"); got != "1" {
		t.Errorf("Get = %q, want the first", got)
	}
	if got := f.Get("Status"); got != "" {
		t.Errorf("Get of a missing header = %q", got)
	}
	f.Set("message-id", "3")
	f.Set("Status", "000 200 OK")
	f.Set("Content-Disposition", "inline")
	// Content-Type stays last: RFC 4975 puts other MIME headers before it.
	want := []Header{{"Message-ID", "3"}, {"Byte-Range", "1-*/*"}, {"Status", "000 200 OK"},
		{"Content-Disposition", "inline"}, {"Content-Type", "text/plain"}, {"message-id", "2"}}
	if !reflect.DeepEqual(f.Headers, want) {
		t.Errorf("after Set: %v, want %v", f.Headers, want)
	}
	g := &Frame{}
	g.Set("Expires", "900")
	if !reflect.DeepEqual(g.Headers, []Header{{"Expires", "900"}}) {
		t.Errorf("Set on an empty frame: %v", g.Headers)
	}
}

func TestParseByteRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, out string
		want    ByteRange
	}{
		{"", "1-*/*", ByteRange{1, -1, -1}},
		{"1-*/*", "1-*/*", ByteRange{1, -1, -1}},
		{"1-25/25", "1-25/25", ByteRange{1, 25, 25}},
		{"1-*/8", "1-*/8", ByteRange{1, -1, 8}},
		{"5-8/8", "5-8/8", ByteRange{5, 8, 8}},
		{"1-0/0", "1-0/0", ByteRange{1, 0, 0}},
		{"7-6/*", "7-6/*", ByteRange{7, 6, -1}},
		{"001-010/100", "1-10/100", ByteRange{1, 10, 100}},
		{"1-999999999999999999/*", "1-999999999999999999/*", ByteRange{1, 999999999999999999, -1}},
	}
	for _, tt := range tests {
		got, err := ParseByteRange(tt.in)
		if err != nil || got != tt.want || got.String() != tt.out {
			t.Errorf("ParseByteRange(%q) = %+v (%q), %v; want %+v (%q)", tt.in, got, got.String(), err, tt.want, tt.out)
		}
	}
	for _, in := range []string{
		"1-2", "1/2", "-2/2", "0-2/2", "*-2/2", "1-2/1", "3-1/5", "1-2/", "1-/2", "1-*/", " 1-2/2", "1-2/2 ",
		"+1-2/2", "1-+2/2", "1-2/-2", "a-2/2", "1-2/2/2", "1--2/2", "1-2/*/", "1-9999999999999999999/*", "1-2\r/2",
	} {
		if got, err := ParseByteRange(in); err != ErrByteRange {
			t.Errorf("ParseByteRange(%q) = %+v, %v; want ErrByteRange", in, got, err)
		}
	}
}

func TestFrameStatus(t *testing.T) {
	t.Parallel()
	if got := StatusValue(200, "OK"); got != "000 200 OK" {
		t.Errorf("StatusValue = %q", got)
	}
	if got := StatusValue(413, ""); got != "000 413" {
		t.Errorf("StatusValue without comment = %q", got)
	}
	for in, want := range map[string]int{"000 200 OK": 200, "000 413": 413, "000 481 No Such Session": 481, "123 408 x y": 408} {
		if got, err := ParseStatus(in); got != want || err != nil {
			t.Errorf("ParseStatus(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "200", "000", "000 ", "00 200", "0000 200", "abc 200", "000 20", "000 2000",
		"000 +20", "000 -20", "000 2a0", "000  200", " 000 200"} {
		if got, err := ParseStatus(in); err == nil {
			t.Errorf("ParseStatus(%q) = %d, want an error", in, got)
		}
	}
}

func TestFrameNewTID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		tid := NewTID()
		if !isTID(tid) || seen[tid] {
			t.Fatalf("NewTID = %q: invalid or repeated", tid)
		}
		seen[tid] = true
	}
}

func TestFrameIsTID(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"abcd", "a786hjs2", "49fh", "0.-+%=", "Zz99", "a" + string(bytes.Repeat([]byte("b"), 31))} {
		if !isTID(s) {
			t.Errorf("isTID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "abc", ".abc", "-abc", "ab cd", "ab/cd", "ab$d", "a" + string(bytes.Repeat([]byte("b"), 32))} {
		if isTID(s) {
			t.Errorf("isTID(%q) = true", s)
		}
	}
}
