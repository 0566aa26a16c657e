#!/usr/bin/env python3
"""Drives roost with Python's own imaplib and prints what the library hands
back as `step TYPE data` lines (and the fetched message as base64) for
tests/clients.rs to compare exactly.

Usage: imap_client.py HOST PORT USER PASSWORD UID [--tls CAFILE]
                      [--auth-plain | --cram-md5]

The session: log in (LOGIN, AUTHENTICATE PLAIN answering the server's
continuation, or imaplib's own CRAM-MD5 after a wrong password), SELECT INBOX, FETCH sizes and flags, UID FETCH BODY.PEEK[] of
UID, STORE \\Deleted on message 1, EXPUNGE, NOOP, LIST, LOGOUT. Nothing here
needs SEARCH, ENVELOPE, BODYSTRUCTURE or APPEND.
"""
import base64
import imaplib
import ssl
import sys


def render(item):
    if isinstance(item, tuple):
        return " ".join(render(i) for i in item)
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    return str(item)


def show(step, result):
    typ, data = result
    print(f"{step} {typ} " + " | ".join(render(d) for d in data))


def main(argv):
    host, port, user, password, uid = argv[1:6]
    rest = argv[6:]
    cafile = rest[rest.index("--tls") + 1] if "--tls" in rest else None
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=30)
        print(f"tls {m.sock.version()}")
    else:
        m = imaplib.IMAP4(host, int(port), timeout=30)
    print("greeting " + m.welcome.decode())
    if "--auth-plain" in rest:
        # imaplib sends "AUTHENTICATE PLAIN" alone and answers the "+ "
        # continuation, so this is the non-SASL-IR path of RFC 9051 6.2.2.
        show("authenticate", m.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode()))
    elif "--cram-md5" in rest:
        try:
            m.login_cram_md5(user, password + "-wrong")
        except imaplib.IMAP4.error as e:
            print(f"bad-cram-md5 {e}")
        show("cram-md5", m.login_cram_md5(user, password))
    else:
        show("login", m.login(user, password))
    show("select", m.select("INBOX"))
    show("fetch", m.fetch("1:*", "(UID FLAGS RFC822.SIZE)"))
    typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
    print(f"uid-fetch {typ} {render(data[0][0])}")
    print("body " + base64.b64encode(data[0][1]).decode())
    print("uid-fetch-tail " + " | ".join(render(d) for d in data[1:]))
    show("store", m.store("1", "+FLAGS", "(\\Deleted)"))
    show("expunge", m.expunge())
    show("noop", m.noop())
    typ, data = m.list()
    for d in data:
        print(f"list {typ} {render(d)}")
    show("logout", m.logout())


if __name__ == "__main__":
    main(sys.argv)
