package imapserver

import (
	"strings"

	"github.com/mailstead/mailstead/internal/imapserver/imapwire"
	"github.com/mailstead/mailstead/internal/message"
)

// writeEnvelope writes an ENVELOPE (RFC 9051 7.5.2). Header values are
// sent as they appear, encoded words included.
func writeEnvelope(w *imapwire.Writer, env *message.Envelope) {
	if env == nil {
		w.Raw("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)")
		return
	}
	w.Byte('(')
	w.NString(env.Date)
	w.SP()
	w.NString(env.Subject)
	from := env.From
	for _, l := range [][]message.Address{from, orDefault(env.Sender, from), orDefault(env.ReplyTo, from), env.To, env.Cc, env.Bcc} {
		w.SP()
		writeAddressList(w, l)
	}
	w.SP()
	w.NString(env.InReplyTo)
	w.SP()
	w.NString(env.MessageID)
	w.Byte(')')
}

// orDefault implements RFC 3501's rule that an absent Sender or Reply-To
// is reported as From. The message package usually applied it already.
func orDefault(l, def []message.Address) []message.Address {
	if len(l) == 0 {
		return def
	}
	return l
}

func writeAddressList(w *imapwire.Writer, l []message.Address) {
	if len(l) == 0 {
		w.Raw("NIL")
		return
	}
	w.Byte('(')
	for _, a := range l {
		if a.GroupEnd {
			w.Raw("(NIL NIL NIL NIL)")
			continue
		}
		w.Byte('(')
		w.NString(a.Name)
		w.SP()
		w.NString(a.Adl)
		w.SP()
		w.NString(a.Mailbox)
		w.SP()
		w.NString(a.Host)
		w.Byte(')')
	}
	w.Byte(')')
}

func writeParams(w *imapwire.Writer, params [][2]string) {
	if len(params) == 0 {
		w.Raw("NIL")
		return
	}
	w.Byte('(')
	for i, p := range params {
		if i > 0 {
			w.SP()
		}
		w.String(p[0])
		w.SP()
		w.String(p[1])
	}
	w.Byte(')')
}

// writeExt writes body-fld-dsp SP body-fld-lang SP body-fld-loc.
func writeExt(w *imapwire.Writer, p *message.Part) {
	if p.Disposition == "" {
		w.Raw("NIL")
	} else {
		w.Byte('(')
		w.String(p.Disposition)
		w.SP()
		writeParams(w, p.DispositionParams)
		w.Byte(')')
	}
	w.SP()
	switch len(p.Language) {
	case 0:
		w.Raw("NIL")
	case 1:
		w.String(p.Language[0])
	default:
		w.Byte('(')
		for i, l := range p.Language {
			if i > 0 {
				w.SP()
			}
			w.String(l)
		}
		w.Byte(')')
	}
	w.SP()
	w.NString(p.Location)
}

// writeBodyStructure writes BODYSTRUCTURE (ext) or BODY (!ext) of p.
func writeBodyStructure(w *imapwire.Writer, p *message.Part, ext bool) {
	if p.MediaType == "multipart" {
		w.Byte('(')
		if len(p.Parts) == 0 {
			// The grammar needs at least one body.
			w.Raw(`("text" "plain" NIL NIL NIL "7bit" 0 0)`)
		}
		for _, c := range p.Parts {
			writeBodyStructure(w, c, ext)
		}
		w.SP()
		w.String(p.MediaSubtype)
		if ext {
			w.SP()
			writeParams(w, p.Params)
			w.SP()
			writeExt(w, p)
		}
		w.Byte(')')
		return
	}
	w.Byte('(')
	w.String(p.MediaType)
	w.SP()
	w.String(p.MediaSubtype)
	w.SP()
	writeParams(w, p.Params)
	w.SP()
	w.NString(p.ContentID)
	w.SP()
	w.NString(p.ContentDescription)
	w.SP()
	enc := p.Encoding
	if enc == "" {
		enc = "7BIT"
	}
	w.String(strings.ToUpper(enc))
	w.SP()
	w.Num(p.Size())
	if p.Message != nil && p.MediaType == "message" {
		w.SP()
		writeEnvelope(w, p.Message.Envelope)
		w.SP()
		writeBodyStructure(w, p.Message, ext)
		w.SP()
		w.Num(p.BodyLines)
	} else if p.MediaType == "text" {
		w.SP()
		w.Num(p.BodyLines)
	}
	if ext {
		w.SP()
		w.NString(p.MD5)
		w.SP()
		writeExt(w, p)
	}
	w.Byte(')')
}
