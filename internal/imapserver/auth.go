package imapserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"time"

	"github.com/mailstead/mailstead/internal/account"
	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/store"
)

func (s *session) cmdStartTLS(ctx context.Context, cmd *imapwire.Command) error {
	if s.tls {
		return bad("TLS is already active")
	}
	if s.srv.cfg.TLSConfig == nil {
		return no("CANNOT", "STARTTLS is not available")
	}
	// Anything the client pipelined after STARTTLS was sent in clear and
	// must not be executed inside TLS (CVE-2011-0411 style injection).
	if s.br.Buffered() > 0 {
		s.w.Status(cmd.Tag, "BAD", "", "Commands pipelined after STARTTLS")
		s.bye("Protocol violation")
		return errBye
	}
	s.w.Status(cmd.Tag, "OK", "", "Begin TLS negotiation now")
	if err := s.flush(); err != nil {
		s.state = stateLogout
		return errBye
	}
	tc := tls.Server(s.conn, s.srv.cfg.TLSConfig)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Debug("imap starttls handshake", "err", err)
		s.state = stateLogout
		return errBye
	}
	tc.SetDeadline(time.Time{})
	s.setConn(tc)
	s.tls = true
	s.setupIO()
	return errBye // tagged response already sent
}

func (s *session) authAllowed() error {
	if s.tls || s.srv.cfg.AllowInsecureAuth {
		return nil
	}
	return no("PRIVACYREQUIRED", "Authentication is disabled until STARTTLS")
}

func (s *session) cmdLogin(ctx context.Context, cmd *imapwire.Command) error {
	if err := s.authAllowed(); err != nil {
		return err
	}
	a := cmd.Args.(*imapwire.LoginArgs)
	return s.login(ctx, a.Username, a.Password)
}

func (s *session) cmdAuthenticate(ctx context.Context, cmd *imapwire.Command) error {
	a := cmd.Args.(*imapwire.AuthenticateArgs)
	if a.Mechanism != "PLAIN" {
		return no("CANNOT", "Unsupported authentication mechanism")
	}
	if err := s.authAllowed(); err != nil {
		return err
	}
	resp := a.Initial
	if !a.HasInitial {
		s.w.Raw("+ \r\n")
		if err := s.flush(); err != nil {
			return errBye
		}
		line, err := s.r.ReadLine()
		if err != nil {
			s.state = stateLogout
			return errBye
		}
		if string(line) == "*" {
			return bad("Authentication cancelled")
		}
		resp, err = base64.StdEncoding.DecodeString(string(line))
		if err != nil {
			return bad("Invalid base64 data")
		}
	}
	// PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616).
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return bad("Invalid PLAIN response")
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		s.authFailures++
		return no("AUTHORIZATIONFAILED", "Authorization identity must match the user")
	}
	return s.login(ctx, user, pass)
}

func (s *session) login(ctx context.Context, user, pass string) error {
	acct, err := s.srv.cfg.Auth.Authenticate(ctx, user, pass, s.remote)
	if err != nil {
		s.srv.metrics.authFailures.Inc()
		if errors.Is(err, store.ErrUnavailable) {
			return no("UNAVAILABLE", "Authentication temporarily unavailable")
		}
		s.authFailures++
		s.log.Info("imap authentication failed", "user", user, "err", err)
		if errors.Is(err, account.ErrTooManyFailures) {
			return no("AUTHENTICATIONFAILED", "Too many failed authentications from your address, try again later")
		}
		return no("AUTHENTICATIONFAILED", "Authentication failed")
	}
	if !s.srv.acquireUserIP(acct.ID, s.remote) {
		s.log.Info("imap connection limit reached", "user", acct.Address)
		return no("LIMIT", "Too many connections for this user from your address (limit %d)", s.srv.cfg.MaxConnsPerUserIP)
	}
	s.limitHeld = true
	s.acct = acct
	s.state = stateAuth
	s.r.MaxAppend = s.srv.cfg.AppendLimit
	s.log = s.log.With("user", acct.Address)
	s.log.Info("imap login")
	s.respCode = "CAPABILITY " + s.capabilities()
	return nil
}
