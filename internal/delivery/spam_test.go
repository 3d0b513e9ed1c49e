package delivery

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailstead/mailstead/internal/mailauth"
)

// spamFields is what package spam's Verdict.Headers returns for a junk
// verdict (the shape matters here, not the numbers).
const spamFields = "X-Spam-Score: 7.50\r\n" +
	"X-Spam-Status: Yes, score=7.50 required=5.00\r\n\ttests=DNSBL_BL_EXAMPLE,HELO_BARE_IP\r\n" +
	"X-Spam-Flag: YES\r\n"

// forgedSpam claims a clean verdict in fields the sender must not set.
const forgedSpam = "From: Sender <someone@sender.test>\r\n" +
	"X-Spam-Flag: NO\r\n" +
	"X-Spam-Status: No, score=-100\r\n" +
	"X-Rspamd-Action: no action\r\n" +
	"Subject: cheap\r\n" +
	"\r\n" +
	"X-Spam-Flag: body text stays\r\n"

const forgedSpamCleaned = "From: Sender <someone@sender.test>\r\n" +
	"Subject: cheap\r\n" +
	"\r\n" +
	"X-Spam-Flag: body text stays\r\n"

// TestDeliverSpamVerdict: the spam verdict in the envelope places every
// local copy (Junk with $Junk, or INBOX) and adds the X-Spam fields after
// Authentication-Results, which carries the methods package spam added;
// forged X-Spam/X-Rspamd fields are gone.
func TestDeliverSpamVerdict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers string
		junk    bool
		rcpts   []string
		want    map[string]string // account -> mailbox
		counter string
	}{
		{name: "junk", headers: spamFields, junk: true, rcpts: []string{"bob@example.org", "alice.smith@example.org"},
			want: map[string]string{"bob@example.org": "Junk", "Alice.Smith@example.org": "Junk"}, counter: "junk"},
		{name: "junk reaches postmaster in Junk too", headers: spamFields, junk: true, rcpts: []string{"postmaster@pm.example"},
			want: map[string]string{"boss@pm.example": "Junk"}, counter: "junk"},
		{name: "scored, not junk", headers: "X-Spam-Score: 1.00\r\nX-Spam-Status: No, score=1.00 required=5.00 tests=none\r\n", rcpts: []string{"bob@example.org"},
			want: map[string]string{"bob@example.org": "INBOX"}, counter: "delivered"},
		{name: "not scored", rcpts: []string{"bob@example.org"},
			want: map[string]string{"bob@example.org": "INBOX"}, counter: "delivered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			reg := prometheus.NewRegistry()
			d := New(f.st, Options{
				TmpDir: t.TempDir(), Registerer: reg, Resolver: newAuthZone(t), AuthServID: authID,
				StripFields: append(slices.Clone(mailauth.DefaultStripFields), "X-Spam*", "X-Rspamd-*"),
			})
			env := Envelope{
				From:       "someone@sender.test",
				Recipients: resolveAll(t, d, tc.rcpts...),
				RemoteIP:   netip.MustParseAddr("127.0.0.10"),
				Helo:       "client.test",
			}
			sp := SpoolBytes([]byte(forgedSpam))
			auth := d.Authenticate(context.Background(), env, sp)
			if auth == nil {
				t.Fatal("no authentication result")
			}
			auth.Others = append(auth.Others, mailauth.Method{Name: "iprev", Status: mailauth.Fail, Props: [][2]string{{"policy.iprev", "127.0.0.10"}}})
			env.Auth = auth
			env.SpamHeaders = []byte(tc.headers)
			env.SpamJunk = tc.junk
			if _, err := d.Deliver(context.Background(), env, sp); err != nil {
				t.Fatal(err)
			}
			if got := counterValue(t, reg, "mailstead_delivery_messages_total", tc.counter); got != 1 {
				t.Errorf("%s counter = %v", tc.counter, got)
			}
			for acc, want := range tc.want {
				for _, mb := range []string{"INBOX", "Junk"} {
					msgs, contents := storedIn(t, f.st, f.acc[acc], mb)
					if mb != want {
						if len(msgs) != 0 {
							t.Errorf("%s: %d messages in %s", acc, len(msgs), mb)
						}
						continue
					}
					if len(msgs) != 1 {
						t.Fatalf("%s: %d messages in %s, want 1", acc, len(msgs), mb)
					}
					if junk := slices.Contains(msgs[0].Keywords, "$Junk"); junk != (mb == "Junk") {
						t.Errorf("%s: keywords %q in %s", acc, msgs[0].Keywords, mb)
					}
					prefix := string(msgs[0].Prefix)
					ar := strings.Index(prefix, "Authentication-Results: "+authID+";")
					if !strings.HasPrefix(prefix, "Return-Path: <someone@sender.test>\r\nDelivered-To: ") || ar < 0 {
						t.Fatalf("prefix %q", prefix)
					}
					if !strings.HasSuffix(prefix, "\r\n"+tc.headers) || tc.headers != "" && strings.Index(prefix, tc.headers) < ar {
						t.Errorf("spam fields not after Authentication-Results: %q", prefix)
					}
					if !strings.Contains(strings.ReplaceAll(prefix, "\r\n\t", " "), "iprev=fail policy.iprev=127.0.0.10") {
						t.Errorf("iprev missing in %q", prefix)
					}
					if contents[0] != prefix+forgedSpamCleaned {
						t.Errorf("stored %q, want prefix + %q", contents[0], forgedSpamCleaned)
					}
				}
			}
		})
	}
}
