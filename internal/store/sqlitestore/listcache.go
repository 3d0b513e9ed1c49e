package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"sync"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// listCache keeps the message list of recently listed mailboxes with the
// MODSEQ it reflects. IMAP lists a mailbox for every SELECT, FETCH 1:*
// and SEARCH; reading 100,000 rows each time was half the server's CPU
// under the IMAP benchmark. A cached list is brought up to date with
// Changes (rows whose MODSEQ is newer, expunge records), which touches
// only what changed.
//
// A cached list is never modified: bringing it up to date makes a new
// one. So ListShared can hand the same slice to every caller without a
// copy (a copy of a 100,000-message list was most of a SELECT's time).
//
// Lists not used for listIdle are dropped (trim): a mailbox nobody
// lists, even one with sessions in IDLE (they follow Changes), should
// not hold ~200 bytes a message for the life of the process.
type listCache struct {
	mu        sync.Mutex
	lists     map[int64]*cachedList
	entries   int // total cached messages, bounded
	tick      uint64
	lastTrim  time.Time
	now       func() time.Time // tests move the clock
	listIdle  time.Duration
	trimEvery time.Duration
}

type cachedList struct {
	// uidvalidity tells a mailbox from a later one that reuses its id.
	uidvalidity uint32
	modseq      int64
	metas       []store.MessageMeta // shared: never modified
	used        uint64
	lastUsed    time.Time

	// derived is what the first ListShared caller's derive function
	// made of metas, kept for the others.
	deriveOnce sync.Once
	derived    any
}

// maxCachedMessages bounds the cache's memory (~200 bytes a message).
const maxCachedMessages = 1_000_000

// Defaults for dropping unused lists. Listing a 1,000-message mailbox
// again costs a few milliseconds, a 100,000-message one about half a
// second.
const (
	defaultListIdle  = 3 * time.Minute
	defaultTrimEvery = 30 * time.Second
)

func (c *listCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *listCache) get(id int64) *cachedList {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lists[id]
	if l != nil {
		c.tick++
		l.used = c.tick
		l.lastUsed = c.clock()
	}
	return l
}

func (c *listCache) put(id int64, l *cachedList) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lists == nil {
		c.lists = map[int64]*cachedList{}
	}
	if old := c.lists[id]; old != nil {
		c.entries -= len(old.metas)
	}
	c.tick++
	l.used = c.tick
	l.lastUsed = c.clock()
	c.lists[id] = l
	c.entries += len(l.metas)
	for c.entries > maxCachedMessages && len(c.lists) > 1 {
		var victim int64
		var oldest uint64 = ^uint64(0)
		for k, v := range c.lists {
			if k != id && v.used < oldest {
				victim, oldest = k, v.used
			}
		}
		c.entries -= len(c.lists[victim].metas)
		delete(c.lists, victim)
	}
	c.trimLocked(l.lastUsed, false)
}

func (c *listCache) drop(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.lists[id]; old != nil {
		c.entries -= len(old.metas)
		delete(c.lists, id)
	}
}

// trim drops the lists not used for the idle time. The store's
// maintenance calls it periodically; put calls it too, at most every
// trimEvery.
func (c *listCache) trim() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trimLocked(c.clock(), true)
}

func (c *listCache) trimLocked(now time.Time, force bool) {
	every, idle := c.trimEvery, c.listIdle
	if every == 0 {
		every = defaultTrimEvery
	}
	if idle == 0 {
		idle = defaultListIdle
	}
	if !force && now.Sub(c.lastTrim) < every {
		return
	}
	c.lastTrim = now
	for k, v := range c.lists {
		if now.Sub(v.lastUsed) >= idle {
			c.entries -= len(v.metas)
			delete(c.lists, k)
		}
	}
}

// ListMessages implements store.Store. The caller gets its own copy.
func (s *Store) ListMessages(ctx context.Context, mailboxID int64) ([]store.MessageMeta, error) {
	l, err := s.list(ctx, mailboxID)
	if l == nil || err != nil {
		return nil, err
	}
	return slices.Clone(l.metas), nil
}

// ListShared is ListMessages without the copy: metas (ascending by UID)
// is the store's cached list, shared by every caller and by later calls
// until the mailbox changes, and must not be modified, not even
// temporarily. Keeping it does not keep the cache from moving on.
//
// derive, when not nil, is called at most once per cached list, by the
// first caller that asks, and what it returns is handed to every caller
// of the same list: per-list work such as an IMAP session's array of
// UIDs is then done once per change of the mailbox instead of once per
// command. It must not modify metas either, and its result is shared in
// the same way. All callers should pass functions with results of the
// same type. A mailbox that does not exist gives nil, nil.
func (s *Store) ListShared(ctx context.Context, mailboxID int64, derive func([]store.MessageMeta) any) (metas []store.MessageMeta, derived any, err error) {
	l, err := s.list(ctx, mailboxID)
	if l == nil || err != nil {
		return nil, nil, err
	}
	if derive != nil {
		l.deriveOnce.Do(func() { l.derived = derive(l.metas) })
		derived = l.derived
	}
	return l.metas, derived, nil
}

// list returns the mailbox's list, up to date as of the call: from the
// cache, the cache brought forward with Changes, or the database. It
// returns nil, nil when the mailbox does not exist.
func (s *Store) list(ctx context.Context, mailboxID int64) (*cachedList, error) {
	var hm int64
	var uv uint32
	err := s.rdb.QueryRowContext(ctx, "SELECT highest_modseq, uidvalidity FROM mailboxes WHERE id = ?", mailboxID).Scan(&hm, &uv)
	if err == sql.ErrNoRows {
		s.lists.drop(mailboxID)
		return nil, nil
	}
	if err != nil {
		return nil, readErr("list messages", err)
	}
	if c := s.lists.get(mailboxID); c != nil && c.uidvalidity == uv {
		if c.modseq == hm {
			return c, nil
		}
		if c.modseq < hm {
			ch, err := s.Changes(ctx, mailboxID, c.modseq)
			if err != nil {
				return nil, err
			}
			if !ch.ExpungesPruned {
				l := &cachedList{uidvalidity: uv, modseq: ch.HighestModSeq, metas: applyChanges(c.metas, ch)}
				s.lists.put(mailboxID, l)
				return l, nil
			}
		}
	}
	// Full read, in one snapshot with the MODSEQ it reflects.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, readErr("list messages", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "SELECT highest_modseq, uidvalidity FROM mailboxes WHERE id = ?", mailboxID).Scan(&hm, &uv); err != nil {
		if err == sql.ErrNoRows {
			return nil, nil
		}
		return nil, readErr("list messages", err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+metaCols+" FROM messages m WHERE m.mailbox_id = ? ORDER BY m.uid", mailboxID)
	if err != nil {
		return nil, readErr("list messages", err)
	}
	var metas []store.MessageMeta
	for rows.Next() {
		m, err := scanMeta(rows)
		if err != nil {
			rows.Close()
			return nil, readErr("list messages", err)
		}
		metas = append(metas, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, readErr("list messages", err)
	}
	l := &cachedList{uidvalidity: uv, modseq: hm, metas: slices.Clip(metas)}
	s.lists.put(mailboxID, l)
	return l, nil
}

// applyChanges returns a new list: list updated with ch, expunged UIDs
// removed, changed messages replaced or (new ones) inserted, ascending
// by UID. list itself is not modified. The work is one copy of list plus
// a binary search per change, and a pass over the list only when
// something was expunged: a flag change in a 100,000-message mailbox
// should not cost 100,000 map lookups.
func applyChanges(list []store.MessageMeta, ch store.Changes) []store.MessageMeta {
	byUID := func(m store.MessageMeta, uid uint32) int { return cmp.Compare(m.UID, uid) }
	out := make([]store.MessageMeta, len(list), len(list)+len(ch.Changed))
	copy(out, list)
	var added []store.MessageMeta
	for _, m := range ch.Changed {
		if i, ok := slices.BinarySearchFunc(out, m.UID, byUID); ok {
			out[i] = m
		} else {
			added = append(added, m)
		}
	}
	if len(ch.Expunged) > 0 {
		gone := make(map[uint32]bool, len(ch.Expunged))
		for _, e := range ch.Expunged {
			gone[e.UID] = true
		}
		isGone := func(m store.MessageMeta) bool { return gone[m.UID] }
		out = slices.DeleteFunc(out, isGone)
		added = slices.DeleteFunc(added, isGone)
	}
	if len(added) > 0 {
		slices.SortFunc(added, func(a, b store.MessageMeta) int { return cmp.Compare(a.UID, b.UID) })
		added = slices.CompactFunc(added, func(a, b store.MessageMeta) bool { return a.UID == b.UID })
		sorted := len(out) == 0 || added[0].UID > out[len(out)-1].UID
		out = append(out, added...)
		if !sorted {
			slices.SortFunc(out, func(a, b store.MessageMeta) int { return cmp.Compare(a.UID, b.UID) })
		}
	}
	return slices.Clip(out)
}
