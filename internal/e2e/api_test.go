package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTPMailAPI posts raw messages with curl to POST /v1/email on an
// "http" listener of the real binary.
func TestHTTPMailAPI(t *testing.T) {
	curl := Need(t, "curl")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("api-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := New(t, DefaultConfig+`
[[listener]]
name = "api"
protocol = "http"
address = "127.0.0.1:0"

[api]
token_file = "`+tokenFile+`"
`)
	in.AddAccount("docs@example.test", "pw")
	msgFile := filepath.Join(dir, "msg.eml")
	os.WriteFile(msgFile, []byte("From: scanner@example.net\r\nTo: docs@example.test\r\nSubject: scanned invoice\r\n\r\nPDF would be here.\r\n"), 0o600)
	post := func(token, query string) string {
		t.Helper()
		args := []string{"-sS", "-w", "\n%{http_code}", "-X", "POST", "-H", "Content-Type: message/rfc822", "--data-binary", "@" + msgFile}
		if token != "" {
			args = append(args, "-H", "Authorization: Bearer "+token)
		}
		out, err := Run(t, 30*time.Second, "", curl, append(args, "http://"+in.Addr("api")+"/v1/email"+query)...)
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		return out
	}
	if out := post("api-secret", ""); !strings.HasSuffix(out, "\n202") || !strings.Contains(out, `"accepted":["docs@example.test"]`) {
		t.Fatalf("good token: %s", out)
	}
	if out := post("wrong", ""); !strings.HasSuffix(out, "\n401") {
		t.Fatalf("wrong token: %s", out)
	}
	if out := post("api-secret", "?rcpt=nobody@example.test"); !strings.HasSuffix(out, "\n422") {
		t.Fatalf("unknown rcpt: %s", out)
	}
	ms := listMessages(t, in, "docs@example.test", "INBOX")
	if len(ms) != 1 || ms[0].Subject != "scanned invoice" {
		t.Fatalf("stored: %+v", ms)
	}
}
