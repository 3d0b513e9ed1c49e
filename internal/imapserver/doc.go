// Package imapserver is mailstead's IMAP4rev2 (RFC 9051) and IMAP4rev1
// (RFC 3501) server.
//
// # Layers
//
// Package imapwire (a sub-package) is the protocol layer: Reader parses
// one command at a time into a Command with typed arguments (quoted strings,
// synchronizing and LITERAL+ literals, literal8, sequence sets and "$",
// search keys, fetch attributes, LIST-EXTENDED options), and Writer writes
// responses, choosing atom, quoted string or literal per value. It has no
// notion of sessions or storage, which keeps it fuzzable. Every read is
// bounded: line length (Config.MaxLine), argument literals
// (Config.MaxLiteral), APPEND literals (Config.AppendLimit; zero before
// login so unauthenticated clients cannot upload), literals per command and
// nesting depth. A synchronizing literal over its limit is refused with NO
// [TOOBIG] before the client sends it; a non-synchronizing one ends the
// connection. APPEND messages of 1 MiB and more are spooled to an unlinked
// file in Config.SpoolDir instead of memory.
//
// This package holds the server (server.go: listeners, per-user-per-IP
// connection counting, shutdown, metrics) and the session (session.go: the
// state machine not authenticated -> authenticated -> selected -> logout,
// command dispatch by name with the states each command is valid in, and
// mapping of store errors to response codes). Command handlers live in
// auth.go, mailboxes.go, view.go (SELECT/EXAMINE/CLOSE/UNSELECT), fetch.go,
// search.go, sort.go (SORT, THREAD), compress.go, metadata.go (GETMETADATA,
// SETMETADATA), notify.go (NOTIFY) and messages.go (STORE, COPY/MOVE,
// EXPUNGE, APPEND, IDLE).
// structure.go formats ENVELOPE and BODYSTRUCTURE from the cached MIME
// summary of package message.
//
// # The mailbox view
//
// A selected mailbox is represented by a view: the UIDs the client knows,
// in sequence-number order (4 bytes per message, so idle sessions on big
// mailboxes stay small), and the MODSEQ up to which changes have been
// reported. Flags are not cached; they are read from the store when a
// command needs them.
//
// Changes by other sessions (and by SMTP delivery) reach the view only
// through poll, which runs after every command, before the tagged response,
// and whenever store.Watch signals during IDLE. poll asks the store for
// Changes(since view MODSEQ) and reports, in this order: EXPUNGE (highest
// sequence number first), FETCH (FLAGS ... UID n) for flag changes of known
// messages, and EXISTS (plus RECENT for IMAP4rev1) for new ones; then it
// advances the view's MODSEQ. If the store pruned expunge records the view
// falls back to comparing its UIDs with a full listing.
//
// RFC 9051 section 7.5.1 forbids EXPUNGE responses during FETCH, STORE and
// SEARCH (by sequence number, the UID forms are fine): for those commands
// poll does nothing at all, so the view's sequence numbers stay exactly what
// the client believes, and messages expunged meanwhile are skipped (FETCH
// then completes with NO [EXPUNGEISSUED]). Holding back everything rather
// than only the expunges keeps the single MODSEQ watermark truthful.
//
// Flag changes the session made itself are already answered in its own
// FETCH responses; their MODSEQs are remembered in view.self so poll does
// not echo them. Without a watch signal and without a dirty mark from our
// own writes, poll costs nothing, so the common command path makes no extra
// store query.
//
// # Extensions
//
// After login the server advertises (session.capabilities): NAMESPACE,
// UNSELECT, UIDPLUS, MOVE, CHILDREN, SPECIAL-USE, CREATE-SPECIAL-USE,
// LIST-EXTENDED, LIST-STATUS, ESEARCH, SEARCHRES, STATUS=SIZE, BINARY,
// MULTIAPPEND, APPENDLIMIT, QUOTA, QUOTA=RES-STORAGE, UTF8=ACCEPT,
// CONDSTORE, QRESYNC, OBJECTID, SAVEDATE, WITHIN, COMPRESS=DEFLATE, SORT,
// SORT=DISPLAY, ESORT, THREAD=ORDEREDSUBJECT, THREAD=REFERENCES,
// I18NLEVEL=1, METADATA and NOTIFY, besides IMAP4rev2, IMAP4rev1,
// LITERAL+, SASL-IR, ID, ENABLE and IDLE.
//
// CONDSTORE and QRESYNC (RFC 7162) are built on the view.
// session.condstore is switched on by ENABLE, SELECT (CONDSTORE) and the
// other CONDSTORE enabling commands (FETCH MODSEQ/CHANGEDSINCE, STORE
// UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ); from then on
// SELECT reports HIGHESTMODSEQ and every FETCH that carries flags
// (solicited, from STORE, or from poll) carries MODSEQ. NOMODSEQ is never
// sent: every mailbox has persistent MODSEQs. With ENABLE QRESYNC, poll
// reports expunges as VANISHED instead of EXPUNGE, EXPUNGE's tagged OK
// carries HIGHESTMODSEQ, SELECT (QRESYNC (...)) sends VANISHED (EARLIER)
// and FETCH for the changes since the client's MODSEQ, both limited to
// its known UIDs (store.Changes), and UID FETCH takes the VANISHED
// modifier.
//
// Expunge records: the store keeps one per expunged UID for a window
// (sqlitestore: Options.ExpungeWindow, 90 days by default) and then
// prunes them, raising the mailbox's floor (store.PruneExpunged). For a
// client whose MODSEQ is below the floor (store.Changes.ExpungesPruned),
// VANISHED (EARLIER) falls back to "every known UID that is not in the
// mailbox", which is correct but may name UIDs the client never had
// (RFC 7162 3.2.5.2 lets it); the QRESYNC sequence match data narrows that
// to UIDs above the last (sequence number, UID) pair of the client that
// still holds (see seqMatchLow). A selected session whose MODSEQ fell
// below the floor compares its UIDs with a full listing at its next poll.
//
// COMPRESS=DEFLATE (RFC 4978, compress.go) replaces s.br and s.bw after
// the tagged OK, the way STARTTLS replaces the connection. Sending uses
// compress/flate, but a compressor costs ~800 KiB, so a session holds one
// only while busy: entering IDLE, or after Config.CompressRelease without
// a command, it flushes and returns it to a pool (a raw deflate stream
// may continue with a fresh compressor after a sync flush). Receiving
// uses inflate.go's own decompressor: compress/flate's holds decoded
// bytes until a block boundary it recognises, which deadlocks with
// clients that end commands with Z_PARTIAL_FLUSH (mbsync). An idle
// compressed session costs about 40 KiB more than a plain one, nearly
// all of it the 32 KiB window the client may refer back to.
//
// SORT, ESORT and THREAD (RFC 5256, 5267, 5957; sort.go) run the SEARCH
// machinery for the candidates, then load the keys of the matches only
// (envelope from the cached MIME summary; for THREAD=REFERENCES the
// References header from the content). Strings compare with
// i;ascii-casemap. SEARCHRES ($, RFC 5182) is held in view.saved as UIDs
// and reset by SELECT and by a failed SAVE. SAVEDATE (RFC 8514), OBJECTID
// (RFC 8474) and UTF8=ACCEPT (RFC 6855) are plain data items. The store
// assigns THREADID when a message arrives (by delivery or APPEND): the
// thread of an earlier message of the account that it names in
// In-Reply-To or References, or that named it, else a new one; COPY and
// MOVE keep it (see store.Delivery.ThreadID). Messages stored before the
// store assigned threads answer THREADID NIL and match no SEARCH THREADID.
//
// METADATA (RFC 5464, metadata.go): GETMETADATA (MAXSIZE, DEPTH) and
// SETMETADATA on mailboxes and on the server (""). Mailbox annotations,
// /private and /shared alike, are stored with the mailbox
// (store.GetMetadata/SetMetadata): they follow RENAME, go with DELETE, and
// SETMETADATA is atomic. Limits come from the store: 64 KiB per value
// (NO [METADATA MAXSIZE]; a synchronizing literal over MaxLiteral is
// refused before it is sent), 256 entries per mailbox and per command (NO
// [METADATA TOOMANY]), 16 MiB per account ([OVERQUOTA]). Server
// annotations are /shared/admin and /shared/comment from Config
// (read-only: SETMETADATA gets NO [NOPERM]) and the account's own /private
// entries. Entry names are case-insensitive and answered in lower case.
// No unsolicited METADATA responses are sent.
//
// NOTIFY (RFC 5465, notify.go) lets a client hear of changes without
// polling. NOTIFY SET starts two goroutines for the session. The watcher
// waits for store.WatchAccount (any committed change in the account; the
// signals coalesce) and compares the account's mailboxes (ID, name,
// UIDNEXT, HIGHESTMODSEQ, from one ListMailboxes) and, when asked for,
// its subscriptions with a snapshot: new, missing and renamed IDs become
// LIST responses (\NonExistent for a deleted mailbox, OLDNAME for a
// rename), subscription differences LIST with or without \Subscribed, and
// a changed mailbox with message events becomes STATUS (MESSAGES UIDNEXT
// UIDVALIDITY UNSEEN, and HIGHESTMODSEQ with CONDSTORE) when the change is
// one the client asked for: UIDNEXT grew (MessageNew), the count fell
// (MessageExpunge), else FlagChange. The first event group that covers a
// mailbox decides its events; INBOXES is PERSONAL, since Sieve can file
// mail anywhere (RFC 5465 6.3); names in SUBTREE and MAILBOXES match
// mailboxes created later too. The events go into a queue of at most
// notifyQueueMax entries. The writer sends them whenever the session is
// not executing a command: the session goroutine holds notifyState.mu
// all the time except while it waits for the next command (readCommand;
// the "+ Ready" of a literal takes the lock for its write) and while IDLE
// waits. A client that does not read, or a burst larger than the queue,
// overflows it: the session gets an untagged OK [NOTIFICATIONOVERFLOW]
// and NOTIFY is off until the next NOTIFY SET. Events also go out before
// every tagged response.
//
// The selected mailbox is left to the view: with a SELECTED group the
// writer runs poll between commands (EXISTS, EXPUNGE or VANISHED, FETCH
// FLAGS; then, with a MessageNew fetch-att list, a FETCH of at most
// notifyFetchMax new messages, never setting \Seen, not after the
// session's own APPEND, COPY and MOVE). It first looks at the changes:
// when a report would include changes the group did not ask for (flag
// changes without FlagChange; expunges with SELECTED-DELAYED outside
// IDLE), the whole report waits for the next command, as the view has one
// MODSEQ watermark. Between that look and poll's own query a new expunge could
// slip into a SELECTED-DELAYED report; the window is a few milliseconds.
// Without a SELECTED group IDLE reports nothing of the selected mailbox
// (RFC 5465 section 4), while the poll after each command works as always. No
// STATUS is sent for the selected mailbox.
//
// MailboxMetadataChange and ServerMetadataChange (RFC 5465 5.6, 5.7)
// cannot come from the store, which has no change signal for annotations
// short of reading them all. SETMETADATA is their only writer, so it
// publishes the changed entry names to a package-wide hub (metaHub, shared
// by the listeners of the process), which queues an unsolicited METADATA
// response (RFC 5464 4.4.2) for the account's other NOTIFY sessions.
//
// Not implemented: AnnotationChange (no per-message annotations; NO
// [BADEVENT]); the SHOULD of RFC 5465 section 5 to leave out events the
// session caused itself, except for METADATA (a session's own CREATE comes
// back as LIST); the SEARCH/SORT CONTEXT update of section 7 (no
// CONTEXT=SEARCH). An account with more than notifyMailboxesMax mailboxes
// or subscriptions gets NO [NOTIFICATIONOVERFLOW] for NOTIFY SET.
//
// New commands need: argument type and parser case in imapwire/command.go,
// an entry in the handlers map with the states it is valid in, and, if it
// must not cause EXPUNGE responses, the exception in session.handle.
package imapserver
