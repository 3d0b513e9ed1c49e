package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; the index+1 is the schema version kept in
// PRAGMA user_version. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE domains (
	name       TEXT PRIMARY KEY,
	postmaster TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);
CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY,
	address       TEXT NOT NULL,
	address_key   TEXT NOT NULL UNIQUE,
	domain        TEXT NOT NULL REFERENCES domains(name),
	password_hash TEXT NOT NULL,
	quota_bytes   INTEGER NOT NULL DEFAULT 0,
	used_bytes    INTEGER NOT NULL DEFAULT 0,
	disabled      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain);
CREATE TABLE mailboxes (
	id              INTEGER PRIMARY KEY,
	account_id      INTEGER NOT NULL REFERENCES accounts(id),
	name            TEXT NOT NULL,
	role            TEXT NOT NULL DEFAULT '',
	uidvalidity     INTEGER NOT NULL,
	uidnext         INTEGER NOT NULL DEFAULT 1,
	highest_modseq  INTEGER NOT NULL DEFAULT 1,
	recent_uid      INTEGER NOT NULL DEFAULT 1,
	expunged_floor  INTEGER NOT NULL DEFAULT 0,
	object_id       TEXT NOT NULL,
	UNIQUE(account_id, name)
);
CREATE TABLE subscriptions (
	account_id INTEGER NOT NULL REFERENCES accounts(id),
	name       TEXT NOT NULL,
	PRIMARY KEY(account_id, name)
) WITHOUT ROWID;
CREATE TABLE blobs (
	id         INTEGER PRIMARY KEY,
	size       INTEGER NOT NULL,
	summary    BLOB,
	created_at INTEGER NOT NULL
);
CREATE TABLE messages (
	id            INTEGER PRIMARY KEY,
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id),
	uid           INTEGER NOT NULL,
	modseq        INTEGER NOT NULL,
	flags         INTEGER NOT NULL DEFAULT 0,
	keywords      TEXT NOT NULL DEFAULT '',
	internal_date INTEGER NOT NULL,
	save_date     INTEGER NOT NULL,
	size          INTEGER NOT NULL,
	blob_id       INTEGER NOT NULL REFERENCES blobs(id),
	prefix        BLOB,
	email_id      TEXT NOT NULL,
	thread_id     TEXT NOT NULL DEFAULT '',
	UNIQUE(mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_id);
CREATE TABLE expunged (
	mailbox_id INTEGER NOT NULL,
	uid        INTEGER NOT NULL,
	modseq     INTEGER NOT NULL,
	PRIMARY KEY(mailbox_id, uid)
) WITHOUT ROWID;
`,
	// 2: small blobs live inside the database. A file per message cost an
	// inode, a directory entry and two fsyncs; inside SQLite the WAL is the
	// append-only log that lets a whole batch of messages share one fsync.
	`
ALTER TABLE blobs ADD COLUMN inline INTEGER NOT NULL DEFAULT 0;
CREATE TABLE blob_data (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
`,
	// 3: the outbound queue, one row per (message, destination).
	`
CREATE TABLE queue (
	id           INTEGER PRIMARY KEY,
	blob_id      INTEGER NOT NULL REFERENCES blobs(id),
	prefix       BLOB,
	mail_from    TEXT NOT NULL,
	transport    TEXT NOT NULL,
	destination  TEXT NOT NULL,
	recipients   TEXT NOT NULL,
	state        TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	warned_at    INTEGER NOT NULL DEFAULT 0,
	dsn_ret      TEXT NOT NULL DEFAULT '',
	dsn_envid    TEXT NOT NULL DEFAULT '',
	account_id   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_due ON queue(state, next_attempt);
CREATE INDEX queue_blob ON queue(blob_id);
`,
	// 4: aliases and sieve scripts.
	`
CREATE TABLE aliases (
	id               INTEGER PRIMARY KEY,
	address          TEXT NOT NULL,
	address_key      TEXT NOT NULL UNIQUE,
	domain           TEXT NOT NULL REFERENCES domains(name),
	targets          TEXT NOT NULL,
	disabled         INTEGER NOT NULL DEFAULT 0,
	disabled_action  TEXT NOT NULL DEFAULT 'drop',
	note             TEXT NOT NULL DEFAULT '',
	forward_mode     TEXT NOT NULL DEFAULT 'srs',
	owner_account_id INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL
);
CREATE INDEX aliases_domain ON aliases(domain);
CREATE TABLE sieve_scripts (
	account_id INTEGER NOT NULL,
	name       TEXT NOT NULL,
	content    TEXT NOT NULL,
	active     INTEGER NOT NULL DEFAULT 0,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY(account_id, name)
) WITHOUT ROWID;
`,
	// 5: per-domain DMARC failure policy.
	`
ALTER TABLE domains ADD COLUMN dmarc_reject TEXT NOT NULL DEFAULT '';
ALTER TABLE domains ADD COLUMN dmarc_quarantine TEXT NOT NULL DEFAULT '';
`,
	// 6: reverse aliases (rewrite-mode forwarding) and header-rewriting
	// queue entries.
	`
CREATE TABLE reverse_aliases (
	address_key   TEXT PRIMARY KEY,
	address       TEXT NOT NULL,
	alias_key     TEXT NOT NULL,
	alias         TEXT NOT NULL,
	contact_key   TEXT NOT NULL,
	contact       TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	UNIQUE(alias_key, contact_key)
) WITHOUT ROWID;
ALTER TABLE queue ADD COLUMN skip INTEGER NOT NULL DEFAULT 0;
`,
	// 7: automatic replies sent (sieve vacation rate limit).
	`
CREATE TABLE replies (
	account_id INTEGER NOT NULL,
	sender     TEXT NOT NULL,
	handle     TEXT NOT NULL,
	last       INTEGER NOT NULL,
	PRIMARY KEY(account_id, sender, handle)
) WITHOUT ROWID;
CREATE INDEX replies_last ON replies(last);
`,
	// 8: when each expunge record was made (unix nanoseconds), so records
	// older than the QRESYNC window can be pruned (Options.ExpungeWindow).
	// Existing records count as made now: they get a full window.
	`
ALTER TABLE expunged ADD COLUMN expunged_at INTEGER NOT NULL DEFAULT 0;
UPDATE expunged SET expunged_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000000;
CREATE INDEX expunged_at ON expunged(expunged_at);
`,
	// 9: outbound TLS results per policy domain and UTC day, and the TLS
	// reports (RFC 8460) sent from them.
	`
CREATE TABLE tls_results (
	day           TEXT NOT NULL,
	policy_domain TEXT NOT NULL,
	policy_type   TEXT NOT NULL,
	policy_string TEXT NOT NULL,
	result_type   TEXT NOT NULL,
	mx_host       TEXT NOT NULL,
	receiving_ip  TEXT NOT NULL,
	sending_ip    TEXT NOT NULL,
	reason        TEXT NOT NULL,
	count         INTEGER NOT NULL,
	UNIQUE(day, policy_domain, policy_type, policy_string, result_type, mx_host, receiving_ip, sending_ip, reason)
);
CREATE TABLE tls_reports (
	day           TEXT NOT NULL,
	policy_domain TEXT NOT NULL,
	state         TEXT NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	first_attempt INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	PRIMARY KEY(day, policy_domain)
) WITHOUT ROWID;
`,
	// 10: thread ids (RFC 8474 THREADID). One row per Message-ID an
	// account has seen (its messages' own and the ones they refer to),
	// keyed by a 64-bit hash of it, naming the thread it belongs to.
	// Messages stored before this version keep an empty thread id.
	`
CREATE TABLE threads (
	account_id INTEGER NOT NULL,
	key        INTEGER NOT NULL,
	thread_id  TEXT NOT NULL,
	PRIMARY KEY(account_id, key)
) WITHOUT ROWID;
`,
	// 11: annotations (RFC 5464 METADATA) per mailbox, and per account
	// (mailbox_id 0) for its private server annotations.
	`
CREATE TABLE metadata (
	account_id INTEGER NOT NULL,
	mailbox_id INTEGER NOT NULL,
	name       TEXT NOT NULL,
	value      BLOB NOT NULL,
	PRIMARY KEY(account_id, mailbox_id, name)
) WITHOUT ROWID;
`,
}

// migrate brings the database to the newest schema version, one
// transaction per step, so a crash mid-migration leaves a consistent
// version behind.
func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary supports (%d): upgrade mailstead", version, len(migrations))
	}
	if version == 0 {
		// Only possible before the first table exists: lets deleted
		// mail's pages be handed back to the file system later
		// (PRAGMA incremental_vacuum), not just reused.
		if _, err := db.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
			return fmt.Errorf("set auto_vacuum: %w", err)
		}
	}
	for v := version; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: set version: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: commit: %w", v+1, err)
		}
	}
	return nil
}
