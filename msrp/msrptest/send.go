package msrptest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-chat/cairn/msrp"
)

// Message is a message for Send.
type Message struct {
	ID          string // Message-ID; random when empty
	ContentType string
	Body        io.Reader // nil is an empty body
	// Size is the length of Body, the Byte-Range total; -1 when unknown
	// ("*"). Send fails if Body does not hold exactly Size bytes.
	Size int64
	// FailureReport is "yes" (the default when empty), "partial" or "no";
	// a header is sent only when it is set.
	FailureReport string
	SuccessReport bool
}

// StatusError is a final response other than 200.
type StatusError struct {
	Code    int
	Comment string
	Frame   *msrp.Frame // the response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("msrptest: %d %s", e.Code, e.Comment)
}

// Send sends m to toPath (the relays' Use-Path, then the peer's path) from
// Self in chunks of ChunkSize bytes. With Failure-Report yes it keeps up to
// Window chunks awaiting their response and returns once every chunk is
// answered 200, or a *StatusError for the first other answer, after which it
// sends no more chunks. With partial or no it returns once the last chunk is
// written; failures come back as REPORTs on Received. If ctx ends while a
// chunk is being written, the connection is closed.
func (e *Endpoint) Send(ctx context.Context, toPath []msrp.URI, m Message) error {
	id := m.ID
	if id == "" {
		id = randomHex(12)
	}
	waitOK := true
	switch m.FailureReport {
	case "", "yes":
	case "partial", "no":
		waitOK = false
	default:
		return fmt.Errorf("msrptest: Failure-Report %q", m.FailureReport)
	}
	body := m.Body
	if body == nil {
		body = strings.NewReader("")
	}
	src := bufio.NewReaderSize(body, e.o.ChunkSize)
	chunk := make([]byte, e.o.ChunkSize)
	var buf []byte
	type waiting struct {
		tid string
		ch  chan *msrp.Frame
	}
	var inflight []waiting
	defer func() {
		for _, w := range inflight {
			e.forget(w.tid)
		}
	}()
	for start := int64(1); ; {
		n, err := io.ReadFull(src, chunk)
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if err == nil {
			_, err = src.Peek(1)
			last = err == io.EOF
		}
		if err != nil && !last {
			return fmt.Errorf("msrptest: message %s: read body: %w", id, err)
		}
		end := start + int64(n) - 1
		if m.Size >= 0 && (end > m.Size || last && end != m.Size) {
			return fmt.Errorf("msrptest: message %s: body is not Size (%d) bytes", id, m.Size)
		}
		f := msrp.Frame{TID: msrp.NewTID(), Method: "SEND", ToPath: toPath, FromPath: []msrp.URI{e.self},
			HasBody: n > 0, Headers: []msrp.Header{
				{Name: "Message-ID", Value: id},
				{Name: "Byte-Range", Value: msrp.ByteRange{Start: start, End: end, Total: max(m.Size, -1)}.String()},
			}}
		if m.FailureReport != "" {
			f.Headers = append(f.Headers, msrp.Header{Name: "Failure-Report", Value: m.FailureReport})
		}
		if m.SuccessReport {
			f.Headers = append(f.Headers, msrp.Header{Name: "Success-Report", Value: "yes"})
		}
		if n > 0 && m.ContentType != "" {
			f.Headers = append(f.Headers, msrp.Header{Name: "Content-Type", Value: m.ContentType})
		}
		flag := msrp.FlagMore
		if last {
			flag = msrp.FlagEnd
		}
		if waitOK {
			inflight = append(inflight, waiting{f.TID, e.expect(f.TID)})
		}
		buf = f.AppendEnd(append(f.AppendHead(buf[:0]), chunk[:n]...), flag)
		if err := e.writeFrame(ctx, buf); err != nil {
			return err
		}
		for len(inflight) >= e.o.Window || last && len(inflight) > 0 {
			r, err := e.await(ctx, inflight[0].ch)
			if err != nil {
				return err
			}
			inflight = inflight[1:]
			if r.Status != 200 {
				return &StatusError{Code: r.Status, Comment: r.Comment, Frame: r}
			}
		}
		if last {
			return nil
		}
		start = end + 1
	}
}

// Request sends f with body and returns the response, whatever its status.
// f is sent as it is, except that an empty TID is made up, a nil FromPath
// is [Self] and a non-nil body sets HasBody. A REPORT gets no response, so
// Request waits for ctx.
func (e *Endpoint) Request(ctx context.Context, f *msrp.Frame, body []byte) (*msrp.Frame, error) {
	g := *f
	if g.TID == "" {
		g.TID = msrp.NewTID()
	}
	if g.FromPath == nil {
		g.FromPath = []msrp.URI{e.self}
	}
	g.HasBody = g.HasBody || body != nil
	ch := e.expect(g.TID)
	defer e.forget(g.TID)
	if err := e.writeFrame(ctx, g.Marshal(body)); err != nil {
		return nil, err
	}
	return e.await(ctx, ch)
}

// WriteRaw writes b as it is (over WebSocket, as one message).
func (e *Endpoint) WriteRaw(b []byte) error {
	return e.writeFrame(context.Background(), b)
}

// IsStatus reports whether err is a *StatusError with the given code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}
