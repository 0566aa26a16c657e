//! IMAP extensions beyond the core, end to end over real sockets, each
//! asserting whole response lines in order: WITHIN (RFC 5032) and the
//! SAVEDATE search keys (RFC 8514).

mod common;
use common::*;

/// OLDER and YOUNGER count seconds back from now against INTERNALDATE;
/// SAVEDBEFORE, SAVEDON and SAVEDSINCE compare the day the message was
/// saved in the mailbox (today for both here), not its internal date.
#[test]
fn within_and_savedate_search_keys() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let old = b"Subject: old\r\n\r\nfrom 2020\r\n";
    let new = b"Subject: new\r\n\r\nfrom now\r\n";
    let r = append(&mut imap, "p1", "INBOX \"01-Jan-2020 10:00:00 +0000\"", old);
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    let r = append(&mut imap, "p2", "INBOX", new);
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    let cases: &[(&str, &str)] = &[
        ("SEARCH OLDER 86400", "* SEARCH 1"),
        ("SEARCH YOUNGER 86400", "* SEARCH 2"),
        ("SEARCH YOUNGER 4000000000", "* SEARCH 1 2"),
        ("SEARCH SAVEDBEFORE 1-Jan-2021", "* SEARCH"),
        ("SEARCH SAVEDON 1-Jan-2020", "* SEARCH"),
        ("SEARCH SAVEDSINCE 1-Jan-2021", "* SEARCH 1 2"),
        ("SEARCH SAVEDATESUPPORTED", "* SEARCH 1 2"),
        ("SEARCH NOT OLDER 86400 SAVEDSINCE 1-Jan-2021", "* SEARCH 2"),
    ];
    for (i, (command, untagged)) in cases.iter().enumerate() {
        let tag = format!("a{}", i + 3);
        assert_eq!(
            imap.cmd(command),
            format!("{untagged}\r\n{tag} OK SEARCH completed\r\n"),
            "{command}"
        );
    }
    assert_eq!(
        imap.cmd("SEARCH OLDER 0"),
        format!("a{} BAD Expected a non-zero number\r\n", cases.len() + 3)
    );
}

/// RFC 8437: UNAUTHENTICATE leaves the mailbox without expunging, forgets
/// the account and what ENABLE turned on, and LOGIN works again on the
/// same connection. Not valid before login.
#[test]
fn unauthenticate_resets_the_session_but_not_the_connection() {
    let server = Server::start();
    let mut imap = Imap::connect(server.port(IMAP));
    assert_eq!(
        imap.cmd("UNAUTHENTICATE"),
        "a1 BAD UNAUTHENTICATE requires authentication\r\n"
    );
    assert!(imap
        .cmd(&format!("LOGIN {ACCOUNT} {PASSWORD}"))
        .contains(" OK "));
    let r = append(&mut imap, "p1", "INBOX", b"Subject: keep\r\n\r\nme\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert_eq!(
        imap.cmd("ENABLE CONDSTORE"),
        "* ENABLED CONDSTORE\r\na3 OK ENABLE completed\r\n"
    );
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)"),
        "* 1 FETCH (UID 1 MODSEQ (4))\r\na5 OK STORE completed\r\n"
    );
    assert_eq!(
        imap.cmd("UNAUTHENTICATE"),
        "a6 OK Completed, now in not authenticated state\r\n"
    );
    assert_eq!(
        imap.cmd("SELECT INBOX"),
        "a7 BAD SELECT requires authentication\r\n"
    );
    assert_eq!(
        imap.cmd(&format!("LOGIN {ACCOUNT} {PASSWORD}")),
        format!("a8 OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n")
    );
    // Not expunged, and CONDSTORE is off again: no MODSEQ in FETCH.
    assert!(imap.cmd("SELECT INBOX").contains("* 1 EXISTS\r\n"));
    assert_eq!(
        imap.cmd("FETCH 1 (FLAGS)"),
        "* 1 FETCH (FLAGS (\\Deleted))\r\na10 OK FETCH completed\r\n"
    );
}

/// RFC 9208: one quota root, `""`, once the administrator sets limits;
/// STORAGE in KiB (usage rounded up) and MESSAGE exact; the message limit
/// refuses an APPEND with [OVERQUOTA]; SETQUOTA is the administrator's;
/// STATUS DELETED-STORAGE is what EXPUNGE would free.
#[test]
fn quota_roots_limits_and_deleted_storage() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("GETQUOTAROOT INBOX"),
        "* QUOTAROOT INBOX\r\na2 OK GETQUOTAROOT completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETQUOTA \"\""),
        "a3 NO [NONEXISTENT] No quota root \"\"\r\n"
    );
    server.admin_ok(&[
        "account",
        "quota",
        ACCOUNT,
        "--storage",
        "10240",
        "--messages",
        "3",
    ]);
    let one = b"Subject: one\r\n\r\nfirst message\r\n";
    let two = vec![b'x'; 1500];
    let two = [&b"Subject: two\r\n\r\n"[..], &two, b"\r\n"].concat();
    for (tag, m) in [("p1", &one[..]), ("p2", &two[..])] {
        let r = append(&mut imap, tag, "INBOX", m);
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    let kib = (one.len() + two.len()).div_ceil(1024);
    assert_eq!(
        imap.cmd("GETQUOTAROOT Archive"),
        format!(
            "* QUOTAROOT Archive \"\"\r\n* QUOTA \"\" (STORAGE {kib} 10 MESSAGE 2 3)\r\n\
             a4 OK GETQUOTAROOT completed\r\n"
        )
    );
    assert_eq!(
        imap.cmd("GETQUOTA \"\""),
        format!("* QUOTA \"\" (STORAGE {kib} 10 MESSAGE 2 3)\r\na5 OK GETQUOTA completed\r\n")
    );
    let r = append(&mut imap, "p3", "INBOX", b"Subject: three\r\n\r\n3\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    imap.send_raw(b"p4 APPEND INBOX {5}\r\n");
    assert_eq!(
        imap.line(),
        "p4 NO [OVERQUOTA] over quota: 3 of 3 messages stored, 1 more needed\r\n"
    );
    assert_eq!(
        imap.cmd("SETQUOTA \"\" (STORAGE 100000)"),
        "a6 NO [NOPERM] Quotas are set by the administrator\r\n"
    );
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)"),
        "a8 OK STORE completed\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS INBOX (DELETED DELETED-STORAGE)"),
        format!(
            "* STATUS INBOX (DELETED 1 DELETED-STORAGE {})\r\na9 OK STATUS completed\r\n",
            two.len()
        )
    );
}

/// RFC 8474: MAILBOXID from CREATE, STATUS and SELECT, the same after a
/// rename; EMAILID and THREADID the same after a MOVE.
#[test]
fn object_ids_stay_across_renames_and_moves() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("CREATE Work"),
        "a2 OK [MAILBOXID (F7)] CREATE completed\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS Work (MAILBOXID MESSAGES)"),
        "* STATUS Work (MAILBOXID (F7) MESSAGES 0)\r\na3 OK STATUS completed\r\n"
    );
    assert_eq!(imap.cmd("RENAME Work Play"), "a4 OK RENAME completed\r\n");
    assert_eq!(
        imap.cmd("STATUS Play (MAILBOXID)"),
        "* STATUS Play (MAILBOXID (F7))\r\na5 OK STATUS completed\r\n"
    );
    let r = append(&mut imap, "p1", "INBOX", b"Subject: ids\r\n\r\nids\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert!(imap
        .cmd("SELECT INBOX")
        .contains("* OK [MAILBOXID (F1)] Ok\r\n"));
    let before = imap.cmd("FETCH 1 (EMAILID THREADID)");
    let ids = before
        .strip_prefix("* 1 FETCH (")
        .and_then(|r| r.split_once(")\r\n"))
        .map(|(ids, _)| ids.to_string())
        .unwrap_or_else(|| panic!("{before}"));
    let (email, thread) = ids.split_once(") ").expect("two ids");
    assert!(
        email.starts_with("EMAILID (M") && thread.starts_with("THREADID (T"),
        "{ids}"
    );
    assert!(imap.cmd("MOVE 1 Play").ends_with("MOVE completed\r\n"));
    let r = imap.cmd("SELECT Play");
    assert!(r.contains("* OK [MAILBOXID (F7)] Ok\r\n"), "{r}");
    assert_eq!(
        imap.cmd("FETCH 1 (EMAILID THREADID)"),
        format!("* 1 FETCH ({ids})\r\na10 OK FETCH completed\r\n")
    );
}

/// RFC 8970: FETCH PREVIEW and PREVIEW (LAZY) give the start of the
/// message's text, white space made single, the plain part preferred; a
/// message without text previews as an empty string.
#[test]
fn fetch_preview() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let text = b"Subject: figures\r\n\r\nHello   there,\r\n\r\n  the figures\tare in.\r\n";
    let image = b"Subject: pic\r\nContent-Type: image/png\r\n\r\niVBORw0KGgo=\r\n";
    for (tag, m) in [("p1", &text[..]), ("p2", &image[..])] {
        let r = append(&mut imap, tag, "INBOX", m);
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("FETCH 1:2 (PREVIEW)"),
        "* 1 FETCH (PREVIEW \"Hello there, the figures are in.\")\r\n\
         * 2 FETCH (PREVIEW \"\")\r\na3 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID FETCH 1 (PREVIEW (LAZY))"),
        "* 1 FETCH (UID 1 PREVIEW \"Hello there, the figures are in.\")\r\n\
         a4 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("FETCH 1 (PREVIEW (EAGER))"),
        "a5 BAD Unknown preview modifier EAGER\r\n"
    );
}

/// RFC 5256 SORT with RFC 5957's DISPLAYFROM: base subjects, sent dates,
/// first-address local parts, display names, sizes, REVERSE, the search
/// part, UID SORT, and a charset roost does not know.
#[test]
fn sort_by_each_key() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let m1 = "From: \"Zed\" <alice@example.org>\r\nSubject: Re: beta\r\n\
Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n\r\nshort\r\n";
    let m2 = format!(
        "From: bob@example.org\r\nSubject: alpha\r\n\
Date: Tue, 01 Dec 2026 23:30:00 -0500\r\n\r\n{}\r\n",
        "x".repeat(600)
    );
    let m3 = format!(
        "From: Amy <carol@example.org>\r\nSubject: [team] Gamma\r\n\
Date: Thu, 03 Dec 2026 08:00:00 +0000\r\n\r\n{}\r\n",
        "y".repeat(100)
    );
    for (tag, arrived, m) in [
        ("p1", "02-Dec-2026 12:00:00 +0000", m1.as_bytes()),
        ("p2", "01-Dec-2026 12:00:00 +0000", m2.as_bytes()),
        ("p3", "03-Dec-2026 12:00:00 +0000", m3.as_bytes()),
    ] {
        let r = append(&mut imap, tag, &format!("INBOX \"{arrived}\""), m);
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    let cases: &[(&str, &str)] = &[
        ("SORT (SUBJECT) UTF-8 ALL", "* SORT 2 1 3"),
        // m2 was sent at 04:30 UTC on 2 Dec, before m1.
        ("SORT (DATE) UTF-8 ALL", "* SORT 2 1 3"),
        ("SORT (REVERSE DATE) UTF-8 ALL", "* SORT 3 1 2"),
        ("SORT (FROM) UTF-8 ALL", "* SORT 1 2 3"),
        ("SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 3 2 1"),
        ("SORT (SIZE) UTF-8 ALL", "* SORT 1 3 2"),
        ("SORT (REVERSE SIZE) US-ASCII NOT FROM bob", "* SORT 3 1"),
        ("SORT (REVERSE ARRIVAL) UTF-8 ALL", "* SORT 3 1 2"),
        ("SORT (TO CC SUBJECT) UTF-8 ALL", "* SORT 2 1 3"),
    ];
    for (i, (command, untagged)) in cases.iter().enumerate() {
        let tag = format!("a{}", i + 3);
        assert_eq!(
            imap.cmd(command),
            format!("{untagged}\r\n{tag} OK SORT completed\r\n"),
            "{command}"
        );
    }
    assert_eq!(
        imap.cmd("UID SORT (SUBJECT) UTF-8 UID 1:2"),
        "* SORT 2 1\r\na12 OK UID SORT completed\r\n"
    );
    // RFC 5267 ESORT: ESEARCH, MIN and MAX first and last in sort order,
    // ALL in sort order with ranges only for ascending runs.
    assert_eq!(
        imap.cmd("SORT RETURN (MIN MAX COUNT ALL) (REVERSE SIZE) UTF-8 ALL"),
        "* ESEARCH (TAG \"a13\") MIN 2 MAX 1 COUNT 3 ALL 2:3,1\r\na13 OK SORT completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID SORT RETURN () (SUBJECT) UTF-8 ALL"),
        "* ESEARCH (TAG \"a14\") UID ALL 2,1,3\r\na14 OK UID SORT completed\r\n"
    );
    assert_eq!(
        imap.cmd("SORT RETURN (COUNT ALL) (DATE) UTF-8 SUBJECT none"),
        "* ESEARCH (TAG \"a15\") COUNT 0\r\na15 OK SORT completed\r\n"
    );
    assert_eq!(
        imap.cmd("SORT RETURN (ALL) (FROM) UTF-8 ALL"),
        "* ESEARCH (TAG \"a16\") ALL 1:3\r\na16 OK SORT completed\r\n"
    );
    assert_eq!(
        imap.cmd("SORT (SUBJECT) ISO-8859-9 ALL"),
        "a17 NO [BADCHARSET (UTF-8 US-ASCII)] Charset ISO-8859-9 is not supported\r\n"
    );
    // RFC 7162 3.1.5: a MODSEQ key adds the highest modseq matched.
    let modseqs = imap.cmd("FETCH 1:* (MODSEQ)");
    let highest: u64 = modseqs
        .lines()
        .filter_map(|l| l.split("MODSEQ (").nth(1))
        .filter_map(|m| m.trim_end_matches("))").parse().ok())
        .max()
        .expect("modseqs");
    assert_eq!(
        imap.cmd("SORT (SIZE) UTF-8 MODSEQ 1"),
        format!("* SORT 1 3 2 (MODSEQ {highest})\r\na19 OK SORT completed\r\n")
    );
    assert_eq!(
        imap.cmd("SORT (COLOUR) UTF-8 ALL"),
        "a20 BAD Unknown sort key COLOUR\r\n"
    );
}

/// RFC 5256 3 THREAD=ORDEREDSUBJECT: one thread per base subject, in
/// sent-date order, the first message the parent of the rest; threads in
/// the order of their first messages.
#[test]
fn thread_orderedsubject() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let messages = [
        ("Re: beta", "Wed, 02 Dec 2026 10:00:00 +0000"),
        ("alpha", "Tue, 01 Dec 2026 12:00:00 +0000"),
        ("beta", "Tue, 01 Dec 2026 08:00:00 +0000"),
        ("[x] beta (fwd)", "Thu, 03 Dec 2026 09:00:00 +0000"),
    ];
    for (i, (subject, date)) in messages.iter().enumerate() {
        let m = format!("From: a@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n\r\nx\r\n");
        let r = append(&mut imap, &format!("p{i}"), "INBOX", m.as_bytes());
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL"),
        "* THREAD (3 (1)(4))(2)\r\na3 OK THREAD completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID THREAD ORDEREDSUBJECT UTF-8 NOT SUBJECT beta"),
        "* THREAD (2)\r\na4 OK UID THREAD completed\r\n"
    );
    assert_eq!(
        imap.cmd("THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing"),
        "* THREAD\r\na5 OK THREAD completed\r\n"
    );
    assert_eq!(
        imap.cmd("THREAD REFS UTF-8 ALL"),
        "a6 BAD Unsupported threading algorithm REFS\r\n"
    );
}

/// RFC 5256 3 THREAD=REFERENCES: replies below what they answer (by
/// References, else In-Reply-To), a missing parent kept as a dummy when
/// it has several replies, parentless threads of one base subject merged,
/// siblings and threads in sent-date order.
#[test]
fn thread_references() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let messages = [
        // 1: a thread's start.
        "Message-ID: <a@x>\r\nSubject: plans\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000",
        // 2: answers 1.
        "Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nSubject: Re: plans\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000",
        // 3: answers 2 (References win over In-Reply-To).
        "Message-ID: <c@x>\r\nReferences: <a@x> <b@x>\r\nIn-Reply-To: <zz@x>\r\nSubject: Re: plans\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000",
        // 4 and 5: answer a message that is not here, earliest first.
        "Message-ID: <d@x>\r\nIn-Reply-To: <gone@x>\r\nSubject: Re: lost\r\nDate: Wed, 02 Dec 2026 11:00:00 +0000",
        "Message-ID: <e@x>\r\nIn-Reply-To: <gone@x>\r\nSubject: Re: lost\r\nDate: Tue, 01 Dec 2026 11:00:00 +0000",
        // 6: no links, but the subject of 1's thread: merged below it.
        "Message-ID: <f@x>\r\nSubject: Re: Plans\r\nDate: Thu, 03 Dec 2026 08:00:00 +0000",
        // 7: alone, earliest of all.
        "Message-ID: <g@x>\r\nSubject: other\r\nDate: Mon, 30 Nov 2026 08:00:00 +0000",
    ];
    for (i, head) in messages.iter().enumerate() {
        let m = format!("From: a@example.org\r\n{head}\r\n\r\nx\r\n");
        let r = append(&mut imap, &format!("p{i}"), "INBOX", m.as_bytes());
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("THREAD REFERENCES UTF-8 ALL"),
        "* THREAD (7)(1 (2 3)(6))((5)(4))\r\na3 OK THREAD completed\r\n"
    );
    assert_eq!(
        imap.cmd("STORE 2 +FLAGS (\\Seen)"),
        "* 2 FETCH (UID 2 FLAGS (\\Seen))\r\na4 OK STORE completed\r\n"
    );
    // Only what matched is threaded: without 2, 3's parent is a dummy
    // with one child, which gives way to it.
    assert_eq!(
        imap.cmd("UID THREAD REFERENCES UTF-8 UNSEEN"),
        "* THREAD (7)(1 (3)(6))((5)(4))\r\na5 OK UID THREAD completed\r\n"
    );
}

/// RFC 9394 PARTIAL: pages of SEARCH, UID SEARCH and SORT results from
/// either end (`NIL` past the end), `$` holding just the page, and the
/// FETCH modifier paging the messages a set names.
#[test]
fn partial_pages_results() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    for i in 1..=6u32 {
        // Bodies shrink: SORT (SIZE) is the reverse of arrival.
        let m = format!(
            "Subject: m{i}\r\n\r\n{}\r\n",
            "x".repeat(((7 - i) * 10) as usize)
        );
        let r = append(&mut imap, &format!("p{i}"), "INBOX", m.as_bytes());
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("SEARCH RETURN (PARTIAL 2:3) ALL"),
        "* ESEARCH (TAG \"a3\") PARTIAL (2:3 2:3)\r\na3 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID SEARCH RETURN (COUNT PARTIAL -1:-2) NOT SUBJECT m6"),
        "* ESEARCH (TAG \"a4\") UID COUNT 5 PARTIAL (-1:-2 4:5)\r\na4 OK UID SEARCH completed\r\n"
    );
    // A reversed range is read in order; a page past the end is NIL.
    assert_eq!(
        imap.cmd("SEARCH RETURN (PARTIAL 9:7) ALL"),
        "* ESEARCH (TAG \"a5\") PARTIAL (7:9 NIL)\r\na5 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("SORT RETURN (PARTIAL 2:4) (SIZE) UTF-8 ALL"),
        "* ESEARCH (TAG \"a6\") PARTIAL (2:4 5,4,3)\r\na6 OK SORT completed\r\n"
    );
    // SAVE with PARTIAL alone keeps the page.
    assert_eq!(
        imap.cmd("SEARCH RETURN (SAVE PARTIAL 1:2) ALL"),
        "* ESEARCH (TAG \"a7\") PARTIAL (1:2 1:2)\r\na7 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("FETCH $ (UID)"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\na8 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID FETCH 1:* (FLAGS) (PARTIAL -1:-2)"),
        "* 5 FETCH (UID 5 FLAGS ())\r\n* 6 FETCH (UID 6 FLAGS ())\r\na9 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("FETCH 6,2,4 (UID) (PARTIAL 2:2)"),
        "* 4 FETCH (UID 4)\r\na10 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("SEARCH RETURN (PARTIAL 0:2) ALL"),
        "a11 BAD Expected a non-zero number\r\n"
    );
    assert_eq!(
        imap.cmd("SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL"),
        "a12 BAD PARTIAL given twice\r\n"
    );
}

/// RFC 8508 REPLACE and UID REPLACE: the new message stored (APPENDUID
/// in an untagged OK, EXISTS when it lands in the selected mailbox), then
/// the old one expunged; refused before the literal when the old message
/// is missing, the mailbox is read-only or the quota is full, and the old
/// message stays.
#[test]
fn replace_is_append_then_expunge() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    for (tag, m) in [
        ("p1", "Subject: draft\r\n\r\nv1\r\n"),
        ("p2", "Subject: other\r\n\r\no\r\n"),
    ] {
        let r = append(&mut imap, tag, "Drafts", m.as_bytes());
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    let drafts = uid_validity(&mut imap, "Drafts");
    let inbox = uid_validity(&mut imap, "INBOX");
    assert!(imap.cmd("SELECT Drafts").contains(" OK [READ-WRITE] "));
    // The literal's continuation, or the answer that refused it.
    let replace = |imap: &mut Imap, tag: &str, head: &str, m: &[u8]| {
        imap.send_raw(format!("{tag} {head} {{{}}}\r\n", m.len()).as_bytes());
        let first = imap.line();
        if first != "+ Ready for literal data\r\n" {
            return first;
        }
        imap.send_raw(m);
        imap.send_raw(b"\r\n");
        String::from_utf8_lossy(&imap.until_tagged(tag)).into_owned()
    };
    let v2 = b"Subject: draft\r\n\r\nv2\r\n";
    assert_eq!(
        replace(&mut imap, "r1", "REPLACE 1 Drafts (\\Draft)", v2),
        format!(
            "* OK [APPENDUID {drafts} 3] Replacement message stored\r\n* 3 EXISTS\r\n\
             * 1 EXPUNGE\r\nr1 OK REPLACE completed\r\n"
        )
    );
    assert_eq!(
        imap.cmd("FETCH 1:* (UID FLAGS BODY.PEEK[TEXT])"),
        "* 1 FETCH (UID 2 FLAGS () BODY[TEXT] {3}\r\no\r\n)\r\n\
         * 2 FETCH (UID 3 FLAGS (\\Draft) BODY[TEXT] {4}\r\nv2\r\n)\r\na5 OK FETCH completed\r\n"
    );
    // Into another mailbox: no EXISTS here.
    assert_eq!(
        replace(
            &mut imap,
            "r2",
            "UID REPLACE 2 INBOX",
            b"Subject: moved\r\n\r\nm\r\n"
        ),
        format!(
            "* OK [APPENDUID {inbox} 1] Replacement message stored\r\n* 1 EXPUNGE\r\n\
             r2 OK REPLACE completed\r\n"
        )
    );
    // Refused before the literal; nothing changes.
    assert_eq!(
        replace(&mut imap, "r3", "UID REPLACE 99 Drafts", v2),
        "r3 NO [NONEXISTENT] No message with UID 99 to replace\r\n"
    );
    assert_eq!(
        replace(&mut imap, "r4", "REPLACE 7 Drafts", v2),
        "r4 BAD Invalid message sequence number (the mailbox has 1 messages)\r\n"
    );
    assert_eq!(
        replace(&mut imap, "r5", "REPLACE 1 Nowhere", v2),
        "r5 NO [TRYCREATE] no mailbox named \"Nowhere\"\r\n"
    );
    assert_eq!(
        imap.cmd("UID FETCH 1:* (UID)"),
        "* 1 FETCH (UID 3)\r\na6 OK FETCH completed\r\n"
    );
    // Quota full: refused at the literal, and with a non-synchronizing
    // literal the data is read and dropped; the old message stays.
    server.admin_ok(&["account", "quota", ACCOUNT, "--messages", "2"]);
    assert_eq!(
        replace(&mut imap, "r6", "REPLACE 1 Drafts", v2),
        "r6 NO [OVERQUOTA] over quota: 2 of 2 messages stored, 1 more needed\r\n"
    );
    imap.send_raw(b"r7 REPLACE 1 Drafts {4+}\r\nv3\r\n\r\n");
    assert_eq!(
        String::from_utf8_lossy(&imap.until_tagged("r7")),
        "r7 NO [OVERQUOTA] over quota: 2 of 2 messages stored, 1 more needed\r\n"
    );
    assert_eq!(
        imap.cmd("UID FETCH 1:* (UID)"),
        "* 1 FETCH (UID 3)\r\na7 OK FETCH completed\r\n"
    );
    assert!(imap.cmd("EXAMINE Drafts").contains(" OK [READ-ONLY] "));
    assert_eq!(
        replace(&mut imap, "r8", "REPLACE 1 Drafts", v2),
        "r8 NO [CANNOT] Mailbox is read-only (EXAMINE)\r\n"
    );
    assert_eq!(imap.cmd("UNSELECT"), "a9 OK Mailbox closed\r\n");
    assert_eq!(
        imap.cmd("ENABLE UIDONLY"),
        "* ENABLED UIDONLY\r\na10 OK ENABLE completed\r\n"
    );
    assert!(imap.cmd("SELECT Drafts").contains(" OK [READ-WRITE] "));
    assert_eq!(
        replace(&mut imap, "r9", "REPLACE 1 Drafts", v2),
        "r9 BAD [UIDREQUIRED] Message numbers are not allowed once UIDONLY is enabled\r\n"
    );
    assert_eq!(
        imap.cmd("REPLACE 1 Drafts"),
        "a12 BAD REPLACE needs a message literal\r\n"
    );
}

/// RFC 5464 METADATA and RFC 9590 LIST-METADATA: server and mailbox
/// entries, private and shared, names without case, NIL for what is not
/// there and to remove, DEPTH and MAXSIZE with [METADATA LONGENTRIES],
/// the value-size and entry-count limits at the edge and one past, entries
/// kept across a rename and gone with the mailbox, and METADATA after each
/// LIST line.
#[test]
fn metadata_entries_limits_and_list() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert_eq!(
        imap.cmd("GETMETADATA \"\" /shared/comment"),
        "* METADATA \"\" (/shared/comment NIL)\r\na2 OK GETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA \"\" (/shared/comment \"server notes\")"),
        "a3 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA INBOX (/private/comment \"mine\" /shared/Comment {5+}\r\nhello)"),
        "a4 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA INBOX (/shared/comment /private/comment /private/none)"),
        "* METADATA INBOX (/private/comment \"mine\" /private/none NIL /shared/comment \"hello\")\r\n\
         a5 OK GETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA \"\" /shared/comment"),
        "* METADATA \"\" (/shared/comment \"server notes\")\r\na6 OK GETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA INBOX (/private/vendor/x/a \"1\" /private/vendor/x/a/b \"22\")"),
        "a7 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA (DEPTH 1) INBOX /private/vendor/x"),
        "* METADATA INBOX (/private/vendor/x NIL /private/vendor/x/a \"1\")\r\n\
         a8 OK GETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA (MAXSIZE 1 DEPTH infinity) INBOX /private/vendor/x"),
        "* METADATA INBOX (/private/vendor/x NIL /private/vendor/x/a \"1\")\r\n\
         a9 OK [METADATA LONGENTRIES 2] GETMETADATA completed\r\n"
    );
    // NIL removes.
    assert_eq!(
        imap.cmd("SETMETADATA INBOX (/private/comment NIL)"),
        "a10 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA INBOX /private/comment"),
        "* METADATA INBOX (/private/comment NIL)\r\na11 OK GETMETADATA completed\r\n"
    );
    // MAX_METADATA_VALUE (64 KiB) is taken; one octet more is not, and
    // nothing of that command is set.
    let edge = "v".repeat(64 * 1024);
    assert_eq!(
        imap.cmd(&format!(
            "SETMETADATA INBOX (/private/big {{{}+}}\r\n{edge})",
            edge.len()
        )),
        "a12 OK SETMETADATA completed\r\n"
    );
    let past = "v".repeat(64 * 1024 + 1);
    assert_eq!(
        imap.cmd(&format!(
            "SETMETADATA INBOX (/private/small \"s\" /private/big {{{}+}}\r\n{past})",
            past.len()
        )),
        "a13 NO [METADATA MAXSIZE 65536] a value is longer than 65536 octets\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA INBOX /private/small"),
        "* METADATA INBOX (/private/small NIL)\r\na14 OK GETMETADATA completed\r\n"
    );
    // MAX_METADATA_ENTRIES (1000): 5 are set; 995 more reach it, one
    // more passes it.
    let many: Vec<String> = (0..995).map(|i| format!("/private/n{i} \"x\"")).collect();
    assert_eq!(
        imap.cmd(&format!("SETMETADATA \"\" ({})", many.join(" "))),
        "a15 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA \"\" (/private/one-more \"x\")"),
        "a16 NO [METADATA TOOMANY] too many entries (at most 1000)\r\n"
    );
    // Kept across a rename, gone with the mailbox.
    assert_eq!(
        imap.cmd("CREATE Projects"),
        "a17 OK [MAILBOXID (F7)] CREATE completed\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA \"\" (/private/n0 NIL)"),
        "a18 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA Projects (/shared/comment \"p\")"),
        "a19 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("RENAME Projects Work"),
        "a20 OK RENAME completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA Work /shared/comment"),
        "* METADATA Work (/shared/comment \"p\")\r\na21 OK GETMETADATA completed\r\n"
    );
    assert_eq!(imap.cmd("DELETE Work"), "a22 OK DELETE completed\r\n");
    assert_eq!(
        imap.cmd("CREATE Work"),
        "a23 OK [MAILBOXID (F8)] CREATE completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA Work /shared/comment"),
        "* METADATA Work (/shared/comment NIL)\r\na24 OK GETMETADATA completed\r\n"
    );
    // The deleted mailbox's entry gave its place back.
    assert_eq!(
        imap.cmd("SETMETADATA \"\" (/private/one-more \"x\")"),
        "a25 OK SETMETADATA completed\r\n"
    );
    assert_eq!(
        imap.cmd("LIST \"\" INBOX RETURN (METADATA (/shared/comment /private/none))"),
        "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r\n\
         * METADATA INBOX (/private/none NIL /shared/comment \"hello\")\r\n\
         a26 OK LIST completed\r\n"
    );
    assert_eq!(
        imap.cmd("GETMETADATA Nowhere /shared/comment"),
        "a27 NO [NONEXISTENT] No mailbox named \"Nowhere\"\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA Nowhere (/shared/comment \"x\")"),
        "a28 NO [NONEXISTENT] no mailbox named \"Nowhere\"\r\n"
    );
    assert_eq!(
        imap.cmd("SETMETADATA INBOX (/other \"x\")"),
        "a29 BAD Invalid entry name /other\r\n"
    );
    // RFC 7162 3.2: a mailbox's METADATA change raises its modseq.
    assert_eq!(
        imap.cmd("SETMETADATA \"\" (/private/one-more NIL)"),
        "a30 OK SETMETADATA completed\r\n"
    );
    let modseq = |r: String| -> u64 {
        let n = r.split("HIGHESTMODSEQ ").nth(1).expect("modseq");
        n[..n.find(')').expect(")")].parse().expect("number")
    };
    let before = modseq(imap.cmd("STATUS Work (HIGHESTMODSEQ)"));
    assert_eq!(
        imap.cmd("SETMETADATA Work (/shared/comment \"w\")"),
        "a32 OK SETMETADATA completed\r\n"
    );
    let after = modseq(imap.cmd("STATUS Work (HIGHESTMODSEQ)"));
    assert!(after > before, "{before} then {after}");
}

/// RFC 4469 CATENATE: a message made of TEXT literals and URL parts of
/// the user's own messages (a section, a partial range, an absolute URL
/// naming the user), one made of URLs alone (no literal at all), with a
/// plain message in one MULTIAPPEND; a bad URL is [BADURL] and, like a
/// quota failure, leaves nothing of the command stored.
#[test]
fn catenate_builds_messages_from_parts() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let source = b"From: a@example.org\r\nSubject: source\r\n\r\nhello world\r\n";
    let r = append(&mut imap, "p1", "INBOX", source);
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    let inbox = uid_validity(&mut imap, "INBOX");
    let drafts = uid_validity(&mut imap, "Drafts");
    let head = "From: me@example.org\r\nSubject: reply\r\n\r\n> ";
    let tail = "-- \r\nme\r\n";
    let text_url = format!("/INBOX;UIDVALIDITY={inbox}/;UID=1/;SECTION=TEXT");
    assert_eq!(
        imap.cmd(&format!(
            "APPEND Drafts (\\Draft) CATENATE (TEXT {{{}+}}\r\n{head} URL \"{text_url}\" TEXT {{{}+}}\r\n{tail})",
            head.len(),
            tail.len()
        )),
        format!("a4 OK [APPENDUID {drafts} 1] APPEND completed\r\n")
    );
    let built = format!("{head}hello world\r\n{tail}");
    assert!(imap.cmd("SELECT Drafts").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("FETCH 1 (FLAGS BODY.PEEK[])"),
        format!(
            "* 1 FETCH (FLAGS (\\Draft) BODY[] {{{}}}\r\n{built})\r\na6 OK FETCH completed\r\n",
            built.len()
        )
    );
    // URLs alone, no literal: the whole message, then the header of it
    // through an absolute URL naming this user, and a partial range.
    assert_eq!(
        imap.cmd(&format!(
            "APPEND Drafts CATENATE (URL \"/INBOX;UIDVALIDITY={inbox}/;UID=1\" \
             URL \"imap://roost%40localhost@localhost/INBOX/;UID=1/;SECTION=HEADER\" \
             URL \"/INBOX/;UID=1/;PARTIAL=2.3\")"
        )),
        format!("* 2 EXISTS\r\na7 OK [APPENDUID {drafts} 2] APPEND completed\r\n")
    );
    let header = "From: a@example.org\r\nSubject: source\r\n\r\n";
    let expected = [&String::from_utf8_lossy(source), header, "om:"].concat();
    assert_eq!(
        imap.cmd("FETCH 2 BODY.PEEK[]"),
        format!(
            "* 2 FETCH (BODY[] {{{}}}\r\n{expected})\r\na8 OK FETCH completed\r\n",
            expected.len()
        )
    );
    // A CATENATE and a plain message in one MULTIAPPEND.
    assert_eq!(
        imap.cmd("APPEND Drafts CATENATE (URL \"/INBOX/;UID=1\") (\\Seen) {5+}\r\nhello"),
        format!("* 4 EXISTS\r\na9 OK [APPENDUID {drafts} 3:4] APPEND completed\r\n")
    );
    // Bad URLs: nothing of the command is stored.
    for (n, (url, why)) in [
        (
            "/INBOX;UIDVALIDITY=1/;UID=1".to_string(),
            "The mailbox's UIDVALIDITY has changed",
        ),
        (
            format!("/INBOX;UIDVALIDITY={inbox}/;UID=9"),
            "No such message",
        ),
        ("/Nowhere/;UID=1".to_string(), "No such mailbox"),
        (
            "imap://bob@localhost/INBOX/;UID=1".to_string(),
            "The URL names another user",
        ),
        ("/INBOX/;UID=1/;SECTION=7".to_string(), "No such section"),
    ]
    .iter()
    .enumerate()
    {
        let tag = format!("a{}", 10 + n);
        assert_eq!(
            imap.cmd(&format!(
                "APPEND Drafts CATENATE (URL \"/INBOX/;UID=1\") CATENATE (URL \"{url}\")"
            )),
            format!("{tag} NO [BADURL {url}] {why}\r\n")
        );
    }
    assert_eq!(
        imap.cmd("STATUS Drafts (MESSAGES)"),
        "* STATUS Drafts (MESSAGES 4)\r\na15 OK STATUS completed\r\n"
    );
    // Over the message quota: two CATENATE messages where one fits, and
    // neither is stored.
    server.admin_ok(&["account", "quota", ACCOUNT, "--messages", "6"]);
    assert_eq!(
        imap.cmd("APPEND Drafts CATENATE (URL \"/INBOX/;UID=1\") CATENATE (URL \"/INBOX/;UID=1\")"),
        "a16 NO [OVERQUOTA] over quota: 5 of 6 messages stored, 2 more needed\r\n"
    );
    assert_eq!(
        imap.cmd("STATUS Drafts (MESSAGES)"),
        "* STATUS Drafts (MESSAGES 4)\r\na17 OK STATUS completed\r\n"
    );
    assert_eq!(
        imap.cmd("APPEND Drafts CATENATE ()"),
        "a18 BAD CATENATE needs at least one part\r\n"
    );
    // Synchronizing TEXT literals each wait for their continuation.
    server.admin_ok(&["account", "quota", ACCOUNT, "--messages", "100"]);
    imap.send_raw(b"s1 APPEND Drafts CATENATE (TEXT {3}\r\n");
    assert_eq!(imap.line(), "+ Ready for literal data\r\n");
    imap.send_raw(b"abc URL \"/INBOX/;UID=1/;SECTION=TEXT\" TEXT {2}\r\n");
    assert_eq!(imap.line(), "+ Ready for literal data\r\n");
    imap.send_raw(b"de)\r\n");
    assert_eq!(
        String::from_utf8_lossy(&imap.until_tagged("s1")),
        format!("* 5 EXISTS\r\ns1 OK [APPENDUID {drafts} 5] APPEND completed\r\n")
    );
    assert_eq!(
        imap.cmd("FETCH 5 BODY.PEEK[]"),
        "* 5 FETCH (BODY[] {18}\r\nabchello world\r\nde)\r\na19 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("APPEND Drafts (\\Seen)"),
        "a20 BAD APPEND needs a message literal\r\n"
    );
}

/// RFC 5465 NOTIFY with two sessions: the watching session hears, with
/// no command of its own, STATUS for message changes in the mailboxes its
/// groups name, LIST for mailboxes created, renamed, deleted and
/// (un)subscribed; nothing about mailboxes it does not watch; its
/// selected mailbox keeps its usual updates; NOTIFY NONE stops it all;
/// unsupported events are [BADEVENT].
#[test]
fn notify_reports_other_mailboxes_to_a_second_session() {
    let server = Server::start();
    let mut watcher = Imap::login(server.port(IMAP));
    let mut other = Imap::login(server.port(IMAP));
    let drafts = uid_validity(&mut watcher, "Drafts");
    assert_eq!(
        watcher.cmd(
            "NOTIFY SET STATUS (mailboxes Drafts (MessageNew MessageExpunge FlagChange)) \
             (personal (MailboxName SubscriptionChange))"
        ),
        format!(
            "* STATUS Drafts (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {drafts} UNSEEN 0)\r\n\
             a3 OK NOTIFY completed\r\n"
        )
    );
    let r = append(&mut other, "p1", "Drafts", b"Subject: d\r\n\r\nd\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert_eq!(
        watcher.line(),
        format!("* STATUS Drafts (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {drafts} UNSEEN 1)\r\n")
    );
    // INBOX is watched for names only: no STATUS for its new message.
    let r = append(&mut other, "p2", "INBOX", b"Subject: i\r\n\r\ni\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert_eq!(
        other.cmd("CREATE Lists"),
        "a2 OK [MAILBOXID (F7)] CREATE completed\r\n"
    );
    assert_eq!(watcher.line(), "* LIST () \"/\" Lists\r\n");
    assert_eq!(
        other.cmd("RENAME Lists Groups"),
        "a3 OK RENAME completed\r\n"
    );
    assert_eq!(
        watcher.line(),
        "* LIST () \"/\" Groups (\"OLDNAME\" (\"Lists\"))\r\n"
    );
    // New mailboxes start subscribed.
    assert_eq!(
        other.cmd("UNSUBSCRIBE Groups"),
        "a4 OK UNSUBSCRIBE completed\r\n"
    );
    assert_eq!(watcher.line(), "* LIST () \"/\" Groups\r\n");
    assert_eq!(
        other.cmd("SUBSCRIBE Groups"),
        "a5 OK SUBSCRIBE completed\r\n"
    );
    assert_eq!(watcher.line(), "* LIST (\\Subscribed) \"/\" Groups\r\n");
    assert_eq!(other.cmd("DELETE Groups"), "a6 OK DELETE completed\r\n");
    assert_eq!(watcher.line(), "* LIST (\\NonExistent) \"/\" Groups\r\n");
    assert_eq!(watcher.cmd("NOOP"), "a4 OK NOOP completed\r\n");
    // The selected mailbox: its own updates, not STATUS.
    assert!(watcher.cmd("SELECT Drafts").contains(" OK [READ-WRITE] "));
    assert_eq!(
        other.cmd("SELECT Drafts").lines().last(),
        Some("a7 OK [READ-WRITE] SELECT completed")
    );
    assert_eq!(
        other.cmd("STORE 1 +FLAGS (\\Seen)"),
        "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\na8 OK STORE completed\r\n"
    );
    assert_eq!(
        watcher.cmd("NOOP"),
        "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\na6 OK NOOP completed\r\n"
    );
    assert_eq!(watcher.cmd("NOTIFY NONE"), "a7 OK NOTIFY completed\r\n");
    assert_eq!(
        other.cmd("CREATE Quiet"),
        "a9 OK [MAILBOXID (F8)] CREATE completed\r\n"
    );
    assert_eq!(watcher.cmd("NOOP"), "a8 OK NOOP completed\r\n");
    assert_eq!(
        watcher.cmd("NOTIFY SET (personal (MailboxMetadataChange))"),
        "a9 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] \
         MailboxMetadataChange is not supported\r\n"
    );
    assert_eq!(
        watcher.cmd("NOTIFY SET (personal (MessageNew))"),
        "a10 BAD MessageNew and MessageExpunge go together, and FlagChange needs both\r\n"
    );
}

/// RFC 5267 CONTEXT=SEARCH and CONTEXT=SORT: UID SEARCH and UID SORT
/// with RETURN (UPDATE) stay live; another session's APPEND, STORE and
/// EXPUNGE come back as ADDTO and REMOVEFROM (position 0 for the search,
/// sort positions for the sort) after the mailbox's own updates;
/// CANCELUPDATE stops one; a live tag used again is BAD; a search by
/// message number is refused updates with NOUPDATE but answered.
#[test]
fn context_updates_follow_the_mailbox() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    let mut other = Imap::login(server.port(IMAP));
    for (i, body) in ["a", "bb", "ccc"].iter().enumerate() {
        let m = format!("Subject: m{i}\r\n\r\n{body}\r\n");
        let r = append(&mut other, &format!("p{i}"), "INBOX", m.as_bytes());
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert!(other.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("UID SEARCH RETURN (UPDATE COUNT) UNSEEN"),
        "* ESEARCH (TAG \"a3\") UID COUNT 3\r\na3 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID SORT RETURN (UPDATE ALL) (REVERSE SIZE) UTF-8 ALL"),
        "* ESEARCH (TAG \"a4\") UID ALL 3,2,1\r\na4 OK UID SORT completed\r\n"
    );
    let r = append(&mut other, "p3", "INBOX", b"Subject: m3\r\n\r\ndddd\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert_eq!(
        imap.cmd("NOOP"),
        "* 4 EXISTS\r\n* ESEARCH (TAG \"a3\") UID ADDTO (0 4)\r\n\
         * ESEARCH (TAG \"a4\") UID ADDTO (1 4)\r\na5 OK NOOP completed\r\n"
    );
    assert_eq!(
        other.cmd("UID STORE 2 +FLAGS.SILENT (\\Seen)"),
        "a3 OK STORE completed\r\n"
    );
    assert_eq!(
        imap.cmd("NOOP"),
        "* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n* ESEARCH (TAG \"a3\") UID REMOVEFROM (0 2)\r\n\
         a6 OK NOOP completed\r\n"
    );
    assert_eq!(
        other.cmd("UID STORE 1 +FLAGS.SILENT (\\Deleted)"),
        "a4 OK STORE completed\r\n"
    );
    assert_eq!(
        other.cmd("UID EXPUNGE 1"),
        "* 1 EXPUNGE\r\na5 OK EXPUNGE completed\r\n"
    );
    assert_eq!(
        imap.cmd("NOOP"),
        "* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\n* 1 EXPUNGE\r\n\
         * ESEARCH (TAG \"a3\") UID REMOVEFROM (0 1)\r\n\
         * ESEARCH (TAG \"a4\") UID REMOVEFROM (4 1)\r\na7 OK NOOP completed\r\n"
    );
    assert_eq!(
        imap.cmd("CANCELUPDATE \"a3\""),
        "a8 OK CANCELUPDATE completed\r\n"
    );
    let r = append(&mut other, "p4", "INBOX", b"Subject: m4\r\n\r\n-\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert_eq!(
        imap.cmd("NOOP"),
        "* 4 EXISTS\r\n* ESEARCH (TAG \"a4\") UID ADDTO (4 5)\r\na9 OK NOOP completed\r\n"
    );
    // A live tag again: BAD; by message number: answered without updates.
    imap.send_raw(b"a4 UID SEARCH RETURN (UPDATE) ALL\r\n");
    assert_eq!(
        String::from_utf8_lossy(&imap.until_tagged("a4")),
        "a4 BAD Tag reuse: a live search already has this tag\r\n"
    );
    assert_eq!(
        imap.cmd("SEARCH RETURN (UPDATE COUNT) ALL"),
        "* NO [NOUPDATE \"a10\"] Updates are given for UID SEARCH and UID SORT\r\n\
         * ESEARCH (TAG \"a10\") COUNT 4\r\na10 OK SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("SEARCH RETURN (ALL PARTIAL 1:2) ALL"),
        "a11 BAD PARTIAL and ALL cannot be combined\r\n"
    );
    // Updates end with the selection.
    assert_eq!(imap.cmd("UNSELECT"), "a12 OK Mailbox closed\r\n");
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    let r = append(&mut other, "p5", "INBOX", b"Subject: m5\r\n\r\n-\r\n");
    assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    assert_eq!(imap.cmd("NOOP"), "* 5 EXISTS\r\na14 OK NOOP completed\r\n");
    // CONTEXT alone is only a hint: the answer is ALL, as for RETURN ().
    assert_eq!(
        imap.cmd("UID SEARCH RETURN (CONTEXT) ALL"),
        "* ESEARCH (TAG \"a15\") UID ALL 2:6\r\na15 OK UID SEARCH completed\r\n"
    );
}

/// RFC 9586 UIDONLY: once enabled, message numbers get BAD [UIDREQUIRED]
/// (FETCH, SEARCH, a sequence-set search key inside UID SEARCH), FETCH
/// responses (own and another session's changes) become UIDFETCH without
/// the UID item unless asked for, and expunges are VANISHED.
#[test]
fn uidonly_refuses_numbers_and_answers_uidfetch() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    for tag in ["p1", "p2"] {
        let r = append(&mut imap, tag, "INBOX", b"Subject: u\r\n\r\nu\r\n");
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    assert_eq!(
        imap.cmd("ENABLE UIDONLY"),
        "* ENABLED UIDONLY\r\na2 OK ENABLE completed\r\n"
    );
    let v = uid_validity(&mut imap, "INBOX");
    // No message numbers in SELECT either (no [UNSEEN n]).
    assert_eq!(
        imap.cmd("SELECT INBOX"),
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n\
             * 2 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {v}] UIDs valid\r\n\
             * OK [UIDNEXT 3] Predicted next UID\r\n* OK [MAILBOXID (F1)] Ok\r\n\
             * OK [HIGHESTMODSEQ 4] Highest\r\na4 OK [READ-WRITE] SELECT completed\r\n"
        )
    );
    let refused = "BAD [UIDREQUIRED] Message numbers are not allowed once UIDONLY is enabled";
    assert_eq!(imap.cmd("FETCH 1 (FLAGS)"), format!("a5 {refused}\r\n"));
    assert_eq!(imap.cmd("SEARCH ALL"), format!("a6 {refused}\r\n"));
    assert_eq!(imap.cmd("UID SEARCH NOT 1:2"), format!("a7 {refused}\r\n"));
    assert_eq!(
        imap.cmd("UID FETCH 1:* (FLAGS)"),
        "* 1 UIDFETCH (FLAGS ())\r\n* 2 UIDFETCH (FLAGS ())\r\na8 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID FETCH 2 (UID FLAGS)"),
        "* 2 UIDFETCH (UID 2 FLAGS ())\r\na9 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID SEARCH UID 2:*"),
        "* SEARCH 2\r\na10 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID STORE 1 +FLAGS (\\Deleted)"),
        "* 1 UIDFETCH (FLAGS (\\Deleted))\r\na11 OK STORE completed\r\n"
    );
    // Another session's change arrives as UIDFETCH too.
    let mut other = Imap::login(server.port(IMAP));
    assert!(other.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert!(other
        .cmd("STORE 2 +FLAGS (\\Seen)")
        .ends_with("OK STORE completed\r\n"));
    assert_eq!(
        imap.untagged_until("UIDFETCH"),
        "* 2 UIDFETCH (FLAGS (\\Seen))\r\n"
    );
    assert_eq!(
        imap.cmd("EXPUNGE"),
        "* VANISHED 1\r\na12 OK EXPUNGE completed\r\n"
    );
    // `$` holds UIDs: allowed.
    assert_eq!(
        imap.cmd("UID SEARCH RETURN (SAVE) ALL"),
        "a13 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID SEARCH $"),
        "* SEARCH 2\r\na14 OK UID SEARCH completed\r\n"
    );
    // QRESYNC's sequence-match data names message numbers (RFC 9586 3.7).
    assert_eq!(
        imap.cmd(&format!("SELECT INBOX (QRESYNC ({v} 1 1:2 (1 2)))")),
        format!("a15 {refused}\r\n")
    );
}

/// RFC 7377 MULTISEARCH: ESEARCH over the personal mailboxes, a subtree
/// and named mailboxes, in the authenticated state; one ESEARCH per
/// mailbox with matches, with its MAILBOX and UIDVALIDITY, in UIDs; none
/// for a mailbox without; `selected` needs a selection; SAVE only for
/// the selected mailbox alone.
#[test]
fn multisearch_across_mailboxes() {
    let server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    assert!(imap
        .cmd("CREATE Projects/Roost")
        .ends_with("CREATE completed\r\n"));
    for (tag, mailbox, subject) in [
        ("p1", "INBOX", "alpha"),
        ("p2", "INBOX", "beta"),
        ("p3", "Archive", "alpha"),
        ("p4", "Projects/Roost", "alpha two"),
    ] {
        let m = format!("Subject: {subject}\r\n\r\nx\r\n");
        let r = append(&mut imap, tag, mailbox, m.as_bytes());
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    }
    let (inbox, archive, roost) = (
        uid_validity(&mut imap, "INBOX"),
        uid_validity(&mut imap, "Archive"),
        uid_validity(&mut imap, "Projects/Roost"),
    );
    assert_eq!(
        imap.cmd("ESEARCH IN (personal) SUBJECT alpha"),
        format!(
            "* ESEARCH (TAG \"a6\" MAILBOX INBOX UIDVALIDITY {inbox}) UID ALL 1\r\n\
             * ESEARCH (TAG \"a6\" MAILBOX Archive UIDVALIDITY {archive}) UID ALL 1\r\n\
             * ESEARCH (TAG \"a6\" MAILBOX Projects/Roost UIDVALIDITY {roost}) UID ALL 1\r\n\
             a6 OK ESEARCH completed\r\n"
        )
    );
    assert_eq!(
        imap.cmd("ESEARCH IN (subtree Projects inboxes) RETURN (COUNT MIN) ALL"),
        format!(
            "* ESEARCH (TAG \"a7\" MAILBOX INBOX UIDVALIDITY {inbox}) UID MIN 1 COUNT 2\r\n\
             * ESEARCH (TAG \"a7\" MAILBOX Projects/Roost UIDVALIDITY {roost}) UID MIN 1 COUNT 1\r\n\
             a7 OK ESEARCH completed\r\n"
        )
    );
    assert_eq!(
        imap.cmd("ESEARCH IN (mailboxes (INBOX Archive)) SUBJECT nothing"),
        "a8 OK ESEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("ESEARCH SUBJECT alpha"),
        "a9 BAD ESEARCH IN (selected) needs a selected mailbox\r\n"
    );
    assert!(imap.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        imap.cmd("ESEARCH RETURN (SAVE) SUBJECT beta"),
        "a11 OK ESEARCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("UID FETCH $ (UID)"),
        "* 2 FETCH (UID 2)\r\na12 OK FETCH completed\r\n"
    );
    assert_eq!(
        imap.cmd("ESEARCH IN (selected) SUBJECT beta"),
        format!(
            "* ESEARCH (TAG \"a13\" MAILBOX INBOX UIDVALIDITY {inbox}) UID ALL 2\r\n\
             a13 OK ESEARCH completed\r\n"
        )
    );
    assert_eq!(
        imap.cmd("ESEARCH IN (mailboxes Archive) RETURN (SAVE) ALL"),
        "a14 BAD SAVE needs the selected mailbox as the only source\r\n"
    );
    assert_eq!(
        imap.cmd("ESEARCH IN (mailboxes Archive) $"),
        "a15 BAD $ refers to the selected mailbox only\r\n"
    );
    // Keywords are case-insensitive.
    assert_eq!(
        imap.cmd("esearch in (mailboxes Archive) return (count) all"),
        format!(
            "* ESEARCH (TAG \"a16\" MAILBOX Archive UIDVALIDITY {archive}) UID COUNT 1\r\n\
             a16 OK ESEARCH completed\r\n"
        )
    );
}

/// `roost admin imapserve ADDRESS`: a `* PREAUTH` session on stdin and
/// stdout, also for an account whose logins are disabled; an unknown
/// address is refused.
#[test]
fn admin_imapserve_is_a_preauthenticated_session() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = Server::start();
    server.admin_ok(&["account", "disable", ACCOUNT, "--message", "migrating"]);
    let mut child = Command::new(binary())
        .args(["admin", "--dir"])
        .arg(&server.dir)
        .args(["imapserve", ACCOUNT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roost admin imapserve");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a1 SELECT INBOX\r\na2 LOGOUT\r\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The UIDVALIDITY is the server's choice; everything else is fixed.
    let v = text
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or("?")
        .to_string();
    assert_eq!(
        text,
        format!(
            "* PREAUTH [CAPABILITY {IMAP_CAPS}] Logged in as {ACCOUNT} by the administrator\r\n\
             * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n\
             * 0 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {v}] UIDs valid\r\n\
             * OK [UIDNEXT 1] Predicted next UID\r\n* OK [MAILBOXID (F1)] Ok\r\n\
             * OK [HIGHESTMODSEQ 2] Highest\r\na1 OK [READ-WRITE] SELECT completed\r\n\
             * BYE roost logging out\r\na2 OK LOGOUT completed\r\n"
        )
    );
    // --fd0: one socket both ways on fd 0.
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let theirs: std::os::fd::OwnedFd = theirs.into();
    let mut child = Command::new(binary())
        .args(["admin", "--dir"])
        .arg(&server.dir)
        .args(["imapserve", "--fd0", ACCOUNT])
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .spawn()
        .expect("roost admin imapserve --fd0");
    ours.set_read_timeout(Some(WAIT)).expect("timeout");
    ours.write_all(b"a1 LOGOUT\r\n").expect("write");
    let mut got = String::new();
    std::io::Read::read_to_string(&mut ours, &mut got).expect("read");
    assert!(child.wait().expect("wait").success());
    assert_eq!(
        got,
        format!(
            "* PREAUTH [CAPABILITY {IMAP_CAPS}] Logged in as {ACCOUNT} by the administrator\r\n\
             * BYE roost logging out\r\na1 OK LOGOUT completed\r\n"
        )
    );
    let out = server.admin(&["imapserve", "nobody@localhost"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "roost: no account with the address nobody@localhost\n"
    );
}
