package sip_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/gorilla/websocket"

	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/sip/siptest"
)

// Black-box tests of the message history as SIP devices see it: copies of
// a user's own messages to its other devices (blink.md §8 case 45), the
// history API requests and control rows (sylk.md §4.2), and a second
// device catching up over the history API and then the live WebSocket
// sync.

const (
	hsInst3 = "urn:uuid:33333333-3333-4333-8333-333333333333"
	// hsWithin is how soon after a MESSAGE's 2xx its rows must reach a
	// live sync subscriber.
	hsWithin = 2 * time.Second
	// hsSettle is how long a check that something does NOT happen waits.
	hsSettle = 300 * time.Millisecond
)

// hsCPIM is a MESSAGE body as Blink Cocoa writes it (blink.md §6.1): CPIM
// headers joined by CRLF, the MIME part by LF.
func hsCPIM(from, to, id, ctype, text string) []byte {
	return []byte("From: <sip:" + from + "@example.com>\r\nTo: <sip:" + to + "@example.com>\r\n" +
		"DateTime: 2026-11-28T10:00:00.123456+01:00\r\nNS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: " + id + "\r\nimdn.Disposition-Notification: positive-delivery, display\r\n\r\n" +
		"MIME-Version: 1.0\nContent-Type: " + ctype + "\n\n" + text)
}

// hsIMDN is a CPIM-wrapped IMDN as Blink sends it (blink.md §6.1, §6.3):
// a new message id, "positive-delivery" (sic), and the IMDN document of
// sipsimple's IMDNDocument.create. status is delivered or displayed.
func hsIMDN(from, to, id, original, status string) []byte {
	kind := "delivery"
	if status == "displayed" {
		kind = "display"
	}
	doc := `<?xml version='1.0' encoding='UTF-8'?>` + "\n" +
		`<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>` + original + `</message-id>` +
		`<datetime>2026-11-28T10:00:05+01:00</datetime>` +
		`<recipient-uri>sip:` + from + `@example.com</recipient-uri>` +
		`<original-recipient-uri>sip:` + from + `@example.com</original-recipient-uri>` +
		`<` + kind + `-notification><status><` + status + `/></status></` + kind + `-notification></imdn>`
	return []byte("From: <sip:" + from + "@example.com>\r\nTo: <sip:" + to + "@example.com>\r\n" +
		"DateTime: 2026-11-28T10:00:05.000000+01:00\r\nNS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: " + id + "\r\nimdn.Disposition-Notification: positive-delivery\r\n\r\n" +
		"MIME-Version: 1.0\nContent-Type: message/imdn+xml\n\n" + doc)
}

// hsItem is one history row, as the history API and the live sync give it.
type hsItem struct {
	ID          int64    `json:"id"`
	MessageID   string   `json:"message_id"`
	Contact     string   `json:"contact"`
	Timestamp   string   `json:"timestamp"`
	Disposition []string `json:"disposition"`
	ContentType string   `json:"content_type"`
	Content     string   `json:"content"`
	Direction   string   `json:"direction"`
	State       string   `json:"state"`
}

// hsAnswer is one history API answer.
type hsAnswer struct {
	Account  string   `json:"account"`
	Messages []hsItem `json:"messages"`
	More     bool     `json:"more"`
	LastID   *int64   `json:"last_id"`
}

// hsNotice is the content of a message/imdn row.
type hsNotice struct {
	Account   string `json:"account"`
	Event     string `json:"event"`
	MessageID string `json:"message_id"`
	Stamp     string `json:"message_timestamp"`
	State     string `json:"state"`
	Code      int    `json:"code"`
}

// hsSent is the DateTime of hsCPIM's messages.
var hsSent = time.Date(2026, 11, 28, 9, 0, 0, 123456000, time.UTC)

// hsStamp checks that a notice's message_timestamp is an ISO 8601
// timestamp (as SylkServer's disposition-notification event has it,
// sylk.md §3.3), at want unless want is zero.
func hsStamp(t *testing.T, n hsNotice, want time.Time) {
	t.Helper()
	got, err := time.Parse(time.RFC3339Nano, n.Stamp)
	if err != nil {
		t.Errorf("message/imdn row about %s: message_timestamp %q is not an ISO 8601 timestamp", n.MessageID, n.Stamp)
		return
	}
	if !want.IsZero() && !got.Equal(want) {
		t.Errorf("message/imdn row about %s: message_timestamp %s, want %s", n.MessageID, n.Stamp, want.Format(time.RFC3339Nano))
	}
}

// hsNoticeOf reads a message/imdn row's content, which must parse as JSON
// and, holding no true, false or null, as a Python literal (Blink Cocoa
// evals it, blink.md §6.6).
func hsNoticeOf(t *testing.T, it hsItem) hsNotice {
	t.Helper()
	if it.ContentType != "message/imdn" {
		t.Fatalf("row %d: content_type %q, want message/imdn", it.ID, it.ContentType)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(it.Content), &raw); err != nil {
		t.Fatalf("row %d: content %q is not JSON: %v", it.ID, it.Content, err)
	}
	for k, v := range raw {
		switch v.(type) {
		case bool, nil:
			t.Errorf("row %d: content field %q is %v: not a Python literal", it.ID, k, v)
		}
	}
	var n hsNotice
	json.Unmarshal([]byte(it.Content), &n)
	return n
}

// hsKey names a row by what it is about: a message row by type, id and
// direction, an IMDN row by the message it reports on and the state.
func hsKey(t *testing.T, it hsItem) string {
	if it.ContentType == "message/imdn" {
		n := hsNoticeOf(t, it)
		return "imdn " + n.MessageID + " " + n.State
	}
	return it.ContentType + " " + it.MessageID + " " + it.Direction
}

// hsMatching returns the MESSAGEs d took that match ok.
func hsMatching(d *siptest.Device, ok func(*sipmsg.Request) bool) []*sipmsg.Request {
	var out []*sipmsg.Request
	for _, r := range d.Received() {
		if ok(r) {
			out = append(out, r)
		}
	}
	return out
}

// hsWait waits until d took n MESSAGEs that match ok, and returns them.
func hsWait(t *testing.T, d *siptest.Device, n int, what string, ok func(*sipmsg.Request) bool) []*sipmsg.Request {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(5 * time.Millisecond) {
		if got := hsMatching(d, ok); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d within %v, want %d", what, len(hsMatching(d, ok)), wait, n)
		}
	}
}

func hsOfType(ct string) func(*sipmsg.Request) bool {
	return func(r *sipmsg.Request) bool {
		h := r.ContentType()
		return h != nil && strings.EqualFold(strings.TrimSpace(h.Value()), ct)
	}
}

func hsReplicated(r *sipmsg.Request) bool { return r.GetHeader("X-Replicated-Message") != nil }

func hsBody(body []byte) func(*sipmsg.Request) bool {
	return func(r *sipmsg.Request) bool { return bytes.Equal(r.Body(), body) }
}

// hsToken asks for an API token from d, a registered device of user, as
// Blink does (blink.md §6.6), and returns it.
func hsToken(t *testing.T, d *siptest.Device, user string) string {
	t.Helper()
	aor := "sip:" + user + "@" + domain
	isToken := hsOfType(history.TypeToken)
	before := len(hsMatching(d, isToken))
	res, err := d.Send(ctx(t), aor, history.TypeToken, []byte("I need a token"))
	mustStatus(t, res, err, 200)
	reply := hsWait(t, d, before+1, user+"'s token reply", isToken)[before]
	var body struct{ Token, URL string }
	if err := json.Unmarshal(reply.Body(), &body); err != nil || body.Token == "" {
		t.Fatalf("token reply %q: %v", reply.Body(), err)
	}
	if want := history.HistoryPath + user + "@" + domain; !strings.HasSuffix(body.URL, want) {
		t.Errorf("token reply url %q does not end with %s", body.URL, want)
	}
	if f, to := reply.From(), reply.To(); f == nil || to == nil || f.Address.User != user || to.Address.User != user {
		t.Errorf("token reply From %v To %v, want %s both", f, to, user)
	}
	return body.Token
}

// hsGet GETs a history page of user after cursor ("" for none).
func hsGet(t *testing.T, e *env, user, token, cursor string) hsAnswer {
	t.Helper()
	u := e.srv.HTTPSURL + history.HistoryPath + user + "@" + domain
	if cursor != "" {
		u += "/" + cursor
	}
	code, a := hsFetch(t, e, u, "Apikey "+token)
	if code != 200 {
		t.Fatalf("GET %s: %d", u, code)
	}
	if a.LastID == nil || a.Messages == nil || a.Account != user+"@"+domain {
		t.Fatalf("GET %s: account %q, messages %v, last_id %v", u, a.Account, a.Messages, a.LastID)
	}
	return a
}

func hsFetch(t *testing.T, e *env, u, auth string) (int, hsAnswer) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodGet, u, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.srv.HTTPS.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	var a hsAnswer
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
	return resp.StatusCode, a
}

// hsAll returns every row of user after row id after, page by page.
func hsAll(t *testing.T, e *env, user, token string, after int64) []hsItem {
	t.Helper()
	var out []hsItem
	for {
		cursor := ""
		if after > 0 {
			cursor = strconv.FormatInt(after, 10)
		}
		a := hsGet(t, e, user, token, cursor)
		out = append(out, a.Messages...)
		after = *a.LastID
		if !a.More {
			return out
		}
	}
}

// hsRows waits until user has n rows after row id after and returns them
// all; the caller checks that there are exactly n. Rows written after a
// MESSAGE's answer (its outcome) need the wait.
func hsRows(t *testing.T, e *env, user, token string, after int64, n int) []hsItem {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		rows := hsAll(t, e, user, token, after)
		if len(rows) >= n || time.Now().After(deadline) {
			return rows
		}
	}
}

// hsJournal follows one account's history through the API, a step at a
// time.
type hsJournal struct {
	t     *testing.T
	e     *env
	user  string
	token string
	last  int64
	ids   map[string]bool // message_ids seen
}

func hsFollow(t *testing.T, e *env, user, token string) *hsJournal {
	return &hsJournal{t: t, e: e, user: user, token: token, ids: map[string]bool{}}
}

// next returns the n rows written since the last step, failing unless
// there are exactly n, in consecutive ids.
func (j *hsJournal) next(n int, what string) []hsItem {
	j.t.Helper()
	rows := hsRows(j.t, j.e, j.user, j.token, j.last, n)
	if len(rows) != n {
		j.t.Fatalf("%s: %s's history got %d rows, want %d: %+v", what, j.user, len(rows), n, rows)
	}
	for _, r := range rows {
		if r.ID != j.last+1 {
			j.t.Fatalf("%s: %s's row id %d after %d", what, j.user, r.ID, j.last)
		}
		j.last = r.ID
	}
	return rows
}

// fresh checks that a row cairn made has a message_id of its own.
func (j *hsJournal) fresh(it hsItem, what string) {
	j.t.Helper()
	if it.MessageID == "" || j.ids[it.MessageID] {
		j.t.Errorf("%s: %s's row %d has message_id %q, not a fresh one", what, j.user, it.ID, it.MessageID)
	}
	j.ids[it.MessageID] = true
}

func (j *hsJournal) saw(rows []hsItem) {
	for _, r := range rows {
		j.ids[r.MessageID] = true
	}
}

// none checks that the history got no row since the last step.
func (j *hsJournal) none(what string) {
	j.t.Helper()
	if rows := hsAll(j.t, j.e, j.user, j.token, j.last); len(rows) != 0 {
		j.t.Errorf("%s: %s's history got %d rows, want none: %+v", what, j.user, len(rows), rows)
		j.last = rows[len(rows)-1].ID
	}
}

// hsSyncURL is the live sync of user after row id after.
func hsSyncURL(e *env, user string, after int64) string {
	return "wss" + strings.TrimPrefix(e.srv.HTTPSURL, "https") + history.SyncPath + user + "@" + domain +
		"?after=" + strconv.FormatInt(after, 10)
}

func hsDial(t *testing.T, e *env, user string, after int64, hdr http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{
		TLSClientConfig:  &tls.Config{RootCAs: e.srv.CA},
		HandshakeTimeout: 5 * time.Second,
		Subprotocols:     protocols,
	}
	return d.DialContext(ctx(t), hsSyncURL(e, user, after), hdr)
}

// hsStream is an open live sync: a goroutine reads its messages.
type hsStream struct {
	ws   *websocket.Conn
	msgs chan []byte // closed when the connection ends
	done chan struct{}
	err  error // set before done closes
}

func hsOpen(t *testing.T, e *env, user, token string, after int64) *hsStream {
	t.Helper()
	ws, resp, err := hsDial(t, e, user, after, http.Header{"Authorization": {"Apikey " + token}})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("live sync of %s after %d: %v (HTTP %d)", user, after, err, code)
	}
	s := &hsStream{ws: ws, msgs: make(chan []byte, 4096), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.msgs)
		for {
			kind, b, err := ws.ReadMessage()
			if err != nil {
				s.err = err
				return
			}
			if kind != websocket.TextMessage {
				b = append([]byte("binary:"), b...)
			}
			s.msgs <- b
		}
	}()
	t.Cleanup(s.close)
	return s
}

// close closes the connection and waits for the reader.
func (s *hsStream) close() {
	s.ws.Close()
	<-s.done
}

// hsLive checks what a live sync subscriber gets: each row once, ids with
// no gap, only the rows expected.
type hsLive struct {
	t    *testing.T
	last int64
	got  []hsItem
}

// take reads from s until every key of want has come, by deadline. Any
// other row, or a row out of id sequence, fails the test.
func (l *hsLive) take(s *hsStream, want []string, deadline time.Time, what string) {
	l.t.Helper()
	pending := map[string]bool{}
	for _, k := range want {
		pending[k] = true
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for len(pending) > 0 {
		select {
		case b, ok := <-s.msgs:
			if !ok {
				l.t.Fatalf("%s: the live sync ended: %v; still waiting for %v", what, s.err, pending)
			}
			var it hsItem
			if err := json.Unmarshal(b, &it); err != nil {
				l.t.Fatalf("%s: live sync message %q: %v", what, b, err)
			}
			if it.ID != l.last+1 {
				l.t.Fatalf("%s: live sync row id %d after %d (gap or repeat): %+v", what, it.ID, l.last, it)
			}
			k := hsKey(l.t, it)
			if !pending[k] {
				l.t.Fatalf("%s: unexpected live sync row %q: %+v (waiting for %v)", what, k, it, pending)
			}
			delete(pending, k)
			l.last = it.ID
			l.got = append(l.got, it)
		case <-timer.C:
			l.t.Fatalf("%s: rows %v did not arrive in time", what, pending)
		}
	}
}

// quiet checks that s sends nothing more for a while.
func (l *hsLive) quiet(s *hsStream) {
	l.t.Helper()
	select {
	case b, ok := <-s.msgs:
		if ok {
			l.t.Errorf("live sync sent an extra message: %s", b)
		}
	case <-time.After(hsSettle):
	}
}

// hsContactOf returns the Contact a REGISTER's 200 lists for instance.
func hsContactOf(t *testing.T, res *sipmsg.Response, instance string) string {
	t.Helper()
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sipmsg.ContactHeader)
		if !ok {
			continue
		}
		if v, _ := c.Params.Get("+sip.instance"); strings.Contains(v, instance) {
			return c.Address.String()
		}
	}
	t.Fatalf("the 200 lists no Contact of %s: %v", instance, res.GetHeaders("Contact"))
	return ""
}

func hsEngines(t *testing.T, f func(*testing.T, apptest.Engine)) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			f(t, eng)
		})
	}
}

// TestHistoryReplication: a message sent from one device of alice reaches
// bob and, as a copy marked X-Replicated-Message, her other registered
// devices but not the one that sent it (blink.md §8 case 45). A device
// offline then finds it in the history, not as a SIP copy.
func TestHistoryReplication(t *testing.T) { hsEngines(t, hsReplication) }

func hsReplication(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	a1 := e.device("alice", alicePW, "udp", inst1)
	a2 := e.device("alice", alicePW, "tcp", inst2)
	b1 := e.device("bob", bobPW, "udp", inst1)
	register(t, a1)
	res, err := a2.Register(ctx(t), time.Hour)
	mustStatus(t, res, err, 200)
	a2Contact := hsContactOf(t, res, inst2)
	register(t, b1)

	body := hsCPIM("alice", "bob", "rep-1", "text/plain", "hello from A1")
	res, err = a1.Send(ctx(t), "sip:bob@example.com", "message/cpim", body)
	mustStatus(t, res, err, 200)
	if got := b1.WaitReceived(1, wait)[0]; !bytes.Equal(got.Body(), body) {
		t.Errorf("bob's body changed:\n got %q\nwant %q", got.Body(), body)
	}
	cp := hsWait(t, a2, 1, "copies to A2", hsReplicated)[0]
	if v := cp.GetHeader("X-Replicated-Message").Value(); v != "yes" {
		t.Errorf("X-Replicated-Message: %q, want yes", v)
	}
	if got := cp.Recipient.String(); got != a2Contact {
		t.Errorf("copy Request-URI %s, want A2's contact %s", got, a2Contact)
	}
	if f := cp.From(); f == nil || f.Address.User != "alice" || f.Address.Host != domain {
		t.Errorf("copy From %v, want alice", f)
	}
	if to := cp.To(); to == nil || to.Address.User != "bob" || to.Address.Host != domain {
		t.Errorf("copy To %v, want bob", to)
	}
	if !bytes.Equal(cp.Body(), body) {
		t.Errorf("copy body changed:\n got %q\nwant %q", cp.Body(), body)
	}
	if ct := cp.ContentType(); ct == nil || ct.Value() != "message/cpim" {
		t.Errorf("copy Content-Type %v, want message/cpim", ct)
	}
	time.Sleep(hsSettle)
	if n := len(a1.Received()); n != 0 {
		t.Errorf("the sending device A1 got %d MESSAGEs, want none", n)
	}
	if n := len(a2.Received()); n != 1 {
		t.Errorf("A2 got %d MESSAGEs, want the one copy", n)
	}
	if n := len(b1.Received()); n != 1 || hsReplicated(b1.Received()[0]) {
		t.Errorf("bob got %d MESSAGEs, want the original only", n)
	}

	// A device offline at the time registers later: no SIP copy, but the
	// history has the message as outgoing, and its outcome.
	a3 := e.device("alice", alicePW, "tls", hsInst3)
	register(t, a3)
	tok := hsToken(t, a3, "alice")
	rows := hsFollow(t, e, "alice", tok).next(2, "after one message")
	out := rows[0]
	if out.MessageID != "rep-1" || out.Direction != "outgoing" || out.Contact != "bob@example.com" ||
		out.ContentType != "text/plain" || out.Content != "hello from A1" {
		t.Errorf("outgoing row %+v", out)
	}
	n := hsNoticeOf(t, rows[1])
	if n.MessageID != "rep-1" || n.State != "accepted" || rows[1].Contact != "bob@example.com" {
		t.Errorf("outcome row %+v: %+v", rows[1], n)
	}
	hsStamp(t, n, hsSent)
	time.Sleep(hsSettle)
	if got := hsMatching(a3, func(r *sipmsg.Request) bool { return !hsOfType(history.TypeToken)(r) }); len(got) != 0 {
		t.Errorf("the device offline at the time got %d SIP MESSAGEs (%q…), want none: it reads the history", len(got), got[0].Body())
	}
}

// TestHistoryControl: the history API requests and the rows they, IMDNs,
// SIP outcomes and keys make (sylk.md §4.2, blink.md §6.3).
func TestHistoryControl(t *testing.T) { hsEngines(t, hsControl) }

func hsControl(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	a1 := e.device("alice", alicePW, "udp", inst1)
	b1 := e.device("bob", bobPW, "tcp", inst1)
	register(t, a1)
	register(t, b1)
	alice := hsFollow(t, e, "alice", hsToken(t, a1, "alice"))
	bob := hsFollow(t, e, "bob", hsToken(t, b1, "bob"))
	send := func(d *siptest.Device, to, ctype string, body []byte, want int) {
		t.Helper()
		res, err := d.Send(ctx(t), "sip:"+to+"@example.com", ctype, body)
		mustStatus(t, res, err, want)
	}

	// A message each way, the rows they make.
	send(a1, "bob", "message/cpim", hsCPIM("alice", "bob", "rm-1", "text/plain", "remove me"), 200)
	send(b1, "alice", "message/cpim", hsCPIM("bob", "alice", "bob-1", "text/plain", "from bob"), 200)
	alice.saw(alice.next(3, "two messages"))
	bob.saw(bob.next(3, "two messages"))

	// Removing a message alice sent: a row for each side.
	send(a1, "bob", history.TypeMessageRemove, []byte("rm-1"), 200)
	checkRemove := func(j *hsJournal, contact, dir string) {
		t.Helper()
		r := j.next(1, "remove")[0]
		j.fresh(r, "remove")
		if r.MessageID == "rm-1" || r.ContentType != "application/sylk-message-remove" || r.Contact != contact || r.Direction != dir {
			t.Errorf("%s's remove row %+v", j.user, r)
		}
		var c map[string]string
		if err := json.Unmarshal([]byte(r.Content), &c); err != nil {
			t.Fatalf("%s's remove row content %q: %v", j.user, r.Content, err)
		}
		if want := map[string]string{"contact": contact, "message_id": "rm-1", "direction": dir}; len(c) != 3 ||
			c["contact"] != want["contact"] || c["message_id"] != want["message_id"] || c["direction"] != want["direction"] {
			t.Errorf("%s's remove row content %s, want %v", j.user, r.Content, want)
		}
	}
	checkRemove(alice, "bob@example.com", "outgoing")
	checkRemove(bob, "alice@example.com", "incoming")

	// Only the sender removes; an unknown id is 404. Neither writes a row
	// (rows would be written before the answer).
	send(a1, "bob", history.TypeMessageRemove, []byte("bob-1"), 403)
	send(a1, "bob", history.TypeMessageRemove, []byte("no-such-message"), 404)
	alice.none("refused removals")
	bob.none("refused removals")

	// A conversation read, then removed: rows with the bare contact.
	send(a1, "bob", history.TypeConversationRead, []byte(`{"contact":"bob@example.com"}`), 200)
	// A contact given as a URI is kept bare.
	send(a1, "bob", history.TypeConversationRemove, []byte(`{"contact":"sip:bob@example.com"}`), 200)
	rows := alice.next(2, "conversation read and removed")
	for i, ct := range []string{"application/sylk-conversation-read", "application/sylk-conversation-remove"} {
		alice.fresh(rows[i], ct)
		if r := rows[i]; r.ContentType != ct || r.Content != "bob@example.com" || r.Contact != "bob@example.com" {
			t.Errorf("row %d: %+v, want %s with content bob@example.com", i, r, ct)
		}
	}
	bob.none("alice's conversation read and removed")

	// IMDNs from bob about a message of alice: delivered to alice's device
	// and journaled on both sides.
	send(a1, "bob", "message/cpim", hsCPIM("alice", "bob", "imdn-1", "text/plain", "tell me"), 200)
	alice.saw(alice.next(2, "imdn-1"))
	bob.saw(bob.next(1, "imdn-1"))
	for i, status := range []string{"delivered", "displayed"} {
		body := hsIMDN("bob", "alice", fmt.Sprintf("7d0e4c52-9a57-4c0f-8f5e-0000000000%02d", i), "imdn-1", status)
		send(b1, "alice", "message/cpim", body, 200)
		hsWait(t, a1, 1, "the "+status+" IMDN at alice's device", hsBody(body))
		for _, side := range []struct {
			j         *hsJournal
			contact   string
			direction string
		}{{alice, "bob@example.com", "incoming"}, {bob, "alice@example.com", "outgoing"}} {
			r := side.j.next(1, status+" IMDN")[0]
			side.j.fresh(r, status+" IMDN")
			n := hsNoticeOf(t, r)
			if n.MessageID != "imdn-1" || n.State != status || r.Contact != side.contact || r.Direction != side.direction {
				t.Errorf("%s's %s row %+v: %+v", side.j.user, status, r, n)
			}
			hsStamp(t, n, time.Time{})
		}
	}

	// SIP outcomes: refused for good by bob's only device → failed;
	// stored for carol, who is offline → accepted.
	b1.Answer(func(r *sipmsg.Request) int {
		if bytes.Contains(r.Body(), []byte("refuse me")) {
			return 488
		}
		return 200
	})
	send(a1, "bob", "message/cpim", hsCPIM("alice", "bob", "fail-1", "text/plain", "refuse me"), 488)
	rows = alice.next(2, "refused message")
	alice.fresh(rows[1], "outcome")
	if n := hsNoticeOf(t, rows[1]); rows[0].MessageID != "fail-1" || n.MessageID != "fail-1" || n.State != "failed" || n.Code != 488 {
		t.Errorf("refused message rows %+v: %+v", rows, n)
	} else {
		hsStamp(t, n, hsSent)
	}
	if got := hsAll(t, e, "bob", bob.token, bob.last); len(got) != 0 {
		// Journaled before delivery: bob's history holds a message his
		// device refused and whose sender was told it failed.
		t.Logf("note: bob's history got %d rows for a message his device refused: %+v", len(got), got)
		bob.last = got[len(got)-1].ID
	}
	b1.Answer(func(*sipmsg.Request) int { return 200 })
	send(a1, "carol", "message/cpim", hsCPIM("alice", "carol", "store-1", "text/plain", "keep it"), 200)
	rows = alice.next(2, "stored message")
	alice.fresh(rows[1], "outcome")
	if n := hsNoticeOf(t, rows[1]); rows[0].MessageID != "store-1" || n.MessageID != "store-1" || n.State != "accepted" {
		t.Errorf("stored message rows %+v: %+v", rows, n)
	} else {
		hsStamp(t, n, hsSent)
	}

	// A public key alice sends (raw, as Blink does) is published for her;
	// bob looks it up.
	key := "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGVdb3gBEAC+alice+key\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"
	send(a1, "bob", history.TypePublicKey, []byte(key), 200)
	hsWait(t, b1, 1, "alice's key at bob's device", hsBody([]byte(key)))
	send(b1, "alice", history.TypeKeyLookup, []byte("alice@example.com"), 200)
	isLookup := func(r *sipmsg.Request) bool {
		f := r.From()
		return hsOfType(history.TypePublicKey)(r) && bytes.Equal(r.Body(), []byte(key)) && f != nil && f.Address.User == "alice" && f.Address.Host == domain
	}
	hsWait(t, b1, 2, "the key lookup reply at bob's device", isLookup)
	send(b1, "carol", history.TypeKeyLookup, []byte("carol@example.com"), 404)

	time.Sleep(hsSettle)
	for _, r := range b1.Received() {
		// The token reply answers bob's own request; nothing else of the
		// kind may reach a device.
		if ct := r.ContentType(); ct != nil && strings.HasPrefix(ct.Value(), "application/sylk-api-") && ct.Value() != history.TypeToken {
			t.Errorf("bob's device was sent a history request: %s %q", ct.Value(), r.Body())
		}
	}
	if got := hsMatching(b1, isLookup); len(got) != 2 {
		t.Errorf("bob got %d MESSAGEs with alice's key, want 2 (her own, the lookup's reply)", len(got))
	}
}

// TestHistorySync: alice's second device, offline while 40 messages pass,
// catches up page by page over the history API, then follows the live
// sync with no gap and no repeat through a reconnection (the issue's
// headline scenario).
func TestHistorySync(t *testing.T) { hsEngines(t, hsCatchUp) }

func hsCatchUp(t *testing.T, eng apptest.Engine) {
	// 50 rows in pages of 5: the last page is full, and says there are
	// no more.
	const pageLimit = 5
	e := start(t, eng, func(c *config.Config) { c.History.PageLimit = pageLimit })
	a1 := e.device("alice", alicePW, "udp", inst1)
	b1 := e.device("bob", bobPW, "tcp", inst1)
	register(t, a1)
	register(t, b1)
	a1Token := hsToken(t, a1, "alice")

	// send sends one message with id from its sender's device and returns
	// when it got its 2xx, and the rows alice's history gets for it.
	send := func(from, id string) (time.Time, []string) {
		t.Helper()
		d, to := b1, "alice"
		if from == "alice" {
			d, to = a1, "bob"
		}
		res, err := d.Send(ctx(t), "sip:"+to+"@example.com", "message/cpim", hsCPIM(from, to, id, "text/plain", "text of "+id))
		mustStatus(t, res, err, 200)
		return time.Now(), hsExpected(from, id)
	}
	var want, userRows []string
	for i := range 40 {
		from, id := "bob", fmt.Sprintf("b%02d", i)
		if i%4 == 3 {
			from, id = "alice", fmt.Sprintf("a%02d", i)
		}
		_, keys := send(from, id)
		want = append(want, keys...)
		userRows = append(userRows, keys[0])
	}
	if n := len(hsRows(t, e, "alice", a1Token, 0, len(want))); n != len(want) {
		t.Fatalf("alice's history has %d rows, want %d", n, len(want))
	}

	// A2 registers: nothing comes over SIP but its token.
	a2 := e.device("alice", alicePW, "tcp", inst2)
	register(t, a2)
	token := hsToken(t, a2, "alice")
	if n := len(a2.Received()); n != 1 {
		t.Errorf("A2 got %d MESSAGEs on registering, want only the token reply", n)
	}

	// It pulls the history as Blink does, with the message_id of the last
	// row as the cursor, a page at a time.
	var items []hsItem
	cursor := ""
	for page := 1; ; page++ {
		a := hsGet(t, e, "alice", token, cursor)
		if len(a.Messages) > pageLimit {
			t.Fatalf("page %d has %d rows, past the limit %d", page, len(a.Messages), pageLimit)
		}
		if n := len(a.Messages); n > 0 && *a.LastID != a.Messages[n-1].ID {
			t.Errorf("page %d: last_id %d, last row %d", page, *a.LastID, a.Messages[n-1].ID)
		}
		items = append(items, a.Messages...)
		if !a.More {
			if pages := (len(want) + pageLimit - 1) / pageLimit; page != pages {
				t.Errorf("%d pages, want %d (an empty page after a full one said more)", page, pages)
			}
			break
		}
		if len(a.Messages) == 0 || page > 2*len(want) {
			t.Fatalf("page %d: more with %d rows", page, len(a.Messages))
		}
		cursor = a.Messages[len(a.Messages)-1].MessageID
	}
	hsCheckBacklog(t, items, want, userRows)

	// The live sync after the last row: 20 more messages, with a
	// reconnection halfway while messages are being sent.
	live := &hsLive{t: t, last: items[len(items)-1].ID}
	s := hsOpen(t, e, "alice", token, live.last)
	var aliceSent, bobSent int
	msg := func(j int) (string, string) {
		if j%2 == 1 {
			return "alice", fmt.Sprintf("la%02d", j)
		}
		return "bob", fmt.Sprintf("lb%02d", j)
	}
	count := func(from string) {
		if from == "alice" {
			aliceSent++
		} else {
			bobSent++
		}
	}
	for j := range 10 {
		from, id := msg(j)
		at, keys := send(from, id)
		count(from)
		live.take(s, keys, at.Add(hsWithin), "live "+id)
	}

	// It goes away; a message comes meanwhile, which it gets from the
	// backlog when it comes back.
	s.close()
	from, id := msg(10)
	_, keys := send(from, id)
	count(from)
	s = hsOpen(t, e, "alice", token, live.last)
	live.take(s, keys, time.Now().Add(hsWithin), "sent while away")

	// It reconnects while two more messages are being sent.
	s.close()
	type result struct {
		at   time.Time
		keys []string
		err  error
	}
	results := make(chan result, 2)
	go func() { // t.Fatal is not for this goroutine
		for j := 11; j < 13; j++ {
			from, id := msg(j)
			d, to := b1, "alice"
			if from == "alice" {
				d, to = a1, "bob"
			}
			res, err := d.Send(ctx(t), "sip:"+to+"@example.com", "message/cpim", hsCPIM(from, to, id, "text/plain", "text of "+id))
			if err == nil && res.StatusCode != 200 {
				err = fmt.Errorf("%s: status %d %s", id, res.StatusCode, res.Reason)
			}
			results <- result{time.Now(), hsExpected(from, id), err}
		}
	}()
	s = hsOpen(t, e, "alice", token, live.last)
	latest := time.Now()
	keys = nil
	for j := 11; j < 13; j++ {
		r := <-results
		if r.err != nil {
			t.Fatalf("sent while reconnecting: %v", r.err)
		}
		from, _ := msg(j)
		count(from)
		keys = append(keys, r.keys...)
		if r.at.After(latest) {
			latest = r.at
		}
	}
	live.take(s, keys, latest.Add(hsWithin), "sent while reconnecting")
	for j := 13; j < 20; j++ {
		from, id := msg(j)
		at, keys := send(from, id)
		count(from)
		live.take(s, keys, at.Add(hsWithin), "live "+id)
	}
	live.quiet(s)

	// What the live sync sent is what the history holds after the backlog.
	api := hsAll(t, e, "alice", token, items[len(items)-1].ID)
	if len(api) != len(live.got) {
		t.Fatalf("the history has %d rows after the backlog, the live sync sent %d", len(api), len(live.got))
	}
	for i := range api {
		if a, l := api[i], live.got[i]; a.ID != l.ID || a.MessageID != l.MessageID || a.Content != l.Content ||
			a.ContentType != l.ContentType || a.Direction != l.Direction || a.State != l.State || a.Timestamp != l.Timestamp {
			t.Errorf("row %d: API %+v, live %+v", i, a, l)
		}
	}

	// A2, registered now, got bob's messages and copies of what A1 sent.
	hsWait(t, a2, aliceSent, "copies of A1's messages at A2", hsReplicated)
	hsWait(t, a2, bobSent, "bob's messages at A2", func(r *sipmsg.Request) bool {
		f := r.From()
		return !hsReplicated(r) && f != nil && f.Address.User == "bob"
	})
	time.Sleep(hsSettle)
	if n := len(hsMatching(a2, hsReplicated)); n != aliceSent {
		t.Errorf("A2 got %d copies, want %d (none of the messages sent while it was offline)", n, aliceSent)
	}
}

// hsExpected returns the keys of the rows alice's history gets for a
// message: bob's, one incoming row; alice's, an outgoing row and its
// outcome, accepted.
func hsExpected(from, id string) []string {
	if from == "alice" {
		return []string{"text/plain " + id + " outgoing", "imdn " + id + " accepted"}
	}
	return []string{"text/plain " + id + " incoming"}
}

// hsCheckBacklog checks the rows a device pulled: consecutive ids, every
// expected row once, messages in the order sent, each outcome after its
// message.
func hsCheckBacklog(t *testing.T, items []hsItem, want, userRows []string) {
	t.Helper()
	if len(items) != len(want) {
		t.Fatalf("pulled %d rows, want %d", len(items), len(want))
	}
	at := map[string]int{}
	var users []string
	for i, it := range items {
		if i > 0 && it.ID != items[i-1].ID+1 {
			t.Errorf("row %d has id %d after %d", i, it.ID, items[i-1].ID)
		}
		k := hsKey(t, it)
		if _, dup := at[k]; dup {
			t.Errorf("row %q twice", k)
		}
		at[k] = i
		if it.ContentType == "text/plain" {
			users = append(users, k)
			if !strings.HasSuffix(it.Content, it.MessageID) || it.Timestamp == "" {
				t.Errorf("row %+v", it)
			}
			if it.Direction == "incoming" && (it.Contact != "bob@example.com" || it.State != "received" ||
				!slices.Equal(it.Disposition, []string{"positive-delivery", "display"})) {
				t.Errorf("incoming row %+v", it)
			}
			if it.Direction == "outgoing" && it.Contact != "bob@example.com" {
				t.Errorf("outgoing row %+v", it)
			}
		}
	}
	for _, k := range want {
		if _, ok := at[k]; !ok {
			t.Errorf("row %q missing", k)
		}
	}
	if !slices.Equal(users, userRows) {
		t.Errorf("messages in the order\n%v\nwant\n%v", users, userRows)
	}
	for k, i := range at {
		if id, ok := strings.CutPrefix(k, "imdn "); ok {
			if j, ok := at["text/plain "+strings.TrimSuffix(id, " accepted")+" outgoing"]; ok && j > i {
				t.Errorf("outcome %q before its message", k)
			}
		}
	}
}

// TestHistorySyncAuth: the live sync refuses, with 401 before any upgrade,
// a missing, wrong, expired or other account's token.
func TestHistorySyncAuth(t *testing.T) { hsEngines(t, hsSyncAuth) }

func hsSyncAuth(t *testing.T, eng apptest.Engine) {
	e := start(t, eng, nil)
	a1 := e.device("alice", alicePW, "udp", inst1)
	b1 := e.device("bob", bobPW, "udp", inst1)
	register(t, a1)
	register(t, b1)
	aliceTok, bobTok := hsToken(t, a1, "alice"), hsToken(t, b1, "bob")

	refused := func(name, user string, hdr http.Header, protocols ...string) {
		t.Helper()
		ws, resp, err := hsDial(t, e, user, 0, hdr, protocols...)
		if err == nil {
			ws.Close()
			t.Errorf("%s: upgraded, want 401", name)
			return
		}
		if resp == nil || resp.StatusCode != 401 {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Errorf("%s: %v (HTTP %d), want 401", name, err, code)
		}
	}
	apikey := func(tok string) http.Header { return http.Header{"Authorization": {"Apikey " + tok}} }
	refused("no token", "alice", nil)
	refused("a wrong token", "alice", apikey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	refused("bob's token", "alice", apikey(bobTok))
	refused("bob's token as subprotocol", "alice", nil, "apikey."+bobTok)
	refused("alice's token on bob's path", "bob", apikey(aliceTok))
	refused("another scheme", "alice", http.Header{"Authorization": {"Bearer " + aliceTok}})
	if code, _ := hsFetch(t, e, e.srv.HTTPSURL+history.HistoryPath+"alice@example.com", "Apikey "+bobTok); code != 401 {
		t.Errorf("history API with bob's token on alice's path: %d, want 401", code)
	}

	// The right token works, in the header or as a subprotocol (echoed).
	ws, _, err := hsDial(t, e, "alice", 0, apikey(aliceTok))
	if err != nil {
		t.Fatalf("alice's token: %v", err)
	}
	ws.Close()
	ws, _, err = hsDial(t, e, "alice", 0, nil, "apikey."+aliceTok)
	if err != nil {
		t.Fatalf("alice's token as subprotocol: %v", err)
	}
	if p := ws.Subprotocol(); p != "apikey."+aliceTok {
		t.Errorf("subprotocol %q not echoed", p)
	}
	ws.Close()

	// Past its lifetime (30 days by default) a token is refused.
	e.srv.Clock.Advance(31 * 24 * time.Hour)
	refused("an expired token", "alice", apikey(aliceTok))
}
