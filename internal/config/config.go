// Package config holds cairn's configuration: defaults, then a JSON file
// (unknown keys are errors), then CAIRN_* environment variables, then flags,
// and Validate, which reports every problem at once.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of a cairn node.
type Config struct {
	// DataDir holds the SQLite database, the sealing key and generated TLS
	// files unless their own settings point elsewhere.
	DataDir string `json:"data_dir"`
	// DB is "" for the embedded SQLite database in DataDir, a path to another
	// SQLite file, or a postgres:// URL.
	DB string `json:"db"`
	// KeyFile is the sealing key for account secrets; every node of a cluster
	// needs the same one. Default: DataDir/secret.key.
	KeyFile string `json:"key_file"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// SweepInterval is how often expired rows are purged.
	SweepInterval Duration `json:"sweep_interval"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout Duration `json:"shutdown_timeout"`

	HTTP    HTTP    `json:"http"`
	Journal Journal `json:"journal"`
}

// HTTP configures the HTTP and HTTPS listeners.
type HTTP struct {
	// Listen is the plain HTTP address; "" turns it off.
	Listen string `json:"listen"`
	// TLSListen is the HTTPS address; "" turns it off.
	TLSListen string `json:"tls_listen"`
	// CertFile and KeyFile are the TLS certificate and key (PEM). When both
	// are empty a self-signed pair is generated in DataDir/tls on first start.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// NonceLifetime is how long a Digest nonce stays valid.
	NonceLifetime Duration `json:"nonce_lifetime"`
}

// Journal configures the Blink chat-replication journal API.
type Journal struct {
	// Path is where the API is served; Blink is pre-configured with /settings.phtml.
	Path string `json:"path"`
	// Retention is how long entries are kept.
	Retention Duration `json:"retention"`
	// MaxBody bounds a request body, in bytes.
	MaxBody int64 `json:"max_body"`
	// MaxEntry bounds one entry's data, in bytes.
	MaxEntry int `json:"max_entry"`
	// DefaultRealm is the Digest realm when a request names none.
	DefaultRealm string `json:"default_realm"`
}

// Default returns the configuration `cairn serve` runs with when given nothing.
func Default() Config {
	return Config{
		DataDir:         "cairn-data",
		LogLevel:        "info",
		SweepInterval:   Duration(time.Hour),
		ShutdownTimeout: Duration(15 * time.Second),
		HTTP: HTTP{
			Listen:        ":8080",
			TLSListen:     ":8443",
			NonceLifetime: Duration(5 * time.Minute),
		},
		Journal: Journal{
			Path:         "/settings.phtml",
			Retention:    Duration(60 * 24 * time.Hour),
			MaxBody:      16 << 20,
			MaxEntry:     1 << 20,
			DefaultRealm: "SIP_settings",
		},
	}
}

// LoadFile overlays the JSON file at path on c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	// More misses a stray '}' or ']'; only the end of the input will do.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: trailing data after the JSON object", path)
	}
	return nil
}

// envVars maps each CAIRN_* environment variable to the setting it overrides.
func (c *Config) envVars() map[string]func(string) error {
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	return map[string]func(string) error{
		"CAIRN_DATA_DIR":          str(&c.DataDir),
		"CAIRN_DB":                str(&c.DB),
		"CAIRN_KEY_FILE":          str(&c.KeyFile),
		"CAIRN_LOG_LEVEL":         str(&c.LogLevel),
		"CAIRN_HTTP_LISTEN":       str(&c.HTTP.Listen),
		"CAIRN_HTTPS_LISTEN":      str(&c.HTTP.TLSListen),
		"CAIRN_TLS_CERT":          str(&c.HTTP.CertFile),
		"CAIRN_TLS_KEY":           str(&c.HTTP.KeyFile),
		"CAIRN_JOURNAL_PATH":      str(&c.Journal.Path),
		"CAIRN_JOURNAL_RETENTION": c.Journal.Retention.Set,
	}
}

// LoadEnv overlays the CAIRN_* variables found by lookup (os.LookupEnv).
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	var errs []error
	for name, set := range c.envVars() {
		if v, ok := lookup(name); ok {
			if err := set(v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Validate reports every problem in c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("config: "+format, args...)) }
	if c.DataDir == "" {
		bad("data_dir must not be empty")
	}
	if c.DB != "" && !c.IsPostgres() && strings.Contains(c.DB, "://") {
		bad("db %q: want a SQLite file path or a postgres:// URL", redactURL(c.DB))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.SweepInterval.D() < time.Second {
		bad("sweep_interval must be at least 1s")
	}
	if c.ShutdownTimeout.D() <= 0 {
		bad("shutdown_timeout must be positive")
	}
	for name, addr := range map[string]string{"http.listen": c.HTTP.Listen, "http.tls_listen": c.HTTP.TLSListen} {
		if addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: %v", name, addr, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad("%s %q: bad port", name, addr)
		}
	}
	if c.HTTP.Listen == "" && c.HTTP.TLSListen == "" {
		bad("http.listen and http.tls_listen are both off")
	}
	if (c.HTTP.CertFile == "") != (c.HTTP.KeyFile == "") {
		bad("http.cert_file and http.key_file go together")
	}
	if c.HTTP.NonceLifetime.D() < 10*time.Second {
		bad("http.nonce_lifetime must be at least 10s")
	}
	switch p := c.Journal.Path; {
	case !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "{}?# \t"):
		bad("journal.path %q must start with / and hold no {, }, ?, # or white space", p)
	case p == "/healthz" || p == "/metrics":
		bad("journal.path %q is taken by the server itself", p)
	}
	if c.Journal.Retention.D() < time.Hour {
		bad("journal.retention must be at least 1h")
	}
	if c.Journal.MaxBody < 1<<10 || c.Journal.MaxBody > 1<<30 {
		bad("journal.max_body must be between 1 KiB and 1 GiB")
	}
	if c.Journal.MaxEntry < 1<<10 || int64(c.Journal.MaxEntry) > c.Journal.MaxBody {
		bad("journal.max_entry must be between 1 KiB and journal.max_body")
	}
	if c.Journal.DefaultRealm == "" {
		bad("journal.default_realm must not be empty")
	}
	return errors.Join(errs...)
}

// Redacted returns c with any password in DB (a URL's user information or
// its password parameter) replaced by "xxxxx", for printing.
func (c Config) Redacted() Config {
	c.DB = redactURL(c.DB)
	return c
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// IsPostgres reports whether DB names a PostgreSQL database.
func (c *Config) IsPostgres() bool {
	return strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://")
}

// SQLitePath returns the SQLite database file to use when DB is not PostgreSQL.
func (c *Config) SQLitePath() string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(c.DataDir, "cairn.db")
}

// KeyPath returns the sealing key file.
func (c *Config) KeyPath() string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	return filepath.Join(c.DataDir, "secret.key")
}
