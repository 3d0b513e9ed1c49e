package manage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/store"
)

// QueueOps are the outbound queue's admin operations. They change the
// store only, so they work the same through a running server's control
// socket (whose runner is woken by the change) and on a stopped server's
// data directory.
type QueueOps struct {
	St store.Store
	// Bounce fails an entry's pending recipients, sends the DSN and
	// removes the entry (queue.Bounce with the server's injector).
	Bounce func(ctx context.Context, id int64, reason string) error
	// Now is the clock (tests).
	Now func() time.Time
}

// Register adds the queue operations to r.
func (o *QueueOps) Register(r *control.Registry) {
	control.Register(r, "queue.list", o.List)
	control.Register(r, "queue.show", o.Show)
	control.Register(r, "queue.retry", o.Retry)
	control.Register(r, "queue.hold", o.Hold)
	control.Register(r, "queue.release", o.Release)
	control.Register(r, "queue.delete", o.Delete)
	control.Register(r, "queue.bounce", o.BounceOp)
	control.Register(r, "queue.tls", o.TLS)
}

// QueueArgs select queue entries: the listed IDs, or all of them.
type QueueArgs struct {
	IDs []int64 `json:"ids,omitempty"`
	All bool    `json:"all,omitempty"`
}

// QueueInfo describes a queue entry.
type QueueInfo struct {
	ID          int64                  `json:"id"`
	From        string                 `json:"from"`
	Transport   string                 `json:"transport"`
	Destination string                 `json:"destination"`
	Size        int64                  `json:"size"`
	State       string                 `json:"state"`
	Attempts    int                    `json:"attempts"`
	CreatedAt   time.Time              `json:"created_at"`
	NextAttempt time.Time              `json:"next_attempt"`
	LastError   string                 `json:"last_error,omitempty"`
	WarnedAt    *time.Time             `json:"warned_at,omitempty"`
	DSNRet      string                 `json:"dsn_ret,omitempty"`
	DSNEnvID    string                 `json:"dsn_envid,omitempty"`
	Signed      bool                   `json:"dkim_signed"`
	Recipients  []store.QueueRecipient `json:"recipients"`
}

// QueueResult says which entries an operation changed.
type QueueResult struct {
	Changed []int64 `json:"changed"`
}

func (o *QueueOps) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func queueInfo(e store.QueueEntry) QueueInfo {
	qi := QueueInfo{ID: e.ID, From: e.From, Transport: e.Transport, Destination: e.Destination, Size: e.Size + int64(len(e.Prefix)),
		State: string(e.State), Attempts: e.Attempts, CreatedAt: e.CreatedAt, NextAttempt: e.NextAttempt, LastError: e.LastError,
		DSNRet: e.DSNRet, DSNEnvID: e.DSNEnvID, Signed: len(e.Prefix) > 0, Recipients: e.Recipients}
	if !e.WarnedAt.IsZero() {
		w := e.WarnedAt
		qi.WarnedAt = &w
	}
	if qi.Recipients == nil {
		qi.Recipients = []store.QueueRecipient{}
	}
	return qi
}

// List returns every entry, oldest first.
func (o *QueueOps) List(ctx context.Context, _ struct{}) ([]QueueInfo, error) {
	es, err := o.St.QueueList(ctx)
	if err != nil {
		return nil, err
	}
	out := []QueueInfo{}
	for _, e := range es {
		out = append(out, queueInfo(e))
	}
	return out, nil
}

// Show returns the selected entries.
func (o *QueueOps) Show(ctx context.Context, a QueueArgs) ([]QueueInfo, error) {
	es, err := o.selectEntries(ctx, a)
	if err != nil {
		return nil, err
	}
	out := []QueueInfo{}
	for _, e := range es {
		out = append(out, queueInfo(e))
	}
	return out, nil
}

func (o *QueueOps) selectEntries(ctx context.Context, a QueueArgs) ([]store.QueueEntry, error) {
	if a.All {
		if len(a.IDs) > 0 {
			return nil, errors.New("give queue IDs or --all, not both")
		}
		return o.St.QueueList(ctx)
	}
	if len(a.IDs) == 0 {
		return nil, errors.New("no queue ID given (or --all)")
	}
	var out []store.QueueEntry
	for _, id := range a.IDs {
		e, err := o.St.QueueGet(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no queue entry %d (delivered, bounced or deleted)", id)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (o *QueueOps) update(ctx context.Context, a QueueArgs, fn func(*store.QueueEntry) (bool, error)) (QueueResult, error) {
	es, err := o.selectEntries(ctx, a)
	if err != nil {
		return QueueResult{}, err
	}
	res := QueueResult{Changed: []int64{}}
	for _, e := range es {
		ok, err := fn(&e)
		if err != nil {
			return res, fmt.Errorf("queue entry %d: %w", e.ID, err)
		}
		if !ok {
			continue
		}
		if err := o.St.QueueUpdate(ctx, e); err != nil {
			return res, fmt.Errorf("queue entry %d: %w", e.ID, err)
		}
		res.Changed = append(res.Changed, e.ID)
	}
	return res, nil
}

// Retry makes ready entries due now. Held entries are left alone (release
// them).
func (o *QueueOps) Retry(ctx context.Context, a QueueArgs) (QueueResult, error) {
	now := o.now()
	return o.update(ctx, a, func(e *store.QueueEntry) (bool, error) {
		if e.State == store.QueueHeld {
			if !a.All {
				return false, errors.New("held: release it to deliver it")
			}
			return false, nil
		}
		e.NextAttempt = now
		return true, nil
	})
}

// Hold keeps entries from being delivered until released.
func (o *QueueOps) Hold(ctx context.Context, a QueueArgs) (QueueResult, error) {
	return o.update(ctx, a, func(e *store.QueueEntry) (bool, error) {
		if e.State == store.QueueHeld {
			return false, nil
		}
		e.State = store.QueueHeld
		return true, nil
	})
}

// Release makes held entries ready and due now.
func (o *QueueOps) Release(ctx context.Context, a QueueArgs) (QueueResult, error) {
	now := o.now()
	return o.update(ctx, a, func(e *store.QueueEntry) (bool, error) {
		if e.State != store.QueueHeld {
			return false, nil
		}
		e.State = store.QueueReady
		e.NextAttempt = now
		return true, nil
	})
}

// Delete removes entries without telling the sender.
func (o *QueueOps) Delete(ctx context.Context, a QueueArgs) (QueueResult, error) {
	es, err := o.selectEntries(ctx, a)
	if err != nil {
		return QueueResult{}, err
	}
	res := QueueResult{Changed: []int64{}}
	for _, e := range es {
		if err := o.St.QueueDelete(ctx, e.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("queue entry %d: %w", e.ID, err)
		}
		res.Changed = append(res.Changed, e.ID)
	}
	return res, nil
}

// BounceOp fails entries' pending recipients with a DSN to the sender and
// removes them.
func (o *QueueOps) BounceOp(ctx context.Context, a QueueArgs) (QueueResult, error) {
	if o.Bounce == nil {
		return QueueResult{}, errors.New("bouncing is not available here")
	}
	es, err := o.selectEntries(ctx, a)
	if err != nil {
		return QueueResult{}, err
	}
	res := QueueResult{Changed: []int64{}}
	for _, e := range es {
		if err := o.Bounce(ctx, e.ID, "5.0.0 returned to sender by the administrator"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("queue entry %d: %w", e.ID, err)
		}
		res.Changed = append(res.Changed, e.ID)
	}
	return res, nil
}
