package msrp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/msrp"
	"github.com/cairn-chat/cairn/msrp/msrptest"
)

// These tests follow a chunk along the paths of docs/design/0003: the
// failure REPORTs a relay owes its sender (RFC 4975 §7.1.2, RFC 4976 §7.3),
// backpressure from a slow receiver, frames of one direction going out
// between the pieces of a long chunk of the other, and chains of two relays.

// TestReports: a SEND chunk that fails beyond the relay comes back to its
// sender as a REPORT carrying the status, Message-ID and Byte-Range, as its
// Failure-Report asks.
func TestReports(t *testing.T) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			r := startRelay(t, eng, nil)
			t.Run("FailureResponse", func(t *testing.T) { testReportFailureResponse(t, r) })
			t.Run("NoResponse", func(t *testing.T) { testReportNoResponse(t, r) })
			t.Run("ReceiverDrops", func(t *testing.T) { testReportReceiverDrops(t, r) })
			t.Run("FailureReportPartial", func(t *testing.T) { testReportPartial(t, r) })
			t.Run("FailureReportNo", func(t *testing.T) { testReportNo(t, r) })
		})
	}
}

// rpCheckReport checks a failure REPORT alice received for message id.
func rpCheckReport(t *testing.T, rep msrptest.Incoming, alice *msrptest.Endpoint, aliceUse []msrp.URI, id string, code int, byteRange string) {
	t.Helper()
	status := rep.Frame.Get("Status")
	if rep.MessageID != id || rep.Status != code || !strings.HasPrefix(status, fmt.Sprintf("000 %d", code)) {
		t.Errorf("REPORT for %q with Status %q, want one for %q with 000 %d", rep.MessageID, status, id, code)
	}
	if got := rep.Frame.Get("Byte-Range"); got != byteRange {
		t.Errorf("REPORT Byte-Range %q, want %q", got, byteRange)
	}
	if !msrp.EqualPaths(rep.ToPath, self(alice)) {
		t.Errorf("REPORT To-Path %s, want %s", msrp.FormatPath(rep.ToPath), alice.Self())
	}
	if len(rep.FromPath) == 0 || !rep.FromPath[0].Equal(aliceUse[0]) {
		t.Errorf("REPORT From-Path %s, want it to start with alice's relay %s", msrp.FormatPath(rep.FromPath), aliceUse[0])
	}
}

func rpByteRange(body []byte) string {
	return msrp.ByteRange{Start: 1, End: int64(len(body)), Total: int64(len(body))}.String()
}

// testReportFailureResponse: bob answers alice's chunk 415; the relay had
// answered alice 200 once it forwarded the chunk, and turns bob's 415 into
// a REPORT.
func testReportFailureResponse(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := r.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{})
	bob, bobUse := r.rawLogin(t, ctx, "bob", bobPW)

	body := []byte("a format bob does not take")
	if err := alice.Send(ctx, to(aliceUse, bobUse, []msrp.URI{bob.self}), msrptest.Message{
		ID: "m415", ContentType: "application/x-unknown", Body: bytes.NewReader(body), Size: int64(len(body)),
	}); err != nil {
		t.Fatalf("alice's Send: %v; want the relay's 200 once the chunk is forwarded", err)
	}
	in := bob.nextRequest("SEND")
	if in.Get("Message-ID") != "m415" || !bytes.Equal(in.Body, body) {
		t.Fatalf("bob got %q %q", in.Get("Message-ID"), in.Body)
	}
	bob.respond(in, 415, "Unsupported Media Type")
	rpCheckReport(t, receive(t, ctx, alice, "REPORT"), alice, aliceUse, "m415", 415, rpByteRange(body))
}

// testReportNoResponse: bob never answers; once the transaction timeout has
// passed on the node's clock, alice gets a 408 REPORT.
func testReportNoResponse(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := r.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{})
	bob, bobUse := r.rawLogin(t, ctx, "bob", bobPW)

	body := []byte("into the void")
	if err := alice.Send(ctx, to(aliceUse, bobUse, []msrp.URI{bob.self}), msrptest.Message{
		ID: "m408", ContentType: "text/plain", Body: bytes.NewReader(body), Size: int64(len(body)),
	}); err != nil {
		t.Fatalf("alice's Send: %v", err)
	}
	bob.nextRequest("SEND")
	r.srv.Clock.Advance(31 * time.Second) // past msrp.transaction_timeout (30 s)
	rpCheckReport(t, receive(t, ctx, alice, "REPORT"), alice, aliceUse, "m408", 408, rpByteRange(body))
}

// testReportReceiverDrops: bob's connection drops while alice's chunk
// awaits his response: alice gets a 408 REPORT, then her session ends with
// its far leg and the relay closes her connection.
func testReportReceiverDrops(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := r.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{})
	bob, bobUse := r.rawLogin(t, ctx, "bob", bobPW)

	body := []byte("bob is about to leave")
	if err := alice.Send(ctx, to(aliceUse, bobUse, []msrp.URI{bob.self}), msrptest.Message{
		ID: "mdrop", ContentType: "text/plain", Body: bytes.NewReader(body), Size: int64(len(body)),
	}); err != nil {
		t.Fatalf("alice's Send: %v", err)
	}
	bob.nextRequest("SEND")
	bob.close()
	rpCheckReport(t, receive(t, ctx, alice, "REPORT"), alice, aliceUse, "mdrop", 408, rpByteRange(body))
	select {
	case <-alice.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("alice's connection is still open 5 s after bob's dropped: her session should end with its far leg (design 0003, Lifetimes)")
	}
}

// testReportPartial: with Failure-Report partial the relay sends alice no
// 200, and bob's 415 becomes a REPORT.
func testReportPartial(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := r.rawLogin(t, ctx, "alice", alicePW)
	bob, bobUse := r.rawLogin(t, ctx, "bob", bobPW)
	path := to(aliceUse, bobUse, []msrp.URI{bob.self})

	body := []byte("partial, please")
	tid := alice.send(path, "mpartial", "partial", body)
	in := bob.nextRequest("SEND")
	if fr := in.Get("Failure-Report"); fr != "partial" {
		t.Errorf("bob got Failure-Report %q, want partial", fr)
	}
	bob.respond(in, 415, "Unsupported Media Type")
	// A 200 from the relay would have been written before the REPORT
	// (or, in a race, before the probe's 200 below).
	f := alice.next()
	if f.IsResponse() {
		t.Fatalf("alice got %s (chunk %s); Failure-Report partial wants no response but failures", rpDescribe(f), tid)
	}
	if f.Method != "REPORT" || f.Get("Message-ID") != "mpartial" || !strings.HasPrefix(f.Get("Status"), "000 415") ||
		f.Get("Byte-Range") != rpByteRange(body) {
		t.Fatalf("alice got %s for %q Status %q Byte-Range %q, want a 415 REPORT for mpartial",
			f.Method, f.Get("Message-ID"), f.Get("Status"), f.Get("Byte-Range"))
	}

	// A probe with Failure-Report yes: its 200 must be the next frame.
	probe := alice.send(path, "probe", "", []byte("probe"))
	bob.respond(bob.nextRequest("SEND"), 200, "OK")
	if f := alice.next(); !f.IsResponse() || f.TID != probe || f.Status != 200 {
		t.Fatalf("alice got %s, want the 200 to the probe %s (the partial chunk was %s)", rpDescribe(f), probe, tid)
	}
}

// testReportNo: with Failure-Report no nothing comes back to alice, not
// even when bob answers with an error.
func testReportNo(t *testing.T, r *relay) {
	ctx := testContext(t)
	alice, aliceUse := r.rawLogin(t, ctx, "alice", alicePW)
	bob, bobUse := r.rawLogin(t, ctx, "bob", bobPW)
	path := to(aliceUse, bobUse, []msrp.URI{bob.self})

	tid := alice.send(path, "mno", "no", []byte("fire and forget"))
	in := bob.nextRequest("SEND")
	// RFC 4975 forbids this response; the relay must still report nothing.
	bob.respond(in, 415, "Unsupported Media Type")

	// A probe that fails too: everything alice gets up to its REPORT must
	// belong to the probe. Frames about the first chunk would come first:
	// a 200 from the relay's read loop on alice's connection before it read
	// the probe, a REPORT from the one on bob's before it read his 415 to
	// the probe.
	probe := alice.send(path, "probe", "", []byte("probe"))
	bob.respond(bob.nextRequest("SEND"), 415, "Unsupported Media Type")
	for {
		f := alice.next()
		switch {
		case f.IsResponse() && f.TID == probe && f.Status == 200:
			continue
		case f.Method == "REPORT" && f.Get("Message-ID") == "probe":
			return
		}
		t.Fatalf("alice got %s; Failure-Report no (chunk %s) wants nothing back", rpDescribe(f), tid)
	}
}

// rpHeap returns the heap in use after a collection. The node runs in this
// process, so this is its heap (and the test's, which stays small).
func rpHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

const rpHeapSlack = 32 << 20

// TestBackpressure: a receiver that reads slowly holds its sender back
// through TCP, with no queue in between; one that stops reading for the
// write timeout is cut. SQLite only: the store plays no part in relaying,
// and 64 MiB under -race is slow.
func TestBackpressure(t *testing.T) {
	eng := apptest.Engines[0]
	const size, chunk = 64 << 20, 64 << 10

	t.Run("SlowReader", func(t *testing.T) {
		r := startRelay(t, eng, nil)
		ctx := testContext(t)
		sums := &hashSink{sums: map[string]hash.Hash{}}
		alice, aliceUse := r.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{ChunkSize: chunk})
		bob, gate, bobUse := r.gatedLogin(t, ctx, "bob", bobPW, msrptest.Options{Sink: sums.sink})

		gate.hold()
		base := rpHeap()
		sent := sha256.New()
		done := make(chan error, 1)
		go func() {
			done <- alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{
				ID: "big", ContentType: "application/octet-stream",
				Body: io.TeeReader(io.LimitReader(rand.Reader, size), sent), Size: size,
			})
		}()
		select {
		case err := <-done:
			t.Fatalf("alice's Send of 64 MiB ended (%v) while bob read nothing", err)
		case <-time.After(3 * time.Second):
		}
		if grown := int64(rpHeap()) - int64(base); grown >= rpHeapSlack {
			t.Errorf("heap grew by %d MiB while bob read nothing; want < %d MiB", grown>>20, rpHeapSlack>>20)
		} else {
			t.Logf("heap grew by %d KiB while bob read nothing", grown>>10)
		}

		gate.release()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("alice's Send once bob reads: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("alice's Send did not finish once bob read again")
		}
		in := receive(t, ctx, bob, "SEND")
		if in.Err != nil || in.Bytes != size || in.Aborted {
			t.Fatalf("bob got %d bytes, aborted %v, err %v", in.Bytes, in.Aborted, in.Err)
		}
		if !bytes.Equal(sums.sum("big"), sent.Sum(nil)) {
			t.Fatal("SHA-256 at bob differs from what alice sent")
		}
	})

	t.Run("StalledReaderCut", func(t *testing.T) {
		// msrp.transaction_timeout is also the write timeout.
		r := startRelay(t, eng, func(c *config.Config) { c.MSRP.TransactionTimeout = config.Duration(2 * time.Second) })
		ctx := testContext(t)
		sums := &hashSink{sums: map[string]hash.Hash{}}
		alice, aliceUse := r.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{ChunkSize: chunk})
		bob, gate, bobUse := r.gatedLogin(t, ctx, "bob", bobPW, msrptest.Options{Sink: sums.sink})

		gate.hold()
		defer gate.release()
		base := rpHeap()
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			done <- alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{
				ID: "big", ContentType: "application/octet-stream",
				Body: io.LimitReader(rand.Reader, size), Size: size,
			})
		}()
		var err error
		select {
		case err = <-done:
			t.Fatalf("alice's Send ended after %v (%v), before the write timeout", time.Since(start), err)
		case <-time.After(time.Second):
		}
		if grown := int64(rpHeap()) - int64(base); grown >= rpHeapSlack {
			t.Errorf("heap grew by %d MiB while bob read nothing; want < %d MiB", grown>>20, rpHeapSlack>>20)
		}
		select {
		case err = <-done:
		case <-time.After(wait):
			t.Fatalf("alice's Send still blocked %v after bob stopped reading; the write timeout is 2 s", wait)
		}
		if err == nil {
			t.Fatal("alice's Send of 64 MiB succeeded though bob read nothing")
		}
		t.Logf("alice's Send ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if grown := int64(rpHeap()) - int64(base); grown >= rpHeapSlack {
			t.Errorf("heap grew by %d MiB by the cut; want < %d MiB", grown>>20, rpHeapSlack>>20)
		}

		select {
		case <-alice.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("alice's connection is still open 5 s after bob was cut: her session should end with its far leg")
		}
		// bob drains what reached his socket, then finds it closed.
		gate.release()
		select {
		case <-bob.Done():
		case <-time.After(wait):
			t.Errorf("bob's connection still open %v after the relay's write to him timed out", wait)
		}
	})
}

// TestInterleave: while alice sends bob 32 MiB in one chunk, which the relay
// forwards in pieces of at most 64 KiB, bob sends alice 20 chat messages;
// the relay's 200s to them go out between the pieces, so each reaches bob
// before the file's last piece and before alice's transfer ends. bob is a
// raw peer that sees the order of frames on his connection: the kernel's
// socket buffers on loopback hold megabytes, so what a test can ask of the
// relay is where it puts a frame in the stream, not how soon it arrives.
// bob writes his chats back to back for the same reason (each round trip
// waits for what the kernel buffered ahead of it).
func TestInterleave(t *testing.T) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) { testInterleave(t, eng) })
	}
}

func testInterleave(t *testing.T, eng apptest.Engine) {
	const size, chats = 32 << 20, 20
	r := startRelay(t, eng, func(c *config.Config) { c.MSRP.MaxChunk = 64 << 20 })
	ctx := testContext(t)
	bob, bobUse := r.rawLogin(t, ctx, "bob", bobPW)
	alice, aliceUse := r.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{ChunkSize: size})

	sent := sha256.New()
	var fileDone atomic.Bool
	done := make(chan error, 1)
	go func() {
		err := alice.Send(ctx, to(aliceUse, bobUse, []msrp.URI{bob.self}), msrptest.Message{
			ID: "file", ContentType: "application/octet-stream",
			Body: io.TeeReader(io.LimitReader(rand.Reader, size), sent), Size: size,
		})
		fileDone.Store(true)
		done <- err
	}()

	chatText := func(i int) string { return fmt.Sprintf("chat %d while the file flows", i) }
	waiting := map[string]int{} // chat transaction id -> chat number
	got := sha256.New()
	next, pieces := int64(1), 0
	for last := false; !last; {
		f := bob.next()
		switch {
		case f.IsResponse():
			i, ok := waiting[f.TID]
			if !ok || f.Status != 200 {
				t.Fatalf("bob got %s, want a 200 to one of his chats", rpDescribe(f))
			}
			delete(waiting, f.TID)
			if fileDone.Load() {
				t.Errorf("bob's chat %d got its 200 only after alice's 32 MiB chunk had gone through", i)
			}
		case f.Method == "SEND" && f.Get("Message-ID") == "file":
			br, err := msrp.ParseByteRange(f.Get("Byte-Range"))
			if err != nil || br.Start != next || br.End != next+int64(len(f.Body))-1 || br.Total != size {
				t.Fatalf("piece %d: Byte-Range %q with %d bytes, want it to start at %d of %d", pieces, f.Get("Byte-Range"), len(f.Body), next, size)
			}
			if len(f.Body) > 64<<10 {
				t.Fatalf("piece %d has %d bytes: the relay forwards at most 64 KiB a chunk", pieces, len(f.Body))
			}
			got.Write(f.Body)
			next += int64(len(f.Body))
			pieces++
			bob.respond(f, 200, "OK")
			if pieces == 1 {
				for i := range chats {
					waiting[bob.send(to(bobUse, aliceUse, self(alice)), fmt.Sprintf("chat-%02d", i), "", []byte(chatText(i)))] = i
				}
			}
			last = f.Flag == msrp.FlagEnd
			if len(waiting) > 0 {
				// Slow down while chats are outstanding, so that the file
				// outlasts them by far when the relay interleaves.
				time.Sleep(time.Millisecond)
			}
		default:
			t.Fatalf("bob got %s", rpDescribe(f))
		}
	}
	if len(waiting) > 0 {
		t.Fatalf("the file's last piece (of %d) reached bob before the 200s to %d of his %d chats", pieces, len(waiting), chats)
	}
	if err := <-done; err != nil {
		t.Fatalf("alice's Send: %v", err)
	}
	if next != size+1 || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Fatalf("bob got %d bytes, SHA-256 equal %v", next-1, bytes.Equal(got.Sum(nil), sent.Sum(nil)))
	}
	for i := range chats {
		in := receive(t, ctx, alice, "SEND")
		if in.MessageID != fmt.Sprintf("chat-%02d", i) || string(in.Body) != chatText(i) {
			t.Fatalf("alice's SEND %d: %q %q, want chat-%02d %q", i, in.MessageID, in.Body, i, chatText(i))
		}
	}
}

// TestChain: alice's relay R1 and bob's R2 are two nodes; R1 dials R2 over
// TLS verified against msrp.peer_ca, on 127.0.0.1 (msrp.dial_private).
func TestChain(t *testing.T) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) { testChain(t, eng) })
	}
}

func testChain(t *testing.T, eng apptest.Engine) {
	// R2 answers as "localhost" (a name of its certificate) so that its
	// URIs are not R1's, which answers as 127.0.0.1.
	r2 := startRelay(t, eng, func(c *config.Config) { c.MSRP.Host = "localhost"; c.MSRP.DialPrivate = true })
	// R2same answers as 127.0.0.1 like R1: two relays on one host, told
	// apart by port only.
	r2same := startRelay(t, eng, func(c *config.Config) { c.MSRP.DialPrivate = true })
	peerCA := filepath.Join(t.TempDir(), "peers.pem")
	var pems []byte
	for _, r := range []*relay{r2, r2same} {
		pem, err := os.ReadFile(filepath.Join(r.srv.Config.DataDir, "tls", "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, pem...)
	}
	if err := os.WriteFile(peerCA, pems, 0o644); err != nil {
		t.Fatal(err)
	}
	r1 := startRelay(t, eng, func(c *config.Config) { c.MSRP.DialPrivate = true; c.MSRP.PeerCA = peerCA })

	t.Run("ChatAndFile", func(t *testing.T) { testChainTraffic(t, r1, r2) })
	t.Run("RelayReports", func(t *testing.T) { testChainReports(t, r1, r2) })
	t.Run("SameHostOtherPort", func(t *testing.T) { testChainTraffic(t, r1, r2same) })
	t.Run("PeerNotTrusted", func(t *testing.T) {
		r1 := startRelay(t, eng, func(c *config.Config) { c.MSRP.DialPrivate = true })
		testChainRefused(t, r1, r2, 408)
	})
	t.Run("PrivatePeerRefused", func(t *testing.T) {
		r1 := startRelay(t, eng, func(c *config.Config) { c.MSRP.PeerCA = peerCA })
		testChainRefused(t, r1, r2, 403)
	})
}

// testChainTraffic: chat both ways and a 10 MiB file through R1 and R2,
// with the paths RFC 4976 §6 gives.
func testChainTraffic(t *testing.T, r1, r2 *relay) {
	ctx := testContext(t)
	const size = 10 << 20
	sums := &hashSink{sums: map[string]hash.Hash{}}
	alice, aliceUse := r1.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{ChunkSize: 1 << 20})
	bob, bobUse := r2.login(ctx, "msrp-tls", "bob", bobPW, msrptest.Options{Sink: func(id string) io.Writer {
		if id == "file" {
			return sums.sink(id)
		}
		return nil
	}})

	body := []byte("Hi Bob, through two relays")
	if err := alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{
		ID: "c1", ContentType: "text/plain", Body: bytes.NewReader(body), Size: int64(len(body)), SuccessReport: true,
	}); err != nil {
		t.Fatalf("alice's Send: %v", err)
	}
	in := receive(t, ctx, bob, "SEND")
	if in.MessageID != "c1" || !bytes.Equal(in.Body, body) {
		t.Fatalf("bob got %q %q", in.MessageID, in.Body)
	}
	if want := to(bobUse, aliceUse, self(alice)); !msrp.EqualPaths(in.FromPath, want) {
		t.Errorf("From-Path at bob = %s, want %s", msrp.FormatPath(in.FromPath), msrp.FormatPath(want))
	}
	if rep := receive(t, ctx, alice, "REPORT"); rep.MessageID != "c1" || rep.Status != 200 {
		t.Errorf("alice's success REPORT: %q status %d", rep.MessageID, rep.Status)
	} else if want := to(aliceUse, bobUse, self(bob)); !msrp.EqualPaths(rep.FromPath, want) {
		t.Errorf("From-Path of the success REPORT at alice = %s, want %s", msrp.FormatPath(rep.FromPath), msrp.FormatPath(want))
	}

	reply := []byte("Hi Alice, back the same way")
	if err := bob.Send(ctx, to(bobUse, aliceUse, self(alice)), msrptest.Message{
		ID: "c2", ContentType: "text/plain", Body: bytes.NewReader(reply), Size: int64(len(reply)),
	}); err != nil {
		t.Fatalf("bob's Send: %v", err)
	}
	in = receive(t, ctx, alice, "SEND")
	if in.MessageID != "c2" || !bytes.Equal(in.Body, reply) {
		t.Fatalf("alice got %q %q", in.MessageID, in.Body)
	}
	if want := to(aliceUse, bobUse, self(bob)); !msrp.EqualPaths(in.FromPath, want) {
		t.Errorf("From-Path at alice = %s, want %s", msrp.FormatPath(in.FromPath), msrp.FormatPath(want))
	}

	sent := sha256.New()
	if err := alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{
		ID: "file", ContentType: "application/octet-stream",
		Body: io.TeeReader(io.LimitReader(rand.Reader, size), sent), Size: size,
	}); err != nil {
		t.Fatalf("alice's file: %v", err)
	}
	in = receive(t, ctx, bob, "SEND")
	if in.MessageID != "file" || in.Err != nil || in.Bytes != size || in.Aborted {
		t.Fatalf("bob got %q: %d bytes, aborted %v, err %v", in.MessageID, in.Bytes, in.Aborted, in.Err)
	}
	if !bytes.Equal(sums.sum("file"), sent.Sum(nil)) {
		t.Fatal("SHA-256 at bob differs from what alice sent")
	}
}

// testChainReports: REPORTs that bob's relay R2 generates travel back
// through R1 to alice, their From-Path a prefix of the path R1 recorded.
func testChainReports(t *testing.T, r1, r2 *relay) {
	ctx := testContext(t)
	alice, aliceUse := r1.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{})
	bob, bobUse := r2.rawLogin(t, ctx, "bob", bobPW)
	path := to(aliceUse, bobUse, []msrp.URI{bob.self})
	wantFrom := to(aliceUse, bobUse)

	body := []byte("a format bob does not take")
	if err := alice.Send(ctx, path, msrptest.Message{
		ID: "r415", ContentType: "application/x-unknown", Body: bytes.NewReader(body), Size: int64(len(body)),
	}); err != nil {
		t.Fatalf("alice's Send: %v", err)
	}
	in := bob.nextRequest("SEND")
	if want := to(bobUse, aliceUse, self(alice)); !msrp.EqualPaths(in.FromPath, want) {
		t.Errorf("From-Path at bob = %s, want %s", msrp.FormatPath(in.FromPath), msrp.FormatPath(want))
	}
	bob.respond(in, 415, "Unsupported Media Type")
	rep := receive(t, ctx, alice, "REPORT")
	rpCheckReport(t, rep, alice, aliceUse, "r415", 415, rpByteRange(body))
	if !msrp.EqualPaths(rep.FromPath, wantFrom) {
		t.Errorf("REPORT From-Path at alice = %s, want %s", msrp.FormatPath(rep.FromPath), msrp.FormatPath(wantFrom))
	}

	body = []byte("bob is about to leave")
	if err := alice.Send(ctx, path, msrptest.Message{
		ID: "r408", ContentType: "text/plain", Body: bytes.NewReader(body), Size: int64(len(body)),
	}); err != nil {
		t.Fatalf("alice's Send: %v", err)
	}
	bob.nextRequest("SEND")
	bob.close()
	rep = receive(t, ctx, alice, "REPORT")
	rpCheckReport(t, rep, alice, aliceUse, "r408", 408, rpByteRange(body))
	if !msrp.EqualPaths(rep.FromPath, wantFrom) {
		t.Errorf("REPORT From-Path at alice = %s, want %s", msrp.FormatPath(rep.FromPath), msrp.FormatPath(wantFrom))
	}
	// R2 ended bob's session and closed its leg to R1, which ends alice's.
	select {
	case <-alice.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("alice's connection still open 5 s after R2 closed the leg to R1")
	}
}

// testChainRefused: R1 does not go through to R2; alice's first SEND gets
// code, and nothing reaches bob.
func testChainRefused(t *testing.T, r1, r2 *relay, code int) {
	ctx := testContext(t)
	alice, aliceUse := r1.login(ctx, "msrp-tls", "alice", alicePW, msrptest.Options{})
	bob, bobUse := r2.login(ctx, "msrp-tls", "bob", bobPW, msrptest.Options{})
	err := alice.Send(ctx, to(aliceUse, bobUse, self(bob)), msrptest.Message{
		ID: "refused", ContentType: "text/plain", Body: strings.NewReader("hello?"), Size: 6,
	})
	if !msrptest.IsStatus(err, code) {
		t.Fatalf("alice's Send: %v, want %d", err, code)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if in, err := bob.Received(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("bob got %s %q (%v); want nothing", in.Method, in.MessageID, err)
	}
}
