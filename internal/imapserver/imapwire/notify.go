package imapwire

import "strings"

// NotifyArgs are the arguments of NOTIFY (RFC 5465 section 8):
//
//	notify-none = "NONE"
//	notify-set  = "SET" [SP "STATUS"] SP event-group *(SP event-group)
//
// The parser enforces the rules RFC 5465 makes syntax errors (tagged BAD):
// MessageNew and MessageExpunge come together, FlagChange and
// AnnotationChange need both, SELECTED and SELECTED-DELAYED take only
// message events and only one of them may appear. Events it does not know
// (event-ext) are kept in Events so the server can refuse them with NO
// [BADEVENT], as section 3.1 wants.
type NotifyArgs struct {
	None   bool // NOTIFY NONE
	Status bool // NOTIFY SET STATUS
	Groups []NotifyGroup
}

// NotifyGroup is one event group: which mailboxes and which events.
type NotifyGroup struct {
	// Filter is SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL,
	// SUBSCRIBED, SUBTREE or MAILBOXES.
	Filter string
	// Mailboxes are the names given to SUBTREE and MAILBOXES, as sent.
	Mailboxes []string
	// Events are the events in the order given, in the RFC's spelling
	// (MessageNew, ...) for the known ones and as sent for others. Empty
	// for NONE.
	Events []string
	// FetchAtts is the fetch-att list given with MessageNew, nil if none.
	FetchAtts []FetchItem
}

// Bounds on one NOTIFY command, so its parsed form stays small whatever a
// client sends.
const (
	MaxNotifyGroups    = 64
	MaxNotifyMailboxes = 1000 // per group
	MaxNotifyEvents    = 16   // per group
	MaxNotifyFetchAtts = 32
)

// Event names of RFC 5465 section 8, by upper-case spelling.
var notifyEvents = map[string]string{
	"MESSAGENEW":            "MessageNew",
	"MESSAGEEXPUNGE":        "MessageExpunge",
	"FLAGCHANGE":            "FlagChange",
	"ANNOTATIONCHANGE":      "AnnotationChange",
	"MAILBOXNAME":           "MailboxName",
	"SUBSCRIPTIONCHANGE":    "SubscriptionChange",
	"MAILBOXMETADATACHANGE": "MailboxMetadataChange",
	"SERVERMETADATACHANGE":  "ServerMetadataChange",
}

// IsMessageEvent reports whether ev is a message-event (RFC 5465 section 8),
// the only kind SELECTED and SELECTED-DELAYED take.
func IsMessageEvent(ev string) bool {
	switch ev {
	case "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange":
		return true
	}
	return false
}

func (r *Reader) notifyArgs() *NotifyArgs {
	a := &NotifyArgs{}
	switch kw := r.upperAtom(); kw {
	case "NONE":
		a.None = true
		return a
	case "SET":
	default:
		r.fail("NOTIFY needs SET or NONE, not %q", kw)
	}
	r.sp()
	if r.takeFold("STATUS ") {
		a.Status = true
	}
	selected := false
	for {
		if len(a.Groups) == MaxNotifyGroups {
			r.fail("more than %d event groups", MaxNotifyGroups)
		}
		g := r.notifyGroup()
		if g.Filter == "SELECTED" || g.Filter == "SELECTED-DELAYED" {
			if selected {
				r.fail("only one of SELECTED and SELECTED-DELAYED may be given")
			}
			selected = true
		}
		a.Groups = append(a.Groups, g)
		if !r.take(' ') {
			return a
		}
	}
}

// notifyGroup parses "(" filter-mailboxes SP events ")".
func (r *Reader) notifyGroup() NotifyGroup {
	r.expect('(')
	g := NotifyGroup{Filter: r.upperAtom()}
	switch g.Filter {
	case "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED":
	case "SUBTREE", "MAILBOXES":
		r.sp()
		if r.take('(') {
			for {
				if len(g.Mailboxes) == MaxNotifyMailboxes {
					r.fail("more than %d mailboxes in an event group", MaxNotifyMailboxes)
				}
				g.Mailboxes = append(g.Mailboxes, r.astring())
				if r.take(')') {
					break
				}
				r.sp()
			}
		} else {
			g.Mailboxes = []string{r.astring()}
		}
	default:
		r.fail("unknown NOTIFY mailbox filter %s", g.Filter)
	}
	r.sp()
	if r.takeFold("NONE") {
		r.expect(')')
		return g
	}
	// The examples of RFC 5465 3.1 leave out the parentheses around the
	// events ("(selected MessageNew MessageExpunge)"); that form is
	// accepted too.
	paren := r.take('(')
	seen := map[string]bool{}
	for {
		if len(g.Events) == MaxNotifyEvents {
			r.fail("more than %d events in an event group", MaxNotifyEvents)
		}
		raw := r.atom()
		if raw == "" {
			r.fail("expected event at position %d", r.pos)
		}
		ev, known := notifyEvents[upperASCII(raw)]
		if !known {
			ev = raw
		}
		if !seen[ev] {
			seen[ev] = true
			g.Events = append(g.Events, ev)
		}
		if ev == "MessageNew" && r.peek() == ' ' && r.pos+1 < len(r.line) && r.line[r.pos+1] == '(' {
			r.pos += 2
			g.FetchAtts = []FetchItem{}
			for {
				if len(g.FetchAtts) == MaxNotifyFetchAtts {
					r.fail("more than %d fetch attributes", MaxNotifyFetchAtts)
				}
				g.FetchAtts = append(g.FetchAtts, r.fetchItem())
				if r.take(')') {
					break
				}
				r.sp()
			}
		}
		if paren && r.take(')') || !paren && r.peek() == ')' {
			break
		}
		r.sp()
	}
	r.expect(')')
	// RFC 5465 section 5: these are errors the server answers with BAD.
	if seen["MessageNew"] != seen["MessageExpunge"] {
		r.fail("MessageNew and MessageExpunge must be given together")
	}
	if (seen["FlagChange"] || seen["AnnotationChange"]) && !seen["MessageNew"] {
		r.fail("FlagChange and AnnotationChange need MessageNew and MessageExpunge")
	}
	if strings.HasPrefix(g.Filter, "SELECTED") {
		for _, ev := range g.Events {
			if !IsMessageEvent(ev) {
				r.fail("%s takes only message events, not %s", g.Filter, ev)
			}
		}
	}
	return g
}
