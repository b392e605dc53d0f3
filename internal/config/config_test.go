package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultValidates(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if got := c.KeyPath(); got != filepath.Join("cairn-data", "secret.key") {
		t.Errorf("KeyPath = %q", got)
	}
	if got := c.SQLitePath(); got != filepath.Join("cairn-data", "cairn.db") {
		t.Errorf("SQLitePath = %q", got)
	}
	if c.Journal.Retention.D() != 60*24*time.Hour {
		t.Errorf("retention %v, want the 60 days Blink users were promised", c.Journal.Retention)
	}
	if c.Journal.MaxBody < 16<<20 {
		t.Errorf("max_body %d: Blink sends every pending entry in one POST; want at least 16 MiB", c.Journal.MaxBody)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cairn.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `{
		"data_dir": "/var/lib/cairn",
		"db": "postgres://cairn@db/cairn",
		"sweep_interval": "30m",
		"http": {"listen": "", "nonce_lifetime": "90s"},
		"journal": {"retention": "30d", "max_entry": 2048}
	}`)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DataDir = "/var/lib/cairn"
	want.DB = "postgres://cairn@db/cairn"
	want.SweepInterval = Duration(30 * time.Minute)
	want.HTTP.Listen = ""
	want.HTTP.NonceLifetime = Duration(90 * time.Second)
	want.Journal.Retention = Duration(30 * 24 * time.Hour)
	want.Journal.MaxEntry = 2048
	if !reflect.DeepEqual(c, want) {
		t.Errorf("LoadFile:\n got %+v\nwant %+v", c, want)
	}
	if !c.IsPostgres() {
		t.Error("IsPostgres = false for a postgres:// URL")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{"unknown top-level key", `{"data_dir": "x", "listen": ":80"}`, []string{`"listen"`}},
		{"unknown nested key", `{"http": {"listen": ":80", "tls_cert": "c.pem"}}`, []string{`"tls_cert"`}},
		{"misspelt key", `{"journal": {"retension": "60d"}}`, []string{`"retension"`}},
		{"bad duration", `{"journal": {"retention": "60 days"}}`, []string{`"60 days"`}},
		{"duration as a number", `{"sweep_interval": 3600}`, []string{`"60d"`}},
		{"wrong type", `{"journal": {"max_body": "16MiB"}}`, []string{"max_body"}},
		{"not JSON", `data_dir = "x"`, []string{"invalid character"}},
		{"two objects", `{"data_dir": "a"} {"data_dir": "b"}`, []string{"trailing data"}},
		{"trailing garbage", `{"data_dir": "a"} x`, []string{"trailing data"}},
		{"trailing brace", `{"data_dir": "a"}}`, []string{"trailing data"}},
		{"trailing bracket", `{"data_dir": "a"}]`, []string{"trailing data"}},
		{"truncated", `{"data_dir": "a"`, []string{"EOF"}},
		{"empty", ``, []string{"EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.content)
			c := Default()
			err := c.LoadFile(path)
			if err == nil {
				t.Fatalf("LoadFile(%s) = nil, want an error", tt.content)
			}
			for _, w := range append(tt.want, "config:", path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadFile(%s) = %q, want it to mention %q", tt.content, err, w)
				}
			}
		})
	}
	c := Default()
	if err := c.LoadFile(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file = %v, want os.ErrNotExist", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := Default()
	c.DataDir = ""
	c.DB = "mysql://root@localhost/cairn"
	c.LogLevel = "verbose"
	c.SweepInterval = Duration(time.Millisecond)
	c.ShutdownTimeout = 0
	c.HTTP.Listen = "localhost"
	c.HTTP.TLSListen = ":99999"
	c.HTTP.CertFile = "cert.pem"
	c.HTTP.NonceLifetime = Duration(time.Second)
	c.Journal.Path = "settings.phtml"
	c.Journal.Retention = Duration(time.Minute)
	c.Journal.MaxBody = 100
	c.Journal.MaxEntry = 10
	c.Journal.DefaultRealm = ""
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate = nil")
	}
	want := []string{
		"data_dir must not be empty",
		`db "mysql://root@localhost/cairn"`,
		`log_level "verbose"`,
		"sweep_interval",
		"shutdown_timeout",
		`http.listen "localhost"`,
		`http.tls_listen ":99999": bad port`,
		"http.cert_file and http.key_file go together",
		"http.nonce_lifetime",
		`journal.path "settings.phtml"`,
		"journal.retention",
		"journal.max_body",
		"journal.max_entry",
		"journal.default_realm",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate error does not mention %q:\n%v", w, err)
		}
	}
	// errors.Join: one error per problem, each prefixed by the package.
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate error %T does not unwrap to a list", err)
	}
	if got := len(joined.Unwrap()); got != len(want) {
		t.Errorf("Validate reported %d problems, want %d:\n%v", got, len(want), err)
	}
	for _, e := range joined.Unwrap() {
		if !strings.HasPrefix(e.Error(), "config: ") {
			t.Errorf("problem %q is not prefixed config:", e)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string // "" for valid
	}{
		{"sqlite path", func(c *Config) { c.DB = "/var/lib/cairn/other.db" }, ""},
		{"postgresql scheme", func(c *Config) { c.DB = "postgresql://cairn@db/cairn?sslmode=disable" }, ""},
		{"only https", func(c *Config) { c.HTTP.Listen = "" }, ""},
		{"only http", func(c *Config) { c.HTTP.TLSListen = "" }, ""},
		{"ipv6 listen", func(c *Config) { c.HTTP.Listen = "[::1]:8080" }, ""},
		{"port 0", func(c *Config) { c.HTTP.Listen = "127.0.0.1:0" }, ""},
		{"cert and key", func(c *Config) { c.HTTP.CertFile, c.HTTP.KeyFile = "c.pem", "k.pem" }, ""},
		{"max_entry equals max_body", func(c *Config) { c.Journal.MaxEntry = int(c.Journal.MaxBody) }, ""},
		{"both listeners off", func(c *Config) { c.HTTP.Listen, c.HTTP.TLSListen = "", "" }, "both off"},
		{"key without cert", func(c *Config) { c.HTTP.KeyFile = "k.pem" }, "go together"},
		{"named port", func(c *Config) { c.HTTP.Listen = ":http" }, "bad port"},
		{"negative port", func(c *Config) { c.HTTP.Listen = ":-1" }, "bad port"},
		{"max_entry above max_body", func(c *Config) { c.Journal.MaxEntry = int(c.Journal.MaxBody) + 1 }, "journal.max_entry"},
		{"max_body above 1 GiB", func(c *Config) { c.Journal.MaxBody = 1<<30 + 1 }, "journal.max_body"},
		{"retention under an hour", func(c *Config) { c.Journal.Retention = Duration(59 * time.Minute) }, "journal.retention"},
		{"negative shutdown timeout", func(c *Config) { c.ShutdownTimeout = Duration(-time.Second) }, "shutdown_timeout"},
	}
	for _, tt := range tests {
		c := Default()
		tt.change(&c)
		err := c.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: Validate = %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: Validate = %v, want an error mentioning %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"CAIRN_DATA_DIR":          "/srv/cairn",
		"CAIRN_DB":                "postgres://cairn@db/cairn",
		"CAIRN_KEY_FILE":          "/etc/cairn/secret.key",
		"CAIRN_LOG_LEVEL":         "debug",
		"CAIRN_HTTP_LISTEN":       "",
		"CAIRN_HTTPS_LISTEN":      ":443",
		"CAIRN_TLS_CERT":          "/etc/cairn/cert.pem",
		"CAIRN_TLS_KEY":           "/etc/cairn/key.pem",
		"CAIRN_JOURNAL_PATH":      "/blink/settings.phtml",
		"CAIRN_JOURNAL_RETENTION": "90d",
		"CAIRN_UNKNOWN":           "ignored",
		"HOME":                    "/root",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c := Default()
	if err := c.LoadEnv(lookup); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DataDir = "/srv/cairn"
	want.DB = "postgres://cairn@db/cairn"
	want.KeyFile = "/etc/cairn/secret.key"
	want.LogLevel = "debug"
	want.HTTP.Listen = "" // set but empty: turns plain HTTP off
	want.HTTP.TLSListen = ":443"
	want.HTTP.CertFile = "/etc/cairn/cert.pem"
	want.HTTP.KeyFile = "/etc/cairn/key.pem"
	want.Journal.Path = "/blink/settings.phtml"
	want.Journal.Retention = Duration(90 * 24 * time.Hour)
	if !reflect.DeepEqual(c, want) {
		t.Errorf("LoadEnv:\n got %+v\nwant %+v", c, want)
	}
	if c.KeyPath() != "/etc/cairn/secret.key" {
		t.Errorf("KeyPath = %q", c.KeyPath())
	}

	// Unset variables change nothing.
	c = Default()
	if err := c.LoadEnv(func(string) (string, bool) { return "", false }); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("LoadEnv with nothing set changed the config or failed: %v", err)
	}

	// Env overrides the file.
	c = Default()
	if err := c.LoadFile(writeFile(t, `{"log_level": "warn", "data_dir": "/from/file"}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadEnv(func(k string) (string, bool) { return "error", k == "CAIRN_LOG_LEVEL" }); err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "error" || c.DataDir != "/from/file" {
		t.Errorf("after file then env: log_level %q, data_dir %q", c.LogLevel, c.DataDir)
	}
}

func TestLoadEnvBadValue(t *testing.T) {
	t.Parallel()
	c := Default()
	err := c.LoadEnv(func(k string) (string, bool) { return "sixty days", k == "CAIRN_JOURNAL_RETENTION" })
	if err == nil || !strings.Contains(err.Error(), "CAIRN_JOURNAL_RETENTION") || !strings.Contains(err.Error(), `"sixty days"`) {
		t.Errorf("LoadEnv = %v, want an error naming the variable and the value", err)
	}
	if c.Journal.Retention != Default().Journal.Retention {
		t.Errorf("a bad value changed retention to %v", c.Journal.Retention)
	}
}

func TestDurationSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "60d", want: 60 * 24 * time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "0d", want: 0},
		{in: "65535d", want: 65535 * 24 * time.Hour},
		{in: "90s", want: 90 * time.Second},
		{in: "36h", want: 36 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "-5m", want: -5 * time.Minute},
		{in: "0", want: 0},
		{in: "", wantErr: true},
		{in: "d", wantErr: true},
		{in: "60", wantErr: true},
		{in: "60 d", wantErr: true},
		{in: "-1d", wantErr: true},
		{in: "+1d", wantErr: true},
		{in: "1.5d", wantErr: true},
		{in: "1d12h", wantErr: true},
		{in: "65536d", wantErr: true},
		{in: "60days", wantErr: true},
		{in: "sixty", wantErr: true},
		{in: "9999999999h", wantErr: true},
	}
	for _, tt := range tests {
		var d Duration
		err := d.Set(tt.in)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("Set(%q) = %v, want an error", tt.in, d.D())
		case tt.wantErr && !strings.Contains(err.Error(), `"`+tt.in+`"`):
			t.Errorf("Set(%q): error %q does not quote the value", tt.in, err)
		case !tt.wantErr && err != nil:
			t.Errorf("Set(%q): %v", tt.in, err)
		case !tt.wantErr && d.D() != tt.want:
			t.Errorf("Set(%q) = %v, want %v", tt.in, d.D(), tt.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{60 * 24 * time.Hour, "60d"},
		{24 * time.Hour, "1d"},
		{36 * time.Hour, "36h0m0s"},
		{90 * time.Second, "1m30s"},
		{0, "0s"},
		{-24 * time.Hour, "-24h0m0s"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d).String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestDurationJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{60 * 24 * time.Hour, 90 * time.Second, 36 * time.Hour, 0, -time.Minute, time.Nanosecond, 65535 * 24 * time.Hour} {
		b, err := json.Marshal(Duration(d))
		if err != nil {
			t.Fatal(err)
		}
		var got Duration
		if err := json.Unmarshal(b, &got); err != nil || got.D() != d {
			t.Errorf("%v: marshalled %s, unmarshalled %v, %v", d, b, got.D(), err)
		}
	}
	// The whole config survives a round trip, durations written as strings.
	c := Default()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"retention":"60d"`) || !strings.Contains(string(b), `"sweep_interval":"1h0m0s"`) {
		t.Errorf("marshalled config: %s", b)
	}
	path := writeFile(t, string(b))
	var back Config
	if err := back.LoadFile(path); err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("round trip: %+v, %v; want %+v", back, err, c)
	}
	for _, bad := range []string{`60`, `null`, `"60 days"`, `["60d"]`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil && bad != "null" {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, d.D())
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := Default()
	c.DB = "postgres://cairn:s3cret@db.example.com/cairn?sslmode=require"
	got := c.Redacted()
	if strings.Contains(got.DB, "s3cret") || !strings.Contains(got.DB, "cairn:xxxxx@db.example.com") {
		t.Errorf("Redacted DB = %q", got.DB)
	}
	if c.DB != "postgres://cairn:s3cret@db.example.com/cairn?sslmode=require" {
		t.Error("Redacted changed the original")
	}
	c.DB = "postgres://cairn@db.example.com/cairn?password=s3cret&sslmode=require"
	if got := c.Redacted(); strings.Contains(got.DB, "s3cret") {
		t.Errorf("Redacted DB = %q", got.DB)
	}
	c.DB = "postgress://cairn:s3cret@db.example.com/cairn"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Validate of a mistyped URL = %v; want an error without the password", err)
	}
	c.DB = "/var/lib/cairn/cairn.db"
	if got := c.Redacted(); got.DB != c.DB {
		t.Errorf("Redacted changed a SQLite path: %q", got.DB)
	}
}

func TestJournalPathMustNotClash(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/healthz", "/metrics", "/{x}", "/a b", "settings.phtml"} {
		c := Default()
		c.Journal.Path = p
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "journal.path") {
			t.Errorf("journal.path %q: Validate = %v", p, err)
		}
	}
}
