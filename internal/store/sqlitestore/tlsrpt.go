package sqlitestore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// validDay checks a "2006-01-02" day.
func validDay(d string) error {
	if _, err := time.Parse(time.DateOnly, d); err != nil || len(d) != len(time.DateOnly) {
		return fmt.Errorf("day %q: %w", d, store.ErrInvalid)
	}
	return nil
}

// Policy lines never contain a line break (they are lines), so one joins
// them losslessly.
func joinPolicy(lines []string) string { return strings.Join(lines, "\n") }

func splitPolicy(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

const tlsResultKey = "day = ? AND policy_domain = ? AND policy_type = ? AND policy_string = ? AND result_type = ? AND mx_host = ? AND receiving_ip = ? AND sending_ip = ? AND reason = ?"

func tlsKeyArgs(r store.TLSResult) []any {
	return []any{r.Day, r.PolicyDomain, r.PolicyType, joinPolicy(r.PolicyString), r.ResultType, r.MXHost, r.ReceivingIP, r.SendingIP, r.Reason}
}

func (s *Store) AddTLSResults(ctx context.Context, rs []store.TLSResult, maxRows int) (int64, error) {
	for _, r := range rs {
		if err := validDay(r.Day); err != nil {
			return 0, err
		}
		if r.PolicyDomain == "" || r.PolicyType == "" {
			return 0, fmt.Errorf("tls result without policy domain or type: %w", store.ErrInvalid)
		}
	}
	if maxRows <= 0 {
		maxRows = 1
	}
	var dropped int64
	err := s.write(ctx, nil, func(t *txn) error {
		dropped = 0
		// rows counts the rows of a (day, domain), read once per write.
		rows := map[[2]string]int{}
		add := func(r store.TLSResult) (bool, error) {
			res, err := t.ExecContext(t.ctx, "UPDATE tls_results SET count = count + ? WHERE "+tlsResultKey, append([]any{r.Count}, tlsKeyArgs(r)...)...)
			if err != nil {
				return false, err
			}
			n, err := res.RowsAffected()
			return n > 0, err
		}
		for _, r := range rs {
			if r.Count <= 0 {
				continue
			}
			r.PolicyDomain = strings.ToLower(r.PolicyDomain)
			ok, err := add(r)
			if err != nil {
				return err
			}
			if ok {
				continue
			}
			k := [2]string{r.Day, r.PolicyDomain}
			n, seen := rows[k]
			if !seen {
				if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM tls_results WHERE day = ? AND policy_domain = ?", r.Day, r.PolicyDomain).Scan(&n); err != nil {
					return err
				}
			}
			if n >= maxRows {
				// Too many distinct details: keep the count, lose the
				// detail.
				r.MXHost, r.ReceivingIP, r.SendingIP, r.Reason = "", "", "", ""
				ok, err := add(r)
				if err != nil {
					return err
				}
				if ok {
					rows[k] = n
					continue
				}
				if n >= 2*maxRows {
					dropped += r.Count
					rows[k] = n
					continue
				}
			}
			if _, err := t.ExecContext(t.ctx, `INSERT INTO tls_results(day, policy_domain, policy_type, policy_string, result_type, mx_host, receiving_ip, sending_ip, reason, count)
				VALUES(?,?,?,?,?,?,?,?,?,?)`, append(tlsKeyArgs(r), r.Count)...); err != nil {
				return err
			}
			rows[k] = n + 1
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("add tls results: %w", err)
	}
	return dropped, nil
}

func scanTLSResult(row scanner) (store.TLSResult, error) {
	var r store.TLSResult
	var pol string
	err := row.Scan(&r.Day, &r.PolicyDomain, &r.PolicyType, &pol, &r.ResultType, &r.MXHost, &r.ReceivingIP, &r.SendingIP, &r.Reason, &r.Count)
	r.PolicyString = splitPolicy(pol)
	return r, err
}

func (s *Store) TLSResults(ctx context.Context, domain, from, to string) ([]store.TLSResult, error) {
	if err := validDay(from); err != nil {
		return nil, err
	}
	if err := validDay(to); err != nil {
		return nil, err
	}
	q := "SELECT day, policy_domain, policy_type, policy_string, result_type, mx_host, receiving_ip, sending_ip, reason, count FROM tls_results WHERE day >= ? AND day <= ?"
	args := []any{from, to}
	if domain != "" {
		q += " AND policy_domain = ?"
		args = append(args, strings.ToLower(domain))
	}
	q += " ORDER BY day, policy_domain, policy_type, policy_string, result_type, mx_host, receiving_ip, sending_ip, reason"
	return list(ctx, s.rdb, "tls results", scanTLSResult, q, args...)
}

func (s *Store) PutTLSReport(ctx context.Context, r store.TLSReport) error {
	if err := validDay(r.Day); err != nil {
		return err
	}
	switch r.State {
	case store.TLSReportPending, store.TLSReportSent, store.TLSReportNone, store.TLSReportFailed:
	default:
		return fmt.Errorf("tls report state %q: %w", r.State, store.ErrInvalid)
	}
	var first int64
	if !r.FirstAttempt.IsZero() {
		first = r.FirstAttempt.UnixNano()
	}
	return s.write(ctx, nil, func(t *txn) error {
		_, err := t.ExecContext(t.ctx, `INSERT OR REPLACE INTO tls_reports(day, policy_domain, state, attempts, first_attempt, last_error) VALUES(?,?,?,?,?,?)`,
			r.Day, strings.ToLower(r.PolicyDomain), r.State, r.Attempts, first, r.LastError)
		return err
	})
}

func scanTLSReport(row scanner) (store.TLSReport, error) {
	var r store.TLSReport
	var first int64
	err := row.Scan(&r.Day, &r.PolicyDomain, &r.State, &r.Attempts, &first, &r.LastError)
	if first != 0 {
		r.FirstAttempt = time.Unix(0, first)
	}
	return r, err
}

func (s *Store) TLSReports(ctx context.Context, day string) ([]store.TLSReport, error) {
	if err := validDay(day); err != nil {
		return nil, err
	}
	return list(ctx, s.rdb, "tls reports", scanTLSReport,
		"SELECT day, policy_domain, state, attempts, first_attempt, last_error FROM tls_reports WHERE day = ? ORDER BY policy_domain", day)
}

func (s *Store) DeleteTLSResults(ctx context.Context, before string) (int64, error) {
	if err := validDay(before); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, nil, func(t *txn) error {
		res, err := t.ExecContext(t.ctx, "DELETE FROM tls_results WHERE day < ?", before)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = t.ExecContext(t.ctx, "DELETE FROM tls_reports WHERE day < ?", before)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete tls results: %w", err)
	}
	return n, nil
}
