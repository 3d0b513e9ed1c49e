// Command mailstead-imapbench puts IMAP load on a server on this machine
// (mailstead, Dovecot, any IMAP4rev1 server) and reports timings and the
// server's memory. It refuses non-loopback targets. See internal/imapload
// for what each mode measures.
//
// Examples:
//
//	mailstead-imapbench -mode big -addr 127.0.0.1:143 -user big@example.test -pass pw -messages 100000 -pid $PID
//	mailstead-imapbench -mode mixed -addr 127.0.0.1:143 -accounts 'mixed%d@example.test' -pass pw -clients 10 -duration 30s
//	mailstead-imapbench -mode idle -addr 127.0.0.1:143 -accounts 'idle%d@example.test' -pass pw -num-accounts 40 -sessions 2000 -smtp 127.0.0.1:25
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mailstead/mailstead/internal/imapload"
	"github.com/mailstead/mailstead/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns the exit status: 0 on success, 1 when the run failed or had
// errors, 2 for usage errors and refused targets.
func run(args []string) int {
	fs := flag.NewFlagSet("mailstead-imapbench", flag.ContinueOnError)
	var (
		mode      = fs.String("mode", "", "`big`, mixed or idle")
		addr      = fs.String("addr", "127.0.0.1:143", "IMAP server `host:port` (loopback only)")
		tlsMode   = fs.String("tls", "none", "none, starttls or implicit (certificates are not verified)")
		user      = fs.String("user", "", "account for -mode big")
		pass      = fs.String("pass", "", "password (of every account)")
		accounts  = fs.String("accounts", "", "account name `format` with %d for the number, for mixed and idle (e.g. 'load%d@example.test')")
		mailbox   = fs.String("mailbox", "INBOX", "mailbox for -mode big")
		messages  = fs.Int("messages", 0, "mailbox size to fill up to (big: default 100000; mixed: per account, default 1000)")
		batch     = fs.Int("batch", 100, "messages per APPEND when filling (MULTIAPPEND)")
		repeat    = fs.Int("repeat", 3, "runs of the timed big-mailbox commands")
		word      = fs.String("word", imapload.DefaultWord, "word for SEARCH TEXT (the corpus puts it in about 2% of messages)")
		seed      = fs.Uint64("seed", 1, "corpus seed")
		clients   = fs.Int("clients", 10, "sessions for -mode mixed")
		duration  = fs.Duration("duration", 30*time.Second, "length of the mixed run")
		sessions  = fs.Int("sessions", 2000, "sessions for -mode idle")
		numAccts  = fs.Int("num-accounts", 40, "accounts the idle sessions are spread over")
		delivs    = fs.Int("deliveries", 50, "deliveries timed in -mode idle (0: none)")
		smtpAddr  = fs.String("smtp", "", "SMTP `host:port` (or LMTP with -lmtp) to deliver to in -mode idle")
		lmtp      = fs.Bool("lmtp", false, "speak LMTP to -smtp (Dovecot)")
		pid       = fs.Int("pid", 0, "server process id: report its memory (with its child processes)")
		jsonOut   = fs.Bool("json", false, "print the result as one JSON line")
		jsonFile  = fs.String("json-file", "", "also write the result as JSON to this `file`")
		ioTimeout = fs.Duration("io-timeout", imapload.DefaultIOTimeout, "limit for connecting and for each command")
		timeout   = fs.Duration("timeout", 2*time.Hour, "limit for the whole run")
		verbose   = fs.Bool("v", false, "log progress to stderr")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mailstead-imapbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	tm, err := imapload.ParseTLSMode(*tlsMode)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mailstead-imapbench: %v\n", err)
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dialer := imapload.Dialer{Addr: *addr, TLS: tm, IOTimeout: *ioTimeout}
	accts := imapload.Accounts{Format: *accounts, Pass: *pass}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var res interface{ String() string }
	failed := false
	switch *mode {
	case "big":
		if *user == "" {
			fmt.Fprintln(os.Stderr, "mailstead-imapbench: -mode big needs -user")
			return 2
		}
		var r imapload.BigResult
		r, err = imapload.Big(ctx, imapload.BigConfig{
			Dialer: dialer, User: *user, Pass: *pass, Mailbox: *mailbox,
			Messages: *messages, Batch: *batch, Repeat: *repeat, PID: *pid, Logger: logger,
			Corpus: imapload.Corpus{Seed: *seed, Word: *word, To: *user},
		})
		res = r
	case "mixed":
		var r imapload.MixedResult
		r, err = imapload.Mixed(ctx, imapload.MixedConfig{
			Dialer: dialer, Accounts: accts, Clients: *clients, Messages: *messages,
			Duration: *duration, Seed: *seed, PID: *pid, Logger: logger,
		})
		res, failed = r, r.Errors > 0
	case "idle":
		if lim, err := imapload.RaiseFileLimit(); err != nil || lim < uint64(*sessions)+100 {
			fmt.Fprintf(os.Stderr, "mailstead-imapbench: open-file limit %d is too low for %d sessions (%v); raise it with ulimit -n\n", lim, *sessions, err)
			return 2
		}
		if *delivs > 0 && *smtpAddr == "" {
			fmt.Fprintln(os.Stderr, "mailstead-imapbench: -mode idle needs -smtp (or -deliveries 0)")
			return 2
		}
		var r imapload.IdleResult
		r, err = imapload.Idle(ctx, imapload.IdleConfig{
			Dialer: dialer, Accounts: accts, NumAccounts: *numAccts, Sessions: *sessions,
			Deliveries: *delivs, Deliver: imapload.Deliverer{Addr: *smtpAddr, LMTP: *lmtp},
			PID: *pid, Logger: logger,
		})
		res, failed = r, r.DeliverErrors > 0 || r.Missed > 0 || r.UnexpectedDisconnects > 0
	default:
		fmt.Fprintln(os.Stderr, "mailstead-imapbench: -mode must be big, mixed or idle")
		return 2
	}
	if errors.Is(err, loadgen.ErrNotLoopback) {
		fmt.Fprintf(os.Stderr, "mailstead-imapbench: %v\n", err)
		return 2
	}
	line, jerr := json.Marshal(res)
	if jerr != nil {
		fmt.Fprintf(os.Stderr, "mailstead-imapbench: %v\n", jerr)
		return 1
	}
	if *jsonFile != "" {
		if err := os.WriteFile(*jsonFile, append(line, '\n'), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "mailstead-imapbench: %v\n", err)
			return 1
		}
	}
	if *jsonOut {
		fmt.Println(string(line))
	} else {
		fmt.Print(res.String())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mailstead-imapbench: %v\n", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}
