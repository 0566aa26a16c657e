//! SMTP extensions end to end, reply by reply: what EHLO offers, CHUNKING
//! (BDAT) and BINARYMIME (RFC 3030), SMTPUTF8 (RFC 6531), REQUIRETLS
//! (RFC 8689), LIMITS (RFC 9422), and who gets a message: tags after a
//! catchall separator, catchall destinations, aliases and lists.

mod common;
use common::*;

/// localserve's message size limit (`DEFAULT_MAX_MESSAGE_SIZE`).
const MAX_MESSAGE_SIZE: u64 = 64 * 1024 * 1024;

/// What EHLO offers in plain text on the MX port, before its last line
/// (STARTTLS).
const EHLO_COMMON: &str = "250-localhost greets client.example.org\n\
     250-PIPELINING\n\
     250-SIZE 67108864\n\
     250-8BITMIME\n\
     250-ENHANCEDSTATUSCODES\n\
     250-SMTPUTF8\n\
     250-CHUNKING\n\
     250-BINARYMIME\n\
     250-DSN\n\
     250-LIMITS RCPTMAX=100\n";

fn ehlo(server: &Server) -> Smtp {
    let mut smtp = Smtp::connect(server.port(SMTP));
    assert_eq!(
        smtp.cmd("EHLO client.example.org"),
        format!("{EHLO_COMMON}250 STARTTLS")
    );
    smtp
}

/// The bodies of INBOX's messages, in order, without the header lines
/// roost added at delivery.
fn inbox(server: &Server) -> Vec<Vec<u8>> {
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("EXAMINE INBOX");
    assert!(r.contains("OK [READ-ONLY] EXAMINE completed"), "{r}");
    if r.contains("* 0 EXISTS\r\n") {
        return Vec::new();
    }
    imap.fetch_all()
        .into_iter()
        .map(|f| {
            // Return-Path and Received come first; the sender's own header
            // starts at its Subject line in these tests.
            let at = f
                .body
                .windows(9)
                .position(|w| w == b"Subject: ")
                .expect("a Subject line");
            f.body[at..].to_vec()
        })
        .collect()
}

fn envelope(smtp: &mut Smtp, mail: &str) {
    assert_eq!(smtp.cmd(mail), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
        "250 2.1.5 Recipient OK"
    );
}

/// RFC 3030 2: chunks pipelined back to back, each answered once all its
/// octets came; the message is the chunks joined, byte for byte, with no
/// dot-unstuffing (a line of one dot is just text); DATA and BDAT do not
/// mix; BDAT 0 LAST ends a message.
#[test]
fn bdat_chunks_make_the_message_byte_for_byte() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    let one = b"Subject: chunked\r\n\r\nfirst part\r\n.\r\n";
    let two = b"..second part\r\nQUIT\r\n";
    let mut wire = format!("BDAT {}\r\n", one.len()).into_bytes();
    wire.extend_from_slice(one);
    wire.extend_from_slice(format!("BDAT {} LAST\r\n", two.len()).as_bytes());
    wire.extend_from_slice(two);
    smtp.send_raw(&wire);
    assert_eq!(
        smtp.reply(),
        format!("250 2.0.0 {} octets received", one.len())
    );
    assert_eq!(smtp.reply(), "250 2.0.0 OK, message delivered");
    // DATA after BDAT in one transaction is refused (RFC 3030 2).
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    smtp.send_raw(b"BDAT 9\r\nSubject: ");
    assert_eq!(smtp.reply(), "250 2.0.0 9 octets received");
    assert_eq!(
        smtp.cmd("DATA"),
        "503 5.5.1 DATA cannot follow BDAT in one transaction"
    );
    smtp.send_raw(b"BDAT 10\r\nempty end\n");
    assert_eq!(smtp.reply(), "250 2.0.0 10 octets received");
    assert_eq!(smtp.cmd("RSET"), "250 2.0.0 OK");
    // A zero-length last chunk ends the message.
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    let three = b"Subject: zero\r\n\r\nlast\r\n";
    smtp.send_raw(format!("BDAT {}\r\n", three.len()).as_bytes());
    smtp.send_raw(three);
    assert_eq!(
        smtp.reply(),
        format!("250 2.0.0 {} octets received", three.len())
    );
    assert_eq!(smtp.cmd("BDAT 0 LAST"), "250 2.0.0 OK, message delivered");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 localhost closing connection");
    let mut first = one.to_vec();
    first.extend_from_slice(two);
    assert_eq!(inbox(&server), vec![first, three.to_vec()]);
    server.assert_consistent(ACCOUNT);
}

/// A refused chunk is still read to its end, so what it carries is never
/// taken as commands: without MAIL, without recipients, past the size
/// limit. A BDAT line that cannot be read closes the connection, since
/// where its chunk ends is unknown.
#[test]
fn refused_chunks_are_read_and_dropped() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    let evil = b"RSET\r\nQUIT\r\n";
    smtp.send_raw(format!("BDAT {} LAST\r\n", evil.len()).as_bytes());
    smtp.send_raw(evil);
    assert_eq!(smtp.reply(), "503 5.5.1 MAIL first");
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    smtp.send_raw(format!("BDAT {}\r\n", evil.len()).as_bytes());
    smtp.send_raw(evil);
    assert_eq!(smtp.reply(), "554 5.5.1 No valid recipients");
    // The transaction ended with the refused chunk.
    assert_eq!(
        smtp.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
        "503 5.5.1 MAIL first"
    );
    // One octet past the limit, declared by the chunk sizes.
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    smtp.send_raw(format!("BDAT {MAX_MESSAGE_SIZE}\r\n").as_bytes());
    let block = vec![b'x'; 1 << 20];
    for _ in 0..MAX_MESSAGE_SIZE / block.len() as u64 {
        smtp.send_raw(&block);
    }
    assert_eq!(
        smtp.reply(),
        format!("250 2.0.0 {MAX_MESSAGE_SIZE} octets received")
    );
    smtp.send_raw(b"BDAT 1 LAST\r\nQ");
    assert_eq!(smtp.reply(), "552 5.3.4 Message size exceeds fixed maximum");
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    assert_eq!(smtp.cmd("BDAT many"), "501 5.5.4 Syntax: BDAT size [LAST]");
    assert_eq!(
        smtp.reply(),
        "421 4.5.0 localhost Cannot tell where that chunk ends, closing connection"
    );
    assert_eq!(smtp.reply(), "<closed>");
    assert_eq!(inbox(&server), Vec::<Vec<u8>>::new());
}

/// Exactly the size limit in chunks is delivered.
#[test]
fn chunks_up_to_the_size_limit_are_delivered() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    let head = b"Subject: big\r\n\r\n";
    let rest = MAX_MESSAGE_SIZE - head.len() as u64;
    smtp.send_raw(format!("BDAT {}\r\n", head.len()).as_bytes());
    smtp.send_raw(head);
    assert_eq!(
        smtp.reply(),
        format!("250 2.0.0 {} octets received", head.len())
    );
    smtp.send_raw(format!("BDAT {rest} LAST\r\n").as_bytes());
    let line = {
        let mut l = vec![b'y'; 1022];
        l.extend_from_slice(b"\r\n");
        l
    };
    let mut left = rest as usize;
    let block: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    while left >= block.len() {
        smtp.send_raw(&block);
        left -= block.len();
    }
    smtp.send_raw(&block[..left]);
    assert_eq!(smtp.reply(), "250 2.0.0 OK, message delivered");
}

/// Bare line ends in chunks are refused like in DATA (they would reach the
/// next hop inside DATA), a CR split across two chunks from its LF is
/// fine, and BODY=BINARYMIME carries any octets, over BDAT only.
#[test]
fn chunks_refuse_bare_line_ends_unless_binary() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    smtp.send_raw(b"BDAT 23 LAST\r\nSubject: x\r\n\r\nbare\nLF\r\n");
    assert_eq!(
        smtp.reply(),
        "500 5.5.2 Bare CR or LF in message refused (SMTP smuggling); lines must end with CRLF"
    );
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    smtp.send_raw(b"BDAT 17 LAST\r\nSubject: x\r\n\r\nCR\r");
    assert_eq!(
        smtp.reply(),
        "500 5.5.2 Bare CR or LF in message refused (SMTP smuggling); lines must end with CRLF"
    );
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    smtp.send_raw(b"BDAT 20\r\nSubject: split\r\n\r\nx\r");
    assert_eq!(smtp.reply(), "250 2.0.0 20 octets received");
    smtp.send_raw(b"BDAT 1 LAST\r\n\n");
    assert_eq!(smtp.reply(), "250 2.0.0 OK, message delivered");

    envelope(&mut smtp, "MAIL FROM:<a@example.org> BODY=BINARYMIME");
    assert_eq!(
        smtp.cmd("DATA"),
        "503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA"
    );
    assert_eq!(smtp.cmd("RSET"), "250 2.0.0 OK");
    envelope(&mut smtp, "MAIL FROM:<a@example.org> BODY=BINARYMIME");
    let binary = b"Subject: binary\r\nContent-Transfer-Encoding: binary\r\n\r\n\x01\r\x02\n\xff";
    smtp.send_raw(format!("BDAT {} LAST\r\n", binary.len()).as_bytes());
    smtp.send_raw(binary);
    assert_eq!(smtp.reply(), "250 2.0.0 OK, message delivered");
    assert_eq!(
        inbox(&server),
        vec![b"Subject: split\r\n\r\nx\r\n".to_vec(), binary.to_vec()]
    );
}

/// RFC 6531 3.5: SMTPUTF8 is needed only where an address is not ASCII.
#[test]
fn smtputf8_is_needed_for_non_ascii_addresses_only() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    assert_eq!(
        smtp.cmd("MAIL FROM:<jörg@example.org>"),
        "553 5.6.7 Non-ASCII sender address needs the SMTPUTF8 parameter"
    );
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<jörg@localhost>"),
        "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8 in MAIL"
    );
    assert_eq!(smtp.cmd("RSET"), "250 2.0.0 OK");
    assert_eq!(
        smtp.cmd("MAIL FROM:<jörg@exämple.org> SMTPUTF8"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<jörg@localhost>"),
        "550 5.1.1 No such user here: jörg@localhost"
    );
    assert_eq!(
        smtp.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
        "250 2.1.5 Recipient OK"
    );
    let msg = "Subject: grüße\r\nFrom: jörg@exämple.org\r\n\r\nhallo\r\n";
    assert_eq!(
        data(&mut smtp, msg.as_bytes()),
        "250 2.0.0 OK, message delivered"
    );
    // An ASCII message needs no SMTPUTF8, and an unknown parameter is
    // still refused.
    assert_eq!(
        smtp.cmd("MAIL FROM:<a@example.org> FROB=1"),
        "555 5.5.4 Parameter FROB is not supported"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<a@example.org> REQUIRETLS"),
        "555 5.5.4 REQUIRETLS is offered over TLS only"
    );
    assert_eq!(inbox(&server), vec![msg.as_bytes().to_vec()]);
}

/// roost's `MAX_RECIPIENTS`, offered as RCPTMAX.
const RCPTMAX: usize = 100;
const BOB: &str = "bob@localhost";
const BOB_PASSWORD: &str = "bobsecret1";

/// The Subject lines of an account's INBOX, in order.
fn subjects(server: &Server, user: &str, password: &str) -> Vec<String> {
    subjects_of(server, user, password, "INBOX")
}

/// The Subject lines of one of roost@localhost's mailboxes, in order.
fn subjects_in(server: &Server, mailbox: &str) -> Vec<String> {
    subjects_of(server, ACCOUNT, PASSWORD, mailbox)
}

fn subjects_of(server: &Server, user: &str, password: &str, mailbox: &str) -> Vec<String> {
    let mut imap = Imap::connect(server.port(IMAP));
    assert_eq!(
        imap.cmd(&format!("LOGIN {user} {password}")),
        format!("a1 OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n")
    );
    let r = imap.cmd(&format!("EXAMINE {mailbox}"));
    assert!(
        r.ends_with("a2 OK [READ-ONLY] EXAMINE completed\r\n"),
        "{r}"
    );
    if r.contains("* 0 EXISTS\r\n") {
        return Vec::new();
    }
    imap.fetch_all()
        .iter()
        .map(|f| {
            let text = String::from_utf8_lossy(&f.body).into_owned();
            let line = text
                .lines()
                .find(|l| l.starts_with("Subject: "))
                .expect("a Subject line");
            line["Subject: ".len()..].to_string()
        })
        .collect()
}

/// DATA, then `message` (lines as given, CRLF ends, no end marker) and
/// the end marker; the reply to the end marker.
fn data(smtp: &mut Smtp, message: &[u8]) -> String {
    assert_eq!(
        smtp.cmd("DATA"),
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    smtp.send_raw(message);
    smtp.cmd(".")
}

/// A submission session logged in with PLAIN (`plain`: the base64 of
/// "\0user\0password").
fn submission(server: &Server, plain: &str) -> Smtp {
    let mut smtp = Smtp::connect(server.port(SUBMISSION));
    assert_eq!(
        mask_release(&smtp.cmd("EHLO client.example.org")),
        format!(
            "{EHLO_COMMON}250-FUTURERELEASE 2592000 <date>\n\
             250-AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN\n250 STARTTLS"
        )
    );
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {plain}")),
        "235 2.7.0 Authentication successful"
    );
    smtp
}

/// PLAIN for roost@localhost: "\0roost@localhost\0roostroost".
const ROOST_PLAIN: &str = "AHJvb3N0QGxvY2FsaG9zdAByb29zdHJvb3N0";
/// PLAIN for bob@localhost: "\0bob@localhost\0bobsecret1".
const BOB_PLAIN: &str = "AGJvYkBsb2NhbGhvc3QAYm9ic2VjcmV0MQ==";

fn send(smtp: &mut Smtp, subject: &str) {
    assert_eq!(
        data(
            smtp,
            format!("Subject: {subject}\r\n\r\nbody\r\n").as_bytes()
        ),
        "250 2.0.0 OK, message delivered"
    );
}

/// Addresses match whole first (local parts without case, in NFC); then,
/// with a catchall separator set, up to the first separator character;
/// then the domain's catchall destination. An alias reaches its members,
/// once each even when also named directly, never the member who sent
/// it; a members-only alias refuses everyone else.
#[test]
fn who_gets_the_message() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<roost+news@localhost>"),
        "550 5.1.1 No such user here: roost+news@localhost"
    );
    server.admin_ok(&["domain", "set", "localhost", "--catchall-separator", "+"]);
    for rcpt in [
        "roost+news@localhost",
        "ROOST@LocalHost",
        "Roost+@localhost",
    ] {
        assert_eq!(
            smtp.cmd(&format!("RCPT TO:<{rcpt}>")),
            "250 2.1.5 Recipient OK",
            "{rcpt}"
        );
    }
    assert_eq!(
        smtp.cmd("RCPT TO:<roost-news@localhost>"),
        "550 5.1.1 No such user here: roost-news@localhost"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<+roost@localhost>"),
        "550 5.1.1 No such user here: +roost@localhost"
    );
    // Three addresses of one account: one copy.
    send(&mut smtp, "tags");

    server.admin_ok(&["account", "address-add", ACCOUNT, "@localhost"]);
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<anyone@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    send(&mut smtp, "catchall");

    server.admin_ok(&["account", "add", BOB, "--password", BOB_PASSWORD]);
    server.admin_ok(&["alias", "add", "team@localhost", ACCOUNT, BOB]);
    server.admin_ok(&[
        "alias",
        "add",
        "all@localhost",
        ACCOUNT,
        BOB,
        "--post-public",
    ]);
    // The alias matches whole, before the catchall; only members may
    // write to it.
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<team@localhost>"),
        "550 5.7.1 Only members may send to team@localhost, from their account"
    );
    assert_eq!(smtp.cmd("RSET"), "250 2.0.0 OK");
    // A member's address as envelope sender proves nothing.
    assert_eq!(
        smtp.cmd(&format!("MAIL FROM:<{BOB}>")),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<team@localhost>"),
        "550 5.7.1 Only members may send to team@localhost, from their account"
    );
    assert_eq!(smtp.cmd("RSET"), "250 2.0.0 OK");
    // Bob, logged in, writes to the team and to roost directly: roost gets
    // it once, Bob not at all.
    let mut sub = submission(&server, BOB_PLAIN);
    assert_eq!(
        sub.cmd(&format!("MAIL FROM:<{BOB}>")),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        sub.cmd("RCPT TO:<team+x@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        sub.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        data(
            &mut sub,
            format!("From: {BOB}\r\nSubject: from bob to the team\r\n\r\nhi\r\n").as_bytes()
        ),
        "250 2.0.0 OK, message delivered"
    );
    // Anyone may write to the public list; each member gets it once.
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<all@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        smtp.cmd(&format!("RCPT TO:<{BOB}>")),
        "250 2.1.5 Recipient OK"
    );
    send(&mut smtp, "to all");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 localhost closing connection");

    assert_eq!(
        subjects(&server, ACCOUNT, PASSWORD),
        ["tags", "catchall", "from bob to the team", "to all"]
    );
    assert_eq!(subjects(&server, BOB, BOB_PASSWORD), ["to all"]);
    let aliases = server.admin_ok(&["alias", "list"]);
    assert!(aliases.contains("\"team@localhost\""), "{aliases}");
    server.admin_ok(&["alias", "rm", "team@localhost"]);
    // Gone: the catchall takes its mail now.
    let mut smtp = ehlo(&server);
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<team@localhost>"),
        "250 2.1.5 Recipient OK"
    );
}

/// RFC 9422 RCPTMAX: RCPTMAX recipients are taken, the next gets 452 so
/// the client sends the rest in another transaction.
#[test]
fn rcptmax_recipients_then_452() {
    let server = Server::start();
    server.admin_ok(&["domain", "set", "localhost", "--catchall-separator", "+"]);
    let mut smtp = ehlo(&server);
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    for i in 1..=RCPTMAX {
        assert_eq!(
            smtp.cmd(&format!("RCPT TO:<roost+{i}@localhost>")),
            "250 2.1.5 Recipient OK",
            "#{i}"
        );
    }
    assert_eq!(
        smtp.cmd("RCPT TO:<roost+101@localhost>"),
        "452 4.5.3 Too many recipients, at most 100 per message"
    );
    send(&mut smtp, "hundred");
    assert_eq!(subjects(&server, ACCOUNT, PASSWORD), ["hundred"]);
}

/// Submission: the From header field names the logged-in account's own
/// address (a tagged form too), or an alias that lets its members send as
/// it; never an address owned through a catchall; exactly one From field
/// with one address.
#[test]
fn submission_from_must_be_the_senders_own() {
    let server = Server::start();
    server.admin_ok(&["domain", "set", "localhost", "--catchall-separator", "+"]);
    server.admin_ok(&["account", "add", BOB, "--password", BOB_PASSWORD]);
    server.admin_ok(&["account", "address-add", ACCOUNT, "@localhost"]);
    server.admin_ok(&[
        "alias",
        "add",
        "sales@localhost",
        ACCOUNT,
        "--allow-msg-from",
    ]);
    server.admin_ok(&["alias", "add", "staff@localhost", ACCOUNT, BOB]);
    let mut smtp = submission(&server, ROOST_PLAIN);
    let not_yours =
        |a: &str| format!("550 5.7.1 From address {a} is not one of {ACCOUNT}'s addresses");
    let cases = [
        (
            "From: Roost <roost@localhost>\r\n".to_string(),
            "250 2.0.0 OK, message delivered".to_string(),
        ),
        (
            "From: roost+lists@localhost\r\n".into(),
            "250 2.0.0 OK, message delivered".into(),
        ),
        (
            "From: sales@localhost\r\n".into(),
            "250 2.0.0 OK, message delivered".into(),
        ),
        (
            "From: staff@localhost\r\n".into(),
            not_yours("staff@localhost"),
        ),
        ("From: bob@localhost\r\n".into(), not_yours("bob@localhost")),
        (
            "From: anyone@localhost\r\n".into(),
            not_yours("anyone@localhost"),
        ),
        (
            String::new(),
            "550 5.6.0 A message needs exactly one From header field, this one has 0".into(),
        ),
        (
            "From: roost@localhost\r\nFrom: roost@localhost\r\n".into(),
            "550 5.6.0 A message needs exactly one From header field, this one has 2".into(),
        ),
        (
            "From: roost@localhost, bob@localhost\r\n".into(),
            "550 5.7.1 The From header field must name exactly one address, yours".into(),
        ),
    ];
    for (from, want) in cases {
        assert_eq!(
            smtp.cmd(&format!("MAIL FROM:<{ACCOUNT}>")),
            "250 2.1.0 Sender OK"
        );
        assert_eq!(
            smtp.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
            "250 2.1.5 Recipient OK"
        );
        assert_eq!(
            data(
                &mut smtp,
                format!("{from}Subject: from check\r\n\r\nbody\r\n").as_bytes()
            ),
            want,
            "{from:?}"
        );
    }
    // The three accepted: own address, tagged, and the alias that allows it.
    assert_eq!(
        subjects(&server, ACCOUNT, PASSWORD),
        ["from check", "from check", "from check"]
    );
}

/// Delivery rules, tried in order: by a header field's text (without
/// case) or by the envelope sender (address or @domain); a rule whose
/// mailbox does not exist delivers to INBOX; the first match wins.
#[test]
fn delivery_rules_choose_the_mailbox() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("CREATE Lists"),
        "a2 OK [MAILBOXID (F7)] CREATE completed\r\n"
    );
    let add = |args: &[&str]| {
        let mut all = vec!["account", "rule-add", ACCOUNT];
        all.extend_from_slice(args);
        server.admin_ok(&all);
    };
    add(&[
        "--mailbox",
        "Lists",
        "--header",
        "List-Id",
        "--contains",
        "DEV.example.org",
    ]);
    add(&["--mailbox", "Bank", "--sender", "@bank.example"]);
    add(&["--mailbox", "Lists", "--sender", "news@shop.example"]);
    let list = server.admin_ok(&["account", "rule-list", ACCOUNT]);
    assert!(list.contains("\"@bank.example\""), "{list}");
    let mut smtp = ehlo(&server);
    for (from, header, subject) in [
        (
            "a@example.org",
            "List-Id: Developers <dev.example.org>\r\n",
            "list",
        ),
        (
            "a@example.org",
            "List-Id: <other.example.org>\r\n",
            "other list",
        ),
        ("alerts@bank.example", "", "bank"),
        ("News@Shop.example", "", "shop"),
        (
            "news@bank.example",
            "List-Id: <dev.example.org>\r\n",
            "first wins",
        ),
    ] {
        assert_eq!(
            smtp.cmd(&format!("MAIL FROM:<{from}>")),
            "250 2.1.0 Sender OK"
        );
        assert_eq!(
            smtp.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
            "250 2.1.5 Recipient OK"
        );
        assert_eq!(
            data(
                &mut smtp,
                format!("{header}Subject: {subject}\r\n\r\nbody\r\n").as_bytes()
            ),
            "250 2.0.0 OK, message delivered"
        );
    }
    assert_eq!(
        subjects_in(&server, "Lists"),
        ["list", "shop", "first wins"]
    );
    assert_eq!(subjects_in(&server, "INBOX"), ["other list", "bank"]);
    server.admin_ok(&["account", "rule-rm", ACCOUNT, "1"]);
    let list = server.admin_ok(&["account", "rule-list", ACCOUNT]);
    assert!(!list.contains("dev.example.org"), "{list}");
}

/// MAIL parameters need EHLO; the chunks a client pipelined after a
/// refused one are refused without counting as errors (RFC 3030 2); a
/// binary body still needs a header of CRLF lines.
#[test]
fn helo_parameters_pipelined_refusals_and_binary_headers() {
    let server = Server::start();
    let mut smtp = Smtp::connect(server.port(SMTP));
    assert_eq!(
        smtp.cmd("HELO client.example.org"),
        "250 localhost greets client.example.org"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<a@example.org> SMTPUTF8"),
        "555 5.5.4 MAIL parameters need EHLO, not HELO"
    );
    let mut smtp = ehlo(&server);
    let mut wire = Vec::new();
    for _ in 0..30 {
        wire.extend_from_slice(b"BDAT 6\r\nRSET\r\n");
    }
    smtp.send_raw(&wire);
    for i in 0..30 {
        assert_eq!(smtp.reply(), "503 5.5.1 MAIL first", "#{i}");
    }
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    envelope(&mut smtp, "MAIL FROM:<a@example.org> BODY=BINARYMIME");
    let forged = b"Subject: x\rFrom: ceo@example.org\r\n\r\nbinary\r\x00";
    smtp.send_raw(format!("BDAT {} LAST\r\n", forged.len()).as_bytes());
    smtp.send_raw(forged);
    assert_eq!(
        smtp.reply(),
        "500 5.5.2 Bare CR or LF in message refused (SMTP smuggling); lines must end with CRLF"
    );
    assert_eq!(inbox(&server), Vec::<Vec<u8>>::new());
}

/// The From check sees the whole header section or refuses the message:
/// a second From hidden past the captured start, or past the fields read,
/// does not get through.
#[test]
fn submission_headers_too_large_to_check_are_refused() {
    let server = Server::start();
    let mut smtp = submission(&server, ROOST_PLAIN);
    let padding_bytes = format!("X-Pad: {}\r\n", "p".repeat(70_000));
    let padding_fields = "X: a\r\n".repeat(2000);
    for padding in [padding_bytes, padding_fields] {
        assert_eq!(
            smtp.cmd(&format!("MAIL FROM:<{ACCOUNT}>")),
            "250 2.1.0 Sender OK"
        );
        assert_eq!(
            smtp.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
            "250 2.1.5 Recipient OK"
        );
        assert_eq!(
            data(
                &mut smtp,
                format!("From: {ACCOUNT}\r\n{padding}From: ceo@example.org\r\n\r\nbody\r\n")
                    .as_bytes(),
            ),
            "554 5.6.0 Header section too large to check: at most 65536 bytes and 1999 fields"
        );
    }
    // One field under the limit is checked as usual.
    let padding = "X: a\r\n".repeat(1998);
    assert_eq!(
        smtp.cmd(&format!("MAIL FROM:<{ACCOUNT}>")),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        data(
            &mut smtp,
            format!("From: {ACCOUNT}\r\n{padding}\r\nbody\r\n").as_bytes()
        ),
        "250 2.0.0 OK, message delivered"
    );
}

/// Addresses change through the running account: they survive its later
/// writes, go when removed, and take their alias memberships with them.
#[test]
fn addresses_change_through_the_running_account() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    send(&mut smtp, "before");
    let out = server.admin_ok(&[
        "account",
        "address-add",
        "ROOST@localhost",
        "Extra@LocalHost",
    ]);
    assert!(out.contains("\"Extra@localhost\""), "{out}");
    server.admin_ok(&["alias", "add", "team@localhost", ACCOUNT, "extra@localhost"]);
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<extra@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    send(&mut smtp, "to extra");
    // The account's own writes since then kept the address.
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<EXTRA@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    send(&mut smtp, "to extra again");
    let out: serde_json::Value = serde_json::from_str(&server.admin_ok(&[
        "account",
        "address-rm",
        ACCOUNT,
        "extra@localhost",
    ]))
    .unwrap();
    assert_eq!(out["addresses"], serde_json::json!([]));
    assert_eq!(smtp.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Sender OK");
    assert_eq!(
        smtp.cmd("RCPT TO:<extra@localhost>"),
        "550 5.1.1 No such user here: extra@localhost"
    );
    let aliases: serde_json::Value =
        serde_json::from_str(&server.admin_ok(&["alias", "list"])).unwrap();
    assert_eq!(aliases[0]["members"], serde_json::json!([ACCOUNT]));
    assert_eq!(
        subjects_in(&server, "INBOX"),
        ["before", "to extra", "to extra again"]
    );
    server.assert_consistent(ACCOUNT);
}

/// An intro mailbox takes mail from authors the account does not know:
/// ones it has not written to, nor had mail from filed elsewhere (by a
/// rule, for one). Rules come first.
#[test]
fn first_time_senders_go_to_the_intro_mailbox() {
    let server = Server::start();
    server.admin_ok(&["account", "add", BOB, "--password", BOB_PASSWORD]);
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("CREATE Intro"),
        "a2 OK [MAILBOXID (F7)] CREATE completed\r\n"
    );
    assert_eq!(
        imap.cmd("CREATE Shop"),
        "a3 OK [MAILBOXID (F8)] CREATE completed\r\n"
    );
    server.admin_ok(&["account", "intro", ACCOUNT, "Intro"]);
    server.admin_ok(&[
        "account",
        "rule-add",
        ACCOUNT,
        "--mailbox",
        "Shop",
        "--sender",
        "@shop.example",
    ]);
    let mut mx = ehlo(&server);
    let mut deliver = |from: &str, subject: &str| {
        assert_eq!(
            mx.cmd(&format!("MAIL FROM:<{from}>")),
            "250 2.1.0 Sender OK"
        );
        assert_eq!(
            mx.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
            "250 2.1.5 Recipient OK"
        );
        assert_eq!(
            data(
                &mut mx,
                format!("From: {from}\r\nSubject: {subject}\r\n\r\nhi\r\n").as_bytes()
            ),
            "250 2.0.0 OK, message delivered"
        );
    };
    deliver("stranger@example.org", "first");
    deliver("Stranger@example.org", "still a stranger");
    deliver("news@shop.example", "by a rule");
    // Roost writes to Bob, so Bob is known to roost from now on.
    let mut sub = submission(&server, ROOST_PLAIN);
    assert_eq!(
        sub.cmd(&format!("MAIL FROM:<{ACCOUNT}>")),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        sub.cmd(&format!("RCPT TO:<{BOB}>")),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        data(
            &mut sub,
            format!("From: {ACCOUNT}\r\nSubject: hello bob\r\n\r\nhi\r\n").as_bytes()
        ),
        "250 2.0.0 OK, message delivered"
    );
    deliver(BOB, "from bob");
    deliver("news@shop.example", "known now, still by the rule");
    assert_eq!(subjects_in(&server, "Intro"), ["first", "still a stranger"]);
    assert_eq!(
        subjects_in(&server, "Shop"),
        ["by a rule", "known now, still by the rule"]
    );
    assert_eq!(subjects_in(&server, "INBOX"), ["from bob"]);
    // Turned off, everyone reaches INBOX.
    server.admin_ok(&["account", "intro", ACCOUNT]);
    deliver("another@example.org", "no intro");
    assert_eq!(subjects_in(&server, "INBOX"), ["from bob", "no intro"]);
}

/// RFC 8601 5: results in this server's name cannot be renamed in the
/// sender's bytes, so a message carrying them is refused.
#[test]
fn authentication_results_in_our_name_are_refused() {
    let server = Server::start();
    let mut smtp = ehlo(&server);
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    assert_eq!(data(&mut smtp, b"Authentication-Results: LocalHost; dkim=pass header.d=bank.example\r\nSubject: x\r\n\r\nhi\r\n"), "550 5.7.1 Authentication-Results in the name of localhost refused (RFC 8601 5)");
    envelope(&mut smtp, "MAIL FROM:<a@example.org>");
    assert_eq!(
        data(
            &mut smtp,
            b"Authentication-Results: mx.example.org; dkim=pass\r\nSubject: y\r\n\r\nhi\r\n"
        ),
        "250 2.0.0 OK, message delivered"
    );
}

/// Submission: X-Roost-Extra-<key> fields are taken out of the message
/// and kept as its extra data (key in lower case, value unfolded, a later
/// field of a key wins), over DATA, over BDAT with the header cut across
/// chunks, and in a message that is all header. At most MAX_EXTRA_FIELDS
/// (20) fields and MAX_EXTRA_BYTES (4096) bytes; a field without a key is
/// refused.
#[test]
fn extra_fields_become_the_messages_extra_data() {
    let server = Server::start();
    let mut smtp = submission(&server, ROOST_PLAIN);
    let mail = format!("MAIL FROM:<{ACCOUNT}>");
    let head = format!(
        "From: {ACCOUNT}\r\nX-Roost-Extra-Order: 42\r\nSubject: with extra\r\n\
         x-roost-extra-customer-ID: abc\r\n def\r\nX-Roost-Extra-Order: 43\r\n"
    );
    envelope(&mut smtp, &mail);
    assert_eq!(
        data(&mut smtp, format!("{head}\r\nover DATA\r\n").as_bytes()),
        "250 2.0.0 OK, message delivered"
    );
    envelope(&mut smtp, &mail);
    let whole = format!("{head}\r\nover BDAT\r\n");
    let (one, two) = whole.split_at(30);
    smtp.send_raw(format!("BDAT {}\r\n{one}", one.len()).as_bytes());
    assert_eq!(
        smtp.reply(),
        format!("250 2.0.0 {} octets received", one.len())
    );
    smtp.send_raw(format!("BDAT {} LAST\r\n{two}", two.len()).as_bytes());
    assert_eq!(smtp.reply(), "250 2.0.0 OK, message delivered");
    envelope(&mut smtp, &mail);
    assert_eq!(
        data(&mut smtp, head.as_bytes()),
        "250 2.0.0 OK, message delivered"
    );

    let mut imap = Imap::login(server.port(IMAP));
    imap.cmd("EXAMINE INBOX");
    let stored: Vec<String> = imap
        .fetch_all()
        .into_iter()
        .map(|f| {
            let text = String::from_utf8_lossy(&f.body).into_owned();
            text[text.find("From: ").unwrap()..].to_string()
        })
        .collect();
    let clean = format!("From: {ACCOUNT}\r\nSubject: with extra\r\n");
    assert_eq!(
        stored,
        [
            format!("{clean}\r\nover DATA\r\n"),
            format!("{clean}\r\nover BDAT\r\n"),
            clean.clone(),
        ]
    );
    for uid in ["1", "2", "3"] {
        let info: serde_json::Value =
            serde_json::from_str(&server.admin_ok(&["message", ACCOUNT, "INBOX", uid])).unwrap();
        assert_eq!(
            info["extra"],
            serde_json::json!([["customer-id", "abc def"], ["order", "43"]]),
            "uid {uid}"
        );
    }

    let send_extra = |smtp: &mut Smtp, fields: &str| {
        envelope(smtp, &mail);
        data(
            smtp,
            format!("From: {ACCOUNT}\r\n{fields}Subject: limits\r\n\r\nbody\r\n").as_bytes(),
        )
    };
    let many = |n: usize| -> String {
        (0..n)
            .map(|i| format!("X-Roost-Extra-K{i}: v\r\n"))
            .collect()
    };
    let too_much = "552 5.3.4 Too much extra data: at most 20 X-Roost-Extra fields and 4096 bytes";
    assert_eq!(
        send_extra(&mut smtp, &many(20)),
        "250 2.0.0 OK, message delivered"
    );
    assert_eq!(send_extra(&mut smtp, &many(21)), too_much);
    // Key "k" and a value: 4096 bytes in all, then one more.
    let big = |n: usize| format!("X-Roost-Extra-K: {}\r\n", "v".repeat(n));
    assert_eq!(
        send_extra(&mut smtp, &big(4095)),
        "250 2.0.0 OK, message delivered"
    );
    assert_eq!(send_extra(&mut smtp, &big(4096)), too_much);
    assert_eq!(
        send_extra(&mut smtp, "X-Roost-Extra-: v\r\n"),
        "550 5.6.0 X-Roost-Extra field without a key"
    );
}

/// A report-only domain: roost takes its reports at the addresses its
/// accounts have there, on the MX port and from users alike; its other
/// addresses are hosted elsewhere, so submitted mail for them is relayed
/// (for now, until the outgoing queue, a temporary 451) instead of being
/// refused, while the MX port still knows no such user.
#[test]
fn report_only_domains_take_reports_and_relay_the_rest() {
    let server = Server::start();
    server.admin_ok(&["domain", "add", "reports.example"]);
    server.admin_ok(&[
        "account",
        "add",
        "dmarc@reports.example",
        "--password",
        "dmarcsecret1",
    ]);
    let rcpt = |smtp: &mut Smtp, to: &str| smtp.cmd(&format!("RCPT TO:<{to}>"));
    let mut sub = submission(&server, ROOST_PLAIN);
    assert_eq!(
        sub.cmd(&format!("MAIL FROM:<{ACCOUNT}>")),
        "250 2.1.0 Sender OK"
    );
    // Not report-only yet: an unknown local address.
    assert_eq!(
        rcpt(&mut sub, "someone@reports.example"),
        "550 5.1.1 No such user here: someone@reports.example"
    );
    assert_eq!(
        server.admin_ok(&["domain", "set", "reports.example", "--report-only", "true"]),
        "{\n  \"catchall_separator\": \"\",\n  \"localpart_case_sensitive\": false,\n  \"name\": \"reports.example\",\n  \"report_only\": true\n}\n"
    );
    // Now it is someone else's to deliver: queued (localserve keeps it on
    // this machine: the copy comes back to the sender, see below).
    assert_eq!(
        rcpt(&mut sub, "someone@reports.example"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        rcpt(&mut sub, "dmarc@reports.example"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        data(
            &mut sub,
            format!("From: {ACCOUNT}\r\nSubject: to the report box\r\n\r\nhi\r\n").as_bytes()
        ),
        "250 2.0.0 OK, queued for delivery"
    );
    let mut mx = ehlo(&server);
    assert_eq!(
        mx.cmd("MAIL FROM:<reporter@example.net>"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        rcpt(&mut mx, "someone@reports.example"),
        "550 5.1.1 No such user here: someone@reports.example"
    );
    assert_eq!(
        rcpt(&mut mx, "dmarc@reports.example"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        data(
            &mut mx,
            b"Subject: Report domain: example.org\r\n\r\nreport\r\n"
        ),
        "250 2.0.0 OK, message delivered"
    );
    assert_eq!(
        subjects(&server, "dmarc@reports.example", "dmarcsecret1"),
        ["to the report box", "Report domain: example.org"]
    );
    eventually("localserve's copy of the relayed message", || {
        (subjects(&server, ACCOUNT, PASSWORD) == ["to the report box"]).then_some(())
    });
}

/// localserve's queue: nothing leaves the machine. A remote recipient's
/// copy comes back to the sending account; local parts that name an
/// outcome get it: `permerror` a DSN, a 4xx code a retry later (the
/// queue lists it, also after a kill -9; `queue drop` removes it).
#[test]
fn localserve_keeps_queued_mail_on_the_machine() {
    let server = Server::start();
    let mut sub = submission(&server, ROOST_PLAIN);
    let mut send = |to: &str, subject: &str| {
        assert_eq!(
            sub.cmd(&format!("MAIL FROM:<{ACCOUNT}>")),
            "250 2.1.0 Sender OK"
        );
        assert_eq!(
            sub.cmd(&format!("RCPT TO:<{to}>")),
            "250 2.1.5 Recipient OK"
        );
        assert_eq!(
            data(
                &mut sub,
                format!("From: {ACCOUNT}\r\nSubject: {subject}\r\n\r\nhi\r\n").as_bytes()
            ),
            "250 2.0.0 OK, queued for delivery"
        );
    };
    send("someone@elsewhere.example", "copy");
    eventually("the copy", || {
        (subjects(&server, ACCOUNT, PASSWORD) == ["copy"]).then_some(())
    });
    send("permerror@elsewhere.example", "bounced");
    eventually("the DSN", || {
        (subjects(&server, ACCOUNT, PASSWORD) == ["copy", "Undelivered mail returned to sender"])
            .then_some(())
    });
    send("451@elsewhere.example", "deferred");
    let listed = eventually("a deferred message", || {
        let l = server.admin_ok(&["queue", "list"]);
        l.contains("attempts=1").then_some(l)
    });
    let id = listed.split(' ').next().unwrap();
    assert!(
        listed.starts_with(&format!(
            "{id} elsewhere.example from=<{ACCOUNT}> to=451@elsewhere.example attempts=1 next="
        )),
        "{listed}"
    );
    assert!(listed.ends_with(" last=\"451 simulated\"\n"), "{listed}");
    // A kill -9 loses nothing queued: the record and its file are on
    // disk before the 250. (An attempt's outcome is written without a
    // flush of its own, so the attempt may run again after the restart.)
    let mut server = server;
    server.kill9();
    server.spawn();
    let again = eventually("the message after the restart", || {
        let l = server.admin_ok(&["queue", "list"]);
        l.contains(" attempts=1 ").then_some(l)
    });
    assert!(
        again.starts_with(&format!(
            "{id} elsewhere.example from=<{ACCOUNT}> to=451@elsewhere.example attempts=1 next="
        )),
        "{again}"
    );
    let id = id.to_string();
    let id = id.as_str();
    // Held: listed as such, never tried; released: due again.
    assert_eq!(
        server.admin_ok(&["queue", "hold", id]),
        "{\n  \"hold\": true,\n  \"messages\": 1\n}\n"
    );
    assert!(server.admin_ok(&["queue", "list"]).contains(" held last="));
    server.admin_ok(&["queue", "release", id]);
    assert!(!server.admin_ok(&["queue", "list"]).contains(" held"));
    // Released, it is tried again; one a worker has is not dropped.
    let dropped = eventually("the drop", || {
        let out = server.admin_ok(&["queue", "drop", id]);
        (!out.contains("\"in_flight\": 1")).then_some(out)
    });
    assert_eq!(
        dropped,
        "{\n  \"dropped\": true,\n  \"in_flight\": 0,\n  \"messages\": 1\n}\n"
    );
    assert_eq!(server.admin_ok(&["queue", "list"]), "");
}

/// The admin steers the queue by choosing messages (ids, account,
/// sender and destination domain, held or not): a hold rule holds what
/// it matches as it is queued; release, schedule, transport, fail (a DSN
/// to the sender) and drop work on the chosen set, and an empty choice
/// needs `--all`. Messages that left the queue are kept with every
/// attempt and what became of each recipient.
#[test]
fn the_admin_steers_chosen_queued_messages() {
    let server = Server::start();
    let mut sub = submission(&server, ROOST_PLAIN);
    let mut send = |to: &str, subject: &str| {
        let m = format!("From: {ACCOUNT}\r\nSubject: {subject}\r\n\r\nhi\r\n");
        assert_eq!(
            sub.send_mail(ACCOUNT, &[to], m.as_bytes()),
            "250 2.0.0 OK, queued for delivery"
        );
    };
    let rule = server.admin_ok(&["queue", "holdrule", "add", "--to-domain", "Held.example"]);
    let rule: serde_json::Value = serde_json::from_str(&rule).unwrap();
    let rule_id = rule["rule"]["id"].as_u64().unwrap().to_string();
    assert_eq!(
        rule,
        serde_json::json!({"held": 0, "rule": {"id": rule["rule"]["id"], "account": null,
            "sender_domain": null, "recipient_domain": "held.example"}})
    );
    send("someone@held.example", "held back");
    send("451@later.example", "deferred");
    let listed = eventually("the deferred message's first attempt", || {
        let l = server.admin_ok(&["queue", "list", "--to-domain", "later.example"]);
        l.contains("attempts=1").then_some(l)
    });
    let deferred = listed.split(' ').next().unwrap().to_string();
    let held = server.admin_ok(&["queue", "list", "--held"]);
    let held_id = held.split(' ').next().unwrap().to_string();
    assert!(
        held.starts_with(&format!(
            "{held_id} held.example from=<{ACCOUNT}> to=someone@held.example attempts=0 next="
        )) && held.ends_with(" held last=\"\"\n"),
        "{held}"
    );
    assert_eq!(
        server.admin_ok(&["queue", "list", "--account", ACCOUNT, "--not-held"]),
        listed
    );
    assert_eq!(
        server.admin_ok(&["queue", "list", "--account", "nobody@localhost"]),
        ""
    );
    // Nothing chosen: refused, unless --all.
    let out = server.admin(&["queue", "drop"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "roost: no messages chosen: give ids or options, or --all for every message\n"
    );
    let out = server.admin(&["queue", "hold", "--to-domain", "none.example"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "roost: no queued message matches\n"
    );
    let out = server.admin(&["queue", "transport", &deferred, "--name", "elsewhere"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "roost: no transport \"elsewhere\"; configured: direct\n"
    );
    assert_eq!(
        server.admin_ok(&["queue", "transport", &deferred, "--name", "direct"]),
        "{\n  \"messages\": 1,\n  \"transport\": \"direct\"\n}\n"
    );
    assert!(server
        .admin_ok(&["queue", "list", &deferred])
        .contains(" transport=direct last="));
    // Scheduled an hour on; all of them held, then released.
    let out = server.admin(&["queue", "schedule", &deferred, "--in", "367d"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "roost: a message is scheduled 0 to 31622400 seconds (a year) ahead\n"
    );
    let scheduled = server.admin_ok(&["queue", "schedule", &deferred, "--in", "366d"]);
    assert!(
        scheduled.starts_with("{\n  \"messages\": 1,\n  \"next_attempt\": \"2027-"),
        "{scheduled}"
    );
    let scheduled = server.admin_ok(&["queue", "schedule", &deferred, "--in", "1h"]);
    assert!(
        scheduled.starts_with("{\n  \"messages\": 1,\n  \"next_attempt\": \""),
        "{scheduled}"
    );
    assert_eq!(
        server.admin_ok(&["queue", "hold", "--all"]),
        "{\n  \"hold\": true,\n  \"messages\": 2\n}\n"
    );
    assert_eq!(
        server.admin_ok(&["queue", "release", "--to-domain", "held.example"]),
        "{\n  \"hold\": false,\n  \"messages\": 1\n}\n"
    );
    // localserve delivers the released one to the sender's INBOX.
    eventually("the released message", || {
        (subjects(&server, ACCOUNT, PASSWORD) == ["held back"]).then_some(())
    });
    // Failed by the admin: the sender gets a DSN saying so.
    assert_eq!(
        server.admin_ok(&[
            "queue",
            "fail",
            "--from-domain",
            "LOCALHOST",
            "--to-domain",
            "later.example"
        ]),
        "{\n  \"in_flight\": 0,\n  \"messages\": 1\n}\n"
    );
    eventually("the DSN", || {
        (subjects(&server, ACCOUNT, PASSWORD)
            == ["held back", "Undelivered mail returned to sender"])
        .then_some(())
    });
    assert_eq!(server.admin_ok(&["queue", "list"]), "");
    // The retired messages, newest first, with their attempts.
    let retired: serde_json::Value =
        serde_json::from_str(&server.admin_ok(&["queue", "retired", "--account", ACCOUNT]))
            .unwrap();
    let summary: Vec<(String, String, String, String)> = retired
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["sender"] == ACCOUNT)
        .map(|r| {
            let rcpt = &r["recipients"][0];
            let attempts: Vec<&str> = r["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["result"].as_str().unwrap())
                .collect();
            (
                r["id"].to_string(),
                rcpt["address"].as_str().unwrap().to_string(),
                format!(
                    "{} {}",
                    rcpt["result"].as_str().unwrap(),
                    rcpt["detail"].as_str().unwrap()
                ),
                attempts.join("|"),
            )
        })
        .collect();
    let row = |id: &str, to: &str, result: &str, attempts: &str| {
        (
            id.to_string(),
            to.to_string(),
            result.to_string(),
            attempts.to_string(),
        )
    };
    assert_eq!(
        summary,
        [
            row(
                &deferred,
                "451@later.example",
                "failed failed by the admin",
                "451 simulated"
            ),
            row(
                &held_id,
                "someone@held.example",
                "delivered delivered",
                "delivered"
            ),
        ]
    );
    assert_eq!(
        server.admin_ok(&["queue", "holdrule", "rm", &rule_id]),
        format!("{{\n  \"id\": {rule_id},\n  \"removed\": true\n}}\n")
    );
    assert_eq!(server.admin_ok(&["queue", "holdrule", "list"]), "[]\n");
    let out = server.admin(&["queue", "holdrule", "rm", &rule_id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("roost: no hold rule {rule_id}\n")
    );
}

/// DSN (RFC 3461): NOTIFY=SUCCESS on a local delivery brings a
/// "delivered" report with the sender's ENVID and the ORCPT; through the
/// queue (localserve's servers send no reports), a "relayed" one;
/// NOTIFY=NEVER silences a failure report; RET=FULL returns the whole
/// message.
#[test]
fn dsn_parameters_are_carried_and_honoured() {
    let server = Server::start();
    let mut mx = ehlo(&server);
    envelope_with(
        &mut mx,
        &format!("MAIL FROM:<{ACCOUNT}> RET=HDRS ENVID=QQ314159"),
        &format!("RCPT TO:<{ACCOUNT}> NOTIFY=SUCCESS ORCPT=rfc822;Original@example.org"),
    );
    assert_eq!(
        data(&mut mx, b"Subject: with dsn\r\n\r\nhi\r\n"),
        "250 2.0.0 OK, message delivered"
    );
    assert_eq!(
        subjects(&server, ACCOUNT, PASSWORD),
        ["with dsn", "Successful mail delivery report"]
    );
    let part = |n: usize, section: &str| {
        let mut imap = Imap::login(server.port(IMAP));
        imap.cmd("EXAMINE INBOX");
        imap.cmd(&format!("FETCH {n} BODY.PEEK[{section}]"))
    };
    let r = part(2, "2");
    let lines: Vec<&str> = r.lines().skip(1).take(9).collect();
    assert_eq!(lines[0], "Original-Envelope-Id: QQ314159");
    assert_eq!(lines[1], "Reporting-MTA: dns; localhost");
    assert!(lines[2].starts_with("Arrival-Date: "), "{r}");
    assert_eq!(
        lines[3..],
        [
            "",
            "Original-Recipient: rfc822;Original@example.org",
            "Final-Recipient: rfc822; roost@localhost",
            "Action: delivered",
            "Status: 2.0.0",
            ")",
        ]
    );

    let mut sub = submission(&server, ROOST_PLAIN);
    let mut queue = |mail: &str, rcpt: &str, subject: &str| {
        envelope_with(&mut sub, mail, rcpt);
        assert_eq!(
            data(
                &mut sub,
                format!("From: {ACCOUNT}\r\nSubject: {subject}\r\n\r\nfull body\r\n").as_bytes()
            ),
            "250 2.0.0 OK, queued for delivery"
        );
        eventually("an empty queue", || {
            server.admin_ok(&["queue", "list"]).is_empty().then_some(())
        });
    };
    let from = format!("MAIL FROM:<{ACCOUNT}>");
    queue(
        &from,
        "RCPT TO:<permerror@elsewhere.example> NOTIFY=NEVER",
        "silent",
    );
    queue(
        &from,
        "RCPT TO:<250@elsewhere.example> NOTIFY=SUCCESS",
        "relayed",
    );
    eventually("the relayed report", || {
        (subjects(&server, ACCOUNT, PASSWORD).len() == 3).then_some(())
    });
    let r = part(3, "2");
    assert!(r.contains("\r\nAction: relayed\r\n"), "{r}");
    // (Another domain: the first failure put permerror@elsewhere.example
    // on the account's suppression list.)
    queue(
        &format!("{from} RET=FULL"),
        "RCPT TO:<permerror@another.example>",
        "returned",
    );
    eventually("the failure report", || {
        (subjects(&server, ACCOUNT, PASSWORD).len() == 4).then_some(())
    });
    assert_eq!(
        subjects(&server, ACCOUNT, PASSWORD),
        [
            "with dsn",
            "Successful mail delivery report",
            "Successful mail delivery report",
            "Undelivered mail returned to sender",
        ]
    );
    let r = part(4, "3");
    assert!(
        r.ends_with("Subject: returned\r\n\r\nfull body\r\n)\r\na3 OK FETCH completed\r\n"),
        "{r}"
    );
}

/// MAIL and RCPT with parameters, each answered as expected.
fn envelope_with(smtp: &mut Smtp, mail: &str, rcpt: &str) {
    assert_eq!(smtp.cmd(mail), "250 2.1.0 Sender OK");
    assert_eq!(smtp.cmd(rcpt), "250 2.1.5 Recipient OK");
}

/// FUTURERELEASE (RFC 4865) on submission: a held message waits in the
/// queue for every recipient, local ones too, and arrives when released;
/// at most MAX_FUTURE_RELEASE (30 days) ahead, the edge taken and one
/// second past refused; HOLDFOR and HOLDUNTIL exclude each other; the MX
/// port does not offer it.
#[test]
fn futurerelease_holds_submitted_mail_until_its_time() {
    let server = Server::start();
    let mut sub = submission(&server, ROOST_PLAIN);
    envelope_with(
        &mut sub,
        &format!("MAIL FROM:<{ACCOUNT}> HOLDFOR=2"),
        &format!("RCPT TO:<{ACCOUNT}>"),
    );
    assert_eq!(
        sub.cmd("RCPT TO:<someone@elsewhere.example>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        data(
            &mut sub,
            format!("From: {ACCOUNT}\r\nSubject: held\r\n\r\nlater\r\n").as_bytes()
        ),
        "250 2.0.0 OK, queued for delivery"
    );
    // Held: nothing delivered yet, both copies in the queue.
    assert_eq!(subjects(&server, ACCOUNT, PASSWORD), Vec::<String>::new());
    let listed = server.admin_ok(&["queue", "list"]);
    let domains: Vec<&str> = listed
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(domains, ["elsewhere.example", "localhost"], "{listed}");
    // Released: the local copy and localserve's copy of the remote one.
    eventually("the released message", || {
        (subjects(&server, ACCOUNT, PASSWORD) == ["held", "held"]).then_some(())
    });
    assert_eq!(server.admin_ok(&["queue", "list"]), "");

    let mail = |sub: &mut Smtp, params: &str| sub.cmd(&format!("MAIL FROM:<{ACCOUNT}> {params}"));
    assert_eq!(mail(&mut sub, "HOLDFOR=2592000"), "250 2.1.0 Sender OK");
    assert_eq!(sub.cmd("RSET"), "250 2.0.0 OK");
    assert_eq!(
        mail(&mut sub, "HOLDFOR=2592001"),
        "501 5.5.4 FUTURERELEASE is at most 2592000 seconds ahead"
    );
    assert_eq!(
        mail(&mut sub, "HOLDFOR=5 HOLDUNTIL=2030-01-01T00:00:00Z"),
        "501 5.5.4 Invalid or repeated FUTURERELEASE parameter (HOLDFOR or HOLDUNTIL, once)"
    );
    assert_eq!(
        mail(&mut sub, "HOLDUNTIL=tomorrow"),
        "501 5.5.4 Invalid HOLDUNTIL parameter"
    );
    // A time already past: released at once.
    assert_eq!(
        mail(&mut sub, "HOLDUNTIL=2020-01-01T00:00:00Z"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(sub.cmd("RSET"), "250 2.0.0 OK");
    let mut mx = ehlo(&server);
    assert_eq!(
        mx.cmd("MAIL FROM:<a@example.org> HOLDFOR=5"),
        "555 5.5.4 FUTURERELEASE is offered on submission only"
    );
}

/// The suppression list: an address a server refused for good goes on the
/// sending account's list, and the account's next submission to it fails
/// at RCPT; the admin lists, removes and adds addresses.
#[test]
fn hard_failures_go_on_the_suppression_list() {
    let server = Server::start();
    let mut sub = submission(&server, ROOST_PLAIN);
    envelope_with(
        &mut sub,
        &format!("MAIL FROM:<{ACCOUNT}>"),
        "RCPT TO:<permerror@elsewhere.example>",
    );
    assert_eq!(
        data(
            &mut sub,
            format!("From: {ACCOUNT}\r\nSubject: bounces\r\n\r\nhi\r\n").as_bytes()
        ),
        "250 2.0.0 OK, queued for delivery"
    );
    eventually("the DSN", || {
        (subjects(&server, ACCOUNT, PASSWORD).len() == 1).then_some(())
    });
    assert_eq!(
        sub.cmd(&format!("MAIL FROM:<{ACCOUNT}>")),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        sub.cmd("RCPT TO:<PermError@elsewhere.example>"),
        "550 5.1.1 PermError@elsewhere.example is on your suppression list: 550 5.0.0 simulated permanent error"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&server.admin_ok(&["suppression", "list", ACCOUNT])).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["address"], "permerror@elsewhere.example");
    assert_eq!(listed[0]["reason"], "550 5.0.0 simulated permanent error");
    server.admin_ok(&["suppression", "rm", ACCOUNT, "permerror@elsewhere.example"]);
    assert_eq!(
        sub.cmd("RCPT TO:<permerror@elsewhere.example>"),
        "250 2.1.5 Recipient OK"
    );
    server.admin_ok(&["suppression", "add", ACCOUNT, "nobody@elsewhere.example"]);
    assert_eq!(
        sub.cmd("RCPT TO:<nobody@elsewhere.example>"),
        "550 5.1.1 nobody@elsewhere.example is on your suppression list: added by the admin"
    );
}
