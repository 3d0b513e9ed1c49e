package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

const metaCols = "m.id, m.mailbox_id, m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.save_date, m.size, m.blob_id, m.email_id, m.thread_id"

func scanMeta(row scanner, extra ...any) (store.MessageMeta, error) {
	var m store.MessageMeta
	var kw string
	var idate, sdate int64
	dest := append([]any{&m.ID, &m.MailboxID, &m.UID, &m.ModSeq, &m.Flags, &kw, &idate, &sdate, &m.Size, &m.BlobID, &m.EmailID, &m.ThreadID}, extra...)
	if err := row.Scan(dest...); err != nil {
		return m, err
	}
	if kw != "" {
		m.Keywords = strings.Split(kw, " ")
	}
	m.InternalDate = time.Unix(0, idate)
	m.SaveDate = time.Unix(0, sdate)
	return m, nil
}

func joinKeywords(kw []string) string {
	return strings.Join(kw, " ")
}

// validKeyword accepts IMAP atoms without the characters that would break
// our space-separated storage or the protocol.
func validKeyword(k string) bool {
	if k == "" || len(k) > 200 {
		return false
	}
	for _, c := range []byte(k) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func cleanKeywords(kw []string) ([]string, error) {
	var out []string
	for _, k := range kw {
		if !validKeyword(k) {
			return nil, fmt.Errorf("keyword %q: %w", k, store.ErrInvalid)
		}
		dup := false
		for _, o := range out {
			if strings.EqualFold(o, k) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, k)
		}
	}
	return out, nil
}

// allocUIDs reserves n UIDs (starting at want when nonzero, for imports) and
// one new MODSEQ for a mailbox.
func (t *txn) allocUIDs(mailboxID int64, n uint32, want uint32) (first uint32, modseq int64, err error) {
	var next uint32
	if err = t.QueryRowContext(t.ctx, "SELECT uidnext FROM mailboxes WHERE id = ?", mailboxID).Scan(&next); err != nil {
		if err == sql.ErrNoRows {
			err = fmt.Errorf("mailbox %d: %w", mailboxID, store.ErrNotFound)
		}
		return
	}
	first = next
	if want != 0 {
		if want < next {
			return 0, 0, fmt.Errorf("import uid %d below uidnext %d: %w", want, next, store.ErrInvalid)
		}
		first = want
	}
	if uint64(first)+uint64(n) > 0xffffffff {
		return 0, 0, fmt.Errorf("mailbox %d: uid space exhausted: %w", mailboxID, store.ErrInvalid)
	}
	err = t.QueryRowContext(t.ctx, "UPDATE mailboxes SET uidnext = ?, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq", first+n, mailboxID).Scan(&modseq)
	return
}

func (t *txn) bumpModSeq(mailboxID int64) (int64, error) {
	var modseq int64
	err := t.QueryRowContext(t.ctx, "UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq", mailboxID).Scan(&modseq)
	return modseq, err
}

func (t *txn) checkQuota(accountID, add int64) error {
	var quota, used int64
	if err := t.QueryRowContext(t.ctx, "SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?", accountID).Scan(&quota, &used); err != nil {
		if err == sql.ErrNoRows {
			return fmt.Errorf("account %d: %w", accountID, store.ErrNotFound)
		}
		return err
	}
	if quota > 0 && used+add > quota {
		return fmt.Errorf("account %d: %d of %d bytes used, %d more: %w", accountID, used, quota, add, store.ErrOverQuota)
	}
	return nil
}

func (t *txn) resolveRecipientMailbox(r store.Recipient) (int64, error) {
	if r.MailboxID != 0 {
		acc, err := t.accountOfMailbox(r.MailboxID)
		if err != nil {
			return 0, err
		}
		if acc != r.AccountID {
			return 0, fmt.Errorf("mailbox %d is not account %d's: %w", r.MailboxID, r.AccountID, store.ErrInvalid)
		}
		return r.MailboxID, nil
	}
	name := r.MailboxName
	if name == "" {
		name = "INBOX"
	}
	name, err := normName(name)
	if err != nil {
		name = "INBOX"
	}
	var id int64
	err = t.QueryRowContext(t.ctx, "SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", r.AccountID, name).Scan(&id)
	if err == nil {
		return id, nil
	}
	if err != sql.ErrNoRows {
		return 0, err
	}
	if r.CreateMailbox && name != "INBOX" {
		return t.createMailbox(r.AccountID, name, "", 0)
	}
	if name != "INBOX" {
		// fileinto a missing mailbox without :create: deliver to INBOX
		// rather than lose the message.
		return t.resolveRecipientMailbox(store.Recipient{AccountID: r.AccountID})
	}
	return 0, fmt.Errorf("account %d has no INBOX: %w", r.AccountID, store.ErrNotFound)
}

func (s *Store) Deliver(ctx context.Context, d store.Delivery) ([]store.Delivered, error) {
	if d.Blob == nil || len(d.Recipients)+len(d.Queue) == 0 {
		return nil, fmt.Errorf("deliver: need a blob and recipients: %w", store.ErrInvalid)
	}
	for _, q := range d.Queue {
		if q.Transport == "" || q.Destination == "" || len(q.Recipients) == 0 {
			return nil, fmt.Errorf("queue entry needs transport, destination and recipients: %w", store.ErrInvalid)
		}
	}
	if d.ThreadID != "" && !validThreadID(d.ThreadID) {
		return nil, fmt.Errorf("thread id %q: %w", d.ThreadID, store.ErrInvalid)
	}
	for i := range d.Recipients {
		kw, err := cleanKeywords(d.Recipients[i].Keywords)
		if err != nil {
			return nil, err
		}
		d.Recipients[i].Keywords = kw
	}
	blobID := s.blobs.nextID.Add(1)
	size := d.Blob.Size()
	var inline []byte
	var dirs []string
	if size <= s.inlineMax {
		inline = make([]byte, size)
		if n, err := d.Blob.ReadAt(inline, 0); int64(n) != size {
			return nil, fmt.Errorf("read message: %d of %d bytes: %v", n, size, err)
		}
	} else {
		dir, err := s.blobs.write(blobID, d.Blob)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		dirs = []string{dir}
	}
	emailID := "M" + strconv.FormatInt(blobID, 36)
	// The header is read here, outside the writer, which only looks the
	// hashed Message-IDs up.
	var keys threadKeys
	if d.ThreadID == "" && len(d.Recipients) > 0 {
		if inline != nil {
			keys = threadKeysOf(bytes.NewReader(inline))
		} else {
			keys = threadKeysOf(d.Blob)
		}
	}
	out := make([]store.Delivered, 0, len(d.Recipients))
	err := s.write(ctx, dirs, func(t *txn) error {
		out = out[:0]
		threads := map[int64]string{} // account -> thread of this message
		if _, err := t.ExecContext(t.ctx, "INSERT INTO blobs(id, size, summary, created_at, inline) VALUES(?,?,?,?,?)", blobID, size, d.Summary, t.now.Unix(), inline != nil); err != nil {
			return fmt.Errorf("insert blob: %w", err)
		}
		if inline != nil {
			if _, err := t.ExecContext(t.ctx, "INSERT INTO blob_data(id, data) VALUES(?,?)", blobID, inline); err != nil {
				return fmt.Errorf("insert blob data: %w", err)
			}
		}
		for _, r := range d.Recipients {
			mb, err := t.resolveRecipientMailbox(r)
			if err != nil {
				return err
			}
			msize := int64(len(r.Prefix)) + size
			if !r.IgnoreQuota {
				if err := t.checkQuota(r.AccountID, msize); err != nil {
					return err
				}
			}
			uid, modseq, err := t.allocUIDs(mb, 1, r.UID)
			if err != nil {
				return err
			}
			idate := r.InternalDate
			if idate.IsZero() {
				idate = t.now
			}
			tid, ok := threads[r.AccountID]
			if !ok {
				tid = d.ThreadID
				if tid == "" {
					if tid, err = t.assignThread(r.AccountID, keys); err != nil {
						return err
					}
				}
				threads[r.AccountID] = tid
			}
			res, err := t.ExecContext(t.ctx, `INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internal_date, save_date, size, blob_id, prefix, email_id, thread_id)
				VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`, mb, uid, modseq, r.Flags, joinKeywords(r.Keywords), unixNano(idate), unixNano(t.now), msize, blobID, r.Prefix, emailID, tid)
			if err != nil {
				return fmt.Errorf("insert message: %w", err)
			}
			mid, _ := res.LastInsertId()
			if _, err := t.ExecContext(t.ctx, "UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ?", msize, r.AccountID); err != nil {
				return err
			}
			t.touch(r.AccountID, mb)
			out = append(out, store.Delivered{MailboxID: mb, UID: uid, ModSeq: modseq, MessageID: mid})
		}
		for _, q := range d.Queue {
			q.BlobID = blobID
			id, err := t.enqueue(q)
			if err != nil {
				return err
			}
			out = append(out, store.Delivered{QueueID: id})
		}
		if len(d.Queue) > 0 {
			t.queued = true
		}
		return nil
	})
	if err != nil {
		if inline == nil {
			s.blobs.remove(blobID)
		}
		return nil, err
	}
	s.metrics.deliveries.Inc()
	return out, nil
}

// uidChunks splits a sorted, deduplicated UID list for IN (...) queries.
func uidChunks(uids []uint32, size int) [][]uint32 {
	var out [][]uint32
	for len(uids) > size {
		out = append(out, uids[:size])
		uids = uids[size:]
	}
	if len(uids) > 0 {
		out = append(out, uids)
	}
	return out
}

func sortedUIDs(uids []uint32) []uint32 {
	u := slices.Clone(uids)
	slices.Sort(u)
	return slices.Compact(u)
}

func inList(uids []uint32) (string, []any) {
	var b strings.Builder
	args := make([]any, len(uids))
	for i, u := range uids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('?')
		args[i] = u
	}
	return b.String(), args
}

type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// selectByUIDs runs q (which must end in "uid IN (") for the given UIDs, in
// chunks, or over the whole mailbox when the list is long.
func selectByUIDs(ctx context.Context, db queryer, q string, mailboxID int64, uids []uint32, scan func(*sql.Rows) error) error {
	uids = sortedUIDs(uids)
	if len(uids) > 2000 {
		want := make(map[uint32]bool, len(uids))
		for _, u := range uids {
			want[u] = true
		}
		rows, err := db.QueryContext(ctx, strings.Replace(q, "m.uid IN (%s)", "m.uid BETWEEN ? AND ?", 1)+" ORDER BY m.uid", mailboxID, uids[0], uids[len(uids)-1])
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	for _, chunk := range uidChunks(uids, 500) {
		in, args := inList(chunk)
		rows, err := db.QueryContext(ctx, fmt.Sprintf(q, in)+" ORDER BY m.uid", append([]any{mailboxID}, args...)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) GetMessages(ctx context.Context, mailboxID int64, uids []uint32) ([]store.Message, error) {
	want := map[uint32]bool{}
	long := len(uids) > 2000
	if long {
		for _, u := range uids {
			want[u] = true
		}
	}
	var out []store.Message
	err := selectByUIDs(ctx, s.rdb, "SELECT "+metaCols+", m.prefix, b.summary FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid IN (%s)", mailboxID, uids, func(rows *sql.Rows) error {
		var msg store.Message
		var err error
		msg.MessageMeta, err = scanMeta(rows, &msg.Prefix, &msg.Summary)
		if err != nil {
			return err
		}
		if !long || want[msg.UID] {
			out = append(out, msg)
		}
		return nil
	})
	if err != nil {
		return nil, readErr("get messages", err)
	}
	return out, nil
}

func (s *Store) Changes(ctx context.Context, mailboxID int64, since int64) (store.Changes, error) {
	var c store.Changes
	// The read connection gives a consistent snapshot only within one
	// transaction; the floor, the messages and the expunge records must
	// all come from the same state, or a prune between the queries would
	// make an incomplete answer look exact.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return c, readErr("changes", err)
	}
	defer tx.Rollback()
	var floor int64
	if err := tx.QueryRowContext(ctx, "SELECT highest_modseq, expunged_floor FROM mailboxes WHERE id = ?", mailboxID).Scan(&c.HighestModSeq, &floor); err != nil {
		return c, readErr(fmt.Sprintf("mailbox %d", mailboxID), err)
	}
	// Records with MODSEQ <= floor are gone: the answer is exact only
	// for a client that had seen everything up to the floor.
	c.ExpungesPruned = since < floor
	rows, err := tx.QueryContext(ctx, "SELECT "+metaCols+" FROM messages m WHERE m.mailbox_id = ? AND m.modseq > ? ORDER BY m.uid", mailboxID, since)
	if err != nil {
		return c, readErr("changes", err)
	}
	for rows.Next() {
		m, err := scanMeta(rows)
		if err != nil {
			rows.Close()
			return c, readErr("changes", err)
		}
		c.Changed = append(c.Changed, m)
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, "SELECT uid, modseq FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailboxID, since)
	if err != nil {
		return c, readErr("changes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e store.ExpungeRecord
		if err := rows.Scan(&e.UID, &e.ModSeq); err != nil {
			return c, readErr("changes", err)
		}
		c.Expunged = append(c.Expunged, e)
	}
	return c, rows.Err()
}

func (s *Store) OpenBlob(ctx context.Context, blobID int64) (store.BlobReader, error) {
	var inline bool
	var data []byte
	err := s.rdb.QueryRowContext(ctx, "SELECT b.inline, d.data FROM blobs b LEFT JOIN blob_data d ON d.id = b.id WHERE b.id = ?", blobID).Scan(&inline, &data)
	if err != nil {
		return nil, readErr(fmt.Sprintf("blob %d", blobID), err)
	}
	if inline {
		return memBlob{bytes.NewReader(data)}, nil
	}
	return s.blobs.open(blobID)
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

type fullRow struct {
	store.MessageMeta
	prefix []byte
}

func (t *txn) rowsFor(mailboxID int64, uids []uint32) ([]fullRow, error) {
	var out []fullRow
	long := len(uids) > 2000
	want := map[uint32]bool{}
	if long {
		for _, u := range uids {
			want[u] = true
		}
	}
	err := selectByUIDs(t.ctx, t, "SELECT "+metaCols+", m.prefix FROM messages m WHERE m.mailbox_id = ? AND m.uid IN (%s)", mailboxID, uids, func(rows *sql.Rows) error {
		var r fullRow
		var err error
		r.MessageMeta, err = scanMeta(rows, &r.prefix)
		if err != nil {
			return err
		}
		if !long || want[r.UID] {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// uids lists the UIDs of a mailbox, all or those with the given flags set.
func (t *txn) uids(mailboxID int64, withFlags *store.Flags) ([]uint32, error) {
	q := "SELECT uid FROM messages WHERE mailbox_id = ?"
	args := []any{mailboxID}
	if withFlags != nil {
		q += " AND flags & ? = ?"
		args = append(args, *withFlags, *withFlags)
	}
	rows, err := t.QueryContext(t.ctx, q+" ORDER BY uid", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func applyFlags(cur store.Flags, curKw []string, u store.FlagUpdate) (store.Flags, []string) {
	switch u.Op {
	case store.FlagsAdd:
		kw := slices.Clone(curKw)
		for _, k := range u.Keywords {
			if !slices.ContainsFunc(kw, func(o string) bool { return strings.EqualFold(o, k) }) {
				kw = append(kw, k)
			}
		}
		return cur | u.Flags, kw
	case store.FlagsRemove:
		var kw []string
		for _, k := range curKw {
			if !slices.ContainsFunc(u.Keywords, func(o string) bool { return strings.EqualFold(o, k) }) {
				kw = append(kw, k)
			}
		}
		return cur &^ u.Flags, kw
	default:
		return u.Flags, slices.Clone(u.Keywords)
	}
}

func sameKeywords(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range a {
		if !slices.ContainsFunc(b, func(o string) bool { return strings.EqualFold(o, k) }) {
			return false
		}
	}
	return true
}

func (s *Store) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, u store.FlagUpdate) (store.StoreResult, error) {
	var res store.StoreResult
	kw, err := cleanKeywords(u.Keywords)
	if err != nil {
		return res, err
	}
	u.Keywords = kw
	err = s.write(ctx, nil, func(t *txn) error {
		res = store.StoreResult{}
		acc, err := t.accountOfMailbox(mailboxID)
		if err != nil {
			return err
		}
		rows, err := t.rowsFor(mailboxID, uids)
		if err != nil {
			return err
		}
		var modseq int64
		for _, r := range rows {
			if u.UnchangedSince > 0 && r.ModSeq > u.UnchangedSince {
				res.Failed = append(res.Failed, r.UID)
				continue
			}
			nf, nkw := applyFlags(r.Flags, r.Keywords, u)
			if nf == r.Flags && sameKeywords(nkw, r.Keywords) {
				continue
			}
			if modseq == 0 {
				if modseq, err = t.bumpModSeq(mailboxID); err != nil {
					return err
				}
			}
			if _, err := t.ExecContext(t.ctx, "UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE id = ?", nf, joinKeywords(nkw), modseq, r.ID); err != nil {
				return err
			}
			m := r.MessageMeta
			m.Flags, m.Keywords, m.ModSeq = nf, nkw, modseq
			res.Updated = append(res.Updated, m)
		}
		if modseq != 0 {
			t.touch(acc, mailboxID)
		}
		return nil
	})
	return res, err
}

// copyMessages copies rows of src into dst with fresh UIDs.
func (t *txn) copyMessages(src int64, uids []uint32, dst int64, quota bool) (store.CopyResult, error) {
	var res store.CopyResult
	srcAcc, err := t.accountOfMailbox(src)
	if err != nil {
		return res, err
	}
	dstAcc, err := t.accountOfMailbox(dst)
	if err != nil {
		return res, err
	}
	if err := t.QueryRowContext(t.ctx, "SELECT uidvalidity FROM mailboxes WHERE id = ?", dst).Scan(&res.UIDValidity); err != nil {
		return res, err
	}
	rows, err := t.rowsFor(src, uids)
	if err != nil {
		return res, err
	}
	if len(rows) == 0 {
		return res, nil
	}
	var total int64
	for _, r := range rows {
		total += r.Size
	}
	if quota {
		if err := t.checkQuota(dstAcc, total); err != nil {
			return res, err
		}
	}
	first, modseq, err := t.allocUIDs(dst, uint32(len(rows)), 0)
	if err != nil {
		return res, err
	}
	for i, r := range rows {
		uid := first + uint32(i)
		// Within an account a copy keeps its thread id (RFC 8474).
		tid, err := t.copiedThread(srcAcc, dstAcc, r.ThreadID)
		if err != nil {
			return res, err
		}
		if _, err := t.ExecContext(t.ctx, `INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internal_date, save_date, size, blob_id, prefix, email_id, thread_id)
			VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`, dst, uid, modseq, r.Flags, joinKeywords(r.Keywords), unixNano(r.InternalDate), unixNano(t.now), r.Size, r.BlobID, r.prefix, r.EmailID, tid); err != nil {
			return res, fmt.Errorf("copy message: %w", err)
		}
		res.SrcUIDs = append(res.SrcUIDs, r.UID)
		res.DstUIDs = append(res.DstUIDs, uid)
	}
	if _, err := t.ExecContext(t.ctx, "UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ?", total, dstAcc); err != nil {
		return res, err
	}
	t.touch(dstAcc, dst)
	return res, nil
}

func (s *Store) Copy(ctx context.Context, src int64, uids []uint32, dst int64) (store.CopyResult, error) {
	var res store.CopyResult
	err := s.write(ctx, nil, func(t *txn) error {
		var err error
		res, err = t.copyMessages(src, uids, dst, true)
		return err
	})
	return res, err
}

func (t *txn) moveMessages(src int64, uids []uint32, dst int64) (store.CopyResult, error) {
	srcAcc, err := t.accountOfMailbox(src)
	if err != nil {
		return store.CopyResult{}, err
	}
	dstAcc, err := t.accountOfMailbox(dst)
	if err != nil {
		return store.CopyResult{}, err
	}
	res, err := t.copyMessages(src, uids, dst, srcAcc != dstAcc)
	if err != nil {
		return res, err
	}
	if _, err := t.expunge(src, res.SrcUIDs); err != nil {
		return res, err
	}
	return res, nil
}

func (s *Store) Move(ctx context.Context, src int64, uids []uint32, dst int64) (store.CopyResult, error) {
	var res store.CopyResult
	if src == dst {
		return res, fmt.Errorf("move into the same mailbox: %w", store.ErrInvalid)
	}
	err := s.write(ctx, nil, func(t *txn) error {
		var err error
		res, err = t.moveMessages(src, uids, dst)
		return err
	})
	return res, err
}

// expunge removes messages (uids nil: all \Deleted ones), records them for
// QRESYNC and frees unreferenced blobs.
func (t *txn) expunge(mailboxID int64, uids []uint32) ([]uint32, error) {
	acc, err := t.accountOfMailbox(mailboxID)
	if err != nil {
		return nil, err
	}
	var rows []fullRow
	if uids == nil {
		del := store.FlagDeleted
		if uids, err = t.uids(mailboxID, &del); err != nil {
			return nil, err
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	if rows, err = t.rowsFor(mailboxID, uids); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	modseq, err := t.bumpModSeq(mailboxID)
	if err != nil {
		return nil, err
	}
	var out []uint32
	var size int64
	var blobs []int64
	for _, r := range rows {
		if _, err := t.ExecContext(t.ctx, "DELETE FROM messages WHERE id = ?", r.ID); err != nil {
			return nil, err
		}
		if _, err := t.ExecContext(t.ctx, "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq, expunged_at) VALUES(?,?,?,?)", mailboxID, r.UID, modseq, unixNano(t.now)); err != nil {
			return nil, err
		}
		out = append(out, r.UID)
		size += r.Size
		blobs = append(blobs, r.BlobID)
	}
	if _, err := t.ExecContext(t.ctx, "UPDATE accounts SET used_bytes = max(0, used_bytes - ?) WHERE id = ?", size, acc); err != nil {
		return nil, err
	}
	slices.Sort(blobs)
	if err := t.freeBlobs(slices.Compact(blobs)); err != nil {
		return nil, err
	}
	t.touch(acc, mailboxID)
	return out, nil
}

func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	var out []uint32
	if uids != nil && len(uids) == 0 {
		return nil, nil
	}
	err := s.write(ctx, nil, func(t *txn) error {
		var err error
		out, err = t.expunge(mailboxID, uids)
		return err
	})
	return out, err
}

func (s *Store) ClaimRecent(ctx context.Context, mailboxID int64) (uint32, error) {
	var first, next uint32
	// Most SELECTs find nothing new to claim: answer those from a
	// reader instead of queueing a write transaction behind deliveries.
	// A delivery racing with this read is claimed by the next session,
	// as if this read had happened just before it.
	err := s.rdb.QueryRowContext(ctx, "SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", mailboxID).Scan(&first, &next)
	if err == nil && first >= next {
		return first, nil
	}
	if err != nil && err != sql.ErrNoRows {
		return 0, readErr("claim recent", err)
	}
	err = s.write(ctx, nil, func(t *txn) error {
		var next uint32
		if err := t.QueryRowContext(t.ctx, "SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", mailboxID).Scan(&first, &next); err != nil {
			if err == sql.ErrNoRows {
				return fmt.Errorf("mailbox %d: %w", mailboxID, store.ErrNotFound)
			}
			return err
		}
		if first < next {
			_, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET recent_uid = ? WHERE id = ?", next, mailboxID)
			return err
		}
		return nil
	})
	return first, err
}
