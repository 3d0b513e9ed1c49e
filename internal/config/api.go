package config

// API configures the HTTP mail API served on "http" listeners
// (POST /v1/email, package httpapi).
type API struct {
	// TokenFile/TokenEnv hold the bearer token callers must send. Without
	// a token every request is refused (the API is never open).
	TokenFile string `toml:"token_file,omitempty"`
	TokenEnv  string `toml:"token_env,omitempty"`
}

// Token returns the bearer token secret.
func (a *API) Token() Secret { return Secret{Name: "api.token", File: a.TokenFile, Env: a.TokenEnv} }

func (v *validator) checkAPI() {
	v.checkSecret("api", v.c.API.Token())
	hasHTTP := false
	for _, l := range v.c.Listeners {
		if l.Protocol == ProtoHTTP {
			hasHTTP = true
		}
	}
	if hasHTTP && !v.c.API.Token().IsSet() {
		v.warn = append(v.warn, `an "http" listener is configured but [api] has no token_file or token_env: every API request will be refused`)
	}
}
