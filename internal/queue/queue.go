// Package queue runs the outbound queue: it takes due entries from the
// store, hands each to the transport named in the entry (SMTP now, HTTP
// webhooks later), records the outcome per recipient, retries temporary
// failures on a backoff schedule, and sends DSNs (RFC 3464) for permanent
// failures, expiry and long delays.
//
// # Durability and the duplicate-delivery window
//
// The queue lives in the store; a message is in it before the submitter
// got its 250 (store.Delivery.Queue is committed with the local copies).
// The runner keeps no state of its own that matters after a crash: a
// restarted runner on the same store finds every entry whose outcome was
// not recorded and tries it again.
//
// Outcomes are written with QueueUpdate (or QueueDelete, when nothing is
// left to do) as soon as the remote's final reply to the message data has
// been read, before the next message is sent on that connection. A crash
// (SIGKILL, power loss) after the remote's 250 and before that write is
// durable makes the next runner deliver the message again: the window is
// one store write long (about one fsync). RFC 1047 describes the same
// unavoidable window between the end of DATA and its reply on the remote
// side. Nothing is lost: a crash at any other moment leaves the entry in
// the queue with its recipients pending.
//
// DSNs are sent (durably handed to local delivery or queued) before the
// failed recipients are recorded, so a crash in between may send one DSN
// twice but never loses one. Delay warnings are recorded first and sent
// after, so a crash may lose a warning but never repeats one.
package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/store"
)

// Store is what the runner needs from storage.
type Store interface {
	QueueDue(ctx context.Context, now time.Time, limit int) ([]store.QueueEntry, error)
	QueueNext(ctx context.Context) (time.Time, bool, error)
	QueueGet(ctx context.Context, id int64) (store.QueueEntry, error)
	QueueUpdate(ctx context.Context, e store.QueueEntry) error
	QueueDelete(ctx context.Context, id int64) error
	QueueStats(ctx context.Context) (store.QueueStats, error)
	OpenBlob(ctx context.Context, blobID int64) (store.BlobReader, error)
}

// Message is an entry's content as it is sent: the entry's Prefix (e.g. a
// DKIM-Signature) followed by the stored blob.
type Message interface {
	io.ReaderAt
	Size() int64
}

// Outcome of one recipient in one attempt.
type Outcome int

const (
	Temporary Outcome = iota // try again later
	Delivered                // accepted by the next hop
	Permanent                // will never work: bounce
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "sent"
	case Permanent:
		return "bounced"
	}
	return "deferred"
}

// Result is one recipient's outcome of an attempt.
type Result struct {
	Address string
	Outcome Outcome
	// Reply is the remote's reply or our diagnostic, e.g.
	// "550 5.1.1 no such user"; Status the enhanced status code used in
	// DSNs ("5.1.1"), derived from Reply when empty.
	Reply  string
	Status string
	// Remote is the host that answered, e.g. "mx.example.net[192.0.2.1]:25";
	// empty when no connection was made.
	Remote string
}

// Transport delivers queue entries of one kind.
type Transport interface {
	// Deliver tries to deliver msg to every pending recipient of e
	// (Status == store.RcptPending) in one attempt and returns one
	// Result per pending recipient. It returns as soon as the remote's
	// final reply has been read, so the runner can record it before
	// anything else happens. It must honour ctx.
	Deliver(ctx context.Context, e store.QueueEntry, msg Message) []Result
}

// Injector delivers a message the runner generates (a DSN) the way any
// other mail goes: to a local mailbox or into the queue.
type Injector interface {
	Inject(ctx context.Context, from string, rcpts []string, msg []byte) error
}

// Transport names of store.QueueEntry.Transport the SMTP transport
// handles. TransportTLSReport marks the RFC 8460 reports this server
// generates (ReportInjector): delivered despite TLS failures and never
// reported on themselves. Only the reporter sets it; nothing in a message
// does.
const (
	TransportSMTP      = "smtp"
	TransportTLSReport = "smtp-tlsrpt"
)

// ReportInjector queues a TLS report with TransportTLSReport entries
// (delivery.Submitter).
type ReportInjector interface {
	InjectTLSReport(ctx context.Context, from string, rcpts []string, msg []byte) error
}

// Options configure a Runner.
type Options struct {
	// Transports by store.QueueEntry.Transport ("smtp", ...).
	Transports map[string]Transport
	// Retry is the wait after attempt 1, 2, ...; the last repeats.
	Retry []time.Duration
	// MaxAge: entries older than this bounce (default 5 days).
	MaxAge time.Duration
	// DelayWarning: one delay DSN after this time; 0 disables.
	DelayWarning time.Duration
	// MaxConcurrency bounds deliveries in flight (default 50);
	// MaxPerDestination bounds them per transport and destination
	// (default 10).
	MaxConcurrency    int
	MaxPerDestination int
	// Hostname names this server in DSNs (Reporting-MTA, MAILER-DAEMON@).
	Hostname string
	// BounceMaxSize caps the original message returned in a DSN.
	BounceMaxSize int64
	// Injector sends DSNs; nil disables them (they are logged).
	Injector Injector
	// Wake signals that entries were added or changed
	// (sqlitestore.(*Store).QueueWake).
	Wake <-chan struct{}
	// ShutdownGrace is how long Run waits for deliveries in flight after
	// ctx ends before cancelling them (default 30s). A cancelled
	// delivery is retried later: the remote may or may not have the
	// message.
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// Now is the clock (tests).
	Now func() time.Time
}

// Runner is the queue runner.
type Runner struct {
	st   Store
	opts Options
	log  *slog.Logger
	m    *metrics

	mu       sync.Mutex
	inflight map[int64]bool
}

// New returns a runner for st.
func New(st Store, opts Options) *Runner {
	if opts.MaxAge <= 0 {
		opts.MaxAge = 5 * 24 * time.Hour
	}
	if len(opts.Retry) == 0 {
		opts.Retry = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 50
	}
	if opts.MaxPerDestination <= 0 {
		opts.MaxPerDestination = 10
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.BounceMaxSize <= 0 {
		opts.BounceMaxSize = 100 * 1000
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Runner{st: st, opts: opts, log: opts.Logger, inflight: map[int64]bool{}}
	r.m = newMetrics(opts.Registerer, st, opts.Now, opts.Logger)
	return r
}

// maxFetch bounds one QueueDue batch.
const maxFetch = 20000

// minWakeInterval spaces out re-reads of the queue caused by wake-ups:
// every QueueUpdate the runner makes itself also wakes it.
const minWakeInterval = 50 * time.Millisecond

// busyRefetch is how often the queue is re-read while entries read
// earlier are still waiting to start: re-reading a long due list after
// every delivery would cost more than the deliveries.
const busyRefetch = time.Second

// idlePoll is how often the queue is looked at when nothing is known to
// be due, as a safety net against lost wake-ups.
const idlePoll = time.Minute

type done struct {
	id   int64
	dest string
	next time.Time // the entry's next attempt, zero if none
}

// Run delivers until ctx ends, then waits up to ShutdownGrace for the
// deliveries in flight.
func (r *Runner) Run(ctx context.Context) error {
	dctx, dcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer dcancel()
	var wg sync.WaitGroup
	doneCh := make(chan done, r.opts.MaxConcurrency)
	perDest := map[string]int{}
	inflight := 0
	var pending []store.QueueEntry
	base := max(64, 4*r.opts.MaxConcurrency)
	fetchLimit := base
	moreDue := false
	needFetch := true
	var lastFetch time.Time
	var nextAt time.Time // earliest known future attempt
	timer := time.NewTimer(0)
	defer timer.Stop()

	for {
		now := r.opts.Now()
		if needFetch && inflight < r.opts.MaxConcurrency && (len(pending) == 0 || time.Since(lastFetch) >= busyRefetch) {
			due, err := r.st.QueueDue(ctx, now, fetchLimit)
			lastFetch = time.Now()
			needFetch = false
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				r.log.Error("read due queue entries", "err", err)
				nextAt = now.Add(5 * time.Second)
			} else {
				moreDue = len(due) == fetchLimit
				pending = pending[:0]
				r.mu.Lock()
				for _, e := range due {
					if !r.inflight[e.ID] {
						pending = append(pending, e)
					}
				}
				r.mu.Unlock()
				if next, ok, err := r.st.QueueNext(ctx); err == nil && ok && next.After(now) && (nextAt.IsZero() || next.Before(nextAt) || !nextAt.After(now)) {
					nextAt = next
				}
			}
		}
		// Start what the limits allow; blocked entries wait for a slot.
		kept := pending[:0]
		for _, e := range pending {
			key := e.Transport + ":" + e.Destination
			if inflight >= r.opts.MaxConcurrency || perDest[key] >= r.opts.MaxPerDestination {
				kept = append(kept, e)
				continue
			}
			inflight++
			perDest[key]++
			r.mu.Lock()
			r.inflight[e.ID] = true
			r.mu.Unlock()
			wg.Add(1)
			go func(e store.QueueEntry, key string) {
				defer wg.Done()
				next := r.process(dctx, e.ID)
				r.mu.Lock()
				delete(r.inflight, e.ID)
				r.mu.Unlock()
				doneCh <- done{id: e.ID, dest: key, next: next}
			}(e, key)
		}
		pending = kept
		if moreDue && len(pending) > 0 && inflight < r.opts.MaxConcurrency && fetchLimit < maxFetch {
			// Every fetched entry waits for a busy destination while
			// more are due: look further next time, so that one
			// destination's backlog does not starve the others.
			fetchLimit = min(fetchLimit*2, maxFetch)
		} else if len(pending) == 0 && fetchLimit > base {
			fetchLimit = base
		}
		r.m.inflight.Set(float64(inflight))

		wait := idlePoll
		if !nextAt.IsZero() {
			if d := nextAt.Sub(r.opts.Now()); d < wait {
				wait = max(d, 0)
			}
		}
		if needFetch && len(pending) > 0 {
			// A re-read is due but deferred while pending entries
			// remain: come back for it.
			wait = min(wait, max(busyRefetch-time.Since(lastFetch), minWakeInterval))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-r.opts.Wake:
			needFetch = true
			if d := time.Since(lastFetch); d < minWakeInterval {
				select {
				case <-ctx.Done():
				case <-time.After(minWakeInterval - d):
				}
			}
		case <-timer.C:
			needFetch = true
			if !nextAt.After(r.opts.Now()) {
				nextAt = time.Time{}
			}
		case d := <-doneCh:
			inflight--
			perDest[d.dest]--
			if perDest[d.dest] <= 0 {
				delete(perDest, d.dest)
			}
			if !d.next.IsZero() && (nextAt.IsZero() || d.next.Before(nextAt)) {
				nextAt = d.next
			}
			// Re-read when what was read is used up and more may be due;
			// pending entries start without one.
			needFetch = needFetch || len(pending) == 0 && (moreDue || inflight == 0)
		}
		if ctx.Err() != nil {
			break
		}
	}
	r.m.inflight.Set(0)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(r.opts.ShutdownGrace):
		r.log.Warn("queue: deliveries still running at shutdown; cancelling them (they are retried after restart)")
		dcancel()
		<-waited
	}
	return nil
}

// pendingOf returns the indexes of e's pending recipients.
func pendingOf(e *store.QueueEntry) []int {
	var out []int
	for i, rc := range e.Recipients {
		if rc.Status == store.RcptPending {
			out = append(out, i)
		}
	}
	return out
}

// process makes one attempt on entry id and returns its next attempt time
// (zero when the entry is gone or held).
func (r *Runner) process(ctx context.Context, id int64) time.Time {
	e, err := r.st.QueueGet(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			r.log.Error("queue: read entry", "queue_id", id, "err", err)
		}
		return time.Time{}
	}
	now := r.opts.Now()
	if e.State != store.QueueReady || e.NextAttempt.After(now) {
		return time.Time{}
	}
	pend := pendingOf(&e)
	if len(pend) == 0 {
		// Nothing left to try: an earlier attempt (or an admin bounce)
		// settled every recipient but the entry was not removed.
		r.finish(ctx, &e)
		return time.Time{}
	}
	tr := r.opts.Transports[e.Transport]
	var results []Result
	start := time.Now()
	if tr == nil {
		for _, i := range pend {
			results = append(results, Result{Address: e.Recipients[i].Address, Outcome: Temporary, Reply: fmt.Sprintf("4.3.5 no transport %q configured", e.Transport), Status: "4.3.5"})
		}
	} else {
		msg, err := r.open(ctx, &e)
		if err != nil {
			r.log.Error("queue: open message", "queue_id", e.ID, "err", err)
			for _, i := range pend {
				results = append(results, Result{Address: e.Recipients[i].Address, Outcome: Temporary, Reply: "4.3.0 cannot read queued message", Status: "4.3.0"})
			}
		} else {
			results = tr.Deliver(ctx, e, msg)
			msg.Close()
		}
	}
	return r.record(ctx, e, results, time.Since(start))
}

// entryMessage is Prefix followed by the blob from Skip on.
type entryMessage struct {
	prefix []byte
	skip   int64
	blob   store.BlobReader
}

func (m *entryMessage) Size() int64  { return int64(len(m.prefix)) + m.blob.Size() - m.skip }
func (m *entryMessage) Close() error { return m.blob.Close() }
func (m *entryMessage) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(m.prefix)) {
		n = copy(p, m.prefix[off:])
		if n == len(p) {
			return n, nil
		}
		off += int64(n)
	}
	k, err := m.blob.ReadAt(p[n:], off-int64(len(m.prefix))+m.skip)
	return n + k, err
}

func (r *Runner) open(ctx context.Context, e *store.QueueEntry) (*entryMessage, error) {
	b, err := r.st.OpenBlob(ctx, e.BlobID)
	if err != nil {
		return nil, err
	}
	skip := e.Skip
	if skip < 0 || skip > b.Size() {
		skip = 0
	}
	return &entryMessage{prefix: e.Prefix, skip: skip, blob: b}, nil
}

// record merges an attempt's results into the stored entry and decides
// what comes next.
func (r *Runner) record(ctx context.Context, orig store.QueueEntry, results []Result, took time.Duration) time.Time {
	// Write outcomes even if the runner is stopping: the remote has
	// answered, and not recording its 250 would send the message again.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	e, err := r.st.QueueGet(wctx, orig.ID)
	if errors.Is(err, store.ErrNotFound) {
		r.log.Warn("queue: entry was removed during its delivery attempt; results dropped", "queue_id", orig.ID)
		return time.Time{}
	}
	if err != nil {
		r.log.Error("queue: re-read entry", "queue_id", orig.ID, "err", err)
		e = orig
	}
	now := r.opts.Now()
	byAddr := map[string]Result{}
	for _, res := range results {
		byAddr[strings.ToLower(res.Address)] = res
	}
	var newlyFailed []int
	var firstTemp string
	for i := range e.Recipients {
		rc := &e.Recipients[i]
		res, ok := byAddr[strings.ToLower(rc.Address)]
		if !ok || rc.Status != store.RcptPending {
			continue
		}
		if res.Status == "" {
			res.Status = statusOf(res)
		}
		switch res.Outcome {
		case Delivered:
			rc.Status = store.RcptDelivered
			rc.LastError = ""
		case Permanent:
			newlyFailed = append(newlyFailed, i)
			rc.LastError = diag(res)
		default:
			rc.LastError = diag(res)
			if firstTemp == "" {
				firstTemp = rc.LastError
			}
		}
		r.m.outcomes.WithLabelValues(e.Transport, res.Outcome.String()).Inc()
		r.log.Info("delivery", "queue_id", e.ID, "from", e.From, "to", rc.Address, "relay", orDash(res.Remote),
			"status", res.Outcome.String(), "dsn", res.Status, "reply", res.Reply,
			"delay", now.Sub(e.CreatedAt).Round(time.Millisecond), "attempt_time", took.Round(time.Millisecond), "attempt", e.Attempts+1)
	}
	e.Attempts++
	e.LastError = firstTemp
	if firstTemp == "" && len(newlyFailed) > 0 {
		e.LastError = e.Recipients[newlyFailed[0]].LastError
	}
	r.m.attempts.WithLabelValues(e.Transport).Inc()

	pendingLeft := false
	for i, rc := range e.Recipients {
		if rc.Status == store.RcptPending && !contains(newlyFailed, i) {
			pendingLeft = true
		}
	}
	expired := pendingLeft && now.Sub(e.CreatedAt) >= r.opts.MaxAge
	if expired {
		for i := range e.Recipients {
			rc := &e.Recipients[i]
			if rc.Status == store.RcptPending && !contains(newlyFailed, i) {
				rc.LastError = "4.4.7 message expired after " + r.opts.MaxAge.String() + ": " + rc.LastError
				newlyFailed = append(newlyFailed, i)
				r.m.outcomes.WithLabelValues(e.Transport, "expired").Inc()
				r.log.Info("delivery", "queue_id", e.ID, "from", e.From, "to", rc.Address, "relay", "-", "status", "expired",
					"delay", now.Sub(e.CreatedAt).Round(time.Millisecond), "reply", rc.LastError)
			}
		}
		pendingLeft = false
	}

	if len(newlyFailed) > 0 {
		// DSN first, then record: a crash in between repeats the DSN
		// rather than losing it.
		if err := r.bounce(wctx, &e, newlyFailed, dsnFailure); err != nil {
			// Without a DSN the sender would never learn of the
			// failure: keep the recipients pending, the next attempt
			// fails them again and retries the DSN.
			r.log.Error("queue: send DSN; recipients stay queued", "queue_id", e.ID, "err", err)
			pendingLeft = true
		} else {
			for _, i := range newlyFailed {
				e.Recipients[i].Status = store.RcptFailed
			}
		}
	}
	if !pendingLeft {
		r.finish(wctx, &e)
		return time.Time{}
	}
	step := r.opts.Retry[min(e.Attempts, len(r.opts.Retry))-1]
	e.NextAttempt = now.Add(step)
	if deadline := e.CreatedAt.Add(r.opts.MaxAge); e.NextAttempt.After(deadline) {
		e.NextAttempt = deadline
	}
	warn := r.opts.DelayWarning > 0 && e.WarnedAt.IsZero() && now.Sub(e.CreatedAt) >= r.opts.DelayWarning && e.From != ""
	if warn {
		e.WarnedAt = now
	}
	if err := r.st.QueueUpdate(wctx, e); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return time.Time{}
		}
		r.log.Error("queue: record attempt", "queue_id", e.ID, "err", err)
		return now.Add(step)
	}
	if warn {
		var idx []int
		for i, rc := range e.Recipients {
			if rc.Status == store.RcptPending {
				idx = append(idx, i)
			}
		}
		r.bounce(wctx, &e, idx, dsnDelay)
	}
	if e.State != store.QueueReady {
		return time.Time{}
	}
	return e.NextAttempt
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// diag is the text kept as a recipient's last error.
func diag(res Result) string {
	s := res.Reply
	if res.Remote != "" {
		s = res.Remote + ": " + s
	}
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// finish removes an entry whose recipients are all settled (failed ones
// have had their DSN).
func (r *Runner) finish(ctx context.Context, e *store.QueueEntry) {
	if err := r.st.QueueDelete(ctx, e.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("queue: remove finished entry", "queue_id", e.ID, "err", err)
		// Record the settled recipients so the next attempt does
		// not deliver them again.
		if err := r.st.QueueUpdate(ctx, *e); err != nil {
			r.log.Error("queue: record finished entry", "queue_id", e.ID, "err", err)
		}
		return
	}
	r.log.Debug("queue: entry done", "queue_id", e.ID)
}

// Bounce fails every pending recipient of entry id with reason, sends the
// DSN and removes the entry (`mailstead queue bounce`). It works with or
// without a running runner; an attempt in flight at that moment loses its
// result (the message may then be both delivered and bounced).
func Bounce(ctx context.Context, st Store, inj Injector, hostname string, maxSize int64, id int64, reason string) error {
	e, err := st.QueueGet(ctx, id)
	if err != nil {
		return err
	}
	r := New(st, Options{Injector: inj, Hostname: hostname, BounceMaxSize: maxSize})
	var idx []int
	for i := range e.Recipients {
		if e.Recipients[i].Status == store.RcptPending {
			e.Recipients[i].LastError = reason
			idx = append(idx, i)
		}
	}
	if len(idx) > 0 {
		if err := r.bounce(ctx, &e, idx, dsnFailure); err != nil {
			return err
		}
	}
	return st.QueueDelete(ctx, id)
}
