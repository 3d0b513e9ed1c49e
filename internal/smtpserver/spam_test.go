package smtpserver

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/spam"
)

// spamZone is the DNS the spam tests see. Clients are loopback
// addresses (dialled from) or, for the DNS lists, which never query
// loopback clients, a documentation address given in a PROXY header.
const spamZone = `
; 192.0.2.66 is on bl.example, a reject list
66.2.0.192.bl.example A 127.0.0.2
66.2.0.192.bl.example TXT "Listed, see https://bl.example/q"
; 127.0.0.3 has forward-confirmed reverse DNS; 127.0.0.2 has none
127.0.0.3 PTR mail.example.net
mail.example.net A 127.0.0.3
`

type spamEnvOptions struct {
	role      Role
	tune      func(*spam.Config)
	greylist  *spam.GreylistConfig // nil: no greylisting
	maxErrors int
	proxy     bool
	logs      *logBuffer
}

// newSpamEnv is a server with a spam checker (and greylist) on a fake
// DNS, and delivery that authenticates mail like the real server's.
func newSpamEnv(t *testing.T, o spamEnvOptions) (*env, *dnsresolver.Fake) {
	t.Helper()
	zone := dnsresolver.NewFake()
	if err := zone.LoadZone(strings.NewReader(spamZone)); err != nil {
		t.Fatal(err)
	}
	eo := envOptions{role: o.role, deliv: func(d *delivery.Options) {
		d.Resolver = zone
		d.AuthServID = testHostname
		d.StripFields = append(slices.Clone(mailauth.DefaultStripFields), spam.StripFields...)
	}}
	if o.proxy {
		eo.wrap = proxyWrap(loopback8, 3*time.Second)
	}
	eo.config = func(c *Config) {
		c.MaxErrors = o.maxErrors
		if o.logs != nil {
			c.Logger = o.logs.logger()
		}
		sc := spam.DefaultConfig()
		sc.Hostname = testHostname
		sc.IsLocalDomain = c.Deliverer.(*delivery.Deliverer).IsLocalDomain
		sc.DNSBL = []spam.List{{Zone: "bl.example", Weight: 6, Reject: true}}
		sc.DNSTimeout = 5 * time.Second
		if o.tune != nil {
			o.tune(&sc)
		}
		checker, err := spam.New(sc, zone)
		if err != nil {
			t.Fatal(err)
		}
		c.Spam = checker
		if o.greylist != nil {
			gl, err := spam.OpenGreylist(*o.greylist)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { gl.Close() })
			c.Greylist = gl
		}
	}
	return newEnv(t, eo), zone
}

// dialFrom connects from a given loopback address and reads the greeting.
func dialFrom(t *testing.T, addr, local string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	if r := cl.read(); r.code != 220 {
		t.Fatalf("greeting: %v", r)
	}
	return cl
}

// spamMessage claims a clean verdict in fields that must be stripped.
func spamMessage(subject string) string {
	return "From: Sender <sender@remote.example>\r\n" +
		"To: bob@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"X-Spam-Flag: NO\r\n" +
		"X-Spam-Status: No, score=-100\r\n" +
		"\r\n" +
		"Buy now\r\n"
}

// TestSpamRejectList: a client on a reject list is refused at RCPT TO
// with the list's reason, except for postmaster@ and abuse@, which get
// the message in Junk; the list's result reaches Authentication-Results.
func TestSpamRejectList(t *testing.T) {
	e, _ := newSpamEnv(t, spamEnvOptions{role: RoleMX, proxy: true})
	c := greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.66:40000")))
	c.expect("250", "EHLO mail.example.net")
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	r := c.expect("550 5.7.1", "RCPT TO:<bob@example.org>")
	if !strings.Contains(r.msg, "Client address 192.0.2.66 is listed by bl.example: Listed, see https://bl.example/q") {
		t.Errorf("reply %q", r)
	}
	c.expect("550 5.1.1", "RCPT TO:<nobody@example.org>") // unknown users first
	c.expect("250", "RCPT TO:<postmaster@example.org>")
	c.expect("250", "RCPT TO:<Abuse@example.org>")
	if r := c.data(spamMessage("listed")); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	if msgs, _ := e.mailbox("bob@example.org", "Junk"); len(msgs) != 0 {
		t.Errorf("bob got the message")
	}
	// postmaster@ and abuse@ of example.org go to its oldest account.
	if msgs, _ := e.inbox("alice@example.org"); len(msgs) != 0 {
		t.Errorf("message in INBOX, want Junk")
	}
	msgs, stored := e.mailbox("alice@example.org", "Junk")
	if len(msgs) != 1 || !slices.Contains(stored[0].Keywords, "$Junk") {
		t.Fatalf("postmaster's Junk: %d messages", len(msgs))
	}
	unfolded := strings.ReplaceAll(msgs[0], "\r\n\t", " ")
	for _, want := range []string{"x-dnsbl=fail dns.zone=bl.example policy.ip=127.0.0.2", "X-Spam-Flag: YES\r\n", "tests=DNSBL_BL_EXAMPLE", "iprev=permerror"} {
		if !strings.Contains(unfolded, want) {
			t.Errorf("%q missing in %q", want, msgs[0])
		}
	}
	if strings.Count(msgs[0], "X-Spam-Flag:") != 1 || strings.Contains(msgs[0], "score=-100") {
		t.Errorf("forged fields kept: %q", msgs[0])
	}
}

// TestSpamMessageVerdicts: the verdict after DATA places the message
// (INBOX, Junk) or refuses it, adds X-Spam fields and the iprev result,
// and is logged with the delivery.
func TestSpamMessageVerdicts(t *testing.T) {
	rejectAt4 := func(c *spam.Config) { c.JunkScore, c.RejectScore = 3, 4 }
	for _, tc := range []struct {
		name    string
		ip      string
		helo    string
		tune    func(*spam.Config)
		rcpts   []string
		reply   string
		placed  map[string]string // account -> mailbox
		want    []string          // in the stored message (unfolded)
		logWant string
	}{
		{name: "accept", ip: "127.0.0.3", helo: "mail.example.net", rcpts: []string{"bob@example.org"}, reply: "250",
			placed:  map[string]string{"bob@example.org": "INBOX"},
			want:    []string{"iprev=pass reason=mail.example.net policy.iprev=127.0.0.3", "X-Spam-Score: 0.00\r\n", "X-Spam-Status: No, score=0.00 required=5.00 tests=none\r\n"},
			logWant: "spam_action=accept"},
		// No reverse DNS (2) and a bare IP in EHLO (3 here) reach 5.
		{name: "junk", ip: "127.0.0.2", helo: "127.0.0.2", rcpts: []string{"bob@example.org"}, reply: "250",
			tune:    func(c *spam.Config) { c.Weights[spam.SymHeloBareIP] = 3 },
			placed:  map[string]string{"bob@example.org": "Junk"},
			want:    []string{"iprev=permerror policy.iprev=127.0.0.2", "X-Spam-Flag: YES\r\n", "X-Spam-Status: Yes, score=5.00 required=5.00 tests=HELO_BARE_IP,IPREV_NOPTR\r\n"},
			logWant: "spam_action=junk spam_score=5"},
		{name: "reject", ip: "127.0.0.2", helo: "127.0.0.2", rcpts: []string{"bob@example.org"}, tune: rejectAt4,
			reply: "550 5.7.1 Message rejected as spam", placed: map[string]string{"bob@example.org": ""}},
		{name: "reject reaches postmaster in Junk", ip: "127.0.0.2", helo: "127.0.0.2", rcpts: []string{"bob@example.org", "postmaster@example.org"}, tune: rejectAt4,
			reply: "250", placed: map[string]string{"bob@example.org": "Junk", "alice@example.org": "Junk"},
			want: []string{"X-Spam-Flag: YES\r\n", "X-Spam-Status: Yes, score=4.00 required=3.00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			e, _ := newSpamEnv(t, spamEnvOptions{role: RoleMX, tune: tc.tune, logs: &logs})
			c := dialFrom(t, e.addr, tc.ip)
			c.expect("250", "EHLO %s", tc.helo)
			c.expect("250", "MAIL FROM:<sender@remote.example>")
			for _, r := range tc.rcpts {
				c.expect("250", "RCPT TO:<%s>", r)
			}
			if r := c.data(spamMessage(tc.name)); !strings.HasPrefix(r.String(), tc.reply) {
				t.Fatalf("DATA: %v, want %s", r, tc.reply)
			}
			for acc, want := range tc.placed {
				for _, mb := range []string{"INBOX", "Junk"} {
					contents, msgs := e.mailbox(acc, mb)
					if mb != want {
						if len(msgs) != 0 {
							t.Errorf("%s: %d messages in %s", acc, len(msgs), mb)
						}
						continue
					}
					if len(msgs) != 1 {
						t.Fatalf("%s: %d messages in %s, want 1", acc, len(msgs), mb)
					}
					if slices.Contains(msgs[0].Keywords, "$Junk") != (mb == "Junk") {
						t.Errorf("%s: keywords %q", acc, msgs[0].Keywords)
					}
					unfolded := strings.ReplaceAll(contents[0], "\r\n\t", " ")
					for _, w := range tc.want {
						if !strings.Contains(unfolded, w) {
							t.Errorf("%s: %q missing in %q", acc, w, contents[0])
						}
					}
					if strings.Count(contents[0], "X-Spam-Status:") != 1 || strings.Contains(contents[0], "score=-100") {
						t.Errorf("forged fields kept: %q", contents[0])
					}
				}
			}
			if tc.logWant != "" {
				var line string
				for _, l := range logs.above() {
					if strings.Contains(l, "msg=delivered") {
						line = l
					}
				}
				if !strings.Contains(line, tc.logWant) || !strings.Contains(line, "spam_source=builtin") {
					t.Errorf("delivered line %q lacks %q", line, tc.logWant)
				}
			}
		})
	}
}

// clock is a settable clock for the greylist.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSpamGreylist: a new triplet gets 451 4.7.1 and the retry after the
// delay is accepted; greylisted recipients do not count as errors
// towards max_errors_per_session (in cleartext, where the reply watcher
// counts, and under TLS, where the session does), real errors still do;
// postmaster@ and trusted clients are not greylisted.
func TestSpamGreylist(t *testing.T) {
	const delay = 5 * time.Minute
	for _, starttls := range []bool{false, true} {
		name := "cleartext"
		if starttls {
			name = "starttls"
		}
		t.Run(name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			e, _ := newSpamEnv(t, spamEnvOptions{
				role: RoleMX, maxErrors: 3,
				tune:     func(c *spam.Config) { c.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32")} },
				greylist: &spam.GreylistConfig{Delay: delay, Now: clk.Now},
			})
			c := dialFrom(t, e.addr, "127.0.0.2")
			c.expect("250", "EHLO mail.example.net")
			if starttls {
				c.startTLS()
				c.expect("250", "EHLO mail.example.net")
			}
			c.expect("250", "MAIL FROM:<sender@remote.example>")
			for i := range 10 {
				c.expect("451 4.7.1 Greylisted", "RCPT TO:<alice+%d@example.org>", i)
			}
			c.expect("250", "RCPT TO:<postmaster@example.org>")
			c.expect("250", "RSET")

			clk.Add(delay / 2)
			c.expect("250", "MAIL FROM:<sender@remote.example>")
			c.expect("451 4.7.1", "RCPT TO:<alice+0@example.org>") // too early
			clk.Add(delay / 2)
			c.expect("250", "RCPT TO:<alice+0@example.org>")
			c.expect("250", "RCPT TO:<alice+1@example.org>")
			c.expect("451 4.7.1", "RCPT TO:<bob@example.org>") // a new triplet
			if r := c.data(spamMessage("greylisted")); r.code != 250 {
				t.Fatalf("DATA: %v", r)
			}
			if msgs, _ := e.inbox("alice@example.org"); len(msgs) != 1 || !strings.Contains(msgs[0], "X-Spam-Status: No") {
				t.Fatalf("alice's INBOX: %q", msgs)
			}

			// Real errors still count: the fourth closes.
			c.expect("250", "MAIL FROM:<sender@remote.example>")
			for i := range 3 {
				c.expect("550 5.1.1", "RCPT TO:<nobody%d@example.org>", i)
			}
			c.expect("421 4.7.0", "RCPT TO:<nobody9@example.org>")

			// A trusted client is not greylisted.
			tc := dialFrom(t, e.addr, "127.0.0.4")
			tc.expect("250", "EHLO mail.example.net")
			tc.expect("250", "MAIL FROM:<sender@remote.example>")
			tc.expect("250", "RCPT TO:<bob@example.org>")
		})
	}
}

// TestSpamSkippedForSubmission: an authenticated session gets none of the
// checks, even from a listed client with greylisting on: no DNS list
// query, no greylist, no X-Spam fields.
func TestSpamSkippedForSubmission(t *testing.T) {
	e, zone := newSpamEnv(t, spamEnvOptions{role: RoleSubmission, proxy: true, greylist: &spam.GreylistConfig{}})
	c := greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.66:40000")))
	c.ehlo()
	c.startTLS()
	c.ehlo()
	c.expect("235", "AUTH PLAIN %s", plainIR("", "bob@example.org", testPassword))
	c.expect("250", "MAIL FROM:<bob@example.org>")
	c.expect("250", "RCPT TO:<alice@example.org>")
	msg := strings.Replace(spamMessage("submitted"), "Sender <sender@remote.example>", "bob@example.org", 1)
	if r := c.data(msg); r.code != 250 {
		t.Fatalf("DATA: %v", r)
	}
	msgs, _ := e.inbox("alice@example.org")
	if len(msgs) != 1 || strings.Contains(msgs[0], "X-Spam-Score") || strings.Contains(msgs[0], "iprev") {
		t.Fatalf("alice's INBOX: %q", msgs)
	}
	for _, q := range zone.Queries() {
		if strings.Contains(q, "bl.example") || strings.HasPrefix(q, "PTR") {
			t.Errorf("spam check ran: query %q", q)
		}
	}
}

// TestSpamCheckBounded: a DNS list that never answers delays MAIL FROM
// by the checker's DNS timeout, not the resolver's.
func TestSpamCheckBounded(t *testing.T) {
	e, zone := newSpamEnv(t, spamEnvOptions{role: RoleMX, proxy: true, tune: func(c *spam.Config) { c.DNSTimeout = 300 * time.Millisecond }})
	zone.Fail(spam.QueryName(netip.MustParseAddr("192.0.2.77"), "bl.example"), dnsresolver.FailHang)
	c := greeted(t, dialProxied(t, e.addr, proxyV2(t, "192.0.2.77:40000")))
	c.expect("250", "EHLO mail.example.net")
	start := time.Now()
	c.expect("250", "MAIL FROM:<sender@remote.example>")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("MAIL FROM took %v", d)
	}
	c.expect("250", "RCPT TO:<bob@example.org>") // unknown is not listed
}
