#!/usr/bin/env python3
"""NOTIFY (RFC 5465) with the standard library's imaplib.

Usage: notify_session.py HOST PORT USER PASSWORD

Session A asks for notifications about all personal mailboxes; session B
appends, creates, subscribes, renames and deletes. A must read the STATUS
and LIST responses without sending a command. Exits non-zero (with a
message) on the first unexpected answer. Run by TestNotifyPythonImaplib.
"""
import imaplib
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", "%s: %s %r" % (what, typ, data))
    return data


imaplib.Commands.setdefault("NOTIFY", ("AUTH", "SELECTED"))

a = imaplib.IMAP4(host, port)
ok(a.login(user, password), "login A")
caps = ok(a.capability(), "CAPABILITY")[0].split()
check(b"NOTIFY" in caps, "capabilities %r" % (caps,))
ok(a._simple_command("NOTIFY", "SET STATUS (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))"), "NOTIFY SET")
status = a.untagged_responses.pop("STATUS", [])
check(any(s.startswith(b"INBOX (MESSAGES 0 ") for s in status), "STATUS at NOTIFY SET: %r" % (status,))

b = imaplib.IMAP4(host, port)
ok(b.login(user, password), "login B")
a.sock.settimeout(10)


def pushed(want):
    """Reads lines A gets without a command until one starts with want."""
    for _ in range(20):
        line = a.readline()
        check(line, "connection closed waiting for %r" % (want,))
        if line.startswith(want):
            return line
    check(False, "no %r" % (want,))


ok(b.append("INBOX", None, None, b"Subject: pushed\r\n\r\nhello\r\n"), "APPEND")
pushed(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 ")
ok(b.create("Projects"), "CREATE")
pushed(b'* LIST (\\HasNoChildren) "/" Projects')
ok(b.subscribe("Projects"), "SUBSCRIBE")
pushed(b'* LIST (\\HasNoChildren \\Subscribed) "/" Projects')
ok(b.rename("Projects", "Done"), "RENAME")
pushed(b'* LIST (\\HasNoChildren) "/" Done ("OLDNAME" (Projects))')
ok(b.delete("Done"), "DELETE")
pushed(b'* LIST (\\NonExistent) "/" Done')
b.logout()

ok(a._simple_command("NOTIFY", "NONE"), "NOTIFY NONE")
ok(a.noop(), "NOOP")
a.logout()
print("ok")
