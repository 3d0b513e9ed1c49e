package smtpserver

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestShutdownIdleClient: a client that sits idle does not hold Shutdown
// past its deadline; its connection is closed and Serve returns.
func TestShutdownIdleClient(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		name := "plain"
		if implicit {
			name = "implicit TLS"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{role: RoleSubmission, config: func(c *Config) { c.ImplicitTLS = implicit }})
			e.shutdown = true
			var c *client
			if implicit {
				c = dialTLS(t, e.addr)
			} else {
				c = dial(t, e.addr)
			}
			c.ehlo()

			// The clock starts before the context's, so the deadline
			// cannot come sooner than 200ms after start.
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- e.srv.Shutdown(ctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Shutdown = %v, want the context's deadline error", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Shutdown did not return after its context expired")
			}
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Errorf("Shutdown returned after %v, before its deadline, with a session open", d)
			}
			if _, err := c.waitClosed(30 * time.Second); err != nil {
				t.Errorf("idle connection still open after Shutdown: %v", err)
			}
			select {
			case err := <-e.serveErr:
				if err != nil {
					t.Errorf("Serve = %v, want nil after Shutdown", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Serve did not return")
			}
			if conn, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
				conn.Close()
				t.Error("listener still accepting after Shutdown")
			}
		})
	}
}

// TestShutdownDrains: Shutdown waits for a session in progress, which can
// still deliver, and returns nil once it has quit.
func TestShutdownDrains(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX})
	e.shutdown = true
	c := dial(t, e.addr)
	c.ehlo()
	c.expect("250", "MAIL FROM:<sender@remote.example>")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a session in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.expect("250", "RCPT TO:<alice@example.org>")
	if r := c.data(testMessage("during shutdown", "still works\r\n")); r.code != 250 {
		t.Fatalf("DATA during shutdown: %v", r)
	}
	c.expect("221", "QUIT")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown = %v, want nil after the session ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last session quit")
	}
	if err := <-e.serveErr; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if got, _ := e.inbox("alice@example.org"); len(got) != 1 {
		t.Errorf("alice has %d messages", len(got))
	}
	// Serve after Shutdown refuses at once and closes the listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Serve(l); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
	if conn, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		conn.Close()
		t.Error("Serve after Shutdown left its listener open")
	}
}

// TestCommandTimeout: a silent client is dropped after the
// command timeout with a 421, and its per-IP slot is released.
func TestCommandTimeout(t *testing.T) {
	e := newEnv(t, envOptions{role: RoleMX, config: func(c *Config) {
		c.CommandTimeout = 300 * time.Millisecond
		c.MaxConnsPerIP = 1
	}})
	c := dial(t, e.addr)
	got, err := c.waitClosed(5 * time.Second)
	if err != nil {
		t.Fatalf("idle client not dropped: %v", err)
	}
	if !strings.HasPrefix(got, "421 4.4.2") {
		t.Errorf("idle timeout reply %q, want 421 4.4.2", got)
	}
	dial(t, e.addr).ehlo()
}
