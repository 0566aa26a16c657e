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
