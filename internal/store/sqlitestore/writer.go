package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// writerConn is the writer goroutine's own connection. Transactions are
// plain BEGIN/COMMIT statements on it, so prepared statements outlive them:
// each SQL text is parsed once per process instead of once per execution,
// which was a tenth of the CPU of a delivery.
type writerConn struct {
	conn  *sql.Conn
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// maxCachedStmts bounds the cache (queries with IN lists of varying
// length are distinct texts).
const maxCachedStmts = 512

func newWriterConn(ctx context.Context, db *sql.DB) (*writerConn, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("writer connection: %w", err)
	}
	return &writerConn{conn: c, stmts: map[string]*sql.Stmt{}}, nil
}

func (w *writerConn) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st, ok := w.stmts[q]; ok {
		return st, nil
	}
	if len(w.stmts) >= maxCachedStmts {
		for k, st := range w.stmts {
			st.Close()
			delete(w.stmts, k)
		}
	}
	st, err := w.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	w.stmts[q] = st
	return st, nil
}

func (w *writerConn) raw(q string) error {
	_, err := w.conn.ExecContext(context.Background(), q)
	return err
}

func (w *writerConn) begin() error    { return w.raw("BEGIN IMMEDIATE") }
func (w *writerConn) commit() error   { return w.raw("COMMIT") }
func (w *writerConn) rollback() error { return w.raw("ROLLBACK") }

func (w *writerConn) close() {
	w.mu.Lock()
	for k, st := range w.stmts {
		st.Close()
		delete(w.stmts, k)
	}
	w.mu.Unlock()
	w.conn.Close()
}

// ExecContext runs a cached statement inside the current transaction.
func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := t.w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext runs a cached query inside the current transaction.
func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := t.w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs a cached single-row query.
func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := t.w.stmt(ctx, q)
	if err != nil {
		// sql.Row cannot carry our error; run it unprepared so the
		// caller's Scan reports it.
		return t.w.conn.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
