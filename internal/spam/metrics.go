package spam

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	conn          *prometheus.CounterVec
	checks        *prometheus.CounterVec
	verdicts      *prometheus.CounterVec
	rspamdLatency prometheus.Histogram
	rspamdErrors  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	m := &metrics{
		conn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_spam_connections_total",
			Help: "Clients checked by the spam connection checks, by outcome (ok, reject, trusted).",
		}, []string{"result"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_spam_checks_total",
			Help: "Spam checks on clients, by check (dnsbl, dnswl, iprev, helo) and result.",
		}, []string{"check", "result"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_spam_verdicts_total",
			Help: "Message verdicts, by source (builtin, rspamd, trusted) and action (accept, junk, defer, reject).",
		}, []string{"source", "action"}),
		rspamdLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailstead_spam_rspamd_duration_seconds",
			Help:    "Time taken by Rspamd checks, failures included.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20},
		}),
		rspamdErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_spam_rspamd_errors_total",
			Help: "Rspamd checks that failed and fell back, by kind (timeout, connect, http, parse, action).",
		}, []string{"kind"}),
	}
	m.conn = register(reg, log, m.conn)
	m.checks = register(reg, log, m.checks)
	m.verdicts = register(reg, log, m.verdicts)
	m.rspamdLatency = register(reg, log, m.rspamdLatency)
	m.rspamdErrors = register(reg, log, m.rspamdErrors)
	return m
}

// register registers c on reg (nil: not at all) and returns the
// collector to use: the one already registered under the same name when
// a second Checker (a reload, a test) registers again.
func register[C prometheus.Collector](reg prometheus.Registerer, log *slog.Logger, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		log.Warn("register spam metric", "err", err)
	}
	return c
}

func (m *metrics) countList(allow bool, st ListStatus) {
	check := "dnsbl"
	if allow {
		check = "dnswl"
	}
	m.checks.WithLabelValues(check, string(st)).Inc()
}
