package mailauth

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// maxLine is the line length Header folds to where it can (RFC 5322
// 2.1.1 recommends 78).
const maxLine = 78

// maxValue bounds one property value or reason taken from the message or
// the envelope.
const maxValue = 200

// Header returns one Authentication-Results field (RFC 8601) with all
// results, name and trailing CRLF included, folded to lines of at most 78
// characters where values allow. authservID is our host name.
func (r Result) Header(authservID string) string {
	// The authserv-id is a host name: keep it a plain token.
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, authservID)
	if len(id) > 255 {
		id = id[:255]
	}
	if id == "" {
		id = "localhost"
	}
	var results []authres.Result

	spf := &authres.SPFResult{Value: authres.ResultValue(r.SPF.Status)}
	if r.SPF.Status == "" {
		spf.Value = authres.ResultNone
	}
	if r.SPF.Status == TempError || r.SPF.Status == PermError {
		spf.Reason = clean(r.SPF.Reason, maxValue)
	}
	if r.SPF.Identity == "helo" || r.SPF.MailFrom == "" {
		spf.Helo = clean(r.SPF.Helo, maxValue)
	} else {
		spf.From = clean(r.SPF.MailFrom, maxValue)
	}
	results = append(results, spf)

	if len(r.DKIM) == 0 {
		results = append(results, &authres.GenericResult{Method: "dkim", Value: authres.ResultNone})
	}
	for _, k := range r.DKIM {
		p := map[string]string{
			"header.d": clean(k.Domain, maxValue),
			"header.s": clean(k.Selector, maxValue),
			"header.i": clean(k.Identifier, maxValue),
			"header.a": clean(k.Algorithm, 32),
			"header.b": clean(k.B, 8),
		}
		if k.Status != Pass {
			p["reason"] = clean(k.Reason, maxValue)
		}
		results = append(results, &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(k.Status), Params: p})
	}

	dm := &authres.DMARCResult{Value: authres.ResultValue(r.DMARC.Status), From: clean(r.DMARC.FromDomain, maxValue)}
	if dm.Value == "" {
		dm.Value = authres.ResultNone
	}
	switch r.DMARC.Status {
	case Fail:
		reason := "p=" + string(r.DMARC.Published)
		if r.Policy != r.DMARC.Published {
			reason += " applied=" + string(r.Policy)
		}
		if r.DMARC.Reason != "" {
			reason = r.DMARC.Reason + ", " + reason
		}
		dm.Reason = clean(reason, maxValue)
	case TempError, PermError:
		dm.Reason = clean(r.DMARC.Reason, maxValue)
	}
	results = append(results, dm)

	for _, o := range r.Others {
		name := clean(o.Name, 64)
		if name == "" || strings.ContainsAny(name, " =;") {
			continue
		}
		p := map[string]string{}
		if o.Reason != "" {
			p["reason"] = clean(o.Reason, maxValue)
		}
		for _, kv := range o.Props {
			k := clean(kv[0], 64)
			if k != "" && !strings.ContainsAny(k, " =;") {
				p[k] = clean(kv[1], maxValue)
			}
		}
		results = append(results, &authres.GenericResult{Method: name, Value: authres.ResultValue(o.Status), Params: p})
	}

	parts := make([]string, 0, len(results))
	for _, res := range results {
		// Formatting one result at a time gives the pieces to fold at.
		s := authres.Format(id, []authres.Result{res})
		parts = append(parts, strings.TrimSpace(strings.TrimPrefix(s, id+"; ")))
	}
	return fold("Authentication-Results: "+id+";", parts)
}

// fold puts each result on its own continuation line, breaking a result
// longer than maxLine at spaces outside quoted strings.
func fold(first string, parts []string) string {
	var b strings.Builder
	b.WriteString(first)
	for i, p := range parts {
		if i < len(parts)-1 {
			p += ";"
		}
		line := 1 // the tab
		b.WriteString("\r\n\t")
		for j, w := range words(p) {
			if j > 0 {
				if line+1+len(w) > maxLine {
					b.WriteString("\r\n\t")
					line = 1
				} else {
					b.WriteByte(' ')
					line++
				}
			}
			b.WriteString(w)
			line += len(w)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// words splits s at spaces that are not inside a quoted string.
func words(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ' ':
			if !quoted {
				if i > start {
					out = append(out, s[start:i])
				}
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// clean makes a value from the network safe inside a header field: no
// control characters, no quote or backslash (the formatter quotes but
// does not escape backslashes), no semicolon, valid UTF-8, at most max
// bytes.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		switch {
		case r < ' ' || r == 0x7f:
			return -1
		case r == '"' || r == '\\':
			return '\''
		case r == ';':
			// Legal in a quoted string, but naive parsers (go-msgauth's
			// among them) split results at every semicolon.
			return ','
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		s = s[:max]
		s = strings.ToValidUTF8(s, "")
	}
	return s
}
