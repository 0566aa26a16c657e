#!/usr/bin/env python3
"""Verifies every DKIM-Signature of a stored message with dkimpy (an
independent verifier), answering DNS from the records given, and prints
one `signature N: pass|fail` line each, for tests/clients.rs.

Usage: dkim_verify.py MESSAGE_FILE NAME=TXT...
"""
import sys

import dkim


def main(argv):
    with open(argv[1], "rb") as f:
        message = f.read()
    records = {}
    for arg in argv[2:]:
        name, txt = arg.split("=", 1)
        records[name.rstrip(".").lower()] = txt.encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.rstrip(".").lower())

    count = message.split(b"\r\n\r\n", 1)[0].lower().count(b"\ndkim-signature:")
    if message.lower().startswith(b"dkim-signature:"):
        count += 1
    d = dkim.DKIM(message)
    for i in range(count):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.ValidationError as e:
            ok = False
            print(f"signature {i}: {e}; body {d.body!r}", file=sys.stderr)
        print(f"signature {i}: {'pass' if ok else 'fail'}")


if __name__ == "__main__":
    main(sys.argv)
