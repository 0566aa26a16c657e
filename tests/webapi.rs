//! The web API (`POST /api/v0/<Method>`) end to end over HTTP against
//! localserve: Send through the account's submission, the message read
//! back whole, by part and as a record, flags, move, delete, and the
//! suppression list; errors as JSON with their status.

mod common;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;

/// One call: the status line, the Content-Type and the body.
fn call(
    port: u16,
    auth: Option<(&str, &str)>,
    method: &str,
    body: &str,
) -> (String, String, Vec<u8>) {
    let (status, head, body) = call_as(port, auth, method, "application/json", body);
    let content_type = header(&head, "content-type");
    (status, content_type, body)
}

/// A header field's value in a response head ("" without it).
fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or("")
        .to_string()
}

/// One call with the given Content-Type: the status line, the head and
/// the body.
fn call_as(
    port: u16,
    auth: Option<(&str, &str)>,
    method: &str,
    content_type: &str,
    body: &str,
) -> (String, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let auth = auth.map_or(String::new(), |(u, p)| {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Authorization: Basic {b}\r\n")
    });
    write!(
        s,
        "POST /api/v0/{method} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let status = head.lines().next().unwrap_or("").to_string();
    (status, head, all[split + 4..].to_vec())
}

/// A call as the account, with its JSON answer.
fn api(server: &Server, method: &str, args: Value) -> (String, Value) {
    let (status, _, body) = call(
        server.port(HTTP),
        Some((ACCOUNT, PASSWORD)),
        method,
        &args.to_string(),
    );
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{method}: not JSON: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

#[test]
fn the_web_api_sends_reads_and_manages_mail() {
    let server = Server::start();
    let port = server.port(HTTP);
    let (status, _, body) = call(port, None, "SuppressionList", "{}");
    assert_eq!(
        (status.as_str(), body.as_slice()),
        (
            "HTTP/1.1 401 Unauthorized",
            &b"authentication required\n"[..]
        )
    );
    let (status, _, body) = call(port, Some((ACCOUNT, PASSWORD)), "SuppressionList", "{");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(String::from_utf8_lossy(&body).starts_with("{\"error\":\"the body is not JSON: "));
    assert_eq!(
        api(&server, "Nope", json!({})),
        (
            "HTTP/1.1 404 Not Found".into(),
            json!({"error": "no method Nope"})
        )
    );

    // Send: composed, submitted as the account, delivered at once.
    let attached = base64::engine::general_purpose::STANDARD.encode("attached\r\n");
    let (status, sent) = api(
        &server,
        "Send",
        json!({
            "to": [ACCOUNT],
            "subject": "From the API",
            "text": "Hello from the API\n",
            "attachments": [{"filename": "a.txt", "content_type": "text/plain", "data": attached}],
            "extra": {"order": "42"},
        }),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    let message_id = sent["message_id"].as_str().unwrap().to_string();
    assert!(message_id.ends_with("@localhost"), "{sent}");
    assert_eq!(
        sent,
        json!({
            "message_id": message_id,
            "accepted": true,
            "reply": "250 2.0.0 OK, message delivered",
            "recipients": [{"address": ACCOUNT, "reply": "250 2.1.5 Recipient OK"}],
        })
    );
    let at = json!({"mailbox": "INBOX", "uid": 1});
    let (status, got) = api(&server, "MessageGet", at.clone());
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        (
            &got["envelope"]["subject"],
            &got["envelope"]["message_id"],
            &got["envelope"]["from"],
            &got["extra"],
            &got["flags"]
        ),
        (
            &json!("From the API"),
            &json!(format!("<{message_id}>")),
            &json!([{"name": null, "address": ACCOUNT}]),
            &json!({"order": "42"}),
            &json!([])
        )
    );
    // INBOX in any case (RFC 9051 5.1), as IMAP names it.
    let lower = api(&server, "MessageGet", json!({"mailbox": "inbox", "uid": 1}));
    assert_eq!(lower, (status.clone(), got.clone()));
    let part = |n: &str| {
        let mut a = at.clone();
        a["part"] = json!(n);
        call(
            port,
            Some((ACCOUNT, PASSWORD)),
            "MessagePartGet",
            &a.to_string(),
        )
    };
    assert_eq!(
        part("1"),
        (
            "HTTP/1.1 200 OK".into(),
            "text/plain".into(),
            b"Hello from the API\r\n".to_vec()
        )
    );
    assert_eq!(
        part("2"),
        (
            "HTTP/1.1 200 OK".into(),
            "text/plain".into(),
            b"attached\r\n".to_vec()
        )
    );
    let (_, head, _) = call_as(
        port,
        Some((ACCOUNT, PASSWORD)),
        "MessagePartGet",
        "application/json",
        &json!({"mailbox": "INBOX", "uid": 1, "part": "2"}).to_string(),
    );
    assert_eq!(
        (
            header(&head, "content-disposition"),
            header(&head, "x-content-type-options"),
            header(&head, "content-security-policy")
        ),
        (
            "attachment".to_string(),
            "nosniff".to_string(),
            "sandbox; default-src 'none'".to_string()
        )
    );
    let (status, _, body) = part("3");
    assert_eq!(
        (status.as_str(), String::from_utf8_lossy(&body).as_ref()),
        ("HTTP/1.1 404 Not Found", "{\"error\":\"no part 3\"}")
    );
    let (status, content_type, raw) = call(
        port,
        Some((ACCOUNT, PASSWORD)),
        "MessageRawGet",
        &at.to_string(),
    );
    assert_eq!(
        (status.as_str(), content_type.as_str()),
        ("HTTP/1.1 200 OK", "message/rfc822")
    );
    let raw = String::from_utf8_lossy(&raw).to_string();
    // Stored with roost's own lines first; the extra field taken out.
    assert!(
        raw.starts_with("Return-Path: <roost@localhost>\r\n"),
        "{raw}"
    );
    assert!(raw.contains("\r\nSubject: From the API\r\n"), "{raw}");
    assert!(!raw.contains("X-Roost-Extra"), "{raw}");

    let mut flags = at.clone();
    flags["flags"] = json!(["\\Seen", "$Important"]);
    assert_eq!(
        api(&server, "MessageFlagsAdd", flags.clone()),
        (
            "HTTP/1.1 200 OK".into(),
            json!({"flags": ["\\Seen", "$Important"]})
        )
    );
    flags["flags"] = json!(["$Important"]);
    assert_eq!(
        api(&server, "MessageFlagsRemove", flags.clone()),
        ("HTTP/1.1 200 OK".into(), json!({"flags": ["\\Seen"]}))
    );
    flags["flags"] = json!(["bad flag"]);
    assert_eq!(
        api(&server, "MessageFlagsAdd", flags),
        (
            "HTTP/1.1 400 Bad Request".into(),
            json!({"error": "\"bad flag\" is not a flag"})
        )
    );
    let mut to = at.clone();
    to["to"] = json!("Archive");
    assert_eq!(
        api(&server, "MessageMove", to),
        (
            "HTTP/1.1 200 OK".into(),
            json!({"mailbox": "Archive", "uid": 1})
        )
    );
    assert_eq!(
        api(&server, "MessageGet", at.clone()),
        (
            "HTTP/1.1 404 Not Found".into(),
            json!({"error": "no message 1 in INBOX"})
        )
    );
    let archived = json!({"mailbox": "Archive", "uid": 1});
    assert_eq!(
        api(&server, "MessageDelete", archived.clone()),
        ("HTTP/1.1 200 OK".into(), json!({"deleted": true}))
    );
    assert_eq!(
        api(&server, "MessageGet", archived).0,
        "HTTP/1.1 404 Not Found"
    );

    // The suppression list, and Send refused by it.
    let gone = json!({"address": "gone@example.org"});
    assert_eq!(
        api(&server, "SuppressionAdd", gone.clone()),
        (
            "HTTP/1.1 200 OK".into(),
            json!({"address": "gone@example.org", "suppressed": true})
        )
    );
    assert_eq!(
        api(&server, "SuppressionPresent", gone.clone()).1,
        json!({"address": "gone@example.org", "present": true, "reason": "added through the web API"})
    );
    let (_, list) = api(&server, "SuppressionList", json!({}));
    assert_eq!(list[0]["address"], "gone@example.org");
    let (status, refused) = api(
        &server,
        "Send",
        json!({"to": ["gone@example.org"], "subject": "x", "text": "x"}),
    );
    assert_eq!(status, "HTTP/1.1 422 Unprocessable Entity");
    assert_eq!(
        (
            &refused["accepted"],
            &refused["reply"],
            &refused["recipients"]
        ),
        (
            &json!(false),
            &Value::Null,
            &json!([{"address": "gone@example.org",
                "reply": "550 5.1.1 gone@example.org is on your suppression list: added through the web API"}])
        )
    );
    assert_eq!(
        api(&server, "SuppressionRemove", gone.clone()).1,
        json!({"address": "gone@example.org", "suppressed": false, "was": true})
    );
    assert_eq!(
        api(&server, "SuppressionPresent", gone).1,
        json!({"address": "gone@example.org", "present": false})
    );
    // A From the account does not own: refused as submission refuses it.
    let (status, refused) = api(
        &server,
        "Send",
        json!({"from": "someone@else.example", "to": [ACCOUNT], "subject": "x", "text": "x"}),
    );
    assert_eq!(status, "HTTP/1.1 422 Unprocessable Entity");
    assert!(
        refused["reply"].as_str().unwrap().starts_with("550 5.7.1 "),
        "{refused}"
    );
    assert_eq!(
        api(&server, "Send", json!({"to": ["no-at-sign"], "text": "x"})),
        (
            "HTTP/1.1 400 Bad Request".into(),
            json!({"error": "\"no-at-sign\" is not an address"})
        )
    );
    // Not JSON: refused before anything else (another site's form
    // cannot call the API with the browser's credentials).
    let (status, _, _) = call_as(
        port,
        Some((ACCOUNT, PASSWORD)),
        "SuppressionList",
        "text/plain",
        "{}",
    );
    assert_eq!(status, "HTTP/1.1 415 Unsupported Media Type");
    // Bodies past the method's limit: refused (the limit and one past).
    let padded = |n: usize| format!("{{\"address\": \"{}@x.example\"}}", "a".repeat(n));
    let edge = padded(0).len();
    let (status, _, _) = call(
        port,
        Some((ACCOUNT, PASSWORD)),
        "SuppressionPresent",
        &padded(65536 - edge),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, _, _) = call(
        port,
        Some((ACCOUNT, PASSWORD)),
        "SuppressionPresent",
        &padded(65537 - edge),
    );
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    // Bcc: delivered, named nowhere in the message; checked like To.
    server.admin_ok(&[
        "account",
        "add",
        "bcc@localhost",
        "--password",
        "bccsecret1",
    ]);
    let (status, sent) = api(
        &server,
        "Send",
        json!({"to": [ACCOUNT], "bcc": ["bcc@localhost"], "subject": "blind", "text": "x"}),
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{sent}");
    let mut imap = Imap::connect(server.port(IMAP));
    assert!(imap.cmd("LOGIN bcc@localhost bccsecret1").contains(" OK "));
    imap.cmd("EXAMINE INBOX");
    let head = imap.cmd("FETCH 1 BODY.PEEK[HEADER]");
    assert!(head.contains("\r\nSubject: blind\r\n"), "{head}");
    // Only the recipient's own trace line names it; no header does.
    assert!(head.contains("\r\nTo: roost@localhost\r\n"), "{head}");
    let named: Vec<&str> = head
        .lines()
        .filter(|l| l.contains("bcc@localhost"))
        .collect();
    assert_eq!(named.len(), 1, "{head}");
    assert!(named[0].starts_with("\tfor <bcc@localhost>; "), "{head}");
    assert!(!head.to_ascii_lowercase().contains("\r\nbcc:"), "{head}");
    assert_eq!(
        api(
            &server,
            "Send",
            json!({"to": [ACCOUNT], "bcc": ["x@y>\r\nRSET"], "text": "x"})
        ),
        (
            "HTTP/1.1 400 Bad Request".into(),
            json!({"error": "\"x@y>\\r\\nRSET\" is not an address"})
        )
    );
    server.assert_consistent(ACCOUNT);
}
