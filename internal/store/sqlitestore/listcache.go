package sqlitestore

import (
	"context"
	"database/sql"
	"slices"
	"sync"

	"github.com/mailstead/mailstead/internal/store"
)

// listCache keeps the message list of recently listed mailboxes with the
// MODSEQ it reflects. IMAP lists a mailbox for every SELECT, FETCH 1:*
// and SEARCH; reading 100,000 rows each time was half the server's CPU
// under the IMAP benchmark. A cached list is brought up to date with
// Changes (rows whose MODSEQ is newer, expunge records), which touches
// only what changed.
type listCache struct {
	mu      sync.Mutex
	lists   map[int64]*cachedList
	entries int // total cached messages, bounded
	tick    uint64
}

type cachedList struct {
	// uidvalidity tells a mailbox from a later one that reuses its id.
	uidvalidity uint32
	modseq      int64
	metas       []store.MessageMeta
	used        uint64
}

// maxCachedMessages bounds the cache's memory (~150 bytes a message).
const maxCachedMessages = 1_000_000

func (c *listCache) get(id int64) *cachedList {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lists[id]
	if l != nil {
		c.tick++
		l.used = c.tick
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
}

func (c *listCache) drop(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.lists[id]; old != nil {
		c.entries -= len(old.metas)
		delete(c.lists, id)
	}
}

// ListMessages implements store.Store.
func (s *Store) ListMessages(ctx context.Context, mailboxID int64) ([]store.MessageMeta, error) {
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
			return slices.Clone(c.metas), nil
		}
		if c.modseq < hm {
			ch, err := s.Changes(ctx, mailboxID, c.modseq)
			if err != nil {
				return nil, err
			}
			if !ch.ExpungesPruned {
				metas := applyChanges(c.metas, ch)
				s.lists.put(mailboxID, &cachedList{uidvalidity: uv, modseq: ch.HighestModSeq, metas: metas})
				return slices.Clone(metas), nil
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
	s.lists.put(mailboxID, &cachedList{uidvalidity: uv, modseq: hm, metas: metas})
	return slices.Clone(metas), nil
}

// applyChanges returns list updated with ch: expunged UIDs removed,
// changed messages replaced or (new ones) inserted, ascending by UID.
func applyChanges(list []store.MessageMeta, ch store.Changes) []store.MessageMeta {
	gone := make(map[uint32]bool, len(ch.Expunged))
	for _, e := range ch.Expunged {
		gone[e.UID] = true
	}
	changed := make(map[uint32]store.MessageMeta, len(ch.Changed))
	for _, m := range ch.Changed {
		changed[m.UID] = m
	}
	out := make([]store.MessageMeta, 0, len(list)+len(ch.Changed))
	for _, m := range list {
		if gone[m.UID] {
			continue
		}
		if c, ok := changed[m.UID]; ok {
			m = c
			delete(changed, m.UID)
		}
		out = append(out, m)
	}
	sorted := true
	for _, m := range changed { // messages new to the list
		if gone[m.UID] {
			continue
		}
		if len(out) > 0 && m.UID < out[len(out)-1].UID {
			sorted = false
		}
		out = append(out, m)
	}
	if !sorted || len(changed) > 1 {
		slices.SortFunc(out, func(a, b store.MessageMeta) int { return int(int64(a.UID) - int64(b.UID)) })
	}
	return out
}
