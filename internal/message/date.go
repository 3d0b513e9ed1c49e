package message

import (
	"strings"
	"time"
)

// Date parses the envelope's Date header for SORT and SEARCH SENT*. It
// accepts RFC 5322 dates and the common malformed variants: missing day of
// week or seconds, two-digit years, asctime order, named or missing zones,
// ISO 8601. ok is false when no date can be made out.
func Date(env *Envelope) (time.Time, bool) {
	if env == nil {
		return time.Time{}, false
	}
	return ParseDate(env.Date)
}

var months = map[string]time.Month{
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April,
	"may": time.May, "jun": time.June, "jul": time.July, "aug": time.August,
	"sep": time.September, "oct": time.October, "nov": time.November, "dec": time.December,
}

// zones are the RFC 5322 obsolete zone names plus common ones seen in
// the wild, as offsets in hours.
var zones = map[string]int{
	"ut": 0, "utc": 0, "gmt": 0, "z": 0, "wet": 0,
	"est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
	"akst": -9, "akdt": -8, "hst": -10,
	"bst": 1, "cet": 1, "met": 1, "west": 1, "cest": 2, "mest": 2, "eet": 2, "eest": 3,
	"msk": 3, "hkt": 8, "sgt": 8, "awst": 8, "jst": 9, "kst": 9, "aest": 10, "aedt": 11, "nzst": 12, "nzdt": 13,
}

var weekdays = map[string]bool{"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true}

// ParseDate parses a Date header value leniently; see Date.
func ParseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if len(s) > 200 {
		s = s[:200]
	}
	// net/mail.ParseDate is not used: it takes obsolete zone names such as
	// EST as UTC (or as the local zone, if it has that abbreviation).
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	return lenientDate(s)
}

func lenientDate(s string) (time.Time, bool) {
	// Drop comments, use commas as separators.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			i += commentEnd(s[i:]) - 1
			b.WriteByte(' ')
		case ',':
			b.WriteByte(' ')
		default:
			b.WriteByte(s[i])
		}
	}
	day, year, hour, min, sec := -1, -1, -1, 0, 0
	var month time.Month
	zone, haveZone := 0, false
	pm, am := false, false
	fields := strings.Fields(b.String())
	for _, f := range fields {
		lf := strings.ToLower(f)
		switch {
		case hour < 0 && strings.Count(f, ":") >= 1 && f[0] >= '0' && f[0] <= '9':
			// Time, possibly with a zone glued on: 08:12:31+0100.
			t := f
			if i := strings.IndexAny(t, "+-"); i > 0 {
				if off, ok := parseOffset(t[i:]); ok && !haveZone {
					zone, haveZone = off, true
				}
				t = t[:i]
			}
			parts := strings.Split(t, ":")
			h, ok1 := smallAtoi(parts[0])
			m, ok2 := 0, true
			if len(parts) > 1 {
				m, ok2 = smallAtoi(parts[1])
			}
			sc, ok3 := 0, true
			if len(parts) > 2 {
				sp := parts[2]
				if i := strings.IndexByte(sp, '.'); i >= 0 {
					sp = sp[:i]
				}
				sc, ok3 = smallAtoi(sp)
			}
			if ok1 && ok2 && ok3 {
				hour, min, sec = h, m, sc
			}
		case (f[0] == '+' || f[0] == '-') && len(f) > 1:
			if off, ok := parseOffset(f); ok && !haveZone {
				zone, haveZone = off, true
			}
		case f[0] >= '0' && f[0] <= '9':
			if strings.ContainsAny(f, "-/.") {
				// 15-Nov-1994, 1994-11-15, 15.11.1994.
				parts := strings.FieldsFunc(f, func(r rune) bool { return r == '-' || r == '/' || r == '.' })
				if len(parts) == 3 {
					if len(parts[0]) == 4 {
						parts[0], parts[2] = parts[2], parts[0]
					}
					d, ok1 := smallAtoi(parts[0])
					y, ok3 := smallAtoi(parts[2])
					m, ok := months[strings.ToLower(prefix3(parts[1]))]
					if !ok {
						if n, ok2 := smallAtoi(parts[1]); ok2 && n >= 1 && n <= 12 {
							m, ok = time.Month(n), true
						}
					}
					if ok1 && ok3 && ok {
						day, month, year = d, m, fixYear(y, len(parts[2]))
					}
				}
				continue
			}
			n, ok := smallAtoi(f)
			if !ok {
				// "15th" and the like.
				i := 0
				for i < len(f) && f[i] >= '0' && f[i] <= '9' {
					i++
				}
				if n, ok = smallAtoi(f[:i]); !ok || day >= 0 {
					continue
				}
				day = n
				continue
			}
			switch {
			case len(f) >= 3 || n > 31:
				if year < 0 {
					year = fixYear(n, len(f))
				}
			case day < 0:
				day = n
			case year < 0:
				year = fixYear(n, len(f))
			}
		default:
			switch {
			case lf == "am":
				am = true
			case lf == "pm":
				pm = true
			case month == 0 && len(lf) >= 3 && months[lf[:3]] != 0 && !weekdays[lf[:3]]:
				month = months[lf[:3]]
			case weekdays[prefix3(lf)]:
			default:
				if off, ok := zones[lf]; ok && !haveZone {
					zone, haveZone = off*3600, true
				}
			}
		}
	}
	if day < 1 || day > 31 || month == 0 || year < 0 || year > 9999 {
		return time.Time{}, false
	}
	if hour < 0 {
		hour = 0
	}
	if pm && hour < 12 {
		hour += 12
	} else if am && hour == 12 {
		hour = 0
	}
	if hour > 23 || min > 59 || sec > 60 {
		return time.Time{}, false
	}
	if sec == 60 {
		sec = 59
	}
	return time.Date(year, month, day, hour, min, sec, 0, time.FixedZone("", zone)), true
}

func prefix3(s string) string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// fixYear applies RFC 5322 4.3 to two- and three-digit years.
func fixYear(y, digits int) int {
	switch {
	case digits <= 2 && y < 50:
		return 2000 + y
	case digits <= 2:
		return 1900 + y
	case digits == 3:
		return 1900 + y
	}
	return y
}

// parseOffset parses +hhmm, -hh:mm or +hh.
func parseOffset(f string) (int, bool) {
	sign := 1
	if f[0] == '-' {
		sign = -1
	}
	d := strings.ReplaceAll(f[1:], ":", "")
	var h, m int
	var ok bool
	switch len(d) {
	case 1, 2:
		h, ok = smallAtoi(d)
	case 3, 4:
		var ok2 bool
		h, ok = smallAtoi(d[:len(d)-2])
		m, ok2 = smallAtoi(d[len(d)-2:])
		ok = ok && ok2
	}
	if !ok || h > 23 || m > 59 {
		return 0, false
	}
	return sign * (h*3600 + m*60), true
}
