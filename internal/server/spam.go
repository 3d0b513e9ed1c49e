package server

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/smtpserver"
	"github.com/mailstead/mailstead/internal/spam"
)

// StripFields are the inbound header fields delivery removes: forged
// verdicts of ours (mailauth) and of the spam check (X-Spam*, X-Rspamd-*).
func StripFields() []string {
	return append(slices.Clone(mailauth.DefaultStripFields), spam.StripFields...)
}

// spamDefence is the MX listeners' spam checker and greylist (nil when
// greylisting is off).
type spamDefence struct {
	checker  *spam.Checker
	greylist *spam.Greylist
}

// newSpamDefence builds the spam checker and greylist from [spam]. It
// uses the resolver of the authentication checks, and trusts the same
// networks delivery does. Call close after the SMTP listeners have
// stopped: it saves the greylist state.
func newSpamDefence(cfg *config.Config, deliv *delivery.Deliverer, res spam.Resolver, trusted []netip.Prefix, reg prometheus.Registerer, log *slog.Logger) (spamDefence, func(), error) {
	sc := cfg.Spam
	spamLog := log.With("component", "spam")
	checker, err := newSpamChecker(cfg, deliv.IsLocalDomain, res, trusted, reg, spamLog)
	if err != nil {
		return spamDefence{}, nil, err
	}
	d := spamDefence{checker: checker}
	closeFn := func() {}
	if g := sc.Greylist; g.Enabled {
		d.greylist, err = spam.OpenGreylist(spam.GreylistConfig{
			Path:       filepath.Join(cfg.DataDir, "greylist.state"),
			Delay:      g.Delay.D(),
			Window:     g.Window.D(),
			PassTTL:    g.PassTTL.D(),
			AutoAllow:  g.AutoAllow,
			MaxEntries: g.MaxEntries,
			Logger:     spamLog.With("part", "greylist"),
			Registerer: reg,
		})
		if err != nil {
			return spamDefence{}, nil, fmt.Errorf("[spam.greylist]: %w", err)
		}
		closeFn = func() {
			if err := d.greylist.Close(); err != nil {
				spamLog.Warn("save greylist state", "err", err)
			}
		}
	}
	spamLog.Info("spam checks", "dnsbl", len(sc.DNSBL), "dnswl", len(sc.DNSWL), "rspamd", sc.RspamdURL != "",
		"junk_score", sc.JunkScore, "reject_score", sc.RejectScore, "greylist", d.greylist != nil)
	return d, closeFn, nil
}

// newSpamChecker builds the checker from [spam]; SIGHUP calls it again
// with the new file's section (metrics are shared between the two, see
// spam.New).
func newSpamChecker(cfg *config.Config, isLocal func(ctx context.Context, domain string) (bool, error), res spam.Resolver, trusted []netip.Prefix, reg prometheus.Registerer, log *slog.Logger) (*spam.Checker, error) {
	sc := cfg.Spam
	c := spam.DefaultConfig()
	c.Hostname = cfg.Hostname
	c.IsLocalDomain = isLocal
	c.Trusted = trusted
	c.DNSBL = spamLists(sc.DNSBL)
	c.DNSWL = spamLists(sc.DNSWL)
	c.DNSTimeout = sc.DNSTimeout.D()
	c.JunkScore, c.RejectScore, c.VerdictWeights = sc.JunkScore, sc.RejectScore, sc.VerdictWeights
	maps.Copy(c.Weights, sc.Weights)
	c.Rspamd = spam.RspamdConfig{
		URL:            sc.RspamdURL,
		Timeout:        sc.RspamdTimeout.D(),
		MaxSize:        int64(sc.RspamdMaxSize),
		FailMode:       spam.FailMode(sc.RspamdFailMode),
		PassAll:        sc.RspamdPassAll,
		IgnoreGreylist: sc.RspamdIgnoreGreylist,
	}
	c.Logger, c.Registerer = log, reg
	checker, err := spam.New(c, res)
	if err != nil {
		return nil, fmt.Errorf("[spam]: %w", err)
	}
	return checker, nil
}

func spamLists(ls []config.SpamList) []spam.List {
	out := make([]spam.List, 0, len(ls))
	for _, l := range ls {
		out = append(out, spam.List{Zone: l.Zone, Name: l.Name, Weight: l.Weight, Codes: slices.Clone(l.Codes), Reject: l.Reject})
	}
	return out
}

// apply gives an MX listener's config the checker and greylist. Other
// roles get neither: their senders are authenticated.
func (d spamDefence) apply(c smtpserver.Config) smtpserver.Config {
	if c.Role == smtpserver.RoleMX {
		c.Spam, c.Greylist = d.checker, d.greylist
	}
	return c
}
