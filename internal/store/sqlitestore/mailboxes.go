package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// Delimiter is the mailbox hierarchy separator.
const Delimiter = "/"

// normName validates a mailbox name and spells INBOX (any case) as INBOX,
// including as a parent ("inbox/x" → "INBOX/x").
func normName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, Delimiter) || strings.HasSuffix(name, Delimiter) || strings.Contains(name, Delimiter+Delimiter) {
		return "", fmt.Errorf("mailbox name %q: %w", name, store.ErrInvalid)
	}
	if len(name) > 1000 || strings.ContainsAny(name, "\r\n\x00") {
		return "", fmt.Errorf("mailbox name %q: %w", name, store.ErrInvalid)
	}
	first, rest, hasRest := strings.Cut(name, Delimiter)
	if strings.EqualFold(first, "INBOX") {
		if hasRest {
			return "INBOX" + Delimiter + rest, nil
		}
		return "INBOX", nil
	}
	return name, nil
}

const mailboxCols = "id, account_id, name, role, uidvalidity, uidnext, highest_modseq, object_id, EXISTS(SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name)"

func scanMailbox(row scanner) (store.Mailbox, error) {
	var m store.Mailbox
	err := row.Scan(&m.ID, &m.AccountID, &m.Name, &m.Role, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.ObjectID, &m.Subscribed)
	return m, err
}

func (s *Store) ListMailboxes(ctx context.Context, accountID int64) ([]store.Mailbox, error) {
	return list(ctx, s.rdb, "list mailboxes", scanMailbox, "SELECT "+mailboxCols+" FROM mailboxes WHERE account_id = ? ORDER BY name", accountID)
}

func (s *Store) GetMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error) {
	n, err := normName(name)
	if err != nil {
		return store.Mailbox{}, err
	}
	m, err := scanMailbox(s.rdb.QueryRowContext(ctx, "SELECT "+mailboxCols+" FROM mailboxes WHERE account_id = ? AND name = ?", accountID, n))
	if err != nil {
		return m, readErr("mailbox "+name, err)
	}
	return m, nil
}

func (s *Store) GetMailboxByID(ctx context.Context, id int64) (store.Mailbox, error) {
	m, err := scanMailbox(s.rdb.QueryRowContext(ctx, "SELECT "+mailboxCols+" FROM mailboxes WHERE id = ?", id))
	if err != nil {
		return m, readErr(fmt.Sprintf("mailbox %d", id), err)
	}
	return m, nil
}

// nextUIDValidity hands out store-wide increasing UIDVALIDITY values, so a
// mailbox deleted and created again under the same name never reuses one.
func (t *txn) nextUIDValidity() (uint32, error) {
	var v string
	err := t.QueryRowContext(t.ctx, "SELECT value FROM meta WHERE key = 'uidvalidity'").Scan(&v)
	next := uint64(t.now.Unix())
	if err == nil {
		if n, perr := strconv.ParseUint(v, 10, 32); perr == nil && n >= next {
			next = n + 1
		}
	} else if err != sql.ErrNoRows {
		return 0, err
	}
	if next > 0xffffffff || next == 0 {
		next = 1
	}
	if _, err := t.ExecContext(t.ctx, "INSERT INTO meta(key, value) VALUES('uidvalidity', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", strconv.FormatUint(next, 10)); err != nil {
		return 0, err
	}
	return uint32(next), nil
}

// createMailbox creates name and its missing parents. It returns the
// existing mailbox's id with ErrExists when name exists.
func (t *txn) createMailbox(accountID int64, name, role string, uidValidity uint32) (int64, error) {
	name, err := normName(name)
	if err != nil {
		return 0, err
	}
	parts := strings.Split(name, Delimiter)
	var id int64
	for i := range parts {
		n := strings.Join(parts[:i+1], Delimiter)
		last := i == len(parts)-1
		var existing int64
		err := t.QueryRowContext(t.ctx, "SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", accountID, n).Scan(&existing)
		if err == nil {
			if last {
				return existing, fmt.Errorf("mailbox %s: %w", name, store.ErrExists)
			}
			continue
		}
		if err != sql.ErrNoRows {
			return 0, err
		}
		uv := uidValidity
		if uv == 0 || !last {
			if uv, err = t.nextUIDValidity(); err != nil {
				return 0, err
			}
		}
		r := ""
		if last {
			r = role
			if r != "" {
				var n int
				if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM mailboxes WHERE account_id = ? AND role = ?", accountID, r).Scan(&n); err != nil {
					return 0, err
				}
				if n > 0 {
					return 0, fmt.Errorf("mailbox %s: an account has one %s mailbox: %w", name, r, store.ErrExists)
				}
			}
		}
		res, err := t.ExecContext(t.ctx, "INSERT INTO mailboxes(account_id, name, role, uidvalidity, object_id) VALUES(?,?,?,?,?)", accountID, n, r, uv, randomID("F"))
		if err != nil {
			return 0, fmt.Errorf("create mailbox %s: %w", n, err)
		}
		id, _ = res.LastInsertId()
	}
	t.touch(accountID, 0)
	return id, nil
}

func (s *Store) CreateMailbox(ctx context.Context, accountID int64, name, role string, uidValidity uint32) (store.Mailbox, error) {
	var id int64
	err := s.write(ctx, nil, func(t *txn) error {
		var n int
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM accounts WHERE id = ?", accountID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("account %d: %w", accountID, store.ErrNotFound)
		}
		var err error
		id, err = t.createMailbox(accountID, name, role, uidValidity)
		return err
	})
	if err != nil {
		return store.Mailbox{}, err
	}
	return s.getMailboxW(ctx, id)
}

// getMailboxW reads through the writer so it sees the write just made.
// (The read pool would too, after commit; this is just explicit.)
func (s *Store) getMailboxW(ctx context.Context, id int64) (store.Mailbox, error) {
	return s.GetMailboxByID(ctx, id)
}

func (t *txn) accountOfMailbox(id int64) (int64, error) {
	var acc int64
	err := t.QueryRowContext(t.ctx, "SELECT account_id FROM mailboxes WHERE id = ?", id).Scan(&acc)
	if err == sql.ErrNoRows {
		return 0, fmt.Errorf("mailbox %d: %w", id, store.ErrNotFound)
	}
	return acc, err
}

// deleteMailbox removes a mailbox, its messages, expunge records and
// annotations, and frees blobs no longer referenced.
func (t *txn) deleteMailbox(id int64) error {
	acc, err := t.accountOfMailbox(id)
	if err != nil {
		return err
	}
	var size int64
	if err := t.QueryRowContext(t.ctx, "SELECT coalesce(sum(size),0) FROM messages WHERE mailbox_id = ?", id).Scan(&size); err != nil {
		return err
	}
	blobs, err := t.blobsOf("SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?", id)
	if err != nil {
		return err
	}
	for _, q := range []string{"DELETE FROM messages WHERE mailbox_id = ?", "DELETE FROM expunged WHERE mailbox_id = ?", "DELETE FROM mailboxes WHERE id = ?"} {
		if _, err := t.ExecContext(t.ctx, q, id); err != nil {
			return fmt.Errorf("delete mailbox %d: %w", id, err)
		}
	}
	if _, err := t.ExecContext(t.ctx, "DELETE FROM metadata WHERE account_id = ? AND mailbox_id = ?", acc, id); err != nil {
		return fmt.Errorf("delete mailbox %d metadata: %w", id, err)
	}
	if _, err := t.ExecContext(t.ctx, "UPDATE accounts SET used_bytes = max(0, used_bytes - ?) WHERE id = ?", size, acc); err != nil {
		return err
	}
	if err := t.freeBlobs(blobs); err != nil {
		return err
	}
	t.touch(acc, id)
	return nil
}

func (t *txn) blobsOf(q string, args ...any) ([]int64, error) {
	rows, err := t.QueryContext(t.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// freeBlobs deletes the rows of candidate blobs that no message references
// any more and schedules their files for removal after commit.
func (t *txn) freeBlobs(candidates []int64) error {
	for _, id := range candidates {
		var ref int
		if err := t.QueryRowContext(t.ctx, "SELECT EXISTS(SELECT 1 FROM messages WHERE blob_id = ?) OR EXISTS(SELECT 1 FROM queue WHERE blob_id = ?)", id, id).Scan(&ref); err != nil {
			return err
		}
		if ref != 0 {
			continue
		}
		var inline bool
		if err := t.QueryRowContext(t.ctx, "DELETE FROM blobs WHERE id = ? RETURNING inline", id).Scan(&inline); err != nil {
			return err
		}
		if inline {
			if _, err := t.ExecContext(t.ctx, "DELETE FROM blob_data WHERE id = ?", id); err != nil {
				return err
			}
		} else {
			t.removeBlobs = append(t.removeBlobs, id)
		}
	}
	return nil
}

func (s *Store) DeleteMailbox(ctx context.Context, id int64) error {
	return s.write(ctx, nil, func(t *txn) error {
		var name string
		if err := t.QueryRowContext(t.ctx, "SELECT name FROM mailboxes WHERE id = ?", id).Scan(&name); err != nil {
			if err == sql.ErrNoRows {
				return fmt.Errorf("mailbox %d: %w", id, store.ErrNotFound)
			}
			return err
		}
		if name == "INBOX" {
			return fmt.Errorf("delete INBOX: %w", store.ErrSpecialMailbx)
		}
		return t.deleteMailbox(id)
	})
}

func (s *Store) RenameMailbox(ctx context.Context, id int64, newName string) error {
	newName, err := normName(newName)
	if err != nil {
		return err
	}
	return s.write(ctx, nil, func(t *txn) error {
		var acc int64
		var old string
		if err := t.QueryRowContext(t.ctx, "SELECT account_id, name FROM mailboxes WHERE id = ?", id).Scan(&acc, &old); err != nil {
			if err == sql.ErrNoRows {
				return fmt.Errorf("mailbox %d: %w", id, store.ErrNotFound)
			}
			return err
		}
		if newName == old {
			return fmt.Errorf("rename %s to itself: %w", old, store.ErrExists)
		}
		if newName == "INBOX" || strings.HasPrefix(newName, old+Delimiter) {
			return fmt.Errorf("rename %s to %s: %w", old, newName, store.ErrInvalid)
		}
		var n int
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM mailboxes WHERE account_id = ? AND name = ?", acc, newName).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("mailbox %s: %w", newName, store.ErrExists)
		}
		if old == "INBOX" {
			return t.renameInbox(acc, id, newName)
		}
		// Create missing parents of the new name, then move the mailbox
		// and its children.
		if i := strings.LastIndex(newName, Delimiter); i > 0 {
			if _, err := t.createMailbox(acc, newName[:i], "", 0); err != nil && !isExists(err) {
				return err
			}
		}
		if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET name = ? WHERE id = ?", newName, id); err != nil {
			return err
		}
		if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET name = ? || substr(name, ?) WHERE account_id = ? AND substr(name, 1, ?) = ?",
			newName+Delimiter, len(old)+len(Delimiter)+1, acc, len(old)+len(Delimiter), old+Delimiter); err != nil {
			return err
		}
		t.touch(acc, id)
		return nil
	})
}

func isExists(err error) bool {
	return err != nil && strings.Contains(err.Error(), store.ErrExists.Error())
}

// renameInbox implements RFC 9051 6.3.6: the messages of INBOX move to a
// new mailbox, INBOX stays and is empty. Children of INBOX stay where they
// are.
func (t *txn) renameInbox(acc, inbox int64, newName string) error {
	dst, err := t.createMailbox(acc, newName, "", 0)
	if err != nil {
		return err
	}
	uids, err := t.uids(inbox, nil)
	if err != nil {
		return err
	}
	if _, err := t.moveMessages(inbox, uids, dst); err != nil {
		return err
	}
	t.touch(acc, inbox)
	return nil
}

func (s *Store) SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error {
	name, err := normName(name)
	if err != nil {
		return err
	}
	return s.write(ctx, nil, func(t *txn) error {
		var err error
		if subscribed {
			_, err = t.ExecContext(t.ctx, "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES(?,?)", accountID, name)
		} else {
			_, err = t.ExecContext(t.ctx, "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", accountID, name)
		}
		t.touch(accountID, 0)
		return err
	})
}

func (s *Store) Subscriptions(ctx context.Context, accountID int64) ([]string, error) {
	return list(ctx, s.rdb, "subscriptions", scanString, "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name", accountID)
}

func (s *Store) MailboxStatus(ctx context.Context, id int64) (store.Status, error) {
	var st store.Status
	var first sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT m.uidnext, m.uidvalidity, m.highest_modseq,
		(SELECT count(*) FROM messages WHERE mailbox_id = m.id),
		(SELECT count(*) FROM messages WHERE mailbox_id = m.id AND flags & ? = 0),
		(SELECT count(*) FROM messages WHERE mailbox_id = m.id AND flags & ? != 0),
		(SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id = m.id),
		(SELECT min(uid) FROM messages WHERE mailbox_id = m.id AND flags & ? = 0)
		FROM mailboxes m WHERE m.id = ?`, store.FlagSeen, store.FlagDeleted, store.FlagSeen, id).Scan(
		&st.UIDNext, &st.UIDValidity, &st.HighestModSeq, &st.Messages, &st.Unseen, &st.Deleted, &st.Size, &first)
	if err != nil {
		return st, readErr(fmt.Sprintf("mailbox %d status", id), err)
	}
	st.FirstUnseenUID = uint32(first.Int64)
	return st, nil
}

func (s *Store) SetMailboxRole(ctx context.Context, id int64, role string) error {
	return s.write(ctx, nil, func(t *txn) error {
		acc, err := t.accountOfMailbox(id)
		if err != nil {
			return err
		}
		if role != "" {
			if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET role = '' WHERE account_id = ? AND role = ?", acc, role); err != nil {
				return err
			}
		}
		if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET role = ? WHERE id = ?", role, id); err != nil {
			return err
		}
		t.touch(acc, id)
		return nil
	})
}

func unixNano(t time.Time) int64 { return t.UnixNano() }
