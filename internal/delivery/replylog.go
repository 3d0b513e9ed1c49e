package delivery

import (
	"context"
	"time"

	"github.com/mailstead/mailstead/internal/sieve"
)

// StoreReplyLog keeps sieve's vacation rate limit in the store, so it
// survives restarts.
type StoreReplyLog struct {
	St interface {
		ReserveReply(ctx context.Context, accountID int64, sender, handle string, now time.Time, period time.Duration) (bool, error)
	}
}

// Reserve implements sieve.ReplyLog.
func (l StoreReplyLog) Reserve(ctx context.Context, k sieve.ReplyKey, now time.Time, period time.Duration) (bool, error) {
	return l.St.ReserveReply(ctx, k.AccountID, k.Sender, k.Handle, now, period)
}
