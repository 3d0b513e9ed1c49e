package smtpserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/message"
)

// maxSubmittedHeader bounds the header of a submitted message, which is
// read into memory before the message is spooled. Real headers are a few
// kilobytes; a header that does not end within this is refused, since its
// From could not be checked.
const maxSubmittedHeader = 256 << 10

var errHeaderTooLarge = errors.New("message header too large")

// readHeaderBlock reads from br up to and including the empty line that
// ends the message header (LF or CRLF), or to the end of a message that
// has no body, or to the first line that is not a header field. Everything read is returned: the caller passes it on in
// front of the rest of br. A header longer than max fails with
// errHeaderTooLarge; read errors are returned wrapped.
func readHeaderBlock(br *bufio.Reader, max int) ([]byte, error) {
	var hdr []byte
	lineStart := true
	for {
		frag, err := br.ReadSlice('\n')
		if len(hdr)+len(frag) > max {
			return nil, errHeaderTooLarge
		}
		blank := lineStart && (len(frag) == 1 && frag[0] == '\n' || len(frag) == 2 && frag[0] == '\r' && frag[1] == '\n')
		hdr = append(hdr, frag...)
		switch {
		case err == bufio.ErrBufferFull:
			lineStart = false
			continue
		case err == io.EOF:
			return hdr, nil
		case err != nil:
			return nil, fmt.Errorf("read message header: %w", err)
		}
		if blank {
			return hdr, nil
		}
		if lineStart && frag[0] != ' ' && frag[0] != '\t' && bytes.IndexByte(frag, ':') < 0 {
			// Not a header field: a message without a header, or a
			// broken one. The header ends here.
			return hdr, nil
		}
		lineStart = true
	}
}

// checkHeader applies the sender policy to the header: every address in
// From and Sender must be the account's own (as MAIL FROM must be). A
// message without From is let through: it claims no identity, and
// refusing it would only break scripts.
func (s *session) checkHeader(hdr []byte) error {
	for _, field := range []string{"From", "Sender"} {
		for _, v := range message.HeaderValues(hdr, field) {
			n := 0
			for _, a := range message.ParseAddressList(v) {
				if a.GroupEnd || a.Host == "" {
					continue // group syntax: only its members count
				}
				n++
				addr, err := address.Parse(a.Mailbox + "@" + a.Host)
				if err != nil || !ownsAddress(*s.account, addr, s.s.cfg.SubaddressDelimiter) {
					shown := a.Mailbox + "@" + a.Host
					s.log.Info("submission refused: header address is not the account's", "field", field, "address", shown)
					return reply(553, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("%s: header address <%s> is not yours (logged in as %s)", field, shown, s.account.Address))
				}
			}
			if n == 0 {
				return reply(553, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("%s: header field has no address", field))
			}
		}
	}
	return nil
}

// addedFields returns the Message-ID and Date fields a submitted message
// lacks (RFC 6409 sections 8.2 and 8.3), to go below our Received field.
func (s *session) addedFields(hdr []byte) []byte {
	var b []byte
	if _, ok := message.HeaderValue(hdr, "Message-ID"); !ok {
		b = fmt.Appendf(b, "Message-ID: <%s.%s@%s>\r\n", newID(), newID(), s.s.cfg.Hostname)
	}
	if _, ok := message.HeaderValue(hdr, "Date"); !ok {
		b = fmt.Appendf(b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	}
	return b
}
