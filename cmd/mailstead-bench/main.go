// Command mailstead-bench delivers generated messages to an SMTP server on
// this machine and reports throughput and latency. It refuses non-loopback
// targets. See internal/loadgen for what is measured.
//
// Example:
//
//	mailstead-bench -addr 127.0.0.1:25 -n 10000 -c 16 -size 4096 -to user@example.test -pid $(pidof mailstead)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mailstead/mailstead/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns the exit status: 0 when every message was accepted, 1 when
// some failed or the run was cut short, 2 for usage errors and refused
// targets.
func run(args []string) int {
	fs := flag.NewFlagSet("mailstead-bench", flag.ContinueOnError)
	var (
		addr      = fs.String("addr", "127.0.0.1:25", "SMTP server `host:port` (loopback only)")
		n         = fs.Int("n", 1000, "number of messages")
		c         = fs.Int("c", 1, "concurrent connections")
		size      = fs.Int("size", loadgen.DefaultSize, "message size in `bytes`, header included")
		from      = fs.String("from", "bench@localhost", "envelope sender")
		to        = fs.String("to", "bench@localhost", "recipient(s), comma separated; messages rotate over them")
		perConn   = fs.Int("per-conn", 0, "messages per connection before QUIT and reconnect (0: unlimited)")
		startTLS  = fs.Bool("starttls", false, "use STARTTLS (certificate not verified)")
		noPipe    = fs.Bool("no-pipelining", false, "send commands in lock-step even if the server offers PIPELINING")
		pid       = fs.Int("pid", 0, "server process id, to report its RSS before and after")
		jsonOut   = fs.Bool("json", false, "print the result as one JSON line")
		timeout   = fs.Duration("timeout", 10*time.Minute, "limit for the whole run")
		ioTimeout = fs.Duration("io-timeout", loadgen.DefaultIOTimeout, "limit for each network read, write or connect")
		helo      = fs.String("helo", loadgen.DefaultHelo, "EHLO name")
		runID     = fs.String("run-id", "", "tag for Subject and Message-ID (default random)")
		verbose   = fs.Bool("v", false, "log each failed message to stderr")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mailstead-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "mailstead-bench: -timeout must be positive")
		return 2
	}
	var rcpts []string
	for r := range strings.SplitSeq(*to, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rcpts = append(rcpts, r)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, loadgen.Config{
		Addr:         *addr,
		Messages:     *n,
		Concurrency:  *c,
		Size:         *size,
		From:         *from,
		To:           rcpts,
		PerConn:      *perConn,
		StartTLS:     *startTLS,
		NoPipelining: *noPipe,
		Helo:         *helo,
		RunID:        *runID,
		PID:          *pid,
		IOTimeout:    *ioTimeout,
		Timeout:      *timeout,
		Logger:       logger,
	})
	if err != nil && res.Requested == 0 {
		// Nothing was sent: bad configuration or a refused target.
		fmt.Fprintf(os.Stderr, "mailstead-bench: %v\n", err)
		return 2
	}
	if *jsonOut {
		line, jerr := json.Marshal(res)
		if jerr != nil {
			fmt.Fprintf(os.Stderr, "mailstead-bench: %v\n", jerr)
			return 1
		}
		fmt.Println(string(line))
	} else {
		fmt.Println(res)
	}
	keys := make([]string, 0, len(res.FirstErrors))
	for k := range res.FirstErrors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(os.Stderr, "first %s error: %s\n", k, res.FirstErrors[k])
	}
	if res.RSSError != "" {
		fmt.Fprintf(os.Stderr, "rss: %s\n", res.RSSError)
	}
	if err != nil {
		// The run was cut short (timeout or signal); the partial result
		// has been printed.
		fmt.Fprintf(os.Stderr, "mailstead-bench: %v\n", err)
	}
	if err != nil || res.Messages != res.Requested {
		return 1
	}
	return 0
}
