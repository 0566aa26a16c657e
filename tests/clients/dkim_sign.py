#!/usr/bin/env python3
"""Signs a message with dkimpy (an independent signer), for roost's DKIM
verification tests: writes the message with DKIM-Signature fields added,
one per canonicalization asked for.

Usage: dkim_sign.py KEY.pem SELECTOR DOMAIN IN OUT CANON...
(CANON like relaxed/relaxed or simple/simple)
"""
import sys

import dkim


def main(argv):
    key_path, selector, domain, src, dst = argv[1:6]
    with open(key_path, "rb") as f:
        key = f.read()
    with open(src, "rb") as f:
        message = f.read()
    fields = b""
    for canon in argv[6:]:
        h, b = canon.encode().split(b"/")
        fields = dkim.sign(
            message,
            selector.encode(),
            domain.encode(),
            key,
            canonicalize=(h, b),
            include_headers=[b"from", b"to", b"subject"],
        ) + fields
    with open(dst, "wb") as f:
        f.write(fields + message)


if __name__ == "__main__":
    main(sys.argv)
