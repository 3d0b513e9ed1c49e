package queue

// TLS-RPT aggregate reports (RFC 8460): once a day, each policy domain
// with results for the previous UTC day that publishes
// "_smtp._tls.<domain> TXT v=TLSRPTv1; rua=..." gets a gzipped JSON
// report by mail (queued like a DSN) and/or HTTPS POST.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// TLSReportStore is what the reporter needs from storage.
type TLSReportStore interface {
	TLSResults(ctx context.Context, domain, from, to string) ([]store.TLSResult, error)
	TLSReports(ctx context.Context, day string) ([]store.TLSReport, error)
	PutTLSReport(ctx context.Context, r store.TLSReport) error
	DeleteTLSResults(ctx context.Context, before string) (int64, error)
}

// TLSReporterOptions configure a TLSReporter.
type TLSReporterOptions struct {
	// OrganizationName is the report's organization-name (required).
	OrganizationName string
	// Contact is the report's contact-info, an email address (required).
	Contact string
	// Submitter is this server's host name: TLS-Report-Submitter, and
	// the domain of report ids and file names (required).
	Submitter string
	// From is the From header and envelope sender of mailed reports;
	// default Contact. Its domain should have a DKIM key: receivers
	// expect reports to be signed (RFC 8460 5.3).
	From string
	// Injector queues mailed reports (delivery.Submitter, as for DSNs,
	// with the report transport); nil skips
	// mailto: URIs.
	Injector ReportInjector
	// HTTPClient posts https: reports; nil uses one with a 30s timeout
	// that does not follow redirects and connects only to public
	// addresses (a rua is written by whoever controls the recipient
	// domain's DNS and must not reach this network's internal services).
	HTTPClient *http.Client
	// Retention is how long results are kept (default 14 days, at least
	// 3 so unsent reports can be retried).
	Retention time.Duration
	Logger    *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Report bounds.
const (
	maxRUAs            = 10             // per scheme and domain
	maxTLSRPTRecordLen = 4096           // a TXT record, all strings
	tlsReportRetryFor  = 24 * time.Hour // RFC 8460 5.5
	tlsReportHTTPWait  = 30 * time.Second
	maxReportDomains   = 100000 // per day and run
	reportRunInterval  = time.Hour
)

// TLSReporter sends TLS reports. Start Run once; SendReports sends (or
// retries) one day's reports on demand.
type TLSReporter struct {
	st   TLSReportStore
	res  Resolver
	opts TLSReporterOptions
	log  *slog.Logger

	mu sync.Mutex // one run at a time
	// done remembers which URIs took a report whose other URIs failed,
	// so a retry does not send it to them again (lost on restart: a
	// retry after a restart may duplicate).
	done map[string]map[string]bool
}

// NewTLSReporter returns a reporter reading results from st and looking
// up TLSRPT records with res.
func NewTLSReporter(st TLSReportStore, res Resolver, o TLSReporterOptions) (*TLSReporter, error) {
	if o.OrganizationName == "" || o.Contact == "" || o.Submitter == "" {
		return nil, errors.New("tls reports: organization name, contact and submitter are required")
	}
	if _, err := mail.ParseAddress(o.Contact); err != nil {
		return nil, fmt.Errorf("tls reports: contact %q: %w", o.Contact, err)
	}
	if o.From == "" {
		o.From = o.Contact
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		return nil, fmt.Errorf("tls reports: from %q: %w", o.From, err)
	}
	o.From = from.Address
	if o.Retention <= 0 {
		o.Retention = 14 * 24 * time.Hour
	}
	o.Retention = max(o.Retention, 3*24*time.Hour)
	if o.HTTPClient == nil {
		d := &net.Dialer{Timeout: tlsReportHTTPWait, Control: publicOnly}
		o.HTTPClient = &http.Client{
			Timeout:       tlsReportHTTPWait,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: tlsReportHTTPWait, ForceAttemptHTTP2: true},
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &TLSReporter{st: st, res: res, opts: o, log: o.Logger, done: map[string]map[string]bool{}}, nil
}

// Run sends the previous day's reports soon after start and then checks
// hourly (retrying failed deliveries for up to 24 hours, RFC 8460 5.5)
// until ctx ends.
func (r *TLSReporter) Run(ctx context.Context) error {
	// A little jitter: not every server at exactly the same moment.
	wait := time.Duration(mathrand.Int64N(int64(time.Minute)))
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		r.RunOnce(ctx)
		wait = reportRunInterval
	}
}

// RunOnce reports the last two days (yesterday's reports, and retries of
// the day before's) and applies the retention.
func (r *TLSReporter) RunOnce(ctx context.Context) {
	today := dayStart(r.opts.Now())
	for _, d := range []time.Time{today.AddDate(0, 0, -2), today.AddDate(0, 0, -1)} {
		if err := r.SendReports(ctx, d); err != nil && ctx.Err() == nil {
			r.log.Error("tls reports", "day", d.Format(time.DateOnly), "err", err)
		}
	}
	before := today.Add(-r.opts.Retention).Format(time.DateOnly)
	if n, err := r.st.DeleteTLSResults(ctx, before); err != nil {
		r.log.Error("tls reports: remove old results", "err", err)
	} else if n > 0 {
		r.log.Info("tls reports: removed old results", "before", before, "rows", n)
	}
}

func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// SendReports sends the reports of the UTC day of day that are neither
// sent nor given up on. Only complete days are reported.
func (r *TLSReporter) SendReports(ctx context.Context, day time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := dayStart(day)
	if !start.Before(dayStart(r.opts.Now())) {
		return fmt.Errorf("tls reports: day %s is not over yet", start.Format(time.DateOnly))
	}
	ds := start.Format(time.DateOnly)
	rs, err := r.st.TLSResults(ctx, "", ds, ds)
	if err != nil {
		return fmt.Errorf("read tls results: %w", err)
	}
	reps, err := r.st.TLSReports(ctx, ds)
	if err != nil {
		return fmt.Errorf("read tls report records: %w", err)
	}
	state := map[string]store.TLSReport{}
	for _, rep := range reps {
		state[rep.PolicyDomain] = rep
	}
	byDomain := map[string][]store.TLSResult{}
	var domains []string
	for _, res := range rs {
		if _, ok := byDomain[res.PolicyDomain]; !ok {
			if len(domains) >= maxReportDomains {
				continue
			}
			domains = append(domains, res.PolicyDomain)
		}
		byDomain[res.PolicyDomain] = append(byDomain[res.PolicyDomain], res)
	}
	sort.Strings(domains)
	for _, dom := range domains {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rec, ok := state[dom]
		if !ok {
			rec = store.TLSReport{Day: ds, PolicyDomain: dom}
		} else if rec.State != store.TLSReportPending {
			continue
		}
		now := r.opts.Now()
		if !rec.FirstAttempt.IsZero() && now.Sub(rec.FirstAttempt) > tlsReportRetryFor {
			rec.State = store.TLSReportFailed
			r.log.Warn("tls report: giving up", "domain", dom, "day", ds, "attempts", rec.Attempts, "err", rec.LastError)
			delete(r.done, ds+"|"+dom)
			if err := r.st.PutTLSReport(ctx, rec); err != nil {
				return err
			}
			continue
		}
		r.sendDomain(ctx, start, dom, byDomain[dom], &rec)
		if err := r.st.PutTLSReport(ctx, rec); err != nil {
			return fmt.Errorf("record tls report for %s: %w", dom, err)
		}
	}
	return nil
}

// sendDomain looks up dom's reporting URIs and delivers its report,
// updating rec.
func (r *TLSReporter) sendDomain(ctx context.Context, day time.Time, dom string, rs []store.TLSResult, rec *store.TLSReport) {
	ds := day.Format(time.DateOnly)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	txts, err := r.res.LookupTXT(lctx, "_smtp._tls."+dom)
	cancel()
	if err != nil && !isNotFound(err) {
		r.retry(rec, fmt.Errorf("DNS lookup of _smtp._tls.%s: %w", dom, err))
		return
	}
	var ruas []string
	n := 0
	for _, txt := range txts {
		u, ok, perr := ParseTLSRPTRecord(txt)
		if !ok {
			continue
		}
		n++
		if perr != nil {
			r.log.Info("tls report: invalid TLSRPT record", "domain", dom, "err", perr)
		}
		ruas = u
	}
	if n != 1 || len(ruas) == 0 {
		// None, or several: the domain does not do TLSRPT (RFC 8460 3).
		rec.State = store.TLSReportNone
		return
	}
	var mailto []string
	var https []string
	for _, u := range ruas {
		switch {
		case strings.HasPrefix(strings.ToLower(u), "mailto:"):
			if a, err := mailtoAddress(u); err != nil {
				r.log.Info("tls report: bad mailto rua", "domain", dom, "rua", u, "err", err)
			} else if len(mailto) < maxRUAs {
				mailto = append(mailto, a)
			}
		case strings.HasPrefix(strings.ToLower(u), "https:"):
			if len(https) < maxRUAs {
				https = append(https, u)
			}
		default:
			r.log.Debug("tls report: rua scheme not supported", "domain", dom, "rua", u)
		}
	}
	if r.opts.Injector == nil {
		mailto = nil
	}
	if len(mailto) == 0 && len(https) == 0 {
		rec.State = store.TLSReportNone
		return
	}

	rep := BuildTLSReport(TLSReportMeta{OrganizationName: r.opts.OrganizationName, Contact: r.opts.Contact, Submitter: r.opts.Submitter}, day, dom, rs)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		r.retry(rec, err)
		return
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		r.retry(rec, err)
		return
	}

	key := ds + "|" + dom
	done := r.done[key]
	if done == nil {
		done = map[string]bool{}
	}
	var errs []error
	if len(mailto) > 0 && !done["mailto"] {
		msg := r.reportMessage(rep, dom, day, mailto, gz.Bytes())
		if err := r.opts.Injector.InjectTLSReport(ctx, r.opts.From, mailto, msg); err != nil {
			errs = append(errs, fmt.Errorf("queue report to %s: %w", strings.Join(mailto, ", "), err))
		} else {
			done["mailto"] = true
			r.log.Info("tls report queued", "domain", dom, "day", ds, "to", strings.Join(mailto, ", "), "report_id", rep.ReportID)
		}
	}
	for _, u := range https {
		if done[u] {
			continue
		}
		if err := r.post(ctx, u, gz.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("post report to %s: %w", u, err))
		} else {
			done[u] = true
			r.log.Info("tls report posted", "domain", dom, "day", ds, "url", u, "report_id", rep.ReportID)
		}
	}
	if len(errs) > 0 {
		r.done[key] = done
		r.retry(rec, errors.Join(errs...))
		return
	}
	delete(r.done, key)
	rec.Attempts++
	if rec.FirstAttempt.IsZero() {
		rec.FirstAttempt = r.opts.Now()
	}
	rec.State = store.TLSReportSent
	rec.LastError = ""
}

// retry leaves rec pending with err for the next run.
func (r *TLSReporter) retry(rec *store.TLSReport, err error) {
	rec.State = store.TLSReportPending
	rec.Attempts++
	if rec.FirstAttempt.IsZero() {
		rec.FirstAttempt = r.opts.Now()
	}
	rec.LastError = truncate(err.Error(), 500)
	r.log.Warn("tls report: delivery failed; retried next run", "domain", rec.PolicyDomain, "day", rec.Day, "err", err)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// publicOnly refuses connections to loopback, private, link-local,
// multicast and unspecified addresses (net.Dialer.Control: it sees the
// address actually dialled, after DNS).
func publicOnly(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("tls report: dial %s: %w", address, err)
	}
	a := ap.Addr().Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() {
		return fmt.Errorf("tls report: refusing to post to non-public address %s", a)
	}
	return nil
}

func (r *TLSReporter) post(ctx context.Context, u string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, tlsReportHTTPWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := r.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP status %s", resp.Status)
	}
	return nil
}

// mailtoAddress returns the address of a "mailto:" URI (RFC 6068),
// without any query.
func mailtoAddress(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	raw := p.Opaque
	if raw == "" {
		return "", errors.New("no address")
	}
	addr, err := url.PathUnescape(raw)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(addr, ",<>\r\n \t") {
		return "", errors.New("one plain address expected")
	}
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return "", err
	}
	return a.Address, nil
}

// ParseTLSRPTRecord parses a TLSRPT TXT record (RFC 8460 3). ok reports
// whether it is one (starts with "v=TLSRPTv1"); ruas are its rua URIs
// (an error, with ok, when there are none or a field is malformed).
func ParseTLSRPTRecord(txt string) (ruas []string, ok bool, err error) {
	if len(txt) > maxTLSRPTRecordLen {
		return nil, false, errors.New("tlsrpt record too long")
	}
	fields := strings.Split(txt, ";")
	if strings.TrimRight(fields[0], " \t") != "v=TLSRPTv1" {
		return nil, false, nil
	}
	for _, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			continue // a trailing delimiter
		}
		k, v, found := strings.Cut(f, "=")
		if !found || k == "" {
			return nil, true, fmt.Errorf("tlsrpt record: bad field %q", f)
		}
		if k != "rua" {
			continue // extensions are ignored
		}
		for _, u := range strings.Split(v, ",") {
			u = strings.Trim(u, " \t")
			pu, err := url.Parse(u)
			if err != nil || pu.Scheme == "" {
				return nil, true, fmt.Errorf("tlsrpt record: bad rua URI %q", u)
			}
			if len(ruas) < 2*maxRUAs {
				ruas = append(ruas, u)
			}
		}
	}
	if len(ruas) == 0 {
		return nil, true, errors.New("tlsrpt record without rua")
	}
	return ruas, true, nil
}

// TLSReportMeta is who reports.
type TLSReportMeta struct {
	OrganizationName string
	Contact          string
	Submitter        string
}

// AggregateTLSReport is an RFC 8460 section 4 report.
type AggregateTLSReport struct {
	OrganizationName string              `json:"organization-name"`
	DateRange        TLSReportDateRange  `json:"date-range"`
	ContactInfo      string              `json:"contact-info"`
	ReportID         string              `json:"report-id"`
	Policies         []TLSReportPolicies `json:"policies"`
}

// TLSReportDateRange is a report's period, RFC 3339 UTC.
type TLSReportDateRange struct {
	Start string `json:"start-datetime"`
	End   string `json:"end-datetime"`
}

// TLSReportPolicies is one policy's entry of a report.
type TLSReportPolicies struct {
	Policy         TLSReportPolicy    `json:"policy"`
	Summary        TLSReportSummary   `json:"summary"`
	FailureDetails []TLSFailureDetail `json:"failure-details,omitempty"`
}

// TLSReportPolicy is the applied policy.
type TLSReportPolicy struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

// TLSReportSummary counts a policy's sessions.
type TLSReportSummary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// TLSFailureDetail is one kind of failure.
type TLSFailureDetail struct {
	ResultType          string `json:"result-type"`
	SendingMTAIP        string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64  `json:"failed-session-count"`
	FailureReasonCode   string `json:"failure-reason-code,omitempty"`
}

// BuildTLSReport builds the report of policy domain dom for the UTC day
// of day from its stored results (of that day and domain).
func BuildTLSReport(meta TLSReportMeta, day time.Time, dom string, rs []store.TLSResult) AggregateTLSReport {
	start := dayStart(day)
	rep := AggregateTLSReport{
		OrganizationName: meta.OrganizationName,
		DateRange: TLSReportDateRange{
			Start: start.Format(time.RFC3339),
			End:   start.Add(24*time.Hour - time.Second).Format(time.RFC3339),
		},
		ContactInfo: meta.Contact,
		ReportID:    start.Format(time.DateOnly) + "." + dom + "@" + meta.Submitter,
		Policies:    []TLSReportPolicies{},
	}
	idx := map[string]int{}
	for _, res := range rs {
		k := res.PolicyType + "\x00" + strings.Join(res.PolicyString, "\n")
		if res.PolicyType == PolicyTLSA {
			// A TLSA policy is one MX host's (RFC 8460 4.4 mx-host).
			k += "\x00" + res.MXHost
		}
		i, ok := idx[k]
		if !ok {
			i = len(rep.Policies)
			idx[k] = i
			p := TLSReportPolicy{Type: res.PolicyType, String: res.PolicyString, Domain: dom}
			if res.PolicyType == PolicyTLSA && res.MXHost != "" {
				p.MXHost = []string{res.MXHost}
			}
			if res.PolicyType == PolicySTS {
				for _, l := range res.PolicyString {
					if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "mx" {
						p.MXHost = append(p.MXHost, strings.TrimSpace(v))
					}
				}
			}
			rep.Policies = append(rep.Policies, TLSReportPolicies{Policy: p})
		}
		pe := &rep.Policies[i]
		if res.ResultType == "" {
			pe.Summary.Successful += res.Count
			continue
		}
		pe.Summary.Failed += res.Count
		pe.FailureDetails = append(pe.FailureDetails, TLSFailureDetail{
			ResultType: res.ResultType, SendingMTAIP: res.SendingIP, ReceivingMXHostname: res.MXHost,
			ReceivingIP: res.ReceivingIP, FailedSessionCount: res.Count, FailureReasonCode: res.Reason,
		})
	}
	sort.SliceStable(rep.Policies, func(i, j int) bool {
		a, b := rep.Policies[i].Policy, rep.Policies[j].Policy
		if a.Type != b.Type {
			return a.Type > b.Type // "sts" before "no-policy-found"
		}
		if as, bs := strings.Join(a.String, "\n"), strings.Join(b.String, "\n"); as != bs {
			return as < bs
		}
		return strings.Join(a.MXHost, " ") < strings.Join(b.MXHost, " ") // TLSA: one policy per host
	})
	for i := range rep.Policies {
		fd := rep.Policies[i].FailureDetails
		sort.SliceStable(fd, func(a, b int) bool {
			if fd[a].FailedSessionCount != fd[b].FailedSessionCount {
				return fd[a].FailedSessionCount > fd[b].FailedSessionCount
			}
			return fd[a].ResultType+fd[a].ReceivingMXHostname+fd[a].ReceivingIP < fd[b].ResultType+fd[b].ReceivingMXHostname+fd[b].ReceivingIP
		})
	}
	return rep
}

// reportMessage builds the mail of RFC 8460 5.3: multipart/report with
// report-type=tlsrpt, a human-readable part and the gzipped report.
func (r *TLSReporter) reportMessage(rep AggregateTLSReport, dom string, day time.Time, to []string, gz []byte) []byte {
	start := dayStart(day)
	var rnd [12]byte
	rand.Read(rnd[:])
	boundary := "tlsrpt-" + hex.EncodeToString(rnd[:])
	filename := fmt.Sprintf("%s!%s!%d!%d.json.gz", r.opts.Submitter, dom, start.Unix(), start.Add(24*time.Hour-time.Second).Unix())
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", "<"+r.opts.From+">")
	h("To", "<"+strings.Join(to, ">, <")+">")
	h("Date", r.opts.Now().Format(time.RFC1123Z))
	h("Subject", "Report Domain: "+dom+"\r\n Submitter: "+r.opts.Submitter+"\r\n Report-ID: <"+rep.ReportID+">")
	h("Message-ID", "<tlsrpt."+hex.EncodeToString(rnd[:6])+"."+strconv.FormatInt(start.Unix(), 10)+"@"+r.opts.Submitter+">")
	h("TLS-Report-Domain", dom)
	h("TLS-Report-Submitter", r.opts.Submitter)
	h("Auto-Submitted", "auto-generated")
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type="tlsrpt";`+"\r\n\t"+`boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a multipart message in MIME format.\r\n\r\n")
	b.WriteString("--" + boundary + "\r\n")
	h("Content-Type", `text/plain; charset="us-ascii"`)
	h("Content-Transfer-Encoding", "7bit")
	b.WriteString("\r\nThis is an aggregate TLS report (RFC 8460) from " + r.opts.Submitter + "\r\nabout mail to " + dom + " on " + start.Format(time.DateOnly) + " (UTC).\r\n\r\n")
	b.WriteString("--" + boundary + "\r\n")
	h("Content-Type", "application/tlsrpt+gzip")
	h("Content-Transfer-Encoding", "base64")
	// The file name has only domain characters, digits, "!" and ".".
	h("Content-Disposition", `attachment;`+"\r\n\t"+`filename="`+filename+`"`)
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}
