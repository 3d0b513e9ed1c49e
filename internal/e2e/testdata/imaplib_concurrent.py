# Two imaplib sessions on one mailbox see each other's flag changes and
# expunges at the moments RFC 9051 allows (section 7.5.1: no EXPUNGE
# during FETCH, STORE or SEARCH), and new mail from SMTP. The mailbox
# holds 3 messages when the script starts.
#
# usage: imaplib_concurrent.py HOST IMAPSPORT CAFILE USER PASSWORD SMTPPORT
import imaplib
import re
import smtplib
import socket
import ssl
import sys
import time

host, port, cafile, user, password, smtp_port = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)


def ok(res, what):
    typ, data = res
    assert typ == "OK", f"{what}: {typ} {data}"
    return data


def session():
    M = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=30)
    ok(M.login(user, password), "LOGIN")
    data = ok(M.select("INBOX"), "SELECT")
    return M, int(data[0])


def pop(M, name):
    return M.untagged_responses.pop(name, [])


def flags_of(fetches, seq):
    for f in fetches:
        m = re.match(rb"(\d+) \(.*FLAGS \(([^)]*)\)", f)
        if m and int(m.group(1)) == seq:
            return set(m.group(2).split())
    return None


A, n = session()
B, nb = session()
assert n == nb == 3, (n, nb)

# A flags message 1; B learns of it on NOOP.
ok(A.store("1", "+FLAGS", r"(\Flagged)"), "A STORE")
pop(B, "FETCH")
ok(B.noop(), "B NOOP")
fl = flags_of(pop(B, "FETCH"), 1)
assert fl is not None and b"\\Flagged" in fl, ("B did not see A's flag", fl)

# B removes it again; A sees that too.
ok(B.store("1", "-FLAGS", r"(\Flagged)"), "B STORE")
ok(A.noop(), "A NOOP")
fl = flags_of(pop(A, "FETCH"), 1)
assert fl is not None and b"\\Flagged" not in fl, ("A did not see B's flag removal", fl)

# B expunges message 2. A's FETCH by sequence number must not carry the
# EXPUNGE (it would renumber messages under the client); its NOOP must.
ok(B.store("2", "+FLAGS.SILENT", r"(\Deleted)"), "B STORE \\Deleted")
data = ok(B.expunge(), "B EXPUNGE")
assert data == [b"2"], data
pop(A, "EXPUNGE")
A.fetch("1:3", "(UID)")  # may answer NO [EXPUNGEISSUED] for message 2
assert pop(A, "EXPUNGE") == [], "EXPUNGE sent during FETCH"
ok(A.noop(), "A NOOP")
assert pop(A, "EXPUNGE") == [b"2"], "A did not see B's expunge"
pop(A, "FETCH")
typ, data = A.fetch("2", "(UID)")
assert typ == "OK" and b"UID 3" in data[0], data  # old message 3 is now number 2

# New mail over SMTP shows up in both sessions.
with smtplib.SMTP(host, int(smtp_port), timeout=30) as s:
    s.sendmail("x@example.net", [user], b"Subject: fourth\r\n\r\nbody\r\n")
for name, M in (("A", A), ("B", B)):
    ok(M.noop(), name + " NOOP")
    assert pop(M, "EXISTS")[-1:] == [b"3"], name + " did not see the new message"

# A idles; B's expunge reaches A at once.
tag = A._new_tag()
A.send(tag + b" IDLE\r\n")
assert A.readline().startswith(b"+")
ok(B.store("1", "+FLAGS.SILENT", r"(\Deleted)"), "B STORE \\Deleted")
ok(B.expunge(), "B EXPUNGE")
# Generous: the machine may be loaded. A sends nothing while it waits, so
# an EXPUNGE that arrives at all was pushed.
A.sock.settimeout(30)
got = None
try:
    while got is None:
        line = A.readline()
        if line.strip() == b"* 1 EXPUNGE":
            got = line
except (socket.timeout, TimeoutError):
    pass
assert got, "A in IDLE did not get B's EXPUNGE within 30 s"
A.send(b"DONE\r\n")
while True:
    line = A.readline()
    if line.startswith(tag):
        assert line.startswith(tag + b" OK"), line
        break
for M in (A, B):
    data = ok(M.status("INBOX", "(MESSAGES)"), "STATUS")
    assert b"MESSAGES 2" in data[0], data
    M.logout()
print("ok")
