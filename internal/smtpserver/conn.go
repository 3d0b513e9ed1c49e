package smtpserver

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"
)

// trackedConn is the connection go-smtp talks to (under TLS: the one the
// tls.Conn wraps). It holds the per-connection state of our limits,
// releases the connection's limiter slots once when it closes, and, while
// the session is in cleartext, watches the replies go-smtp writes:
//
// go-smtp counts only unknown commands as errors, closes after the fourth
// with a fixed "500 5.5.1 Too many errors", and gives us no hook for
// replies it writes itself (bad syntax, bad sequence). Watching the reply
// stream counts every 4xx/5xx reply, ours and go-smtp's alike; the reply
// that goes over max_errors_per_session is replaced by "421 4.7.0" and the
// connection is closed, and go-smtp's own "Too many errors" line is
// rewritten the same way. After STARTTLS the bytes here are encrypted, so
// the session counts the errors it returns itself (see session.fail) and
// asks for the close with closeAfterWrite; go-smtp's own replies are then
// not counted, and its four-unknown-commands rule still applies.
type trackedConn struct {
	net.Conn
	ip     netip.Addr // client address (from the PROXY header when there is one)
	local  bool       // PROXY LOCAL: the proxy's own health check
	exempt bool       // in exempt_networks (or local): no abuse limits

	once    sync.Once
	onClose func()

	host      string
	maxErrors int
	errors    atomic.Int32
	messages  atomic.Int32
	// closeAfterWrite makes the next Write the last: the session returned
	// a 421 reply and go-smtp is about to write it.
	closeAfterWrite atomic.Bool
	tooManyErrors   atomic.Bool // closed for max_errors_per_session
	// uncounted: the next error reply is not an error of the client's
	// (a greylisting 451) and does not count towards the limit.
	uncounted atomic.Bool

	// blind: after "220 Ready to start TLS", or with implicit TLS, the
	// bytes written are encrypted and the session counts errors instead.
	// (After a failed STARTTLS handshake go-smtp goes on in cleartext;
	// the session keeps counting then.)
	blind atomic.Bool

	wmu     sync.Mutex
	replies int // final reply lines written
	head    [4]byte
	hn      int
}

// Close releases the connection's slots before closing the socket, so a
// client that sees the close can reconnect at once.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	return c.Conn.Close()
}

func (c *trackedConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.blind.Load() {
		n, err := c.Conn.Write(b)
		if c.closeAfterWrite.Load() {
			c.Close()
		}
		return n, err
	}
	lineStart := 0
	for i, ch := range b {
		if c.hn < len(c.head) {
			c.head[c.hn] = ch
			c.hn++
		}
		if ch != '\n' {
			continue
		}
		replace := c.reply(b[lineStart : i+1])
		c.hn = 0
		if replace {
			// Send what came before this line, then our 421 instead of it.
			out := append(append([]byte(nil), b[:lineStart]...), c.tooManyLine()...)
			_, err := c.Conn.Write(out)
			c.Close()
			if err != nil {
				return 0, err
			}
			return len(b), nil
		}
		lineStart = i + 1
		if c.blind.Load() {
			// "220 Ready to start TLS": what follows is the handshake.
			n, err := c.Conn.Write(b)
			return n, err
		}
	}
	n, err := c.Conn.Write(b)
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

var goSMTPTooMany = []byte("500 5.5.1 Too many errors")

// reply looks at one complete reply line (head holds its first bytes) and
// reports whether it must be replaced by our 421.
func (c *trackedConn) reply(line []byte) bool {
	h := c.head[:c.hn]
	if len(h) < 4 || !isDigit(h[0]) || !isDigit(h[1]) || !isDigit(h[2]) || h[3] == '-' {
		return false // not a final reply line
	}
	c.replies++
	code := int(h[0]-'0')*100 + int(h[1]-'0')*10 + int(h[2]-'0')
	if code == 220 && c.replies > 1 {
		c.blind.Store(true)
		return false
	}
	if code < 400 {
		return false
	}
	if c.uncounted.CompareAndSwap(true, false) {
		return false
	}
	if bytes.HasPrefix(line, goSMTPTooMany) {
		c.tooManyErrors.Store(true)
		return true
	}
	n := c.errors.Add(1)
	if c.maxErrors > 0 && int(n) > c.maxErrors {
		c.tooManyErrors.Store(true)
		return true
	}
	return false
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func (c *trackedConn) tooManyLine() []byte {
	return []byte("421 4.7.0 " + c.host + " Too many errors in this session, closing connection\r\n")
}

// errTooManyErrors is the session's reply when it counts the error that
// goes over the limit itself (TLS sessions).
var errTooManyErrors = reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many errors in this session, closing connection")

// stateOf finds our connection under go-smtp's (possibly TLS) one.
func stateOf(c *smtp.Conn) *trackedConn {
	nc := c.Conn()
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, _ := nc.(*trackedConn)
	return tc
}
