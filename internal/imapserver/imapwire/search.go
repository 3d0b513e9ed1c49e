package imapwire

import (
	"strings"
	"time"
)

// SearchArgs are the arguments of SEARCH and UID SEARCH.
type SearchArgs struct {
	// Return holds the ESEARCH return options (MIN, MAX, ALL, COUNT,
	// SAVE), upper case. ReturnGiven is set when RETURN was present, even
	// as RETURN ().
	Return      []string
	ReturnGiven bool
	Charset     string // upper case, "" when not given
	Key         *SearchKey
}

// SearchKey is a search criterion. Op is the upper-cased key name, plus
// "AND" for a parenthesised list or an implicit conjunction, and "SEQ" for
// a bare sequence set.
type SearchKey struct {
	Op    string
	Keys  []*SearchKey // AND (any number), OR (two), NOT (one)
	Set   NumSet       // SEQ, UID
	Str   string       // string argument (FROM, BODY, KEYWORD, EMAILID, ...)
	Field string       // HEADER field name
	Date  time.Time    // BEFORE, ON, SINCE, SENT*, SAVED*
	Num   int64        // LARGER, SMALLER, MODSEQ, OLDER, YOUNGER
}

func (r *Reader) searchArgs() *SearchArgs {
	a := &SearchArgs{}
	if r.takeFold("RETURN (") {
		a.ReturnGiven = true
		for !r.take(')') {
			if len(a.Return) > 0 {
				r.sp()
			}
			a.Return = append(a.Return, r.upperAtom())
		}
		r.sp()
	}
	if r.takeFold("CHARSET ") {
		a.Charset = upperASCII(r.astring())
		r.sp()
	}
	a.Key = r.searchKeys()
	return a
}

// searchKeys reads the space-separated search keys that end SEARCH, SORT
// and THREAD, as one key (an implicit AND when there are several).
func (r *Reader) searchKeys() *SearchKey {
	keys := []*SearchKey{r.searchKey()}
	for r.take(' ') {
		keys = append(keys, r.searchKey())
	}
	if len(keys) == 1 {
		return keys[0]
	}
	return &SearchKey{Op: "AND", Keys: keys}
}

func (r *Reader) searchKey() *SearchKey {
	r.enter()
	defer r.leave()
	c := r.peek()
	if c == '(' {
		r.pos++
		k := &SearchKey{Op: "AND"}
		for {
			k.Keys = append(k.Keys, r.searchKey())
			if r.take(')') {
				return k
			}
			r.sp()
		}
	}
	if c == '*' || c == '$' || ('1' <= c && c <= '9') {
		return &SearchKey{Op: "SEQ", Set: r.numSet()}
	}
	op := r.upperAtom()
	k := &SearchKey{Op: op}
	switch op {
	case "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
		"UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
	case "BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO", "EMAILID", "THREADID":
		r.sp()
		k.Str = r.astring()
	case "KEYWORD", "UNKEYWORD":
		r.sp()
		k.Str = r.flag(false)
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		r.sp()
		k.Date = r.date()
	case "SAVEDATESUPPORTED":
	case "HEADER":
		r.sp()
		k.Field = r.astring()
		r.sp()
		k.Str = r.astring()
	case "LARGER", "SMALLER", "OLDER", "YOUNGER":
		r.sp()
		k.Num = int64(r.number())
		if (op == "OLDER" || op == "YOUNGER") && k.Num == 0 {
			r.fail("%s needs a positive interval", op)
		}
	case "MODSEQ":
		// MODSEQ [entry-name entry-type-req] mod-sequence-valzer
		r.sp()
		if r.peek() == '"' {
			r.quoted()
			r.sp()
			t := r.upperAtom()
			if t != "PRIV" && t != "SHARED" && t != "ALL" {
				r.fail("invalid MODSEQ entry type")
			}
			r.sp()
		}
		k.Num = r.number64()
	case "NOT":
		r.sp()
		k.Keys = []*SearchKey{r.searchKey()}
	case "OR":
		r.sp()
		a := r.searchKey()
		r.sp()
		k.Keys = []*SearchKey{a, r.searchKey()}
	case "UID":
		r.sp()
		k.Set = r.numSet()
	default:
		r.fail("unknown search key %s", op)
	}
	return k
}

// String formats the key back in IMAP syntax (for logs and tests).
func (k *SearchKey) String() string {
	var b strings.Builder
	k.format(&b)
	return b.String()
}

func (k *SearchKey) format(b *strings.Builder) {
	switch k.Op {
	case "AND":
		b.WriteByte('(')
		for i, c := range k.Keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			c.format(b)
		}
		b.WriteByte(')')
		return
	case "SEQ":
		b.WriteString(k.Set.String())
		return
	}
	b.WriteString(k.Op)
	switch k.Op {
	case "NOT", "OR":
		for _, c := range k.Keys {
			b.WriteByte(' ')
			c.format(b)
		}
	case "UID":
		b.WriteString(" " + k.Set.String())
	case "HEADER":
		b.WriteString(" " + quoteString(k.Field) + " " + quoteString(k.Str))
	case "BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO", "EMAILID", "THREADID", "KEYWORD", "UNKEYWORD":
		b.WriteString(" " + quoteString(k.Str))
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		b.WriteString(" " + k.Date.Format("2-Jan-2006"))
	case "LARGER", "SMALLER", "OLDER", "YOUNGER", "MODSEQ":
		b.WriteString(" " + itoa(k.Num))
	}
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

func quoteString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
