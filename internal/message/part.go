// Package message parses RFC 5322/MIME messages into the summary that the
// store caches per message and IMAP serves (ENVELOPE, BODYSTRUCTURE, section
// offsets). Parsing is tolerant: real-world mail is often malformed, and
// delivery must never depend on a clean parse.
package message

// Part is one MIME entity. Offsets are byte offsets from the start of the
// parsed input (the blob, without the store's per-recipient prefix).
type Part struct {
	HeaderStart int64 `json:"hs"`
	BodyStart   int64 `json:"bs"` // first byte after the blank line ending the header
	BodyEnd     int64 `json:"be"` // exclusive

	// Content-Type, lower-cased type and subtype; "text"/"plain" by default
	// (or "message"/"rfc822" inside multipart/digest). A multipart without
	// usable boundary or parts is reported as text/plain, and a
	// message/rfc822 or message/global that cannot be parsed in place
	// (transfer-encoded, or beyond MaxDepth/MaxParts) as
	// application/octet-stream, so that BODYSTRUCTURE stays well-formed.
	MediaType    string      `json:"t"`
	MediaSubtype string      `json:"st"`
	Params       [][2]string `json:"p,omitempty"` // attribute lower-cased, value decoded (RFC 2231)

	ContentID          string      `json:"id,omitempty"`
	ContentDescription string      `json:"d,omitempty"`
	Encoding           string      `json:"e,omitempty"` // Content-Transfer-Encoding as given, "" = 7BIT
	Disposition        string      `json:"di,omitempty"`
	DispositionParams  [][2]string `json:"dp,omitempty"`
	Language           []string    `json:"l,omitempty"`
	Location           string      `json:"lo,omitempty"`
	MD5                string      `json:"m,omitempty"`

	// BodyLines is the number of lines in the body (text/* and
	// message/rfc822 need it in BODYSTRUCTURE): its line feeds, plus one
	// if the body does not end with a line feed. Set for every part.
	BodyLines int64 `json:"n"`

	// Parts are the children of a multipart.
	Parts []*Part `json:"c,omitempty"`
	// Message is the embedded message of a message/rfc822 (or
	// message/global) part: its root part, with Envelope. Always set for
	// those types; Message.HeaderStart == BodyStart.
	Message *Part `json:"msg,omitempty"`
	// Envelope is set on the root part and on the root of an embedded
	// message.
	Envelope *Envelope `json:"env,omitempty"`
}

// Envelope is the IMAP ENVELOPE: header values as they appear (unfolded,
// encoded-words kept encoded, as RFC 3501 requires). Raw bytes that are not
// UTF-8 are converted from windows-1252. Parse sets an absent Sender or
// Reply-To to From (RFC 3501); the encoding leaves such copies out.
type Envelope struct {
	Date      string    `json:"date,omitempty"`
	Subject   string    `json:"subj,omitempty"`
	From      []Address `json:"from,omitempty"`
	Sender    []Address `json:"sender,omitempty"`
	ReplyTo   []Address `json:"rt,omitempty"`
	To        []Address `json:"to,omitempty"`
	Cc        []Address `json:"cc,omitempty"`
	Bcc       []Address `json:"bcc,omitempty"`
	InReplyTo string    `json:"irt,omitempty"`
	MessageID string    `json:"mid,omitempty"`
}

// Address is one ENVELOPE address. A group start has Mailbox set to the
// group name and Host empty; a group end has all fields empty (RFC 3501).
type Address struct {
	Name    string `json:"n,omitempty"`
	Adl     string `json:"a,omitempty"`
	Mailbox string `json:"m,omitempty"`
	Host    string `json:"h,omitempty"`
	// GroupEnd marks the end of a group.
	GroupEnd bool `json:"g,omitempty"`
}
