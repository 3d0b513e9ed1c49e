//go:debug rsa1024min=0

package arc

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testMessage = "Received: from mail.example.org (mail.example.org [192.0.2.1])\r\n" +
	"\tby mx.example.net with ESMTPS; Tue, 14 Nov 2023 22:13:20 +0000\r\n" +
	"Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=example.org\r\n" +
	"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; c=relaxed/relaxed;\r\n" +
	"\th=from:to:subject; bh=AAAA; b=BBBB\r\n" +
	"From: Alice Example <alice@example.org>\r\n" +
	"To: bob@example.net,\r\n" +
	"    carol@example.net\r\n" +
	"Cc: dave@example.com\r\n" +
	"Subject:   Quarterly   report \t(draft)\r\n" +
	"Date: Tue, 14 Nov 2023 22:13:19 +0000\r\n" +
	"Message-ID: <20231114221319.abc@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello Bob,  \r\n" +
	"\r\n" +
	"  the numbers\tare attached.\t\r\n" +
	"A very long line " + "0123456789" + strings.Repeat("abcdefghij", 30) + "\r\n" +
	"-- \r\n" +
	"Alice\r\n" +
	"\r\n" +
	"\r\n"

var (
	keysOnce sync.Once
	rsaKey1  *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	edKey    ed25519.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
}

// zone is a fake DNS zone of DKIM key records.
type zone map[string]string

func (z zone) publish(t testing.TB, selector, domain string, pub crypto.PublicKey) {
	t.Helper()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		z[selector+"._domainkey."+domain] = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		z[selector+"._domainkey."+domain] = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k)
	default:
		t.Fatalf("key type %T", pub)
	}
}

func (z zone) lookup(ctx context.Context, name string) ([]string, error) {
	if txt, ok := z[strings.TrimSuffix(strings.ToLower(name), ".")]; ok {
		return []string{txt}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

var fixedNow = func() time.Time { return time.Unix(1700000000, 0) }

func seal(t *testing.T, msg string, z zone, key crypto.Signer, domain, selector string) *Set {
	t.Helper()
	set, err := Seal(context.Background(), strings.NewReader(msg), SealOptions{
		AuthServID:  "mx." + domain,
		AuthResults: "spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org header.s=sel; dmarc=pass header.from=example.org",
		Domain:      domain,
		Selector:    selector,
		Key:         key,
		LookupTXT:   z.lookup,
		Now:         fixedNow,
	})
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return set
}

func ourVerify(t *testing.T, msg string, z zone) Result {
	t.Helper()
	r, err := Verify(context.Background(), strings.NewReader(msg), z.lookup)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

// dkimpy is testdata/arcverify.py running in --serve mode, shared by the
// tests so that dkimpy is imported once.
type dkimpy struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

var (
	pyOnce   sync.Once
	pyServer *dkimpy
	pyErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pyServer != nil {
		pyServer.in.Close()
		done := make(chan struct{})
		go func() { pyServer.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			pyServer.cmd.Process.Kill()
		}
	}
	os.Exit(code)
}

// call sends one request and decodes the answer into out.
func (p *dkimpy) call(req map[string]any, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing to arcverify.py: %w", err)
	}
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading from arcverify.py: %w", err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(line, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return json.Unmarshal(line, out)
}

// python returns the shared dkimpy server, after checking that the extra
// modules import. If dkimpy (Debian python3-dkim) or a module
// (python3-authres) is missing the test is skipped, or fails under CI=true.
func python(t *testing.T, modules ...string) *dkimpy {
	t.Helper()
	pyOnce.Do(func() {
		cmd := exec.Command("/usr/bin/python3", filepath.Join("testdata", "arcverify.py"), "--serve")
		in, err := cmd.StdinPipe()
		if err != nil {
			pyErr = err
			return
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			pyErr = err
			return
		}
		if err := cmd.Start(); err != nil {
			pyErr = err
			return
		}
		pyServer = &dkimpy{cmd: cmd, in: in, out: bufio.NewReader(out)}
	})
	err := pyErr
	if err == nil {
		var ok struct{ OK bool }
		err = pyServer.call(map[string]any{"op": "ping", "modules": modules}, &ok)
	}
	if err != nil {
		msg := fmt.Sprintf("dkimpy unavailable (Debian packages python3-dkim, python3-authres): %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return pyServer
}

type pyResult struct {
	CV     *string `json:"cv"`
	Reason string  `json:"reason"`
	Sets   []struct {
		Instance int    `json:"instance"`
		AMSValid bool   `json:"ams_valid"`
		ASValid  bool   `json:"as_valid"`
		CV       string `json:"cv"`
	} `json:"sets"`
	FailSealValid *bool `json:"fail_seal_valid"`
}

// dkimpyVerify runs dkimpy's arc_verify on msg with zone z.
func dkimpyVerify(t *testing.T, msg string, z zone, flags ...string) pyResult {
	t.Helper()
	var r pyResult
	if flags == nil {
		flags = []string{}
	}
	err := python(t).call(map[string]any{
		"op": "verify", "message": []byte(msg), "zone": z, "flags": flags,
	}, &r)
	if err != nil {
		t.Fatalf("dkimpy verify: %v", err)
	}
	return r
}

func cvOf(r pyResult) string {
	if r.CV == nil {
		return "<chain terminated>"
	}
	return *r.CV
}

func checkLayout(t *testing.T, h []byte, instance int, cv Status) {
	t.Helper()
	s := string(h)
	if !strings.HasSuffix(s, "\r\n") || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
		t.Errorf("header not CRLF-terminated lines: %q", s)
	}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n") {
		if len(line) > foldWidth {
			t.Errorf("line longer than %d: %q", foldWidth, line)
		}
	}
	want := []string{
		fmt.Sprintf("ARC-Seal: i=%d; a=", instance),
		fmt.Sprintf("ARC-Message-Signature: i=%d; a=", instance),
		fmt.Sprintf("ARC-Authentication-Results: i=%d; mx.", instance),
	}
	var starts []string
	for _, line := range strings.Split(s, "\r\n") {
		if line != "" && line[0] != '\t' && line[0] != ' ' {
			starts = append(starts, line)
		}
	}
	if len(starts) != 3 {
		t.Fatalf("want 3 fields, got %q", starts)
	}
	for i, w := range want {
		if !strings.HasPrefix(starts[i], w) {
			t.Errorf("field %d = %q, want prefix %q", i, starts[i], w)
		}
	}
	if !strings.Contains(s, "cv="+string(cv)+";") {
		t.Errorf("no cv=%s in %q", cv, s)
	}
}

// TestSealFirstInstance: i=1, cv=none, verified by dkimpy and by us, for
// RSA-2048 and (with dkimpy's algorithm table extended) Ed25519.
func TestSealFirstInstance(t *testing.T) {
	testKeys(t)
	for _, tc := range []struct {
		name  string
		key   crypto.Signer
		flags []string
	}{
		{"rsa", rsaKey1, nil},
		{"ed25519", edKey, []string{"--ed25519"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := zone{}
			z.publish(t, "arc1", "fwd.example", tc.key.Public())
			set := seal(t, testMessage, z, tc.key, "fwd.example", "arc1")
			if set.Instance != 1 || set.Chain.Status != StatusNone {
				t.Fatalf("set %d, chain %+v", set.Instance, set.Chain)
			}
			checkLayout(t, set.Header, 1, StatusNone)
			sealed := string(set.Header) + testMessage
			if r := ourVerify(t, sealed, z); r.Status != StatusPass || r.Instance != 1 {
				t.Errorf("our Verify = %+v", r)
			}
			r := dkimpyVerify(t, sealed, z, tc.flags...)
			if cvOf(r) != "pass" || len(r.Sets) != 1 || !r.Sets[0].AMSValid || !r.Sets[0].ASValid {
				t.Errorf("dkimpy: cv=%s %q %+v", cvOf(r), r.Reason, r.Sets)
			}
			// The AAR carries our results verbatim.
			if !strings.Contains(relaxedValue(string(set.Header)), "i=1; mx.fwd.example; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org header.s=sel; dmarc=pass header.from=example.org") {
				t.Errorf("AAR: %q", set.Header)
			}
		})
	}
	// Without the extension dkimpy refuses Ed25519 ARC, as RFC 8617 allows
	// only rsa-sha256: that is why RSA is the recommended key.
	z := zone{}
	z.publish(t, "arc1", "fwd.example", edKey.Public())
	set := seal(t, testMessage, z, edKey, "fwd.example", "arc1")
	if r := dkimpyVerify(t, string(set.Header)+testMessage, z); cvOf(r) != "fail" {
		t.Errorf("dkimpy accepted ed25519-sha256 ARC: %+v", r)
	}
}

// TestSealLFMessage: a stored message with bare LF line endings seals as if
// it had CRLF.
func TestSealLFMessage(t *testing.T) {
	testKeys(t)
	lf := strings.ReplaceAll(testMessage, "\r\n", "\n")
	z := zone{}
	z.publish(t, "arc1", "fwd.example", rsaKey1.Public())
	set := seal(t, lf, z, rsaKey1, "fwd.example", "arc1")
	crlfSet := seal(t, testMessage, z, rsaKey1, "fwd.example", "arc1")
	// Same canonical input, same deterministic RSA signature.
	if string(set.Header) != string(crlfSet.Header) {
		t.Errorf("LF and CRLF messages seal differently:\n%s\n%s", set.Header, crlfSet.Header)
	}
	sealed := strings.ReplaceAll(string(set.Header), "\r\n", "\n") + lf
	if r := dkimpyVerify(t, sealed, z); cvOf(r) != "pass" {
		t.Errorf("dkimpy: %s %q", cvOf(r), r.Reason)
	}
}

// TestSealSecondInstance: i=2 over a valid set, cv=pass.
func TestSealSecondInstance(t *testing.T) {
	testKeys(t)
	z := zone{}
	z.publish(t, "hop1", "first.example", rsaKey1.Public())
	z.publish(t, "hop2", "second.example", rsaKey2.Public())
	set1 := seal(t, testMessage, z, rsaKey1, "first.example", "hop1")
	msg1 := string(set1.Header) + testMessage
	set2 := seal(t, msg1, z, rsaKey2, "second.example", "hop2")
	if set2.Instance != 2 || set2.Chain.Status != StatusPass {
		t.Fatalf("set %d, chain %+v", set2.Instance, set2.Chain)
	}
	checkLayout(t, set2.Header, 2, StatusPass)
	if !strings.Contains(string(set2.Header), "; arc=pass\r\n") {
		t.Errorf("AAR without arc=pass: %s", set2.Header)
	}
	msg2 := string(set2.Header) + msg1
	if r := ourVerify(t, msg2, z); r.Status != StatusPass || r.Instance != 2 {
		t.Errorf("our Verify = %+v", r)
	}
	r := dkimpyVerify(t, msg2, z)
	if cvOf(r) != "pass" || len(r.Sets) != 2 {
		t.Fatalf("dkimpy: cv=%s %q %+v", cvOf(r), r.Reason, r.Sets)
	}
	for _, s := range r.Sets {
		if !s.AMSValid || !s.ASValid {
			t.Errorf("dkimpy set %+v", s)
		}
	}

	// A mailing list in between changes the subject after the first seal:
	// validated on receipt (pass), then changed, then sealed with that
	// result. AMS i=1 breaks, the chain still passes.
	chain := ourVerify(t, msg1, z)
	changed := strings.Replace(msg1, "Subject:   Quarterly", "Subject: [list] Quarterly", 1)
	set, err := Seal(context.Background(), strings.NewReader(changed), SealOptions{
		AuthServID: "lists.second.example", AuthResults: "arc=pass header.oldest-pass=1",
		Domain: "second.example", Selector: "hop2", Key: rsaKey2, Chain: &chain, Now: fixedNow,
	})
	if err != nil || set.Chain.Status != StatusPass {
		t.Fatalf("Seal with chain: %+v, %v", set, err)
	}
	msgList := string(set.Header) + changed
	if got := ourVerify(t, msgList, z); got.Status != StatusPass {
		t.Errorf("our Verify after list = %+v", got)
	}
	r = dkimpyVerify(t, msgList, z)
	if cvOf(r) != "pass" || r.Sets[1].AMSValid {
		t.Errorf("dkimpy after list: cv=%s %q %+v (AMS i=1 should be broken)", cvOf(r), r.Reason, r.Sets)
	}
	// The caller's arc= result is kept, not duplicated.
	if strings.Count(string(set.Header), "arc=") != 1 {
		t.Errorf("arc= duplicated: %s", set.Header)
	}
}

// TestSealOverDkimpySet: dkimpy's own sealer makes i=1; our validator accepts
// it, and dkimpy accepts our i=2.
func TestSealOverDkimpySet(t *testing.T) {
	testKeys(t)
	py := python(t, "authres")
	z := zone{}
	z.publish(t, "py", "python.example", rsaKey1.Public())
	z.publish(t, "hop2", "second.example", rsaKey2.Public())
	in := "Authentication-Results: mx.python.example; spf=pass smtp.mailfrom=example.org\r\n" + testMessage
	var signed struct{ Header []byte }
	err := py.call(map[string]any{
		"op": "sign", "message": []byte(in), "selector": "py", "domain": "python.example",
		"srv_id": "mx.python.example", "timestamp": 1700000000,
		"key": string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey1)})),
	}, &signed)
	if err != nil {
		t.Fatalf("dkimpy arc_sign: %v", err)
	}
	out := signed.Header
	msg1 := string(out) + in
	if r := ourVerify(t, msg1, z); r.Status != StatusPass || r.Instance != 1 {
		t.Fatalf("our Verify of dkimpy's set = %+v\n%s", r, out)
	}
	set := seal(t, msg1, z, rsaKey2, "second.example", "hop2")
	if set.Instance != 2 || set.Chain.Status != StatusPass {
		t.Fatalf("set %d chain %+v", set.Instance, set.Chain)
	}
	r := dkimpyVerify(t, string(set.Header)+msg1, z)
	if cvOf(r) != "pass" || len(r.Sets) != 2 || !r.Sets[0].AMSValid || !r.Sets[0].ASValid || !r.Sets[1].ASValid {
		t.Errorf("dkimpy: cv=%s %q %+v", cvOf(r), r.Reason, r.Sets)
	}
}

// TestSealTamperedChain: an earlier set that no longer verifies gives
// cv=fail, and the new seal covers only its own set.
func TestSealTamperedChain(t *testing.T) {
	testKeys(t)
	z := zone{}
	z.publish(t, "hop1", "first.example", rsaKey1.Public())
	z.publish(t, "hop2", "second.example", rsaKey2.Public())
	set1 := seal(t, testMessage, z, rsaKey1, "first.example", "hop1")
	msg1 := string(set1.Header) + testMessage

	for _, tc := range []struct {
		name   string
		tamper func(string) string
	}{
		{"AAR results changed", func(m string) string {
			return strings.Replace(m, "i=1; mx.first.example; spf=pass", "i=1; mx.first.example; spf=fail", 1)
		}},
		{"body changed", func(m string) string { return strings.Replace(m, "numbers", "NUMBERS", 1) }},
		{"signed header changed", func(m string) string { return strings.Replace(m, "Cc: dave@", "Cc: eve@", 1) }},
		{"seal signature changed", func(m string) string {
			i := strings.Index(m, "ARC-Seal:")
			j := i + strings.Index(m[i:], "b=") + 2
			c := byte('A')
			if m[j] == 'A' {
				c = 'B'
			}
			return m[:j] + string(c) + m[j+1:]
		}},
		{"key gone", func(m string) string { return strings.ReplaceAll(m, "s=hop1;", "s=gone;") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.tamper(msg1)
			if bad == msg1 {
				t.Fatal("tamper did nothing")
			}
			if r := ourVerify(t, bad, z); r.Status != StatusFail {
				t.Fatalf("our Verify of tampered = %+v", r)
			}
			set := seal(t, bad, z, rsaKey2, "second.example", "hop2")
			if set.Instance != 2 || set.Chain.Status != StatusFail || set.Chain.Reason == "" {
				t.Fatalf("set %d chain %+v", set.Instance, set.Chain)
			}
			checkLayout(t, set.Header, 2, StatusFail)
			msg2 := string(set.Header) + bad
			if r := ourVerify(t, msg2, z); r.Status != StatusFail {
				t.Errorf("our Verify = %+v", r)
			}
			r := dkimpyVerify(t, msg2, z, "--fail-seal")
			if r.CV != nil || !strings.Contains(r.Reason, "ARC-Seal[2] reported failure") {
				t.Errorf("dkimpy: cv=%s %q", cvOf(r), r.Reason)
			}
			if len(r.Sets) == 0 || !r.Sets[0].AMSValid {
				t.Errorf("dkimpy: our AMS i=2 invalid: %+v", r.Sets)
			}
			if r.FailSealValid == nil || !*r.FailSealValid {
				t.Errorf("dkimpy: our cv=fail seal does not verify over its own set")
			}
		})
	}
}

func TestSealNoLookup(t *testing.T) {
	testKeys(t)
	z := zone{}
	z.publish(t, "hop1", "first.example", rsaKey1.Public())
	msg1 := string(seal(t, testMessage, z, rsaKey1, "first.example", "hop1").Header) + testMessage
	set, err := Seal(context.Background(), strings.NewReader(msg1), SealOptions{
		AuthServID: "mx", Domain: "second.example", Selector: "s", Key: rsaKey2, Now: fixedNow,
	})
	if err != nil || set.Chain.Status != StatusFail {
		t.Fatalf("%+v %v", set, err)
	}
	if !strings.Contains(string(set.Header), "i=2; mx; none; arc=fail") {
		t.Errorf("AAR: %s", set.Header)
	}
}

func TestSealTemporaryDNS(t *testing.T) {
	testKeys(t)
	z := zone{}
	z.publish(t, "hop1", "first.example", rsaKey1.Public())
	msg1 := string(seal(t, testMessage, z, rsaKey1, "first.example", "hop1").Header) + testMessage
	timeout := func(ctx context.Context, name string) ([]string, error) {
		return nil, &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true}
	}
	_, err := Seal(context.Background(), strings.NewReader(msg1), SealOptions{
		AuthServID: "mx", Domain: "second.example", Selector: "s", Key: rsaKey2, LookupTXT: timeout,
	})
	if !errors.Is(err, ErrTemporary) {
		t.Errorf("Seal with DNS timeout: %v", err)
	}
	if _, err := Verify(context.Background(), strings.NewReader(msg1), timeout); !errors.Is(err, ErrTemporary) {
		t.Errorf("Verify with DNS timeout: %v", err)
	}
}

// TestChainLimit seals up to i=50 and refuses i=51.
func TestChainLimit(t *testing.T) {
	testKeys(t)
	z := zone{}
	z.publish(t, "s", "hop.example", edKey.Public())
	msg := testMessage
	for i := 1; i <= MaxInstance; i++ {
		set := seal(t, msg, z, edKey, "hop.example", "s")
		if set.Instance != i || (i > 1 && set.Chain.Status != StatusPass) {
			t.Fatalf("instance %d: %+v", i, set.Chain)
		}
		msg = string(set.Header) + msg
	}
	if r := ourVerify(t, msg, z); r.Status != StatusPass || r.Instance != MaxInstance {
		t.Fatalf("Verify of 50 sets = %+v", r)
	}
	if r := dkimpyVerify(t, msg, z, "--ed25519"); cvOf(r) != "pass" || len(r.Sets) != MaxInstance {
		t.Errorf("dkimpy on 50 sets: %s %q", cvOf(r), r.Reason)
	}
	_, err := Seal(context.Background(), strings.NewReader(msg), SealOptions{
		AuthServID: "mx", Domain: "hop.example", Selector: "s", Key: edKey, LookupTXT: z.lookup,
	})
	if !errors.Is(err, ErrTooManySets) {
		t.Errorf("51st set: %v", err)
	}
	// A claimed i=51 fails the chain and leaves no room either.
	bogus := "ARC-Seal: i=51; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AAAA\r\n" + testMessage
	if r := ourVerify(t, bogus, z); r.Status != StatusFail {
		t.Errorf("i=51: %+v", r)
	}
	if _, err := Seal(context.Background(), strings.NewReader(bogus), SealOptions{
		AuthServID: "mx", Domain: "hop.example", Selector: "s", Key: edKey, LookupTXT: z.lookup,
	}); !errors.Is(err, ErrTooManySets) {
		t.Errorf("seal over i=51: %v", err)
	}
}

// TestVerifyStructure covers the chain rules that need no signature.
func TestVerifyStructure(t *testing.T) {
	testKeys(t)
	z := zone{}
	z.publish(t, "s", "hop.example", rsaKey1.Public())
	one := string(seal(t, testMessage, z, rsaKey1, "hop.example", "s").Header)
	two := string(seal(t, one+testMessage, z, rsaKey1, "hop.example", "s").Header)
	fields := func(h string) []string { // AS, AMS, AAR
		var out []string
		for _, l := range strings.SplitAfter(h, "\r\n") {
			if l == "" {
				continue
			}
			if l[0] == '\t' {
				out[len(out)-1] += l
			} else {
				out = append(out, l)
			}
		}
		return out
	}
	f1, f2 := fields(one), fields(two)
	for _, tc := range []struct {
		name string
		msg  string
		want Status
	}{
		{"no ARC", testMessage, StatusNone},
		{"one set", one + testMessage, StatusPass},
		{"two sets", two + one + testMessage, StatusPass},
		{"sets in any order", f2[2] + f1[0] + f2[1] + f1[2] + f2[0] + f1[1] + testMessage, StatusPass},
		{"missing seal", f1[1] + f1[2] + testMessage, StatusFail},
		{"missing set 1", two + testMessage, StatusFail},
		{"duplicate AMS", f1[1] + one + testMessage, StatusFail},
		{"no instance", "ARC-Seal: a=rsa-sha256; cv=none; d=hop.example; s=s; b=AA\r\n" + one + testMessage, StatusFail},
		{"cv=pass at i=1", strings.Replace(one, "cv=none", "cv=pass", 1) + testMessage, StatusFail},
		{"cv=none at i=2", strings.Replace(two, "cv=pass", "cv=none", 1) + one + testMessage, StatusFail},
		{"cv=fail at top", strings.Replace(two, "cv=pass", "cv=fail", 1) + one + testMessage, StatusFail},
		{"AMS signs ARC-Seal", strings.Replace(one, "h=from:", "h=arc-seal:from:", 1) + testMessage, StatusFail},
		{"AS with h=", strings.Replace(one, "cv=none;", "cv=none; h=from;", 1) + testMessage, StatusFail},
		{"unknown algorithm", strings.Replace(one, "a=rsa-sha256", "a=rsa-sha1", 2) + testMessage, StatusFail},
		{"expired AMS", strings.Replace(one, "c=relaxed/relaxed;", "c=relaxed/relaxed; x=1600000000;", 1) + testMessage, StatusFail},
		{"unknown canonicalization", strings.Replace(one, "c=relaxed/relaxed;", "c=strict/relaxed;", 1) + testMessage, StatusFail},
		{"bad tag list", strings.Replace(one, "cv=none;", "cv=none; junk;", 1) + testMessage, StatusFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ourVerify(t, tc.msg, z)
			if r.Status != tc.want {
				t.Errorf("status %s (%s), want %s", r.Status, r.Reason, tc.want)
			}
			if r.Status == StatusFail && r.Reason == "" {
				t.Error("fail without a reason")
			}
		})
	}
}

func TestKeyRecords(t *testing.T) {
	testKeys(t)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey1.PublicKey)
	p := base64.StdEncoding.EncodeToString(der)
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&rsaKey1.PublicKey))
	small, _ := rsa.GenerateKey(rand.Reader, 512)
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	for _, tc := range []struct {
		txt string
		ok  bool
	}{
		{"v=DKIM1; k=rsa; p=" + p, true},
		{"p=" + p, true},
		{"v=DKIM1; p=" + p[:40] + " " + p[40:], true},
		{"v=DKIM1; k=rsa; p=" + pkcs1, true},
		{"v=DKIM1; h=sha256; s=email; p=" + p, true},
		{"v=DKIM1; h=sha1; p=" + p, false},
		{"v=DKIM1; s=tlsrpt; p=" + p, false},
		{"v=DKIM2; p=" + p, false},
		{"v=DKIM1; k=rsa; p=", false},
		{"v=DKIM1; k=rsa", false},
		{"v=DKIM1; k=dsa; p=" + p, false},
		{"v=DKIM1; k=ed25519; p=" + p, false},
		{"v=DKIM1; p=" + base64.StdEncoding.EncodeToString(smallDER), false},
		{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edKey.Public().(ed25519.PublicKey)), true},
		{"v=DKIM1; p=!!!", false},
		{"v=DKIM1; p=" + p + "; p=" + p, false},
	} {
		_, err := parseKeyRecord(tc.txt)
		if (err == nil) != tc.ok {
			t.Errorf("parseKeyRecord(%.60q): %v, want ok=%v", tc.txt, err, tc.ok)
		}
	}
}

func TestSealOptionsValidation(t *testing.T) {
	testKeys(t)
	base := SealOptions{AuthServID: "mx.example", Domain: "example.com", Selector: "s", Key: rsaKey1}
	small, _ := rsa.GenerateKey(rand.Reader, 512)
	for _, tc := range []struct {
		name string
		mod  func(*SealOptions)
	}{
		{"no authserv-id", func(o *SealOptions) { o.AuthServID = "" }},
		{"authserv-id with ;", func(o *SealOptions) { o.AuthServID = "a;b" }},
		{"authserv-id with CRLF", func(o *SealOptions) { o.AuthServID = "a\r\nX-Evil: 1" }},
		{"authserv-id with NUL", func(o *SealOptions) { o.AuthServID = "a\x00b" }},
		{"bad domain", func(o *SealOptions) { o.Domain = "exa mple.com" }},
		{"bad selector", func(o *SealOptions) { o.Selector = "s;x" }},
		{"no key", func(o *SealOptions) { o.Key = nil }},
		{"short RSA key", func(o *SealOptions) { o.Key = small }},
		{"signs ARC-Seal", func(o *SealOptions) { o.SignedHeaders = []string{"From", "ARC-Seal"} }},
		{"no From", func(o *SealOptions) { o.SignedHeaders = []string{"Subject"} }},
		{"bad header name", func(o *SealOptions) { o.SignedHeaders = []string{"From", "X:Y"} }},
	} {
		o := base
		tc.mod(&o)
		if _, err := Seal(context.Background(), strings.NewReader(testMessage), o); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// A chain result for a message without ARC sets is a caller error.
	o := base
	o.Chain = &Result{Status: StatusPass, Instance: 1}
	if _, err := Seal(context.Background(), strings.NewReader(testMessage), o); err == nil {
		t.Error("pass chain for a message without sets accepted")
	}
	// Unreadable messages.
	for _, msg := range []string{" continuation first\r\n\r\nbody", "no colon here\r\n\r\nbody", strings.Repeat("X-Long: "+strings.Repeat("a", 1000)+"\r\n", 1100)} {
		if _, err := Seal(context.Background(), strings.NewReader(msg), base); err == nil {
			t.Errorf("malformed message %.30q accepted", msg)
		}
	}
}

// TestSignedHeaders: every occurrence of a listed field is signed, From at
// least once, and Authentication-Results never by default.
func TestSignedHeaders(t *testing.T) {
	testKeys(t)
	msg := "To: a@example.net\r\nTo: b@example.net\r\nSubject: x\r\n\r\nbody\r\n"
	z := zone{}
	z.publish(t, "s", "hop.example", rsaKey1.Public())
	set := seal(t, msg, z, rsaKey1, "hop.example", "s")
	h := relaxedValue(string(set.Header))
	if !strings.Contains(h, "h=subject:to:to:from;") && !strings.Contains(h, "h=from:subject:to:to;") {
		t.Errorf("h= list: %s", h)
	}
	if r := dkimpyVerify(t, string(set.Header)+msg, z); cvOf(r) != "pass" {
		t.Errorf("dkimpy: %s %q", cvOf(r), r.Reason)
	}
	// Adding a From below would now break the AMS (From was signed absent).
	if r := ourVerify(t, string(set.Header)+msg+"", z); r.Status != StatusPass {
		t.Errorf("our Verify = %+v", r)
	}
	if r := ourVerify(t, string(set.Header)+"From: mallory@example.com\r\n"+msg, z); r.Status != StatusFail {
		t.Errorf("added From not detected: %+v", r)
	}
}

func TestNormalizeResults(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "none"},
		{"mx.example", "none"},
		{"mx.example; none", "none"},
		{"spf=pass smtp.mailfrom=a.example", "spf=pass smtp.mailfrom=a.example"},
		{"MX.example; spf=pass", "spf=pass"},
		{"Authentication-Results: mx.example;\r\n\tspf=pass;\r\n\tdkim=none", "spf=pass; dkim=none"},
		{"other.example; spf=pass", "other.example; spf=pass"},
		{"spf=pass\r\nX-Injected: yes", "spf=pass X-Injected: yes"},
		{"spf=pass\x00\x1b[31m", "spf=pass [31m"},
	} {
		if got := normalizeResults(tc.in, "mx.example"); got != tc.want {
			t.Errorf("normalizeResults(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	testKeys(f)
	z := zone{}
	z.publish(f, "s", "hop.example", rsaKey1.Public())
	set, err := Seal(context.Background(), strings.NewReader(testMessage), SealOptions{
		AuthServID: "mx", Domain: "hop.example", Selector: "s", Key: rsaKey1, Now: fixedNow,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(string(set.Header) + testMessage))
	f.Add([]byte(testMessage))
	f.Add([]byte("ARC-Seal: i=1; cv=none\r\nARC-Message-Signature: i=1; l=5; c=simple\r\nARC-Authentication-Results: i=1; x\r\n\r\nbody"))
	f.Add([]byte("ARC-Seal: i=999999999999999999999; cv=none\n\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := Verify(context.Background(), bytes.NewReader(msg), z.lookup)
		if err == nil && r.Status == StatusFail && r.Reason == "" {
			t.Fatal("fail without reason")
		}
		if err == nil && r.Status == StatusPass && !bytes.Contains(bytes.ToLower(msg), []byte("arc-seal")) {
			t.Fatal("pass without a seal")
		}
		// Sealing must not panic either, and its output must be one that
		// our verifier reads back as three fields of the next instance.
		s, err := Seal(context.Background(), bytes.NewReader(msg), SealOptions{
			AuthServID: "mx", Domain: "hop.example", Selector: "s", Key: edKey, LookupTXT: z.lookup, Now: fixedNow,
		})
		if err != nil {
			return
		}
		if s.Instance < 1 || s.Instance > MaxInstance || bytes.Count(s.Header, []byte("\r\nARC-")) != 2 {
			t.Fatalf("bad set %d %q", s.Instance, s.Header)
		}
	})
}
