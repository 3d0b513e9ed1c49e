package forward

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dkim"
	"github.com/mailstead/mailstead/internal/mailauth"
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

func sent(t *testing.T, q store.QueueEntry, blob []byte) []byte {
	t.Helper()
	return append(append([]byte{}, q.Prefix...), blob[q.Skip:]...)
}

func TestRewriteModeAndReplies(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.AddDomain(ctx, store.Domain{Name: "example.org"})
	owner, _ := st.CreateAccount(ctx, store.Account{Address: "me@example.org", PasswordHash: "x"})
	if _, err := st.AddAlias(ctx, store.Alias{Address: "shop-1@example.org", Targets: []string{"me@gmail.example"}, ForwardMode: "rewrite", OwnerAccountID: owner.ID}); err != nil {
		t.Fatal(err)
	}
	keys := dkim.Open(t.TempDir(), nil)
	key, err := keys.Generate("example.org", "s1", "rsa2048")
	if err != nil {
		t.Fatal(err)
	}
	txt, _ := key.TXT()
	lookup := func(name string) ([]string, error) {
		if name == "s1._domainkey.example.org" {
			return []string{txt}, nil
		}
		return nil, io.EOF
	}
	f := New(Options{Store: st, Signer: keys, AuthServID: "mail.example.org"})

	orig := []byte("From: \"Shop Sales\" <sales@shop.example>\r\nReply-To: noreply@shop.example\r\nDKIM-Signature: v=1; d=shop.example; b=xyz\r\nTo: shop-1@example.org\r\nSubject: Your order\r\n\r\nThanks for your order.\r\n")
	env := delivery.Envelope{From: "bounces@shop.example"}
	qs, err := f.Forward(ctx, env, bytes.NewReader(orig), []routing.External{{Address: "me@gmail.example", Mode: "rewrite", Alias: "shop-1@example.org", Owner: owner.ID}}, nil)
	if err != nil || len(qs) != 1 {
		t.Fatalf("%v %+v", err, qs)
	}
	q := qs[0]
	msg := sent(t, q, orig)
	if q.From != "shop-1@example.org" || q.Destination != "gmail.example" {
		t.Fatalf("entry %+v", q)
	}
	s := string(msg)
	for _, bad := range []string{"<sales@shop.example>", "Reply-To:", "d=shop.example"} {
		if strings.Contains(s, bad) {
			t.Errorf("rewritten message still has %q:\n%s", bad, s)
		}
	}
	if !strings.Contains(s, "@example.org>") || !strings.Contains(s, "ra-") || !strings.Contains(s, "Subject: Your order") || !strings.HasSuffix(s, "\r\n\r\nThanks for your order.\r\n") {
		t.Fatalf("rewritten message:\n%s", s)
	}
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.org" {
		t.Fatalf("DKIM of the rewritten message: %v %+v", err, vs)
	}
	// The reverse alias resolves back to the shop.
	fromLine := s[strings.Index(s, "From:"):]
	raAddr := fromLine[strings.Index(fromLine, "<")+1 : strings.Index(fromLine, ">")]
	ra, err := st.GetReverseAlias(ctx, raAddr)
	if err != nil || ra.Contact != "sales@shop.example" || ra.Alias != "shop-1@example.org" {
		t.Fatalf("reverse alias %q: %+v %v", raAddr, ra, err)
	}

	// The owner replies from Gmail to the reverse alias: it goes to the
	// shop as if from the alias, without the owner's traces.
	reply := []byte("From: Me <me@gmail.example>\r\nTo: " + raAddr + "\r\nReceived: from laptop (1.2.3.4)\r\nSubject: Re: Your order\r\n\r\nWhere is it?\r\n")
	ext := []routing.External{{Address: ra.Contact, Mode: routing.ModeReply, Alias: ra.Alias}}
	pass := &mailauth.Result{}
	pass.DMARC.Status = "pass"
	qs, err = f.Forward(ctx, delivery.Envelope{From: "me@gmail.example", Auth: pass}, bytes.NewReader(reply), ext, nil)
	if err != nil || len(qs) != 1 {
		t.Fatalf("reply: %v %+v", err, qs)
	}
	rs := string(sent(t, qs[0], reply))
	if qs[0].From != "shop-1@example.org" || !strings.Contains(rs, "From: <shop-1@example.org>") || !strings.Contains(rs, "To: <sales@shop.example>") ||
		strings.Contains(rs, "gmail.example") || strings.Contains(rs, "1.2.3.4") || !strings.Contains(rs, "Where is it?") {
		t.Fatalf("reply as sent:\n%s", rs)
	}
	// Anyone else using the reverse alias is dropped; so is the owner's
	// address when its authentication failed.
	for _, e := range []delivery.Envelope{{From: "spammer@evil.example"}, {From: "me@gmail.example", Auth: &mailauth.Result{}}} {
		qs, err = f.Forward(ctx, e, bytes.NewReader(reply), ext, nil)
		if err != nil || len(qs) != 0 {
			t.Fatalf("unauthorised reply from %s: %v %+v", e.From, err, qs)
		}
	}
}
