#!/usr/bin/python3
"""Independent ARC verifier (and sealer) for the Go tests: dkimpy's
arc_verify and arc_sign (Debian packages python3-dkim, python3-authres for
signing) with a fake DNS zone.

usage: arcverify.py MESSAGE ZONE.json [--ed25519] [--fail-seal]
       arcverify.py --serve

ZONE.json maps DNS names ("sel._domainkey.example.org") to TXT strings.
--ed25519    also accept a=ed25519-sha256. dkimpy's ARC accepts only
             rsa-sha256 (as RFC 8617 defines); this adds the algorithm to its
             table so that its canonicalization and Ed25519 code check ours.
--fail-seal  additionally verify the newest ARC-Seal as a cv=fail seal, over
             its own ARC set only (RFC 8617 section 5.1.2), with dkimpy's
             verify_sig; arc_verify does not check seals that say cv=fail.

Prints one JSON object: {"cv": ..., "reason": ..., "sets": [...],
"fail_seal_valid": ...}.

--serve reads one JSON request per line on stdin and answers one JSON line
each, so that the tests pay for importing dkimpy once:
  {"op": "verify", "message": B64, "zone": {...}, "flags": [...]}
  {"op": "sign", "message": B64, "key": PEM, "selector": S, "domain": D,
   "srv_id": ID, "timestamp": T}  -> {"header": B64} (dkimpy's ARC set)
  {"op": "ping", "modules": [...]}  -> {"ok": true} if they import
Errors come back as {"error": "..."}.
"""

import base64
import hashlib
import json
import sys

import dkim
import dkim.crypto
from dkim.util import parse_tag_value


def verify(message, zone, flags):
    zone = {k.rstrip(".").lower(): v for k, v in zone.items()}

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        txt = zone.get(name.rstrip(".").lower())
        return txt.encode() if txt is not None else None

    algs = dkim.crypto.ARC_HASH_ALGORITHMS
    if "--ed25519" in flags:
        algs[b"ed25519-sha256"] = hashlib.sha256
    try:
        cv, results, reason = dkim.arc_verify(message, dnsfunc=dnsfunc)
        out = {
            "cv": cv.decode() if cv is not None else None,
            "reason": reason,
            "sets": [
                {
                    "instance": r.get("instance"),
                    "ams_valid": bool(r.get("ams-valid")),
                    "as_valid": bool(r.get("as-valid")),
                    "cv": r.get("cv", b"").decode(),
                }
                for r in results
            ],
        }
        if "--fail-seal" in flags:
            a = dkim.ARC(message)
            top, headers = a.sorted_arc_headers()
            as_value = [v for i, (n, v) in headers if i == top and n.lower() == b"arc-seal"][0]
            sig = parse_tag_value(as_value)
            sig[b"c"] = b"relaxed/relaxed"
            # Pick header fields from the top, as dkimpy's own sealer does
            # for a cv=fail seal, so that only the newest set is covered.
            a.headers.reverse()
            out["fail_seal_valid"] = bool(a.verify_sig(
                sig, [b"arc-authentication-results", b"arc-message-signature"],
                (b"ARC-Seal", b" " + as_value), dnsfunc))
        return out
    finally:
        algs.pop(b"ed25519-sha256", None)


def sign(req):
    import authres  # noqa: F401  (dkimpy's arc_sign needs it)

    lines = dkim.arc_sign(base64.b64decode(req["message"]), req["selector"].encode(),
                          req["domain"].encode(), req["key"].encode(),
                          req["srv_id"].encode(), timestamp=int(req["timestamp"]))
    if not lines:
        raise ValueError("arc_sign produced no set")
    return {"header": base64.b64encode(b"".join(lines)).decode()}


def serve():
    for line in sys.stdin:
        try:
            req = json.loads(line)
            if req["op"] == "verify":
                out = verify(base64.b64decode(req["message"]), req["zone"], req.get("flags") or [])
            elif req["op"] == "sign":
                out = sign(req)
            elif req["op"] == "ping":
                for m in req.get("modules") or []:
                    __import__(m)
                out = {"ok": True}
            else:
                raise ValueError("unknown op %r" % req["op"])
        except Exception as e:  # report, keep serving
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def main():
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    path, zone_path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        message = f.read()
    with open(zone_path) as f:
        zone = json.load(f)
    json.dump(verify(message, zone, set(sys.argv[3:])), sys.stdout)


if __name__ == "__main__":
    main()
