package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits on server replies. The server under test is trusted more than a
// random peer, but a broken one must not make the tool hang or grow without
// bound.
const (
	maxReplyLine  = 2048 // bytes per reply line, including CRLF
	maxReplyLines = 64   // lines per multi-line reply (EHLO has ~10)
)

// errProtocol marks a malformed reply. It is reported under the "protocol"
// error key.
var errProtocol = errors.New("smtp protocol error")

// reply is one (possibly multi-line) SMTP reply.
type reply struct {
	code  int
	lines []string // text after the code and separator, one per line
}

func (r reply) String() string {
	if len(r.lines) == 0 {
		return fmt.Sprint(r.code)
	}
	return fmt.Sprintf("%d %s", r.code, r.lines[0])
}

// readReply reads one SMTP reply (RFC 5321 section 4.2). The bufio.Reader
// must have a buffer of at least maxReplyLine bytes; longer lines are an
// error rather than being accumulated.
func readReply(br *bufio.Reader) (reply, error) {
	var rp reply
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			return reply{}, fmt.Errorf("%w: reply has more than %d lines", errProtocol, maxReplyLines)
		}
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxReplyLine {
				return reply{}, fmt.Errorf("%w: reply line longer than %d bytes", errProtocol, maxReplyLine)
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return reply{}, fmt.Errorf("reading reply: %w", err)
		}
		if len(line) > maxReplyLine {
			return reply{}, fmt.Errorf("%w: reply line longer than %d bytes", errProtocol, maxReplyLine)
		}
		line = bytes.TrimRight(line, "\r\n")
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return reply{}, err
		}
		if n == 0 {
			rp.code = code
		} else if code != rp.code {
			return reply{}, fmt.Errorf("%w: multi-line reply changes code from %d to %d", errProtocol, rp.code, code)
		}
		rp.lines = append(rp.lines, string(text))
		if !more {
			return rp, nil
		}
	}
}

// parseReplyLine splits "250-text" or "250 text" or "250".
func parseReplyLine(line []byte) (code int, more bool, text []byte, err error) {
	if len(line) < 3 {
		return 0, false, nil, fmt.Errorf("%w: short reply line %q", errProtocol, line)
	}
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false, nil, fmt.Errorf("%w: reply line without code %q", errProtocol, line)
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 {
		return 0, false, nil, fmt.Errorf("%w: reply code %d out of range", errProtocol, code)
	}
	if len(line) == 3 {
		return code, false, nil, nil
	}
	switch line[3] {
	case ' ':
		return code, false, line[4:], nil
	case '-':
		return code, true, line[4:], nil
	}
	return 0, false, nil, fmt.Errorf("%w: bad separator in reply line %q", errProtocol, line)
}
