package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

func TestEmail(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.AddDomain(ctx, store.Domain{Name: "example.org"})
	acc, _ := st.CreateAccount(ctx, store.Account{Address: "docs@example.org", PasswordHash: "x"})
	st.AddAlias(ctx, store.Alias{Address: "fwd@example.org", Targets: []string{"x@elsewhere.example"}})
	d := delivery.New(st, delivery.Options{SubaddressDelimiter: "+", TmpDir: t.TempDir()})
	srv := httptest.NewServer(Handler(Options{Deliverer: d, Token: "s3cret", MaxBytes: 1000, Hostname: "mail.example.org"}))
	defer srv.Close()
	noToken := httptest.NewServer(Handler(Options{Deliverer: d, MaxBytes: 1000}))
	defer noToken.Close()

	msg := "From: app@example.net\r\nTo: docs@example.org\r\nSubject: scan\r\n\r\nhello\r\n"
	tests := []struct {
		name, url, token, body string
		code                   int
		contains               string
	}{
		{"good, recipients from To", srv.URL + "/v1/email", "s3cret", msg, 202, `"accepted":["docs@example.org"]`},
		{"good, rcpt parameter with subaddress", srv.URL + "/v1/email?rcpt=docs%2Binbox@example.org&from=a@example.net", "s3cret", msg, 202, "docs+inbox@example.org"},
		{"wrong token", srv.URL + "/v1/email", "guess", msg, 401, "token"},
		{"no token", srv.URL + "/v1/email", "", msg, 401, "token"},
		{"endpoint without configured token", noToken.URL + "/v1/email", "", msg, 401, "token"},
		{"too large", srv.URL + "/v1/email", "s3cret", msg + strings.Repeat("x", 2000), 413, "over 1000 bytes"},
		{"unknown recipient", srv.URL + "/v1/email?rcpt=nobody@example.org", "s3cret", msg, 422, "refused"},
		{"foreign recipient", srv.URL + "/v1/email?rcpt=x@elsewhere.example", "s3cret", msg, 422, "refused"},
		{"no recipients", srv.URL + "/v1/email", "s3cret", "Subject: x\r\n\r\nbody\r\n", 400, "no recipients"},
		{"not a message", srv.URL + "/v1/email?rcpt=docs@example.org", "s3cret", "", 400, "raw RFC 5322"},
		{"forwarding not set up is temporary", srv.URL + "/v1/email?rcpt=fwd@example.org", "s3cret", msg, 503, "retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", tt.url, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "message/rfc822")
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.contains) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if tt.code == 202 {
				var r reply
				json.Unmarshal(b, &r)
				if r.ID == "" {
					t.Fatal("no id")
				}
			}
		})
	}
	in, _ := st.GetMailbox(ctx, acc.ID, "INBOX")
	ms, _ := st.GetMessages(ctx, in.ID, []uint32{1, 2, 3})
	if len(ms) != 2 {
		t.Fatalf("%d messages stored, want 2 (only the accepted requests)", len(ms))
	}
	c, _ := store.OpenContent(ctx, st, ms[1])
	raw, _ := io.ReadAll(c.Reader())
	c.Close()
	for _, want := range []string{"Return-Path: <a@example.net>", "Delivered-To: docs+inbox@example.org", "with HTTP id", "Subject: scan"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("stored message lacks %q:\n%s", want, raw)
		}
	}
	// The store going away is a 503, so the caller retries.
	st.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/email", strings.NewReader(msg))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("store down: %d", resp.StatusCode)
	}
}

func TestMTASTSPolicy(t *testing.T) {
	h := Handler(Options{MTASTSPolicy: "version: STSv1\nmode: enforce\nmx: mail.example.org\nmax_age: 604800\n",
		IsLocalDomain: func(_ context.Context, d string) (bool, error) { return d == "example.org", nil }})
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	for _, c := range []struct {
		host string
		code int
	}{{"mta-sts.example.org", 200}, {"mta-sts.example.org:443", 200}, {"mta-sts.other.example", 404}, {"example.org", 404}} {
		req, _ := http.NewRequest("GET", srv.URL+"/.well-known/mta-sts.txt", nil)
		req.Host = c.host
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || (c.code == 200 && !strings.Contains(string(b), "mx: mail.example.org")) {
			t.Errorf("%s: %d %q", c.host, resp.StatusCode, b)
		}
	}
}
