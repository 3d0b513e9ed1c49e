package spam

import (
	"sync"
	"time"
)

// ttlCache is a small bounded cache with expiry, for DNS-derived results
// that are asked for again and again while one client sends several
// messages. When full, it drops expired entries found among a few
// (randomly ordered, as map iteration is) entries, or else one of them:
// good enough for a cache, and bounded work per insert.
type ttlCache[V any] struct {
	mu  sync.Mutex
	m   map[string]ttlEntry[V]
	max int
	ttl time.Duration
	now func() time.Time
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

// evictSample is how many entries an insert into a full cache looks at.
const evictSample = 16

func newTTLCache[V any](max int, ttl time.Duration, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{m: make(map[string]ttlEntry[V]), max: max, ttl: ttl, now: now}
}

func (c *ttlCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	if !c.now().Before(e.expires) {
		delete(c.m, k)
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		n := 0
		var victim string
		evicted := false
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
				evicted = true
			} else if victim == "" {
				victim = key
			}
			if n++; n >= evictSample {
				break
			}
		}
		if !evicted {
			delete(c.m, victim)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}

func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
