package smtpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailstead/mailstead/internal/acceptloop"
	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/spam"
	"github.com/mailstead/mailstead/internal/store"
)

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	sess := &session{
		s:    s,
		conn: c,
		st:   stateOf(c),
		id:   newID(),
		spam: s.spam.Load(),
	}
	if sess.st != nil {
		// The address handle settled on: from the PROXY header when
		// there is one, under STARTTLS and implicit TLS alike.
		sess.remote = sess.st.ip
	} else {
		sess.remote = acceptloop.AddrIP(c.Conn().RemoteAddr())
	}
	sess.log = s.log.With("session", sess.id, "remote", sess.remote)
	if s.cfg.Role == RoleSubmission {
		return &submissionSession{sess}, nil
	}
	return sess, nil
}

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// session is one SMTP transaction context (go-smtp starts a new one after
// STARTTLS and at each EHLO).
type session struct {
	s      *Server
	conn   *smtp.Conn
	st     *trackedConn // per-connection limit state; nil only in odd setups
	remote netip.Addr
	id     string
	log    *slog.Logger

	account *store.Account // submission: the authenticated account
	spam    *spam.Checker  // nil: no spam checks (see Server.SetSpam)

	from    string
	fromSet bool
	utf8    bool
	rcpts   []delivery.Target
	// remote are recipients outside our domains (authenticated users
	// only), queued through the Submitter with the DSN parameters.
	remoteRcpts []delivery.RemoteRecipient
	dsn         delivery.DSNOptions

	// Per-user sending limit reservations of this transaction, given back
	// unless the message is accepted.
	heldMessages, heldRcpts int

	// spamConn is the spam check's verdict on the client, made at the
	// session's first MAIL FROM (go-smtp starts a session per EHLO, so
	// it is per connection and HELO name); nil until then, and always
	// without a checker or for authenticated senders.
	spamConn *spam.ConnVerdict
}

func reply(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

var (
	errTemp       = reply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem, try again later")
	errRelay      = reply(554, smtp.EnhancedCode{5, 7, 1}, "Relay access denied")
	errNoOutbound = reply(554, smtp.EnhancedCode{5, 3, 3}, "Delivery to remote domains is not enabled on this server yet")
	// errAuthRequired is RFC 4954 section 6's reply; go-smtp's
	// ErrAuthRequired says 502 (command not implemented), which clients
	// do not recognise as "log in first".
	errAuthRequired = reply(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
	// errGreylisted defers a recipient; it is not counted as a client
	// error (see fail).
	errGreylisted = spamReply(spam.GreylistReply())
)

func spamReply(r spam.Reply) *smtp.SMTPError {
	return reply(r.Code, smtp.EnhancedCode(r.Enhanced), r.Text)
}

func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.s.ctx, s.s.cfg.CommandTimeout)
}

func (s *session) Reset() {
	s.release()
	s.from, s.fromSet, s.utf8, s.rcpts = "", false, false, nil
	s.remoteRcpts, s.dsn = nil, delivery.DSNOptions{}
}

func (s *session) Logout() error {
	s.release()
	return nil
}

// release gives back the sending limit reservations of a transaction that
// did not end in an accepted message.
func (s *session) release() {
	if s.account != nil {
		s.s.sendLimits.refund(s.account.Address, s.heldMessages, s.heldRcpts)
	}
	s.heldMessages, s.heldRcpts = 0, 0
}

// fail counts an error reply towards max_errors_per_session once the
// connection is encrypted, where the cleartext reply watcher (trackedConn)
// cannot see the replies, and turns the one over the limit into 421 and a
// close.
//
// A greylisting 451 is not the client's error: a real MTA sending one
// message to many recipients gets one per recipient and must not be
// disconnected for it, in cleartext (the reply watcher skips it) or not.
func (s *session) fail(err error) error {
	if err == error(errGreylisted) {
		if s.st != nil && !s.st.blind.Load() {
			s.st.uncounted.Store(true)
		}
		return err
	}
	if err == nil || s.st == nil || s.st.maxErrors <= 0 || !s.st.blind.Load() {
		return err
	}
	if int(s.st.errors.Add(1)) > s.st.maxErrors {
		s.st.tooManyErrors.Store(true)
		s.closeAfterReply()
		return errTooManyErrors
	}
	return err
}

// closeAfterReply closes the connection once go-smtp has written the
// reply being returned.
func (s *session) closeAfterReply() {
	if s.st != nil {
		s.st.closeAfterWrite.Store(true)
	}
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	return s.fail(s.mail(from, opts))
}

func (s *session) mail(from string, opts *smtp.MailOptions) error {
	if s.s.cfg.Role == RoleSubmission && s.account == nil {
		return errAuthRequired
	}
	if st := s.st; st != nil && !st.exempt && s.s.cfg.MaxMessagesPerConn > 0 && int(st.messages.Add(1)) > s.s.cfg.MaxMessagesPerConn {
		s.s.logLimited(s.log, &s.s.abuseLog, slog.LevelInfo, "too many messages in one connection; closing", "limit", s.s.cfg.MaxMessagesPerConn)
		s.s.cfg.Metrics.closed.WithLabelValues(s.s.cfg.Name, "too_many_messages").Inc()
		s.closeAfterReply()
		return reply(421, smtp.EnhancedCode{4, 7, 0}, fmt.Sprintf("Too many messages in one connection (limit %d), reconnect to send more", s.s.cfg.MaxMessagesPerConn))
	}
	if opts != nil && opts.Size > 0 && s.s.cfg.MaxMessageBytes > 0 && opts.Size > s.s.cfg.MaxMessageBytes {
		return reply(552, smtp.EnhancedCode{5, 3, 4}, fmt.Sprintf("Message size exceeds the limit of %d bytes", s.s.cfg.MaxMessageBytes))
	}
	if from != "" {
		a, err := address.Parse(from)
		if err != nil {
			return reply(553, smtp.EnhancedCode{5, 1, 7}, "Bad sender address syntax")
		}
		from = a.String()
		if s.account != nil && !ownsAddress(*s.account, a, s.s.cfg.SubaddressDelimiter) {
			s.log.Info("submission refused: sender is not the account's address", "account", s.account.Address, "from", from)
			return reply(553, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("Sender address <%s> is not yours (logged in as %s)", from, s.account.Address))
		}
	} else if s.account != nil {
		return reply(553, smtp.EnhancedCode{5, 7, 1}, "Authenticated users cannot send with a null sender")
	}
	if s.account != nil {
		if !s.s.sendLimits.reserveMessage(s.account.Address) {
			s.s.logLimited(s.log, &s.s.sendLog, slog.LevelWarn, "submission refused: hourly message limit reached", "limit", s.s.sendLimits.limits().MessagesPerHour)
			return reply(450, smtp.EnhancedCode{4, 7, 1}, fmt.Sprintf("Sending limit reached: at most %d messages per hour, try again later", s.s.sendLimits.limits().MessagesPerHour))
		}
		s.heldMessages++
	}
	if s.spamConn == nil && s.account == nil && s.spam != nil {
		s.checkClient()
	}
	s.from, s.fromSet = from, true
	s.utf8 = opts != nil && opts.UTF8
	if opts != nil {
		s.dsn = delivery.DSNOptions{Ret: string(opts.Return), EnvID: opts.EnvelopeID}
	}
	return nil
}

// ownsAddress: the account's own address, with any subaddress.
func ownsAddress(acc store.Account, a address.Address, delims string) bool {
	own, err := address.Parse(acc.Address)
	if err != nil {
		return false
	}
	if a.Key() == own.Key() {
		return true
	}
	base, tag := a.Base(delims)
	return tag != "" && base.Key() == own.Key()
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	return s.fail(s.rcpt(to, opts))
}

func (s *session) rcpt(to string, opts *smtp.RcptOptions) error {
	if s.account != nil {
		if max := s.s.sendLimits.limits().RecipientsPerMessage; max > 0 && len(s.rcpts) >= max {
			s.s.cfg.Metrics.rcpts.WithLabelValues(s.s.cfg.Name, "user_limit").Inc()
			return reply(452, smtp.EnhancedCode{4, 5, 3}, fmt.Sprintf("Too many recipients: at most %d per message", max))
		}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	t, err := s.s.cfg.Deliverer.Resolve(ctx, to)
	result := "accepted"
	defer func() { s.s.cfg.Metrics.rcpts.WithLabelValues(s.s.cfg.Name, result).Inc() }()
	var remote *delivery.RemoteRecipient
	switch {
	case err == nil:
	case errors.Is(err, delivery.ErrNotLocal) && s.account != nil:
		if s.s.cfg.Submitter == nil {
			result = "relay_denied"
			return errNoOutbound
		}
		a, perr := address.Parse(to)
		if perr != nil {
			result = "bad_syntax"
			return reply(501, smtp.EnhancedCode{5, 1, 3}, "Bad recipient address syntax")
		}
		remote = &delivery.RemoteRecipient{Address: a.String()}
		if opts != nil {
			for _, n := range opts.Notify {
				remote.Notify = append(remote.Notify, string(n))
			}
			if opts.OriginalRecipient != "" {
				remote.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
			}
		}
		result = "remote"
	case errors.Is(err, delivery.ErrNotLocal):
		result = "relay_denied"
		s.log.Info("relay denied", "from", s.from, "rcpt", to)
		return errRelay
	case errors.Is(err, delivery.ErrUnknownRecipient):
		result = "unknown"
		s.log.Info("unknown recipient", "from", s.from, "rcpt", to)
		return reply(550, smtp.EnhancedCode{5, 1, 1}, fmt.Sprintf("<%s>: no such user here", to))
	case errors.Is(err, delivery.ErrMailboxFull):
		result = "over_quota"
		return reply(452, smtp.EnhancedCode{4, 2, 2}, fmt.Sprintf("<%s>: mailbox full", to))
	case errors.Is(err, address.ErrInvalid):
		result = "bad_syntax"
		return reply(501, smtp.EnhancedCode{5, 1, 3}, "Bad recipient address syntax")
	default:
		result = "tempfail"
		s.log.Warn("resolve recipient", "rcpt", to, "err", err)
		return errTemp
	}
	if r, err := s.spamRcpt(t); err != nil {
		result = r
		return err
	}
	if s.account != nil {
		if !s.s.sendLimits.reserveRecipient(s.account.Address) {
			result = "user_limit"
			s.s.logLimited(s.log, &s.s.sendLog, slog.LevelWarn, "submission refused: daily recipient limit reached", "limit", s.s.sendLimits.limits().RecipientsPerDay)
			return reply(450, smtp.EnhancedCode{4, 7, 1}, fmt.Sprintf("Sending limit reached: at most %d recipients per day, try again later", s.s.sendLimits.limits().RecipientsPerDay))
		}
		s.heldRcpts++
	}
	if remote != nil {
		s.remoteRcpts = append(s.remoteRcpts, *remote)
		return nil
	}
	s.rcpts = append(s.rcpts, t)
	return nil
}

func (s *session) Data(r io.Reader) error {
	return s.fail(s.data(r))
}

func (s *session) data(r io.Reader) error {
	start := time.Now()
	s.conn.Conn().SetReadDeadline(time.Now().Add(s.s.cfg.DataTimeout))
	id := s.id // received gives the next transaction a new one
	head := s.received()
	if s.account != nil {
		// Submission: read the header first, to check From and to add
		// what the client left out (RFC 6409 section 8).
		br := bufio.NewReaderSize(r, 4096)
		hdr, err := readHeaderBlock(br, maxSubmittedHeader)
		if err != nil {
			return s.spoolError(err)
		}
		if err := s.checkHeader(hdr); err != nil {
			s.result("rejected")
			return err
		}
		head = append(head, s.addedFields(hdr)...)
		r = io.MultiReader(bytes.NewReader(hdr), br)
	}
	max := s.s.cfg.MaxMessageBytes
	if max > 0 {
		max += int64(len(head))
	}
	sp, err := delivery.NewSpool(head, r, max, s.s.cfg.Deliverer.TmpDir())
	if err != nil {
		return s.spoolError(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithTimeout(s.s.ctx, s.s.cfg.DataTimeout)
	defer cancel()
	var addrs []string
	for _, t := range s.rcpts {
		addrs = append(addrs, t.Address.String())
	}
	for _, r := range s.remoteRcpts {
		addrs = append(addrs, r.Address)
	}
	_, tlsOn := s.conn.TLSConnectionState()
	env := delivery.Envelope{From: s.from, Recipients: s.rcpts, RemoteIP: s.remote, Helo: s.conn.Hostname(), TLS: tlsOn, Account: s.account}
	var spamLog []any // the verdict, for the delivered line
	if s.spam != nil && s.account == nil {
		v, err := s.checkMessage(ctx, &env, sp, id, addrs)
		if err != nil {
			return err
		}
		spamLog = []any{"spam_source", v.Source, "spam_action", string(v.Action), "spam_score", v.Score, "spam_symbols", symbolNames(v.Symbols)}
	}
	if len(s.remoteRcpts) > 0 {
		_, err = s.s.cfg.Submitter.Submit(ctx, env, s.remoteRcpts, s.dsn, sp)
	} else {
		_, err = s.s.cfg.Deliverer.Deliver(ctx, env, sp)
	}
	switch {
	case err == nil:
		s.result("accepted")
		s.heldMessages, s.heldRcpts = 0, 0 // sent: the reservations stay counted
		s.log.Info("delivered", append([]any{"id", id, "from", s.from, "rcpts", addrs, "size", sp.Size(), "delay", time.Since(start).Round(time.Millisecond)}, spamLog...)...)
		return nil
	case errors.Is(err, delivery.ErrLoop):
		s.result("rejected")
		s.log.Info("rejected: mail loop", "from", s.from, "rcpts", addrs, "err", err)
		return reply(554, smtp.EnhancedCode{5, 4, 6}, "Too many hops: mail loop detected")
	case errors.Is(err, store.ErrOverQuota):
		s.result("rejected")
		s.log.Info("rejected: over quota", "from", s.from, "rcpts", addrs)
		return reply(552, smtp.EnhancedCode{5, 2, 2}, "Mailbox full")
	case errors.Is(err, delivery.ErrSieveReject):
		s.result("rejected")
		s.log.Info("rejected by the recipient's sieve script", "from", s.from, "rcpts", addrs, "err", err)
		return reply(550, smtp.EnhancedCode{5, 7, 1}, sanitizeReply(err.Error()))
	case errors.Is(err, delivery.ErrDMARCReject):
		s.result("rejected")
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "Message rejected: the sender domain's DMARC policy says to reject it (see Authentication-Results)")
	case errors.Is(err, delivery.ErrHeaderTooLarge):
		s.result("rejected")
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message header too large")
	case errors.Is(err, delivery.ErrTemporary):
		s.result("tempfail")
		s.log.Info("deferred: sender authentication could not be checked", "from", s.from, "err", err)
		return reply(451, smtp.EnhancedCode{4, 7, 0}, "Temporary DNS failure checking the sender, try again later")
	default:
		s.result("tempfail")
		s.log.Error("deliver", "from", s.from, "rcpts", addrs, "err", err)
		return errTemp
	}
}

// spoolError maps an error from reading the message to a reply.
func (s *session) spoolError(err error) error {
	var serr *smtp.SMTPError
	if errors.As(err, &serr) {
		s.result("rejected")
		return serr
	}
	if errors.Is(err, delivery.ErrTooLarge) {
		s.result("rejected")
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message too large")
	}
	if errors.Is(err, errHeaderTooLarge) {
		s.result("rejected")
		return reply(552, smtp.EnhancedCode{5, 3, 4}, fmt.Sprintf("Message header too large (limit %d bytes)", maxSubmittedHeader))
	}
	if errors.Is(err, smtp.ErrTooLongLine) {
		// Permanent: a retry would send the same line again. go-smtp
		// closes the connection after this reply.
		s.result("rejected")
		return reply(552, smtp.EnhancedCode{5, 3, 4}, fmt.Sprintf("Line too long (limit %d bytes)", s.s.cfg.MaxLineLength))
	}
	s.result("tempfail")
	s.log.Warn("receive message", "err", err)
	return errTemp
}

func (s *session) result(r string) {
	s.s.cfg.Metrics.messages.WithLabelValues(s.s.cfg.Name, r).Inc()
}

// received builds our Received header (RFC 5321 4.4, with the RFC 3848
// protocol names and the TLS parameters as a comment).
func (s *session) received() []byte {
	proto := "ESMTP"
	if s.utf8 {
		proto = "UTF8SMTP"
	}
	tlsInfo := ""
	if cs, ok := s.conn.TLSConnectionState(); ok {
		proto += "S"
		tlsInfo = fmt.Sprintf(" (using %s with cipher %s)", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	}
	if s.account != nil {
		proto += "A"
	}
	helo := sanitizeHelo(s.conn.Hostname())
	var b bytes.Buffer
	fmt.Fprintf(&b, "Received: from %s ([%s])%s\r\n\tby %s (mailstead) with %s id %s", helo, s.remote, tlsInfo, s.s.cfg.Hostname, proto, s.id)
	if len(s.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", s.rcpts[0].Address)
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", time.Now().Format(time.RFC1123Z))
	s.id = newID() // the next transaction on this connection gets its own id
	return b.Bytes()
}

func sanitizeHelo(h string) string {
	if h == "" {
		return "unknown"
	}
	if len(h) > 255 {
		h = h[:255]
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || r == '(' || r == ')' || r == ';' {
			return -1
		}
		return r
	}, h)
}

// submissionSession adds AUTH (only offered over TLS by go-smtp unless
// AllowInsecureAuth).
type submissionSession struct{ *session }

func (s *submissionSession) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *submissionSession) Auth(mech string) (sasl.Server, error) {
	verify := func(username, password string) error {
		ctx, cancel := s.ctx()
		defer cancel()
		acc, err := s.s.cfg.Auth.Authenticate(ctx, username, password, s.remote)
		if errors.Is(err, account.ErrTooManyFailures) {
			return reply(454, smtp.EnhancedCode{4, 7, 0}, "Too many failed authentications from your address, try later")
		}
		if err != nil {
			return smtp.ErrAuthFailed
		}
		s.account = &acc
		s.log = s.log.With("account", acc.Address)
		s.log.Info("authenticated", "mechanism", mech)
		return nil
	}
	check := func(username, password string) error { return s.fail(verify(username, password)) }
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.fail(smtp.ErrAuthFailed)
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// loginServer is the obsolete SASL LOGIN mechanism that Outlook still
// uses; go-sasl only has its client side.
type loginServer struct {
	check    func(username, password string) error
	step     int
	username string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.username, string(resp))
	}
	return nil, false, errors.New("unexpected SASL LOGIN response")
}

// sanitizeReply keeps a reply text on one printable line of bounded length
// (a sieve reject reason is user-written).
func sanitizeReply(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
