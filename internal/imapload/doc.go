// Package imapload is the IMAP benchmark behind cmd/mailstead-imapbench: a
// minimal IMAP client, a generator of realistic messages (Corpus), and
// three load modes that run against any IMAP server on this machine, so
// that mailstead can be compared with Dovecot under identical load:
//
//   - Big: one mailbox of 100,000 messages; times SELECT, UID FETCH 1:*
//     (FLAGS), UID SEARCH UNSEEN, SEARCH TEXT and FETCH 1:100 BODY.PEEK[].
//   - Mixed: N clients, each on its own account of 1,000 messages, loop
//     over SELECT, FETCH, STORE, APPEND, SEARCH, EXPUNGE without think time;
//     reports commands per second and per-command latency.
//   - Idle: thousands of sessions in IDLE; reports server memory per
//     session and the latency from an SMTP/LMTP delivery to the untagged
//     EXISTS in every session of the recipient.
//
// Server memory is read from /proc for the server process and all its
// descendants (Dovecot runs one process per session), as RSS and as PSS,
// which divides shared pages fairly between processes.
//
// Like package loadgen, whose ResolveLoopback it uses, it only ever
// connects to loopback addresses: it exists to measure servers on the
// same machine, never anyone else's.
package imapload
