package acceptloop

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// Session is what a Group needs of a running connection: Interrupt asks
// it to finish at the next command boundary (a BYE), ForceClose drops it
// when the shutdown deadline passes.
type Session interface {
	Interrupt()
	ForceClose()
}

// Group tracks one server's listeners and sessions for a graceful
// shutdown: stop accepting, interrupt every session, wait for them until
// the deadline, then force the rest closed. The zero value is ready.
type Group struct {
	mu        sync.Mutex
	closing   atomic.Bool
	done      chan struct{}
	listeners map[net.Listener]struct{}
	sessions  map[Session]struct{}
	wg        sync.WaitGroup
}

// Closing reports whether Shutdown has begun.
func (g *Group) Closing() bool { return g.closing.Load() }

// Done is closed when Shutdown begins.
func (g *Group) Done() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done == nil {
		g.done = make(chan struct{})
	}
	return g.done
}

// Serve runs the accept loop on l, starting serve for each connection in
// its own goroutine. It returns nil after Shutdown, else the error that
// ended accepting.
func (g *Group) Serve(l net.Listener, log *slog.Logger, serve func(net.Conn)) error {
	g.mu.Lock()
	if g.closing.Load() {
		g.mu.Unlock()
		l.Close()
		return nil
	}
	if g.listeners == nil {
		g.listeners = map[net.Listener]struct{}{}
	}
	g.listeners[l] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, l)
		g.mu.Unlock()
	}()
	return Run(l, g.Closing, log, func(c net.Conn) {
		if !g.enter() {
			c.Close()
			return
		}
		go func() {
			defer g.wg.Done()
			serve(c)
		}()
	})
}

// enter counts one more running connection unless Shutdown has begun.
// The WaitGroup is only added to under mu after checking closing, so an
// Add can never race Shutdown's Wait.
func (g *Group) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing.Load() {
		return false
	}
	g.wg.Add(1)
	return true
}

// Run runs fn as one connection of the group (Shutdown waits for it). It
// returns false without running fn once Shutdown has begun.
func (g *Group) Run(fn func()) bool {
	if !g.enter() {
		return false
	}
	defer g.wg.Done()
	fn()
	return true
}

// Add registers a session for Shutdown; it returns false (and the caller
// should close the connection) when the group is shutting down.
func (g *Group) Add(s Session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing.Load() {
		return false
	}
	if g.sessions == nil {
		g.sessions = map[Session]struct{}{}
	}
	g.sessions[s] = struct{}{}
	return true
}

// Remove unregisters a session.
func (g *Group) Remove(s Session) {
	g.mu.Lock()
	delete(g.sessions, s)
	g.mu.Unlock()
}

// Shutdown stops accepting, interrupts every session and waits for them
// until ctx is done; then it force-closes the rest and returns ctx's
// error.
func (g *Group) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if !g.closing.Swap(true) {
		if g.done == nil {
			g.done = make(chan struct{})
		}
		close(g.done)
	}
	for l := range g.listeners {
		l.Close()
	}
	for s := range g.sessions {
		s.Interrupt()
	}
	g.mu.Unlock()
	waited := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		for s := range g.sessions {
			s.ForceClose()
		}
		g.mu.Unlock()
		return ctx.Err()
	}
}
