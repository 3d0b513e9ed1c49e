// Package httpapi serves mailstead's HTTP mail API on "http" listeners:
//
//	POST /v1/email   raw RFC 5322 message in, injected into routing exactly
//	                 as if it had arrived over SMTP (aliases resolved,
//	                 forwarding queued); 202 with an id once durable.
//
// Authentication is a pre-shared bearer token compared in constant time.
// Replies are chosen so a caller knows whether to retry: 401 (token), 400
// (bad request), 413 (too large), 422 (a recipient is refused), 503
// (temporary: store or DNS trouble — retry).
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/delivery"
	"github.com/mailstead/mailstead/internal/message"
	"github.com/mailstead/mailstead/internal/store"
)

// Deliverer is what the API needs from package delivery.
type Deliverer interface {
	Resolve(ctx context.Context, rcpt string) (delivery.Target, error)
	Deliver(ctx context.Context, env delivery.Envelope, sp *delivery.Spool) ([]store.Delivered, error)
	TmpDir() string
}

// Options configure the handler.
type Options struct {
	Deliverer Deliverer
	// Token is the bearer token; an empty token disables the endpoint
	// (every request gets 401), never opens it.
	Token string
	// MaxBytes bounds the message size.
	MaxBytes int64
	// Hostname is used in our Received header.
	Hostname string
	Logger   *slog.Logger
	// Now is replaceable in tests.
	Now func() time.Time
	// MTASTSPolicy, when set, serves /.well-known/mta-sts.txt (RFC 8461)
	// for Host "mta-sts.<domain>" when IsLocalDomain(domain): point the
	// mta-sts name of each domain at an https "http" listener.
	MTASTSPolicy  string
	IsLocalDomain func(ctx context.Context, domain string) (bool, error)
}

type handler struct{ o Options }

// Handler returns the API mux.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 25 << 20
	}
	h := &handler{o}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/email", h.email)
	mux.HandleFunc("GET /.well-known/mta-sts.txt", h.mtasts)
	return mux
}

type reply struct {
	ID       string   `json:"id,omitempty"`
	Accepted []string `json:"accepted,omitempty"`
	Error    string   `json:"error,omitempty"`
}

func (h *handler) respond(w http.ResponseWriter, code int, r reply) {
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "60")
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(r)
}

func (h *handler) authorized(r *http.Request) bool {
	if h.o.Token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	// Hash both sides so the comparison takes the same time whatever the
	// lengths.
	a := sha256.Sum256([]byte(got))
	b := sha256.Sum256([]byte(h.o.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// email handles POST /v1/email. Recipients come from repeated "rcpt"
// query parameters (or X-Mail-Rcpt headers); without any, from the To,
// Cc and Bcc fields of the message. The envelope sender is the "from"
// parameter (or X-Mail-From), else the From field.
func (h *handler) email(w http.ResponseWriter, r *http.Request) {
	log := h.o.Logger.With("remote", r.RemoteAddr)
	if !h.authorized(r) {
		log.Info("api: bad or missing token")
		h.respond(w, http.StatusUnauthorized, reply{Error: "missing or wrong bearer token"})
		return
	}
	if r.ContentLength > h.o.MaxBytes {
		h.respond(w, http.StatusRequestEntityTooLarge, reply{Error: fmt.Sprintf("message over %d bytes", h.o.MaxBytes)})
		return
	}
	id := newID()
	ctx := r.Context()
	received := fmt.Sprintf("Received: from [%s] by %s (mailstead) with HTTP id %s;\r\n\t%s\r\n", clientIP(r), h.o.Hostname, id, h.o.Now().Format(time.RFC1123Z))
	body := http.MaxBytesReader(w, r.Body, h.o.MaxBytes)
	sp, err := delivery.NewSpool([]byte(received), body, h.o.MaxBytes+int64(len(received)), h.o.Deliverer.TmpDir())
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, delivery.ErrTooLarge) {
			h.respond(w, http.StatusRequestEntityTooLarge, reply{Error: fmt.Sprintf("message over %d bytes", h.o.MaxBytes)})
			return
		}
		h.respond(w, http.StatusBadRequest, reply{Error: "reading the message: " + err.Error()})
		return
	}
	defer sp.Close()
	hdr := sp.Header(256 << 10)
	if sp.Size() <= int64(len(received)) || !strings.Contains(string(hdr), ":") {
		h.respond(w, http.StatusBadRequest, reply{Error: "the body must be a raw RFC 5322 message"})
		return
	}
	q := r.URL.Query()
	rcpts := append(q["rcpt"], r.Header.Values("X-Mail-Rcpt")...)
	if len(rcpts) == 0 {
		for _, f := range []string{"To", "Cc", "Bcc"} {
			for _, v := range message.HeaderValues(hdr, f) {
				for _, a := range message.ParseAddressList(v) {
					if a.Mailbox != "" && a.Host != "" && a.Host != message.MissingHost {
						rcpts = append(rcpts, a.Mailbox+"@"+a.Host)
					}
				}
			}
		}
	}
	if len(rcpts) == 0 {
		h.respond(w, http.StatusBadRequest, reply{Error: "no recipients: give rcpt parameters or To/Cc fields"})
		return
	}
	if len(rcpts) > 1000 {
		h.respond(w, http.StatusBadRequest, reply{Error: "too many recipients"})
		return
	}
	from := q.Get("from")
	if from == "" {
		from = r.Header.Get("X-Mail-From")
	}
	if from == "" {
		if v, ok := message.HeaderValue(hdr, "From"); ok {
			if as := message.ParseAddressList(v); len(as) > 0 && as[0].Host != "" && as[0].Host != message.MissingHost {
				from = as[0].Mailbox + "@" + as[0].Host
			}
		}
	}
	if from != "" {
		a, err := address.Parse(from)
		if err != nil {
			h.respond(w, http.StatusBadRequest, reply{Error: "bad sender address " + from})
			return
		}
		from = a.String()
	}
	// No RemoteIP: the caller proved itself with the token, so its mail
	// is not checked with SPF/DMARC like mail from the internet.
	env := delivery.Envelope{From: from}
	var accepted []string
	for _, rc := range rcpts {
		t, err := h.o.Deliverer.Resolve(ctx, rc)
		switch {
		case err == nil:
			env.Recipients = append(env.Recipients, t)
			accepted = append(accepted, t.Address.String())
		case errors.Is(err, delivery.ErrNotLocal), errors.Is(err, delivery.ErrUnknownRecipient), errors.Is(err, address.ErrInvalid):
			h.respond(w, http.StatusUnprocessableEntity, reply{Error: fmt.Sprintf("recipient %s refused: %v", rc, err)})
			return
		default:
			log.Warn("api: resolve", "rcpt", rc, "err", err)
			h.respond(w, http.StatusServiceUnavailable, reply{Error: "temporary failure, retry later"})
			return
		}
	}
	if _, err := h.o.Deliverer.Deliver(ctx, env, sp); err != nil {
		if errors.Is(err, delivery.ErrLoop) || errors.Is(err, delivery.ErrDMARCReject) {
			h.respond(w, http.StatusUnprocessableEntity, reply{Error: err.Error()})
			return
		}
		if errors.Is(err, store.ErrOverQuota) {
			h.respond(w, http.StatusInsufficientStorage, reply{Error: "mailbox full"})
			return
		}
		log.Warn("api: deliver", "err", err)
		h.respond(w, http.StatusServiceUnavailable, reply{Error: "temporary failure, retry later"})
		return
	}
	log.Info("api: accepted", "id", id, "from", from, "rcpts", accepted, "size", sp.Size())
	h.respond(w, http.StatusAccepted, reply{ID: id, Accepted: accepted})
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// mtasts serves the MTA-STS policy of the domain named by the Host
// header (mta-sts.<domain>), for our local domains only.
func (h *handler) mtasts(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	domain, ok := strings.CutPrefix(host, "mta-sts.")
	if !ok || h.o.MTASTSPolicy == "" || h.o.IsLocalDomain == nil {
		http.NotFound(w, r)
		return
	}
	local, err := h.o.IsLocalDomain(r.Context(), domain)
	if err != nil {
		http.Error(w, "temporary failure", http.StatusServiceUnavailable)
		return
	}
	if !local {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "max-age=86400")
	io.WriteString(w, h.o.MTASTSPolicy)
}
