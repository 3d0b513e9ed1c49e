#!/usr/bin/env python3
"""IMAP COMPRESS=DEFLATE (RFC 4978) session with python's zlib.

Usage: compress_session.py HOST PORT USER PASSWORD

Speaks IMAP over a raw socket, compresses what it sends with
zlib.compressobj(wbits=-15) (raw deflate, Z_SYNC_FLUSH after every
command) and decompresses what it reads with zlib.decompressobj(-15).
Exits non-zero with a message on the first unexpected answer. Run by
TestCompressPythonZlib against an in-process mailstead IMAP server with a
short compressor release time, so it also crosses releases.
"""
import socket
import sys
import time
import zlib

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def fail(what):
    print("FAIL:", what, file=sys.stderr)
    sys.exit(1)


class Conn:
    def __init__(self):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        self.comp = None
        self.decomp = None
        self.wire_in = 0

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            fail("connection closed; have %r" % self.buf)
        self.wire_in += len(data)
        if self.decomp is not None:
            data = self.decomp.decompress(data)
        self.buf += data

    def readline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        # Literals: read their data and the rest of the line.
        while line.endswith(b"}") and b"{" in line:
            n = int(line[line.rindex(b"{") + 1:-1])
            while len(self.buf) < n:
                self._fill()
            lit, self.buf = self.buf[:n], self.buf[n:]
            while b"\r\n" not in self.buf:
                self._fill()
            rest, self.buf = self.buf.split(b"\r\n", 1)
            line += b"\r\n" + lit + rest
        return line.decode("utf-8", "replace")

    def send(self, data):
        data = data.encode()
        if self.comp is not None:
            data = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def cmd(self, tag, command, want="OK"):
        self.send("%s %s\r\n" % (tag, command))
        untagged = []
        while True:
            line = self.readline()
            if line.startswith(tag + " "):
                if not line.startswith("%s %s" % (tag, want)):
                    fail("%s: %s (untagged %r)" % (command, line, untagged))
                return untagged, line
            untagged.append(line)


c = Conn()
greeting = c.readline()
if not greeting.startswith("* OK"):
    fail("greeting %r" % greeting)
c.cmd("a1", 'LOGIN %s "%s"' % (user, password))
u, _ = c.cmd("a2", "CAPABILITY")
if "COMPRESS=DEFLATE" not in u[0]:
    fail("no COMPRESS=DEFLATE in %r" % u)
c.cmd("a3", "COMPRESS DEFLATE")
c.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
c.decomp = zlib.decompressobj(-15)

u, _ = c.cmd("a4", "SELECT INBOX")
if "* 2 EXISTS" not in u:
    fail("SELECT %r" % u)
u, _ = c.cmd("a5", "FETCH 1:* (BODY.PEEK[])")
if len(u) != 2 or "Hello Joe, here is the invoice text." not in u[0]:
    fail("FETCH %r" % u)
c.cmd("a6", "COMPRESS DEFLATE", want="NO [COMPRESSIONACTIVE]")

# Cross the server's compressor release (100 ms) a few times.
for i in range(3):
    time.sleep(0.3)
    u, _ = c.cmd("b%d" % i, "UID FETCH 2 (UID ENVELOPE)")
    if len(u) != 1 or "=?UTF-8?B?UmVjaG51bmcgw5xiZXJzaWNodA==?=" not in u[0]:
        fail("FETCH after release %r" % u)

# IDLE releases at once; DONE gets a fresh compressor.
c.send("i1 IDLE\r\n")
line = c.readline()
if not line.startswith("+ "):
    fail("IDLE %r" % line)
time.sleep(0.3)
c.send("DONE\r\n")
line = c.readline()
if not line.startswith("i1 OK"):
    fail("DONE %r" % line)

# Many commands in one compressed write.
c.send("p1 NOOP\r\np2 NOOP\r\np3 NOOP\r\n")
for tag in ("p1", "p2", "p3"):
    line = c.readline()
    if not line.startswith(tag + " OK"):
        fail("pipelined %r" % line)

u, _ = c.cmd("z", "LOGOUT")
if not u or not u[0].startswith("* BYE"):
    fail("LOGOUT %r" % u)
if c.decomp.unused_data:
    fail("data after the end of the deflate stream")
print("ok")
