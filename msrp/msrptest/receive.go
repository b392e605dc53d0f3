package msrptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-chat/cairn/msrp"
)

// Incoming is a complete message, REPORT or other request the endpoint
// received.
type Incoming struct {
	Method      string // SEND, REPORT, or another method (answered 501)
	MessageID   string
	ContentType string
	// Body is the body kept in memory; nil when it went to Options.Sink or
	// when Err is set.
	Body []byte
	// Bytes counts the body bytes assembled, duplicates excluded.
	Bytes   int64
	Aborted bool // the last chunk ended with '#'
	Status  int  // REPORT: the code of its Status header, 0 if malformed
	// FromPath and ToPath are those of the first chunk, as is Frame.
	FromPath, ToPath []msrp.URI
	Frame            *msrp.Frame
	// Err is a reassembly fault: a chunk that leaves a gap in the
	// Byte-Range sequence, a body over MaxBody, a Sink write error. Bytes
	// after the fault are not assembled.
	Err error
}

// Received returns the next incoming message or REPORT, waiting for one
// until ctx ends. Once the connection has ended and nothing is left, it
// returns an error wrapping Err().
func (e *Endpoint) Received(ctx context.Context) (Incoming, error) {
	for {
		e.mu.Lock()
		if len(e.inbox) > 0 {
			in := e.inbox[0]
			e.inbox[0] = Incoming{}
			e.inbox = e.inbox[1:]
			e.mu.Unlock()
			return in, nil
		}
		e.mu.Unlock()
		select {
		case <-e.notify:
		case <-ctx.Done():
			return Incoming{}, ctx.Err()
		case <-e.done:
			e.mu.Lock()
			left := len(e.inbox)
			e.mu.Unlock()
			if left == 0 {
				return Incoming{}, e.ended()
			}
		}
	}
}

func (e *Endpoint) deliver(in Incoming) {
	e.mu.Lock()
	e.inbox = append(e.inbox, in)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	err := e.serve()
	e.close()
	e.mu.Lock()
	if e.closed {
		err = ErrClosed
	}
	e.err = err
	e.mu.Unlock()
	close(e.done)
}

func (e *Endpoint) serve() error {
	for {
		f, err := e.rd.ReadFrame()
		if fe := (*msrp.FrameError)(nil); errors.As(err, &fe) {
			if !fe.Frame.IsResponse() && fe.Frame.Method != "REPORT" && failureReport(fe.Frame) != "no" {
				e.respond(fe.Frame, fe.Code, fe.Reason)
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := e.handle(f); err != nil {
			return err
		}
	}
}

func (e *Endpoint) handle(f *msrp.Frame) error {
	if f.IsResponse() {
		e.mu.Lock()
		ch := e.pending[f.TID]
		delete(e.pending, f.TID)
		e.mu.Unlock()
		if ch != nil {
			ch <- f
		}
		return nil // a body, if any, is skipped by the next ReadFrame
	}
	if !msrp.EqualPaths(f.ToPath, []msrp.URI{e.self}) {
		if f.Method != "REPORT" && failureReport(f) != "no" {
			e.respond(f, 481, "Session Does Not Exist")
		}
		return nil
	}
	if f.Method == "SEND" {
		return e.onSend(f)
	}
	return e.onOther(f)
}

// failureReport returns the Failure-Report of a request, "yes" by default.
func failureReport(f *msrp.Frame) string {
	if v := strings.ToLower(f.Get("Failure-Report")); v != "" {
		return v
	}
	return "yes"
}

// respond queues the response to req: To-Path is the previous hop, From-Path
// this endpoint (RFC 4975 §7.2).
func (e *Endpoint) respond(req *msrp.Frame, code int, comment string) {
	if len(req.FromPath) == 0 {
		return
	}
	r := msrp.Frame{TID: req.TID, Status: code, Comment: comment,
		ToPath: req.FromPath[:1], FromPath: []msrp.URI{e.self}}
	e.queue(r.Marshal(nil))
}

// partial is an incoming message being assembled.
type partial struct {
	in        Incoming
	next      int64     // the byte offset (from 1) expected next
	sink      io.Writer // nil: the body goes to mem
	sinkAsked bool
	mem       []byte
	total     int64 // the Byte-Range total of the first chunk, -1 for "*"
}

func (e *Endpoint) newPartial(f *msrp.Frame, total int64) *partial {
	return &partial{
		in: Incoming{Method: f.Method, MessageID: f.Get("Message-ID"), ContentType: f.Get("Content-Type"),
			FromPath: f.FromPath, ToPath: f.ToPath, Frame: f},
		next:  1,
		total: total,
	}
}

// readBody assembles the body of the current frame, which starts at byte
// offset start of the message.
func (e *Endpoint) readBody(m *partial, start int64) error {
	for off := start; ; {
		n, err := e.rd.ReadBody(e.scratch)
		if n > 0 {
			e.assemble(m, off, e.scratch[:n])
			off += int64(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// assemble adds p, found at byte offset off, to m: bytes already assembled
// are dropped, a gap is a fault.
func (e *Endpoint) assemble(m *partial, off int64, p []byte) {
	if m.in.Err != nil {
		return
	}
	if off > m.next {
		m.in.Err = fmt.Errorf("msrptest: message %s: chunk data at byte %d, want %d", m.in.MessageID, off, m.next)
		return
	}
	if dup := m.next - off; dup > 0 {
		if dup >= int64(len(p)) {
			return
		}
		p = p[dup:]
	}
	if !m.sinkAsked {
		m.sinkAsked = true
		if e.o.Sink != nil && m.in.Method == "SEND" {
			m.sink = e.o.Sink(m.in.MessageID)
		}
		if m.sink == nil && m.total > 0 && m.total <= int64(e.o.MaxBody) {
			m.mem = make([]byte, 0, m.total)
		}
	}
	switch {
	case m.sink != nil:
		if _, err := m.sink.Write(p); err != nil {
			m.in.Err = fmt.Errorf("msrptest: message %s: sink: %w", m.in.MessageID, err)
			return
		}
	case len(m.mem)+len(p) > e.o.MaxBody:
		m.in.Err = fmt.Errorf("msrptest: message %s: body over %d bytes", m.in.MessageID, e.o.MaxBody)
		m.mem = nil
		return
	default:
		m.mem = append(m.mem, p...)
	}
	m.next += int64(len(p))
	m.in.Bytes += int64(len(p))
}

// onSend answers and assembles one SEND chunk. A message is delivered at
// its last chunk, unless it is empty (a bind or keep-alive SEND).
func (e *Endpoint) onSend(f *msrp.Frame) error {
	fr := failureReport(f)
	id := f.Get("Message-ID")
	r, err := msrp.ParseByteRange(f.Get("Byte-Range"))
	if id == "" || err != nil {
		if fr != "no" {
			e.respond(f, 400, "Bad Request")
		}
		return nil
	}
	m := e.msgs[id]
	if m == nil {
		m = e.newPartial(f, r.Total)
		e.msgs[id] = m
	}
	if err := e.readBody(m, r.Start); err != nil {
		return err
	}
	if fr == "yes" {
		e.respond(f, 200, "OK")
	}
	if f.Flag == msrp.FlagMore {
		return nil
	}
	delete(e.msgs, id)
	in := m.in
	in.Aborted = f.Flag == msrp.FlagAborted
	if in.Bytes == 0 && !in.Aborted && in.Err == nil {
		return nil
	}
	if m.sink == nil && in.Err == nil {
		in.Body = m.mem
	}
	if !in.Aborted && in.Err == nil && strings.EqualFold(in.Frame.Get("Success-Report"), "yes") {
		rep := msrp.Frame{TID: msrp.NewTID(), Method: "REPORT", ToPath: f.FromPath, FromPath: []msrp.URI{e.self},
			Headers: []msrp.Header{
				{Name: "Message-ID", Value: id},
				{Name: "Byte-Range", Value: msrp.ByteRange{Start: 1, End: in.Bytes, Total: in.Bytes}.String()},
				{Name: "Status", Value: msrp.StatusValue(200, "OK")},
			}}
		e.queue(rep.Marshal(nil))
	}
	e.deliver(in)
	return nil
}

// onOther delivers a REPORT, or answers 501 to and delivers any other
// request; their bodies are kept in memory.
func (e *Endpoint) onOther(f *msrp.Frame) error {
	m := e.newPartial(f, -1)
	if err := e.readBody(m, 1); err != nil {
		return err
	}
	in := m.in
	in.Aborted = f.Flag == msrp.FlagAborted
	if in.Err == nil {
		in.Body = m.mem
	}
	if f.Method == "REPORT" {
		in.Status, _ = msrp.ParseStatus(f.Get("Status"))
	} else {
		e.respond(f, 501, "Unknown Method")
	}
	e.deliver(in)
	return nil
}
