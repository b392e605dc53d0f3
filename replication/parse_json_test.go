package replication

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// jsonSeeds are valid and invalid documents in the shapes Blink sends, and
// the corners of RFC 8259.
var jsonSeeds = []string{
	`{"m1": {"data": "L3J4K1lQWnBWdCtQaFFqSnBjRlRyQT09\n", "id": "m1"}}`,
	`[{"data": "a\/b\\c\"d\u00e9\ud83d\ude00", "id": 7}, null, 1.5e-3, true, false]`,
	`["41","57",42,"garbage","0","None"]`,
	`{}`, `[]`, `""`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\udc01"`, `"\ud800\ud800\udc00"`, `-0`, `01`, `1.`, `1e`, `.5`,
	`{"a":1,}`, `[1,]`, `{"a" 1}`, "\"\x01\"", `"\x"`, `"\u12"`, `[[[[]]]]`, ` {"a" : [ ] } `,
	`tru`, `nul`, `{"a":"b"} x`, "\"\xff\"",
}

func FuzzJSONReader(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := &jsonReader{s: s}
		err := r.skipValue(0)
		if err == nil {
			err = r.end()
		}
		// Depth beyond maxJSONDepth is refused on purpose; otherwise the
		// reader accepts exactly what encoding/json accepts.
		if valid := json.Valid([]byte(s)); valid != (err == nil) && !(valid && deeperThan(s, maxJSONDepth)) {
			t.Fatalf("jsonReader says %v, encoding/json says valid=%v for %q", err, valid, s)
		}
		// A string decodes to what encoding/json makes of it. (encoding/json
		// replaces invalid UTF-8 where this reader keeps it; parsePut refuses it.)
		r = &jsonReader{s: s}
		if r.peek() == '"' && utf8.ValidString(s) {
			got, err := r.str()
			if err == nil && r.end() == nil {
				var want string
				if json.Unmarshal([]byte(s), &want) != nil || got != want {
					t.Fatalf("str(%q) = %q, encoding/json gives %q", s, got, want)
				}
			}
		}
	})
}

// deeperThan reports whether brackets in s (outside strings) nest beyond n.
func deeperThan(s string, n int) bool {
	depth, inString := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && (c == '{' || c == '['):
			if depth++; depth > n {
				return true
			}
		case !inString && (c == '}' || c == ']'):
			depth--
		}
	}
	return false
}
