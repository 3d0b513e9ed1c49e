package delivery

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mailstead/mailstead/internal/store"
)

type replies struct {
	mu  sync.Mutex
	got []string
}

func (r *replies) Inject(_ context.Context, from string, rcpts []string, msg []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, from+"|"+strings.Join(rcpts, ",")+"|"+string(msg))
	return nil
}

func TestSieveFiltering(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bob := f.acc["bob@example.org"]
	put := func(acc int64, name, src string, activate bool) {
		t.Helper()
		if err := f.st.PutSieveScript(ctx, store.SieveScript{AccountID: acc, Name: name, Content: src}); err != nil {
			t.Fatal(err)
		}
		if activate {
			if err := f.st.ActivateSieveScript(ctx, acc, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(bob.ID, "main", `require ["fileinto", "mailbox", "imap4flags", "vacation", "reject"];
if header :contains "subject" "invoice" { addflag "\\Flagged"; fileinto :create "Invoices"; stop; }
if header :contains "subject" "reject me" { reject "no thanks"; stop; }
if header :contains "subject" "away" { vacation :days 1 "I am away."; }
if header :contains "subject" "forward" { redirect "bob@elsewhere.example"; }
`, true)
	put(0, "before", `require ["fileinto"]; if header :is "x-spam-test" "yes" { fileinto "Junk"; stop; }`, false)
	rp := &replies{}
	fw := &recordingForwarder{}
	d := New(f.st, Options{SubaddressDelimiter: "+", TmpDir: t.TempDir(), Sieve: f.st, VacationLog: StoreReplyLog{St: f.st}, Replier: rp, Forwarder: fw, Hostname: "mail.example.org"})
	send := func(subject string, extra string) ([]store.Delivered, error) {
		tg, err := d.Resolve(ctx, "bob@example.org")
		if err != nil {
			t.Fatal(err)
		}
		return d.Deliver(ctx, Envelope{From: "x@example.net", Recipients: []Target{tg}},
			SpoolBytes([]byte("From: x@example.net\r\nTo: bob@example.org\r\nSubject: "+subject+"\r\n"+extra+"\r\nbody\r\n")))
	}
	mailbox := func(id int64) string {
		mb, err := f.st.GetMailboxByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return mb.Name
	}
	out, err := send("your invoice", "")
	if err != nil || len(out) != 1 || mailbox(out[0].MailboxID) != "Invoices" {
		t.Fatalf("fileinto: %v %+v", err, out)
	}
	ms, _ := f.st.GetMessages(ctx, out[0].MailboxID, []uint32{out[0].UID})
	if ms[0].Flags&store.FlagFlagged == 0 {
		t.Fatalf("flags %v", ms[0].Flags)
	}
	out, err = send("hello", "X-Spam-Test: yes\r\n")
	if err != nil || len(out) != 1 || mailbox(out[0].MailboxID) != "Junk" {
		t.Fatalf("global before script: %v %+v", err, out)
	}
	if _, err := send("please reject me", ""); !errors.Is(err, ErrSieveReject) || !strings.Contains(err.Error(), "no thanks") {
		t.Fatalf("reject: %v", err)
	}
	out, err = send("I am away?", "")
	if err != nil || len(out) != 1 || mailbox(out[0].MailboxID) != "INBOX" {
		t.Fatalf("vacation keep: %v %+v", err, out)
	}
	if len(rp.got) != 1 || !strings.HasPrefix(rp.got[0], "|x@example.net|") || !strings.Contains(rp.got[0], "I am away.") {
		t.Fatalf("vacation replies %q", rp.got)
	}
	send("away again", "") // within :days: no second response
	if len(rp.got) != 1 {
		t.Fatalf("vacation sent %d times", len(rp.got))
	}
	if _, err := send("forward this", ""); err != nil || fw.ext != 1 {
		t.Fatalf("redirect: %v, forwarder saw %d", err, fw.ext)
	}
	// A script that fails at run time delivers to INBOX (nothing lost).
	put(bob.ID, "main", `require "variables"; set "a" "x"; if string :matches "${a}" "*" { fileinto "Nope"; }`, true)
	out, err = send("whatever", "")
	if err != nil || len(out) != 1 {
		t.Fatalf("after script change: %v %+v", err, out)
	}
}

// TestSieveEditheader: a script that deletes a field and appends one at
// the end gets a copy with exactly that header; another recipient of the
// same message, without the script, gets the message as it arrived; the
// fields delivery adds (Return-Path, Delivered-To) stay in front.
func TestSieveEditheader(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bob, alice := f.acc["bob@example.org"], f.acc["Alice.Smith@example.org"]
	if err := f.st.PutSieveScript(ctx, store.SieveScript{AccountID: bob.ID, Name: "edit", Content: `require ["editheader"];
deleteheader :contains "X-Tracking" "pixel";
addheader :last "X-Filed-By" "sieve";
addheader "X-First" "top";
`}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.ActivateSieveScript(ctx, bob.ID, "edit"); err != nil {
		t.Fatal(err)
	}
	d := New(f.st, Options{SubaddressDelimiter: "+", TmpDir: t.TempDir(), Sieve: f.st, Hostname: "mail.example.org"})
	msg := "From: x@example.net\r\nX-Tracking: pixel-123\r\nX-Tracking: keep-me\r\nTo: bob@example.org\r\nSubject: edited\r\n\r\nbody\r\n"
	out, err := d.Deliver(ctx, Envelope{From: "x@example.net", Recipients: resolveAll(t, d, "bob@example.org", "alice.smith@example.org")}, SpoolBytes([]byte(msg)))
	if err != nil || len(out) != 2 {
		t.Fatalf("deliver: %v %+v", err, out)
	}
	_, bobs := stored(t, f.st, bob)
	_, alices := stored(t, f.st, alice)
	if len(bobs) != 1 || len(alices) != 1 {
		t.Fatalf("bob %d, alice %d messages", len(bobs), len(alices))
	}
	wantBob := "Return-Path: <x@example.net>\r\nDelivered-To: bob@example.org\r\n" +
		"X-First: top\r\nFrom: x@example.net\r\nX-Tracking: keep-me\r\nTo: bob@example.org\r\nSubject: edited\r\nX-Filed-By: sieve\r\n\r\nbody\r\n"
	if bobs[0] != wantBob {
		t.Errorf("bob's copy:\n%q\nwant\n%q", bobs[0], wantBob)
	}
	if !strings.HasSuffix(alices[0], msg) || !strings.Contains(alices[0], "Delivered-To: alice.smith@example.org\r\n") {
		t.Errorf("alice's copy changed:\n%q", alices[0])
	}
}
