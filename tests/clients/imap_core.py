#!/usr/bin/env python3
"""APPEND, SEARCH, UID commands and FETCH of ENVELOPE and BODYSTRUCTURE
with python's imaplib, printing what the server answered, one line per
step, for the Rust test to compare.

usage: imap_core.py HOST PORT USER PASSWORD
"""
import imaplib
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

MESSAGE = (
    b"From: Ann Example <ann@example.org>\r\n"
    b"To: roost@localhost\r\n"
    b"Subject: Quarterly figures\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <q1@example.org>\r\n"
    b"Content-Type: multipart/mixed; boundary=zz\r\n"
    b"\r\n"
    b"--zz\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Revenue is up.\r\n"
    b"--zz\r\n"
    b"Content-Type: application/pdf; name=q.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--zz--\r\n"
)


def show(label, typ, data):
    parts = []
    for d in data:
        if isinstance(d, tuple):
            parts.append(b" ".join(x for x in d if isinstance(x, bytes)).decode())
        elif d is not None:
            parts.append(d.decode() if isinstance(d, bytes) else str(d))
    print(label, typ, " | ".join(parts))


m = imaplib.IMAP4(host, port)
m.login(user, password)
date = imaplib.Time2Internaldate(1796126400)  # 2026-12-01 12:00:00 UTC
show("append", *m.append("INBOX", r"(\Flagged)", date, MESSAGE))
show("append", *m.append("INBOX", None, date, b"Subject: second\r\n\r\nhello\r\n"))
show("select", *m.select("INBOX"))
show("search", *m.search(None, "FLAGGED"))
show("search", *m.search("UTF-8", "BODY", "revenue"))
show("uid-search", *m.uid("SEARCH", "SUBJECT", "second"))
show("fetch", *m.fetch("1", "(ENVELOPE)"))
show("fetch", *m.fetch("1", "(BODYSTRUCTURE)"))
show("uid-fetch", *m.uid("FETCH", "2", "(UID INTERNALDATE BODY.PEEK[TEXT])"))
show("uid-store", *m.uid("STORE", "2", "+FLAGS", r"(\Seen)"))
show("uid-copy", *m.uid("COPY", "1:2", "Archive"))
show("copyuid", *m.response("COPYUID"))
show("status", *m.status("Archive", "(MESSAGES)"))
m.logout()
