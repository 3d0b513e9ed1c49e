package delivery

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/store"
)

// recordingForwarder queues one SMTP entry per external target and one
// HTTP entry per webhook target, as the real forwarder does.
type recordingForwarder struct{ ext, http int }

func (f *recordingForwarder) Forward(_ context.Context, env Envelope, _ store.Blob, ext []routing.External, http []string) ([]store.QueueEntry, error) {
	var out []store.QueueEntry
	for _, e := range ext {
		f.ext++
		out = append(out, store.QueueEntry{From: env.From, Transport: "smtp", Destination: "ext", Recipients: []store.QueueRecipient{{Address: e.Address}}})
	}
	for _, h := range http {
		f.http++
		out = append(out, store.QueueEntry{From: env.From, Transport: "http", Destination: h, Recipients: []store.QueueRecipient{{Address: h}}})
	}
	return out, nil
}

func TestAliasRouting(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, a := range []store.Alias{
		{Address: "team@example.org", Targets: []string{"bob@example.org", "admin@example.org", "full@example.org"}},
		{Address: "onlyfull@example.org", Targets: []string{"full@example.org"}},
		{Address: "@pm.example", Targets: []string{"boss@pm.example"}},
		{Address: "old@example.org", Disabled: true, DisabledAction: "drop"},
		{Address: "gone@example.org", Disabled: true, DisabledAction: "reject"},
		{Address: "fwd@example.org", Targets: []string{"bob@example.org", "someone@elsewhere.example", "http:paperless"}},
	} {
		if _, err := f.st.AddAlias(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	plain := New(f.st, Options{SubaddressDelimiter: "+", TmpDir: t.TempDir()})
	fw := &recordingForwarder{}
	withFwd := New(f.st, Options{SubaddressDelimiter: "+", TmpDir: t.TempDir(), Forwarder: fw})

	tests := []struct {
		rcpt  string
		d     *Deliverer
		local []string
		drop  bool
		err   error
	}{
		{rcpt: "team@example.org", d: plain, local: []string{"admin@example.org", "bob@example.org"}}, // full@ skipped, others get it
		{rcpt: "team+x@example.org", d: plain, local: []string{"admin@example.org", "bob@example.org"}},
		{rcpt: "onlyfull@example.org", d: plain, err: ErrMailboxFull},
		{rcpt: "anything@pm.example", d: plain, local: []string{"boss@pm.example"}},
		{rcpt: "abuse@pm.example", d: plain, local: []string{"abuse@pm.example"}}, // the real account beats the catch-all
		{rcpt: "old@example.org", d: plain, drop: true},
		{rcpt: "gone@example.org", d: plain, err: ErrUnknownRecipient},
		{rcpt: "fwd@example.org", d: plain, err: ErrForwardUnavailable},
		{rcpt: "fwd@example.org", d: withFwd, local: []string{"bob@example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			tg, err := tt.d.Resolve(ctx, tt.rcpt)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			var got []string
			for _, l := range tg.Local {
				got = append(got, l.Account.Address)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.local) || tg.Drop != tt.drop {
				t.Fatalf("local %v drop %v", got, tg.Drop)
			}
		})
	}

	// Delivering to the team alias stores one copy per member account,
	// all sharing one blob.
	team, _ := plain.Resolve(ctx, "team@example.org")
	out, err := plain.Deliver(ctx, Envelope{From: "x@example.net", Recipients: []Target{team}}, SpoolBytes([]byte("Subject: t\r\n\r\nhi\r\n")))
	if err != nil || len(out) != 2 {
		t.Fatalf("deliver to alias: %v %+v", err, out)
	}
	// A message only for a dropping alias is accepted and stored nowhere.
	old, _ := plain.Resolve(ctx, "old@example.org")
	out, err = plain.Deliver(ctx, Envelope{From: "x@example.net", Recipients: []Target{old}}, SpoolBytes([]byte("Subject: t\r\n\r\nhi\r\n")))
	if err != nil || len(out) != 0 {
		t.Fatalf("deliver to dropping alias: %v %+v", err, out)
	}
	// Forwarding: the local copy and the queue entries commit together.
	fwd, _ := withFwd.Resolve(ctx, "fwd@example.org")
	out, err = withFwd.Deliver(ctx, Envelope{From: "x@example.net", Recipients: []Target{fwd}}, SpoolBytes([]byte("Subject: f\r\n\r\nhi\r\n")))
	if err != nil || len(out) != 3 || out[0].UID == 0 || out[1].QueueID == 0 || out[2].QueueID == 0 {
		t.Fatalf("forward: %v %+v", err, out)
	}
	if fw.ext != 1 || fw.http != 1 {
		t.Fatalf("forwarder saw %d external, %d http", fw.ext, fw.http)
	}
	q, err := f.st.QueueList(ctx)
	if err != nil || len(q) != 2 || q[0].Recipients[0].Address != "someone@elsewhere.example" || q[1].Transport != "http" {
		t.Fatalf("queue: %v %+v", err, q)
	}
}
