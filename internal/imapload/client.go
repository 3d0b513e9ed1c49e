package imapload

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// TLSMode selects how a connection is secured.
type TLSMode string

const (
	TLSNone     TLSMode = "none"     // plain TCP (the server must allow LOGIN without TLS)
	TLSStartTLS TLSMode = "starttls" // STARTTLS before LOGIN
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (port 993)
)

// ParseTLSMode parses a -tls flag value.
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(strings.ToLower(s)); m {
	case TLSNone, TLSStartTLS, TLSImplicit:
		return m, nil
	}
	return "", fmt.Errorf("tls mode %q: want none, starttls or implicit", s)
}

// DefaultIOTimeout bounds each command's round trip unless the caller sets
// another; big-mailbox commands (SEARCH TEXT over 100,000 messages) can
// legitimately take minutes on a slow server.
const DefaultIOTimeout = 10 * time.Minute

// Dialer opens logged-in connections to one server.
type Dialer struct {
	// Addr is a loopback host:port (checked by the modes with
	// loadgen.ResolveLoopback before any connection is made).
	Addr string
	TLS  TLSMode
	// TLSConfig for STARTTLS and implicit TLS. Default: verification off,
	// since the target is on this machine and usually has a self-signed
	// certificate.
	TLSConfig *tls.Config
	// IOTimeout bounds connecting and every command. Default
	// DefaultIOTimeout.
	IOTimeout time.Duration
}

func (d *Dialer) timeout() time.Duration {
	if d.IOTimeout > 0 {
		return d.IOTimeout
	}
	return DefaultIOTimeout
}

// StatusError is a NO or BAD completion of a command.
type StatusError struct {
	Command string // the command's name, e.g. "APPEND"
	Status  string // "NO" or "BAD"
	Text    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %s %s", e.Command, e.Status, e.Text)
}

// Conn is a minimal IMAP client connection for load generation: commands
// are written as given (the caller quotes arguments), responses are read
// with bounded sizes and handed to a callback. One goroutine at a time.
type Conn struct {
	nc      net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	tag     uint64
	caps    map[string]bool
	timeout time.Duration
}

// Dial connects, secures the connection as configured and reads the
// greeting and capabilities. It does not log in.
func (d *Dialer) Dial(ctx context.Context) (*Conn, error) {
	tctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(tctx, "tcp", d.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	tlsCfg := d.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{InsecureSkipVerify: true} // loopback only, see Dialer.TLSConfig
	}
	if d.TLS == TLSImplicit {
		tc := tls.Client(nc, tlsCfg)
		if err := tc.HandshakeContext(tctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	c := &Conn{nc: nc, r: bufio.NewReaderSize(nc, 16<<10), w: bufio.NewWriterSize(nc, 16<<10), timeout: d.timeout()}
	nc.SetDeadline(time.Now().Add(d.timeout()))
	greeting, err := readResponse(c.r)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("reading greeting: %w", err)
	}
	if greeting.Tag != "*" || greeting.Status() != "OK" {
		nc.Close()
		return nil, fmt.Errorf("%w: greeting %.200q", ErrProtocol, greeting.Text)
	}
	c.setCaps(greeting.Code())
	if d.TLS == TLSStartTLS {
		if _, err := c.Do("STARTTLS", nil); err != nil {
			nc.Close()
			return nil, err
		}
		tc := tls.Client(nc, tlsCfg)
		if err := tc.HandshakeContext(tctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("starttls handshake: %w", err)
		}
		c.nc, c.r, c.w = tc, bufio.NewReaderSize(tc, 16<<10), bufio.NewWriterSize(tc, 16<<10)
		c.caps = nil
	}
	if c.caps == nil {
		if err := c.Capability(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// DialLogin dials and logs in.
func (d *Dialer) DialLogin(ctx context.Context, user, pass string) (*Conn, error) {
	c, err := d.Dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, pass); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) setCaps(code string) {
	f := strings.Fields(code)
	if len(f) == 0 || !strings.EqualFold(f[0], "CAPABILITY") {
		return
	}
	c.caps = map[string]bool{}
	for _, w := range f[1:] {
		c.caps[strings.ToUpper(w)] = true
	}
}

// Capability (re)reads the capability list.
func (c *Conn) Capability() error {
	_, err := c.Do("CAPABILITY", func(r *Response) error {
		if k, _ := r.Kind(); k == "CAPABILITY" {
			c.setCaps(string(r.Text))
		}
		return nil
	})
	return err
}

// Has reports whether the server announced a capability (upper case).
func (c *Conn) Has(capability string) bool { return c.caps[capability] }

// Login sends LOGIN with the credentials as quoted strings.
func (c *Conn) Login(user, pass string) error {
	if strings.ContainsAny(user+pass, "\r\n\x00") {
		return errors.New("login: user name or password contains CR, LF or NUL")
	}
	resp, err := c.Do("LOGIN "+Quote(user)+" "+Quote(pass), nil)
	if err != nil {
		return err
	}
	// Servers may send new capabilities with the completion; otherwise
	// they change after login and must be read again.
	if code := resp.Code(); strings.HasPrefix(strings.ToUpper(code), "CAPABILITY ") {
		c.setCaps(code)
		return nil
	}
	return c.Capability()
}

// Close closes the connection without LOGOUT.
func (c *Conn) Close() error { return c.nc.Close() }

// Logout sends LOGOUT and closes the connection.
func (c *Conn) Logout() error {
	_, err := c.Do("LOGOUT", nil)
	c.nc.Close()
	return err
}

func (c *Conn) nextTag() string {
	c.tag++
	return "L" + strconv.FormatUint(c.tag, 10)
}

// Do sends one command (without tag and line end) and reads responses until
// its completion, handing each untagged response to fn (which may be nil;
// an error from fn is returned after the completion has been read). A NO
// or BAD completion is returned as a *StatusError.
func (c *Conn) Do(cmd string, fn func(*Response) error) (*Response, error) {
	tag := c.nextTag()
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(cmd)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", commandName(cmd), err)
	}
	return c.complete(tag, commandName(cmd), fn)
}

// complete reads responses up to the completion of tag.
func (c *Conn) complete(tag, name string, fn func(*Response) error) (*Response, error) {
	var fnErr error
	for {
		resp, err := readResponse(c.r)
		if err != nil {
			return nil, fmt.Errorf("reading response to %s: %w", name, err)
		}
		switch resp.Tag {
		case tag:
			if st := resp.Status(); st != "OK" {
				return resp, &StatusError{name, st, string(resp.Text[min(len(st)+1, len(resp.Text)):])}
			}
			return resp, fnErr
		case "*":
			if resp.Status() == "BYE" && name != "LOGOUT" {
				return nil, fmt.Errorf("%s: server said BYE %s", name, resp.Text)
			}
			if fn != nil && fnErr == nil {
				fnErr = fn(resp)
			}
		case "+":
			return nil, fmt.Errorf("%w: unexpected continuation request during %s", ErrProtocol, name)
		default:
			return nil, fmt.Errorf("%w: completion with unknown tag %q during %s", ErrProtocol, resp.Tag, name)
		}
	}
}

func commandName(cmd string) string {
	name, rest, _ := strings.Cut(cmd, " ")
	if strings.EqualFold(name, "UID") {
		sub, _, _ := strings.Cut(rest, " ")
		return "UID " + strings.ToUpper(sub)
	}
	return strings.ToUpper(name)
}

// Message is one message to APPEND.
type Message struct {
	Flags []string  // e.g. `\Seen`
	Date  time.Time // zero: the server's current time
	Data  []byte
}

// Append stores msgs in mailbox with one APPEND command: MULTIAPPEND
// (RFC 3502) when more than one message is given, which the server must
// announce. Literals are non-synchronizing when the server offers LITERAL+,
// otherwise each waits for the server's continuation request.
func (c *Conn) Append(mailbox string, msgs ...Message) (*Response, error) {
	if len(msgs) == 0 {
		return nil, errors.New("append: no messages")
	}
	if len(msgs) > 1 && !c.Has("MULTIAPPEND") {
		return nil, errors.New("append: server does not offer MULTIAPPEND")
	}
	tag := c.nextTag()
	nonSync := c.Has("LITERAL+")
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	c.w.WriteString(tag + " APPEND " + Quote(mailbox))
	for _, m := range msgs {
		c.w.WriteByte(' ')
		if len(m.Flags) > 0 {
			c.w.WriteString("(" + strings.Join(m.Flags, " ") + ") ")
		}
		if !m.Date.IsZero() {
			c.w.WriteString(`"` + m.Date.Format("_2-Jan-2006 15:04:05 -0700") + `" `)
		}
		if nonSync {
			fmt.Fprintf(c.w, "{%d+}\r\n", len(m.Data))
		} else {
			fmt.Fprintf(c.w, "{%d}\r\n", len(m.Data))
			if err := c.w.Flush(); err != nil {
				return nil, fmt.Errorf("writing APPEND: %w", err)
			}
			if err := c.awaitContinuation(tag); err != nil {
				return nil, err
			}
		}
		c.w.Write(m.Data)
	}
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("writing APPEND: %w", err)
	}
	return c.complete(tag, "APPEND", nil)
}

// awaitContinuation reads up to the "+" that lets a synchronizing literal
// be sent; a completion instead means the server refused the command.
func (c *Conn) awaitContinuation(tag string) error {
	for {
		resp, err := readResponse(c.r)
		if err != nil {
			return fmt.Errorf("reading continuation: %w", err)
		}
		switch resp.Tag {
		case "+":
			return nil
		case "*":
			continue
		case tag:
			return &StatusError{"APPEND", resp.Status(), string(resp.Text)}
		default:
			return fmt.Errorf("%w: unexpected tag %q during APPEND", ErrProtocol, resp.Tag)
		}
	}
}

// StartIdle sends IDLE and waits for the continuation request. Afterwards
// the caller reads with Next until it calls StopIdle.
func (c *Conn) StartIdle() (tag string, err error) {
	tag = c.nextTag()
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	c.w.WriteString(tag + " IDLE\r\n")
	if err := c.w.Flush(); err != nil {
		return "", fmt.Errorf("writing IDLE: %w", err)
	}
	for {
		resp, err := readResponse(c.r)
		if err != nil {
			return "", fmt.Errorf("reading IDLE response: %w", err)
		}
		switch resp.Tag {
		case "+":
			c.nc.SetDeadline(time.Time{})
			return tag, nil
		case "*":
			continue
		default:
			return "", &StatusError{"IDLE", resp.Status(), string(resp.Text)}
		}
	}
}

// Next reads the next response, with no deadline unless d > 0.
func (c *Conn) Next(d time.Duration) (*Response, error) {
	if d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	return readResponse(c.r)
}

// StopIdle sends DONE. The completion of the IDLE command arrives through
// Next (its Tag is the one StartIdle returned). Safe to call while another
// goroutine is blocked in Next.
func (c *Conn) StopIdle() error {
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	// Written directly, not through c.w, which the reading goroutine does
	// not touch but a concurrent Do would.
	_, err := c.nc.Write([]byte("DONE\r\n"))
	return err
}

// Quote returns s as an IMAP quoted string.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
