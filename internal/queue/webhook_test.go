package queue_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

// hook is an HTTP endpoint that fails the first `fail` requests.
type hook struct {
	mu       sync.Mutex
	fail     int
	status   int
	requests int
	got      [][]byte
	headers  []http.Header
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if r.Header.Get("Authorization") != "Bearer hook-token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if h.requests <= h.fail {
		w.WriteHeader(h.status)
		return
	}
	h.got = append(h.got, b)
	h.headers = append(h.headers, r.Header.Clone())
	w.WriteHeader(http.StatusNoContent)
}

func (h *hook) state() (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests, len(h.got)
}

func enqueueHTTP(t *testing.T, e *env, target string) int64 {
	t.Helper()
	out, err := e.st.Deliver(context.Background(), store.Delivery{
		Blob: bytes.NewReader([]byte("From: x@example.net\r\nSubject: doc\r\n\r\nscan\r\n")),
		Queue: []store.QueueEntry{{From: "alice@example.org", Transport: "http", Destination: target,
			Recipients: []store.QueueRecipient{{Address: "docs@example.org"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out[0].QueueID
}

func TestWebhookRetriesThenDeliversOnce(t *testing.T) {
	h := &hook{fail: 3, status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := newEnv(t, "")
	wh := &queue.Webhook{Targets: map[string]queue.WebhookTarget{"paperless": {
		URL: srv.URL, Token: func() (string, error) { return "hook-token", nil }, PermanentStatus: []int{400, 413},
	}}}
	e.runner(nil, func(o *queue.Options) { o.Transports = map[string]queue.Transport{"http": wh} })
	id := enqueueHTTP(t, e, "paperless")
	waitFor(t, "delivery after retries", func() bool { _, n := h.state(); return n == 1 && e.queueLen() == 0 })
	reqs, n := h.state()
	if reqs != 4 || n != 1 {
		t.Fatalf("%d requests, %d delivered: want 3 failures then exactly one delivery", reqs, n)
	}
	if !strings.Contains(string(h.got[0]), "Subject: doc") || h.headers[0].Get("X-Envelope-From") != "alice@example.org" ||
		h.headers[0].Get("X-Original-Recipient") != "docs@example.org" || h.headers[0].Get("Content-Type") != "message/rfc822" || h.headers[0].Get("X-Delivery-Id") == "" {
		t.Fatalf("request: %q %v", h.got[0], h.headers[0])
	}
	_ = id
	time.Sleep(200 * time.Millisecond) // no late duplicate
	if _, n := h.state(); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}

func TestWebhookPermanentFailureBounces(t *testing.T) {
	h := &hook{fail: 100, status: http.StatusRequestEntityTooLarge}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := newEnv(t, "")
	wh := &queue.Webhook{Targets: map[string]queue.WebhookTarget{"paperless": {
		URL: srv.URL, Token: func() (string, error) { return "hook-token", nil }, PermanentStatus: []int{400, 413},
	}}}
	e.runner(nil, func(o *queue.Options) { o.Transports = map[string]queue.Transport{"http": wh} })
	enqueueHTTP(t, e, "paperless")
	waitFor(t, "bounce", func() bool { return e.queueLen() == 0 && len(e.inbox()) == 1 })
	if reqs, _ := h.state(); reqs != 1 {
		t.Fatalf("%d requests for a permanent failure", reqs)
	}
	if !strings.Contains(e.inbox()[0], "413") {
		t.Fatalf("bounce does not name the failure:\n%s", e.inbox()[0])
	}
}

func TestWebhookDownStaysQueued(t *testing.T) {
	e := newEnv(t, "")
	wh := &queue.Webhook{Targets: map[string]queue.WebhookTarget{"down": {URL: "http://127.0.0.1:1/"}}}
	e.runner(nil, func(o *queue.Options) {
		o.Transports = map[string]queue.Transport{"http": wh}
		o.Retry = []time.Duration{time.Hour}
	})
	id := enqueueHTTP(t, e, "down")
	waitFor(t, "an attempt", func() bool { q, _ := e.entry(id); return q.Attempts == 1 })
	q, ok := e.entry(id)
	if !ok || q.Recipients[0].Status != store.RcptPending || q.NextAttempt.Before(time.Now().Add(30*time.Minute)) {
		t.Fatalf("entry %+v: want still queued, retried later", q)
	}
}
