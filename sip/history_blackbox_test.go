package sip_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/sip/siptest"
)

// Black-box tests of the message history as Blink uses it (blink.md §6.6,
// §8 G cases 46–50; sylk.md §4.2, §5): API tokens asked for by SIP
// MESSAGE, the history read over HTTPS, retention, paging, and what
// another account must not be able to do.

// hbHistory is where Blink finds the history API (sylk.md §5).
const hbHistory = "/webrtcgateway/messages/history/"

// hbItemKeys are the fields of a history item: the eight Blink reads and
// cairn's row id, which its paging uses.
var hbItemKeys = []string{"contact", "content", "content_type", "direction", "disposition", "id", "message_id", "state", "timestamp"}

// hbStates are the states SylkServer gives rows (sylk.md §2.5).
var hbStates = []string{"delivered", "failed", "displayed", "forbidden", "error", "accepted", "pending", "received"}

type hbItem struct {
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

type hbAnswer struct {
	Account  string   `json:"account"`
	Messages []hbItem `json:"messages"`
	More     bool     `json:"more"`
	LastID   int64    `json:"last_id"`
	raw      []byte
}

func hbEngines(t *testing.T, f func(t *testing.T, eng apptest.Engine)) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) { f(t, eng) })
	}
}

// hbCPIM is a CPIM body from one local user to another with any inner
// type, laid out as Blink writes it.
func hbCPIM(from, to, id, ctype, text string) []byte {
	return []byte("From: <sip:" + from + "@example.com>\r\nTo: <sip:" + to + "@example.com>\r\n" +
		"DateTime: 2026-11-28T10:00:00.000000+00:00\r\nNS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: " + id + "\r\n\r\n" +
		"Content-Type: " + ctype + "\r\n\r\n" + text)
}

// hbWaitType waits until dev took a MESSAGE of type ctype after its first
// from ones, and returns it.
func hbWaitType(t *testing.T, dev *siptest.Device, from int, ctype string) *sipmsg.Request {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		got := dev.Received()
		for _, r := range got[min(from, len(got)):] {
			if ct := r.ContentType(); ct != nil && ct.Value() == ctype {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s got no %s MESSAGE within %v (%d MESSAGEs)", dev.AOR(), ctype, wait, len(got))
			return nil
		}
	}
}

// hbQuiet waits a moment and checks that dev took exactly n MESSAGEs.
func hbQuiet(t *testing.T, dev *siptest.Device, n int, what string) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	if got := dev.Received(); len(got) != n {
		var types []string
		for _, r := range got {
			if ct := r.ContentType(); ct != nil {
				types = append(types, ct.Value())
			}
		}
		t.Errorf("%s: %s took %d MESSAGEs %v, want %d", what, dev.AOR(), len(got), types, n)
	}
}

// hbToken asks for an API token as Blink does (From = To = own AOR) and
// returns the token and url of the reply, which must reach dev.
func hbToken(t *testing.T, dev *siptest.Device, body string) (token, historyURL string) {
	t.Helper()
	n := len(dev.Received())
	res, err := dev.Send(ctx(t), dev.AOR(), "application/sylk-api-token", []byte(body))
	mustStatus(t, res, err, 200)
	m := hbWaitType(t, dev, n, "application/sylk-api-token")
	var reply map[string]json.RawMessage
	if err := json.Unmarshal(m.Body(), &reply); err != nil {
		t.Fatalf("token reply %q: %v", m.Body(), err)
	}
	if len(reply) != 2 || json.Unmarshal(reply["token"], &token) != nil || json.Unmarshal(reply["url"], &historyURL) != nil ||
		token == "" || historyURL == "" {
		t.Fatalf("token reply %s, want {\"token\":string,\"url\":string}", m.Body())
	}
	return token, historyURL
}

// hbGet sends GET path to the node's HTTPS listener with the given
// Authorization ("" sends none) and returns the status and, for a 200,
// the answer, whose shape it checks against what Blink reads.
func hbGet(t *testing.T, e *env, path, authorization string) (int, hbAnswer) {
	t.Helper()
	req, err := http.NewRequest("GET", e.srv.HTTPSURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := e.srv.HTTPS.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		return resp.StatusCode, hbAnswer{raw: body}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	ans := hbAnswer{raw: body}
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	hbCheckShape(t, body)
	return 200, ans
}

// hbCheckShape checks an answer as Blink Cocoa and Blink Qt read it
// (blink.md §6.6, §7, §8 case 47).
func hbCheckShape(t *testing.T, body []byte) {
	t.Helper()
	// Blink Cocoa replaces every \/ by / before it parses the answer.
	if bytes.Contains(body, []byte(`\/`)) {
		t.Errorf("the answer holds \\/, which Blink Cocoa rewrites: %s", body)
	}
	var top struct {
		Account  json.RawMessage              `json:"account"`
		Messages []map[string]json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("answer: %v", err)
	}
	if len(top.Account) == 0 || top.Account[0] != '"' {
		t.Errorf("account is %s, want a string", top.Account)
	}
	if top.Messages == nil {
		t.Errorf("messages is missing or null: %s", body)
	}
	for i, it := range top.Messages {
		keys := make([]string, 0, len(it))
		for k := range it {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, hbItemKeys) {
			t.Errorf("item %d has fields %v, want %v", i, keys, hbItemKeys)
		}
		for _, k := range []string{"contact", "timestamp", "message_id", "content_type", "content", "direction", "state"} {
			if v := it[k]; len(v) == 0 || v[0] != '"' {
				t.Errorf("item %d: %s is %s, want a string", i, k, v)
			}
		}
		var disp []string
		if v := it["disposition"]; len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &disp) != nil {
			t.Errorf("item %d: disposition is %s, want an array of strings", i, v)
		}
		var id int64
		if json.Unmarshal(it["id"], &id) != nil || id <= 0 {
			t.Errorf("item %d: id is %s, want a positive integer", i, it["id"])
		}
		var ts, ctype, content string
		json.Unmarshal(it["timestamp"], &ts)
		json.Unmarshal(it["content_type"], &ctype)
		json.Unmarshal(it["content"], &content)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "+00:00") {
			t.Errorf("item %d: timestamp %q is not ISO 8601 UTC ending +00:00 (%v)", i, ts, err)
		}
		if ctype == "message/imdn" {
			if !json.Valid([]byte(content)) {
				t.Errorf("item %d: message/imdn content is not JSON: %q", i, content)
			}
			if w := hbBareWord(content); w != "" {
				t.Errorf("item %d: message/imdn content holds %q, which Python's eval (Blink Cocoa) rejects: %s", i, w, content)
			}
		}
	}
}

// hbBareWord returns the first word outside strings and numbers in the
// JSON text s (true, false, null), or "": Python's eval knows none.
func hbBareWord(s string) string {
	isLetter := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case c == '-' || c >= '0' && c <= '9':
			for i+1 < len(s) && strings.IndexByte("0123456789.eE+-", s[i+1]) >= 0 {
				i++
			}
		case isLetter(c):
			j := i
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			return s[i:j]
		}
	}
	return ""
}

// hbRead reads path with token and wants 200.
func hbRead(t *testing.T, e *env, path, token string) hbAnswer {
	t.Helper()
	code, ans := hbGet(t, e, path, "Apikey "+token)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, ans.raw)
	}
	return ans
}

// hbReadUntil reads path with token until cond holds, within the deadline.
func hbReadUntil(t *testing.T, e *env, path, token, what string, cond func(hbAnswer) bool) hbAnswer {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		ans := hbRead(t, e, path, token)
		if cond(ans) {
			return ans
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, wait, ans.raw)
		}
	}
}

// hbFlip returns token with its last character changed: a token that is
// not the one issued, of the same shape.
func hbFlip(token string) string {
	last := byte('A')
	if token[len(token)-1] == last {
		last = 'B'
	}
	return token[:len(token)-1] + string(last)
}

func hbMessageIDs(items []hbItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.MessageID
	}
	return out
}

func hbFind(items []hbItem, messageID, direction string) *hbItem {
	for i := range items {
		if items[i].MessageID == messageID && items[i].Direction == direction {
			return &items[i]
		}
	}
	return nil
}

// TestHistoryAPIToken: Blink's token request (case 46) is answered on the
// asking device only, each device gets a token of its own and all work at
// once; a token request from another account (case 50) is refused,
// reaches nobody and journals nothing.
func TestHistoryAPIToken(t *testing.T) {
	hbEngines(t, func(t *testing.T, eng apptest.Engine) {
		e := start(t, eng, nil)
		a1 := e.device("alice", alicePW, "udp", inst1)
		a2 := e.device("alice", alicePW, "tcp", inst2)
		register(t, a1)
		register(t, a2)

		tok1, url1 := hbToken(t, a1, "I need a token")
		if !strings.HasSuffix(url1, hbHistory+"alice@example.com") {
			t.Errorf("token url %q does not end with %salice@example.com", url1, hbHistory)
		}
		if u, err := url.Parse(url1); err != nil || u.Scheme != "https" || u.Host == "" {
			t.Errorf("token url %q is not an https URL (%v)", url1, err)
		}
		m := a1.Received()[0]
		if ct := m.ContentType(); ct == nil || ct.Value() != "application/sylk-api-token" {
			t.Errorf("token reply Content-Type %v, want application/sylk-api-token (no CPIM)", ct)
		}
		if to := m.To(); to == nil || to.Address.User != "alice" || to.Address.Host != domain {
			t.Errorf("token reply To %v, want alice's AOR", to)
		}
		hbQuiet(t, a2, 0, "a token asked for by another device")

		// Blink Qt's body.
		tok2, url2 := hbToken(t, a2, "Token request")
		if tok2 == tok1 {
			t.Errorf("two devices got the same token %q", tok1)
		}
		if url2 != url1 {
			t.Errorf("token urls differ: %q and %q", url1, url2)
		}
		hbQuiet(t, a1, 1, "a token asked for by another device")

		// Both work at the same time: the second did not replace the first.
		path := hbHistory + "alice@example.com"
		for i, tok := range []string{tok1, tok2} {
			ans := hbRead(t, e, path, tok)
			if ans.Account != "alice@example.com" || len(ans.Messages) != 0 {
				t.Errorf("token %d: account %q, %d messages; want alice@example.com and none", i+1, ans.Account, len(ans.Messages))
			}
		}

		// case 50: bob asks for alice's token, raw and in CPIM.
		bob := e.device("bob", bobPW, "udp", "")
		register(t, bob)
		res, err := bob.Send(ctx(t), "sip:alice@example.com", "application/sylk-api-token", []byte("I need a token"))
		mustStatus(t, res, err, 403)
		res, err = bob.Send(ctx(t), "sip:alice@example.com", "message/cpim",
			hbCPIM("bob", "alice", "hb-token-cpim", "application/sylk-api-token", "I need a token"))
		mustStatus(t, res, err, 403)
		hbQuiet(t, a1, 1, "bob's token request for alice")
		hbQuiet(t, a2, 1, "bob's token request for alice")
		hbQuiet(t, bob, 0, "bob's token request for alice")

		// Nothing journaled, for alice or for bob.
		if ans := hbRead(t, e, path, tok1); len(ans.Messages) != 0 {
			t.Errorf("token requests journaled rows for alice: %s", ans.raw)
		}
		btok, _ := hbToken(t, bob, "I need a token")
		if ans := hbRead(t, e, hbHistory+"bob@example.com", btok); len(ans.Messages) != 0 {
			t.Errorf("token requests journaled rows for bob: %s", ans.raw)
		}
	})
}

// TestHistoryAPIRead: the history of a CPIM MESSAGE alice sent and a plain
// one she received, as Blink reads it (cases 47–49): journaled before the
// 2xx, the SIP outcome as a message/imdn row Python can eval, the cursor,
// %40 in the path, and 401 for every token that is not alice's and live.
func TestHistoryAPIRead(t *testing.T) {
	hbEngines(t, func(t *testing.T, eng apptest.Engine) {
		e := start(t, eng, nil)
		alice := e.device("alice", alicePW, "udp", inst1)
		bob := e.device("bob", bobPW, "tcp", inst2)
		register(t, alice)
		register(t, bob)
		atok, aurl := hbToken(t, alice, "I need a token")
		btok, _ := hbToken(t, bob, "I need a token")
		u, err := url.Parse(aurl)
		if err != nil {
			t.Fatal(err)
		}
		path := u.Path // the url's path, on the test's listener

		const id = "6f0c2a4e-1b2c-4c1e-9a51-0e7d9a1b2c3d"
		res, err := alice.Send(ctx(t), "sip:bob@example.com", "message/cpim", cpim(id, "hello bob"))
		mustStatus(t, res, err, 200)
		// Journaled before the 2xx: read at once, no waiting.
		if ans := hbRead(t, e, path, atok); hbFind(ans.Messages, id, "outgoing") == nil {
			t.Errorf("right after the 2xx alice's history lacks her message: %s", ans.raw)
		}
		// The outcome row follows the answer.
		hbReadUntil(t, e, path, atok, "the outcome row of alice's message", func(a hbAnswer) bool { return len(a.Messages) >= 2 })

		res, err = bob.Send(ctx(t), "sip:alice@example.com", "text/plain", []byte("hello alice"))
		mustStatus(t, res, err, 200)
		sent := e.srv.Clock.Now()
		ans := hbRead(t, e, path, atok)
		if len(ans.Messages) != 3 {
			t.Fatalf("right after bob's 2xx alice's history has %d rows, want 3 (sent, outcome, received): %s", len(ans.Messages), ans.raw)
		}
		if ans.Account != "alice@example.com" {
			t.Errorf("account %q", ans.Account)
		}
		out, outcome, in := ans.Messages[0], ans.Messages[1], ans.Messages[2]

		if out.MessageID != id || out.Direction != "outgoing" || out.Contact != "bob@example.com" ||
			out.ContentType != "text/plain" || out.Content != "hello bob" ||
			!slices.Equal(out.Disposition, []string{"positive-delivery", "display"}) || !slices.Contains(hbStates, out.State) {
			t.Errorf("alice's message: %+v", out)
		}
		if ts, _ := time.Parse(time.RFC3339Nano, out.Timestamp); !ts.Equal(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("alice's message timestamp %q, want the CPIM DateTime", out.Timestamp)
		}

		if outcome.ContentType != "message/imdn" || outcome.Contact != "bob@example.com" || outcome.MessageID == id ||
			!slices.Contains(hbStates, outcome.State) {
			t.Errorf("outcome row: %+v", outcome)
		}
		var n struct {
			MessageID        string `json:"message_id"`
			MessageTimestamp string `json:"message_timestamp"`
			State            string `json:"state"`
		}
		if err := json.Unmarshal([]byte(outcome.Content), &n); err != nil || n.MessageID != id || n.State != "accepted" {
			t.Errorf("outcome content %s (%v): want message_id %s, state accepted", outcome.Content, err, id)
		}
		// SylkServer's event carries the message's time as isoformat().
		if ts, err := time.Parse(time.RFC3339Nano, n.MessageTimestamp); err != nil || !ts.Equal(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("outcome message_timestamp %q, want the message's time as ISO 8601 (%v)", n.MessageTimestamp, err)
		}

		if in.Direction != "incoming" || in.Contact != "bob@example.com" || in.ContentType != "text/plain" ||
			in.Content != "hello alice" || in.State != "received" || len(in.Disposition) != 0 ||
			in.MessageID == "" || in.MessageID == id {
			t.Errorf("bob's message: %+v", in)
		}
		if ts, err := time.Parse(time.RFC3339Nano, in.Timestamp); err != nil || ts.Sub(sent).Abs() > time.Minute {
			t.Errorf("bob's message timestamp %q, want about the node's time %v", in.Timestamp, sent)
		}
		if !(out.ID < outcome.ID && outcome.ID < in.ID) {
			t.Errorf("ids %d, %d, %d do not rise", out.ID, outcome.ID, in.ID)
		}

		// case 48: after a message_id, only later rows; Blink Cocoa's %40.
		all := hbMessageIDs(ans.Messages)
		enc := strings.Replace(path, "@", "%40", 1)
		if !strings.Contains(enc, "%40") {
			t.Fatalf("path %q has no @", path)
		}
		for _, p := range []string{path + "/" + id, enc + "/" + id} {
			if got := hbMessageIDs(hbRead(t, e, p, atok).Messages); !slices.Equal(got, all[1:]) {
				t.Errorf("GET %s: %v, want %v", p, got, all[1:])
			}
		}
		if got := hbMessageIDs(hbRead(t, e, enc, atok).Messages); !slices.Equal(got, all) {
			t.Errorf("GET %s: %v, want %v", enc, got, all)
		}

		// case 49.
		for _, c := range []struct{ what, auth string }{
			{"no Authorization", ""},
			{"a wrong token", "Apikey " + hbFlip(atok)},
			{"an empty token", "Apikey "},
			{"the token under another scheme", "Bearer " + atok},
			{"bob's token", "Apikey " + btok},
		} {
			if code, a := hbGet(t, e, path, c.auth); code != 401 {
				t.Errorf("alice's history with %s: %d %s, want 401", c.what, code, a.raw)
			}
		}
		if code, a := hbGet(t, e, hbHistory+"bob@example.com", "Apikey "+atok); code != 401 {
			t.Errorf("bob's history with alice's token: %d %s, want 401", code, a.raw)
		}
		lifetime := e.srv.Config.History.TokenLifetime.D()
		e.srv.Clock.Advance(lifetime - time.Minute)
		if code, _ := hbGet(t, e, path, "Apikey "+atok); code != 200 {
			t.Errorf("a token a minute before it expires: %d, want 200", code)
		}
		e.srv.Clock.Advance(2 * time.Minute)
		if code, _ := hbGet(t, e, path, "Apikey "+atok); code != 401 {
			t.Errorf("an expired token: %d, want 401", code)
		}
	})
}

// TestHistoryAPIRetention: no 3-day window without a cursor (SylkServer's
// Cassandra shortcut): rows 10 and 59 days old are listed, rows past the
// 60 days are not, and a purge removes them.
func TestHistoryAPIRetention(t *testing.T) {
	hbEngines(t, func(t *testing.T, eng apptest.Engine) {
		e := start(t, eng, func(c *config.Config) {
			// Outlives the test's 61 days, so that only rows expire.
			c.History.TokenLifetime = config.Duration(90 * 24 * time.Hour)
		})
		if r := e.srv.Config.History.Retention.D(); r != 60*24*time.Hour {
			t.Fatalf("history retention %v, want the default 60 days", r)
		}
		alice := e.device("alice", alicePW, "udp", inst1)
		bob := e.device("bob", bobPW, "tcp", inst2)
		register(t, alice)
		register(t, bob)
		atok, _ := hbToken(t, alice, "I need a token")
		btok, _ := hbToken(t, bob, "I need a token")
		apath, bpath := hbHistory+"alice@example.com", hbHistory+"bob@example.com"

		for _, id := range []string{"hb-retention-1", "hb-retention-2"} {
			res, err := alice.Send(ctx(t), "sip:bob@example.com", "message/cpim", cpim(id, id))
			mustStatus(t, res, err, 200)
		}
		res, err := bob.Send(ctx(t), "sip:alice@example.com", "text/plain", []byte("hb-retention-3"))
		mustStatus(t, res, err, 200)
		// alice: 2 sent, 2 outcomes, 1 received; bob: 2 received, 1 sent, 1 outcome.
		want := hbMessageIDs(hbReadUntil(t, e, apath, atok, "alice's 5 rows", func(a hbAnswer) bool { return len(a.Messages) == 5 }).Messages)
		hbReadUntil(t, e, bpath, btok, "bob's 4 rows", func(a hbAnswer) bool { return len(a.Messages) == 4 })

		for _, step := range []struct {
			advance time.Duration
			age     string
		}{{10 * 24 * time.Hour, "10 days"}, {49 * 24 * time.Hour, "59 days"}} {
			e.srv.Clock.Advance(step.advance)
			if got := hbMessageIDs(hbRead(t, e, apath, atok).Messages); !slices.Equal(got, want) {
				t.Errorf("rows %s old, no cursor: %v, want %v", step.age, got, want)
			}
		}
		if got := hbMessageIDs(hbRead(t, e, apath+"/hb-retention-1", atok).Messages); !slices.Equal(got, want[1:]) {
			t.Errorf("rows 59 days old, after a cursor: %v, want %v", got, want[1:])
		}

		e.srv.Clock.Advance(2 * 24 * time.Hour)
		for _, p := range []string{apath, apath + "/hb-retention-1"} {
			if ans := hbRead(t, e, p, atok); len(ans.Messages) != 0 || ans.More {
				t.Errorf("GET %s, rows 61 days old: %s, want none", p, ans.raw)
			}
		}
		purged, err := e.srv.Node.Purge(t.Context())
		if err != nil || purged.History != 9 {
			t.Errorf("purge removed %d history rows (%v), want 9", purged.History, err)
		}
		if purged, err = e.srv.Node.Purge(t.Context()); err != nil || purged.History != 0 {
			t.Errorf("a second purge removed %d history rows (%v), want 0", purged.History, err)
		}
	})
}

// TestHistoryAPIPaging: with history.page_limit 5, 12 rows come in pages
// of 5, 5 and 2, with more set until the last; following either the last
// message_id (Blink) or last_id gives every row once, in order.
func TestHistoryAPIPaging(t *testing.T) {
	hbEngines(t, func(t *testing.T, eng apptest.Engine) {
		e := start(t, eng, func(c *config.Config) { c.History.PageLimit = 5 })
		alice := e.device("alice", alicePW, "udp", inst1)
		register(t, alice)
		atok, _ := hbToken(t, alice, "I need a token")
		bob := e.device("bob", bobPW, "tcp", "")
		const n = 12
		for i := range n {
			res, err := bob.Send(ctx(t), "sip:alice@example.com", "text/plain", fmt.Appendf(nil, "m%02d", i))
			mustStatus(t, res, err, 200)
		}
		path := hbHistory + "alice@example.com"

		for _, by := range []string{"message_id", "last_id"} {
			var got []hbItem
			var sizes []int
			var mores []bool
			cursor := ""
			for page := 0; ; page++ {
				if page > n {
					t.Fatalf("by %s: more than %d pages", by, n)
				}
				p := path
				if cursor != "" {
					p += "/" + cursor
				}
				ans := hbRead(t, e, p, atok)
				if len(ans.Messages) == 0 {
					if ans.More {
						t.Errorf("by %s: an empty page says more", by)
					}
					if want, _ := strconv.ParseInt(cursor, 10, 64); by == "last_id" && ans.LastID != want {
						t.Errorf("by %s: an empty page's last_id is %d, want the cursor %d", by, ans.LastID, want)
					}
					break
				}
				if last := ans.Messages[len(ans.Messages)-1]; ans.LastID != last.ID {
					t.Errorf("by %s: last_id %d, but the last row's id is %d", by, ans.LastID, last.ID)
				}
				got = append(got, ans.Messages...)
				sizes = append(sizes, len(ans.Messages))
				mores = append(mores, ans.More)
				if by == "message_id" {
					cursor = url.PathEscape(ans.Messages[len(ans.Messages)-1].MessageID)
				} else {
					cursor = strconv.FormatInt(ans.LastID, 10)
				}
			}
			if !slices.Equal(sizes, []int{5, 5, 2}) || !slices.Equal(mores, []bool{true, true, false}) {
				t.Errorf("by %s: pages of %v with more %v, want [5 5 2] and [true true false]", by, sizes, mores)
			}
			seen := map[string]bool{}
			for i, it := range got {
				if i >= n || it.Content != fmt.Sprintf("m%02d", i) || seen[it.MessageID] || i > 0 && it.ID <= got[i-1].ID {
					t.Errorf("by %s: row %d is %+v, want m%02d once, ids rising", by, i, it, i)
				}
				seen[it.MessageID] = true
			}
			if len(got) != n {
				t.Errorf("by %s: %d rows, want %d", by, len(got), n)
			}
			// Exactly a page left: all of it, and no more.
			if len(got) == n {
				ans := hbRead(t, e, path+"/"+url.PathEscape(got[n-6].MessageID), atok)
				if len(ans.Messages) != 5 || ans.More {
					t.Errorf("by %s: the last 5 rows came as %d with more %v, want 5 and false", by, len(ans.Messages), ans.More)
				}
			}
		}
	})
}

// TestHistoryAPIAdversarial: what bob (or somebody without alice's
// password) must not do to alice's history: read it, write to it by an
// unauthenticated MESSAGE, remove her messages, publish her key.
func TestHistoryAPIAdversarial(t *testing.T) {
	hbEngines(t, func(t *testing.T, eng apptest.Engine) {
		e := start(t, eng, nil)
		alice := e.device("alice", alicePW, "udp", inst1)
		bob := e.device("bob", bobPW, "tcp", inst2)
		carol := e.device("carol", carolPW, "udp", "")
		register(t, alice)
		register(t, bob)
		register(t, carol)
		atok, _ := hbToken(t, alice, "I need a token")
		btok, _ := hbToken(t, bob, "I need a token")
		apath, bpath := hbHistory+"alice@example.com", hbHistory+"bob@example.com"

		// bob's token does not open alice's history, whatever the spelling.
		for _, p := range []string{apath, hbHistory + "alice%40example.com", hbHistory + "ALICE@example.com", hbHistory + "alice@EXAMPLE.COM"} {
			if code, a := hbGet(t, e, p, "Apikey "+btok); code != 401 {
				t.Errorf("GET %s with bob's token: %d %s, want 401", p, code, a.raw)
			}
		}

		// Unauthenticated MESSAGEs (wrong passwords) journal nothing.
		impostor := e.device("alice", carolPW, "udp", "")
		res, err := impostor.Send(ctx(t), "sip:bob@example.com", "message/cpim", cpim("hb-spoof-1", "spoof"))
		mustStatus(t, res, err, 407)
		res, err = impostor.Send(ctx(t), "sip:alice@example.com", "text/plain", []byte("spoof to self"))
		mustStatus(t, res, err, 407)
		res, err = impostor.Send(ctx(t), "sip:alice@example.com", "application/sylk-api-token", []byte("I need a token"))
		mustStatus(t, res, err, 407)
		res, err = e.device("bob", "wrong-password", "tcp", "").Send(ctx(t), "sip:alice@example.com", "text/plain", []byte("spoof"))
		mustStatus(t, res, err, 407)
		for _, c := range []struct{ path, token string }{{apath, atok}, {bpath, btok}} {
			if ans := hbRead(t, e, c.path, c.token); len(ans.Messages) != 0 {
				t.Errorf("unauthenticated MESSAGEs journaled rows: %s", ans.raw)
			}
		}

		// bob cannot remove what alice sent, to him or to carol.
		for _, m := range []struct{ to, id string }{{"sip:bob@example.com", "hb-alice-1"}, {"sip:carol@example.com", "hb-alice-2"}} {
			res, err := alice.Send(ctx(t), m.to, "message/cpim", cpim(m.id, m.id))
			mustStatus(t, res, err, 200)
		}
		// alice: 2 sent, 2 outcomes.
		hbReadUntil(t, e, apath, atok, "alice's 4 rows", func(a hbAnswer) bool { return len(a.Messages) == 4 })
		for _, c := range []struct{ to, id string }{
			{"sip:alice@example.com", "hb-alice-1"},
			{"sip:bob@example.com", "hb-alice-1"},
			{"sip:alice@example.com", "hb-alice-2"},
			{"sip:carol@example.com", "hb-alice-2"},
		} {
			res, err := bob.Send(ctx(t), c.to, "application/sylk-api-message-remove", []byte(c.id))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 403 && res.StatusCode != 404 {
				t.Errorf("bob removing %s (To %s): %d %s, want 403 or 404", c.id, c.to, res.StatusCode, res.Reason)
			}
		}
		for _, c := range []struct{ who, path, token string }{{"alice", apath, atok}, {"bob", bpath, btok}} {
			for _, it := range hbRead(t, e, c.path, c.token).Messages {
				if it.ContentType == "application/sylk-message-remove" {
					t.Errorf("bob's removal requests left a removal row in %s's history: %+v", c.who, it)
				}
			}
		}
		if a := hbRead(t, e, apath, atok); hbFind(a.Messages, "hb-alice-1", "outgoing") == nil || hbFind(a.Messages, "hb-alice-2", "outgoing") == nil {
			t.Errorf("alice's messages are gone: %s", a.raw)
		}
		// The check can see a removal: alice removes her own message.
		res, err = alice.Send(ctx(t), "sip:bob@example.com", "application/sylk-api-message-remove", []byte("hb-alice-1"))
		mustStatus(t, res, err, 200)
		for _, c := range []struct{ who, path, token, dir string }{{"alice", apath, atok, "outgoing"}, {"bob", bpath, btok, "incoming"}} {
			found := false
			for _, it := range hbRead(t, e, c.path, c.token).Messages {
				var r struct {
					MessageID string `json:"message_id"`
				}
				found = found || it.ContentType == "application/sylk-message-remove" && it.Direction == c.dir &&
					json.Unmarshal([]byte(it.Content), &r) == nil && r.MessageID == "hb-alice-1"
			}
			if !found {
				t.Errorf("alice's own removal left no %s removal row in %s's history", c.dir, c.who)
			}
		}

		// bob cannot publish a key for alice: lookups of alice's key find
		// nothing, then alice's own key, never bob's.
		lookup := func(owner string) (int, string) {
			t.Helper()
			n := len(carol.Received())
			res, err := carol.Send(ctx(t), "sip:"+owner+"@example.com", "application/sylk-api-pgp-key-lookup", []byte("lookup"))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				return res.StatusCode, ""
			}
			m := hbWaitType(t, carol, n, "text/pgp-public-key")
			if from := m.From(); from == nil || from.Address.User != owner {
				t.Errorf("the key of %s comes From %v", owner, from)
			}
			return 200, string(m.Body())
		}
		spoof := func() {
			t.Helper()
			for _, s := range []struct {
				to, ctype string
				body      []byte
			}{
				{"sip:alice@example.com", "text/pgp-public-key", []byte("BOB-KEY-PLAIN")},
				{"sip:alice@example.com", "message/cpim", hbCPIM("alice", "alice", "hb-key-1", "text/pgp-public-key", "BOB-KEY-CPIM-TO-ALICE")},
				{"sip:bob@example.com", "message/cpim", hbCPIM("alice", "bob", "hb-key-2", "text/pgp-public-key", "BOB-KEY-CPIM-FROM-ALICE")},
			} {
				if _, err := bob.Send(ctx(t), s.to, s.ctype, s.body); err != nil {
					t.Fatal(err)
				}
			}
			// Without the password, not even as alice.
			res, err := impostor.Send(ctx(t), "sip:bob@example.com", "text/pgp-public-key", []byte("IMPOSTOR-KEY"))
			mustStatus(t, res, err, 407)
		}
		spoof()
		if code, key := lookup("alice"); code != 404 {
			t.Errorf("alice's key before she published one: %d %q, want 404", code, key)
		}
		res, err = alice.Send(ctx(t), "sip:bob@example.com", "text/pgp-public-key", []byte("ALICE-KEY"))
		mustStatus(t, res, err, 200)
		spoof()
		if code, key := lookup("alice"); code != 200 || key != "ALICE-KEY" {
			t.Errorf("alice's key: %d %q, want 200 ALICE-KEY", code, key)
		}
		// bob's keys are his own.
		if code, key := lookup("bob"); code != 200 || !strings.HasPrefix(key, "BOB-KEY") {
			t.Errorf("bob's key: %d %q, want one bob sent", code, key)
		}

		// Nothing the impostors sent is in any history.
		for _, c := range []struct{ path, token string }{{apath, atok}, {bpath, btok}} {
			for _, it := range hbRead(t, e, c.path, c.token).Messages {
				if strings.Contains(it.Content, "spoof") || strings.Contains(it.Content, "IMPOSTOR") || it.MessageID == "hb-spoof-1" {
					t.Errorf("an unauthenticated MESSAGE was journaled: %+v", it)
				}
			}
		}
	})
}
