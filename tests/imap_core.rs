//! The IMAP core commands end to end over real sockets, one test per
//! command family, asserting whole response lines in order: APPEND and
//! MULTIAPPEND with their limits, and FETCH of the parsed summary
//! (ENVELOPE, BODYSTRUCTURE, BODY) and of decoded parts (BINARY).

mod common;
use common::*;

/// roost's APPENDLIMIT: `DEFAULT_MAX_MESSAGE_SIZE` of localserve.
const APPEND_LIMIT: usize = 64 * 1024 * 1024;

const MIXED: &str = "From: \"Alice Example\" <alice@example.com>\r
To: bob@example.net, Team: carol@example.org;\r
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r
Date: Tue, 01 Dec 2026 10:00:00 +0000\r
Message-ID: <m1@example.com>\r
Content-Type: multipart/mixed; boundary=XX\r
\r
--XX\r
Content-Type: text/plain; charset=utf-8\r
Content-Transfer-Encoding: quoted-printable\r
\r
caf=C3=A9\r
--XX\r
Content-Type: application/octet-stream; name=\"b.bin\"\r
Content-Transfer-Encoding: base64\r
Content-Disposition: attachment; filename=\"b.bin\"\r
\r
AAECAw==\r
--XX--\r
";

#[test]
fn append_then_fetch_summary_and_binary() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let v = uid_validity(&mut imap, "INBOX");
    let r = append(
        &mut imap,
        "p1",
        "INBOX (\\Seen $Label) \"01-Dec-2026 11:00:00 +0100\"",
        MIXED.as_bytes(),
    );
    assert_eq!(r, format!("p1 OK [APPENDUID {v} 1] APPEND completed\r\n"));
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    let r = imap.cmd("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)");
    assert_eq!(
        r,
        format!(
            "* 1 FETCH (FLAGS (\\Seen $Label) INTERNALDATE \" 1-Dec-2026 10:00:00 +0000\" \
RFC822.SIZE {} ENVELOPE (\"Tue, 01 Dec 2026 10:00:00 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" \
((\"Alice Example\" NIL \"alice\" \"example.com\")) \
((\"Alice Example\" NIL \"alice\" \"example.com\")) \
((\"Alice Example\" NIL \"alice\" \"example.com\")) \
((NIL NIL \"bob\" \"example.net\")(NIL NIL \"Team\" NIL)(NIL NIL \"carol\" \"example.org\")(NIL NIL NIL NIL)) \
NIL NIL NIL \"<m1@example.com>\"))\r\n\
a4 OK FETCH completed\r\n",
            MIXED.len()
        )
    );
    let r = imap.cmd("FETCH 1 (BODYSTRUCTURE BODY)");
    let text = "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 9 1";
    let bin = "(\"APPLICATION\" \"OCTET-STREAM\" (\"NAME\" \"b.bin\") NIL NIL \"BASE64\" 8";
    assert_eq!(
        r,
        format!(
            "* 1 FETCH (BODYSTRUCTURE ({text} NIL NIL NIL NIL)\
{bin} NIL (\"ATTACHMENT\" (\"FILENAME\" \"b.bin\")) NIL NIL) \"MIXED\" (\"BOUNDARY\" \"XX\") NIL NIL NIL) \
BODY ({text}){bin}) \"MIXED\"))\r\na5 OK FETCH completed\r\n"
        )
    );
    let r = imap.cmd_bytes("FETCH 1 (BINARY.SIZE[1] BINARY[1] BINARY.PEEK[2] BINARY[2]<1.2>)");
    assert_eq!(
        r,
        "* 1 FETCH (BINARY.SIZE[1] 5 BINARY[1] {5}\r\ncaf\u{e9} BINARY[2] ~{4}\r\n\0\x01\x02\x03 \
BINARY[2]<1> {2}\r\n\x01\x02)\r\na6 OK FETCH completed\r\n"
            .as_bytes()
    );
    // A part that does not exist is empty; an unknown encoding is refused.
    assert_eq!(
        imap.cmd("FETCH 1 (BINARY.PEEK[9])"),
        "* 1 FETCH (BINARY[9] {0}\r\n)\r\na7 OK FETCH completed\r\n"
    );
    let odd = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n";
    let r = append(&mut imap, "p2", "INBOX", odd);
    assert_eq!(
        r,
        format!("* 2 EXISTS\r\np2 OK [APPENDUID {v} 2] APPEND completed\r\n")
    );
    assert_eq!(
        imap.cmd("FETCH 2 (BINARY.PEEK[1])"),
        "a8 NO [UNKNOWN-CTE] Cannot decode part 1 of message 2\r\n"
    );
    server.assert_consistent(ACCOUNT);
}

#[test]
fn multiappend_is_all_or_nothing() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let v = uid_validity(&mut imap, "Drafts");
    // Three messages in one command, the last as literal8 and
    // non-synchronizing, with their own flags.
    imap.send_raw(b"m1 APPEND Drafts (\\Draft) {10}\r\n");
    assert_eq!(imap.line(), "+ Ready for literal data\r\n");
    imap.send_raw(b"Subject: a (\\Seen) {10+}\r\nSubject: b ~{10+}\r\nSubject: c\r\n");
    assert_eq!(
        imap.line(),
        format!("m1 OK [APPENDUID {v} 1:3] APPEND completed\r\n")
    );
    assert_eq!(
        imap.cmd("STATUS Drafts (MESSAGES UIDNEXT)"),
        "* STATUS Drafts (MESSAGES 3 UIDNEXT 4)\r\na3 OK STATUS completed\r\n"
    );
    // A mailbox that does not exist: refused before the literal is sent.
    imap.send_raw(b"m2 APPEND Nowhere {10}\r\n");
    assert_eq!(
        imap.line(),
        "m2 NO [TRYCREATE] no mailbox named \"Nowhere\"\r\n"
    );
    // A bad second head: the first message is not kept.
    imap.send_raw(b"m3 APPEND Drafts {10+}\r\nSubject: d (\\Bogus) {10+}\r\nSubject: e\r\n");
    assert_eq!(
        imap.line(),
        "m3 BAD \\Bogus is not a flag that can be stored\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS Drafts (MESSAGES)"),
        "* STATUS Drafts (MESSAGES 3)\r\na4 OK STATUS completed\r\n"
    );
    // Garbage after the last literal: nothing is kept.
    imap.send_raw(b"m4 APPEND Drafts {10+}\r\nSubject: f junk\r\n");
    assert_eq!(
        imap.line(),
        "m4 BAD Unexpected characters after the message literal\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS Drafts (MESSAGES)"),
        "* STATUS Drafts (MESSAGES 3)\r\na5 OK STATUS completed\r\n"
    );
    server.assert_consistent(ACCOUNT);
}

#[test]
fn multiappend_past_the_quota_stores_nothing() {
    let server = Server::start();
    server.admin_ok(&[
        "account",
        "add",
        "q@localhost",
        "--password",
        "quotaquota",
        "--quota",
        "100",
    ]);
    let mut imap = Imap::connect(server.port(IMAP));
    assert!(imap.cmd("LOGIN q@localhost quotaquota").contains(" OK "));
    let msg = format!("Subject: {}\r\n", "x".repeat(50));
    assert_eq!(msg.len(), 61);
    // The second message would pass the quota: refused before it is sent.
    imap.send_raw(b"q1 APPEND INBOX {61}\r\n");
    assert_eq!(imap.line(), "+ Ready for literal data\r\n");
    imap.send_raw(format!("{msg} {{61}}\r\n").as_bytes());
    assert_eq!(
        imap.line(),
        "q1 NO [OVERQUOTA] over quota: 0 of 100 bytes used, 122 more needed\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS INBOX (MESSAGES)"),
        "* STATUS INBOX (MESSAGES 0)\r\na2 OK STATUS completed\r\n"
    );
    // One that fits is taken.
    let v = uid_validity(&mut imap, "INBOX");
    let r = append(&mut imap, "q2", "INBOX", msg.as_bytes());
    assert_eq!(r, format!("q2 OK [APPENDUID {v} 1] APPEND completed\r\n"));
    server.assert_consistent("q@localhost");
}

#[test]
fn append_limit_edge() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert!(IMAP_CAPS.ends_with(&format!(" APPENDLIMIT={APPEND_LIMIT}")));
    assert_eq!(
        imap.cmd("CAPABILITY"),
        format!("* CAPABILITY {IMAP_CAPS}\r\na2 OK CAPABILITY completed\r\n")
    );
    imap.send_raw(format!("l1 APPEND INBOX {{{}}}\r\n", APPEND_LIMIT + 1).as_bytes());
    assert_eq!(
        imap.line(),
        format!(
            "l1 NO [TOOBIG] Message of {} bytes is larger than APPENDLIMIT {APPEND_LIMIT}\r\n",
            APPEND_LIMIT + 1
        )
    );
    // Non-synchronizing past the limit: skipped, and the session goes on.
    imap.send_raw(format!("l2 APPEND INBOX {{{}+}}\r\n", APPEND_LIMIT + 1).as_bytes());
    let mut big = vec![b'y'; APPEND_LIMIT + 1];
    imap.send_raw(&big);
    imap.send_raw(b"\r\nl3 NOOP\r\n");
    assert_eq!(
        imap.line(),
        format!(
            "l2 NO [TOOBIG] Message of {} bytes is larger than APPENDLIMIT {APPEND_LIMIT}\r\n",
            APPEND_LIMIT + 1
        )
    );
    assert_eq!(imap.line(), "l3 OK NOOP completed\r\n");
    // Exactly at the limit: stored whole.
    big.truncate(APPEND_LIMIT);
    big[..12].copy_from_slice(b"Subject: x\r\n");
    let v = uid_validity(&mut imap, "INBOX");
    let r = append(&mut imap, "l4", "INBOX", &big);
    assert_eq!(r, format!("l4 OK [APPENDUID {v} 1] APPEND completed\r\n"));
    assert_eq!(
        imap.cmd("STATUS INBOX (MESSAGES SIZE)"),
        format!("* STATUS INBOX (MESSAGES 1 SIZE {APPEND_LIMIT})\r\na4 OK STATUS completed\r\n")
    );
}

#[test]
fn a_mailbox_literal_is_read_inline_before_the_message() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let v = uid_validity(&mut imap, "Drafts");
    // The mailbox name is a literal: it is read inline, the message streamed.
    imap.send_raw(b"t3 APPEND {6}\r\n");
    assert_eq!(imap.line(), "+ Ready for literal data\r\n");
    imap.send_raw(b"Drafts {10}\r\n");
    assert_eq!(imap.line(), "+ Ready for literal data\r\n");
    imap.send_raw(b"Subject: z\r\n");
    assert_eq!(
        imap.line(),
        format!("t3 OK [APPENDUID {v} 1] APPEND completed\r\n")
    );
    assert_eq!(imap.cmd("NOOP"), "a3 OK NOOP completed\r\n");
}

/// Four messages with different senders, subjects, encodings, dates and
/// flags, appended to INBOX, which is then selected.
fn search_fixture(imap: &mut Imap) {
    let messages: [(&str, String); 4] = [
        (
            "(\\Seen) \"01-Jan-2026 12:00:00 +0000\"",
            "From: Alice <alice@example.com>\r\nSubject: Hello\r\n\
Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n\r\napple pie\r\n"
                .to_string(),
        ),
        (
            "($Work) \"15-Jun-2026 12:00:00 +0000\"",
            "From: Bob <bob@example.net>\r\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
YmFuYW5hIGJyZWFk\r\n"
                .to_string(),
        ),
        (
            "(\\Flagged \\Seen) \"01-Dec-2026 12:00:00 +0000\"",
            "From: carol@example.org\r\nSubject: Report\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=E9 au lait\r\n--b\r\nContent-Type: application/pdf\r\n\r\nJVBERi0\r\n--b--\r\n"
                .to_string(),
        ),
        (
            "() \"01-Dec-2026 12:00:00 +0000\"",
            format!(
                "From: Alice <alice@example.com>\r\nSubject: Re: Hello\r\nX-Priority: 1\r\n\
Date: Mon, 30 Nov 2026 23:00:00 -0800\r\n\r\n{}\r\n",
                "x".repeat(3000)
            ),
        ),
    ];
    for (i, (opts, msg)) in messages.iter().enumerate() {
        let r = append(
            imap,
            &format!("f{i}"),
            &format!("INBOX {opts}"),
            msg.as_bytes(),
        );
        assert!(r.contains(" OK [APPENDUID "), "{r}");
    }
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
}

#[test]
fn search_keys_over_flags_headers_bodies_and_dates() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    search_fixture(&mut imap);
    let cases: &[(&str, &str)] = &[
        ("SEARCH ALL", "* SEARCH 1 2 3 4"),
        ("SEARCH SEEN", "* SEARCH 1 3"),
        ("SEARCH UNSEEN NOT FLAGGED", "* SEARCH 2 4"),
        ("SEARCH KEYWORD $work", "* SEARCH 2"),
        ("SEARCH UNKEYWORD $Work", "* SEARCH 1 3 4"),
        ("SEARCH 2:*", "* SEARCH 2 3 4"),
        ("SEARCH OR 1 4", "* SEARCH 1 4"),
        ("UID SEARCH UID 3:*", "* SEARCH 3 4"),
        ("SEARCH FROM alice", "* SEARCH 1 4"),
        ("SEARCH FROM ALICE SUBJECT re:", "* SEARCH 4"),
        ("SEARCH SUBJECT \"GRÜSSE\"", "* SEARCH"),
        ("SEARCH SUBJECT \"grüße\"", "* SEARCH 2"),
        ("SEARCH HEADER X-Priority 1", "* SEARCH 4"),
        ("SEARCH HEADER X-Priority \"\"", "* SEARCH 4"),
        ("SEARCH BODY banana", "* SEARCH 2"),
        ("SEARCH BODY \"café\"", "* SEARCH 3"),
        ("SEARCH BODY JVBERi0", "* SEARCH"),
        ("SEARCH TEXT report", "* SEARCH 3"),
        ("SEARCH NOT TEXT hello", "* SEARCH 2 3"),
        ("SEARCH LARGER 3000", "* SEARCH 4"),
        ("SEARCH SMALLER 120", "* SEARCH 1"),
        ("SEARCH BEFORE 15-Jun-2026", "* SEARCH 1"),
        ("SEARCH ON 15-Jun-2026", "* SEARCH 2"),
        ("SEARCH SINCE 1-Dec-2026", "* SEARCH 3 4"),
        ("SEARCH SENTON 30-Nov-2026", "* SEARCH 4"),
        ("SEARCH SENTBEFORE 1-Dec-2026", "* SEARCH 1 4"),
        ("SEARCH NEW", "* SEARCH"),
        ("SEARCH CHARSET US-ASCII OLD", "* SEARCH 1 2 3 4"),
    ];
    for (i, (command, untagged)) in cases.iter().enumerate() {
        let tag = i + 3;
        let done = if command.starts_with("UID") {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        };
        assert_eq!(
            imap.cmd(command),
            format!("{untagged}\r\na{tag} OK {done}\r\n"),
            "{command}"
        );
    }
    let next = cases.len() + 3;
    // A UTF-8 string as a literal.
    imap.send_raw("u1 SEARCH CHARSET UTF-8 BODY {5+}\r\ncafé\r\n".as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&imap.until_tagged("u1")),
        "* SEARCH 3\r\nu1 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("SEARCH CHARSET ISO-8859-1 BODY x"),
        format!("a{next} NO [BADCHARSET (UTF-8 US-ASCII)] Charset ISO-8859-1 is not supported\r\n")
    );
    // MODSEQ: the highest modseq of the matches comes along.
    imap.cmd("STORE 2 +FLAGS (\\Answered)");
    let r = imap.cmd("FETCH 2 (MODSEQ)");
    let m: u64 = r["* 2 FETCH (MODSEQ (".len()..r.find(')').unwrap()]
        .parse()
        .unwrap();
    assert_eq!(
        imap.cmd(&format!("SEARCH MODSEQ {m}")),
        format!(
            "* SEARCH 2 (MODSEQ {m})\r\na{} OK SEARCH completed\r\n",
            next + 3
        )
    );
}

#[test]
fn esearch_returns_and_saved_results() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    search_fixture(&mut imap);
    // Tags: a1 LOGIN, a2 SELECT; commands from a3.
    assert_eq!(
        imap.cmd("SEARCH RETURN (MIN MAX COUNT) UNSEEN"),
        "* ESEARCH (TAG \"a3\") MIN 2 MAX 4 COUNT 2\r\na3 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID SEARCH RETURN () 2:4"),
        "* ESEARCH (TAG \"a4\") UID ALL 2:4\r\na4 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("SEARCH RETURN (ALL COUNT) SUBJECT nothing"),
        "* ESEARCH (TAG \"a5\") COUNT 0\r\na5 OK SEARCH completed\r\n"
    );
    // SAVE alone answers nothing untagged; $ then names what was found.
    assert_eq!(
        imap.cmd("SEARCH RETURN (SAVE) FROM alice"),
        "a6 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("FETCH $ (UID)"),
        "* 1 FETCH (UID 1)\r\n* 4 FETCH (UID 4)\r\na7 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("SEARCH NOT $"),
        "* SEARCH 2 3\r\na8 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID STORE $ +FLAGS.SILENT (\\Deleted)"),
        "a9 OK STORE completed\r\n"
    );
    assert_eq!(
        imap.cmd("EXPUNGE"),
        "* 1 EXPUNGE\r\n* 3 EXPUNGE\r\na10 OK EXPUNGE completed\r\n"
    );
    // Expunged messages leave $. SAVE with MIN alone keeps only the
    // minimum (RFC 5182 2.4).
    assert_eq!(imap.cmd("FETCH $ (UID)"), "a11 OK FETCH completed\r\n");
    assert_eq!(
        imap.cmd("SEARCH RETURN (SAVE MIN) ALL"),
        "* ESEARCH (TAG \"a12\") MIN 1\r\na12 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID SEARCH UID $"),
        "* SEARCH 2\r\na13 OK UID SEARCH completed\r\n"
    );
    // A new selection empties $.
    imap.cmd("SELECT INBOX");
    assert_eq!(
        imap.cmd("SEARCH $"),
        "* SEARCH\r\na15 OK SEARCH completed\r\n"
    );
}

/// The MODSEQ of each message, from `FETCH 1:* (MODSEQ)`.
fn modseqs(imap: &mut Imap) -> Vec<u64> {
    let r = imap.cmd("FETCH 1:* (MODSEQ)");
    r.lines()
        .filter_map(|l| l.split("MODSEQ (").nth(1))
        .map(|m| m.trim_end_matches("))").parse().unwrap())
        .collect()
}

#[test]
fn condstore_conditional_store_and_changedsince() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    for i in 0..3 {
        let r = append(
            &mut imap,
            &format!("f{i}"),
            "INBOX",
            b"Subject: m\r\n\r\nx\r\n",
        );
        assert!(r.contains(" OK [APPENDUID "), "{r}");
    }
    let v = uid_validity(&mut imap, "INBOX");
    let r = imap.cmd("SELECT INBOX (CONDSTORE)");
    let highest = modseqs_after_select(&r);
    assert_eq!(
        r,
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n\
* 3 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {v}] UIDs valid\r\n\
* OK [UIDNEXT 4] Predicted next UID\r\n* OK [MAILBOXID (F1)] Ok\r\n* OK [HIGHESTMODSEQ {highest}] Highest\r\n\
a3 OK [READ-WRITE] SELECT completed\r\n"
        )
    );
    let m = modseqs(&mut imap);
    assert_eq!(m.len(), 3);
    assert_eq!(m[2], highest);
    // UNCHANGEDSINCE at the message's modseq: stored, with the new MODSEQ.
    let r = imap.cmd(&format!(
        "STORE 1 (UNCHANGEDSINCE {}) +FLAGS (\\Seen)",
        m[0]
    ));
    let m1 = highest + 1;
    assert_eq!(
        r,
        format!("* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ({m1}))\r\na5 OK STORE completed\r\n")
    );
    // The same condition again fails for 1; 2 still passes.
    let r = imap.cmd(&format!(
        "STORE 1:2 (UNCHANGEDSINCE {}) +FLAGS (\\Flagged)",
        m[1]
    ));
    let m2 = m1 + 1;
    assert_eq!(
        r,
        format!(
            "* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({m2}))\r\n\
a6 OK [MODIFIED 1] Conditional STORE failed for some messages\r\n"
        )
    );
    let r = imap.cmd(&format!(
        "UID STORE 1 (UNCHANGEDSINCE {}) -FLAGS (\\Seen)",
        m[0]
    ));
    assert_eq!(
        r,
        "a7 OK [MODIFIED 1] Conditional STORE failed for some messages\r\n"
    );
    // CHANGEDSINCE: only what changed after the modseq, MODSEQ added.
    assert_eq!(
        imap.cmd(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")),
        format!(
            "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ({m1}))\r\n\
* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({m2}))\r\na8 OK FETCH completed\r\n"
        )
    );
    assert_eq!(
        imap.cmd(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {m1})")),
        format!("* 2 FETCH (FLAGS (\\Flagged) MODSEQ ({m2}))\r\na9 OK FETCH completed\r\n")
    );
    // Another session's change arrives with its MODSEQ.
    let mut other = Imap::login(server.port(IMAP));
    other.cmd("SELECT INBOX");
    other.cmd("STORE 3 +FLAGS (\\Answered)");
    assert_eq!(
        imap.untagged_until("FETCH"),
        format!(
            "* 3 FETCH (UID 3 FLAGS (\\Answered) MODSEQ ({}))\r\n",
            m2 + 1
        )
    );
    assert_eq!(
        imap.cmd("STATUS INBOX (HIGHESTMODSEQ)"),
        format!(
            "* STATUS INBOX (HIGHESTMODSEQ {})\r\na10 OK STATUS completed\r\n",
            m2 + 1
        )
    );
}

/// The HIGHESTMODSEQ a SELECT response announced.
fn modseqs_after_select(r: &str) -> u64 {
    let at = r.find("[HIGHESTMODSEQ ").expect("HIGHESTMODSEQ") + 15;
    r[at..].split(']').next().unwrap().parse().unwrap()
}

/// `STATUS INBOX (HIGHESTMODSEQ)` of the selected mailbox.
fn highest_modseq(imap: &mut Imap) -> u64 {
    let r = imap.cmd("STATUS INBOX (HIGHESTMODSEQ)");
    let at = r.find("(HIGHESTMODSEQ ").expect("HIGHESTMODSEQ") + 15;
    r[at..].split(')').next().unwrap().parse().unwrap()
}

#[test]
fn qresync_answers_from_the_gaps_once_tombstones_are_pruned() {
    use roost_actors::account::MAX_TOMBSTONES;
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    imap.cmd("ENABLE QRESYNC");
    let total = MAX_TOMBSTONES + 2;
    for i in 0..total {
        append(
            &mut imap,
            &format!("p{i}"),
            "INBOX",
            b"Subject: q\r\n\r\nx\r\n",
        );
    }
    let v = uid_validity(&mut imap, "INBOX");
    let before = modseqs_after_select(&imap.cmd("SELECT INBOX"));
    // Exactly MAX_TOMBSTONES expunged: all are remembered.
    imap.cmd(&format!(
        "STORE 1:{MAX_TOMBSTONES} +FLAGS.SILENT (\\Deleted)"
    ));
    imap.cmd("EXPUNGE");
    let after_first = highest_modseq(&mut imap);
    // One past: the oldest are pruned (down to KEEP_TOMBSTONES).
    imap.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)");
    imap.cmd("EXPUNGE");
    let last = MAX_TOMBSTONES + 1;
    let opening = |again: &mut Imap, since: u64| {
        let r = again.cmd(&format!("SELECT INBOX (QRESYNC ({v} {since} 1:{total}))"));
        let highest = modseqs_after_select(&r);
        let head = format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n\
* 1 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {v}] UIDs valid\r\n\
* OK [UIDNEXT {}] Predicted next UID\r\n* OK [MAILBOXID (F1)] Ok\r\n* OK [HIGHESTMODSEQ {highest}] Highest\r\n",
            total + 1
        );
        (r, head)
    };
    let mut again = Imap::login(server.port(IMAP));
    again.cmd("ENABLE QRESYNC");
    // From before the pruned tombstones: every UID not in the mailbox.
    let (r, head) = opening(&mut again, before);
    assert_eq!(
        r,
        format!("{head}* VANISHED (EARLIER) 1:{last}\r\na3 OK [READ-WRITE] SELECT completed\r\n")
    );
    // From after them: the kept tombstones answer exactly.
    let (r, head) = opening(&mut again, after_first);
    assert_eq!(
        r,
        format!(
            "* OK [CLOSED] Previous mailbox closed\r\n{head}* VANISHED (EARLIER) {last}\r\na4 OK [READ-WRITE] SELECT completed\r\n"
        )
    );
}

#[test]
fn qresync_reports_vanished_and_changes() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("ENABLE QRESYNC CONDSTORE X-UNKNOWN"),
        "* ENABLED QRESYNC CONDSTORE\r\na2 OK ENABLE completed\r\n"
    );
    for i in 0..4 {
        append(
            &mut imap,
            &format!("f{i}"),
            "INBOX",
            b"Subject: q\r\n\r\nx\r\n",
        );
    }
    let v = uid_validity(&mut imap, "INBOX");
    let before = modseqs_after_select(&imap.cmd("SELECT INBOX"));
    // Another session flags 1 and expunges 2 and 3.
    let mut other = Imap::login(server.port(IMAP));
    other.cmd("SELECT INBOX");
    other.cmd("STORE 1 +FLAGS (\\Flagged)");
    other.cmd("STORE 2:3 +FLAGS (\\Deleted)");
    other.cmd("EXPUNGE");
    let flagged = before + 1;
    assert_eq!(
        imap.untagged_until("VANISHED"),
        format!(
            "* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ({flagged}))\r\n\
* 2 FETCH (UID 2 FLAGS (\\Deleted) MODSEQ ({}))\r\n\
* 3 FETCH (UID 3 FLAGS (\\Deleted) MODSEQ ({}))\r\n\
* VANISHED 2:3\r\n",
            before + 2,
            before + 3
        )
    );
    // UID FETCH with VANISHED: the expunged UIDs of the set first.
    let r = imap.cmd(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {before} VANISHED)"
    ));
    assert_eq!(
        r,
        format!(
            "* VANISHED (EARLIER) 2:3\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ({flagged}))\r\n\
a5 OK FETCH completed\r\n"
        )
    );
    // A new session resynchronises from what it knew.
    let mut again = Imap::login(server.port(IMAP));
    again.cmd("ENABLE QRESYNC");
    let r = again.cmd(&format!("SELECT INBOX (QRESYNC ({v} {before} 1:4))"));
    let highest = modseqs_after_select(&r);
    let opening = format!(
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n\
* 2 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {v}] UIDs valid\r\n\
* OK [UIDNEXT 5] Predicted next UID\r\n* OK [MAILBOXID (F1)] Ok\r\n* OK [HIGHESTMODSEQ {highest}] Highest\r\n"
    );
    assert_eq!(
        r,
        format!(
            "{opening}* VANISHED (EARLIER) 2:3\r\n\
* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ({flagged}))\r\n\
a3 OK [READ-WRITE] SELECT completed\r\n"
        )
    );
    // A stale UIDVALIDITY gets a plain SELECT (after RFC 7162 3.2.11's
    // CLOSED); no QRESYNC without ENABLE.
    assert_eq!(
        again.cmd(&format!("SELECT INBOX (QRESYNC ({} {before}))", v + 1)),
        format!(
            "* OK [CLOSED] Previous mailbox closed\r\n{opening}a4 OK [READ-WRITE] SELECT completed\r\n"
        )
    );
    let mut plain = Imap::login(server.port(IMAP));
    assert_eq!(
        plain.cmd(&format!("SELECT INBOX (QRESYNC ({v} {before}))")),
        "a2 BAD QRESYNC must be enabled first (ENABLE QRESYNC)\r\n"
    );
    server.assert_consistent(ACCOUNT);
}

#[test]
fn list_extended_status_special_use_and_create_use() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("CREATE Projects/Roost (USE (\\Archive))"),
        "a2 OK [MAILBOXID (F8)] CREATE completed\r\n"
    );
    assert_eq!(
        imap.cmd("CREATE Odd (USE (\\Important))"),
        "a3 NO [USEATTR] \\Important is not a special use roost knows\r\n"
    );
    imap.cmd("UNSUBSCRIBE Projects");
    append(
        &mut imap,
        "f1",
        "Projects/Roost",
        b"Subject: p\r\n\r\nx\r\n",
    );
    // Several patterns, STATUS after each LIST line.
    assert_eq!(
        imap.cmd("LIST \"\" (INBOX Proj*) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))"),
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r\n\
* STATUS INBOX (MESSAGES 0 UNSEEN 0)\r\n\
* LIST (\\HasChildren) \"/\" Projects\r\n\
* STATUS Projects (MESSAGES 0 UNSEEN 0)\r\n\
* LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" Projects/Roost\r\n\
* STATUS Projects/Roost (MESSAGES 1 UNSEEN 1)\r\n\
a5 OK LIST completed\r\n"
    );
    // Subscribed only; RECURSIVEMATCH brings the parent with CHILDINFO.
    assert_eq!(
        imap.cmd("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Proj%"),
        "* LIST (\\HasChildren) \"/\" Projects (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n\
a6 OK LIST completed\r\n"
    );
    assert_eq!(
        imap.cmd("LIST (SUBSCRIBED) \"\" Proj*"),
        "* LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" Projects/Roost\r\n\
a7 OK LIST completed\r\n"
    );
    // SPECIAL-USE selection.
    assert_eq!(
        imap.cmd("LIST (SPECIAL-USE) \"\" *"),
        "* LIST (\\HasNoChildren \\Subscribed \\Sent) \"/\" Sent\r\n\
* LIST (\\HasNoChildren \\Subscribed \\Drafts) \"/\" Drafts\r\n\
* LIST (\\HasNoChildren \\Subscribed \\Trash) \"/\" Trash\r\n\
* LIST (\\HasNoChildren \\Subscribed \\Junk) \"/\" Junk\r\n\
* LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" Archive\r\n\
* LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" Projects/Roost\r\n\
a8 OK LIST completed\r\n"
    );
    assert_eq!(
        imap.cmd("LIST (RECURSIVEMATCH) \"\" *"),
        "a9 BAD RECURSIVEMATCH needs another selection option\r\n"
    );
}

#[test]
fn rename_inbox_moves_its_messages() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    for i in 0..3 {
        append(
            &mut imap,
            &format!("f{i}"),
            "INBOX",
            format!("Subject: {i}\r\n\r\nx\r\n").as_bytes(),
        );
    }
    assert_eq!(
        imap.cmd("RENAME INBOX Old/Inbox"),
        "a2 OK RENAME completed\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS INBOX (MESSAGES UIDNEXT)"),
        "* STATUS INBOX (MESSAGES 0 UIDNEXT 4)\r\na3 OK STATUS completed\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS Old/Inbox (MESSAGES UIDNEXT)"),
        "* STATUS Old/Inbox (MESSAGES 3 UIDNEXT 4)\r\na4 OK STATUS completed\r\n"
    );
    imap.cmd("SELECT Old/Inbox");
    assert_eq!(
        imap.cmd("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"),
        "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: 0\r\n\r\n)\r\n\
* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: 1\r\n\r\n)\r\n\
* 3 FETCH (UID 3 BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: 2\r\n\r\n)\r\n\
a6 OK FETCH completed\r\n"
    );
    // New mail still arrives in INBOX, under the next UID.
    let r = append(&mut imap, "f9", "INBOX", b"Subject: new\r\n\r\nx\r\n");
    assert!(r.ends_with(" 4] APPEND completed\r\n"), "{r}");
    server.assert_consistent(ACCOUNT);
}

#[test]
fn rev1_names_are_modified_utf7_and_rev2_names_utf8() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("CREATE Entw&APw-rfe"),
        "a2 OK [MAILBOXID (F7)] CREATE completed\r\n"
    );
    assert_eq!(
        imap.cmd("LIST \"\" Entw*"),
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" Entw&APw-rfe\r\na3 OK LIST completed\r\n"
    );
    assert_eq!(
        imap.cmd("CREATE Bad&Jjo"),
        "a4 BAD \"Bad&Jjo\" is not a valid modified UTF-7 mailbox name\r\n"
    );
    // The same mailbox, in UTF-8, once IMAP4rev2 is enabled.
    let mut rev2 = Imap::login(server.port(IMAP));
    assert_eq!(
        rev2.cmd("ENABLE IMAP4rev2"),
        "* ENABLED IMAP4rev2\r\na2 OK ENABLE completed\r\n"
    );
    assert_eq!(
        rev2.cmd("LIST \"\" Entw*"),
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" {9}\r\nEntwürfe\r\na3 OK LIST completed\r\n"
    );
    let v = uid_validity(&mut rev2, "\"Entwürfe\"");
    // RFC 9051 7.3.1: no RECENT, and the mailbox's LIST reply.
    let r = rev2.cmd("SELECT \"Entwürfe\"");
    let highest = modseqs_after_select(&r);
    assert_eq!(
        r,
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n\
* 0 EXISTS\r\n* OK [UIDVALIDITY {v}] UIDs valid\r\n\
* OK [UIDNEXT 1] Predicted next UID\r\n\
* LIST (\\Subscribed) \"/\" {{9}}\r\nEntwürfe\r\n\
* OK [MAILBOXID (F7)] Ok\r\n* OK [HIGHESTMODSEQ {highest}] Highest\r\na5 OK [READ-WRITE] SELECT completed\r\n"
        )
    );
    // rev2 SEARCH answers ESEARCH.
    assert_eq!(
        rev2.cmd("SEARCH ALL"),
        "* ESEARCH (TAG \"a6\")\r\na6 OK SEARCH completed\r\n"
    );
}

#[test]
fn fetch_savedate() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    append(&mut imap, "f1", "INBOX", b"Subject: s\r\n\r\nx\r\n");
    imap.cmd("SELECT INBOX");
    let r = imap.cmd("FETCH 1 (SAVEDATE)");
    // Saved just now, written in UTC as a date-time.
    let date = r
        .strip_prefix("* 1 FETCH (SAVEDATE \"")
        .and_then(|d| d.split_once("\")\r\n"))
        .map(|(d, rest)| (d.to_string(), rest.to_string()));
    let (date, rest) = date.unwrap_or_else(|| panic!("{r}"));
    assert_eq!(rest, "a3 OK FETCH completed\r\n");
    assert_eq!(date.len(), 26, "{date}");
    assert!(date.ends_with(" +0000"), "{date}");
}

/// RFC 9051 7.5.2: while a client counts on sequence numbers, another
/// session's expunge is not reported; a FETCH by sequence number skips
/// the message that is gone, and the EXPUNGE comes with the next command
/// that may carry it.
#[test]
fn expunges_wait_for_a_command_that_may_report_them() {
    let server = Server::start();
    let mut a = Imap::login(server.port(IMAP));
    for i in 0..3 {
        append(
            &mut a,
            &format!("f{i}"),
            "INBOX",
            b"Subject: e\r\n\r\nx\r\n",
        );
    }
    assert!(a.cmd("SELECT INBOX").contains("* 3 EXISTS\r\n"));
    let mut b = Imap::login(server.port(IMAP));
    b.cmd("SELECT INBOX");
    b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(
        b.cmd("EXPUNGE"),
        "* 2 EXPUNGE\r\na4 OK EXPUNGE completed\r\n"
    );
    assert_eq!(
        a.cmd("FETCH 1:3 (UID FLAGS)"),
        "* 1 FETCH (UID 1 FLAGS ())\r\n* 3 FETCH (UID 3 FLAGS ())\r\na3 OK FETCH completed\r\n"
    );
    // SEARCH numbers the same way and matches nothing that is gone.
    assert_eq!(
        a.cmd("SEARCH ALL"),
        "* SEARCH 1 3\r\na4 OK SEARCH completed\r\n"
    );
    assert_eq!(
        a.untagged_until("EXPUNGE"),
        "* 2 FETCH (UID 2 FLAGS (\\Deleted))\r\n* 2 EXPUNGE\r\n"
    );
    assert_eq!(
        a.cmd("FETCH 1:* (UID)"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\na5 OK FETCH completed\r\n"
    );
}

/// Review fixes: STORE .SILENT under CONDSTORE still reports the new
/// MODSEQ (RFC 7162 3.1.3); an expunge raises HIGHESTMODSEQ as SELECT sees
/// it; VANISHED needs QRESYNC; a rev2 SELECT answers LIST (RFC 9051 6.3.2).
#[test]
fn condstore_silent_store_expunge_modseq_and_rev2_select_list() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    for i in 0..2 {
        append(
            &mut imap,
            &format!("f{i}"),
            "INBOX",
            b"Subject: c\r\n\r\nx\r\n",
        );
    }
    let highest = modseqs_after_select(&imap.cmd("SELECT INBOX (CONDSTORE)"));
    assert_eq!(
        imap.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)"),
        format!(
            "* 1 FETCH (UID 1 MODSEQ ({}))\r\na3 OK STORE completed\r\n",
            highest + 1
        )
    );
    assert_eq!(
        imap.cmd("EXPUNGE"),
        "* 1 EXPUNGE\r\na4 OK EXPUNGE completed\r\n"
    );
    let after = modseqs_after_select(&imap.cmd("SELECT INBOX"));
    assert_eq!(after, highest + 2);
    assert_eq!(
        imap.cmd(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest} VANISHED)"
        )),
        "a6 BAD VANISHED needs QRESYNC to be enabled first\r\n"
    );
    let v = uid_validity(&mut imap, "INBOX");
    let mut rev2 = Imap::login(server.port(IMAP));
    rev2.cmd("ENABLE IMAP4rev2");
    assert_eq!(
        rev2.cmd("EXAMINE INBOX"),
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS ()] Limited\r\n* 1 EXISTS\r\n* OK [UIDVALIDITY {v}] UIDs valid\r\n\
* OK [UIDNEXT 3] Predicted next UID\r\n* LIST (\\Subscribed) \"/\" INBOX\r\n\
* OK [MAILBOXID (F1)] Ok\r\n* OK [HIGHESTMODSEQ {after}] Highest\r\na3 OK [READ-ONLY] EXAMINE completed\r\n"
        )
    );
}
