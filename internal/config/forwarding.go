package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Forwarding configures mail that aliases send on to other servers.
type Forwarding struct {
	// SRSSecretsFile holds the SRS secrets, one per line, the first
	// signing (postsrsd's format: point it at docker-mailserver's
	// postsrsd secret to keep verifying addresses it issued). Default:
	// data_dir/srs.secrets, generated on first start.
	SRSSecretsFile string `toml:"srs_secrets_file,omitempty"`
	// DisableSRS keeps the original envelope sender (SPF will fail at
	// most destinations; only for relays that allow it).
	DisableSRS bool `toml:"disable_srs,omitempty"`
}

// Webhook is an HTTP hand-off target: aliases with a target "http:NAME"
// have their mail POSTed to URL through the outbound queue.
type Webhook struct {
	Name      string `toml:"name"`
	URL       string `toml:"url"`
	TokenFile string `toml:"token_file,omitempty"`
	TokenEnv  string `toml:"token_env,omitempty"`
	// PermanentStatus are HTTP statuses after which the message bounces
	// instead of being retried (default 400 and 413).
	PermanentStatus []int    `toml:"permanent_status,omitempty"`
	Timeout         Duration `toml:"timeout"`
}

// Token returns the webhook's bearer token secret.
func (w *Webhook) Token() Secret {
	return Secret{Name: "webhook.token", File: w.TokenFile, Env: w.TokenEnv}
}

func (v *validator) checkForwarding() {
	seen := map[string]bool{}
	for i := range v.c.Webhooks {
		w := &v.c.Webhooks[i]
		path := fmt.Sprintf("webhook.%d", i)
		if w.Name == "" || strings.ContainsAny(w.Name, " \t@:") {
			v.errAt(path+".name", `a short name used in alias targets as "http:NAME"`, "webhook %d: name %q is empty or has spaces, @ or :", i+1, w.Name)
		}
		if seen[w.Name] {
			v.errAt(path+".name", "names must be unique", "webhook %q defined twice", w.Name)
		}
		seen[w.Name] = true
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errAt(path+".url", `e.g. "https://paperless.example.org/api/mail"`, "webhook %q: url %q is not an http(s) URL", w.Name, w.URL)
		}
		if len(w.PermanentStatus) == 0 {
			w.PermanentStatus = []int{400, 413}
		}
		for _, s := range w.PermanentStatus {
			if s < 300 || s > 599 {
				v.errAt(path+".permanent_status", "HTTP statuses from 300 to 599", "webhook %q: permanent status %d", w.Name, s)
			}
		}
		if w.Timeout == 0 {
			w.Timeout = Duration(30e9)
		}
		v.checkSecret("webhook", w.Token())
	}
}
