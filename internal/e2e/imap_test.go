package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/imapload"
	"github.com/mailstead/mailstead/internal/tlsutil"
)

// certFile is the server's self-signed certificate, which the clients are
// told to trust (no client here runs with verification off).
func (in *Instance) certFile() string {
	return filepath.Join(in.DataDir, "tls", tlsutil.SelfSignedCertFile)
}

// TestIMAPImaplib runs the scripted imaplib session over STARTTLS on the
// imap listener and over implicit TLS on imaps, and cross-checks what the
// client saw (message bytes, RFC822.SIZE) with the store.
func TestIMAPImaplib(t *testing.T) {
	t.Parallel()
	py := Python(t)
	in := New(t, "")
	_, smtpPort, _ := net.SplitHostPort(in.Addr("smtp"))
	for _, tc := range []struct{ mode, listener string }{{"starttls", "imap"}, {"imaps", "imaps"}} {
		t.Run(tc.mode, func(t *testing.T) {
			user := tc.mode + "@example.test"
			in.AddAccount(user, "pw "+tc.mode)
			bodyFile := filepath.Join(t.TempDir(), "body")
			out, err := Run(t, 3*time.Minute, "", py, "testdata/imaplib_session.py", tc.mode,
				"127.0.0.1", in.Port(tc.listener), smtpPort, in.certFile(), user, "pw "+tc.mode, bodyFile)
			if err != nil {
				t.Fatalf("imaplib session: %v\n%s\nserver log:\n%s", err, out, tail(in.Log(), 30))
			}
			var facts struct {
				Size   int64 `json:"size"`
				IdleMS int   `json:"idle_ms"`
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &facts); err != nil {
				t.Fatalf("script output %q: %v", out, err)
			}
			t.Logf("IDLE saw the SMTP delivery %d ms after its 250", facts.IdleMS)

			// The message was moved to Trash; FETCH BODY[] returned exactly
			// the stored bytes and RFC822.SIZE their length.
			ms := listMessages(t, in, user, "Trash")
			if len(ms) != 1 || ms[0].Size != facts.Size {
				t.Fatalf("Trash holds %+v, IMAP reported RFC822.SIZE %d", ms, facts.Size)
			}
			stored := in.MustCLI("", "message", "cat", user, "Trash", strconv.Itoa(int(ms[0].UID)))
			fetched, err := os.ReadFile(bodyFile)
			if err != nil {
				t.Fatal(err)
			}
			if stored != string(fetched) {
				t.Errorf("FETCH BODY[] differs from the stored message:\nfetched %q\nstored  %q", fetched, stored)
			}
			// The appended draft and the IDLE wake-up message are where the
			// session left them.
			if ms := listMessages(t, in, user, "Drafts"); len(ms) != 1 || ms[0].Subject != "draft" {
				t.Errorf("Drafts holds %+v", ms)
			}
			if ms := listMessages(t, in, user, "INBOX"); len(ms) != 1 || ms[0].Subject != "idle wakeup" {
				t.Errorf("INBOX holds %+v", ms)
			}
		})
	}
}

// pdfMessage returns a message with a PDF attachment, as a scanner or an
// invoice mailer sends them, and the attachment's SHA-256.
func pdfMessage(t *testing.T, to, subject string) ([]byte, string) {
	t.Helper()
	pdf := make([]byte, 3000)
	rand.Read(pdf)
	copy(pdf, "%PDF-1.4\n")
	sum := sha256.Sum256(pdf)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: scanner@example.net\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\n", to, subject)
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nScan attached.\r\n--b1\r\n")
	b.WriteString("Content-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(pdf)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	return b.Bytes(), hex.EncodeToString(sum[:])
}

// TestIMAPPaperless runs paperless-ngx's mail consumer sequence against
// INBOX → Processed and checks that it got every attachment intact.
func TestIMAPPaperless(t *testing.T) {
	t.Parallel()
	py := Python(t)
	in := New(t, "")
	const user = "paperless@example.test"
	in.AddAccount(user, "pw")
	var want []string
	for i := range 3 {
		msg, sum := pdfMessage(t, user, fmt.Sprintf("scan %d", i))
		if err := SendMail(in.Addr("smtp"), "scanner@example.net", []string{user}, msg); err != nil {
			t.Fatal(err)
		}
		want = append(want, sum)
	}
	out, err := Run(t, 3*time.Minute, "", py, "testdata/imaplib_paperless.py", "127.0.0.1", in.Port("imaps"), in.certFile(), user, "pw")
	if err != nil {
		t.Fatalf("paperless session: %v\n%s\nserver log:\n%s", err, out, tail(in.Log(), 30))
	}
	var res struct{ Consumed []string }
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	if strings.Join(res.Consumed, ",") != strings.Join(want, ",") {
		t.Errorf("consumed attachments %v, want %v", res.Consumed, want)
	}
	if ms := listMessages(t, in, user, "Processed"); len(ms) != 3 {
		t.Errorf("Processed holds %d messages, want 3", len(ms))
	}
}

// TestIMAPConcurrentSessions: two sessions on one mailbox see each other's
// flag changes and expunges (and never an EXPUNGE during FETCH).
func TestIMAPConcurrentSessions(t *testing.T) {
	t.Parallel()
	py := Python(t)
	in := New(t, "")
	const user = "two@example.test"
	in.AddAccount(user, "pw")
	for i := range 3 {
		msg := fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i+1, i+1)
		if err := SendMail(in.Addr("smtp"), "x@example.net", []string{user}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	_, smtpPort, _ := net.SplitHostPort(in.Addr("smtp"))
	out, err := Run(t, 3*time.Minute, "", py, "testdata/imaplib_concurrent.py", "127.0.0.1", in.Port("imaps"), in.certFile(), user, "pw", smtpPort)
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("concurrent sessions: %v\n%s\nserver log:\n%s", err, out, tail(in.Log(), 30))
	}
}

// TestIMAPCurl fetches a message by UID, lists mailboxes and runs custom
// commands with curl's IMAP support, over STARTTLS and implicit TLS.
func TestIMAPCurl(t *testing.T) {
	t.Parallel()
	curl := Need(t, "curl")
	in := New(t, "")
	const user = "curl@example.test"
	in.AddAccount(user, "pw:with colon")
	msg := []byte("From: a@example.net\r\nSubject: for curl\r\n\r\nline one\r\nline two\r\n")
	if err := SendMail(in.Addr("smtp"), "a@example.net", []string{user}, msg); err != nil {
		t.Fatal(err)
	}
	stored := in.MustCLI("", "message", "cat", user, "INBOX", "1")
	if !strings.HasSuffix(stored, string(msg)) {
		t.Fatalf("stored message %q does not end with what was sent", stored)
	}
	curlRun := func(url string, extra ...string) string {
		t.Helper()
		args := append([]string{"-sS", "--max-time", "20", "--cacert", in.certFile(), "-u", user + ":pw:with colon", url}, extra...)
		out, err := Run(t, 30*time.Second, "", curl, args...)
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(extra, " "), err, out)
		}
		return out
	}
	imap := "imap://127.0.0.1:" + in.Port("imap")
	imaps := "imaps://127.0.0.1:" + in.Port("imaps")

	if got := curlRun(imap+"/INBOX;UID=1", "--ssl-reqd"); got != stored {
		t.Errorf("curl UID=1 over STARTTLS returned\n%q\nwant\n%q", got, stored)
	}
	if got := curlRun(imaps + "/INBOX/;UID=1;SECTION=TEXT"); got != "line one\r\nline two\r\n" {
		t.Errorf("curl SECTION=TEXT returned %q", got)
	}
	list := curlRun(imaps + "/")
	for _, w := range []string{`* LIST (\HasNoChildren) "/" INBOX`, `\Sent) "/" Sent`, `\Trash) "/" Trash`} {
		if !strings.Contains(list, w) {
			t.Errorf("curl LIST output lacks %q:\n%s", w, list)
		}
	}
	exam := curlRun(imaps+"/", "-X", "EXAMINE INBOX")
	for _, w := range []string{"* 1 EXISTS", "[UIDNEXT 2]", "[PERMANENTFLAGS ()]"} {
		if !strings.Contains(exam, w) {
			t.Errorf("curl EXAMINE output lacks %q:\n%s", w, exam)
		}
	}
	// curl's plain UID= fetch is BODY[], which sets \Seen.
	fetch := curlRun(imaps+"/INBOX", "-X", "UID FETCH 1 (FLAGS RFC822.SIZE)")
	if want := fmt.Sprintf("* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE %d)", len(stored)); strings.TrimSpace(fetch) != want {
		t.Errorf("curl UID FETCH returned %q, want %q", fetch, want)
	}
	if got := curlRun(imaps + "/INBOX?UNSEEN"); strings.TrimSpace(got) != "* SEARCH" {
		t.Errorf("curl search UNSEEN returned %q", got)
	}
	// A wrong password fails with curl's login-denied exit status 67.
	out, err := Run(t, 30*time.Second, "", curl, "-sS", "--cacert", in.certFile(), "-u", user+":wrong", imaps+"/INBOX;UID=1")
	if err == nil || !strings.Contains(out, "Login denied") {
		t.Errorf("curl with a wrong password: %v %q", err, out)
	}
}

// TestIMAPNeomutt drives neomutt through a real terminal session: a pty
// with TERM=dumb and commands pushed with -e, no human input. neomutt has
// no non-interactive way to read a mailbox: with stdin not a terminal it
// switches to batch sending ("No recipients specified"), so -f, -z and -Z
// cannot be used without a terminal. It pipes message 1 to a file, copies
// it to Archive over IMAP, and quits.
func TestIMAPNeomutt(t *testing.T) {
	t.Parallel()
	neomutt := Need(t, "neomutt")
	py := Python(t)
	in := New(t, "")
	const user = "mutt@example.test"
	in.AddAccount(user, "mutt pw")
	msg := []byte("From: Bob <bob@example.net>\r\nTo: mutt@example.test\r\nSubject: for neomutt\r\n\r\nHello neomutt.\r\n")
	if err := SendMail(in.Addr("smtp"), "bob@example.net", []string{user}, msg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "piped")
	rc := filepath.Join(dir, "muttrc")
	folder := "imaps://127.0.0.1:" + in.Port("imaps") + "/"
	muttrc := fmt.Sprintf(`set imap_user = "%s"
set imap_pass = "mutt pw"
set ssl_ca_certificates_file = "%s"
set ssl_force_tls = yes
set folder = "%s"
set spoolfile = "+INBOX"
set header_cache = ""
set message_cachedir = ""
set quit = yes
set move = no
set wait_key = no
set confirmappend = no
set mark_old = no
`, user, in.certFile(), folder)
	if err := os.WriteFile(rc, []byte(muttrc), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`<pipe-message>cat > %s<enter><copy-message>=Archive<enter><quit>`, out)
	res, err := Run(t, 3*time.Minute, "", py, "testdata/pty_run.py", "120", // generous: the machine may be busy
		neomutt, "-n", "-F", rc, "-f", folder+"INBOX", "-e", "push '"+script+"'")
	if err != nil {
		t.Fatalf("neomutt: %v\n%s\nserver log:\n%s", err, res, tail(in.Log(), 30))
	}
	piped, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("neomutt did not pipe the message: %v\nterminal output:\n%s", err, res)
	}
	stored := in.MustCLI("", "message", "cat", user, "INBOX", "1")
	// neomutt hands messages to commands with LF line ends.
	if want := strings.ReplaceAll(stored, "\r\n", "\n"); string(piped) != want {
		t.Errorf("neomutt piped\n%q\nwant\n%q", piped, want)
	}
	if ms := listMessages(t, in, user, "Archive"); len(ms) != 1 || ms[0].Subject != "for neomutt" {
		t.Errorf("Archive after neomutt's copy: %+v", ms)
	}
	if got := in.MustCLI("", "message", "cat", user, "Archive", "1"); got != stored {
		t.Errorf("copy in Archive differs:\n%q\nwant\n%q", got, stored)
	}
}

// imapConn logs in to the instance's imaps listener with the load tool's
// client, for setting up and inspecting mailboxes around a real client.
func imapConn(t *testing.T, in *Instance, user, pass string) *imapload.Conn {
	t.Helper()
	d := imapload.Dialer{Addr: in.Addr("imaps"), TLS: imapload.TLSImplicit, IOTimeout: time.Minute}
	c, err := d.DialLogin(context.Background(), user, pass)
	if err != nil {
		t.Fatalf("imap login: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// imapDo runs a command and returns its untagged responses' text.
func imapDo(t *testing.T, c *imapload.Conn, cmd string) []string {
	t.Helper()
	var out []string
	if _, err := c.Do(cmd, func(r *imapload.Response) error {
		out = append(out, string(r.Text))
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}

// searchCount runs a SEARCH command and returns the number of hits.
func searchCount(t *testing.T, c *imapload.Conn, cmd string) int {
	t.Helper()
	n := 0
	if _, err := c.Do(cmd, func(r *imapload.Response) error {
		n += r.Numbers()
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return n
}

// maildir indexes a Maildir folder: Subject → file path.
func maildir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("maildir: %v", err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, sub, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := mail.ReadMessage(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("maildir file %s: %v", p, err)
			}
			subj := m.Header.Get("Subject")
			if _, dup := out[subj]; dup {
				t.Fatalf("maildir %s holds %q twice", dir, subj)
			}
			out[subj] = p
		}
	}
	return out
}

// setMaildirFlags renames a maildir file into cur/ with the given flags
// (letters in ASCII order, as the Maildir spec requires).
func setMaildirFlags(t *testing.T, path, flags string) {
	t.Helper()
	dir := filepath.Dir(filepath.Dir(path))
	base, info, _ := strings.Cut(filepath.Base(path), ":2,")
	letters := []byte(info + flags)
	slices.Sort(letters)
	letters = slices.Compact(letters)
	if err := os.Rename(path, filepath.Join(dir, "cur", base+":2,"+string(letters))); err != nil {
		t.Fatal(err)
	}
}

// TestIMAPMbsync: a full mbsync sync of 1,000 messages down to a Maildir,
// then changes on both sides (new messages, flags, deletions) synced both
// ways.
func TestIMAPMbsync(t *testing.T) {
	t.Parallel()
	mbsync := Need(t, "mbsync")
	in := New(t, "")
	const user, pass = "sync@example.test", "sync pw"
	in.AddAccount(user, pass)
	c := imapConn(t, in, user, pass)
	imapDo(t, c, `CREATE "Lists/go"`)
	start := time.Now()
	batch := make([]imapload.Message, 0, 100)
	for i := range 1000 {
		msg := fmt.Sprintf("From: list@example.net\r\nTo: %s\r\nSubject: mbsync %04d\r\nMessage-ID: <mbsync.%d@example.net>\r\n\r\nmessage %d\r\n%s\r\n",
			user, i, i, i, strings.Repeat("some text ", i%50))
		m := imapload.Message{Data: []byte(msg)}
		if i%3 == 0 {
			m.Flags = []string{`\Seen`}
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) {
			if _, err := c.Append("INBOX", batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i := range 3 {
		if _, err := c.Append("Lists/go", imapload.Message{Data: fmt.Appendf(nil, "Subject: list %d\r\n\r\nlist body\r\n", i)}); err != nil {
			t.Fatal(err)
		}
	}

	t.Logf("1,003 messages appended in %s", time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	local := filepath.Join(dir, "mail")
	rc := filepath.Join(dir, "mbsyncrc")
	if err := os.Mkdir(local, 0o700); err != nil {
		t.Fatal(err)
	}
	// FSync no: mbsync would otherwise fsync each of the 1,000 local
	// files, which measures the test machine's disk, not the server.
	conf := fmt.Sprintf(`FSync no

IMAPAccount remote
Host 127.0.0.1
Port %s
User %s
Pass "%s"
SSLType IMAPS
SystemCertificates no
CertificateFile %s

IMAPStore remote
Account remote

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
Sync All
SyncState *
`, in.Port("imaps"), user, pass, in.certFile(), local, local)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sync := func(what string) {
		t.Helper()
		start := time.Now()
		out, err := Run(t, 2*time.Minute, "", mbsync, "-a", "-c", rc)
		if err != nil {
			t.Fatalf("mbsync (%s): %v\n%s\nserver log:\n%s", what, err, out, tail(in.Log(), 30))
		}
		t.Logf("mbsync (%s) took %s", what, time.Since(start).Round(time.Millisecond))
	}
	sync("initial")

	inbox := maildir(t, filepath.Join(local, "INBOX"))
	if len(inbox) != 1000 {
		t.Fatalf("local INBOX has %d messages, want 1000", len(inbox))
	}
	if l := maildir(t, filepath.Join(local, "Lists", "go")); len(l) != 3 {
		t.Errorf("local Lists/go has %d messages, want 3", len(l))
	}
	for _, name := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if _, err := os.Stat(filepath.Join(local, name, "cur")); err != nil {
			t.Errorf("folder %s not created locally: %v", name, err)
		}
	}
	// Content and flags came down intact (mbsync stores LF line ends).
	got, _ := os.ReadFile(inbox["mbsync 0042"])
	got = regexp.MustCompile(`(?m)^X-TUID: .*\n`).ReplaceAll(got, nil) // mbsync's own tracking header
	stored := in.MustCLI("", "message", "cat", user, "INBOX", "43")
	if string(got) != strings.ReplaceAll(stored, "\r\n", "\n") {
		t.Errorf("local copy of message 43:\n%q\nserver:\n%q", got, stored)
	}
	if !strings.HasSuffix(inbox["mbsync 0003"], "S") || strings.Contains(filepath.Base(inbox["mbsync 0004"]), ":2,S") {
		t.Errorf("\\Seen not mapped: %s, %s", inbox["mbsync 0003"], inbox["mbsync 0004"])
	}

	// Local changes: 10 new messages (2 already seen), 5 flagged, 5 deleted,
	// 3 marked trashed (expunged by Expunge Both).
	for i := range 10 {
		sub, info := "new", ""
		if i < 2 {
			sub, info = "cur", ":2,S"
		}
		name := fmt.Sprintf("%d.M%dP%d.e2e-host%s", time.Now().Unix(), i, os.Getpid(), info)
		msg := fmt.Sprintf("From: me@example.test\nTo: someone@example.net\nSubject: local new %d\nMessage-ID: <local.%d@example.test>\n\nwritten offline %d\n", i, i, i)
		if err := os.WriteFile(filepath.Join(local, "INBOX", sub, name), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := 100; i < 105; i++ {
		setMaildirFlags(t, inbox[fmt.Sprintf("mbsync %04d", i)], "F")
	}
	for i := 200; i < 205; i++ {
		if err := os.Remove(inbox[fmt.Sprintf("mbsync %04d", i)]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 300; i < 303; i++ {
		setMaildirFlags(t, inbox[fmt.Sprintf("mbsync %04d", i)], "T")
	}
	// Server changes at the same time: a flag and a new message over SMTP.
	imapDo(t, c, "SELECT INBOX")
	imapDo(t, c, `UID STORE 501 +FLAGS (\Answered)`)
	if err := SendMail(in.Addr("smtp"), "x@example.net", []string{user}, []byte("Subject: arrived meanwhile\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	imapDo(t, c, "UNSELECT")
	sync("both ways")

	imapDo(t, c, "SELECT INBOX")
	checks := []struct {
		search string
		want   int
	}{
		{"SEARCH ALL", 1000 + 10 - 5 - 3 + 1},
		{`SEARCH SUBJECT "local new"`, 10},
		{`SEARCH SUBJECT "local new" SEEN`, 2},
		{"SEARCH FLAGGED", 5},
		{`SEARCH SUBJECT "mbsync 020"`, 5}, // 0200..0204 deleted, 0205..0209 left
		{`SEARCH SUBJECT "mbsync 030"`, 7}, // 0300..0302 trashed and expunged, 0303..0309 left
		{`SEARCH SUBJECT "mbsync 010" FLAGGED`, 5},
		{"SEARCH DELETED", 0},
	}
	for _, ck := range checks {
		if got := searchCount(t, c, ck.search); got != ck.want {
			t.Errorf("after sync, %s found %d, want %d", ck.search, got, ck.want)
		}
	}
	body := imapDo(t, c, `UID SEARCH HEADER Message-ID "<local.7@example.test>"`)
	if len(body) != 1 || strings.TrimSpace(strings.TrimPrefix(body[0], "SEARCH")) == "" {
		t.Errorf("uploaded message not found by Message-ID: %q", body)
	}
	inbox = maildir(t, filepath.Join(local, "INBOX"))
	if len(inbox) != 1003 {
		t.Errorf("local INBOX has %d messages after the second sync, want 1003", len(inbox))
	}
	if p := inbox["mbsync 0500"]; !strings.Contains(filepath.Base(p), ":2,") || !strings.Contains(p[strings.LastIndex(p, ":2,"):], "R") {
		t.Errorf("server-side \\Answered not synced down: %s", p)
	}
	if _, ok := inbox["arrived meanwhile"]; !ok {
		t.Error("message delivered over SMTP meanwhile was not synced down")
	}
	// A third run has nothing to do and changes nothing.
	sync("no-op")
	if n := len(maildir(t, filepath.Join(local, "INBOX"))); n != 1003 {
		t.Errorf("local INBOX has %d messages after a no-op sync", n)
	}
	if got := searchCount(t, c, "SEARCH ALL"); got != 1003 {
		t.Errorf("server INBOX has %d messages after a no-op sync", got)
	}
}

// TestIMAPBenchTool runs the IMAP benchmark's three modes, scaled down,
// against the real binary: the tool's counts must match what its corpus
// generator put in, and IDLE sessions must see SMTP deliveries.
func TestIMAPBenchTool(t *testing.T) {
	t.Parallel()
	in := New(t, "")
	ctx := context.Background()
	// Accounts with an imported SHA512-CRYPT hash: argon2id (the default
	// for new passwords) costs 19 MiB and tens of milliseconds per login,
	// which would dominate this small run's time.
	const hash = "{SHA512-CRYPT}$6$imaploadtest$jkHUgdIG144TaUGJ2BUlZ9QDGlacGPH7HTmOgnLYMjVPXYhlkhrAfhL8UqyHzKOz3Er6KHJiu37totYi/hz/G0" // "load pw"
	for i := range 2 {
		in.MustCLI("", "account", "add", fmt.Sprintf("load%d@example.test", i), "--create-domain", "--hash", hash)
	}
	d := imapload.Dialer{Addr: in.Addr("imaps"), TLS: imapload.TLSImplicit, IOTimeout: time.Minute}
	accts := imapload.Accounts{Format: "load%d@example.test", Pass: "load pw"}

	big, err := imapload.Big(ctx, imapload.BigConfig{
		Dialer: d, User: "load0@example.test", Pass: "load pw", Messages: 300, Repeat: 1, PID: in.PID(),
		Corpus: imapload.Corpus{Seed: 5, To: "load0@example.test"},
	})
	if err != nil {
		t.Fatalf("big: %v", err)
	}
	t.Log(big)
	for _, op := range big.Ops {
		want := map[string]int{"SELECT": 300, "UID FETCH 1:* (FLAGS)": 300, "UID SEARCH UNSEEN": big.WantUnseen,
			"SEARCH TEXT " + imapload.DefaultWord: big.WantWord, "FETCH 1:100 BODY.PEEK[]": 100}[op.Op]
		if op.Count != want {
			t.Errorf("%s: %d, want %d", op.Op, op.Count, want)
		}
	}
	if big.MemAfter.RSS <= 0 || big.MemAfter.Procs != 1 {
		t.Errorf("server memory %+v %s", big.MemAfter, big.MemError)
	}

	mixed, err := imapload.Mixed(ctx, imapload.MixedConfig{
		Dialer: d, Accounts: accts, Clients: 2, Messages: 100, Duration: time.Second, PID: in.PID(),
	})
	if err != nil || mixed.Errors != 0 || mixed.Loops == 0 {
		t.Fatalf("mixed: %v\n%s", err, mixed)
	}
	t.Log(mixed)

	idle, err := imapload.Idle(ctx, imapload.IdleConfig{
		Dialer: d, Accounts: accts, NumAccounts: 2, Sessions: 10, Deliveries: 4,
		Deliver: imapload.Deliverer{Addr: in.Addr("smtp")}, Settle: 100 * time.Millisecond, PID: in.PID(),
		Wait: time.Minute, // generous: a delivery counts as missed after this
	})
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	t.Log(idle)
	if idle.Sessions != 10 || idle.Deliveries != 4 || idle.Missed != 0 || idle.DeliverErrors != 0 || idle.UnexpectedDisconnects != 0 {
		t.Errorf("idle: %+v", idle)
	}
	// Every delivery reached every session (Missed is 0 above); how fast
	// depends on the machine, so the latency is logged, not asserted.
	if idle.All.Count != 4 {
		t.Errorf("%d deliveries seen by all sessions, want 4", idle.All.Count)
	}
	t.Logf("IDLE sessions saw deliveries after %s (max)", idle.All.Max)
}
