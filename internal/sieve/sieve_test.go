package sieve

import (
	"context"
	"strings"
	"testing"
	"time"
)

// rfcMessage is the example message of RFC 5228 section 7 ... made
// concrete, used when a case gives none.
const rfcMessage = `Date: Tue, 1 Apr 1997 09:06:31 -0800 (PST)
From: coyote@desert.example.org
To: roadrunner@acme.example.com
Subject: I have a present for you
Message-ID: <1@desert.example.org>

Look, I'm sorry about the whole anvil thing, and I really
didn't mean to try and drop it on you from the high cliff.  I
realize it was not the best way to get your attention, but I'm
sure you'll understand.
`

func crlfMsg(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

var testNow = time.Date(2007, 7, 2, 10, 30, 0, 0, time.UTC)

func testOpts() Options {
	return Options{
		Hostname: "mx.example.com",
		Version:  "1.0",
		Now:      func() time.Time { return testNow },
		Location: time.UTC,
		MailboxExists: func(name string) bool {
			switch name {
			case "INBOX", "Partners", "Junk":
				return true
			}
			return false
		},
	}
}

var testEnv = Envelope{From: "coyote@desert.example.org", To: "roadrunner@acme.example.com"}

type runCase struct {
	name    string
	script  string
	msg     string // default rfcMessage
	env     *Envelope
	want    string // Result.String()
	wantErr string // a runtime error containing this
}

func runCases(t *testing.T, cases []runCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse(c.script)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			raw := c.msg
			if raw == "" {
				raw = rfcMessage
			}
			env := testEnv
			if c.env != nil {
				env = *c.env
			}
			res, err := Run(context.Background(), s, MessageFromBytes(crlfMsg(raw)), env, testOpts())
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				if res.String() != "implicit-keep\n" {
					t.Fatalf("result after error:\n%s", res)
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if got := res.String(); got != c.want {
				t.Fatalf("got:\n%swant:\n%s", got, c.want)
			}
		})
	}
}

// TestRFC5228 runs the examples of RFC 5228.
func TestRFC5228(t *testing.T) {
	runCases(t, []runCase{
		{name: "3.1 if/elsif/else", script: `
require "fileinto";
if header :contains "from" "coyote" {
   discard;
} elsif header :contains ["subject"] ["$$$"] {
   discard;
} else {
   fileinto "INBOX";
}`, want: "discard\n"},
		{name: "3.1 else branch", script: `
require "fileinto";
if header :contains "from" "wile" {
   discard;
} elsif header :contains ["subject"] ["$$$"] {
   discard;
} else {
   fileinto "INBOX";
}`, want: "fileinto \"INBOX\"\n"},
		{name: "3.2 require", script: `require ["fileinto", "reject"]; require "vacation"; keep;`, want: "keep\n"},
		{name: "3.3 stop", script: `stop; discard;`, want: "implicit-keep\n"},
		{name: "4.1 fileinto", script: `
require "fileinto";
if header :contains ["from"] "coyote" {
   fileinto "INBOX.harassment";
}`, want: "fileinto \"INBOX.harassment\"\n"},
		{name: "4.2 redirect", script: `redirect "bart@example.com";`, want: "redirect \"bart@example.com\"\n"},
		{name: "4.3 keep", script: `if size :under 1M { keep; } else { discard; }`, want: "keep\n"},
		{name: "4.4 discard", script: `if header :contains ["from"] ["coyote@desert.example.org"] { discard; }`, want: "discard\n"},
		{name: "5.1 address", script: `if address :is :all "from" "coyote@desert.example.org" { discard; }`, want: "discard\n"},
		{name: "5.1 address domain uppercase tag", script: `if address :DOMAIN :is "From" "DESERT.example.org" { discard; }`, want: "discard\n"},
		{name: "5.1 address localpart", script: `if address :localpart :is "to" "roadrunner" { discard; }`, want: "discard\n"},
		{name: "5.2 allof", script: `if allof (header :contains "From" "coyote", header :contains "Subject" "present") { discard; }`, want: "discard\n"},
		{name: "5.2 allof false", script: `if allof (header :contains "From" "coyote", header :contains "Subject" "Asp") { discard; }`, want: "implicit-keep\n"},
		{name: "5.3 anyof", script: `if anyof (false, header :contains "From" "coyote") { discard; }`, want: "discard\n"},
		{name: "5.4 envelope", script: `require "envelope"; if envelope :all :is "from" "coyote@desert.example.org" { discard; }`, want: "discard\n"},
		{name: "5.4 envelope null sender", env: &Envelope{To: "roadrunner@acme.example.com"},
			script: `require ["envelope", "fileinto"]; if envelope :all :is "from" "" { fileinto "bounces"; }`, want: "fileinto \"bounces\"\n"},
		{name: "5.5 exists", script: `if exists ["From","Date"] { discard; }`, want: "discard\n"},
		{name: "5.5 exists missing", script: `if exists ["From","X-Caffeine"] { discard; }`, want: "implicit-keep\n"},
		{name: "5.6 false", script: `if false { discard; }`, want: "implicit-keep\n"},
		{name: "5.7 header", script: `if header :is ["To","Cc"] ["roadrunner@acme.example.com", "me@example.com"] { discard; }`, want: "discard\n"},
		{name: "5.8 not", script: `if not exists "X-Caffeine" { discard; }`, want: "discard\n"},
		{name: "5.9 size over", script: `if size :over 500K { discard; }`, want: "implicit-keep\n"},
		{name: "5.9 size under", script: `if size :under 100 { discard; }`, want: "implicit-keep\n"},
		{name: "5.10 true", script: `if true { discard; }`, want: "discard\n"},
		{name: "2.7.1 matches", script: `if header :matches "Subject" "I have a * for ?ou" { discard; }`, want: "discard\n"},
		{name: "2.7.1 matches escaped star", script: `if header :matches "Subject" "I have a \\* for you" { discard; }`, want: "implicit-keep\n"},
		{name: "2.7.3 comparator octet case", script: `if header :comparator "i;octet" :contains "Subject" "PRESENT" { discard; }`, want: "implicit-keep\n"},
		{name: "2.7.3 casemap default", script: `if header :contains "Subject" "PRESENT" { discard; }`, want: "discard\n"},
		{name: "2.7.1 matches empty header", msg: "Subject:\n\nx\n", script: `if header :matches "Subject" "" { discard; }`, want: "discard\n"},
		{name: "2.7.1 contains empty is existence", script: `if header :contains "X-None" "" { discard; }`, want: "implicit-keep\n"},
		{name: "9 complete example", msg: `From: someone@example.com
To: me@example.com
Subject: make money fast at university
Sender: owner-ietf-mta-filters@imc.org

x
`, script: `
#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
`, want: "fileinto \"filter\"\n"},
		{name: "9 complete example spam", msg: `From: someone@spam.example
To: me@example.net
Subject: make money fast now

x
`, script: `require ["fileinto"];
if header :is "Sender" "owner-ietf-mta-filters@imc.org" { fileinto "filter"; }
elsif address :DOMAIN :is ["From", "To"] "example.com" { keep; }
elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"]) { fileinto "spam"; }
else { fileinto "personal"; }`, want: "fileinto \"spam\"\n"},
		{name: "multiline string", script: "require \"reject\";\nreject text:\nline one\n..dot\n.\n;", want: "reject \"line one\\r\\n.dot\\r\\n\"\n"},
		{name: "duplicate fileinto stored once", script: `require "fileinto"; fileinto "a"; fileinto "a"; keep; keep;`, want: "fileinto \"a\"\nkeep\n"},
		{name: "fileinto INBOX equals keep", script: `require "fileinto"; fileinto "inbox"; keep;`, want: "keep\n"},
		{name: "redirect twice once", script: `redirect "a@example.com"; redirect "A@example.com";`, want: "redirect \"a@example.com\"\n"},
		{name: "too many redirects", script: `redirect "a@example.com"; redirect "b@example.com"; redirect "c@example.com"; redirect "d@example.com"; redirect "e@example.com";`, wantErr: "more than 4 redirects"},
	})
}

// TestEncodedCharacter runs RFC 5228 section 2.4.2.4.
func TestEncodedCharacter(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"$${hex:24 24}", "$$$"},
		{"${hex:40}", "@"},
		{"${hex: 40 }", "@"},
		{"${HEX: 40}", "@"},
		{"${hex:40", "${hex:40"},
		{"${hex:400}", "${hex:400}"},
		{"${hex:4${hex:30}}", "${hex:40}"},
		{"${unicode:40}", "@"},
		{"${ unicode:40}", "${ unicode:40}"},
		{"${UNICODE:40}", "@"},
		{"${UnICoDE:0000040}", "@"},
		{"${Unicode:40}", "@"},
		{"${Unicode:Cool}", "${Unicode:Cool}"},
		{"${unicode:263a 20 263A}", "☺ ☺"},
		{"${hex:}", "${hex:}"},
	} {
		got, err := decodeEncodedChars(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"${Unicode:DF01}", "${unicode:110000}"} {
		if _, err := decodeEncodedChars(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	runCases(t, []runCase{
		{name: "in script", script: `require ["encoded-character", "fileinto"]; if header :contains "Subject" "${hex:70 72 65 73 65 6e 74}" { fileinto "${unicode:263a}"; }`,
			want: "fileinto \"☺\"\n"},
		{name: "not required", script: `require "fileinto"; fileinto "${hex:41}";`, want: "fileinto \"${hex:41}\"\n"},
	})
	if err := Check(`require "encoded-character"; keep :flags "${unicode:D800}";`); err == nil {
		t.Error("surrogate accepted")
	}
}

// TestRFC5229 runs the variables examples.
func TestRFC5229(t *testing.T) {
	listMsg := `Subject: [acme-users] [fwd] version 1.0 is out
List-Id: Dovecot Mailing List <dovecot@dovecot.example.net>
To: coyote@ACME.Example.COM
From: stephan@example.org

Test message.
`
	runCases(t, []runCase{
		{name: "3 case-insensitive names", script: `require ["variables", "reject"];
set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
reject "${vacation}";`, want: "reject \"Dear Mr Coyote,\\r\\nI'm out, please leave a message after the meep.\\r\\n\"\n"},
		{name: "3 expansion examples", script: `require ["variables", "fileinto"];
set "company" "ACME";
fileinto "[${full}][${company}][${BAD${Company}][${President, ${Company} Inc.}][${doh!}][${a.b}][$${company}]";`,
			want: "fileinto \"[][ACME][${BADACME][${President, ACME Inc.}][${doh!}][][$ACME]\"\n"},
		{name: "4 modifiers", script: `require ["variables", "fileinto"];
set "a" "juMBlEd lETteRS";
set :length "b" "${a}"; fileinto "${b}";
set :lower "b" "${a}"; fileinto "${b}";
set :upperfirst "b" "${a}"; fileinto "${b}";
set :upperfirst :lower "b" "${a}"; fileinto "${b}";
set :quotewildcard "b" "Rock*"; fileinto "${b}";
set :upper :lowerfirst "b" "${a}"; fileinto "${b}";
set :length :lower "b" "ÄÖÜ"; fileinto "${b}";`,
			want: "fileinto \"15\"\nfileinto \"jumbled letters\"\nfileinto \"JuMBlEd lETteRS\"\nfileinto \"Jumbled letters\"\nfileinto \"Rock\\\\*\"\nfileinto \"jUMBLED LETTERS\"\nfileinto \"3\"\n"},
		{name: "3.2 match variables", msg: listMsg, script: `require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}`, want: "fileinto \"INBOX.lists.dovecot\"\n"},
		{name: "3.2 subject", msg: listMsg, script: `require ["fileinto", "variables"];
if header :matches "Subject" "[*] *" {
    fileinto "INBOX.lists.${1}/${2}"; stop;
}`, want: "fileinto \"INBOX.lists.acme-users/[fwd] version 1.0 is out\"\n"},
		{name: "3.2 address", msg: listMsg, script: `require ["fileinto", "variables"];
if address :matches ["To", "Cc"] ["coyote@**.com", "wile@**.com"] {
    fileinto "INBOX.business.${2}|${1}|${0}"; stop;
}`, want: "fileinto \"INBOX.business.ACME.Example||coyote@ACME.Example.COM\"\n"},
		{name: "3.2 short-circuit", msg: listMsg, script: `require ["fileinto", "variables"];
if string :matches "x" "?" {}
if anyof (true, address :domain :matches "To" "*.com") {
    fileinto "${1}";
}`, want: "fileinto \"x\"\n"},
		{name: "3.2 failed match keeps values", script: `require ["fileinto", "variables"];
set "sentence1" "the cat jumps off the table";
set "sentence2" "the dog barks at the cat in the alley";
if string :matches "${sentence1}" "the * jumps off the *" { fileinto "${1}:${2}"; }
if string :matches "${sentence2}" "the * barks at the * in the store" { discard; }
fileinto "${1}:${2}";
if string :matches "${sentence2}" "the * barks at the * in the alley" { fileinto "${1}:${2}"; }`,
			want: "fileinto \"cat:table\"\nfileinto \"dog:cat\"\n"},
		{name: "5 string test", script: `require ["variables", "fileinto"];
set "state" "${state} pending";
if string :matches " ${state} " "* pending *" { fileinto "ok"; }`, want: "fileinto \"ok\"\n"},
		{name: "5 string count skips empty", script: `require ["variables", "relational", "comparator-i;ascii-numeric"];
if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { discard; }`, want: "discard\n"},
		{name: "non-greedy", script: `require ["variables", "fileinto"];
if string :matches "frop.......frop.........frop...." "?*frop*" { fileinto "${1}${2}${3}"; }
if string :matches "toptoptop" "*top" { fileinto "${1}"; }
if string :matches "klopfropstroptop" "*?op*" { fileinto ":${0}:${1}:${2}:${3}:${4}:"; }
if string :matches "foo1234@foobar.example.com" "*??@foobar.example.com" { fileinto "${1}|${2}|${3}"; }
if string :matches "a b c d e f g" "? ? ? ? ? ? ?" { fileinto "${0000007}${0}"; }
if string :matches "beter van niet?" "*\\?" { fileinto "${1}"; }`,
			want: "fileinto \"frop................frop....\"\nfileinto \"toptop\"\nfileinto \":klopfropstroptop:k:l:fropstroptop::\"\nfileinto \"foo12|3|4\"\nfileinto \"ga b c d e f g\"\nfileinto \"beter van niet\"\n"},
	})
	for _, bad := range []string{
		`require "variables"; set "a b" "x";`,
		`require "variables"; set "1" "x";`,
		`require "variables"; set :lower :upper "a" "x";`,
		`require "variables"; set "a";`,
		`set "a" "b";`,
	} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}

// TestRFC5230 runs the vacation examples.
func TestRFC5230(t *testing.T) {
	runCases(t, []runCase{
		{name: "4 basic", script: `require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at +1 304 555 0123";
}`, want: "implicit-keep\nvacation \"I'm out -- call me at +1 304 555 0123\" :period 168h0m0s\n"},
		{name: "4.1 subject with variables", script: `require ["vacation", "variables"];
if header :matches "subject" "*" {
    vacation :subject "Automatic response to: ${1}" "I'm away";
}`, want: "implicit-keep\nvacation \"I'm away\" :subject \"Automatic response to: I have a present for you\" :period 168h0m0s\n"},
		{name: "4.5 days and addresses", script: `require "vacation";
vacation :days 23 :addresses ["tjs@example.edu", "ts4z@landru.example.edu"]
"I'm away until October 19.
If it's an emergency, call 911, I guess." ;`,
			want: "implicit-keep\nvacation \"I'm away until October 19.\\nIf it's an emergency, call 911, I guess.\" :addresses \"tjs@example.edu ts4z@landru.example.edu\" :period 552h0m0s\n"},
		{name: "4.5 redirect or vacation", script: `require "vacation";
if header :contains "from" "boss@example.edu" {
    redirect "pleeb@isp.example.org";
} else {
    vacation "Sorry, I'm away, I'll read your message when I get around to it.";
}`, want: "implicit-keep\nvacation \"Sorry, I'm away, I'll read your message when I get around to it.\" :period 168h0m0s\n"},
		{name: "seconds", script: `require "vacation-seconds";
vacation :from "Road Runner <roadrunner@acme.example.com>" :handle "ran-away" :seconds 10 "I'm in the jungle";`,
			want: "implicit-keep\nvacation \"I'm in the jungle\" :from \"Road Runner <roadrunner@acme.example.com>\" :period 10s\n"},
		{name: "8 mime", script: "require \"vacation\";\nvacation :mime text:\nContent-Type: text/plain; charset=us-ascii\n\nI'm at the beach relaxing.\n.\n;",
			want: "implicit-keep\nvacation \"Content-Type: text/plain; charset=us-ascii\\r\\n\\r\\nI'm at the beach relaxing.\\r\\n\" :mime :period 168h0m0s\n"},
		{name: "twice is an error", script: `require "vacation"; vacation "a"; vacation "b";`, wantErr: "more than one vacation"},
		{name: "days clamped", script: `require "vacation"; vacation :days 0 "a";`, want: "implicit-keep\nvacation \"a\" :period 24h0m0s\n"},
	})
	if err := Check(`require "vacation"; vacation :seconds 10 "x";`); err == nil || !strings.Contains(err.Error(), "vacation-seconds") {
		t.Errorf(":seconds without vacation-seconds: %v", err)
	}
}
