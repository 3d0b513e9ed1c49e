// Package sieve is mailstead's interpreter of the Sieve mail filtering
// language (RFC 5228): per-account scripts and the global "before" and
// "after" scripts run at delivery.
//
// It is our own rather than github.com/migadu/go-sieve because that
// library lacks reject/ereject and environment and mishandles
// case-insensitive :regex with upper-case patterns; owning the interpreter
// lets us test it against the RFC examples and bound it.
//
// # Use
//
// Parse (or Check, for validation only) turns a script into a *Script;
// errors carry "line:col". Run executes a script on a Message with the
// SMTP Envelope and returns a Result: the mailboxes to store into (with
// IMAP flags), redirects, a reject, a vacation response, header edits.
// Run never loses mail: on a runtime error it returns the error and a
// Result that only keeps the message in INBOX. RunSequence runs the
// global before script, the user's script and the global after script
// the way Pigeonhole runs sieve_before/sieve_after. Responder applies
// RFC 3834 and a per-sender rate limit to vacation actions and composes
// the response.
//
// # Extensions
//
// fileinto, envelope, encoded-character, imap4flags (RFC 5232), variables
// (RFC 5229), copy (RFC 3894), body (RFC 5173), vacation (RFC 5230) and
// vacation-seconds (RFC 6131), relational (RFC 5231), subaddress (RFC
// 5233), regex (draft-ietf-sieve-regex), date and index (RFC 5260), reject
// and ereject (RFC 5429), mailbox (RFC 5490: mailboxexists, fileinto
// :create), environment (RFC 5183), editheader (RFC 5293), spamtest,
// spamtestplus and virustest (RFC 5235), and the comparators i;octet,
// i;ascii-casemap (the default), i;ascii-numeric and i;unicode-casemap.
//
// # Environment items
//
// The environment test knows the RFC 5183 items — "domain", "host",
// "location" (always "MDA"), "name" ("mailstead"), "phase" ("during"),
// "remote-host", "remote-ip", "version" — and these vendor items, which
// make the inbound authentication verdicts testable in scripts:
//
//	vnd.mailstead.spf           SPF result for MAIL FROM: pass, fail, softfail,
//	                            neutral, none, temperror, permerror
//	vnd.mailstead.dkim          pass (some signature verified), fail, none,
//	                            temperror, permerror
//	vnd.mailstead.dkim-domains  the d= domains of the verified signatures,
//	                            lower case, space separated with a space at
//	                            each end: test with :contains " example.com "
//	vnd.mailstead.dmarc         DMARC result: pass, fail, none, temperror,
//	                            permerror
//	vnd.mailstead.dmarc-policy  the From domain's policy: none, quarantine,
//	                            reject
//	vnd.mailstead.auth          the authenticated submitter, if any
//
// An item that was not evaluated is undefined, so the test is false. The
// caller fills them from its checks into Envelope; they never come from
// message headers, which the sender controls. Example:
//
//	require ["environment", "fileinto"];
//	if allof (environment :is "vnd.mailstead.dmarc" "fail",
//	          environment :is "vnd.mailstead.dmarc-policy" "quarantine") {
//	    fileinto "Junk";
//	}
//
// # Semantics worth knowing
//
//   - :matches wildcards expand non-greedily (as Pigeonhole and Cyrus);
//     ${0} is the whole value.
//   - :regex uses Go's RE2 syntax with leftmost-longest matching; see
//     compileRegex for the differences from POSIX ERE.
//   - A fileinto into a mailbox that does not exist, without :create,
//     delivers to INBOX (the store does this; RFC 5228 calls it an error
//     that falls back to keep).
//   - reject/ereject cannot be combined with keep, fileinto, redirect or
//     vacation, nor executed twice: a runtime error, so INBOX.
//   - editheader never adds or deletes Received or Auto-Submitted.
//   - Mailbox names are passed through as written; the store uses "/" as
//     hierarchy separator, so scripts migrated from Dovecot's Maildir++
//     layout ("INBOX.Lists.foo") need their names rewritten.
//
// # Limits
//
// Scripts are at most MaxScriptSize bytes, strings MaxStringLen, lists
// MaxListLen entries, nesting MaxDepth; a run sets at most MaxVariables
// variables of MaxVariableLen bytes, executes at most Options.MaxActions
// actions and Options.MaxRedirects redirects; body tests read at most
// MaxBodyPart bytes per part and MaxBodyTotal per message (decoded once
// per Message); regular expressions are RE2 (linear time) and bounded in
// size. Sieve has no loops, and a run's comparison work is capped at
// MaxWork, so a run takes bounded time whatever the script and message.
package sieve
