#!/usr/bin/python3
"""Independent ARC sealer for the Go tests: dkimpy's arc_sign (Debian packages
python3-dkim and python3-authres), used to put a foreign ARC set on a message
before our sealer adds the next one.

usage: arcsign.py MESSAGE KEY.pem SELECTOR DOMAIN AUTHSERV-ID TIMESTAMP

The message must carry an Authentication-Results field from AUTHSERV-ID
(dkimpy copies it into the ARC-Authentication-Results). Prints the ARC set
header fields to prepend.
"""

import sys

import dkim


def main():
    msg_path, key_path, selector, domain, srv_id, timestamp = sys.argv[1:7]
    with open(msg_path, "rb") as f:
        message = f.read()
    with open(key_path, "rb") as f:
        key = f.read()
    lines = dkim.arc_sign(message, selector.encode(), domain.encode(), key,
                          srv_id.encode(), timestamp=int(timestamp))
    if not lines:
        sys.exit("arc_sign produced no set")
    sys.stdout.buffer.write(b"".join(lines))


if __name__ == "__main__":
    main()
