#!/usr/bin/python3
"""Independent ARC verifier for the Go tests: dkimpy's arc_verify (Debian
package python3-dkim) with a fake DNS zone.

usage: arcverify.py MESSAGE ZONE.json [--ed25519] [--fail-seal]

ZONE.json maps DNS names ("sel._domainkey.example.org") to TXT strings.
--ed25519    also accept a=ed25519-sha256. dkimpy's ARC accepts only
             rsa-sha256 (as RFC 8617 defines); this adds the algorithm to its
             table so that its canonicalization and Ed25519 code check ours.
--fail-seal  additionally verify the newest ARC-Seal as a cv=fail seal, over
             its own ARC set only (RFC 8617 section 5.1.2), with dkimpy's
             verify_sig; arc_verify does not check seals that say cv=fail.

Prints one JSON object: {"cv": ..., "reason": ..., "sets": [...],
"fail_seal_valid": ...}.
"""

import hashlib
import json
import sys

import dkim
import dkim.crypto
from dkim.util import parse_tag_value


def main():
    path, zone_path = sys.argv[1], sys.argv[2]
    flags = set(sys.argv[3:])
    with open(path, "rb") as f:
        message = f.read()
    with open(zone_path) as f:
        zone = {k.rstrip(".").lower(): v for k, v in json.load(f).items()}

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        txt = zone.get(name.rstrip(".").lower())
        return txt.encode() if txt is not None else None

    if "--ed25519" in flags:
        dkim.crypto.ARC_HASH_ALGORITHMS[b"ed25519-sha256"] = hashlib.sha256

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
        # Pick header fields from the top, as dkimpy's own sealer does for a
        # cv=fail seal, so that only the newest set is covered.
        a.headers.reverse()
        out["fail_seal_valid"] = bool(a.verify_sig(
            sig, [b"arc-authentication-results", b"arc-message-signature"],
            (b"ARC-Seal", b" " + as_value), dnsfunc))

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
