package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// client is a minimal SMTP client: just what is needed to push messages as
// fast as the server accepts them. It pipelines the envelope (RFC 2920) when
// the server offers PIPELINING, so a transaction costs two round trips.
type client struct {
	conn      net.Conn // the current connection (TLS after STARTTLS)
	raw       net.Conn // the TCP connection, closed on cancellation
	br        *bufio.Reader
	bw        *bufio.Writer
	ioTimeout time.Duration
	pipelined bool
	size      bool // server offers SIZE
	stop      func() bool
	closeOnce sync.Once
}

// txError is a failed transaction or session step. key is the Result.Errors
// key: the reply code, or a word for failures without one.
type txError struct {
	key  string
	err  error
	fate fate
}

// fate says what to do with the connection after an error.
type fate int

const (
	keepConn  fate = iota // the session is in a clean state
	resetConn             // send RSET before the next transaction
	dropConn              // the connection is unusable
)

func (e *txError) Error() string { return e.key + ": " + e.err.Error() }
func (e *txError) Unwrap() error { return e.err }

// replyErr reports an unexpected reply.
func replyErr(stage string, rp reply, f fate) *txError {
	if rp.code == 421 {
		// Service closing: the server will drop the connection.
		f = dropConn
	}
	return &txError{key: strconv.Itoa(rp.code), err: fmt.Errorf("%s: %s", stage, rp), fate: f}
}

// ioErr classifies a transport or protocol error.
func ioErr(ctx context.Context, stage string, err error) *txError {
	key := "io"
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		key = "canceled"
	case errors.Is(err, errProtocol):
		key = "protocol"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		key = "timeout"
	}
	return &txError{key: key, err: fmt.Errorf("%s: %w", stage, err), fate: dropConn}
}

// sessionConfig is what dial needs from Config.
type sessionConfig struct {
	addr      string // resolved loopback ip:port
	helo      string
	startTLS  bool
	tlsConfig *tls.Config
	ioTimeout time.Duration
	noPipe    bool
}

// dial connects, reads the greeting, says EHLO and optionally starts TLS.
// The connection is closed when ctx is done, which aborts any blocked I/O.
func dial(ctx context.Context, sc sessionConfig) (*client, *txError) {
	d := net.Dialer{Timeout: sc.ioTimeout}
	raw, err := d.DialContext(ctx, "tcp", sc.addr)
	if err != nil {
		te := ioErr(ctx, "connecting", err)
		if te.key == "io" {
			te.key = "dial"
		}
		return nil, te
	}
	c := &client{conn: raw, raw: raw, ioTimeout: sc.ioTimeout}
	c.br = bufio.NewReaderSize(raw, maxReplyLine)
	c.bw = bufio.NewWriterSize(raw, 32*1024)
	c.stop = context.AfterFunc(ctx, c.close)

	fail := func(te *txError) (*client, *txError) {
		c.shutdown()
		return nil, te
	}
	rp, te := c.read(ctx, "greeting")
	if te != nil {
		return fail(te)
	}
	if rp.code != 220 {
		return fail(replyErr("greeting", rp, dropConn))
	}
	ext, te := c.ehlo(ctx, sc.helo)
	if te != nil {
		return fail(te)
	}
	if sc.startTLS {
		if _, ok := ext["STARTTLS"]; !ok {
			return fail(&txError{key: "tls", err: errors.New("server does not offer STARTTLS"), fate: dropConn})
		}
		rp, te := c.cmd(ctx, "STARTTLS", "STARTTLS\r\n")
		if te != nil {
			return fail(te)
		}
		if rp.code != 220 {
			return fail(replyErr("STARTTLS", rp, dropConn))
		}
		if c.br.Buffered() > 0 {
			// Data sent before the handshake would be plaintext injected
			// into the TLS session (CVE-2011-0411 class).
			return fail(&txError{key: "protocol", err: errors.New("server sent data after STARTTLS reply"), fate: dropConn})
		}
		tc := tls.Client(raw, sc.tlsConfig)
		raw.SetDeadline(time.Now().Add(c.ioTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			te := ioErr(ctx, "TLS handshake", err)
			if te.key == "io" {
				te.key = "tls"
			}
			return fail(te)
		}
		c.conn = tc
		c.br.Reset(tc)
		c.bw.Reset(tc)
		if ext, te = c.ehlo(ctx, sc.helo); te != nil {
			return fail(te)
		}
	}
	_, c.pipelined = ext["PIPELINING"]
	c.pipelined = c.pipelined && !sc.noPipe
	_, c.size = ext["SIZE"]
	return c, nil
}

// close closes the connection; safe to call more than once and
// concurrently (it is also the context's AfterFunc).
func (c *client) close() {
	c.closeOnce.Do(func() { c.raw.Close() })
}

// shutdown closes the connection and releases the context hook.
func (c *client) shutdown() {
	c.stop()
	c.close()
}

// quit ends the session politely and closes the connection. The reply is
// read (so the server sees an orderly end) but its content does not matter.
func (c *client) quit(ctx context.Context) {
	c.cmd(ctx, "QUIT", "QUIT\r\n")
	c.shutdown()
}

// ehlo sends EHLO and returns the offered extension keywords, upper case.
func (c *client) ehlo(ctx context.Context, helo string) (map[string]string, *txError) {
	rp, te := c.cmd(ctx, "EHLO", "EHLO "+helo+"\r\n")
	if te != nil {
		return nil, te
	}
	if rp.code != 250 {
		return nil, replyErr("EHLO", rp, dropConn)
	}
	ext := make(map[string]string, len(rp.lines))
	for _, l := range rp.lines[1:] {
		kw, params, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(kw)] = params
	}
	return ext, nil
}

// cmd writes one command and reads its reply.
func (c *client) cmd(ctx context.Context, stage, line string) (reply, *txError) {
	if te := c.write(ctx, stage, line); te != nil {
		return reply{}, te
	}
	if te := c.flush(ctx, stage); te != nil {
		return reply{}, te
	}
	return c.read(ctx, stage)
}

func (c *client) write(ctx context.Context, stage, s string) *txError {
	if _, err := c.bw.WriteString(s); err != nil {
		return ioErr(ctx, stage, err)
	}
	return nil
}

func (c *client) flush(ctx context.Context, stage string) *txError {
	c.conn.SetWriteDeadline(time.Now().Add(c.ioTimeout))
	if err := c.bw.Flush(); err != nil {
		return ioErr(ctx, stage, err)
	}
	return nil
}

func (c *client) read(ctx context.Context, stage string) (reply, *txError) {
	c.conn.SetReadDeadline(time.Now().Add(c.ioTimeout))
	rp, err := readReply(c.br)
	if err != nil {
		return reply{}, ioErr(ctx, stage, err)
	}
	return rp, nil
}

// reset sends RSET after a failed transaction.
func (c *client) reset(ctx context.Context) *txError {
	rp, te := c.cmd(ctx, "RSET", "RSET\r\n")
	if te != nil {
		return te
	}
	if rp.code != 250 {
		return replyErr("RSET", rp, dropConn)
	}
	return nil
}

// send delivers one message. The returned error's fate says whether the
// connection can be reused.
func (c *client) send(ctx context.Context, from string, m message) *txError {
	mail := "MAIL FROM:<" + from + ">"
	if c.size {
		mail += " SIZE=" + strconv.Itoa(len(m.data))
	}
	mail += "\r\n"
	rcpt := "RCPT TO:<" + m.to + ">\r\n"

	var mailRp, rcptRp, dataRp reply
	var te *txError
	if c.pipelined {
		if te = c.write(ctx, "MAIL", mail+rcpt+"DATA\r\n"); te != nil {
			return te
		}
		if te = c.flush(ctx, "MAIL"); te != nil {
			return te
		}
		if mailRp, te = c.read(ctx, "MAIL"); te != nil {
			return te
		}
		if rcptRp, te = c.read(ctx, "RCPT"); te != nil {
			return te
		}
		if dataRp, te = c.read(ctx, "DATA"); te != nil {
			return te
		}
	} else {
		if mailRp, te = c.cmd(ctx, "MAIL", mail); te != nil {
			return te
		}
		if mailRp.code != 250 {
			return replyErr("MAIL", mailRp, keepConn)
		}
		if rcptRp, te = c.cmd(ctx, "RCPT", rcpt); te != nil {
			return te
		}
		if rcptRp.code/100 != 2 {
			return replyErr("RCPT", rcptRp, resetConn)
		}
		if dataRp, te = c.cmd(ctx, "DATA", "DATA\r\n"); te != nil {
			return te
		}
	}

	// With pipelining, MAIL or RCPT may have failed while DATA was still
	// answered; report the first failure.
	var envErr *txError
	switch {
	case mailRp.code != 250:
		envErr = replyErr("MAIL", mailRp, resetConn)
	case rcptRp.code/100 != 2:
		envErr = replyErr("RCPT", rcptRp, resetConn)
	}
	if dataRp.code != 354 {
		if envErr != nil {
			return envErr
		}
		return replyErr("DATA", dataRp, resetConn)
	}

	// The body never has a line starting with '.', so no dot-stuffing.
	if _, err := c.bw.Write(m.data); err != nil {
		return ioErr(ctx, "DATA", err)
	}
	if te = c.write(ctx, "DATA", ".\r\n"); te != nil {
		return te
	}
	if te = c.flush(ctx, "DATA"); te != nil {
		return te
	}
	endRp, te := c.read(ctx, "end of DATA")
	if te != nil {
		return te
	}
	if envErr != nil {
		// The server took the data without a valid envelope; still a
		// failure, and the transaction is over.
		envErr.fate = keepConn
		return envErr
	}
	if endRp.code != 250 {
		return replyErr("end of DATA", endRp, keepConn)
	}
	return nil
}
