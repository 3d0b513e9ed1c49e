# The IMAP command sequence of paperless-ngx's mail consumer (it uses the
# imap-tools library on top of imaplib): check the target folder's
# UIDVALIDITY, search INBOX, bulk-fetch whole messages without setting
# \Seen, then mark each processed message and move it to "Processed".
# Prints one JSON line: the SHA-256 of every PDF attachment consumed.
#
# usage: imaplib_paperless.py HOST IMAPSPORT CAFILE USER PASSWORD
import email
import email.policy
import hashlib
import imaplib
import json
import re
import ssl
import sys

host, port, cafile, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)


def ok(res, what):
    typ, data = res
    assert typ == "OK", f"{what}: {typ} {data}"
    return data


def consume(M):
    """One run of the consumer; returns the attachment hashes it consumed."""
    ok(M.select("INBOX"), "SELECT INBOX")
    data = ok(M.uid("SEARCH", "UNSEEN"), "UID SEARCH UNSEEN")
    uids = data[0].split()
    if not uids:
        return []
    typ, data = M.uid("FETCH", b",".join(uids), "(BODY.PEEK[] UID FLAGS RFC822.SIZE)")
    assert typ == "OK", data
    consumed = []
    # imaplib splits each response at the literal: (head, literal) and
    # then the rest of the line, where the server put UID, FLAGS, SIZE.
    fetched = []
    for i, d in enumerate(data):
        if isinstance(d, tuple):
            rest = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
            fetched.append((d[0] + b" " + rest, d[1]))
    assert len(fetched) == len(uids), (len(fetched), uids)
    for meta, raw in fetched:
        uid = re.search(rb"UID (\d+)", meta).group(1)
        size = int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1))
        assert size == len(raw), (size, len(raw))
        assert b"\\Seen" not in meta, meta
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in msg.iter_attachments():
            if part.get_content_type() == "application/pdf":
                consumed.append(hashlib.sha256(part.get_content()).hexdigest())
        # Post-consume actions: mark as read, then move.
        data = ok(M.uid("STORE", uid, "+FLAGS", r"(\Seen)"), "UID STORE +FLAGS")
        assert b"\\Seen" in data[0], data
        ok(M.uid("MOVE", uid, "Processed"), "UID MOVE")
    return consumed


M = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=30)
ok(M.login(user, password), "LOGIN")
assert "MOVE" in M.capabilities or b"MOVE" in ok(M.capability(), "CAPABILITY")[0]
ok(M.create("Processed"), "CREATE")  # the user did this in their mail client
data = ok(M.status("Processed", "(UIDVALIDITY)"), "STATUS (UIDVALIDITY)")
uidvalidity = re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1)

consumed = consume(M)
# A second run finds nothing: everything processed was moved away.
assert consume(M) == [], "second run consumed again"

data = ok(M.status("INBOX", "(MESSAGES)"), "STATUS INBOX")
assert b"MESSAGES 0" in data[0], data
data = ok(M.status("Processed", "(UIDVALIDITY MESSAGES)"), "STATUS Processed")
assert b"UIDVALIDITY " + uidvalidity in data[0], (data, uidvalidity)
assert b"MESSAGES %d" % len(consumed) in data[0] or len(consumed) == 0, data
ok(M.select("Processed", readonly=True), "EXAMINE Processed")
typ, data = M.uid("FETCH", "1:*", "(FLAGS)")
assert typ == "OK" and all(b"\\Seen" in d for d in data), data
M.logout()
print(json.dumps({"consumed": consumed}))
