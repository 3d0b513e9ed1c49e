// Package control is the local control channel between the admin CLI and a
// running server: a Unix socket in the data directory (mode 0600, so file
// permissions are the authorisation) carrying one JSON request and one JSON
// response per connection.
//
// Admin commands go through the running server when there is one, so its
// caches and sessions see the change at once; when there is none, the CLI
// runs the very same handlers on the store it opens itself. Handlers are
// registered once, in a Registry, and both paths dispatch through it.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"time"
)

// SocketName is the control socket's file name in the data directory.
const SocketName = "control.sock"

// maxRequest bounds a request's size.
const maxRequest = 1 << 20

type handler func(ctx context.Context, args json.RawMessage) (any, error)

// Registry maps operation names to handlers.
type Registry struct {
	ops map[string]handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{ops: map[string]handler{}} }

// Register adds op with typed arguments and result.
func Register[A, R any](r *Registry, op string, fn func(context.Context, A) (R, error)) {
	r.ops[op] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var a A
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("bad arguments for %s: %w", op, err)
			}
		}
		return fn(ctx, a)
	}
}

// Ops lists the registered operation names.
func (r *Registry) Ops() []string {
	var out []string
	for k := range r.ops {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

type response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Invoker runs an operation: Local (in-process) or Remote (socket).
type Invoker interface {
	Invoke(ctx context.Context, op string, args, result any) error
}

// Local dispatches directly to a registry.
type Local struct{ R *Registry }

// Invoke implements Invoker.
func (l Local) Invoke(ctx context.Context, op string, args, result any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	res, err := l.R.dispatch(ctx, op, raw)
	if err != nil {
		return err
	}
	return roundTrip(res, result)
}

func roundTrip(res, result any) error {
	if result == nil {
		return nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, result)
}

func (r *Registry) dispatch(ctx context.Context, op string, raw json.RawMessage) (res any, err error) {
	h, ok := r.ops[op]
	if !ok {
		return nil, fmt.Errorf("unknown operation %q", op)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error in %s: %v", op, p)
		}
	}()
	return h(ctx, raw)
}

// Remote calls a running server's socket.
type Remote struct{ Path string }

// Invoke implements Invoker.
func (rm Remote) Invoke(ctx context.Context, op string, args, result any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", rm.Path)
	if err != nil {
		return fmt.Errorf("connect to the running server: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(2 * time.Minute))
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(c).Encode(request{Op: op, Args: raw}); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	var resp response
	if err := json.NewDecoder(io.LimitReader(c, 64<<20)).Decode(&resp); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	if result != nil && len(resp.Result) > 0 {
		return json.Unmarshal(resp.Result, result)
	}
	return nil
}

// Dial returns a Remote if a server answers on the socket in dataDir.
func Dial(dataDir string) (Remote, bool) {
	p := dataDir + string(os.PathSeparator) + SocketName
	c, err := net.DialTimeout("unix", p, time.Second)
	if err != nil {
		return Remote{}, false
	}
	c.Close()
	return Remote{Path: p}, true
}

// Server serves a registry on a Unix socket.
type Server struct {
	R   *Registry
	Log *slog.Logger

	mu sync.Mutex
	l  net.Listener
	wg sync.WaitGroup
}

// Listen creates the socket (replacing a stale one: the caller holds the
// data directory lock, so no other server can own it).
func (s *Server) Listen(path string) error {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	s.mu.Lock()
	s.l = l
	s.mu.Unlock()
	return nil
}

// Serve accepts requests until Close.
func (s *Server) Serve(ctx context.Context) {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	var req request
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(c, maxRequest))).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(response{Error: "bad request: " + err.Error()})
		return
	}
	res, err := s.R.dispatch(ctx, req.Op, req.Args)
	resp := response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	} else if raw, merr := json.Marshal(res); merr == nil {
		resp.Result = raw
	} else {
		resp = response{Error: merr.Error()}
	}
	if s.Log != nil {
		s.Log.Info("control request", "op", req.Op, "ok", resp.OK, "err", resp.Error)
	}
	json.NewEncoder(c).Encode(resp)
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	s.mu.Lock()
	l := s.l
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	err := l.Close()
	s.wg.Wait()
	return err
}
