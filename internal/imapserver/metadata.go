package imapserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/store"
)

// METADATA (RFC 5464). Mailbox annotations, /private and /shared alike,
// live in the store with the mailbox: there is no sharing between
// accounts, so the two namespaces differ only in name. Server annotations
// (mailbox "") are /shared/comment and /shared/admin from Config, read-only,
// plus /private entries of the account. No unsolicited METADATA responses
// are sent (RFC 5464 4.4.2 makes them optional).

// asciiLower lower-cases ASCII letters only: entry names are
// case-insensitive ASCII, and Unicode case folding could turn a non-ASCII
// name into a valid one.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// entryName normalises and checks an entry name. GETMETADATA may also name
// the roots "/private" and "/shared" (with DEPTH, their descendants).
func entryName(raw string, get bool) (string, error) {
	n := asciiLower(raw)
	if store.ValidMetadataName(n) || get && (n == "/private" || n == "/shared") {
		return n, nil
	}
	return "", bad("Invalid entry name")
}

// metadataMailbox resolves the mailbox argument: 0 for the server ("").
func (s *session) metadataMailbox(ctx context.Context, raw string) (int64, string, error) {
	if raw == "" {
		return 0, "", nil
	}
	name, err := s.mailboxName(raw)
	if err != nil {
		return 0, "", err
	}
	mb, err := s.srv.cfg.Store.GetMailbox(ctx, s.acct.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return 0, "", no("NONEXISTENT", "Mailbox does not exist")
	}
	return mb.ID, mb.Name, err
}

// serverEntries are the read-only server annotations from Config.
func (s *session) serverEntries() []store.MetadataEntry {
	var out []store.MetadataEntry
	if v := s.srv.cfg.MetadataAdmin; v != "" {
		out = append(out, store.MetadataEntry{Name: "/shared/admin", Value: []byte(v)})
	}
	if v := s.srv.cfg.MetadataComment; v != "" {
		out = append(out, store.MetadataEntry{Name: "/shared/comment", Value: []byte(v)})
	}
	return out
}

// matchEntry reports whether name is the requested entry req or, with
// depth 1 or infinity (-1), below it (RFC 5464 4.2.2).
func matchEntry(name, req string, depth int) bool {
	if name == req {
		return true
	}
	if depth == 0 || !strings.HasPrefix(name, req+"/") {
		return false
	}
	return depth < 0 || !strings.Contains(name[len(req)+1:], "/")
}

func (s *session) cmdGetMetadata(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.GetMetadataArgs)
	reqs := make([]string, len(a.Entries))
	for i, e := range a.Entries {
		n, err := entryName(e, true)
		if err != nil {
			return err
		}
		reqs[i] = n
	}
	id, name, err := s.metadataMailbox(ctx, a.Mailbox)
	if err != nil {
		return err
	}
	all, err := s.srv.cfg.Store.GetMetadata(ctx, s.acct.ID, id)
	if err != nil {
		return err
	}
	if id == 0 {
		all = append(all, s.serverEntries()...)
		sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	}
	var longest int
	started := false
	for _, e := range all {
		match := false
		for _, r := range reqs {
			if matchEntry(e.Name, r, a.Depth) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		if a.MaxSize >= 0 && int64(len(e.Value)) > a.MaxSize {
			longest = max(longest, len(e.Value))
			continue
		}
		if !started {
			s.w.Raw("* METADATA ")
			if id == 0 {
				s.w.Raw(`""`)
			} else {
				s.writeMailbox(name)
			}
			s.w.Raw(" (")
			started = true
		} else {
			s.w.SP()
		}
		s.w.AString(e.Name) // may hold spaces or parentheses
		s.w.SP()
		if bytes.IndexByte(e.Value, 0) >= 0 {
			s.w.LiteralFrom(bytes.NewReader(e.Value), int64(len(e.Value)), true)
		} else {
			s.w.String(string(e.Value))
		}
	}
	if started {
		s.w.Raw(")\r\n")
	}
	if longest > 0 {
		s.respCode = fmt.Sprintf("METADATA LONGENTRIES %d", longest)
	}
	return nil
}

func (s *session) cmdSetMetadata(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.SetMetadataArgs)
	entries := make([]store.MetadataEntry, len(a.Entries))
	for i, e := range a.Entries {
		n, err := entryName(e.Name, false)
		if err != nil {
			return err
		}
		entries[i] = store.MetadataEntry{Name: n, Value: e.Value}
	}
	id, mbName, err := s.metadataMailbox(ctx, a.Mailbox)
	if err != nil {
		return err
	}
	if id == 0 {
		for _, e := range entries {
			if strings.HasPrefix(e.Name, "/shared/") {
				return no("NOPERM", "Shared server annotations are set by the administrator")
			}
		}
	}
	err = s.srv.cfg.Store.SetMetadata(ctx, s.acct.ID, id, entries)
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return no(fmt.Sprintf("METADATA MAXSIZE %d", store.MetadataMaxValue), "Value too large")
	case errors.Is(err, store.ErrTooMany):
		return no("METADATA TOOMANY", "Too many annotations")
	case errors.Is(err, store.ErrInvalid):
		return bad("Invalid entry name")
	case err == nil:
		s.notifyMetadata(mbName, entries) // NOTIFY (notify.go)
	}
	return err
}
