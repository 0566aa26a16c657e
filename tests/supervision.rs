//! Supervision seen from outside: an account actor that fails (killed over
//! the admin socket, or panicking inside a handler) is restarted by its
//! supervisor, the tree shows the restart, an idling IMAP session keeps
//! working, the next delivery succeeds and the store stays consistent.

mod common;
use common::*;

const ACTOR: &str = "account:roost@localhost";

fn restarts(server: &Server) -> u64 {
    let tree = server.tree();
    find_node(&tree, ACTOR).expect("account actor in tree")["restarts"]
        .as_u64()
        .unwrap()
}

fn deliver(server: &Server, n: usize) {
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO client.example.org");
    let r = smtp.send_mail("s@example.org", &[ACCOUNT], &message(n, 5));
    assert_eq!(r, "250 2.0.0 OK, message delivered");
}

fn kill_and_check(how: &[&str], expect_how: &str) {
    let server = Server::start();
    deliver(&server, 1);
    assert_eq!(restarts(&server), 0);

    let mut idler = Imap::login(server.port(IMAP));
    assert!(idler.cmd("SELECT INBOX").contains("* 1 EXISTS"));
    idler.send_raw(b"i1 IDLE\r\n");
    assert_eq!(idler.line(), "+ idling\r\n");

    let mut args = vec!["kill", ACTOR];
    args.extend_from_slice(how);
    let out = server.admin_ok(&args);
    assert!(out.contains(expect_how), "{out}");

    // The supervisor restarts it, and the tree says so.
    let node = eventually("the account actor's restart", || {
        let tree = server.tree();
        let node = find_node(&tree, ACTOR)?.clone();
        (node["restarts"] == 1 && node["status"] == "running").then_some(node)
    });
    assert_eq!(node["kind"], "account");

    // The next delivery succeeds, and the idler, still in IDLE on the old
    // connection, hears of it.
    deliver(&server, 2);
    assert_eq!(idler.line(), "* 2 EXISTS\r\n");
    idler.send_raw(b"DONE\r\n");
    assert_eq!(idler.line(), "i1 OK IDLE terminated\r\n");
    let r = idler.cmd("FETCH 1:* (UID FLAGS)");
    assert_eq!(
        r,
        "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\na3 OK FETCH completed\r\n"
    );
    // The log names the failure.
    let log = server.log();
    assert!(log.contains("child=account:roost@localhost"), "log:\n{log}");
    assert_eq!(restarts(&server), 1);
    server.assert_consistent(ACCOUNT);
}

#[test]
fn killed_account_actor_is_restarted_and_sessions_carry_on() {
    kill_and_check(&[], "failed by its supervisor");
}

#[test]
fn account_actor_panicking_in_a_handler_is_restarted() {
    kill_and_check(&["--panic"], "panic");
}

#[test]
fn killing_a_session_ends_only_that_connection() {
    let server = Server::start();
    let mut victim = Imap::login(server.port(IMAP));
    let mut bystander = Imap::login(server.port(IMAP));
    assert!(bystander.cmd("SELECT INBOX").contains("OK [READ-WRITE]"));
    let tree = server.tree();
    let sessions = find_node(&tree, "connections").unwrap()["children"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sessions.len(), 2, "{tree}");
    // The victim is the first connection made.
    let name = sessions[0]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("imap:127.0.0.1:"), "{name}");
    server.admin_ok(&["kill", &name]);
    assert_eq!(victim.line(), "<closed>");
    // Temporary children are not restarted; the other session goes on.
    eventually("the killed session to leave the tree", || {
        let tree = server.tree();
        let n = find_node(&tree, "connections")?["children"]
            .as_array()?
            .len();
        (n == 1).then_some(())
    });
    deliver(&server, 1);
    assert_eq!(bystander.untagged_until("EXISTS"), "* 1 EXISTS\r\n");
}

#[test]
fn a_killed_listener_comes_back_on_its_port() {
    let server = Server::start();
    let name = format!("smtp:127.0.0.1:{}", server.port(SMTP));
    let out = server.admin_ok(&["kill", &name]);
    assert!(out.contains("failed by its supervisor"), "{out}");
    let node = eventually("the listener's restart", || {
        let tree = server.tree();
        let node = find_node(&tree, &name)?.clone();
        (node["restarts"] == 1 && node["status"] == "running").then_some(node)
    });
    assert_eq!(node["kind"], "listener");
    // Its successor could bind the same port: the old accept loop is gone.
    deliver(&server, 1);
    let mut imap = Imap::login(server.port(IMAP));
    assert!(imap.cmd("SELECT INBOX").contains("* 1 EXISTS\r\n"));
}

#[test]
fn a_mailbox_actor_whose_sessions_were_killed_stops_at_the_next_event() {
    let server = Server::start();
    let mut victim = Imap::login(server.port(IMAP));
    assert!(victim.cmd("SELECT INBOX").contains("OK [READ-WRITE]"));
    let mailbox = "mailbox:roost@localhost/1";
    assert!(find_node(&server.tree(), mailbox).is_some());
    let tree = server.tree();
    let session = find_node(&tree, "connections").unwrap()["children"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    server.admin_ok(&["kill", &session]);
    assert_eq!(victim.line(), "<closed>");
    // The killed session never said goodbye; the next event finds nobody
    // listening and the mailbox actor stops.
    deliver(&server, 1);
    eventually("the orphaned mailbox actor to stop", || {
        find_node(&server.tree(), mailbox).is_none().then_some(())
    });
    // Opening the mailbox again starts a fresh one that sees the message.
    let mut reader = Imap::login(server.port(IMAP));
    assert!(reader.cmd("SELECT INBOX").contains("* 1 EXISTS\r\n"));
    assert!(find_node(&server.tree(), mailbox).is_some());
}

/// A failed index flush, made to fail over the admin socket as a disk
/// error would: the delivery it was for is answered 451, and the server
/// stops by itself with a failure status (no later flush can be trusted),
/// for its service manager to start it again. Started again on the same
/// directory it has every acknowledged message, passes the consistency
/// check, and takes mail again.
#[test]
fn a_failed_flush_stops_the_server_and_a_restart_takes_mail_again() {
    let mut server = Server::start();
    deliver(&server, 1);
    let out = server.admin_ok(&["fail-flush"]);
    assert_eq!(out, "{\n  \"next_flush\": \"fails\"\n}\n");
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO client.example.org");
    let r = smtp.send_mail("s@example.org", &[ACCOUNT], &message(2, 5));
    assert_eq!(r, "451 4.3.0 Local error in processing, try again later");
    let status = eventually("roost to stop", || {
        server.child.as_mut()?.try_wait().ok().flatten()
    });
    assert_eq!(status.code(), Some(1), "log:\n{}", server.log());
    // The session still open was told goodbye before the exit.
    assert_eq!(
        smtp.reply(),
        "421 4.3.2 localhost service not available, closing connection"
    );
    assert_eq!(smtp.reply(), "<closed>");
    let log = server.log();
    assert!(
        log.contains("the store failed a flush: stopping, to be started again"),
        "{log}"
    );
    server.child = None;
    server.spawn();
    deliver(&server, 3);
    let mut imap = Imap::login(server.port(IMAP));
    let select = imap.cmd("SELECT INBOX");
    let numbers: Vec<Option<usize>> = imap
        .fetch_all()
        .iter()
        .map(|f| message_number(&f.body))
        .collect();
    // Whole lines, in order, but the UIDVALIDITY and HIGHESTMODSEQ values.
    let lines: Vec<String> = select
        .lines()
        .map(|l| {
            for code in ["UIDVALIDITY", "HIGHESTMODSEQ"] {
                if let Some(rest) = l.strip_prefix(&format!("* OK [{code} ")) {
                    let text = rest.split_once("] ").map_or("", |(_, t)| t);
                    return format!("* OK [{code} _] {text}");
                }
            }
            l.to_string()
        })
        .collect();
    let n = numbers.len();
    assert_eq!(
        lines,
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)".to_string(),
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited"
                .to_string(),
            format!("* {n} EXISTS"),
            "* 0 RECENT".to_string(),
            "* OK [UIDVALIDITY _] UIDs valid".to_string(),
            format!("* OK [UIDNEXT {}] Predicted next UID", n + 1),
            "* OK [MAILBOXID (F1)] Ok".to_string(),
            "* OK [HIGHESTMODSEQ _] Highest".to_string(),
            "a2 OK [READ-WRITE] SELECT completed".to_string(),
        ],
        "{select}"
    );
    // Message 2 was answered 451: its client sends it again. Its batch
    // was applied before the flush failed, and sled's own background
    // flush may have taken it to disk, so it may be there (a duplicate at
    // worst, once sent again); the acknowledged ones must be.
    assert!(
        numbers == [Some(1), Some(3)] || numbers == [Some(1), Some(2), Some(3)],
        "{numbers:?}"
    );
    server.assert_consistent(ACCOUNT);
}
