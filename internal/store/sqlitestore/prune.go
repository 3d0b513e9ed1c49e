package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// DefaultExpungeWindow is how long expunge records are kept for QRESYNC
// (RFC 7162) when Options.ExpungeWindow is zero.
//
// Why 90 days: a client that reconnects within the window gets an exact
// VANISHED (EARLIER); one that was away longer still gets a correct answer,
// only a bigger one (every known UID missing from the mailbox, narrowed by
// its sequence match data), so the window trades bytes on a rare resync
// against rows kept for every expunge. Phones, desktop clients and mbsync
// sync daily or weekly; 90 days covers a long holiday or a seasonal
// device. A record is about 30 bytes with its index entries, so even a
// mailbox that expunges 1,000 messages a day holds under 3 MB of them.
const DefaultExpungeWindow = 90 * 24 * time.Hour

// pruneMailboxesPerTxn bounds how many mailboxes one pruning transaction
// handles, so the single writer is never held for long; the rest follow in
// the next transactions of the same call.
const pruneMailboxesPerTxn = 200

// PruneExpunged deletes the expunge records made before olderThan and
// raises each affected mailbox's floor to the highest MODSEQ it deleted,
// so Changes reports ExpungesPruned to a client that asks for changes
// since a MODSEQ below the floor. Every record at or below the new floor
// goes, even one with a later timestamp (a clock step), which keeps the
// floor truthful: Changes since a MODSEQ at or above it is exact. It
// returns the number of records deleted. The maintenance loop calls it
// with now minus Options.ExpungeWindow.
func (s *Store) PruneExpunged(ctx context.Context, olderThan time.Time) (int, error) {
	cutoff := unixNano(olderThan)
	total := 0
	// Each round handles up to pruneMailboxesPerTxn mailboxes and removes
	// every one of them from the candidate set (their old records are
	// gone afterwards), so the number of rounds is bounded by the number
	// of mailboxes.
	for {
		n, more := 0, false
		err := s.write(ctx, nil, func(t *txn) error {
			n, more = 0, false
			rows, err := t.QueryContext(t.ctx, "SELECT mailbox_id, max(modseq) FROM expunged WHERE expunged_at < ? GROUP BY mailbox_id LIMIT ?", cutoff, pruneMailboxesPerTxn+1)
			if err != nil {
				return err
			}
			type floor struct{ mailbox, modseq int64 }
			var floors []floor
			for rows.Next() {
				var f floor
				if err := rows.Scan(&f.mailbox, &f.modseq); err != nil {
					rows.Close()
					return err
				}
				floors = append(floors, f)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(floors) > pruneMailboxesPerTxn {
				floors, more = floors[:pruneMailboxesPerTxn], true
			}
			for _, f := range floors {
				res, err := t.ExecContext(t.ctx, "DELETE FROM expunged WHERE mailbox_id = ? AND modseq <= ?", f.mailbox, f.modseq)
				if err != nil {
					return err
				}
				d, _ := res.RowsAffected()
				n += int(d)
				if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET expunged_floor = max(expunged_floor, ?) WHERE id = ?", f.modseq, f.mailbox); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune expunge records: %w", err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}
