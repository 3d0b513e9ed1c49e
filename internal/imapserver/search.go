package imapserver

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

const (
	searchBatch    = 200
	maxSearchText  = 16 << 20 // decoded text searched per message
	costMeta       = 0
	costHeader     = 1
	costBody       = 2
	searchCharsets = "UTF-8 US-ASCII"
)

// keyCost says what a key needs: metadata only, the header (and summary),
// or the decoded body text.
func keyCost(k *imapwire.SearchKey) int {
	switch k.Op {
	case "AND", "OR", "NOT":
		c := costMeta
		for _, sub := range k.Keys {
			c = max(c, keyCost(sub))
		}
		return c
	case "BCC", "CC", "FROM", "SUBJECT", "TO", "HEADER", "SENTBEFORE", "SENTON", "SENTSINCE":
		return costHeader
	case "BODY", "TEXT":
		return costBody
	}
	return costMeta
}

func usesModSeq(k *imapwire.SearchKey) bool {
	if k.Op == "MODSEQ" {
		return true
	}
	for _, sub := range k.Keys {
		if usesModSeq(sub) {
			return true
		}
	}
	return false
}

// orderKeys sorts the children of every AND so cheap tests run first and
// expensive ones only for messages that pass them.
func orderKeys(k *imapwire.SearchKey) {
	for _, sub := range k.Keys {
		orderKeys(sub)
	}
	if k.Op == "AND" {
		sort.SliceStable(k.Keys, func(i, j int) bool { return keyCost(k.Keys[i]) < keyCost(k.Keys[j]) })
	}
}

// searchMsg is one candidate message with lazily loaded parts.
type searchMsg struct {
	meta   store.MessageMeta
	seq    uint32
	f      *fetchMsg // nil when only metadata was loaded
	header []byte    // raw root header
	text   []byte    // lower-cased decoded body text
	loaded bool
	failed bool
}

type searcher struct {
	s      *session
	ctx    context.Context
	maxSeq uint32
	maxUID uint32
	now    time.Time
	err    error
}

// resetSavedOnError empties the SEARCHRES result when a command that was
// to SAVE fails (RFC 5182 2.1: the variable never keeps a stale value
// after a failed SEARCH RETURN (SAVE)).
func (s *session) resetSavedOnError(ret []string, err *error) {
	if *err == nil || s.view == nil {
		return
	}
	for _, r := range ret {
		if r == "SAVE" {
			s.view.saved = nil
		}
	}
}

func (s *session) cmdSearch(ctx context.Context, cmd *imapwire.Command) (err error) {
	a := cmd.Args.(*imapwire.SearchArgs)
	defer s.resetSavedOnError(a.Return, &err)
	if a.Charset != "" && a.Charset != "UTF-8" && a.Charset != "US-ASCII" {
		return no("BADCHARSET ("+searchCharsets+")", "Unsupported charset")
	}
	if s.utf8Accept && a.Charset != "" {
		// RFC 6855 section 3 (and erratum 4029).
		return bad("CHARSET is not allowed after ENABLE UTF8=ACCEPT")
	}
	var ret returnOpts
	if err := ret.parse(a.Return, a.ReturnGiven); err != nil {
		return err
	}
	esearch := a.ReturnGiven || s.rev2
	if !ret.save && !ret.all && !ret.count && !ret.min && !ret.max {
		ret.all = true
	}
	modseqKey := usesModSeq(a.Key)
	if modseqKey {
		s.enableCondstore()
	}
	hits, err := s.search(ctx, a.Key)
	if err != nil {
		return err
	}
	// hits are in ascending sequence (and UID) order.
	nums := make([]uint32, len(hits))
	// With a MODSEQ criterion the response carries the highest MODSEQ of
	// the matches (RFC 7162 3.1.5).
	var highest int64
	for i, h := range hits {
		if cmd.UID {
			nums[i] = h.meta.UID
		} else {
			nums[i] = h.seq
		}
		highest = max(highest, h.meta.ModSeq)
	}
	if ret.save {
		s.view.saved = ret.saved(hits)
	}
	if !esearch {
		s.writeNumList("SEARCH", nums, highest, modseqKey)
		return nil
	}
	s.writeESearch(cmd, ret, nums, highest, modseqKey)
	return nil
}

// writeNumList writes the untagged "* SEARCH" or "* SORT" response: the
// numbers, and the highest MODSEQ when a MODSEQ key was used (RFC 7162).
func (s *session) writeNumList(name string, nums []uint32, highest int64, modseqKey bool) {
	s.w.Raw("* " + name)
	for _, n := range nums {
		s.w.SP()
		s.w.Unum(n)
	}
	if modseqKey && len(nums) > 0 {
		s.w.Raw(" (MODSEQ ")
		s.w.Num(highest)
		s.w.Byte(')')
	}
	s.w.CRLF()
}

// search returns the messages of the view matching key, in sequence order.
func (s *session) search(ctx context.Context, key *imapwire.SearchKey) ([]*searchMsg, error) {
	v := s.view
	st := s.srv.cfg.Store
	orderKeys(key)
	list, err := s.listShared(ctx, v.mb.ID) // shared: read only
	if err != nil {
		return nil, err
	}
	sr := &searcher{s: s, ctx: ctx, maxSeq: uint32(len(v.uids)), maxUID: v.maxUID(), now: s.srv.now()}
	needContent := keyCost(key) > costMeta
	var hits []*searchMsg
	// Candidates are matched a chunk at a time in one reused buffer;
	// hits are copied out to slabs, so a search over a big mailbox makes
	// a few allocations rather than one per message.
	var slab []searchMsg
	chunk := make([]searchMsg, 0, min(searchBatch, len(v.uids)))
	run := func() error {
		if needContent {
			uids := make([]uint32, len(chunk))
			for j := range chunk {
				uids[j] = chunk[j].meta.UID
			}
			msgs, err := st.GetMessages(ctx, v.mb.ID, uids)
			if err != nil {
				return err
			}
			byUID := make(map[uint32]store.Message, len(msgs))
			for _, m := range msgs {
				byUID[m.UID] = m
			}
			for j := range chunk {
				if m, ok := byUID[chunk[j].meta.UID]; ok {
					chunk[j].f = &fetchMsg{s: s, ctx: ctx, m: m}
				}
			}
		}
		for j := range chunk {
			c := &chunk[j]
			ok := sr.match(c, key)
			if c.f != nil {
				c.f.close()
				c.f = nil
			}
			c.header, c.text = nil, nil
			if sr.err != nil {
				return sr.err
			}
			if ok {
				if len(slab) == cap(slab) {
					slab = make([]searchMsg, 0, min(256, max(16, len(hits))))
				}
				slab = append(slab, *c)
				hits = append(hits, &slab[len(slab)-1])
			}
		}
		chunk = chunk[:0]
		return ctx.Err()
	}
	// Align the store's listing with the view, both ascending by UID:
	// messages the client does not know yet are not searched, expunged
	// ones cannot match.
	j := 0
	for i := range list {
		m := &list[i]
		for j < len(v.uids) && v.uids[j] < m.UID {
			j++
		}
		if j == len(v.uids) {
			break
		}
		if v.uids[j] != m.UID {
			continue
		}
		chunk = append(chunk, searchMsg{meta: *m, seq: uint32(j + 1)})
		if len(chunk) == cap(chunk) {
			if err := run(); err != nil {
				return nil, err
			}
		}
	}
	if len(chunk) > 0 {
		if err := run(); err != nil {
			return nil, err
		}
	}
	return hits, nil
}

func sameDay(t time.Time, d time.Time) int {
	y1, m1, d1 := t.Date()
	y2, m2, d2 := d.Date()
	switch {
	case y1 != y2:
		return cmpInt(y1, y2)
	case m1 != m2:
		return cmpInt(int(m1), int(m2))
	}
	return cmpInt(d1, d2)
}

func cmpInt(a, b int) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

func dateCmp(op string, t, d time.Time) bool {
	c := sameDay(t, d)
	switch {
	case strings.HasSuffix(op, "BEFORE"):
		return c < 0
	case strings.HasSuffix(op, "ON"):
		return c == 0
	default: // SINCE
		return c >= 0
	}
}

func (sr *searcher) match(m *searchMsg, k *imapwire.SearchKey) bool {
	if sr.err != nil {
		return false
	}
	v := sr.s.view
	meta := &m.meta
	switch k.Op {
	case "AND":
		for _, sub := range k.Keys {
			if !sr.match(m, sub) {
				return false
			}
		}
		return true
	case "OR":
		return sr.match(m, k.Keys[0]) || sr.match(m, k.Keys[1])
	case "NOT":
		return !sr.match(m, k.Keys[0])
	case "ALL", "SAVEDATESUPPORTED":
		return true
	case "SEQ":
		if k.Set.Saved {
			return containsUID(v.saved, meta.UID)
		}
		return k.Set.Contains(m.seq, sr.maxSeq)
	case "UID":
		if k.Set.Saved {
			return containsUID(v.saved, meta.UID)
		}
		return k.Set.Contains(meta.UID, sr.maxUID)
	case "ANSWERED":
		return meta.Flags&store.FlagAnswered != 0
	case "DELETED":
		return meta.Flags&store.FlagDeleted != 0
	case "DRAFT":
		return meta.Flags&store.FlagDraft != 0
	case "FLAGGED":
		return meta.Flags&store.FlagFlagged != 0
	case "SEEN":
		return meta.Flags&store.FlagSeen != 0
	case "UNANSWERED":
		return meta.Flags&store.FlagAnswered == 0
	case "UNDELETED":
		return meta.Flags&store.FlagDeleted == 0
	case "UNDRAFT":
		return meta.Flags&store.FlagDraft == 0
	case "UNFLAGGED":
		return meta.Flags&store.FlagFlagged == 0
	case "UNSEEN":
		return meta.Flags&store.FlagSeen == 0
	case "RECENT":
		return v.isRecent(meta.UID)
	case "NEW":
		return v.isRecent(meta.UID) && meta.Flags&store.FlagSeen == 0
	case "OLD":
		return !v.isRecent(meta.UID)
	case "KEYWORD", "UNKEYWORD":
		has := hasKeyword(meta, k.Str)
		return has == (k.Op == "KEYWORD")
	case "BEFORE", "ON", "SINCE":
		return dateCmp(k.Op, meta.InternalDate, k.Date)
	case "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		d := meta.SaveDate
		if d.IsZero() {
			d = meta.InternalDate
		}
		return dateCmp(k.Op, d, k.Date)
	case "LARGER":
		return meta.Size > k.Num
	case "SMALLER":
		return meta.Size < k.Num
	case "OLDER":
		return sr.now.Sub(meta.InternalDate) >= time.Duration(k.Num)*time.Second
	case "YOUNGER":
		return sr.now.Sub(meta.InternalDate) <= time.Duration(k.Num)*time.Second
	case "MODSEQ":
		return meta.ModSeq >= k.Num
	case "EMAILID":
		return meta.EmailID == k.Str
	case "THREADID":
		return meta.ThreadID != "" && meta.ThreadID == k.Str
	case "SENTBEFORE", "SENTON", "SENTSINCE":
		p := sr.summary(m)
		d := meta.InternalDate
		if p != nil && p.Envelope != nil {
			if t, ok := message.Date(p.Envelope); ok {
				d = t
			}
		}
		return dateCmp(k.Op, d, k.Date)
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		return sr.headerContains(m, k.Op, k.Str)
	case "HEADER":
		return sr.headerContains(m, k.Field, k.Str)
	case "BODY":
		return sr.bodyContains(m, k.Str)
	case "TEXT":
		return sr.headerContains(m, "", k.Str) || sr.bodyContains(m, k.Str)
	}
	return false
}

func containsUID(l []uint32, u uint32) bool {
	i := sort.Search(len(l), func(i int) bool { return l[i] >= u })
	if i < len(l) && l[i] == u {
		return true
	}
	// "$" after SAVE with MIN/MAX is not necessarily sorted.
	for _, x := range l {
		if x == u {
			return true
		}
	}
	return false
}

func hasKeyword(m *store.MessageMeta, kw string) bool {
	if strings.HasPrefix(kw, `\`) {
		f, _ := store.FlagsFromNames([]string{kw})
		return f != 0 && m.Flags&f == f
	}
	for _, k := range m.Keywords {
		if strings.EqualFold(k, kw) {
			return true
		}
	}
	return false
}

func (sr *searcher) summary(m *searchMsg) *message.Part {
	if m.f == nil || m.failed {
		return nil
	}
	p, err := m.f.summary()
	if err != nil {
		sr.s.log.Warn("imap search: message unreadable", "uid", m.meta.UID, "err", err)
		m.failed = true
		return nil
	}
	return p
}

// rootHeader returns the raw header of the message, prefix included.
func (sr *searcher) rootHeader(m *searchMsg) []byte {
	if m.header != nil {
		return m.header
	}
	p := sr.summary(m)
	if p == nil {
		return nil
	}
	c, err := m.f.open()
	if err != nil {
		m.failed = true
		return nil
	}
	h, err := message.ReadHeader(c, 0, clamp(c.PrefixLen()+p.BodyStart, c.Size()))
	if err != nil {
		m.failed = true
		return nil
	}
	m.header = h
	return h
}

// headerContains reports whether a header field (every field when name is
// "") contains needle after decoding encoded words, case-insensitively.
// An empty needle matches when the field exists.
func (sr *searcher) headerContains(m *searchMsg, name, needle string) bool {
	h := sr.rootHeader(m)
	if h == nil {
		return false
	}
	needle = strings.ToLower(needle)
	if name == "" {
		return strings.Contains(strings.ToLower(message.DecodeHeaderValue(string(h))), needle)
	}
	for _, v := range message.HeaderValues(h, name) {
		if needle == "" || strings.Contains(strings.ToLower(message.DecodeHeaderValue(v)), needle) {
			return true
		}
	}
	return false
}

// bodyContains searches the decoded text of the message's text parts (and
// of embedded messages, headers included).
func (sr *searcher) bodyContains(m *searchMsg, needle string) bool {
	if !m.loaded {
		m.loaded = true
		p := sr.summary(m)
		if p == nil {
			return false
		}
		c, err := m.f.open()
		if err != nil {
			m.failed = true
			return false
		}
		var buf bytes.Buffer
		collectText(&buf, c, p, true)
		m.text = bytes.ToLower(buf.Bytes())
	}
	return bytes.Contains(m.text, []byte(strings.ToLower(needle)))
}

func collectText(buf *bytes.Buffer, c *store.Content, p *message.Part, root bool) {
	if buf.Len() >= maxSearchText {
		return
	}
	pl := c.PrefixLen()
	switch {
	case p.MediaType == "multipart":
		for _, sub := range p.Parts {
			collectText(buf, c, sub, false)
		}
	case p.Message != nil:
		mh, err := message.ReadHeader(c, clamp(pl+p.Message.HeaderStart, c.Size()), clamp(pl+p.Message.BodyStart, c.Size()))
		if err == nil {
			buf.WriteString(message.DecodeHeaderValue(string(mh)))
			buf.WriteByte('\n')
		}
		collectText(buf, c, p.Message, false)
	case p.MediaType == "text" || (root && p.MediaType == ""):
		start, end := clamp(pl+p.BodyStart, c.Size()), clamp(pl+p.BodyEnd, c.Size())
		r := message.DecodeReader(p.Encoding, io.NewSectionReader(c, start, end-start))
		r = message.CharsetReader(p.Charset(), r)
		io.Copy(buf, io.LimitReader(r, int64(maxSearchText-buf.Len())))
		buf.WriteByte('\n')
	}
}
