package message

import (
	"strings"
	"testing"
)

func TestMessageIDs(t *testing.T) {
	long := "<" + strings.Repeat("x", MaxMessageIDLen+1) + "@e>"
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{" <a@b>  <c d@e> <> junk <f@g>\r\n\t<h@i", 0, "a@b,f@g"},
		{"<a@b> <c@d> <e@f>", 2, "a@b,c@d"},
		{long + " <ok@x>", 0, "ok@x"},
		{"no ids at all", 0, ""},
	} {
		if got := strings.Join(MessageIDs(tc.in, tc.max), ","); got != tc.want {
			t.Errorf("MessageIDs(%.30q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
