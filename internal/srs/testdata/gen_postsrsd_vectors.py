#!/usr/bin/python3
"""Regenerate postsrsd-vectors.tsv from the real postsrsd daemon.

The vectors pin our SRS implementation to the bytes that postsrsd (which
embeds libsrs2's srs2.c) produces and accepts, so that a secret migrated from
docker-mailserver keeps verifying addresses it issued.

Requirements (Debian): postsrsd (1.x, the tcp_table daemon) and faketime.
    apt-get install postsrsd faketime
    /usr/bin/python3 internal/srs/testdata/gen_postsrsd_vectors.py

The daemon runs in the foreground on loopback under faketime, once per
(configuration, date); each is stopped by its own process id afterwards.
Output columns (tab separated):
    op  config  date  input  reply
where reply is postsrsd's tcp_table answer ("200 <addr>" or "500 <error>").
"""

import datetime
import os
import socket
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
POSTSRSD = "/usr/sbin/postsrsd"
DOMAIN = "example.com"

# name -> (secret file, separator, hash length)
CONFIGS = {
    "a": ("secrets-a.txt", "=", 4),
    "b": ("secrets-b.txt", "=", 4),  # rotation: new first, old second
    "c": ("secrets-c.txt", "-", 6),  # secret with spaces, >64-byte secret
    "d": ("secrets-d.txt", "+", 4),  # docker-mailserver style base64 secret
}

D0 = datetime.date(2024, 5, 1)  # day 19844, 19844 % 1024 = 388
W0 = datetime.date(2026, 1, 18)  # day 20471, 20471 % 1024 = 1015: +21 days wraps

SENDERS = [
    "sender@otherdomain.com",
    "Sender.Name@Example.ORG",
    "user+tag@sub.example.net",
    "a-b_c.d@xn--bcher-kva.example",
    "very.long.local.part.with.many.dots.and.more.characters.0123456789@long-domain-name.example.org",
    "SRS0=opaque+string@otherdomain.com",
    "srs0+HHHH=TT=orig.example=user@fwd1.example",
    "SRS0-abcd=AB=orig.example=u@fwd1.example",
    "SRS1=abcd=first.example==HHHH=TT=orig.example=u@fwd2.example",
    "srs1+abcd=first.example=+HHHH=TT=orig.example=u@fwd2.example",
    "user@example.com",
    "user@EXAMPLE.COM",
    "no-at-sign",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    def __init__(self, config, date):
        secret, sep, hashlen = CONFIGS[config]
        self.fport, self.rport = free_port(), free_port()
        fake = "@%s 12:00:00" % date.isoformat()
        cmd = ["faketime", "-f", fake, POSTSRSD,
               "-s", os.path.join(HERE, secret), "-d", DOMAIN,
               "-a", sep, "-n", str(hashlen), "-N", str(hashlen),
               "-l", "127.0.0.1", "-4",
               "-f", str(self.fport), "-r", str(self.rport)]
        self.proc = subprocess.Popen(cmd, env=dict(os.environ, TZ="UTC"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.rport), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("postsrsd did not start: %s" % self.proc.stderr.read())

    def query(self, port, addr):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"get " + urllib.parse.quote(addr, safe="@=+-._/").encode() + b"\n")
            line = s.makefile("rb").readline().decode().rstrip("\n")
        code, _, rest = line.partition(" ")
        if code == "200":
            rest = urllib.parse.unquote(rest)
        return code + " " + rest

    def forward(self, addr):
        return self.query(self.fport, addr)

    def reverse(self, addr):
        return self.query(self.rport, addr)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)


def variants(addr):
    """Inputs derived from a valid SRS address that probe the verifier."""
    out = [addr, addr.lower(), addr.upper()]
    local, _, dom = addr.rpartition("@")
    tag, sep, rest = local[:4], local[4], local[5:]
    for other in "=+-":
        if other != sep:
            out.append(tag + other + rest + "@" + dom)
    h, _, tail = rest.partition("=")
    flip = {c: d for c, d in zip("AaBb0", "BbAa1")}
    out.append(tag + sep + (flip.get(h[0], "A") + h[1:]) + "=" + tail + "@" + dom)  # tampered hash
    out.append(tag + sep + h + "x=" + tail + "@" + dom)  # hash too long
    out.append(tag + sep + h[:-1] + "=" + tail + "@" + dom)  # hash too short
    out.append(local)  # no domain at all: libsrs2 ignores the host
    if tag.upper() == "SRS0":
        stamp, _, t2 = tail.partition("=")
        out.append(tag + sep + h + "=" + stamp[::-1] + "=" + t2 + "@" + dom)  # other stamp
        out.append(tag + sep + h + "=" + stamp[0] + "1=" + t2 + "@" + dom)  # bad base32 char
        out.append(tag + sep + h + "=" + stamp + "A=" + t2 + "@" + dom)  # 3-char stamp
        host, _, user = t2.partition("=")
        out.append(tag + sep + h + "=" + stamp + "=" + host.upper() + "=" + user + "@" + dom)
        out.append(tag + sep + h + "=" + stamp + "=" + host + "@" + dom)  # no user
        out.append(tag + sep + h + "=" + stamp + "@" + dom)  # no host
        out.append(tag + sep + h + "@" + dom)  # no stamp
    return out


FIXED_REVERSE = [
    "sender@otherdomain.com",
    "SRS0@example.com",
    "SRS2=abcd=AB=x.example=u@example.com",
    "SRS0=@example.com",
    "SRS1=@example.com",
    "SRS0x=abcd=AB=x.example=u@example.com",
    "SRS1=abcd@example.com",
    "SRS1=abcd=host.example@example.com",
    "srs1=abcd=host.example==abcd=AB=x=u@example.com",
]


def main():
    rows = []

    def add(op, config, date, inp, reply):
        assert "\t" not in inp and "\n" not in inp
        rows.append("\t".join([op, config, date.isoformat(), inp, reply]))

    issued = {}  # (config, date) -> list of SRS outputs
    for config in CONFIGS:
        for date in (D0, W0):
            d = Daemon(config, date)
            try:
                outs = []
                for s in SENDERS:
                    r = d.forward(s)
                    add("forward", config, date, s, r)
                    if r.startswith("200 SRS"):
                        outs.append(r[4:])
                issued[(config, date)] = outs
                # An address we issued ourselves is "Already rewritten".
                if outs:
                    own = outs[0].replace("@" + DOMAIN, "@other-host.example")
                    add("forward", config, date, own, d.forward(own))
            finally:
                d.stop()

    plan = []  # (verifier config, date, inputs)
    for (config, date), outs in issued.items():
        # Every variant on the day of issue; the plain and lower-cased
        # addresses at the edges of the 21-day window, one day in the future
        # and far in the past.
        plan.append((config, date, [v for o in outs for v in variants(o)]))
        for delta in (21, 22, -1, 1000):
            plan.append((config, date + datetime.timedelta(days=delta),
                         [v for o in outs for v in (o, o.lower())]))
        if config == "a":
            # Rotation: config b lists a's secret second.
            plan.append(("b", date, outs))
            plan.append(("c", date, outs))
    plan.append(("a", D0, FIXED_REVERSE))

    for config, date, inputs in plan:
        d = Daemon(config, date)
        try:
            for inp in inputs:
                add("reverse", config, date, inp, d.reverse(inp))
        finally:
            d.stop()

    version = subprocess.run([POSTSRSD, "-v"], capture_output=True, text=True).stdout.strip()
    pkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "postsrsd"],
                         capture_output=True, text=True).stdout.strip()
    out = os.path.join(HERE, "postsrsd-vectors.tsv")
    with open(out, "w") as f:
        f.write("# Generated by gen_postsrsd_vectors.py from the real postsrsd %s "
                "(Debian package %s) under faketime; do not edit.\n" % (version, pkg))
        f.write("# domain=%s; configs: %s\n" % (DOMAIN, "; ".join(
            "%s=%s sep=%s hashlen=%d" % (k, v[0], v[1], v[2]) for k, v in CONFIGS.items())))
        f.write("# op\tconfig\tdate (12:00 UTC)\tinput\tpostsrsd reply\n")
        for r in rows:
            f.write(r + "\n")
    print("wrote %d vectors to %s" % (len(rows), out), file=sys.stderr)


if __name__ == "__main__":
    main()
