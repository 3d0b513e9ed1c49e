package queue

// Per-domain TLS results (RFC 8460 SMTP TLS Reporting).
//
// Every TLS session the SMTP transport attempts in direct mode ends in a
// result: success, or a failure with an RFC 8460 result-type. Results are
// counted in memory per (UTC day, policy domain, policy, result, MX host,
// addresses) and flushed to the store every few seconds, so a delivery
// never waits for a store write; a crash loses at most one flush interval
// of counts. The store is the source of truth: admins read it through
// TLSSummaries, and the TLSReporter turns the previous day's results into
// aggregate reports for domains that ask for them.
//
// Relay (smarthost) sessions are not recorded: they are not about a
// recipient domain's policy.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/store"
)

// RFC 8460 policy types.
const (
	PolicySTS           = "sts"
	PolicyTLSA          = "tlsa"
	PolicyNoPolicyFound = "no-policy-found"
)

// RFC 8460 section 4.3 result types. DANE (dane.go) produces
// tlsa-invalid (no TLSA record matches), dnssec-invalid (the TLSA lookup
// failed, SERVFAIL being how a validating resolver says "bogus"), and
// starttls-not-supported or a certificate result under policy type
// "tlsa". dane-required is for senders configured to require DANE for a
// domain, which mailstead has no setting for, so it is never produced.
const (
	ResultSTARTTLSNotSupported    = "starttls-not-supported"
	ResultCertificateHostMismatch = "certificate-host-mismatch"
	ResultCertificateExpired      = "certificate-expired"
	ResultCertificateNotTrusted   = "certificate-not-trusted"
	ResultValidationFailure       = "validation-failure"
	ResultTLSAInvalid             = "tlsa-invalid"
	ResultDNSSECInvalid           = "dnssec-invalid"
	ResultDANERequired            = "dane-required"
	ResultSTSPolicyFetchError     = "sts-policy-fetch-error"
	ResultSTSPolicyInvalid        = "sts-policy-invalid"
	ResultSTSWebPKIInvalid        = "sts-webpki-invalid"
)

// resultSuccess labels successful sessions in the metric.
const resultSuccess = "success"

// maxReasonLen bounds a failure-reason-code.
const maxReasonLen = 100

// TLSResultStore is what recording needs from storage.
type TLSResultStore interface {
	AddTLSResults(ctx context.Context, rs []store.TLSResult, maxRows int) (int64, error)
}

// Bounds of TLS result recording.
const (
	// MaxTLSResultRows bounds the distinct rows (failure details) kept
	// per policy domain and day.
	MaxTLSResultRows = 100
	// maxPendingTLS bounds the distinct keys held in memory between
	// flushes; beyond it sessions are counted as dropped.
	maxPendingTLS = 10000
	// tlsFlushInterval is how often counts go to the store.
	tlsFlushInterval = 10 * time.Second
)

// errSTARTTLSNotOffered marks a session whose server did not offer (or
// refused) STARTTLS.
var errSTARTTLSNotOffered = errors.New("STARTTLS not supported")

// TLSResultType maps an error of a TLS handshake or certificate
// verification to an RFC 8460 result-type and a short failure-reason-code.
// The reason is bounded and free of per-connection detail (ports,
// addresses), so that results aggregate.
func TLSResultType(err error) (resultType, reason string) {
	var (
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		unknownErr x509.UnknownAuthorityError
		rootsErr   x509.SystemRootsError
		alertErr   tls.AlertError
		recordErr  tls.RecordHeaderError
		netErr     net.Error
		protoErr   *textproto.Error
		opErr      *net.OpError
		daneErr    *daneError
	)
	switch {
	case errors.As(err, &daneErr):
		return daneErr.result, truncReason(daneErr.reason)
	case errors.Is(err, errSTARTTLSNotOffered):
		if errors.As(err, &protoErr) {
			return ResultSTARTTLSNotSupported, truncReason(fmt.Sprintf("%d %s", protoErr.Code, protoErr.Msg))
		}
		return ResultSTARTTLSNotSupported, ""
	case errors.As(err, &hostErr):
		return ResultCertificateHostMismatch, ""
	case errors.As(err, &invalidErr):
		if invalidErr.Reason == x509.Expired {
			return ResultCertificateExpired, ""
		}
		return ResultCertificateNotTrusted, invalidReasons[invalidErr.Reason]
	case errors.As(err, &unknownErr):
		return ResultCertificateNotTrusted, "unknown authority"
	case errors.As(err, &rootsErr):
		return ResultCertificateNotTrusted, "no root certificates"
	case errors.As(err, &alertErr):
		return ResultValidationFailure, truncReason(alertErr.Error())
	case errors.As(err, &recordErr):
		return ResultValidationFailure, truncReason(recordErr.Msg)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ResultValidationFailure, "connection closed during handshake"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return ResultValidationFailure, "timeout"
	case errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error") && opErr.Err != nil:
		// TLS alerts: "remote error: tls: handshake failure".
		return ResultValidationFailure, truncReason(opErr.Op + ": " + opErr.Err.Error())
	case errors.As(err, &netErr):
		return ResultValidationFailure, "connection error"
	}
	return ResultValidationFailure, ""
}

var invalidReasons = map[x509.InvalidReason]string{
	x509.NotAuthorizedToSign:           "not authorized to sign",
	x509.CANotAuthorizedForThisName:    "ca not authorized for this name",
	x509.TooManyIntermediates:          "too many intermediates",
	x509.IncompatibleUsage:             "incompatible key usage",
	x509.NameMismatch:                  "issuer name mismatch",
	x509.NameConstraintsWithoutSANs:    "name constraints without sans",
	x509.UnconstrainedName:             "unconstrained name",
	x509.TooManyConstraints:            "too many constraints",
	x509.CANotAuthorizedForExtKeyUsage: "ca not authorized for ext key usage",
	x509.NoValidChains:                 "no valid chains",
}

func truncReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxReasonLen {
		s = s[:maxReasonLen]
	}
	return s
}

// tlsPolicy is the policy a session was made under.
type tlsPolicy struct {
	typ    string   // PolicySTS, PolicyTLSA or PolicyNoPolicyFound
	lines  []string // policy-string (TLSA: the records in presentation form)
	domain string   // policy domain
}

// tlsKey is what results aggregate by: store.TLSResult without the count
// and with the policy lines joined (comparable).
type tlsKey struct {
	day, domain, typ, policy     string
	result, mx, rip, sip, reason string
}

// tlsRecorder counts session outcomes in memory and flushes them.
type tlsRecorder struct {
	st       TLSResultStore
	log      *slog.Logger
	now      func() time.Time
	sessions *prometheus.CounterVec
	dropped  prometheus.Counter

	mu      sync.Mutex
	pending map[tlsKey]int64
	flushMu sync.Mutex // one flush at a time
}

func newTLSRecorder(st TLSResultStore, log *slog.Logger, now func() time.Time, reg prometheus.Registerer) *tlsRecorder {
	r := &tlsRecorder{st: st, log: log, now: now, pending: map[tlsKey]int64{},
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_outbound_tls_sessions_total",
			Help: "Outbound TLS sessions in direct delivery by RFC 8460 result (success or a result-type); per-domain counts are in the store.",
		}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailstead_outbound_tls_results_dropped_total",
			Help: "TLS session results not recorded because the per-domain or in-memory bounds were reached.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{r.sessions, r.dropped} {
			if err := reg.Register(c); err != nil {
				log.Warn("register tls result metric", "err", err)
			}
		}
	}
	return r
}

// session is one TLS outcome to record.
type tlsSession struct {
	policy   tlsPolicy
	result   string // "" for success
	reason   string
	mx       string
	rip, sip string
}

func (r *tlsRecorder) record(s tlsSession) {
	if r == nil {
		return
	}
	label := s.result
	if label == "" {
		label = resultSuccess
	}
	r.sessions.WithLabelValues(label).Inc()
	k := tlsKey{
		day: r.now().UTC().Format(time.DateOnly), domain: strings.ToLower(s.policy.domain), typ: s.policy.typ,
		policy: strings.Join(s.policy.lines, "\n"), result: s.result, mx: s.mx, rip: s.rip, sip: s.sip, reason: truncReason(s.reason),
	}
	if s.result == "" {
		// Reports only count successes; one row per policy keeps a big
		// MX pool's successes from using up the per-domain row bound
		// that the failures' details need. A TLSA policy is one MX
		// host's, so its row keeps the host for the report's mx-host.
		if s.policy.typ != PolicyTLSA {
			k.mx = ""
		}
		k.rip, k.sip, k.reason = "", "", ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[k]; !ok && len(r.pending) >= maxPendingTLS {
		r.dropped.Inc()
		return
	}
	r.pending[k]++
}

// flush writes the pending counts. On a store error they are kept (and
// merged with newer ones) for the next flush.
func (r *tlsRecorder) flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	batch := r.pending
	r.pending = map[tlsKey]int64{}
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	rs := make([]store.TLSResult, 0, len(batch))
	for k, n := range batch {
		var lines []string
		if k.policy != "" {
			lines = strings.Split(k.policy, "\n")
		}
		rs = append(rs, store.TLSResult{Day: k.day, PolicyDomain: k.domain, PolicyType: k.typ, PolicyString: lines,
			ResultType: k.result, MXHost: k.mx, ReceivingIP: k.rip, SendingIP: k.sip, Reason: k.reason, Count: n})
	}
	// Deterministic order keeps the row bound's choice of kept details
	// stable and makes lock order in the store predictable.
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.PolicyDomain != b.PolicyDomain {
			return a.PolicyDomain < b.PolicyDomain
		}
		return a.Count > b.Count
	})
	dropped, err := r.st.AddTLSResults(ctx, rs, MaxTLSResultRows)
	if err != nil {
		r.mu.Lock()
		for k, n := range batch {
			if _, ok := r.pending[k]; ok || len(r.pending) < maxPendingTLS {
				r.pending[k] += n
			} else {
				r.dropped.Add(float64(n))
			}
		}
		r.mu.Unlock()
		return err
	}
	if dropped > 0 {
		r.dropped.Add(float64(dropped))
		r.log.Warn("tls results: per-domain row bound reached; sessions not recorded", "sessions", dropped)
	}
	return nil
}

// TLSDomainSummary is one policy domain's TLS results of one day, for
// admins.
type TLSDomainSummary struct {
	Day        string
	Domain     string
	Successful int64
	Failed     int64
	// ByResult counts failed sessions per result-type.
	ByResult map[string]int64
	// Failures are the failure rows, most frequent first.
	Failures []store.TLSResult
}

// TLSResultReader reads stored TLS results.
type TLSResultReader interface {
	TLSResults(ctx context.Context, domain, from, to string) ([]store.TLSResult, error)
}

// TLSSummaries returns per-domain, per-day TLS results of the UTC days
// from through to (inclusive) for one domain, or all when domain is "",
// ordered by day and domain (`mailstead queue tls` shows them).
func TLSSummaries(ctx context.Context, st TLSResultReader, domain string, from, to time.Time) ([]TLSDomainSummary, error) {
	rs, err := st.TLSResults(ctx, domain, from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly))
	if err != nil {
		return nil, err
	}
	var out []TLSDomainSummary
	for _, r := range rs {
		if len(out) == 0 || out[len(out)-1].Day != r.Day || out[len(out)-1].Domain != r.PolicyDomain {
			out = append(out, TLSDomainSummary{Day: r.Day, Domain: r.PolicyDomain, ByResult: map[string]int64{}})
		}
		s := &out[len(out)-1]
		if r.ResultType == "" {
			s.Successful += r.Count
			continue
		}
		s.Failed += r.Count
		s.ByResult[r.ResultType] += r.Count
		s.Failures = append(s.Failures, r)
	}
	for i := range out {
		sort.SliceStable(out[i].Failures, func(a, b int) bool { return out[i].Failures[a].Count > out[i].Failures[b].Count })
	}
	return out, nil
}
