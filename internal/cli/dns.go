package cli

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/manage"
	"github.com/mailstead/mailstead/internal/server"
)

type dnsCmd struct {
	Records dnsRecordsCmd `cmd:"" help:"Print the DNS records a domain needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, autoconfig)."`
}

type dnsRecordsCmd struct {
	Domain string `required:"" help:"The mail domain."`
	Check  bool   `help:"Compare with live DNS (system resolver), including the PTR of this server's addresses."`

	lookup manage.DNSLookup // tests
}

func dnsInput(cfg *config.Config, domain string) (manage.DNSInput, error) {
	d, err := address.Domain(domain)
	if err != nil {
		return manage.DNSInput{}, fmt.Errorf("--domain: %w", err)
	}
	keys, err := server.DKIMKeys(cfg).List(d)
	if err != nil {
		return manage.DNSInput{}, err
	}
	in := manage.DNSInput{Domain: d, Hostname: cfg.Hostname, Keys: keys}
	if cfg.Outbound.Mode == config.OutboundSmarthost {
		in.Smarthost = cfg.Outbound.Smarthost.Host
	}
	for _, s := range []string{cfg.Outbound.SourceIPv4, cfg.Outbound.SourceIPv6} {
		if a, err := netip.ParseAddr(s); err == nil {
			in.SendingIPs = append(in.SendingIPs, a)
		}
	}
	return in, nil
}

func (c *dnsRecordsCmd) Run(g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	in, err := dnsInput(cfg, c.Domain)
	if err != nil {
		return err
	}
	recs, err := manage.DNSRecords(in)
	if err != nil {
		return err
	}
	if c.Check {
		var r manage.DNSLookup = net.DefaultResolver
		if c.lookup != nil {
			r = c.lookup
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		recs = manage.CheckDNSRecords(ctx, r, cfg.Hostname, recs)
	}
	if g.JSON {
		return g.printJSON(recs)
	}
	for _, r := range recs {
		fmt.Fprintf(g.stdout, "; %s\n", r.Purpose)
		if r.Value != "" {
			v := r.Value
			if r.Type == "TXT" {
				v = quoteTXT(v)
			}
			fmt.Fprintf(g.stdout, "%s IN %s %s\n", r.Name, r.Type, v)
		}
		if c.Check && r.Check != "" {
			fmt.Fprintf(g.stdout, ";   check: %s", r.Check)
			if r.Live != "" && r.Check != "ok" {
				fmt.Fprintf(g.stdout, " (live: %s)", r.Live)
			}
			fmt.Fprintln(g.stdout)
		}
		fmt.Fprintln(g.stdout)
	}
	return nil
}
