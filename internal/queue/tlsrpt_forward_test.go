package queue_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/store"
)

// A message forwarded by an alias is queued with AccountID 0, like the
// reporter's own reports, and its header is written by whoever sent it
// from the internet. A TLS-Report-Domain field in it must not turn off the
// destination's enforced MTA-STS policy: only reports this server made are
// exempt (RFC 8460 5.3).
func TestForwardedMailWithReportHeaderKeepsMTASTS(t *testing.T) {
	ca := newCA(t)
	bad := newCA(t).leaf(t, "mx.example.net")
	s := newSink(t, "127.0.0.1:0", &bad, false)
	dns := dnsresolver.NewFake()
	dns.AddMX("example.net", 10, "mx.example.net")
	dns.AddIP("mx.example.net", "127.0.0.1")
	dns.AddTXT("_mta-sts.example.net", "v=STSv1; id=1")
	client, _ := stsServer(t, ca, "example.net", "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n")
	sts := queue.NewMTASTS(dns, nil)
	sts.HTTPClient = client
	e := newEnv(t, "")
	tr := recording(t, e, dns, s.port(), sts, ca)
	e.runner(tr, func(o *queue.Options) { o.Retry = []time.Duration{time.Hour} })

	// What forward.Forwarder queues for an alias target at example.net.
	msg := "From: <mallory@attacker.example>\r\nTo: <fwd@example.org>\r\nSubject: hi\r\nTLS-Report-Domain: attacker.example\r\n\r\nsecret\r\n"
	out, err := e.st.Deliver(context.Background(), store.Delivery{Blob: bytes.NewReader([]byte(msg)), Queue: []store.QueueEntry{{
		From: "SRS0=abcd=XY=attacker.example=mallory@example.org", Transport: "smtp", Destination: "example.net",
		Recipients: []store.QueueRecipient{{Address: "carol@example.net"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	id := out[0].QueueID
	waitFor(t, "attempt", func() bool { q, ok := e.entry(id); return !ok || q.Attempts == 1 })
	if len(s.received()) != 0 {
		t.Fatal("forwarded mail delivered to an MX with an untrusted certificate despite the enforced MTA-STS policy")
	}
}
