package server

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/httpapi"
)

// apiHandler builds the handler of "http" listeners: the mail API.
func apiHandler(cfg *config.Config, d httpapi.Deliverer, log *slog.Logger) (http.Handler, error) {
	token := ""
	if sec := cfg.API.Token(); sec.IsSet() {
		t, err := sec.Value()
		if err != nil {
			return nil, fmt.Errorf("api token: %w", err)
		}
		token = t
	}
	return httpapi.Handler(httpapi.Options{
		Deliverer: d,
		Token:     token,
		MaxBytes:  int64(cfg.Limits.MaxMessageSize),
		Hostname:  cfg.Hostname,
		Logger:    log,
	}), nil
}
