package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

const aliasCols = "id, address, domain, targets, disabled, disabled_action, note, forward_mode, owner_account_id, created_at"

func scanAlias(row scanner) (store.Alias, error) {
	var a store.Alias
	var targets string
	var created int64
	if err := row.Scan(&a.ID, &a.Address, &a.Domain, &targets, &a.Disabled, &a.DisabledAction, &a.Note, &a.ForwardMode, &a.OwnerAccountID, &created); err != nil {
		return a, err
	}
	a.CreatedAt = time.Unix(created, 0)
	if err := json.Unmarshal([]byte(targets), &a.Targets); err != nil {
		return a, fmt.Errorf("alias %s targets: %w", a.Address, err)
	}
	return a, nil
}

func checkAlias(a *store.Alias) error {
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 || at == len(a.Address)-1 {
		return fmt.Errorf("alias %q: need local@domain or @domain: %w", a.Address, store.ErrInvalid)
	}
	if a.Domain == "" {
		a.Domain = a.Address[at+1:]
	}
	if a.Domain != a.Address[at+1:] {
		return fmt.Errorf("alias %q: domain %q does not match: %w", a.Address, a.Domain, store.ErrInvalid)
	}
	if len(a.Targets) == 0 && !a.Disabled {
		return fmt.Errorf("alias %s: no targets: %w", a.Address, store.ErrInvalid)
	}
	if a.DisabledAction == "" {
		a.DisabledAction = "drop"
	}
	if a.DisabledAction != "drop" && a.DisabledAction != "reject" {
		return fmt.Errorf("alias %s: disabled action %q (drop or reject): %w", a.Address, a.DisabledAction, store.ErrInvalid)
	}
	if a.ForwardMode == "" {
		a.ForwardMode = "srs"
	}
	if a.ForwardMode != "srs" && a.ForwardMode != "rewrite" {
		return fmt.Errorf("alias %s: forward mode %q (srs or rewrite): %w", a.Address, a.ForwardMode, store.ErrInvalid)
	}
	return nil
}

func (s *Store) AddAlias(ctx context.Context, a store.Alias) (store.Alias, error) {
	if err := checkAlias(&a); err != nil {
		return a, err
	}
	targets, _ := json.Marshal(a.Targets)
	err := s.write(ctx, nil, func(t *txn) error {
		var n int
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM domains WHERE name = ?", a.Domain).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("alias %s: domain %s is not local: %w", a.Address, a.Domain, store.ErrNotFound)
		}
		if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM accounts WHERE address_key = ?", addressKey(a.Address)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("alias %s: an account has this address: %w", a.Address, store.ErrInvalid)
		}
		res, err := t.ExecContext(t.ctx, `INSERT INTO aliases(address, address_key, domain, targets, disabled, disabled_action, note, forward_mode, owner_account_id, created_at)
			VALUES(?,?,?,?,?,?,?,?,?,?)`, a.Address, addressKey(a.Address), a.Domain, string(targets), a.Disabled, a.DisabledAction, a.Note, a.ForwardMode, a.OwnerAccountID, t.now.Unix())
		if isUnique(err) {
			return fmt.Errorf("alias %s: %w", a.Address, store.ErrExists)
		}
		if err != nil {
			return err
		}
		a.ID, _ = res.LastInsertId()
		a.CreatedAt = time.Unix(t.now.Unix(), 0)
		return nil
	})
	return a, err
}

func (s *Store) GetAlias(ctx context.Context, address string) (store.Alias, error) {
	a, err := scanAlias(s.rdb.QueryRowContext(ctx, "SELECT "+aliasCols+" FROM aliases WHERE address_key = ?", addressKey(address)))
	if err != nil {
		return a, readErr("alias "+address, err)
	}
	return a, nil
}

func (s *Store) ListAliases(ctx context.Context, domain string) ([]store.Alias, error) {
	q := "SELECT " + aliasCols + " FROM aliases"
	var args []any
	if domain != "" {
		q += " WHERE domain = ?"
		args = append(args, domain)
	}
	return list(ctx, s.rdb, "list aliases", scanAlias, q+" ORDER BY domain, address_key", args...)
}

func (s *Store) UpdateAlias(ctx context.Context, a store.Alias) error {
	if err := checkAlias(&a); err != nil {
		return err
	}
	targets, _ := json.Marshal(a.Targets)
	return s.write(ctx, nil, func(t *txn) error {
		res, err := t.ExecContext(t.ctx, "UPDATE aliases SET targets = ?, disabled = ?, disabled_action = ?, note = ?, forward_mode = ?, owner_account_id = ? WHERE address_key = ?",
			string(targets), a.Disabled, a.DisabledAction, a.Note, a.ForwardMode, a.OwnerAccountID, addressKey(a.Address))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("alias %s: %w", a.Address, store.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) DeleteAlias(ctx context.Context, address string) error {
	return s.write(ctx, nil, func(t *txn) error {
		res, err := t.ExecContext(t.ctx, "DELETE FROM aliases WHERE address_key = ?", addressKey(address))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("alias %s: %w", address, store.ErrNotFound)
		}
		return nil
	})
}

const maxSieveScript = 1 << 20

func (s *Store) PutSieveScript(ctx context.Context, sc store.SieveScript) error {
	if sc.Name == "" || len(sc.Name) > 255 || strings.ContainsAny(sc.Name, "\x00\r\n/") {
		return fmt.Errorf("sieve script name %q: %w", sc.Name, store.ErrInvalid)
	}
	if len(sc.Content) > maxSieveScript {
		return fmt.Errorf("sieve script %s over %d bytes: %w", sc.Name, maxSieveScript, store.ErrInvalid)
	}
	return s.write(ctx, nil, func(t *txn) error {
		_, err := t.ExecContext(t.ctx, `INSERT INTO sieve_scripts(account_id, name, content, active, updated_at) VALUES(?,?,?,0,?)
			ON CONFLICT(account_id, name) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at`, sc.AccountID, sc.Name, sc.Content, t.now.UnixNano())
		return err
	})
}

func scanScript(row scanner) (store.SieveScript, error) {
	var sc store.SieveScript
	var upd int64
	err := row.Scan(&sc.AccountID, &sc.Name, &sc.Content, &sc.Active, &upd)
	sc.UpdatedAt = time.Unix(0, upd)
	return sc, err
}

func (s *Store) GetSieveScript(ctx context.Context, accountID int64, name string) (store.SieveScript, error) {
	sc, err := scanScript(s.rdb.QueryRowContext(ctx, "SELECT account_id, name, content, active, updated_at FROM sieve_scripts WHERE account_id = ? AND name = ?", accountID, name))
	if err != nil {
		return sc, readErr("sieve script "+name, err)
	}
	return sc, nil
}

func (s *Store) ListSieveScripts(ctx context.Context, accountID int64) ([]store.SieveScript, error) {
	return list(ctx, s.rdb, "sieve scripts", scanScript, "SELECT account_id, name, content, active, updated_at FROM sieve_scripts WHERE account_id = ? ORDER BY name", accountID)
}

func (s *Store) ActivateSieveScript(ctx context.Context, accountID int64, name string) error {
	return s.write(ctx, nil, func(t *txn) error {
		if name != "" {
			var n int
			if err := t.QueryRowContext(t.ctx, "SELECT count(*) FROM sieve_scripts WHERE account_id = ? AND name = ?", accountID, name).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("sieve script %s: %w", name, store.ErrNotFound)
			}
		}
		_, err := t.ExecContext(t.ctx, "UPDATE sieve_scripts SET active = (name = ?) WHERE account_id = ?", name, accountID)
		return err
	})
}

func (s *Store) DeleteSieveScript(ctx context.Context, accountID int64, name string) error {
	return s.write(ctx, nil, func(t *txn) error {
		var active bool
		err := t.QueryRowContext(t.ctx, "SELECT active FROM sieve_scripts WHERE account_id = ? AND name = ?", accountID, name).Scan(&active)
		if err == sql.ErrNoRows {
			return fmt.Errorf("sieve script %s: %w", name, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if active {
			// RFC 5804 DELETESCRIPT: the active script cannot be deleted.
			return fmt.Errorf("sieve script %s is active: %w", name, store.ErrInvalid)
		}
		_, err = t.ExecContext(t.ctx, "DELETE FROM sieve_scripts WHERE account_id = ? AND name = ?", accountID, name)
		return err
	})
}

func scanReverse(r scanner) (store.ReverseAlias, error) {
	var ra store.ReverseAlias
	var created int64
	err := r.Scan(&ra.Address, &ra.Alias, &ra.Contact, &created)
	ra.CreatedAt = time.Unix(created, 0)
	return ra, err
}

func (s *Store) ReverseAlias(ctx context.Context, alias, contact, newAddress string) (store.ReverseAlias, error) {
	var ra store.ReverseAlias
	if alias == "" || contact == "" || !strings.Contains(newAddress, "@") {
		return ra, fmt.Errorf("reverse alias: %w", store.ErrInvalid)
	}
	err := s.write(ctx, nil, func(t *txn) error {
		var err error
		ra, err = scanReverse(t.QueryRowContext(t.ctx, "SELECT address, alias, contact, created_at FROM reverse_aliases WHERE alias_key = ? AND contact_key = ?", addressKey(alias), addressKey(contact)))
		if err == nil {
			return nil
		}
		if err != sql.ErrNoRows {
			return err
		}
		_, err = t.ExecContext(t.ctx, "INSERT INTO reverse_aliases(address_key, address, alias_key, alias, contact_key, contact, created_at) VALUES(?,?,?,?,?,?,?)",
			addressKey(newAddress), newAddress, addressKey(alias), alias, addressKey(contact), contact, t.now.Unix())
		if isUnique(err) {
			return fmt.Errorf("reverse alias %s: %w", newAddress, store.ErrExists)
		}
		ra = store.ReverseAlias{Address: newAddress, Alias: alias, Contact: contact, CreatedAt: time.Unix(t.now.Unix(), 0)}
		return err
	})
	return ra, err
}

func (s *Store) GetReverseAlias(ctx context.Context, address string) (store.ReverseAlias, error) {
	ra, err := scanReverse(s.rdb.QueryRowContext(ctx, "SELECT address, alias, contact, created_at FROM reverse_aliases WHERE address_key = ?", addressKey(address)))
	if err != nil {
		return ra, readErr("reverse alias "+address, err)
	}
	return ra, nil
}

func (s *Store) ReserveReply(ctx context.Context, accountID int64, sender, handle string, now time.Time, period time.Duration) (bool, error) {
	ok := false
	err := s.write(ctx, nil, func(t *txn) error {
		ok = false
		var last int64
		err := t.QueryRowContext(t.ctx, "SELECT last FROM replies WHERE account_id = ? AND sender = ? AND handle = ?", accountID, strings.ToLower(sender), handle).Scan(&last)
		if err != nil && err != sql.ErrNoRows {
			return err
		}
		if err == nil && now.Sub(time.Unix(0, last)) < period {
			return nil
		}
		if _, err := t.ExecContext(t.ctx, "INSERT OR REPLACE INTO replies(account_id, sender, handle, last) VALUES(?,?,?,?)", accountID, strings.ToLower(sender), handle, now.UnixNano()); err != nil {
			return err
		}
		// Forget records older than any period a script may ask for
		// (RFC 5230 caps :days at what the server allows; ours: 1 year).
		if _, err := t.ExecContext(t.ctx, "DELETE FROM replies WHERE last < ?", now.Add(-366*24*time.Hour).UnixNano()); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, err
}
