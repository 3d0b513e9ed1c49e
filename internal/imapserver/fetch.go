package imapserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

const (
	fetchBatch     = 100  // messages per GetMessages when content is needed
	metaBatch      = 1000 // messages per GetMessages for metadata only
	maxBinaryBytes = 256 << 20
)

// fetchMsg is one message being answered, with lazily opened content and
// summary.
type fetchMsg struct {
	s       *session
	ctx     context.Context
	m       store.Message
	content *store.Content
	part    *message.Part
}

func (f *fetchMsg) open() (*store.Content, error) {
	if f.content == nil {
		c, err := store.OpenContent(f.ctx, f.s.srv.cfg.Store, f.m)
		if err != nil {
			return nil, err
		}
		f.content = c
	}
	return f.content, nil
}

// summary returns the parsed structure, from the stored summary or by
// parsing the content when there is none.
func (f *fetchMsg) summary() (*message.Part, error) {
	if f.part != nil {
		return f.part, nil
	}
	if len(f.m.Summary) > 0 {
		if p, err := message.Decode(f.m.Summary); err == nil {
			f.part = p
			return p, nil
		}
	}
	c, err := f.open()
	if err != nil {
		return nil, err
	}
	p, err := message.Parse(io.NewSectionReader(c, c.PrefixLen(), c.Size()-c.PrefixLen()), c.Size()-c.PrefixLen())
	if err != nil {
		return nil, fmt.Errorf("parse message %d: %w", f.m.ID, err)
	}
	f.part = p
	return p, nil
}

func (f *fetchMsg) close() {
	if f.content != nil {
		f.content.Close()
		f.content = nil
	}
}

// sectionRange returns the byte range of a BODY section in the content
// (prefix included), or ok false when the section does not exist.
func sectionRange(p *message.Part, c *store.Content, sec *imapwire.Section) (start, end int64, ok bool) {
	pl, size := c.PrefixLen(), c.Size()
	spec := sec.Specifier
	if strings.HasPrefix(spec, "HEADER.FIELDS") {
		spec = "HEADER"
	}
	if len(sec.Part) == 0 {
		switch spec {
		case "":
			return 0, size, true
		case "HEADER":
			// The stored prefix (Return-Path, Delivered-To) is part of
			// the message header.
			return 0, clamp(pl+p.BodyStart, size), true
		}
	}
	s, e, ok := p.Section(sec.Part, spec)
	if !ok {
		return 0, 0, false
	}
	return clamp(pl+s, size), clamp(pl+e, size), true
}

func clamp(n, max int64) int64 {
	if n > max {
		return max
	}
	if n < 0 {
		return 0
	}
	return n
}

func sectionName(sec *imapwire.Section) string {
	var b strings.Builder
	for i, n := range sec.Part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	if sec.Specifier != "" {
		if len(sec.Part) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(sec.Specifier)
		if strings.HasPrefix(sec.Specifier, "HEADER.FIELDS") {
			b.WriteString(" (")
			for i, f := range sec.Fields {
				if i > 0 {
					b.WriteByte(' ')
				}
				if isAtom(f) {
					b.WriteString(f)
				} else {
					b.WriteString(strconv.Quote(f))
				}
			}
			b.WriteByte(')')
		}
	}
	return b.String()
}

func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func setsSeen(it imapwire.FetchItem) bool {
	switch it.Name {
	case "BODY[]", "BINARY":
		return !it.Peek
	case "RFC822", "RFC822.TEXT":
		return true
	}
	return false
}

func (s *session) cmdFetch(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.FetchArgs)
	if a.Vanished && (!s.qresync || !cmd.UID || !a.HasChangedSince) {
		return bad("VANISHED needs QRESYNC enabled, UID FETCH and CHANGEDSINCE")
	}
	uids, err := s.resolve(a.Set, cmd.UID)
	if err != nil {
		return err
	}
	if a.Vanished {
		if err := s.fetchVanished(ctx, a); err != nil {
			return err
		}
	}
	items := a.Items
	hasUID, hasFlags, hasModSeq := false, false, false
	needContent, setSeen := false, false
	for _, it := range items {
		switch it.Name {
		case "UID":
			hasUID = true
		case "FLAGS":
			hasFlags = true
		case "MODSEQ":
			hasModSeq = true
		case "ENVELOPE", "BODYSTRUCTURE", "BODY":
			needContent = true
		case "BODY[]", "BINARY", "BINARY.SIZE", "RFC822", "RFC822.HEADER", "RFC822.TEXT":
			needContent = true
		}
		setSeen = setSeen || setsSeen(it)
	}
	if cmd.UID && !hasUID {
		items = append([]imapwire.FetchItem{{Name: "UID"}}, items...)
	}
	setSeen = setSeen && !s.view.readOnly
	if hasModSeq || a.HasChangedSince {
		s.enableCondstore()
	}
	// With CONDSTORE, flags always come with their MODSEQ (RFC 7162 3.1.4).
	if !hasModSeq && s.condstore && (hasFlags || setSeen || a.HasChangedSince) {
		items = append(items[:len(items):len(items)], imapwire.FetchItem{Name: "MODSEQ"})
	}
	v := s.view
	st := s.srv.cfg.Store

	var all []store.MessageMeta // shared: read only
	if !needContent && !setSeen && (len(uids) > metaBatch || len(uids) > 64 && len(uids) > len(v.uids)/4) {
		// Metadata for a large part of the mailbox: the store's listing
		// (no summaries, no prefixes) beats lookups by UID.
		all, err = s.listShared(ctx, v.mb.ID)
		if err != nil {
			return err
		}
		if all == nil {
			all = []store.MessageMeta{} // mailbox gone: every UID is missing
		}
	}
	at := 0 // uids usually ascend: where the search in all resumes
	missing := 0
	batch := fetchBatch
	if !needContent {
		batch = metaBatch
	}
	// One fetchMsg serves every message, and metadata from the shared
	// list is not copied into a batch first: FETCH 1:* (FLAGS) of a big
	// mailbox allocates per command, not per message.
	var f fetchMsg
	emit := func(m store.Message, changed bool) error {
		seq := v.seq(m.UID)
		if seq == 0 || a.HasChangedSince && m.ModSeq <= a.ChangedSince {
			return nil
		}
		f = fetchMsg{s: s, ctx: ctx, m: m}
		err := s.writeFetch(&f, seq, items, changed && !hasFlags)
		f.close()
		return err
	}
	for i := 0; i < len(uids); i += batch {
		chunk := uids[i:min(i+batch, len(uids))]
		if all != nil {
			for _, u := range chunk {
				if at > 0 && at <= len(all) && all[at-1].UID >= u {
					at = 0 // not ascending ("$" after SORT)
				}
				at += sort.Search(len(all)-at, func(i int) bool { return all[at+i].UID >= u })
				if at == len(all) || all[at].UID != u {
					missing++
					continue
				}
				if err := emit(store.Message{MessageMeta: all[at]}, false); err != nil {
					return err
				}
			}
			continue
		}
		msgs, err := st.GetMessages(ctx, v.mb.ID, chunk)
		if err != nil {
			return err
		}
		missing += len(chunk) - len(msgs)
		var changed map[uint32]bool // nil unless setSeen changed some
		if setSeen {
			var unseen []uint32
			for _, m := range msgs {
				if m.Flags&store.FlagSeen == 0 {
					unseen = append(unseen, m.UID)
				}
			}
			if len(unseen) > 0 {
				res, err := st.StoreFlags(ctx, v.mb.ID, unseen, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen})
				if err != nil {
					return err
				}
				upd := map[uint32]store.MessageMeta{}
				changed = map[uint32]bool{}
				for _, u := range res.Updated {
					upd[u.UID] = u
					v.self[u.ModSeq] = struct{}{}
				}
				for k := range msgs {
					if u, ok := upd[msgs[k].UID]; ok {
						msgs[k].Flags, msgs[k].Keywords, msgs[k].ModSeq = u.Flags, u.Keywords, u.ModSeq
						changed[u.UID] = true
					}
				}
			}
		}
		for _, m := range msgs {
			if err := emit(m, changed[m.UID]); err != nil {
				return err
			}
		}
	}
	if missing > 0 && !cmd.UID {
		return no("EXPUNGEISSUED", "Some messages were expunged by another session")
	}
	return nil
}

// fetchVanished answers the VANISHED modifier of UID FETCH (RFC 7162
// 3.2.6): the UIDs of the set expunged after CHANGEDSINCE. "*" stands for
// the highest UID the mailbox ever had, so that the expunge of the last
// messages is reported too.
func (s *session) fetchVanished(ctx context.Context, a *imapwire.FetchArgs) error {
	st := s.srv.cfg.Store
	ch, err := st.Changes(ctx, s.view.mb.ID, a.ChangedSince)
	if err != nil {
		return err
	}
	top := ^uint32(0)
	if ch.ExpungesPruned {
		// The fallback enumerates gaps: bound it by UIDNEXT.
		status, err := st.MailboxStatus(ctx, s.view.mb.ID)
		if err != nil {
			return err
		}
		top = status.UIDNext - 1
	}
	if a.Set.Saved {
		// "$" holds UIDs that were in the mailbox; report those gone.
		known := make([]imapwire.NumRange, 0, len(s.view.saved))
		saved := append([]uint32(nil), s.view.saved...)
		sort.Slice(saved, func(i, j int) bool { return saved[i] < saved[j] })
		for _, u := range saved {
			known = append(known, imapwire.NumRange{Start: u, Stop: u})
		}
		a.Set = imapwire.NumSet{Ranges: known}
	}
	if out := s.vanishedEarlier(ch, a.Set.Resolve(top), 1); out != "" {
		s.w.Raw("* VANISHED (EARLIER) " + out + "\r\n")
	}
	return nil
}

// writeFetch writes one FETCH response. Errors while producing an item
// after the response started are reported by writing NIL for the item
// and returning a NO for the command.
func (s *session) writeFetch(f *fetchMsg, seq uint32, items []imapwire.FetchItem, addFlags bool) error {
	// Produce fallible items first so a failure does not leave a
	// half-written response.
	prep := make([]preparedSection, len(items))
	for i, it := range items {
		var err error
		switch it.Name {
		case "ENVELOPE", "BODYSTRUCTURE", "BODY":
			_, err = f.summary()
		case "BODY[]", "RFC822", "RFC822.HEADER", "RFC822.TEXT":
			prep[i], err = s.prepareSection(f, it)
		case "BINARY", "BINARY.SIZE":
			prep[i], err = s.prepareBinary(f, it)
		}
		if err != nil {
			return err
		}
	}
	w := s.w
	w.Raw("* ")
	w.Unum(seq)
	w.Raw(" FETCH (")
	for i, it := range items {
		if i > 0 {
			w.SP()
		}
		m := f.m
		switch it.Name {
		case "UID":
			w.Raw("UID ")
			w.Unum(m.UID)
		case "FLAGS":
			s.writeFlags(m.MessageMeta)
		case "INTERNALDATE":
			w.Raw(`INTERNALDATE "` + imapwire.FormatDateTime(m.InternalDate) + `"`)
		case "SAVEDATE":
			if m.SaveDate.IsZero() {
				w.Raw("SAVEDATE NIL")
			} else {
				w.Raw(`SAVEDATE "` + imapwire.FormatDateTime(m.SaveDate) + `"`)
			}
		case "RFC822.SIZE":
			w.Raw("RFC822.SIZE ")
			w.Num(m.Size)
		case "MODSEQ":
			w.Raw("MODSEQ (")
			w.Num(m.ModSeq)
			w.Byte(')')
		case "EMAILID":
			w.Raw("EMAILID (" + m.EmailID + ")")
		case "THREADID":
			if m.ThreadID == "" {
				w.Raw("THREADID NIL")
			} else {
				w.Raw("THREADID (" + m.ThreadID + ")")
			}
		case "ENVELOPE":
			w.Raw("ENVELOPE ")
			writeEnvelope(w, f.part.Envelope)
		case "BODYSTRUCTURE":
			w.Raw("BODYSTRUCTURE ")
			writeBodyStructure(w, f.part, true)
		case "BODY":
			w.Raw("BODY ")
			writeBodyStructure(w, f.part, false)
		default:
			p := prep[i]
			switch it.Name {
			case "BODY[]":
				w.Raw("BODY[" + sectionName(it.Section) + "]")
				if it.Partial != nil {
					w.Raw("<" + strconv.FormatInt(it.Partial.Offset, 10) + ">")
				}
			case "BINARY":
				w.Raw("BINARY[" + sectionName(it.Section) + "]")
				if it.Partial != nil {
					w.Raw("<" + strconv.FormatInt(it.Partial.Offset, 10) + ">")
				}
			case "BINARY.SIZE":
				w.Raw("BINARY.SIZE[" + sectionName(it.Section) + "] ")
				w.Num(int64(len(p.data)))
				continue
			default:
				w.Raw(it.Name)
			}
			w.SP()
			switch {
			case p.nil_:
				w.Raw("NIL")
			case p.data != nil || !p.literal:
				if p.binary {
					w.Byte('~')
				}
				w.Literal(p.data)
			default:
				w.LiteralFrom(io.NewSectionReader(f.content, p.start, p.end-p.start), p.end-p.start, false)
			}
		}
	}
	if addFlags {
		w.SP()
		s.writeFlags(f.m.MessageMeta)
	}
	w.Raw(")\r\n")
	return w.Err()
}

// preparedSection is a BODY[...] or BINARY[...] value ready to write:
// data, or the range [start, end) of the content (literal), or NIL.
type preparedSection struct {
	data    []byte
	start   int64
	end     int64
	nil_    bool
	binary  bool
	literal bool
}

func applyPartial(start, end int64, p *imapwire.Partial) (int64, int64) {
	if p == nil {
		return start, end
	}
	s := start + p.Offset
	if s > end {
		s = end
	}
	e := end
	if p.Count >= 0 && s+p.Count < e {
		e = s + p.Count
	}
	return s, e
}

func (s *session) prepareSection(f *fetchMsg, it imapwire.FetchItem) (preparedSection, error) {
	var out preparedSection
	sec := it.Section
	switch it.Name {
	case "RFC822":
		sec = &imapwire.Section{}
	case "RFC822.HEADER":
		sec = &imapwire.Section{Specifier: "HEADER"}
	case "RFC822.TEXT":
		sec = &imapwire.Section{Specifier: "TEXT"}
	}
	c, err := f.open()
	if err != nil {
		return out, err
	}
	if len(sec.Part) == 0 && sec.Specifier == "" {
		out.start, out.end = applyPartial(0, c.Size(), it.Partial)
		out.literal = true
		return out, nil
	}
	p, err := f.summary()
	if err != nil {
		return out, err
	}
	start, end, ok := sectionRange(p, c, sec)
	if !ok {
		out.nil_ = true
		return out, nil
	}
	if strings.HasPrefix(sec.Specifier, "HEADER.FIELDS") {
		raw, err := message.ReadHeader(c, start, end)
		if err != nil {
			return out, err
		}
		data := message.HeaderFields(raw, sec.Fields, sec.Specifier == "HEADER.FIELDS.NOT")
		s, e := applyPartial(0, int64(len(data)), it.Partial)
		out.data = data[s:e]
		if out.data == nil {
			out.data = []byte{}
		}
		return out, nil
	}
	out.start, out.end = applyPartial(start, end, it.Partial)
	out.literal = true
	return out, nil
}

var knownCTE = map[string]bool{"": true, "7bit": true, "8bit": true, "binary": true, "base64": true, "quoted-printable": true}

func (s *session) prepareBinary(f *fetchMsg, it imapwire.FetchItem) (preparedSection, error) {
	var out preparedSection
	c, err := f.open()
	if err != nil {
		return out, err
	}
	var data []byte
	if len(it.Section.Part) == 0 {
		if c.Size() > maxBinaryBytes {
			return out, no("TOOBIG", "Message too large for BINARY")
		}
		data = make([]byte, c.Size())
		if _, err := c.ReadAt(data, 0); err != nil && err != io.EOF {
			return out, err
		}
	} else {
		p, err := f.summary()
		if err != nil {
			return out, err
		}
		q := p.Find(it.Section.Part)
		if q == nil {
			out.nil_ = true
			return out, nil
		}
		start, end, _ := sectionRange(p, c, it.Section)
		var r io.Reader = io.NewSectionReader(c, start, end-start)
		if q.MediaType != "multipart" && q.Message == nil {
			enc := strings.ToLower(strings.TrimSpace(q.Encoding))
			if !knownCTE[enc] {
				return out, no("UNKNOWN-CTE", "Unknown Content-Transfer-Encoding %q", q.Encoding)
			}
			r = message.DecodeReader(enc, r)
		}
		var b bytes.Buffer
		if _, err := io.Copy(&b, io.LimitReader(r, maxBinaryBytes+1)); err != nil {
			return out, err
		}
		if b.Len() > maxBinaryBytes {
			return out, no("TOOBIG", "Part too large for BINARY")
		}
		data = b.Bytes()
	}
	if it.Name == "BINARY.SIZE" {
		out.data = data
		return out, nil
	}
	s0, e0 := applyPartial(0, int64(len(data)), it.Partial)
	out.data = data[s0:e0]
	if out.data == nil {
		out.data = []byte{}
	}
	out.binary = bytes.IndexByte(out.data, 0) >= 0
	return out, nil
}
