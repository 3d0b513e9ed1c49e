package mailauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/dnsresolver"
)

// sigInfo is what we show of a DKIM-Signature field, parsed from the
// header ourselves: the library reports neither selector nor algorithm.
type sigInfo struct {
	domain, selector, identifier, algorithm, b string
}

// dkimSignatures returns the DKIM-Signature fields of hdr in order, as
// the library finds them.
func dkimSignatures(hdr []byte) []sigInfo {
	var out []sigInfo
	forEachField(hdr, func(name, value []byte) bool {
		if !strings.EqualFold(string(name), "DKIM-Signature") {
			return true
		}
		var si sigInfo
		for _, tv := range strings.Split(string(value), ";") {
			t, v, ok := strings.Cut(tv, "=")
			if !ok {
				continue
			}
			v = stripFWS(v)
			switch strings.TrimSpace(t) {
			case "d":
				si.domain = v
			case "s":
				si.selector = v
			case "i":
				si.identifier = v
			case "a":
				si.algorithm = v
			case "b":
				si.b = v
			}
		}
		out = append(out, si)
		return true
	})
	return out
}

func stripFWS(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// errReader remembers a read error of the underlying reader, to tell an
// unreadable spool (temporary, our problem) from a malformed message.
type errReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
	}
	return n, err
}

func (e *errReader) failed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err != nil
}

// verifyDKIM verifies up to in.MaxSignatures signatures; hdr is the
// message header as read by readHeader.
func verifyDKIM(ctx context.Context, r dnsresolver.Resolver, hdr []byte, in Input) []DKIM {
	sigs := dkimSignatures(hdr)
	if len(sigs) == 0 {
		return nil
	}
	max := in.MaxSignatures
	if max <= 0 {
		max = DefaultMaxSignatures
	}
	if headerEnd(hdr) < 0 && int64(len(hdr)) < in.Size {
		// The library would read a header of any size into memory.
		out := make([]DKIM, min(len(sigs), max))
		for i := range out {
			out[i] = sigResult(sigs[i], PermError, "header too large")
		}
		return out
	}
	var src io.Reader = io.NewSectionReader(in.Message, 0, in.Size)
	if headerEnd(hdr) < 0 && int64(len(hdr)) == in.Size {
		// A message that is all header: the library needs the blank
		// line that ends it.
		nl := "\r\n"
		if !bytes.HasSuffix(hdr, []byte("\n")) {
			nl = "\r\n\r\n"
		}
		src = io.MultiReader(src, strings.NewReader(nl))
	}
	er := &errReader{r: src}
	opts := &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			// Errors stay unwrapped *net.DNSError: the library tells
			// temporary from permanent by type assertion.
			return r.LookupTXT(ctx, name)
		},
		MaxVerifications: max,
	}
	verifs, err := dkim.VerifyWithOptions(er, opts)
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// A failure that is not about one signature (an unreadable
		// message): none of the verdicts can be trusted, including
		// ones the library left looking like a pass.
		st, reason := PermError, "message not verifiable: "+err.Error()
		if er.failed() {
			st, reason = TempError, "message unreadable"
		}
		n := min(len(sigs), max)
		out := make([]DKIM, n)
		for i := range out {
			out[i] = sigResult(sigs[i], st, reason)
		}
		return out
	}
	out := make([]DKIM, 0, len(verifs))
	for i, v := range verifs {
		var si sigInfo
		if i < len(sigs) {
			si = sigs[i]
		}
		if v.Domain != "" {
			si.domain = v.Domain
		}
		if v.Identifier != "" && si.identifier != "" {
			si.identifier = v.Identifier
		}
		st, reason := Pass, ""
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			st, reason = TempError, trimDKIM(v.Err)
		case dkim.IsPermFail(v.Err):
			st, reason = PermError, trimDKIM(v.Err)
		default:
			st, reason = Fail, trimDKIM(v.Err)
		}
		out = append(out, sigResult(si, st, reason))
	}
	return out
}

func sigResult(si sigInfo, st Status, reason string) DKIM {
	d := strings.ToLower(si.domain)
	if a, err := address.Domain(si.domain); err == nil {
		d = a
	}
	b := si.b
	if len(b) > 8 {
		b = b[:8]
	}
	return DKIM{
		Status:     st,
		Domain:     d,
		Selector:   si.selector,
		Identifier: si.identifier,
		Algorithm:  si.algorithm,
		B:          b,
		Reason:     reason,
	}
}

// trimDKIM drops the library's "dkim: " prefix and any resolver detail.
func trimDKIM(err error) string {
	s := strings.TrimPrefix(err.Error(), "dkim: ")
	if i := strings.Index(s, ": lookup "); i >= 0 {
		// "key unavailable: lookup x on 127.0.0.53:53: i/o timeout"
		rest := s[i:]
		if j := strings.LastIndex(rest, ": "); j >= 0 {
			s = s[:i] + ": DNS " + rest[j+2:]
		}
	}
	return s
}
