// Command cairn is the cairn server and its administration tool:
//
//	cairn serve                      run the server
//	cairn migrate up|status          apply or list schema migrations
//	cairn user add|passwd|del|list   manage SIP accounts
//	cairn purge                      remove rows past their retention now
//	cairn check-config               validate the configuration
//	cairn version                    print the version
//
// Every command takes -config FILE (JSON), -db and -data-dir; CAIRN_*
// environment variables override the file and flags override both.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"golang.org/x/term"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: cairn <command> [flags]

commands:
  serve                          run the server
  migrate up|status              apply or list schema migrations
  user add|passwd|del|list       manage SIP accounts
  purge                          remove rows past their retention now
  check-config                   validate the configuration and print it
  version                        print the version

Run "cairn <command> -h" for the flags of a command.
`

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr)
	case "migrate":
		err = migrate(ctx, args, stdout, stderr)
	case "user":
		err = user(ctx, args, stdin, stdout, stderr)
	case "purge":
		err = purge(ctx, args, stdout, stderr)
	case "check-config":
		err = checkConfig(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "cairn", versionString())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "cairn: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "cairn:", err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// common are the flags every command takes.
type common struct {
	configFile, db, dataDir, logLevel string
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet("cairn "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{}
	fs.StringVar(&c.configFile, "config", "", "JSON configuration `file`")
	fs.StringVar(&c.db, "db", "", "database: a SQLite file or a postgres:// URL (default: data-dir/cairn.db)")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory (default ./cairn-data)")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error")
	return fs, c
}

// load builds the configuration: defaults, file, environment, flags; then
// validates it, reporting every problem at once.
func (c *common) load(extra func(*config.Config)) (config.Config, error) {
	cfg := config.Default()
	if c.configFile != "" {
		if err := cfg.LoadFile(c.configFile); err != nil {
			return cfg, err
		}
	}
	if err := cfg.LoadEnv(os.LookupEnv); err != nil {
		return cfg, err
	}
	if c.db != "" {
		cfg.DB = c.db
	}
	if c.dataDir != "" {
		cfg.DataDir = c.dataDir
	}
	if c.logLevel != "" {
		cfg.LogLevel = c.logLevel
	}
	if extra != nil {
		extra(&cfg)
	}
	return cfg, cfg.Validate()
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs, c := newFlags("serve", stderr)
	httpAddr := fs.String("http", "", "HTTP listen address (default :8080; \"off\" turns it off)")
	httpsAddr := fs.String("https", "", "HTTPS listen address (default :8443; \"off\" turns it off)")
	sipAddrs := map[string]*string{}
	for _, l := range []struct{ name, def string }{{"udp", ":5060"}, {"tcp", ":5060"}, {"tls", ":5061"}, {"ws", ":5066"}, {"wss", ":7443"}} {
		sipAddrs[l.name] = fs.String("sip-"+l.name, "", "SIP over "+strings.ToUpper(l.name)+" listen address (default "+l.def+"; \"off\" turns it off)")
	}
	msrpAddrs := map[string]*string{}
	for _, l := range []struct{ name, def string }{{"tls", ":2855"}, {"tcp", "off"}, {"wss", ":2856"}} {
		msrpAddrs[l.name] = fs.String("msrp-"+l.name, "", "MSRP relay over "+strings.ToUpper(l.name)+" listen address (default "+l.def+"; \"off\" turns it off)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load(func(cfg *config.Config) {
		setAddr(&cfg.HTTP.Listen, *httpAddr)
		setAddr(&cfg.HTTP.TLSListen, *httpsAddr)
		setAddr(&cfg.SIP.UDP, *sipAddrs["udp"])
		setAddr(&cfg.SIP.TCP, *sipAddrs["tcp"])
		setAddr(&cfg.SIP.TLS, *sipAddrs["tls"])
		setAddr(&cfg.SIP.WS, *sipAddrs["ws"])
		setAddr(&cfg.SIP.WSS, *sipAddrs["wss"])
		setAddr(&cfg.MSRP.TLS, *msrpAddrs["tls"])
		setAddr(&cfg.MSRP.TCP, *msrpAddrs["tcp"])
		setAddr(&cfg.MSRP.WSS, *msrpAddrs["wss"])
	})
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	// sipgo logs some transport events through its package logger.
	sipmsg.SetDefaultLogger(log.With("component", "sipgo"))
	node, err := app.New(ctx, cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := node.Start(ctx); err != nil {
		node.Stop(context.Background())
		return err
	}
	log.Info("cairn ready", "version", versionString())
	<-ctx.Done()

	// The first signal drains; a second one during the drain cuts it short.
	log.Info("draining; send the signal again to stop at once", "timeout", cfg.ShutdownTimeout.D())
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			cancel()
		case <-drainCtx.Done():
		}
	}()
	return node.Stop(drainCtx)
}

// setAddr applies a listen-address flag: "" keeps the setting, "off" clears it.
func setAddr(dst *string, flagValue string) {
	switch flagValue {
	case "":
	case "off":
		*dst = ""
	default:
		*dst = flagValue
	}
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("migrate", stderr)
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		fmt.Fprintln(stderr, "usage: cairn migrate up|status [flags]")
		return errUsage
	}
	sub := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := c.load(nil)
	if err != nil {
		return err
	}
	// Opening with migrate set applies what is pending; either way a database
	// newer than this binary is refused.
	st, err := app.OpenStore(ctx, cfg, time.Now, sub == "up", newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer st.Close()
	ms, err := st.MigrateStatus(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		state := "pending"
		if !m.AppliedAt.IsZero() {
			state = "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%04d %-24s %s\n", m.Version, m.Name, state)
	}
	return nil
}

// openStore loads the configuration and opens the store for an admin
// command, applying pending migrations as serve does.
func openStore(ctx context.Context, c *common, stderr io.Writer) (config.Config, store.Store, error) {
	cfg, err := c.load(nil)
	if err != nil {
		return cfg, nil, err
	}
	st, err := app.OpenStore(ctx, cfg, time.Now, true, newLogger(cfg, stderr))
	return cfg, st, err
}

func purge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("purge", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, st, err := openStore(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	removed, err := app.Purge(ctx, cfg, st, time.Now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %d journal entries older than %s, %d expired offline messages, %d SIP traces older than %s, %d expired registrations\n",
		removed.Journal, cfg.Journal.Retention, removed.Offline, removed.Traces, cfg.Traces.Retention, removed.Registrations)
	return nil
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("check-config", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load(nil)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(cfg.Redacted())
}

func user(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const userUsage = `usage:
  cairn user add ADDRESS [-web] [-password-stdin]      add user@domain
  cairn user passwd ADDRESS [-sip] [-web] [-remove-web] [-password-stdin]
  cairn user del ADDRESS
  cairn user list

Passwords are read from the terminal, or with -password-stdin one per line
from standard input: the SIP password first, then the web password.
`
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs, c := newFlags("user "+sub, stderr)
	fs.Usage = func() { fmt.Fprint(stderr, userUsage); fs.PrintDefaults() }
	web := fs.Bool("web", false, "also set a web password")
	sip := fs.Bool("sip", false, "passwd: set the SIP password (the default unless -web or -remove-web)")
	removeWeb := fs.Bool("remove-web", false, "passwd: remove the web password")
	fromStdin := fs.Bool("password-stdin", false, "read passwords from standard input, one per line")
	// Flags may stand before or after the address.
	if err := fs.Parse(args); err != nil {
		return err
	}
	var address string
	if sub != "list" && fs.NArg() > 0 {
		address = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if (sub != "list" && address == "") || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	cfg, st, err := openStore(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer st.Close()

	read := passwordReader(stdin, stderr, *fromStdin)
	var p app.Passwords
	switch sub {
	case "list":
		accts, err := st.AccountList(ctx)
		if err != nil {
			return err
		}
		for _, a := range accts {
			fmt.Fprintf(stdout, "%s\tweb-password=%t\tcreated=%s\n", a.Address(), a.WebHash != "", a.CreatedAt.UTC().Format(time.RFC3339))
		}
		return nil
	case "del":
		if err := app.AccountDelete(ctx, st, address); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "deleted", address)
		return nil
	case "add":
		if p.SIP, err = read("SIP password"); err != nil {
			return err
		}
		if *web {
			if p.Web, err = read("web password"); err != nil {
				return err
			}
		}
	case "passwd":
		if *sip || (!*web && !*removeWeb) {
			if p.SIP, err = read("new SIP password"); err != nil {
				return err
			}
		}
		if *web {
			if p.Web, err = read("new web password"); err != nil {
				return err
			}
		}
		p.RemoveWeb = *removeWeb
	default:
		fs.Usage()
		return errUsage
	}
	keys, err := app.Keyring(ctx, cfg, st)
	if err != nil {
		return err
	}
	if sub == "add" {
		err = app.AccountAdd(ctx, st, keys, address, p)
	} else {
		err = app.AccountPasswd(ctx, st, keys, address, p)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok", address)
	return nil
}

// passwordReader returns a function that reads one password: a line of
// stdin, or from the terminal without echo, asked twice.
func passwordReader(stdin io.Reader, stderr io.Writer, fromStdin bool) func(what string) (string, error) {
	lines := bufio.NewScanner(stdin)
	return func(what string) (string, error) {
		if fromStdin {
			if !lines.Scan() {
				return "", fmt.Errorf("no %s on standard input", what)
			}
			return strings.TrimRight(lines.Text(), "\r"), nil
		}
		f, ok := stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", errors.New("standard input is not a terminal: use -password-stdin")
		}
		var answers [2]string
		for i, prompt := range []string{what, "again"} {
			fmt.Fprintf(stderr, "%s: ", prompt)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(stderr)
			if err != nil {
				return "", err
			}
			answers[i] = string(b)
		}
		if answers[0] != answers[1] {
			return "", errors.New("the passwords do not match")
		}
		return answers[0], nil
	}
}
