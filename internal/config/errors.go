package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mailstead/mailstead/internal/tomlpos"
)

// Error is one problem in a configuration, with its place in the file when
// known. It prints as "file:line:col: message (hint: ...)", the form editors
// and terminals turn into a link.
type Error struct {
	File   string // config file name; empty for a config not read from a file
	Line   int    // 1-based; 0 when the position is unknown
	Column int    // 1-based byte column; 0 when unknown
	Msg    string
	Hint   string // optional advice, printed in parentheses
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("config")
	}
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	b.WriteString(hintSuffix(e.Hint))
	return b.String()
}

// ErrorList is every problem found in a configuration, sorted by position.
// Parse and Validate report all problems at once (up to maxErrors) so that
// fixing a config file does not take one round trip per mistake.
type ErrorList []*Error

// maxErrors bounds the errors collected for one document; a binary file fed
// to Parse must not produce a megabyte of messages.
const maxErrors = 50

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find the individual *Error values.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sortErrors orders by position; errors without position keep their relative
// order and go last.
func sortErrors(l ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// hintMarker separates a message from its hint. Errors returned by
// UnmarshalText methods pass through go-toml as plain strings, so the hint
// travels inside the message and splitHint takes it out again.
const hintMarker = " (hint: "

func hintSuffix(h string) string {
	if h == "" {
		return ""
	}
	return hintMarker + h + ")"
}

// splitHint undoes hintSuffix.
func splitHint(msg string) (string, string) {
	i := strings.LastIndex(msg, hintMarker)
	if i < 0 || !strings.HasSuffix(msg, ")") {
		return msg, ""
	}
	return msg[:i], msg[i+len(hintMarker) : len(msg)-1]
}

// hintJoin joins the non-empty hints with "; ".
func hintJoin(hints ...string) string {
	var out []string
	for _, h := range hints {
		if h != "" {
			out = append(out, h)
		}
	}
	return strings.Join(out, "; ")
}

// didYouMean returns "did you mean 'x'?" for the candidate closest to s, if
// one is close enough to be a plausible typo, else "".
func didYouMean(s string, candidates []string) string {
	if c := tomlpos.Closest(s, candidates); c != "" {
		return fmt.Sprintf("did you mean '%s'?", c)
	}
	return ""
}

// didYouMeanOr is didYouMean, falling back to listing all candidates.
func didYouMeanOr(s string, candidates []string) string {
	if h := didYouMean(s, candidates); h != "" {
		return h
	}
	return "one of: " + strings.Join(candidates, ", ")
}
