package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/httpapi"
	"github.com/mailstead/mailstead/internal/manage"
)

// apiHandler builds the handler of "http" listeners: the mail API.
func apiHandler(cfg *config.Config, d httpapi.Deliverer, isLocal func(context.Context, string) (bool, error), log *slog.Logger) (http.Handler, error) {
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
		// The MTA-STS policy every local domain publishes (see `mailstead
		// dns records`), served to https requests for mta-sts.<domain>.
		MTASTSPolicy:  manage.STSPolicyText(cfg.Hostname),
		IsLocalDomain: isLocal,
	}), nil
}
