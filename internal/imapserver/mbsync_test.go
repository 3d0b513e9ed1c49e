package imapserver

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// mbsync (isync) is a real client that uses COMPRESS=DEFLATE when the
// server offers it. It syncs the mailboxes to a Maildir, changes flags
// and syncs back.
func TestMbsync(t *testing.T) {
	bin, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync not installed")
	}
	e := newTestEnv(t, nil)
	for i := 0; i < 5; i++ {
		e.deliver("INBOX", msgMultipart)
	}
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(e.addr)
	conf := filepath.Join(dir, "mbsyncrc")
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(conf, []byte(`IMAPAccount test
Host `+host+`
Port `+port+`
User joe@example.org
Pass "`+testPass+`"
SSLType None
Timeout 5
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path `+dir+`/mail/
Inbox `+dir+`/mail/INBOX
SubFolders Verbatim

Channel ch
Far :remote:
Near :local:
Patterns INBOX Archive
Create Near
Sync All
SyncState *
`), 0o600)
	run := func() string {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-c", conf, "-V", "-Dn", "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run()
	if !strings.Contains(out, ">>> 2 COMPRESS DEFLATE") {
		t.Fatalf("mbsync did not use COMPRESS:\n%s", out)
	}
	inbox := filepath.Join(dir, "mail", "INBOX")
	files, _ := filepath.Glob(filepath.Join(inbox, "*", "*"))
	if len(files) != 5 {
		t.Fatalf("synced %d messages, want 5:\n%s", len(files), out)
	}
	// Mark one message seen and another deleted in the Maildir; the
	// next sync stores the flags over the compressed connection.
	for i, f := range files[:2] {
		flag := "S"
		if i == 1 {
			flag = "T"
		}
		base := filepath.Base(f)
		if j := strings.Index(base, ":2,"); j >= 0 {
			base = base[:j]
		}
		if err := os.Rename(f, filepath.Join(inbox, "cur", base+":2,"+flag)); err != nil {
			t.Fatal(err)
		}
	}
	e.deliver("INBOX", msgSimple)
	out = run()
	ctx := context.Background()
	mb, _ := e.st.GetMailbox(ctx, e.acct.ID, "INBOX")
	msgs, err := e.st.ListMessages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var seen, deleted int
	for _, m := range msgs {
		if m.Flags&store.FlagSeen != 0 {
			seen++
		}
		if m.Flags&store.FlagDeleted != 0 {
			deleted++
		}
	}
	if seen != 1 || deleted != 1 {
		t.Fatalf("after the second sync: %d seen, %d deleted, want 1 and 1:\n%s", seen, deleted, out)
	}
	files, _ = filepath.Glob(filepath.Join(inbox, "*", "*"))
	if len(files) != 6 {
		t.Fatalf("second sync: %d messages in the Maildir, want 6:\n%s", len(files), out)
	}
}
