package replication

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-chat/cairn/store"
)

// testRequest is one request of testdata/requests, as parseParams takes it.
type testRequest struct {
	name        string
	method      string
	rawQuery    string
	contentType string
	body        []byte
}

func loadRequests(t testing.TB) []testRequest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "requests", "*.http"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no requests in testdata/requests: %v", err)
	}
	var out []testRequest
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.ReadRequest(bufio.NewReader(fh))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		body, err := io.ReadAll(r.Body)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: body: %v (does Content-Length match?)", f, err)
		}
		out = append(out, testRequest{
			name: filepath.Base(f), method: r.Method, rawQuery: r.URL.RawQuery,
			contentType: r.Header.Get("Content-Type"), body: body,
		})
	}
	return out
}

const (
	blinkDev1 = "urn:uuid:11111111-1111-4111-8111-111111111111"
	blinkDev2 = "urn:uuid:22222222-2222-4222-8222-222222222222"
	// The blink.md §3 test blob of {"msgid": "x"}, py2 base64 form.
	shortBlob = "/rx+YPZpVt+PhQjJpcFTrA==\n"
)

// checkBlob reports whether s looks like what Blink stores: py2 base64 in
// 76-column lines, each ending in \n, of a whole number of AES blocks.
func checkBlob(s string) error {
	if !strings.HasSuffix(s, "\n") {
		return errors.New("no trailing newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		if len(l) > 76 || i < len(lines)-1 && len(l) != 76 {
			return fmt.Errorf("line %d is %d characters", i, len(l))
		}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(lines, ""))
	if err != nil {
		return err
	}
	if len(raw) == 0 || len(raw)%16 != 0 {
		return fmt.Errorf("%d bytes of ciphertext", len(raw))
	}
	return nil
}

func TestBlinkRequests(t *testing.T) {
	t.Parallel()
	get := func(after, except string, summary bool) getRequest {
		return getRequest{exceptDevice: except, afterTime: intval(after), limit: maxRows, summary: summary}
	}
	type want struct {
		params  map[string]string // the parameters to check (not every one)
		get     *getRequest
		putIDs  []string
		putDev  string
		deletes []int64
		err     error
	}
	tests := map[string]want{
		"get-blink.http": {
			params: map[string]string{"realm": "example.com", "action": "get_journal_entries", "except_uuid": blinkDev2, "after_timestamp": "1423476730", "summary": "1"},
			get:    new(get("1423476730", blinkDev2, true)),
		},
		"get-blink-first-poll.http": {
			params: map[string]string{"after_timestamp": "0", "except_uuid": blinkDev1},
			get:    new(get("0", blinkDev1, true)),
		},
		"get-blink-py2-order.http": {
			params: map[string]string{"realm": "example.com", "action": "get_journal_entries"},
			get:    new(get("1423476730", blinkDev2, false)),
		},
		"get-limit-after-id.http": {
			get: &getRequest{afterID: 41, limit: maxRows},
		},
		"put-blink-py2.http": {
			params: map[string]string{"action": "put_journal_entries", "realm": "example.com", "uuid": blinkDev1},
			putDev: blinkDev1,
			putIDs: []string{"9b0f3c2e1d4a5b6c7d8e9f00112233445566778899", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"},
		},
		"put-blink-data-first.http": {
			putDev: blinkDev1, putIDs: []string{"5f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"},
		},
		"put-array.http":           {putDev: blinkDev2, putIDs: []string{"m1", "m3"}},
		"put-no-content-type.http": {putDev: blinkDev1, putIDs: []string{"m1"}},
		"put-in-query.http":        {params: map[string]string{"action": "put_journal_entries"}, putDev: blinkDev1, putIDs: []string{"m1"}},
		"put-multipart.http": {
			params: map[string]string{"action": "put_journal_entries", "realm": "example.com"}, // the form's action wins
			putDev: blinkDev1, putIDs: []string{"m1"},
		},
		"delete-blink.http":       {params: map[string]string{"data": `["41", "57"]`}, deletes: []int64{41, 57}},
		"delete-blink-cjson.http": {params: map[string]string{"data": `["41","57"]`}, deletes: []int64{41, 57}},
		"delete-garbage.http":     {deletes: []int64{41, 57, 42}},
		"delete-journal-id.http":  {deletes: []int64{41}},
		"delete-empty.http":       {err: errNoEntries},
	}
	seen := 0
	for _, r := range loadRequests(t) {
		w, ok := tests[r.name]
		if !ok {
			t.Errorf("%s: no expectations for this request", r.name)
			continue
		}
		seen++
		p, err := parseParams(r.rawQuery, r.contentType, r.body)
		if err != nil {
			t.Errorf("%s: parseParams: %v", r.name, err)
			continue
		}
		for k, v := range w.params {
			if p[k] != v {
				t.Errorf("%s: %s = %q, want %q", r.name, k, p[k], v)
			}
		}
		switch action := p["action"]; {
		case w.get != nil:
			if action != "get_journal_entries" {
				t.Errorf("%s: action %q", r.name, action)
			}
			if got := parseGet(p); got != *w.get {
				t.Errorf("%s: parseGet = %+v, want %+v", r.name, got, *w.get)
			}
		case w.putIDs != nil:
			if action != "put_journal_entries" {
				t.Errorf("%s: action %q", r.name, action)
			}
			req, err := parsePut(p, 1<<20)
			if err != nil {
				t.Errorf("%s: parsePut: %v", r.name, err)
				continue
			}
			if req.device != w.putDev || !reflect.DeepEqual(req.ids, w.putIDs) {
				t.Errorf("%s: parsePut = device %q, ids %q; want %q, %q", r.name, req.device, req.ids, w.putDev, w.putIDs)
			}
			for i, it := range req.items {
				if err := checkBlob(it.Data); err != nil {
					t.Errorf("%s: item %d: the blob was not kept byte for byte: %v", r.name, i, err)
				}
			}
			if r.name == "put-blink-data-first.http" {
				sum := sha256.Sum256([]byte(req.items[0].Data))
				if got := hex.EncodeToString(sum[:]); got != "7dd39b9190fcea67db213511b86157079c31ece9095274feb27c2494521a623c" {
					t.Errorf("%s: the blink.md §3 blob arrived with SHA-256 %s", r.name, got)
				}
			}
		default:
			if action != "delete_journal_entries" {
				t.Errorf("%s: action %q", r.name, action)
			}
			ids, err := parseDelete(p)
			if !errors.Is(err, w.err) || !reflect.DeepEqual(ids, w.deletes) {
				t.Errorf("%s: parseDelete = %v, %v; want %v, %v", r.name, ids, err, w.deletes, w.err)
			}
		}
	}
	if seen != len(tests) {
		t.Errorf("%d of %d expected requests found in testdata/requests", seen, len(tests))
	}
}

func TestParseParams(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	multipartBody := func(parts ...string) []byte {
		var b strings.Builder
		for i := 0; i+1 < len(parts); i += 2 {
			fmt.Fprintf(&b, "--XyZ\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", parts[i], parts[i+1])
		}
		b.WriteString("--XyZ--\r\n")
		return []byte(b.String())
	}
	tooMany := make([]string, 0, 2*(maxMultipartParts+1))
	for i := range maxMultipartParts + 1 {
		tooMany = append(tooMany, fmt.Sprint("p", i), "v")
	}
	tests := []struct {
		name        string
		query       string
		contentType string
		body        string
		want        params
		wantErr     bool
	}{
		{name: "empty", want: params{}},
		{name: "query only", query: "action=get_journal_entries&realm=example.com", want: params{"action": "get_journal_entries", "realm": "example.com"}},
		{name: "form wins over query", query: "action=get_journal_entries&realm=example.com", contentType: form, body: "action=put_journal_entries&uuid=u",
			want: params{"action": "put_journal_entries", "realm": "example.com", "uuid": "u"}},
		{name: "form wins without Content-Type", query: "a=query", body: "a=form", want: params{"a": "form"}},
		{name: "form wins with another Content-Type", query: "a=query", contentType: "text/plain", body: "a=form", want: params{"a": "form"}},
		{name: "form with charset", contentType: form + "; charset=UTF-8", body: "a=%C3%A9", want: params{"a": "é"}},
		{name: "last repeat wins", query: "a=1&a=2", body: "b=1&b=2", want: params{"a": "2", "b": "2"}},
		{name: "empty value wins too", query: "a=1", body: "a=", want: params{"a": ""}},
		{name: "raw colons (Blink's get)", query: "except_uuid=" + blinkDev2, want: params{"except_uuid": blinkDev2}},
		{name: "plus is a space", body: "a=b+c", want: params{"a": "b c"}},
		{name: "encoded plus", body: "a=b%2Bc", want: params{"a": "b+c"}},
		{name: "name decoded", body: "d%61ta=x", want: params{"data": "x"}},
		{name: "bad escapes kept", query: "a=100%&b=%zz&c=%4", want: params{"a": "100%", "b": "%zz", "c": "%4"}},
		{name: "no =", query: "summary&a=1", want: params{"summary": "", "a": "1"}},
		{name: "second = kept in value", query: "a=b=c", want: params{"a": "b=c"}},
		{name: "empty names ignored", query: "=x&&a=1&=", want: params{"a": "1"}},
		{name: "semicolon is not a separator", query: "a=1;b=2", want: params{"a": "1;b=2"}},
		{name: "newlines kept", body: "data=a%0Ab%0A", want: params{"data": "a\nb\n"}},
		{name: "multipart", query: "action=get_journal_entries&realm=example.com", contentType: "multipart/form-data; boundary=XyZ",
			body: string(multipartBody("action", "put_journal_entries", "uuid", blinkDev1, "data", "{}")),
			want: params{"action": "put_journal_entries", "realm": "example.com", "uuid": blinkDev1, "data": "{}"}},
		{name: "multipart, content type in upper case", contentType: "Multipart/Form-Data; boundary=XyZ", body: string(multipartBody("a", "b")), want: params{"a": "b"}},
		{name: "multipart keeps bytes", contentType: "multipart/form-data; boundary=XyZ", body: string(multipartBody("data", "a+b%20c\n")), want: params{"data": "a+b%20c\n"}},
		{name: "multipart, no parts", contentType: "multipart/form-data; boundary=XyZ", body: "--XyZ--\r\n", want: params{}},
		{name: "multipart, part without a name", contentType: "multipart/form-data; boundary=XyZ",
			body: "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--XyZ--\r\n", want: params{"a": "b"}},
		{name: "multipart, 64 parts", contentType: "multipart/form-data; boundary=XyZ", body: string(multipartBody(tooMany[:2*maxMultipartParts]...)),
			want: func() params {
				p := params{}
				for i := range maxMultipartParts {
					p[fmt.Sprint("p", i)] = "v"
				}
				return p
			}()},
		{name: "multipart, too many parts", contentType: "multipart/form-data; boundary=XyZ", body: string(multipartBody(tooMany...)), wantErr: true},
		{name: "multipart, wrong boundary", contentType: "multipart/form-data; boundary=other", body: string(multipartBody("a", "b")), wantErr: true},
		{name: "multipart, no boundary", contentType: "multipart/form-data", body: string(multipartBody("a", "b")), wantErr: true},
		{name: "multipart, truncated", contentType: "multipart/form-data; boundary=XyZ", body: "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb", wantErr: true},
		{name: "multipart, not multipart", contentType: "multipart/form-data; boundary=XyZ", body: "a=b", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseParams(tt.query, tt.contentType, []byte(tt.body))
		switch {
		case tt.wantErr && !errors.Is(err, errBadForm):
			t.Errorf("%s: parseParams = %v, %v; want errBadForm", tt.name, got, err)
		case !tt.wantErr && err != nil:
			t.Errorf("%s: parseParams: %v", tt.name, err)
		case !tt.wantErr && !reflect.DeepEqual(got, tt.want):
			t.Errorf("%s: parseParams = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestURLDecode(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{"urn:uuid:1b4e28ba-2fa1-4d2b-883f-0016d3cca427", "urn:uuid:1b4e28ba-2fa1-4d2b-883f-0016d3cca427"},
		{"a+b", "a b"},
		{"%2B", "+"},
		{"%2b", "+"},
		{"%25", "%"},
		{"%2525", "%25"}, // decoded once only
		{"%", "%"},
		{"%4", "%4"},
		{"a%4", "a%4"},
		{"%%41", "%A"},
		{"%G1", "%G1"},
		{"%1G", "%1G"},
		{"100%", "100%"},
		{"%00", "\x00"},
		{"%FF", "\xff"},
		{"%E2%82%AC", "€"},
		{"%5B%2241%22%2C+%2257%22%5D", `["41", "57"]`},
		{"€+€", "€ €"},
	}
	for _, tt := range tests {
		if got := urlDecode(tt.in); got != tt.want {
			t.Errorf("urlDecode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIntval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"0", 0},
		{"1423476730", 1423476730},
		{"12abc", 12},
		{"x", 0},
		{"abc12", 0},
		{"007", 7},
		{" 12", 12},
		{"\t\n\r\v\f12", 12},
		{"12 ", 12},
		{"+5", 5},
		{"-7", -7},
		{"-", 0},
		{"+", 0},
		{"+-1", 0},
		{"1.9", 1},
		{"0x1A", 0},
		{"1_000", 1},
		{"\u00a012", 0}, // only ASCII white space is skipped
		{"١٢", 0},       // only ASCII digits count
		{"9223372036854775807", 9223372036854775807},
		{"-9223372036854775808", -9223372036854775808},
		// Saturated on overflow, as PHP does, so that a huge after_timestamp
		// matches nothing rather than turning the filter off.
		{"9223372036854775808", 9223372036854775807},
		{"99999999999999999999999", 9223372036854775807},
		{"-99999999999999999999999", -9223372036854775808},
	}
	for _, tt := range tests {
		if got := intval(tt.in); got != tt.want {
			t.Errorf("intval(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestTruthy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"0", false},
		{"1", true},
		{"00", true},
		{"0.0", true},
		{"false", true},
		{" ", true},
		{"yes", true},
	}
	for _, tt := range tests {
		if got := truthy(tt.in); got != tt.want {
			t.Errorf("truthy(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    params
		want getRequest
	}{
		{"nothing", params{}, getRequest{limit: maxRows}},
		{"Blink", params{"except_uuid": blinkDev2, "after_timestamp": "1423476730", "summary": "1"},
			getRequest{exceptDevice: blinkDev2, afterTime: 1423476730, limit: maxRows, summary: true}},
		{"summary 0", params{"summary": "0"}, getRequest{limit: maxRows}},
		{"summary empty", params{"summary": ""}, getRequest{limit: maxRows}},
		{"summary true", params{"summary": "true"}, getRequest{limit: maxRows, summary: true}},
		{"after_id", params{"after_id": "41"}, getRequest{afterID: 41, limit: maxRows}},
		{"negative after_id", params{"after_id": "-41"}, getRequest{limit: maxRows}},
		{"negative after_timestamp", params{"after_timestamp": "-1"}, getRequest{limit: maxRows}},
		{"after_timestamp with junk", params{"after_timestamp": "1423476730.5"}, getRequest{afterTime: 1423476730, limit: maxRows}},
		{"limit 1", params{"limit": "1"}, getRequest{limit: 1}},
		{"limit 4999", params{"limit": "4999"}, getRequest{limit: 4999}},
		{"limit 5000", params{"limit": "5000"}, getRequest{limit: 5000}},
		{"limit 5001", params{"limit": "5001"}, getRequest{limit: maxRows}},
		{"limit 99999", params{"limit": "99999"}, getRequest{limit: maxRows}},
		{"limit overflow", params{"limit": "99999999999999999999"}, getRequest{limit: maxRows}},
		{"limit 0", params{"limit": "0"}, getRequest{limit: maxRows}},
		{"limit negative", params{"limit": "-3"}, getRequest{limit: maxRows}},
		{"limit junk", params{"limit": "abc"}, getRequest{limit: maxRows}},
		{"limit 12abc", params{"limit": "12abc"}, getRequest{limit: 12}},
	}
	for _, tt := range tests {
		if got := parseGet(tt.p); got != tt.want {
			t.Errorf("%s: parseGet(%v) = %+v, want %+v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestParsePut(t *testing.T) {
	t.Parallel()
	const maxEntry = 32
	item := func(id, data string) store.JournalItem { return store.JournalItem{MsgID: id, Data: data} }
	tests := []struct {
		name    string
		p       params
		want    []store.JournalItem
		wantErr error
	}{
		{name: "missing uuid", p: params{"data": `{}`}, wantErr: errMissingUUID},
		{name: "missing uuid and data", p: params{}, wantErr: errMissingUUID},
		{name: "uuid too long", p: params{"uuid": strings.Repeat("u", maxDeviceLen+1), "data": `{}`}, wantErr: errBadUUID},
		{name: "missing data", p: params{"uuid": blinkDev1}, wantErr: errMissingData},
		{name: "empty data", p: params{"uuid": blinkDev1, "data": ""}, wantErr: errMissingData},
		{name: "empty array", p: params{"uuid": blinkDev1, "data": `[]`}, wantErr: errJSONDecode},
		{name: "empty array with spaces", p: params{"uuid": blinkDev1, "data": " [ ]\n"}, wantErr: errJSONDecode},
		{name: "empty object", p: params{"uuid": blinkDev1, "data": `{}`}},
		{name: "not JSON", p: params{"uuid": blinkDev1, "data": `not-json`}, wantErr: errJSONDecode},
		{name: "JSON string", p: params{"uuid": blinkDev1, "data": `"x"`}, wantErr: errJSONDecode},
		{name: "JSON number", p: params{"uuid": blinkDev1, "data": `5`}, wantErr: errJSONDecode},
		{name: "JSON null", p: params{"uuid": blinkDev1, "data": `null`}, wantErr: errJSONDecode},
		{name: "truncated", p: params{"uuid": blinkDev1, "data": `[{"data": "a"}`}, wantErr: errJSONDecode},
		{name: "two documents", p: params{"uuid": blinkDev1, "data": `{} {}`}, wantErr: errJSONDecode},
		{name: "trailing garbage", p: params{"uuid": blinkDev1, "data": `{}x`}, wantErr: errJSONDecode},
		{name: "trailing bracket", p: params{"uuid": blinkDev1, "data": `[{"data": "a"}]]`}, wantErr: errJSONDecode},
		{name: "trailing brace", p: params{"uuid": blinkDev1, "data": `{"m": {"data": "a"}}}`}, wantErr: errJSONDecode},
		{name: "object, key order kept", p: params{"uuid": blinkDev1, "data": `{"z": {"data": "1", "id": "z"}, "a": {"data": "2", "id": "a"}, "m": {"data": "3", "id": "m"}}`},
			want: []store.JournalItem{item("z", "1"), item("a", "2"), item("m", "3")}},
		{name: "array, order kept", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": "z"}, {"data": "2", "id": "a"}]`},
			want: []store.JournalItem{item("z", "1"), item("a", "2")}},
		{name: "id echoed, not the key", p: params{"uuid": blinkDev1, "data": `{"key": {"data": "1", "id": "m1"}}`}, want: []store.JournalItem{item("m1", "1")}},
		{name: "no id", p: params{"uuid": blinkDev1, "data": `[{"data": "1"}]`}, want: []store.JournalItem{item("", "1")}},
		{name: "null id", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": null}]`}, want: []store.JournalItem{item("", "1")}},
		{name: "same msgid twice", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": "m"}, {"data": "2", "id": "m"}]`},
			want: []store.JournalItem{item("m", "1"), item("m", "2")}},
		{name: "entries without data skipped", p: params{"uuid": blinkDev1, "data": `[{"id": "a"}, {"data": "1", "id": "b"}, {"data": null, "id": "c"}, {"data": "", "id": "d"}, {"Data": "2", "id": "e"}, {"DATA": "3", "id": "f"}]`},
			want: []store.JournalItem{item("b", "1")}},
		{name: "entries that are not objects skipped", p: params{"uuid": blinkDev1, "data": `[5, "x", null, true, [], [{"data": "1"}], {"data": "2", "id": "b"}]`},
			want: []store.JournalItem{item("b", "2")}},
		{name: "only entries without data", p: params{"uuid": blinkDev1, "data": `[{"id": "a"}]`}},
		{name: "extra fields ignored", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": "a", "action": "add", "journal_id": "7"}]`}, want: []store.JournalItem{item("a", "1")}},
		{name: "case of id is exact", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "ID": "a"}]`}, want: []store.JournalItem{item("", "1")}},
		{name: "repeated data key: the last wins, as in PHP", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "data": "2", "id": "a"}]`}, want: []store.JournalItem{item("a", "2")}},
		{name: "data kept byte for byte", p: params{"uuid": blinkDev1, "data": `[{"data": "` + strings.ReplaceAll(strings.ReplaceAll(shortBlob, "/", `\/`), "\n", `\n`) + `", "id": "m"}]`},
			want: []store.JournalItem{item("m", shortBlob)}},
		{name: "unicode escapes", p: params{"uuid": blinkDev1, "data": `[{"data": "\u00e9\ud83d\ude00", "id": "\u006d"}]`}, want: []store.JournalItem{item("m", "é😀")}},
		{name: "number data", p: params{"uuid": blinkDev1, "data": `[{"data": 5, "id": "a"}]`}, wantErr: errBadEntry},
		{name: "object data", p: params{"uuid": blinkDev1, "data": `[{"data": {"a": "b"}, "id": "a"}]`}, wantErr: errBadEntry},
		{name: "array data", p: params{"uuid": blinkDev1, "data": `[{"data": ["a"], "id": "a"}]`}, wantErr: errBadEntry},
		{name: "boolean data", p: params{"uuid": blinkDev1, "data": `[{"data": true, "id": "a"}]`}, wantErr: errBadEntry},
		{name: "bad entry after good ones", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": "a"}, {"data": 2}]`}, wantErr: errBadEntry},
		{name: "number id", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": 5}]`}, wantErr: errBadEntry},
		{name: "entry at the limit", p: params{"uuid": blinkDev1, "data": `[{"data": "` + strings.Repeat("a", maxEntry) + `"}]`}, want: []store.JournalItem{item("", strings.Repeat("a", maxEntry))}},
		{name: "entry over the limit", p: params{"uuid": blinkDev1, "data": `[{"data": "` + strings.Repeat("a", maxEntry+1) + `"}]`}, wantErr: errEntryTooLarge},
		{name: "escaped entry over the limit", p: params{"uuid": blinkDev1, "data": `[{"data": "` + strings.Repeat(`\u00e9`, maxEntry/2+1) + `"}]`}, wantErr: errEntryTooLarge},
		{name: "msgid at the limit", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": "` + strings.Repeat("m", maxMsgIDLen) + `"}]`}, want: []store.JournalItem{item(strings.Repeat("m", maxMsgIDLen), "1")}},
		{name: "msgid too long", p: params{"uuid": blinkDev1, "data": `[{"data": "1", "id": "` + strings.Repeat("m", maxMsgIDLen+1) + `"}]`}, wantErr: errBadEntry},
		{name: "uuid at the limit", p: params{"uuid": strings.Repeat("u", maxDeviceLen), "data": `{}`}},
	}
	for _, tt := range tests {
		req, err := parsePut(tt.p, maxEntry)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: parsePut error %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if req.device != tt.p["uuid"] {
			t.Errorf("%s: device %q, want %q", tt.name, req.device, tt.p["uuid"])
		}
		if len(req.items) != len(tt.want) || len(tt.want) > 0 && !reflect.DeepEqual(req.items, tt.want) {
			t.Errorf("%s: items %q, want %q", tt.name, req.items, tt.want)
		}
		for i := range req.items {
			if req.ids[i] != req.items[i].MsgID {
				t.Errorf("%s: ids[%d] = %q, item id %q", tt.name, i, req.ids[i], req.items[i].MsgID)
			}
		}
		if len(req.ids) != len(req.items) {
			t.Errorf("%s: %d ids for %d items", tt.name, len(req.ids), len(req.items))
		}
	}
}

func TestParseDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       params
		want    []int64
		wantErr error
	}{
		{name: "nothing", p: params{}, wantErr: errMissingData},
		{name: "empty data and journal_id", p: params{"data": "", "journal_id": ""}, wantErr: errMissingData},
		{name: "Blink", p: params{"data": `["41", "57"]`}, want: []int64{41, 57}},
		{name: "ids Blink may hold", p: params{"data": `["41","57",42,"garbage","0","None"]`}, want: []int64{41, 57, 42}},
		{name: "object of ids", p: params{"data": `{"a": "41", "b": 57}`}, want: []int64{41, 57}},
		{name: "single journal_id", p: params{"journal_id": "41"}, want: []int64{41}},
		{name: "data wins over journal_id", p: params{"data": `["57"]`, "journal_id": "41"}, want: []int64{57}},
		{name: "junk journal_id", p: params{"journal_id": "None"}},
		{name: "zero journal_id", p: params{"journal_id": "0"}},
		{name: "junk only", p: params{"data": `["None", "0", "-1", "", " 41", "4.2e1", 4.2e1, 41.5, "99999999999999999999", true, null, ["41"], {"id": "41"}]`}},
		{name: "empty array", p: params{"data": `[]`}, wantErr: errNoEntries},
		{name: "empty object", p: params{"data": `{}`}, wantErr: errNoEntries},
		{name: "not JSON", p: params{"data": `41,57`}, wantErr: errNoEntries},
		{name: "scalar", p: params{"data": `41`}, wantErr: errNoEntries},
		{name: "trailing garbage", p: params{"data": `["41"]x`}, wantErr: errNoEntries},
		{name: "repeated ids kept", p: params{"data": `["41", "41"]`}, want: []int64{41, 41}},
		{name: "largest id", p: params{"data": `["9223372036854775807"]`}, want: []int64{9223372036854775807}},
	}
	for _, tt := range tests {
		got, err := parseDelete(tt.p)
		if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parseDelete(%v) = %v, %v; want %v, %v", tt.name, tt.p, got, err, tt.want, tt.wantErr)
		}
	}
}
