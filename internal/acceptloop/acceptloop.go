// Package acceptloop is the accept loop every protocol server of
// mailstead runs (SMTP, IMAP, ManageSieve): one place that decides which
// accept errors are passing (timeouts, temporary errors such as EMFILE,
// peers the PROXY layer refused) and which end the listener.
package acceptloop

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Run accepts connections from l and hands each to handle, which must
// not block (it starts the connection's goroutine). It returns nil once
// stopped reports true (a deliberate shutdown closed l), or the error that
// ended accepting.
func Run(l net.Listener, stopped func() bool, log *slog.Logger, handle func(net.Conn)) error {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err == nil {
			backoff = 0
			handle(c)
			continue
		}
		if stopped() {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		// go-proxyproto reports a refused (untrusted) peer as an accept
		// error; the listener itself is fine.
		if strings.Contains(err.Error(), "proxyproto") || strings.Contains(err.Error(), "PROXY") {
			log.Debug("proxy accept", "err", err)
			continue
		}
		return err
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
