package adminhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "mailstead_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	failing := false
	srv := httptest.NewServer(Handler(reg, func() []Check {
		return []Check{{Name: "store", Fn: func(context.Context) error {
			if failing {
				return errors.New("store down")
			}
			return nil
		}}}
	}))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path     string
		fail     bool
		code     int
		contains string
	}{
		{"/healthz", false, 200, "ok"},
		{"/readyz", false, 200, `"ready":true`},
		{"/readyz", true, 503, "store down"},
		{"/healthz", true, 200, "ok"},
		{"/metrics", false, 200, "mailstead_test_total 3"},
		{"/nope", false, 404, ""},
	}
	for _, tt := range tests {
		failing = tt.fail
		code, body := get(tt.path)
		if code != tt.code || !strings.Contains(body, tt.contains) {
			t.Errorf("%s (fail=%v): %d %q", tt.path, tt.fail, code, body)
		}
	}
}
