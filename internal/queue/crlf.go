package queue

import (
	"bufio"
	"io"
)

// CRLFReader turns bare LF line endings into CRLF, as SMTP requires (RFC
// 5321 2.3.8): messages submitted by programs often have Unix line
// endings, and a relay that passes them on unchanged gets them rejected
// or mangled downstream. CRLF pairs and bare CRs are left alone.
type CRLFReader struct {
	r      *bufio.Reader
	prevCR bool
	// pendingLF is an LF still to emit after the CR inserted before it.
	pendingLF bool
}

// NewCRLFReader returns a CRLFReader reading from r.
func NewCRLFReader(r io.Reader) *CRLFReader {
	return &CRLFReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// Read implements io.Reader.
func (c *CRLFReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.pendingLF {
			p[n] = '\n'
			n++
			c.pendingLF = false
			c.prevCR = false
			continue
		}
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if b == '\n' && !c.prevCR {
			p[n] = '\r'
			n++
			c.pendingLF = true
			continue
		}
		p[n] = b
		n++
		c.prevCR = b == '\r'
		if c.r.Buffered() == 0 && n > 0 {
			// Do not block on the source with data in hand.
			return n, nil
		}
	}
	return n, nil
}
