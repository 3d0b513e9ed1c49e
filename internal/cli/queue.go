package cli

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/manage"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/server"
	"github.com/mailstead/mailstead/internal/store"
)

// registerOutbound adds the queue operations for a CLI that opened the
// data directory itself (no server running): bounces are delivered
// locally or queued for the next server start.
func registerOutbound(reg *control.Registry, cfg *config.Config, st store.Store) {
	deliv := delivery.New(st, delivery.Options{
		SubaddressDelimiter: cfg.Accounts.SubaddressDelimiter,
		Postmaster:          cfg.Accounts.Postmaster,
		MaxReceived:         cfg.Limits.MaxReceivedHeaders,
		TmpDir:              filepath.Join(cfg.DataDir, "tmp"),
		Logger:              slog.New(slog.DiscardHandler),
	})
	sub := server.NewSubmitter(server.DKIMKeys(cfg), deliv, slog.New(slog.DiscardHandler))
	(&manage.QueueOps{St: st, Bounce: server.BounceFunc(cfg, st, sub)}).Register(reg)
}

type queueCmd struct {
	List    queueListCmd    `cmd:"" help:"List queued messages."`
	Show    queueShowCmd    `cmd:"" help:"Show queued messages with each recipient's status."`
	Retry   queueRetryCmd   `cmd:"" help:"Try queued messages again now."`
	Hold    queueHoldCmd    `cmd:"" help:"Keep queued messages from being delivered."`
	Release queueReleaseCmd `cmd:"" help:"Release held messages and try them now."`
	Delete  queueDeleteCmd  `cmd:"" help:"Remove queued messages without telling the sender."`
	Bounce  queueBounceCmd  `cmd:"" help:"Return queued messages to their sender with a DSN."`
	TLS     queueTLSCmd     `cmd:"" name:"tls" help:"Show per-domain TLS results of outbound delivery (what RFC 8460 reports carry)."`
}

type queueSel struct {
	IDs []int64 `arg:"" optional:"" name:"id" help:"Queue IDs (see queue list)."`
	All bool    `help:"Every queued message."`
}

func (q queueSel) args() manage.QueueArgs { return manage.QueueArgs{IDs: q.IDs, All: q.All} }

type queueListCmd struct{}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + shortDur(-d)
	}
	return shortDur(d) + " ago"
}

func shortDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func (c *queueListCmd) Run(g *globals) error {
	var es []manage.QueueInfo
	if err := g.run("queue.list", struct{}{}, &es); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(es)
	}
	var rows [][]string
	for _, e := range es {
		pending := 0
		for _, r := range e.Recipients {
			if r.Status == store.RcptPending {
				pending++
			}
		}
		next := ago(e.NextAttempt)
		if e.State == string(store.QueueHeld) {
			next = "held"
		}
		lastErr := e.LastError
		if len(lastErr) > 60 {
			lastErr = lastErr[:57] + "..."
		}
		from := e.From
		if from == "" {
			from = "<>"
		}
		rows = append(rows, []string{strconv.FormatInt(e.ID, 10), ago(e.CreatedAt), config.Size(e.Size).String(), from, e.Destination,
			fmt.Sprintf("%d/%d", pending, len(e.Recipients)), strconv.Itoa(e.Attempts), next, lastErr})
	}
	g.table("ID\tQUEUED\tSIZE\tFROM\tDESTINATION\tPENDING\tATTEMPTS\tNEXT\tLAST ERROR", rows)
	if len(es) == 0 {
		fmt.Fprintln(g.stdout, "(queue is empty)")
	}
	return nil
}

type queueShowCmd struct {
	queueSel
}

func (c *queueShowCmd) Run(g *globals) error {
	var es []manage.QueueInfo
	if err := g.run("queue.show", c.args(), &es); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(es)
	}
	for i, e := range es {
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		from := e.From
		if from == "" {
			from = "<> (a bounce)"
		}
		fmt.Fprintf(g.stdout, "queue id:     %d\nfrom:         %s\ndestination:  %s (%s)\nsize:         %s\nstate:        %s\nqueued:       %s (%s)\nattempts:     %d\nnext attempt: %s\n",
			e.ID, from, e.Destination, e.Transport, config.Size(e.Size), e.State, e.CreatedAt.Format(time.RFC3339), ago(e.CreatedAt), e.Attempts, e.NextAttempt.Format(time.RFC3339))
		if e.LastError != "" {
			fmt.Fprintf(g.stdout, "last error:   %s\n", e.LastError)
		}
		if e.WarnedAt != nil {
			fmt.Fprintf(g.stdout, "delay warned: %s\n", e.WarnedAt.Format(time.RFC3339))
		}
		dsn := []string{}
		if e.DSNRet != "" {
			dsn = append(dsn, "RET="+e.DSNRet)
		}
		if e.DSNEnvID != "" {
			dsn = append(dsn, "ENVID="+e.DSNEnvID)
		}
		if len(dsn) > 0 {
			fmt.Fprintf(g.stdout, "dsn:          %s\n", strings.Join(dsn, " "))
		}
		fmt.Fprintf(g.stdout, "dkim signed:  %t\n", e.Signed)
		var rows [][]string
		for _, r := range e.Recipients {
			st := r.Status
			if st == "" {
				st = "pending"
			}
			rows = append(rows, []string{"  " + r.Address, st, strings.Join(r.Notify, ","), r.LastError})
		}
		g.table("  RECIPIENT\tSTATUS\tNOTIFY\tLAST ERROR", rows)
	}
	return nil
}

func (g *globals) queueChange(op, verb string, sel queueSel) error {
	var res manage.QueueResult
	if err := g.run(op, sel.args(), &res); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(res)
	}
	if len(res.Changed) == 0 {
		fmt.Fprintf(g.stdout, "nothing to %s\n", verb)
		return nil
	}
	ids := make([]string, len(res.Changed))
	for i, id := range res.Changed {
		ids[i] = strconv.FormatInt(id, 10)
	}
	fmt.Fprintf(g.stdout, "%s: %s\n", verb, strings.Join(ids, " "))
	return nil
}

type queueRetryCmd struct{ queueSel }

func (c *queueRetryCmd) Run(g *globals) error {
	return g.queueChange("queue.retry", "retry", c.queueSel)
}

type queueHoldCmd struct{ queueSel }

func (c *queueHoldCmd) Run(g *globals) error { return g.queueChange("queue.hold", "hold", c.queueSel) }

type queueReleaseCmd struct{ queueSel }

func (c *queueReleaseCmd) Run(g *globals) error {
	return g.queueChange("queue.release", "release", c.queueSel)
}

type queueDeleteCmd struct {
	queueSel
	Yes bool `help:"Really delete (the senders are not told)."`
}

func (c *queueDeleteCmd) Run(g *globals) error {
	if !c.Yes {
		return fmt.Errorf("this removes the messages without telling their senders: repeat with --yes (or use queue bounce)")
	}
	return g.queueChange("queue.delete", "delete", c.queueSel)
}

type queueBounceCmd struct{ queueSel }

func (c *queueBounceCmd) Run(g *globals) error {
	return g.queueChange("queue.bounce", "bounce", c.queueSel)
}

type queueTLSCmd struct {
	Domain string `help:"Only this recipient domain."`
	Days   int    `default:"7" help:"How many UTC days, today included."`
}

func (c *queueTLSCmd) Run(g *globals) error {
	var ss []queue.TLSDomainSummary
	if err := g.run("queue.tls", manage.TLSArgs{Domain: c.Domain, Days: c.Days}, &ss); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(ss)
	}
	if len(ss) == 0 {
		fmt.Fprintln(g.stdout, "(no TLS sessions recorded in that time)")
		return nil
	}
	var rows [][]string
	for _, s := range ss {
		var kinds []string
		for k, n := range s.ByResult {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(kinds)
		rows = append(rows, []string{s.Day, s.Domain, strconv.FormatInt(s.Successful, 10), strconv.FormatInt(s.Failed, 10), strings.Join(kinds, " ")})
	}
	g.table("DAY\tDOMAIN\tOK\tFAILED\tFAILURES", rows)
	for _, s := range ss {
		for _, f := range s.Failures {
			fmt.Fprintf(g.stdout, "%s %s: %d× %s (%s) mx=%s ip=%s %s\n", s.Day, s.Domain, f.Count, f.ResultType, f.PolicyType, f.MXHost, f.ReceivingIP, f.Reason)
		}
	}
	return nil
}
