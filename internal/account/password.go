// Package account holds what is about accounts beyond storage: password
// hashing and verification (including hashes imported from
// docker-mailserver/Dovecot), and the Authenticator that SMTP submission and
// IMAP share, with its failed-auth delay and per-IP failure limits.
package account

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/go-crypt/crypt"
	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/argon2"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"
)

// ErrUnsupportedHash is returned for hash strings we cannot verify.
var ErrUnsupportedHash = errors.New("unsupported password hash")

// MaxPasswordLen bounds work done on attacker-supplied passwords.
const MaxPasswordLen = 1024

// The decoder accepts only the schemes we mean to: argon2 (our own),
// bcrypt and SHA-crypt (Dovecot's BLF-CRYPT and SHA512-CRYPT/SHA256-CRYPT).
var decoder = func() *crypt.Decoder {
	d := crypt.NewDecoder()
	for _, reg := range []func(algorithm.DecoderRegister) error{argon2.RegisterDecoder, bcrypt.RegisterDecoder, shacrypt.RegisterDecoder} {
		if err := reg(d); err != nil {
			panic(fmt.Sprintf("register password decoder: %v", err)) // programming error, at init
		}
	}
	return d
}()

var hasher = func() *argon2.Hasher {
	// OWASP's argon2id minimum (19 MiB, t=2, p=1): strong enough, and
	// cheap enough that a burst of failed logins cannot exhaust memory.
	h, err := argon2.New(argon2.WithVariantID(), argon2.WithM(19456), argon2.WithT(2), argon2.WithP(1))
	if err != nil {
		panic(fmt.Sprintf("argon2 hasher: %v", err))
	}
	return h
}()

// hashSlots bounds concurrent password hashing and verification to the
// number of CPUs: more in parallel is not faster, only bigger.
var hashSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// HashPassword returns an argon2id PHC string for a new password.
func HashPassword(password string) (string, error) {
	if password == "" || len(password) > MaxPasswordLen {
		return "", fmt.Errorf("password must be 1 to %d bytes", MaxPasswordLen)
	}
	hashSlots <- struct{}{}
	d, err := hasher.Hash(password)
	<-hashSlots
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return d.Encode(), nil
}

// dovecotSchemes maps Dovecot's {SCHEME} prefixes to whether we accept them.
var dovecotSchemes = map[string]bool{
	"BLF-CRYPT":    true,
	"SHA512-CRYPT": true,
	"SHA256-CRYPT": true,
	"ARGON2ID":     true,
	"ARGON2I":      true,
	"CRYPT":        true,
}

// NormalizeHash checks that a pre-hashed password (as docker-mailserver's
// postfix-accounts.cf holds them, e.g. "{SHA512-CRYPT}$6$...") is one we
// can verify, and returns it as stored.
func NormalizeHash(h string) (string, error) {
	if _, err := decode(h); err != nil {
		return "", err
	}
	return h, nil
}

func decode(h string) (algorithm.Digest, error) {
	raw := h
	if strings.HasPrefix(h, "{") {
		end := strings.IndexByte(h, '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: unterminated {SCHEME}", ErrUnsupportedHash)
		}
		scheme := strings.ToUpper(h[1:end])
		if !dovecotSchemes[scheme] {
			return nil, fmt.Errorf("%w: scheme {%s}", ErrUnsupportedHash, scheme)
		}
		raw = h[end+1:]
	}
	d, err := decoder.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedHash, err)
	}
	return d, nil
}

// VerifyPassword reports whether password matches the stored hash.
func VerifyPassword(hash, password string) (bool, error) {
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	d, err := decode(hash)
	if err != nil {
		return false, err
	}
	// Memory-hard hashes cost ~19 MiB each (argon2id): a burst of logins
	// must not run them all at once, or memory grows by gigabytes (it was
	// measured: 50 concurrent logins took RSS from 35 MiB to 1.5 GiB).
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	ok, err := d.MatchAdvanced(password)
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	return ok, nil
}

// dummyHash is verified against when the user does not exist, so a wrong
// username costs as much time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("mailstead-timing-equaliser")
	if err != nil {
		panic(err) // only on an invalid constant password
	}
	return h
})
