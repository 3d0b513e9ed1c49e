package delivery

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/dkim"
	"github.com/mailstead/mailstead/internal/store"
)

func TestSubmitLocalAndRemote(t *testing.T) {
	f := newFixture(t)
	keys := dkim.Open(t.TempDir(), nil)
	if _, err := keys.Generate("example.org", "s1", dkim.AlgoEd25519); err != nil {
		t.Fatal(err)
	}
	d := New(f.st, Options{TmpDir: t.TempDir()})
	s := NewSubmitter(d, SubmitOptions{Signer: keys, IsNoKey: func(err error) bool { return errors.Is(err, dkim.ErrNoKey) }})
	ctx := context.Background()
	bob := f.acc["bob@example.org"]
	msg := "From: Bob <bob@example.org>\nTo: x@remote.example, y@other.example\nSubject: hi\n\nbody\n"
	env := Envelope{From: "bob@example.org", Recipients: resolveAll(t, d, "admin@example.org"), Account: &bob}
	remote := []RemoteRecipient{
		{Address: "x@remote.example", Notify: []string{"FAILURE"}, ORCPT: "rfc822;x@remote.example"},
		{Address: "X@Remote.Example"}, // same mailbox, once
		{Address: "y@other.example"},
		{Address: "z@remote.example"},
	}
	out, err := s.Submit(ctx, env, remote, DSNOptions{Ret: "hdrs", EnvID: "e1"}, SpoolBytes([]byte(msg)))
	if err != nil {
		t.Fatal(err)
	}
	var queued []int64
	local := 0
	for _, o := range out {
		if o.QueueID != 0 {
			queued = append(queued, o.QueueID)
		} else {
			local++
		}
	}
	if local != 1 || len(queued) != 2 {
		t.Fatalf("deliveries %+v: want 1 local copy and 2 queue entries (one per domain)", out)
	}
	if _, c := stored(t, f.st, f.acc["admin@example.org"]); len(c) != 1 {
		t.Fatalf("local copy missing")
	}
	byDest := map[string]store.QueueEntry{}
	for _, id := range queued {
		e, err := f.st.QueueGet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		byDest[e.Destination] = e
	}
	r := byDest["remote.example"]
	if len(r.Recipients) != 2 || r.Recipients[0].Notify[0] != "FAILURE" || r.Recipients[0].ORCPT != "rfc822;x@remote.example" ||
		r.DSNRet != "HDRS" || r.DSNEnvID != "e1" || r.AccountID != bob.ID || r.From != "bob@example.org" || r.Transport != "smtp" {
		t.Fatalf("remote.example entry %+v", r)
	}
	if !strings.HasPrefix(string(r.Prefix), "DKIM-Signature:") || !strings.Contains(string(r.Prefix), "d=example.org") || !strings.Contains(string(r.Prefix), "s=s1") {
		t.Fatalf("prefix %q: want a DKIM signature for example.org", r.Prefix)
	}
	if len(byDest["other.example"].Recipients) != 1 {
		t.Fatalf("other.example entry %+v", byDest["other.example"])
	}

	// No key for the From domain: queued unsigned.
	msg2 := "From: someone@nokey.example\r\n\r\nx\r\n"
	out, err = s.Submit(ctx, Envelope{From: "bob@example.org"}, []RemoteRecipient{{Address: "x@remote.example"}}, DSNOptions{}, SpoolBytes([]byte(msg2)))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.st.QueueGet(ctx, out[0].QueueID)
	if !strings.Contains(string(e.Prefix), "d=example.org") {
		// Falls back to the envelope sender's domain, which has a key.
		t.Fatalf("fallback signing domain: prefix %q", e.Prefix)
	}
	if _, err := s.Submit(ctx, Envelope{From: "bob@example.org"}, []RemoteRecipient{{Address: "not an address"}}, DSNOptions{}, SpoolBytes([]byte(msg2))); err == nil {
		t.Fatal("bad remote address accepted")
	}
}

func TestInject(t *testing.T) {
	f := newFixture(t)
	d := New(f.st, Options{TmpDir: t.TempDir()})
	s := NewSubmitter(d, SubmitOptions{})
	ctx := context.Background()
	dsn := []byte("From: MAILER-DAEMON@mail.example.org\r\nSubject: bounce\r\n\r\nx\r\n")
	if err := s.Inject(ctx, "", []string{"bob@example.org", "someone@remote.example", "ghost@example.org"}, dsn); err != nil {
		t.Fatal(err)
	}
	_, c := stored(t, f.st, f.acc["bob@example.org"])
	if len(c) != 1 || !strings.HasPrefix(c[0], "Return-Path: <>\r\n") {
		t.Fatalf("local DSN: %q", c)
	}
	es, _ := f.st.QueueList(ctx)
	if len(es) != 1 || es[0].From != "" || es[0].Recipients[0].Address != "someone@remote.example" {
		t.Fatalf("queued DSN: %+v", es)
	}
}
