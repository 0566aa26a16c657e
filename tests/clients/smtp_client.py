#!/usr/bin/env python3
"""Drives roost with Python's own smtplib, the way a script or a Django app
would, and prints every reply it gets as `step code text` lines for
tests/clients.rs to compare exactly.

Modes:
  mx HOST PORT FROM TO FILE
      plain SMTP to the MX port, no authentication.
  mx-starttls HOST PORT CAFILE FROM TO FILE
      the MX port upgraded with starttls() (verified against CAFILE),
      then the message sent with MAIL parameters REQUIRETLS and SMTPUTF8
      (RFC 8689, RFC 6531), as smtplib's send_message would for a
      non-ASCII sender.
  submission HOST PORT USER PASSWORD FROM TO FILE
      plaintext submission: MAIL before AUTH (must be refused), then
      AUTH LOGIN answered challenge by challenge, then the message.
  submissions HOST PORT CAFILE USER PASSWORD FROM TO FILE
      implicit TLS (SMTP_SSL) verified against CAFILE: login() with a wrong
      password (smtplib tries CRAM-MD5, PLAIN and LOGIN in turn, which
      uses up the session's tries), then on a new connection AUTH CRAM-MD5
      with the right one, and the message.
"""
import smtplib
import ssl
import sys

HELO = "client.example.org"


def show(step, code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for line in str(text).split("\n"):
        print(f"{step} {code} {line}")


def ehlo(s):
    code, text = s.ehlo(HELO)
    show("ehlo", code, text)


def send(s, sender, rcpt, path):
    with open(path, "rb") as f:
        data = f.read()
    show("mail", *s.mail(sender))
    show("rcpt", *s.rcpt(rcpt))
    # data() dot-stuffs and ends with CRLF.CRLF, as RFC 5321 4.5.2 asks.
    show("data", *s.data(data))


def quit_(s):
    show("quit", *s.quit())


def main(argv):
    mode = argv[1]
    if mode == "mx":
        host, port, sender, rcpt, path = argv[2:7]
        s = smtplib.SMTP(host, int(port), local_hostname=HELO, timeout=30)
        ehlo(s)
        send(s, sender, rcpt, path)
        quit_(s)
    elif mode == "mx-starttls":
        host, port, cafile, sender, rcpt, path = argv[2:8]
        ctx = ssl.create_default_context(cafile=cafile)
        s = smtplib.SMTP(host, int(port), local_hostname=HELO, timeout=30)
        s.ehlo(HELO)
        show("starttls", *s.starttls(context=ctx))
        ehlo(s)
        with open(path, "rb") as f:
            data = f.read()
        show("mail", *s.mail(sender, ["SMTPUTF8", "REQUIRETLS"]))
        show("rcpt", *s.rcpt(rcpt))
        show("data", *s.data(data))
        quit_(s)
    elif mode == "submission":
        host, port, user, password, sender, rcpt, path = argv[2:9]
        s = smtplib.SMTP(host, int(port), local_hostname=HELO, timeout=30)
        ehlo(s)
        show("mail-before-auth", *s.mail(sender))
        s.rset()
        s.user, s.password = user, password
        # No initial response: the server must send both 334 challenges.
        show("auth", *s.auth("LOGIN", s.auth_login, initial_response_ok=False))
        send(s, sender, rcpt, path)
        quit_(s)
    elif mode == "submissions":
        host, port, cafile, user, password, sender, rcpt, path = argv[2:10]
        ctx = ssl.create_default_context(cafile=cafile)
        s = smtplib.SMTP_SSL(host, int(port), local_hostname=HELO, context=ctx, timeout=30)
        print(f"tls {s.sock.version()}")
        ehlo(s)
        try:
            s.login(user, password + "-wrong")
        except smtplib.SMTPAuthenticationError as e:
            show("bad-login", e.smtp_code, e.smtp_error)
        s.close()
        s = smtplib.SMTP_SSL(host, int(port), local_hostname=HELO, context=ctx, timeout=30)
        s.ehlo(HELO)
        s.user, s.password = user, password
        show("login", *s.auth("CRAM-MD5", s.auth_cram_md5))
        send(s, sender, rcpt, path)
        quit_(s)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
