package imapload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// BigConfig describes the big-mailbox run.
type BigConfig struct {
	Dialer     Dialer
	User, Pass string
	Mailbox    string // default "INBOX"
	// Messages is the mailbox size: it is filled up to this many messages
	// from Corpus (indices continue from what is there, so an interrupted
	// fill resumes). Default 100,000.
	Messages int
	// Batch is the number of messages per APPEND (MULTIAPPEND when the
	// server offers it). Default 100.
	Batch  int
	Corpus Corpus
	// Repeat is how often the timed command sequence runs, each time on a
	// new connection. Default 3.
	Repeat int
	// PID, if set, is the server process whose memory (with its
	// descendants) is reported.
	PID    int
	Logger *slog.Logger
}

// Timing is one timed command of the big-mailbox sequence.
type Timing struct {
	Op    string
	First time.Duration // first run (after the fill: caches may be cold)
	Best  time.Duration // fastest run
	Count int           // responses (FETCH), hits (SEARCH) or EXISTS (SELECT)
	Bytes int64         // literal bytes received
}

// BigResult is the outcome of a big-mailbox run.
type BigResult struct {
	Messages     int           // in the mailbox after the fill
	Appended     int           // by this run
	AppendTime   time.Duration // time the fill took
	Ops          []Timing
	WantUnseen   int // what UID SEARCH UNSEEN should find if the mailbox holds exactly Corpus messages 0..Messages-1
	WantWord     int // likewise for SEARCH TEXT
	MemFilled    Memory
	MemAfter     Memory
	MemError     string
	Repeat       int
	SearchedWord string
}

// Big fills the mailbox and times SELECT, UID FETCH 1:* (FLAGS),
// UID SEARCH UNSEEN, SEARCH TEXT and FETCH 1:100 BODY.PEEK[].
func Big(ctx context.Context, cfg BigConfig) (BigResult, error) {
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.Messages <= 0 {
		cfg.Messages = 100_000
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := checkAddr(ctx, &cfg.Dialer.Addr); err != nil {
		return BigResult{}, err
	}
	res := BigResult{Repeat: cfg.Repeat, SearchedWord: cfg.Corpus.word()}
	mem := memoryProbe{pid: cfg.PID}

	c, err := cfg.Dialer.DialLogin(ctx, cfg.User, cfg.Pass)
	if err != nil {
		return res, fmt.Errorf("login: %w", err)
	}
	have, err := mailboxSize(c, cfg.Mailbox)
	if err != nil {
		c.Close()
		return res, err
	}
	start := time.Now()
	if have < cfg.Messages {
		cfg.Logger.Info("filling mailbox", "mailbox", cfg.Mailbox, "have", have, "want", cfg.Messages)
		n, err := fill(ctx, c, cfg.Mailbox, &cfg.Corpus, have, cfg.Messages, cfg.Batch, cfg.Logger)
		res.Appended = n
		if err != nil {
			c.Close()
			return res, fmt.Errorf("filling %s: %w", cfg.Mailbox, err)
		}
	}
	res.AppendTime = time.Since(start)
	c.Logout()
	res.MemFilled = mem.read()

	for i := range cfg.Messages {
		g := cfg.Corpus.Message(i)
		if !g.Seen {
			res.WantUnseen++
		}
		if g.HasWord {
			res.WantWord++
		}
	}

	ops := []struct {
		name, cmd string
	}{
		{"SELECT", "SELECT " + Quote(cfg.Mailbox)},
		{"UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)"},
		{"UID SEARCH UNSEEN", "UID SEARCH UNSEEN"},
		{"SEARCH TEXT " + res.SearchedWord, "SEARCH TEXT " + Quote(res.SearchedWord)},
		{"FETCH 1:100 BODY.PEEK[]", "FETCH 1:100 BODY.PEEK[]"},
	}
	res.Ops = make([]Timing, len(ops))
	for rep := range cfg.Repeat {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		c, err := cfg.Dialer.DialLogin(ctx, cfg.User, cfg.Pass)
		if err != nil {
			return res, fmt.Errorf("login: %w", err)
		}
		for i, op := range ops {
			var count int
			var bytes int64
			t0 := time.Now()
			_, err := c.Do(op.cmd, func(r *Response) error {
				kind, n := r.Kind()
				switch kind {
				case "EXISTS":
					count = int(n)
				case "FETCH":
					count++
					for _, l := range r.Literals {
						bytes += int64(len(l))
					}
				case "SEARCH", "ESEARCH":
					count += r.Numbers()
				}
				return nil
			})
			d := time.Since(t0)
			if err != nil {
				c.Close()
				return res, fmt.Errorf("%s: %w", op.name, err)
			}
			t := &res.Ops[i]
			t.Op, t.Count, t.Bytes = op.name, count, bytes
			if rep == 0 {
				t.First, t.Best = d, d
			} else {
				t.Best = min(t.Best, d)
			}
			if i == 0 {
				res.Messages = count
			}
		}
		c.Logout()
	}
	res.MemAfter = mem.read()
	res.MemError = mem.err
	return res, nil
}

// mailboxSize returns STATUS (MESSAGES) of mailbox.
func mailboxSize(c *Conn, mailbox string) (int, error) {
	n := -1
	_, err := c.Do("STATUS "+Quote(mailbox)+" (MESSAGES)", func(r *Response) error {
		if k, _ := r.Kind(); k == "STATUS" {
			s := string(r.Text)
			if i := strings.Index(strings.ToUpper(s), "(MESSAGES "); i >= 0 {
				v, err := strconv.Atoi(strings.TrimRight(s[i+len("(MESSAGES "):], ")"))
				if err == nil {
					n = v
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("STATUS %s: %w", mailbox, err)
	}
	if n < 0 {
		return 0, errors.New("STATUS: no MESSAGES in the response")
	}
	return n, nil
}

// fill appends corpus messages from..to-1 in batches; it returns how many
// it appended.
func fill(ctx context.Context, c *Conn, mailbox string, corpus *Corpus, from, to, batch int, log *slog.Logger) (int, error) {
	if !c.Has("MULTIAPPEND") {
		batch = 1
	}
	done := 0
	last := time.Now()
	for i := from; i < to; i += batch {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		msgs := make([]Message, 0, batch)
		for j := i; j < min(i+batch, to); j++ {
			g := corpus.Message(j)
			m := Message{Data: g.Data, Date: g.Date}
			if g.Seen {
				m.Flags = []string{`\Seen`}
			}
			msgs = append(msgs, m)
		}
		if _, err := c.Append(mailbox, msgs...); err != nil {
			return done, err
		}
		done += len(msgs)
		if time.Since(last) > 10*time.Second {
			log.Info("filling", "mailbox", mailbox, "appended", done, "of", to-from)
			last = time.Now()
		}
	}
	return done, nil
}

// String formats the result for people.
func (r BigResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "big mailbox: %d messages", r.Messages)
	if r.Appended > 0 {
		fmt.Fprintf(&b, " (appended %d in %s, %.0f msg/s)", r.Appended, r.AppendTime.Round(time.Millisecond), float64(r.Appended)/r.AppendTime.Seconds())
	}
	fmt.Fprintf(&b, "; %d runs\n", r.Repeat)
	for _, t := range r.Ops {
		fmt.Fprintf(&b, "  %-26s first %9s  best %9s  count %d", t.Op, fmtMS(t.First), fmtMS(t.Best), t.Count)
		if t.Bytes > 0 {
			fmt.Fprintf(&b, "  bytes %d", t.Bytes)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "  expected: UNSEEN %d, TEXT %q %d (if the mailbox holds exactly this corpus)\n", r.WantUnseen, r.SearchedWord, r.WantWord)
	if r.MemAfter.Procs > 0 {
		fmt.Fprintf(&b, "  server memory after fill: %s; after the commands: %s\n", r.MemFilled, r.MemAfter)
	}
	if r.MemError != "" {
		fmt.Fprintf(&b, "  memory: %s\n", r.MemError)
	}
	return b.String()
}

func (m Memory) String() string {
	return fmt.Sprintf("RSS %.1f MiB, PSS %.1f MiB (%d processes)", mib(m.RSS), mib(m.PSS), m.Procs)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func fmtMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}
