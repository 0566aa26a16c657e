#!/usr/bin/env python3
"""Adds an ARC Set to a message with dkimpy (an independent sealer), for
roost's ARC verification tests. The message must carry an
Authentication-Results field from SRV_ID, which becomes the set's
ARC-Authentication-Results; an arc=pass in it makes the seal's cv=pass.
Line ends come out as CRLF throughout.

Usage: arc_seal.py KEY.pem SELECTOR DOMAIN SRV_ID IN OUT
"""
import sys

import dkim


def main(argv):
    key_path, selector, domain, srv_id, src, dst = argv[1:7]
    with open(key_path, "rb") as f:
        key = f.read()
    with open(src, "rb") as f:
        message = f.read()
    fields = dkim.arc_sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        srv_id.encode(),
        include_headers=[b"from", b"to", b"subject"],
    )
    out = b"".join(fields) + message
    out = out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with open(dst, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv)
