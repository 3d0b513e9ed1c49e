package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/queue"
)

type discardSession struct{}

func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (discardSession) Reset()        {}
func (discardSession) Logout() error { return nil }

// TestSinkHelper is the SMTP sink process of BenchmarkQueueSmarthost: a
// separate process so that the benchmark's getrusage counts mailstead's
// CPU only. It prints its address and serves until killed.
func TestSinkHelper(t *testing.T) {
	if os.Getenv("MAILSTEAD_SINK_HELPER") == "" {
		t.Skip("helper process only")
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }))
	srv.Domain = "sink.test"
	srv.MaxLineLength = 10000
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ADDR", l.Addr().String())
	go func() { time.Sleep(10 * time.Minute); os.Exit(0) }()
	srv.Serve(l)
}

func rusage() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkQueueSmarthost queues 10,000 messages of 4 KiB to 10 recipient
// domains and delivers them in smarthost mode to a Go SMTP sink in another
// process, with the default concurrency (50, 10 per domain) and
// connection reuse. Run with -benchtime=1x; it reports messages/second and
// CPU per message (getrusage of this process: store, queue, SMTP client).
func BenchmarkQueueSmarthost(b *testing.B) {
	n, domains := 10000, 10
	if v, err := strconv.Atoi(os.Getenv("MAILSTEAD_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSinkHelper$")
	cmd.Env = append(os.Environ(), "MAILSTEAD_SINK_HELPER=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var addr string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		b.Fatal("sink did not start")
	}
	go io.Copy(io.Discard, out)

	body := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/\r\n", 4096/66)
	for i := 0; i < b.N; i++ {
		e := newEnv(b, "")
		msg := "From: alice@example.org\r\nTo: someone\r\nSubject: bench\r\n\r\n" + body
		cpu0, t0 := rusage(), time.Now()
		for j := 0; j < n; j++ {
			_, err := e.sub.Submit(context.Background(), delivery.Envelope{From: "alice@example.org"},
				[]delivery.RemoteRecipient{{Address: fmt.Sprintf("user%d@d%d.example", j, j%domains)}}, delivery.DSNOptions{}, delivery.SpoolBytes([]byte(msg)))
			if err != nil {
				b.Fatal(err)
			}
		}
		enqCPU, enqTime := rusage()-cpu0, time.Since(t0)
		host, port := splitHostPort(addr)
		tr := queue.NewSMTP(queue.SMTPOptions{Smarthost: &queue.Relay{Host: host, Port: port, TLS: queue.TLSNone}})
		cpu1, t1 := rusage(), time.Now()
		stop := e.runner(tr, func(o *queue.Options) { o.Logger = nil })
		deadline := time.Now().Add(5 * time.Minute)
		for {
			st, err := e.st.QueueStats(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if st.Entries == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d entries left", st.Entries)
			}
			time.Sleep(20 * time.Millisecond)
		}
		delCPU, delTime := rusage()-cpu1, time.Since(t1)
		stop()
		tr.Close()
		b.ReportMetric(float64(n)/enqTime.Seconds(), "enqueued/s")
		b.ReportMetric(float64(enqCPU.Microseconds())/float64(n), "enqueue-cpu-µs/msg")
		b.ReportMetric(float64(n)/delTime.Seconds(), "delivered/s")
		b.ReportMetric(float64(delCPU.Microseconds())/float64(n), "deliver-cpu-µs/msg")
	}
}
