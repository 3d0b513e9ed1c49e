package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// addressKey is the case-insensitive lookup key of an address: local part
// lower-cased (Unicode-aware), domain as given (callers pass A-labels).
func addressKey(addr string) string {
	return strings.ToLower(addr)
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func validDMARCAction(a string) bool { return a == "" || a == "reject" || a == "junk" || a == "accept" }

func (s *Store) AddDomain(ctx context.Context, d store.Domain) error {
	if d.Name == "" || strings.ContainsAny(d.Name, " @\t\r\n") {
		return fmt.Errorf("add domain %q: %w", d.Name, store.ErrInvalid)
	}
	if !validDMARCAction(d.DMARCReject) || !validDMARCAction(d.DMARCQuarantine) {
		return fmt.Errorf("domain %s: DMARC action must be reject, junk or accept: %w", d.Name, store.ErrInvalid)
	}
	return s.write(ctx, nil, func(t *txn) error {
		_, err := t.ExecContext(t.ctx, "INSERT INTO domains(name, postmaster, dmarc_reject, dmarc_quarantine, created_at) VALUES(?,?,?,?,?)", d.Name, d.Postmaster, d.DMARCReject, d.DMARCQuarantine, t.now.Unix())
		if isUnique(err) {
			return fmt.Errorf("add domain %s: %w", d.Name, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("add domain %s: %w", d.Name, err)
		}
		return nil
	})
}

func (s *Store) GetDomain(ctx context.Context, name string) (store.Domain, error) {
	d, err := scanDomain(s.rdb.QueryRowContext(ctx, "SELECT name, postmaster, dmarc_reject, dmarc_quarantine, created_at FROM domains WHERE name = ?", name))
	if err != nil {
		return d, readErr("domain "+name, err)
	}
	return d, nil
}

func scanDomain(r scanner) (store.Domain, error) {
	var d store.Domain
	var created int64
	err := r.Scan(&d.Name, &d.Postmaster, &d.DMARCReject, &d.DMARCQuarantine, &created)
	d.CreatedAt = time.Unix(created, 0)
	return d, err
}

func (s *Store) ListDomains(ctx context.Context) ([]store.Domain, error) {
	return list(ctx, s.rdb, "list domains", scanDomain, "SELECT name, postmaster, dmarc_reject, dmarc_quarantine, created_at FROM domains ORDER BY name")
}

func (s *Store) UpdateDomain(ctx context.Context, d store.Domain) error {
	if !validDMARCAction(d.DMARCReject) || !validDMARCAction(d.DMARCQuarantine) {
		return fmt.Errorf("domain %s: DMARC action must be reject, junk or accept: %w", d.Name, store.ErrInvalid)
	}
	return s.write(ctx, nil, func(t *txn) error {
		res, err := t.ExecContext(t.ctx, "UPDATE domains SET postmaster = ?, dmarc_reject = ?, dmarc_quarantine = ? WHERE name = ?", d.Postmaster, d.DMARCReject, d.DMARCQuarantine, d.Name)
		if err != nil {
			return fmt.Errorf("update domain %s: %w", d.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", d.Name, store.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) DeleteDomain(ctx context.Context, name string) error {
	return s.write(ctx, nil, func(t *txn) error {
		var n int
		if err := t.QueryRowContext(t.ctx, "SELECT (SELECT count(*) FROM accounts WHERE domain = ?) + (SELECT count(*) FROM aliases WHERE domain = ?)", name, name).Scan(&n); err != nil {
			return fmt.Errorf("delete domain %s: %w", name, err)
		}
		if n > 0 {
			return fmt.Errorf("delete domain %s: %d accounts or aliases remain: %w", name, n, store.ErrMailboxInUse)
		}
		res, err := t.ExecContext(t.ctx, "DELETE FROM domains WHERE name = ?", name)
		if err != nil {
			return fmt.Errorf("delete domain %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", name, store.ErrNotFound)
		}
		return nil
	})
}

const accountCols = "id, address, domain, password_hash, quota_bytes, used_bytes, disabled, created_at"

func scanAccount(row scanner) (store.Account, error) {
	var a store.Account
	var created int64
	err := row.Scan(&a.ID, &a.Address, &a.Domain, &a.PasswordHash, &a.QuotaBytes, &a.UsedBytes, &a.Disabled, &created)
	a.CreatedAt = time.Unix(created, 0)
	return a, err
}

func (s *Store) CreateAccount(ctx context.Context, a store.Account) (store.Account, error) {
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return a, fmt.Errorf("create account %q: address needs local@domain: %w", a.Address, store.ErrInvalid)
	}
	if a.Domain == "" {
		a.Domain = a.Address[at+1:]
	}
	if a.Domain != a.Address[at+1:] {
		return a, fmt.Errorf("create account %q: domain %q does not match: %w", a.Address, a.Domain, store.ErrInvalid)
	}
	err := s.write(ctx, nil, func(t *txn) error {
		var dn string
		if err := t.QueryRowContext(t.ctx, "SELECT name FROM domains WHERE name = ?", a.Domain).Scan(&dn); err != nil {
			if err == sql.ErrNoRows {
				return fmt.Errorf("create account %s: domain %s is not a local domain (add it first): %w", a.Address, a.Domain, store.ErrNotFound)
			}
			return err
		}
		var isAlias int
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM aliases WHERE address_key = ?", addressKey(a.Address)).Scan(&isAlias); err != nil {
			return err
		}
		if isAlias > 0 {
			return fmt.Errorf("create account %s: an alias has this address: %w", a.Address, store.ErrInvalid)
		}
		res, err := t.ExecContext(t.ctx, "INSERT INTO accounts(address, address_key, domain, password_hash, quota_bytes, disabled, created_at) VALUES(?,?,?,?,?,?,?)",
			a.Address, addressKey(a.Address), a.Domain, a.PasswordHash, a.QuotaBytes, a.Disabled, t.now.Unix())
		if isUnique(err) {
			return fmt.Errorf("create account %s: %w", a.Address, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create account %s: %w", a.Address, err)
		}
		a.ID, _ = res.LastInsertId()
		a.CreatedAt = time.Unix(t.now.Unix(), 0)
		for _, mb := range store.DefaultMailboxes {
			if _, err := t.createMailbox(a.ID, mb.Name, mb.Role, 0); err != nil {
				return err
			}
			if _, err := t.ExecContext(t.ctx, "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES(?,?)", a.ID, mb.Name); err != nil {
				return err
			}
		}
		t.touch(a.ID, 0)
		return nil
	})
	return a, err
}

func (s *Store) GetAccount(ctx context.Context, address string) (store.Account, error) {
	a, err := scanAccount(s.rdb.QueryRowContext(ctx, "SELECT "+accountCols+" FROM accounts WHERE address_key = ?", addressKey(address)))
	if err != nil {
		return a, readErr("account "+address, err)
	}
	return a, nil
}

func (s *Store) GetAccountByID(ctx context.Context, id int64) (store.Account, error) {
	a, err := scanAccount(s.rdb.QueryRowContext(ctx, "SELECT "+accountCols+" FROM accounts WHERE id = ?", id))
	if err != nil {
		return a, readErr(fmt.Sprintf("account %d", id), err)
	}
	return a, nil
}

func (s *Store) ListAccounts(ctx context.Context, domain string) ([]store.Account, error) {
	q := "SELECT " + accountCols + " FROM accounts"
	var args []any
	if domain != "" {
		q += " WHERE domain = ?"
		args = append(args, domain)
	}
	return list(ctx, s.rdb, "list accounts", scanAccount, q+" ORDER BY domain, address_key", args...)
}

func (s *Store) UpdateAccount(ctx context.Context, a store.Account) error {
	return s.write(ctx, nil, func(t *txn) error {
		res, err := t.ExecContext(t.ctx, "UPDATE accounts SET password_hash = ?, quota_bytes = ?, disabled = ? WHERE id = ?", a.PasswordHash, a.QuotaBytes, a.Disabled, a.ID)
		if err != nil {
			return fmt.Errorf("update account %d: %w", a.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("account %d: %w", a.ID, store.ErrNotFound)
		}
		t.touch(a.ID, 0)
		return nil
	})
}

func (s *Store) DeleteAccount(ctx context.Context, id int64) error {
	return s.deleteAccount(ctx, id, false)
}

func (s *Store) DeleteAccountIfEmpty(ctx context.Context, id int64) error {
	return s.deleteAccount(ctx, id, true)
}

func (s *Store) deleteAccount(ctx context.Context, id int64, onlyEmpty bool) error {
	return s.write(ctx, nil, func(t *txn) error {
		var n int
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM accounts WHERE id = ?", id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("account %d: %w", id, store.ErrNotFound)
		}
		if onlyEmpty {
			var msgs int64
			if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?)", id).Scan(&msgs); err != nil {
				return err
			}
			if msgs > 0 {
				return fmt.Errorf("account %d: %d messages: %w", id, msgs, store.ErrNotEmpty)
			}
		}
		rows, err := t.QueryContext(t.ctx, "SELECT id FROM mailboxes WHERE account_id = ?", id)
		if err != nil {
			return err
		}
		var mbs []int64
		for rows.Next() {
			var m int64
			rows.Scan(&m)
			mbs = append(mbs, m)
		}
		rows.Close()
		for _, m := range mbs {
			if err := t.deleteMailbox(m); err != nil {
				return err
			}
		}
		for _, q := range []string{"DELETE FROM subscriptions WHERE account_id = ?", "DELETE FROM sieve_scripts WHERE account_id = ?", "DELETE FROM threads WHERE account_id = ?", "DELETE FROM metadata WHERE account_id = ?", "DELETE FROM accounts WHERE id = ?"} {
			if _, err := t.ExecContext(t.ctx, q, id); err != nil {
				return fmt.Errorf("delete account %d: %w", id, err)
			}
		}
		t.touch(id, 0)
		return nil
	})
}

func randomID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
