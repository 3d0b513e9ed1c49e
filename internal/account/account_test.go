package account

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/store"
)

// Hashes as docker-mailserver's postfix-accounts.cf and Dovecot write them.
// The first is from the docker-mailserver docs (password "secret"); the
// rounds= and SHA256 ones were made with glibc crypt(3), the $2y$ one with
// bcrypt at Dovecot's default cost 5.
var importedHashes = []struct {
	name, hash, password string
}{
	{"dms SHA512-CRYPT", "{SHA512-CRYPT}$6$W4rxRQwI6HNMt9n3$riCi5/OqUxnU8eZsOlZwoCnrNgu1gBGPkJc.ER.LhJCu7sOg9i1kBrRIistlBIp938GdBgMlYuoXYUU5A4Qiv0", "secret"},
	{"glibc SHA512 rounds=", "{SHA512-CRYPT}$6$rounds=20000$abcdefghijklmnop$h9BKPYlKQQvHdrxYL4yHBFtBSdoyqIF5EhD9v4po523ss3na3WRTZpRNWrBhirRI5I1RKqkztsvFc83j01UgK0", "secret"},
	{"SHA256-CRYPT", "{SHA256-CRYPT}$5$saltsaltsalt$TihBZCRsJxAxHgKub.mCOdu9X7QLi980jJxe7T2aZg7", "secret"},
	{"BLF-CRYPT $2y$", "{BLF-CRYPT}$2y$05$caEtFzboPhzlaN07dBhwheBJ6SK7/nAEKBtOSfj4lV1637sxW/NMK", "secret"},
	{"bare $6$ (no scheme)", "$6$rounds=20000$abcdefghijklmnop$h9BKPYlKQQvHdrxYL4yHBFtBSdoyqIF5EhD9v4po523ss3na3WRTZpRNWrBhirRI5I1RKqkztsvFc83j01UgK0", "secret"},
}

func TestImportedHashes(t *testing.T) {
	for _, tt := range importedHashes {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NormalizeHash(tt.hash); err != nil {
				t.Fatal(err)
			}
			ok, err := VerifyPassword(tt.hash, tt.password)
			if err != nil || !ok {
				t.Fatalf("verify: %v %v", ok, err)
			}
			ok, _ = VerifyPassword(tt.hash, tt.password+"x")
			if ok {
				t.Fatal("wrong password accepted")
			}
		})
	}
}

func TestHashesMadeHere(t *testing.T) {
	h, err := HashPassword("pässword")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(h, "pässword"); !ok || err != nil {
		t.Fatalf("argon2id round trip: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(h, "password"); ok {
		t.Fatal("wrong password accepted")
	}
	for _, bad := range []string{"{PLAIN}secret", "{MD5}x", "$1$abc$def", "{SHA512-CRYPT", "garbage", ""} {
		if _, err := NormalizeHash(bad); !errors.Is(err, ErrUnsupportedHash) {
			t.Errorf("NormalizeHash(%q) = %v", bad, err)
		}
	}
	if _, err := HashPassword(""); err == nil {
		t.Fatal("empty password hashed")
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type mapLookup map[string]store.Account

func (m mapLookup) GetAccount(_ context.Context, a string) (store.Account, error) {
	if acc, ok := m[a]; ok {
		return acc, nil
	}
	return store.Account{}, store.ErrNotFound
}

func TestAuthenticator(t *testing.T) {
	h, _ := HashPassword("right")
	accounts := mapLookup{
		"a@example.org":   {ID: 1, Address: "a@example.org", PasswordHash: h},
		"off@example.org": {ID: 2, Address: "off@example.org", PasswordHash: h, Disabled: true},
	}
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	var slept []time.Duration
	var mu sync.Mutex
	a := NewAuthenticator(accounts, AuthOptions{
		FailureDelay: time.Second, MaxFailuresPerIP: 3, MaxFailuresPerAccount: 2, Window: time.Minute,
		Now:   clock.Now,
		Sleep: func(_ context.Context, d time.Duration) { mu.Lock(); slept = append(slept, d); mu.Unlock() },
	})
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.1")
	if acc, err := a.Authenticate(ctx, "a@example.org", "right", ip); err != nil || acc.ID != 1 {
		t.Fatalf("good login: %v", err)
	}
	if len(slept) != 0 {
		t.Fatal("slept on success")
	}
	for _, c := range []struct{ user, pw string }{{"a@example.org", "wrong"}, {"nobody@example.org", "x"}, {"off@example.org", "right"}} {
		if _, err := a.Authenticate(ctx, c.user, c.pw, ip); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("%s: %v", c.user, err)
		}
	}
	if len(slept) != 3 || slept[0] != time.Second {
		t.Fatalf("delays %v", slept)
	}
	// Fourth attempt from the IP is refused even with the right password.
	if _, err := a.Authenticate(ctx, "a@example.org", "right", ip); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("not refused: %v", err)
	}
	// Another IP (and another /64 for v6) is unaffected.
	if _, err := a.Authenticate(ctx, "a@example.org", "right", netip.MustParseAddr("2001:db8::1")); err != nil {
		t.Fatal(err)
	}
	// The window passes.
	clock.Add(2 * time.Minute)
	if _, err := a.Authenticate(ctx, "a@example.org", "right", ip); err != nil {
		t.Fatalf("after window: %v", err)
	}
	// Per-account failures from many IPs double the delay, never lock out.
	slept = nil
	for i := 0; i < 4; i++ {
		a.Authenticate(ctx, "a@example.org", "bad", netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	if slept[3] != 2*time.Second {
		t.Fatalf("per-account delay %v", slept)
	}
	if _, err := a.Authenticate(ctx, "a@example.org", "right", netip.MustParseAddr("203.0.113.9")); err != nil {
		t.Fatalf("account locked out: %v", err)
	}
}

// Verifications wait for a free slot: with every slot taken, a login
// waits instead of allocating another argon2 memory block.
func TestVerifyWaitsForSlot(t *testing.T) {
	h, _ := HashPassword("pw")
	for i := 0; i < cap(hashSlots); i++ {
		hashSlots <- struct{}{}
	}
	done := make(chan bool, 1)
	go func() {
		ok, _ := VerifyPassword(h, "pw")
		done <- ok
	}()
	select {
	case <-done:
		t.Fatal("verification ran although every slot was taken")
	case <-time.After(200 * time.Millisecond):
	}
	<-hashSlots // free one
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("verification failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("verification did not run after a slot was freed")
	}
	for i := 0; i < cap(hashSlots)-1; i++ {
		<-hashSlots
	}
}
