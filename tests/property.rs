//! Whole sessions driven by arbitrary bytes: pieces of real commands,
//! literals and garbage, sent split at arbitrary points. Whatever arrives,
//! each IMAP and SMTP session answers with well-formed responses and
//! closes cleanly once the client stops sending; nothing panics and
//! nothing stalls past a deadline. The inputs are drawn from a fixed seed,
//! so a failure names the case that repeats it.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Sessions driven per protocol.
const CASES: usize = 120;
/// How long a session may take to answer everything and close after the
/// client has stopped sending.
const DEADLINE: Duration = Duration::from_secs(20);

const IMAP_TOKENS: &[&[u8]] = &[
    b"a NOOP\r\n",
    b"b CAPABILITY\r\n",
    b"c LOGIN roost@localhost roostroost\r\n",
    b"d SELECT INBOX\r\n",
    b"e FETCH 1:* (UID FLAGS BODY.PEEK[1.HEADER] RFC822.SIZE)\r\n",
    b"e FETCH 1:* (BODY.PEEK[2.1] BODY.PEEK[HEADER.FIELDS (Subject)] BODY[TEXT]<3.40>)\r\n",
    b"s SEARCH OR (SEEN FROM x) NOT UID 1:* SINCE 1-Jan-2020\r\n",
    b"f STORE 1 +FLAGS (\\Seen)\r\n",
    b"g LIST \"\" *\r\n",
    b"h IDLE\r\n",
    b"DONE\r\n",
    b"i AUTHENTICATE PLAIN\r\n",
    b"AGFsaWNlAHNlY3JldA==\r\n",
    b"j APPEND INBOX {5}\r\n",
    b"k LOGIN {3+}\r\nabc {2}\r\n",
    b"l STATUS INBOX (MESSAGES UNSEEN)\r\n",
    b"m EXPUNGE\r\n",
    b"n COMPRESS DEFLATE\r\n",
    b"o UID FETCH 1:* BODY[]\r\n",
    b"p LOGOUT\r\n",
    b"(((((((((((",
    b"{4294967296}\r\n",
    b"\"unterminated",
    b"\r\n",
    b"\n",
    b"*%*%*%",
    b" ",
];

const SMTP_TOKENS: &[&[u8]] = &[
    b"EHLO fuzz.example.org\r\n",
    b"HELO fuzz\r\n",
    b"MAIL FROM:<fuzz@example.org>\r\n",
    b"MAIL FROM:<> SIZE=100\r\n",
    b"RCPT TO:<roost@localhost>\r\n",
    b"RCPT TO:<nobody@elsewhere.example>\r\n",
    b"DATA\r\n",
    b"Subject: fuzz\r\n\r\nbody\r\n",
    b".\r\n",
    b"..\r\n",
    b"\r\n.\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN\r\n",
    b"STARTTLS\r\n",
    b"BDAT 10 LAST\r\n",
    b"VRFY x\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"<<<<",
    b" ",
];

/// Arbitrary input: tokens and random bytes, up to a few KiB.
fn input(rng: &mut XorShift, tokens: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..(rng.next() % 40) {
        match rng.next() % 8 {
            0 => {
                let n = rng.next() % 64;
                out.extend((0..n).map(|_| rng.next() as u8));
            }
            1 => out.extend(std::iter::repeat_n(b'x', (rng.next() % 2000) as usize)),
            _ => out.extend_from_slice(tokens[(rng.next() % tokens.len() as u64) as usize]),
        }
    }
    out
}

/// Sends `bytes` in pieces of arbitrary size, half-closes, and reads
/// everything the server says until it closes. `None` on a stall.
fn drive(port: u16, bytes: &[u8], rng: &mut XorShift) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = (1 + rng.next() % 300).min(rest.len() as u64) as usize;
        if stream.write_all(&rest[..n]).is_err() {
            // The server closed first (too many errors, LOGOUT): fine.
            break;
        }
        rest = &rest[n..];
        if rng.next() % 4 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(out),
            Err(_) => return None,
        }
    }
}

/// Every IMAP response line (literal data skipped) is untagged, a
/// continuation request, or tagged with a status. After COMPRESS the rest
/// is compressed and not checked.
fn imap_well_formed(out: &[u8]) -> Result<(), String> {
    let mut rest = out;
    while !rest.is_empty() {
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Err(format!(
                "unterminated line {:?}",
                String::from_utf8_lossy(rest)
            ));
        };
        let line = &rest[..lf + 1];
        rest = &rest[lf + 1..];
        let text = String::from_utf8_lossy(line);
        let ok = line.starts_with(b"* ")
            || line.starts_with(b"+ ")
            || text.split_once(' ').is_some_and(|(tag, status)| {
                !tag.is_empty() && ["OK", "NO", "BAD"].iter().any(|s| status.starts_with(s))
            });
        if !ok || !line.ends_with(b"\r\n") {
            return Err(format!("malformed line {text:?}"));
        }
        if text.contains("OK DEFLATE active") || text.contains("OK Begin TLS negotiation now") {
            return Ok(());
        }
        // Literals: skip their bytes; the line goes on after each, and
        // may announce another.
        let mut segment = &line[..line.len() - 2];
        while let Some(n) = literal_at_end(segment) {
            if n > rest.len() {
                return Err("literal cut short".into());
            }
            rest = &rest[n..];
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                return Err("unterminated line after literal".into());
            };
            segment = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
            rest = &rest[lf + 1..];
        }
    }
    Ok(())
}

/// The size of the literal (`{n}` or `~{n}`) a line segment ends with.
fn literal_at_end(segment: &[u8]) -> Option<usize> {
    let open = segment.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&segment[open + 1..])
        .ok()
        .and_then(|s| s.strip_suffix('}'))
        .and_then(|s| s.parse::<usize>().ok())
}

/// Every SMTP reply line is a three-digit code and a space or hyphen.
fn smtp_well_formed(out: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(out);
    // After STARTTLS's 220 the rest is TLS, not SMTP: checked up to there.
    const TLS: &str = "220 2.0.0 Ready to start TLS\r\n";
    let text = match text.find(TLS) {
        Some(at) => std::borrow::Cow::Owned(text[..at + TLS.len()].to_string()),
        None => text,
    };
    if !text.is_empty() && !text.ends_with("\r\n") {
        return Err(format!("unterminated reply {text:?}"));
    }
    for line in text.split_terminator("\r\n") {
        let b = line.as_bytes();
        let ok =
            b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b' ' || b[3] == b'-');
        if !ok {
            return Err(format!("malformed reply line {line:?}"));
        }
    }
    Ok(())
}

fn no_panics(server: &Server) {
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// A multipart message with an encapsulated one, so FETCH of parts,
/// headers and partial texts has something to cut.
const NESTED: &[u8] = b"From: nest@example.org\r\nSubject: nest\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--o--\r\n";

#[test]
fn arbitrary_imap_sessions_answer_and_close() {
    let server = Server::start();
    let mut smtp = Smtp::connect(server.port(SMTP));
    assert!(smtp.cmd("EHLO nest.example.org").starts_with("250-"));
    assert_eq!(
        smtp.send_mail("nest@example.org", &[ACCOUNT], NESTED),
        "250 2.0.0 OK, message delivered"
    );
    let mut rng = XorShift(0x5eed_1a9a_0001);
    for case in 0..CASES {
        let bytes = input(&mut rng, IMAP_TOKENS);
        let out = drive(server.port(IMAP), &bytes, &mut rng).unwrap_or_else(|| {
            panic!(
                "case {case} stalled on {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        if let Err(e) = imap_well_formed(&out) {
            panic!(
                "case {case}: {e}\ninput {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        assert!(out.starts_with(b"* OK"), "case {case}: no greeting");
    }
    no_panics(&server);
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(imap.cmd("NOOP"), "a2 OK NOOP completed\r\n");
    server.assert_consistent(ACCOUNT);
}

#[test]
fn arbitrary_smtp_sessions_answer_and_close() {
    let server = Server::start();
    let mut rng = XorShift(0x5eed_5a7b_0002);
    for case in 0..CASES {
        let bytes = input(&mut rng, SMTP_TOKENS);
        let out = drive(server.port(SMTP), &bytes, &mut rng).unwrap_or_else(|| {
            panic!(
                "case {case} stalled on {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        if let Err(e) = smtp_well_formed(&out) {
            panic!(
                "case {case}: {e}\ninput {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        assert!(out.starts_with(b"220 "), "case {case}: no greeting");
    }
    no_panics(&server);
    let mut smtp = Smtp::connect(server.port(SMTP));
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    server.assert_consistent(ACCOUNT);
}
