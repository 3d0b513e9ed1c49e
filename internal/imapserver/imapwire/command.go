package imapwire

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"time"
)

// Command is one parsed client command.
type Command struct {
	Tag string
	// Name is the upper-cased command name; "UID FETCH" has Name "FETCH"
	// and UID set.
	Name string
	UID  bool
	// Args holds the command's arguments: one of the *XxxArgs types
	// below, or nil for commands without arguments.
	Args any
}

// LoginArgs are the arguments of LOGIN.
type LoginArgs struct{ Username, Password string }

// AuthenticateArgs are the arguments of AUTHENTICATE.
type AuthenticateArgs struct {
	Mechanism string // upper case
	// Initial is the decoded SASL-IR initial response when HasInitial.
	// "=" decodes to an empty initial response.
	Initial    []byte
	HasInitial bool
}

// EnableArgs are the arguments of ENABLE (upper-cased capability names).
type EnableArgs struct{ Caps []string }

// MailboxArgs are the arguments of commands that take only a mailbox name
// (DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT). Names are raw: the server
// decodes modified UTF-7 where the session needs it.
type MailboxArgs struct{ Mailbox string }

// SelectArgs are the arguments of SELECT and EXAMINE.
type SelectArgs struct {
	Mailbox   string
	CondStore bool
	QResync   *QResyncArgs
}

// QResyncArgs are the QRESYNC select parameter (RFC 7162).
type QResyncArgs struct {
	UIDValidity uint32
	ModSeq      int64
	KnownUIDs   *NumSet
	SeqMatch    *[2]NumSet // known sequence set, known UID set
}

// CreateArgs are the arguments of CREATE, with the CREATE-SPECIAL-USE USE
// option.
type CreateArgs struct {
	Mailbox string
	Use     []string
}

// RenameArgs are the arguments of RENAME.
type RenameArgs struct{ From, To string }

// ListArgs are the arguments of LIST, including LIST-EXTENDED.
type ListArgs struct {
	SelectOpts []string // upper case: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE
	Ref        string
	Patterns   []string
	ReturnOpts []string // upper case: SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS
	// StatusItems are the items of RETURN (STATUS (...)).
	StatusItems []string
	// Extended is set when the LIST-EXTENDED syntax was used (selection
	// options, several patterns or RETURN); the response then carries
	// extended data such as CHILDINFO.
	Extended bool
}

// LsubArgs are the arguments of LSUB.
type LsubArgs struct{ Ref, Pattern string }

// StatusArgs are the arguments of STATUS.
type StatusArgs struct {
	Mailbox string
	Items   []string // upper case
}

// AppendMessage is one message of an APPEND (MULTIAPPEND allows several).
type AppendMessage struct {
	Flags []string
	Date  time.Time // zero when not given
	Data  []byte
	// File holds the message instead of Data when it was spooled (see
	// Reader.Spool); Size is its length. The caller closes File.
	File *os.File
	Size int64
	// Binary is set for a literal8 (BINARY extension): the data may hold
	// NUL and 8-bit content.
	Binary bool
}

// AppendArgs are the arguments of APPEND.
type AppendArgs struct {
	Mailbox  string
	Messages []AppendMessage
}

// IDArgs are the arguments of ID: field/value pairs, nil for NIL.
type IDArgs struct{ Params [][2]string }

// FetchArgs are the arguments of FETCH and UID FETCH.
type FetchArgs struct {
	Set   NumSet
	Items []FetchItem
	// Modifiers (RFC 7162). HasChangedSince is set when CHANGEDSINCE
	// was given.
	ChangedSince    int64
	HasChangedSince bool
	Vanished        bool
}

// FetchItem is one fetch attribute.
type FetchItem struct {
	// Name is the upper-cased attribute: FLAGS, UID, INTERNALDATE,
	// RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY (without section),
	// BODY[] (any section: see Section), BINARY, BINARY.SIZE, RFC822,
	// RFC822.HEADER, RFC822.TEXT, MODSEQ, EMAILID, THREADID, SAVEDATE.
	Name    string
	Peek    bool
	Section *Section
	Partial *Partial
}

// Section is a BODY[...] or BINARY[...] section.
type Section struct {
	Part []int
	// Specifier is "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or
	// MIME.
	Specifier string
	Fields    []string // header field names as given
}

// Partial is <offset.count>; Count is -1 when not given (only in
// responses).
type Partial struct{ Offset, Count int64 }

// StoreOp says how STORE combines flags.
type StoreOp int

// Store operations.
const (
	StoreReplace StoreOp = iota
	StoreAdd
	StoreRemove
)

// StoreArgs are the arguments of STORE and UID STORE.
type StoreArgs struct {
	Set    NumSet
	Op     StoreOp
	Silent bool
	Flags  []string
	// UnchangedSince is the CONDSTORE modifier; HasUnchangedSince tells
	// "UNCHANGEDSINCE 0" (always fails) from no modifier.
	UnchangedSince    int64
	HasUnchangedSince bool
}

// CopyArgs are the arguments of COPY and MOVE (and their UID forms).
type CopyArgs struct {
	Set     NumSet
	Mailbox string
}

// ExpungeArgs are the arguments of UID EXPUNGE.
type ExpungeArgs struct{ Set NumSet }

// QuotaArgs are the arguments of GETQUOTA and SETQUOTA.
type QuotaArgs struct {
	Root      string
	Resources [][2]string // SETQUOTA (name limit)
}

// ReadCommand reads and parses the next command. Errors of type *Error
// are protocol errors (see Error.Fatal); other errors come from the
// connection.
func (r *Reader) ReadCommand() (cmd *Command, err error) {
	r.tag = ""
	r.literals = 0
	r.depth = 0
	line, err := r.ReadLine()
	if err != nil {
		return nil, err
	}
	r.line, r.pos = line, 0
	r.spooled = r.spooled[:0]
	defer func() {
		if x := recover(); x != nil {
			for _, f := range r.spooled {
				f.Close()
			}
			r.spooled = r.spooled[:0]
			pe, ok := x.(*Error)
			if !ok {
				panic(x)
			}
			if !pe.Fatal {
				if derr := r.discardRest(); derr != nil {
					pe.Fatal = true
				}
			}
			cmd, err = nil, pe
		}
	}()
	return r.command(), nil
}

// discardRest skips the rest of a failed command. Non-synchronizing
// literals the client announced are already on their way and are read and
// dropped; at a synchronizing literal the client waits for our answer, so
// we stop there.
func (r *Reader) discardRest() error {
	for i := 0; i < maxLiterals; i++ {
		l := r.line
		if len(l) < 4 || l[len(l)-1] != '}' || l[len(l)-2] != '+' {
			return nil
		}
		j := len(l) - 3
		for j >= 0 && '0' <= l[j] && l[j] <= '9' {
			j--
		}
		if j < 0 || l[j] != '{' || j == len(l)-3 {
			return nil
		}
		var n int64
		for _, c := range l[j+1 : len(l)-2] {
			n = n*10 + int64(c-'0')
			if n > r.MaxLiteral && n > r.MaxAppend {
				return errors.New("literal too large to skip")
			}
		}
		var buf [4096]byte
		for n > 0 {
			k := int64(len(buf))
			if n < k {
				k = n
			}
			m, err := r.br.Read(buf[:k])
			if err != nil {
				return err
			}
			n -= int64(m)
		}
		line, err := r.ReadLine()
		if err != nil {
			return err
		}
		r.line, r.pos = line, 0
	}
	return errors.New("too many literals")
}

func isTagChar(c byte) bool { return isAstringChar(c) && c != '+' }

func (r *Reader) command() *Command {
	tag := r.span(isTagChar)
	if tag == "" {
		r.fail("invalid tag")
	}
	r.tag = tag
	r.sp()
	cmd := &Command{Tag: tag, Name: r.upperAtom()}
	if cmd.Name == "UID" {
		r.sp()
		cmd.UID = true
		cmd.Name = r.upperAtom()
		switch cmd.Name {
		case "FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD":
		default:
			r.fail("unknown UID command %s", cmd.Name)
		}
	}
	switch cmd.Name {
	case "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "IDLE", "NAMESPACE":
	case "EXPUNGE":
		if cmd.UID {
			r.sp()
			cmd.Args = &ExpungeArgs{Set: r.numSet()}
		}
	case "LOGIN":
		r.sp()
		a := &LoginArgs{Username: r.astring()}
		r.sp()
		a.Password = r.astring()
		cmd.Args = a
	case "AUTHENTICATE":
		r.sp()
		a := &AuthenticateArgs{Mechanism: r.upperAtom()}
		if r.take(' ') {
			a.HasInitial = true
			if r.take('=') {
				a.Initial = []byte{}
			} else {
				s := r.span(func(c byte) bool { return isAtomChar(c) })
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil || s == "" {
					r.fail("invalid base64 initial response")
				}
				a.Initial = b
			}
		}
		cmd.Args = a
	case "ENABLE":
		a := &EnableArgs{}
		for r.take(' ') {
			a.Caps = append(a.Caps, r.upperAtom())
		}
		if len(a.Caps) == 0 {
			r.fail("ENABLE needs at least one capability")
		}
		cmd.Args = a
	case "SELECT", "EXAMINE":
		r.sp()
		cmd.Args = r.selectArgs()
	case "CREATE":
		r.sp()
		a := &CreateArgs{Mailbox: r.astring()}
		if r.take(' ') {
			r.expect('(')
			for {
				if !r.takeFold("USE") {
					r.fail("unknown CREATE parameter")
				}
				r.sp()
				r.expect('(')
				for !r.take(')') {
					if len(a.Use) > 0 {
						r.sp()
					}
					a.Use = append(a.Use, r.flag(false))
				}
				if r.take(')') {
					break
				}
				r.sp()
			}
		}
		cmd.Args = a
	case "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "GETQUOTAROOT":
		r.sp()
		cmd.Args = &MailboxArgs{Mailbox: r.astring()}
	case "RENAME":
		r.sp()
		a := &RenameArgs{From: r.astring()}
		r.sp()
		a.To = r.astring()
		cmd.Args = a
	case "LIST":
		r.sp()
		cmd.Args = r.listArgs()
	case "LSUB":
		r.sp()
		a := &LsubArgs{Ref: r.astring()}
		r.sp()
		a.Pattern = r.listMailbox()
		cmd.Args = a
	case "STATUS":
		r.sp()
		a := &StatusArgs{Mailbox: r.astring()}
		r.sp()
		a.Items = r.atomList()
		cmd.Args = a
	case "APPEND":
		r.sp()
		cmd.Args = r.appendArgs()
	case "ID":
		r.sp()
		cmd.Args = r.idArgs()
	case "FETCH":
		r.sp()
		cmd.Args = r.fetchArgs()
	case "STORE":
		r.sp()
		cmd.Args = r.storeArgs()
	case "COPY", "MOVE":
		r.sp()
		a := &CopyArgs{Set: r.numSet()}
		r.sp()
		a.Mailbox = r.astring()
		cmd.Args = a
	case "SEARCH":
		r.sp()
		cmd.Args = r.searchArgs()
	case "SORT":
		r.sp()
		cmd.Args = r.sortArgs()
	case "THREAD":
		r.sp()
		cmd.Args = r.threadArgs()
	case "COMPRESS":
		r.sp()
		cmd.Args = &CompressArgs{Mechanism: r.upperAtom()}
	case "GETMETADATA":
		r.sp()
		cmd.Args = r.getMetadataArgs()
	case "SETMETADATA":
		r.sp()
		cmd.Args = r.setMetadataArgs()
	case "NOTIFY":
		r.sp()
		cmd.Args = r.notifyArgs()
	case "GETQUOTA":
		r.sp()
		cmd.Args = &QuotaArgs{Root: r.astring()}
	case "SETQUOTA":
		r.sp()
		a := &QuotaArgs{Root: r.astring()}
		r.sp()
		r.expect('(')
		for !r.take(')') {
			if len(a.Resources) > 0 {
				r.sp()
			}
			name := r.upperAtom()
			r.sp()
			a.Resources = append(a.Resources, [2]string{name, r.span(func(c byte) bool { return '0' <= c && c <= '9' })})
		}
		cmd.Args = a
	default:
		r.fail("unknown command %s", cmd.Name)
	}
	if !r.eol() {
		r.fail("unexpected characters at end of command")
	}
	return cmd
}

func (r *Reader) selectArgs() *SelectArgs {
	a := &SelectArgs{Mailbox: r.astring()}
	if !r.take(' ') {
		return a
	}
	r.expect('(')
	for !r.take(')') {
		if a.CondStore || a.QResync != nil {
			r.sp()
		}
		switch name := r.upperAtom(); name {
		case "CONDSTORE":
			a.CondStore = true
		case "QRESYNC":
			r.sp()
			r.expect('(')
			q := &QResyncArgs{UIDValidity: r.nzNumber()}
			r.sp()
			q.ModSeq = r.number64()
			if r.take(' ') {
				if r.peek() != '(' {
					s := r.numSet()
					q.KnownUIDs = &s
					r.take(' ')
				}
				if r.take('(') {
					var m [2]NumSet
					m[0] = r.numSet()
					r.sp()
					m[1] = r.numSet()
					r.expect(')')
					q.SeqMatch = &m
				}
			}
			r.expect(')')
			a.QResync = q
		default:
			r.fail("unknown select parameter %s", name)
		}
	}
	return a
}

func (r *Reader) listArgs() *ListArgs {
	a := &ListArgs{}
	if r.peek() == '(' {
		a.Extended = true
		a.SelectOpts = r.atomList()
		r.sp()
	}
	a.Ref = r.astring()
	r.sp()
	if r.take('(') {
		a.Extended = true
		for {
			a.Patterns = append(a.Patterns, r.listMailbox())
			if r.take(')') {
				break
			}
			r.sp()
		}
	} else {
		a.Patterns = []string{r.listMailbox()}
	}
	if r.take(' ') {
		if !r.takeFold("RETURN") {
			r.fail("expected RETURN")
		}
		a.Extended = true
		r.sp()
		r.expect('(')
		for !r.take(')') {
			if len(a.ReturnOpts) > 0 {
				r.sp()
			}
			opt := r.upperAtom()
			a.ReturnOpts = append(a.ReturnOpts, opt)
			if opt == "STATUS" {
				r.sp()
				a.StatusItems = r.atomList()
			}
		}
	}
	return a
}

func (r *Reader) appendArgs() *AppendArgs {
	a := &AppendArgs{Mailbox: r.astring()}
	var total int64
	for r.take(' ') {
		var m AppendMessage
		if r.peek() == '(' {
			m.Flags = r.flagList()
			r.sp()
		}
		if r.peek() == '"' {
			m.Date = r.dateTime()
			r.sp()
		}
		// RFC 6855 UTF8 data item: the literal is a message with UTF-8
		// headers, which we store as is.
		utf8 := r.takeFold("UTF8 (")
		if r.take('~') {
			m.Binary = true
		}
		if r.peek() != '{' {
			r.fail("expected message literal")
		}
		n, sync := r.literalHeader()
		lim := r.MaxAppend - total
		if lim < 0 {
			lim = 0
		}
		if f, ok := r.spoolLiteral(n, sync, lim); ok {
			m.File = f
		} else {
			m.Data = r.literalData(n, sync, lim)
		}
		m.Size = n
		total += n
		if utf8 {
			r.expect(')')
		}
		a.Messages = append(a.Messages, m)
		if len(a.Messages) >= maxLiterals {
			break
		}
	}
	if len(a.Messages) == 0 {
		r.fail("APPEND needs a message")
	}
	return a
}

func (r *Reader) idArgs() *IDArgs {
	a := &IDArgs{}
	if r.takeFold("NIL") {
		return a
	}
	r.expect('(')
	for !r.take(')') {
		if len(a.Params) > 0 {
			r.sp()
		}
		k := r.str()
		r.sp()
		v, _ := r.nstring()
		if len(a.Params) < 30 {
			a.Params = append(a.Params, [2]string{k, v})
		}
	}
	return a
}

func (r *Reader) storeArgs() *StoreArgs {
	a := &StoreArgs{Set: r.numSet()}
	r.sp()
	if r.take('(') {
		if !r.takeFold("UNCHANGEDSINCE ") {
			r.fail("unknown STORE modifier")
		}
		a.UnchangedSince = r.number64()
		a.HasUnchangedSince = true
		r.expect(')')
		r.sp()
	}
	switch {
	case r.take('+'):
		a.Op = StoreAdd
	case r.take('-'):
		a.Op = StoreRemove
	}
	if !r.takeFold("FLAGS") {
		r.fail("expected FLAGS")
	}
	a.Silent = r.takeFold(".SILENT")
	r.sp()
	a.Flags = r.storeFlags()
	return a
}

func (r *Reader) fetchArgs() *FetchArgs {
	a := &FetchArgs{Set: r.numSet()}
	r.sp()
	if r.take('(') {
		for {
			a.Items = append(a.Items, r.fetchItem())
			if r.take(')') {
				break
			}
			r.sp()
		}
	} else {
		switch {
		case r.takeFold("ALL"):
			a.Items = []FetchItem{{Name: "FLAGS"}, {Name: "INTERNALDATE"}, {Name: "RFC822.SIZE"}, {Name: "ENVELOPE"}}
		case r.takeFold("FULL"):
			a.Items = []FetchItem{{Name: "FLAGS"}, {Name: "INTERNALDATE"}, {Name: "RFC822.SIZE"}, {Name: "ENVELOPE"}, {Name: "BODY"}}
		case r.takeFold("FAST"):
			a.Items = []FetchItem{{Name: "FLAGS"}, {Name: "INTERNALDATE"}, {Name: "RFC822.SIZE"}}
		default:
			a.Items = []FetchItem{r.fetchItem()}
		}
	}
	if r.take(' ') {
		r.expect('(')
		for {
			switch {
			case r.takeFold("CHANGEDSINCE "):
				a.ChangedSince = r.number64()
				a.HasChangedSince = true
			case r.takeFold("VANISHED"):
				a.Vanished = true
			default:
				r.fail("unknown FETCH modifier")
			}
			if r.take(')') {
				break
			}
			r.sp()
		}
	}
	return a
}

func isFetchAttChar(c byte) bool { return isAtomChar(c) && c != '[' && c != '<' }

func (r *Reader) fetchItem() FetchItem {
	name := upperASCII(r.span(isFetchAttChar))
	it := FetchItem{Name: name}
	switch name {
	case "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE",
		"RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE":
		return it
	case "BODY", "BODY.PEEK":
		if name == "BODY" && r.peek() != '[' {
			return it
		}
		it.Name, it.Peek = "BODY[]", name == "BODY.PEEK"
		it.Section = r.section(false)
		it.Partial = r.partial()
		return it
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		it.Name, it.Peek = "BINARY", name == "BINARY.PEEK"
		if name == "BINARY.SIZE" {
			it.Name = "BINARY.SIZE"
		}
		it.Section = r.section(true)
		if name != "BINARY.SIZE" {
			it.Partial = r.partial()
		}
		return it
	}
	if name == "" {
		r.fail("expected fetch attribute at position %d", r.pos)
	}
	r.fail("unknown fetch attribute %s", name)
	return it
}

func (r *Reader) section(binary bool) *Section {
	r.expect('[')
	s := &Section{}
	for !r.take(']') {
		if '0' <= r.peek() && r.peek() <= '9' {
			if len(s.Part) >= maxDepth {
				r.fail("section too deep")
			}
			s.Part = append(s.Part, int(r.nzNumber()))
			if r.take('.') {
				continue
			}
			r.expect(']')
			return s
		}
		if binary {
			r.fail("BINARY takes only a part number")
		}
		switch {
		case r.takeFold("HEADER.FIELDS.NOT"):
			s.Specifier = "HEADER.FIELDS.NOT"
		case r.takeFold("HEADER.FIELDS"):
			s.Specifier = "HEADER.FIELDS"
		case r.takeFold("HEADER"):
			s.Specifier = "HEADER"
		case r.takeFold("TEXT"):
			s.Specifier = "TEXT"
		case r.takeFold("MIME"):
			if len(s.Part) == 0 {
				r.fail("MIME needs a part number")
			}
			s.Specifier = "MIME"
		default:
			r.fail("invalid section")
		}
		if strings.HasPrefix(s.Specifier, "HEADER.FIELDS") {
			r.sp()
			r.expect('(')
			for {
				s.Fields = append(s.Fields, r.astring())
				if r.take(')') {
					break
				}
				r.sp()
			}
		}
		r.expect(']')
		return s
	}
	return s
}

func (r *Reader) partial() *Partial {
	if !r.take('<') {
		return nil
	}
	p := &Partial{Offset: int64(r.number())}
	r.expect('.')
	p.Count = int64(r.nzNumber())
	r.expect('>')
	return p
}
