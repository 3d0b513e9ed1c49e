package imapserver

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/store"
)

// view is a session's picture of its selected mailbox: the UIDs the client
// knows, in sequence-number order, and the MODSEQ up to which changes have
// been reported. The store is the truth; the view lags behind it until
// the session may tell the client (see poll).
//
// It is deliberately small (4 bytes per message) so that thousands of
// idle sessions stay cheap: flags are loaded from the store when needed.
type view struct {
	mb       store.Mailbox
	readOnly bool
	// uids maps seq-1 to UID, ascending. After SELECT it is the array
	// shared by every session that selected the same list (see
	// listInfo), with cap == len: never write to its elements; replace
	// the slice instead (append is fine, it copies).
	uids   []uint32
	modseq int64 // every change up to this MODSEQ is reflected in uids/reported
	watch  <-chan struct{}
	stop   func()
	// dirty forces the next poll to query the store even without a
	// watch signal (after our own changes, NOOP, ...).
	dirty bool
	// self holds MODSEQs of flag changes this session made and already
	// reported in its own FETCH responses, so poll does not repeat them.
	self map[int64]struct{}
	// recent are UID ranges that are \Recent in this session (IMAP4rev1).
	recent []uidRange
	// saved is the SEARCHRES result ("$"), as UIDs.
	saved []uint32
}

type uidRange struct{ lo, hi uint32 }

func (v *view) close() {
	if v.stop != nil {
		v.stop()
		v.stop = nil
	}
}

// seq returns the sequence number of uid, 0 if not in the view.
func (v *view) seq(uid uint32) uint32 {
	i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= uid })
	if i < len(v.uids) && v.uids[i] == uid {
		return uint32(i + 1)
	}
	return 0
}

func (v *view) maxUID() uint32 {
	if len(v.uids) == 0 {
		return 0
	}
	return v.uids[len(v.uids)-1]
}

func (v *view) isRecent(uid uint32) bool {
	for _, r := range v.recent {
		if r.lo <= uid && uid <= r.hi {
			return true
		}
	}
	return false
}

func (v *view) recentCount() int {
	n := 0
	for _, r := range v.recent {
		i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= r.lo })
		j := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] > r.hi })
		n += j - i
	}
	return n
}

// sharedLister is implemented by stores that keep each mailbox's list as
// one immutable snapshot (sqlitestore): they hand it out without a copy,
// and keep what derive makes of it with it. A copy of a 100,000-message
// list took most of a SELECT's time; the snapshot and the UID array
// derived from it are shared by every session that reads the same list.
type sharedLister interface {
	ListShared(ctx context.Context, mailboxID int64, derive func([]store.MessageMeta) any) ([]store.MessageMeta, any, error)
}

// listShared returns the mailbox's messages ascending by UID. The slice
// may be shared with other sessions: read it, never modify it.
func (s *session) listShared(ctx context.Context, mailboxID int64) ([]store.MessageMeta, error) {
	if sl, ok := s.srv.cfg.Store.(sharedLister); ok {
		metas, _, err := sl.ListShared(ctx, mailboxID, nil)
		return metas, err
	}
	return s.srv.cfg.Store.ListMessages(ctx, mailboxID)
}

// listInfo is what SELECT needs from a mailbox's list. It is derived once
// per list (per change of the mailbox) and shared: read-only.
type listInfo struct {
	uids        []uint32 // ascending, cap == len
	keywords    []string // for FLAGS: sorted, at most maxKeywordsFlags
	firstUnseen uint32   // sequence number of the first unseen, 0 if none
}

func deriveListInfo(msgs []store.MessageMeta) any {
	info := &listInfo{uids: make([]uint32, len(msgs))}
	var seen map[string]struct{}
	for i := range msgs {
		m := &msgs[i]
		info.uids[i] = m.UID
		for _, k := range m.Keywords {
			if seen == nil {
				seen = map[string]struct{}{}
			}
			lk := strings.ToLower(k)
			if _, ok := seen[lk]; !ok && len(info.keywords) < maxKeywordsFlags {
				seen[lk] = struct{}{}
				info.keywords = append(info.keywords, k)
			}
		}
		if info.firstUnseen == 0 && m.Flags&store.FlagSeen == 0 {
			info.firstUnseen = uint32(i + 1)
		}
	}
	sort.Strings(info.keywords)
	return info
}

// loadListInfo returns the mailbox's list (shared, read-only) and its
// listInfo.
func (s *session) loadListInfo(ctx context.Context, mailboxID int64) ([]store.MessageMeta, *listInfo, error) {
	if sl, ok := s.srv.cfg.Store.(sharedLister); ok {
		metas, d, err := sl.ListShared(ctx, mailboxID, deriveListInfo)
		if err != nil {
			return nil, nil, err
		}
		if info, ok := d.(*listInfo); ok {
			return metas, info, nil
		}
		return metas, deriveListInfo(metas).(*listInfo), nil
	}
	metas, err := s.srv.cfg.Store.ListMessages(ctx, mailboxID)
	if err != nil {
		return nil, nil, err
	}
	return metas, deriveListInfo(metas).(*listInfo), nil
}

// claimRecent asks the store which messages up to the current maximum UID
// are \Recent for this session.
func (s *session) claimRecent(ctx context.Context) error {
	v := s.view
	// \Recent does not exist in IMAP4rev2; claiming costs a write.
	if v.readOnly || len(v.uids) == 0 || s.rev2 {
		return nil
	}
	lo, err := s.srv.cfg.Store.ClaimRecent(ctx, v.mb.ID)
	if err != nil {
		return err
	}
	if lo == 0 {
		lo = 1
	}
	if lo <= v.maxUID() {
		v.recent = append(v.recent, uidRange{lo, v.maxUID()})
	}
	return nil
}

// resolve turns a sequence set (or UID set) into UIDs present in the view,
// ascending and without duplicates.
func (s *session) resolve(set imapwire.NumSet, uid bool) ([]uint32, error) {
	v := s.view
	if set.Saved {
		if !uid {
			// "$" holds UIDs; keep those still in the view.
			out := make([]uint32, 0, len(v.saved))
			for _, u := range v.saved {
				if v.seq(u) != 0 {
					out = append(out, u)
				}
			}
			return out, nil
		}
		return append([]uint32(nil), v.saved...), nil
	}
	var out []uint32
	if uid {
		for _, r := range set.Resolve(v.maxUID()) {
			i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= r.Start })
			for ; i < len(v.uids) && v.uids[i] <= r.Stop; i++ {
				out = append(out, v.uids[i])
			}
		}
		return out, nil
	}
	n := uint32(len(v.uids))
	for _, r := range set.Resolve(n) {
		if r.Start > n || r.Stop > n {
			return nil, bad("Sequence number out of range (mailbox has %d messages)", n)
		}
		out = append(out, v.uids[r.Start-1:r.Stop]...)
	}
	return out, nil
}

func (s *session) cmdSelect(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.SelectArgs)
	// A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
	if s.view != nil {
		s.view.close()
		s.view = nil
		s.state = stateAuth
		s.w.Raw("* OK [CLOSED] Previous mailbox closed\r\n")
	}
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	if a.QResync != nil && !s.qresync {
		return bad("QRESYNC is not enabled")
	}
	if a.CondStore {
		s.condstore = true // the SELECT response carries HIGHESTMODSEQ
	}
	st := s.srv.cfg.Store
	mb, err := st.GetMailbox(ctx, s.acct.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return no("NONEXISTENT", "Mailbox does not exist")
	} else if err != nil {
		return err
	}
	v := &view{mb: mb, readOnly: cmd.Name == "EXAMINE", self: map[int64]struct{}{}}
	// Watch before reading so no change falls between reading and
	// watching.
	v.watch, v.stop = st.Watch(mb.ID)
	// The mailbox row (not MailboxStatus, whose counts scan every
	// message: the list below gives them) read before the list: a change
	// in between is then reported again later, never missed, and UIDNEXT
	// is raised past the list's last UID if a delivery came in between.
	fresh, err := st.GetMailboxByID(ctx, mb.ID)
	if err != nil {
		v.close()
		return err
	}
	_, info, err := s.loadListInfo(ctx, mb.ID)
	if err != nil {
		v.close()
		return err
	}
	status := store.Status{UIDValidity: fresh.UIDValidity, UIDNext: fresh.UIDNext, HighestModSeq: fresh.HighestModSeq}
	if n := len(info.uids); n > 0 && info.uids[n-1] >= status.UIDNext {
		status.UIDNext = info.uids[n-1] + 1
	}
	v.modseq = status.HighestModSeq
	v.uids = info.uids // shared, see view.uids
	s.view = v
	s.state = stateSelected
	if err := s.claimRecent(ctx); err != nil {
		s.log.Warn("imap claim recent", "err", err)
	}
	flags := "\\Seen \\Answered \\Flagged \\Deleted \\Draft"
	for _, k := range info.keywords {
		flags += " " + k
	}
	s.w.Raw("* FLAGS (" + flags + ")\r\n")
	if v.readOnly {
		s.w.Raw("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n")
	} else {
		s.w.Raw("* OK [PERMANENTFLAGS (" + flags + " \\*)] Flags permitted\r\n")
	}
	s.w.Raw("* ")
	s.w.Num(int64(len(v.uids)))
	s.w.Raw(" EXISTS\r\n")
	if !s.rev2 {
		s.w.Raw("* ")
		s.w.Num(int64(v.recentCount()))
		s.w.Raw(" RECENT\r\n")
		if info.firstUnseen > 0 {
			s.w.Raw("* OK [UNSEEN ")
			s.w.Unum(info.firstUnseen)
			s.w.Raw("] First unseen message\r\n")
		}
	}
	s.w.Raw("* OK [UIDVALIDITY ")
	s.w.Unum(status.UIDValidity)
	s.w.Raw("] UIDs valid\r\n* OK [UIDNEXT ")
	s.w.Unum(status.UIDNext)
	s.w.Raw("] Predicted next UID\r\n")
	if mb.ObjectID != "" {
		s.w.Raw("* OK [MAILBOXID (" + mb.ObjectID + ")] Mailbox ID\r\n")
	}
	if s.condstore {
		s.w.Raw("* OK [HIGHESTMODSEQ ")
		s.w.Num(status.HighestModSeq)
		s.w.Raw("] Highest\r\n")
	}
	if s.rev2 {
		s.w.Raw(`* LIST () "/" `)
		s.writeMailbox(mb.Name)
		s.w.CRLF()
	}
	if q := a.QResync; q != nil && q.UIDValidity == status.UIDValidity {
		if err := s.qresyncSelect(ctx, q, status.UIDNext); err != nil {
			return err
		}
	}
	if v.readOnly {
		s.respCode = "READ-ONLY"
	} else {
		s.respCode = "READ-WRITE"
	}
	return nil
}

// qresyncSelect sends what changed since the client's cached state (RFC
// 7162 3.2.5.2): VANISHED (EARLIER) for expunged UIDs, then FETCH for
// messages whose flags changed, both limited to the UIDs the client says
// it knows (all UIDs below UIDNEXT when it does not say).
func (s *session) qresyncSelect(ctx context.Context, q *imapwire.QResyncArgs, uidNext uint32) error {
	v := s.view
	ch, err := s.srv.cfg.Store.Changes(ctx, v.mb.ID, q.ModSeq)
	if err != nil {
		return err
	}
	top := uidNext - 1 // "*" is not allowed in known-uids; be lenient
	var known []imapwire.NumRange
	if q.KnownUIDs != nil {
		known = q.KnownUIDs.Resolve(top)
	} else if top > 0 {
		known = []imapwire.NumRange{{Start: 1, Stop: top}}
	}
	low := uint32(1)
	if q.SeqMatch != nil {
		low = seqMatchLow(q.SeqMatch, v.uids)
	}
	if out := s.vanishedEarlier(ch, known, low); out != "" {
		s.w.Raw("* VANISHED (EARLIER) " + out + "\r\n")
	}
	for _, m := range ch.Changed {
		seq := v.seq(m.UID)
		if seq == 0 || m.ModSeq > v.modseq || !inRanges(known, m.UID) {
			continue // newer changes come with the next poll
		}
		s.w.Raw("* ")
		s.w.Unum(seq)
		s.w.Raw(" FETCH (UID ")
		s.w.Unum(m.UID)
		s.w.SP()
		s.writeFlags(m)
		s.w.Raw(" MODSEQ (")
		s.w.Num(m.ModSeq)
		s.w.Raw("))\r\n")
	}
	return nil
}

// seqMatchLow evaluates the QRESYNC message sequence match data (RFC 7162
// 3.2.5.2): pairs of a sequence number and the UID the client had for it.
// While the pairs, in order, still hold in the current mailbox, no message
// below their UID can have been expunged since the client's state, so
// VANISHED (EARLIER) only needs UIDs from after the last pair that holds.
// It returns that lowest UID worth reporting. Only pairs with strictly
// ascending sequence numbers within the mailbox are looked at, so the work
// is bounded by the mailbox size whatever the client sends.
func seqMatchLow(sm *[2]imapwire.NumSet, uids []uint32) uint32 {
	low := uint32(1)
	seqs, ids := newSetIter(sm[0]), newSetIter(sm[1])
	var prev uint32
	for {
		seq, ok1 := seqs.next()
		uid, ok2 := ids.next()
		if !ok1 || !ok2 || seq <= prev || seq > uint32(len(uids)) || uids[seq-1] != uid {
			return low
		}
		prev = seq
		low = uid + 1
	}
}

// setIter walks the numbers of a sequence set in the order given,
// ranges ascending ("5:3" as 3, 4, 5). "*" and "$" end the walk.
type setIter struct {
	ranges []imapwire.NumRange
	cur    uint64
	end    uint64
}

func newSetIter(s imapwire.NumSet) *setIter {
	if s.Saved {
		return &setIter{}
	}
	return &setIter{ranges: s.Ranges}
}

func (it *setIter) next() (uint32, bool) {
	for it.cur == 0 || it.cur > it.end {
		if len(it.ranges) == 0 {
			return 0, false
		}
		r := it.ranges[0]
		it.ranges = it.ranges[1:]
		if r.Start == 0 || r.Stop == 0 {
			it.ranges = nil
			return 0, false
		}
		a, b := r.Start, r.Stop
		if a > b {
			a, b = b, a
		}
		it.cur, it.end = uint64(a), uint64(b)
	}
	n := it.cur
	it.cur++
	return uint32(n), true
}

func inRanges(rs []imapwire.NumRange, n uint32) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Stop >= n })
	return i < len(rs) && rs[i].Start <= n
}

// vanishedEarlier returns the UIDs in known (resolved ranges) from low up
// that are gone, as a sequence set: from the expunge records, or, when
// those were pruned, every such UID that is not in the view (clients
// ignore UIDs they never had).
func (s *session) vanishedEarlier(ch store.Changes, known []imapwire.NumRange, low uint32) string {
	v := s.view
	if !ch.ExpungesPruned {
		var uids []uint32
		for _, e := range ch.Expunged {
			if e.UID >= low && inRanges(known, e.UID) && v.seq(e.UID) == 0 {
				uids = append(uids, e.UID)
			}
		}
		return imapwire.CompactSet(uids)
	}
	var rs []imapwire.NumRange
	for _, r := range known {
		if r.Stop < low {
			continue
		}
		r.Start = max(r.Start, low)
		rs = append(rs, r)
	}
	return missingRanges(rs, v.uids)
}

// missingRanges formats the numbers in ranges that are not in present
// (ascending), without enumerating them one by one.
func missingRanges(ranges []imapwire.NumRange, present []uint32) string {
	var out []imapwire.NumRange
	for _, r := range ranges {
		lo := r.Start
		i := sort.Search(len(present), func(i int) bool { return present[i] >= r.Start })
		for ; i < len(present) && present[i] <= r.Stop; i++ {
			if present[i] > lo {
				out = append(out, imapwire.NumRange{Start: lo, Stop: present[i] - 1})
			}
			lo = present[i] + 1
		}
		if lo <= r.Stop && lo != 0 {
			out = append(out, imapwire.NumRange{Start: lo, Stop: r.Stop})
		}
	}
	return imapwire.NumSet{Ranges: out}.String()
}

func (s *session) cmdClose(ctx context.Context, cmd *imapwire.Command) error {
	v := s.view
	if cmd.Name == "CLOSE" && !v.readOnly {
		// CLOSE expunges silently.
		if _, err := s.srv.cfg.Store.Expunge(ctx, v.mb.ID, nil); err != nil {
			return err
		}
	}
	v.close()
	s.view = nil
	s.state = stateAuth
	return nil
}

// poll reports what changed in the selected mailbox since the view was
// last brought up to date: EXPUNGE, EXISTS (and RECENT), and FETCH FLAGS
// for changes made by other sessions. When expunge is false (during FETCH,
// STORE and SEARCH by sequence number) nothing is reported: expunges may
// not be, and reporting newer flag changes while holding back older
// expunges would make the MODSEQ bookkeeping lie.
func (s *session) poll(ctx context.Context, expunge bool) error {
	v := s.view
	if !expunge {
		return nil
	}
	select {
	case <-v.watch:
	default:
		if !v.dirty {
			return nil
		}
	}
	v.dirty = false
	ch, err := s.srv.cfg.Store.Changes(ctx, v.mb.ID, v.modseq)
	if errors.Is(err, store.ErrNotFound) {
		s.w.Status("*", "BYE", "", "Selected mailbox was deleted")
		s.state = stateLogout
		return errBye
	}
	if err != nil {
		v.dirty = true
		return err
	}
	// Expunges. Sent highest sequence number first so each number is
	// still valid when the client reads it.
	var gone []int
	if ch.ExpungesPruned {
		all, err := s.listShared(ctx, v.mb.ID)
		if err != nil {
			v.dirty = true
			return err
		}
		present := make(map[uint32]struct{}, len(all))
		for _, m := range all {
			present[m.UID] = struct{}{}
		}
		for i, u := range v.uids {
			if _, ok := present[u]; !ok {
				gone = append(gone, i)
			}
		}
	} else {
		for _, e := range ch.Expunged {
			if seq := v.seq(e.UID); seq != 0 {
				gone = append(gone, int(seq-1))
			}
		}
		sort.Ints(gone)
	}
	if len(gone) > 0 {
		if s.qresync {
			// QRESYNC replaces EXPUNGE by VANISHED with UIDs.
			vanished := make([]uint32, len(gone))
			for k, i := range gone {
				vanished[k] = v.uids[i]
			}
			s.w.Raw("* VANISHED " + imapwire.CompactSet(vanished) + "\r\n")
		} else {
			for k := len(gone) - 1; k >= 0; k-- {
				s.w.Raw("* ")
				s.w.Num(int64(gone[k] + 1))
				s.w.Raw(" EXPUNGE\r\n")
			}
		}
		// A new array: the old one may be shared (see view.uids).
		out := make([]uint32, 0, len(v.uids)-len(gone))
		k := 0
		for i, u := range v.uids {
			if k < len(gone) && gone[k] == i {
				k++
				continue
			}
			out = append(out, u)
		}
		v.uids = out
	}
	// Flag changes of known messages, then new messages.
	oldMax := v.maxUID()
	var added int
	for _, m := range ch.Changed {
		if m.UID > oldMax {
			if m.UID > v.maxUID() {
				v.uids = append(v.uids, m.UID)
				added++
			}
			continue
		}
		if _, mine := v.self[m.ModSeq]; mine {
			continue
		}
		seq := v.seq(m.UID)
		if seq == 0 {
			continue
		}
		s.w.Raw("* ")
		s.w.Unum(seq)
		s.w.Raw(" FETCH (")
		s.writeFlags(m)
		s.w.Raw(" UID ")
		s.w.Unum(m.UID)
		if s.condstore {
			s.w.Raw(" MODSEQ (")
			s.w.Num(m.ModSeq)
			s.w.Byte(')')
		}
		s.w.Raw(")\r\n")
	}
	if added > 0 || len(gone) > 0 {
		if added > 0 && !s.rev2 {
			if err := s.claimRecent(ctx); err != nil {
				s.log.Warn("imap claim recent", "err", err)
			}
		}
		if added > 0 {
			s.w.Raw("* ")
			s.w.Num(int64(len(v.uids)))
			s.w.Raw(" EXISTS\r\n")
			if !s.rev2 {
				s.w.Raw("* ")
				s.w.Num(int64(v.recentCount()))
				s.w.Raw(" RECENT\r\n")
			}
		}
	}
	if ch.HighestModSeq > v.modseq {
		v.modseq = ch.HighestModSeq
	}
	for m := range v.self {
		if m <= v.modseq {
			delete(v.self, m)
		}
	}
	return nil
}

// writeFlags writes "FLAGS (...)" for m, with \Recent for IMAP4rev1.
func (s *session) writeFlags(m store.MessageMeta) {
	s.w.Raw("FLAGS (")
	first := true
	for _, fn := range store.FlagNames {
		if m.Flags&fn.Flag != 0 {
			if !first {
				s.w.SP()
			}
			s.w.Raw(fn.Name)
			first = false
		}
	}
	for _, k := range m.Keywords {
		if !first {
			s.w.SP()
		}
		s.w.Raw(k)
		first = false
	}
	if !s.rev2 && s.view != nil && s.view.isRecent(m.UID) {
		if !first {
			s.w.SP()
		}
		s.w.Raw(`\Recent`)
	}
	s.w.Byte(')')
}
