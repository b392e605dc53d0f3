package replication

import (
	"encoding/json"
	"errors"
	"maps"
	"mime"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// The fuzz targets are seeded with the requests of testdata/requests: what
// Blink, curl and a hand-written client actually send.

// FuzzParseParams checks parseParams against PHP's $_REQUEST rules, and runs
// every action's parser over what it returns.
func FuzzParseParams(f *testing.F) {
	for _, r := range loadRequests(f) {
		f.Add(r.rawQuery, r.contentType, r.body)
	}
	f.Add("a=1&a=2&=x&b", "", []byte("a=3&c=%zz+%41"))
	f.Add("", "multipart/form-data; boundary=XyZ", []byte("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--XyZ--\r\n"))
	f.Add("", "multipart/form-data; boundary=XyZ", []byte("a=b"))
	f.Fuzz(func(t *testing.T, rawQuery, contentType string, body []byte) {
		p, err := parseParams(rawQuery, contentType, body)
		mediaType, _, _ := mime.ParseMediaType(contentType)
		multipart := mediaType == "multipart/form-data"
		if err != nil {
			if !multipart || !errors.Is(err, errBadForm) {
				t.Fatalf("parseParams(%q, %q, %q): %v", rawQuery, contentType, body, err)
			}
			return
		}
		// No more names than the input could hold.
		limit := pairs(rawQuery) + pairs(string(body))
		if multipart {
			limit = pairs(rawQuery) + maxMultipartParts
		}
		if len(p) > limit {
			t.Fatalf("%d parameters from at most %d pairs", len(p), limit)
		}
		if _, ok := p[""]; ok {
			t.Fatal("an empty parameter name")
		}
		// $_REQUEST: the query, overlaid by the form.
		query, err := parseParams(rawQuery, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		form, err := parseParams("", contentType, body)
		if err != nil {
			t.Fatalf("the form alone fails where query and form did not: %v", err)
		}
		want := maps.Clone(query)
		maps.Copy(want, form)
		if !maps.Equal(p, want) {
			t.Fatalf("parseParams = %q, want the query %q overlaid by the form %q", p, query, form)
		}
		// urlDecode: the identity without '%' or '+', the inverse of
		// quote_plus, and the same as net/url wherever net/url succeeds.
		for _, s := range []string{rawQuery, string(body)} {
			got := urlDecode(s)
			if !strings.ContainsAny(s, "%+") && got != s {
				t.Fatalf("urlDecode(%q) = %q: not the identity", s, got)
			}
			if len(got) > len(s) {
				t.Fatalf("urlDecode(%q) = %q: longer than its input", s, got)
			}
			if back := urlDecode(url.QueryEscape(s)); back != s {
				t.Fatalf("urlDecode(QueryEscape(%q)) = %q", s, back)
			}
			if want, err := url.QueryUnescape(s); err == nil && got != want {
				t.Fatalf("urlDecode(%q) = %q, net/url gives %q", s, got, want)
			}
		}
		// Every action's parser takes whatever a request carries.
		checkPut(t, p, 1<<20)
		checkDelete(t, p)
		g := parseGet(p)
		if g.limit < 1 || g.limit > maxRows || g.afterID < 0 || g.afterTime < 0 || g.exceptDevice != p["except_uuid"] {
			t.Fatalf("parseGet(%q) = %+v", p, g)
		}
	})
}

// FuzzParsePut checks parsePut on any uuid, data and entry limit.
func FuzzParsePut(f *testing.F) {
	for _, r := range loadRequests(f) {
		p, err := parseParams(r.rawQuery, r.contentType, r.body)
		if err == nil && p["action"] == "put_journal_entries" {
			f.Add(p["uuid"], p["data"], uint16(1<<15))
			f.Add(p["uuid"], p["data"], uint16(76)) // some blobs over the limit
		}
	}
	for _, data := range []string{
		`[]`, `{}`, `[{"id": "a"}]`, `[{"data": 5}]`, `{"k": {"data": "x", "id": null}}`, `[{"Data": "x"}]`,
		`[{"data": "a", "data": "b"}]`, `{}x`, `[{"data": "\u00e9\ud800"}]`, "[{\"data\": \"\xff\"}]", `[[[[{"data": "x"}]]]]`,
	} {
		f.Add(blinkDev1, data, uint16(16))
	}
	f.Add("", `{}`, uint16(16))
	f.Fuzz(func(t *testing.T, uuid, data string, maxEntry uint16) {
		checkPut(t, params{"uuid": uuid, "data": data}, int(maxEntry))
	})
}

// FuzzParseDelete checks parseDelete on any data and journal_id.
func FuzzParseDelete(f *testing.F) {
	for _, r := range loadRequests(f) {
		p, err := parseParams(r.rawQuery, r.contentType, r.body)
		if err == nil && p["action"] == "delete_journal_entries" {
			f.Add(p["data"], p["journal_id"])
		}
	}
	for _, data := range []string{`{"a": "41", "b": 57}`, `[-1, 0, 1e3, "9223372036854775808", " 41", "+41"]`, `[["41"]]`, `{}`, `[]`, `41`, `["41"]x`} {
		f.Add(data, "")
	}
	f.Add("", "41abc")
	f.Fuzz(func(t *testing.T, data, journalID string) {
		checkDelete(t, params{"data": data, "journal_id": journalID})
	})
}

// checkPut checks the properties of parsePut on p.
func checkPut(t *testing.T, p params, maxEntry int) {
	t.Helper()
	req, err := parsePut(p, maxEntry)
	if err != nil {
		var bad inputError
		if !errors.As(err, &bad) {
			t.Fatalf("parsePut(%q): %v is not an input error", p, err)
		}
		return
	}
	data := p["data"]
	if req.device != p["uuid"] || req.device == "" || len(req.device) > maxDeviceLen {
		t.Fatalf("parsePut(%q): device %q", p, req.device)
	}
	if !json.Valid([]byte(data)) {
		t.Fatalf("parsePut accepted invalid JSON %q", data)
	}
	if len(req.ids) != len(req.items) {
		t.Fatalf("parsePut(%q): %d ids for %d items", p, len(req.ids), len(req.items))
	}
	// The shortest entry is {"data":"x"}: 12 bytes.
	if len(req.items)*len(`{"data":"x"}`) > len(data) {
		t.Fatalf("parsePut: %d items from %d bytes", len(req.items), len(data))
	}
	for i, it := range req.items {
		if it.Data == "" || len(it.Data) > maxEntry {
			t.Fatalf("parsePut(%q): item %d has %d bytes of data (limit %d)", p, i, len(it.Data), maxEntry)
		}
		if it.MsgID != req.ids[i] || len(it.MsgID) > maxMsgIDLen {
			t.Fatalf("parsePut(%q): item %d id %q, ids[%d] %q", p, i, it.MsgID, i, req.ids[i])
		}
		if !utf8.ValidString(it.Data) || !utf8.ValidString(it.MsgID) {
			t.Fatalf("parsePut(%q): item %d is not valid UTF-8", p, i)
		}
	}
	// For an array, the items are exactly what encoding/json reads: the
	// elements that are objects with a non-empty string "data" (the exact key,
	// the last one when repeated), in order.
	var elems []json.RawMessage
	if json.Unmarshal([]byte(data), &elems) != nil {
		return
	}
	var want []string
	for _, e := range elems {
		var m map[string]json.RawMessage
		var d string
		if json.Unmarshal(e, &m) != nil || m["data"] == nil || json.Unmarshal(m["data"], &d) != nil || d == "" {
			continue
		}
		want = append(want, d)
	}
	if len(want) != len(req.items) {
		t.Fatalf("parsePut(%q): %d items, encoding/json finds %d", data, len(req.items), len(want))
	}
	for i, w := range want {
		if req.items[i].Data != w {
			t.Fatalf("parsePut(%q): item %d data %q, encoding/json reads %q", data, i, req.items[i].Data, w)
		}
	}
}

// checkDelete checks the properties of parseDelete on p.
func checkDelete(t *testing.T, p params) {
	t.Helper()
	ids, err := parseDelete(p)
	if err != nil {
		if !errors.Is(err, errMissingData) && !errors.Is(err, errNoEntries) {
			t.Fatalf("parseDelete(%q): %v", p, err)
		}
		if len(ids) != 0 {
			t.Fatalf("parseDelete(%q): ids %v with error %v", p, ids, err)
		}
		return
	}
	for _, id := range ids {
		if id <= 0 {
			t.Fatalf("parseDelete(%q): id %d", p, id)
		}
	}
	data := p["data"]
	if data == "" {
		if len(ids) > 1 {
			t.Fatalf("parseDelete(%q): %d ids from one journal_id", p, len(ids))
		}
		return
	}
	if !json.Valid([]byte(data)) {
		t.Fatalf("parseDelete accepted invalid JSON %q", data)
	}
	// The shortest list of n ids is [1,2,…]: 2n+1 bytes.
	if 2*len(ids)+1 > len(data) {
		t.Fatalf("parseDelete: %d ids from %d bytes", len(ids), len(data))
	}
}

// pairs is the most name=value pairs s can hold.
func pairs(s string) int { return strings.Count(s, "&") + 1 }
