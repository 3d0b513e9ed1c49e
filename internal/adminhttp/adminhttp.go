// Package adminhttp serves the admin HTTP listener: /healthz (the process
// is up), /readyz (the store answers and every mail listener is accepting)
// and /metrics (Prometheus). It is separate from the mail ports and bound
// to loopback by default, because metrics and admin views are not for the
// internet.
package adminhttp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check; nil error means ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Handler builds the admin mux.
func Handler(gatherer prometheus.Gatherer, checks func() []Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		type result struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Error string `json:"error,omitempty"`
		}
		var out struct {
			Ready  bool     `json:"ready"`
			Checks []result `json:"checks"`
		}
		out.Ready = true
		for _, c := range checks() {
			res := result{Name: c.Name, OK: true}
			if err := c.Fn(ctx); err != nil {
				res.OK, res.Error = false, err.Error()
				out.Ready = false
			}
			out.Checks = append(out.Checks, res)
		}
		w.Header().Set("Content-Type", "application/json")
		if !out.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	// Profiles, for diagnosing a live server; the admin listener is
	// private (loopback by default).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
