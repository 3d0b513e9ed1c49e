#!/usr/bin/env python3
"""Scripted IMAP session with the standard library's imaplib.

Usage: imaplib_session.py HOST PORT USER PASSWORD

Exits non-zero (with a message) on the first unexpected answer. Run by
TestPythonImaplib against an in-process mailstead IMAP server.
"""
import imaplib
import re
import sys
import time

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", "%s: %s %r" % (what, typ, data))
    return data


M = imaplib.IMAP4(host, port)
check("IMAP4REV1" in M.capabilities, "capabilities %r" % (M.capabilities,))
check("AUTH=PLAIN" in M.capabilities, "AUTH=PLAIN advertised")

try:
    M.login(user, "wrong")
    check(False, "login with wrong password succeeded")
except imaplib.IMAP4.error:
    pass
ok(M.login(user, password), "login")
caps = ok(M.capability(), "capability")[0].decode().upper().split()
for cap in ("IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "ESEARCH", "QUOTA", "NAMESPACE"):
    check(cap in caps, "capability %s after login: %r" % (cap, caps))

ok(M.noop(), "noop")
data = ok(M.namespace(), "namespace")
check(data[0] == b'(("" "/")) NIL NIL', "namespace %r" % data)

data = ok(M.list(), "list")
names = [l.decode() for l in data]
check(any(n.endswith('"/" INBOX') for n in names), "INBOX listed: %r" % names)
check(any("\\Sent" in n and n.endswith(" Sent") for n in names), "Sent special-use: %r" % names)

ok(M.create("Processed"), "create")
ok(M.create("Tmp/Sub"), "create with parent")
ok(M.subscribe("Tmp/Sub"), "subscribe")
data = ok(M.lsub('""', "Tmp/*"), "lsub")
check(data[0] == b'() "/" Tmp/Sub', "lsub %r" % data)
ok(M.unsubscribe("Tmp/Sub"), "unsubscribe")
ok(M.rename("Tmp", "Tmp2"), "rename")
ok(M.delete("Tmp2/Sub"), "delete child")
ok(M.delete("Tmp2"), "delete")
typ, _ = M.select("Nope")
check(typ == "NO", "select of missing mailbox")

msg = (
    "From: Paper Sender <sender@example.com>\r\n"
    "To: %s\r\n"
    "Subject: Invoice 42\r\n"
    "Date: Mon, 4 Mar 2024 08:00:00 +0000\r\n"
    "Message-ID: <inv42@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n"
    "\r\n"
    "--b\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Please find the invoice attached. Grüße\r\n"
    "--b\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment; filename=invoice.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "JVBERi0xLjQK\r\n"
    "--b--\r\n" % user
).encode()
for i in range(3):
    typ, data = M.append("INBOX", "(\\Flagged)" if i == 0 else None,
                         imaplib.Time2Internaldate(time.time()), msg)
    check(typ == "OK" and b"APPENDUID" in data[0], "append %r %r" % (typ, data))

typ, data = M.select("INBOX")
check(typ == "OK" and data[0] == b"3", "select %r %r" % (typ, data))
check(M.untagged_responses.get("UIDVALIDITY"), "UIDVALIDITY reported")

data = ok(M.uid("SEARCH", "CHARSET", "UTF-8", "UNSEEN"), "uid search unseen")
check(data[0].split() == [b"1", b"2", b"3"], "uid search %r" % data)
data = ok(M.search(None, "FLAGGED"), "search flagged")
check(data[0] == b"1", "search flagged %r" % data)
data = ok(M.search(None, "BODY", "invoice", "FROM", "sender"), "search body")
check(data[0] == b"1 2 3", "search body %r" % data)
data = ok(M.search(None, "OR", "SUBJECT", "nothing", "HEADER", "Message-ID", "inv42"), "search header")
check(data[0] == b"1 2 3", "search header %r" % data)

typ, data = M.uid("FETCH", "1:3", "(BODY.PEEK[] UID FLAGS RFC822.SIZE)")
check(typ == "OK" and len([d for d in data if isinstance(d, tuple)]) == 3, "uid fetch %r" % typ)
head, body = data[0]
m = re.search(rb"RFC822\.SIZE (\d+)", head + data[1] if isinstance(data[1], bytes) else head)
check(b"Please find the invoice" in body, "body content")
check(m is not None and int(m.group(1)) == len(body), "RFC822.SIZE %r vs %d" % (head, len(body)))

data = ok(M.fetch("1", "(BODYSTRUCTURE ENVELOPE)"), "fetch bodystructure")
check(b'"mixed"' in data[0] and b'"Invoice 42"' in data[0], "bodystructure %r" % data)
data = ok(M.fetch("2", "(BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "fetch sections")
check(data[0][1].startswith(b"Please find"), "BODY[1] %r" % (data,))
check(data[1][1] == b"Subject: Invoice 42\r\n\r\n", "HEADER.FIELDS %r" % (data,))

data = ok(M.uid("STORE", "1", "+FLAGS", "(\\Seen $Processed)"), "uid store")
check(b"\\Seen" in data[0] and b"$Processed" in data[0], "store %r" % data)
data = ok(M.uid("SEARCH", "UNKEYWORD", "$Processed"), "search unkeyword")
check(data[0] == b"2 3", "unkeyword %r" % data)

typ, data = M.uid("MOVE", "2", "Processed")
check(typ == "OK", "uid move %r %r" % (typ, data))
typ, data = M.response("COPYUID")
check(data and data[0] and data[0].split()[1:] == [b"2", b"1"], "untagged COPYUID of MOVE %r" % (data,))
data = ok(M.status("Processed", "(MESSAGES UIDVALIDITY)"), "status")
check(b"MESSAGES 1" in data[0] and b"UIDVALIDITY" in data[0], "status %r" % data)
typ, data = M.copy("1", "Processed")
check(typ == "OK" and b"COPYUID" in data[0], "copy %r" % data)

ok(M.store("1", "+FLAGS", "\\Deleted"), "store deleted")
data = ok(M.expunge(), "expunge")
check(data[-1] == b"1", "expunge %r" % data)  # earlier MOVE expunge accumulates in imaplib
typ, data = M.select("INBOX", readonly=True)
check(typ == "OK" and data[0] == b"1", "examine %r" % data)
typ, data = M.store("1", "+FLAGS", "\\Seen")
check(typ == "NO", "store in read-only mailbox %r" % typ)

ok(M.unselect(), "unselect")
typ, data = M.getquotaroot("INBOX")
check(typ == "OK", "getquotaroot")
data = ok(M.enable("UTF8=ACCEPT"), "enable")
ok(M.create('"Entwürfe"'), "create utf-8 name")
data = ok(M.list('""', '"Entw*"'), "list utf-8")
check("Entwürfe" in data[0].decode("utf-8"), "utf-8 name %r" % data)
ok(M.select("INBOX"), "select")
ok(M.check(), "check")
ok(M.close(), "close")
typ, _ = M.logout()
check(typ == "BYE", "logout %r" % typ)
print("ok")
