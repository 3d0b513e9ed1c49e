package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mailstead/mailstead/internal/store"
)

// GetMetadata implements store.Store. Rows are keyed by mailbox id, so
// they follow a rename without work and are deleted with the mailbox.
func (s *Store) GetMetadata(ctx context.Context, accountID, mailboxID int64) ([]store.MetadataEntry, error) {
	if mailboxID != 0 {
		var acc int64
		err := s.rdb.QueryRowContext(ctx, "SELECT account_id FROM mailboxes WHERE id = ?", mailboxID).Scan(&acc)
		if err != nil {
			return nil, readErr(fmt.Sprintf("mailbox %d", mailboxID), err)
		}
		if acc != accountID {
			return nil, fmt.Errorf("mailbox %d of account %d: %w", mailboxID, accountID, store.ErrNotFound)
		}
	}
	return list(ctx, s.rdb, "get metadata", func(r scanner) (store.MetadataEntry, error) {
		var e store.MetadataEntry
		err := r.Scan(&e.Name, &e.Value)
		if e.Value == nil {
			e.Value = []byte{}
		}
		return e, err
	}, "SELECT name, value FROM metadata WHERE account_id = ? AND mailbox_id = ? ORDER BY name", accountID, mailboxID)
}

// SetMetadata implements store.Store. It runs as one write request, whose
// savepoint undoes every change when a limit is hit.
func (s *Store) SetMetadata(ctx context.Context, accountID, mailboxID int64, entries []store.MetadataEntry) error {
	if len(entries) > store.MetadataMaxEntries {
		return fmt.Errorf("%d metadata entries: %w", len(entries), store.ErrTooMany)
	}
	for _, e := range entries {
		if !store.ValidMetadataName(e.Name) {
			return fmt.Errorf("metadata entry %q: %w", e.Name, store.ErrInvalid)
		}
		if len(e.Value) > store.MetadataMaxValue {
			return fmt.Errorf("metadata entry %s: %d bytes: %w", e.Name, len(e.Value), store.ErrTooLarge)
		}
	}
	return s.write(ctx, nil, func(t *txn) error {
		if mailboxID != 0 {
			acc, err := t.accountOfMailbox(mailboxID)
			if err != nil {
				return err
			}
			if acc != accountID {
				return fmt.Errorf("mailbox %d of account %d: %w", mailboxID, accountID, store.ErrNotFound)
			}
		} else {
			var n int
			if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM accounts WHERE id = ?", accountID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("account %d: %w", accountID, store.ErrNotFound)
			}
		}
		for _, e := range entries {
			var err error
			if e.Value == nil {
				_, err = t.ExecContext(t.ctx, "DELETE FROM metadata WHERE account_id = ? AND mailbox_id = ? AND name = ?", accountID, mailboxID, e.Name)
			} else {
				_, err = t.ExecContext(t.ctx, "INSERT INTO metadata(account_id, mailbox_id, name, value) VALUES(?,?,?,?) ON CONFLICT(account_id, mailbox_id, name) DO UPDATE SET value = excluded.value", accountID, mailboxID, e.Name, e.Value)
			}
			if err != nil {
				return fmt.Errorf("set metadata %s: %w", e.Name, err)
			}
		}
		var n int
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM metadata WHERE account_id = ? AND mailbox_id = ?", accountID, mailboxID).Scan(&n); err != nil {
			return err
		}
		if n > store.MetadataMaxEntries {
			return fmt.Errorf("mailbox %d: %d metadata entries: %w", mailboxID, n, store.ErrTooMany)
		}
		var total sql.NullInt64
		if err := t.QueryRowContext(t.ctx, "SELECT sum(length(value)) FROM metadata WHERE account_id = ?", accountID).Scan(&total); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if total.Int64 > store.MetadataMaxAccountBytes {
			return fmt.Errorf("account %d: %d bytes of metadata: %w", accountID, total.Int64, store.ErrOverQuota)
		}
		t.touch(accountID, 0)
		return nil
	})
}
