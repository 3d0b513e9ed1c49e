package imapserver

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// SORT, ESORT and THREAD (RFC 5256, RFC 5267, RFC 5957).
//
// Both commands start from the SEARCH result and then load, for the
// matching messages only, what their keys need: the envelope from the
// cached MIME summary, and for THREAD=REFERENCES the References header
// from the message content. Strings are compared with the i;ascii-casemap
// collation (ASCII letters folded to upper case, everything else by octet),
// the default and only collation the server announces.

// maxReferences bounds the References of one message that threading
// considers (the last ones, nearest to the message, are kept): each link
// costs a walk up the thread to rule out loops.
const maxReferences = 100

// sortMsg is one message being sorted or threaded, with its keys.
type sortMsg struct {
	seq  uint32
	meta store.MessageMeta
	// sent is the Date header in UTC, or INTERNALDATE when there is no
	// usable Date (RFC 5256 "sent date").
	sent time.Time
	// subject is the base subject (RFC 5256 2.1), case-mapped; reply
	// tells whether extracting it removed a reply or forward marker.
	subject  string
	reply    bool
	from     string // addr-mailbox of the first From address, case-mapped
	to       string
	cc       string
	dispFrom string // RFC 5957 display name (or address), case-mapped
	dispTo   string
	msgID    string
	refs     []string
}

// casemap is the i;ascii-casemap collation key: ASCII a-z upper-cased,
// every other octet unchanged.
func casemap(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// sortLoad loads the sort and thread keys of the search hits; refs
// selects reading the References header (THREAD=REFERENCES).
func (s *session) sortLoad(ctx context.Context, hits []*searchMsg, needEnvelope, refs bool) ([]*sortMsg, error) {
	out := make([]*sortMsg, len(hits))
	for i, h := range hits {
		out[i] = &sortMsg{seq: h.seq, meta: h.meta, sent: h.meta.InternalDate.UTC()}
	}
	if !needEnvelope && !refs {
		return out, nil
	}
	st := s.srv.cfg.Store
	for i := 0; i < len(out); i += searchBatch {
		chunk := out[i:min(i+searchBatch, len(out))]
		uids := make([]uint32, len(chunk))
		for j, m := range chunk {
			uids[j] = m.meta.UID
		}
		msgs, err := st.GetMessages(ctx, s.view.mb.ID, uids)
		if err != nil {
			return nil, err
		}
		byUID := make(map[uint32]*store.Message, len(msgs))
		for j := range msgs {
			byUID[msgs[j].UID] = &msgs[j]
		}
		for _, m := range chunk {
			sm, ok := byUID[m.meta.UID]
			if !ok {
				continue // expunged meanwhile: sorts with empty keys
			}
			f := &fetchMsg{s: s, ctx: ctx, m: *sm}
			p, err := f.summary()
			if err != nil {
				// One unreadable message must not fail the whole sort.
				s.log.Warn("imap sort: message unreadable", "uid", m.meta.UID, "err", err)
				f.close()
				continue
			}
			m.setEnvelope(p.Envelope)
			if refs {
				m.refs = s.readReferences(f, p)
				if len(m.refs) == 0 && p.Envelope != nil {
					if ids := message.MessageIDs(p.Envelope.InReplyTo, 0); len(ids) > 0 {
						m.refs = ids[:1]
					}
				}
			}
			f.close()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m *sortMsg) setEnvelope(env *message.Envelope) {
	if env == nil {
		return
	}
	if t, ok := message.Date(env); ok {
		m.sent = t.UTC()
	}
	base, reply := baseSubject(env.Subject)
	m.subject, m.reply = casemap(base), reply
	m.from = casemap(firstAddr(env.From).Mailbox)
	m.to = casemap(firstAddr(env.To).Mailbox)
	m.cc = casemap(firstAddr(env.Cc).Mailbox)
	m.dispFrom = casemap(displayName(firstAddr(env.From)))
	m.dispTo = casemap(displayName(firstAddr(env.To)))
	if ids := message.MessageIDs(env.MessageID, 0); len(ids) > 0 {
		m.msgID = ids[0]
	}
}

// firstAddr returns the first address that is not a group marker.
func firstAddr(l []message.Address) message.Address {
	for _, a := range l {
		if a.GroupEnd || a.Host == "" && a.Mailbox != "" && a.Name == "" && a.Adl == "" {
			continue // group start or end
		}
		return a
	}
	return message.Address{}
}

// displayName is the RFC 5957 display form: the decoded display name, or
// the address when there is none.
func displayName(a message.Address) string {
	if n := strings.TrimSpace(message.DecodeHeaderValue(a.Name)); n != "" {
		return n
	}
	if a.Mailbox == "" {
		return ""
	}
	if a.Host == "" {
		return a.Mailbox
	}
	return a.Mailbox + "@" + a.Host
}

// readReferences returns the message IDs of the References header.
func (s *session) readReferences(f *fetchMsg, p *message.Part) []string {
	c, err := f.open()
	if err != nil {
		return nil
	}
	h, err := message.ReadHeader(c, 0, clamp(c.PrefixLen()+p.BodyStart, c.Size()))
	if err != nil {
		return nil
	}
	var ids []string
	for _, v := range message.HeaderValues(h, "References") {
		ids = append(ids, message.MessageIDs(v, 0)...)
	}
	if len(ids) > maxReferences {
		ids = ids[len(ids)-maxReferences:]
	}
	return ids
}

// baseSubject extracts the base subject of RFC 5256 section 2.1 and
// reports whether a reply or forward marker (subj-refwd, a "(fwd)"
// trailer or a "[fwd: ...]" wrapper) was removed on the way.
func baseSubject(raw string) (string, bool) {
	// (1) Decode encoded words, turn tabs and line breaks into spaces
	// and collapse runs of spaces.
	dec := message.DecodeHeaderValue(raw)
	var b strings.Builder
	b.Grow(len(dec))
	space := false
	for i := 0; i < len(dec); i++ {
		c := dec[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
	if space {
		b.WriteByte(' ')
	}
	s := b.String()
	reply := false
	for {
		// (2) Trailers: "(fwd)" and white space, repeatedly.
		for {
			if strings.HasSuffix(s, " ") {
				s = s[:len(s)-1]
			} else if len(s) >= 5 && strings.EqualFold(s[len(s)-5:], "(fwd)") {
				s = s[:len(s)-5]
				reply = true
			} else {
				break
			}
		}
		// (3)-(5) Leaders and blobs, until nothing matches.
		for {
			changed := false
			if n, refwd := subjLeader(s); n > 0 {
				s = s[n:]
				reply = reply || refwd
				changed = true
			}
			if n := subjBlob(s, 0); n > 0 && n < len(s) {
				s = s[n:]
				changed = true
			}
			if !changed {
				break
			}
		}
		// (6) "[fwd:" subject "]": unwrap and start over.
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			reply = true
			continue
		}
		return s, reply
	}
}

// subjLeader matches subj-leader = (*subj-blob subj-refwd) / WSP at the
// start of s and returns its length and whether it was a subj-refwd.
func subjLeader(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	if s[0] == ' ' {
		return 1, false
	}
	i := 0
	for {
		n := subjBlob(s, i)
		if n == 0 {
			break
		}
		i = n
	}
	// subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
	switch {
	case len(s)-i >= 2 && strings.EqualFold(s[i:i+2], "re"):
		i += 2
	case len(s)-i >= 2 && strings.EqualFold(s[i:i+2], "fw"):
		i += 2
		if i < len(s) && (s[i] == 'd' || s[i] == 'D') {
			i++
		}
	default:
		return 0, false
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if n := subjBlob(s, i); n > 0 {
		i = n
	}
	if i < len(s) && s[i] == ':' {
		return i + 1, true
	}
	return 0, false
}

// subjBlob matches subj-blob = "[" *BLOBCHAR "]" *WSP at s[i:] and returns
// the index after it, or 0. BLOBCHAR is any octet but the brackets, so
// UTF-8 in list tags counts too.
func subjBlob(s string, i int) int {
	if i >= len(s) || s[i] != '[' {
		return 0
	}
	j := i + 1
	for j < len(s) && s[j] != ']' {
		if s[j] == '[' {
			return 0
		}
		j++
	}
	if j >= len(s) {
		return 0
	}
	j++
	for j < len(s) && s[j] == ' ' {
		j++
	}
	return j
}

func needsEnvelope(crit []imapwire.SortCriterion) bool {
	for _, c := range crit {
		if c.Key != "ARRIVAL" && c.Key != "SIZE" {
			return true
		}
	}
	return false
}

// compareSort compares two messages by the sort program; ties go by
// sequence number (RFC 5256 section 3).
func compareSort(a, b *sortMsg, crit []imapwire.SortCriterion) int {
	for _, c := range crit {
		var r int
		switch c.Key {
		case "ARRIVAL":
			r = a.meta.InternalDate.Compare(b.meta.InternalDate)
		case "DATE":
			r = a.sent.Compare(b.sent)
		case "SIZE":
			r = cmpInt64(a.meta.Size, b.meta.Size)
		case "SUBJECT":
			r = strings.Compare(a.subject, b.subject)
		case "FROM":
			r = strings.Compare(a.from, b.from)
		case "TO":
			r = strings.Compare(a.to, b.to)
		case "CC":
			r = strings.Compare(a.cc, b.cc)
		case "DISPLAYFROM":
			r = strings.Compare(a.dispFrom, b.dispFrom)
		case "DISPLAYTO":
			r = strings.Compare(a.dispTo, b.dispTo)
		}
		if c.Reverse {
			r = -r
		}
		if r != 0 {
			return r
		}
	}
	return cmpInt(int(a.seq), int(b.seq))
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func checkSortCharset(s *session, charset string) error {
	if s.utf8Accept && charset != "UTF-8" {
		// RFC 6855 erratum 4029.
		return bad("Only UTF-8 is allowed after ENABLE UTF8=ACCEPT")
	}
	if charset != "UTF-8" && charset != "US-ASCII" {
		return no("BADCHARSET ("+searchCharsets+")", "Unsupported charset")
	}
	return nil
}

func (s *session) cmdSort(ctx context.Context, cmd *imapwire.Command) (err error) {
	a := cmd.Args.(*imapwire.SortArgs)
	defer s.resetSavedOnError(a.Return, &err)
	if err := checkSortCharset(s, a.Charset); err != nil {
		return err
	}
	var ret returnOpts
	if err := ret.parse(a.Return, a.ReturnGiven); err != nil {
		return err
	}
	modseqKey := usesModSeq(a.Key)
	if modseqKey {
		s.enableCondstore()
	}
	hits, err := s.search(ctx, a.Key)
	if err != nil {
		return err
	}
	msgs, err := s.sortLoad(ctx, hits, needsEnvelope(a.Criteria), false)
	if err != nil {
		return err
	}
	sort.SliceStable(msgs, func(i, j int) bool { return compareSort(msgs[i], msgs[j], a.Criteria) < 0 })
	nums := make([]uint32, len(msgs))
	var highest int64
	for i, m := range msgs {
		if cmd.UID {
			nums[i] = m.meta.UID
		} else {
			nums[i] = m.seq
		}
		highest = max(highest, m.meta.ModSeq)
	}
	if ret.save {
		s.view.saved = ret.saved(hits)
	}
	if !a.ReturnGiven {
		s.writeNumList("SORT", nums, highest, modseqKey)
		return nil
	}
	// ESORT (RFC 5267): MIN and MAX are the first and last in sort
	// order, ALL lists the messages in sort order.
	s.writeESearch(cmd, ret, nums, highest, modseqKey)
	return nil
}

// returnOpts are the ESEARCH/ESORT return options.
type returnOpts struct {
	min, max, all, count, save bool
}

func (o *returnOpts) parse(opts []string, given bool) error {
	for _, r := range opts {
		switch r {
		case "MIN":
			o.min = true
		case "MAX":
			o.max = true
		case "ALL":
			o.all = true
		case "COUNT":
			o.count = true
		case "SAVE":
			o.save = true
		default:
			return bad("Unknown return option %s", r)
		}
	}
	if given && !o.min && !o.max && !o.count && !o.save {
		o.all = true // RETURN () means ALL
	}
	return nil
}

// saved is the SEARCHRES result for SAVE (RFC 5182): the UIDs of the
// hits, or only those MIN and MAX name when they are the only other
// options. hits are in sequence order.
func (o *returnOpts) saved(hits []*searchMsg) []uint32 {
	var out []uint32
	if (o.min || o.max) && !o.all && !o.count {
		if len(hits) > 0 {
			if o.min {
				out = append(out, hits[0].meta.UID)
			}
			if o.max && (!o.min || len(hits) > 1) {
				out = append(out, hits[len(hits)-1].meta.UID)
			}
		}
		return out
	}
	out = make([]uint32, len(hits))
	for i, h := range hits {
		out[i] = h.meta.UID
	}
	return out
}

// writeESearch writes an ESEARCH response for nums (in result order).
func (s *session) writeESearch(cmd *imapwire.Command, o returnOpts, nums []uint32, highest int64, modseq bool) {
	if o.save && !o.min && !o.max && !o.all && !o.count {
		return // SAVE alone: no ESEARCH response (RFC 5182)
	}
	s.w.Raw("* ESEARCH (TAG ")
	s.w.String(cmd.Tag)
	s.w.Byte(')')
	if cmd.UID {
		s.w.Raw(" UID")
	}
	if len(nums) > 0 {
		if o.min {
			s.w.Raw(" MIN ")
			s.w.Unum(nums[0])
		}
		if o.max {
			s.w.Raw(" MAX ")
			s.w.Unum(nums[len(nums)-1])
		}
		if o.all {
			s.w.Raw(" ALL " + imapwire.CompactSet(nums))
		}
	}
	if o.count {
		s.w.Raw(" COUNT " + strconv.Itoa(len(nums)))
	}
	if modseq && len(nums) > 0 {
		s.w.Raw(" MODSEQ ")
		s.w.Num(highest)
	}
	s.w.CRLF()
}

func (s *session) cmdThread(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.ThreadArgs)
	if a.Algorithm != "ORDEREDSUBJECT" && a.Algorithm != "REFERENCES" {
		return bad("Unsupported threading algorithm %s", a.Algorithm)
	}
	if err := checkSortCharset(s, a.Charset); err != nil {
		return err
	}
	if usesModSeq(a.Key) {
		s.enableCondstore()
	}
	hits, err := s.search(ctx, a.Key)
	if err != nil {
		return err
	}
	msgs, err := s.sortLoad(ctx, hits, true, a.Algorithm == "REFERENCES")
	if err != nil {
		return err
	}
	var roots []*container
	if a.Algorithm == "ORDEREDSUBJECT" {
		roots = threadOrderedSubject(msgs)
	} else {
		roots = threadReferences(msgs)
	}
	var b strings.Builder
	b.WriteString("* THREAD")
	for _, r := range roots {
		if b.Len() == len("* THREAD") {
			b.WriteByte(' ')
		}
		b.WriteByte('(')
		writeThreadMembers(&b, r, cmd.UID)
		b.WriteByte(')')
	}
	b.WriteString("\r\n")
	s.w.Raw(b.String())
	return nil
}

// container is a node of a thread tree; msg is nil for a dummy (a message
// that is referenced but not in the result).
type container struct {
	msg      *sortMsg
	parent   *container
	children []*container
}

// rep returns the message that stands for c when sorting: c's own, or
// for a dummy its first child's (children sorted first).
func (c *container) rep() *sortMsg {
	for c != nil && c.msg == nil {
		if len(c.children) == 0 {
			return nil
		}
		c = c.children[0]
	}
	if c == nil {
		return nil
	}
	return c.msg
}

// sortBySent orders containers by sent date, then sequence number.
func sortBySent(l []*container) {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].rep(), l[j].rep()
		if a == nil || b == nil {
			return a != nil
		}
		if c := a.sent.Compare(b.sent); c != 0 {
			return c < 0
		}
		return a.seq < b.seq
	})
}

// sortTree sorts every set of siblings below the given ones (and those),
// deepest first, without recursion so that long reply chains cannot
// exhaust the stack.
func sortTree(roots []*container) {
	var order []*container
	stack := append([]*container(nil), roots...)
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		order = append(order, c)
		stack = append(stack, c.children...)
	}
	for i := len(order) - 1; i >= 0; i-- {
		sortBySent(order[i].children)
	}
	sortBySent(roots)
}

// threadOrderedSubject implements THREAD=ORDEREDSUBJECT (RFC 5256): the
// messages are grouped by base subject; in each group the earliest
// message is the parent of all others; groups are ordered by the sent
// date of their first message.
func threadOrderedSubject(msgs []*sortMsg) []*container {
	sorted := append([]*sortMsg(nil), msgs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.subject != b.subject {
			return a.subject < b.subject
		}
		if c := a.sent.Compare(b.sent); c != 0 {
			return c < 0
		}
		return a.seq < b.seq
	})
	var roots []*container
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].subject == sorted[i].subject {
			j++
		}
		root := &container{msg: sorted[i]}
		for _, m := range sorted[i+1 : j] {
			root.children = append(root.children, &container{msg: m, parent: root})
		}
		roots = append(roots, root)
		i = j
	}
	sortBySent(roots)
	return roots
}

// threadReferences implements THREAD=REFERENCES (RFC 5256 section 4,
// after Jamie Zawinski's algorithm).
func threadReferences(msgs []*sortMsg) []*container {
	ids := make(map[string]*container, len(msgs))
	var all []*container // in creation order, for a deterministic root set
	get := func(id string) *container {
		c := ids[id]
		if c == nil {
			c = &container{}
			ids[id] = c
			all = append(all, c)
		}
		return c
	}
	// descends reports whether d is c or below c. A container without
	// children has nothing below it, which keeps the common case (a new
	// message at the end of a long chain) from walking the chain.
	descends := func(d, c *container) bool {
		if len(c.children) == 0 {
			return d == c
		}
		for ; d != nil; d = d.parent {
			if d == c {
				return true
			}
		}
		return false
	}
	unlink := func(c *container) {
		if p := c.parent; p != nil {
			for i, x := range p.children {
				if x == c {
					p.children = append(p.children[:i:i], p.children[i+1:]...)
					break
				}
			}
			c.parent = nil
		}
	}
	link := func(p, c *container) {
		c.parent = p
		p.children = append(p.children, c)
	}
	// (1) Link messages and their references. msgs are in sequence
	// order, so a duplicate Message-ID keeps its first (lowest numbered)
	// message and later ones get a unique ID.
	for _, m := range msgs {
		id := m.msgID
		c := ids[id]
		if id == "" || c != nil && c.msg != nil {
			id = "\x00" + strconv.FormatUint(uint64(m.seq), 10)
			c = nil
		}
		if c == nil {
			c = get(id)
		}
		c.msg = m
		var prev *container
		for _, r := range m.refs {
			rc := get(r)
			if prev != nil && rc.parent == nil && !descends(prev, rc) {
				link(prev, rc)
			}
			prev = rc
		}
		// The message's own last reference is its parent, replacing a
		// guess made from other messages' References.
		if prev != nil && descends(prev, c) {
			prev = nil // would make a loop
		}
		if c.parent != prev {
			unlink(c)
			if prev != nil {
				link(prev, c)
			}
		}
	}
	// (2) The root set.
	var roots []*container
	for _, c := range all {
		if c.parent == nil {
			roots = append(roots, c)
		}
	}
	// (3) Prune dummies: drop those without children, replace those
	// with children by the children, except at the top level where a
	// dummy with several children stays (it holds the thread together).
	roots = pruneDummies(roots)
	// (4) Sort the root set by sent date.
	sortTree(roots)
	// (5) Gather threads with the same base subject.
	roots = mergeSubjects(roots)
	// (6) Sort all siblings by sent date.
	sortTree(roots)
	return roots
}

// pruneDummies applies step (3) to the root set and everything below it:
// dummies without children go, dummies with children are replaced by
// their children, except a top-level dummy with several children, which
// holds its thread together. It walks level by level, without recursion.
func pruneDummies(roots []*container) []*container {
	roots = pruneLevel(roots, nil)
	queue := append([]*container(nil), roots...)
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		c.children = pruneLevel(c.children, c)
		queue = append(queue, c.children...)
	}
	return roots
}

// pruneLevel prunes one set of siblings whose parent is parent (nil for the
// root set). Promoted children may be dummies themselves and are looked at
// again.
func pruneLevel(l []*container, parent *container) []*container {
	var res []*container
	work := append([]*container(nil), l...)
	for len(work) > 0 {
		c := work[0]
		work = work[1:]
		if c.msg == nil {
			if len(c.children) == 0 {
				continue
			}
			if parent != nil || len(c.children) == 1 {
				for _, ch := range c.children {
					ch.parent = parent
				}
				work = append(append([]*container(nil), c.children...), work...)
				continue
			}
		}
		res = append(res, c)
	}
	return res
}

// mergeSubjects is step (5) of THREAD=REFERENCES: top-level threads with
// the same base subject are put together.
func mergeSubjects(roots []*container) []*container {
	subj := func(c *container) (string, bool, bool) {
		m := c.rep()
		if m == nil {
			return "", false, false
		}
		return m.subject, m.reply, true
	}
	table := map[string]*container{}
	for _, c := range roots {
		s, reply, ok := subj(c)
		if !ok || s == "" {
			continue
		}
		old := table[s]
		if old == nil {
			table[s] = c
			continue
		}
		_, oldReply, _ := subj(old)
		if c.msg == nil && old.msg != nil || oldReply && !reply && (c.msg != nil) == (old.msg != nil) {
			table[s] = c
		}
	}
	removed := map[*container]bool{}
	for _, c := range roots {
		if removed[c] {
			continue
		}
		s, reply, ok := subj(c)
		if !ok || s == "" {
			continue
		}
		t := table[s]
		if t == nil || t == c {
			continue
		}
		_, tReply, _ := subj(t)
		switch {
		case t.msg == nil && c.msg == nil:
			for _, ch := range c.children {
				ch.parent = t
			}
			t.children = append(t.children, c.children...)
			c.children = nil
		case t.msg == nil:
			c.parent = t
			t.children = append(t.children, c)
		case !tReply && reply:
			c.parent = t
			t.children = append(t.children, c)
		default:
			d := &container{children: []*container{t, c}}
			t.parent, c.parent = d, d
			table[s] = d
			replaceRoot(roots, t, d) // d takes t's place

		}
		removed[c] = true
	}
	out := roots[:0]
	for _, c := range roots {
		if !removed[c] {
			out = append(out, c)
		}
	}
	return out
}

func replaceRoot(roots []*container, old, new *container) {
	for i, c := range roots {
		if c == old {
			roots[i] = new
			return
		}
	}
}

// writeThreadMembers writes the members of c's thread without the
// enclosing parentheses: "1 2 (3)(4 5)" for 1 -> 2 -> {3, 4 -> 5}; a
// dummy at the top contributes only its children: "(3)(5)".
func writeThreadMembers(b *strings.Builder, c *container, uid bool) {
	first := true
	for {
		if c.msg != nil {
			if !first {
				b.WriteByte(' ')
			}
			n := c.msg.seq
			if uid {
				n = c.msg.meta.UID
			}
			b.WriteString(strconv.FormatUint(uint64(n), 10))
			first = false
		}
		switch len(c.children) {
		case 0:
			return
		case 1:
			if c.msg != nil {
				c = c.children[0]
				continue
			}
		}
		if !first {
			b.WriteByte(' ')
		}
		for _, ch := range c.children {
			b.WriteByte('(')
			writeThreadMembers(b, ch, uid)
			b.WriteByte(')')
		}
		return
	}
}
