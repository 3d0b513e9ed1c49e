package loadgen

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		in    string
		code  int
		lines int
		proto bool // want errProtocol
		fail  bool // want another error
	}{
		{in: "250 ok\r\n", code: 250, lines: 1},
		{in: "250\r\n", code: 250, lines: 1},
		{in: "250 ok\n", code: 250, lines: 1},
		{in: "250-a\r\n250-PIPELINING\r\n250 SIZE 100\r\n", code: 250, lines: 3},
		{in: "354 go ahead\r\n", code: 354, lines: 1},
		{in: "451 4.3.0 later\r\n", code: 451, lines: 1},
		{in: "250-a\r\n251 b\r\n", proto: true},
		{in: "25 x\r\n", proto: true},
		{in: "abc x\r\n", proto: true},
		{in: "150 x\r\n", proto: true},
		{in: "600 x\r\n", proto: true},
		{in: "250_x\r\n", proto: true},
		{in: "250 " + strings.Repeat("x", maxReplyLine) + "\r\n", proto: true},
		{in: strings.Repeat("250-x\r\n", maxReplyLines+1) + "250 x\r\n", proto: true},
		{in: "250-a\r\n", fail: true},
		{in: "", fail: true},
	}
	for _, tc := range tests {
		rp, err := readReply(bufio.NewReaderSize(strings.NewReader(tc.in), maxReplyLine))
		switch {
		case tc.proto:
			if !errors.Is(err, errProtocol) {
				t.Errorf("%.40q: err %v, want protocol error", tc.in, err)
			}
		case tc.fail:
			if err == nil || errors.Is(err, errProtocol) {
				t.Errorf("%.40q: err %v, want i/o error", tc.in, err)
			}
		case err != nil:
			t.Errorf("%.40q: %v", tc.in, err)
		case rp.code != tc.code || len(rp.lines) != tc.lines:
			t.Errorf("%.40q: got %d with %d lines, want %d with %d", tc.in, rp.code, len(rp.lines), tc.code, tc.lines)
		}
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250 b\r\n", "354\r\n", "999 x\r\n", "250-\r\n", "421 bye"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(strings.NewReader(string(data)), maxReplyLine)
		// A stream holds at most len(data) replies.
		for range len(data) + 1 {
			rp, err := readReply(br)
			if err != nil {
				return
			}
			if rp.code < 200 || rp.code > 599 || len(rp.lines) == 0 || len(rp.lines) > maxReplyLines {
				t.Fatalf("bad reply %+v", rp)
			}
			for _, l := range rp.lines {
				if len(l) > maxReplyLine {
					t.Fatalf("line of %d bytes", len(l))
				}
			}
		}
	})
}
