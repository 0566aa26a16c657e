//! The admin socket and CLI against a running server: the tree, the event
//! stream, accounts and domains, and an orderly shutdown on SIGTERM.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

#[test]
fn tree_lists_the_actor_tree_as_text_and_json() {
    let server = Server::start();
    let mode = std::fs::metadata(server.dir.join("roost.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin socket mode");

    let tree = server.tree();
    let roots = tree.as_array().unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["name"], "root");
    assert_eq!(roots[0]["kind"], "supervisor");
    let children: Vec<&str> = roots[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        children,
        [
            "accounts",
            "connections",
            "logins",
            "queue",
            "webhooks",
            "dmarc-reports",
            "tls-reports",
            "listeners",
            "http",
            "admin"
        ]
    );
    for key in ["kind", "name", "status", "restarts", "children"] {
        assert!(roots[0].get(key).is_some(), "missing {key}");
    }
    let account = find_node(&tree, "account:roost@localhost").unwrap();
    assert_eq!(account["status"], "running");
    assert_eq!(account["restarts"], 0);
    let listeners = find_node(&tree, "listeners").unwrap()["children"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listeners, 6);

    // An open mailbox is a mailbox actor under its account, while open.
    let mut imap = Imap::login(server.port(IMAP));
    assert!(imap.cmd("SELECT INBOX").contains("OK [READ-WRITE]"));
    let tree = server.tree();
    let account = find_node(&tree, "account:roost@localhost").unwrap();
    let children = account["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{account}");
    assert_eq!(children[0]["kind"], "mailbox");
    assert_eq!(children[0]["name"], "mailbox:roost@localhost/1");
    assert!(imap.cmd("UNSELECT").contains("OK"));
    // Without subscribers it lingers (a minute; the account actor's tests
    // see it go), so the next SELECT finds it loaded.
    let tree = server.tree();
    let account = find_node(&tree, "account:roost@localhost").unwrap();
    let children = account["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{account}");
    assert_eq!(children[0]["name"], "mailbox:roost@localhost/1");
    assert!(imap.cmd("SELECT INBOX").contains("OK [READ-WRITE]"));

    let text = server.admin_ok(&["tree"]);
    assert!(
        text.starts_with("supervisor root running restarts=0 uptime="),
        "{text}"
    );
    assert!(
        text.contains("│   └── account account:roost@localhost running restarts=0"),
        "{text}"
    );
}

#[test]
fn events_stream_change_events_as_json_lines() {
    let server = Server::start();
    let mut events = Command::new(binary())
        .args(["admin", "--dir"])
        .arg(&server.dir)
        .args(["events", "--account", ACCOUNT])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    // The CLI says so on stderr once the server's subscription is live.
    let mut said = String::new();
    BufReader::new(events.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(
        said,
        "streaming change events of roost@localhost; Ctrl-C stops\n"
    );
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO x");
    assert!(smtp
        .send_mail("s@example.org", &[ACCOUNT], &message(1, 2))
        .starts_with("250"));
    let line = lines.next().unwrap().unwrap();
    let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["account"], ACCOUNT);
    assert_eq!(ev["type"], "messages_added");
    assert_eq!(ev["name"], "INBOX");
    assert_eq!(ev["messages"][0]["uid"], 1);
    assert_eq!(ev["counts"]["total"], 1);
    assert_eq!(ev["counts"]["unseen"], 1);
    let mut imap = Imap::login(server.port(IMAP));
    imap.cmd("SELECT INBOX");
    imap.cmd("STORE 1 +FLAGS (\\Seen)");
    let ev: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(ev["type"], "flags_changed");
    assert_eq!(ev["messages"][0]["flags"], serde_json::json!(["Seen"]));
    assert_eq!(ev["counts"]["unseen"], 0);
    let _ = events.kill();
    let _ = events.wait();
}

#[test]
fn accounts_and_domains_are_managed_on_the_running_server() {
    let server = Server::start();
    let out = server.admin(&[
        "account",
        "add",
        "bob@example.com",
        "--password",
        "secret123",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("domain example.com is not configured"));

    server.admin_ok(&["domain", "add", "example.com"]);
    assert!(server
        .admin_ok(&["domain", "list"])
        .contains("\"example.com\""));
    server.admin_ok(&[
        "account",
        "add",
        "bob@example.com",
        "--password",
        "secret123",
    ]);
    let list = server.admin_ok(&["account", "list"]);
    assert!(
        list.contains("\"bob@example.com\"") && list.contains("\"roost@localhost\""),
        "{list}"
    );
    assert!(find_node(&server.tree(), "account:bob@example.com").is_some());

    // The new account receives mail and logs in at once.
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO x");
    assert!(smtp
        .send_mail("s@example.org", &["bob@example.com"], &message(1, 2))
        .starts_with("250"));
    let mut imap = Imap::connect(server.port(IMAP));
    assert!(imap
        .cmd("LOGIN bob@example.com secret123")
        .contains("OK [CAPABILITY"));
    assert!(imap.cmd("SELECT INBOX").contains("* 1 EXISTS"));

    // Passwords that would confuse their owner are refused, saying why.
    for (pw, why) in [
        (
            "newsecret ",
            "roost: password refused: begins or ends with a space, which is easy to miss when typing it\n",
        ),
        (
            "new\u{200b}secret",
            "roost: password refused: contains the invisible character U+200B, which cannot be told apart when typing it\n",
        ),
    ] {
        let out = server.admin(&["account", "passwd", "bob@example.com", "--password", pw]);
        assert!(!out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), why);
    }
    server.admin_ok(&[
        "account",
        "passwd",
        "bob@example.com",
        "--password",
        "newsecret",
    ]);
    let mut imap = Imap::connect(server.port(IMAP));
    assert!(imap
        .cmd("LOGIN bob@example.com secret123")
        .contains("NO [AUTHENTICATIONFAILED]"));
    assert!(imap
        .cmd("LOGIN bob@example.com newsecret")
        .contains("OK [CAPABILITY"));

    let out = server.admin(&["domain", "rm", "example.com"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("still has accounts"));
    server.admin_ok(&["account", "rm", "bob@example.com"]);
    assert!(find_node(&server.tree(), "account:bob@example.com").is_none());
    let r = smtp.cmd("MAIL FROM:<s@example.org>");
    assert!(r.starts_with("250"));
    assert_eq!(
        smtp.cmd("RCPT TO:<bob@example.com>"),
        "550 5.1.1 No such user here: bob@example.com"
    );
    server.admin_ok(&["domain", "rm", "example.com"]);
    assert!(!server.admin_ok(&["domain", "list"]).contains("example.com"));
}

#[test]
fn sigterm_says_goodbye_and_exits_zero() {
    let mut server = Server::start();
    let mut imap = Imap::login(server.port(IMAP));
    imap.cmd("SELECT INBOX");
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO x");
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert_eq!(imap.line(), "* BYE Server shutting down\r\n");
    assert_eq!(
        smtp.reply(),
        "421 4.3.2 localhost service not available, closing connection"
    );
    assert!(!server.dir.join("roost.sock").exists());
    // Everything acknowledged before is there after a restart.
    server.spawn();
    server.assert_consistent(ACCOUNT);
}

#[test]
fn sse_streams_are_sessions_in_the_tree_and_end_when_killed() {
    use base64::Engine;
    use std::io::{Read, Write};
    let server = Server::start();
    let mut http = std::net::TcpStream::connect(("127.0.0.1", server.port(HTTP))).unwrap();
    http.set_read_timeout(Some(WAIT)).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{PASSWORD}"));
    write!(
        http,
        "GET /events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Basic {auth}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 512];
    let n = http.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    let name = eventually("the SSE session in the tree", || {
        let tree = server.tree();
        let sessions = find_node(&tree, "connections")?["children"]
            .as_array()?
            .clone();
        sessions
            .iter()
            .filter_map(|s| s["name"].as_str())
            .find(|n| n.starts_with("sse:127.0.0.1:"))
            .map(String::from)
    });
    let node = find_node(&server.tree(), &name).unwrap().clone();
    assert_eq!(node["kind"], "session");

    server.admin_ok(&["kill", &name]);
    // The stream ends: the chunked body's last chunk, then EOF.
    let mut rest = Vec::new();
    http.read_to_end(&mut rest).unwrap();
    assert!(
        String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
        "{rest:?}"
    );
    eventually("the SSE session to leave the tree", || {
        find_node(&server.tree(), &name).is_none().then_some(())
    });
}
