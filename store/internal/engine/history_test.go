package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func TestDisposition(t *testing.T) {
	t.Parallel()
	for _, d := range [][]string{
		nil,
		{},
		{"display"},
		{"positive-delivery", "display"},
		{""},
		{"", ""},
		{"a,b", "[c]"},
		{`quo"te`, `back\slash`, "<&>", "tab\t", "é", "\u2028", "],[\""},
	} {
		enc := EncodeDisposition(d)
		got, err := DecodeDisposition(enc)
		if err != nil || got == nil || !slices.Equal(got, d) {
			t.Errorf("DecodeDisposition(EncodeDisposition(%q) = %s) = %q, %v", d, enc, got, err)
		}
	}
	if enc := EncodeDisposition(nil); enc != "[]" {
		t.Errorf("EncodeDisposition(nil) = %s, want []", enc)
	}
	// What other writers may have stored: JSON, however spaced or escaped.
	for s, want := range map[string][]string{
		`[ "a" , "b" ]`:       {"a", "b"},
		`["\u0061"]`:          {"a"},
		`null`:                {},
		`["a"]`:               {"a"},
		"[\"a\",\"b\",\"c\"]": {"a", "b", "c"},
	} {
		if got, err := DecodeDisposition(s); err != nil || got == nil || !slices.Equal(got, want) {
			t.Errorf("DecodeDisposition(%s) = %q, %v; want %q", s, got, err, want)
		}
	}
	for _, s := range []string{``, `[`, `]`, `["a"`, `["a",]`, `[,"a"]`, `["a""b"]`, `{}`, `[1]`, `"a"`} {
		if got, err := DecodeDisposition(s); err == nil {
			t.Errorf("DecodeDisposition(%s) = %q, want an error", s, got)
		}
	}
}

func TestHistoryDecoder(t *testing.T) {
	t.Parallel()
	var dec HistoryDecoder
	a, b := dec.Text([]byte("text/plain")), dec.Text([]byte("text/plain"))
	if a != "text/plain" || b != a || strings.Clone(a) != b {
		t.Errorf("Text = %q, %q", a, b)
	}
	d1, err1 := dec.Disposition([]byte(`["display"]`))
	d2, err2 := dec.Disposition([]byte(`["display"]`))
	if err1 != nil || err2 != nil || !slices.Equal(d1, []string{"display"}) || !slices.Equal(d2, d1) {
		t.Fatalf("Disposition = %q, %v; %q, %v", d1, err1, d2, err2)
	}
	d1[0] = "changed" // each row has a slice of its own
	if d2[0] != "display" {
		t.Errorf("changing one row's disposition changed another's: %q", d2)
	}
	if d, err := dec.Disposition([]byte(`[]`)); err != nil || d == nil || len(d) != 0 {
		t.Errorf("Disposition([]) = %#v, %v; want an empty slice", d, err)
	}
	if _, err := dec.Disposition([]byte(`[`)); err == nil {
		t.Errorf("Disposition([) succeeded")
	}
}

func TestNewHistoryRequest(t *testing.T) {
	t.Parallel()
	cet := time.FixedZone("CET", 3600)
	rows := []store.HistoryRow{
		{ID: 7, AccountID: 2, MessageID: "m", Timestamp: time.Date(2025, 1, 1, 0, 0, 0, 1999, cet), CreatedAt: time.Now()},
		{AccountID: 1, Disposition: []string{"display"}, Content: []byte{0}},
		{AccountID: 2},
	}
	r, err := NewHistoryRequest(rows)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Accounts, []int64{1, 2}) || !slices.Equal(r.Disposition, []string{"[]", `["display"]`, "[]"}) {
		t.Errorf("request: accounts %v, dispositions %q", r.Accounts, r.Disposition)
	}
	got := r.Rows[0]
	if got.ID != 0 || !got.CreatedAt.IsZero() || got.Timestamp.Location() != time.UTC ||
		!got.Timestamp.Equal(time.Date(2025, 1, 1, 0, 0, 0, 1000, cet)) || got.Disposition == nil || got.Content == nil {
		t.Errorf("row 0 as stored: %+v", got)
	}
	r.Rows[1].Disposition[0] = "changed"
	if rows[1].Disposition[0] != "display" || rows[0].ID != 7 {
		t.Errorf("NewHistoryRequest shares or changes the caller's rows: %+v", rows)
	}
	if _, err := NewHistoryRequest(make([]store.HistoryRow, MaxHistoryAppend+1)); err == nil {
		t.Errorf("NewHistoryRequest of %d rows succeeded", MaxHistoryAppend+1)
	}
}

func TestHistoryBatch(t *testing.T) {
	t.Parallel()
	req := func(accounts ...int64) HistoryRequest {
		var rows []store.HistoryRow
		for _, a := range accounts {
			rows = append(rows, store.HistoryRow{AccountID: a})
		}
		r, err := NewHistoryRequest(rows)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	reqs := []HistoryRequest{req(1, 2, 1), req(3), req(2, 3), req(2)}
	b := NewHistoryBatch(reqs, map[int64]bool{3: true})
	if !slices.Equal(b.Accounts(), []int64{1, 2, 3}) {
		t.Errorf("Accounts = %v", b.Accounts())
	}
	if accounts, counts := b.Counted(); !slices.Equal(accounts, []int64{1, 2}) || !slices.Equal(counts, []int64{2, 2}) {
		t.Errorf("Counted = %v, %v; want [1 2], [2 2]", accounts, counts)
	}
	created := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	res := b.Results("test", map[int64]int64{1: 11, 2: 21}, created)
	ids := func(r HistoryResult) []int64 {
		var out []int64
		for _, row := range r.Rows {
			out = append(out, row.ID)
			if !row.CreatedAt.Equal(created) {
				t.Errorf("row created %v, want %v", row.CreatedAt, created)
			}
		}
		return out
	}
	for i, want := range [][]int64{{10, 20, 11}, nil, nil, {21}} {
		if got := ids(res[i]); !slices.Equal(got, want) {
			t.Errorf("request %d: ids %v, want %v", i, got, want)
		}
		if missing := want == nil; missing != errors.Is(res[i].Err, store.ErrNotFound) {
			t.Errorf("request %d: error %v", i, res[i].Err)
		}
	}
	if reqs[0].Rows[0].ID != 0 {
		t.Errorf("Results changed the requests' rows")
	}
}

func TestHistoryChecks(t *testing.T) {
	t.Parallel()
	digest := make([]byte, 32)
	now := time.Now()
	valid := store.APIToken{Digest: digest, AccountID: 1, Device: "d", CreatedAt: now, ExpiresAt: now}
	if err := CheckToken(valid, 1); err != nil {
		t.Errorf("CheckToken(valid) = %v", err)
	}
	for name, bad := range map[string]func() (store.APIToken, int){
		"digest":  func() (store.APIToken, int) { k := valid; k.Digest = digest[:16]; return k, 1 },
		"device":  func() (store.APIToken, int) { k := valid; k.Device = ""; return k, 1 },
		"created": func() (store.APIToken, int) { k := valid; k.CreatedAt = time.Time{}.Add(-1); return k, 1 },
		"bound":   func() (store.APIToken, int) { return valid, 0 },
	} {
		if err := CheckToken(bad()); err == nil {
			t.Errorf("CheckToken with a bad %s succeeded", name)
		}
	}
	for _, key := range [][]byte{nil, make([]byte, MaxPublicKey+1)} {
		if CheckPublicKey(key) == nil {
			t.Errorf("CheckPublicKey(%d bytes) succeeded", len(key))
		}
	}
	if CheckPublicKey(make([]byte, MaxPublicKey)) != nil || CheckPublicKey([]byte{0}) != nil {
		t.Errorf("CheckPublicKey refused a valid key")
	}
	if CheckHistoryQuery(store.HistoryQuery{Limit: 1}) != nil || CheckHistoryQuery(store.HistoryQuery{}) == nil {
		t.Errorf("CheckHistoryQuery: wrong on limits 1 and 0")
	}
	if CheckHistoryFind(strings.Repeat("m", MaxHistoryMessageID), time.Time{}) != nil || CheckHistoryFind(strings.Repeat("m", MaxHistoryMessageID+1), time.Time{}) == nil {
		t.Errorf("CheckHistoryFind: wrong on the message id bound")
	}
}
