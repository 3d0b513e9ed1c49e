package imapwire

// CompressArgs are the arguments of COMPRESS (RFC 4978); Mechanism is
// upper case.
type CompressArgs struct{ Mechanism string }

// SortCriterion is one SORT key (RFC 5256, RFC 5957), upper case: ARRIVAL,
// CC, DATE, FROM, SIZE, SUBJECT, TO, DISPLAYFROM or DISPLAYTO.
type SortCriterion struct {
	Key     string
	Reverse bool
}

// SortArgs are the arguments of SORT and UID SORT, with the ESORT (RFC
// 5267) return options.
type SortArgs struct {
	// Return holds the ESORT return options (MIN, MAX, ALL, COUNT,
	// SAVE), upper case; ReturnGiven is set when RETURN was present.
	Return      []string
	ReturnGiven bool
	Criteria    []SortCriterion
	Charset     string // upper case
	Key         *SearchKey
}

// ThreadArgs are the arguments of THREAD and UID THREAD (RFC 5256).
type ThreadArgs struct {
	Algorithm string // upper case: ORDEREDSUBJECT or REFERENCES
	Charset   string // upper case
	Key       *SearchKey
}

// maxSortCriteria bounds the sort program; there are only nine keys, so
// anything longer repeats itself.
const maxSortCriteria = 20

var sortKeys = map[string]bool{
	"ARRIVAL": true, "CC": true, "DATE": true, "FROM": true, "SIZE": true,
	"SUBJECT": true, "TO": true, "DISPLAYFROM": true, "DISPLAYTO": true,
}

// sortArgs reads [RETURN (...) SP] "(" sort-criteria ")" SP charset SP
// search-keys.
func (r *Reader) sortArgs() *SortArgs {
	a := &SortArgs{}
	if r.takeFold("RETURN (") {
		a.ReturnGiven = true
		for !r.take(')') {
			if len(a.Return) > 0 {
				r.sp()
			}
			if len(a.Return) >= 10 {
				r.fail("too many return options")
			}
			a.Return = append(a.Return, r.upperAtom())
		}
		r.sp()
	}
	r.expect('(')
	for {
		var c SortCriterion
		k := r.upperAtom()
		if k == "REVERSE" {
			c.Reverse = true
			r.sp()
			k = r.upperAtom()
		}
		if !sortKeys[k] {
			r.fail("unknown sort key %s", k)
		}
		c.Key = k
		if len(a.Criteria) >= maxSortCriteria {
			r.fail("too many sort criteria")
		}
		a.Criteria = append(a.Criteria, c)
		if r.take(')') {
			break
		}
		r.sp()
	}
	r.sp()
	a.Charset = upperASCII(r.astring())
	r.sp()
	a.Key = r.searchKeys()
	return a
}

// threadArgs reads algorithm SP charset SP search-keys.
func (r *Reader) threadArgs() *ThreadArgs {
	a := &ThreadArgs{Algorithm: r.upperAtom()}
	r.sp()
	a.Charset = upperASCII(r.astring())
	r.sp()
	a.Key = r.searchKeys()
	return a
}
