package managesieve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
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
	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/sieve"
	"github.com/mailstead/mailstead/internal/store"
)

const (
	writeTimeout = time.Minute
	storeTimeout = 30 * time.Second
	// maxBadCommands ends a session that keeps sending garbage.
	maxBadCommands = 20
)

type session struct {
	srv *Server
	id  uint64
	log *slog.Logger

	mu   sync.Mutex // guards conn against interrupt and forceClose
	conn net.Conn

	r      *reader
	w      *bufio.Writer
	tls    bool
	remote netip.Addr
	acct   *store.Account

	authFailures int
	badCommands  int
	done         bool
}

func newSession(srv *Server, c net.Conn) *session {
	return &session{srv: srv, id: srv.nextID.Add(1), conn: c, log: srv.log}
}

func (s *session) setConn(c net.Conn) {
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
}

func (s *session) setupIO() {
	s.r = &reader{br: bufio.NewReaderSize(s.conn, 16<<10), maxLine: s.srv.cfg.MaxLine, maxLiteral: s.srv.cfg.MaxScriptSize + 1024}
	s.w = bufio.NewWriterSize(deadlineWriter{s.conn}, 16<<10)
}

// deadlineWriter arms the write timeout before every write.
type deadlineWriter struct{ c net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return d.c.Write(p)
}

// interrupt makes a session waiting for a command wake up and say BYE.
func (s *session) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.SetReadDeadline(time.Now())
}

func (s *session) ForceClose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.Close()
}

func (s *session) serve() {
	defer func() {
		if x := recover(); x != nil {
			// A bug must not take the whole server down.
			s.srv.panics.Add(1)
			s.log.Error("managesieve session panic", "panic", x, "stack", string(debug.Stack()))
		}
		s.mu.Lock()
		s.conn.Close()
		s.mu.Unlock()
	}()
	// RemoteAddr may read a PROXY header: only here, in the session's
	// own goroutine.
	s.remote = acceptloop.RemoteIP(s.conn)
	s.log = s.srv.log.With("session", s.id, "remote", s.remote.String())
	if s.srv.cfg.ImplicitTLS {
		tc, err := acceptloop.ServerTLS(s.conn, s.srv.cfg.TLSConfig)
		if err != nil {
			s.log.Debug("managesieve tls handshake", "err", err)
			return
		}
		s.setConn(tc)
		s.tls = true
	}
	s.setupIO()
	s.capabilities()
	s.respond("OK", "", s.srv.cfg.Hostname+" ManageSieve ready")
	if s.w.Flush() != nil {
		return
	}
	for !s.done {
		if s.srv.conns.Closing() {
			s.bye("", "Server shutting down")
			return
		}
		s.mu.Lock()
		s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.IdleTimeout))
		s.mu.Unlock()
		toks, err := s.r.readCommand()
		if err != nil {
			var pe *errProtocol
			switch {
			case s.srv.conns.Closing():
				s.bye("", "Server shutting down")
				return
			case errors.As(err, &pe) && !pe.fatal:
				if s.bad(pe.msg) {
					return
				}
			case errors.As(err, &pe):
				s.bye("", pe.msg)
				return
			case isTimeout(err):
				s.bye("", "Idle timeout")
				return
			default:
				return // connection closed or broken
			}
			if s.w.Flush() != nil {
				return
			}
			continue
		}
		if len(toks) == 0 {
			continue
		}
		s.command(toks)
		if s.w.Flush() != nil {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// bad answers NO for a bad command, or BYE when there were too many; it
// returns true when the session ends.
func (s *session) bad(text string) bool {
	s.badCommands++
	if s.badCommands > maxBadCommands {
		s.bye("", "Too many bad commands")
		return true
	}
	s.respond("NO", "", text)
	return false
}

// respond writes a status response: OK, NO or BYE, an optional response
// code and a human-readable text.
func (s *session) respond(status, code, text string) {
	s.w.WriteString(status)
	if code != "" {
		s.w.WriteString(" (" + code + ")")
	}
	if text != "" {
		s.w.WriteString(" " + quote(text))
	}
	s.w.WriteString("\r\n")
}

func (s *session) bye(code, text string) {
	s.respond("BYE", code, text)
	s.w.Flush()
	s.done = true
}

func (s *session) capabilities() {
	c := s.srv.cfg
	s.w.WriteString(`"IMPLEMENTATION" "mailstead"` + "\r\n")
	s.w.WriteString(`"SIEVE" ` + quote(strings.Join(sieve.Extensions, " ")) + "\r\n")
	if s.tls || c.AllowInsecureAuth {
		s.w.WriteString(`"SASL" "PLAIN"` + "\r\n")
	} else {
		// RFC 5804 section 1.7: no mechanism is usable before TLS.
		s.w.WriteString(`"SASL" ""` + "\r\n")
	}
	if c.TLSConfig != nil && !s.tls && s.acct == nil {
		s.w.WriteString(`"STARTTLS"` + "\r\n")
	}
	s.w.WriteString(`"MAXREDIRECTS" "4"` + "\r\n")
	if s.acct != nil {
		s.w.WriteString(`"OWNER" ` + quote(s.acct.Address) + "\r\n")
	}
	s.w.WriteString(`"VERSION" "1.0"` + "\r\n")
}

// args checks a command's arguments: n strings (kString), or atoms where
// atoms[i] is set.
func args(toks []token, min, max int) ([]string, error) {
	a := toks[1:]
	if len(a) < min || len(a) > max {
		if min == max {
			return nil, fmt.Errorf("%d argument%s expected", min, map[bool]string{true: "", false: "s"}[min == 1])
		}
		return nil, fmt.Errorf("%d to %d arguments expected", min, max)
	}
	out := make([]string, len(a))
	for i, t := range a {
		out[i] = t.s
	}
	return out, nil
}

func strArgs(toks []token, min, max int) ([]string, error) {
	out, err := args(toks, min, max)
	if err != nil {
		return nil, err
	}
	for _, t := range toks[1:] {
		if t.kind != kString {
			return nil, fmt.Errorf("string argument expected, found %q", t.s)
		}
	}
	return out, nil
}

func (s *session) command(toks []token) {
	if toks[0].kind != kAtom {
		s.bad("Command name expected")
		return
	}
	name := strings.ToUpper(toks[0].s)
	s.log.Debug("managesieve command", "command", name)
	switch name {
	case "CAPABILITY":
		if _, err := args(toks, 0, 0); err != nil {
			s.respond("NO", "", err.Error())
			return
		}
		s.capabilities()
		s.respond("OK", "", "Capability completed")
		return
	case "LOGOUT":
		s.respond("OK", "", "Logout completed")
		s.w.Flush()
		s.done = true
		return
	case "NOOP":
		a, err := strArgs(toks, 0, 1)
		if err != nil {
			s.respond("NO", "", err.Error())
			return
		}
		if len(a) == 1 {
			s.respond("OK", "TAG "+quote(a[0]), "Done")
			return
		}
		s.respond("OK", "", "Done")
		return
	case "STARTTLS":
		s.startTLS(toks)
		return
	case "AUTHENTICATE":
		s.authenticate(toks)
		return
	}
	switch name {
	case "HAVESPACE", "PUTSCRIPT", "LISTSCRIPTS", "SETACTIVE", "GETSCRIPT", "DELETESCRIPT", "RENAMESCRIPT", "CHECKSCRIPT", "UNAUTHENTICATE":
	default:
		s.bad("Unknown command " + toks[0].s)
		return
	}
	if s.acct == nil {
		s.bad("Authenticate first")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	var err error
	switch name {
	case "HAVESPACE":
		err = s.haveSpace(ctx, toks)
	case "PUTSCRIPT":
		err = s.putScript(ctx, toks)
	case "LISTSCRIPTS":
		err = s.listScripts(ctx, toks)
	case "SETACTIVE":
		err = s.setActive(ctx, toks)
	case "GETSCRIPT":
		err = s.getScript(ctx, toks)
	case "DELETESCRIPT":
		err = s.deleteScript(ctx, toks)
	case "RENAMESCRIPT":
		err = s.renameScript(ctx, toks)
	case "CHECKSCRIPT":
		err = s.checkScript(toks)
	case "UNAUTHENTICATE":
		if _, err = args(toks, 0, 0); err == nil {
			s.log.Info("managesieve unauthenticate", "user", s.acct.Address)
			s.acct = nil
			s.respond("OK", "", "Unauthenticate completed")
		}
	}
	if err != nil {
		s.fail(err)
	}
}

// noError is a NO response with a response code.
type noError struct {
	code, text string
}

func (e *noError) Error() string { return e.text }

func no(code, format string, a ...any) error {
	return &noError{code: code, text: fmt.Sprintf(format, a...)}
}

// fail answers NO for err, hiding internal errors from the client.
func (s *session) fail(err error) {
	var ne *noError
	switch {
	case errors.As(err, &ne):
		s.respond("NO", ne.code, ne.text)
	case errors.Is(err, store.ErrUnavailable):
		s.respond("NO", "TRYLATER", "Storage temporarily unavailable")
	case errors.Is(err, store.ErrNotFound):
		s.respond("NO", "NONEXISTENT", "No such script")
	case errors.Is(err, context.DeadlineExceeded):
		s.respond("NO", "TRYLATER", "Storage timed out")
	default:
		var serr *sieve.Error
		if errors.As(err, &serr) {
			s.respond("NO", "", err.Error())
			return
		}
		if isArgError(err) {
			s.bad(err.Error())
			return
		}
		s.log.Error("managesieve command failed", "err", err)
		s.respond("NO", "", "Internal error")
	}
}

// argError marks malformed arguments.
type argError struct{ error }

func isArgError(err error) bool {
	var ae argError
	return errors.As(err, &ae)
}

func (s *session) startTLS(toks []token) {
	if _, err := args(toks, 0, 0); err != nil {
		s.respond("NO", "", err.Error())
		return
	}
	switch {
	case s.tls:
		s.respond("NO", "", "TLS is already active")
		return
	case s.srv.cfg.TLSConfig == nil:
		s.respond("NO", "", "STARTTLS is not available")
		return
	case s.acct != nil:
		s.respond("NO", "", "STARTTLS only before authentication")
		return
	}
	// Commands pipelined after STARTTLS were sent in clear and must not
	// be executed inside TLS (CVE-2011-0411 style injection).
	if s.r.br.Buffered() > 0 {
		s.bye("", "Commands pipelined after STARTTLS")
		return
	}
	s.respond("OK", "", "Begin TLS negotiation now")
	if s.w.Flush() != nil {
		s.done = true
		return
	}
	tc := tls.Server(s.conn, s.srv.cfg.TLSConfig)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.HandshakeContext(context.Background()); err != nil {
		s.log.Debug("managesieve starttls handshake", "err", err)
		s.done = true
		return
	}
	tc.SetDeadline(time.Time{})
	s.setConn(tc)
	s.tls = true
	s.setupIO()
	// RFC 5804 section 2.2: capabilities again after the handshake.
	s.capabilities()
	s.respond("OK", "", "TLS negotiation successful")
}

func (s *session) authenticate(toks []token) {
	a, err := strArgs(toks, 1, 2)
	if err != nil {
		s.respond("NO", "", err.Error())
		return
	}
	if s.acct != nil {
		s.respond("NO", "", "Already authenticated")
		return
	}
	if !s.tls && !s.srv.cfg.AllowInsecureAuth {
		s.respond("NO", "ENCRYPT-NEEDED", "Authentication requires TLS: use STARTTLS")
		return
	}
	if !strings.EqualFold(a[0], "PLAIN") {
		s.respond("NO", "", "Unsupported SASL mechanism")
		return
	}
	var resp string
	if len(a) == 2 {
		resp = a[1]
	} else {
		s.w.WriteString("\"\"\r\n")
		if s.w.Flush() != nil {
			s.done = true
			return
		}
		t, err := s.r.readCommand()
		if err != nil {
			s.done = true
			return
		}
		if len(t) != 1 || t[0].kind != kString {
			s.respond("NO", "", "Expected a SASL response string")
			return
		}
		resp = t[0].s
		if resp == "*" {
			s.respond("NO", "", "Authentication aborted")
			return
		}
	}
	raw, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		s.respond("NO", "", "Invalid base64 in SASL response")
		return
	}
	// PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616).
	parts := bytes.Split(raw, []byte{0})
	if len(parts) != 3 {
		s.respond("NO", "", "Invalid PLAIN response")
		return
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		s.authFailed("Authorization identity must match the user")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	acct, err := s.srv.cfg.Auth.Authenticate(ctx, user, pass, s.remote)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			s.respond("NO", "TRYLATER", "Authentication temporarily unavailable")
			return
		}
		s.log.Info("managesieve authentication failed", "user", user, "err", err)
		if errors.Is(err, account.ErrTooManyFailures) {
			s.authFailed("Too many failed authentications from your address, try again later")
			return
		}
		s.authFailed("Authentication failed")
		return
	}
	s.acct = &acct
	s.log = s.log.With("user", acct.Address)
	s.log.Info("managesieve login")
	s.respond("OK", "", "Logged in")
}

func (s *session) authFailed(text string) {
	s.authFailures++
	if s.authFailures >= s.srv.cfg.MaxAuthFailures {
		s.bye("", "Too many failed authentications")
		return
	}
	s.respond("NO", "", text)
}

// checkName validates a script name (RFC 5804 section 1.6) within the
// store's limits.
func checkName(name string) error {
	if name == "" {
		return argError{errors.New("empty script name")}
	}
	if len(name) > 255 || !utf8.ValidString(name) {
		return argError{errors.New("script name too long or not UTF-8")}
	}
	for _, r := range name {
		if r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == '/' {
			return argError{fmt.Errorf("invalid character %q in script name", r)}
		}
	}
	return nil
}

// space checks a script of size bytes named name against the limits.
func (s *session) space(ctx context.Context, name string, size int64) error {
	if size > s.srv.cfg.MaxScriptSize {
		return no("QUOTA/MAXSIZE", "Script larger than %d bytes", s.srv.cfg.MaxScriptSize)
	}
	list, err := s.srv.cfg.Store.ListSieveScripts(ctx, s.acct.ID)
	if err != nil {
		return err
	}
	for _, sc := range list {
		if sc.Name == name {
			return nil
		}
	}
	if len(list) >= s.srv.cfg.MaxScripts {
		return no("QUOTA/MAXSCRIPTS", "No more than %d scripts", s.srv.cfg.MaxScripts)
	}
	return nil
}

func (s *session) haveSpace(ctx context.Context, toks []token) error {
	a, err := args(toks, 2, 2)
	if err != nil {
		return argError{err}
	}
	if toks[1].kind != kString || toks[2].kind != kAtom {
		return argError{errors.New("HAVESPACE needs a script name and a size")}
	}
	size, err := strconv.ParseInt(a[1], 10, 64)
	if err != nil || size < 0 {
		return argError{errors.New("invalid size")}
	}
	if err := checkName(a[0]); err != nil {
		return err
	}
	if err := s.space(ctx, a[0], size); err != nil {
		return err
	}
	s.respond("OK", "", "Putscript would succeed")
	return nil
}

func (s *session) putScript(ctx context.Context, toks []token) error {
	a, err := strArgs(toks, 2, 2)
	if err != nil {
		return argError{err}
	}
	name, content := a[0], a[1]
	if err := checkName(name); err != nil {
		return err
	}
	if err := s.space(ctx, name, int64(len(content))); err != nil {
		return err
	}
	if err := sieve.Check(content); err != nil {
		return err
	}
	if err := s.srv.cfg.Store.PutSieveScript(ctx, store.SieveScript{AccountID: s.acct.ID, Name: name, Content: content}); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return no("", "Script rejected by the store")
		}
		return err
	}
	s.log.Info("managesieve putscript", "script", name, "size", len(content))
	s.respond("OK", "", "Putscript completed")
	return nil
}

func (s *session) listScripts(ctx context.Context, toks []token) error {
	if _, err := args(toks, 0, 0); err != nil {
		return argError{err}
	}
	list, err := s.srv.cfg.Store.ListSieveScripts(ctx, s.acct.ID)
	if err != nil {
		return err
	}
	for _, sc := range list {
		s.w.WriteString(quote(sc.Name))
		if sc.Active {
			s.w.WriteString(" ACTIVE")
		}
		s.w.WriteString("\r\n")
	}
	s.respond("OK", "", "Listscripts completed")
	return nil
}

func (s *session) setActive(ctx context.Context, toks []token) error {
	a, err := strArgs(toks, 1, 1)
	if err != nil {
		return argError{err}
	}
	if a[0] != "" {
		// Re-check: the script may predate a stricter validator.
		sc, err := s.srv.cfg.Store.GetSieveScript(ctx, s.acct.ID, a[0])
		if err != nil {
			return err
		}
		if err := sieve.Check(sc.Content); err != nil {
			return no("", "Script is invalid: %v", err)
		}
	}
	if err := s.srv.cfg.Store.ActivateSieveScript(ctx, s.acct.ID, a[0]); err != nil {
		return err
	}
	s.log.Info("managesieve setactive", "script", a[0])
	s.respond("OK", "", "Setactive completed")
	return nil
}

func (s *session) getScript(ctx context.Context, toks []token) error {
	a, err := strArgs(toks, 1, 1)
	if err != nil {
		return argError{err}
	}
	sc, err := s.srv.cfg.Store.GetSieveScript(ctx, s.acct.ID, a[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(s.w, "{%d}\r\n%s\r\n", len(sc.Content), sc.Content)
	s.respond("OK", "", "Getscript completed")
	return nil
}

func (s *session) deleteScript(ctx context.Context, toks []token) error {
	a, err := strArgs(toks, 1, 1)
	if err != nil {
		return argError{err}
	}
	sc, err := s.srv.cfg.Store.GetSieveScript(ctx, s.acct.ID, a[0])
	if err != nil {
		return err
	}
	if sc.Active {
		return no("ACTIVE", "Cannot delete the active script")
	}
	if err := s.srv.cfg.Store.DeleteSieveScript(ctx, s.acct.ID, a[0]); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return no("ACTIVE", "Cannot delete the active script")
		}
		return err
	}
	s.log.Info("managesieve deletescript", "script", a[0])
	s.respond("OK", "", "Deletescript completed")
	return nil
}

// renameScript copies, re-activates and deletes: the store has no rename.
// A failure half-way leaves both names, never none.
func (s *session) renameScript(ctx context.Context, toks []token) error {
	a, err := strArgs(toks, 2, 2)
	if err != nil {
		return argError{err}
	}
	oldName, newName := a[0], a[1]
	if err := checkName(newName); err != nil {
		return err
	}
	st := s.srv.cfg.Store
	sc, err := st.GetSieveScript(ctx, s.acct.ID, oldName)
	if err != nil {
		return err
	}
	if oldName == newName {
		s.respond("OK", "", "Renamescript completed")
		return nil
	}
	if _, err := st.GetSieveScript(ctx, s.acct.ID, newName); err == nil {
		return no("ALREADYEXISTS", "A script with that name exists")
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := st.PutSieveScript(ctx, store.SieveScript{AccountID: s.acct.ID, Name: newName, Content: sc.Content}); err != nil {
		return err
	}
	if sc.Active {
		if err := st.ActivateSieveScript(ctx, s.acct.ID, newName); err != nil {
			return err
		}
	}
	if err := st.DeleteSieveScript(ctx, s.acct.ID, oldName); err != nil {
		return err
	}
	s.log.Info("managesieve renamescript", "script", oldName, "to", newName)
	s.respond("OK", "", "Renamescript completed")
	return nil
}

func (s *session) checkScript(toks []token) error {
	a, err := strArgs(toks, 1, 1)
	if err != nil {
		return argError{err}
	}
	if int64(len(a[0])) > s.srv.cfg.MaxScriptSize {
		return no("QUOTA/MAXSIZE", "Script larger than %d bytes", s.srv.cfg.MaxScriptSize)
	}
	if err := sieve.Check(a[0]); err != nil {
		return err
	}
	s.respond("OK", "", "Script is valid")
	return nil
}
