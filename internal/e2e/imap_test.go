package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	py := Python(t)
	in := New(t, "")
	_, smtpPort, _ := net.SplitHostPort(in.Addr("smtp"))
	for _, tc := range []struct{ mode, listener string }{{"starttls", "imap"}, {"imaps", "imaps"}} {
		t.Run(tc.mode, func(t *testing.T) {
			user := tc.mode + "@example.test"
			in.AddAccount(user, "pw "+tc.mode)
			bodyFile := filepath.Join(t.TempDir(), "body")
			out, err := Run(t, time.Minute, "", py, "testdata/imaplib_session.py", tc.mode,
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
			t.Logf("IDLE saw the SMTP delivery after %d ms", facts.IdleMS)

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
	out, err := Run(t, time.Minute, "", py, "testdata/imaplib_paperless.py", "127.0.0.1", in.Port("imaps"), in.certFile(), user, "pw")
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
	out, err := Run(t, time.Minute, "", py, "testdata/imaplib_concurrent.py", "127.0.0.1", in.Port("imaps"), in.certFile(), user, "pw", smtpPort)
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("concurrent sessions: %v\n%s\nserver log:\n%s", err, out, tail(in.Log(), 30))
	}
}

// TestIMAPCurl fetches a message by UID, lists mailboxes and runs custom
// commands with curl's IMAP support, over STARTTLS and implicit TLS.
func TestIMAPCurl(t *testing.T) {
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
	res, err := Run(t, time.Minute, "", py, "testdata/pty_run.py", "30",
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
