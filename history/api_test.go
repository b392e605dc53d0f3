package history_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/store"
)

// TestAPIShape checks the answer as Blink parses it: field names, UTC
// timestamps with microseconds, disposition [] rather than null, strings
// never null, content round-tripping whatever its bytes.
func TestAPIShape(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{})
		alice := f.account("alice", "example.com")
		tok := f.token(alice, "<urn:uuid:1>")
		cet := time.FixedZone("CET", 3600)
		imdn := `{"message_id": "m1", "state": "delivered", "timestamp": "2025-03-14T15:00:01.000000+00:00", "code": 200, "reason": "OK"}`
		text := "héllo \"q\" back\\slash \\/ </script>\u2028\u2029\t\x01 ✓ 𝄞"
		rows := []store.HistoryRow{
			row(alice, "m1"),
			{AccountID: alice.ID, MessageID: "i1", Contact: "bob@example.com", Direction: "incoming",
				ContentType: "message/imdn", Content: []byte(imdn), Timestamp: start, Disposition: []string{}, State: "received"},
			{AccountID: alice.ID, MessageID: "b1", Contact: "bob@example.com", Direction: "outgoing",
				ContentType: "application/octet-stream", Content: []byte{0xff, 'a', 0x80, 0, 0xe9}, Timestamp: start, State: "pending"},
			{AccountID: alice.ID, MessageID: "r1", Contact: "bob@example.com",
				ContentType: "application/sylk-conversation-read", Content: []byte("sip:bob@example.com"), Timestamp: start},
		}
		rows[0].Content = []byte(text)
		rows[0].Timestamp = time.Date(2025, 3, 14, 16, 0, 0, 123456789, cet)
		got := f.append(rows...)

		w := f.get(history.HistoryPath+"alice@example.com", "Apikey "+tok.Token)
		if w.Code != http.StatusOK {
			t.Fatalf("GET: %d %s", w.Code, w.Body)
		}
		raw := w.Body.String()
		// The last row, exactly.
		wantLast := fmt.Sprintf(`{"id":%d,"message_id":"r1","contact":"bob@example.com","timestamp":"2025-03-14T12:00:00.000000+00:00",`+
			`"disposition":[],"content_type":"application/sylk-conversation-read","content":"sip:bob@example.com","direction":"","state":""}`, got[3].ID)
		wantEnd := fmt.Sprintf(`%s],"more":false,"last_id":%d}`+"\n", wantLast, got[3].ID)
		if !strings.HasPrefix(raw, `{"account":"alice@example.com","messages":[{"id":`) || !strings.HasSuffix(raw, wantEnd) {
			t.Errorf("answer\n%s\nwant it to end with\n%s", raw, wantEnd)
		}
		// Blink Cocoa replaces \/ with / before parsing.
		if strings.Contains(raw, `\/`) {
			t.Errorf("answer holds \\/, which Blink Cocoa rewrites: %s", raw)
		}
		if h := w.Header(); h.Get("Cache-Control") != "no-store" || h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("headers %v", h)
		}

		// Every field of every item is there, with its JSON type.
		var loose struct{ Messages []map[string]any }
		if err := json.Unmarshal(w.Body.Bytes(), &loose); err != nil {
			t.Fatal(err)
		}
		ts := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`)
		for i, m := range loose.Messages {
			if len(m) != 9 {
				t.Errorf("item %d has %d fields: %v", i, len(m), m)
			}
			if _, ok := m["id"].(float64); !ok {
				t.Errorf("item %d: id %#v", i, m["id"])
			}
			if _, ok := m["disposition"].([]any); !ok {
				t.Errorf("item %d: disposition %#v, want an array", i, m["disposition"])
			}
			for _, k := range []string{"message_id", "contact", "timestamp", "content_type", "content", "direction", "state"} {
				if _, ok := m[k].(string); !ok {
					t.Errorf("item %d: %s is %#v, want a string", i, k, m[k])
				}
			}
			if !ts.MatchString(m["timestamp"].(string)) {
				t.Errorf("item %d: timestamp %q", i, m["timestamp"])
			}
		}

		a := f.history(history.HistoryPath+"alice@example.com", tok.Token)
		if len(a.Messages) != 4 || a.Account != "alice@example.com" || a.More || *a.LastID != got[3].ID {
			t.Fatalf("answer %+v", a)
		}
		m := a.Messages
		if m[0].Timestamp != "2025-03-14T15:00:00.123456+00:00" {
			t.Errorf("timestamp %q, want the CET time in UTC to the microsecond", m[0].Timestamp)
		}
		if m[0].Content != text || !slices.Equal(m[0].Disposition, []string{"positive-delivery", "display"}) ||
			m[0].Direction != "incoming" || m[0].State != "received" || m[0].Contact != "bob@example.com" ||
			m[0].MessageID != "m1" || m[0].ContentType != "text/plain" || m[0].ID != got[0].ID {
			t.Errorf("text item %+v", m[0])
		}
		if m[1].Content != imdn {
			t.Errorf("imdn content %q, want %q", m[1].Content, imdn)
		}
		var parsed map[string]any
		if err := json.Unmarshal([]byte(m[1].Content), &parsed); err != nil || parsed["state"] != "delivered" {
			t.Errorf("imdn content does not parse as JSON: %v %v", parsed, err)
		}
		if want := "\u00ffa\u0080\x00\u00e9"; m[2].Content != want {
			t.Errorf("binary content %q, want Latin-1 %q", m[2].Content, want)
		}
		if m[3].Disposition == nil || len(m[3].Disposition) != 0 {
			t.Errorf("empty disposition %#v", m[3].Disposition)
		}
		if got := f.metric("cairn_history_rows_served_total", "via", "api"); got != 8 {
			t.Errorf("rows served %v, want 8", got)
		}
		if got := f.metric("cairn_history_requests_total", "code", "200"); got != 2 {
			t.Errorf("200 answers %v, want 2", got)
		}
	})
}

// TestAPICursor checks last_id in the path: a message_id (its highest
// row), a number that is no message_id (a row id), and anything unknown
// (from the oldest row kept, not three days).
func TestAPICursor(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{TokenLifetime: 365 * 24 * time.Hour})
		alice, bob := f.account("alice", "example.com"), f.account("bob", "example.com")
		tok := f.token(alice, "d1")
		f.append(row(bob, "b1"), row(bob, "b2")) // another account's rows and ids
		old := f.append(row(alice, "m1"))
		f.clock.Advance(10 * 24 * time.Hour) // older than three days
		got := f.append(row(alice, "m2"), row(alice, "dup"), row(alice, "m3"), row(alice, "dup"), row(alice, "m4"))
		all := append(old, got...)
		all = append(all, f.append(row(alice, strconv.FormatInt(all[1].ID, 10)))...) // a message_id that is also a row id
		all = append(all, f.append(row(alice, "m5"))...)
		idsFrom := func(i int) []int64 {
			var out []int64
			for _, r := range all[i:] {
				out = append(out, r.ID)
			}
			return out
		}
		base := history.HistoryPath + "alice@example.com"
		for _, tc := range []struct {
			cursor string
			want   []int64
		}{
			{"", idsFrom(0)},
			{"/", idsFrom(0)},
			{"/m1", idsFrom(1)},
			{"/m3", idsFrom(4)},
			{"/dup", idsFrom(5)}, // the highest row with that id
			{"/m5", nil},
			{"/unknown", idsFrom(0)},
			{"/" + strconv.FormatInt(all[3].ID, 10), idsFrom(4)}, // a row id
			{"/" + strconv.FormatInt(all[1].ID, 10), idsFrom(7)}, // the message_id wins
			{"/" + strconv.FormatInt(all[7].ID+100, 10), nil},    // past the end
			{"/b1", idsFrom(0)},                          // another account's message
			{"/" + strings.Repeat("x", 300), idsFrom(0)}, // longer than any message id
			{"/a%2Fb%20c", idsFrom(0)},                   // escapes
			{"/-5", idsFrom(0)},
		} {
			a := f.history(base+tc.cursor, tok.Token)
			if !slices.Equal(ids(a.Messages), tc.want) {
				t.Errorf("cursor %q: ids %v, want %v", tc.cursor, ids(a.Messages), tc.want)
			}
			wantLast := int64(0)
			if len(tc.want) > 0 {
				wantLast = tc.want[len(tc.want)-1]
			} else if tc.cursor == "/m5" {
				wantLast = all[7].ID
			} else {
				wantLast = all[7].ID + 100
			}
			if *a.LastID != wantLast {
				t.Errorf("cursor %q: last_id %d, want %d", tc.cursor, *a.LastID, wantLast)
			}
		}

		// A message_id cursor with "/" in it, as Blink Qt sends it
		// (quote keeps "/").
		f.append(row(alice, "a/b"), row(alice, "after-slash"))
		if a := f.history(base+"/a/b", tok.Token); messageIDs(a.Messages) != "after-slash" {
			t.Errorf("cursor a/b: %s", messageIDs(a.Messages))
		}

		// Past retention, the cursor row is gone: from the oldest row kept.
		f.clock.Advance(history.DefaultRetention - 5*24*time.Hour)
		a := f.history(base+"/m1", tok.Token)
		if len(a.Messages) == 0 || a.Messages[0].ID != all[1].ID {
			t.Errorf("cursor past retention: ids %v, want from %d", ids(a.Messages), all[1].ID)
		}
		f.clock.Advance(10 * 24 * time.Hour)
		if a := f.history(base+"/m2", tok.Token); len(a.Messages) != 0 {
			t.Errorf("rows past retention listed: %v", ids(a.Messages))
		}
	})
}

// TestAPIPaging checks PageLimit, more and last_id, followed by a client
// that sends the last message_id (Blink) or the last id.
func TestAPIPaging(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{PageLimit: 3})
		alice := f.account("alice", "example.com")
		tok := f.token(alice, "d1")
		var rows []store.HistoryRow
		for i := range 7 {
			rows = append(rows, row(alice, fmt.Sprintf("m%d", i)))
		}
		f.append(rows[:4]...)
		f.append(rows[4:]...)
		base := history.HistoryPath + "alice@example.com"
		for _, byID := range []bool{false, true} {
			var pages []string
			var mores []bool
			cursor := ""
			for range 5 {
				a := f.history(base+cursor, tok.Token)
				pages, mores = append(pages, messageIDs(a.Messages)), append(mores, a.More)
				if len(a.Messages) > 0 && *a.LastID != a.Messages[len(a.Messages)-1].ID {
					t.Errorf("last_id %d, last row %d", *a.LastID, a.Messages[len(a.Messages)-1].ID)
				}
				if !a.More {
					break
				}
				if byID {
					cursor = "/" + strconv.FormatInt(*a.LastID, 10)
				} else {
					cursor = "/" + a.Messages[len(a.Messages)-1].MessageID
				}
			}
			if want := []string{"m0,m1,m2", "m3,m4,m5", "m6"}; !slices.Equal(pages, want) || !slices.Equal(mores, []bool{true, true, false}) {
				t.Errorf("by id %v: pages %q more %v, want %q", byID, pages, mores, want)
			}
		}
		// Exactly a page left: more is false.
		if a := f.history(base+"/m3", tok.Token); messageIDs(a.Messages) != "m4,m5,m6" || a.More {
			t.Errorf("last full page: %s more %v", messageIDs(a.Messages), a.More)
		}
	})
}

// TestAPIUnauthorized checks that every bad token is answered 401
// Unauthorized, the same way.
func TestAPIUnauthorized(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{TokenLifetime: time.Hour})
		alice, bob := f.account("alice", "example.com"), f.account("bob", "example.com")
		tok, bobTok := f.token(alice, "d1"), f.token(bob, "d1")
		f.append(row(alice, "m1"))
		path := history.HistoryPath + "alice@example.com"
		for _, tc := range []struct{ name, path, auth string }{
			{"missing", path, ""},
			{"empty", path, "Apikey "},
			{"wrong scheme", path, "Bearer " + tok.Token},
			{"basic", path, "Basic YWxpY2U6cHc="},
			{"wrong token", path, "Apikey " + flipLast(tok.Token)},
			{"another account's token", path, "Apikey " + bobTok.Token},
			{"unknown account", history.HistoryPath + "carol@example.com", "Apikey " + tok.Token},
			{"not an account", history.HistoryPath + "alice", "Apikey " + tok.Token},
			{"user case", history.HistoryPath + "Alice@example.com", "Apikey " + tok.Token},
			{"long token", path, "Apikey " + strings.Repeat("a", 10000)},
		} {
			w := f.get(tc.path, tc.auth)
			if w.Code != http.StatusUnauthorized || w.Body.String() != "Unauthorized" || w.Header().Get("WWW-Authenticate") != "Apikey" {
				t.Errorf("%s: %d %q %v", tc.name, w.Code, w.Body, w.Header())
			}
		}
		// Scheme in any case works.
		if w := f.get(path, "APIKEY "+tok.Token); w.Code != http.StatusOK {
			t.Errorf("APIKEY scheme: %d", w.Code)
		}
		// Expired.
		f.clock.Advance(time.Hour)
		if w := f.get(path, "Apikey "+tok.Token); w.Code != http.StatusUnauthorized {
			t.Errorf("expired token: %d", w.Code)
		}
		if got := f.metric("cairn_history_requests_total", "code", "401"); got != 11 {
			t.Errorf("401 answers %v, want 11", got)
		}
	})
}

// TestAPIRequests checks the account's spellings in the path, OPTIONS,
// other methods and paths.
func TestAPIRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, engines[0], history.Config{})
	alice := f.account("alice", "example.com")
	tok := f.token(alice, "d1")
	f.append(row(alice, "m1"), row(alice, "m2"))
	for _, p := range []string{
		"alice%40example.com", "alice@EXAMPLE.com", "alice%2540example.com", "alice%40Example.COM/m1",
	} {
		// Through a real server and client, so that the path is decoded
		// as net/http decodes it.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+history.HistoryPath+p, nil)
		req.Header.Set("Authorization", "Apikey "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var a answer
		json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || a.Account != "alice@example.com" || len(a.Messages) == 0 {
			t.Errorf("%s: %d %+v", p, resp.StatusCode, a)
		}
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, f.srv.URL+history.HistoryPath+"alice@example.com/m1", nil)
	req.Header.Set("Origin", "https://app.example.org")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") || !strings.EqualFold(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("OPTIONS: %d %v", resp.StatusCode, h)
	}

	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, history.HistoryPath + "alice@example.com", http.StatusMethodNotAllowed},
		{http.MethodDelete, history.HistoryPath + "alice@example.com", http.StatusMethodNotAllowed},
		{http.MethodGet, history.HistoryPath, http.StatusNotFound},
		{http.MethodGet, "/elsewhere/alice@example.com", http.StatusNotFound},
	} {
		req := httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, nil)
		req.Header.Set("Authorization", "Apikey "+tok.Token)
		w := httptest.NewRecorder()
		f.svc.ServeHTTP(w, req)
		if w.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
	}
}

// TestTokens checks the token reply, tokens per device coexisting, the
// MaxTokens bound and that only a digest is stored.
func TestTokens(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) {
		f := newFixture(t, e, history.Config{MaxTokens: 3, BaseURL: baseURL + "/"})
		alice := f.account("alice", "example.com")
		f.append(row(alice, "m1"))
		var toks []tokenReply
		for i := range 3 {
			toks = append(toks, f.token(alice, fmt.Sprintf("<urn:uuid:%d>", i)))
			f.clock.Advance(time.Second)
		}
		if want := baseURL + history.HistoryPath + "alice@example.com"; toks[0].URL != want {
			t.Errorf("url %q, want %q", toks[0].URL, want)
		}
		if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(toks[0].Token) {
			t.Errorf("token %q: want 43 base64url characters (256 bits)", toks[0].Token)
		}
		ok := func(tok tokenReply) bool {
			return f.get(history.HistoryPath+"alice@example.com", "Apikey "+tok.Token).Code == http.StatusOK
		}
		for i, tok := range toks {
			if !ok(tok) {
				t.Errorf("token %d of 3 does not work", i)
			}
		}
		// Stored as a SHA-256 digest only.
		if _, err := f.st.TokenGet(t.Context(), []byte(toks[0].Token)); err == nil {
			t.Errorf("the token itself is a key of the store")
		}
		// A fourth evicts the oldest.
		toks = append(toks, f.token(alice, "<urn:uuid:3>"))
		for i, tok := range toks {
			if ok(tok) != (i > 0) {
				t.Errorf("after a fourth token, token %d works: %v", i, ok(tok))
			}
		}
		// The same device again: both of its tokens work (the older one
		// until it expires or is evicted).
		again := f.token(alice, "<urn:uuid:3>")
		if !ok(again) || !ok(toks[3]) {
			t.Errorf("a device's second token: new %v, old %v", ok(again), ok(toks[3]))
		}
		if got := f.metric("cairn_history_tokens_issued_total"); got != 5 {
			t.Errorf("tokens issued %v, want 5", got)
		}
		// A user part that needs escaping in a URL.
		odd := f.account("o?d/d", "example.com")
		tr := f.token(odd, "")
		if want := baseURL + history.HistoryPath + "o%3Fd%2Fd@example.com"; tr.URL != want {
			t.Errorf("url %q, want %q", tr.URL, want)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+history.HistoryPath+"o%3Fd%2Fd@example.com", nil)
		req.Header.Set("Authorization", "Apikey "+tr.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET with an escaped user part: %d", resp.StatusCode)
		}
	})
}

// flipLast returns s with its last character changed.
func flipLast(s string) string {
	c := byte('A')
	if s[len(s)-1] == c {
		c = 'B'
	}
	return s[:len(s)-1] + string(c)
}
