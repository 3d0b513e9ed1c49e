package imapserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mailstead/mailstead/internal/acceptloop"
	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/store"
)

type state int

const (
	stateNotAuth state = iota
	stateAuth
	stateSelected
	stateLogout
)

const (
	maxBadCommands   = 10 // consecutive BAD answers before BYE
	maxAuthFailures  = 5  // per connection
	writeTimeout     = 5 * time.Minute
	preAuthTimeout   = 2 * time.Minute
	commandTimeout   = 10 * time.Minute // bound on one command's store work
	maxKeywordsFlags = 200              // keywords listed in FLAGS on SELECT
)

// session is one client connection. All reads and writes happen in the
// session's goroutine (IDLE adds one short-lived reader goroutine).
type session struct {
	srv    *Server
	conn   net.Conn
	remote netip.Addr
	id     uint64
	log    *slog.Logger

	br *bufio.Reader
	bw *bufio.Writer
	r  *imapwire.Reader
	w  *imapwire.Writer

	tls   bool
	state state
	acct  store.Account
	// limitHeld is set while the session counts against the per-user-IP
	// limit.
	limitHeld bool

	// Enabled extensions.
	rev2 bool // IMAP4rev2
	utf8 bool // UTF8=ACCEPT or IMAP4rev2: mailbox names and strings in UTF-8
	// utf8Accept is set by ENABLE UTF8=ACCEPT itself: SEARCH CHARSET and
	// SORT/THREAD charsets other than UTF-8 are then refused (RFC 6855).
	utf8Accept bool
	condstore  bool // CONDSTORE (RFC 7162): MODSEQ in FETCH responses
	qresync    bool // QRESYNC (RFC 7162): VANISHED instead of EXPUNGE

	view *view // selected mailbox, nil unless stateSelected
	// cw is the compressing writer once COMPRESS=DEFLATE is active.
	cw *compressWriter
	// notify is NOTIFY (notify.go); its mutex is held by the session
	// goroutine except while it waits for a command.
	notify notifyState

	bad          int // consecutive BAD
	authFailures int
	respCode     string // response code for the tagged OK of the current command

	// deadlineMu makes "set a read deadline, then check for shutdown"
	// atomic with respect to Shutdown's interrupt.
	deadlineMu sync.Mutex
}

func newSession(srv *Server, c net.Conn) *session {
	s := &session{srv: srv, conn: c, id: srv.nextID.Add(1)}
	return s
}

// interrupt makes a session blocked reading a command wake up; it then sees
// that the server is closing. It runs in Shutdown's goroutine.
func (s *session) Interrupt() {
	s.deadlineMu.Lock()
	s.conn.SetReadDeadline(time.Unix(1, 0))
	s.deadlineMu.Unlock()
}

// forceClose closes the connection from Shutdown's goroutine.
func (s *session) ForceClose() {
	s.deadlineMu.Lock()
	s.conn.Close()
	s.deadlineMu.Unlock()
}

// setConn replaces the connection (TLS) so that interrupt and forceClose
// see either the old or the new one, never a torn value.
func (s *session) setConn(c net.Conn) {
	s.deadlineMu.Lock()
	s.conn = c
	s.deadlineMu.Unlock()
}

func (s *session) setupIO() {
	s.br = bufio.NewReaderSize(s.conn, 4096)
	s.bw = bufio.NewWriterSize(deadlineWriter{s.conn}, 4096)
	s.setupWire()
}

// setupWire builds the protocol reader and writer on s.br and s.bw.
func (s *session) setupWire() {
	s.r = imapwire.NewReader(s.br)
	s.r.MaxLine = s.srv.cfg.MaxLine
	s.r.MaxLiteral = s.srv.cfg.MaxLiteral
	s.r.MaxMetadataValue = store.MetadataMaxValue
	s.r.Continue = func() error {
		// Called while readCommand waits, without the session lock.
		s.notify.mu.Lock()
		defer s.notify.mu.Unlock()
		s.w.Raw("+ Ready\r\n")
		return s.flush()
	}
	s.r.Spool = func() (*os.File, error) {
		f, err := os.CreateTemp(s.srv.cfg.SpoolDir, "imap-append-*")
		if err != nil {
			s.log.Warn("imap append spool", "err", err)
			return nil, err
		}
		// Unlinked at once: nothing is left behind if we crash.
		os.Remove(f.Name())
		return f, nil
	}
	if s.state != stateNotAuth {
		s.r.MaxAppend = s.srv.cfg.AppendLimit
	}
	w := imapwire.NewWriter(s.bw)
	if s.w != nil {
		w.UTF8 = s.w.UTF8
	}
	s.w = w
}

// flush sends everything written so far; with COMPRESS it also ends the
// current deflate block so the client can decompress all of it.
func (s *session) flush() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if s.cw != nil {
		return s.cw.Flush()
	}
	return nil
}

// deadlineWriter arms the write timeout before every write, including the
// buffered writer's automatic flushes in the middle of large responses: a
// deadline set at the previous explicit flush may have passed long ago.
type deadlineWriter struct{ c net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return d.c.Write(p)
}

func (s *session) serve() {
	s.notify.mu.Lock()
	defer func() {
		if x := recover(); x != nil {
			// A bug must not take the whole server down.
			s.srv.panics.Add(1)
			s.log.Error("imap session panic", "panic", x, "stack", string(debug.Stack()))
		}
		s.cleanup()
		s.notify.mu.Unlock()
	}()
	s.srv.metrics.connections.Inc()
	// RemoteAddr may read a PROXY header: only here, in the session's
	// own goroutine.
	s.remote = acceptloop.RemoteIP(s.conn)
	s.log = s.srv.log.With("session", s.id, "remote", s.remote.String())
	if s.srv.cfg.ImplicitTLS {
		tc, err := acceptloop.ServerTLS(s.conn, s.srv.cfg.TLSConfig)
		if err != nil {
			s.log.Debug("imap tls handshake", "err", err)
			return
		}
		s.setConn(tc)
		s.tls = true
	}
	s.setupIO()
	s.w.Status("*", "OK", "CAPABILITY "+s.capabilities(), s.srv.cfg.Hostname+" IMAP server ready")
	if s.flush() != nil {
		return
	}
	for s.state != stateLogout {
		s.deadlineMu.Lock()
		timeout := s.srv.cfg.IdleTimeout
		if s.state == stateNotAuth {
			timeout = min(timeout, preAuthTimeout)
		}
		s.conn.SetReadDeadline(time.Now().Add(timeout))
		closing := s.srv.conns.Closing()
		s.deadlineMu.Unlock()
		if closing {
			s.bye("Server shutting down")
			return
		}
		s.r.Release()
		var release *time.Timer
		if s.cw != nil {
			// A session that waits long for its next command gives its
			// compressor back (see compressWriter).
			release = time.AfterFunc(s.srv.cfg.CompressRelease, s.cw.release)
		}
		cmd, err := s.readCommand()
		if release != nil {
			release.Stop()
		}
		if err != nil {
			var pe *imapwire.Error
			if errors.As(err, &pe) {
				if !s.protocolError(pe) {
					return
				}
				continue
			}
			if s.srv.conns.Closing() {
				s.bye("Server shutting down")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				s.bye("Autologout; idle for too long")
			} else if err != io.EOF {
				s.log.Debug("imap read", "err", err)
			}
			return
		}
		s.handle(cmd)
		if s.flush() != nil {
			return
		}
	}
}

// protocolError answers a command that could not be parsed; it returns
// false when the connection must end.
func (s *session) protocolError(pe *imapwire.Error) bool {
	tag := pe.Tag
	if tag == "" {
		tag = "*"
	}
	if pe.Fatal {
		if pe.Tag != "" {
			s.w.Status(tag, "BAD", pe.Code, pe.Msg)
		}
		s.bye(pe.Msg)
		return false
	}
	status := "BAD"
	if pe.No {
		status = "NO"
	} else {
		s.bad++
	}
	s.srv.metrics.commands.WithLabelValues("invalid", strings.ToLower(status)).Inc()
	s.w.Status(tag, status, pe.Code, pe.Msg)
	if s.bad >= maxBadCommands {
		s.bye("Too many invalid commands")
		return false
	}
	return s.flush() == nil
}

func (s *session) bye(text string) {
	s.w.Status("*", "BYE", "", text)
	s.flush()
	s.state = stateLogout
}

func (s *session) cleanup() {
	s.stopNotify()
	s.releaseCompressor()
	if s.view != nil {
		s.view.close()
		s.view = nil
	}
	if s.limitHeld {
		s.srv.releaseUserIP(s.acct.ID, s.remote)
		s.limitHeld = false
	}
	s.conn.Close()
}

// respError is a NO or BAD answer with an optional response code.
type respError struct {
	status string // NO or BAD
	code   string
	text   string
}

func (e *respError) Error() string { return e.text }

func no(code, format string, args ...any) error {
	return &respError{"NO", code, fmt.Sprintf(format, args...)}
}

func bad(format string, args ...any) error {
	return &respError{"BAD", "", fmt.Sprintf(format, args...)}
}

// errBye ends the session after the handler already wrote BYE.
var errBye = errors.New("bye")

type handler struct {
	fn     func(s *session, ctx context.Context, cmd *imapwire.Command) error
	states []state
}

var (
	anyState  = []state{stateNotAuth, stateAuth, stateSelected}
	notAuth   = []state{stateNotAuth}
	authed    = []state{stateAuth, stateSelected}
	selected  = []state{stateSelected}
	handlers  map[string]handler
	uidCmdSet = map[string]bool{"FETCH": true, "STORE": true, "COPY": true, "MOVE": true, "SEARCH": true, "EXPUNGE": true, "SORT": true, "THREAD": true}
)

func init() {
	handlers = map[string]handler{
		"CAPABILITY":   {(*session).cmdCapability, anyState},
		"NOOP":         {(*session).cmdNoop, anyState},
		"LOGOUT":       {(*session).cmdLogout, anyState},
		"ID":           {(*session).cmdID, anyState},
		"STARTTLS":     {(*session).cmdStartTLS, notAuth},
		"LOGIN":        {(*session).cmdLogin, notAuth},
		"AUTHENTICATE": {(*session).cmdAuthenticate, notAuth},
		"ENABLE":       {(*session).cmdEnable, authed},
		"SELECT":       {(*session).cmdSelect, authed},
		"EXAMINE":      {(*session).cmdSelect, authed},
		"CREATE":       {(*session).cmdCreate, authed},
		"DELETE":       {(*session).cmdDelete, authed},
		"RENAME":       {(*session).cmdRename, authed},
		"SUBSCRIBE":    {(*session).cmdSubscribe, authed},
		"UNSUBSCRIBE":  {(*session).cmdSubscribe, authed},
		"LIST":         {(*session).cmdList, authed},
		"LSUB":         {(*session).cmdLsub, authed},
		"NAMESPACE":    {(*session).cmdNamespace, authed},
		"STATUS":       {(*session).cmdStatus, authed},
		"APPEND":       {(*session).cmdAppend, authed},
		"IDLE":         {(*session).cmdIdle, authed},
		"GETQUOTA":     {(*session).cmdGetQuota, authed},
		"GETQUOTAROOT": {(*session).cmdGetQuotaRoot, authed},
		"SETQUOTA":     {(*session).cmdSetQuota, authed},
		"GETMETADATA":  {(*session).cmdGetMetadata, authed},
		"SETMETADATA":  {(*session).cmdSetMetadata, authed},
		"NOTIFY":       {(*session).cmdNotify, authed},
		"CHECK":        {(*session).cmdNoop, selected},
		"CLOSE":        {(*session).cmdClose, selected},
		"UNSELECT":     {(*session).cmdClose, selected},
		"EXPUNGE":      {(*session).cmdExpunge, selected},
		"SEARCH":       {(*session).cmdSearch, selected},
		"SORT":         {(*session).cmdSort, selected},
		"THREAD":       {(*session).cmdThread, selected},
		"COMPRESS":     {(*session).cmdCompress, authed},
		"FETCH":        {(*session).cmdFetch, selected},
		"STORE":        {(*session).cmdStore, selected},
		"COPY":         {(*session).cmdCopy, selected},
		"MOVE":         {(*session).cmdCopy, selected},
	}
}

func (s *session) handle(cmd *imapwire.Command) {
	if a, ok := cmd.Args.(*imapwire.AppendArgs); ok {
		defer func() {
			for _, m := range a.Messages {
				if m.File != nil {
					m.File.Close()
				}
			}
		}()
	}
	name := cmd.Name
	if cmd.UID {
		name = "UID " + name
	}
	h, ok := handlers[cmd.Name]
	if !ok || (cmd.UID && !uidCmdSet[cmd.Name]) {
		s.bad++
		s.w.Status(cmd.Tag, "BAD", "", "Unknown command "+name)
		s.srv.metrics.commands.WithLabelValues("unknown", "bad").Inc()
		if s.bad >= maxBadCommands {
			s.bye("Too many invalid commands")
		}
		return
	}
	allowed := false
	for _, st := range h.states {
		allowed = allowed || st == s.state
	}
	if !allowed {
		s.bad++
		var msg string
		switch s.state {
		case stateNotAuth:
			msg = name + " needs authentication first"
		case stateAuth:
			msg = name + " needs a selected mailbox"
		default:
			msg = name + " is not allowed in this state"
		}
		s.w.Status(cmd.Tag, "BAD", "", msg)
		s.srv.metrics.commands.WithLabelValues(strings.ToLower(cmd.Name), "bad").Inc()
		if s.bad >= maxBadCommands {
			s.bye("Too many invalid commands")
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	s.respCode = ""
	start := time.Now()
	err := h.fn(s, ctx, cmd)
	if err == errBye {
		return
	}
	// Report changes made by other sessions before the tagged response,
	// except that EXPUNGE may not be sent during FETCH, STORE and SEARCH
	// (RFC 9051 7.5.1), nor SORT and THREAD, whose answers are sequence
	// numbers too, unless they are UID commands.
	if s.view != nil && s.state == stateSelected {
		noExpunge := !cmd.UID && (cmd.Name == "FETCH" || cmd.Name == "STORE" || cmd.Name == "SEARCH" || cmd.Name == "SORT" || cmd.Name == "THREAD")
		// A fresh context: IDLE may have outlived the command's.
		pctx, pcancel := context.WithTimeout(context.Background(), time.Minute)
		perr := s.pollNotify(pctx, !noExpunge, cmd.Name)
		pcancel()
		if perr == errBye {
			return
		} else if perr != nil && err == nil {
			err = perr
		}
		// With QRESYNC, EXPUNGE's tagged OK carries HIGHESTMODSEQ
		// (RFC 7162): VANISHED responses carry no MODSEQ, so this is how
		// the client learns the MODSEQ its cache is now current to.
		if err == nil && s.qresync && cmd.Name == "EXPUNGE" && s.respCode == "" && s.view != nil {
			s.respCode = "HIGHESTMODSEQ " + strconv.FormatInt(s.view.modseq, 10)
		}
	}
	s.notifyCommandEnd() // NOTIFY events that waited for the command
	result := "ok"
	if err != nil {
		var re *respError
		if !errors.As(err, &re) {
			re = s.storeError(err)
		}
		if re.status == "BAD" {
			s.bad++
			result = "bad"
		} else {
			s.bad = 0
			result = "no"
		}
		s.w.Status(cmd.Tag, re.status, re.code, re.text)
	} else {
		s.bad = 0
		text := name + " completed"
		if d := time.Since(start); d > time.Second {
			text = fmt.Sprintf("%s completed (%.3f secs)", name, d.Seconds())
		}
		s.w.Status(cmd.Tag, "OK", s.respCode, text)
	}
	s.srv.metrics.commands.WithLabelValues(strings.ToLower(strings.ReplaceAll(name, " ", "_")), result).Inc()
	// Arguments are not logged: LOGIN carries a password.
	s.log.Debug("imap command", "tag", cmd.Tag, "command", name, "result", result, "duration", time.Since(start))
	switch {
	case s.bad >= maxBadCommands:
		s.bye("Too many invalid commands")
	case s.state == stateNotAuth && s.authFailures >= maxAuthFailures:
		s.bye("Too many authentication failures")
	}
}

// storeError maps a store error to a NO response.
func (s *session) storeError(err error) *respError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &respError{"NO", "NONEXISTENT", "No such mailbox or message"}
	case errors.Is(err, store.ErrExists):
		return &respError{"NO", "ALREADYEXISTS", "Mailbox already exists"}
	case errors.Is(err, store.ErrOverQuota):
		return &respError{"NO", "OVERQUOTA", "Quota exceeded"}
	case errors.Is(err, store.ErrMailboxInUse):
		return &respError{"NO", "HASCHILDREN", "Mailbox has children"}
	case errors.Is(err, store.ErrSpecialMailbx):
		return &respError{"NO", "CANNOT", "Operation not allowed on this mailbox"}
	case errors.Is(err, store.ErrInvalid):
		return &respError{"NO", "CANNOT", "Invalid argument"}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("imap store unavailable", "err", err)
		return &respError{"NO", "UNAVAILABLE", "Temporary server failure, try again later"}
	case errors.Is(err, os.ErrNotExist):
		s.log.Error("imap missing message content", "err", err)
		return &respError{"NO", "SERVERBUG", "Message content missing"}
	}
	s.log.Error("imap command failed", "err", err)
	return &respError{"NO", "SERVERBUG", "Internal server error"}
}

// capabilities is the CAPABILITY list for the session's current state.
func (s *session) capabilities() string {
	caps := []string{"IMAP4rev2", "IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"}
	insecureOK := s.tls || s.srv.cfg.AllowInsecureAuth
	if s.state == stateNotAuth {
		if !s.tls && s.srv.cfg.TLSConfig != nil {
			caps = append(caps, "STARTTLS")
		}
		if insecureOK {
			caps = append(caps, "AUTH=PLAIN")
		} else {
			caps = append(caps, "LOGINDISABLED")
		}
		return strings.Join(caps, " ")
	}
	caps = append(caps,
		"NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN",
		"SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
		"ESEARCH", "SEARCHRES", "STATUS=SIZE", "BINARY", "MULTIAPPEND",
		fmt.Sprintf("APPENDLIMIT=%d", s.srv.cfg.AppendLimit),
		"QUOTA", "QUOTA=RES-STORAGE", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC",
		"OBJECTID", "SAVEDATE", "WITHIN", "COMPRESS=DEFLATE",
		"SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
		"I18NLEVEL=1", "METADATA", "NOTIFY",
	)
	return strings.Join(caps, " ")
}

func (s *session) cmdCapability(ctx context.Context, cmd *imapwire.Command) error {
	s.w.Raw("* CAPABILITY " + s.capabilities() + "\r\n")
	return nil
}

func (s *session) cmdNoop(ctx context.Context, cmd *imapwire.Command) error {
	// The poll after every command does the work.
	if s.view != nil {
		s.view.dirty = true
	}
	return nil
}

func (s *session) cmdLogout(ctx context.Context, cmd *imapwire.Command) error {
	s.w.Status("*", "BYE", "", "Logging out")
	s.w.Status(cmd.Tag, "OK", "", "LOGOUT completed")
	s.state = stateLogout
	if s.view != nil {
		s.view.close()
		s.view = nil
	}
	return errBye
}

func (s *session) cmdID(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.IDArgs)
	if len(a.Params) > 0 {
		var b strings.Builder
		for i, p := range a.Params {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(p[0] + "=" + p[1])
		}
		s.log.Debug("imap client id", "id", b.String())
	}
	s.w.Raw(`* ID ("name" "mailstead" "vendor" "mailstead")` + "\r\n")
	return nil
}

func (s *session) cmdEnable(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.EnableArgs)
	var enabled []string
	for _, c := range a.Caps {
		switch c {
		case "IMAP4REV2":
			if !s.rev2 {
				s.rev2 = true
				enabled = append(enabled, "IMAP4rev2")
			}
			s.utf8 = true
		case "UTF8=ACCEPT":
			if !s.utf8Accept {
				enabled = append(enabled, "UTF8=ACCEPT")
			}
			s.utf8, s.utf8Accept = true, true
		case "CONDSTORE":
			if !s.condstore {
				enabled = append(enabled, "CONDSTORE")
				s.enableCondstore()
			}
		case "QRESYNC":
			// QRESYNC implies CONDSTORE (RFC 7162 3.2.3).
			if !s.qresync {
				enabled = append(enabled, "QRESYNC")
				s.qresync = true
				s.enableCondstore()
			}
		}
	}
	s.w.UTF8 = s.utf8
	s.w.Raw("* ENABLED")
	for _, e := range enabled {
		s.w.Raw(" " + e)
	}
	s.w.CRLF()
	return nil
}

// enableCondstore turns CONDSTORE on for the rest of the session (RFC 7162
// 3.1: ENABLE, or the first command that uses a CONDSTORE feature). With
// a mailbox selected the client learns its HIGHESTMODSEQ now.
func (s *session) enableCondstore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if s.view != nil {
		s.w.Raw("* OK [HIGHESTMODSEQ ")
		s.w.Num(s.view.modseq)
		s.w.Raw("] CONDSTORE enabled\r\n")
	}
}

// mailboxName turns a mailbox name from the client into the store's form:
// UTF-8 (decoding modified UTF-7 for IMAP4rev1 clients), "/" separated,
// INBOX in upper case, no trailing separator.
func (s *session) mailboxName(raw string) (string, error) {
	name := raw
	if !s.utf8 {
		if d, err := imapwire.DecodeMUTF7(raw); err == nil {
			name = d
		} else if !utf8.ValidString(raw) {
			return "", bad("Mailbox name is not valid modified UTF-7 or UTF-8")
		}
	} else if !utf8.ValidString(raw) {
		return "", bad("Mailbox name is not valid UTF-8")
	}
	name = strings.TrimSuffix(name, "/")
	if len(name) >= 5 && strings.EqualFold(name[:5], "INBOX") && (len(name) == 5 || name[5] == '/') {
		name = "INBOX" + name[5:]
	}
	if name == "" || len(name) > 1000 || strings.Contains(name, "//") || strings.HasPrefix(name, "/") {
		return "", no("CANNOT", "Invalid mailbox name")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return "", no("CANNOT", "Invalid character in mailbox name")
		}
	}
	return name, nil
}

// encodeName is the inverse of mailboxName for responses.
func (s *session) encodeName(name string) string {
	if s.utf8 {
		return name
	}
	return imapwire.EncodeMUTF7(name)
}

// writeMailbox writes a mailbox name as an astring.
func (s *session) writeMailbox(name string) {
	s.w.AString(s.encodeName(name))
}
