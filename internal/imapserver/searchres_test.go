package imapserver

import (
	"testing"

	"github.com/mailstead/mailstead/internal/store"
)

// The examples of RFC 5182 (SEARCHRES) as a transcript.
func TestRFC5182SearchRes(t *testing.T) {
	e := newTestEnv(t, nil)
	e.deliver("INBOX", msgSimple)                                              // 1
	e.deliverWith("INBOX", msgSimple, store.FlagFlagged, nil, day(2024, 3, 1)) // 2
	e.deliver("INBOX", msgMultipart)                                           // 3
	e.deliverWith("INBOX", msgMultipart, store.FlagFlagged, nil, day(2024, 3, 2))
	e.deliverWith("INBOX", msgSimple, store.FlagFlagged, nil, day(1990, 1, 1)) // 5
	other := e.login()
	other.ok("SELECT INBOX") // claims \Recent
	c := e.login()
	c.ok("CREATE \"Other Messages\"")
	runTranscript(t, c, map[string]string{}, `
		C: A281 SELECT INBOX
		S: ...
		S: A281 OK [READ-WRITE] SELECT completed

		# Example 1: SEARCH, then FETCH, STORE and COPY on the result.
		C: A282 SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
		S: A282 OK SEARCH completed
		C: A283 FETCH $ (UID FLAGS)
		S: * 2 FETCH (UID 2 FLAGS (\Flagged))
		S: * 4 FETCH (UID 4 FLAGS (\Flagged))
		S: A283 OK FETCH completed
		C: A284 STORE $ +FLAGS (\Answered)
		S: * 2 FETCH (FLAGS (\Answered \Flagged))
		S: * 4 FETCH (FLAGS (\Answered \Flagged))
		S: A284 OK STORE completed
		C: A285 COPY $ "Other Messages"
		S: A285 OK [COPYUID $v 2,4 1:2] COPY completed

		# Example 2: "$" inside SEARCH, and MIN/MAX with SAVE saving only
		# those.
		C: A286 UID SEARCH RETURN (SAVE MIN MAX) ANSWERED
		S: * ESEARCH (TAG "A286") UID MIN 2 MAX 4
		S: A286 OK UID SEARCH completed
		C: A287 SEARCH $ OR UNFLAGGED NOT UNFLAGGED
		S: * SEARCH 2 4
		S: A287 OK SEARCH completed
		C: A288 UID SEARCH RETURN (SAVE) UID $ FROM example.com
		S: A288 OK UID SEARCH completed
		C: A289 UID FETCH $ (UID)
		S: * 2 FETCH (UID 2)
		S: * 4 FETCH (UID 4)
		S: A289 OK UID FETCH completed

		# A failed SEARCH RETURN (SAVE) leaves "$" empty.
		C: A290 SEARCH RETURN (SAVE) CHARSET KOI8-R ALL
		S: A290 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset
		C: A291 FETCH $ (UID)
		S: A291 OK FETCH completed

		# Expunged messages leave the result; the rest keep working.
		C: A292 SEARCH RETURN (SAVE) ALL
		S: A292 OK SEARCH completed
		C: A293 UID STORE 1,3 +FLAGS.SILENT (\Deleted)
		S: A293 OK UID STORE completed
		C: A294 UID EXPUNGE $
		S: * 3 EXPUNGE
		S: * 1 EXPUNGE
		S: A294 OK UID EXPUNGE completed
		C: A295 FETCH $ (UID)
		S: * 1 FETCH (UID 2)
		S: * 2 FETCH (UID 4)
		S: * 3 FETCH (UID 5)
		S: A295 OK FETCH completed
		C: A296 UID MOVE $ "Other Messages"
		S: * OK [COPYUID $v 2,4:5 3:5] Moved
		S: * 3 EXPUNGE
		S: * 2 EXPUNGE
		S: * 1 EXPUNGE
		S: A296 OK UID MOVE completed

		# SELECT starts with an empty result.
		C: A297 SEARCH RETURN (SAVE) ALL
		S: A297 OK SEARCH completed
		C: A298 SELECT "Other Messages"
		S: ...
		S: A298 OK [READ-WRITE] SELECT completed
		C: A299 FETCH $ (UID)
		S: A299 OK FETCH completed
	`)
}
