package acceptloop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeListener returns scripted Accept results.
type fakeListener struct {
	results []error
	i       int
}

func (f *fakeListener) Accept() (net.Conn, error) {
	if f.i >= len(f.results) {
		return nil, net.ErrClosed
	}
	err := f.results[f.i]
	f.i++
	if err == nil {
		a, b := net.Pipe()
		b.Close()
		return a, nil
	}
	return nil, err
}
func (f *fakeListener) Close() error   { return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

type tempErr struct{}

func (tempErr) Error() string   { return "too many open files" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

func TestRun(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	fatal := errors.New("listener broken")
	tests := []struct {
		name     string
		results  []error
		stopped  bool
		handled  int
		wantErr  error
		wantNil  bool
		maxDelay time.Duration
	}{
		{name: "serves until closed by shutdown", results: []error{nil, nil}, stopped: true, handled: 2, wantNil: true},
		{name: "temporary errors are retried", results: []error{tempErr{}, nil, tempErr{}, nil, fatal}, handled: 2, wantErr: fatal},
		{name: "refused PROXY peers do not stop it", results: []error{errors.New("proxyproto: invalid upstream"), nil, fatal}, handled: 1, wantErr: fatal},
		{name: "other errors end it", results: []error{fatal}, wantErr: fatal},
		{name: "a closed listener without shutdown is an error", results: []error{syscall.EBADF}, wantErr: syscall.EBADF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &fakeListener{results: tt.results}
			var n atomic.Int32
			err := Run(l, func() bool { return tt.stopped && l.i >= len(tt.results) }, log, func(c net.Conn) { n.Add(1); c.Close() })
			if tt.wantNil && err != nil || !tt.wantNil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v (nil %v)", err, tt.wantErr, tt.wantNil)
			}
			if int(n.Load()) != tt.handled {
				t.Fatalf("handled %d, want %d", n.Load(), tt.handled)
			}
		})
	}
}

type fakeSession struct {
	interrupted, forced atomic.Bool
	release             chan struct{}
}

func (f *fakeSession) Interrupt() {
	if f.interrupted.CompareAndSwap(false, true) && f.release != nil {
		close(f.release)
	}
}
func (f *fakeSession) ForceClose() { f.forced.Store(true) }

// deadlineCtx is a context whose deadline passes when the test closes
// done.
type deadlineCtx struct {
	context.Context
	done chan struct{}
}

func (c deadlineCtx) Done() <-chan struct{} { return c.done }

func (c deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestGroupShutdown: sessions that end when interrupted let Shutdown
// return nil; one that ignores it is force-closed at the deadline; new
// sessions are refused once shutdown began.
func TestGroupShutdown(t *testing.T) {
	var g Group
	polite := &fakeSession{release: make(chan struct{})}
	stubborn := &fakeSession{}
	if !g.Add(polite) || !g.Add(stubborn) {
		t.Fatal("Add refused before shutdown")
	}
	started := make(chan struct{}, 2)
	politeGone := make(chan struct{})
	go g.Run(func() { started <- struct{}{}; <-polite.release; g.Remove(polite); close(politeGone) })
	block := make(chan struct{})
	go g.Run(func() { started <- struct{}{}; <-block; g.Remove(stubborn) })
	<-started
	<-started
	// The deadline passes once the polite session has gone (however long
	// a busy machine takes to run it), so only the stubborn one is left
	// to force-close.
	ctx := deadlineCtx{context.Background(), make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- g.Shutdown(ctx) }()
	select {
	case <-politeGone:
	case <-time.After(30 * time.Second):
		t.Fatal("polite session not interrupted by Shutdown")
	}
	close(ctx.done)
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("shutdown with a stubborn session: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return after its deadline")
	}
	if !polite.interrupted.Load() || !stubborn.interrupted.Load() || !stubborn.forced.Load() || polite.forced.Load() {
		t.Fatalf("polite %+v stubborn %+v", polite, stubborn)
	}
	if g.Add(&fakeSession{}) {
		t.Fatal("Add accepted during shutdown")
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("Done not closed")
	}
	close(block)
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}
