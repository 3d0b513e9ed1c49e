// Package cli is mailstead's command line: `serve`, `config check`, and the
// admin commands (domain, account, ...). Admin commands talk to a running
// server through its control socket, so its sessions see the change at
// once; with no server running they open the data directory themselves.
// Passwords are never taken on the command line.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/term"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/manage"
	"github.com/mailstead/mailstead/internal/server"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// Version is set at build time (-ldflags "-X ...cli.Version=v1").
var Version = "dev"

type globals struct {
	Config string `help:"Configuration file (mailstead.toml). Without one, the embedded default runs: data in ./data, loopback ports, self-signed TLS." env:"MAILSTEAD_CONFIG" type:"path"`
	Data   string `help:"Data directory (overrides data_dir)." env:"MAILSTEAD_DATA" type:"path"`
	JSON   bool   `help:"Print results as JSON."`

	stdin          io.Reader
	stdout, stderr io.Writer
}

type rootCmd struct {
	globals

	Serve   serveCmd   `cmd:"" help:"Run the mail server."`
	Config_ configCmd  `cmd:"" name:"config" help:"Configuration commands."`
	Domain  domainCmd  `cmd:"" help:"Manage local domains."`
	Account accountCmd `cmd:"" help:"Manage accounts."`
	Alias   aliasCmd   `cmd:"" help:"Manage aliases, catch-alls and generated aliases."`
	Message messageCmd `cmd:"" help:"Inspect stored messages."`
	Sieve   sieveCmd   `cmd:"" help:"Manage sieve filter scripts (per account and global)."`
	Queue   queueCmd   `cmd:"" help:"Inspect and manage the outbound queue."`
	DKIM    dkimCmd    `cmd:"" name:"dkim" help:"Manage DKIM signing keys."`
	DNS     dnsCmd     `cmd:"" name:"dns" help:"DNS records for mail domains."`
	Apply   applyCmd   `cmd:"" help:"Make domains, accounts, aliases and sieve scripts match a declarative file."`
	Version versionCmd `cmd:"" help:"Print the version."`
}

// Main runs the CLI and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var root rootCmd
	root.stdin, root.stdout, root.stderr = stdin, stdout, stderr
	exit := -1
	parser, err := kong.New(&root,
		kong.Name("mailstead"),
		kong.Description("mailstead: a self-hosted all-in-one mail server."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code }),
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintln(stderr, "mailstead:", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		return exit // --help
	}
	if err != nil {
		fmt.Fprintln(stderr, "mailstead:", err)
		return 2
	}
	if err := kctx.Run(&root.globals); err != nil {
		fmt.Fprintln(stderr, "mailstead:", err)
		return 1
	}
	return 0
}

// loadConfig returns the configuration: the file if given, else the
// embedded default; --data overrides the data directory.
func (g *globals) loadConfig() (*config.Config, error) {
	var cfg *config.Config
	if g.Config != "" {
		c, err := config.Load(g.Config)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		cfg = config.Default()
	}
	if g.Data != "" {
		cfg.DataDir = g.Data
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func (g *globals) logger(cfg *config.Config) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(cfg.SlogLevel())
	ho := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(g.stderr, ho)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(g.stderr, ho)
	}
	return slog.New(h), lv
}

type serveCmd struct {
	ReadyFile       string        `help:"Write the bound listener addresses as JSON to this file once serving." type:"path"`
	ShutdownTimeout time.Duration `help:"How long SIGTERM waits for sessions to finish." default:"30s"`
}

func (c *serveCmd) Run(g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	log, lv := g.logger(cfg)
	var reload func() (*config.Config, error)
	if g.Config != "" {
		reload = g.loadConfig
	}
	if g.Config == "" {
		log.Info("no --config given: running the embedded default (loopback ports, self-signed TLS)", "data", cfg.DataDir)
	}
	opts := server.Options{
		ReadyFile: c.ReadyFile, ShutdownTimeout: c.ShutdownTimeout, Reload: reload, Logger: log, LogLevel: lv,
	}
	if zone := os.Getenv(TestDNSZoneEnv); zone != "" {
		fake, err := loadTestZone(zone)
		if err != nil {
			return err
		}
		log.Warn("DNS answers come from a zone file, not the network: for tests only", "env", TestDNSZoneEnv, "file", zone)
		opts.Resolver = fake
	}
	return server.Run(context.Background(), cfg, opts)
}

// TestDNSZoneEnv names a zone file (dnsresolver.Fake.LoadZone's format)
// whose records answer every DNS question of `serve` instead of the
// network. The end-to-end tests set it so that they never depend on the
// machine's resolver (a slow lookup would turn into a 451); it has no use
// in production and is logged loudly when set.
const TestDNSZoneEnv = "MAILSTEAD_TEST_DNS_ZONE"

func loadTestZone(path string) (*dnsresolver.Fake, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TestDNSZoneEnv, err)
	}
	defer f.Close()
	fake := dnsresolver.NewFake()
	if err := fake.LoadZone(f); err != nil {
		return nil, fmt.Errorf("%s %s: %w", TestDNSZoneEnv, path, err)
	}
	return fake, nil
}

type configCmd struct {
	Check configCheckCmd `cmd:"" help:"Validate the configuration and print the effective settings."`
}

type configCheckCmd struct{}

func (c *configCheckCmd) Run(g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(g.stderr, "warning:", w)
	}
	src := "embedded default"
	if g.Config != "" {
		src = g.Config
	}
	fmt.Fprintf(g.stdout, "# configuration OK (%s); effective settings:\n%s", src, cfg.Effective())
	return nil
}

type versionCmd struct{}

func (c *versionCmd) Run(g *globals) error {
	fmt.Fprintln(g.stdout, "mailstead", Version)
	return nil
}

// invoker returns a way to run admin operations: through the running
// server's control socket, or on the data directory opened here.
func (g *globals) invoker() (control.Invoker, func(), error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	if r, ok := control.Dial(cfg.DataDir); ok {
		return r, func() {}, nil
	}
	lock, err := server.LockDataDir(cfg.DataDir)
	if err != nil {
		if errors.Is(err, server.ErrLocked) {
			return nil, nil, fmt.Errorf("%w; its control socket did not answer", err)
		}
		return nil, nil, err
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(cfg.DataDir, "store"), sqlitestore.Options{})
	if err != nil {
		lock.Release()
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	reg := control.NewRegistry()
	(&manage.Ops{St: st, DefaultQuota: int64(cfg.Accounts.DefaultQuota)}).Register(reg)
	registerOutbound(reg, cfg, st)
	return control.Local{R: reg}, func() { st.Close(); lock.Release() }, nil
}

func (g *globals) run(op string, args, result any) error {
	inv, done, err := g.invoker()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return inv.Invoke(ctx, op, args, result)
}

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (g *globals) table(header string, rows [][]string) {
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// passwordSource is shared by account add and passwd.
type passwordSource struct {
	PasswordStdin bool   `help:"Read the password from standard input (first line)."`
	Generate      bool   `help:"Generate a random password and print it."`
	Hash          string `help:"Store this pre-hashed password, e.g. {SHA512-CRYPT}$6$... from docker-mailserver's postfix-accounts.cf."`
}

func (p *passwordSource) hash(g *globals) (string, error) {
	n := 0
	for _, b := range []bool{p.PasswordStdin, p.Generate, p.Hash != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return "", errors.New("choose one of --password-stdin, --generate and --hash")
	}
	switch {
	case p.Hash != "":
		return account.NormalizeHash(p.Hash)
	case p.Generate:
		pw := generatePassword()
		fmt.Fprintf(g.stdout, "password: %s\n", pw)
		return account.HashPassword(pw)
	case p.PasswordStdin:
		line, err := readLine(g.stdin)
		if err != nil {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return account.HashPassword(line)
	}
	f, ok := g.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no terminal to prompt for a password: use --password-stdin, --generate or --hash")
	}
	fmt.Fprint(g.stderr, "Password: ")
	pw1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(g.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(g.stderr, "Again: ")
	pw2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(g.stderr)
	if err != nil {
		return "", err
	}
	if string(pw1) != string(pw2) {
		return "", errors.New("passwords differ")
	}
	return account.HashPassword(string(pw1))
}

func readLine(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, account.MaxPasswordLen+2))
	if err != nil {
		return "", err
	}
	s := string(b)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "", errors.New("empty password")
	}
	if len(s) > account.MaxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", account.MaxPasswordLen)
	}
	return s, nil
}

// generatePassword makes a 20-character password (~119 bits) without
// look-alike characters.
func generatePassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	var b strings.Builder
	for i := 0; i < 20; i++ {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b.WriteByte(alphabet[n.Int64()])
	}
	return b.String()
}
