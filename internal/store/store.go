// Package store defines the storage interface every other package of
// mailstead uses: domains, accounts, mailboxes, messages and their blobs, and
// a per-mailbox change feed.
//
// The interface is deliberately backend-neutral. The embedded default
// (package sqlitestore) keeps metadata in SQLite and message bodies as
// immutable files; a PostgreSQL backend must pass the same conformance suite
// (package storetest). Protocol layers never see SQL or file paths: they see
// the types below and the named errors, which they map to SMTP and IMAP
// replies (451/452/552, NO [OVERQUOTA], ...).
//
// Durability contract: every method that changes state returns only after the
// change is durable (fsynced), so a protocol layer may acknowledge as soon as
// the call returns without error.
package store

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// Named errors. Backends wrap them with context; callers test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrOverQuota     = errors.New("quota exceeded")
	ErrInvalid       = errors.New("invalid argument")
	ErrUnavailable   = errors.New("store unavailable") // temporary: callers answer 451/NO [UNAVAILABLE]
	ErrClosed        = errors.New("store closed")
	ErrMailboxInUse  = errors.New("mailbox has children") // delete of a mailbox with \Noselect semantics
	ErrUIDValidity   = errors.New("uidvalidity mismatch")
	ErrSpecialMailbx = errors.New("operation not allowed on this mailbox")
	// ErrTooLarge: a metadata value over MetadataMaxValue.
	ErrTooLarge = errors.New("value too large")
	// ErrNotEmpty: DeleteAccountIfEmpty found messages.
	ErrNotEmpty = errors.New("account holds messages")
	// ErrTooMany: more than MetadataMaxEntries metadata entries.
	ErrTooMany = errors.New("too many entries")
)

// Limits of mailbox and server annotations (RFC 5464 METADATA), the same
// for every backend so that clients see the same MAXSIZE and TOOMANY
// answers. RFC 5464 asks for at least 1024 bytes and 10 entries.
const (
	MetadataMaxValue   = 64 << 10 // bytes per value
	MetadataMaxEntries = 256      // entries per mailbox (or per account's server annotations)
	// MetadataMaxAccountBytes bounds the values of all of an account's
	// entries together; beyond it SetMetadata fails with ErrOverQuota.
	MetadataMaxAccountBytes = 16 << 20
	MetadataMaxName         = 1024 // bytes of an entry name
)

// MetadataEntry is one annotation (RFC 5464). Name is the entry name in
// lower case (names are case-insensitive), starting with "/private/" or
// "/shared/". In SetMetadata a nil Value deletes the entry.
type MetadataEntry struct {
	Name  string
	Value []byte
}

// ValidMetadataName reports whether name can hold a value: "/private/" or
// "/shared/" and at least one more component, printable ASCII without "*"
// and "%", no empty component, no trailing "/", at most MetadataMaxName
// bytes (RFC 5464 section 3.2). It expects the lower-case form.
func ValidMetadataName(name string) bool {
	if len(name) > MetadataMaxName {
		return false
	}
	var rest string
	switch {
	case strings.HasPrefix(name, "/private/"):
		rest = name[len("/private/"):]
	case strings.HasPrefix(name, "/shared/"):
		rest = name[len("/shared/"):]
	default:
		return false
	}
	if rest == "" || strings.HasSuffix(rest, "/") || strings.Contains(rest, "//") {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c < 0x20 || c >= 0x7f || c == '*' || c == '%' || c >= 'A' && c <= 'Z' {
			return false
		}
	}
	return true
}

// Special-use roles (RFC 6154). The store keeps at most one mailbox per role
// per account.
const (
	RoleNone    = ""
	RoleSent    = `\Sent`
	RoleDrafts  = `\Drafts`
	RoleTrash   = `\Trash`
	RoleJunk    = `\Junk`
	RoleArchive = `\Archive`
	RoleAll     = `\All`
	RoleFlagged = `\Flagged`
)

// DefaultMailboxes are created for every new account, with their roles.
var DefaultMailboxes = []struct{ Name, Role string }{
	{"INBOX", RoleNone},
	{"Sent", RoleSent},
	{"Drafts", RoleDrafts},
	{"Trash", RoleTrash},
	{"Junk", RoleJunk},
	{"Archive", RoleArchive},
}

// Domain is a local mail domain. Name is the IDNA A-label, lower case.
type Domain struct {
	Name string
	// Postmaster is the account address that receives postmaster@ and
	// abuse@ for this domain. Empty means: the domain's oldest account.
	Postmaster string
	// DMARCReject and DMARCQuarantine say what to do with mail to this
	// domain that fails a sender's DMARC p=reject / p=quarantine policy:
	// "reject" (550 at DATA), "junk", "accept" (mark only), or "" for the
	// default (reject and junk respectively).
	DMARCReject     string
	DMARCQuarantine string
	CreatedAt       time.Time
}

// Account is a mailbox owner that can log in.
type Account struct {
	ID int64
	// Address is the login and primary address, local part as given,
	// domain as A-label lower case.
	Address      string
	Domain       string
	PasswordHash string // argon2id, bcrypt or {SHA512-CRYPT}/{BLF-CRYPT} import
	QuotaBytes   int64  // 0 = unlimited
	UsedBytes    int64  // sum of RFC822.SIZE of all messages (read-only for callers)
	Disabled     bool
	CreatedAt    time.Time
}

// Mailbox is one IMAP mailbox of an account.
type Mailbox struct {
	ID          int64
	AccountID   int64
	Name        string // full hierarchical name, "/" separated, INBOX upper case
	Role        string // special-use role or ""
	UIDValidity uint32
	UIDNext     uint32
	// HighestModSeq is the mailbox's MODSEQ counter (RFC 7162). Every
	// change to a message in the mailbox (append, flag change, expunge)
	// takes the next value.
	HighestModSeq int64
	Subscribed    bool
	// ObjectID is the MAILBOXID (RFC 8474), stable across renames.
	ObjectID string
}

// Status is the summary IMAP STATUS and SELECT need.
type Status struct {
	Messages      uint32
	Unseen        uint32
	Deleted       uint32
	Size          int64
	UIDNext       uint32
	UIDValidity   uint32
	HighestModSeq int64
	// FirstUnseenUID is the lowest UID without \Seen, 0 if none.
	FirstUnseenUID uint32
}

// Flags are stored as a bit set for the system flags and a list of keywords.
type Flags uint16

const (
	FlagSeen Flags = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
	FlagDraft
	// FlagForwarded etc. are keywords ($Forwarded), not system flags.
)

// FlagNames maps system flags to their IMAP names.
var FlagNames = []struct {
	Flag Flags
	Name string
}{
	{FlagSeen, `\Seen`},
	{FlagAnswered, `\Answered`},
	{FlagFlagged, `\Flagged`},
	{FlagDeleted, `\Deleted`},
	{FlagDraft, `\Draft`},
}

// MessageMeta is a message as a mailbox listing sees it: cheap to load for a
// whole mailbox.
type MessageMeta struct {
	ID           int64 // store-wide message row id
	MailboxID    int64
	UID          uint32
	ModSeq       int64
	Flags        Flags
	Keywords     []string // IMAP keywords, as given by the client (case preserved)
	InternalDate time.Time
	SaveDate     time.Time // RFC 8514
	Size         int64     // exact RFC822.SIZE: len(Prefix) + blob size
	BlobID       int64
	EmailID      string // OBJECTID EMAILID (RFC 8474)
	// ThreadID is the OBJECTID THREADID (see Delivery.ThreadID); empty
	// for messages a backend stored before it assigned threads.
	ThreadID string
}

// Message is a message with what is needed to serve its content.
type Message struct {
	MessageMeta
	// Prefix is the per-recipient header block (Return-Path, Delivered-To,
	// later Authentication-Results) that precedes the shared blob. The
	// message's bytes are Prefix followed by the blob.
	Prefix []byte
	// Summary is the cached parse of the blob (package message encodes
	// it); nil when the blob could not be summarised.
	Summary []byte
}

// ExpungeRecord is kept for QRESYNC (RFC 7162 VANISHED): which UID left the
// mailbox at which MODSEQ.
type ExpungeRecord struct {
	UID    uint32
	ModSeq int64
}

// Changes is what happened in a mailbox after a MODSEQ.
type Changes struct {
	Changed       []MessageMeta   // added or flag-changed, ascending UID
	Expunged      []ExpungeRecord // ascending UID
	HighestModSeq int64
	// ExpungesPruned is true when expunge records older than the asked
	// MODSEQ were pruned, so Expunged may be incomplete.
	ExpungesPruned bool
}

// Blob is message content handed to the store: a reader with known size.
// *bytes.Reader and the spool file of package delivery satisfy it.
type Blob interface {
	io.ReaderAt
	Size() int64
}

// BlobReader is stored content opened for reading.
type BlobReader interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Recipient is one delivery target of a Deliver call.
type Recipient struct {
	AccountID int64
	// MailboxID selects the mailbox; when 0, MailboxName is looked up and,
	// if missing (and not INBOX), created when CreateMailbox is set, else
	// the message goes to INBOX.
	MailboxID     int64
	MailboxName   string
	CreateMailbox bool
	Prefix        []byte
	Flags         Flags
	Keywords      []string
	InternalDate  time.Time // zero = now
	// UID, when nonzero, imports the message with this UID (migration);
	// it must be >= the mailbox's UIDNEXT.
	UID uint32
	// IgnoreQuota delivers even over quota (postmaster, imports).
	IgnoreQuota bool
}

// Delivered tells where one recipient's copy landed. For an entry of
// Delivery.Queue only QueueID is set.
type Delivered struct {
	MailboxID int64
	UID       uint32
	ModSeq    int64
	MessageID int64
	QueueID   int64
}

// Delivery is an atomic delivery of one blob to one or more recipients.
type Delivery struct {
	Blob    Blob
	Summary []byte // cached parse, see Message.Summary
	// ThreadID is normally left empty: the store then gives each
	// recipient account's copy the thread (RFC 8474 THREADID) of an
	// earlier message of that account that it refers to by In-Reply-To
	// or References, or that referred to it, else a new thread; Copy
	// and Move keep it within the account. Accounts never share a thread.
	// A non-empty ThreadID (imports; 1-255 of [A-Za-z0-9_-]) is used
	// as given for every recipient. EmailID is always derived by the
	// store.
	ThreadID   string
	Recipients []Recipient
	// Queue entries are added to the outbound queue in the same
	// transaction (BlobID is filled in by the store), so a message is
	// either delivered locally and queued for every remote recipient, or
	// neither.
	Queue []QueueEntry
}

// QueueState is an outbound queue entry's state.
type QueueState string

const (
	QueueReady QueueState = "ready" // waiting for its next attempt
	QueueHeld  QueueState = "held"  // kept until released by an admin
)

// Recipient statuses in a queue entry.
const (
	RcptPending   = ""          // not yet delivered (maybe deferred)
	RcptDelivered = "delivered" // accepted by the next hop
	RcptFailed    = "failed"    // permanent failure, bounced (or to bounce)
)

// QueueRecipient is one recipient of a queue entry with its outcome.
type QueueRecipient struct {
	Address   string   `json:"addr"`
	ORCPT     string   `json:"orcpt,omitempty"`  // DSN original recipient
	Notify    []string `json:"notify,omitempty"` // DSN NOTIFY values
	Status    string   `json:"status,omitempty"`
	LastError string   `json:"err,omitempty"`
}

// QueueEntry is one message for one destination (a domain for SMTP, a
// target for HTTP). One blob may have several entries.
type QueueEntry struct {
	ID     int64
	BlobID int64
	Size   int64 // blob size (read-only)
	// Prefix is prepended to the blob when sending (e.g. DKIM-Signature).
	Prefix []byte
	// Skip is how many leading bytes of the blob are not sent: a
	// forwarder that rewrites the header puts the new header in Prefix
	// and skips the original one, so the shared blob stays unchanged.
	Skip        int64
	From        string // envelope sender, "" for <>
	Transport   string // "smtp", "http", ...
	Destination string // domain or target name
	Recipients  []QueueRecipient
	State       QueueState
	Attempts    int
	NextAttempt time.Time
	LastError   string
	CreatedAt   time.Time
	// WarnedAt is when a delay warning DSN was sent (zero: not yet).
	WarnedAt time.Time
	DSNRet   string // FULL or HDRS
	DSNEnvID string
	// AccountID of the submitting user (0: forwarded or system mail).
	AccountID int64
}

// Alias is an address that delivers to other addresses. A catch-all is an
// alias whose Address is "@domain".
type Alias struct {
	ID      int64
	Address string // local@domain (domain as A-label), or @domain
	Domain  string
	// Targets are addresses: local accounts, other aliases, external
	// addresses, or "http:NAME" for a webhook target.
	Targets []string
	// Disabled aliases accept and drop (DisabledAction "drop") or refuse
	// with 550 ("reject").
	Disabled       bool
	DisabledAction string
	Note           string
	// ForwardMode for external targets: "srs" (default) or "rewrite".
	ForwardMode string
	// OwnerAccountID is the account that owns the alias (generated aliases;
	// may send as it); 0 for none.
	OwnerAccountID int64
	CreatedAt      time.Time
}

// ReverseAlias is an address in our domain that stands for an outside
// correspondent of an alias in "rewrite" forwarding mode: mail forwarded
// from Contact shows it as From, and replies to it from the alias's owner
// go back to Contact as if sent from the alias.
type ReverseAlias struct {
	Address   string // local@domain
	Alias     string // the alias it belongs to
	Contact   string // the correspondent's address
	CreatedAt time.Time
}

// SieveScript is a user's (AccountID > 0) or a global (AccountID 0,
// names "before" and "after") sieve script.
type SieveScript struct {
	AccountID int64
	Name      string
	Content   string
	Active    bool
	UpdatedAt time.Time
}

// QueueStats summarises the queue for metrics.
type QueueStats struct {
	Entries int
	Held    int
	Oldest  time.Time // zero when empty
}

// FlagOp says how StoreFlags combines the given flags with the current ones.
type FlagOp int

const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagUpdate is a STORE.
type FlagUpdate struct {
	Op       FlagOp
	Flags    Flags
	Keywords []string
	// UnchangedSince, when > 0, only updates messages whose MODSEQ is
	// <= this value (RFC 7162 UNCHANGEDSINCE); others are returned as
	// failed.
	UnchangedSince int64
}

// StoreResult is the outcome of StoreFlags.
type StoreResult struct {
	Updated []MessageMeta // messages whose flags changed, new state
	// Failed are UIDs not updated because of UnchangedSince.
	Failed []uint32
}

// CopyResult maps source UIDs to destination UIDs (UIDPLUS COPYUID).
type CopyResult struct {
	UIDValidity uint32
	SrcUIDs     []uint32
	DstUIDs     []uint32
}

// Store is the full storage interface. Consumers should declare the small
// subset they use as their own interface.
type Store interface {
	// Domains.
	AddDomain(ctx context.Context, d Domain) error
	GetDomain(ctx context.Context, name string) (Domain, error)
	ListDomains(ctx context.Context) ([]Domain, error)
	UpdateDomain(ctx context.Context, d Domain) error
	// DeleteDomain fails with ErrMailboxInUse while accounts remain.
	DeleteDomain(ctx context.Context, name string) error

	// Accounts. CreateAccount creates DefaultMailboxes too.
	CreateAccount(ctx context.Context, a Account) (Account, error)
	// GetAccount looks an account up by address, local part
	// case-insensitively, domain as A-label.
	GetAccount(ctx context.Context, address string) (Account, error)
	GetAccountByID(ctx context.Context, id int64) (Account, error)
	ListAccounts(ctx context.Context, domain string) ([]Account, error)
	// UpdateAccount writes PasswordHash, QuotaBytes and Disabled.
	UpdateAccount(ctx context.Context, a Account) error
	// DeleteAccount removes the account with all its mailboxes and
	// messages; blobs no longer referenced are freed.
	DeleteAccount(ctx context.Context, id int64) error
	// DeleteAccountIfEmpty is DeleteAccount when no mailbox of the
	// account holds a message, checked in the same transaction, so mail
	// that arrives while an admin tool decides can never be deleted with
	// it; else ErrNotEmpty and nothing changes.
	DeleteAccountIfEmpty(ctx context.Context, id int64) error

	// Mailboxes.
	ListMailboxes(ctx context.Context, accountID int64) ([]Mailbox, error)
	GetMailbox(ctx context.Context, accountID int64, name string) (Mailbox, error)
	GetMailboxByID(ctx context.Context, id int64) (Mailbox, error)
	// CreateMailbox creates name (and missing parents). uidValidity 0
	// lets the store choose (imports pass the old one).
	CreateMailbox(ctx context.Context, accountID int64, name, role string, uidValidity uint32) (Mailbox, error)
	// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be
	// deleted.
	DeleteMailbox(ctx context.Context, id int64) error
	// RenameMailbox renames a mailbox and its children. Renaming INBOX
	// moves its messages into a new mailbox and leaves INBOX empty (RFC
	// 9051 6.3.6).
	RenameMailbox(ctx context.Context, id int64, newName string) error
	SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error
	// Subscriptions lists subscribed names, which may name mailboxes
	// that do not exist.
	Subscriptions(ctx context.Context, accountID int64) ([]string, error)
	MailboxStatus(ctx context.Context, id int64) (Status, error)
	SetMailboxRole(ctx context.Context, id int64, role string) error

	// Annotations (RFC 5464 METADATA) of a mailbox of the account, or
	// with mailboxID 0 the account's own server annotations. They go
	// with the mailbox (and the account) and follow renames (renaming
	// INBOX leaves them with INBOX, which keeps its identity).
	// GetMetadata returns them all, ordered by name.
	GetMetadata(ctx context.Context, accountID, mailboxID int64) ([]MetadataEntry, error)
	// SetMetadata sets and (nil Value) deletes entries atomically: on
	// any error nothing changes. Names must be ValidMetadataName
	// (ErrInvalid); a value over MetadataMaxValue fails with
	// ErrTooLarge, more than MetadataMaxEntries entries with ErrTooMany,
	// values over MetadataMaxAccountBytes with ErrOverQuota; a mailbox
	// of another account is ErrNotFound.
	SetMetadata(ctx context.Context, accountID, mailboxID int64, entries []MetadataEntry) error

	// Messages.
	// Deliver stores one blob and delivers it to every recipient in one
	// transaction: either all recipients get it or none do. It returns
	// when the blob and the metadata are durable.
	Deliver(ctx context.Context, d Delivery) ([]Delivered, error)
	// ListMessages returns the metadata of every message in a mailbox
	// in ascending UID order.
	ListMessages(ctx context.Context, mailboxID int64) ([]MessageMeta, error)
	// GetMessages returns the messages with the given UIDs (those that
	// exist), ascending.
	GetMessages(ctx context.Context, mailboxID int64, uids []uint32) ([]Message, error)
	// Changes returns what changed after sinceModSeq.
	Changes(ctx context.Context, mailboxID int64, sinceModSeq int64) (Changes, error)
	// PruneExpunged deletes expunge records made before olderThan and
	// raises the floor of each mailbox it pruned to the highest MODSEQ
	// deleted there, so Changes since a MODSEQ below the floor reports
	// ExpungesPruned (and the records it still has), and Changes since
	// the floor or later stays exact. It returns the number deleted.
	// Backends call it from their own maintenance with a window
	// (sqlitestore: Options.ExpungeWindow, 90 days by default).
	PruneExpunged(ctx context.Context, olderThan time.Time) (int, error)
	OpenBlob(ctx context.Context, blobID int64) (BlobReader, error)
	StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, u FlagUpdate) (StoreResult, error)
	// Copy copies messages (sharing their blobs) into dst.
	Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (CopyResult, error)
	// Move is Copy and Expunge of the source in one transaction.
	Move(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (CopyResult, error)
	// Expunge removes the given UIDs (nil: every \Deleted message) and
	// returns the UIDs removed.
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error)
	// ClaimRecent implements rev1 \Recent: it returns the lowest UID that
	// is recent for the caller (messages with UID >= it are \Recent in
	// the caller's session; UIDNEXT when none is) and marks everything up
	// to UIDNEXT as claimed, so later callers get none of them.
	ClaimRecent(ctx context.Context, mailboxID int64) (uint32, error)

	// Aliases. AddAlias fails with ErrExists when the address is an
	// alias already, and with ErrInvalid when it is an account's address
	// (an address is one or the other, never both).
	AddAlias(ctx context.Context, a Alias) (Alias, error)
	GetAlias(ctx context.Context, address string) (Alias, error)
	// ListAliases lists a domain's aliases ("" for all).
	ListAliases(ctx context.Context, domain string) ([]Alias, error)
	// UpdateAlias writes Targets, Disabled, DisabledAction, Note,
	// ForwardMode and OwnerAccountID.
	UpdateAlias(ctx context.Context, a Alias) error
	DeleteAlias(ctx context.Context, address string) error

	// ReverseAlias returns the reverse alias of (alias, contact), creating
	// it (as newAddress) when there is none.
	ReverseAlias(ctx context.Context, alias, contact, newAddress string) (ReverseAlias, error)
	GetReverseAlias(ctx context.Context, address string) (ReverseAlias, error)

	// ReserveReply records an automatic reply (sieve vacation) of
	// accountID to sender under handle at now, unless one was recorded
	// within period, and reports whether the reply may be sent. Atomic.
	ReserveReply(ctx context.Context, accountID int64, sender, handle string, now time.Time, period time.Duration) (bool, error)

	// Sieve scripts. At most one script per account is active;
	// PutSieveScript keeps the Active flag of an existing script.
	PutSieveScript(ctx context.Context, sc SieveScript) error
	GetSieveScript(ctx context.Context, accountID int64, name string) (SieveScript, error)
	ListSieveScripts(ctx context.Context, accountID int64) ([]SieveScript, error)
	// ActivateSieveScript makes name the active script ("" deactivates
	// all).
	ActivateSieveScript(ctx context.Context, accountID int64, name string) error
	DeleteSieveScript(ctx context.Context, accountID int64, name string) error

	// Outbound queue. Entries are added by Deliver (Delivery.Queue).
	// QueueDue returns ready entries whose next attempt is at or before
	// now, oldest first, at most limit.
	QueueDue(ctx context.Context, now time.Time, limit int) ([]QueueEntry, error)
	// QueueNext returns the earliest next attempt of a ready entry.
	QueueNext(ctx context.Context) (time.Time, bool, error)
	QueueList(ctx context.Context) ([]QueueEntry, error)
	QueueGet(ctx context.Context, id int64) (QueueEntry, error)
	// QueueUpdate writes an entry's Recipients, State, Attempts,
	// NextAttempt, LastError and WarnedAt.
	QueueUpdate(ctx context.Context, e QueueEntry) error
	// QueueDelete removes an entry (delivered, bounced or deleted by an
	// admin) and frees its blob when nothing else references it.
	QueueDelete(ctx context.Context, id int64) error
	QueueStats(ctx context.Context) (QueueStats, error)

	// Watch returns a channel that receives a value (coalesced) after any
	// committed change to the mailbox, and a function to stop watching.
	Watch(mailboxID int64) (<-chan struct{}, func())
	// WatchAccount is Watch for every mailbox of an account, including
	// mailbox creation, deletion and rename.
	WatchAccount(accountID int64) (<-chan struct{}, func())

	// Ping checks the store is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error

	// ---- Outbound TLS results and TLS reports (RFC 8460). ----

	// AddTLSResults adds each result's Count to the stored row with the
	// same key (every field but Count), creating it when missing. Rows of
	// one (Day, PolicyDomain) are bounded: past maxRows distinct rows, a
	// new row is merged into one without MXHost, ReceivingIP, SendingIP
	// and Reason; past 2*maxRows it is dropped. It returns the number of
	// sessions dropped. Day must be "2006-01-02"; ErrInvalid otherwise.
	AddTLSResults(ctx context.Context, rs []TLSResult, maxRows int) (dropped int64, err error)
	// TLSResults lists the results of days from through to (inclusive,
	// "2006-01-02") of one policy domain, or of all when domain is "",
	// ordered by day and policy domain.
	TLSResults(ctx context.Context, domain, from, to string) ([]TLSResult, error)
	// PutTLSReport creates or replaces the report record of (Day,
	// PolicyDomain).
	PutTLSReport(ctx context.Context, r TLSReport) error
	// TLSReports lists the report records of one day.
	TLSReports(ctx context.Context, day string) ([]TLSReport, error)
	// DeleteTLSResults removes the results and report records of days
	// before day and returns the number of result rows removed.
	DeleteTLSResults(ctx context.Context, before string) (int64, error)
}

// ---- Outbound TLS results and TLS reports (RFC 8460). ----

// TLSResult counts outbound TLS sessions (or MTA-STS policy lookups) of
// one policy domain on one UTC day that ended the same way. The fields
// map onto an RFC 8460 report: the policy, then a success or a failure
// detail.
type TLSResult struct {
	Day          string // UTC day, "2006-01-02"
	PolicyDomain string // the recipient domain, A-label lower case
	// PolicyType is "sts", "no-policy-found" (or "tlsa" with DANE).
	PolicyType string
	// PolicyString is the applied policy, one line per string; nil when
	// there is none.
	PolicyString []string
	// ResultType is "" for successful sessions, else an RFC 8460
	// result-type ("certificate-expired", ...).
	ResultType  string
	MXHost      string // receiving MX host name
	ReceivingIP string
	SendingIP   string
	Reason      string // failure-reason-code, short and bounded
	Count       int64
}

// TLS report states.
const (
	TLSReportPending = "pending" // delivery failed; retried
	TLSReportSent    = "sent"    // delivered to every reporting URI that took it
	TLSReportNone    = "none"    // the domain publishes no TLSRPT record
	TLSReportFailed  = "failed"  // given up
)

// TLSReport records the report for one policy domain and day.
type TLSReport struct {
	Day          string
	PolicyDomain string
	State        string // TLSReport*
	Attempts     int
	FirstAttempt time.Time // zero before the first attempt
	LastError    string
}
