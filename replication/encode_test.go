package replication

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzAppendString checks the hand-written JSON string encoder against
// encoding/json, byte for byte.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "L3J4K1lQWnBWdCtQ\naFFqSnBjRlRyQT09\n", "\"\\/\x00\x1f\x7f",
		"é😀\u2028\u2029", "\xff\xfe", "<&>", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		if got := appendString(nil, s); string(got) != string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("appendString(%q) = %s, encoding/json gives %s", s, got, want.Bytes())
		}
	})
}

func TestAppendGetAnswer(t *testing.T) {
	t.Parallel()
	summary := []summaryItem{{JournalID: "41", Timestamp: 1764331200}, {JournalID: "57", Timestamp: 1764331201}}
	for _, a := range []getAnswer{
		{Results: []getResult{}},
		{Results: []getResult{}, Summary: &[]summaryItem{}},
		{Results: []getResult{
			{ID: "41", Timestamp: 1764331200, Account: "alice@example.com", UUID: "urn:uuid:1", IPAddress: "192.0.2.10", Data: "a\nb\n"},
			{ID: "57", Timestamp: 1764331201, Account: "alice@example.com", UUID: "urn:uuid:2", IPAddress: "::1", Data: "\"é\""},
		}, Rows: 2, Summary: &summary},
	} {
		out := appendGetAnswer(nil, a)
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("invalid JSON %s: %v", out, err)
		}
		want := map[string]any{"success": true, "error_message": nil, "rows": float64(a.Rows), "results": []any{}}
		results := []any{}
		for _, r := range a.Results {
			results = append(results, map[string]any{"id": r.ID, "source": "default", "timestamp": float64(r.Timestamp),
				"account": r.Account, "uuid": r.UUID, "ip_address": r.IPAddress, "data": r.Data})
		}
		want["results"] = results
		if a.Summary != nil {
			items := []any{}
			for _, s := range *a.Summary {
				items = append(items, map[string]any{"journal_id": s.JournalID, "timestamp": float64(s.Timestamp)})
			}
			want["summary"] = items
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("appendGetAnswer = %s\nwant %v", out, want)
		}
		if n := answerSize(a); n < len(out) {
			t.Errorf("answerSize = %d, below the %d bytes written", n, len(out))
		}
	}
}
