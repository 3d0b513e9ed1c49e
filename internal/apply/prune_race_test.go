package apply

import (
	"context"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

// racingStore lets a delivery commit between the delete step's recount of
// the account's messages and DeleteAccount, as an SMTP or IMAP APPEND
// session running next to the apply can.
type racingStore struct {
	*sqlitestore.Store
	t    *testing.T
	addr string
}

func (s racingStore) DeleteAccountIfEmpty(ctx context.Context, id int64) error {
	deliver(s.t, s.Store, s.addr)
	return s.Store.DeleteAccountIfEmpty(ctx, id)
}

// Prune must never delete mail: the "no mail" check and the delete have to
// be one store transaction, or a message that arrives in between is
// deleted with the account.
func TestPruneDoesNotDeleteMailArrivingDuringApply(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	full := baseState()
	full.Accounts = append(full.Accounts, Account{Address: "late@example.org", PasswordHash: testHash})
	mustRun(t, st, Request{State: full}, Options{})

	rs := racingStore{Store: st, t: t, addr: "late@example.org"}
	res, err := Run(ctx, rs, Request{State: baseState(), Prune: true}, Options{})
	if err != nil || res.Applied || !strings.Contains(res.Failed, "late@example.org") {
		t.Fatalf("apply that could not delete an account: %v, %+v; want it to stop with a failure naming the account", err, res)
	}
	acc, err := st.GetAccount(ctx, "late@example.org")
	if err != nil {
		t.Fatalf("account with a message just delivered was deleted, with its mail: %v", err)
	}
	mbs, _ := st.ListMailboxes(ctx, acc.ID)
	n := 0
	for _, mb := range mbs {
		s, _ := st.MailboxStatus(ctx, mb.ID)
		n += int(s.Messages)
	}
	if n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}
