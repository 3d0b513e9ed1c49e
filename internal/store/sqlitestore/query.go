package sqlitestore

import (
	"context"
	"database/sql"
)

// scanner is a row source: *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// list runs a read query and scans every row with scan. Errors are mapped
// with readErr under what.
func list[T any](ctx context.Context, db *sql.DB, what string, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, readErr(what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, readErr(what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr(what, err)
	}
	return out, nil
}

func scanString(r scanner) (string, error) {
	var s string
	err := r.Scan(&s)
	return s, err
}
