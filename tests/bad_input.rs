//! Bad input on SMTP and IMAP gets the protocol error the RFCs ask for, word
//! for word as roost writes it, and the server goes on serving: after every
//! bad case a fresh client delivers over SMTP and reads the message back
//! over IMAP, and nothing half-sent is ever delivered.

mod common;
use common::*;

use std::time::Duration;

/// RFC 5321 4.5.3.1.4 (roost's `MAX_COMMAND_LINE`): octets, CRLF included.
/// RFC 5321's 512, plus RFC 3461's 500 for DSN parameters.
const MAX_COMMAND_LINE: usize = 1012;
/// roost's SMTP `MAX_BAD_COMMANDS`.
const SMTP_MAX_BAD_COMMANDS: usize = 20;
/// roost's `DEFAULT_MAX_MESSAGE_SIZE`, which localserve uses.
const MAX_MESSAGE_SIZE: u64 = 64 * 1024 * 1024;
/// roost's IMAP framer `MAX_LINE_LENGTH`: octets before CRLF.
const MAX_LINE_LENGTH: usize = 64 * 1024;
/// roost's IMAP framer `MAX_LITERAL_SIZE`.
const MAX_LITERAL_SIZE: usize = 100 * 1024;
/// roost's `MAX_COMMAND_LITERALS` and `MAX_COMMAND_LITERAL_BYTES`.
const MAX_COMMAND_LITERALS: usize = 1000;
const MAX_COMMAND_LITERAL_BYTES: usize = 1024 * 1024;
/// roost's IMAP `MAX_BAD_COMMANDS`.
const IMAP_MAX_BAD_COMMANDS: usize = 20;
/// roost's `MAX_AUTH_FAILURES`.
const MAX_AUTH_FAILURES: usize = 3;

/// The message numbers in INBOX, in order.
fn inbox_numbers(server: &Server) -> Vec<usize> {
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("EXAMINE INBOX");
    assert!(r.contains("OK [READ-ONLY] EXAMINE completed"), "{r}");
    if r.contains("* 0 EXISTS\r\n") {
        return Vec::new();
    }
    imap.fetch_all()
        .iter()
        .map(|f| message_number(&f.body).expect("a message of ours"))
        .collect()
}

/// A fresh SMTP client delivers message `n`, a fresh IMAP client reads it
/// back byte for byte, and the store is consistent.
fn still_serves(server: &Server, n: usize) {
    let original = message(n, 20);
    let mut smtp = Smtp::connect(server.port(SMTP));
    let r = smtp.cmd("EHLO fresh.example.org");
    assert!(
        r.starts_with("250-localhost greets fresh.example.org\n"),
        "{r}"
    );
    let r = smtp.send_mail("fresh@example.org", &[ACCOUNT], &original);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 localhost closing connection");

    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("EXAMINE INBOX");
    assert!(r.contains("OK [READ-ONLY] EXAMINE completed"), "{r}");
    let found: Vec<Fetched> = imap
        .fetch_all()
        .into_iter()
        .filter(|f| message_number(&f.body) == Some(n))
        .collect();
    assert_eq!(found.len(), 1, "message {n} in INBOX {} times", found.len());
    assert_eq!(strip_prefix(&found[0].body, &original), &original[..]);
    server.assert_consistent(ACCOUNT);
}

fn smtp_ehlo(server: &Server) -> Smtp {
    let mut smtp = Smtp::connect(server.port(SMTP));
    let r = smtp.cmd("EHLO client.example.org");
    assert!(
        r.starts_with("250-localhost greets client.example.org\n"),
        "{r}"
    );
    smtp
}

// ---- SMTP ----

#[test]
fn smtp_garbage_and_unknown_commands_get_exact_errors() {
    let server = Server::start();
    let mut smtp = smtp_ehlo(&server);
    let cases: &[(&[u8], &str)] = &[
        (
            b"\x00\x01\x02\xff\xfe\r\n",
            "500 5.5.1 Command not recognized",
        ),
        (b"\r\n", "500 5.5.2 Syntax error: empty command"),
        (b"NO\x00OP\r\n", "500 5.5.1 Command not recognized"),
        (
            b"NOOP \xff\xfe\xfd\r\n",
            "501 5.5.2 Invalid UTF-8 in command",
        ),
        (
            b"MAIL FROM:<a@example.org>\x00\r\n",
            "501 5.5.2 Control character in command",
        ),
        (b"FROBNICATE now\r\n", "500 5.5.1 Command not recognized"),
        // RFC 5321 4.2.4: a known but unimplemented verb is 502.
        (b"EXPN staff\r\n", "502 5.5.1 Command not implemented"),
        (
            b"MAIL FROM:a@example.org\r\n",
            "501 5.1.7 Syntax: address must be in angle brackets",
        ),
        (b"QUIT now\r\n", "501 5.5.4 Syntax: QUIT takes no arguments"),
    ];
    for (bytes, want) in cases {
        smtp.send_raw(bytes);
        assert_eq!(
            &smtp.reply(),
            want,
            "for {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // The session is still good for a whole transaction.
    let original = message(1, 5);
    let r = smtp.send_mail("a@example.org", &[ACCOUNT], &original);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    drop(smtp);
    still_serves(&server, 2);
    assert_eq!(inbox_numbers(&server), vec![1, 2]);
}

#[test]
fn smtp_random_binary_lines_each_get_one_error_then_421() {
    let server = Server::start();
    let mut smtp = smtp_ehlo(&server);
    // Exactly as many lines as the server tolerates, in one write: each gets
    // exactly one 500, the last one is followed by 421 and a close.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut input = Vec::new();
    for _ in 0..SMTP_MAX_BAD_COMMANDS {
        let len = 1 + rng.next() as usize % 100;
        // Starts with a byte that is not a letter, so no line is a command.
        input.push(b'0' + (rng.next() % 10) as u8);
        input.extend((1..len).map(|_| match rng.next() as u8 {
            b'\n' => 0,
            b => b,
        }));
        input.extend_from_slice(b"\r\n");
    }
    smtp.send_raw(&input);
    for i in 0..SMTP_MAX_BAD_COMMANDS {
        assert_eq!(smtp.reply(), "500 5.5.1 Command not recognized", "line {i}");
    }
    assert_eq!(
        smtp.reply(),
        "421 4.7.0 localhost Too many errors, closing connection"
    );
    assert_eq!(smtp.reply(), "<closed>");
    still_serves(&server, 1);
}

#[test]
fn smtp_command_line_limit_edge_and_one_past() {
    let server = Server::start();
    let mut smtp = smtp_ehlo(&server);
    let line = |total: usize| {
        let mut l = "NOOP ".to_string();
        l.extend(std::iter::repeat_n('a', total - 2 - l.len()));
        l
    };
    // Exactly the limit with CRLF: accepted.
    assert_eq!(smtp.cmd(&line(MAX_COMMAND_LINE)), "250 2.0.0 OK");
    // One past: refused, and the session goes on.
    assert_eq!(
        smtp.cmd(&line(MAX_COMMAND_LINE + 1)),
        "500 5.5.2 Line too long"
    );
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    // A line far too long, in pieces: one error when it finally ends.
    for _ in 0..100 {
        smtp.send_raw(&[b'z'; 1024]);
    }
    assert_eq!(smtp.cmd(""), "500 5.5.2 Line too long");
    // The same limit for a real command: a MAIL line one past is not read.
    let mut mail = "MAIL FROM:<a@example.org> SIZE=1".to_string();
    mail.extend(std::iter::repeat_n(
        '0',
        MAX_COMMAND_LINE + 1 - 2 - mail.len(),
    ));
    assert_eq!(smtp.cmd(&mail), "500 5.5.2 Line too long");
    assert_eq!(
        smtp.cmd("RCPT TO:<roost@localhost>"),
        "503 5.5.1 MAIL first"
    );
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 localhost closing connection");
    still_serves(&server, 1);
}

#[test]
fn smtp_commands_out_of_sequence_and_bad_recipients() {
    let server = Server::start();
    let mut smtp = Smtp::connect(server.port(SMTP));
    assert_eq!(
        smtp.cmd("MAIL FROM:<a@example.org>"),
        "503 5.5.1 Send EHLO or HELO first"
    );
    let r = smtp.cmd("EHLO client.example.org");
    assert!(
        r.starts_with("250-localhost greets client.example.org\n"),
        "{r}"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<roost@localhost>"),
        "503 5.5.1 MAIL first"
    );
    assert_eq!(smtp.cmd("DATA"), "503 5.5.1 MAIL first");
    // After a refused DATA the next line is a command again.
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("MAIL FROM:<a@example.org>"),
        "503 5.5.1 Nested MAIL command"
    );
    assert_eq!(smtp.cmd("DATA"), "554 5.5.1 No valid recipients");
    assert_eq!(
        smtp.cmd("RCPT TO:<someone@example.com>"),
        "550 5.7.1 Relaying denied: example.com is not a local domain"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<nobody@localhost>"),
        "550 5.1.1 No such user here: nobody@localhost"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<>"),
        "501 5.1.3 Null recipient not allowed"
    );
    // Refused recipients leave the transaction without any.
    assert_eq!(smtp.cmd("DATA"), "554 5.5.1 No valid recipients");
    assert_eq!(smtp.cmd("RSET"), "250 2.0.0 OK");
    // The same session then delivers normally.
    let original = message(1, 5);
    let r = smtp.send_mail("a@example.org", &[ACCOUNT], &original);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 localhost closing connection");
    still_serves(&server, 2);
    assert_eq!(inbox_numbers(&server), vec![1, 2]);
}

#[test]
fn smtp_size_parameter_edge_and_one_past() {
    let server = Server::start();
    let mut smtp = Smtp::connect(server.port(SMTP));
    let r = smtp.cmd("EHLO client.example.org");
    assert!(
        r.contains(&format!("\n250-SIZE {MAX_MESSAGE_SIZE}\n")),
        "{r}"
    );
    // RFC 1870 6.1: a declared size over the fixed maximum is refused at once.
    assert_eq!(
        smtp.cmd(&format!(
            "MAIL FROM:<a@example.org> SIZE={}",
            MAX_MESSAGE_SIZE + 1
        )),
        "552 5.3.4 Message size exceeds fixed maximum"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<roost@localhost>"),
        "503 5.5.1 MAIL first"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<a@example.org> SIZE=abc"),
        "501 5.5.4 Invalid SIZE parameter"
    );
    assert_eq!(
        smtp.cmd(&format!(
            "MAIL FROM:<a@example.org> SIZE={MAX_MESSAGE_SIZE}"
        )),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<roost@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        smtp.cmd("DATA"),
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    let original = message(1, 5);
    smtp.send_raw(&dot_stuff(&original));
    smtp.send_raw(b".\r\n");
    assert_eq!(smtp.reply(), "250 2.0.0 OK, message delivered");
    drop(smtp);
    still_serves(&server, 2);
    assert_eq!(inbox_numbers(&server), vec![1, 2]);
}

#[test]
fn smtp_data_that_never_ends_delivers_nothing() {
    let server = Server::start();
    let mut smtp = smtp_ehlo(&server);
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<roost@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        smtp.cmd("DATA"),
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    // A message too big to stage in memory (about 45 bytes a line), then
    // commands the server must take as message text, then the connection
    // goes away without the end marker.
    let lines = 2 * roost_store::MAX_STAGED_IN_MEMORY / 45;
    smtp.send_raw(&dot_stuff(&message(1, lines)));
    smtp.send_raw(b"QUIT\r\n..\r\n");
    // It went to a file in tmp/ ...
    let tmp = server.dir.join("tmp");
    eventually("the message to spill to a staged file", || {
        let staged = std::fs::read_dir(&tmp).ok()?.count();
        (staged == 1).then_some(())
    });
    drop(smtp);
    // ... which is removed with the session.
    eventually("the staged message to be removed", || {
        let left = std::fs::read_dir(&tmp).ok()?.count();
        (left == 0).then_some(())
    });
    assert_eq!(inbox_numbers(&server), Vec::<usize>::new());
    still_serves(&server, 2);
    assert_eq!(inbox_numbers(&server), vec![2]);
}

#[test]
fn smtp_bare_line_endings_are_refused_and_nothing_is_delivered() {
    let server = Server::start();
    let mut smtp = smtp_ehlo(&server);
    let bodies: &[&[u8]] = &[
        b"Subject: bare LF\r\n\r\nline one\nline two\r\n.\r\n",
        b"Subject: bare CR\r\n\r\nline one\rline two\r\n.\r\n",
        // SMTP smuggling: `\n.\n` is not the end, so the MAIL after it is
        // message text, and the whole message is refused.
        b"Subject: smuggle\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<roost@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        // The other look-alikes of the end marker: `\r\n.\n` and `\n.\r\n`.
        b"Subject: smuggle 2\r\n\r\nbody\r\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<roost@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        b"Subject: smuggle 3\r\n\r\nbody\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<roost@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
        b"Subject: smuggle 4\r\n\r\nbody\r.\r\nMAIL FROM:<evil@example.org>\r\n.\r\n",
    ];
    for body in bodies {
        assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
        assert_eq!(
            smtp.cmd("RCPT TO:<roost@localhost>"),
            "250 2.1.5 Recipient OK"
        );
        assert_eq!(
            smtp.cmd("DATA"),
            "354 Start mail input; end with <CRLF>.<CRLF>"
        );
        smtp.send_raw(body);
        assert_eq!(
            smtp.reply(),
            "500 5.5.2 Bare CR or LF in message refused (SMTP smuggling); lines must end with CRLF",
            "for {:?}",
            String::from_utf8_lossy(body)
        );
        // Back to commands, with no transaction open.
        assert_eq!(
            smtp.cmd("RCPT TO:<roost@localhost>"),
            "503 5.5.1 MAIL first"
        );
    }
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    assert_eq!(inbox_numbers(&server), Vec::<usize>::new());
    still_serves(&server, 1);
    assert_eq!(inbox_numbers(&server), vec![1]);
}

#[test]
fn smtp_too_many_bad_commands_closes_with_421() {
    let server = Server::start();
    let mut smtp = smtp_ehlo(&server);
    for i in 1..SMTP_MAX_BAD_COMMANDS {
        assert_eq!(
            smtp.cmd("FROBNICATE"),
            "500 5.5.1 Command not recognized",
            "#{i}"
        );
    }
    // Good commands do not reset the count.
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    assert_eq!(smtp.cmd("FROBNICATE"), "500 5.5.1 Command not recognized");
    assert_eq!(
        smtp.reply(),
        "421 4.7.0 localhost Too many errors, closing connection"
    );
    assert_eq!(smtp.reply(), "<closed>");
    still_serves(&server, 1);
}

// ---- IMAP ----

#[test]
fn imap_garbage_and_unknown_commands_get_bad() {
    let server = Server::start();
    let mut imap = Imap::connect(server.port(IMAP));
    imap.send_raw(b"\x00\x01\xff\xfe garbage\r\n");
    assert_eq!(imap.line(), "* BAD Missing or invalid command tag\r\n");
    imap.send_raw(b"x1 \xff\xfe\r\n");
    assert_eq!(imap.line(), "x1 BAD Expected a command name\r\n");
    imap.send_raw(b"x2 NOOP \x00\r\n");
    assert_eq!(
        imap.line(),
        "x2 BAD Unexpected characters at end of command\r\n"
    );
    // An empty line is ignored: the next response is the NOOP's.
    imap.send_raw(b"\r\nx3 NOOP\r\n");
    assert_eq!(imap.line(), "x3 OK NOOP completed\r\n");
    imap.send_raw(b"x4 FROBNICATE INBOX\r\n");
    assert_eq!(
        imap.line(),
        "x4 BAD Unknown or unsupported command FROBNICATE\r\n"
    );
    imap.send_raw(b"x5 UID FROBNICATE 1\r\n");
    assert_eq!(
        imap.line(),
        "x5 BAD UID FROBNICATE is not a valid command\r\n"
    );
    imap.send_raw(b"x6 DONE\r\n");
    assert_eq!(
        imap.line(),
        "x6 BAD Unknown or unsupported command DONE\r\n"
    );
    // Still a working session.
    imap.send_raw(format!("x7 LOGIN {ACCOUNT} {PASSWORD}\r\n").as_bytes());
    let r = imap.line();
    assert!(r.starts_with("x7 OK [CAPABILITY IMAP4rev2 "), "{r}");
    assert!(r.ends_with("] Logged in\r\n"), "{r}");
    drop(imap);
    still_serves(&server, 1);
}

#[test]
fn imap_line_length_edge_and_one_past() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let line = |tag: &str, len: usize| {
        let mut l = format!("{tag} NOOP ").into_bytes();
        l.resize(len, b'a');
        l.extend_from_slice(b"\r\n");
        l
    };
    // Exactly MAX_LINE_LENGTH octets before CRLF: framed and parsed as a
    // command (whose syntax is wrong), not refused as too big.
    imap.send_raw(&line("x1", MAX_LINE_LENGTH));
    assert_eq!(
        imap.line(),
        "x1 BAD Unexpected characters at end of command\r\n"
    );
    imap.send_raw(&line("x2", MAX_LINE_LENGTH + 1));
    assert_eq!(
        imap.line(),
        "x2 BAD [TOOBIG] Command line too long (at most 65536 bytes)\r\n"
    );
    // Far too long, in pieces: one BAD, as soon as it cannot fit.
    imap.send_raw(b"x3 NOOP ");
    for _ in 0..200 {
        imap.send_raw(&[b'z'; 1024]);
    }
    assert_eq!(
        imap.line(),
        "x3 BAD [TOOBIG] Command line too long (at most 65536 bytes)\r\n"
    );
    imap.send_raw(b"\r\nx4 NOOP\r\n");
    assert_eq!(imap.line(), "x4 OK NOOP completed\r\n");
    // A line that long with no valid tag is answered untagged.
    let mut l = vec![b'*'; MAX_LINE_LENGTH + 1];
    l.extend_from_slice(b"\r\n");
    imap.send_raw(&l);
    assert_eq!(
        imap.line(),
        "* BAD [TOOBIG] Command line too long (at most 65536 bytes)\r\n"
    );
    let r = imap.cmd("SELECT INBOX");
    assert!(r.contains("OK [READ-WRITE] SELECT completed"), "{r}");
    drop(imap);
    still_serves(&server, 1);
}

#[test]
fn imap_literals_per_command_edge_and_one_past() {
    let server = Server::start();
    let mut imap = Imap::connect(server.port(IMAP));
    // MAX_COMMAND_LITERALS empty literals reach the parser, which finds no
    // command that takes them; one more is NO [TOOBIG] from the framer.
    let many = |n: usize| "{0+}\r\n".repeat(n);
    imap.send_raw(format!("c1 NOOP {}\r\n", many(MAX_COMMAND_LITERALS)).as_bytes());
    assert_eq!(
        imap.line(),
        "c1 BAD Unexpected characters at end of command\r\n"
    );
    imap.send_raw(format!("c2 NOOP {}\r\n", many(MAX_COMMAND_LITERALS + 1)).as_bytes());
    assert_eq!(
        imap.line(),
        "c2 NO [TOOBIG] Too many literals in one command (at most 1000)\r\n"
    );
    // Literal data: ten full literals and the rest up to the limit, then
    // one byte more.
    let data = |extra: usize| {
        let mut v = Vec::new();
        for _ in 0..10 {
            v.extend_from_slice(format!(" {{{MAX_LITERAL_SIZE}+}}\r\n").as_bytes());
            v.resize(v.len() + MAX_LITERAL_SIZE, b'd');
        }
        let last = MAX_COMMAND_LITERAL_BYTES + extra - 10 * MAX_LITERAL_SIZE;
        v.extend_from_slice(format!(" {{{last}+}}\r\n").as_bytes());
        v.resize(v.len() + last, b'd');
        v.extend_from_slice(b"\r\n");
        v
    };
    imap.send_raw(b"c3 NOOP");
    imap.send_raw(&data(0));
    assert_eq!(
        imap.line(),
        "c3 BAD Unexpected characters at end of command\r\n"
    );
    imap.send_raw(b"c4 NOOP");
    imap.send_raw(&data(1));
    assert_eq!(
        imap.line(),
        "c4 NO [TOOBIG] Too much literal data in one command (at most 1048576 bytes)\r\n"
    );
    assert_eq!(imap.cmd("NOOP"), "a1 OK NOOP completed\r\n");
    drop(imap);
    still_serves(&server, 1);
}

#[test]
fn imap_literal_size_edge_and_one_past() {
    let server = Server::start();
    let mut imap = Imap::connect(server.port(IMAP));
    imap.set_timeout(Duration::from_secs(60));
    // Exactly MAX_LITERAL_SIZE: the continuation comes, the literal is read
    // and the command runs (a user name that long matches nobody).
    imap.send_raw(format!("x1 LOGIN {{{MAX_LITERAL_SIZE}}}\r\n").as_bytes());
    assert_eq!(imap.line(), "+ Ready for literal data\r\n");
    imap.send_raw(&vec![b'u'; MAX_LITERAL_SIZE]);
    imap.send_raw(b" wrong\r\n");
    assert_eq!(
        imap.line(),
        "x1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"
    );
    // One past: NO [TOOBIG] and no continuation (RFC 9051 7.5), so the
    // client sends no data and the next line is the next command.
    imap.send_raw(format!("x2 LOGIN {{{}}}\r\n", MAX_LITERAL_SIZE + 1).as_bytes());
    assert_eq!(
        imap.line(),
        "x2 NO [TOOBIG] Literal of 102401 bytes is too large (at most 102400)\r\n"
    );
    imap.send_raw(b"x3 NOOP\r\n");
    assert_eq!(imap.line(), "x3 OK NOOP completed\r\n");
    // RFC 7888: a non-synchronizing literal comes anyway; it is skipped with
    // the rest of its command.
    imap.send_raw(format!("x4 LOGIN {{{}+}}\r\n", MAX_LITERAL_SIZE + 1).as_bytes());
    imap.send_raw(&vec![b'u'; MAX_LITERAL_SIZE + 1]);
    imap.send_raw(b" {5+}\r\nwrong\r\nx5 NOOP\r\n");
    assert_eq!(
        imap.line(),
        "x4 NO [TOOBIG] Literal of 102401 bytes is too large (at most 102400)\r\n"
    );
    assert_eq!(imap.line(), "x5 OK NOOP completed\r\n");
    // A literal in a good command still works.
    imap.send_raw(
        format!(
            "x6 LOGIN {{{}+}}\r\n{ACCOUNT} {PASSWORD}\r\n",
            ACCOUNT.len()
        )
        .as_bytes(),
    );
    let r = imap.line();
    assert!(r.starts_with("x6 OK [CAPABILITY "), "{r}");
    drop(imap);
    still_serves(&server, 1);
}

#[test]
fn imap_commands_in_the_wrong_state_and_failed_logins() {
    let server = Server::start();
    let mut imap = Imap::connect(server.port(IMAP));
    assert_eq!(
        imap.cmd("FETCH 1 FLAGS"),
        "a1 BAD FETCH requires authentication\r\n"
    );
    assert_eq!(
        imap.cmd("SELECT INBOX"),
        "a2 BAD SELECT requires authentication\r\n"
    );
    assert_eq!(
        imap.cmd(&format!("LOGIN {ACCOUNT} wrongpassword")),
        "a3 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"
    );
    assert_eq!(
        imap.cmd("LOGIN nobody@localhost wrongpassword"),
        "a4 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"
    );
    let r = imap.cmd(&format!("LOGIN {ACCOUNT} {PASSWORD}"));
    assert!(r.starts_with("a5 OK [CAPABILITY "), "{r}");
    assert_eq!(
        imap.cmd("FETCH 1 FLAGS"),
        "a6 BAD FETCH requires a selected mailbox\r\n"
    );
    assert_eq!(
        imap.cmd("EXPUNGE"),
        "a7 BAD EXPUNGE requires a selected mailbox\r\n"
    );
    assert_eq!(
        imap.cmd(&format!("LOGIN {ACCOUNT} {PASSWORD}")),
        "a8 BAD LOGIN is not allowed now\r\n"
    );
    let r = imap.cmd("SELECT INBOX");
    assert!(r.contains("OK [READ-WRITE] SELECT completed"), "{r}");
    assert_eq!(
        imap.cmd("ENABLE CONDSTORE"),
        "a10 BAD ENABLE is not allowed now\r\n"
    );
    assert_eq!(imap.cmd("NOOP"), "a11 OK NOOP completed\r\n");
    drop(imap);

    // MAX_AUTH_FAILURES wrong passwords end the session.
    let mut imap = Imap::connect(server.port(IMAP));
    for i in 1..MAX_AUTH_FAILURES {
        assert_eq!(
            imap.cmd(&format!("LOGIN {ACCOUNT} wrong{i}")),
            format!("a{i} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")
        );
    }
    assert_eq!(
        imap.cmd(&format!("LOGIN {ACCOUNT} wrong")),
        format!(
            "* BYE Too many failed logins\r\na{MAX_AUTH_FAILURES} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"
        )
    );
    assert_eq!(imap.line(), "<closed>");
    still_serves(&server, 1);
}

#[test]
fn imap_too_many_bad_commands_closes_with_bye() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    for i in 1..IMAP_MAX_BAD_COMMANDS {
        let r = imap.cmd("FROBNICATE");
        assert_eq!(
            r,
            format!(
                "a{} BAD Unknown or unsupported command FROBNICATE\r\n",
                i + 1
            )
        );
    }
    // Good commands do not reset the count.
    assert!(imap.cmd("NOOP").ends_with(" OK NOOP completed\r\n"));
    let tag = IMAP_MAX_BAD_COMMANDS + 2;
    assert_eq!(
        imap.cmd("FROBNICATE"),
        format!("a{tag} BAD Unknown or unsupported command FROBNICATE\r\n")
    );
    assert_eq!(imap.line(), "* BYE Too many invalid commands\r\n");
    assert_eq!(imap.line(), "<closed>");
    still_serves(&server, 1);
}

// ---- Slow clients ----

#[test]
fn commands_split_across_reads_stall_nobody() {
    let server = Server::start();
    let pause = || std::thread::sleep(Duration::from_millis(150));
    // Half a command on each protocol, with the rest held back...
    let mut smtp = smtp_ehlo(&server);
    smtp.send_raw(b"NO");
    let mut imap = Imap::login(server.port(IMAP));
    imap.send_raw(b"x1 NO");
    pause();
    // ...does not keep other clients waiting...
    still_serves(&server, 1);
    // ...and is answered once it is whole, even a byte at a time.
    for b in b"OP\r\n" {
        smtp.send_raw(&[*b]);
        imap.send_raw(&[*b]);
        pause();
    }
    assert_eq!(smtp.reply(), "250 2.0.0 OK");
    assert_eq!(imap.line(), "x1 OK NOOP completed\r\n");
    // The same for a message whose end marker comes in pieces.
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<roost@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        smtp.cmd("DATA"),
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    let original = message(2, 5);
    smtp.send_raw(&dot_stuff(&original));
    for piece in [&b"."[..], b"\r", b"\n"] {
        pause();
        smtp.send_raw(piece);
    }
    assert_eq!(smtp.reply(), "250 2.0.0 OK, message delivered");
    assert_eq!(inbox_numbers(&server), vec![1, 2]);
}
