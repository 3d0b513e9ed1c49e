package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// KeyPair names a PEM certificate file (leaf first, then intermediates) and
// its PEM private key file.
type KeyPair struct {
	CertFile string
	KeyFile  string
}

// SNICert is a certificate for the given SNI names. A name "*.example.org"
// matches exactly one label below example.org. With no names, the
// certificate's own DNS names are used.
type SNICert struct {
	Names []string
	KeyPair
}

// CertStore serves certificates by SNI name. It holds a default certificate
// plus per-name certificates, all loaded from files, and can reload them
// without a restart (on SIGHUP, or when WatchFiles sees a change). Lookups
// take a read lock only; a reload swaps in a complete new set at once, so a
// handshake never sees a half-updated store.
type CertStore struct {
	log *slog.Logger

	// reloadMu serializes Reload and Update and guards def and certs.
	reloadMu sync.Mutex
	def      KeyPair
	certs    []SNICert

	mu      sync.RWMutex
	current *certSet
	// loaded are the file stamps of the set in use; tried are those of the
	// last attempt, so a broken file is retried only after it changes again
	// instead of failing (and logging) on every watch tick.
	loaded map[string]fileStamp
	tried  map[string]fileStamp
}

// certSet is one loaded generation of certificates.
type certSet struct {
	def   *tls.Certificate
	exact map[string]*tls.Certificate // lower-case name
	wild  map[string]*tls.Certificate // "example.org" for "*.example.org"
}

type fileStamp struct {
	mtime time.Time
	size  int64
}

// NewCertStore loads the default certificate def and the per-name certs.
// When def is empty the first of certs is the default. log may be nil.
func NewCertStore(def KeyPair, certs []SNICert, log *slog.Logger) (*CertStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if def.CertFile == "" && len(certs) == 0 {
		return nil, errors.New("tls: no certificate configured")
	}
	if (def.CertFile == "") != (def.KeyFile == "") {
		return nil, errors.New("tls: default certificate needs both a certificate and a key file")
	}
	s := &CertStore{
		log:   log,
		def:   def,
		certs: append([]SNICert(nil), certs...),
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Update replaces the configured files, e.g. after SIGHUP re-read the
// config, and loads them. On error nothing changes: the old files stay
// configured and the old certificates in service.
func (s *CertStore) Update(def KeyPair, certs []SNICert) error {
	if def.CertFile == "" && len(certs) == 0 {
		return errors.New("tls: no certificate configured")
	}
	if (def.CertFile == "") != (def.KeyFile == "") {
		return errors.New("tls: default certificate needs both a certificate and a key file")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	next := &CertStore{def: def, certs: append([]SNICert(nil), certs...)}
	stamps := next.files()
	set, err := next.load()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def, s.certs = next.def, next.certs
	s.current, s.loaded, s.tried = set, stamps, stamps
	return nil
}

// files lists every file of the store with its stamp; a file that cannot be
// stat'ed gets a zero stamp (so that its reappearance is a change).
func (s *CertStore) files() map[string]fileStamp {
	m := map[string]fileStamp{}
	add := func(name string) {
		if name == "" {
			return
		}
		var st fileStamp
		if fi, err := os.Stat(name); err == nil {
			st = fileStamp{mtime: fi.ModTime(), size: fi.Size()}
		}
		m[name] = st
	}
	add(s.def.CertFile)
	add(s.def.KeyFile)
	for _, c := range s.certs {
		add(c.CertFile)
		add(c.KeyFile)
	}
	return m
}

// Reload re-reads every certificate. If any fails to load, the certificates
// in use stay as they were and the error names every failing file: serving
// yesterday's valid certificate beats serving none while an operator is
// halfway through replacing files.
func (s *CertStore) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	// Stamps are taken before reading, so a file that changes while it is
	// read looks changed on the next watch tick and is read again.
	stamps := s.files()
	set, err := s.load()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.tried = stamps
	if err != nil {
		return err
	}
	s.current = set
	s.loaded = stamps
	return nil
}

// load reads all pairs into a new certSet.
func (s *CertStore) load() (*certSet, error) {
	set := &certSet{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}}
	var errs []error
	if s.def.CertFile != "" {
		c, err := loadPair(s.def)
		if err != nil {
			errs = append(errs, err)
		}
		set.def = c
	}
	for _, sc := range s.certs {
		c, err := loadPair(sc.KeyPair)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if set.def == nil && s.def.CertFile == "" {
			set.def = c
		}
		names := sc.Names
		if len(names) == 0 {
			names = c.Leaf.DNSNames
		}
		for _, n := range names {
			n = normalizeName(n)
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := set.wild[rest]; !dup {
					set.wild[rest] = c
				}
			} else if n != "" {
				if _, dup := set.exact[n]; !dup {
					set.exact[n] = c
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// loadPair loads and parses one key pair; the parsed leaf is kept for name
// lookups and expiry reporting.
func loadPair(p KeyPair) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading %s and %s: %w", p.CertFile, p.KeyFile, err)
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("tls: parsing %s: %w", p.CertFile, err)
		}
		c.Leaf = leaf
	}
	return &c, nil
}

func normalizeName(n string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
}

// GetCertificate implements tls.Config.GetCertificate: the certificate for
// the exact SNI name, else for its wildcard, else the default. It never
// returns an error, because a client with an unexpected or missing SNI
// (common among SMTP clients) should still get TLS rather than a failed
// handshake.
func (s *CertStore) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.RLock()
	set := s.current
	s.mu.RUnlock()
	return set.lookup(hello.ServerName), nil
}

func (set *certSet) lookup(serverName string) *tls.Certificate {
	name := normalizeName(serverName)
	if name != "" {
		if c, ok := set.exact[name]; ok {
			return c
		}
		if _, rest, ok := strings.Cut(name, "."); ok {
			if c, ok := set.wild[rest]; ok {
				return c
			}
		}
	}
	return set.def
}

// Certificate returns the certificate that a client sending serverName as
// SNI would get ("" for none), e.g. to report its expiry.
func (s *CertStore) Certificate(serverName string) *tls.Certificate {
	s.mu.RLock()
	set := s.current
	s.mu.RUnlock()
	return set.lookup(serverName)
}

// changed reports whether any file differs from the last load attempt.
func (s *CertStore) changed() bool {
	s.reloadMu.Lock() // def and certs are guarded by reloadMu
	now := s.files()
	s.reloadMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(now) != len(s.tried) {
		return true
	}
	for name, st := range now {
		old, ok := s.tried[name]
		if !ok || !old.mtime.Equal(st.mtime) || old.size != st.size {
			return true
		}
	}
	return false
}

// WatchFiles checks the files every interval and reloads when a file's
// modification time or size changed (certbot and cert-manager replace
// certificates without telling anyone). A failed reload is logged and kept
// out of service; it is retried after the files change again. WatchFiles
// blocks until ctx is done; run it in its own goroutine.
func (s *CertStore) WatchFiles(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.changed() {
			continue
		}
		err := s.Reload()
		if err != nil {
			// Renewal tools replace the key and the certificate one
			// after the other: a poll between the two sees a pair that
			// does not match. Give them a moment before calling it an
			// error.
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(interval, 2*time.Second)):
			}
			err = s.Reload()
		}
		if err != nil {
			s.log.Error("certificate files changed but cannot be loaded; still serving the previous certificates", "err", err)
		} else {
			s.log.Info("certificates reloaded")
		}
	}
}

// ServerConfig returns a tls.Config for the mail and admin listeners: TLS
// 1.2 or later, certificates from the store.
//
// Session tickets are disabled: Outlook and Office 365 abort STARTTLS with Go
// servers that send TLS session tickets (golang/go#70232), so Microsoft's
// servers would fail to deliver over TLS. Mail sessions are long and few,
// so resumption is worth little anyway.
func (s *CertStore) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		GetCertificate:         s.GetCertificate,
		SessionTicketsDisabled: true,
	}
}
