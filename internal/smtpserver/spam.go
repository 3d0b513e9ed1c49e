package smtpserver

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/spam"
)

// The spam defence of the MX role, by SMTP stage (package spam has the
// checks): the client at the first MAIL FROM, a reject-listed client and
// the greylist at each RCPT TO, the message after DATA. Authenticated
// sessions skip all of it.

// checkClient runs the checks on the client (DNS lists, iprev, HELO),
// bounded by the checker's DNS timeout whatever DNS does.
func (s *session) checkClient() {
	ctx, cancel := s.ctx()
	defer cancel()
	v := s.spam.CheckConnection(ctx, s.remote, s.conn.Hostname())
	s.spamConn = &v
	var listed []string
	for _, l := range v.Lists {
		if l.Status == spam.Listed {
			listed = append(listed, l.Zone)
		}
	}
	s.log.Debug("client checked", "score", v.Score, "iprev", string(v.Iprev.Status), "helo", v.HELO.Problem,
		"listed", listed, "trusted", v.Trusted, "reject", v.Reject != nil)
}

// spamRcpt decides on a resolved local recipient of mail from the
// internet: refused when a reject list lists the client, deferred by the
// greylist. It returns the recipient metric's result with the reply.
//
// postmaster@ and abuse@ are exempt from both: RFC 5321 4.5.1 wants them
// reachable, and a listed sender must be able to ask why.
func (s *session) spamRcpt(t delivery.Target) (string, error) {
	if s.account != nil || isRole(t) {
		return "", nil
	}
	if v := s.spamConn; v != nil && v.Reject != nil {
		s.s.logLimited(s.log, &s.s.abuseLog, slog.LevelInfo, "recipient refused: client is on a reject list",
			"from", s.from, "rcpt", t.Address.String(), "reply", v.Reject.String())
		return "spam_reject", spamReply(*v.Reject)
	}
	gl := s.s.cfg.Greylist
	if gl == nil || s.spamConn != nil && s.spamConn.Allowlisted() || s.st != nil && s.st.exempt {
		return "", nil
	}
	if ok, retry := gl.Check(s.remote, s.from, t.Address.String()); !ok {
		s.s.logLimited(s.log, &s.s.abuseLog, slog.LevelInfo, "recipient greylisted",
			"from", s.from, "rcpt", t.Address.String(), "retry_after", retry.Round(time.Second))
		return "greylisted", errGreylisted
	}
	return "", nil
}

// isRole reports whether a recipient is postmaster@ or abuse@, whether
// routing sent it to a fallback account or a real one has that name.
func isRole(t delivery.Target) bool {
	return t.Role || strings.EqualFold(t.Address.Local, "postmaster") || strings.EqualFold(t.Address.Local, "abuse")
}

// checkMessage runs the authentication checks (once: their result goes
// into env.Auth for Deliver) and the spam check on a received message,
// and records the verdict in env: the X-Spam fields, Junk, and the
// connection checks' results (iprev, DNS lists) for the
// Authentication-Results field. A non-nil error is the reply refusing
// the message. A message the verdict would reject reaches postmaster@ and
// abuse@ in Junk instead, with the other recipients' copies: one DATA
// reply covers them all.
func (s *session) checkMessage(ctx context.Context, env *delivery.Envelope, sp *delivery.Spool, id string, addrs []string) (spam.Verdict, error) {
	if s.spamConn == nil {
		s.checkClient()
	}
	auth := s.s.cfg.Deliverer.Authenticate(ctx, *env, sp)
	env.Auth = auth
	in := spam.MessageInput{Conn: *s.spamConn, MailFrom: s.from, Rcpts: addrs, QueueID: id, Message: sp, Size: sp.Size()}
	if auth != nil {
		in.SPF, in.DKIM, in.DMARC = string(auth.SPF.Status), dkimWord(auth.DKIM), string(auth.DMARC.Status)
	}
	v := s.spam.CheckMessage(ctx, in)
	logArgs := func() []any {
		return []any{"id", id, "from", s.from, "rcpts", addrs, "spam_source", v.Source, "spam_score", v.Score, "spam_symbols", symbolNames(v.Symbols)}
	}
	switch v.Action {
	case spam.Reject:
		role := false
		for _, t := range s.rcpts {
			role = role || isRole(t)
		}
		if !role {
			s.result("rejected")
			s.log.Info("rejected as spam", logArgs()...)
			return v, verdictReply(v.Reply, 550, smtp.EnhancedCode{5, 7, 1}, "Message rejected as spam")
		}
		v.Action, v.Mailbox = spam.Junk, spam.MailboxJunk
	case spam.Defer:
		s.result("tempfail")
		s.log.Info("deferred by the spam check", append(logArgs(), "rspamd_err", v.RspamdErr)...)
		return v, verdictReply(v.Reply, 451, smtp.EnhancedCode{4, 7, 1}, "Message deferred by spam filter, try again later")
	}
	if v.RspamdErr != nil {
		s.log.Debug("rspamd failed, fallback decided", "id", id, "err", v.RspamdErr)
	}
	if auth != nil {
		for _, ar := range v.AuthResults {
			auth.Others = append(auth.Others, mailauth.Method{Name: ar.Method, Status: mailauth.Status(ar.Result), Reason: ar.Reason, Props: ar.Props})
		}
	}
	env.SpamHeaders = v.Headers()
	env.SpamJunk = v.Action == spam.Junk
	return v, nil
}

// verdictReply is the verdict's reply, or the given one when it has none.
func verdictReply(r *spam.Reply, code int, enh smtp.EnhancedCode, text string) *smtp.SMTPError {
	if r == nil {
		return reply(code, enh, text)
	}
	return spamReply(*r)
}

// dkimWord condenses the DKIM results to one word for the score: "pass"
// when a signature passed, else "fail" when one failed, else "".
func dkimWord(ds []mailauth.DKIM) string {
	word := ""
	for _, d := range ds {
		switch d.Status {
		case mailauth.Pass:
			return "pass"
		case mailauth.Fail:
			word = "fail"
		}
	}
	return word
}

// symbolNames lists the names of a verdict's symbols, for logs.
func symbolNames(syms []spam.Symbol) []string {
	out := make([]string, 0, len(syms))
	for _, s := range syms {
		out = append(out, s.Name)
	}
	return out
}
