// Package sqlitestore is the embedded default storage backend: metadata in
// SQLite (WAL, synchronous=FULL) and message bodies as immutable files (see
// blobDir).
//
// All writes go through one writer goroutine that commits whatever requests
// are waiting in a single transaction (group commit): under load many
// deliveries share one WAL fsync, and SQLite never sees two writers, so
// "database is locked" cannot happen. Each request runs inside its own
// SAVEPOINT, so one failing request does not fail the others of its batch.
// Reads use a separate pool of read-only connections, which WAL lets run
// concurrently with the writer.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/mailstead/mailstead/internal/store"
)

// Options configure Open.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the store's metrics; nil means none.
	Registerer prometheus.Registerer
	// MaxBatch bounds how many write requests share one commit.
	MaxBatch int
	// ReadConns is the size of the read pool (default 8). Connections
	// idle for a minute are closed, so a quiet server keeps only what
	// its load needs.
	ReadConns int
	// InlineMax is the largest blob kept inside the database rather than
	// as a file (default 128 KiB; negative: every blob is a file).
	InlineMax int64
	// ExpungeWindow is how long expunge records are kept for QRESYNC
	// before the maintenance loop prunes them (default
	// DefaultExpungeWindow, 90 days; negative: never prune). See
	// PruneExpunged.
	ExpungeWindow time.Duration
	// MaintainInterval is how often the maintenance loop runs (pruning,
	// incremental vacuum); default 10 minutes. Tests shorten it.
	MaintainInterval time.Duration
}

// Page cache sizes (negative: KiB) of the writer and of each reader, and
// how long an unused reader stays open. SQLite's default is 2,000 KiB per
// connection; under the IMAP benchmark's mixed load the smaller caches
// took SQLite's memory (modernc's C heap, outside the Go heap) from
// 13.8 to about 9 MiB without a measurable loss of throughput: the
// operating system caches the file anyway.
const (
	writerCache = "_pragma=cache_size(-1024)"
	readerCache = "_pragma=cache_size(-256)"
	readerIdle  = time.Minute
)

// Store implements store.Store.
type Store struct {
	log   *slog.Logger
	dir   string
	wdb   *sql.DB // exactly one connection: the writer's
	wconn *writerConn
	rdb   *sql.DB // read-only pool
	blobs *blobDir

	reqs      chan *writeReq
	maxBatch  int
	inlineMax int64
	// expungeWindow <= 0: never prune expunge records.
	expungeWindow time.Duration
	maintainEvery time.Duration
	stopOnce      sync.Once
	stop          chan struct{}
	done          chan struct{}

	watch watchers
	lists listCache

	metrics *metrics
}

var _ store.Store = (*Store)(nil)

type metrics struct {
	batchSize  prometheus.Histogram
	commitTime prometheus.Histogram
	deliveries prometheus.Counter
	fsyncs     prometheus.CounterFunc
}

// Open opens (creating if needed) the store in dir: dir/mailstead.db and
// dir/blobs/. The caller must ensure only one process opens dir at a time
// (package server holds a lock file).
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 8
	}
	if opts.InlineMax == 0 {
		opts.InlineMax = 128 << 10
	}
	if opts.ExpungeWindow == 0 {
		opts.ExpungeWindow = DefaultExpungeWindow
	}
	if opts.MaintainInterval <= 0 {
		opts.MaintainInterval = 10 * time.Minute
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	dbPath := filepath.Join(dir, "mailstead.db")
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	wdb, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)&_txlock=immediate&"+writerCache+"&"+common)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open database %s: %w", dbPath, err)
	}
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, err
	}
	// Readers keep a small page cache: with SQLite's default each of
	// them filled it with message content read once by FETCH. What a
	// reader needs again soon (the upper levels of the B-trees) fits.
	rdb, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=query_only(1)&"+readerCache+"&"+common)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	rdb.SetMaxOpenConns(opts.ReadConns)
	rdb.SetMaxIdleConns(opts.ReadConns)
	rdb.SetConnMaxIdleTime(readerIdle)
	blobs, err := newBlobDir(filepath.Join(dir, "blobs"))
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, err
	}
	s := &Store{
		log:           opts.Logger,
		dir:           dir,
		wdb:           wdb,
		rdb:           rdb,
		blobs:         blobs,
		reqs:          make(chan *writeReq, 1024),
		maxBatch:      opts.MaxBatch,
		inlineMax:     opts.InlineMax,
		stop:          make(chan struct{}),
		expungeWindow: opts.ExpungeWindow,
		maintainEvery: opts.MaintainInterval,
		done:          make(chan struct{}),
	}
	s.watch.init()
	if s.wconn, err = newWriterConn(ctx, wdb); err != nil {
		wdb.Close()
		rdb.Close()
		return nil, err
	}
	if err := s.recoverBlobs(ctx); err != nil {
		wdb.Close()
		rdb.Close()
		return nil, err
	}
	s.initMetrics(opts.Registerer)
	go s.writer()
	go s.maintain()
	return s, nil
}

func (s *Store) initMetrics(reg prometheus.Registerer) {
	s.metrics = &metrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailstead_store_commit_batch_size",
			Help:    "Write requests committed together in one transaction (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailstead_store_commit_seconds",
			Help:    "Time to run and commit one write batch, including fsyncs.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailstead_store_deliveries_total",
			Help: "Blobs durably delivered to one or more mailboxes.",
		}),
		fsyncs: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mailstead_store_blob_fsyncs_total",
			Help: "fsync calls made on blob files and directories (SQLite's own WAL syncs are not included).",
		}, func() float64 { return float64(s.blobs.fsyncs.Load()) }),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.metrics.batchSize, s.metrics.commitTime, s.metrics.deliveries, s.metrics.fsyncs} {
			if err := reg.Register(c); err != nil {
				s.log.Warn("register store metric", "err", err)
			}
		}
	}
}

// BlobFsyncs returns how many fsyncs the blob layer has made (tests and
// benchmarks report fsyncs per message with it).
func (s *Store) BlobFsyncs() int64 { return s.blobs.fsyncs.Load() }

// recoverBlobs sets the next blob id and removes files no row references.
func (s *Store) recoverBlobs(ctx context.Context) error {
	var max sql.NullInt64
	if err := s.wconn.conn.QueryRowContext(ctx, "SELECT max(id) FROM blobs").Scan(&max); err != nil {
		return fmt.Errorf("read blob ids: %w", err)
	}
	s.blobs.nextID.Store(max.Int64)
	rows, err := s.wconn.conn.QueryContext(ctx, "SELECT id FROM blobs WHERE inline = 0")
	if err != nil {
		return fmt.Errorf("read blob ids: %w", err)
	}
	known := map[int64]struct{}{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("read blob ids: %w", err)
		}
		known[id] = struct{}{}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read blob ids: %w", err)
	}
	n, err := s.blobs.sweep(func(id int64) bool { _, ok := known[id]; return ok })
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("removed unreferenced blob files left by an interrupted write or delete", "count", n)
	}
	return nil
}

// Close stops the writer after the pending requests and closes the
// databases.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.wconn.close()
	err := s.wdb.Close()
	if rerr := s.rdb.Close(); err == nil {
		err = rerr
	}
	return err
}

// Ping checks both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case <-s.stop:
		return store.ErrClosed
	default:
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return nil
}

// txn is what a write request sees: the transaction plus the batch's
// bookkeeping.
type txn struct {
	ctx context.Context
	s   *Store
	w   *writerConn
	// touched mailboxes and accounts are notified after commit.
	mailboxes map[int64]struct{}
	accounts  map[int64]struct{}
	// removeBlobs are deleted from disk after the commit.
	removeBlobs []int64
	// queued is set when a request added queue entries.
	queued bool
	now    time.Time
}

func (t *txn) touch(accountID, mailboxID int64) {
	if mailboxID != 0 {
		t.mailboxes[mailboxID] = struct{}{}
	}
	if accountID != 0 {
		t.accounts[accountID] = struct{}{}
	}
}

type writeReq struct {
	ctx  context.Context
	fn   func(*txn) error
	dirs []string // to fsync before commit
	done chan error
}

// write runs fn in the writer goroutine inside the next group commit and
// returns once it is durable (or failed).
func (s *Store) write(ctx context.Context, dirs []string, fn func(*txn) error) error {
	r := &writeReq{ctx: ctx, fn: fn, dirs: dirs, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-s.stop:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the request may
	// already be committed, and the caller must not assume otherwise.
	return <-r.done
}

func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*writeReq, 0, s.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.stop:
			// Drain what was queued before the stop.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*writeReq{r})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*writeReq) {
	start := time.Now()
	errs := make([]error, len(batch))
	finish := func(err error) {
		for i, r := range batch {
			if err != nil {
				r.done <- err
			} else {
				r.done <- errs[i]
			}
		}
	}
	w := s.wconn
	if err := w.begin(); err != nil {
		finish(fmt.Errorf("%w: begin: %v", store.ErrUnavailable, err))
		return
	}
	t := &txn{w: w, s: s, mailboxes: map[int64]struct{}{}, accounts: map[int64]struct{}{}, now: time.Now()}
	dirs := map[string]struct{}{}
	var removes []int64
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if err := w.raw("SAVEPOINT req"); err != nil {
			errs[i] = fmt.Errorf("%w: savepoint: %v", store.ErrUnavailable, err)
			continue
		}
		t.ctx = context.WithoutCancel(r.ctx)
		t.removeBlobs = t.removeBlobs[:0]
		mbx, acc := t.mailboxes, t.accounts
		t.mailboxes, t.accounts = map[int64]struct{}{}, map[int64]struct{}{}
		errs[i] = safeCall(r.fn, t)
		if errs[i] != nil {
			w.raw("ROLLBACK TO req")
			t.mailboxes, t.accounts = mbx, acc
		} else {
			for k := range t.mailboxes {
				mbx[k] = struct{}{}
			}
			for k := range t.accounts {
				acc[k] = struct{}{}
			}
			t.mailboxes, t.accounts = mbx, acc
			removes = append(removes, t.removeBlobs...)
			for _, d := range r.dirs {
				dirs[d] = struct{}{}
			}
		}
		w.raw("RELEASE req")
	}
	for d := range dirs {
		if err := s.blobs.syncDir(d); err != nil {
			w.rollback()
			finish(fmt.Errorf("%w: %v", store.ErrUnavailable, err))
			return
		}
	}
	if err := w.commit(); err != nil {
		w.rollback()
		finish(fmt.Errorf("%w: commit: %v", store.ErrUnavailable, err))
		return
	}
	for _, id := range removes {
		if err := s.blobs.remove(id); err != nil {
			s.log.Warn("remove blob file (swept on next start)", "blob", id, "err", err)
		}
	}
	s.metrics.batchSize.Observe(float64(len(batch)))
	s.metrics.commitTime.Observe(time.Since(start).Seconds())
	for id := range t.mailboxes {
		s.watch.notifyMailbox(id)
	}
	for id := range t.accounts {
		s.watch.notifyAccount(id)
	}
	if t.queued {
		s.watch.notifyQueue()
	}
	finish(nil)
}

// safeCall turns a panic in a request into an error, so one bad request
// cannot take down the writer and with it every session.
func safeCall(fn func(*txn) error, t *txn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in store write: %v", r)
		}
	}()
	return fn(t)
}

// readErr maps database errors from the read path.
func readErr(what string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%s: %w: %v", what, store.ErrUnavailable, err)
}

// watchers fans out change notifications.
type watchers struct {
	queue     chan struct{}
	mu        sync.Mutex
	mailboxes map[int64]map[chan struct{}]struct{}
	accounts  map[int64]map[chan struct{}]struct{}
}

func (w *watchers) notifyQueue() {
	select {
	case w.queue <- struct{}{}:
	default:
	}
}

// QueueWake returns a channel that receives a value (coalesced) when
// entries are added to the queue, so the queue runner can sleep until the
// next due time without polling. There is one such channel per store.
func (s *Store) QueueWake() <-chan struct{} { return s.watch.queue }

func (w *watchers) init() {
	w.queue = make(chan struct{}, 1)
	w.mailboxes = map[int64]map[chan struct{}]struct{}{}
	w.accounts = map[int64]map[chan struct{}]struct{}{}
}

func add(m map[int64]map[chan struct{}]struct{}, id int64, c chan struct{}) {
	if m[id] == nil {
		m[id] = map[chan struct{}]struct{}{}
	}
	m[id][c] = struct{}{}
}

func notify(set map[chan struct{}]struct{}) {
	for c := range set {
		select {
		case c <- struct{}{}:
		default: // a notification is already pending: coalesce
		}
	}
}

func (w *watchers) notifyMailbox(id int64) {
	w.mu.Lock()
	notify(w.mailboxes[id])
	w.mu.Unlock()
}

func (w *watchers) notifyAccount(id int64) {
	w.mu.Lock()
	notify(w.accounts[id])
	w.mu.Unlock()
}

func (w *watchers) watch(m map[int64]map[chan struct{}]struct{}, id int64) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	w.mu.Lock()
	add(m, id, c)
	w.mu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			w.mu.Lock()
			delete(m[id], c)
			if len(m[id]) == 0 {
				delete(m, id)
			}
			w.mu.Unlock()
		})
	}
}

// Watch implements store.Store.
func (s *Store) Watch(mailboxID int64) (<-chan struct{}, func()) {
	return s.watch.watch(s.watch.mailboxes, mailboxID)
}

// WatchAccount implements store.Store.
func (s *Store) WatchAccount(accountID int64) (<-chan struct{}, func()) {
	return s.watch.watch(s.watch.accounts, accountID)
}

// maintain drops message lists nobody used for a while, prunes expunge
// records older than the QRESYNC window and hands free pages of deleted
// mail back to the file system when they make up a large part of the
// database.
func (s *Store) maintain() {
	t := time.NewTicker(s.maintainEvery)
	defer t.Stop()
	lt := time.NewTicker(defaultTrimEvery)
	defer lt.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-lt.C:
			s.lists.trim() // also when no list is being read
		case <-t.C:
			if s.expungeWindow > 0 {
				n, err := s.PruneExpunged(context.Background(), time.Now().Add(-s.expungeWindow))
				if err != nil {
					s.log.Warn("prune expunge records", "err", err)
				} else if n > 0 {
					s.log.Debug("pruned expunge records", "count", n, "window", s.expungeWindow)
				}
			}
			if err := s.vacuum(context.Background()); err != nil {
				s.log.Warn("incremental vacuum", "err", err)
			}
		}
	}
}

func (s *Store) vacuum(ctx context.Context) error {
	return s.write(ctx, nil, func(t *txn) error {
		var free, total int64
		if err := t.QueryRowContext(t.ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
			return err
		}
		if err := t.QueryRowContext(t.ctx, "PRAGMA page_count").Scan(&total); err != nil {
			return err
		}
		if free < 1024 || free*10 < total {
			return nil
		}
		rows, err := t.QueryContext(t.ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", free))
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		rows.Close()
		s.log.Info("returned free pages to the file system", "pages", free)
		return rows.Err()
	})
}
