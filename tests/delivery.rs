//! A message delivered over SMTP reads back over IMAP byte for byte, and an
//! IMAP session idling on INBOX hears about it at once.

mod common;
use common::*;

/// FETCH BODY[] of one message: the literal's bytes.
fn fetch_body(imap: &mut Imap, seq: u32) -> Vec<u8> {
    let resp = imap.cmd_bytes(&format!("FETCH {seq} BODY.PEEK[]"));
    let start = resp
        .windows(2)
        .position(|w| w == b"}\r")
        .expect("literal in FETCH response")
        + 3;
    let open = resp[..start].iter().rposition(|&b| b == b'{').unwrap();
    let len: usize = std::str::from_utf8(&resp[open + 1..start - 3])
        .unwrap()
        .parse()
        .unwrap();
    resp[start..start + len].to_vec()
}

#[test]
fn smtp_delivery_reads_back_byte_for_byte_and_wakes_idle() {
    let server = Server::start();

    // A second session idles on INBOX before the message arrives.
    let mut idler = Imap::login(server.port(IMAP));
    let r = idler.cmd("SELECT INBOX");
    assert!(r.contains("* 0 EXISTS\r\n"), "{r}");
    assert!(r.contains("OK [READ-WRITE] SELECT completed"), "{r}");
    idler.send_raw(b"i1 IDLE\r\n");
    assert_eq!(idler.line(), "+ idling\r\n");

    let original = message(1, 200);
    let mut smtp = Smtp::connect(server.port(SMTP));
    let ehlo = smtp.cmd("EHLO client.example.org");
    assert!(
        ehlo.starts_with("250-localhost greets client.example.org"),
        "{ehlo}"
    );
    assert!(ehlo.contains("250-PIPELINING"), "{ehlo}");
    assert!(ehlo.contains("250-ENHANCEDSTATUSCODES"), "{ehlo}");
    assert!(ehlo.ends_with("250 STARTTLS"), "{ehlo}");
    let r = smtp.send_mail("sender@example.org", &[ACCOUNT], &original);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 localhost closing connection");

    // The idler hears EXISTS without asking.
    assert_eq!(idler.line(), "* 1 EXISTS\r\n");
    idler.send_raw(b"DONE\r\n");
    assert_eq!(idler.line(), "i1 OK IDLE terminated\r\n");

    let mut reader = Imap::login(server.port(IMAP));
    let r = reader.cmd("SELECT INBOX");
    assert!(r.contains("* 1 EXISTS\r\n"), "{r}");
    let stored = fetch_body(&mut reader, 1);
    assert_eq!(strip_prefix(&stored, &original), &original[..]);
    let head = String::from_utf8_lossy(&stored[..stored.len() - original.len()]).into_owned();
    assert!(head.starts_with("Return-Path: <sender@example.org>\r\nReceived: from client.example.org ([127.0.0.1])\r\n\tby localhost (roost) with ESMTP\r\n\tfor <roost@localhost>; "), "{head}");

    // Size and flags as a client sees them; PEEK left \Seen unset.
    let r = reader.cmd("FETCH 1 (UID FLAGS RFC822.SIZE)");
    assert!(
        r.starts_with(&format!(
            "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE {})\r\n",
            stored.len()
        )),
        "{r}"
    );
    // A FETCH of BODY[] (not PEEK) sets \Seen and says so; the idler, back
    // from IDLE, hears the flag change at its next command.
    let r = reader.cmd("FETCH 1 BODY[TEXT]");
    assert!(r.contains(" FLAGS (\\Seen))\r\n"), "{r}");
    assert_eq!(
        idler.untagged_until("FETCH"),
        "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n"
    );

    server.assert_consistent(ACCOUNT);
}

#[test]
fn store_expunge_copy_move_and_events_reach_other_sessions() {
    let server = Server::start();
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO x");
    for n in 1..=3 {
        let r = smtp.send_mail("s@example.org", &[ACCOUNT], &message(n, 3));
        assert!(r.starts_with("250 "), "{r}");
    }
    let mut a = Imap::login(server.port(IMAP));
    let mut b = Imap::login(server.port(IMAP));
    assert!(a.cmd("SELECT INBOX").contains("* 3 EXISTS"));
    assert!(b.cmd("SELECT INBOX").contains("* 3 EXISTS"));

    let r = a.cmd("STORE 2 +FLAGS (\\Deleted $Important)");
    assert!(
        r.starts_with("* 2 FETCH (UID 2 FLAGS (\\Deleted $Important))\r\n"),
        "{r}"
    );
    assert!(r.ends_with("OK STORE completed\r\n"), "{r}");
    assert_eq!(
        b.untagged_until("FETCH"),
        "* 2 FETCH (UID 2 FLAGS (\\Deleted $Important))\r\n"
    );

    let r = a.cmd("UID COPY 1:3 Archive");
    assert!(r.contains("OK [COPYUID "), "{r}");
    assert!(r.contains(" 1:3 1:3] COPY completed"), "{r}");
    let r = a.cmd("EXPUNGE");
    assert_eq!(r, "* 2 EXPUNGE\r\na5 OK EXPUNGE completed\r\n");
    assert_eq!(b.untagged_until("EXPUNGE"), "* 2 EXPUNGE\r\n");

    let r = a.cmd("UID MOVE 3 Trash");
    assert!(r.contains("* OK [COPYUID "), "{r}");
    assert!(r.contains("* 2 EXPUNGE\r\n"), "{r}");
    let r = a.cmd("STATUS Trash (MESSAGES UIDNEXT UNSEEN)");
    assert!(
        r.starts_with("* STATUS Trash (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"),
        "{r}"
    );
    let r = a.cmd("STATUS Archive (MESSAGES)");
    assert!(r.starts_with("* STATUS Archive (MESSAGES 3)\r\n"), "{r}");

    // Mailbox create, rename with children, delete.
    assert!(a
        .cmd("CREATE Projects/2026")
        .ends_with("CREATE completed\r\n"));
    assert!(a
        .cmd("RENAME Projects Work")
        .ends_with("OK RENAME completed\r\n"));
    let r = a.cmd("LIST \"\" Work*");
    assert!(
        r.contains("* LIST (\\HasChildren \\Subscribed) \"/\" Work\r\n"),
        "{r}"
    );
    assert!(
        r.contains("* LIST (\\HasNoChildren \\Subscribed) \"/\" Work/2026\r\n"),
        "{r}"
    );
    assert!(a
        .cmd("DELETE Work/2026")
        .ends_with("OK DELETE completed\r\n"));
    // IMAP4rev1's LSUB lists only what is subscribed.
    assert!(a
        .cmd("UNSUBSCRIBE Junk")
        .ends_with("OK UNSUBSCRIBE completed\r\n"));
    let r = a.cmd("LSUB \"\" J*");
    assert!(
        r.ends_with(" OK LSUB completed\r\n") && !r.contains("* LSUB"),
        "{r}"
    );
    let r = a.cmd("LSUB \"\" *");
    assert!(r.starts_with("* LSUB () \"/\" INBOX\r\n"), "{r}");
    assert!(
        !r.contains("Junk") && r.contains("* LSUB () \"/\" Work\r\n"),
        "{r}"
    );
    let r = a.cmd("SELECT Work/2026");
    assert!(r.contains("NO [NONEXISTENT]"), "{r}");

    server.assert_consistent(ACCOUNT);
}

#[test]
fn quota_is_enforced_at_rcpt_and_at_data_without_losing_mail() {
    let server = Server::start();
    server.admin_ok(&[
        "account",
        "add",
        "small@localhost",
        "--password",
        "pw-small",
        "--quota",
        "3000",
    ]);
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO x");
    // Fits: about 1.5 KB with roost's prefix.
    let first = message(1, 20);
    assert_eq!(
        smtp.send_mail("s@example.org", &["small@localhost"], &first),
        "250 2.0.0 OK, message delivered"
    );
    // Declared too big for what is left: refused at RCPT (RFC 1870 6.1).
    assert!(smtp
        .cmd("MAIL FROM:<s@example.org> SIZE=2000")
        .starts_with("250"));
    assert_eq!(
        smtp.cmd("RCPT TO:<small@localhost>"),
        "452 4.2.2 Mailbox full: small@localhost"
    );
    assert!(smtp.cmd("RCPT TO:<roost@localhost>").starts_with("250"));
    assert!(smtp.cmd("RSET").starts_with("250"));
    // Undeclared and too big: the whole transaction fails temporarily, so
    // the client keeps the message for small@ (roost@ may see it twice
    // after the client's retry, but no one loses it).
    assert!(smtp.cmd("MAIL FROM:<s@example.org>").starts_with("250"));
    assert!(smtp.cmd("RCPT TO:<small@localhost>").starts_with("250"));
    assert!(smtp.cmd("RCPT TO:<roost@localhost>").starts_with("250"));
    assert!(smtp.cmd("DATA").starts_with("354"));
    smtp.send_raw(&dot_stuff(&message(2, 40)));
    smtp.send_raw(b".\r\n");
    assert_eq!(smtp.reply(), "452 4.2.2 Mailbox full, try again later");
    // For small@ alone the refusal is final: nobody got it (RFC 5321's
    // 552 at the end of data).
    assert!(smtp.cmd("MAIL FROM:<s@example.org>").starts_with("250"));
    assert!(smtp.cmd("RCPT TO:<small@localhost>").starts_with("250"));
    assert!(smtp.cmd("DATA").starts_with("354"));
    smtp.send_raw(&dot_stuff(&message(3, 40)));
    smtp.send_raw(b".\r\n");
    assert_eq!(smtp.reply(), "552 5.2.2 Mailbox full");

    let mut imap = Imap::connect(server.port(IMAP));
    assert!(imap.cmd("LOGIN small@localhost pw-small").contains("OK"));
    let r = imap.cmd("STATUS INBOX (MESSAGES)");
    assert!(r.starts_with("* STATUS INBOX (MESSAGES 1)\r\n"), "{r}");
    server.assert_consistent("small@localhost");
    server.assert_consistent(ACCOUNT);
}

#[test]
fn one_message_to_several_accounts_reaches_each_intact() {
    let server = Server::start();
    server.admin_ok(&[
        "account",
        "add",
        "second@localhost",
        "--password",
        "pw-second",
    ]);
    let original = message(3, 50);
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO x");
    assert_eq!(
        smtp.send_mail(
            "s@example.org",
            &[ACCOUNT, "second@localhost", ACCOUNT],
            &original
        ),
        "250 2.0.0 OK, message delivered"
    );
    for (user, pass) in [(ACCOUNT, PASSWORD), ("second@localhost", "pw-second")] {
        let mut imap = Imap::connect(server.port(IMAP));
        assert!(imap.cmd(&format!("LOGIN {user} {pass}")).contains("OK"));
        // A repeated recipient is delivered once.
        assert!(imap.cmd("SELECT INBOX").contains("* 1 EXISTS\r\n"));
        let stored = fetch_body(&mut imap, 1);
        assert_eq!(strip_prefix(&stored, &original), &original[..]);
        let head = String::from_utf8_lossy(&stored[..stored.len() - original.len()]).into_owned();
        assert!(head.contains(&format!("\tfor <{user}>; ")), "{head}");
        server.assert_consistent(user);
    }
}

/// A delivered message is stored with its summary (ENVELOPE and
/// BODYSTRUCTURE are in the store before any FETCH asks), whether it was
/// staged in memory or spilled to a file.
#[test]
fn delivered_messages_are_stored_with_their_summaries() {
    let mut server = Server::start();
    let small = message(1, 10);
    // More lines than MAX_STAGED_IN_MEMORY holds: spilled to tmp/.
    let big = message(2, 4000);
    assert!(big.len() > roost_store::MAX_STAGED_IN_MEMORY);
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO client.example.org");
    for m in [&small, &big] {
        let r = smtp.send_mail("sender@example.org", &[ACCOUNT], m);
        assert_eq!(r, "250 2.0.0 OK, message delivered");
    }
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 localhost closing connection");
    assert!(server.terminate().success());

    let store = roost_store::Store::open(&server.dir).unwrap();
    let account = store.account(ACCOUNT).unwrap().unwrap();
    let inbox = store
        .mailboxes(account.id)
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap();
    for (uid, sent) in [(1, &small), (2, &big)] {
        let rec = store
            .message(account.id, inbox.id, roost_protocols::imap::types::Uid(uid))
            .unwrap()
            .unwrap();
        // The stored bytes are the sender's, whole; the summary is theirs.
        let content = store.read_content(rec.file).unwrap();
        assert_eq!(&content, sent);
        let summary = store.summary(rec.file).unwrap().expect("a stored summary");
        assert_eq!(
            summary,
            roost_protocols::message::summary::Summary::build(&content)
        );
        let subject = summary
            .envelope
            .subject
            .map(|s| String::from_utf8_lossy(&s).into_owned());
        assert_eq!(subject, Some(format!("message {uid}")));
    }
}
