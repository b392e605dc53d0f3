package msrp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits bound what a Reader accepts.
type Limits struct {
	MaxLine    int // bytes in one start or header line, CRLF included
	MaxHeaders int // header lines in one frame
}

// DefaultLimits are the limits of the reference relay: 16 KiB lines, 64
// headers.
var DefaultLimits = Limits{MaxLine: 16384, MaxHeaders: 64}

// ErrSyntax is returned when the stream is not MSRP; nothing more can be
// read from it.
var ErrSyntax = errors.New("msrp: syntax error")

// FrameError is a frame the Reader could delimit but not accept. Frame holds
// what was parsed (at least TID and the start line); the stream stays usable,
// since the Reader has skipped the rest of the frame. Code is the status to
// answer a request with.
type FrameError struct {
	Frame  *Frame
	Code   int
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("msrp: transaction %s: %d %s", e.Frame.TID, e.Code, e.Reason)
}

// Reader reads frames from a byte stream. ReadFrame returns the head of the
// next frame; when the frame has a body, ReadBody returns it piece by piece,
// without ever holding more than the buffer, until io.EOF at its end-line.
type Reader struct {
	br     *bufio.Reader
	lim    Limits
	frame  *Frame
	end    []byte // "\r\n-------" + tid while a body is being read
	inBody bool
}

// minBuffer holds the longest end-line marker ReadBody peeks at: CRLF,
// seven dashes, a 32-byte transaction id, the flag and CRLF.
const minBuffer = 64

// NewReader reads from r through a buffer of size bytes, at least 64.
func NewReader(r io.Reader, size int, lim Limits) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, max(size, minBuffer)), lim: lim}
}

// Buffered returns how many bytes are buffered and not yet returned.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadFrame reads the start line and headers of the next frame, skipping
// whatever remains of the body of the previous one. A frame without a body
// comes back with its end-line read and Flag set. It returns io.EOF only
// when the stream ends between frames, io.ErrUnexpectedEOF inside one.
func (r *Reader) ReadFrame() (*Frame, error) {
	for r.inBody {
		if _, err := r.ReadBody(nil); err != nil && err != io.EOF {
			return nil, err
		}
	}
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	f, err := parseStart(line)
	if err != nil {
		return nil, err
	}
	r.frame = f
	var ferr *FrameError
	fail := func(reason string) {
		if ferr == nil {
			ferr = &FrameError{Frame: f, Code: 400, Reason: reason}
		}
	}
	for n := 0; ; n++ {
		line, err := r.line()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
		if isEndLine(line, f.TID) {
			f.Flag = line[len(endDashes)+len(f.TID)]
			break
		}
		if bytes.HasPrefix(line, []byte(endDashes)) || bytes.HasPrefix(line, []byte("MSRP ")) {
			// Another transaction's end-line or start line: the frame
			// boundaries are lost.
			return nil, fmt.Errorf("%w: frame %s not ended", ErrSyntax, f.TID)
		}
		if len(line) == 0 {
			f.HasBody = true
			r.end = append(append(append(r.end[:0], "\r\n"...), endDashes...), f.TID...)
			r.inBody = true
			break
		}
		if n >= r.lim.MaxHeaders {
			fail("Too Many Headers")
			continue
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok || !isToken(name) {
			fail("Malformed Header")
			continue
		}
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "To-Path"):
			if f.ToPath != nil {
				fail("Duplicate To-Path")
			} else if f.ToPath, err = ParsePath(value); err != nil {
				fail("Malformed To-Path")
			}
		case strings.EqualFold(name, "From-Path"):
			if f.FromPath != nil {
				fail("Duplicate From-Path")
			} else if f.FromPath, err = ParsePath(value); err != nil {
				fail("Malformed From-Path")
			}
		default:
			f.Headers = append(f.Headers, Header{Name: name, Value: value})
		}
	}
	if ferr == nil && (f.ToPath == nil || f.FromPath == nil) {
		fail("Missing Path")
	}
	if ferr != nil {
		if err := r.skipBody(); err != nil {
			return nil, err
		}
		return nil, ferr
	}
	return f, nil
}

// skipBody discards the body of the current frame, if any.
func (r *Reader) skipBody() error {
	for r.inBody {
		if _, err := r.ReadBody(nil); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// ReadBody reads body bytes of the current frame into p and returns io.EOF
// (with no bytes) once the end-line has been read; the frame's Flag is then
// set. It returns at most what is buffered, reading from the stream only
// when nothing is. A nil p discards what it would have returned.
func (r *Reader) ReadBody(p []byte) (int, error) {
	if !r.inBody {
		return 0, io.EOF
	}
	need := len(r.end) + 3 // the marker, the flag and CRLF
	if r.br.Buffered() < need {
		if _, err := r.br.Peek(need); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	buf, _ := r.br.Peek(r.br.Buffered())
	n := len(buf) - (need - 1) // a marker may start in the last need-1 bytes
	switch i := bytes.Index(buf, r.end); {
	case i > 0:
		n = i
	case i == 0:
		if flag := buf[len(r.end)]; (flag == FlagEnd || flag == FlagMore || flag == FlagAborted) &&
			buf[len(r.end)+1] == '\r' && buf[len(r.end)+2] == '\n' {
			r.br.Discard(need)
			r.frame.Flag = flag
			r.inBody = false
			return 0, io.EOF
		}
		n = 1 // a CR of the body that looks like an end-line
	}
	if p != nil {
		n = copy(p, buf[:n])
	}
	r.br.Discard(n)
	return n, nil
}

// line returns the next line without its CRLF. The slice is valid until the
// next read.
func (r *Reader) line() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull && len(long) <= r.lim.MaxLine {
			line, err = r.br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, err
	}
	if len(line) > r.lim.MaxLine || err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrSyntax, r.lim.MaxLine)
	}
	if err == io.EOF {
		if len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not ended by CRLF", ErrSyntax)
	}
	return line[:len(line)-2], nil
}

func isEndLine(line []byte, tid string) bool {
	return len(line) == len(endDashes)+len(tid)+1 && string(line[:len(endDashes)]) == endDashes &&
		string(line[len(endDashes):len(line)-1]) == tid && strings.IndexByte("$+#", line[len(line)-1]) >= 0
}

// parseStart parses "MSRP <tid> <METHOD>" or "MSRP <tid> <code> [comment]".
func parseStart(line []byte) (*Frame, error) {
	s := string(line)
	rest, ok := strings.CutPrefix(s, "MSRP ")
	if !ok {
		return nil, fmt.Errorf("%w: not an MSRP start line", ErrSyntax)
	}
	tid, rest, ok := strings.Cut(rest, " ")
	if !ok || !isTID(tid) {
		return nil, fmt.Errorf("%w: bad transaction id", ErrSyntax)
	}
	f := &Frame{TID: tid}
	if len(rest) >= 3 && isDigits(rest[:3]) && (len(rest) == 3 || rest[3] == ' ') {
		f.Status, _ = strconv.Atoi(rest[:3])
		if len(rest) > 3 {
			f.Comment = rest[4:]
		}
		if f.Status < 100 {
			return nil, fmt.Errorf("%w: bad status code", ErrSyntax)
		}
		return f, nil
	}
	if rest == "" || strings.TrimLeft(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return nil, fmt.Errorf("%w: bad method", ErrSyntax)
	}
	f.Method = rest
	return f, nil
}

func isDigits(s string) bool { return s != "" && strings.TrimLeft(s, "0123456789") == "" }
