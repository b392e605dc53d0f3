package listing

import (
	"net/url"
	"testing"
)

func TestScope(t *testing.T) {
	ops := NewOperators([]string{"Admin@Example.COM"})
	for _, c := range []struct {
		self, asked, want string
		ok                bool
	}{
		{"Admin@example.com", "", "", true},
		{"Admin@example.com", "bob@example.com", "bob@example.com", true},
		{"admin@example.com", "", "admin@example.com", true}, // the user part is case sensitive
		{"bob@example.com", "", "bob@example.com", true},
		{"bob@example.com", "bob@example.com", "bob@example.com", true},
		{"bob@example.com", "alice@example.com", "bob@example.com", false},
	} {
		got, ok := ops.Scope(c.self, c.asked)
		if got != c.want || ok != c.ok {
			t.Errorf("Scope(%q, %q) = %q, %v; want %q, %v", c.self, c.asked, got, ok, c.want, c.ok)
		}
	}
}

func TestParsePage(t *testing.T) {
	for _, c := range []struct {
		query string
		want  Page
		bad   bool
	}{
		{"", Page{Limit: 100}, false},
		{"after=7&limit=1000", Page{After: 7, Limit: 1000}, false},
		{"after=-1", Page{}, true},
		{"after=x", Page{}, true},
		{"limit=0", Page{}, true},
		{"limit=1001", Page{}, true},
	} {
		q, _ := url.ParseQuery(c.query)
		got, msg := ParsePage(q, 100, 1000)
		if (msg != "") != c.bad || !c.bad && got != c.want {
			t.Errorf("ParsePage(%q) = %+v, %q", c.query, got, msg)
		}
	}
}
