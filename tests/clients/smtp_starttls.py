#!/usr/bin/env python3
"""STARTTLS on a plain SMTP port with python's smtplib (RFC 3207), then
the command-injection case: a command pipelined after STARTTLS in the same
packet must not be read once TLS is up. Prints one line per step.

usage: smtp_starttls.py HOST PORT CAFILE
"""
import smtplib
import socket
import ssl
import sys

host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)

s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("client.example.org")
print("offered", s.has_extn("starttls"))
code, msg = s.starttls(context=ctx)
print("starttls", code, msg.decode())
print("tls", s.sock.version())
s.ehlo("client.example.org")
print("offered-after", s.has_extn("starttls"))
print("again", s.docmd("STARTTLS"))
s.quit()

raw = socket.create_connection((host, port), timeout=30)
f = raw.makefile("rb")
f.readline()
raw.sendall(b"EHLO x\r\n")
while True:
    line = f.readline()
    if line.startswith(b"250 "):
        break
raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
print("answer", f.readline().decode().strip())
t = ctx.wrap_socket(raw, server_hostname=host)
t.settimeout(2)
try:
    print("after-handshake", repr(t.recv(4096)))
except socket.timeout:
    print("after-handshake nothing")
t.settimeout(30)
t.sendall(b"MAIL FROM:<after@example.org>\r\n")
print("mail-before-ehlo", t.recv(4096).decode().strip())
t.sendall(b"QUIT\r\n")
print("quit", t.recv(4096).decode().strip())
