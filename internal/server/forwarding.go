package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mailstead/mailstead/internal/config"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/dnsresolver"
	"github.com/mailstead/mailstead/internal/forward"
	"github.com/mailstead/mailstead/internal/queue"
	"github.com/mailstead/mailstead/internal/srs"
	"github.com/mailstead/mailstead/internal/store"
)

// srsSecrets loads the SRS secrets, generating data_dir/srs.secrets on
// first start when no file is configured.
func srsSecrets(cfg *config.Config) ([]string, error) {
	path := cfg.Forwarding.SRSSecretsFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, "srs.secrets")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			var b [32]byte
			rand.Read(b[:])
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, []byte(base64.StdEncoding.EncodeToString(b[:])+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("create SRS secret: %w", err)
			}
			if err := os.Rename(tmp, path); err != nil {
				return nil, fmt.Errorf("create SRS secret: %w", err)
			}
		}
	}
	secrets, err := srs.LoadSecrets(path)
	if err != nil {
		return nil, fmt.Errorf("SRS secrets %s: %w", path, err)
	}
	return secrets, nil
}

// newForwarder builds what delivery needs to forward mail: the forwarder
// (SRS, ARC) and the SRS reverse function for bounces.
func newForwarder(cfg *config.Config, st store.Store, res dnsresolver.Resolver, log *slog.Logger) (*forward.Forwarder, func(string) (string, error), error) {
	var s *srs.SRS
	if !cfg.Forwarding.DisableSRS {
		secrets, err := srsSecrets(cfg)
		if err != nil {
			return nil, nil, err
		}
		if s, err = srs.New(secrets, srs.Options{}); err != nil {
			return nil, nil, fmt.Errorf("SRS: %w", err)
		}
	}
	f := forward.New(forward.Options{
		SRS:        s,
		Keys:       DKIMKeys(cfg),
		AuthServID: cfg.Hostname,
		IsLocalDomain: func(ctx context.Context, d string) (bool, error) {
			_, err := st.GetDomain(ctx, d)
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		LookupTXT: res.LookupTXT,
		Store:     st,
		Signer:    DKIMKeys(cfg),
		Logger:    log,
	})
	var reverse func(string) (string, error)
	if s != nil {
		reverse = s.Reverse
	}
	return f, reverse, nil
}

// webhooks builds the "http" transport from [[webhook]].
func webhooks(cfg *config.Config, log *slog.Logger) *queue.Webhook {
	w := &queue.Webhook{Targets: map[string]queue.WebhookTarget{}, Logger: log}
	for _, h := range cfg.Webhooks {
		t := queue.WebhookTarget{URL: h.URL, PermanentStatus: h.PermanentStatus, Timeout: h.Timeout.D()}
		if sec := h.Token(); sec.IsSet() {
			t.Token = sec.Value
		}
		w.Targets[h.Name] = t
	}
	return w
}

// lateReplier lets delivery send vacation responses through the
// submitter, which is built after the deliverer it uses.
type lateReplier struct {
	inj interface {
		Inject(ctx context.Context, from string, rcpts []string, msg []byte) error
	}
}

func (l *lateReplier) Inject(ctx context.Context, from string, rcpts []string, msg []byte) error {
	if l.inj == nil {
		return fmt.Errorf("outbound not ready")
	}
	return l.inj.Inject(ctx, from, rcpts, msg)
}

// domainPolicy reads each recipient domain's DMARC failure handling from
// the store (set with `mailstead domain set D --dmarc-reject ...`).
func domainPolicy(st store.Store) func(string) delivery.DomainPolicy {
	action := func(s string) delivery.Action {
		switch s {
		case "reject":
			return delivery.ActionReject
		case "junk":
			return delivery.ActionJunk
		case "accept":
			return delivery.ActionAccept
		}
		return delivery.ActionDefault
	}
	return func(domain string) delivery.DomainPolicy {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := st.GetDomain(ctx, domain)
		if err != nil {
			return delivery.DomainPolicy{}
		}
		return delivery.DomainPolicy{DMARCReject: action(d.DMARCReject), DMARCQuarantine: action(d.DMARCQuarantine)}
	}
}
