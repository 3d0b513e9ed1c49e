// Package storetest is the conformance suite every store.Store backend
// runs: the same behaviour, tested the same way, for SQLite now and
// PostgreSQL later.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// Opener returns a fresh, empty store for one subtest. The suite closes it.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Domains", testDomains},
		{"Accounts", testAccounts},
		{"Mailboxes", testMailboxes},
		{"RenameInbox", testRenameInbox},
		{"Deliver", testDeliver},
		{"Quota", testQuota},
		{"Flags", testFlags},
		{"CopyMoveExpunge", testCopyMoveExpunge},
		{"Changes", testChanges},
		{"PruneExpunged", testPruneExpunged},
		{"Threads", testThreads},
		{"Metadata", testMetadata},
		{"Watch", testWatch},
		{"Recent", testRecent},
		{"Import", testImport},
		{"DeleteFreesBlobs", testDeleteFreesBlobs},
		{"Queue", testQueue},
		{"Aliases", testAliases},
		{"Sieve", testSieve},
		{"ReverseAliases", testReverseAliases},
		{"Replies", testReplies},
		{"TLSResults", testTLSResults},
		{"Concurrency", testConcurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := open(t)
			defer st.Close()
			tt.fn(t, st)
		})
	}
}

func ctx() context.Context { return context.Background() }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func setup(t *testing.T, st store.Store, addrs ...string) []store.Account {
	t.Helper()
	domains := map[string]bool{}
	var out []store.Account
	for _, a := range addrs {
		d := a[bytes.IndexByte([]byte(a), '@')+1:]
		if !domains[d] {
			if err := st.AddDomain(ctx(), store.Domain{Name: d}); err != nil && !errors.Is(err, store.ErrExists) {
				t.Fatal(err)
			}
			domains[d] = true
		}
		acc, err := st.CreateAccount(ctx(), store.Account{Address: a, PasswordHash: "x"})
		must(t, err)
		out = append(out, acc)
	}
	return out
}

func mailbox(t *testing.T, st store.Store, acc int64, name string) store.Mailbox {
	t.Helper()
	mb, err := st.GetMailbox(ctx(), acc, name)
	must(t, err)
	return mb
}

func deliver(t *testing.T, st store.Store, body string, rcpts ...store.Recipient) []store.Delivered {
	t.Helper()
	d, err := st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte(body)), Summary: []byte("sum"), Recipients: rcpts})
	must(t, err)
	return d
}

func content(t *testing.T, st store.Store, m store.Message) string {
	t.Helper()
	c, err := store.OpenContent(ctx(), st, m)
	must(t, err)
	defer c.Close()
	b, err := io.ReadAll(c.Reader())
	must(t, err)
	if int64(len(b)) != m.Size || c.Size() != m.Size {
		t.Fatalf("content size %d, content.Size %d, RFC822.SIZE %d", len(b), c.Size(), m.Size)
	}
	return string(b)
}

func testDomains(t *testing.T, st store.Store) {
	must(t, st.AddDomain(ctx(), store.Domain{Name: "example.org"}))
	wantErr(t, st.AddDomain(ctx(), store.Domain{Name: "example.org"}), store.ErrExists)
	wantErr(t, st.AddDomain(ctx(), store.Domain{Name: "bad domain"}), store.ErrInvalid)
	must(t, st.AddDomain(ctx(), store.Domain{Name: "xn--bcher-kva.example"}))
	ds, err := st.ListDomains(ctx())
	must(t, err)
	if len(ds) != 2 || ds[0].Name != "example.org" {
		t.Fatalf("domains %+v", ds)
	}
	must(t, st.UpdateDomain(ctx(), store.Domain{Name: "example.org", Postmaster: "admin@example.org", DMARCReject: "junk", DMARCQuarantine: "accept"}))
	d, err := st.GetDomain(ctx(), "example.org")
	must(t, err)
	if d.Postmaster != "admin@example.org" || d.DMARCReject != "junk" || d.DMARCQuarantine != "accept" {
		t.Fatalf("domain not updated: %+v", d)
	}
	wantErr(t, st.UpdateDomain(ctx(), store.Domain{Name: "example.org", DMARCReject: "explode"}), store.ErrInvalid)
	_, err = st.GetDomain(ctx(), "nope.example")
	wantErr(t, err, store.ErrNotFound)
	setup(t, st, "a@example.org")
	wantErr(t, st.DeleteDomain(ctx(), "example.org"), store.ErrMailboxInUse)
	must(t, st.DeleteDomain(ctx(), "xn--bcher-kva.example"))
	wantErr(t, st.DeleteDomain(ctx(), "xn--bcher-kva.example"), store.ErrNotFound)
}

func testAccounts(t *testing.T, st store.Store) {
	_, err := st.CreateAccount(ctx(), store.Account{Address: "x@unknown.example"})
	wantErr(t, err, store.ErrNotFound)
	_, err = st.CreateAccount(ctx(), store.Account{Address: "no-at-sign"})
	wantErr(t, err, store.ErrInvalid)
	acc := setup(t, st, "Alice@example.org")[0]
	_, err = st.CreateAccount(ctx(), store.Account{Address: "alice@example.org"})
	wantErr(t, err, store.ErrExists)
	got, err := st.GetAccount(ctx(), "ALICE@example.org")
	must(t, err)
	if got.ID != acc.ID || got.Address != "Alice@example.org" || got.Domain != "example.org" {
		t.Fatalf("lookup: %+v", got)
	}
	mbs, err := st.ListMailboxes(ctx(), acc.ID)
	must(t, err)
	roles := map[string]string{}
	for _, m := range mbs {
		roles[m.Name] = m.Role
		if !m.Subscribed || m.UIDValidity == 0 || m.UIDNext != 1 || m.ObjectID == "" {
			t.Fatalf("default mailbox %+v", m)
		}
	}
	for _, d := range store.DefaultMailboxes {
		if r, ok := roles[d.Name]; !ok || r != d.Role {
			t.Fatalf("default mailbox %s role %q, have %v", d.Name, d.Role, roles)
		}
	}
	got.PasswordHash, got.QuotaBytes, got.Disabled = "new", 1000, true
	must(t, st.UpdateAccount(ctx(), got))
	got2, err := st.GetAccountByID(ctx(), acc.ID)
	must(t, err)
	if got2.PasswordHash != "new" || got2.QuotaBytes != 1000 || !got2.Disabled {
		t.Fatalf("update: %+v", got2)
	}
	setup(t, st, "bob@example.com")
	all, err := st.ListAccounts(ctx(), "")
	must(t, err)
	org, err := st.ListAccounts(ctx(), "example.org")
	must(t, err)
	if len(all) != 2 || len(org) != 1 {
		t.Fatalf("list: %d all, %d in example.org", len(all), len(org))
	}
	must(t, st.DeleteAccount(ctx(), acc.ID))
	_, err = st.GetAccount(ctx(), "alice@example.org")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, st.DeleteAccount(ctx(), acc.ID), store.ErrNotFound)

	// DeleteAccountIfEmpty: refused while any mailbox (not only INBOX)
	// holds a message, with nothing changed; done once they are gone.
	bob, err := st.GetAccount(ctx(), "bob@example.com")
	must(t, err)
	arch := mailbox(t, st, bob.ID, "Archive")
	d := deliver(t, st, "Subject: keep me\r\n\r\nbody\r\n", store.Recipient{AccountID: bob.ID, MailboxID: arch.ID})
	wantErr(t, st.DeleteAccountIfEmpty(ctx(), bob.ID), store.ErrNotEmpty)
	if ms, err := st.GetMessages(ctx(), arch.ID, []uint32{d[0].UID}); err != nil || len(ms) != 1 {
		t.Fatalf("message after a refused DeleteAccountIfEmpty: %v %v", ms, err)
	}
	_, err = st.Expunge(ctx(), arch.ID, []uint32{d[0].UID})
	must(t, err)
	must(t, st.DeleteAccountIfEmpty(ctx(), bob.ID))
	_, err = st.GetAccount(ctx(), "bob@example.com")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, st.DeleteAccountIfEmpty(ctx(), bob.ID), store.ErrNotFound)
}

func testMailboxes(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	mb, err := st.CreateMailbox(ctx(), acc.ID, "Work/Projects/X", "", 0)
	must(t, err)
	if mb.Name != "Work/Projects/X" || mb.UIDNext != 1 {
		t.Fatalf("%+v", mb)
	}
	mailbox(t, st, acc.ID, "Work")
	mailbox(t, st, acc.ID, "Work/Projects")
	_, err = st.CreateMailbox(ctx(), acc.ID, "Work", "", 0)
	wantErr(t, err, store.ErrExists)
	_, err = st.CreateMailbox(ctx(), acc.ID, "inbox", "", 0)
	wantErr(t, err, store.ErrExists)
	_, err = st.CreateMailbox(ctx(), acc.ID, "a//b", "", 0)
	wantErr(t, err, store.ErrInvalid)
	_, err = st.CreateMailbox(ctx(), acc.ID, "Sent2", store.RoleSent, 0)
	wantErr(t, err, store.ErrExists)
	in, err := st.GetMailbox(ctx(), acc.ID, "iNbOx")
	must(t, err)
	if in.Name != "INBOX" {
		t.Fatal(in.Name)
	}
	// Rename moves children.
	work := mailbox(t, st, acc.ID, "Work")
	must(t, st.RenameMailbox(ctx(), work.ID, "Jobs"))
	x := mailbox(t, st, acc.ID, "Jobs/Projects/X")
	if x.ID != mb.ID || x.UIDValidity != mb.UIDValidity {
		t.Fatalf("rename changed identity: %+v vs %+v", x, mb)
	}
	_, err = st.GetMailbox(ctx(), acc.ID, "Work/Projects")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, st.RenameMailbox(ctx(), work.ID, "Sent"), store.ErrExists)
	// Rename into a new hierarchy creates parents.
	must(t, st.RenameMailbox(ctx(), x.ID, "Old/Stuff/X"))
	mailbox(t, st, acc.ID, "Old/Stuff")
	// Delete and recreate: UIDVALIDITY must differ.
	must(t, st.DeleteMailbox(ctx(), x.ID))
	again, err := st.CreateMailbox(ctx(), acc.ID, "Old/Stuff/X", "", 0)
	must(t, err)
	if again.UIDValidity == x.UIDValidity {
		t.Fatalf("recreated mailbox reuses UIDVALIDITY %d", x.UIDValidity)
	}
	wantErr(t, st.DeleteMailbox(ctx(), in.ID), store.ErrSpecialMailbx)
	// Subscriptions may name missing mailboxes.
	must(t, st.SetSubscribed(ctx(), acc.ID, "Ghost", true))
	must(t, st.SetSubscribed(ctx(), acc.ID, "Trash", false))
	subs, err := st.Subscriptions(ctx(), acc.ID)
	must(t, err)
	if !slices.Contains(subs, "Ghost") || slices.Contains(subs, "Trash") {
		t.Fatalf("subscriptions %v", subs)
	}
	// Roles move.
	must(t, st.SetMailboxRole(ctx(), again.ID, store.RoleArchive))
	if m := mailbox(t, st, acc.ID, "Archive"); m.Role != "" {
		t.Fatalf("old archive keeps role %q", m.Role)
	}
	if m := mailbox(t, st, acc.ID, "Old/Stuff/X"); m.Role != store.RoleArchive {
		t.Fatalf("role %q", m.Role)
	}
}

func testRenameInbox(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	in := mailbox(t, st, acc.ID, "INBOX")
	deliver(t, st, "Subject: 1\r\n\r\nx\r\n", store.Recipient{AccountID: acc.ID})
	deliver(t, st, "Subject: 2\r\n\r\ny\r\n", store.Recipient{AccountID: acc.ID})
	must(t, st.RenameMailbox(ctx(), in.ID, "OldInbox"))
	old := mailbox(t, st, acc.ID, "OldInbox")
	ms, err := st.ListMessages(ctx(), old.ID)
	must(t, err)
	if len(ms) != 2 {
		t.Fatalf("renamed INBOX has %d messages", len(ms))
	}
	ms, err = st.ListMessages(ctx(), in.ID)
	must(t, err)
	if len(ms) != 0 {
		t.Fatalf("INBOX still has %d messages", len(ms))
	}
	if m := mailbox(t, st, acc.ID, "INBOX"); m.ID != in.ID {
		t.Fatal("INBOX identity changed")
	}
}

func testDeliver(t *testing.T, st store.Store) {
	accs := setup(t, st, "a@example.org", "b@example.org")
	body := "From: x@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
	d := deliver(t, st, body,
		store.Recipient{AccountID: accs[0].ID, Prefix: []byte("Delivered-To: a@example.org\r\n")},
		store.Recipient{AccountID: accs[1].ID, Prefix: []byte("Delivered-To: b@example.org\r\n"), Flags: store.FlagFlagged, Keywords: []string{"$Work"}},
		store.Recipient{AccountID: accs[1].ID, MailboxName: "Lists/Go", CreateMailbox: true},
		store.Recipient{AccountID: accs[1].ID, MailboxName: "Missing"},
	)
	if len(d) != 4 || d[0].UID != 1 || d[1].UID != 1 || d[2].UID != 1 || d[3].UID != 2 {
		t.Fatalf("delivered %+v", d)
	}
	lists := mailbox(t, st, accs[1].ID, "Lists/Go")
	if d[2].MailboxID != lists.ID {
		t.Fatal("fileinto :create did not create mailbox")
	}
	inboxB := mailbox(t, st, accs[1].ID, "INBOX")
	if d[3].MailboxID != inboxB.ID {
		t.Fatal("missing mailbox without create must fall back to INBOX")
	}
	msgs, err := st.GetMessages(ctx(), d[1].MailboxID, []uint32{1, 2, 99})
	must(t, err)
	if len(msgs) != 2 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	want := "Delivered-To: b@example.org\r\n" + body
	if got := content(t, st, m); got != want {
		t.Fatalf("content %q", got)
	}
	if m.Flags != store.FlagFlagged || !slices.Equal(m.Keywords, []string{"$Work"}) || string(m.Summary) != "sum" || m.EmailID == "" || m.ModSeq <= 0 {
		t.Fatalf("message %+v", m)
	}
	ma, err := st.GetMessages(ctx(), d[0].MailboxID, []uint32{1})
	must(t, err)
	if ma[0].BlobID != m.BlobID {
		t.Fatal("recipients of one delivery must share one blob")
	}
	if ma[0].EmailID != m.EmailID {
		t.Fatal("copies of one message share EMAILID")
	}
	st2, err := st.MailboxStatus(ctx(), inboxB.ID)
	must(t, err)
	if st2.Messages != 2 || st2.Unseen != 2 || st2.UIDNext != 3 || st2.Size != m.Size+int64(len(body)) || st2.FirstUnseenUID != 1 {
		t.Fatalf("status %+v", st2)
	}
	a, err := st.GetAccountByID(ctx(), accs[1].ID)
	must(t, err)
	if a.UsedBytes != m.Size+2*int64(len(body)) {
		t.Fatalf("used bytes %d", a.UsedBytes)
	}
	// Atomicity: one bad recipient fails the whole delivery.
	_, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte(body)), Recipients: []store.Recipient{{AccountID: accs[0].ID}, {AccountID: 999999}}})
	if err == nil {
		t.Fatal("delivery to a missing account succeeded")
	}
	ms, err := st.ListMessages(ctx(), d[0].MailboxID)
	must(t, err)
	if len(ms) != 1 {
		t.Fatalf("failed delivery left %d messages", len(ms))
	}
	_, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader(nil)})
	wantErr(t, err, store.ErrInvalid)
	_, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte("x")), Recipients: []store.Recipient{{AccountID: accs[0].ID, Keywords: []string{"bad kw"}}}})
	wantErr(t, err, store.ErrInvalid)
}

func testQuota(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	acc.QuotaBytes = 100
	must(t, st.UpdateAccount(ctx(), acc))
	deliver(t, st, string(make([]byte, 60)), store.Recipient{AccountID: acc.ID})
	_, err := st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader(make([]byte, 60)), Recipients: []store.Recipient{{AccountID: acc.ID}}})
	wantErr(t, err, store.ErrOverQuota)
	deliver(t, st, string(make([]byte, 60)), store.Recipient{AccountID: acc.ID, IgnoreQuota: true})
	in := mailbox(t, st, acc.ID, "INBOX")
	arch := mailbox(t, st, acc.ID, "Archive")
	_, err = st.Copy(ctx(), in.ID, []uint32{1}, arch.ID)
	wantErr(t, err, store.ErrOverQuota)
	// Moving within the account does not count twice.
	_, err = st.Move(ctx(), in.ID, []uint32{1}, arch.ID)
	must(t, err)
	_, err = st.Expunge(ctx(), arch.ID, []uint32{1})
	must(t, err)
	a, _ := st.GetAccountByID(ctx(), acc.ID)
	if a.UsedBytes != 60 {
		t.Fatalf("used %d after expunge", a.UsedBytes)
	}
}

func testFlags(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	for i := 0; i < 3; i++ {
		deliver(t, st, fmt.Sprintf("Subject: %d\r\n\r\n", i), store.Recipient{AccountID: acc.ID})
	}
	in := mailbox(t, st, acc.ID, "INBOX")
	r, err := st.StoreFlags(ctx(), in.ID, []uint32{1, 2}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen, Keywords: []string{"$Label1"}})
	must(t, err)
	if len(r.Updated) != 2 || r.Updated[0].Flags != store.FlagSeen || r.Updated[0].ModSeq != r.Updated[1].ModSeq {
		t.Fatalf("add: %+v", r)
	}
	ms1 := r.Updated[0].ModSeq
	// No-op changes do not bump MODSEQ.
	r, err = st.StoreFlags(ctx(), in.ID, []uint32{1}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen})
	must(t, err)
	if len(r.Updated) != 0 {
		t.Fatalf("no-op updated %+v", r.Updated)
	}
	r, err = st.StoreFlags(ctx(), in.ID, []uint32{1}, store.FlagUpdate{Op: store.FlagsRemove, Keywords: []string{"$label1"}})
	must(t, err)
	if len(r.Updated) != 1 || len(r.Updated[0].Keywords) != 0 || r.Updated[0].ModSeq <= ms1 {
		t.Fatalf("remove: %+v", r)
	}
	r, err = st.StoreFlags(ctx(), in.ID, []uint32{1, 2, 3}, store.FlagUpdate{Op: store.FlagsReplace, Flags: store.FlagDeleted | store.FlagAnswered, UnchangedSince: ms1})
	must(t, err)
	if !slices.Equal(r.Failed, []uint32{1}) || len(r.Updated) != 2 {
		t.Fatalf("unchangedsince: %+v", r)
	}
	ms, err := st.ListMessages(ctx(), in.ID)
	must(t, err)
	if ms[1].Flags != store.FlagDeleted|store.FlagAnswered || ms[0].Flags != store.FlagSeen {
		t.Fatalf("flags after replace: %v %v", ms[0].Flags, ms[1].Flags)
	}
	status, err := st.MailboxStatus(ctx(), in.ID)
	must(t, err)
	if status.Deleted != 2 || status.Unseen != 2 || status.HighestModSeq != ms[2].ModSeq {
		t.Fatalf("status %+v", status)
	}
}

func testCopyMoveExpunge(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	for i := 0; i < 4; i++ {
		deliver(t, st, fmt.Sprintf("Subject: %d\r\n\r\n", i), store.Recipient{AccountID: acc.ID, Flags: store.FlagSeen})
	}
	in := mailbox(t, st, acc.ID, "INBOX")
	arch := mailbox(t, st, acc.ID, "Archive")
	cr, err := st.Copy(ctx(), in.ID, []uint32{2, 4, 77}, arch.ID)
	must(t, err)
	if !slices.Equal(cr.SrcUIDs, []uint32{2, 4}) || !slices.Equal(cr.DstUIDs, []uint32{1, 2}) || cr.UIDValidity != arch.UIDValidity {
		t.Fatalf("copy %+v", cr)
	}
	mr, err := st.Move(ctx(), in.ID, []uint32{1, 2}, arch.ID)
	must(t, err)
	if !slices.Equal(mr.DstUIDs, []uint32{3, 4}) {
		t.Fatalf("move %+v", mr)
	}
	ms, _ := st.ListMessages(ctx(), in.ID)
	if len(ms) != 2 || ms[0].UID != 3 {
		t.Fatalf("after move %+v", ms)
	}
	am, _ := st.GetMessages(ctx(), arch.ID, []uint32{4})
	if content(t, st, am[0]) != "Subject: 1\r\n\r\n" || am[0].Flags != store.FlagSeen {
		t.Fatalf("moved message %+v", am[0])
	}
	// Expunge nil = all \Deleted.
	_, err = st.StoreFlags(ctx(), arch.ID, []uint32{1, 3}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagDeleted})
	must(t, err)
	ex, err := st.Expunge(ctx(), arch.ID, nil)
	must(t, err)
	if !slices.Equal(ex, []uint32{1, 3}) {
		t.Fatalf("expunged %v", ex)
	}
	ex, err = st.Expunge(ctx(), arch.ID, []uint32{4, 100})
	must(t, err)
	if !slices.Equal(ex, []uint32{4}) {
		t.Fatalf("expunged %v", ex)
	}
	_, err = st.Move(ctx(), in.ID, []uint32{3}, in.ID)
	wantErr(t, err, store.ErrInvalid)
}

func testChanges(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	in := mailbox(t, st, acc.ID, "INBOX")
	for i := 0; i < 3; i++ {
		deliver(t, st, "x", store.Recipient{AccountID: acc.ID})
	}
	c, err := st.Changes(ctx(), in.ID, 0)
	must(t, err)
	if len(c.Changed) != 3 || len(c.Expunged) != 0 {
		t.Fatalf("changes %+v", c)
	}
	base := c.HighestModSeq
	_, err = st.StoreFlags(ctx(), in.ID, []uint32{2}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen})
	must(t, err)
	_, err = st.Expunge(ctx(), in.ID, []uint32{3})
	must(t, err)
	c, err = st.Changes(ctx(), in.ID, base)
	must(t, err)
	if len(c.Changed) != 1 || c.Changed[0].UID != 2 || len(c.Expunged) != 1 || c.Expunged[0].UID != 3 || c.HighestModSeq <= base || c.ExpungesPruned {
		t.Fatalf("changes since %d: %+v", base, c)
	}
	c, err = st.Changes(ctx(), in.ID, c.HighestModSeq)
	must(t, err)
	if len(c.Changed)+len(c.Expunged) != 0 {
		t.Fatalf("changes after highest: %+v", c)
	}
}

// testPruneExpunged: records made before the cutoff go and raise the
// floor; Changes below the floor says so and still lists the newer
// records, Changes at or above the floor is exact, and mailboxes without
// old records are untouched.
func testPruneExpunged(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	in := mailbox(t, st, acc.ID, "INBOX")
	arch := mailbox(t, st, acc.ID, "Archive")
	for i := 0; i < 6; i++ {
		deliver(t, st, "x", store.Recipient{AccountID: acc.ID})
	}
	deliver(t, st, "y", store.Recipient{AccountID: acc.ID, MailboxID: arch.ID})
	base, err := st.Changes(ctx(), in.ID, 0)
	must(t, err)
	_, err = st.Expunge(ctx(), in.ID, []uint32{1, 2})
	must(t, err)
	old, err := st.Changes(ctx(), in.ID, base.HighestModSeq)
	must(t, err)
	floor := old.HighestModSeq // the MODSEQ of the old expunge
	if len(old.Expunged) != 2 || old.Expunged[0].ModSeq != floor {
		t.Fatalf("before pruning: %+v", old)
	}
	// Timestamps need only be ordered: leave a gap either side of the
	// cutoff so any clock resolution of a backend separates them.
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	_, err = st.Expunge(ctx(), in.ID, []uint32{4})
	must(t, err)
	_, err = st.Expunge(ctx(), arch.ID, []uint32{1})
	must(t, err)
	n, err := st.PruneExpunged(ctx(), cutoff)
	must(t, err)
	if n != 2 {
		t.Fatalf("pruned %d records, want 2", n)
	}
	for _, since := range []int64{0, base.HighestModSeq, floor - 1} {
		c, err := st.Changes(ctx(), in.ID, since)
		must(t, err)
		if !c.ExpungesPruned || len(c.Expunged) != 1 || c.Expunged[0].UID != 4 || c.Expunged[0].ModSeq <= floor {
			t.Fatalf("changes since %d (floor %d): %+v", since, floor, c)
		}
	}
	c, err := st.Changes(ctx(), in.ID, floor)
	must(t, err)
	if c.ExpungesPruned || len(c.Expunged) != 1 || c.Expunged[0].UID != 4 {
		t.Fatalf("changes since the floor %d: %+v", floor, c)
	}
	c, err = st.Changes(ctx(), in.ID, c.Expunged[0].ModSeq)
	must(t, err)
	if c.ExpungesPruned || len(c.Expunged) != 0 {
		t.Fatalf("changes after the last expunge: %+v", c)
	}
	// The other mailbox's record is newer than the cutoff.
	c, err = st.Changes(ctx(), arch.ID, 0)
	must(t, err)
	if c.ExpungesPruned || len(c.Expunged) != 1 {
		t.Fatalf("archive changes: %+v", c)
	}
	// Nothing left to prune; an earlier cutoff never lowers the floor.
	n, err = st.PruneExpunged(ctx(), time.Time{})
	must(t, err)
	if n != 0 {
		t.Fatalf("pruned %d more", n)
	}
	if c, _ := st.Changes(ctx(), in.ID, floor-1); !c.ExpungesPruned {
		t.Fatalf("floor lowered: %+v", c)
	}
	// Everything goes with a cutoff in the future.
	n, err = st.PruneExpunged(ctx(), time.Now().Add(time.Hour))
	must(t, err)
	if n != 2 {
		t.Fatalf("pruned %d, want 2", n)
	}
	c, err = st.Changes(ctx(), arch.ID, 0)
	must(t, err)
	if !c.ExpungesPruned || len(c.Expunged) != 0 {
		t.Fatalf("archive after pruning all: %+v", c)
	}
	// Messages still report their changes whatever the floor.
	c, err = st.Changes(ctx(), in.ID, 0)
	must(t, err)
	if len(c.Changed) != 3 {
		t.Fatalf("changed %+v", c.Changed)
	}
}

// threadOf delivers msg (LF line ends become CRLF) to each account's
// INBOX in one delivery and returns the thread ids, checking their syntax
// (RFC 8474 objectid).
func threadOf(t *testing.T, st store.Store, msg string, accs ...store.Account) []string {
	t.Helper()
	var rcpts []store.Recipient
	for _, a := range accs {
		rcpts = append(rcpts, store.Recipient{AccountID: a.ID})
	}
	ds := deliver(t, st, strings.ReplaceAll(msg, "\n", "\r\n"), rcpts...)
	var out []string
	for _, d := range ds {
		ms, err := st.GetMessages(ctx(), d.MailboxID, []uint32{d.UID})
		must(t, err)
		tid := ms[0].ThreadID
		if !validObjectID(tid) {
			t.Fatalf("thread id %q is not an RFC 8474 objectid", tid)
		}
		out = append(out, tid)
	}
	return out
}

func validObjectID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// testThreads: replies join the thread of what they refer to (either
// order of arrival), unrelated messages start their own, copies and moves
// keep the thread within an account, and accounts never share one.
func testThreads(t *testing.T, st store.Store) {
	accs := setup(t, st, "a@example.org", "b@example.org")
	a, b := accs[0], accs[1]
	root := threadOf(t, st, "Message-ID: <p1@example.com>\nSubject: plan\n\nhi\n", a, b)
	if root[0] == root[1] {
		t.Fatalf("accounts share thread %s", root[0])
	}
	tests := []struct {
		name string
		msg  string
		same bool // joins root's thread in account a
	}{
		{"in-reply-to", "Message-ID: <r1@example.com>\nIn-Reply-To: <p1@example.com>\n\nre\n", true},
		{"references only, folded", "Message-ID: <r2@example.com>\nReferences: <p1@example.com>\n <r1@example.com>\n\nre\n", true},
		{"unknown parent, known ancestor", "Message-ID: <r3@example.com>\nIn-Reply-To: <gone@example.com>\nReferences: <p1@example.com> <gone@example.com>\n\n", true},
		{"unrelated", "Message-ID: <other@example.com>\nSubject: plan\n\n", false},
		{"no header fields", "just text", false},
		{"same message again", "Message-ID: <p1@example.com>\n\n", true},
	}
	for _, tc := range tests {
		got := threadOf(t, st, tc.msg, a)[0]
		if (got == root[0]) != tc.same {
			t.Errorf("%s: thread %s, root %s, want same=%v", tc.name, got, root[0], tc.same)
		}
	}
	// The other account's reply joins its own copy's thread.
	if got := threadOf(t, st, "Message-ID: <rb@example.com>\nIn-Reply-To: <p1@example.com>\n\n", b)[0]; got != root[1] {
		t.Fatalf("account b reply in %s, want %s", got, root[1])
	}
	// A reply that arrives before its parent: the parent joins it, and
	// so does a sibling referring to the same parent.
	child := threadOf(t, st, "Message-ID: <c@example.com>\nIn-Reply-To: <late@example.com>\n\n", a)[0]
	if child == root[0] {
		t.Fatal("unrelated reply joined root thread")
	}
	if p := threadOf(t, st, "Message-ID: <late@example.com>\n\n", a)[0]; p != child {
		t.Fatalf("late parent in %s, child in %s", p, child)
	}
	if s := threadOf(t, st, "Message-ID: <s@example.com>\nReferences: <late@example.com>\n\n", a)[0]; s != child {
		t.Fatalf("sibling in %s, child in %s", s, child)
	}
	// Two unrelated messages without Message-ID are two threads.
	if x, y := threadOf(t, st, "Subject: a\n\n", a)[0], threadOf(t, st, "Subject: a\n\n", a)[0]; x == y {
		t.Fatalf("messages without ids share thread %s", x)
	}
	// Copy and move keep the thread id.
	in := mailbox(t, st, a.ID, "INBOX")
	arch := mailbox(t, st, a.ID, "Archive")
	cr, err := st.Copy(ctx(), in.ID, []uint32{1, 2}, arch.ID)
	must(t, err)
	mr, err := st.Move(ctx(), in.ID, []uint32{3}, arch.ID)
	must(t, err)
	ms, err := st.GetMessages(ctx(), arch.ID, append(cr.DstUIDs, mr.DstUIDs...))
	must(t, err)
	if len(ms) != 3 {
		t.Fatalf("copied %d messages", len(ms))
	}
	for _, m := range ms {
		if m.ThreadID != root[0] {
			t.Fatalf("copy of UID %d in thread %s, want %s", m.UID, m.ThreadID, root[0])
		}
	}
	// A copy into another account gets a thread of that account, one for
	// every copied message of the same source thread.
	bin := mailbox(t, st, b.ID, "INBOX")
	cr, err = st.Copy(ctx(), in.ID, []uint32{1, 2}, bin.ID)
	must(t, err)
	ms, err = st.GetMessages(ctx(), bin.ID, cr.DstUIDs)
	must(t, err)
	if len(ms) != 2 || ms[0].ThreadID == root[0] || ms[0].ThreadID != ms[1].ThreadID || !validObjectID(ms[0].ThreadID) {
		t.Fatalf("cross-account copies: %+v", ms)
	}
	// An explicit thread id (imports) is used as given; a bad one is
	// refused.
	d, err := st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte("Message-ID: <i@example.com>\r\n\r\n")), ThreadID: "Imported-1_x", Recipients: []store.Recipient{{AccountID: a.ID}}})
	must(t, err)
	ms, err = st.GetMessages(ctx(), d[0].MailboxID, []uint32{d[0].UID})
	must(t, err)
	if ms[0].ThreadID != "Imported-1_x" {
		t.Fatalf("imported thread %q", ms[0].ThreadID)
	}
	_, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte("x")), ThreadID: "bad id", Recipients: []store.Recipient{{AccountID: a.ID}}})
	wantErr(t, err, store.ErrInvalid)
}

func metaString(es []store.MetadataEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s=%q;", e.Name, e.Value)
	}
	return b.String()
}

// testMetadata: annotations per mailbox and per account, atomic updates,
// the limits, and their life with the mailbox (rename, delete) and the
// account.
func testMetadata(t *testing.T, st store.Store) {
	accs := setup(t, st, "a@example.org", "b@example.org")
	a, b := accs[0], accs[1]
	work, err := st.CreateMailbox(ctx(), a.ID, "Work", "", 0)
	must(t, err)
	in := mailbox(t, st, a.ID, "INBOX")
	get := func(acc, mb int64) string {
		t.Helper()
		es, err := st.GetMetadata(ctx(), acc, mb)
		must(t, err)
		return metaString(es)
	}
	if got := get(a.ID, work.ID); got != "" {
		t.Fatalf("new mailbox has %s", got)
	}
	must(t, st.SetMetadata(ctx(), a.ID, work.ID, []store.MetadataEntry{
		{Name: "/shared/comment", Value: []byte("team")},
		{Name: "/private/comment", Value: []byte("mine")},
		{Name: "/private/vendor/x/bin", Value: []byte{0, 1, 0xff}},
	}))
	must(t, st.SetMetadata(ctx(), a.ID, 0, []store.MetadataEntry{{Name: "/private/vendor/x/theme", Value: []byte("dark")}}))
	want := `/private/comment="mine";/private/vendor/x/bin="\x00\x01\xff";/shared/comment="team";`
	if got := get(a.ID, work.ID); got != want {
		t.Fatalf("work: %s, want %s", got, want)
	}
	if got := get(a.ID, in.ID); got != "" {
		t.Fatalf("INBOX: %s", got)
	}
	if got := get(a.ID, 0); got != `/private/vendor/x/theme="dark";` {
		t.Fatalf("server: %s", got)
	}
	// Another account sees none of it and cannot reach the mailbox.
	if got := get(b.ID, 0); got != "" {
		t.Fatalf("account b server entries: %s", got)
	}
	_, err = st.GetMetadata(ctx(), b.ID, work.ID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, st.SetMetadata(ctx(), b.ID, work.ID, []store.MetadataEntry{{Name: "/private/x", Value: []byte("y")}}), store.ErrNotFound)
	// Replace, delete (nil), and delete of a missing entry.
	must(t, st.SetMetadata(ctx(), a.ID, work.ID, []store.MetadataEntry{
		{Name: "/shared/comment", Value: []byte("new")},
		{Name: "/private/comment"},
		{Name: "/private/never"},
		{Name: "/private/empty", Value: []byte{}},
	}))
	want = `/private/empty="";/private/vendor/x/bin="\x00\x01\xff";/shared/comment="new";`
	if got := get(a.ID, work.ID); got != want {
		t.Fatalf("after update: %s, want %s", got, want)
	}
	// Limits, and atomicity: a failing update changes nothing.
	for _, tc := range []struct {
		entries []store.MetadataEntry
		err     error
	}{
		{[]store.MetadataEntry{{Name: "/shared/comment", Value: []byte("x")}, {Name: "/private/big", Value: make([]byte, store.MetadataMaxValue+1)}}, store.ErrTooLarge},
		{[]store.MetadataEntry{{Name: "/shared/comment", Value: []byte("x")}, {Name: "/other/x", Value: []byte("y")}}, store.ErrInvalid},
		{[]store.MetadataEntry{{Name: "/shared/Comment", Value: []byte("x")}}, store.ErrInvalid},
		{[]store.MetadataEntry{{Name: "/shared/", Value: []byte("x")}}, store.ErrInvalid},
		{[]store.MetadataEntry{{Name: "/private/a//b", Value: []byte("x")}}, store.ErrInvalid},
		{[]store.MetadataEntry{{Name: "/private/a*", Value: []byte("x")}}, store.ErrInvalid},
	} {
		wantErr(t, st.SetMetadata(ctx(), a.ID, work.ID, tc.entries), tc.err)
	}
	var many []store.MetadataEntry
	for i := 0; i < store.MetadataMaxEntries-2; i++ { // 3 exist: one too many
		many = append(many, store.MetadataEntry{Name: fmt.Sprintf("/private/n%03d", i), Value: []byte("v")})
	}
	many = append(many, store.MetadataEntry{Name: "/shared/comment", Value: []byte("x")})
	wantErr(t, st.SetMetadata(ctx(), a.ID, work.ID, many), store.ErrTooMany)
	if got := get(a.ID, work.ID); got != want {
		t.Fatalf("failed updates changed: %s", got)
	}
	// Exactly the limit is fine.
	must(t, st.SetMetadata(ctx(), a.ID, work.ID, many[:store.MetadataMaxEntries-3]))
	wantErr(t, st.SetMetadata(ctx(), a.ID, work.ID, []store.MetadataEntry{{Name: "/private/one-more", Value: []byte("x")}}), store.ErrTooMany)
	// The account's total.
	big := make([]byte, store.MetadataMaxValue)
	var fill []store.MetadataEntry
	for i := 0; i < store.MetadataMaxAccountBytes/store.MetadataMaxValue*3/4; i++ {
		fill = append(fill, store.MetadataEntry{Name: fmt.Sprintf("/private/big%03d", i), Value: big})
	}
	must(t, st.SetMetadata(ctx(), a.ID, in.ID, fill))
	trash := mailbox(t, st, a.ID, "Trash")
	wantErr(t, st.SetMetadata(ctx(), a.ID, trash.ID, fill[:len(fill)/2]), store.ErrOverQuota)
	if es, err := st.GetMetadata(ctx(), a.ID, trash.ID); err != nil || len(es) != 0 {
		t.Fatalf("over quota update kept %d entries, %v", len(es), err)
	}
	// Entries follow a rename and go with the mailbox.
	must(t, st.RenameMailbox(ctx(), work.ID, "Jobs"))
	if es, err := st.GetMetadata(ctx(), a.ID, work.ID); err != nil || len(es) != store.MetadataMaxEntries {
		t.Fatalf("after rename: %d entries, %v", len(es), err)
	}
	must(t, st.DeleteMailbox(ctx(), work.ID))
	_, err = st.GetMetadata(ctx(), a.ID, work.ID)
	wantErr(t, err, store.ErrNotFound)
	// A backend may reuse the id: nothing must come back with it.
	again, err := st.CreateMailbox(ctx(), a.ID, "Jobs", "", 0)
	must(t, err)
	if got := get(a.ID, again.ID); got != "" {
		t.Fatalf("recreated mailbox inherits %s", got)
	}
	must(t, st.DeleteAccount(ctx(), a.ID))
	c := setup(t, st, "a@example.org")[0]
	if got := get(c.ID, 0); got != "" {
		t.Fatalf("new account inherits %s", got)
	}
}

func testWatch(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	in := mailbox(t, st, acc.ID, "INBOX")
	ch, stop := st.Watch(in.ID)
	defer stop()
	ach, astop := st.WatchAccount(acc.ID)
	defer astop()
	deliver(t, st, "x", store.Recipient{AccountID: acc.ID})
	for _, c := range []<-chan struct{}{ch, ach} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatal("no notification after delivery")
		}
	}
	_, err := st.CreateMailbox(ctx(), acc.ID, "New", "", 0)
	must(t, err)
	select {
	case <-ach:
	case <-time.After(5 * time.Second):
		t.Fatal("no account notification after create")
	}
	stop()
	deliver(t, st, "y", store.Recipient{AccountID: acc.ID})
	select {
	case <-ch:
		t.Fatal("notified after stop")
	case <-time.After(50 * time.Millisecond):
	}
}

func testRecent(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	in := mailbox(t, st, acc.ID, "INBOX")
	deliver(t, st, "x", store.Recipient{AccountID: acc.ID})
	deliver(t, st, "y", store.Recipient{AccountID: acc.ID})
	first, err := st.ClaimRecent(ctx(), in.ID)
	must(t, err)
	if first != 1 {
		t.Fatalf("first recent %d", first)
	}
	first, err = st.ClaimRecent(ctx(), in.ID)
	must(t, err)
	if first != 3 {
		t.Fatalf("second claim got %d, want 3 (none recent)", first)
	}
	deliver(t, st, "z", store.Recipient{AccountID: acc.ID})
	first, _ = st.ClaimRecent(ctx(), in.ID)
	if first != 3 {
		t.Fatalf("third claim %d", first)
	}
}

func testImport(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	mb, err := st.CreateMailbox(ctx(), acc.ID, "Imported", "", 1234567)
	must(t, err)
	if mb.UIDValidity != 1234567 {
		t.Fatalf("uidvalidity %d", mb.UIDValidity)
	}
	date := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	d := deliver(t, st, "old", store.Recipient{AccountID: acc.ID, MailboxID: mb.ID, UID: 40, InternalDate: date, IgnoreQuota: true})
	if d[0].UID != 40 {
		t.Fatalf("import uid %d", d[0].UID)
	}
	_, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte("x")), Recipients: []store.Recipient{{AccountID: acc.ID, MailboxID: mb.ID, UID: 10}}})
	wantErr(t, err, store.ErrInvalid)
	d = deliver(t, st, "new", store.Recipient{AccountID: acc.ID, MailboxID: mb.ID})
	if d[0].UID != 41 {
		t.Fatalf("next uid %d", d[0].UID)
	}
	ms, _ := st.GetMessages(ctx(), mb.ID, []uint32{40})
	if !ms[0].InternalDate.Equal(date) {
		t.Fatalf("internal date %v", ms[0].InternalDate)
	}
	// A mailbox of another account cannot be targeted.
	other := setup(t, st, "b@example.org")[0]
	_, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte("x")), Recipients: []store.Recipient{{AccountID: other.ID, MailboxID: mb.ID}}})
	wantErr(t, err, store.ErrInvalid)
}

func testDeleteFreesBlobs(t *testing.T, st store.Store) {
	accs := setup(t, st, "a@example.org", "b@example.org")
	d := deliver(t, st, "shared", store.Recipient{AccountID: accs[0].ID}, store.Recipient{AccountID: accs[1].ID})
	ms, _ := st.GetMessages(ctx(), d[0].MailboxID, []uint32{d[0].UID})
	blob := ms[0].BlobID
	_, err := st.Expunge(ctx(), d[0].MailboxID, []uint32{d[0].UID})
	must(t, err)
	b, err := st.OpenBlob(ctx(), blob)
	must(t, err) // still referenced by b's copy
	b.Close()
	must(t, st.DeleteAccount(ctx(), accs[1].ID))
	_, err = st.OpenBlob(ctx(), blob)
	wantErr(t, err, store.ErrNotFound)
}

// testConcurrency delivers from many goroutines while others read and
// change flags on the same mailbox: no error may surface ("database is
// locked" included) and UIDs must be unique and dense.
func testConcurrency(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	in := mailbox(t, st, acc.ID, "INBOX")
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errc := make(chan error, writers*each*3)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte(fmt.Sprintf("Subject: %d-%d\r\n\r\nbody", w, i))), Recipients: []store.Recipient{{AccountID: acc.ID}}})
				if err != nil {
					errc <- err
				}
				if _, err := st.StoreFlags(ctx(), in.ID, []uint32{uint32(i + 1)}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen}); err != nil {
					errc <- err
				}
				if _, err := st.ListMessages(ctx(), in.ID); err != nil {
					errc <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	ms, err := st.ListMessages(ctx(), in.ID)
	must(t, err)
	if len(ms) != writers*each {
		t.Fatalf("%d messages, want %d", len(ms), writers*each)
	}
	for i, m := range ms {
		if m.UID != uint32(i+1) {
			t.Fatalf("uid %d at %d", m.UID, i)
		}
	}
}

func testQueue(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	now := time.Now()
	d, err := st.Deliver(ctx(), store.Delivery{
		Blob:       bytes.NewReader([]byte("Subject: out\r\n\r\nbody\r\n")),
		Recipients: []store.Recipient{{AccountID: acc.ID, MailboxName: "Sent"}},
		Queue: []store.QueueEntry{
			{From: "a@example.org", Transport: "smtp", Destination: "example.net", Recipients: []store.QueueRecipient{{Address: "x@example.net", Notify: []string{"FAILURE"}}, {Address: "y@example.net"}}, DSNRet: "HDRS", AccountID: acc.ID, Prefix: []byte("DKIM-Signature: x\r\n")},
			{From: "a@example.org", Transport: "smtp", Destination: "example.com", Recipients: []store.QueueRecipient{{Address: "z@example.com"}}, Skip: 12},
		},
	})
	must(t, err)
	if len(d) != 3 || d[0].UID != 1 || d[1].QueueID == 0 || d[2].QueueID == 0 || d[1].QueueID == d[2].QueueID {
		t.Fatalf("delivered %+v", d)
	}
	due, err := st.QueueDue(ctx(), now.Add(time.Second), 10)
	must(t, err)
	if len(due) != 2 {
		t.Fatalf("due %d", len(due))
	}
	e := due[0]
	if e.ID != d[1].QueueID || e.Destination != "example.net" || len(e.Recipients) != 2 || e.Recipients[0].Notify[0] != "FAILURE" ||
		e.DSNRet != "HDRS" || e.AccountID != acc.ID || string(e.Prefix) != "DKIM-Signature: x\r\n" || e.Size != int64(len("Subject: out\r\n\r\nbody\r\n")) || e.State != store.QueueReady {
		t.Fatalf("entry %+v", e)
	}
	next, ok, err := st.QueueNext(ctx())
	must(t, err)
	if !ok || next.After(now.Add(time.Second)) {
		t.Fatalf("next %v %v", next, ok)
	}
	// A deferred attempt moves the entry out of the due set.
	e.Recipients[0].Status = store.RcptDelivered
	e.Recipients[1].LastError = "451 try later"
	e.Attempts = 1
	e.NextAttempt = now.Add(time.Hour)
	e.LastError = "451 try later"
	e.WarnedAt = now
	must(t, st.QueueUpdate(ctx(), e))
	got, err := st.QueueGet(ctx(), e.ID)
	must(t, err)
	if got.Attempts != 1 || got.Recipients[0].Status != store.RcptDelivered || got.LastError != "451 try later" || got.WarnedAt.IsZero() {
		t.Fatalf("after update %+v", got)
	}
	due, _ = st.QueueDue(ctx(), now.Add(time.Second), 10)
	if len(due) != 1 || due[0].ID != d[2].QueueID || due[0].Skip != 12 {
		t.Fatalf("due after defer %+v", due)
	}
	// Held entries are never due.
	h := due[0]
	h.State = store.QueueHeld
	must(t, st.QueueUpdate(ctx(), h))
	due, _ = st.QueueDue(ctx(), now.Add(2*time.Hour), 10)
	if len(due) != 1 || due[0].ID != e.ID {
		t.Fatalf("due with one held %+v", due)
	}
	stats, err := st.QueueStats(ctx())
	must(t, err)
	if stats.Entries != 2 || stats.Held != 1 || stats.Oldest.IsZero() {
		t.Fatalf("stats %+v", stats)
	}
	h.State = "bogus"
	wantErr(t, st.QueueUpdate(ctx(), h), store.ErrInvalid)
	// The blob outlives the local copy while queued, and is freed with
	// the last queue entry.
	sent := mailbox(t, st, acc.ID, "Sent")
	_, err = st.Expunge(ctx(), sent.ID, []uint32{1})
	must(t, err)
	b, err := st.OpenBlob(ctx(), e.BlobID)
	must(t, err)
	b.Close()
	must(t, st.QueueDelete(ctx(), e.ID))
	must(t, st.QueueDelete(ctx(), h.ID))
	wantErr(t, st.QueueDelete(ctx(), h.ID), store.ErrNotFound)
	_, err = st.OpenBlob(ctx(), e.BlobID)
	wantErr(t, err, store.ErrNotFound)
	// Queue-only delivery (forwarding) needs no local recipient.
	d, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte("x")), Queue: []store.QueueEntry{{Transport: "http", Destination: "hook", Recipients: []store.QueueRecipient{{Address: "a@example.org"}}}}})
	must(t, err)
	if len(d) != 1 || d[0].QueueID == 0 {
		t.Fatalf("queue-only %+v", d)
	}
	_, err = st.Deliver(ctx(), store.Delivery{Blob: bytes.NewReader([]byte("x")), Queue: []store.QueueEntry{{Transport: "smtp"}}})
	wantErr(t, err, store.ErrInvalid)
	stats, _ = st.QueueStats(ctx())
	if stats.Entries != 1 || stats.Held != 0 {
		t.Fatalf("stats %+v", stats)
	}
}

func testAliases(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	al, err := st.AddAlias(ctx(), store.Alias{Address: "Team@example.org", Targets: []string{"a@example.org", "x@example.net"}, Note: "shop.example", OwnerAccountID: acc.ID})
	must(t, err)
	if al.ID == 0 || al.Domain != "example.org" || al.ForwardMode != "srs" || al.DisabledAction != "drop" {
		t.Fatalf("alias %+v", al)
	}
	got, err := st.GetAlias(ctx(), "team@example.org")
	must(t, err)
	if got.Address != "Team@example.org" || len(got.Targets) != 2 || got.Note != "shop.example" || got.OwnerAccountID != acc.ID {
		t.Fatalf("get %+v", got)
	}
	_, err = st.AddAlias(ctx(), store.Alias{Address: "team@example.org", Targets: []string{"a@example.org"}})
	wantErr(t, err, store.ErrExists)
	// An address is an account or an alias, never both.
	_, err = st.AddAlias(ctx(), store.Alias{Address: "A@example.org", Targets: []string{"x@example.net"}})
	wantErr(t, err, store.ErrInvalid)
	_, err = st.CreateAccount(ctx(), store.Account{Address: "team@example.org", PasswordHash: "x"})
	wantErr(t, err, store.ErrInvalid)
	_, err = st.AddAlias(ctx(), store.Alias{Address: "x@unknown.example", Targets: []string{"a@example.org"}})
	wantErr(t, err, store.ErrNotFound)
	for _, bad := range []store.Alias{{Address: "noat", Targets: []string{"a@example.org"}}, {Address: "n@example.org"}, {Address: "m@example.org", Targets: []string{"a@example.org"}, ForwardMode: "magic"}, {Address: "d@example.org", Targets: []string{"a@example.org"}, DisabledAction: "bounce"}} {
		_, err = st.AddAlias(ctx(), bad)
		wantErr(t, err, store.ErrInvalid)
	}
	// Catch-all.
	_, err = st.AddAlias(ctx(), store.Alias{Address: "@example.org", Targets: []string{"a@example.org"}})
	must(t, err)
	got.Disabled, got.DisabledAction, got.ForwardMode = true, "reject", "rewrite"
	must(t, st.UpdateAlias(ctx(), got))
	got, _ = st.GetAlias(ctx(), "team@example.org")
	if !got.Disabled || got.DisabledAction != "reject" || got.ForwardMode != "rewrite" {
		t.Fatalf("update %+v", got)
	}
	setup(t, st, "b@example.com")
	_, err = st.AddAlias(ctx(), store.Alias{Address: "c@example.com", Targets: []string{"b@example.com"}})
	must(t, err)
	all, _ := st.ListAliases(ctx(), "")
	org, _ := st.ListAliases(ctx(), "example.org")
	if len(all) != 3 || len(org) != 2 {
		t.Fatalf("list %d %d", len(all), len(org))
	}
	wantErr(t, st.DeleteDomain(ctx(), "example.org"), store.ErrMailboxInUse)
	must(t, st.DeleteAlias(ctx(), "TEAM@example.org"))
	wantErr(t, st.DeleteAlias(ctx(), "team@example.org"), store.ErrNotFound)
	_, err = st.GetAlias(ctx(), "team@example.org")
	wantErr(t, err, store.ErrNotFound)
}

func testSieve(t *testing.T, st store.Store) {
	acc := setup(t, st, "a@example.org")[0]
	must(t, st.PutSieveScript(ctx(), store.SieveScript{AccountID: acc.ID, Name: "main", Content: "keep;"}))
	must(t, st.PutSieveScript(ctx(), store.SieveScript{AccountID: acc.ID, Name: "vacation", Content: "discard;"}))
	wantErr(t, st.PutSieveScript(ctx(), store.SieveScript{AccountID: acc.ID, Name: "a/b", Content: "x"}), store.ErrInvalid)
	must(t, st.ActivateSieveScript(ctx(), acc.ID, "main"))
	wantErr(t, st.ActivateSieveScript(ctx(), acc.ID, "missing"), store.ErrNotFound)
	// Replacing content keeps the active flag.
	must(t, st.PutSieveScript(ctx(), store.SieveScript{AccountID: acc.ID, Name: "main", Content: "stop;"}))
	sc, err := st.GetSieveScript(ctx(), acc.ID, "main")
	must(t, err)
	if !sc.Active || sc.Content != "stop;" {
		t.Fatalf("script %+v", sc)
	}
	wantErr(t, st.DeleteSieveScript(ctx(), acc.ID, "main"), store.ErrInvalid)
	must(t, st.ActivateSieveScript(ctx(), acc.ID, "vacation"))
	list, err := st.ListSieveScripts(ctx(), acc.ID)
	must(t, err)
	if len(list) != 2 || list[0].Active || !list[1].Active {
		t.Fatalf("list %+v", list)
	}
	must(t, st.DeleteSieveScript(ctx(), acc.ID, "main"))
	must(t, st.ActivateSieveScript(ctx(), acc.ID, ""))
	list, _ = st.ListSieveScripts(ctx(), acc.ID)
	if len(list) != 1 || list[0].Active {
		t.Fatalf("after deactivate %+v", list)
	}
	// Global scripts live under account 0.
	must(t, st.PutSieveScript(ctx(), store.SieveScript{AccountID: 0, Name: "before", Content: "keep;"}))
	if _, err := st.GetSieveScript(ctx(), 0, "before"); err != nil {
		t.Fatal(err)
	}
}

func testReverseAliases(t *testing.T, st store.Store) {
	setup(t, st, "a@example.org")
	ra, err := st.ReverseAlias(ctx(), "shop@example.org", "Sales@Store.example", "ra-abc@example.org")
	must(t, err)
	if ra.Address != "ra-abc@example.org" || ra.Contact != "Sales@Store.example" {
		t.Fatalf("%+v", ra)
	}
	// Same pair: the existing one, whatever new address is offered.
	again, err := st.ReverseAlias(ctx(), "SHOP@example.org", "sales@store.example", "ra-other@example.org")
	must(t, err)
	if again.Address != "ra-abc@example.org" {
		t.Fatalf("second lookup created %+v", again)
	}
	got, err := st.GetReverseAlias(ctx(), "RA-ABC@example.org")
	must(t, err)
	if got.Alias != "shop@example.org" {
		t.Fatalf("%+v", got)
	}
	_, err = st.GetReverseAlias(ctx(), "ra-none@example.org")
	wantErr(t, err, store.ErrNotFound)
	_, err = st.ReverseAlias(ctx(), "shop@example.org", "other@store.example", "ra-abc@example.org")
	wantErr(t, err, store.ErrExists)
}

func testReplies(t *testing.T, st store.Store) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, c := range []struct {
		acc    int64
		sender string
		at     time.Time
		want   bool
	}{
		{1, "x@example.net", now, true},
		{1, "X@example.net", now.Add(time.Hour), false}, // same sender, within the period
		{1, "y@example.net", now.Add(time.Hour), true},
		{2, "x@example.net", now.Add(time.Hour), true}, // another account
		{1, "x@example.net", now.Add(day + time.Minute), true},
	} {
		ok, err := st.ReserveReply(ctx(), c.acc, c.sender, "h", c.at, day)
		must(t, err)
		if ok != c.want {
			t.Fatalf("%d %s at %v: %v, want %v", c.acc, c.sender, c.at, ok, c.want)
		}
	}
}
