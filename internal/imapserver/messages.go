package imapserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

var errReadOnly = &respError{"NO", "CANNOT", "Mailbox is read-only (EXAMINE)"}

func (s *session) cmdStore(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.StoreArgs)
	v := s.view
	if v.readOnly {
		return errReadOnly
	}
	if a.HasUnchangedSince {
		s.enableCondstore()
	}
	uids, err := s.resolve(a.Set, cmd.UID)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	flags, kws := store.FlagsFromNames(a.Flags)
	u := store.FlagUpdate{Flags: flags, Keywords: kws, UnchangedSince: a.UnchangedSince}
	switch a.Op {
	case imapwire.StoreAdd:
		u.Op = store.FlagsAdd
	case imapwire.StoreRemove:
		u.Op = store.FlagsRemove
	default:
		u.Op = store.FlagsReplace
	}
	st := s.srv.cfg.Store
	var res store.StoreResult
	if a.HasUnchangedSince && a.UnchangedSince == 0 {
		// UNCHANGEDSINCE 0 fails for every message (RFC 7162 3.1.3).
		res.Failed = uids
	} else {
		res, err = st.StoreFlags(ctx, v.mb.ID, uids, u)
		if err != nil {
			if errors.Is(err, store.ErrInvalid) {
				return bad("Invalid flag or keyword")
			}
			return err
		}
	}
	updated := make(map[uint32]store.MessageMeta, len(res.Updated))
	for _, m := range res.Updated {
		updated[m.UID] = m
		v.self[m.ModSeq] = struct{}{}
	}
	if len(res.Failed) > 0 {
		failed := make([]uint32, 0, len(res.Failed))
		for _, uid := range res.Failed {
			if cmd.UID {
				failed = append(failed, uid)
			} else if seq := v.seq(uid); seq != 0 {
				failed = append(failed, seq)
			}
		}
		sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
		s.respCode = "MODIFIED " + imapwire.CompactSet(failed)
	}
	if a.Silent {
		if s.condstore {
			// Keep the client's MODSEQ current even for .SILENT.
			for _, uid := range uids {
				m, ok := updated[uid]
				if seq := v.seq(uid); ok && seq != 0 {
					s.w.Raw("* ")
					s.w.Unum(seq)
					s.w.Raw(" FETCH (UID ")
					s.w.Unum(uid)
					s.w.Raw(" MODSEQ (")
					s.w.Num(m.ModSeq)
					s.w.Raw("))\r\n")
				}
			}
		}
		return nil
	}
	// Every message in the set gets a FETCH with its flags, changed or
	// not (RFC 9051 6.4.6), except those that failed UNCHANGEDSINCE.
	failedSet := make(map[uint32]bool, len(res.Failed))
	for _, uid := range res.Failed {
		failedSet[uid] = true
	}
	var rest []uint32
	for _, uid := range uids {
		if _, ok := updated[uid]; !ok && !failedSet[uid] {
			rest = append(rest, uid)
		}
	}
	for i := 0; i < len(rest); i += metaBatch {
		msgs, err := st.GetMessages(ctx, v.mb.ID, rest[i:min(i+metaBatch, len(rest))])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			updated[m.UID] = m.MessageMeta
		}
	}
	for _, uid := range uids {
		m, ok := updated[uid]
		seq := v.seq(uid)
		if !ok || seq == 0 {
			continue
		}
		s.w.Raw("* ")
		s.w.Unum(seq)
		s.w.Raw(" FETCH (")
		s.writeFlags(m)
		if cmd.UID || s.condstore {
			s.w.Raw(" UID ")
			s.w.Unum(uid)
		}
		if s.condstore {
			s.w.Raw(" MODSEQ (")
			s.w.Num(m.ModSeq)
			s.w.Byte(')')
		}
		s.w.Raw(")\r\n")
	}
	return nil
}

func (s *session) cmdCopy(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.CopyArgs)
	v := s.view
	move := cmd.Name == "MOVE"
	if move && v.readOnly {
		return errReadOnly
	}
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	st := s.srv.cfg.Store
	dst, err := st.GetMailbox(ctx, s.acct.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return no("TRYCREATE", "Mailbox does not exist")
	} else if err != nil {
		return err
	}
	uids, err := s.resolve(a.Set, cmd.UID)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	var res store.CopyResult
	if move {
		res, err = st.Move(ctx, v.mb.ID, uids, dst.ID)
	} else {
		res, err = st.Copy(ctx, v.mb.ID, uids, dst.ID)
	}
	if err != nil {
		return err
	}
	v.dirty = true
	if len(res.SrcUIDs) == 0 {
		return nil
	}
	code := fmt.Sprintf("COPYUID %d %s %s", res.UIDValidity, imapwire.CompactSet(res.SrcUIDs), imapwire.CompactSet(res.DstUIDs))
	if move {
		// RFC 6851: COPYUID goes in an untagged OK before the expunges.
		s.w.Status("*", "OK", code, "Moved")
	} else {
		s.respCode = code
	}
	return nil
}

func (s *session) cmdExpunge(ctx context.Context, cmd *imapwire.Command) error {
	v := s.view
	if v.readOnly {
		return errReadOnly
	}
	st := s.srv.cfg.Store
	if !cmd.UID {
		if _, err := st.Expunge(ctx, v.mb.ID, nil); err != nil {
			return err
		}
		v.dirty = true
		return nil
	}
	uids, err := s.resolve(cmd.Args.(*imapwire.ExpungeArgs).Set, true)
	if err != nil {
		return err
	}
	// UID EXPUNGE removes only those of the given messages that are
	// \Deleted.
	var del []uint32
	for i := 0; i < len(uids); i += metaBatch {
		msgs, err := st.GetMessages(ctx, v.mb.ID, uids[i:min(i+metaBatch, len(uids))])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Flags&store.FlagDeleted != 0 {
				del = append(del, m.UID)
			}
		}
	}
	if len(del) > 0 {
		if _, err := st.Expunge(ctx, v.mb.ID, del); err != nil {
			return err
		}
	}
	v.dirty = true
	return nil
}

func (s *session) cmdAppend(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.AppendArgs)
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	st := s.srv.cfg.Store
	mb, err := st.GetMailbox(ctx, s.acct.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return no("TRYCREATE", "Mailbox does not exist")
	} else if err != nil {
		return err
	}
	var uids []uint32
	// MULTIAPPEND is all or nothing: on failure the messages already
	// stored are removed again.
	rollback := func() {
		if len(uids) > 0 {
			if _, err := st.Expunge(context.WithoutCancel(ctx), mb.ID, uids); err != nil {
				s.log.Error("imap append rollback", "err", err)
			}
		}
	}
	for _, m := range a.Messages {
		if m.Size == 0 {
			rollback()
			return no("CANNOT", "Empty message")
		}
		if m.Size > s.srv.cfg.AppendLimit {
			rollback()
			return no("TOOBIG", "Message exceeds APPENDLIMIT")
		}
		var blob store.Blob = bytes.NewReader(m.Data)
		if m.File != nil {
			blob = io.NewSectionReader(m.File, 0, m.Size)
		}
		part, err := message.Parse(blob, blob.Size())
		if err != nil {
			rollback()
			return fmt.Errorf("parse appended message: %w", err)
		}
		flags, kws := store.FlagsFromNames(m.Flags)
		date := m.Date
		if date.IsZero() {
			date = s.srv.now()
		}
		d, err := st.Deliver(ctx, store.Delivery{
			Blob:    blob,
			Summary: part.Encode(),
			Recipients: []store.Recipient{{
				AccountID: s.acct.ID, MailboxID: mb.ID,
				Flags: flags, Keywords: kws, InternalDate: date,
			}},
		})
		if err != nil {
			rollback()
			if errors.Is(err, store.ErrInvalid) {
				return bad("Invalid flag or keyword")
			}
			return err
		}
		if len(d) == 1 {
			uids = append(uids, d[0].UID)
		}
	}
	if s.view != nil && s.view.mb.ID == mb.ID {
		s.view.dirty = true
	}
	if len(uids) > 0 {
		s.respCode = fmt.Sprintf("APPENDUID %d %s", mb.UIDValidity, imapwire.CompactSet(uids))
	}
	return nil
}

func (s *session) cmdIdle(ctx context.Context, cmd *imapwire.Command) error {
	s.w.Raw("+ idling\r\n")
	if s.view != nil {
		if err := s.poll(ctx, true); err == errBye {
			return errBye
		}
	}
	if err := s.flush(); err != nil {
		s.state = stateLogout
		return errBye
	}
	s.releaseCompressor()
	timeout := s.srv.cfg.IdleTimeout
	s.deadlineMu.Lock()
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	closing := s.srv.conns.Closing()
	s.deadlineMu.Unlock()
	if closing {
		s.bye("Server shutting down")
		return errBye
	}
	type lineResult struct {
		line []byte
		err  error
	}
	lines := make(chan lineResult, 1)
	go func() {
		l, err := s.r.ReadLine()
		lines <- lineResult{l, err}
	}()
	var watch <-chan struct{}
	if s.view != nil && s.notify.n == nil {
		watch = s.view.watch
	}
	// With NOTIFY, its writer reports while IDLE waits, and only what
	// NOTIFY asked for (RFC 5465 section 4): the session lock is free
	// during the select.
	s.notify.idling = true
	defer func() { s.notify.idling = false }()
	for {
		s.notify.mu.Unlock()
		select {
		case <-watch:
			s.notify.mu.Lock()
			s.view.dirty = true
			// IDLE outlives the command context; each report gets its
			// own deadline.
			pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := s.poll(pctx, true)
			cancel()
			if err == errBye {
				return errBye
			} else if err != nil {
				s.log.Warn("imap idle poll", "err", err)
			}
			if err := s.flush(); err != nil {
				s.state = stateLogout
				return errBye
			}
			s.releaseCompressor()
		case res := <-lines:
			s.notify.mu.Lock()
			if res.err != nil {
				var ne net.Error
				switch {
				case s.srv.conns.Closing():
					s.bye("Server shutting down")
				case errors.As(res.err, &ne) && ne.Timeout():
					s.bye("Autologout; idle for too long")
				default:
					s.state = stateLogout
				}
				return errBye
			}
			if !strings.EqualFold(string(res.line), "DONE") {
				return bad("Expected DONE")
			}
			return nil
		case <-s.srv.conns.Done():
			s.notify.mu.Lock()
			s.bye("Server shutting down")
			return errBye
		}
	}
}
