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
	"net/netip"
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
	SIP     SIP     `json:"sip"`
	Offline Offline `json:"offline"`
	Traces  Traces  `json:"traces"`
	MSRP    MSRP    `json:"msrp"`
	History History `json:"history"`
}

// History configures the message history today's Blink syncs from
// (SylkServer's API).
type History struct {
	// Retention is how long a history row is kept.
	Retention Duration `json:"retention"`
	// TokenLifetime is how long an API token works.
	TokenLifetime Duration `json:"token_lifetime"`
	// MaxTokens is how many tokens an account keeps (one per device).
	MaxTokens int `json:"max_tokens"`
	// URL is the HTTPS base devices reach the API at, e.g.
	// "https://cairn.example.com:8443"; the token reply points there.
	// Default: https:// the host name and the port of http.tls_listen.
	URL string `json:"url"`
	// PageLimit is the most rows one history answer holds (at most 5000).
	PageLimit int `json:"page_limit"`
}

// MSRP configures the MSRP relay (RFC 4975, RFC 4976). Each listener is an
// address; "" turns it off. TLS and WSS use the certificate of the http
// section.
type MSRP struct {
	TLS string `json:"tls"`
	// TCP is an unencrypted listener, for tests only: the data policy wants
	// chat and files over TLS.
	TCP string `json:"tcp"`
	// WSS is MSRP over secure WebSocket (RFC 7977), for browsers.
	WSS string `json:"wss"`
	// Host is the relay's host in the Use-Path URIs it hands out; it must
	// be a name or address clients and other relays reach it by, and a name
	// of its certificate. Default: the machine's host name.
	Host string `json:"host"`
	// Realm is the AUTH realm; "" takes the host of the AUTH's To-Path,
	// the domain the client looked the relay up for.
	Realm string `json:"realm"`
	// MinExpires, DefaultExpires and MaxExpires bound the session lifetime
	// an AUTH asks for (423 outside); a session that relayed nothing by
	// then ends.
	MinExpires     Duration `json:"min_expires"`
	DefaultExpires Duration `json:"default_expires"`
	MaxExpires     Duration `json:"max_expires"`
	// IdleTimeout ends a session that relayed nothing either way for so long.
	IdleTimeout Duration `json:"idle_timeout"`
	// TransactionTimeout is how long a forwarded chunk waits for its
	// response before its sender gets a 408 REPORT.
	TransactionTimeout Duration `json:"transaction_timeout"`
	// MaxChunk bounds one SEND chunk, MaxSessionBytes what one session
	// relays both ways, in bytes (413 past either).
	MaxChunk        int64 `json:"max_chunk"`
	MaxSessionBytes int64 `json:"max_session_bytes"`
	// MaxSessions bounds the sessions alive at once.
	MaxSessions int `json:"max_sessions"`
	// MaxAuthFailures failed AUTHs from one IP address within a minute
	// refuse it every AUTH for the rest of the minute.
	MaxAuthFailures int `json:"max_auth_failures"`
	// PeerCA is a PEM file of certificate authorities trusted, besides the
	// system's, for msrps next hops (other relays, endpoints without one).
	PeerCA string `json:"peer_ca"`
	// DialTCP allows unencrypted msrp:// next hops.
	DialTCP bool `json:"dial_tcp"`
	// DialPrivate allows next hops on loopback, private and link-local
	// addresses.
	DialPrivate bool `json:"dial_private"`
	// Retention is how long session records are kept.
	Retention Duration `json:"retention"`
}

// SIP configures the SIP listeners and routing. Each listener is an address;
// "" turns it off. TLS and WSS use the certificate of the http section.
type SIP struct {
	UDP string `json:"udp"`
	TCP string `json:"tcp"`
	TLS string `json:"tls"`
	WS  string `json:"ws"`
	WSS string `json:"wss"`
	// Domains are served here besides those of the accounts in the store.
	Domains []string `json:"domains"`
	// Trusted are peers (IP addresses or CIDR prefixes) whose requests need
	// no authentication and may come from senders of other domains.
	Trusted []string `json:"trusted"`
	// DigestAlgorithms are the Digest challenges offered, in order: "MD5",
	// "SHA-256" (RFC 8760). Answers with either are accepted whatever is
	// offered. The default offers MD5 only: SIPp reads every challenge as
	// one and fails on two, JsSIP keeps the last one and does only MD5.
	DigestAlgorithms []string `json:"digest_algorithms"`
	// MaxRegisterExpires bounds the lifetime a REGISTER may ask for.
	MaxRegisterExpires Duration `json:"max_register_expires"`
	// MinRegisterExpires is the shortest lifetime accepted (423 below it).
	MinRegisterExpires Duration `json:"min_register_expires"`
	// Timeout bounds one MESSAGE transaction to a device.
	Timeout Duration `json:"timeout"`
}

// Offline configures SIP MESSAGE store-and-forward.
type Offline struct {
	// Retention is how long an undelivered message is kept (a MESSAGE
	// Expires header may shorten it).
	Retention Duration `json:"retention"`
	// MaxMessageSize bounds one message body, in bytes (413 past it).
	MaxMessageSize int `json:"max_message_size"`
	// MaxMessages and MaxBytes bound one user's backlog: the stored
	// messages no device has taken yet (0: no bound).
	MaxMessages int   `json:"max_messages"`
	MaxBytes    int64 `json:"max_bytes"`
	// StoredStatus answers a stored MESSAGE: 200 (the default, since Blink
	// Qt treats 202 as a failure) or 202.
	StoredStatus int `json:"stored_status"`
	// RetryMin and RetryMax bound the backoff between attempts on a
	// device that failed; a REGISTER of the device retries at once.
	RetryMin Duration `json:"retry_min"`
	RetryMax Duration `json:"retry_max"`
}

// Traces configures the SIP signaling traces.
type Traces struct {
	// Retention is how long a trace is kept.
	Retention Duration `json:"retention"`
	// Operators are the accounts (user@domain) that may read every trace;
	// any other account reads only its own.
	Operators []string `json:"operators"`
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
		SIP: SIP{
			UDP:                ":5060",
			TCP:                ":5060",
			TLS:                ":5061",
			WS:                 ":5066",
			WSS:                ":7443",
			DigestAlgorithms:   []string{"MD5"},
			MaxRegisterExpires: Duration(time.Hour),
			MinRegisterExpires: Duration(60 * time.Second),
			Timeout:            Duration(5 * time.Second),
		},
		Offline: Offline{
			Retention:      Duration(30 * 24 * time.Hour),
			MaxMessageSize: 64 << 10,
			MaxMessages:    1000,
			MaxBytes:       16 << 20,
			StoredStatus:   200,
			RetryMin:       Duration(30 * time.Second),
			RetryMax:       Duration(time.Hour),
		},
		Traces: Traces{Retention: Duration(30 * 24 * time.Hour)},
		MSRP: MSRP{
			TLS:                ":2855",
			WSS:                ":2856",
			MinExpires:         Duration(60 * time.Second),
			DefaultExpires:     Duration(600 * time.Second),
			MaxExpires:         Duration(3600 * time.Second),
			IdleTimeout:        Duration(time.Hour),
			TransactionTimeout: Duration(30 * time.Second),
			MaxChunk:           16 << 20,
			MaxSessionBytes:    4 << 30,
			MaxSessions:        100000,
			MaxAuthFailures:    10,
			Retention:          Duration(180 * 24 * time.Hour),
		},
		History: History{
			Retention:     Duration(60 * 24 * time.Hour),
			TokenLifetime: Duration(30 * 24 * time.Hour),
			MaxTokens:     16,
			PageLimit:     5000,
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
	list := func(p *[]string) func(string) error {
		return func(v string) error {
			*p = nil
			for item := range strings.SplitSeq(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					*p = append(*p, item)
				}
			}
			return nil
		}
	}
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
		"CAIRN_SIP_UDP":           str(&c.SIP.UDP),
		"CAIRN_SIP_TCP":           str(&c.SIP.TCP),
		"CAIRN_SIP_TLS":           str(&c.SIP.TLS),
		"CAIRN_SIP_WS":            str(&c.SIP.WS),
		"CAIRN_SIP_WSS":           str(&c.SIP.WSS),
		"CAIRN_SIP_DOMAINS":       list(&c.SIP.Domains),
		"CAIRN_SIP_TRUSTED":       list(&c.SIP.Trusted),
		"CAIRN_OFFLINE_RETENTION": c.Offline.Retention.Set,
		"CAIRN_TRACES_RETENTION":  c.Traces.Retention.Set,
		"CAIRN_MSRP_TLS":          str(&c.MSRP.TLS),
		"CAIRN_MSRP_TCP":          str(&c.MSRP.TCP),
		"CAIRN_MSRP_WSS":          str(&c.MSRP.WSS),
		"CAIRN_MSRP_HOST":         str(&c.MSRP.Host),
		"CAIRN_MSRP_REALM":        str(&c.MSRP.Realm),
		"CAIRN_HISTORY_RETENTION": c.History.Retention.Set,
		"CAIRN_HISTORY_URL":       str(&c.History.URL),
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
	for name, addr := range map[string]string{
		"http.listen": c.HTTP.Listen, "http.tls_listen": c.HTTP.TLSListen,
		"sip.udp": c.SIP.UDP, "sip.tcp": c.SIP.TCP, "sip.tls": c.SIP.TLS, "sip.ws": c.SIP.WS, "sip.wss": c.SIP.WSS,
		"msrp.tls": c.MSRP.TLS, "msrp.tcp": c.MSRP.TCP, "msrp.wss": c.MSRP.WSS,
	} {
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
	c.validateSIP(bad)
	c.validateMSRP(bad)
	h := c.History
	if h.Retention.D() < time.Hour || h.TokenLifetime.D() < time.Minute {
		bad("history.retention must be at least 1h and history.token_lifetime at least 1m")
	}
	if h.MaxTokens < 1 || h.MaxTokens > 1000 || h.PageLimit < 1 || h.PageLimit > 5000 {
		bad("history.max_tokens must be between 1 and 1000, history.page_limit between 1 and 5000")
	}
	if h.URL != "" {
		if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			bad("history.url %q: want https://host[:port][/path]", h.URL)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validateMSRP(bad func(string, ...any)) {
	m := c.MSRP
	if m.Host != "" && (strings.ContainsAny(m.Host, "@/;: \t") && net.ParseIP(m.Host) == nil) {
		bad("msrp.host %q is not a host name or IP address", m.Host)
	}
	if m.MinExpires.D() < time.Second || m.DefaultExpires.D() < m.MinExpires.D() || m.MaxExpires.D() < m.DefaultExpires.D() {
		bad("msrp expiries must satisfy 1s <= min_expires <= default_expires <= max_expires")
	}
	if m.IdleTimeout.D() < time.Second {
		bad("msrp.idle_timeout must be at least 1s")
	}
	if m.TransactionTimeout.D() < time.Second || m.TransactionTimeout.D() > 5*time.Minute {
		bad("msrp.transaction_timeout must be between 1s and 5m")
	}
	if m.MaxChunk < 1<<10 || m.MaxSessionBytes < m.MaxChunk {
		bad("msrp.max_chunk must be at least 1 KiB and at most msrp.max_session_bytes")
	}
	if m.MaxSessions < 1 || m.MaxAuthFailures < 1 {
		bad("msrp.max_sessions and msrp.max_auth_failures must be positive")
	}
	if m.Retention.D() < time.Hour {
		bad("msrp.retention must be at least 1h")
	}
}

func (c *Config) validateSIP(bad func(string, ...any)) {
	for _, d := range c.SIP.Domains {
		if d == "" || strings.ContainsAny(d, "@:/ \t") {
			bad("sip.domains: %q is not a domain", d)
		}
	}
	for _, t := range c.SIP.Trusted {
		if _, err := netip.ParsePrefix(t); err != nil {
			if _, err := netip.ParseAddr(t); err != nil {
				bad("sip.trusted: %q is neither an IP address nor a CIDR prefix", t)
			}
		}
	}
	if len(c.SIP.DigestAlgorithms) == 0 {
		bad("sip.digest_algorithms must name MD5, SHA-256 or both")
	}
	for _, a := range c.SIP.DigestAlgorithms {
		if a != "MD5" && a != "SHA-256" {
			bad("sip.digest_algorithms: %q: want MD5 or SHA-256", a)
		}
	}
	if c.SIP.MinRegisterExpires.D() < time.Second || c.SIP.MaxRegisterExpires.D() < c.SIP.MinRegisterExpires.D() {
		bad("sip.min_register_expires must be at least 1s and at most sip.max_register_expires")
	}
	if c.SIP.Timeout.D() < time.Second || c.SIP.Timeout.D() > time.Minute {
		bad("sip.timeout must be between 1s and 1m")
	}
	if c.Offline.Retention.D() < time.Minute {
		bad("offline.retention must be at least 1m")
	}
	if c.Offline.MaxMessageSize < 1<<10 || c.Offline.MaxMessageSize > 16<<20 {
		bad("offline.max_message_size must be between 1 KiB and 16 MiB")
	}
	if c.Offline.MaxMessages < 0 || c.Offline.MaxBytes < 0 {
		bad("offline.max_messages and offline.max_bytes must not be negative")
	}
	if c.Offline.RetryMin.D() < 100*time.Millisecond || c.Offline.RetryMax.D() < c.Offline.RetryMin.D() {
		bad("offline.retry_min must be at least 100ms and at most offline.retry_max")
	}
	if c.Offline.StoredStatus != 200 && c.Offline.StoredStatus != 202 {
		bad("offline.stored_status must be 200 or 202")
	}
	for _, o := range c.Traces.Operators {
		if i := strings.LastIndexByte(o, '@'); i <= 0 || i == len(o)-1 {
			bad("traces.operators: %q is not user@domain", o)
		}
	}
	if c.Traces.Retention.D() < time.Hour {
		bad("traces.retention must be at least 1h")
	}
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
