package sieve

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestRFC5231 runs the relational examples (section 6).
func TestRFC5231(t *testing.T) {
	msg := `Received: ...
Received: ...
Subject: example
To: foo@example.com.invalid, baz@example.com.invalid
CC: qux@example.com.invalid
X-Priority: 1

x
`
	req := `require ["relational", "comparator-i;ascii-numeric"];` + "\n"
	runCases(t, []runCase{
		{name: "address count to+cc", msg: msg, script: req + `if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"] { discard; }`, want: "discard\n"},
		{name: "address count separately", msg: msg, script: req + `if anyof (address :count "ge" :comparator "i;ascii-numeric" ["to"] ["3"],
  address :count "ge" :comparator "i;ascii-numeric" ["cc"] ["3"]) { discard; }`, want: "implicit-keep\n"},
		{name: "header count received", msg: msg, script: req + `if header :count "ge" :comparator "i;ascii-numeric" ["received"] ["3"] { discard; }`, want: "implicit-keep\n"},
		{name: "header count received+subject", msg: msg, script: req + `if header :count "ge" :comparator "i;ascii-numeric" ["received", "subject"] ["3"] { discard; }`, want: "discard\n"},
		{name: "header count to+subject", msg: msg, script: req + `if header :count "ge" :comparator "i;ascii-numeric" ["to", "subject"] ["3"] { discard; }`, want: "implicit-keep\n"},
		{name: "value lt", msg: msg, script: req + `if header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["3"] { discard; }`, want: "discard\n"},
		{name: "value gt", msg: msg, script: req + `if header :value "gt" :comparator "i;ascii-numeric" ["x-priority"] ["3"] { discard; }`, want: "implicit-keep\n"},
		{name: "value non-digit is infinity", msg: "X-Priority: high\n\nx\n", script: req + `if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "99999999999999999999" { discard; }`, want: "discard\n"},
		{name: "value casemap ordering", msg: msg, script: `require "relational"; if header :value "gt" "subject" "EXAMPLA" { discard; }`, want: "discard\n"},
		{name: "value ne", msg: msg, script: `require "relational"; if header :value "ne" "subject" "example" { discard; }`, want: "implicit-keep\n"},
		{name: "count zero", msg: msg, script: req + `if header :count "eq" :comparator "i;ascii-numeric" "x-none" "0" { discard; }`, want: "discard\n"},
	})
	for _, bad := range []string{
		`require "relational"; if header :value "gte" "a" "b" { stop; }`,
		`if header :value "gt" "a" "b" { stop; }`,
		`require "relational"; if header :comparator "i;ascii-numeric" :is "a" "1" { stop; }`,
		`require ["comparator-i;ascii-numeric"]; if header :comparator "i;ascii-numeric" :contains "a" "1" { stop; }`,
		`if header :comparator "i;bogus" :is "a" "1" { stop; }`,
	} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}

// TestRFC5232 runs imap4flags.
func TestRFC5232(t *testing.T) {
	runCases(t, []runCase{
		{name: "6 example", script: `require ["imap4flags", "fileinto"];
if header :contains "from" "coyote" {
    setflag "\\Flagged";
    fileinto "INBOX.From Coyote";
}`, want: "fileinto \"INBOX.From Coyote\" :flags \"\\\\Flagged\"\n"},
		{name: "implicit keep gets flags", script: `require "imap4flags";
if size :over 10 { addflag ["\\Seen", "$Junk"]; addflag "\\seen Work"; removeflag "$junk"; }`,
			want: "implicit-keep :flags \"\\\\Seen Work\"\n"},
		{name: "flags argument overrides", script: `require ["imap4flags", "fileinto"];
setflag "\\Seen"; fileinto :flags ["\\Answered", "\\Bogus", "\\Recent", "ok"] "a"; keep :flags "";`,
			want: "fileinto \"a\" :flags \"\\\\Answered ok\"\nkeep\n"},
		{name: "variables form", script: `require ["imap4flags", "variables", "fileinto"];
setflag "flagvar" "\\Flagged";
addflag "flagvar" ["\\Deleted", "\\Answered"];
removeflag "flagvar" "\\deleted";
fileinto :flags "${flagvar}" "x";`, want: "fileinto \"x\" :flags \"\\\\Flagged \\\\Answered\"\n"},
		{name: "5 hasflag", script: `require ["imap4flags", "variables", "relational", "comparator-i;ascii-numeric", "fileinto"];
set "MyVar" "NonJunk Junk gnus-forward $Forwarded NotJunk JunkRecorded $Junk $NotJunk";
if hasflag :contains "MyVar" "Junk" { fileinto "1"; }
if hasflag :contains "MyVar" "forward" { fileinto "2"; }
if hasflag :contains "MyVar" ["label", "forward"] { fileinto "3"; }
if hasflag :contains "MyVar" ["junk", "forward"] { fileinto "4"; }
if hasflag :is "MyVar" "Junk" { fileinto "5"; }
if hasflag :is "MyVar" "forward" { fileinto "6"; }
if hasflag :is "MyVar" ["label", "forward"] { fileinto "7"; }
if hasflag :is "MyVar" ["junk", "forward"] { fileinto "8"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "2" { fileinto "9"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "9" { fileinto "10"; }
if hasflag "MyVar" "$notjunk" { fileinto "11"; }`,
			want: "fileinto \"1\"\nfileinto \"2\"\nfileinto \"3\"\nfileinto \"4\"\nfileinto \"5\"\nfileinto \"8\"\nfileinto \"9\"\nfileinto \"11\"\n"},
		{name: "hasflag internal", script: `require "imap4flags"; addflag "\\Seen"; if hasflag "\\SEEN" { discard; }`, want: "discard\n"},
	})
	if err := Check(`require "imap4flags"; setflag "v" "x";`); err == nil {
		t.Error("variable form accepted without variables")
	}
}

// TestRFC5233 runs subaddress.
func TestRFC5233(t *testing.T) {
	env := func(to string) *Envelope { return &Envelope{From: "a@example.org", To: to} }
	script := `require ["envelope", "subaddress", "fileinto", "variables"];
if envelope :user "to" "postmaster" { fileinto "inbox.postmaster"; stop; }
if envelope :detail :is "to" "mta-filters" { fileinto "inbox.ietf-mta-filters"; stop; }
if envelope :detail :matches "to" "*" { fileinto "detail=${1}"; stop; }
if envelope :user :matches "to" "*" { fileinto "user=${1}"; }`
	runCases(t, []runCase{
		{name: "user", env: env("postmaster+x@example.com"), script: script, want: "fileinto \"inbox.postmaster\"\n"},
		{name: "detail", env: env("ken+mta-filters@example.com"), script: script, want: "fileinto \"inbox.ietf-mta-filters\"\n"},
		{name: "other detail", env: env("ken+sieve@example.com"), script: script, want: "fileinto \"detail=sieve\"\n"},
		{name: "empty detail", env: env("ken+@example.com"), script: script, want: "fileinto \"detail=\"\n"},
		{name: "no detail matches nothing", env: env("ken@example.com"), script: script, want: "fileinto \"user=ken\"\n"},
		{name: "address header", msg: "To: Ken <ken+lists@example.com>\n\nx\n", script: `require ["subaddress", "fileinto"]; if address :detail "to" "lists" { fileinto "lists"; }`, want: "fileinto \"lists\"\n"},
	})
}

// TestRFC5173 runs body.
func TestRFC5173(t *testing.T) {
	mime := `From: a@example.org
Subject: plans
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

The project schedule is attached. Caf=E9 at noon.
--b1
Content-Type: text/html; charset=utf-8

<html><body><p>Missile <b>coordinates</b> &amp; more</p></body></html>
--b1
Content-Type: audio/mpeg
Content-Transfer-Encoding: base64

SUQzAwAAAAAA
--b1--
`
	runCases(t, []runCase{
		{name: "text contains", msg: mime, script: `require ["body", "fileinto"];
if body :text :contains "project schedule" { fileinto "project/schedule"; }`, want: "fileinto \"project/schedule\"\n"},
		{name: "charset decoded", msg: mime, script: `require ["body", "fileinto"]; if body :contains "café" { fileinto "cafe"; }`, want: "fileinto \"cafe\"\n"},
		{name: "html as text", msg: mime, script: `require ["body", "fileinto"]; if body :text :contains "missile coordinates & more" { fileinto "secrets"; }`, want: "fileinto \"secrets\"\n"},
		{name: "content text", msg: mime, script: `require ["body", "fileinto"];
if body :content "text" :contains ["missile", "coordinates"] { fileinto "secrets"; }`, want: "fileinto \"secrets\"\n"},
		{name: "content audio", msg: mime, script: `require ["body", "fileinto"];
if body :content "audio" :contains "" { fileinto "music"; }`, want: "fileinto \"music\"\n"},
		{name: "content subtype", msg: mime, script: `require ["body", "fileinto"];
if body :content "text/plain" :contains "missile" { fileinto "no"; }`, want: "implicit-keep\n"},
		{name: "raw", msg: mime, script: `require ["body", "fileinto"]; if body :raw :contains "Caf=E9" { fileinto "raw"; }`, want: "fileinto \"raw\"\n"},
		{name: "raw not decoded", msg: mime, script: `require ["body", "fileinto"]; if body :raw :contains "café" { fileinto "raw"; }`, want: "implicit-keep\n"},
		{name: "no match vars", msg: mime, script: `require ["body", "variables", "fileinto"];
if string :matches "x" "*" {}
if body :matches "*schedule*" { fileinto "${1}"; }`, want: "fileinto \"x\"\n"},
		{name: "plain message", script: `require "body"; if body :contains "anvil" { discard; }`, want: "discard\n"},
	})
}

// TestRFC5260 runs date and index.
func TestRFC5260(t *testing.T) {
	msg := `Received: from a by b; Sat, 30 Jun 2007 10:00:00 +0000
Received: from c by d; Mon, 26 Feb 2007 14:10:00 +0000
From: boss@example.com
Date: Mon, 26 Feb 2007 11:30:00 -0500

x
`
	runCases(t, []runCase{
		{name: "originalzone hours", msg: msg, script: `require ["date", "relational", "fileinto"];
if allof(header :is "from" "boss@example.com",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "17")
{ fileinto "urgent"; }`, want: "fileinto \"urgent\"\n"},
		{name: "local zone is UTC", msg: msg, script: `require ["date", "fileinto", "variables"];
if date :matches "date" "hour" "*" { fileinto "${1}"; }`, want: "fileinto \"16\"\n"},
		{name: "zone", msg: msg, script: `require ["date", "fileinto", "variables"];
if date :zone "+0100" :matches "date" "iso8601" "*" { fileinto "${0}"; }`, want: "fileinto \"2007-02-26T17:30:00+01:00\"\n"},
		{name: "weekend", msg: msg, script: `require ["date", "relational", "fileinto"];
if anyof(date :is "received" "weekday" "0", date :is "received" "weekday" "6") { fileinto "weekend"; }`, want: "fileinto \"weekend\"\n"},
		{name: "index", msg: msg, script: `require ["date", "index", "fileinto"];
if date :index 2 :is "received" "weekday" "6" { fileinto "wrong"; }
if date :index 1 :last :is "received" "date" "2007-02-26" { fileinto "last"; }`, want: "fileinto \"last\"\n"},
		{name: "currentdate folder", script: `require ["date", "variables", "fileinto", "mailbox"];
if currentdate :matches "month" "*" { set "month" "${1}"; }
if currentdate :matches "year"  "*" { set "year" "${1}"; }
fileinto :create "${month}-${year}";`, want: "fileinto \"07-2007\" :create\n"},
		{name: "currentdate vacation window", script: `require ["date", "relational", "vacation"];
if allof(currentdate :value "ge" "date" "2007-06-30",
         currentdate :value "le" "date" "2007-07-07")
{ vacation :days 7  "I'm away during the first week in July."; }`, want: "implicit-keep\nvacation \"I'm away during the first week in July.\" :period 168h0m0s\n"},
		{name: "parts", script: `require ["date", "variables", "fileinto"];
if currentdate :zone "-0500" :matches "std11" "*" { set "a" "${0}"; }
if currentdate :matches "julian" "*" { set "b" "${0}"; }
if currentdate :matches "time" "*" { set "c" "${0}"; }
if currentdate :matches "zone" "*" { set "d" "${0}"; }
if currentdate :matches "weekday" "*" { set "e" "${0}"; }
fileinto "${a}|${b}|${c}|${d}|${e}";`, want: "fileinto \"Mon, 02 Jul 2007 05:30:00 -0500|54283|10:30:00|+0000|1\"\n"},
		{name: "header index", msg: msg, script: `require ["index", "fileinto"];
if header :index 2 :contains "received" "from c" { fileinto "second"; }
if header :index 3 :contains "received" "" { fileinto "none"; }`, want: "fileinto \"second\"\n"},
		{name: "missing date header", msg: "Subject: x\n\nx\n", script: `require "date"; if date :matches "date" "year" "*" { discard; }`, want: "implicit-keep\n"},
		{name: "dynamic bad date part", script: `require ["date", "variables"]; set "p" "fortnight"; if currentdate :is "${p}" "x" { discard; }`, wantErr: "unknown date part"},
	})
	for _, bad := range []string{
		`require "date"; if currentdate :is "fortnight" "1" { stop; }`,
		`require "date"; if currentdate :zone "CET" :is "year" "1" { stop; }`,
		`require "date"; if date :last :is "date" "year" "1" { stop; }`,
		`require ["date", "index"]; if date :index 0 :is "date" "year" "1" { stop; }`,
		`require ["date", "index"]; if date :last :is "date" "year" "1" { stop; }`,
	} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}

// TestRFC5293 runs editheader.
func TestRFC5293(t *testing.T) {
	msg := `Received: from x by y; Mon, 26 Feb 2007 14:10:00 +0000
X-Sieve-Filtered: <kim@job.example.com>
From: a@example.org
X-Spam: one
Subject: hi
X-Spam: two

body
`
	s, err := Parse(`require ["editheader", "fileinto"];
if not header :contains "X-Sieve-Filtered" ["<kim@job.example.com>", "<kim@home.example.com>"] {
    addheader "X-Sieve-Filtered" "<kim@job.example.com>";
    redirect "kim@home.example.com";
}
addheader "X-Note" "first";
addheader :last "X-Note" "Grüße";
deleteheader :index 1 :last "X-Spam";
deleteheader :contains "X-Sieve-Filtered" "job";
deleteheader "Received";
addheader "Auto-Submitted" "no";
if header :is "X-Note" "Grüße" { fileinto "seen-own-edit"; }
if exists "X-Sieve-Filtered" { fileinto "wrong"; }`)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), s, MessageFromBytes(crlfMsg(msg)), testEnv, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	wantHdr := "X-Note: first\r\n" +
		"Received: from x by y; Mon, 26 Feb 2007 14:10:00 +0000\r\n" +
		"From: a@example.org\r\n" +
		"X-Spam: one\r\n" +
		"Subject: hi\r\n" +
		"X-Note: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" +
		"\r\n"
	if string(res.Header) != wantHdr {
		t.Errorf("header:\n%q\nwant\n%q", res.Header, wantHdr)
	}
	if got := res.String(); !strings.HasPrefix(got, "fileinto \"seen-own-edit\"\n") || strings.Contains(got, "wrong") || strings.Contains(got, "redirect") {
		t.Errorf("result:\n%s", got)
	}
	if len(res.HeaderEdits) != 4 {
		t.Errorf("edits %+v", res.HeaderEdits)
	}

	if _, ok := res.AddedPrefix(); ok {
		t.Error("AddedPrefix ok despite deleteheader")
	}
	// The edited header replaces the original in a new blob.
	m := MessageFromBytes(crlfMsg(msg))
	blob := m.WithHeader(res.Header)
	buf := make([]byte, blob.Size())
	if n, err := blob.ReadAt(buf, 0); n != len(buf) || err != nil && err != io.EOF {
		t.Fatalf("read %d %v", n, err)
	}
	if string(buf) != wantHdr+"body\r\n" {
		t.Errorf("blob %q", buf)
	}
	tail := make([]byte, 8)
	if n, _ := blob.ReadAt(tail, int64(len(wantHdr))-2); string(tail[:n]) != "\r\nbody\r\n" {
		t.Errorf("tail %q", tail[:n])
	}
	s2, _ := Parse(`require "editheader"; addheader "X-A" "1"; addheader "X-B" "2";`)
	res2, _ := Run(context.Background(), s2, MessageFromBytes(crlfMsg(msg)), testEnv, testOpts())
	if p, ok := res2.AddedPrefix(); !ok || string(p) != "X-B: 2\r\nX-A: 1\r\n" || !strings.HasPrefix(string(res2.Header), string(p)+"Received:") {
		t.Errorf("AddedPrefix %q %v", p, ok)
	}

	runCases(t, []runCase{
		{name: "value too long", script: `require ["editheader", "variables"]; set "a" "0123456789"; set "a" "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}"; set "a" "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}";
addheader "X" "${a}${a}${a}${a}${a}${a}${a}${a}${a}";`, wantErr: "longer than"},
		{name: "redirect once", script: `require ["editheader"];
if not header :contains "X-Sieve-Filtered" ["<kim@job.example.com>", "<kim@home.example.com>"] {
    addheader "X-Sieve-Filtered" "<kim@job.example.com>";
    redirect "kim@home.example.com";
}`, want: "redirect \"kim@home.example.com\"\naddheader \"X-Sieve-Filtered\" \"<kim@job.example.com>\"\n"},
	})
	for _, bad := range []string{
		`require "editheader"; addheader "Bad Name" "x";`,
		`require "editheader"; addheader "X:y" "x";`,
		`require "editheader"; deleteheader :last "X";`,
		`addheader "X" "y";`,
	} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}

// TestRFC5429 runs reject and ereject.
func TestRFC5429(t *testing.T) {
	runCases(t, []runCase{
		{name: "reject", script: `require ["reject"];
if header :contains "from" "coyote@desert.example.org" {
    reject text:
I am not taking mail from you, and I don't
want your birdseed, either!
.
    ;
}`, want: "reject \"I am not taking mail from you, and I don't\\r\\nwant your birdseed, either!\\r\\n\"\n"},
		{name: "ereject spamtest", env: &Envelope{From: "a@b.example", To: "c@d.example", SpamScore: 7}, script: `require ["ereject", "spamtest", "fileinto", "comparator-i;ascii-numeric", "relational"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "6" {
    ereject text:
AntiSpam engine thinks your message is spam.
.
    ;
} elsif spamtest :value "ge" :comparator "i;ascii-numeric" "4" {
    fileinto "Suspect";
}`, want: "ereject \"AntiSpam engine thinks your message is spam.\\r\\n\"\n"},
		{name: "suspect", env: &Envelope{From: "a@b.example", To: "c@d.example", SpamScore: 5}, script: `require ["ereject", "spamtest", "fileinto", "comparator-i;ascii-numeric", "relational"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "6" { ereject "no"; }
elsif spamtest :value "ge" :comparator "i;ascii-numeric" "4" { fileinto "Suspect"; }`, want: "fileinto \"Suspect\"\n"},
		{name: "reject twice", script: `require "reject"; reject "a"; reject "b";`, wantErr: "more than one reject"},
		{name: "reject and vacation", script: `require ["reject", "vacation"]; vacation "a"; reject "b";`, wantErr: "vacation"},
		{name: "reject after fileinto", script: `require ["reject", "fileinto"]; fileinto "x"; reject "b";`, wantErr: "cannot be combined"},
		{name: "keep after reject", script: `require ["reject"]; reject "b"; keep;`, wantErr: "cannot be combined"},
	})
}

// TestRFC5183 runs environment, with the vendor items.
func TestRFC5183(t *testing.T) {
	env := &Envelope{From: "a@example.org", To: "me@example.com", RemoteIP: "192.0.2.1", RemoteHost: "mail.example.org",
		SPF: "pass", DKIM: "pass", DKIMDomains: []string{"Example.org", "esp.example"}, DMARC: "fail", DMARCPolicy: "quarantine",
		Vendor: map[string]string{"vnd.mailstead.custom": "yes"}}
	runCases(t, []runCase{
		{name: "items", env: env, script: `require ["environment", "variables", "fileinto"];
if environment :matches "domain" "*" { set "a" "${0}"; }
if environment :matches "host" "*" { set "b" "${0}"; }
if environment :matches "location" "*" { set "c" "${0}"; }
if environment :matches "name" "*" { set "d" "${0}"; }
if environment :matches "phase" "*" { set "e" "${0}"; }
if environment :matches "remote-host" "*" { set "f" "${0}"; }
if environment :matches "remote-ip" "*" { set "g" "${0}"; }
if environment :matches "version" "*" { set "h" "${0}"; }
fileinto "${a}|${b}|${c}|${d}|${e}|${f}|${g}|${h}";`, want: "fileinto \"example.com|mx.example.com|MDA|mailstead|during|mail.example.org|192.0.2.1|1.0\"\n"},
		{name: "remote-host", env: env, script: `require "environment"; if environment :matches "remote-host" "*.example.org" { discard; }`, want: "discard\n"},
		{name: "dmarc quarantine", env: env, script: `require ["environment", "fileinto"];
if allof (environment :is "vnd.mailstead.dmarc" "fail",
          environment :is "vnd.mailstead.dmarc-policy" "quarantine") { fileinto "Junk"; }`, want: "fileinto \"Junk\"\n"},
		{name: "spf and dkim domains", env: env, script: `require ["environment", "fileinto"];
if allof (environment :is "vnd.mailstead.spf" "pass", environment :contains "vnd.mailstead.dkim-domains" " example.org ") { fileinto "trusted"; }`, want: "fileinto \"trusted\"\n"},
		{name: "dkim domains no partial", env: env, script: `require ["environment"];
if environment :contains "vnd.mailstead.dkim-domains" " ample.org " { discard; }`, want: "implicit-keep\n"},
		{name: "unknown item is false", env: env, script: `require "environment"; if environment :contains "vnd.other" "" { discard; }`, want: "implicit-keep\n"},
		{name: "unset verdict is false", script: `require "environment"; if environment :contains "vnd.mailstead.spf" "" { discard; }`, want: "implicit-keep\n"},
		{name: "vendor map", env: env, script: `require "environment"; if environment :is "vnd.mailstead.custom" "yes" { discard; }`, want: "discard\n"},
	})
}

// TestRFC5490 runs mailbox.
func TestRFC5490(t *testing.T) {
	runCases(t, []runCase{
		{name: "exists", script: `require ["fileinto", "reject", "mailbox"];
if mailboxexists "Partners" { fileinto "Partners"; } else { reject "This message was not accepted by the Mailstore"; }`, want: "fileinto \"Partners\"\n"},
		{name: "missing", script: `require ["fileinto", "reject", "mailbox"];
if mailboxexists ["Partners", "Nope"] { fileinto "Partners"; } else { reject "no"; }`, want: "reject \"no\"\n"},
		{name: "create", script: `require ["fileinto", "mailbox"]; fileinto :create "INBOX.folder";`, want: "fileinto \"INBOX.folder\" :create\n"},
	})
	if err := Check(`require "fileinto"; fileinto :create "x";`); err == nil {
		t.Error(":create accepted without mailbox")
	}
}

// TestRFC3894 runs copy.
func TestRFC3894(t *testing.T) {
	runCases(t, []runCase{
		{name: "redirect copy", script: `require ["copy"]; if header :contains "to" "roadrunner" { redirect :copy "roadrunner@example.org"; }`,
			want: "implicit-keep\nredirect :copy \"roadrunner@example.org\"\n"},
		{name: "fileinto copy", script: `require ["copy", "fileinto"]; fileinto :copy "incoming";`, want: "fileinto \"incoming\"\nimplicit-keep\n"},
	})
}

// TestRFC5235 runs spamtest and virustest.
func TestRFC5235(t *testing.T) {
	req := `require ["spamtest", "virustest", "fileinto", "relational", "comparator-i;ascii-numeric"];` + "\n"
	script := req + `if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.unclassified"; }
elsif spamtest :value "ge" :comparator "i;ascii-numeric" "3" { fileinto "INBOX.spam-trap"; }
if virustest :value "eq" :comparator "i;ascii-numeric" "5" { discard; }`
	runCases(t, []runCase{
		{name: "untested", script: script, want: "fileinto \"INBOX.unclassified\"\n"},
		{name: "spam", env: &Envelope{From: "a@b.example", SpamScore: 8}, script: script, want: "fileinto \"INBOX.spam-trap\"\n"},
		{name: "virus", env: &Envelope{From: "a@b.example", SpamScore: 1, VirusScore: 5}, script: script, want: "discard\n"},
		{name: "percent", env: &Envelope{From: "a@b.example", SpamScore: 8, SpamPercent: 85}, script: `require ["spamtestplus", "relational", "comparator-i;ascii-numeric"];
if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "80" { discard; }`, want: "discard\n"},
	})
}

// TestRegex covers the regex extension, including the upper-case pattern
// with the default comparator that go-sieve gets wrong.
func TestRegex(t *testing.T) {
	msg := "From: stephan+sieve@it.example.com\nSubject: [URGENT] Server down\nList-Id: Users <users.lists.example.org>\n\nx\n"
	runCases(t, []runCase{
		{name: "upper-case pattern casemap", msg: msg, script: `require ["regex", "fileinto"]; if header :regex "subject" "^\\[URGENT\\]" { fileinto "urgent"; }`, want: "fileinto \"urgent\"\n"},
		{name: "upper-case pattern lower text", msg: "Subject: [urgent] x\n\nx\n", script: `require ["regex", "fileinto"]; if header :regex "subject" "^\\[URGENT\\]" { fileinto "urgent"; }`, want: "fileinto \"urgent\"\n"},
		{name: "octet is case-sensitive", msg: "Subject: [urgent] x\n\nx\n", script: `require ["regex", "fileinto"]; if header :regex :comparator "i;octet" "subject" "^\\[URGENT\\]" { fileinto "urgent"; }`, want: "implicit-keep\n"},
		{name: "address regex", msg: msg, script: `require ["regex", "fileinto"];
if address :regex :comparator "i;ascii-casemap" "from" ["stephan(\\+.*)?@it\\.example\\.com", "stephan(\\+.*)?@friep\\.example\\.com"] { fileinto "me"; }`, want: "fileinto \"me\"\n"},
		{name: "groups as variables", msg: msg, script: `require ["regex", "variables", "fileinto"];
if header :regex "list-id" "<([a-z]+)\\.lists\\.(.*)>" { fileinto "lists/${1}/${2}"; }`, want: "fileinto \"lists/users/example.org\"\n"},
		{name: "posix class", msg: msg, script: `require ["regex", "fileinto"]; if header :regex "subject" "^\\[[[:upper:]]+\\]" { fileinto "x"; }`, want: "fileinto \"x\"\n"},
		{name: "dynamic pattern", msg: msg, script: `require ["regex", "variables", "fileinto"];
set "p" "down$"; if header :regex "subject" "server ${p}" { fileinto "x"; }`, want: "fileinto \"x\"\n"},
		{name: "dynamic invalid pattern", msg: msg, script: `require ["regex", "variables"];
set "p" "(("; if header :regex "subject" "${p}" { discard; }`, wantErr: "regular expression"},
		{name: "quoteregex", msg: msg, script: `require ["regex", "variables", "fileinto"];
set :quoteregex "p" "[URGENT]"; if header :regex "subject" "^${p}" { fileinto "x"; }`, want: "fileinto \"x\"\n"},
	})
	for _, bad := range []string{
		`require "regex"; if header :regex "subject" "((" { stop; }`,
		`require "regex"; if header :regex "subject" "(a)\\1" { stop; }`,
		`require "regex"; if header :regex "subject" "x{1001}" { stop; }`,
		`if header :regex "subject" "x" { stop; }`,
	} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}

// TestCheckErrors checks validation errors and their positions.
func TestCheckErrors(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`filein "x";`, `1:1: unknown command "filein"`},
		{"keep;\n  fileinto \"x\";", `2:3: fileinto needs require "fileinto"`},
		{`require "fileinto"; fileinto;`, `1:21: fileinto needs 1 positional argument, found 0`},
		{`require "bogus";`, `1:9: unsupported extension "bogus"`},
		{`keep; require "fileinto";`, `1:7: require must come before any other command`},
		{`if true { require "fileinto"; }`, `1:11: require must come before any other command`},
		{`if header :is "a" { stop; }`, `1:4: header needs 2 positional arguments, found 1`},
		{`if header :is :contains "a" "b" { stop; }`, `1:15: tags :is and :contains exclude each other`},
		{`if header "a" :is "b" { stop; }`, `1:15: tag :is must come before the other arguments of header`},
		{`if header :bogus "a" "b" { stop; }`, `1:11: unknown tag :bogus for header`},
		{`if size 100 { stop; }`, `1:4: size needs 0 positional arguments, found 1`},
		{`if size :over "x" { stop; }`, `1:9: tag :over needs a number argument`},
		{`if size { stop; }`, `1:4: size needs :over or :under`},
		{`elsif true { stop; }`, `1:1: elsif without a preceding if`},
		{`if true { stop; } else { stop; } else { stop; }`, `1:34: else without a preceding if`},
		{`if true stop;`, `1:1: if needs a block`},
		{`if true;`, `1:1: if needs a block`},
		{`keep`, `1:5: expected ";" or a block after command "keep", found end of script`},
		{`keep { stop; }`, `1:1: keep takes no block`},
		{`if keep { stop; }`, `1:4: keep is a command, not a test`},
		{`header "a" "b";`, `1:1: header is a test, not a command`},
		{`if allof true { stop; }`, `1:4: allof needs a test list in parentheses`},
		{`if not (true, false) { stop; }`, `1:4: not needs exactly one test`},
		{`if anyof () { stop; }`, `1:11: expected a test, found ")"`},
		{`redirect ["a@example.com"];`, `1:10: argument 1 of redirect must be a string`},
		{`redirect "not an address";`, `1:10: redirect: invalid address "not an address"`},
		{"redirect \"x\n", `1:10: unterminated string`},
		{"/* open", `1:1: unterminated comment`},
		{"reject text:\nno end\n", `1:8: unterminated multi-line string (missing a line with a single ".")`},
		{"keep; 12x;", `1:9: unexpected character 'x' after number`},
		{"keep; @", `1:7: unexpected character '@'`},
		{"if header :contains [\"a\" \"b\"] \"c\" { stop; }", `1:26: expected "," or "]" in string list, found string`},
		{"if size :over 99999999999999999999 { stop; }", `1:15: number too large`},
		{"keep;\n# comment\n/* multi\nline */ bogus;", `4:9: unknown command "bogus"`},
		{"if header :is \"Subject\" \"ä\" { fileinto \"x\"; }", `1:31: fileinto needs require "fileinto"`},
		{"keep; \xff", `1:7: script is not valid UTF-8`},
		{`require "envelope"; if envelope "bcc" "x" { stop; }`, `1:33: unsupported envelope part "bcc"`},
		{`require "fileinto"; fileinto "";`, `1:30: fileinto: empty mailbox name`},
	} {
		err := Check(c.script)
		if err == nil || err.Error() != c.want {
			t.Errorf("Check(%q):\n got %v\nwant %s", c.script, err, c.want)
		}
	}
	deep := strings.Repeat("if true {", MaxDepth+1) + strings.Repeat("}", MaxDepth+1)
	if err := Check(deep); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep nesting: %v", err)
	}
	deepTest := "if " + strings.Repeat("not ", MaxDepth+2) + "true { stop; }"
	if err := Check(deepTest); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep tests: %v", err)
	}
	if err := Check(strings.Repeat(" ", MaxScriptSize+1)); err == nil {
		t.Error("oversized script accepted")
	}
	for _, ok := range []string{
		"",
		"# only a comment",
		`require ["comparator-i;octet", "comparator-i;ascii-casemap"]; keep;`,
		"KEEP;",
		`if header :comparator "i;octet" :matches "a" "b" { stop; }`,
		`if address :all :comparator "i;ascii-casemap" :is "from" "a@b" { stop; }`,
		"require \"vacation\";\nvacation text: # comment here\nline\n.\n;",
	} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q): %v", ok, err)
		}
	}
}

func TestLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString(`require ["fileinto", "variables"];`)
	for i := 0; i < 70; i++ {
		b.WriteString(`fileinto "f${x}` + strings.Repeat("a", i) + `";`)
	}
	runCases(t, []runCase{
		{name: "too many actions", script: b.String(), wantErr: "more than 64 actions"},
		{name: "variable length cut", script: `require ["variables", "fileinto"];
set "a" "0123456789abcdef"; set "a" "${a}${a}${a}${a}${a}${a}${a}${a}"; set "a" "${a}${a}${a}${a}${a}${a}${a}${a}";
set "a" "${a}${a}${a}${a}${a}${a}${a}${a}"; set "a" "${a}${a}${a}${a}${a}${a}${a}${a}";
set :length "l" "${a}"; fileinto "${l}";`, want: "fileinto \"16384\"\n"},
	})
	big := "Subject: big\n\n" + strings.Repeat("a", 1<<20) + "\n"
	runCases(t, []runCase{
		{name: "work limit", msg: big, script: `require "body"; if body :raw :matches "` + strings.Repeat("*a", 4096) + `b" { discard; }`, wantErr: "work limit"},
		{name: "many body tests are cached", msg: big, script: `require "body";` + strings.Repeat(`if body :contains "b" { discard; }`, 100), want: "implicit-keep\n"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, _ := Parse("keep;")
	res, err := Run(ctx, s, MessageFromBytes([]byte("x")), testEnv, testOpts())
	if err == nil || !res.ImplicitKeep {
		t.Errorf("cancelled: %v %v", res, err)
	}
}
