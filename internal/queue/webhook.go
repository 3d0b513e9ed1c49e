package queue

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// WebhookTarget is one HTTP hand-off destination: the raw message is
// POSTed to URL.
type WebhookTarget struct {
	URL string
	// Token returns the bearer token (read from a file or the
	// environment when the request is made, so rotation needs no
	// restart); nil sends none.
	Token func() (string, error)
	// PermanentStatus lists HTTP statuses that mean "never going to
	// work" (the message bounces); every other non-2xx, a timeout or a
	// connection error is temporary and retried with backoff.
	PermanentStatus []int
	Timeout         time.Duration
}

// Webhook is the "http" transport: queue entries whose Destination names
// a WebhookTarget are handed off over HTTP. Nothing is lost while the
// receiving API is down: the entry stays queued and is retried until
// max_age, then bounced.
type Webhook struct {
	Targets map[string]WebhookTarget
	Client  *http.Client
	Logger  *slog.Logger
}

// Deliver implements Transport: one POST carries the message for all
// pending recipients of the entry (the original recipients, in a header).
func (w *Webhook) Deliver(ctx context.Context, e store.QueueEntry, msg Message) []Result {
	var pending []string
	for _, r := range e.Recipients {
		if r.Status == store.RcptPending {
			pending = append(pending, r.Address)
		}
	}
	all := func(o Outcome, reply string) []Result {
		out := make([]Result, len(pending))
		for i, a := range pending {
			out[i] = Result{Address: a, Outcome: o, Reply: reply, Remote: e.Destination}
		}
		return out
	}
	t, ok := w.Targets[e.Destination]
	if !ok {
		// Configuration changed under a queued entry: keep it queued
		// (temporary) so an admin can restore the target or bounce it.
		return all(Temporary, fmt.Sprintf("451 4.3.5 webhook target %q is not configured", e.Destination))
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, io.NewSectionReader(msg, 0, msg.Size()))
	if err != nil {
		return all(Permanent, fmt.Sprintf("554 5.3.5 webhook %q: bad URL: %v", e.Destination, err))
	}
	req.ContentLength = msg.Size()
	req.Header.Set("Content-Type", "message/rfc822")
	req.Header.Set("X-Envelope-From", e.From)
	for _, a := range pending {
		req.Header.Add("X-Original-Recipient", a)
	}
	req.Header.Set("X-Delivery-Id", strconv.FormatInt(e.ID, 10))
	if t.Token != nil {
		tok, err := t.Token()
		if err != nil {
			return all(Temporary, fmt.Sprintf("451 4.3.5 webhook %q: reading token: %v", e.Destination, err))
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return all(Temporary, fmt.Sprintf("451 4.4.1 webhook %q: %v", e.Destination, err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return all(Delivered, fmt.Sprintf("250 2.0.0 webhook %q answered %s", e.Destination, resp.Status))
	case slices.Contains(t.PermanentStatus, resp.StatusCode):
		return all(Permanent, fmt.Sprintf("554 5.6.0 webhook %q refused the message: %s", e.Destination, resp.Status))
	default:
		return all(Temporary, fmt.Sprintf("451 4.4.0 webhook %q answered %s", e.Destination, resp.Status))
	}
}
