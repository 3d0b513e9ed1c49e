package manage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/mailstead/mailstead/internal/dkim"
)

// DNSRecord is one record a mail domain needs.
type DNSRecord struct {
	Name  string `json:"name"` // fully qualified, with trailing dot
	Type  string `json:"type"` // MX, TXT, SRV, CNAME, PTR
	Value string `json:"value"`
	// Purpose says what the record is for.
	Purpose string `json:"purpose"`
	// Check is filled by CheckDNSRecords: ok, missing, differs, error.
	Check string `json:"check,omitempty"`
	Live  string `json:"live,omitempty"`

	ip netip.Addr // PTR records: the address
}

// DNSInput is what the records are derived from.
type DNSInput struct {
	Domain   string // A-label
	Hostname string // this server's name: MX target, submission/IMAP host
	// Keys are the domain's DKIM keys (all are published, so rotation
	// does not break signatures in transit).
	Keys []*dkim.Key
	// Smarthost, when set, is the relay mail leaves through: SPF must
	// then also allow the relay's addresses.
	Smarthost string
	// SendingIPs are the configured source addresses (PTR check).
	SendingIPs []netip.Addr
}

// STSPolicyText is the MTA-STS policy mailstead recommends for a domain
// whose only MX is hostname.
func STSPolicyText(hostname string) string {
	return "version: STSv1\nmode: enforce\nmx: " + hostname + "\nmax_age: 604800\n"
}

// DNSRecords lists the records domain needs, in zone-file order.
func DNSRecords(in DNSInput) ([]DNSRecord, error) {
	d := strings.TrimSuffix(in.Domain, ".") + "."
	h := strings.TrimSuffix(in.Hostname, ".") + "."
	spf := "v=spf1 mx ~all"
	spfNote := "SPF: only the MX hosts send this domain's mail"
	if in.Smarthost != "" {
		spf = "v=spf1 mx include:<your smarthost provider's SPF domain> ~all"
		spfNote = "SPF: mail leaves through smarthost " + in.Smarthost + "; add the include its provider documents"
	}
	policy := STSPolicyText(strings.TrimSuffix(in.Hostname, "."))
	sum := sha256.Sum256([]byte(policy))
	stsID := hex.EncodeToString(sum[:8])
	recs := []DNSRecord{
		{Name: d, Type: "MX", Value: "10 " + h, Purpose: "mail for the domain goes to this server"},
		{Name: d, Type: "TXT", Value: spf, Purpose: spfNote},
	}
	keys := append([]*dkim.Key(nil), in.Keys...)
	sort.Slice(keys, func(i, j int) bool { return keys[i].Selector < keys[j].Selector })
	for _, k := range keys {
		txt, err := k.TXT()
		if err != nil {
			return nil, err
		}
		recs = append(recs, DNSRecord{Name: k.Selector + "._domainkey." + d, Type: "TXT", Value: txt, Purpose: fmt.Sprintf("DKIM public key (%s %d)", k.Algo, k.Bits)})
	}
	if len(keys) == 0 {
		recs = append(recs, DNSRecord{Name: "<selector>._domainkey." + d, Type: "TXT", Value: "(no DKIM key: run mailstead dkim generate --domain " + strings.TrimSuffix(d, ".") + " --selector <selector>)", Purpose: "DKIM public key"})
	}
	recs = append(recs,
		DNSRecord{Name: "_dmarc." + d, Type: "TXT", Value: "v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@" + strings.TrimSuffix(d, "."), Purpose: "DMARC policy; start with p=none while checking reports"},
		DNSRecord{Name: "_mta-sts." + d, Type: "TXT", Value: "v=STSv1; id=" + stsID, Purpose: "MTA-STS: announces the policy below (change id when the policy changes)"},
		DNSRecord{Name: "mta-sts." + d, Type: "CNAME", Value: h, Purpose: "MTA-STS policy host; serve https://mta-sts." + strings.TrimSuffix(d, ".") + "/.well-known/mta-sts.txt with: " + strings.ReplaceAll(strings.TrimSpace(policy), "\n", "; ") + " (mailstead does not serve it yet: use a web server)"},
		DNSRecord{Name: "_smtp._tls." + d, Type: "TXT", Value: "v=TLSRPTv1; rua=mailto:postmaster@" + strings.TrimSuffix(d, "."), Purpose: "TLS-RPT: where other servers send TLS failure reports"},
		DNSRecord{Name: "_submissions._tcp." + d, Type: "SRV", Value: "0 1 465 " + h, Purpose: "mail client autoconfiguration (RFC 6186/8314): submission over TLS"},
		DNSRecord{Name: "_submission._tcp." + d, Type: "SRV", Value: "0 1 587 " + h, Purpose: "mail client autoconfiguration: submission with STARTTLS"},
		DNSRecord{Name: "_imaps._tcp." + d, Type: "SRV", Value: "0 1 993 " + h, Purpose: "mail client autoconfiguration: IMAP over TLS"},
		DNSRecord{Name: "_imap._tcp." + d, Type: "SRV", Value: "0 0 0 .", Purpose: "no plain-text IMAP (RFC 6186: target \".\")"},
		DNSRecord{Name: "autoconfig." + d, Type: "CNAME", Value: h, Purpose: "Thunderbird autoconfig host"},
		DNSRecord{Name: "_autodiscover._tcp." + d, Type: "SRV", Value: "0 1 443 " + h, Purpose: "Outlook autodiscover"},
	)
	for _, ip := range in.SendingIPs {
		recs = append(recs, DNSRecord{Name: reverseName(ip), Type: "PTR", Value: h, Purpose: "reverse DNS of the sending address " + ip.String() + " (set at your hosting provider)", ip: ip})
	}
	return recs, nil
}

func reverseName(ip netip.Addr) string {
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0])
	}
	b := ip.As16()
	var sb strings.Builder
	for i := 15; i >= 0; i-- {
		fmt.Fprintf(&sb, "%x.%x.", b[i]&0xf, b[i]>>4)
	}
	return sb.String() + "ip6.arpa."
}

// DNSLookup is the DNS used by CheckDNSRecords; *net.Resolver satisfies it.
type DNSLookup interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupCNAME(ctx context.Context, host string) (string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

func isNXDomain(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func norm(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(s, ";", "; ")), " "))
}

// CheckDNSRecords compares recs with live DNS and fills in Check and Live.
// With the hostname's addresses it also checks their PTR records.
func CheckDNSRecords(ctx context.Context, r DNSLookup, hostname string, recs []DNSRecord) []DNSRecord {
	out := make([]DNSRecord, 0, len(recs))
	seen := map[netip.Addr]bool{}
	for _, rec := range recs {
		if rec.Type == "PTR" {
			seen[rec.ip] = true
			rec.Check, rec.Live = checkPTR(ctx, r, rec.ip, rec.Value)
		} else {
			rec.Check, rec.Live = checkOne(ctx, r, rec)
		}
		out = append(out, rec)
	}
	// The PTR of every address of the hostname must name it back
	// (receivers check "iprev", RFC 8601 3.2).
	h := strings.TrimSuffix(hostname, ".")
	ips, err := r.LookupIPAddr(ctx, h)
	if err != nil {
		out = append(out, DNSRecord{Name: h + ".", Type: "A/AAAA", Purpose: "the server's addresses", Check: "missing", Live: err.Error()})
		return out
	}
	for _, ip := range ips {
		a, _ := netip.AddrFromSlice(ip.IP)
		a = a.Unmap()
		if seen[a] {
			continue
		}
		rec := DNSRecord{Name: reverseName(a), Type: "PTR", Value: h + ".", Purpose: "reverse DNS of " + a.String(), ip: a}
		rec.Check, rec.Live = checkPTR(ctx, r, a, rec.Value)
		out = append(out, rec)
	}
	return out
}

func checkPTR(ctx context.Context, r DNSLookup, ip netip.Addr, want string) (string, string) {
	names, err := r.LookupAddr(ctx, ip.String())
	if err != nil {
		if isNXDomain(err) {
			return "missing", ""
		}
		return "error", err.Error()
	}
	for _, n := range names {
		if strings.EqualFold(strings.TrimSuffix(n, "."), strings.TrimSuffix(want, ".")) {
			return "ok", strings.Join(names, " ")
		}
	}
	return "differs", strings.Join(names, " ")
}

func checkOne(ctx context.Context, r DNSLookup, rec DNSRecord) (string, string) {
	name := strings.TrimSuffix(rec.Name, ".")
	if strings.HasPrefix(name, "<") {
		return "missing", ""
	}
	notFound := func(err error) (string, string) {
		if isNXDomain(err) {
			return "missing", ""
		}
		return "error", err.Error()
	}
	switch rec.Type {
	case "MX":
		mxs, err := r.LookupMX(ctx, name)
		if err != nil {
			return notFound(err)
		}
		var live []string
		want := strings.Fields(rec.Value)
		ok := false
		for _, mx := range mxs {
			live = append(live, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
			if len(want) == 2 && strings.EqualFold(strings.TrimSuffix(mx.Host, "."), strings.TrimSuffix(want[1], ".")) {
				ok = true
			}
		}
		if len(mxs) == 0 {
			return "missing", ""
		}
		if ok {
			return "ok", strings.Join(live, ", ")
		}
		return "differs", strings.Join(live, ", ")
	case "TXT":
		txts, err := r.LookupTXT(ctx, name)
		if err != nil {
			return notFound(err)
		}
		kind, _, _ := strings.Cut(rec.Value, ";")
		kind = strings.Fields(kind + " ")[0]
		var same []string
		for _, t := range txts {
			if norm(t) == norm(rec.Value) {
				return "ok", t
			}
			if strings.HasPrefix(strings.ToLower(t), strings.ToLower(kind)) {
				same = append(same, t)
			}
		}
		if strings.HasPrefix(rec.Value, "v=DKIM1") {
			// Same key, other tags or spacing: compare p=.
			wantP := tagValue(rec.Value, "p")
			for _, t := range same {
				if tagValue(t, "p") == wantP {
					return "ok", t
				}
			}
		}
		if len(same) > 0 {
			return "differs", strings.Join(same, " | ")
		}
		return "missing", ""
	case "SRV":
		parts := strings.SplitN(name, ".", 3)
		if len(parts) < 3 {
			return "error", "bad SRV name"
		}
		_, srvs, err := r.LookupSRV(ctx, strings.TrimPrefix(parts[0], "_"), strings.TrimPrefix(parts[1], "_"), parts[2])
		if err != nil {
			return notFound(err)
		}
		var live []string
		ok := false
		f := strings.Fields(rec.Value)
		for _, s := range srvs {
			live = append(live, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
			if len(f) == 4 && strconv.Itoa(int(s.Port)) == f[2] && strings.EqualFold(strings.TrimSuffix(s.Target, "."), strings.TrimSuffix(f[3], ".")) {
				ok = true
			}
		}
		if ok {
			return "ok", strings.Join(live, ", ")
		}
		if len(live) == 0 {
			return "missing", ""
		}
		return "differs", strings.Join(live, ", ")
	case "CNAME":
		c, err := r.LookupCNAME(ctx, name)
		if err != nil {
			return notFound(err)
		}
		if strings.EqualFold(strings.TrimSuffix(c, "."), strings.TrimSuffix(rec.Value, ".")) {
			return "ok", c
		}
		if strings.EqualFold(strings.TrimSuffix(c, "."), name) {
			// No CNAME; an address record is fine if it is ours.
			return "differs", "(address records instead of a CNAME)"
		}
		return "differs", c
	}
	return "", ""
}

func tagValue(rec, tag string) string {
	for _, f := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}
