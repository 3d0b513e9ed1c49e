package forward

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/arc"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dkim"
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/srs"
)

func TestForward(t *testing.T) {
	ctx := context.Background()
	s, err := srs.New([]string{"test-secret"}, srs.Options{Now: func() time.Time { return time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	keys := dkim.Open(t.TempDir(), nil)
	key, err := keys.Generate("example.org", "fwd", "rsa2048")
	if err != nil {
		t.Fatal(err)
	}
	txt, _ := key.TXT()
	f := New(Options{
		SRS: s, Keys: keys, AuthServID: "mail.example.org",
		IsLocalDomain: func(_ context.Context, d string) (bool, error) { return d == "example.org", nil },
	})
	msg := []byte("From: Ext <x@sender.example>\r\nTo: team@example.org\r\nSubject: hi\r\nDate: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n\r\nbody\r\n")
	env := delivery.Envelope{From: "x@sender.example", Recipients: []delivery.Target{{Address: address.Address{Local: "hook", Domain: "example.org"}, HTTP: []string{"paperless"}}}}
	ext := []routing.External{
		{Address: "a@gmail.example", Mode: "srs", Alias: "team@example.org"},
		{Address: "b@gmail.example", Mode: "srs", Alias: "team@example.org"},
		{Address: "c@other.example", Mode: "srs", Alias: "team@example.org"},
	}
	qs, err := f.Forward(ctx, env, bytes.NewReader(msg), ext, []string{"paperless", "paperless"})
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 3 {
		t.Fatalf("%d entries: %+v", len(qs), qs)
	}
	gm := qs[0]
	if gm.Destination != "gmail.example" || len(gm.Recipients) != 2 || !strings.HasPrefix(gm.From, "SRS0=") || !strings.HasSuffix(gm.From, "@example.org") {
		t.Fatalf("gmail entry %+v", gm)
	}
	if orig, err := s.Reverse(gm.From); err != nil || orig != "x@sender.example" {
		t.Fatalf("SRS reverse %q %v", orig, err)
	}
	// The ARC set verifies over the message as it will be sent.
	sent := append(append([]byte{}, gm.Prefix...), msg...)
	res, err := arc.Verify(ctx, bytes.NewReader(sent), func(_ context.Context, name string) ([]string, error) {
		if name == "fwd._domainkey.example.org" {
			return []string{txt}, nil
		}
		return nil, io.EOF
	})
	if err != nil || res.Status != arc.StatusPass || res.Instance != 1 {
		t.Fatalf("ARC verify: %+v %v\n%s", res, err, gm.Prefix)
	}
	if hook := qs[2]; hook.Transport != "http" || hook.Destination != "paperless" || hook.Recipients[0].Address != "hook@example.org" || hook.From != "x@sender.example" {
		t.Fatalf("webhook entry %+v", hook)
	}
	// Local senders keep their address; bounces keep theirs; <> stays <>.
	for _, c := range []struct {
		from string
		ext  routing.External
		want string
	}{
		{"me@example.org", ext[0], "me@example.org"},
		{"", ext[0], ""},
		{"", routing.External{Address: "x@sender.example", Mode: routing.ModeSRSReverse, Alias: "SRS0=...@example.org"}, ""},
	} {
		qs, err := f.Forward(ctx, delivery.Envelope{From: c.from}, bytes.NewReader(msg), []routing.External{c.ext}, nil)
		if err != nil || len(qs) != 1 || qs[0].From != c.want {
			t.Fatalf("from %q: %+v %v", c.from, qs, err)
		}
	}
}
