package smtpserver

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The abuse limits keep their state in memory, in maps split into shards
// with a mutex each: no shared file, no global lock, nothing that can fail
// under concurrency (the stack this replaces lost mail when postscreen's
// cache file fataled on a btree lock). Memory is bounded: concurrency
// entries disappear with their last connection, rate entries expire and
// are evicted when a shard is full.

const (
	limiterShards = 32
	// maxRateEntries bounds the rate limiter per shard (about 260,000
	// client addresses in all, a few MB).
	maxRateEntries = 8192
	rateWindow     = time.Minute
)

// clientKey is the unit a client is counted in: its IPv4 address, or the
// /64 of an IPv6 address (one host controls a whole /64).
func clientKey(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// networkKey is the network a client is in for the per-network limit:
// IPv4 /24, IPv6 /48.
func networkKey(ip netip.Addr) netip.Prefix {
	bits := 24
	if ip.Is6() {
		bits = 48
	}
	p, _ := ip.Prefix(bits)
	return p
}

var shardSeed = maphash.MakeSeed()

func shardOf(k netip.Prefix) int {
	var h maphash.Hash
	h.SetSeed(shardSeed)
	b, _ := k.MarshalBinary()
	h.Write(b)
	return int(h.Sum64() % limiterShards)
}

// limitResult says which limit refused a connection.
type limitResult int

const (
	limitOK limitResult = iota
	limitIP
	limitNetwork
	limitRate
)

// connLimiter counts open connections per client and per network and new
// connections per client per minute.
type connLimiter struct {
	maxPerIP, maxPerNet, ratePerMin int
	shards                          [limiterShards]limiterShard
	now                             func() time.Time
}

type limiterShard struct {
	mu        sync.Mutex
	conns     map[netip.Prefix]int // client and network keys (their lengths differ)
	rate      map[netip.Prefix]*rateEntry
	lastSweep time.Time
}

// rateEntry is a sliding-window counter: the count of the current window
// plus the previous window's count weighted by how much of it still
// overlaps the last minute.
type rateEntry struct {
	start     time.Time // start of the current window
	cur, prev int
}

func newConnLimiter(maxPerIP, maxPerNet, ratePerMin int) *connLimiter {
	l := &connLimiter{maxPerIP: maxPerIP, maxPerNet: maxPerNet, ratePerMin: ratePerMin, now: time.Now}
	for i := range l.shards {
		l.shards[i].conns = map[netip.Prefix]int{}
		l.shards[i].rate = map[netip.Prefix]*rateEntry{}
	}
	return l
}

// acquire counts a new connection from ip and reports whether it may
// proceed; on limitOK the caller must call release when it closes. Every
// attempt counts towards the rate, refused ones too, so a client that keeps
// hammering stays refused until it slows down.
func (l *connLimiter) acquire(ip netip.Addr, mx bool) limitResult {
	if !ip.IsValid() {
		return limitOK
	}
	ck := clientKey(ip)
	if mx && l.ratePerMin > 0 && !l.rateOK(ck) {
		return limitRate
	}
	if !l.inc(ck, l.maxPerIP) {
		return limitIP
	}
	if mx && l.maxPerNet > 0 {
		if !l.inc(networkKey(ip), l.maxPerNet) {
			l.dec(ck, l.maxPerIP)
			return limitNetwork
		}
	}
	return limitOK
}

// release undoes a successful acquire.
func (l *connLimiter) release(ip netip.Addr, mx bool) {
	if !ip.IsValid() {
		return
	}
	l.dec(clientKey(ip), l.maxPerIP)
	if mx && l.maxPerNet > 0 {
		l.dec(networkKey(ip), l.maxPerNet)
	}
}

func (l *connLimiter) inc(k netip.Prefix, max int) bool {
	if max <= 0 {
		return true
	}
	sh := &l.shards[shardOf(k)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.conns[k] >= max {
		return false
	}
	sh.conns[k]++
	return true
}

func (l *connLimiter) dec(k netip.Prefix, max int) {
	if max <= 0 {
		return
	}
	sh := &l.shards[shardOf(k)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.conns[k]--; sh.conns[k] <= 0 {
		delete(sh.conns, k)
	}
}

func (l *connLimiter) rateOK(k netip.Prefix) bool {
	now := l.now()
	sh := &l.shards[shardOf(k)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.rate[k]
	if e == nil {
		if len(sh.rate) >= maxRateEntries {
			sh.evict(now)
		}
		e = &rateEntry{start: now}
		sh.rate[k] = e
	}
	e.roll(now)
	weight := 1 - float64(now.Sub(e.start))/float64(rateWindow)
	if float64(e.cur)+float64(e.prev)*weight >= float64(l.ratePerMin) {
		e.cur++ // refused attempts count too
		return false
	}
	e.cur++
	return true
}

func (e *rateEntry) roll(now time.Time) {
	switch d := now.Sub(e.start); {
	case d >= 2*rateWindow:
		e.start, e.cur, e.prev = now, 0, 0
	case d >= rateWindow:
		e.start, e.prev, e.cur = e.start.Add(rateWindow), e.cur, 0
	}
}

// evict makes room in a full shard: entries idle for two windows go (at
// most one sweep per window, so a flood of new addresses does not make
// every insert scan the map), then, if still full, an arbitrary one.
func (sh *limiterShard) evict(now time.Time) {
	if now.Sub(sh.lastSweep) >= rateWindow {
		sh.lastSweep = now
		for k, e := range sh.rate {
			if now.Sub(e.start) >= 2*rateWindow {
				delete(sh.rate, k)
			}
		}
	}
	for k := range sh.rate {
		if len(sh.rate) < maxRateEntries {
			break
		}
		delete(sh.rate, k)
	}
}

// ring is a sliding window of counts in fixed buckets: the sum over the
// last len(n) buckets.
type ring struct {
	n     [60]int
	epoch int64 // bucket number of the newest bucket
}

func (r *ring) advance(epoch int64) {
	if epoch <= r.epoch {
		return
	}
	if epoch-r.epoch >= int64(len(r.n)) {
		r.n = [60]int{}
	} else {
		for e := r.epoch + 1; e <= epoch; e++ {
			r.n[e%int64(len(r.n))] = 0
		}
	}
	r.epoch = epoch
}

func (r *ring) sum() int {
	s := 0
	for _, v := range r.n {
		s += v
	}
	return s
}

// add adds k (possibly negative, for a refund) to the newest bucket; a
// refund never makes the window negative.
func (r *ring) add(k int) {
	i := r.epoch % int64(len(r.n))
	r.n[i] += k
	for j := 0; r.n[i] < 0 && j < len(r.n); j++ {
		// Take the refund from older buckets.
		o := (i - int64(j) + int64(len(r.n))) % int64(len(r.n))
		if o == i || r.n[o] == 0 {
			continue
		}
		take := min(r.n[o], -r.n[i])
		r.n[o] -= take
		r.n[i] += take
	}
	if r.n[i] < 0 {
		r.n[i] = 0
	}
}

// SendLimits are per-user sending limits on submission (0 = unlimited).
type SendLimits struct {
	MessagesPerHour      int
	RecipientsPerMessage int
	RecipientsPerDay     int
}

// SendLimiter counts what each authenticated user sends, shared by all
// submission listeners of a process. Counts live in memory: a restart
// forgets them.
type SendLimiter struct {
	lim    SendLimits
	now    func() time.Time
	shards [limiterShards]sendShard
}

type sendShard struct {
	mu        sync.Mutex
	users     map[string]*userCounts
	lastSweep time.Time
}

type userCounts struct {
	hour ring // 60 one-minute buckets: messages
	day  ring // 60 24-minute buckets: recipients
}

const (
	hourBucket = time.Minute
	dayBucket  = 24 * time.Minute
)

// NewSendLimiter returns a limiter enforcing lim.
func NewSendLimiter(lim SendLimits) *SendLimiter {
	l := &SendLimiter{lim: lim, now: time.Now}
	for i := range l.shards {
		l.shards[i].users = map[string]*userCounts{}
	}
	return l
}

func (l *SendLimiter) shard(user string) *sendShard {
	var h maphash.Hash
	h.SetSeed(shardSeed)
	h.WriteString(user)
	return &l.shards[h.Sum64()%limiterShards]
}

// with runs f on the user's counts with both windows advanced to now.
func (l *SendLimiter) with(user string, f func(u *userCounts)) {
	now := l.now()
	sh := l.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[user]
	if u == nil {
		sh.sweep(now)
		u = &userCounts{}
		sh.users[user] = u
	}
	u.hour.advance(now.UnixNano() / int64(hourBucket))
	u.day.advance(now.UnixNano() / int64(dayBucket))
	f(u)
}

// sweep drops users with nothing in their windows, at most once a minute;
// the map is bounded by the number of accounts that sent in the last day.
func (sh *sendShard) sweep(now time.Time) {
	if now.Sub(sh.lastSweep) < time.Minute {
		return
	}
	sh.lastSweep = now
	for k, u := range sh.users {
		u.hour.advance(now.UnixNano() / int64(hourBucket))
		u.day.advance(now.UnixNano() / int64(dayBucket))
		if u.hour.sum() == 0 && u.day.sum() == 0 {
			delete(sh.users, k)
		}
	}
}

// reserveMessage counts one message for user unless the hourly limit is
// reached. A reservation that ends up not sent is given back with refund.
func (l *SendLimiter) reserveMessage(user string) bool {
	if l == nil || l.lim.MessagesPerHour <= 0 {
		return true
	}
	ok := false
	l.with(user, func(u *userCounts) {
		if u.hour.sum() < l.lim.MessagesPerHour {
			u.hour.add(1)
			ok = true
		}
	})
	return ok
}

// reserveRecipient counts one recipient for user unless the daily limit
// is reached.
func (l *SendLimiter) reserveRecipient(user string) bool {
	if l == nil || l.lim.RecipientsPerDay <= 0 {
		return true
	}
	ok := false
	l.with(user, func(u *userCounts) {
		if u.day.sum() < l.lim.RecipientsPerDay {
			u.day.add(1)
			ok = true
		}
	})
	return ok
}

// refund gives back reservations of a transaction that was not sent.
func (l *SendLimiter) refund(user string, messages, recipients int) {
	if l == nil || messages == 0 && recipients == 0 {
		return
	}
	l.with(user, func(u *userCounts) {
		if messages > 0 && l.lim.MessagesPerHour > 0 {
			u.hour.add(-messages)
		}
		if recipients > 0 && l.lim.RecipientsPerDay > 0 {
			u.day.add(-recipients)
		}
	})
}

// logThrottle lets through at most one log line per interval for a class
// of events that an attacker can trigger at will, and counts the rest.
type logThrottle struct {
	next       atomic.Int64 // unix nanoseconds
	suppressed atomic.Int64
}

// allow reports whether to log now, and how many lines were suppressed
// since the last one.
func (t *logThrottle) allow(now time.Time, every time.Duration) (bool, int64) {
	n := t.next.Load()
	if now.UnixNano() < n || !t.next.CompareAndSwap(n, now.Add(every).UnixNano()) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}

// limits returns the configured limits (none for a nil limiter).
func (l *SendLimiter) limits() SendLimits {
	if l == nil {
		return SendLimits{}
	}
	return l.lim
}
