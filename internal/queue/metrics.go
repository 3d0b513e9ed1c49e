package queue

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	outcomes *prometheus.CounterVec
	attempts *prometheus.CounterVec
	dsns     *prometheus.CounterVec
	inflight prometheus.Gauge
}

// queueCollector reads the queue's size and age from the store at scrape
// time, so the numbers are right whoever changed the queue (the runner,
// the CLI on the store directly, another instance on a shared store).
type queueCollector struct {
	st      Store
	now     func() time.Time
	log     *slog.Logger
	entries *prometheus.Desc
	oldest  *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.oldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.st.QueueStats(ctx)
	if err != nil {
		c.log.Warn("queue metrics", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries-st.Held), "ready")
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Held), "held")
	age := 0.0
	if !st.Oldest.IsZero() {
		age = c.now().Sub(st.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}

func newMetrics(reg prometheus.Registerer, st Store, now func() time.Time, log *slog.Logger) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_queue_recipient_outcomes_total",
			Help: "Outcomes of delivery attempts per recipient: sent, deferred, bounced, expired.",
		}, []string{"transport", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_queue_attempts_total",
			Help: "Delivery attempts of queue entries.",
		}, []string{"transport"}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailstead_queue_dsn_total",
			Help: "Delivery status notifications sent, by kind (failure, delay).",
		}, []string{"kind"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailstead_queue_inflight",
			Help: "Queue entries being delivered right now.",
		}),
	}
	if reg != nil {
		qc := &queueCollector{st: st, now: now, log: log,
			entries: prometheus.NewDesc("mailstead_queue_entries", "Outbound queue entries by state.", []string{"state"}, nil),
			oldest:  prometheus.NewDesc("mailstead_queue_oldest_age_seconds", "Age of the oldest queue entry (0 when empty).", nil, nil),
		}
		for _, c := range []prometheus.Collector{m.outcomes, m.attempts, m.dsns, m.inflight, qc} {
			if err := reg.Register(c); err != nil {
				log.Warn("register queue metric", "err", err)
			}
		}
	}
	return m
}
