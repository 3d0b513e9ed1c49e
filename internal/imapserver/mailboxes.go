package imapserver

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/store"
)

var roles = map[string]string{
	`\all`: store.RoleAll, `\archive`: store.RoleArchive, `\drafts`: store.RoleDrafts,
	`\flagged`: store.RoleFlagged, `\junk`: store.RoleJunk, `\sent`: store.RoleSent, `\trash`: store.RoleTrash,
}

func (s *session) cmdCreate(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.CreateArgs)
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	role := ""
	if len(a.Use) > 1 {
		return no("USEATTR", "Only one special-use attribute per mailbox")
	}
	if len(a.Use) == 1 {
		r, ok := roles[strings.ToLower(a.Use[0])]
		if !ok {
			return no("USEATTR", "Unsupported special-use attribute %s", a.Use[0])
		}
		role = r
	}
	mb, err := s.srv.cfg.Store.CreateMailbox(ctx, s.acct.ID, name, role, 0)
	if errors.Is(err, store.ErrExists) {
		// The store keeps one mailbox per role and says ErrExists for
		// both conflicts; tell them apart (RFC 6154: NO [USEATTR]).
		if role != "" {
			if _, gerr := s.srv.cfg.Store.GetMailbox(ctx, s.acct.ID, name); errors.Is(gerr, store.ErrNotFound) {
				return no("USEATTR", "Another mailbox already has the special use %s", role)
			}
		}
		return no("ALREADYEXISTS", "Mailbox already exists")
	}
	if errors.Is(err, store.ErrInvalid) && role != "" {
		return no("USEATTR", "Special-use attribute already in use")
	}
	if err != nil {
		return err
	}
	if mb.ObjectID != "" {
		s.respCode = "MAILBOXID (" + mb.ObjectID + ")"
	}
	return nil
}

func (s *session) cmdDelete(ctx context.Context, cmd *imapwire.Command) error {
	name, err := s.mailboxName(cmd.Args.(*imapwire.MailboxArgs).Mailbox)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	st := s.srv.cfg.Store
	mb, err := st.GetMailbox(ctx, s.acct.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return no("NONEXISTENT", "Mailbox does not exist")
	} else if err != nil {
		return err
	}
	if err := st.DeleteMailbox(ctx, mb.ID); err != nil {
		return err
	}
	if s.view != nil && s.view.mb.ID == mb.ID {
		// Deleting the selected mailbox closes it.
		s.view.close()
		s.view = nil
		s.state = stateAuth
	}
	return nil
}

func (s *session) cmdRename(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.RenameArgs)
	from, err := s.mailboxName(a.From)
	if err != nil {
		return err
	}
	to, err := s.mailboxName(a.To)
	if err != nil {
		return err
	}
	if to == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if strings.HasPrefix(to, from+"/") {
		return no("CANNOT", "Cannot rename a mailbox into itself")
	}
	st := s.srv.cfg.Store
	mb, err := st.GetMailbox(ctx, s.acct.ID, from)
	if errors.Is(err, store.ErrNotFound) {
		return no("NONEXISTENT", "Mailbox does not exist")
	} else if err != nil {
		return err
	}
	if err := st.RenameMailbox(ctx, mb.ID, to); err != nil {
		if errors.Is(err, store.ErrExists) {
			return no("ALREADYEXISTS", "Target mailbox already exists")
		}
		return err
	}
	if s.view != nil && s.view.mb.ID == mb.ID && from != "INBOX" {
		s.view.mb.Name = to
	}
	if s.view != nil && from == "INBOX" && s.view.mb.ID == mb.ID {
		// Renaming INBOX moves its messages away: the poll reports the
		// expunges.
		s.view.dirty = true
	}
	return nil
}

func (s *session) cmdSubscribe(ctx context.Context, cmd *imapwire.Command) error {
	name, err := s.mailboxName(cmd.Args.(*imapwire.MailboxArgs).Mailbox)
	if err != nil {
		return err
	}
	sub := cmd.Name == "SUBSCRIBE"
	if sub {
		// Subscribing to a mailbox that does not exist is refused, as
		// most servers do; it only confuses clients.
		if _, err := s.srv.cfg.Store.GetMailbox(ctx, s.acct.ID, name); errors.Is(err, store.ErrNotFound) {
			return no("NONEXISTENT", "Mailbox does not exist")
		} else if err != nil {
			return err
		}
	}
	return s.srv.cfg.Store.SetSubscribed(ctx, s.acct.ID, name, sub)
}

func (s *session) cmdNamespace(ctx context.Context, cmd *imapwire.Command) error {
	s.w.Raw(`* NAMESPACE (("" "/")) NIL NIL` + "\r\n")
	return nil
}

// matcher matches mailbox names against a LIST pattern: "*" matches
// anything, "%" anything but the separator.
type matcher struct{ pat string }

func newMatcher(ref, pattern string) matcher {
	p := pattern
	if ref != "" && !strings.HasPrefix(pattern, "/") {
		p = ref + pattern
	}
	if len(p) >= 5 && strings.EqualFold(p[:5], "INBOX") && (len(p) == 5 || p[5] == '/' || p[5] == '*' || p[5] == '%') {
		p = "INBOX" + p[5:]
	}
	return matcher{p}
}

// match reports whether name matches; the dynamic programme keeps it
// linear in len(pattern)*len(name) whatever the wildcards.
func (m matcher) match(name string) bool {
	p := m.pat
	// prev[j]: pattern[:i] matches name[:j].
	prev := make([]bool, len(name)+1)
	cur := make([]bool, len(name)+1)
	prev[0] = true
	for i := 0; i < len(p); i++ {
		c := p[i]
		cur[0] = prev[0] && (c == '*' || c == '%')
		for j := 1; j <= len(name); j++ {
			switch c {
			case '*':
				cur[j] = prev[j] || cur[j-1]
			case '%':
				cur[j] = prev[j] || (cur[j-1] && name[j-1] != '/')
			default:
				cur[j] = prev[j-1] && name[j-1] == c
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(name)]
}

type listEntry struct {
	name       string
	mb         *store.Mailbox
	subscribed bool
	children   bool
	// childSubscribed: a descendant is subscribed (CHILDINFO).
	childSubscribed bool
}

func (s *session) cmdList(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.ListArgs)
	var selSubscribed, selSpecial, recursive bool
	for _, o := range a.SelectOpts {
		switch o {
		case "SUBSCRIBED":
			selSubscribed = true
		case "SPECIAL-USE":
			selSpecial = true
		case "RECURSIVEMATCH":
			recursive = true
		case "REMOTE":
		default:
			return bad("Unknown LIST selection option %s", o)
		}
	}
	if recursive && !selSubscribed && !selSpecial {
		return bad("RECURSIVEMATCH needs another selection option")
	}
	var retSubscribed, retStatus bool
	for _, o := range a.ReturnOpts {
		switch o {
		case "SUBSCRIBED":
			retSubscribed = true
		case "CHILDREN", "SPECIAL-USE":
			// Always returned.
		case "STATUS":
			retStatus = true
		default:
			return bad("Unknown LIST return option %s", o)
		}
	}
	if retStatus {
		if err := checkStatusItems(a.StatusItems); err != nil {
			return err
		}
	}
	// LIST "" "" asks for the hierarchy delimiter.
	if len(a.Patterns) == 1 && a.Patterns[0] == "" {
		s.w.Raw(`* LIST (\Noselect) "/" ""` + "\r\n")
		return nil
	}
	ref := a.Ref
	if !s.utf8 {
		if d, err := imapwire.DecodeMUTF7(ref); err == nil {
			ref = d
		}
	}
	var ms []matcher
	for _, p := range a.Patterns {
		if !s.utf8 {
			if d, err := imapwire.DecodeMUTF7(p); err == nil {
				p = d
			}
		}
		ms = append(ms, newMatcher(ref, p))
	}
	matchAny := func(name string) bool {
		for _, m := range ms {
			if m.match(name) {
				return true
			}
		}
		return false
	}

	st := s.srv.cfg.Store
	mboxes, err := st.ListMailboxes(ctx, s.acct.ID)
	if err != nil {
		return err
	}
	entries := map[string]*listEntry{}
	for i := range mboxes {
		entries[mboxes[i].Name] = &listEntry{name: mboxes[i].Name, mb: &mboxes[i]}
	}
	if selSubscribed || retSubscribed {
		subs, err := st.Subscriptions(ctx, s.acct.ID)
		if err != nil {
			return err
		}
		for _, n := range subs {
			e := entries[n]
			if e == nil {
				e = &listEntry{name: n}
				entries[n] = e
			}
			e.subscribed = true
		}
	}
	names := make([]string, 0, len(entries))
	for n, e := range entries {
		names = append(names, n)
		if e.mb == nil {
			continue
		}
		// Mark ancestors.
		for p := parentName(n); p != ""; p = parentName(p) {
			if pe := entries[p]; pe != nil {
				pe.children = true
				if e.subscribed {
					pe.childSubscribed = true
				}
			}
		}
	}
	for n, e := range entries {
		if e.mb == nil && e.subscribed {
			for p := parentName(n); p != ""; p = parentName(p) {
				if pe := entries[p]; pe != nil {
					pe.childSubscribed = true
				}
			}
		}
	}
	sortNames(names)
	for _, n := range names {
		e := entries[n]
		if !matchAny(n) {
			continue
		}
		var extra string
		switch {
		case selSubscribed && !e.subscribed:
			if !(recursive && e.childSubscribed) {
				continue
			}
			extra = `("CHILDINFO" ("SUBSCRIBED"))`
		case selSpecial && (e.mb == nil || e.mb.Role == ""):
			continue
		case !selSubscribed && e.mb == nil:
			continue // subscribed but not existing: only for SUBSCRIBED
		}
		role := ""
		if e.mb != nil {
			role = e.mb.Role
		}
		attrs := listAttrs(e.mb != nil, e.children, role, e.subscribed && (selSubscribed || retSubscribed))
		s.w.Raw("* LIST (" + attrs + `) "/" `)
		s.writeMailbox(n)
		if extra != "" && a.Extended {
			s.w.SP()
			s.w.Raw(extra)
		}
		s.w.CRLF()
		if retStatus && e.mb != nil {
			if err := s.writeStatus(ctx, e.mb, a.StatusItems); err != nil {
				return err
			}
		}
	}
	return nil
}

func parentName(n string) string {
	if i := strings.LastIndexByte(n, '/'); i > 0 {
		return n[:i]
	}
	return ""
}

// sortNames sorts mailbox names with INBOX first.
func sortNames(names []string) {
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		ai, bi := a == "INBOX" || strings.HasPrefix(a, "INBOX/"), b == "INBOX" || strings.HasPrefix(b, "INBOX/")
		if ai != bi {
			return ai
		}
		return a < b
	})
}

func (s *session) cmdLsub(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.LsubArgs)
	if a.Pattern == "" {
		s.w.Raw(`* LSUB (\Noselect) "/" ""` + "\r\n")
		return nil
	}
	ref, pat := a.Ref, a.Pattern
	if !s.utf8 {
		if d, err := imapwire.DecodeMUTF7(ref); err == nil {
			ref = d
		}
		if d, err := imapwire.DecodeMUTF7(pat); err == nil {
			pat = d
		}
	}
	m := newMatcher(ref, pat)
	subs, err := s.srv.cfg.Store.Subscriptions(ctx, s.acct.ID)
	if err != nil {
		return err
	}
	subscribed := map[string]bool{}
	for _, n := range subs {
		subscribed[n] = true
	}
	out := map[string]bool{} // name -> noselect
	for _, n := range subs {
		if m.match(n) {
			out[n] = false
			continue
		}
		// With "%", a subscribed child makes its unsubscribed parent
		// appear as \Noselect (RFC 3501 6.3.9).
		for p := parentName(n); p != ""; p = parentName(p) {
			if m.match(p) && !subscribed[p] {
				out[p] = true
			}
		}
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sortNames(names)
	for _, n := range names {
		if out[n] {
			s.w.Raw(`* LSUB (\Noselect) "/" `)
		} else {
			s.w.Raw(`* LSUB () "/" `)
		}
		s.writeMailbox(n)
		s.w.CRLF()
	}
	return nil
}

func checkStatusItems(items []string) error {
	if len(items) == 0 {
		return bad("STATUS needs at least one item")
	}
	for _, it := range items {
		switch it {
		case "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "APPENDLIMIT", "MAILBOXID", "HIGHESTMODSEQ":
		default:
			return bad("Unknown STATUS item %s", it)
		}
	}
	return nil
}

func (s *session) cmdStatus(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.StatusArgs)
	if err := checkStatusItems(a.Items); err != nil {
		return err
	}
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	mb, err := s.srv.cfg.Store.GetMailbox(ctx, s.acct.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return no("NONEXISTENT", "Mailbox does not exist")
	} else if err != nil {
		return err
	}
	return s.writeStatus(ctx, &mb, a.Items)
}

func (s *session) writeStatus(ctx context.Context, mb *store.Mailbox, items []string) error {
	st, err := s.srv.cfg.Store.MailboxStatus(ctx, mb.ID)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it == "HIGHESTMODSEQ" {
			// STATUS (HIGHESTMODSEQ) is a CONDSTORE enabling command
			// (RFC 7162 3.1).
			s.enableCondstore()
		}
	}
	s.w.Raw("* STATUS ")
	s.writeMailbox(mb.Name)
	s.w.Raw(" (")
	for i, it := range items {
		if i > 0 {
			s.w.SP()
		}
		s.w.Raw(it)
		s.w.SP()
		switch it {
		case "MESSAGES":
			s.w.Unum(st.Messages)
		case "UIDNEXT":
			s.w.Unum(st.UIDNext)
		case "UIDVALIDITY":
			s.w.Unum(st.UIDValidity)
		case "UNSEEN":
			s.w.Unum(st.Unseen)
		case "DELETED":
			s.w.Unum(st.Deleted)
		case "SIZE":
			s.w.Num(st.Size)
		case "RECENT":
			// \Recent is claimed per session on SELECT; a STATUS cannot
			// know how many a later SELECT would get without claiming.
			s.w.Num(0)
		case "APPENDLIMIT":
			s.w.Num(s.srv.cfg.AppendLimit)
		case "MAILBOXID":
			s.w.Raw("(" + mb.ObjectID + ")")
		case "HIGHESTMODSEQ":
			s.w.Num(st.HighestModSeq)
		}
	}
	s.w.Raw(")\r\n")
	return nil
}

// Quota (RFC 9208): one quota root "" per account with the STORAGE
// resource in units of 1024 octets.

func (s *session) writeQuota(acct store.Account) {
	s.w.Raw(`* QUOTA "" (STORAGE `)
	s.w.Num((acct.UsedBytes + 1023) / 1024)
	s.w.SP()
	s.w.Num(acct.QuotaBytes / 1024)
	s.w.Raw(")\r\n")
}

func (s *session) cmdGetQuotaRoot(ctx context.Context, cmd *imapwire.Command) error {
	name, err := s.mailboxName(cmd.Args.(*imapwire.MailboxArgs).Mailbox)
	if err != nil {
		return err
	}
	if _, err := s.srv.cfg.Store.GetMailbox(ctx, s.acct.ID, name); errors.Is(err, store.ErrNotFound) {
		return no("NONEXISTENT", "Mailbox does not exist")
	} else if err != nil {
		return err
	}
	acct, err := s.srv.cfg.Store.GetAccountByID(ctx, s.acct.ID)
	if err != nil {
		return err
	}
	s.w.Raw("* QUOTAROOT ")
	s.writeMailbox(name)
	if acct.QuotaBytes > 0 {
		s.w.Raw(` ""` + "\r\n")
		s.writeQuota(acct)
	} else {
		s.w.CRLF()
	}
	return nil
}

func (s *session) cmdGetQuota(ctx context.Context, cmd *imapwire.Command) error {
	if cmd.Args.(*imapwire.QuotaArgs).Root != "" {
		return no("NONEXISTENT", "No such quota root")
	}
	acct, err := s.srv.cfg.Store.GetAccountByID(ctx, s.acct.ID)
	if err != nil {
		return err
	}
	if acct.QuotaBytes <= 0 {
		return no("NONEXISTENT", "No quota set for this account")
	}
	s.writeQuota(acct)
	return nil
}

func (s *session) cmdSetQuota(ctx context.Context, cmd *imapwire.Command) error {
	return no("NOPERM", "Quotas are set by the administrator")
}

// listAttrs is the attribute list of a LIST response (also sent by NOTIFY
// for mailbox name and subscription changes): \NonExistent for a name
// without a mailbox, else \HasChildren or \HasNoChildren and the
// special-use role; \Subscribed when asked for and true.
func listAttrs(exists, children bool, role string, subscribed bool) string {
	var attrs []string
	if !exists {
		attrs = append(attrs, `\NonExistent`)
	} else {
		if children {
			attrs = append(attrs, `\HasChildren`)
		} else {
			attrs = append(attrs, `\HasNoChildren`)
		}
		if role != "" {
			attrs = append(attrs, role)
		}
	}
	if subscribed {
		attrs = append(attrs, `\Subscribed`)
	}
	return strings.Join(attrs, " ")
}
