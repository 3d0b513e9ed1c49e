package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTLSResultType(t *testing.T) {
	cert := &x509.Certificate{}
	tests := []struct {
		name   string
		err    error
		result string
		reason string
	}{
		{"not offered", errSTARTTLSNotOffered, ResultSTARTTLSNotSupported, ""},
		{"refused", fmt.Errorf("%w: %w", errSTARTTLSNotOffered, &textproto.Error{Code: 454, Msg: "TLS not available"}), ResultSTARTTLSNotSupported, "454 TLS not available"},
		{"host mismatch", x509.HostnameError{Certificate: cert, Host: "mx.example.net"}, ResultCertificateHostMismatch, ""},
		{"host mismatch from tls", &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: cert, Host: "mx.example.net"}}, ResultCertificateHostMismatch, ""},
		{"expired", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}}, ResultCertificateExpired, ""},
		{"bad usage", x509.CertificateInvalidError{Cert: cert, Reason: x509.IncompatibleUsage}, ResultCertificateNotTrusted, "incompatible key usage"},
		{"unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: cert}}, ResultCertificateNotTrusted, "unknown authority"},
		{"no roots", x509.SystemRootsError{}, ResultCertificateNotTrusted, "no root certificates"},
		{"remote alert", &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}, ResultValidationFailure, "remote error: tls: handshake failure"},
		{"not tls", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ResultValidationFailure, "first record does not look like a TLS handshake"},
		{"eof", fmt.Errorf("handshake: %w", io.EOF), ResultValidationFailure, "connection closed during handshake"},
		{"deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ResultValidationFailure, "timeout"},
		{"ctx deadline", context.DeadlineExceeded, ResultValidationFailure, "timeout"},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, ResultValidationFailure, "timeout"},
		{"reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, ResultValidationFailure, "connection error"},
		{"other", errors.New("tls: server selected unsupported protocol version 300"), ResultValidationFailure, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, reason := TLSResultType(tt.err)
			if rt != tt.result || reason != tt.reason {
				t.Fatalf("got %q, %q; want %q, %q", rt, reason, tt.result, tt.reason)
			}
		})
	}
}

func TestTruncReason(t *testing.T) {
	if got := truncReason("a\r\nb\x00ü"); got != "a  b  " {
		t.Fatalf("%q", got)
	}
	if got := truncReason(strings.Repeat("x", 500)); len(got) != maxReasonLen {
		t.Fatalf("len %d", len(got))
	}
}

func TestPublicOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"93.184.216.34:443":      true,
		"[2606:4700::1111]:443":  true,
		"127.0.0.1:443":          false,
		"10.1.2.3:443":           false,
		"192.168.0.1:443":        false,
		"169.254.169.254:80":     false, // cloud metadata
		"[::1]:443":              false,
		"[fd00::1]:443":          false,
		"[fe80::1]:443":          false,
		"0.0.0.0:443":            false,
		"[::ffff:127.0.0.1]:443": false,
		"224.0.0.1:443":          false,
		"not-an-address":         false,
	} {
		if err := publicOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("publicOnly(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
}
