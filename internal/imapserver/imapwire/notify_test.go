package imapwire

import (
	"errors"
	"reflect"
	"testing"
)

// The command forms of RFC 5465 (section 3.1 examples as corrected by
// erratum 2318, and the grammar of section 8).
func TestParseNotify(t *testing.T) {
	hdr := []FetchItem{{Name: "UID"}, {Name: "BODY[]", Peek: true, Section: &Section{Specifier: "HEADER.FIELDS", Fields: []string{"from", "to", "subject"}}}}
	tests := []struct {
		in   string
		want *NotifyArgs
	}{
		{"a NOTIFY NONE\r\n", &NotifyArgs{None: true}},
		{
			"b notify set status (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))\r\n",
			&NotifyArgs{Status: true, Groups: []NotifyGroup{
				{Filter: "SELECTED", Events: []string{"MessageNew", "MessageExpunge"}, FetchAtts: hdr},
				{Filter: "SUBTREE", Mailboxes: []string{"Lists"}, Events: []string{"MessageNew", "MessageExpunge"}},
			}},
		},
		{
			// The RFC's own spelling, without parentheses around the events.
			"e notify set (selected MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge) (subtree Lists MessageNew MessageExpunge) (mailboxes misc MessageNew MessageExpunge)\r\n",
			&NotifyArgs{Groups: []NotifyGroup{
				{Filter: "SELECTED", Events: []string{"MessageNew", "MessageExpunge"}, FetchAtts: hdr},
				{Filter: "SUBTREE", Mailboxes: []string{"Lists"}, Events: []string{"MessageNew", "MessageExpunge"}},
				{Filter: "MAILBOXES", Mailboxes: []string{"misc"}, Events: []string{"MessageNew", "MessageExpunge"}},
			}},
		},
		{
			"a NOTIFY SET (selected-delayed (messagenew messageexpunge flagchange)) (mailboxes (INBOX \"Foo Bar\") NONE) (personal (MailboxName SubscriptionChange XFoo))\r\n",
			&NotifyArgs{Groups: []NotifyGroup{
				{Filter: "SELECTED-DELAYED", Events: []string{"MessageNew", "MessageExpunge", "FlagChange"}},
				{Filter: "MAILBOXES", Mailboxes: []string{"INBOX", "Foo Bar"}},
				{Filter: "PERSONAL", Events: []string{"MailboxName", "SubscriptionChange", "XFoo"}},
			}},
		},
		{
			"a NOTIFY SET (inboxes (MessageNew MessageExpunge MessageNew)) (subscribed (MessageExpunge MessageNew AnnotationChange))\r\n",
			&NotifyArgs{Groups: []NotifyGroup{
				{Filter: "INBOXES", Events: []string{"MessageNew", "MessageExpunge"}},
				{Filter: "SUBSCRIBED", Events: []string{"MessageExpunge", "MessageNew", "AnnotationChange"}},
			}},
		},
	}
	for _, tc := range tests {
		cmd, err, _ := parse(t, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if cmd.Name != "NOTIFY" || !reflect.DeepEqual(cmd.Args, tc.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tc.in, cmd.Args, tc.want)
		}
	}
}

// Syntax errors and the event rules of RFC 5465 sections 5 and 6.1 are
// BAD; unknown events are not (the server answers NO [BADEVENT]).
func TestParseNotifyErrors(t *testing.T) {
	for _, in := range []string{
		"a NOTIFY\r\n",
		"a NOTIFY SET\r\n",
		"a NOTIFY FOO\r\n",
		"a NOTIFY NONE (personal NONE)\r\n",
		"a NOTIFY SET ()\r\n",
		"a NOTIFY SET (personal)\r\n",
		"a NOTIFY SET (personal ())\r\n",
		"a NOTIFY SET (everything (MessageNew MessageExpunge))\r\n",
		"a NOTIFY SET (subtree (MessageNew MessageExpunge))\r\n",
		"a NOTIFY SET (mailboxes () (MessageNew MessageExpunge))\r\n",
		"a NOTIFY SET (personal (MessageNew))\r\n",
		"a NOTIFY SET (personal (MessageExpunge))\r\n",
		"a NOTIFY SET (personal (FlagChange))\r\n",
		"a NOTIFY SET (personal (AnnotationChange MessageNew))\r\n",
		"a NOTIFY SET (selected (MailboxName))\r\n",
		"a NOTIFY SET (selected-delayed (MessageNew MessageExpunge SubscriptionChange))\r\n",
		"a NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))\r\n",
		"a NOTIFY SET (selected (MessageNew (uid) MessageExpunge)\r\n",
		"a NOTIFY SET (selected (MessageNew (uid bogus) MessageExpunge))\r\n",
		"a NOTIFY SET (personal (MessageNew MessageExpunge)) \r\n",
		"a NOTIFY SET (personal (XFoo (1)))\r\n",
	} {
		_, err, _ := parse(t, in)
		var pe *Error
		if !errors.As(err, &pe) || pe.No || pe.Fatal {
			t.Errorf("%q: got %v, want BAD", in, err)
		}
	}
}
