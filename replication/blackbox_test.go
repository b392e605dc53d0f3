package replication_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	rt "github.com/cairn-chat/cairn/replication/replicationtest"
)

// The accounts and devices of blink.md §8. The password policy wants 8 bytes
// or more, so §8's wpw and spw are spelled out.
const (
	alice     = "alice@example.com"
	webPW     = "alice-web-pw" // §8 wpw
	sipPW     = "alice-sip-pw" // §8 spw
	bob       = "bob@example.com"
	bobPW     = "bob-sip-pw"
	replPW    = "Abc123Def456Ghi7" // chat.replication_password
	dev1      = "urn:uuid:11111111-1111-4111-8111-111111111111"
	dev2      = "urn:uuid:22222222-2222-4222-8222-222222222222"
	settings  = "/settings.phtml"
	maxBody   = 16 << 20
	blinkWait = 15 * time.Second // Blink's request timeout
)

// Blink's query strings, raw: realm and action first, no percent-encoding.
const (
	qGet    = "realm=example.com&action=get_journal_entries"
	qPut    = "action=put_journal_entries&realm=example.com"
	qDelete = "action=delete_journal_entries&realm=example.com"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cases are the §8 A–F cases, named by number, and the extra checks (X).
var cases = []struct {
	name string
	fn   func(t *testing.T, s *server)
}{
	{"A1_challenge", testA1},
	{"A2_realm_user_at_domain", testA2},
	{"A3_digest_web_password", testA3},
	{"A4_digest_sip_password", testA4},
	{"A5_digest_full_username", testA5},
	{"A6_wrong_password", testA6},
	{"A7_stale_nonce", testA7},
	{"A8_account_scope", testA8},
	{"A9_body_sent_twice_processed_once", testA9},
	{"B10_put_missing_data", testB10},
	{"B11_put_missing_uuid", testB11},
	{"B12_put_json_decode_error", testB12},
	{"B13_put_object", testB13},
	{"B14_put_array", testB14},
	{"B15_put_item_without_data", testB15},
	{"B16_put_without_content_type", testB16},
	{"B17_put_in_query_string", testB17},
	{"B18_identical_retry_same_id_new_data_new_row", testB18},
	{"B19_put_2000_entries_8MiB", testB19},
	{"C20_get_fields", testC20},
	{"C21_get_except_own_uuid", testC21},
	{"C22_get_without_except_uuid", testC22},
	{"C23_get_after_timestamp_inclusive", testC23},
	{"C24_get_after_future_timestamp", testC24},
	{"C25_get_after_timestamp_zero_or_missing", testC25},
	{"C26_get_summary", testC26},
	{"C27_get_limit", testC27},
	{"C28_get_after_id", testC28},
	{"C27_C29_E41_6000_rows", testBulk},
	{"C30_get_raw_query", testC30},
	{"C31_blink_round_trip", testC31},
	{"C32_answer_keys", testC32},
	{"D33_delete_data_array", testD33},
	{"D34_delete_journal_id", testD34},
	{"D35_delete_missing_data", testD35},
	{"D36_delete_empty_array", testD36},
	{"D37_delete_foreign_and_garbage", testD37},
	{"D38_delete_twice", testD38},
	{"E39_get_history", testE39},
	{"E40_unknown_action", testE40},
	{"F42_retention", testF42},
	{"X_body_over_16MiB", testBodyTooLarge},
	{"X_bad_input_stores_nothing", testBadInput},
	{"X_basic_auth_tls_only", testBasicAuth},
	{"X_healthz", testHealthz},
	{"X_metrics", testMetrics},
}

// TestBlackBox runs blink.md §8 A–F against a running server on each engine.
func TestBlackBox(t *testing.T) {
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, start(t, eng))
				})
			}
		})
	}
}

// server is a running node with alice (web and SIP password) and bob (SIP
// password only), and a fake clock.
type server struct{ *apptest.Server }

func start(t *testing.T, eng apptest.Engine) *server {
	t.Helper()
	return &server{apptest.Start(t, eng, nil,
		apptest.Account{Address: alice, Passwords: app.Passwords{SIP: sipPW, Web: webPW}},
		apptest.Account{Address: bob, Passwords: app.Passwords{SIP: bobPW}},
	)}
}

// client returns a Blink-like client over plain HTTP.
func (s *server) client(username, password string) *rt.Client {
	return &rt.Client{URL: s.HTTPURL + settings, Username: username, Password: password, HTTP: s.HTTP}
}

// alice is Blink as §8 has it: user "alice", the web password.
func (s *server) alice() *rt.Client { return s.client("alice", webPW) }
func (s *server) bob() *rt.Client   { return s.client("bob", bobPW) }

// blob encrypts an outgoing chat entry with msgid, created now.
func (s *server) blob(msgID string) string {
	return rt.Encrypt(replPW, rt.NewEntry(msgID, "Hello Bob, this is "+msgID, s.Clock.Now()).JSON())
}

func (s *server) item(msgID string) rt.Item { return rt.Item{ID: msgID, Data: s.blob(msgID)} }

func do(t *testing.T, c *rt.Client, req rt.Request) *rt.Response {
	t.Helper()
	resp, err := c.Do(t.Context(), req)
	if err != nil {
		t.Fatalf("request ?%s: %v", req.Query, err)
	}
	return resp
}

func putRequest(device, data string) rt.Request {
	return rt.Request{Query: qPut, Body: []byte(rt.Form("uuid", device, "data", data))}
}

// decodeMap decodes a 200 JSON object answer.
func decodeMap(t *testing.T, resp *rt.Response) map[string]json.RawMessage {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d %q, want 200", resp.StatusCode, resp.Body)
	}
	var m map[string]json.RawMessage
	if err := resp.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// wantError checks a success:false answer with this error_message and
// results:[] (HTTP status 200 unless given).
func wantError(t *testing.T, resp *rt.Response, message string, status ...int) {
	t.Helper()
	want := append(status, http.StatusOK)[0]
	if resp.StatusCode != want {
		t.Fatalf("HTTP %d %q, want %d", resp.StatusCode, resp.Body, want)
	}
	var a struct {
		Success      *bool           `json:"success"`
		ErrorMessage *string         `json:"error_message"`
		Results      json.RawMessage `json:"results"`
	}
	if err := resp.Decode(&a); err != nil {
		t.Fatal(err)
	}
	if a.Success == nil || *a.Success || a.ErrorMessage == nil {
		t.Fatalf("answer %s: want success:false with an error_message", resp.Body)
	}
	if message != "" && *a.ErrorMessage != message {
		t.Errorf("error_message %q, want %q", *a.ErrorMessage, message)
	}
	if *a.ErrorMessage == "" {
		t.Errorf("error_message is empty")
	}
	if a.Results != nil && string(a.Results) != "[]" {
		t.Errorf("results %s on an error, want []", a.Results)
	}
}

// putOK checks a successful put answer for items (those with data, in order)
// and returns the journal ids.
func putOK(t *testing.T, resp *rt.Response, items ...rt.Item) []string {
	t.Helper()
	m := decodeMap(t, resp)
	if string(m["success"]) != "true" {
		t.Fatalf("put answer %s: want success:true", truncate(resp.Body))
	}
	var results []map[string]json.RawMessage
	if err := json.Unmarshal(m["results"], &results); err != nil || m["results"] == nil || string(m["results"]) == "null" {
		t.Fatalf("put results %s: want an array (%v)", m["results"], err)
	}
	var want []rt.Item
	for _, it := range items {
		if it.Data != "" {
			want = append(want, it)
		}
	}
	if len(results) != len(want) {
		t.Fatalf("put returned %d results, want %d", len(results), len(want))
	}
	jids := make([]string, len(results))
	for i, r := range results {
		var id, jid, source string
		if json.Unmarshal(r["id"], &id) != nil || id != want[i].ID {
			t.Errorf("result %d id %s, want %q", i, r["id"], want[i].ID)
		}
		if json.Unmarshal(r["journal_id"], &jid) != nil || jid == "" {
			t.Errorf("result %d journal_id %s, want a non-empty JSON string", i, r["journal_id"])
		}
		if json.Unmarshal(r["source"], &source) != nil || source != "default" {
			t.Errorf("result %d source %s, want \"default\"", i, r["source"])
		}
		jids[i] = jid
	}
	return jids
}

// put stores items from device as alice's Blink does and returns their journal ids.
func put(t *testing.T, c *rt.Client, device string, items ...rt.Item) []string {
	t.Helper()
	return putOK(t, do(t, c, putRequest(device, rt.EntriesObject(items...))), items...)
}

// row is one get result, checked and decrypted.
type row struct {
	ID, UUID, Account, Source, IP, Data string
	Timestamp                           int64
	TimestampJSON                       string // as sent; Blink echoes it with %s
	Keys                                []string
	Entry                               rt.Entry
}

type stamp struct {
	JournalID string
	Timestamp int64
}

// getAnswer is a checked get_journal_entries answer.
type getAnswer struct {
	Raw     map[string]json.RawMessage
	Rows    []row
	Summary []stamp // nil when the answer has no summary
}

// get sends a get_journal_entries query and checks the answer as Blink reads
// it: success:true, results with id, uuid, timestamp and data, the id a
// string, the timestamp a JSON integer datetime.fromtimestamp takes, and the
// data a blob that decrypts to an entry with every key of §4.
func get(t *testing.T, c *rt.Client, query string) getAnswer {
	t.Helper()
	resp := do(t, c, rt.Request{Query: query})
	m := decodeMap(t, resp)
	a := getAnswer{Raw: m}
	if string(m["success"]) != "true" {
		t.Fatalf("get ?%s: answer %s, want success:true", query, truncate(resp.Body))
	}
	if em, ok := m["error_message"]; ok && string(em) != "null" {
		t.Errorf("get error_message %s, want null", em)
	}
	var results []map[string]json.RawMessage
	if err := json.Unmarshal(m["results"], &results); err != nil || string(m["results"]) == "null" {
		t.Fatalf("get results %s: want an array", truncate(m["results"]))
	}
	if n, ok := m["rows"]; ok && string(n) != strconv.Itoa(len(results)) {
		t.Errorf("rows %s, want %d", n, len(results))
	}
	for i, r := range results {
		var w row
		for k := range r {
			w.Keys = append(w.Keys, k)
		}
		for _, k := range []string{"id", "uuid", "timestamp", "data"} {
			if _, ok := r[k]; !ok {
				t.Fatalf("result %d has no %q (keys %v): Blink disables replication", i, k, w.Keys)
			}
		}
		for k, dst := range map[string]*string{"id": &w.ID, "uuid": &w.UUID, "data": &w.Data, "account": &w.Account, "source": &w.Source, "ip_address": &w.IP} {
			if err := json.Unmarshal(r[k], dst); err != nil {
				t.Fatalf("result %d %q = %s: want a JSON string", i, k, truncate(r[k]))
			}
		}
		ts, err := rt.CheckTimestamp(r["timestamp"])
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		w.Timestamp, w.TimestampJSON = ts, string(r["timestamp"])
		plain, err := rt.Decrypt(replPW, w.Data)
		if err != nil {
			t.Fatalf("result %d (id %s) data: %v", i, w.ID, err)
		}
		if w.Entry, err = rt.ParseEntry(plain); err != nil {
			t.Fatalf("result %d (id %s): %v", i, w.ID, err)
		}
		a.Rows = append(a.Rows, w)
	}
	if raw, ok := m["summary"]; ok {
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil || string(raw) == "null" {
			t.Fatalf("summary %s: want an array", truncate(raw))
		}
		a.Summary = []stamp{}
		for i, it := range items {
			var s stamp
			if err := json.Unmarshal(it["journal_id"], &s.JournalID); err != nil {
				t.Fatalf("summary %d journal_id %s: want a JSON string", i, it["journal_id"])
			}
			ts, err := rt.CheckTimestamp(it["timestamp"])
			if err != nil {
				t.Fatalf("summary %d: %v", i, err)
			}
			s.Timestamp = ts
			a.Summary = append(a.Summary, s)
		}
	}
	return a
}

func truncate[T ~string | ~[]byte](b T) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// all returns every row of the account c authenticates as, all devices.
func all(t *testing.T, c *rt.Client) []row {
	t.Helper()
	return get(t, c, qGet+"&after_timestamp=0").Rows
}

func ids(rows []row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func msgIDs(rows []row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Entry.MsgID
	}
	return out
}

func stampIDs(ss []stamp) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.JournalID
	}
	return out
}

// compareID orders journal ids: numerically when both are integers.
func compareID(a, b string) int {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return strings.Compare(a, b)
}

// checkAscending checks that rows are ordered by (timestamp, id).
func checkAscending(t *testing.T, rows []row) {
	t.Helper()
	if !slices.IsSortedFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.Timestamp, b.Timestamp), compareID(a.ID, b.ID))
	}) {
		t.Errorf("results are not ascending by (timestamp, id)")
	}
}

// seed stores n small entries from device in posts of per entries, the
// clock moving one second after each post, and returns their journal ids.
func seed(t *testing.T, s *server, c *rt.Client, device string, n, per int) []string {
	t.Helper()
	var jids []string
	for done := 0; done < n; {
		k := min(per, n-done)
		items := make([]rt.Item, k)
		for i := range items {
			items[i] = s.item(fmt.Sprintf("seed-%s-%05d", device[len(device)-4:], done+i))
		}
		jids = append(jids, put(t, c, device, items...)...)
		done += k
		s.Clock.Advance(time.Second)
	}
	return jids
}

// challenges sends req without credentials and returns the Digest challenges of the 401.
func challenges(t *testing.T, c *rt.Client, req rt.Request) (*rt.Response, []rt.Challenge) {
	t.Helper()
	resp, err := c.Send(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated request: HTTP %d, want 401", resp.StatusCode)
	}
	chs := rt.ParseChallenges(resp.Header)
	if len(chs) == 0 {
		t.Fatalf("401 without a Digest challenge: %v", resp.Header.Values("WWW-Authenticate"))
	}
	return resp, chs
}

func md5Challenge(t *testing.T, chs []rt.Challenge) rt.Challenge {
	t.Helper()
	for _, ch := range chs {
		if ch.Algorithm == "" || strings.EqualFold(ch.Algorithm, "MD5") {
			return ch
		}
	}
	t.Fatalf("no MD5 challenge in %+v", chs)
	return rt.Challenge{}
}

// --- A. Authentication ---

func testA1(t *testing.T, s *server) {
	query := "realm=example.com&action=get_journal_entries&except_uuid=" + dev1 + "&after_timestamp=0"
	resp, chs := challenges(t, s.alice(), rt.Request{Query: query})
	first := resp.Header.Values("WWW-Authenticate")[0]
	if !strings.HasPrefix(first, `Digest realm="example.com", qop="auth", nonce="`) {
		t.Errorf("first challenge %q: want cdrtool's form, Digest realm=\"example.com\", qop=\"auth\", nonce=…", first)
	}
	ch := md5Challenge(t, chs)
	if ch.Realm != "example.com" || ch.QOP != "auth" || ch.Nonce == "" || ch.Opaque == "" || ch.Stale {
		t.Errorf("MD5 challenge %+v: want realm example.com, qop auth, a nonce and an opaque, not stale", ch)
	}
}

func testA2(t *testing.T, s *server) {
	for _, realm := range []string{"alice@example.com", "EXAMPLE.com"} {
		query := "realm=" + realm + "&action=get_journal_entries&except_uuid=" + dev1 + "&after_timestamp=0"
		_, chs := challenges(t, s.alice(), rt.Request{Query: query})
		for _, ch := range chs {
			if ch.Realm != "example.com" {
				t.Errorf("realm=%s: challenge realm %q, want example.com", realm, ch.Realm)
			}
		}
		// Blink answers in the challenge's realm.
		if got := get(t, s.alice(), query); len(got.Rows) != 0 {
			t.Errorf("realm=%s: %d rows, want none", realm, len(got.Rows))
		}
	}
}

// digestOK checks that a Digest answer with username and password is accepted
// for both algorithms.
func digestOK(t *testing.T, s *server, username, password string) {
	t.Helper()
	for _, alg := range []string{"MD5", "SHA-256"} {
		c := s.client(username, password)
		c.Algorithm = alg
		resp := do(t, c, rt.Request{Query: qGet + "&except_uuid=" + dev1 + "&after_timestamp=0"})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s as %q: HTTP %d, want 200", alg, username, resp.StatusCode)
			continue
		}
		if got := strings.ToUpper(cmp.Or(resp.Challenge.Algorithm, "MD5")); got != alg {
			t.Errorf("answered a %s challenge, want %s", got, alg)
		}
		if m := decodeMap(t, resp); string(m["success"]) != "true" {
			t.Errorf("%s as %q: %s, want success:true", alg, username, resp.Body)
		}
	}
}

func testA3(t *testing.T, s *server) { digestOK(t, s, "alice", webPW) }
func testA4(t *testing.T, s *server) { digestOK(t, s, "alice", sipPW) }

func testA5(t *testing.T, s *server) {
	digestOK(t, s, "alice@example.com", webPW)
	digestOK(t, s, "alice@example.com", sipPW)
}

func testA6(t *testing.T, s *server) {
	query := qGet + "&after_timestamp=0"
	tests := []struct{ name, username, password string }{
		{"wrong password", "alice", "not-the-password"},
		{"other account's password", "alice", bobPW},
		{"unknown user", "carol", webPW},
		{"user@domain of another domain", "alice@example.org", webPW},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, s.client(tt.username, tt.password), rt.Request{Query: query})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("HTTP %d, want 401", resp.StatusCode)
			}
			fresh := md5Challenge(t, rt.ParseChallenges(resp.Header))
			if fresh.Nonce == "" || fresh.Nonce == resp.Challenge.Nonce || fresh.Stale || fresh.Realm != "example.com" {
				t.Errorf("challenge after a wrong answer %+v: want a fresh nonce, not stale (answered %q)", fresh, resp.Challenge.Nonce)
			}
		})
	}
	// The answer must be for this realm.
	c := s.alice()
	_, chs := challenges(t, c, rt.Request{Query: query})
	ch := md5Challenge(t, chs)
	ch.Realm = "example.org"
	resp, err := c.Send(t.Context(), rt.Request{Query: query, Authorization: c.Authorization(ch, "GET", c.RequestURI(query), 1)})
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("answer for another realm: %v %v, want 401", resp, err)
	}
}

func testA7(t *testing.T, s *server) {
	c := s.alice()
	query := qGet + "&after_timestamp=0"
	uri := c.RequestURI(query)
	send := func(auth string) *rt.Response {
		t.Helper()
		resp, err := c.Send(t.Context(), rt.Request{Query: query, Authorization: auth})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	wantStale := func(resp *rt.Response, what string) {
		t.Helper()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: HTTP %d, want 401", what, resp.StatusCode)
		}
		for _, ch := range rt.ParseChallenges(resp.Header) {
			if !ch.Stale || !strings.Contains(ch.Params["stale"], "true") {
				t.Errorf("%s: challenge %+v, want stale=true", what, ch)
			}
		}
	}

	_, chs := challenges(t, c, rt.Request{Query: query})
	old := md5Challenge(t, chs)
	s.Clock.Advance(s.Config.HTTP.NonceLifetime.D() + time.Second)
	wantStale(send(c.Authorization(old, "GET", uri, 1)), "expired nonce")

	// A replayed nonce count is stale too; a higher one is accepted.
	_, chs = challenges(t, c, rt.Request{Query: query})
	ch := md5Challenge(t, chs)
	if resp := send(c.Authorization(ch, "GET", uri, 1)); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh nonce: HTTP %d, want 200", resp.StatusCode)
	}
	wantStale(send(c.Authorization(ch, "GET", uri, 1)), "replayed nc")
	if resp := send(c.Authorization(ch, "GET", uri, 2)); resp.StatusCode != http.StatusOK {
		t.Errorf("next nc: HTTP %d, want 200", resp.StatusCode)
	}
	// The answer is for this request-target only.
	_, chs = challenges(t, c, rt.Request{Query: query})
	ch = md5Challenge(t, chs)
	if resp := send(c.Authorization(ch, "GET", c.RequestURI(qGet+"&after_timestamp=1"), 1)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("answer computed for another uri: HTTP %d, want 401", resp.StatusCode)
	}
}

func testA8(t *testing.T, s *server) {
	a, b := s.alice(), s.bob()
	aliceJIDs := put(t, a, dev1, s.item("a1"), s.item("a2"))
	bobJIDs := put(t, b, dev1, s.item("b1"))

	got := get(t, a, qGet+"&after_timestamp=0&summary=1")
	if !slices.Equal(ids(got.Rows), aliceJIDs) || !slices.Equal(stampIDs(got.Summary), aliceJIDs) {
		t.Errorf("alice sees rows %v, summary %v; want only hers, %v", ids(got.Rows), stampIDs(got.Summary), aliceJIDs)
	}
	for _, r := range got.Rows {
		if r.Account != alice {
			t.Errorf("alice's row %s has account %q", r.ID, r.Account)
		}
	}
	// Paging by id does not reach into bob's rows either.
	if got := get(t, a, qGet+"&after_id="+aliceJIDs[1]); len(got.Rows) != 0 {
		t.Errorf("alice after_id past her rows sees %v, want none", ids(got.Rows))
	}
	if got := get(t, b, qGet+"&summary=1"); !slices.Equal(ids(got.Rows), bobJIDs) || !slices.Equal(stampIDs(got.Summary), bobJIDs) {
		t.Errorf("bob sees rows %v, summary %v; want only his, %v", ids(got.Rows), stampIDs(got.Summary), bobJIDs)
	}
	// Alice cannot delete bob's row.
	resp := do(t, a, rt.Request{Query: qDelete, Body: []byte(rt.Form("data", `["`+bobJIDs[0]+`"]`))})
	if m := decodeMap(t, resp); string(m["success"]) != "true" {
		t.Errorf("delete of a foreign id: %s, want success:true (ignored)", resp.Body)
	}
	do(t, a, rt.Request{Query: qDelete, Body: []byte(rt.Form("journal_id", bobJIDs[0]))})
	if got := ids(all(t, b)); !slices.Equal(got, bobJIDs) {
		t.Errorf("bob's rows after alice's deletes: %v, want %v", got, bobJIDs)
	}
	// Alice's user name with bob's password is not bob.
	if resp := do(t, s.client("alice", bobPW), rt.Request{Query: qGet}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("alice with bob's password: HTTP %d, want 401", resp.StatusCode)
	}
}

func testA9(t *testing.T, s *server) {
	c := s.alice()
	req := putRequest(dev1, rt.EntriesObject(s.item("m1"), s.item("m2")))
	// The unauthenticated try alone stores nothing.
	if resp, err := c.Send(t.Context(), req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated put: %v %v, want 401", resp, err)
	}
	if rows := all(t, c); len(rows) != 0 {
		t.Fatalf("rows after an unauthenticated put: %v, want none", ids(rows))
	}
	// Do sends the body on both tries.
	jids := putOK(t, do(t, c, req), s.item("m1"), s.item("m2"))
	if got := all(t, c); !slices.Equal(ids(got), jids) || !slices.Equal(msgIDs(got), []string{"m1", "m2"}) {
		t.Errorf("rows %v (msgids %v), want exactly %v once", ids(got), msgIDs(got), jids)
	}
}

// --- B. put_journal_entries ---

func testB10(t *testing.T, s *server) {
	wantError(t, do(t, s.alice(), rt.Request{Query: qPut, Body: []byte(rt.Form("uuid", dev1))}), "Missing data")
}

func testB11(t *testing.T, s *server) {
	data := rt.EntriesObject(s.item("m1"))
	wantError(t, do(t, s.alice(), rt.Request{Query: qPut, Body: []byte(rt.Form("data", data))}), "Missing uuid")
}

func testB12(t *testing.T, s *server) {
	wantError(t, do(t, s.alice(), putRequest(dev1, "not-json")), "Json decode error")
}

func testB13(t *testing.T, s *server) {
	items := []rt.Item{s.item("m1"), s.item("m2")}
	jids := put(t, s.alice(), dev1, items...)
	if jids[0] == jids[1] {
		t.Errorf("journal ids %v, want distinct", jids)
	}
	if got := all(t, s.alice()); !slices.Equal(ids(got), jids) {
		t.Errorf("stored %v, want %v", ids(got), jids)
	}
}

func testB14(t *testing.T, s *server) {
	items := []rt.Item{s.item("m1"), s.item("m2")}
	jids := putOK(t, do(t, s.alice(), putRequest(dev1, rt.EntriesArray(items...))), items...)
	if jids[0] == jids[1] {
		t.Errorf("journal ids %v, want distinct", jids)
	}
	if got := all(t, s.alice()); !slices.Equal(msgIDs(got), []string{"m1", "m2"}) {
		t.Errorf("stored %v, want [m1 m2]", msgIDs(got))
	}
}

func testB15(t *testing.T, s *server) {
	m1, m3 := s.item("m1"), s.item("m3")
	tests := []struct{ name, data string }{
		{"object", fmt.Sprintf(`{"m1": {"data": %s, "id": "m1"}, "m2": {"id": "m2"}, "m3": {"data": %s, "id": "m3"}}`, rt.PyString(m1.Data), rt.PyString(m3.Data))},
		{"array", fmt.Sprintf(`[{"data": %s, "id": "m1"}, {"id": "m2"}, {"data": %s, "id": "m3"}]`, rt.PyString(m1.Data), rt.PyString(m3.Data))},
		{"null and empty data, non-objects", fmt.Sprintf(`[{"data": %s, "id": "m1"}, {"data": null, "id": "m2"}, {"data": "", "id": "m2"}, 5, "x", null, [], {"data": %s, "id": "m3"}]`, rt.PyString(m1.Data), rt.PyString(m3.Data))},
	}
	c := s.alice()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			device := fmt.Sprintf("urn:uuid:b15-%d", i)
			jids := putOK(t, do(t, c, putRequest(device, tt.data)), m1, m3)
			got := get(t, c, qGet)
			var mine []row
			for _, r := range got.Rows {
				if r.UUID == device {
					mine = append(mine, r)
				}
			}
			if !slices.Equal(ids(mine), jids) || !slices.Equal(msgIDs(mine), []string{"m1", "m3"}) {
				t.Errorf("stored %v %v, want %v [m1 m3]", ids(mine), msgIDs(mine), jids)
			}
		})
	}
}

func testB16(t *testing.T, s *server) {
	c := s.alice()
	for i, ct := range []string{"", "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8", "text/plain"} {
		it := s.item(fmt.Sprintf("m%d", i))
		req := putRequest(dev1, rt.EntriesObject(it))
		req.ContentType = ct
		putOK(t, do(t, c, req), it)
	}
	// multipart/form-data, which PHP reads too.
	it := s.item("mp")
	var body bytes.Buffer
	fmt.Fprintf(&body, "--XyZ\r\nContent-Disposition: form-data; name=\"uuid\"\r\n\r\n%s\r\n"+
		"--XyZ\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n%s\r\n--XyZ--\r\n", dev1, rt.EntriesObject(it))
	putOK(t, do(t, c, rt.Request{Query: qPut, Body: body.Bytes(), ContentType: "multipart/form-data; boundary=XyZ"}), it)
	if got := msgIDs(all(t, c)); !slices.Equal(got, []string{"m0", "m1", "m2", "m3", "mp"}) {
		t.Errorf("stored %v", got)
	}
}

func testB17(t *testing.T, s *server) {
	c := s.alice()
	items := []rt.Item{s.item("m1"), s.item("m2")}
	query := "action=put_journal_entries&realm=example.com&" + rt.Form("uuid", dev1, "data", rt.EntriesObject(items...))
	jids := putOK(t, do(t, c, rt.Request{Method: http.MethodGet, Query: query}), items...)
	got := all(t, c)
	if !slices.Equal(ids(got), jids) || got[0].Data != items[0].Data || got[0].UUID != dev1 {
		t.Errorf("stored %v, want %v with the data and uuid of the query", ids(got), jids)
	}
	// The form body wins over the query, as in PHP's $_REQUEST.
	it := s.item("m3")
	req := putRequest(dev2, rt.EntriesObject(it))
	req.Query = qPut + "&uuid=" + dev1
	putOK(t, do(t, c, req), it)
	if got := all(t, c); got[len(got)-1].UUID != dev2 {
		t.Errorf("uuid %q, want the body's %q", got[len(got)-1].UUID, dev2)
	}
}

// testB18 checks the server's deviation from §8 case 18: an identical retry
// (same account, device, id and data) gets the first journal id; anything
// else, such as a status update of the same id, is a new row.
func testB18(t *testing.T, s *server) {
	c := s.alice()
	m1 := s.item("m1")
	first := put(t, c, dev1, m1)
	retry := put(t, c, dev1, m1)
	if retry[0] != first[0] {
		t.Errorf("identical retry got journal id %s, want the first, %s", retry[0], first[0])
	}
	s.Clock.Advance(3 * time.Second)
	if again := put(t, c, dev1, m1); again[0] != first[0] {
		t.Errorf("identical retry 3 s later got journal id %s, want %s", again[0], first[0])
	}

	update := rt.Item{ID: "m1", Data: rt.Encrypt(replPW, func() []byte {
		e := rt.NewEntry("m1", "Hello Bob, this is m1", s.Clock.Now())
		e.Status = "displayed"
		return e.JSON()
	}())}
	changed := put(t, c, dev1, update)
	otherDevice := put(t, c, dev2, m1)
	// A repeat inside one call is stored once too.
	m2 := s.item("m2")
	twice := putOK(t, do(t, c, putRequest(dev1, rt.EntriesArray(m2, m2))), m2, m2)
	if twice[0] != twice[1] {
		t.Errorf("the same entry twice in one put got %v, want one id", twice)
	}
	distinct := []string{first[0], changed[0], otherDevice[0], twice[0]}
	if len(slices.Compact(slices.SortedFunc(slices.Values(distinct), compareID))) != 4 {
		t.Errorf("journal ids first %s, new data %s, other device %s, m2 %s: want four distinct", first[0], changed[0], otherDevice[0], twice[0])
	}
	if got := all(t, c); len(got) != 4 {
		t.Errorf("%d rows %v, want 4", len(got), ids(got))
	}

	// The same entry from another account is that account's own row.
	if theirs := put(t, s.bob(), dev1, m1); theirs[0] == first[0] {
		t.Errorf("bob's identical entry got alice's journal id %s", first[0])
	}
	// Concurrent identical retries all get one id.
	m3 := s.item("m3")
	results := make(chan []string, 8)
	var wg sync.WaitGroup
	for range cap(results) {
		wg.Go(func() {
			resp, err := c.Do(t.Context(), putRequest(dev1, rt.EntriesObject(m3)))
			if err != nil {
				t.Error(err)
				return
			}
			var a struct {
				Results []struct {
					JournalID string `json:"journal_id"`
				} `json:"results"`
			}
			if err := resp.Decode(&a); err != nil || len(a.Results) != 1 {
				t.Errorf("concurrent put: %v, answer %s", err, truncate(resp.Body))
				return
			}
			results <- []string{a.Results[0].JournalID}
		})
	}
	wg.Wait()
	close(results)
	var got []string
	for r := range results {
		got = append(got, r...)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(got)))) != 1 {
		t.Errorf("concurrent identical puts got journal ids %v, want one", got)
	}
	if rows := all(t, c); len(rows) != 5 {
		t.Errorf("%d rows after concurrent retries, want 5", len(rows))
	}
}

func testB19(t *testing.T, s *server) {
	c := s.alice()
	items := make([]rt.Item, 2000)
	filler := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 46)
	for i := range items {
		id := fmt.Sprintf("m%04d", i)
		items[i] = rt.Item{ID: id, Data: rt.Encrypt(replPW, rt.NewEntry(id, filler+id, s.Clock.Now()).JSON())}
	}
	req := putRequest(dev1, rt.EntriesObject(items...))
	if len(req.Body) < 8<<20 || len(req.Body) >= maxBody {
		t.Fatalf("body of %d bytes: the test wants 8 to 16 MiB", len(req.Body))
	}
	start := time.Now()
	jids := putOK(t, do(t, c, req), items...)
	t.Logf("put of 2000 entries, %d bytes: %v", len(req.Body), time.Since(start))
	if n := len(slices.Compact(slices.SortedFunc(slices.Values(jids), compareID))); n != len(items) {
		t.Errorf("%d distinct journal ids, want %d", n, len(items))
	}
	got := all(t, c)
	if len(got) != len(items) {
		t.Fatalf("get returned %d rows, want %d", len(got), len(items))
	}
	for i, r := range got {
		if r.ID != jids[i] || r.Data != items[i].Data {
			t.Fatalf("row %d: id %s, want %s; data identical %v", i, r.ID, jids[i], r.Data == items[i].Data)
		}
	}
}

// --- C. get_journal_entries ---

func testC20(t *testing.T, s *server) {
	c := s.alice()
	items := []rt.Item{s.item("m1"), s.item("m2")}
	jids := put(t, c, dev1, items...)
	got := get(t, c, qGet+"&except_uuid="+dev2+"&after_timestamp=0")
	if !slices.Equal(ids(got.Rows), jids) {
		t.Fatalf("rows %v, want %v", ids(got.Rows), jids)
	}
	now := s.Clock.Now().Unix()
	for i, r := range got.Rows {
		if r.UUID != dev1 || r.Account != alice || r.Source != "default" || r.IP == "" {
			t.Errorf("row %d: uuid %q account %q source %q ip_address %q", i, r.UUID, r.Account, r.Source, r.IP)
		}
		if r.Timestamp < now-5 || r.Timestamp > now+5 {
			t.Errorf("row %d timestamp %d, want within 5 s of %d", i, r.Timestamp, now)
		}
		if r.Data != items[i].Data {
			t.Errorf("row %d data %q, want byte for byte %q", i, r.Data, items[i].Data)
		}
		if r.Entry.MsgID != items[i].ID {
			t.Errorf("row %d decrypts to msgid %q, want %q", i, r.Entry.MsgID, items[i].ID)
		}
	}
	if got.Rows[0].IP != "127.0.0.1" {
		t.Errorf("ip_address %q, want 127.0.0.1", got.Rows[0].IP)
	}
	checkAscending(t, got.Rows)
}

func testC21(t *testing.T, s *server) {
	c := s.alice()
	put(t, c, dev1, s.item("m1"), s.item("m2"))
	got := get(t, c, qGet+"&except_uuid="+dev1+"&after_timestamp=0")
	if len(got.Rows) != 0 || string(got.Raw["results"]) != "[]" {
		t.Errorf("results %s, want []", truncate(got.Raw["results"]))
	}
}

func testC22(t *testing.T, s *server) {
	c := s.alice()
	want := put(t, c, dev1, s.item("m1"))
	want = append(want, put(t, c, dev2, s.item("m2"))...)
	for _, q := range []string{qGet, qGet + "&except_uuid=", qGet + "&after_timestamp=0"} {
		if got := ids(get(t, c, q).Rows); !slices.Equal(got, want) {
			t.Errorf("?%s: rows %v, want %v", q, got, want)
		}
	}
}

func testC23(t *testing.T, s *server) {
	c := s.alice()
	r1 := put(t, c, dev1, s.item("r1"))
	s.Clock.Advance(7 * time.Second)
	r23 := put(t, c, dev1, s.item("r2"), s.item("r3"))
	rows := all(t, c)
	if len(rows) != 3 || rows[1].Timestamp <= rows[0].Timestamp {
		t.Fatalf("rows %v with timestamps not increasing", ids(rows))
	}
	got := get(t, c, qGet+"&except_uuid="+dev2+"&after_timestamp="+rows[1].TimestampJSON)
	if !slices.Equal(ids(got.Rows), r23) {
		t.Errorf("after_timestamp of row 2: %v, want %v (inclusive, without %v)", ids(got.Rows), r23, r1)
	}
	got = get(t, c, qGet+"&after_timestamp="+strconv.FormatInt(rows[1].Timestamp-1, 10))
	if !slices.Equal(ids(got.Rows), r23) {
		t.Errorf("after_timestamp one second before row 2: %v, want %v", ids(got.Rows), r23)
	}
}

func testC24(t *testing.T, s *server) {
	c := s.alice()
	put(t, c, dev1, s.item("m1"))
	future := strconv.FormatInt(s.Clock.Now().Unix()+3600, 10)
	if got := get(t, c, qGet+"&except_uuid="+dev2+"&after_timestamp="+future); len(got.Rows) != 0 {
		t.Errorf("rows %v, want none", ids(got.Rows))
	}
}

func testC25(t *testing.T, s *server) {
	c := s.alice()
	want := put(t, c, dev1, s.item("m1"))
	s.Clock.Advance(time.Hour)
	want = append(want, put(t, c, dev1, s.item("m2"))...)
	want = append(want, put(t, c, dev2, s.item("m3"))...)
	for _, q := range []string{"&after_timestamp=0", "", "&after_timestamp=", "&after_timestamp=-5", "&after_timestamp=abc"} {
		if got := ids(get(t, c, qGet+q).Rows); !slices.Equal(got, want) {
			t.Errorf("?…%s: rows %v, want all, %v", q, got, want)
		}
	}
}

func testC26(t *testing.T, s *server) {
	c := s.alice()
	want := put(t, c, dev1, s.item("m1"))
	s.Clock.Advance(2 * time.Second)
	want = append(want, put(t, c, dev1, s.item("m2"))...)
	put(t, c, dev2, s.item("own"))

	got := get(t, c, qGet+"&except_uuid="+dev2+"&after_timestamp=0&summary=1")
	if got.Summary == nil || !slices.Equal(stampIDs(got.Summary), want) {
		t.Fatalf("summary %v, want %v", got.Summary, want)
	}
	for i, st := range got.Summary {
		if st.Timestamp != got.Rows[i].Timestamp {
			t.Errorf("summary %d timestamp %d, want the row's %d", i, st.Timestamp, got.Rows[i].Timestamp)
		}
	}
	if !slices.IsSortedFunc(got.Summary, func(a, b stamp) int { return cmp.Compare(a.Timestamp, b.Timestamp) }) {
		t.Errorf("summary %v not ascending", got.Summary)
	}
	// The summary lists the rows the client may hold, whatever it asked after.
	future := strconv.FormatInt(s.Clock.Now().Unix()+60, 10)
	if got := get(t, c, qGet+"&except_uuid="+dev2+"&after_timestamp="+future+"&summary=1"); len(got.Rows) != 0 || !slices.Equal(stampIDs(got.Summary), want) {
		t.Errorf("summary with a future after_timestamp: rows %v, summary %v; want none and %v", ids(got.Rows), got.Summary, want)
	}
	for _, q := range []string{"", "&summary=0", "&summary="} {
		if got := get(t, c, qGet+"&except_uuid="+dev2+q); got.Raw["summary"] != nil {
			t.Errorf("?…%s: summary key present, want none", q)
		}
	}
}

func testC27(t *testing.T, s *server) {
	c := s.alice()
	var jids []string
	for _, m := range []string{"m1", "m2", "m3"} {
		jids = append(jids, put(t, c, dev1, s.item(m))...)
		s.Clock.Advance(time.Second)
	}
	if got := ids(get(t, c, qGet+"&limit=1").Rows); !slices.Equal(got, jids[:1]) {
		t.Errorf("limit=1: %v, want the oldest, %v", got, jids[:1])
	}
	if got := ids(get(t, c, qGet+"&limit=2&after_timestamp=0").Rows); !slices.Equal(got, jids[:2]) {
		t.Errorf("limit=2: %v, want %v", got, jids[:2])
	}
	for _, l := range []string{"0", "-1", "x", ""} {
		if got := ids(get(t, c, qGet+"&limit="+l).Rows); !slices.Equal(got, jids) {
			t.Errorf("limit=%s: %v, want no limit, %v", l, got, jids)
		}
	}
	// limit=99999 with more than 5000 rows: testBulk.
}

func testC28(t *testing.T, s *server) {
	c := s.alice()
	jids := put(t, c, dev1, s.item("m1"), s.item("m2"))
	if got := ids(get(t, c, qGet+"&after_id="+jids[0]).Rows); !slices.Equal(got, jids[1:]) {
		t.Errorf("after_id=%s: %v, want %v", jids[0], got, jids[1:])
	}
	if got := ids(get(t, c, qGet+"&after_id=0").Rows); !slices.Equal(got, jids) {
		t.Errorf("after_id=0: %v, want %v", got, jids)
	}
}

// testBulk runs the cases that need more than 5000 rows on one set of 6000,
// stored in posts of 500 a second apart.
func testBulk(t *testing.T, s *server) {
	c := s.alice()
	jids := seed(t, s, c, dev1, 6000, 500)
	t.Run("C27_limit_99999_caps_at_5000", func(t *testing.T) {
		if got := get(t, c, qGet+"&limit=99999").Rows; !slices.Equal(ids(got), jids[:5000]) {
			t.Errorf("limit=99999: %d rows, want the oldest 5000", len(got))
		}
	})
	t.Run("C29_paged_by_after_timestamp", func(t *testing.T) {
		query := qGet + "&except_uuid=" + dev2 + "&after_timestamp="
		first := get(t, c, query+"0")
		if len(first.Rows) != 5000 {
			t.Fatalf("first call: %d rows, want 5000", len(first.Rows))
		}
		checkAscending(t, first.Rows)
		last := first.Rows[len(first.Rows)-1].TimestampJSON
		second := get(t, c, query+last)
		checkAscending(t, second.Rows)
		seen := map[string]bool{}
		for _, r := range append(first.Rows, second.Rows...) {
			seen[r.ID] = true
		}
		for _, id := range jids {
			if !seen[id] {
				t.Fatalf("row %s never returned: %d of %d seen in two calls", id, len(seen), len(jids))
			}
		}
		if len(seen) != len(jids) {
			t.Errorf("%d distinct rows seen, want %d", len(seen), len(jids))
		}
	})
	t.Run("E41_answers_within_15s", func(t *testing.T) {
		reqs := []struct {
			name string
			req  rt.Request
		}{
			{"get with summary", rt.Request{Query: qGet + "&except_uuid=" + dev2 + "&after_timestamp=0&summary=1"}},
			{"get", rt.Request{Query: qGet + "&after_timestamp=0"}},
			{"put", putRequest(dev1, rt.EntriesObject(s.item("new")))},
			{"delete", rt.Request{Query: qDelete, Body: []byte(rt.Form("data", `["`+jids[0]+`"]`))}},
			{"get_history", rt.Request{Query: "action=get_history&realm=example.com"}},
			{"unknown action", rt.Request{Query: "action=bogus&realm=example.com"}},
		}
		for _, r := range reqs {
			start := time.Now()
			resp := do(t, c, r.req) // both round trips: Blink's timeout covers the whole connection
			elapsed := time.Since(start)
			if resp.StatusCode != http.StatusOK || !json.Valid(resp.Body) {
				t.Errorf("%s: HTTP %d, want 200 and JSON", r.name, resp.StatusCode)
			}
			if elapsed > blinkWait {
				t.Errorf("%s took %v, want under %v", r.name, elapsed, blinkWait)
			}
			t.Logf("%s with 6000 rows: %v", r.name, elapsed)
		}
	})
}

func testC30(t *testing.T, s *server) {
	c := s.alice()
	mine := put(t, c, dev1, s.item("m1"))
	put(t, c, dev2, s.item("m2"))
	for _, query := range []string{
		"realm=example.com&action=get_journal_entries&except_uuid=" + dev2 + "&after_timestamp=1423476730&summary=1",
		"realm=example.com&action=get_journal_entries&except_uuid=" + strings.ReplaceAll(dev2, ":", "%3A") + "&after_timestamp=1423476730&summary=1",
	} {
		got := get(t, c, query)
		if !slices.Equal(ids(got.Rows), mine) || !slices.Equal(stampIDs(got.Summary), mine) {
			t.Errorf("?%s: rows %v, summary %v; want %v in both", query, ids(got.Rows), got.Summary, mine)
		}
	}
}

// blink is the receiving side of Blink's ChatHistoryReplicator: its
// after_timestamp, the msgids seen at that timestamp and the local history.
type blink struct {
	device    string
	timestamp string // the JSON value last seen, echoed with %s
	msgIDs    map[string]bool
	history   map[string]string // msgid → journal id
}

// poll does what one tick of Blink's GET does with the answer.
func (b *blink) poll(t *testing.T, c *rt.Client) {
	t.Helper()
	got := get(t, c, "realm=example.com&action=get_journal_entries&except_uuid="+b.device+"&after_timestamp="+b.timestamp+"&summary=1")
	for _, r := range got.Rows {
		if r.UUID == b.device {
			t.Fatalf("row %s of our own device returned", r.ID)
		}
		old, _ := strconv.ParseInt(b.timestamp, 10, 64)
		if old < r.Timestamp {
			b.timestamp, b.msgIDs = r.TimestampJSON, map[string]bool{}
		}
		if b.msgIDs[r.Entry.MsgID] {
			continue
		}
		b.msgIDs[r.Entry.MsgID] = true
		if prev, ok := b.history[r.Entry.MsgID]; ok && prev != r.ID {
			t.Errorf("msgid %s arrived as journal ids %s and %s", r.Entry.MsgID, prev, r.ID)
		}
		b.history[r.Entry.MsgID] = r.ID
	}
}

func testC31(t *testing.T, s *server) {
	c := s.alice()
	mac := &blink{device: dev2, timestamp: "0", msgIDs: map[string]bool{}, history: map[string]string{}}
	want := map[string]string{}
	add := func(device string, msgIDs ...string) {
		items := make([]rt.Item, len(msgIDs))
		for i, m := range msgIDs {
			items[i] = s.item(m)
		}
		for i, jid := range put(t, c, device, items...) {
			if device != mac.device {
				want[msgIDs[i]] = jid
			}
		}
	}
	add(dev1, "m1", "m2")
	add(dev2, "own1")
	mac.poll(t, c)
	// Same second: returned again (inclusive), dropped by msgid_list.
	add(dev1, "m3")
	mac.poll(t, c)
	s.Clock.Advance(80 * time.Second)
	add(dev1, "m4", "m5")
	mac.poll(t, c)
	mac.poll(t, c)
	if fmt.Sprint(mac.history) != fmt.Sprint(want) {
		t.Errorf("Blink's history %v, want %v", mac.history, want)
	}
}

func testC32(t *testing.T, s *server) {
	c := s.alice()
	it := s.item("m1")
	answers := map[string]*rt.Response{
		"put":       do(t, c, putRequest(dev1, rt.EntriesObject(it))),
		"put error": do(t, c, putRequest(dev1, "not-json")),
		"get":       do(t, c, rt.Request{Query: qGet + "&summary=1"}),
		"get error": do(t, c, rt.Request{Query: qGet + "&action=get_journal_entriez"}),
	}
	for name, resp := range answers {
		m := decodeMap(t, resp)
		if m["success"] == nil || m["results"] == nil {
			t.Errorf("%s answer %s: want success and results", name, truncate(resp.Body))
		}
	}
	for _, r := range get(t, c, qGet).Rows {
		for _, k := range []string{"id", "uuid", "timestamp", "data", "account", "source", "ip_address"} {
			if !slices.Contains(r.Keys, k) {
				t.Errorf("row keys %v: no %q", r.Keys, k)
			}
		}
	}
}

// --- D. delete_journal_entries ---

func deleteOK(t *testing.T, c *rt.Client, form string) {
	t.Helper()
	resp := do(t, c, rt.Request{Query: qDelete, Body: []byte(form)})
	m := decodeMap(t, resp)
	if string(m["success"]) != "true" {
		t.Errorf("delete %s: %s, want success:true", form, resp.Body)
	}
}

func testD33(t *testing.T, s *server) {
	c := s.alice()
	jids := put(t, c, dev1, s.item("m1"), s.item("m2"))
	resp := do(t, c, rt.Request{Query: qDelete, Body: []byte(rt.Form("data", `["`+jids[0]+`"]`))})
	if m := decodeMap(t, resp); len(m) != 1 || string(m["success"]) != "true" {
		t.Errorf("delete answer %s, want {\"success\":true}", resp.Body)
	}
	got := get(t, c, qGet+"&except_uuid="+dev2+"&summary=1")
	if !slices.Equal(ids(got.Rows), jids[1:]) || !slices.Equal(stampIDs(got.Summary), jids[1:]) {
		t.Errorf("after delete: rows %v, summary %v; want %v", ids(got.Rows), got.Summary, jids[1:])
	}
}

func testD34(t *testing.T, s *server) {
	c := s.alice()
	jids := put(t, c, dev1, s.item("m1"), s.item("m2"))
	deleteOK(t, c, rt.Form("journal_id", jids[1]))
	if got := ids(all(t, c)); !slices.Equal(got, jids[:1]) {
		t.Errorf("after delete: %v, want %v", got, jids[:1])
	}
	// Ids as JSON numbers, and in an object, are taken as well.
	jids = put(t, c, dev1, s.item("m3"), s.item("m4"))
	deleteOK(t, c, rt.Form("data", "["+jids[0]+"]"))
	deleteOK(t, c, rt.Form("data", `{"x": "`+jids[1]+`"}`))
	if got := msgIDs(all(t, c)); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("after deletes: %v, want [m1]", got)
	}
}

func testD35(t *testing.T, s *server) {
	c := s.alice()
	jids := put(t, c, dev1, s.item("m1"))
	for _, body := range []string{"", rt.Form("data", ""), rt.Form("journal_id", ""), rt.Form("uuid", dev1)} {
		wantError(t, do(t, c, rt.Request{Query: qDelete, Method: http.MethodPost, Body: []byte(body)}), "Missing data")
	}
	if got := ids(all(t, c)); !slices.Equal(got, jids) {
		t.Errorf("rows %v, want %v", got, jids)
	}
}

func testD36(t *testing.T, s *server) {
	c := s.alice()
	jids := put(t, c, dev1, s.item("m1"))
	wantError(t, do(t, c, rt.Request{Query: qDelete, Body: []byte(rt.Form("data", "[]"))}), "No journal entries provided")
	if got := ids(all(t, c)); !slices.Equal(got, jids) {
		t.Errorf("rows %v, want %v", got, jids)
	}
}

func testD37(t *testing.T, s *server) {
	a, b := s.alice(), s.bob()
	mine := put(t, a, dev1, s.item("m1"))
	bobs := put(t, b, dev1, s.item("b1"))
	deleteOK(t, a, rt.Form("data", `["`+bobs[0]+`","garbage","0","None","-1","99999999999999999999"]`))
	if got := ids(all(t, b)); !slices.Equal(got, bobs) {
		t.Errorf("bob's rows %v, want %v", got, bobs)
	}
	if got := ids(all(t, a)); !slices.Equal(got, mine) {
		t.Errorf("alice's rows %v, want %v", got, mine)
	}
}

func testD38(t *testing.T, s *server) {
	c := s.alice()
	jids := put(t, c, dev1, s.item("m1"), s.item("m2"))
	for range 2 {
		deleteOK(t, c, rt.Form("data", `["`+jids[0]+`"]`))
	}
	if got := ids(all(t, c)); !slices.Equal(got, jids[1:]) {
		t.Errorf("rows %v, want %v", got, jids[1:])
	}
}

// --- E. Other actions ---

func testE39(t *testing.T, s *server) {
	resp := do(t, s.alice(), rt.Request{Query: "action=get_history&realm=example.com"})
	m := decodeMap(t, resp)
	for _, k := range []string{"received", "placed"} {
		var calls []map[string]json.RawMessage
		if err := json.Unmarshal(m[k], &calls); err != nil || string(m[k]) == "null" || m[k] == nil {
			t.Errorf("%q = %s, want an array", k, m[k])
		}
		for i, call := range calls {
			checkCall(t, fmt.Sprintf("%s[%d]", k, i), call)
		}
	}
}

// checkCall checks one call of get_history as Blink reads it (§2.7).
func checkCall(t *testing.T, where string, call map[string]json.RawMessage) {
	t.Helper()
	for _, k := range []string{"sessionId", "fromTag", "toTag", "remoteParty", "status", "timezone"} {
		var s string
		if json.Unmarshal(call[k], &s) != nil {
			t.Errorf("%s %q = %s, want a string", where, k, call[k])
		}
	}
	var d float64
	if json.Unmarshal(call["duration"], &d) != nil {
		t.Errorf("%s duration = %s, want a number", where, call["duration"])
	}
	for _, k := range []string{"startTime", "stopTime"} {
		var s string
		if json.Unmarshal(call[k], &s) != nil {
			t.Errorf("%s %q = %s, want a string", where, k, call[k])
		} else if _, err := time.Parse(rt.TimeFormat, s); err != nil {
			t.Errorf("%s %q = %q, want YYYY-MM-DD HH:MM:SS", where, k, s)
		}
	}
	var media []string
	if json.Unmarshal(call["media"], &media) != nil {
		t.Errorf("%s media = %s, want an array of strings", where, call["media"])
	}
}

func testE40(t *testing.T, s *server) {
	c := s.alice()
	for _, q := range []string{"action=bogus&realm=example.com", "realm=example.com", "action=GET_JOURNAL_ENTRIES&realm=example.com"} {
		wantError(t, do(t, c, rt.Request{Query: q}), "")
	}
	wantError(t, do(t, c, rt.Request{Query: "action=bogus&realm=example.com", Body: []byte("a=b")}), "")
}

// --- F. Retention ---

func testF42(t *testing.T, s *server) {
	c := s.alice()
	old := put(t, c, dev1, s.item("old"))
	s.Clock.Advance(2 * 24 * time.Hour)
	kept := put(t, c, dev1, s.item("kept"))
	// The node's sweep purged once at Start, long before this jump; the
	// next one is an hour of real time away.
	s.Clock.Advance(59 * 24 * time.Hour) // old is 61 days old, kept 59

	for _, q := range []string{"", "&summary=1", "&except_uuid=" + dev2 + "&after_timestamp=0&summary=1", "&after_id=0"} {
		got := get(t, c, qGet+q)
		if !slices.Equal(ids(got.Rows), kept) {
			t.Errorf("?…%s: rows %v, want only %v (not %v)", q, ids(got.Rows), kept, old)
		}
		if got.Summary != nil && !slices.Equal(stampIDs(got.Summary), kept) {
			t.Errorf("?…%s: summary %v, want only %v", q, got.Summary, kept)
		}
	}
	n, err := s.Node.Purge(t.Context())
	if err != nil || n.Journal != 1 {
		t.Errorf("Purge = %+v, %v; want 1 journal entry removed", n, err)
	}
	if n, err := s.Node.Purge(t.Context()); err != nil || n.Journal != 0 {
		t.Errorf("second Purge = %+v, %v; want 0", n, err)
	}
	if got := ids(all(t, c)); !slices.Equal(got, kept) {
		t.Errorf("after purge: %v, want %v", got, kept)
	}
	// Deleting the purged id is harmless.
	deleteOK(t, c, rt.Form("data", `["`+old[0]+`"]`))
}

// --- Extra checks ---

func testBodyTooLarge(t *testing.T, s *server) {
	c := s.alice()
	before := put(t, c, dev1, s.item("m1"))
	// 17 entries of one blob just under the entry limit: together over the
	// body limit. The blob is escaped once; each entry has its own id.
	blob := url.QueryEscape(rt.PyString(rt.Encrypt(replPW, bytes.Repeat([]byte("x"), 700<<10))))
	var body strings.Builder
	body.WriteString(rt.Form("uuid", dev1) + "&data=" + url.QueryEscape("{"))
	for i := range 17 {
		if i > 0 {
			body.WriteString(url.QueryEscape(", "))
		}
		fmt.Fprintf(&body, "%s%s%s", url.QueryEscape(fmt.Sprintf(`"big%d": {"data": `, i)), blob, url.QueryEscape(fmt.Sprintf(`, "id": "big%d"}`, i)))
	}
	body.WriteString(url.QueryEscape("}"))
	if body.Len() <= maxBody {
		t.Fatalf("body of %d bytes: the test wants more than %d", body.Len(), maxBody)
	}
	resp := do(t, c, rt.Request{Query: qPut, Body: []byte(body.String())})
	wantError(t, resp, "", http.StatusRequestEntityTooLarge)
	var a struct {
		ErrorMessage string `json:"error_message"`
	}
	resp.Decode(&a)
	if !strings.Contains(a.ErrorMessage, strconv.Itoa(maxBody)) && !strings.Contains(a.ErrorMessage, "16 MiB") {
		t.Errorf("error_message %q does not name the limit, %d bytes", a.ErrorMessage, maxBody)
	}
	if got := ids(all(t, c)); !slices.Equal(got, before) {
		t.Errorf("rows after an oversized put: %v, want %v", got, before)
	}
}

func testBadInput(t *testing.T, s *server) {
	c := s.alice()
	before := put(t, c, dev1, s.item("m1"), s.item("m2"))
	good := rt.PyString(s.blob("m3"))
	tests := []struct {
		name, query, contentType, body, want string
	}{
		{"put: no uuid", qPut, "", rt.Form("data", `{"m3": {"data": `+good+`}}`), "Missing uuid"},
		{"put: empty uuid", qPut, "", rt.Form("uuid", "", "data", `{}`), "Missing uuid"},
		{"put: no data", qPut, "", rt.Form("uuid", dev1), "Missing data"},
		{"put: empty data", qPut, "", rt.Form("uuid", dev1, "data", ""), "Missing data"},
		{"put: not JSON", qPut, "", rt.Form("uuid", dev1, "data", "not-json"), "Json decode error"},
		{"put: truncated JSON", qPut, "", rt.Form("uuid", dev1, "data", `{"m3": {"data": `+good), "Json decode error"},
		{"put: trailing data", qPut, "", rt.Form("uuid", dev1, "data", `{"m3": {"data": `+good+`}} {}`), "Json decode error"},
		{"put: empty array", qPut, "", rt.Form("uuid", dev1, "data", "[]"), "Json decode error"},
		{"put: JSON string", qPut, "", rt.Form("uuid", dev1, "data", `"m3"`), "Json decode error"},
		{"put: JSON number", qPut, "", rt.Form("uuid", dev1, "data", `42`), "Json decode error"},
		{"put: numeric data", qPut, "", rt.Form("uuid", dev1, "data", `{"m3": {"data": 5, "id": "m3"}}`), "Invalid journal entry"},
		{"put: object data", qPut, "", rt.Form("uuid", dev1, "data", `[{"data": {"x": "y"}, "id": "m3"}]`), "Invalid journal entry"},
		{"put: non-string data after a good entry", qPut, "", rt.Form("uuid", dev1, "data", `[{"data": `+good+`, "id": "m3"}, {"data": true, "id": "m4"}]`), "Invalid journal entry"},
		{"put: numeric id", qPut, "", rt.Form("uuid", dev1, "data", `[{"data": `+good+`, "id": 3}]`), "Invalid journal entry"},
		{"put: id too long", qPut, "", rt.Form("uuid", dev1, "data", `[{"data": `+good+`, "id": "`+strings.Repeat("i", 1025)+`"}]`), "Invalid journal entry"},
		{"put: uuid too long", qPut, "", rt.Form("uuid", "urn:uuid:"+strings.Repeat("u", 300), "data", `[{"data": `+good+`}]`), "Invalid uuid"},
		{"put: entry too large", qPut, "", rt.Form("uuid", dev1, "data", `[{"data": "`+strings.Repeat("A", 1<<20+1)+`", "id": "m3"}]`), "Journal entry too large"},
		{"put: malformed multipart", qPut, "multipart/form-data; boundary=XyZ", "--XyZ\r\nno end", "Malformed form body"},
		{"delete: no data", qDelete, "", rt.Form("uuid", dev1), "Missing data"},
		{"delete: empty array", qDelete, "", rt.Form("data", "[]"), "No journal entries provided"},
		{"delete: not JSON", qDelete, "", rt.Form("data", "not-json"), "No journal entries provided"},
		{"unknown action", "action=put_journal_entry&realm=example.com", "", rt.Form("uuid", dev1, "data", `[{"data": `+good+`}]`), "Unknown action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, do(t, c, rt.Request{Query: tt.query, Method: http.MethodPost, Body: []byte(tt.body), ContentType: tt.contentType}), tt.want)
		})
	}
	if got := ids(all(t, c)); !slices.Equal(got, before) {
		t.Errorf("rows after bad input: %v, want %v", got, before)
	}
	// "{}" is valid and empty, as in cdrtool.
	putOK(t, do(t, c, putRequest(dev1, "{}")))
}

func testBasicAuth(t *testing.T, s *server) {
	query := qGet + "&after_timestamp=0"
	send := func(base string, hc *http.Client, auth, q string) *rt.Response {
		t.Helper()
		c := &rt.Client{URL: base + settings, HTTP: hc}
		resp, err := c.Send(t.Context(), rt.Request{Query: q, Authorization: auth})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	tests := []struct {
		name, username, password, query string
		want                            int
	}{
		{"web password", "alice", webPW, query, http.StatusOK},
		{"SIP password", "alice", sipPW, query, http.StatusOK},
		{"user@domain, no realm", alice, webPW, "action=get_journal_entries", http.StatusOK},
		{"wrong password", "alice", "wrong-password", query, http.StatusUnauthorized},
		{"unknown user", "carol", webPW, query, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(s.HTTPSURL, s.HTTPS, rt.BasicAuthorization(tt.username, tt.password), tt.query)
			if resp.StatusCode != tt.want {
				t.Errorf("HTTPS: HTTP %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusOK {
				if m := decodeMap(t, resp); string(m["success"]) != "true" {
					t.Errorf("HTTPS: %s, want success:true", resp.Body)
				}
			}
		})
	}
	// Over plain HTTP, Basic is refused and Digest offered.
	resp := send(s.HTTPURL, s.HTTP, rt.BasicAuthorization("alice", webPW), query)
	if resp.StatusCode != http.StatusUnauthorized || len(rt.ParseChallenges(resp.Header)) == 0 {
		t.Errorf("Basic over HTTP: HTTP %d, challenges %v; want 401 with a Digest challenge", resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	// Digest works over HTTPS too.
	c := &rt.Client{URL: s.HTTPSURL + settings, Username: "alice", Password: webPW, HTTP: s.HTTPS}
	if resp := do(t, c, rt.Request{Query: query}); resp.StatusCode != http.StatusOK {
		t.Errorf("Digest over HTTPS: HTTP %d, want 200", resp.StatusCode)
	}
}

func testHealthz(t *testing.T, s *server) {
	for _, base := range []struct {
		url string
		hc  *http.Client
	}{{s.HTTPURL, s.HTTP}, {s.HTTPSURL, s.HTTPS}} {
		resp, err := base.hc.Get(base.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || len(body) != 1 || body["status"] != "ok" {
			t.Errorf("%s/healthz: HTTP %d %v %v, want 200 {\"status\":\"ok\"}", base.url, resp.StatusCode, body, err)
		}
	}
}

func testMetrics(t *testing.T, s *server) {
	do(t, s.alice(), rt.Request{Query: qGet})
	do(t, s.alice(), putRequest(dev1, "not-json"))
	resp, err := s.HTTP.Get(s.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", resp.StatusCode)
	}
	for _, line := range []string{
		`cairn_journal_requests_total{action="get_journal_entries",outcome="ok"} 1`,
		`cairn_journal_requests_total{action="get_journal_entries",outcome="unauthorized"} 1`,
		`cairn_journal_requests_total{action="put_journal_entries",outcome="input_error"} 1`,
	} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("/metrics has no line %q", line)
		}
	}
}
