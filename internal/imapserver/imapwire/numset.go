package imapwire

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// NumRange is a range of sequence numbers or UIDs, inclusive. 0 stands for
// "*" (the largest number in use). Start may be larger than Stop: "5:3" is
// the same as "3:5".
type NumRange struct{ Start, Stop uint32 }

// NumSet is an IMAP sequence-set, or "$" (the saved search result, RFC 5182).
type NumSet struct {
	Ranges []NumRange
	Saved  bool
}

// Resolve returns the normalised ranges with "*" replaced by max and each
// range ordered, sorted and merged. Numbers above max stay as they are; the
// caller filters.
func (s NumSet) Resolve(max uint32) []NumRange {
	out := make([]NumRange, 0, len(s.Ranges))
	for _, r := range s.Ranges {
		a, b := r.Start, r.Stop
		if a == 0 {
			a = max
		}
		if b == 0 {
			b = max
		}
		if a > b {
			a, b = b, a
		}
		if b == 0 { // "*" in an empty mailbox
			continue
		}
		if a == 0 {
			a = 1
		}
		out = append(out, NumRange{a, b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Start <= merged[n-1].Stop+1 && merged[n-1].Stop != ^uint32(0) {
			if r.Stop > merged[n-1].Stop {
				merged[n-1].Stop = r.Stop
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// Contains reports whether n is in the set, with "*" meaning max.
func (s NumSet) Contains(n, max uint32) bool {
	for _, r := range s.Ranges {
		a, b := r.Start, r.Stop
		if a == 0 {
			a = max
		}
		if b == 0 {
			b = max
		}
		if a > b {
			a, b = b, a
		}
		if a <= n && n <= b {
			return true
		}
	}
	return false
}

// String formats the set in IMAP syntax.
func (s NumSet) String() string {
	if s.Saved {
		return "$"
	}
	var b strings.Builder
	for i, r := range s.Ranges {
		if i > 0 {
			b.WriteByte(',')
		}
		writeNum(&b, r.Start)
		if r.Start != r.Stop {
			b.WriteByte(':')
			writeNum(&b, r.Stop)
		}
	}
	return b.String()
}

func writeNum(b *strings.Builder, n uint32) {
	if n == 0 {
		b.WriteByte('*')
		return
	}
	b.WriteString(strconv.FormatUint(uint64(n), 10))
}

// CompactSet formats an ascending list of numbers as a sequence set with
// ranges, as COPYUID and ESEARCH ALL use. Unsorted input is formatted as
// given, one number or run at a time.
func CompactSet(nums []uint32) string {
	var b strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(nums[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(nums[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}

func (r *Reader) seqNumber() uint32 {
	if r.take('*') {
		return 0
	}
	return r.nzNumber()
}

// numSet reads a sequence-set or "$".
func (r *Reader) numSet() NumSet {
	if r.take('$') {
		return NumSet{Saved: true}
	}
	var s NumSet
	for {
		a := r.seqNumber()
		b := a
		if r.take(':') {
			b = r.seqNumber()
		}
		s.Ranges = append(s.Ranges, NumRange{a, b})
		if !r.take(',') {
			return s
		}
	}
}

var months = [...]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

func (r *Reader) month() time.Month {
	for i, m := range months {
		if r.takeFold(m) {
			return time.Month(i + 1)
		}
	}
	r.fail("invalid month")
	return 0
}

func (r *Reader) digits(min, max int) int {
	start := r.pos
	for r.pos < len(r.line) && r.pos-start < max && '0' <= r.line[r.pos] && r.line[r.pos] <= '9' {
		r.pos++
	}
	if r.pos-start < min {
		r.fail("expected %d digits", min)
	}
	n, _ := strconv.Atoi(string(r.line[start:r.pos]))
	return n
}

// date reads date = date-text / DQUOTE date-text DQUOTE, as a day in UTC.
func (r *Reader) date() time.Time {
	q := r.take('"')
	d := r.digits(1, 2)
	r.expect('-')
	m := r.month()
	r.expect('-')
	y := r.digits(4, 4)
	if q {
		r.expect('"')
	}
	if d < 1 || d > 31 {
		r.fail("invalid day")
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// dateTime reads an APPEND date-time: "dd-Mon-yyyy hh:mm:ss +zzzz".
func (r *Reader) dateTime() time.Time {
	r.expect('"')
	if r.take(' ') {
		// date-day-fixed with leading space
	}
	d := r.digits(1, 2)
	r.expect('-')
	m := r.month()
	r.expect('-')
	y := r.digits(4, 4)
	r.sp()
	hh := r.digits(2, 2)
	r.expect(':')
	mm := r.digits(2, 2)
	r.expect(':')
	ss := r.digits(2, 2)
	r.sp()
	sign := 1
	if r.take('-') {
		sign = -1
	} else {
		r.expect('+')
	}
	zh := r.digits(2, 2)
	zm := r.digits(2, 2)
	r.expect('"')
	if d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || zm > 59 {
		r.fail("invalid date-time")
	}
	loc := time.FixedZone("", sign*(zh*3600+zm*60))
	return time.Date(y, m, d, hh, mm, ss, 0, loc)
}

// FormatDateTime formats t as an IMAP date-time (INTERNALDATE).
func FormatDateTime(t time.Time) string {
	return t.Format("02-Jan-2006 15:04:05 -0700")
}
