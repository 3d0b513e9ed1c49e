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

type bytesMsg struct{ *strings.Reader }

func (m bytesMsg) Size() int64 { return m.Reader.Size() }

func TestIsTLSReport(t *testing.T) {
	tests := []struct {
		msg  string
		want bool
	}{
		{"From: a@b\r\nTLS-Report-Domain: example.net\r\n\r\nbody", true},
		{"DKIM-Signature: v=1;\r\n h=from\r\ntls-report-domain : example.net\r\n\r\n", true},
		{"From: a@b\r\n\r\nTLS-Report-Domain: in the body\r\n", false},
		{"From: a@b\nX-Y: " + strings.Repeat("z", 10000) + "\nTLS-Report-Domain: x\n\n", true},
		{"", false},
		{"TLS-Report-Domain-Not: x\r\n\r\n", false},
	}
	for i, tt := range tests {
		if got := isTLSReport(bytesMsg{strings.NewReader(tt.msg)}); got != tt.want {
			t.Errorf("%d: got %v", i, got)
		}
	}
}
