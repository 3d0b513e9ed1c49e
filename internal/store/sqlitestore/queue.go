package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

const queueCols = "q.id, q.blob_id, b.size, q.prefix, q.skip, q.mail_from, q.transport, q.destination, q.recipients, q.state, q.attempts, q.next_attempt, q.last_error, q.created_at, q.warned_at, q.dsn_ret, q.dsn_envid, q.account_id"

func scanQueue(row scanner) (store.QueueEntry, error) {
	var e store.QueueEntry
	var rcpts, state string
	var next, created, warned int64
	err := row.Scan(&e.ID, &e.BlobID, &e.Size, &e.Prefix, &e.Skip, &e.From, &e.Transport, &e.Destination, &rcpts, &state, &e.Attempts, &next, &e.LastError, &created, &warned, &e.DSNRet, &e.DSNEnvID, &e.AccountID)
	if err != nil {
		return e, err
	}
	e.State = store.QueueState(state)
	e.NextAttempt = time.Unix(0, next)
	e.CreatedAt = time.Unix(0, created)
	if warned != 0 {
		e.WarnedAt = time.Unix(0, warned)
	}
	if err := json.Unmarshal([]byte(rcpts), &e.Recipients); err != nil {
		return e, fmt.Errorf("queue entry %d recipients: %w", e.ID, err)
	}
	return e, nil
}

func (t *txn) enqueue(q store.QueueEntry) (int64, error) {
	rcpts, err := json.Marshal(q.Recipients)
	if err != nil {
		return 0, err
	}
	if q.State == "" {
		q.State = store.QueueReady
	}
	next := q.NextAttempt
	if next.IsZero() {
		next = t.now
	}
	res, err := t.ExecContext(t.ctx, `INSERT INTO queue(blob_id, prefix, skip, mail_from, transport, destination, recipients, state, next_attempt, created_at, dsn_ret, dsn_envid, account_id)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)`, q.BlobID, q.Prefix, q.Skip, q.From, q.Transport, q.Destination, string(rcpts), string(q.State), next.UnixNano(), t.now.UnixNano(), q.DSNRet, q.DSNEnvID, q.AccountID)
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	return res.LastInsertId()
}

func (s *Store) queueQuery(ctx context.Context, where string, args ...any) ([]store.QueueEntry, error) {
	return list(ctx, s.rdb, "queue", scanQueue, "SELECT "+queueCols+" FROM queue q JOIN blobs b ON b.id = q.blob_id "+where, args...)
}

func (s *Store) QueueDue(ctx context.Context, now time.Time, limit int) ([]store.QueueEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.queueQuery(ctx, "WHERE q.state = ? AND q.next_attempt <= ? ORDER BY q.next_attempt, q.id LIMIT ?", string(store.QueueReady), now.UnixNano(), limit)
}

func (s *Store) QueueNext(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, "SELECT min(next_attempt) FROM queue WHERE state = ?", string(store.QueueReady)).Scan(&next); err != nil {
		return time.Time{}, false, readErr("queue", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(0, next.Int64), true, nil
}

func (s *Store) QueueList(ctx context.Context) ([]store.QueueEntry, error) {
	return s.queueQuery(ctx, "ORDER BY q.created_at, q.id")
}

func (s *Store) QueueGet(ctx context.Context, id int64) (store.QueueEntry, error) {
	es, err := s.queueQuery(ctx, "WHERE q.id = ?", id)
	if err != nil {
		return store.QueueEntry{}, err
	}
	if len(es) == 0 {
		return store.QueueEntry{}, fmt.Errorf("queue entry %d: %w", id, store.ErrNotFound)
	}
	return es[0], nil
}

func (s *Store) QueueUpdate(ctx context.Context, e store.QueueEntry) error {
	if e.State != store.QueueReady && e.State != store.QueueHeld {
		return fmt.Errorf("queue state %q: %w", e.State, store.ErrInvalid)
	}
	rcpts, err := json.Marshal(e.Recipients)
	if err != nil {
		return err
	}
	var warned int64
	if !e.WarnedAt.IsZero() {
		warned = e.WarnedAt.UnixNano()
	}
	err = s.write(ctx, nil, func(t *txn) error {
		res, err := t.ExecContext(t.ctx, "UPDATE queue SET recipients = ?, state = ?, attempts = ?, next_attempt = ?, last_error = ?, warned_at = ? WHERE id = ?",
			string(rcpts), string(e.State), e.Attempts, e.NextAttempt.UnixNano(), e.LastError, warned, e.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("queue entry %d: %w", e.ID, store.ErrNotFound)
		}
		t.queued = true
		return nil
	})
	return err
}

func (s *Store) QueueDelete(ctx context.Context, id int64) error {
	return s.write(ctx, nil, func(t *txn) error {
		var blob int64
		if err := t.QueryRowContext(t.ctx, "DELETE FROM queue WHERE id = ? RETURNING blob_id", id).Scan(&blob); err != nil {
			if err == sql.ErrNoRows {
				return fmt.Errorf("queue entry %d: %w", id, store.ErrNotFound)
			}
			return err
		}
		return t.freeBlobs([]int64{blob})
	})
}

func (s *Store) QueueStats(ctx context.Context) (store.QueueStats, error) {
	var st store.QueueStats
	var oldest sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(state = ?), 0), min(created_at) FROM queue", string(store.QueueHeld)).Scan(&st.Entries, &st.Held, &oldest)
	if err != nil {
		return st, readErr("queue stats", err)
	}
	if oldest.Valid {
		st.Oldest = time.Unix(0, oldest.Int64)
	}
	return st, nil
}
