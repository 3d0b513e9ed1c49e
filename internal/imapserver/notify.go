package imapserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/store"
)

// NOTIFY (RFC 5465). See doc.go for the design; in short: a watcher
// goroutine per NOTIFY session waits for store.WatchAccount, compares the
// account's mailboxes (names, UIDNEXT, HIGHESTMODSEQ, subscriptions) with
// its snapshot and queues STATUS and LIST events; a writer goroutine sends
// them, and the selected mailbox's EXISTS/EXPUNGE/FETCH, whenever the
// session is not executing a command. The session lock (notifyState.mu)
// keeps the two apart from the command path.

const (
	// notifyQueueMax bounds the events waiting for a client that does not
	// read; past it the session gets NOTIFICATIONOVERFLOW (RFC 5465 5.8).
	notifyQueueMax = 1000
	// notifyMailboxesMax bounds the mailboxes and subscriptions a NOTIFY
	// session tracks (about 100 bytes each).
	notifyMailboxesMax = 10000
	// notifyFetchMax bounds the messages one report sends the MessageNew
	// FETCH for; more new messages get EXISTS only.
	notifyFetchMax = 50
	// notifyRetry is the wait after a store error before scanning again.
	notifyRetry = 5 * time.Second
	// notifyScanTimeout bounds one scan or one report.
	notifyScanTimeout = time.Minute
)

// notifyQueueLimit is notifyQueueMax; tests lower it. notifyQueued, when
// set (tests), is called after each scan's events were queued.
var (
	notifyQueueLimit atomic.Int64
	notifyQueued     atomic.Pointer[func(overflow bool)]
)

func init() { notifyQueueLimit.Store(notifyQueueMax) }

// notifySupported are the events NOTIFY SET accepts, as NO [BADEVENT]
// lists them. AnnotationChange needs per-message annotations, which the
// store does not have.
var notifySupported = []string{"MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange"}

type eventSet uint8

const (
	evNew eventSet = 1 << iota
	evExpunge
	evFlags
	evName
	evSubscription
	evMailboxMeta
	evServerMeta

	evMessage = evNew | evExpunge | evFlags
)

var eventBits = map[string]eventSet{
	"MessageNew":            evNew,
	"MessageExpunge":        evExpunge,
	"FlagChange":            evFlags,
	"MailboxName":           evName,
	"SubscriptionChange":    evSubscription,
	"MailboxMetadataChange": evMailboxMeta,
	"ServerMetadataChange":  evServerMeta,
}

type filterKind uint8

const (
	// filterPersonal is PERSONAL and INBOXES: every mailbox may receive
	// mail through Sieve fileinto, so "inboxes" cannot be told apart
	// (RFC 5465 6.3 then makes it PERSONAL).
	filterPersonal filterKind = iota
	filterSubscribed
	filterSubtree
	filterMailboxes
)

type notifyGroup struct {
	kind   filterKind
	names  []string // SUBTREE, MAILBOXES: store names
	events eventSet // 0 for NONE
}

func (g *notifyGroup) matches(name string, subs map[string]bool) bool {
	switch g.kind {
	case filterPersonal:
		return true
	case filterSubscribed:
		return subs[name]
	case filterSubtree:
		for _, n := range g.names {
			if name == n || strings.HasPrefix(name, n+"/") {
				return true
			}
		}
	case filterMailboxes:
		for _, n := range g.names {
			if name == n {
				return true
			}
		}
	}
	return false
}

// notifyState is the session's part of NOTIFY.
type notifyState struct {
	// mu serialises everything that uses the connection or the session's
	// state. The session goroutine holds it all the time except while
	// it waits for the next command (readCommand) and while IDLE waits,
	// which is when the NOTIFY writer may report.
	mu sync.Mutex
	n  *notifier // nil without NOTIFY (or after NOTIFY NONE or an overflow)
	// idling is set during IDLE, a command during which expunges may be
	// reported, so SELECTED-DELAYED does not hold them back.
	idling bool
}

// notifier is one NOTIFY SET. Its configuration is fixed; the watcher
// goroutine owns mboxes and subs; queue is shared under qmu.
type notifier struct {
	st    Store
	acct  int64
	log   *slog.Logger
	limit int

	groups   []notifyGroup
	meta     eventSet // evMailboxMeta, evServerMeta in any group
	sel      eventSet // events for the selected mailbox, 0 without SELECTED
	delayed  bool     // SELECTED-DELAYED
	fetch    []imapwire.FetchItem
	needSubs bool

	// selected is the ID of the session's selected mailbox (0: none),
	// for which no STATUS is sent. The session updates it at command
	// boundaries.
	selected atomic.Int64

	ctx     context.Context
	cancel  context.CancelFunc
	stop    chan struct{}
	once    sync.Once
	kick    chan struct{} // capacity 1: something to report
	watch   <-chan struct{}
	unwatch func()

	qmu      sync.Mutex
	queue    []notifyEvent
	overflow bool
	selDirty bool // the selected mailbox changed

	mboxes map[int64]*mboxSnap
	// subs is nil unless needSubs. The watcher replaces it under subsMu;
	// metaHub.publish reads it from other goroutines.
	subs   map[string]bool
	subsMu sync.Mutex
}

// mboxSnap is what the notifier last knew of a mailbox.
type mboxSnap struct {
	name    string
	uidNext uint32
	modseq  int64
	// messages is valid when known, that is after a STATUS was computed
	// at this modseq.
	messages uint32
	known    bool
}

// notifyEvent is one untagged response to send: LIST when list, METADATA
// when entries, else STATUS.
type notifyEvent struct {
	entries  []string // changed annotations of mailbox name ("": server)
	list     bool
	name     string
	oldName  string // LIST for a renamed mailbox: OLDNAME
	status   store.Status
	noexist  bool
	children bool
	subbed   bool
	role     string
}

var errNotifyTooMany = errors.New("too many mailboxes or subscriptions for NOTIFY")

func (n *notifier) close() {
	n.once.Do(func() {
		close(n.stop)
		n.cancel()
		n.unwatch()
		if n.meta != 0 {
			metaHub.remove(n)
		}
	})
}

// metaHub tells NOTIFY sessions of SETMETADATA (RFC 5465 5.6, 5.7). The
// store has no change signal for annotations, but SETMETADATA is their
// only writer, and it runs in this process: the hub is package-wide so
// that the listeners (143, 993) share it.
var metaHub = &metadataHub{subs: map[int64]map[*notifier]struct{}{}}

type metadataHub struct {
	mu   sync.Mutex
	subs map[int64]map[*notifier]struct{} // by account
}

func (h *metadataHub) add(n *notifier) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[n.acct] == nil {
		h.subs[n.acct] = map[*notifier]struct{}{}
	}
	h.subs[n.acct][n] = struct{}{}
}

func (h *metadataHub) remove(n *notifier) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[n.acct], n)
	if len(h.subs[n.acct]) == 0 {
		delete(h.subs, n.acct)
	}
}

// publish queues a METADATA event for the account's notifiers that asked
// for it, except from, the session that made the change (RFC 5465 5: its
// own changes need no notification).
func (h *metadataHub) publish(acct int64, from *notifier, mailbox string, entries []string) {
	h.mu.Lock()
	var to []*notifier
	for n := range h.subs[acct] {
		if n == from {
			continue
		}
		if mailbox == "" {
			if n.meta&evServerMeta != 0 {
				to = append(to, n)
			}
			continue
		}
		n.subsMu.Lock()
		ev := n.eventsFor(mailbox, n.subs)
		n.subsMu.Unlock()
		if ev&evMailboxMeta != 0 {
			to = append(to, n)
		}
	}
	h.mu.Unlock()
	for _, n := range to {
		n.enqueue([]notifyEvent{{name: mailbox, entries: entries}}, false)
	}
}

// notifyMetadata is called after a successful SETMETADATA.
func (s *session) notifyMetadata(mailbox string, entries []store.MetadataEntry) {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	metaHub.publish(s.acct.ID, s.notify.n, mailbox, names)
}

// eventsFor returns the events of the first group that covers name (RFC
// 5465 leaves overlaps open; the first one wins, so a client can list
// exceptions like "(mailboxes Spam NONE)" before "(personal ...)").
func (n *notifier) eventsFor(name string, subs map[string]bool) eventSet {
	for i := range n.groups {
		if n.groups[i].matches(name, subs) {
			return n.groups[i].events
		}
	}
	return 0
}

// scan compares the account with the snapshot and returns the events to
// report, and whether the selected mailbox (sel) changed. The first scan
// only takes the snapshot, with STATUS events for the mailboxes with
// message events when withStatus (NOTIFY SET STATUS). On error the
// snapshot is unchanged, so the next scan reports the same changes.
func (n *notifier) scan(ctx context.Context, withStatus bool, sel int64) ([]notifyEvent, bool, error) {
	list, err := n.st.ListMailboxes(ctx, n.acct)
	if err != nil {
		return nil, false, fmt.Errorf("notify: list mailboxes: %w", err)
	}
	if len(list) > notifyMailboxesMax {
		return nil, false, errNotifyTooMany
	}
	var subs map[string]bool
	if n.needSubs {
		names, err := n.st.Subscriptions(ctx, n.acct)
		if err != nil {
			return nil, false, fmt.Errorf("notify: subscriptions: %w", err)
		}
		if len(names) > notifyMailboxesMax {
			return nil, false, errNotifyTooMany
		}
		subs = make(map[string]bool, len(names))
		for _, s := range names {
			subs[s] = true
		}
	}
	first := n.mboxes == nil
	byName := make(map[string]*store.Mailbox, len(list))
	parents := map[string]bool{}
	for i := range list {
		byName[list[i].Name] = &list[i]
		for p := parentName(list[i].Name); p != "" && !parents[p]; p = parentName(p) {
			parents[p] = true
		}
	}
	listEvent := func(name, old string) notifyEvent {
		e := notifyEvent{list: true, name: name, oldName: old, children: parents[name], subbed: subs[name]}
		if mb := byName[name]; mb != nil {
			e.role = mb.Role
		} else {
			e.noexist = true
		}
		return e
	}
	var evs []notifyEvent
	selDirty := false
	if !first {
		// Mailbox names (RFC 5465 5.4): deletions, then creations and
		// renames in name order.
		var gone []string
		present := make(map[int64]bool, len(list))
		for i := range list {
			present[list[i].ID] = true
		}
		for id, o := range n.mboxes {
			if !present[id] {
				gone = append(gone, o.name)
				// The selected mailbox was deleted: poll says BYE.
				selDirty = selDirty || id == sel
			}
		}
		sort.Strings(gone)
		for _, name := range gone {
			if (n.eventsFor(name, subs)|n.eventsFor(name, n.subs))&evName != 0 {
				evs = append(evs, listEvent(name, ""))
			}
		}
		for i := range list {
			mb := &list[i]
			o := n.mboxes[mb.ID]
			switch {
			case o == nil:
				if n.eventsFor(mb.Name, subs)&evName != 0 {
					evs = append(evs, listEvent(mb.Name, ""))
				}
			case o.name != mb.Name:
				if (n.eventsFor(mb.Name, subs)|n.eventsFor(o.name, n.subs))&evName != 0 {
					evs = append(evs, listEvent(mb.Name, o.name))
				}
			}
		}
		// Subscriptions (RFC 5465 5.5).
		if subs != nil && n.subs != nil {
			var changed []string
			for s := range subs {
				if !n.subs[s] {
					changed = append(changed, s)
				}
			}
			for s := range n.subs {
				if !subs[s] {
					changed = append(changed, s)
				}
			}
			sort.Strings(changed)
			for _, name := range changed {
				if (n.eventsFor(name, subs)|n.eventsFor(name, n.subs))&evSubscription != 0 {
					evs = append(evs, listEvent(name, ""))
				}
			}
		}
	}
	// Message events of mailboxes other than the selected one (RFC 5465
	// 5.1-5.3): STATUS when something the client asked for happened.
	cur := make(map[int64]*mboxSnap, len(list))
	for i := range list {
		mb := &list[i]
		o := n.mboxes[mb.ID]
		c := &mboxSnap{name: mb.Name, uidNext: mb.UIDNext, modseq: mb.HighestModSeq}
		cur[mb.ID] = c
		changed := o == nil || o.modseq != mb.HighestModSeq || o.uidNext != mb.UIDNext
		if o != nil && !changed {
			c.messages, c.known = o.messages, o.known
		}
		if mb.ID == sel {
			selDirty = selDirty || changed && !first
			continue
		}
		ev := n.eventsFor(mb.Name, subs) & evMessage
		if ev == 0 || !changed || first && !withStatus {
			continue
		}
		st, err := n.st.MailboxStatus(ctx, mb.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile: the next scan reports it
		} else if err != nil {
			return nil, false, fmt.Errorf("notify: status of %s: %w", mb.Name, err)
		}
		var send bool
		switch {
		case first:
			send = true
		case o == nil:
			send = st.Messages > 0 // created with messages (RENAME INBOX)
		case st.UIDNext > o.uidNext:
			send = true // new messages
		case !o.known || o.messages > st.Messages:
			// Expunged, or (without a count to compare with) perhaps.
			send = true
		default:
			send = ev&evFlags != 0
		}
		c.uidNext, c.modseq, c.messages, c.known = st.UIDNext, st.HighestModSeq, st.Messages, true
		if send {
			evs = append(evs, notifyEvent{name: mb.Name, status: st})
		}
	}
	n.mboxes = cur
	if subs != nil {
		n.subsMu.Lock()
		n.subs = subs
		n.subsMu.Unlock()
	}
	return evs, selDirty, nil
}

// run is the watcher goroutine.
func (n *notifier) run() {
	defer func() {
		if x := recover(); x != nil {
			n.log.Error("imap notify watcher panic", "panic", x, "stack", string(debug.Stack()))
			n.setOverflow()
		}
	}()
	var retry <-chan time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-n.watch:
		case <-retry:
		}
		retry = nil
		ctx, cancel := context.WithTimeout(n.ctx, notifyScanTimeout)
		evs, selDirty, err := n.scan(ctx, false, n.selected.Load())
		cancel()
		if errors.Is(err, errNotifyTooMany) {
			n.setOverflow()
			return
		}
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.log.Warn("imap notify scan", "err", err)
			retry = time.After(notifyRetry)
			continue
		}
		if !n.enqueue(evs, selDirty) {
			return
		}
	}
}

// enqueue adds events for the writer; it returns false when the queue
// overflowed, which ends NOTIFY for the session.
func (n *notifier) enqueue(evs []notifyEvent, selDirty bool) bool {
	if len(evs) == 0 && !selDirty {
		return true
	}
	n.qmu.Lock()
	if len(n.queue)+len(evs) > n.limit {
		n.overflow = true
		n.queue = nil
	} else {
		n.queue = append(n.queue, evs...)
		n.selDirty = n.selDirty || selDirty
	}
	ok := !n.overflow
	n.qmu.Unlock()
	n.wake()
	if f := notifyQueued.Load(); f != nil {
		(*f)(!ok)
	}
	return ok
}

func (n *notifier) setOverflow() {
	n.qmu.Lock()
	n.overflow = true
	n.queue = nil
	n.qmu.Unlock()
	n.wake()
}

func (n *notifier) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// take returns the queued events; with sel it also takes the "selected
// mailbox changed" mark.
func (n *notifier) take(sel bool) (evs []notifyEvent, selDirty, overflow bool) {
	n.qmu.Lock()
	defer n.qmu.Unlock()
	evs, n.queue = n.queue, nil
	if sel {
		selDirty, n.selDirty = n.selDirty, false
	}
	return evs, selDirty, n.overflow
}

func (n *notifier) selPending() bool {
	n.qmu.Lock()
	defer n.qmu.Unlock()
	return n.selDirty
}

// cmdNotify is NOTIFY SET and NOTIFY NONE (RFC 5465 3.1).
func (s *session) cmdNotify(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.NotifyArgs)
	if a.None {
		s.stopNotify()
		return nil
	}
	n := &notifier{
		st: s.srv.cfg.Store, acct: s.acct.ID, log: s.log, limit: int(notifyQueueLimit.Load()),
		stop: make(chan struct{}), kick: make(chan struct{}, 1),
	}
	for _, g := range a.Groups {
		var evs eventSet
		for _, e := range g.Events {
			b, ok := eventBits[e]
			if !ok {
				return no("BADEVENT ("+strings.Join(notifySupported, " ")+")", "Unsupported NOTIFY event %s", e)
			}
			evs |= b
		}
		if evs&evSubscription != 0 {
			n.needSubs = true
		}
		n.meta |= evs & (evMailboxMeta | evServerMeta)
		switch g.Filter {
		case "SELECTED", "SELECTED-DELAYED":
			n.sel, n.delayed = evs, g.Filter == "SELECTED-DELAYED"
			if evs&evNew != 0 && len(g.FetchAtts) > 0 {
				n.fetch = notifyFetchItems(g.FetchAtts)
			}
		case "INBOXES", "PERSONAL":
			n.groups = append(n.groups, notifyGroup{kind: filterPersonal, events: evs})
		case "SUBSCRIBED":
			n.needSubs = true
			n.groups = append(n.groups, notifyGroup{kind: filterSubscribed, events: evs})
		case "SUBTREE", "MAILBOXES":
			g2 := notifyGroup{kind: filterMailboxes, events: evs}
			if g.Filter == "SUBTREE" {
				g2.kind = filterSubtree
			}
			for _, raw := range g.Mailboxes {
				// A name that cannot be a mailbox matches nothing
				// (RFC 5465 6.6: no wildcard expansion either).
				if name, err := s.mailboxName(raw); err == nil {
					g2.names = append(g2.names, name)
				}
			}
			n.groups = append(n.groups, g2)
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// Watch before the first scan so no change falls in between.
	n.watch, n.unwatch = s.srv.cfg.Store.WatchAccount(s.acct.ID)
	var sel int64
	if s.view != nil {
		sel = s.view.mb.ID
	}
	n.selected.Store(sel)
	evs, _, err := n.scan(ctx, a.Status, sel)
	if err != nil {
		n.close()
		if errors.Is(err, errNotifyTooMany) {
			return no("NOTIFICATIONOVERFLOW", "Too many mailboxes to watch")
		}
		return err
	}
	for _, e := range evs {
		s.writeNotifyEvent(e)
	}
	s.stopNotify()
	s.notify.n = n
	if n.meta != 0 {
		metaHub.add(n)
	}
	go n.run()
	go s.notifyWriter(n)
	// A successful NOTIFY SET implies a NOOP (RFC 5465 3.1): the poll
	// after the command reports what accumulated.
	if s.view != nil {
		s.view.dirty = true
	}
	return nil
}

// notifyFetchItems is the MessageNew fetch-att list as sent with each new
// message: with UID, and with MODSEQ where FLAGS needs it.
func notifyFetchItems(items []imapwire.FetchItem) []imapwire.FetchItem {
	out := make([]imapwire.FetchItem, 0, len(items)+1)
	hasUID := false
	for _, it := range items {
		hasUID = hasUID || it.Name == "UID"
	}
	if !hasUID {
		out = append(out, imapwire.FetchItem{Name: "UID"})
	}
	return append(out, items...)
}

func (s *session) stopNotify() {
	if n := s.notify.n; n != nil {
		n.close()
		s.notify.n = nil
	}
}

// readCommand reads the next command. While it waits, the NOTIFY writer
// may report.
func (s *session) readCommand() (*imapwire.Command, error) {
	s.notify.mu.Unlock()
	defer s.notify.mu.Lock()
	return s.r.ReadCommand()
}

// notifyWriter reports for n whenever the watcher has something and the
// session is not executing a command.
func (s *session) notifyWriter(n *notifier) {
	for {
		select {
		case <-n.stop:
			return
		case <-n.kick:
		}
		if !s.notifyReport(n) {
			return
		}
	}
}

func (s *session) notifyReport(n *notifier) (cont bool) {
	s.notify.mu.Lock()
	defer s.notify.mu.Unlock()
	defer func() {
		if x := recover(); x != nil {
			s.srv.panics.Add(1)
			s.log.Error("imap notify panic", "panic", x, "stack", string(debug.Stack()))
			s.state = stateLogout
			s.ForceClose()
			cont = false
		}
	}()
	if s.notify.n != n || s.state == stateLogout {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyScanTimeout)
	defer cancel()
	err := s.notifyDeliver(ctx, true)
	if ferr := s.flush(); ferr != nil {
		err = ferr
	}
	s.releaseCompressor()
	if err != nil || s.state == stateLogout {
		// The session goroutine waits for input: wake it to end.
		s.state = stateLogout
		s.ForceClose()
		return false
	}
	return true
}

// notifyDeliver sends the queued events; between (no command executing)
// it also reports the selected mailbox as NOTIFY's SELECTED group asks.
// It returns only errBye (the selected mailbox is gone).
func (s *session) notifyDeliver(ctx context.Context, between bool) error {
	n := s.notify.n
	if n == nil {
		return nil
	}
	if s.view != nil {
		n.selected.Store(s.view.mb.ID)
	} else {
		n.selected.Store(0)
	}
	evs, selDirty, overflow := n.take(between)
	if overflow {
		s.stopNotify()
		s.w.Raw("* OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off\r\n")
		return nil
	}
	for _, e := range evs {
		s.writeNotifyEvent(e)
	}
	if !between {
		if n.selPending() {
			// Reported after the command, by the writer.
			n.wake()
		}
		return nil
	}
	if selDirty && s.view != nil && n.sel != 0 && s.state == stateSelected {
		return s.notifySelected(ctx, n)
	}
	return nil
}

// notifyCommandEnd sends NOTIFY events before a tagged response.
func (s *session) notifyCommandEnd() {
	if s.notify.n != nil {
		s.notifyDeliver(context.Background(), false)
	}
}

// notifySelected reports changes of the selected mailbox outside a command
// when the SELECTED group asks for them (RFC 5465 5.1-5.3). Changes the
// group does not ask for (flag changes without FlagChange; expunges with
// SELECTED-DELAYED outside IDLE) hold back the whole report until the next
// command, as the view has one MODSEQ watermark.
func (s *session) notifySelected(ctx context.Context, n *notifier) error {
	v := s.view
	ch, err := s.srv.cfg.Store.Changes(ctx, v.mb.ID, v.modseq)
	if errors.Is(err, store.ErrNotFound) {
		v.dirty = true
		return s.poll(ctx, true) // says BYE
	}
	if err != nil {
		s.log.Warn("imap notify changes", "err", err)
		v.dirty = true
		return nil
	}
	hasExp := ch.ExpungesPruned
	for _, e := range ch.Expunged {
		hasExp = hasExp || v.seq(e.UID) != 0
	}
	hasNew, hasFlags := false, false
	top := v.maxUID()
	for _, m := range ch.Changed {
		if m.UID > top {
			hasNew = true
		} else if _, mine := v.self[m.ModSeq]; !mine && v.seq(m.UID) != 0 {
			hasFlags = true
		}
	}
	push := hasNew || hasExp || hasFlags && n.sel&evFlags != 0
	if hasExp && n.delayed && !s.notify.idling {
		push = false
	}
	if !push {
		if hasNew || hasExp || hasFlags {
			v.dirty = true
		}
		return nil
	}
	v.dirty = true
	return s.pollNotify(ctx, true, "")
}

// pollNotify is poll, followed, with NOTIFY's MessageNew fetch-att list,
// by a FETCH of the new messages (RFC 5465 5.2). Not after the session's
// own APPEND, COPY and MOVE (a SHOULD NOT of 5.2).
func (s *session) pollNotify(ctx context.Context, expunge bool, cmdName string) error {
	n, v := s.notify.n, s.view
	if n == nil || len(n.fetch) == 0 || v == nil {
		return s.poll(ctx, expunge)
	}
	top := v.maxUID()
	if err := s.poll(ctx, expunge); err != nil {
		return err
	}
	switch cmdName {
	case "APPEND", "COPY", "MOVE":
		return nil
	}
	if s.view != v || v.maxUID() == top {
		return nil
	}
	i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] > top })
	uids := v.uids[i:]
	if len(uids) > notifyFetchMax {
		uids = uids[len(uids)-notifyFetchMax:]
	}
	msgs, err := s.srv.cfg.Store.GetMessages(ctx, v.mb.ID, append([]uint32(nil), uids...))
	if err != nil {
		s.log.Warn("imap notify fetch", "err", err)
		return nil
	}
	items := n.fetch
	if s.condstore {
		hasFlags, hasModSeq := false, false
		for _, it := range items {
			hasFlags = hasFlags || it.Name == "FLAGS"
			hasModSeq = hasModSeq || it.Name == "MODSEQ"
		}
		if hasFlags && !hasModSeq {
			items = append(items[:len(items):len(items)], imapwire.FetchItem{Name: "MODSEQ"})
		}
	}
	for _, m := range msgs {
		seq := v.seq(m.UID)
		if seq == 0 {
			continue
		}
		// writeFetch never sets \Seen: notifications do not read mail.
		f := &fetchMsg{s: s, ctx: ctx, m: m}
		err := s.writeFetch(f, seq, items, false)
		f.close()
		if err != nil {
			s.log.Debug("imap notify fetch", "uid", m.UID, "err", err)
		}
	}
	return nil
}

// writeNotifyEvent writes one STATUS, LIST or METADATA response.
func (s *session) writeNotifyEvent(e notifyEvent) {
	if e.entries != nil {
		// Unsolicited METADATA: names only (RFC 5464 4.4.2).
		s.w.Raw("* METADATA ")
		if e.name == "" {
			s.w.String("")
		} else {
			s.writeMailbox(e.name)
		}
		for _, en := range e.entries {
			s.w.SP()
			s.w.AString(en)
		}
		s.w.CRLF()
		return
	}
	if e.list {
		s.w.Raw("* LIST (" + listAttrs(!e.noexist, e.children, e.role, e.subbed) + `) "/" `)
		s.writeMailbox(e.name)
		if e.oldName != "" {
			s.w.Raw(` ("OLDNAME" (`)
			s.writeMailbox(e.oldName)
			s.w.Raw("))")
		}
		s.w.CRLF()
		return
	}
	st := e.status
	s.w.Raw("* STATUS ")
	s.writeMailbox(e.name)
	s.w.Raw(" (MESSAGES ")
	s.w.Unum(st.Messages)
	s.w.Raw(" UIDNEXT ")
	s.w.Unum(st.UIDNext)
	s.w.Raw(" UIDVALIDITY ")
	s.w.Unum(st.UIDValidity)
	s.w.Raw(" UNSEEN ")
	s.w.Unum(st.Unseen)
	if s.condstore {
		s.w.Raw(" HIGHESTMODSEQ ")
		s.w.Num(st.HighestModSeq)
	}
	s.w.Raw(")\r\n")
}
