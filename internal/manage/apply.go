package manage

import (
	"context"
	"sync"

	"github.com/mailstead/mailstead/internal/apply"
	"github.com/mailstead/mailstead/internal/control"
)

// applyMu serialises applies: two at once would each plan against a store
// the other is changing.
var applyMu sync.Mutex

func (o *Ops) registerApply(r *control.Registry) {
	control.Register(r, "apply", o.Apply)
}

// Apply makes the store match a declarative state (`mailstead apply`):
// the client parses the file and sends the State; planning, validation
// against what the store holds, and the changes happen here, next to the
// store, so a running server's sessions see them at once.
func (o *Ops) Apply(ctx context.Context, req apply.Request) (apply.Result, error) {
	applyMu.Lock()
	defer applyMu.Unlock()
	return apply.Run(ctx, o.St, req, apply.Options{DefaultQuota: o.DefaultQuota})
}
