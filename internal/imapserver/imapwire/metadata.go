package imapwire

import "strconv"

// GetMetadataArgs are the arguments of GETMETADATA (RFC 5464 section 4.2).
type GetMetadataArgs struct {
	Mailbox string // "" for server annotations
	Entries []string
	// MaxSize is the MAXSIZE option, -1 when not given.
	MaxSize int64
	// Depth is the DEPTH option: 0 (default), 1, or -1 for infinity.
	Depth int
}

// SetMetadataArgs are the arguments of SETMETADATA (RFC 5464 section 4.3).
type SetMetadataArgs struct {
	Mailbox string
	Entries []MetadataValue
}

// MetadataValue is one entry of SETMETADATA; Value is nil for NIL (delete).
type MetadataValue struct {
	Name  string
	Value []byte
}

// MaxMetadataEntries bounds the entries of one GETMETADATA or SETMETADATA,
// and so the memory one SETMETADATA can hold (each value is at most
// MaxLiteral).
const MaxMetadataEntries = 256

// getMetadataArgs parses
//
//	[ "(" option *(SP option) ")" SP ] mailbox SP (entry / "(" entry *(SP entry) ")")
//
// with option = "MAXSIZE" SP number / "DEPTH" SP ("0" / "1" / "infinity").
// The options come before the mailbox (RFC 5464 erratum 2785).
func (r *Reader) getMetadataArgs() *GetMetadataArgs {
	a := &GetMetadataArgs{MaxSize: -1}
	if r.take('(') {
		seenSize, seenDepth := false, false
		for {
			switch name := r.upperAtom(); name {
			case "MAXSIZE":
				if seenSize {
					r.fail("MAXSIZE given twice")
				}
				seenSize = true
				r.sp()
				a.MaxSize = int64(r.number())
			case "DEPTH":
				if seenDepth {
					r.fail("DEPTH given twice")
				}
				seenDepth = true
				r.sp()
				switch d := r.upperAtom(); d {
				case "0":
					a.Depth = 0
				case "1":
					a.Depth = 1
				case "INFINITY":
					a.Depth = -1
				default:
					r.fail("invalid DEPTH %s", d)
				}
			default:
				r.fail("unknown GETMETADATA option %s", name)
			}
			if r.take(')') {
				break
			}
			r.sp()
		}
		r.sp()
	}
	a.Mailbox = r.astring()
	r.sp()
	if !r.take('(') {
		a.Entries = []string{r.astring()}
		return a
	}
	for {
		if len(a.Entries) == MaxMetadataEntries {
			r.fail("more than %d entries", MaxMetadataEntries)
		}
		a.Entries = append(a.Entries, r.astring())
		if r.take(')') {
			return a
		}
		r.sp()
	}
}

// setMetadataArgs parses mailbox SP "(" entry SP value *(SP entry SP value) ")".
func (r *Reader) setMetadataArgs() *SetMetadataArgs {
	a := &SetMetadataArgs{Mailbox: r.astring()}
	r.sp()
	r.expect('(')
	for {
		if len(a.Entries) == MaxMetadataEntries {
			panic(&Error{Tag: r.tag, No: true, Code: "METADATA TOOMANY", Msg: "Too many entries"})
		}
		e := MetadataValue{Name: r.astring()}
		r.sp()
		e.Value = r.metadataValue()
		a.Entries = append(a.Entries, e)
		if r.take(')') {
			return a
		}
		r.sp()
	}
}

// metadataValue reads value = nstring / literal8. A synchronizing literal
// over MaxMetadataValue (or MaxLiteral, if smaller) is refused with NO [METADATA MAXSIZE n] before the client
// sends it (RFC 5464 section 4.3). The empty string is a non-nil empty
// value, NIL is nil.
func (r *Reader) metadataValue() []byte {
	switch r.peek() {
	case '"':
		return append([]byte{}, r.quoted()...)
	case '~':
		r.pos++
		if r.peek() != '{' {
			r.fail("expected literal8 at position %d", r.pos)
		}
		fallthrough
	case '{':
		n, sync := r.literalHeader()
		lim := r.MaxMetadataValue
		if lim <= 0 {
			lim = DefaultMaxMetadataValue
		}
		if r.MaxLiteral > 0 && r.MaxLiteral < lim {
			lim = r.MaxLiteral
		}
		if n > lim && sync {
			r.literals++
			panic(&Error{Tag: r.tag, No: true, Code: "METADATA MAXSIZE " + strconv.FormatInt(lim, 10), Msg: "Value too large"})
		}
		v := r.literalData(n, sync, lim)
		if v == nil {
			v = []byte{}
		}
		return v
	}
	if r.takeFold("NIL") {
		return nil
	}
	r.fail("expected string, literal8 or NIL at position %d", r.pos)
	return nil
}
