package imapload

import (
	"context"
	"fmt"
	"net"
	"net/textproto"
	"time"
)

// Deliverer hands one message at a time to an SMTP server (mailstead's MX
// listener) or an LMTP server (how an MTA hands mail to Dovecot), so that
// the IDLE mode measures the path real mail takes into the mailbox.
type Deliverer struct {
	Addr    string // loopback host:port, checked by the caller
	LMTP    bool   // LHLO instead of EHLO, one reply per recipient
	Helo    string // default "imapload.localhost"
	From    string // envelope sender, default "load@example.net"
	Timeout time.Duration
}

// Deliver sends msg to rcpt on a new connection. It returns the moment the
// end of data (the final ".") was written: everything the server does from
// there (storing, notifying IDLE sessions) counts as delivery latency.
func (d *Deliverer) Deliver(ctx context.Context, rcpt string, msg []byte) (time.Time, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var nd net.Dialer
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := nd.DialContext(tctx, "tcp", d.Addr)
	if err != nil {
		return time.Time{}, fmt.Errorf("smtp dial: %w", err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(timeout))
	tc := textproto.NewConn(nc)
	helo, from := d.Helo, d.From
	if helo == "" {
		helo = "imapload.localhost"
	}
	if from == "" {
		from = "load@example.net"
	}
	if _, _, err := tc.ReadResponse(220); err != nil {
		return time.Time{}, fmt.Errorf("smtp greeting: %w", err)
	}
	verb := "EHLO"
	if d.LMTP {
		verb = "LHLO"
	}
	steps := []struct {
		line string
		code int
	}{
		{verb + " " + helo, 250},
		{"MAIL FROM:<" + from + ">", 250},
		{"RCPT TO:<" + rcpt + ">", 250},
		{"DATA", 354},
	}
	for _, s := range steps {
		if err := tc.PrintfLine("%s", s.line); err != nil {
			return time.Time{}, fmt.Errorf("smtp %s: %w", s.line, err)
		}
		if _, _, err := tc.ReadResponse(s.code); err != nil {
			return time.Time{}, fmt.Errorf("smtp %s: %w", s.line, err)
		}
	}
	w := tc.DotWriter()
	if _, err := w.Write(msg); err != nil {
		return time.Time{}, fmt.Errorf("smtp data: %w", err)
	}
	if err := tc.W.Flush(); err != nil {
		return time.Time{}, fmt.Errorf("smtp data: %w", err)
	}
	sent := time.Now()
	if err := w.Close(); err != nil {
		return time.Time{}, fmt.Errorf("smtp end of data: %w", err)
	}
	if _, _, err := tc.ReadResponse(250); err != nil {
		return time.Time{}, fmt.Errorf("smtp end of data: %w", err)
	}
	tc.PrintfLine("QUIT")
	tc.ReadResponse(221)
	return sent, nil
}
