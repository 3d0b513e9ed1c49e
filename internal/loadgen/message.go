package loadgen

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// corpusText is the source of the body padding. Plain English prose rather
// than random bytes or a repeated character, so that servers that parse,
// index or compress message text do roughly the work they would do for real
// mail.
const corpusText = `The quarterly planning meeting has been moved to Thursday afternoon so that
the team in the other office can join without staying late. Please bring the
figures for the last three months and a short list of the risks you see for
the next release. We will keep the agenda short: first the status of the
migration, then the hiring plan, then any other business that comes up.
If you cannot attend, send your notes to the list before Wednesday evening
and someone will read them out. The minutes of the previous meeting are
attached below for reference; corrections are welcome as replies to this
message. Thanks to everyone who helped with the move to the new servers last
week, which went more smoothly than any of us expected. The backup jobs now
finish before midnight and the monitoring dashboards show far fewer alerts.
There is still some work to do on the mail relay, which occasionally queues
messages for longer than it should when a remote site is slow to answer.
We also need volunteers for the on-call rotation in the holiday period, so
please reply if you can take a week in December or early January.
Finally, a reminder that the office will be closed on Monday for the
building inspection; remote access will work as usual during that day.`

// corpusLines is corpusText split into lines. Every line is between 40 and
// 78 characters long and none starts with '.', so the generated body never
// needs dot-stuffing and a line can always be shortened by one character.
var corpusLines = strings.Split(corpusText, "\n")

// maxLineLen is the longest body line generated (RFC 5322 section 2.1.1
// recommends at most 78 characters before the CRLF).
const maxLineLen = 78

// message is a generated message ready for the wire.
type message struct {
	seq  int
	to   string
	data []byte // CRLF line endings, no line starting with '.'
}

// builder produces the test messages of one run. It is used by one worker
// at a time; each worker has its own, so that the buffer can be reused.
type builder struct {
	runID  string
	from   string
	to     []string
	size   int
	digits int // width of the zero-padded sequence number
	total  int
	buf    bytes.Buffer
}

func newBuilder(runID, from string, to []string, size, total int) *builder {
	return &builder{
		runID:  runID,
		from:   from,
		to:     to,
		size:   size,
		digits: len(fmt.Sprint(total)),
		total:  total,
	}
}

// MessageID returns the Message-ID (without angle brackets) that message seq
// of run runID carries, so that callers can check what a server stored.
func MessageID(runID string, seq int) string {
	return fmt.Sprintf("%d.%s@mailstead-bench.invalid", seq, runID)
}

// build returns message seq (1-based). The result is only valid until the
// next call, as its data aliases the builder's buffer.
//
// The message is exactly b.size bytes long when b.size is at least the
// header length plus 2; otherwise it is the header followed by an empty
// body.
func (b *builder) build(seq int, now time.Time) message {
	to := b.to[(seq-1)%len(b.to)]
	b.buf.Reset()
	fmt.Fprintf(&b.buf, "From: <%s>\r\n", b.from)
	fmt.Fprintf(&b.buf, "To: <%s>\r\n", to)
	fmt.Fprintf(&b.buf, "Subject: mailstead-bench %s %0*d/%d\r\n", b.runID, b.digits, seq, b.total)
	fmt.Fprintf(&b.buf, "Message-ID: <%s>\r\n", MessageID(b.runID, seq))
	// Fixed-width date format so that header length does not vary with the
	// day of the month.
	fmt.Fprintf(&b.buf, "Date: %s\r\n", now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	b.buf.WriteString("MIME-Version: 1.0\r\n")
	b.buf.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	b.buf.WriteString("\r\n")
	if n := b.size - b.buf.Len(); n >= 2 {
		writeBody(&b.buf, n, seq)
	}
	return message{seq: seq, to: to, data: b.buf.Bytes()}
}

// writeBody appends exactly n (>= 2) bytes of CRLF-terminated text lines to
// buf. The starting line depends on seq so that consecutive messages differ.
func writeBody(buf *bytes.Buffer, n, seq int) {
	i := seq % len(corpusLines)
	// Each iteration consumes at least 2 bytes, so at most n/2 iterations.
	for r := n; r > 0; i++ {
		line := corpusLines[i%len(corpusLines)]
		switch {
		case len(line)+2 > r:
			// Last line: shorten it to fit exactly.
			line = line[:r-2]
		case r-(len(line)+2) == 1:
			// A single byte cannot form a line; shorten this one instead.
			line = line[:len(line)-1]
		}
		buf.WriteString(line)
		buf.WriteString("\r\n")
		r -= len(line) + 2
	}
}
