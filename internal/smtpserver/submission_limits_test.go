package smtpserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// submitter logs in on a fresh submission connection.
func submitter(t *testing.T, e *env, user string) *client {
	t.Helper()
	c := dial(t, e.addr)
	c.ehlo()
	c.startTLS()
	c.ehlo()
	c.expect("235", "AUTH PLAIN %s", plainIR("", user, testPassword))
	return c
}

func TestSubmissionSendLimits(t *testing.T) {
	lim := NewSendLimiter(SendLimits{MessagesPerHour: 3, RecipientsPerMessage: 2, RecipientsPerDay: 5})
	e := newEnv(t, envOptions{role: RoleSubmission, config: func(c *Config) { c.SendLimits = lim }})
	msg := "From: alice@example.org\r\nSubject: limits\r\n\r\nx\r\n"
	c := submitter(t, e, "alice@example.org")

	// Recipients per message.
	c.expect("250", "MAIL FROM:<alice@example.org>")
	c.expect("250", "RCPT TO:<bob@example.org>")
	c.expect("250", "RCPT TO:<jörg@example.org>")
	c.expect("452 4.5.3 Too many recipients: at most 2", "RCPT TO:<small@example.org>")
	if r := c.data(msg); r.code != 250 { // message 1, recipients 1-2
		t.Fatal(r)
	}
	// A transaction given up is not counted.
	c.expect("250", "MAIL FROM:<alice@example.org>")
	c.expect("250", "RCPT TO:<bob@example.org>")
	c.expect("250", "RSET")
	// Nor one whose recipients all fail.
	c.expect("250", "MAIL FROM:<alice@example.org>")
	c.expect("550", "RCPT TO:<nobody@example.org>")
	c.expect("250", "RSET")
	c.expect("250", "MAIL FROM:<alice@example.org>") // message 2
	c.expect("250", "RCPT TO:<bob@example.org>")     // 3
	c.expect("250", "RCPT TO:<jörg@example.org>")    // 4
	if r := c.data(msg); r.code != 250 {
		t.Fatal(r)
	}
	// Recipients per day, shared by all connections of the user.
	c2 := submitter(t, e, "alice@example.org")
	c2.expect("250", "MAIL FROM:<alice@example.org>") // message 3
	c2.expect("250", "RCPT TO:<bob@example.org>")     // 5
	c2.expect("450 4.7.1 Sending limit reached: at most 5 recipients per day", "RCPT TO:<jörg@example.org>")
	if r := c2.data(msg); r.code != 250 {
		t.Fatal(r)
	}
	// Messages per hour.
	c.expect("450 4.7.1 Sending limit reached: at most 3 messages per hour", "MAIL FROM:<alice@example.org>")
	// Other users have their own counts.
	c3 := submitter(t, e, "bob@example.org")
	c3.expect("250", "MAIL FROM:<bob@example.org>")
	c3.expect("250", "RCPT TO:<alice@example.org>")
	if got, _ := e.inbox("bob@example.org"); len(got) != 3 {
		t.Errorf("bob has %d messages, want 3", len(got))
	}
}

func TestSubmissionAddsMessageIDAndDate(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission})
	c := submitter(t, e, "alice@example.org")
	for _, msg := range []string{
		"From: alice@example.org\r\nSubject: bare\r\n\r\nbody\r\n",
		"From: alice@example.org\r\nmessage-id: <own@example.org>\r\nSubject: has id\r\n\r\nbody\r\n",
		"From: alice@example.org\r\nDATE: Mon, 2 Jan 2006 15:04:05 -0700\r\nSubject: has date\r\n\r\nbody\r\n",
	} {
		c.expect("250", "MAIL FROM:<alice@example.org>")
		c.expect("250", "RCPT TO:<bob@example.org>")
		if r := c.data(msg); r.code != 250 {
			t.Fatal(r)
		}
	}
	got, _ := e.inbox("bob@example.org")
	if len(got) != 3 {
		t.Fatalf("%d messages", len(got))
	}
	afterReceived := func(m string) string {
		i := strings.Index(m, "\r\n\tby "+testHostname)
		j := strings.Index(m[i:], ";\r\n\t")
		k := strings.Index(m[i+j+4:], "\r\n")
		return m[i+j+4+k+2:]
	}
	idRe := regexp.MustCompile(`^Message-ID: <[0-9A-Z]{13}\.[0-9A-Z]{13}@` + regexp.QuoteMeta(testHostname) + `>\r\n`)
	dateRe := regexp.MustCompile(`Date: ([^\r\n]+)\r\nFrom: alice@example\.org\r\n`)
	rest := afterReceived(got[0])
	if !idRe.MatchString(rest) {
		t.Errorf("no Message-ID added below Received:\n%q", rest)
	}
	m := dateRe.FindStringSubmatch(rest)
	if m == nil {
		t.Fatalf("no Date added:\n%q", rest)
	}
	if d, err := time.Parse(time.RFC1123Z, m[1]); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date %q: %v", m[1], err)
	}
	if rest := afterReceived(got[1]); !strings.HasPrefix(rest, "Date: ") || strings.Count(rest, "Message-ID") != 0 || !strings.Contains(rest, "message-id: <own@example.org>") {
		t.Errorf("message with its own Message-ID:\n%q", rest)
	}
	if rest := afterReceived(got[2]); !idRe.MatchString(rest) || strings.Count(strings.ToLower(rest), "date:") != 1 {
		t.Errorf("message with its own Date:\n%q", rest)
	}
}

func TestSubmissionHeaderFrom(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleSubmission})
	c := submitter(t, e, "alice@example.org")
	for _, tt := range []struct {
		header, want string
	}{
		{"From: Alice <alice@example.org>\r\n", "250"},
		{"From: \"Alice Example\" <ALICE@Example.ORG>\r\n", "250"},
		{"From: =?utf-8?q?Al=C3=AFce?= <alice+news@example.org>\r\n", "250"},
		{"", "250"}, // no From: claims nothing
		{"From: alice@example.org\r\nSender: alice@example.org\r\n", "250"},
		{"From: bob@example.org\r\n", "553 5.7.1 From: header address <bob@example.org> is not yours"},
		{"From: Alice <alice@example.org.evil.example>\r\n", "553 5.7.1"},
		{"From: \"alice@example.org\" <mallory@evil.example>\r\n", "553 5.7.1"},
		{"From: alice@example.org, bob@example.org\r\n", "553 5.7.1"},
		{"From: alice@example.org\r\nFrom: bob@example.org\r\n", "553 5.7.1"},
		{"From: alice@example.org\r\nSender: bob@example.org\r\n", "553 5.7.1 Sender:"},
		{"From: undisclosed:;\r\n", "553 5.7.1 From: header field has no address"},
		{"From: alice\r\n", "553 5.7.1"},
		{"From:\r\n alice@example.org\r\n", "250"}, // folded
	} {
		c.expect("250", "MAIL FROM:<alice@example.org>")
		c.expect("250", "RCPT TO:<bob@example.org>")
		r := c.data(tt.header + "Subject: from check\r\n\r\nbody\r\n")
		if !strings.HasPrefix(r.String(), tt.want) {
			t.Errorf("header %q: got %q, want %q", tt.header, r, tt.want)
		}
	}
	// A header too long to check is refused.
	c.expect("250", "MAIL FROM:<alice@example.org>")
	c.expect("250", "RCPT TO:<bob@example.org>")
	long := strings.Repeat("X-Filler: "+strings.Repeat("y", 1000)+"\r\n", 300)
	if r := c.data(long + "From: bob@example.org\r\n\r\nbody\r\n"); !strings.HasPrefix(r.String(), "552 5.3.4") {
		t.Errorf("huge header: %v", r)
	}
	// The MX role does not care about header From.
	mx := newEnv(t, envOptions{role: RoleMX})
	m := dial(t, mx.addr)
	m.ehlo()
	m.expect("250", "MAIL FROM:<sender@remote.example>")
	m.expect("250", "RCPT TO:<alice@example.org>")
	if r := m.data("From: bob@example.org\r\n\r\nx\r\n"); r.code != 250 {
		t.Errorf("MX: %v", r)
	}
}

func TestReadHeaderBlock(t *testing.T) {
	for _, tt := range []struct {
		name, in, hdr string
		max           int
		err           error
	}{
		{"crlf", "A: b\r\nC: d\r\n\r\nbody\r\n", "A: b\r\nC: d\r\n\r\n", 1000, nil},
		{"lf", "A: b\n\nbody\n", "A: b\n\n", 1000, nil},
		{"no body", "A: b\r\n", "A: b\r\n", 1000, nil},
		{"no newline", "A: b", "A: b", 1000, nil},
		{"empty", "", "", 1000, nil},
		{"empty header", "\r\nbody", "\r\n", 1000, nil},
		{"folded", "A: b\r\n c\r\n\r\nx", "A: b\r\n c\r\n\r\n", 1000, nil},
		{"no header", "hello world\r\nFrom: x\r\n\r\n", "hello world\r\n", 1000, nil},
		{"long line", "A: " + strings.Repeat("z", 9000) + "\r\n\r\nx", "A: " + strings.Repeat("z", 9000) + "\r\n\r\n", 10000, nil},
		{"long line has no blank", "A: " + strings.Repeat("z", 4094) + "\r\n" + "\r\nx", "A: " + strings.Repeat("z", 4094) + "\r\n\r\n", 10000, nil},
		{"too large", "A: " + strings.Repeat("z", 100) + "\r\n\r\n", "", 50, errHeaderTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 4096)
			hdr, err := readHeaderBlock(br, tt.max)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if string(hdr) != tt.hdr {
				t.Fatalf("header %q, want %q", hdr, tt.hdr)
			}
			rest, _ := io.ReadAll(br)
			if string(hdr)+string(rest) != tt.in {
				t.Fatal("bytes lost")
			}
		})
	}
	// Read errors are passed on.
	boom := errors.New("boom")
	if _, err := readHeaderBlock(bufio.NewReader(io.MultiReader(strings.NewReader("A: b\r\n"), errReader{boom})), 1000); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// FuzzReadHeaderBlock: nothing is lost or invented, the header is bounded
// and never continues past an empty line.
func FuzzReadHeaderBlock(f *testing.F) {
	for _, s := range []string{"A: b\r\n\r\nbody", "A: b\n\nx", "x\r\n", "", "\n", " a\r\n\r\n", strings.Repeat("a", 5000) + "\n\n"} {
		f.Add([]byte(s), 200)
	}
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 1 || max > 1<<16 {
			max = 1 << 16
		}
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		hdr, err := readHeaderBlock(br, max)
		if err != nil {
			if !errors.Is(err, errHeaderTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(hdr) > max {
			t.Fatalf("header of %d bytes over max %d", len(hdr), max)
		}
		rest, _ := io.ReadAll(br)
		if !bytes.Equal(append(append([]byte(nil), hdr...), rest...), in) {
			t.Fatal("bytes lost or changed")
		}
		if i := bytes.Index(hdr, []byte("\n\n")); i >= 0 && i+2 != len(hdr) {
			t.Fatalf("header continues past an empty line: %q", hdr)
		}
		if i := bytes.Index(hdr, []byte("\n\r\n")); i >= 0 && i+3 != len(hdr) {
			t.Fatalf("header continues past an empty line: %q", hdr)
		}
	})
}
