package sieve

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/message"
)

var dateParts = map[string]bool{
	"year": true, "month": true, "day": true, "date": true, "julian": true,
	"hour": true, "minute": true, "second": true, "time": true,
	"iso8601": true, "std11": true, "zone": true, "weekday": true,
}

func validDatePart(s string) bool { return dateParts[strings.ToLower(s)] }

// parseZone parses a :zone argument, "+hhmm" or "-hhmm" (RFC 5260
// section 4.1).
func parseZone(s string) (*time.Location, bool) {
	if len(s) != 5 || s[0] != '+' && s[0] != '-' {
		return nil, false
	}
	h, err1 := strconv.Atoi(s[1:3])
	m, err2 := strconv.Atoi(s[3:5])
	if err1 != nil || err2 != nil || h > 23 || m > 59 {
		return nil, false
	}
	off := h*3600 + m*60
	if s[0] == '-' {
		off = -off
	}
	return time.FixedZone(s, off), true
}

// datePart extracts a date part (RFC 5260 section 4.3).
func datePart(t time.Time, part string) string {
	switch strings.ToLower(part) {
	case "year":
		return fmt.Sprintf("%04d", t.Year())
	case "month":
		return fmt.Sprintf("%02d", int(t.Month()))
	case "day":
		return fmt.Sprintf("%02d", t.Day())
	case "date":
		return t.Format("2006-01-02")
	case "julian":
		// Modified Julian Day: days since 1858-11-17; the Unix epoch is
		// MJD 40587.
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix()
		days := d / 86400
		if d%86400 != 0 && d < 0 {
			days--
		}
		return strconv.FormatInt(days+40587, 10)
	case "hour":
		return fmt.Sprintf("%02d", t.Hour())
	case "minute":
		return fmt.Sprintf("%02d", t.Minute())
	case "second":
		return fmt.Sprintf("%02d", t.Second())
	case "time":
		return t.Format("15:04:05")
	case "iso8601":
		return t.Format("2006-01-02T15:04:05-07:00")
	case "std11":
		return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	case "zone":
		return t.Format("-0700")
	case "weekday":
		return strconv.Itoa(int(t.Weekday()))
	}
	return ""
}

// dateTest implements date and currentdate (RFC 5260).
func (in *interp) dateTest(n *node) (bool, error) {
	var times []time.Time
	var part string
	var keys *arg
	if n.name == "currentdate" {
		times = []time.Time{in.opts.Now()}
		part, keys = in.str(&n.args[0]), &n.args[1]
	} else {
		name := in.str(&n.args[0])
		part, keys = in.str(&n.args[1]), &n.args[2]
		for _, v := range in.indexed(n, message.HeaderValues(in.hdr, name)) {
			if strings.EqualFold(name, "received") {
				// The date of a Received field follows its last ";".
				if i := strings.LastIndexByte(v, ';'); i >= 0 {
					v = v[i+1:]
				}
			}
			if t, ok := message.ParseDate(v); ok {
				times = append(times, t)
			}
		}
	}
	if !validDatePart(part) {
		return false, errorf(n.pos, "unknown date part %q", part)
	}
	loc := in.opts.Location
	if z := n.tags["zone"]; z != nil {
		zs := in.str(z)
		l, ok := parseZone(zs)
		if !ok {
			return false, errorf(z.pos, "invalid time zone %q", zs)
		}
		loc = l
	}
	values := make([]string, 0, len(times))
	for _, t := range times {
		if !n.has("originalzone") {
			t = t.In(loc)
		}
		values = append(values, datePart(t, part))
	}
	return in.match(n, values, keys)
}
