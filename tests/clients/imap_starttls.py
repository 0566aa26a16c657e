#!/usr/bin/env python3
"""STARTTLS on the plain IMAP port with python's imaplib, then the
command-injection case: a command pipelined after STARTTLS in the same
packet must not run after the handshake. Prints one line per step.

usage: imap_starttls.py HOST PORT USER PASSWORD CAFILE
"""
import imaplib
import socket
import ssl
import sys

host, port, user, password, cafile = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
ctx = ssl.create_default_context(cafile=cafile)

m = imaplib.IMAP4(host, port, timeout=30)
print("offered", "STARTTLS" in m.capabilities)
typ, data = m.starttls(ssl_context=ctx)
print("starttls", typ)
print("tls", m.sock.version())
print("offered-after", "STARTTLS" in m.capabilities)
typ, data = m.login(user, password)
print("login", typ)
typ, data = m.select("INBOX")
print("select", typ)
m.logout()

s = socket.create_connection((host, port), timeout=30)
f = s.makefile("rb")
f.readline()
s.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
print("answer", f.readline().decode().strip())
t = ctx.wrap_socket(s, server_hostname=host)
t.settimeout(2)
try:
    got = t.recv(4096)
    print("after-handshake", repr(got))
except socket.timeout:
    print("after-handshake nothing")
t.settimeout(30)
t.sendall(b"c STARTTLS\r\n")
print("again", t.recv(4096).decode().strip())
t.sendall(b"d LOGOUT\r\n")
out = b""
while not out.endswith(b"d OK LOGOUT completed\r\n"):
    chunk = t.recv(4096)
    if not chunk:
        break
    out += chunk
print("logout", out.decode().strip().splitlines()[-1])
