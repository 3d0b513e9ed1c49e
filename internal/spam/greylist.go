package spam

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// GreylistConfig configures a Greylist. Zero fields get the defaults.
type GreylistConfig struct {
	// Path is the state file (in the data directory); "" keeps the
	// state in memory only.
	Path string
	// Delay is how long a new triplet is deferred (default 5m).
	Delay time.Duration
	// Window is how long after the first attempt a retry is accepted
	// (default 24h); a later retry starts over.
	Window time.Duration
	// PassTTL is how long a triplet that passed, and an allowlisted
	// client, are remembered after their last message (default 36 days).
	PassTTL time.Duration
	// AutoAllow: a client network whose triplets passed this many times
	// is not greylisted any more (default 5; negative disables).
	AutoAllow int
	// MaxEntries bounds the triplets and clients remembered (default
	// 200000; at least 64, one per shard); the least recently active
	// give way first.
	MaxEntries int
	// SaveInterval is how often the state is written to Path and expired
	// entries dropped (default 5m).
	SaveInterval time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Greylist defaults.
const (
	DefaultGreylistDelay   = 5 * time.Minute
	DefaultGreylistWindow  = 24 * time.Hour
	DefaultGreylistPassTTL = 36 * 24 * time.Hour
	DefaultAutoAllow       = 5
	DefaultGreylistMax     = 200000
	DefaultGreylistSave    = 5 * time.Minute
)

// Greylist defers the first message of every (client network, sender,
// recipient) triplet and accepts a retry after Delay: spamware rarely
// retries, real MTAs always do. The state lives in sharded maps (no
// lock is held across shards, none across I/O) and is written to a file
// periodically and on Close, atomically: a crash loses at most the
// changes since the last save, never the file.
type Greylist struct {
	cfg     GreylistConfig
	log     *slog.Logger
	shards  [greyShards]greyShard
	perShrd int

	saveMu    sync.Mutex
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	decisions *prometheus.CounterVec
}

const greyShards = 64

type greyShard struct {
	mu sync.Mutex
	m  map[greyKey]greyEntry
}

// greyKey is a hash of the triplet or client network: fixed size
// whatever the addresses, and no addresses in the state file.
type greyKey [16]byte

// Entry kinds.
const (
	kindPending uint8 = iota + 1 // triplet seen, not yet retried after Delay
	kindPassed                   // triplet retried in time
	kindClient                   // client network, counting passes
)

type greyEntry struct {
	kind  uint8
	first int64 // unix nanoseconds of the first attempt (pending)
	last  int64 // unix nanoseconds of the last pass (passed, client)
	count uint32
}

func (e greyEntry) expired(now int64, cfg *GreylistConfig) bool {
	switch e.kind {
	case kindPending:
		return now-e.first > int64(cfg.Window)
	default:
		return now-e.last > int64(cfg.PassTTL)
	}
}

// recency orders entries for eviction.
func (e greyEntry) recency() int64 { return max(e.first, e.last) }

// OpenGreylist returns a Greylist, loading its state from cfg.Path if
// the file exists. A damaged state file is logged and ignored: the worst
// outcome is that known senders are greylisted once more.
func OpenGreylist(cfg GreylistConfig) (*Greylist, error) {
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultGreylistDelay
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultGreylistWindow
	}
	if cfg.Window < cfg.Delay {
		return nil, fmt.Errorf("greylist: window %s is shorter than the delay %s", cfg.Window, cfg.Delay)
	}
	if cfg.PassTTL <= 0 {
		cfg.PassTTL = DefaultGreylistPassTTL
	}
	if cfg.AutoAllow == 0 {
		cfg.AutoAllow = DefaultAutoAllow
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultGreylistMax
	}
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = DefaultGreylistSave
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Greylist{cfg: cfg, log: cfg.Logger, perShrd: max(1, cfg.MaxEntries/greyShards), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range g.shards {
		g.shards[i].m = make(map[greyKey]greyEntry)
	}
	g.decisions = register(cfg.Registerer, g.log, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailstead_greylist_decisions_total",
		Help: "Greylist decisions at RCPT, by result (new, early, expired: deferred; passed, known, allowlisted: accepted).",
	}, []string{"result"}))
	if cfg.Registerer != nil {
		register(cfg.Registerer, g.log, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mailstead_greylist_entries",
			Help: "Triplets and client networks the greylist remembers.",
		}, func() float64 { return float64(g.Len()) }))
	}
	if cfg.Path != "" {
		if err := g.load(); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				g.log.Warn("greylist state unreadable, starting empty", "path", cfg.Path, "err", err)
			}
		}
	}
	go g.run()
	return g, nil
}

// clientNet is the network a client address is greylisted as: its /24
// for IPv4, its /64 for IPv6, since big senders retry from another
// address of the same pool.
func clientNet(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// normSender makes per-message sender variations (BATV tags, VERP
// numbers) compare equal, so a mailing list's retry is recognised.
func normSender(s string) string {
	s = strings.ToLower(s)
	if s == "" {
		return "<>"
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return s
	}
	// BATV: prvs=tag=local@domain (the tag changes daily).
	if rest, ok := strings.CutPrefix(local, "prvs="); ok {
		if _, l, ok := strings.Cut(rest, "="); ok {
			local = l
		}
	}
	var b strings.Builder
	digits := false
	for i := 0; i < len(local); i++ {
		ch := local[i]
		if ch >= '0' && ch <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteByte(ch)
	}
	return b.String() + "@" + domain
}

func greyHash(parts ...string) greyKey {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	var k greyKey
	copy(k[:], h.Sum(nil))
	return k
}

func (g *Greylist) shard(k greyKey) *greyShard { return &g.shards[int(k[0])%greyShards] }

// Check decides on one recipient: ok, or defer for at least retryAfter
// (answer 451 4.7.1, see GreylistReply). Call it at RCPT TO for mail
// from the internet, not for authenticated or allowlisted clients.
func (g *Greylist) Check(ip netip.Addr, from, to string) (ok bool, retryAfter time.Duration) {
	now := g.cfg.Now().UnixNano()
	cnet := clientNet(ip)
	if !cnet.IsValid() {
		return true, 0
	}
	ck := greyHash("c", cnet.String())
	if g.cfg.AutoAllow > 0 {
		s := g.shard(ck)
		s.mu.Lock()
		e, found := s.m[ck]
		allowed := found && e.count >= uint32(g.cfg.AutoAllow) && !e.expired(now, &g.cfg)
		s.mu.Unlock()
		if allowed {
			g.decisions.WithLabelValues("allowlisted").Inc()
			return true, 0
		}
	}
	tk := greyHash("t", cnet.String(), normSender(from), strings.ToLower(to))
	s := g.shard(tk)
	s.mu.Lock()
	e, found := s.m[tk]
	var result string
	switch {
	case found && e.kind == kindPassed && !e.expired(now, &g.cfg):
		e.last = now
		e.count++
		ok, result = true, "known"
	case found && e.kind == kindPending && now-e.first < int64(g.cfg.Delay):
		retryAfter, result = time.Duration(int64(g.cfg.Delay)-(now-e.first)), "early"
	case found && e.kind == kindPending && !e.expired(now, &g.cfg):
		e = greyEntry{kind: kindPassed, first: e.first, last: now, count: 1}
		ok, result = true, "passed"
	default:
		result = "new"
		if found {
			result = "expired"
		}
		e = greyEntry{kind: kindPending, first: now}
		retryAfter = g.cfg.Delay
	}
	g.putLocked(s, tk, e, now)
	s.mu.Unlock()
	g.decisions.WithLabelValues(result).Inc()
	if ok && g.cfg.AutoAllow > 0 {
		cs := g.shard(ck)
		cs.mu.Lock()
		c, found := cs.m[ck]
		if !found || c.expired(now, &g.cfg) {
			c = greyEntry{kind: kindClient}
		}
		c.last = now
		if c.count < uint32(g.cfg.AutoAllow) {
			c.count++
		}
		g.putLocked(cs, ck, c, now)
		cs.mu.Unlock()
	}
	return ok, retryAfter
}

// GreylistReply is the reply for a deferred recipient.
func GreylistReply() Reply { return replyGreylisted }

// putLocked stores e under k in s (locked), making room when the shard
// is full: expired entries among a sample go first, else the least
// recently active of the sample.
func (g *Greylist) putLocked(s *greyShard, k greyKey, e greyEntry, now int64) {
	if _, ok := s.m[k]; !ok && len(s.m) >= g.perShrd {
		n := 0
		var victim greyKey
		var oldest int64
		haveVictim, evicted := false, false
		for key, old := range s.m {
			if old.expired(now, &g.cfg) {
				delete(s.m, key)
				evicted = true
			} else if !haveVictim || old.recency() < oldest {
				victim, oldest, haveVictim = key, old.recency(), true
			}
			if n++; n >= evictSample*4 {
				break
			}
		}
		if !evicted && haveVictim {
			delete(s.m, victim)
		}
	}
	s.m[k] = e
}

// Len returns the number of triplets and clients remembered.
func (g *Greylist) Len() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// sweep drops expired entries.
func (g *Greylist) sweep() {
	now := g.cfg.Now().UnixNano()
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expired(now, &g.cfg) {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

func (g *Greylist) run() {
	defer close(g.done)
	t := time.NewTicker(g.cfg.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.sweep()
			if err := g.Save(); err != nil {
				g.log.Warn("save greylist state", "err", err)
			}
		}
	}
}

// Close stops the periodic save and saves the state a last time.
func (g *Greylist) Close() error {
	g.closeOnce.Do(func() {
		close(g.stop)
		<-g.done
		g.closeErr = g.Save()
	})
	return g.closeErr
}

// State file: magic, entries of fixed size, CRC-32 of everything before.
const (
	greyMagic     = "MSGREY01"
	greyEntrySize = 16 + 1 + 8 + 8 + 4
	// maxGreyFile bounds what load reads whatever the file claims.
	maxGreyFile = 256 << 20
)

// Save writes the state to the file atomically: a temporary file in the
// same directory, fsync, rename, fsync of the directory. Without a Path
// it does nothing.
func (g *Greylist) Save() error {
	if g.cfg.Path == "" {
		return nil
	}
	g.saveMu.Lock()
	defer g.saveMu.Unlock()
	var b bytes.Buffer
	b.WriteString(greyMagic)
	var rec [greyEntrySize]byte
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			copy(rec[:16], k[:])
			rec[16] = e.kind
			binary.BigEndian.PutUint64(rec[17:], uint64(e.first))
			binary.BigEndian.PutUint64(rec[25:], uint64(e.last))
			binary.BigEndian.PutUint32(rec[33:], e.count)
			b.Write(rec[:])
		}
		s.mu.Unlock()
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE(b.Bytes()))
	b.Write(sum[:])
	return writeFileAtomic(g.cfg.Path, b.Bytes())
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("greylist: create temporary file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("greylist: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("greylist: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("greylist: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("greylist: rename to %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		// The rename is durable once the directory is synced.
		d.Sync()
		d.Close()
	}
	return nil
}

func (g *Greylist) load() error {
	f, err := os.Open(g.cfg.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxGreyFile+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(b) > maxGreyFile {
		return fmt.Errorf("larger than %d bytes", maxGreyFile)
	}
	return g.loadBytes(b)
}

// loadBytes adds the entries of a state file's contents.
func (g *Greylist) loadBytes(b []byte) error {
	if len(b) < len(greyMagic)+4 || string(b[:len(greyMagic)]) != greyMagic {
		return errors.New("not a greylist state file")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return errors.New("checksum mismatch")
	}
	recs := body[len(greyMagic):]
	if len(recs)%greyEntrySize != 0 {
		return errors.New("truncated entry")
	}
	now := g.cfg.Now().UnixNano()
	n := 0
	for off := 0; off < len(recs); off += greyEntrySize {
		r := recs[off : off+greyEntrySize]
		var k greyKey
		copy(k[:], r[:16])
		e := greyEntry{
			kind:  r[16],
			first: int64(binary.BigEndian.Uint64(r[17:])),
			last:  int64(binary.BigEndian.Uint64(r[25:])),
			count: binary.BigEndian.Uint32(r[33:]),
		}
		if e.kind < kindPending || e.kind > kindClient || e.expired(now, &g.cfg) {
			continue
		}
		s := g.shard(k)
		if len(s.m) >= g.perShrd {
			continue
		}
		s.m[k] = e
		n++
	}
	g.log.Debug("greylist state loaded", "entries", n)
	return nil
}
