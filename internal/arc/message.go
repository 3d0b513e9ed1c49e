package arc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxHeaderBytes bounds the header section read from a message. Messages with
// a larger header are refused (they are not sealed) rather than buffered.
const MaxHeaderBytes = 1 << 20

// field is one header field as it appears in the message.
type field struct {
	name string // as written, without trailing whitespace
	// raw is the whole field ("Name: value", folded lines included) with
	// every line ending normalised to CRLF, including the final one.
	raw []byte
	// value is everything after the colon, folding included, without the
	// final CRLF.
	value string
}

// readHeader reads the header section and leaves br at the first byte of the
// body. Bare LF line endings are accepted (stored messages often have them)
// and treated as CRLF, as an SMTP client would send them.
func readHeader(br *bufio.Reader) ([]field, error) {
	var fields []field
	var cur []byte
	total := 0
	flush := func() error {
		if cur == nil {
			return nil
		}
		i := bytes.IndexByte(cur, ':')
		if i <= 0 {
			return fmt.Errorf("arc: malformed header line %q", truncate(cur))
		}
		name := strings.TrimRight(string(cur[:i]), " \t")
		if !validFieldName(name) {
			return fmt.Errorf("arc: malformed header field name %q", truncate(cur))
		}
		raw := append([]byte(nil), cur...)
		fields = append(fields, field{
			name:  name,
			raw:   raw,
			value: string(raw[i+1 : len(raw)-2]),
		})
		cur = nil
		return nil
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: gather it whole, still within the bound.
			full := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				if total+len(full) > MaxHeaderBytes {
					return nil, errHeaderTooLarge
				}
				line, err = br.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		total += len(line)
		if total > MaxHeaderBytes {
			return nil, errHeaderTooLarge
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("arc: reading header: %w", err)
		}
		eof := err == io.EOF
		content := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(content) == 0 && (len(line) > 0 || eof) {
			// The empty line that ends the header, or the end of a message
			// without a body.
			if err := flush(); err != nil {
				return nil, err
			}
			return fields, nil
		}
		if content[0] == ' ' || content[0] == '\t' {
			if cur == nil {
				return nil, fmt.Errorf("arc: header starts with a continuation line")
			}
		} else if err := flush(); err != nil {
			return nil, err
		}
		cur = append(cur, content...)
		cur = append(cur, '\r', '\n')
		if eof {
			if err := flush(); err != nil {
				return nil, err
			}
			return fields, nil
		}
	}
}

var errHeaderTooLarge = errors.New("arc: header section larger than 1 MiB")

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// validFieldName reports whether s is an RFC 5322 field name: printable
// US-ASCII except colon.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}
