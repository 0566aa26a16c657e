//! roost against real third-party clients, run as subprocesses: Python's
//! smtplib and imaplib (scripts in `tests/clients/`), curl (SMTP, SMTPS,
//! IMAP, IMAPS, HTTP, HTTPS and the SSE stream), swaks, msmtp and
//! `openssl s_client`. Each test checks what the client itself printed and
//! what the server then holds, read back with the harness's own IMAP client.
//!
//! A missing program fails the test (it is never skipped): `.ci/run`
//! installs every one of them.
//!
//! Cyrus imtest and smtptest (cyrus-clients) check SCRAM, and `openssl
//! s_client` also checks STARTTLS, ALPN on 443, SNI, session tickets and
//! client certificates.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The Debian package that provides each program the tests run.
const PROGRAMS: &[(&str, &str)] = &[
    ("python3", "python3"),
    ("curl", "curl"),
    ("swaks", "swaks"),
    ("msmtp", "msmtp"),
    ("openssl", "openssl"),
    ("mbsync", "isync"),
    ("offlineimap", "offlineimap3"),
    ("neomutt", "neomutt"),
    ("script", "bsdutils"),
];

/// A command for the third-party `program`; fails the test if it is not on
/// PATH.
fn program(name: &str) -> Command {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()));
    let package = PROGRAMS
        .iter()
        .find(|(p, _)| *p == name)
        .map_or(name, |(_, pkg)| pkg);
    assert!(
        on_path,
        "`{name}` is not installed; .ci/run installs it (apt-get install {package})"
    );
    Command::new(name)
}

/// Where Debian's cyrus-clients keeps imtest and smtptest (off PATH).
const CYRUS_BIN: &str = "/usr/lib/cyrus/bin";

/// A Cyrus test client (`imtest`, `smtptest`); fails the test if
/// cyrus-clients is not installed.
fn cyrus(tool: &str) -> Command {
    let path = Path::new(CYRUS_BIN).join(tool);
    assert!(
        path.is_file(),
        "`{}` is missing; .ci/run installs it (apt-get install cyrus-clients)",
        path.display()
    );
    Command::new(path)
}

/// A Python client script from tests/clients/.
fn python(script: &str) -> Command {
    let mut cmd = program("python3");
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients")
            .join(script),
    );
    cmd
}

/// What a finished client printed.
struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Ran {
    /// The client's output; FUTURERELEASE's moving date shown as `<date>`.
    fn text(&self) -> String {
        mask_release(&String::from_utf8_lossy(&self.stdout))
    }

    /// Fails unless the client exited 0.
    fn ok(self, what: &str) -> Ran {
        assert!(
            self.status.success(),
            "{what} exited with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.text(),
            self.stderr
        );
        self
    }
}

/// Reads all of `r` on its own thread.
fn collect(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` to completion with `stdin` as its input; kills it and fails
/// the test if it takes longer than [`WAIT`].
fn run(cmd: &mut Command, stdin: &[u8]) -> Ran {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let bytes = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
        // Dropping `input` closes the client's stdin.
    });
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = stdout.recv().unwrap_or_default();
            let err = stderr.recv().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {WAIT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: stdout.recv().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&stderr.recv().unwrap_or_default()).into_owned(),
    }
}

/// How many fresh port offsets [`start`] tries.
const START_ATTEMPTS: usize = 4;

/// [`Server::start`], tried again on fresh ports when one is taken. The
/// harness's ports lie inside the kernel's ephemeral range, and every client
/// these tests run leaves sockets in TIME_WAIT on ports from that range, so
/// now and then a listener cannot bind.
fn start() -> Server {
    for attempt in 1..=START_ATTEMPTS {
        match std::panic::catch_unwind(Server::start) {
            Ok(server) => return server,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("");
                if attempt == START_ATTEMPTS || !text.contains("Address already in use") {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Writes `bytes` to a file in the server's data directory.
fn file(server: &Server, name: &str, bytes: &[u8]) -> PathBuf {
    let path = server.dir.join(name);
    std::fs::write(&path, bytes).expect("write client input file");
    path
}

/// The self-signed certificate localserve made, for clients to verify.
fn cert(server: &Server) -> PathBuf {
    server.dir.join("localserve-cert.pem")
}

fn port(server: &Server, base: u16) -> String {
    server.port(base).to_string()
}

/// Every message in INBOX, read with the harness's own IMAP client.
fn inbox(server: &Server) -> Vec<Fetched> {
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("EXAMINE INBOX");
    assert!(r.contains(" OK [READ-ONLY] "), "{r}");
    if r.contains("* 0 EXISTS\r\n") {
        // FETCH 1:* has no message to name in an empty mailbox.
        return Vec::new();
    }
    imap.fetch_all()
}

/// INBOX holds exactly one message, `original` behind roost's prefix, whose
/// Received line says it came `from helo` `with` that protocol.
fn assert_single_delivery(server: &Server, original: &[u8], helo: &str, with: &str) {
    let msgs = inbox(server);
    assert_eq!(msgs.len(), 1, "INBOX: {msgs:?}");
    assert_eq!(msgs[0].uid, 1);
    let stored = &msgs[0].body;
    assert_eq!(strip_prefix(stored, original), original);
    let head = String::from_utf8_lossy(&stored[..stored.len() - original.len()]).into_owned();
    assert!(
        head.contains(&format!(
            "Received: from {helo} ([127.0.0.1])\r\n\tby localhost (roost) with {with}\r\n"
        )),
        "{head}"
    );
}

/// Delivers `message(n, lines)` for n in 1..=count over the MX port.
fn deliver(server: &Server, count: usize) -> Vec<Vec<u8>> {
    let mut smtp = Smtp::connect(server.port(SMTP));
    smtp.cmd("EHLO harness.example.org");
    (1..=count)
        .map(|n| {
            let m = message(n, 5);
            let r = smtp.send_mail(&format!("sender{n}@example.org"), &[ACCOUNT], &m);
            assert_eq!(r, "250 2.0.0 OK, message delivered");
            m
        })
        .collect()
}

/// What a client that sends lines as they are (curl -T, smtplib) submits.
/// From names the account, as submission requires.
const PLAIN_MESSAGE: &[u8] = b"From: roost@localhost\r\nTo: roost@localhost\r\n\
Subject: from a real client\r\n\r\nfirst line\r\n.line starting with a dot\r\n\
..two dots\r\nlast line\r\n";

// --- Python smtplib --------------------------------------------------------

const EHLO_MX: &str = "ehlo 250 localhost greets client.example.org
ehlo 250 PIPELINING
ehlo 250 SIZE 67108864
ehlo 250 8BITMIME
ehlo 250 ENHANCEDSTATUSCODES
ehlo 250 SMTPUTF8
ehlo 250 CHUNKING
ehlo 250 BINARYMIME
ehlo 250 DSN
ehlo 250 LIMITS RCPTMAX=100
ehlo 250 STARTTLS
";
const EHLO_SUBMISSION: &str = "ehlo 250 localhost greets client.example.org
ehlo 250 PIPELINING
ehlo 250 SIZE 67108864
ehlo 250 8BITMIME
ehlo 250 ENHANCEDSTATUSCODES
ehlo 250 SMTPUTF8
ehlo 250 CHUNKING
ehlo 250 BINARYMIME
ehlo 250 DSN
ehlo 250 LIMITS RCPTMAX=100
ehlo 250 FUTURERELEASE 2592000 <date>
ehlo 250 AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN
ehlo 250 STARTTLS
";
const SENT: &str = "mail 250 2.1.0 Sender OK
rcpt 250 2.1.5 Recipient OK
data 250 2.0.0 OK, message delivered
quit 221 2.0.0 localhost closing connection
";

#[test]
fn python_smtplib_delivers_to_the_mx_port() {
    let server = start();
    let msg = file(&server, "m.eml", PLAIN_MESSAGE);
    let ran = run(
        python("smtp_client.py")
            .args(["mx", "127.0.0.1", &port(&server, SMTP)])
            .args(["client@example.org", ACCOUNT])
            .arg(&msg),
        b"",
    )
    .ok("smtp_client.py mx");
    assert_eq!(ran.text(), format!("{EHLO_MX}{SENT}"));
    assert_single_delivery(&server, PLAIN_MESSAGE, "client.example.org", "ESMTP");
    server.assert_consistent(ACCOUNT);
}

/// STARTTLS on the MX port, then REQUIRETLS (offered under TLS only,
/// RFC 8689 4.1) and SMTPUTF8 with a non-ASCII sender (RFC 6531).
#[test]
fn python_smtplib_starttls_requiretls_and_smtputf8_on_the_mx_port() {
    let server = start();
    let msg = file(&server, "m.eml", PLAIN_MESSAGE);
    let ran = run(
        python("smtp_client.py")
            .args(["mx-starttls", "127.0.0.1", &port(&server, SMTP)])
            .arg(cert(&server))
            .args(["jörg@exämple.org", ACCOUNT])
            .arg(&msg),
        b"",
    )
    .ok("smtp_client.py mx-starttls");
    assert_eq!(
        ran.text(),
        format!(
            "starttls 220 2.0.0 Ready to start TLS
{}{SENT}",
            EHLO_MX.replace("ehlo 250 STARTTLS\n", "ehlo 250 REQUIRETLS\n")
        )
    );
    assert_single_delivery(&server, PLAIN_MESSAGE, "client.example.org", "UTF8SMTPS");
}

#[test]
fn python_smtplib_submission_needs_auth_then_auth_login_works() {
    let server = start();
    let msg = file(&server, "m.eml", PLAIN_MESSAGE);
    let ran = run(
        python("smtp_client.py")
            .args(["submission", "127.0.0.1", &port(&server, SUBMISSION)])
            .args([ACCOUNT, PASSWORD, ACCOUNT, ACCOUNT])
            .arg(&msg),
        b"",
    )
    .ok("smtp_client.py submission");
    assert_eq!(
        ran.text(),
        format!(
            "{EHLO_SUBMISSION}mail-before-auth 530 5.7.0 Authentication required\n\
             auth 235 2.7.0 Authentication successful\n{SENT}"
        )
    );
    assert_single_delivery(&server, PLAIN_MESSAGE, "client.example.org", "ESMTPA");
}

#[test]
fn python_smtp_ssl_logs_in_on_submissions() {
    let server = start();
    let msg = file(&server, "m.eml", PLAIN_MESSAGE);
    let ran = run(
        python("smtp_client.py")
            .args(["submissions", "127.0.0.1", &port(&server, SUBMISSIONS)])
            .arg(cert(&server))
            .args([ACCOUNT, PASSWORD, ACCOUNT, ACCOUNT])
            .arg(&msg),
        b"",
    )
    .ok("smtp_client.py submissions");
    // The certificate verified against localserve-cert.pem, hostname
    // checks included (Python checks the 127.0.0.1 IP SAN).
    assert_eq!(
        ran.text(),
        format!(
            "tls TLSv1.3\n{}\
             bad-login 535 5.7.8 Authentication credentials invalid\n\
             login 235 2.7.0 Authentication successful\n{SENT}",
            // Already in TLS: no STARTTLS offered, and TLS 1.3 offers
            // channel binding to SCRAM.
            // REQUIRETLS is offered under TLS.
            EHLO_SUBMISSION.replace("ehlo 250 STARTTLS\n", "").replace(
                "ehlo 250 AUTH SCRAM-SHA-256 ",
                "ehlo 250 REQUIRETLS\nehlo 250 AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 "
            )
        )
    );
    assert_single_delivery(&server, PLAIN_MESSAGE, "client.example.org", "ESMTPSA");
}

// --- Python imaplib --------------------------------------------------------

/// What imap_client.py prints after logging in, for two delivered
/// messages of which it fetches UID 2 (`body` is its base64 line).
fn imaplib_session(sizes: [usize; 2], body: &str) -> String {
    let [s1, s2] = sizes;
    format!(
        "select OK 2
fetch OK 1 (UID 1 FLAGS () RFC822.SIZE {s1}) | 2 (UID 2 FLAGS () RFC822.SIZE {s2})
uid-fetch OK 2 (UID 2 BODY[] {{{s2}}}
body {body}
uid-fetch-tail )
store OK 1 (UID 1 FLAGS (\\Deleted))
expunge OK 1
noop OK NOOP completed
list OK (\\HasNoChildren \\Subscribed) \"/\" INBOX
list OK (\\HasNoChildren \\Subscribed \\Sent) \"/\" Sent
list OK (\\HasNoChildren \\Subscribed \\Drafts) \"/\" Drafts
list OK (\\HasNoChildren \\Subscribed \\Trash) \"/\" Trash
list OK (\\HasNoChildren \\Subscribed \\Junk) \"/\" Junk
list OK (\\HasNoChildren \\Subscribed \\Archive) \"/\" Archive
logout BYE roost logging out
"
    )
}

/// Runs imap_client.py against two delivered messages and checks all it
/// printed after `intro` (greeting and login lines) and the server's state.
fn imaplib_round_trip(server: &Server, base: u16, extra: &[&str], intro: &str) {
    let sent = deliver(server, 2);
    let before = inbox(server);
    let sizes = [before[0].body.len(), before[1].body.len()];
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(&before[1].body);
    assert_eq!(strip_prefix(&before[1].body, &sent[1]), &sent[1][..]);

    let ran = run(
        python("imap_client.py")
            .args(["127.0.0.1", &port(server, base), ACCOUNT, PASSWORD, "2"])
            .args(extra),
        b"",
    )
    .ok("imap_client.py");
    assert_eq!(
        ran.text(),
        format!("{intro}{}", imaplib_session(sizes, &body))
    );

    // The EXPUNGE took message 1 away; message 2 is still unseen (PEEK).
    let after = inbox(server);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].uid, 2);
    assert_eq!(after[0].body, before[1].body);
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)");
    assert!(
        r.starts_with("* STATUS INBOX (MESSAGES 1 UNSEEN 1 UIDNEXT 3)\r\n"),
        "{r}"
    );
    server.assert_consistent(ACCOUNT);
}

#[test]
fn python_imaplib_login_fetch_store_expunge() {
    let server = start();
    // On the plain port, before login, STARTTLS is offered too.
    let intro = format!(
        "greeting * OK [CAPABILITY {IMAP_CAPS} {IMAP_AUTH} STARTTLS] roost ready\n\
         login OK [CAPABILITY {IMAP_CAPS}] Logged in\n"
    );
    imaplib_round_trip(&server, IMAP, &[], &intro);
}

/// imaplib's CRAM-MD5 (its own HMAC-MD5, RFC 2195) over the plain
/// loopback port: a wrong password first, then the right one.
#[test]
fn python_imaplib_cram_md5() {
    let server = start();
    let intro = format!(
        "greeting * OK [CAPABILITY {IMAP_CAPS} {IMAP_AUTH} STARTTLS] roost ready\n\
         bad-cram-md5 [AUTHENTICATIONFAILED] Invalid credentials\n\
         cram-md5 OK [CAPABILITY {IMAP_CAPS}] Logged in\n"
    );
    imaplib_round_trip(&server, IMAP, &["--cram-md5"], &intro);
}

/// What a Cyrus test client printed from its AUTHENTICATE or AUTH line
/// to "Authenticated.", with every base64 run (nonces, proofs,
/// signatures differ each time) shown as `<b64>`, after checking that
/// the server's last challenge is a SCRAM server-final (`v=`).
fn cyrus_exchange(out: &str, start: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let from = out.find(start).unwrap_or_else(|| panic!("{out}"));
    let mut lines = Vec::new();
    for line in out[from..].lines() {
        let shown: Vec<String> = line
            .split(' ')
            .map(|w| {
                if w.len() >= 16 && b64.decode(w).is_ok() {
                    "<b64>".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        lines.push(shown.join(" "));
        if line == "Authenticated." {
            break;
        }
    }
    let finals: Vec<Vec<u8>> = out[from..]
        .lines()
        .filter_map(|l| l.strip_prefix("S: + ").or(l.strip_prefix("S: 334 ")))
        .filter_map(|w| b64.decode(w).ok())
        .collect();
    assert!(finals.last().is_some_and(|f| f.starts_with(b"v=")), "{out}");
    lines
}

/// Cyrus imtest (cyrus-sasl's SCRAM) over IMAPS, and smtptest over
/// submissions: SCRAM-SHA-256 with the server's signature checked by the
/// client. (Debian 12's imtest binds channels only with `tls-unique`,
/// which TLS 1.3 does not define, so -PLUS is tested in tests/auth.rs
/// with `tls-exporter`.)
#[test]
fn cyrus_imtest_and_smtptest_scram_sha_256() {
    let server = start();
    let script = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(script.path(), "a01 LOGOUT\n").expect("write");
    let ran = run(
        cyrus("imtest")
            .args(["-s", "-p", &port(&server, IMAPS), "-m", "SCRAM-SHA-256"])
            .args(["-a", ACCOUNT, "-w", PASSWORD, "-f"])
            .arg(script.path())
            .arg("127.0.0.1"),
        b"",
    )
    .ok("imtest");
    assert_eq!(
        cyrus_exchange(&ran.text(), "C: A01 AUTHENTICATE"),
        [
            "C: A01 AUTHENTICATE SCRAM-SHA-256 <b64>".to_string(),
            "S: + <b64>".into(),
            "C: <b64>".into(),
            "S: + <b64>".into(),
            "C: ".into(),
            format!("S: A01 OK [CAPABILITY {IMAP_CAPS}] Logged in"),
            "Authenticated.".into(),
        ]
    );
    let ran = run(
        cyrus("smtptest")
            .args([
                "-s",
                "-p",
                &port(&server, SUBMISSIONS),
                "-m",
                "SCRAM-SHA-256",
            ])
            .args(["-a", ACCOUNT, "-w", PASSWORD])
            .arg("127.0.0.1"),
        b"",
    )
    .ok("smtptest");
    assert_eq!(
        cyrus_exchange(&ran.text(), "C: AUTH"),
        [
            "C: AUTH SCRAM-SHA-256 <b64>",
            "S: 334 <b64>",
            "C: <b64>",
            "S: 334 <b64>",
            "C: ",
            "S: 235 2.7.0 Authentication successful",
            "Authenticated.",
        ]
    );
}

/// APPEND, SEARCH, UID commands and FETCH of ENVELOPE and BODYSTRUCTURE
/// through python's imaplib, its parsing included.
#[test]
fn python_imaplib_append_search_envelope_bodystructure() {
    let server = start();
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("STATUS INBOX (UIDVALIDITY)");
    let v = &r["* STATUS INBOX (UIDVALIDITY ".len()..r.find(')').unwrap()];
    let r = imap.cmd("STATUS Archive (UIDVALIDITY)");
    let av = &r["* STATUS Archive (UIDVALIDITY ".len()..r.find(')').unwrap()];
    let ran = run(
        python("imap_core.py").args(["127.0.0.1", &port(&server, IMAP), ACCOUNT, PASSWORD]),
        b"",
    )
    .ok("imap_core.py");
    let envelope = "(\"Tue, 01 Dec 2026 10:00:00 +0000\" \"Quarterly figures\" \
((\"Ann Example\" NIL \"ann\" \"example.org\")) ((\"Ann Example\" NIL \"ann\" \"example.org\")) \
((\"Ann Example\" NIL \"ann\" \"example.org\")) ((NIL NIL \"roost\" \"localhost\")) NIL NIL NIL \
\"<q1@example.org>\")";
    let structure =
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 14 1 NIL NIL NIL NIL)\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"q.pdf\") NIL NIL \"BASE64\" 12 NIL NIL NIL NIL) \
\"MIXED\" (\"BOUNDARY\" \"zz\") NIL NIL NIL)";
    assert_eq!(
        ran.text(),
        format!(
            "append OK [APPENDUID {v} 1] APPEND completed
append OK [APPENDUID {v} 2] APPEND completed
select OK 2
search OK 1
search OK 1
uid-search OK 2
fetch OK 1 (ENVELOPE {envelope})
fetch OK 1 (BODYSTRUCTURE {structure})
uid-fetch OK 2 (UID 2 INTERNALDATE \" 1-Dec-2026 12:00:00 +0000\" BODY[TEXT] {{7}} hello\r\n | )
uid-store OK 2 (UID 2 FLAGS (\\Seen))
uid-copy OK 
copyuid COPYUID {av} 1:2 1:2
status OK Archive (MESSAGES 2)
"
        )
    );
    server.assert_consistent(ACCOUNT);
}

#[test]
fn python_imap4_ssl_authenticate_plain_without_initial_response() {
    let server = start();
    let cafile = cert(&server);
    let cafile = cafile.to_str().expect("utf-8 temp path");
    let intro = format!(
        "tls TLSv1.3\n\
         greeting * OK [CAPABILITY {IMAP_CAPS} {IMAP_AUTH_TLS}] roost ready\n\
         authenticate OK [CAPABILITY {IMAP_CAPS}] Logged in\n"
    );
    imaplib_round_trip(&server, IMAPS, &["--tls", cafile, "--auth-plain"], &intro);
}

/// STARTTLS on the plain IMAP port (RFC 9051 6.2.1) through imaplib; a
/// command pipelined after STARTTLS in the same packet is dropped, not
/// run once TLS is up; STARTTLS again is BAD.
#[test]
fn python_imaplib_starttls_and_the_injection_case() {
    let server = start();
    let cafile = cert(&server);
    let cafile = cafile.to_str().expect("utf-8 temp path");
    let ran = run(
        python("imap_starttls.py").args([
            "localhost",
            &port(&server, IMAP),
            ACCOUNT,
            PASSWORD,
            cafile,
        ]),
        b"",
    )
    .ok("imap_starttls.py");
    assert_eq!(
        ran.text(),
        "offered True\n\
starttls OK\n\
tls TLSv1.3\n\
offered-after False\n\
login OK\n\
select OK\n\
answer a OK Begin TLS negotiation now\n\
after-handshake nothing\n\
again c BAD TLS is already active\n\
logout d OK LOGOUT completed\n"
    );
}

// --- curl ------------------------------------------------------------------

fn curl() -> Command {
    let mut cmd = program("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30"]);
    cmd
}

fn user() -> String {
    format!("{ACCOUNT}:{PASSWORD}")
}

#[test]
fn curl_uploads_over_smtp_to_the_mx_port() {
    let server = start();
    let msg = file(&server, "m.eml", PLAIN_MESSAGE);
    // The URL path is what curl says in EHLO.
    let url = format!("smtp://127.0.0.1:{}/client.example.org", server.port(SMTP));
    let ran = run(
        curl()
            .args(["--mail-from", "client@example.org", "--mail-rcpt", ACCOUNT])
            .arg("--upload-file")
            .arg(&msg)
            .arg(url),
        b"",
    )
    .ok("curl smtp://");
    assert_eq!(ran.text(), "");
    assert_eq!(ran.stderr, "");
    assert_single_delivery(&server, PLAIN_MESSAGE, "client.example.org", "ESMTP");
}

#[test]
fn curl_submits_over_smtps_with_user() {
    let server = start();
    let msg = file(&server, "m.eml", PLAIN_MESSAGE);
    let url = format!(
        "smtps://127.0.0.1:{}/client.example.org",
        server.port(SUBMISSIONS)
    );
    // Wrong password: curl's "login denied".
    let ran = run(
        curl()
            .args(["--insecure", "--user", &format!("{ACCOUNT}:nope")])
            .args(["--mail-from", ACCOUNT, "--mail-rcpt", ACCOUNT])
            .arg("--upload-file")
            .arg(&msg)
            .arg(&url),
        b"",
    );
    assert_eq!(ran.status.code(), Some(67), "{}", ran.stderr);
    assert!(inbox(&server).is_empty());

    // -k for the self-signed certificate.
    let ran = run(
        curl()
            .args(["--insecure", "--user", &user()])
            .args(["--mail-from", ACCOUNT, "--mail-rcpt", ACCOUNT])
            .arg("--upload-file")
            .arg(&msg)
            .arg(&url),
        b"",
    )
    .ok("curl smtps://");
    assert_eq!(ran.text(), "");
    assert_single_delivery(&server, PLAIN_MESSAGE, "client.example.org", "ESMTPSA");

    // And verified instead of -k: the certificate names 127.0.0.1.
    let ran = run(
        curl()
            .arg("--cacert")
            .arg(cert(&server))
            .args(["--user", &user()])
            .args(["--mail-from", ACCOUNT, "--mail-rcpt", ACCOUNT])
            .arg("--upload-file")
            .arg(&msg)
            .arg(&url),
        b"",
    )
    .ok("curl smtps:// --cacert");
    assert_eq!(ran.text(), "");
    assert_eq!(inbox(&server).len(), 2);
}

const LIST: &str = "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX\r
* LIST (\\HasNoChildren \\Subscribed \\Sent) \"/\" Sent\r
* LIST (\\HasNoChildren \\Subscribed \\Drafts) \"/\" Drafts\r
* LIST (\\HasNoChildren \\Subscribed \\Trash) \"/\" Trash\r
* LIST (\\HasNoChildren \\Subscribed \\Junk) \"/\" Junk\r
* LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" Archive\r
";

#[test]
fn curl_fetches_by_uid_and_lists_over_imap() {
    let server = start();
    let sent = deliver(&server, 2);
    let stored = inbox(&server);
    let base = format!("imap://127.0.0.1:{}", server.port(IMAP));

    // `INBOX;UID=2`: SELECT, then UID FETCH 2 BODY[]; curl writes the
    // literal's bytes and nothing else.
    let ran = run(
        curl()
            .args(["--user", &user()])
            .arg(format!("{base}/INBOX;UID=2")),
        b"",
    )
    .ok("curl imap:// UID=2");
    assert_eq!(ran.stdout, stored[1].body);
    assert_eq!(strip_prefix(&ran.stdout, &sent[1]), &sent[1][..]);

    // A section: the body only.
    let ran = run(
        curl()
            .args(["--user", &user()])
            .arg(format!("{base}/INBOX;UID=1/;SECTION=TEXT")),
        b"",
    )
    .ok("curl imap:// SECTION=TEXT");
    let text = &sent[0][sent[0].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(ran.stdout, text);

    // No mailbox in the URL: LIST "" *, printed as the server sent it.
    let ran = run(
        curl().args(["--user", &user()]).arg(format!("{base}/")),
        b"",
    )
    .ok("curl imap:// list");
    assert_eq!(ran.text(), LIST);

    // A custom command: curl prints its untagged responses.
    let ran = run(
        curl()
            .args([
                "--user",
                &user(),
                "--request",
                "STATUS INBOX (MESSAGES UIDNEXT)",
            ])
            .arg(format!("{base}/")),
        b"",
    )
    .ok("curl imap:// STATUS");
    assert_eq!(ran.text(), "* STATUS INBOX (MESSAGES 2 UIDNEXT 3)\r\n");

    // Login refused: curl's exit code 67.
    let ran = run(
        curl()
            .args(["--user", &format!("{ACCOUNT}:wrong")])
            .arg(format!("{base}/INBOX;UID=1")),
        b"",
    );
    assert_eq!(ran.status.code(), Some(67), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());

    // curl's UID FETCH set \Seen on both (no PEEK); nothing else changed.
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("STATUS INBOX (MESSAGES UNSEEN)");
    assert!(
        r.starts_with("* STATUS INBOX (MESSAGES 2 UNSEEN 0)\r\n"),
        "{r}"
    );
    server.assert_consistent(ACCOUNT);
}

#[test]
fn curl_fetches_by_uid_over_imaps() {
    let server = start();
    let sent = deliver(&server, 1);
    let url = format!("imaps://127.0.0.1:{}/INBOX;UID=1", server.port(IMAPS));
    let ran = run(
        curl().args(["--insecure", "--user", &user()]).arg(&url),
        b"",
    )
    .ok("curl imaps:// -k");
    assert_eq!(strip_prefix(&ran.stdout, &sent[0]), &sent[0][..]);
    assert_eq!(ran.stdout, inbox(&server)[0].body);

    let ran = run(
        curl()
            .arg("--cacert")
            .arg(cert(&server))
            .args(["--user", &user()])
            .arg(format!("imaps://127.0.0.1:{}/", server.port(IMAPS))),
        b"",
    )
    .ok("curl imaps:// --cacert list");
    assert_eq!(ran.text(), LIST);
}

#[test]
fn curl_reads_health_over_http_and_https() {
    let server = start();
    let expected = serde_json::json!({"ok": true, "accounts": 1});
    let ran = run(
        curl().args([
            "--fail",
            &format!("http://127.0.0.1:{}/api/health", server.port(HTTP)),
        ]),
        b"",
    )
    .ok("curl http health");
    let got: serde_json::Value = serde_json::from_slice(&ran.stdout).expect("health JSON");
    assert_eq!(got, expected);

    let ran = run(
        curl()
            .arg("--fail")
            .arg("--cacert")
            .arg(cert(&server))
            .arg(format!(
                "https://127.0.0.1:{}/api/health",
                server.port(HTTPS)
            )),
        b"",
    )
    .ok("curl https health");
    let got: serde_json::Value = serde_json::from_slice(&ran.stdout).expect("health JSON");
    assert_eq!(got, expected);
}

#[test]
fn curl_events_without_credentials_is_401() {
    let server = start();
    let url = format!("http://127.0.0.1:{}/events", server.port(HTTP));
    for creds in [None, Some(format!("{ACCOUNT}:wrong"))] {
        let mut cmd = curl();
        cmd.args(["--output", "/dev/null", "--write-out"])
            .arg("%{http_code} %header{www-authenticate}");
        if let Some(c) = &creds {
            cmd.args(["--user", c]);
        }
        let ran = run(cmd.arg(&url), b"").ok("curl /events 401");
        assert_eq!(ran.text(), "401 Basic realm=\"roost\"", "{creds:?}");
    }
}

/// A running `curl -N` whose stdout lines (without CRLF or LF) arrive on
/// a channel.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    fn start(cmd: &mut Command) -> Streaming {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start curl");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines }
    }

    fn line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no {what} from curl: {e}"))
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn curl_no_buffer_sees_a_change_event_after_delivery() {
    let server = start();
    let sse = Streaming::start(
        curl()
            .args(["--no-buffer", "--dump-header", "-", "--user", &user()])
            .arg(format!("http://127.0.0.1:{}/events", server.port(HTTP))),
    );
    // The headers come first: once they are here the stream is subscribed.
    assert_eq!(sse.line("status line"), "HTTP/1.1 200 OK");
    let mut headers = Vec::new();
    loop {
        let h = sse.line("header");
        if h.is_empty() {
            break;
        }
        headers.push(h.to_ascii_lowercase());
    }
    assert!(
        headers.contains(&"content-type: text/event-stream".to_string()),
        "{headers:?}"
    );

    let sent = deliver(&server, 1);
    assert_eq!(sse.line("event line"), "event: change");
    let data = sse.line("data line");
    let json = data.strip_prefix("data: ").expect("SSE data line");
    let ev: serde_json::Value = serde_json::from_str(json).expect("event JSON");
    assert_eq!(ev["account"], ACCOUNT, "{ev}");
    assert_eq!(ev["type"], "messages_added", "{ev}");
    assert_eq!(ev["name"], "INBOX", "{ev}");
    assert_eq!(ev["messages"][0]["uid"], 1, "{ev}");
    assert_eq!(
        ev["messages"][0]["size"],
        inbox(&server)[0].body.len(),
        "{ev}"
    );
    assert!(
        inbox(&server)[0].body.ends_with(&sent[0]),
        "delivered message"
    );
    assert_eq!(sse.line("blank line after the event"), "");
}

// --- swaks -----------------------------------------------------------------

/// swaks sends the --data file and then CRLF . CRLF, so a file without a
/// final line break arrives with one. The dot line checks its stuffing.
const SWAKS_DATA: &[u8] = b"From: roost@localhost\r\nTo: roost@localhost\r\n\
Subject: swaks\r\n\r\nsent by swaks\r\n.a dot line\r\nno final line break";

fn swaks_sent() -> Vec<u8> {
    [SWAKS_DATA, b"\r\n"].concat()
}

#[test]
fn swaks_delivers_to_the_mx_port() {
    let server = start();
    let data = file(&server, "m.eml", SWAKS_DATA);
    let ran = run(
        program("swaks")
            .args(["--server", &format!("127.0.0.1:{}", server.port(SMTP))])
            .args([
                "--helo",
                "client.example.org",
                "--from",
                "swaks@example.org",
            ])
            .args(["--to", ACCOUNT, "--silent", "2"])
            .arg("--data")
            .arg(format!("@{}", data.display())),
        b"",
    )
    .ok("swaks");
    assert_eq!(ran.text(), "");
    assert_single_delivery(&server, &swaks_sent(), "client.example.org", "ESMTP");
    let stored = &inbox(&server)[0].body;
    assert!(
        stored.starts_with(b"Return-Path: <swaks@example.org>\r\n"),
        "{}",
        String::from_utf8_lossy(stored)
    );
}

#[test]
fn swaks_auth_plain_on_submission() {
    let server = start();
    let data = file(&server, "m.eml", SWAKS_DATA);
    let swaks = |password: &str| {
        let mut cmd = program("swaks");
        cmd.args([
            "--server",
            &format!("127.0.0.1:{}", server.port(SUBMISSION)),
        ])
        .args([
            "--helo",
            "client.example.org",
            "--from",
            ACCOUNT,
            "--to",
            ACCOUNT,
        ])
        .args(["--auth", "PLAIN", "--auth-user", ACCOUNT])
        .args(["--auth-password", password])
        .arg("--data")
        .arg(format!("@{}", data.display()));
        run(&mut cmd, b"")
    };
    // swaks exits 28 when authentication fails.
    let ran = swaks("wrong");
    assert_eq!(ran.status.code(), Some(28), "{}", ran.text());
    assert!(
        ran.text()
            .contains("\n<** 535 5.7.8 Authentication credentials invalid\n"),
        "{}",
        ran.text()
    );
    assert!(inbox(&server).is_empty());

    let ran = swaks(PASSWORD).ok("swaks --auth PLAIN");
    let out = ran.text();
    assert!(
        out.contains("\n<-  250-AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN\n"),
        "{out}"
    );
    assert!(out.contains("\n<-  250 STARTTLS\n"), "{out}");
    assert!(
        out.contains("\n<-  235 2.7.0 Authentication successful\n"),
        "{out}"
    );
    assert!(
        out.contains("\n<-  250 2.0.0 OK, message delivered\n"),
        "{out}"
    );
    assert_single_delivery(&server, &swaks_sent(), "client.example.org", "ESMTPA");
}

// --- msmtp -----------------------------------------------------------------

#[test]
fn msmtp_submits_over_submissions_with_a_verified_certificate() {
    let server = start();
    let ran = run(
        program("msmtp")
            .args([
                "--host=127.0.0.1",
                &format!("--port={}", server.port(SUBMISSIONS)),
            ])
            .args(["--tls=on", "--tls-starttls=off"])
            .arg(format!("--tls-trust-file={}", cert(&server).display()))
            .args(["--auth=plain", &format!("--user={ACCOUNT}")])
            .arg(format!("--passwordeval=echo {PASSWORD}"))
            .args([
                &format!("--from={ACCOUNT}"),
                "--domain=client.example.org",
                ACCOUNT,
            ]),
        PLAIN_MESSAGE,
    )
    .ok("msmtp");
    assert_eq!(ran.text(), "");
    assert_single_delivery(&server, PLAIN_MESSAGE, "client.example.org", "ESMTPSA");
}

// --- openssl s_client -------------------------------------------------------

#[test]
fn openssl_s_client_logs_in_over_imaps() {
    let server = start();
    let sent = deliver(&server, 1);
    let size = inbox(&server)[0].body.len();
    // -quiet implies -ign_eof: s_client sends all of stdin and keeps
    // reading until the server closes after LOGOUT.
    let script = format!(
        "a1 LOGIN {ACCOUNT} {PASSWORD}\r\na2 EXAMINE INBOX\r\n\
         a3 UID FETCH 1 (FLAGS BODY.PEEK[])\r\na4 LOGOUT\r\n"
    );
    let ran = run(
        program("openssl")
            .args(["s_client", "-quiet", "-verify_return_error"])
            .args(["-connect", &format!("127.0.0.1:{}", server.port(IMAPS))])
            .arg("-CAfile")
            .arg(cert(&server)),
        script.as_bytes(),
    )
    .ok("openssl s_client");
    let out = ran.stdout;
    let text = String::from_utf8_lossy(&out).into_owned();
    let fetch_head = format!("* 1 FETCH (UID 1 FLAGS () BODY[] {{{size}}}\r\n");
    let at = text.find(&fetch_head).unwrap_or_else(|| panic!("{text}"));
    let literal = &out[at + fetch_head.len()..at + fetch_head.len() + size];
    assert_eq!(strip_prefix(literal, &sent[0]), &sent[0][..]);

    let before = &text[..at];
    assert!(
        before.starts_with(&format!(
            "* OK [CAPABILITY {IMAP_CAPS} {IMAP_AUTH_TLS}] roost ready\r\na1 OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n"
        )),
        "{text}"
    );
    assert!(before.contains("* 1 EXISTS\r\n"), "{text}");
    assert!(
        before.ends_with("a2 OK [READ-ONLY] EXAMINE completed\r\n"),
        "{text}"
    );
    let after = &text[at + fetch_head.len() + size..];
    assert_eq!(
        after,
        ")\r\na3 OK FETCH completed\r\n* BYE roost logging out\r\na4 OK LOGOUT completed\r\n"
    );
    // The certificate verified (verify return code 0 on stderr).
    assert!(ran.stderr.contains("verify return:1"), "{}", ran.stderr);
}

// --- mbsync (isync) ----------------------------------------------------------

/// A message as both sides of a sync keep it: its maildir flag letters,
/// sorted, and its bytes with LF line ends and without the header mbsync
/// (X-TUID) or offlineimap (X-OfflineIMAP) may add to what it uploads.
type Synced = (String, Vec<u8>);

fn normalized(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    text.lines()
        .filter(|l| !l.starts_with("X-TUID: ") && !l.starts_with("X-OfflineIMAP: "))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

/// INBOX on the server, sorted.
fn server_side(server: &Server) -> Vec<Synced> {
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("EXAMINE INBOX");
    assert!(r.contains(" OK [READ-ONLY] "), "{r}");
    let out = imap.cmd_bytes("FETCH 1:* (FLAGS BODY.PEEK[])");
    let mut rest = &out[..];
    let mut found = Vec::new();
    while let Some(at) = rest.windows(7).position(|w| w == b"FLAGS (") {
        rest = &rest[at + 7..];
        let close = rest.iter().position(|&b| b == b')').unwrap();
        let flags = String::from_utf8_lossy(&rest[..close]).into_owned();
        let open = rest.iter().position(|&b| b == b'{').unwrap();
        let end = rest.iter().position(|&b| b == b'}').unwrap();
        let len: usize = std::str::from_utf8(&rest[open + 1..end])
            .unwrap()
            .parse()
            .unwrap();
        let body = &rest[end + 3..end + 3 + len];
        let mut letters: Vec<char> = flags
            .split_whitespace()
            .filter_map(|f| match f {
                "\\Draft" => Some('D'),
                "\\Flagged" => Some('F'),
                "\\Answered" => Some('R'),
                "\\Seen" => Some('S'),
                "\\Deleted" => Some('T'),
                _ => None,
            })
            .collect();
        letters.sort_unstable();
        found.push((letters.into_iter().collect(), normalized(body)));
        rest = &rest[end + 3 + len..];
    }
    found.sort();
    found
}

/// A maildir folder's messages, sorted.
fn maildir_side(dir: &Path) -> Vec<Synced> {
    let mut found = Vec::new();
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut letters: Vec<char> = name
                .split_once(":2,")
                .map_or("", |(_, f)| f)
                .chars()
                .filter(|c| "DFRST".contains(*c))
                .collect();
            letters.sort_unstable();
            found.push((
                letters.into_iter().collect(),
                normalized(&std::fs::read(&path).unwrap()),
            ));
        }
    }
    found.sort();
    found
}

/// A maildir folder's message files in the order of their message
/// numbers, so the near side's changes (on messages 1 to 40) never touch
/// the messages the far side changes (100 to 120, 200 to 210).
fn by_number(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(usize, PathBuf)> = ["cur", "new"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).unwrap())
        .map(|e| {
            let path = e.unwrap().path();
            let text = normalized(&std::fs::read(&path).unwrap());
            let text = String::from_utf8_lossy(&text)
                .replace('\n', "\r\n")
                .into_bytes();
            (message_number(&text).expect("a numbered message"), path)
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Sets maildir flags on a message file (moving it to cur/).
fn set_maildir_flags(dir: &Path, path: &Path, letters: &str) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let base = name
        .split_once(":2,")
        .map_or(name.as_str(), |(b, _)| b)
        .to_string();
    std::fs::rename(path, dir.join("cur").join(format!("{base}:2,{letters}"))).unwrap();
}

/// APPENDs `message(n, 3)` for n in 1..=count to INBOX, pipelined.
fn fill_inbox(imap: &mut Imap, count: usize) {
    let mut batch = Vec::new();
    for n in 1..=count {
        let m = message(n, 3);
        batch.extend_from_slice(format!("p{n} APPEND INBOX {{{}+}}\r\n", m.len()).as_bytes());
        batch.extend_from_slice(&m);
        batch.extend_from_slice(b"\r\n");
    }
    imap.send_raw(&batch);
    let done = String::from_utf8_lossy(&imap.until_tagged(&format!("p{count}"))).into_owned();
    assert_eq!(done.matches(" OK [APPENDUID ").count(), count, "{done}");
}

/// The near side of a sync test changes: messages 1 to 30 are read,
/// `delete` takes 31 to 40 away, 5 new messages are added.
fn change_near_side(inbox_dir: &Path, delete: impl Fn(&Path)) {
    let files = by_number(inbox_dir);
    for f in &files[..30] {
        set_maildir_flags(inbox_dir, f, "S");
    }
    for f in &files[30..40] {
        delete(f);
    }
    for n in 1001..=1005 {
        let name = format!("local{n}.roost-test:2,");
        std::fs::write(inbox_dir.join("cur").join(name), message(n, 2)).unwrap();
    }
}

/// After the second sync: both sides hold the same messages with the same
/// flags, and both sides' changes are in.
fn assert_synced(server: &Server, inbox_dir: &Path) {
    let near = maildir_side(inbox_dir);
    let far = server_side(server);
    assert_eq!(near.len(), 300 - 10 - 11 + 5 + 5);
    assert_eq!(near, far);
    assert_eq!(near.iter().filter(|(f, _)| f.contains('F')).count(), 21);
    assert_eq!(near.iter().filter(|(f, _)| f.contains('S')).count(), 30);
    assert!(near.iter().all(|(f, _)| !f.contains('T')));
    server.assert_consistent(ACCOUNT);
}

/// The server side of a sync test changes: 21 flagged, 11 expunged, 5 new.
fn change_far_side(mut imap: Imap) {
    imap.cmd("SELECT INBOX");
    let r = imap.cmd("STORE 100:120 +FLAGS.SILENT (\\Flagged)");
    assert!(r.ends_with(" OK STORE completed\r\n"), "{r}");
    imap.cmd("STORE 200:210 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(imap.cmd("EXPUNGE").matches(" EXPUNGE\r\n").count(), 11);
    for n in 2001..=2005 {
        let m = message(n, 2);
        imap.send_raw(format!("q{n} APPEND INBOX {{{}+}}\r\n", m.len()).as_bytes());
        imap.send_raw(&m);
        imap.send_raw(b"\r\n");
        let r = String::from_utf8_lossy(&imap.until_tagged(&format!("q{n}"))).into_owned();
        assert!(r.contains(" OK [APPENDUID "), "{r}");
    }
}

fn mbsync(config: &Path) {
    let ran = run(program("mbsync").arg("-c").arg(config).arg("-a"), b"");
    assert!(
        ran.status.success(),
        "mbsync failed: {}\n{}",
        ran.text(),
        ran.stderr
    );
}

/// mbsync pulls a mailbox of 300 messages, then both sides change (flags,
/// expunges, new mail) and a second run brings them together: message
/// bytes and flags end identical on both sides.
#[test]
fn mbsync_syncs_both_ways_and_ends_identical() {
    let server = start();
    let mut imap = Imap::login(server.port(IMAP));
    fill_inbox(&mut imap, 300);

    let maildir = server.dir.join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let config = file(
        &server,
        "mbsyncrc",
        format!(
            "IMAPAccount roost\nHost 127.0.0.1\nPort {}\nUser {ACCOUNT}\nPass {PASSWORD}\n\
SSLType None\nAuthMechs LOGIN\n\nIMAPStore remote\nAccount roost\n\n\
MaildirStore local\nPath {dir}/\nInbox {dir}/INBOX\n\n\
Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\n\
Expunge Both\nSyncState *\n",
            server.port(IMAP),
            dir = maildir.display()
        )
        .as_bytes(),
    );
    mbsync(&config);
    let inbox_dir = maildir.join("INBOX");
    let first = maildir_side(&inbox_dir);
    assert_eq!(first.len(), 300);
    assert_eq!(first, server_side(&server));

    change_near_side(&inbox_dir, |f| set_maildir_flags(&inbox_dir, f, "T"));
    change_far_side(imap);

    mbsync(&config);
    assert_synced(&server, &inbox_dir);
}

// --- offlineimap3 ------------------------------------------------------------

fn offlineimap(config: &Path) {
    let ran = run(
        program("offlineimap")
            .arg("-c")
            .arg(config)
            .args(["-o", "-u", "basic"]),
        b"",
    );
    assert!(
        ran.status.success() && !ran.text().contains("ERROR") && !ran.stderr.contains("ERROR"),
        "offlineimap failed: {}\n{}",
        ran.text(),
        ran.stderr
    );
}

/// offlineimap3 pulls 300 messages; the near side marks some read, deletes
/// some and adds some, the far side flags, expunges and adds; a second run
/// leaves both sides with the same bytes and flags.
#[test]
fn offlineimap_syncs_both_ways_and_ends_identical() {
    let server = start();
    let mut imap = Imap::login(server.port(IMAP));
    fill_inbox(&mut imap, 300);
    let root = server.dir.join("oi");
    std::fs::create_dir_all(root.join("meta")).unwrap();
    let config = file(
        &server,
        "offlineimaprc",
        format!(
            "[general]\naccounts = roost\nmetadata = {root}/meta\n\n\
[Account roost]\nlocalrepository = near\nremoterepository = far\n\n\
[Repository near]\ntype = Maildir\nlocalfolders = {root}/mail\n\n\
[Repository far]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {}\n\
remoteuser = {ACCOUNT}\nremotepass = {PASSWORD}\nssl = no\nstarttls = no\n\
folderfilter = lambda f: f == 'INBOX'\n",
            server.port(IMAP),
            root = root.display()
        )
        .as_bytes(),
    );
    offlineimap(&config);
    let inbox_dir = root.join("mail").join("INBOX");
    let first = maildir_side(&inbox_dir);
    assert_eq!(first.len(), 300);
    assert_eq!(first, server_side(&server));

    change_near_side(&inbox_dir, |f| std::fs::remove_file(f).unwrap());
    change_far_side(imap);

    offlineimap(&config);
    assert_synced(&server, &inbox_dir);
}

// --- neomutt -----------------------------------------------------------------

/// neomutt, driven by pushed keys in a pseudo-terminal (`script`), reads the
/// first message of INBOX (piping it to a file), deletes it and syncs.
#[test]
fn neomutt_reads_and_deletes_in_batch() {
    let server = start();
    let mut imap = Imap::login(server.port(IMAP));
    fill_inbox(&mut imap, 3);
    drop(imap);
    let read = server.dir.join("read.txt");
    let rc = file(
        &server,
        "muttrc",
        format!(
            "set folder=\"imap://127.0.0.1:{}/\"\nset imap_user=\"{ACCOUNT}\"\n\
set imap_pass=\"{PASSWORD}\"\nset spoolfile=\"+INBOX\"\nset ssl_starttls=no\n\
set ssl_force_tls=no\nset header_cache=\"\"\nset message_cachedir=\"\"\n\
set delete=yes\nset quit=yes\nset mail_check=0\nset timeout=1\nset wait_key=no\n\
set move=no\nset sort=mailbox-order\n",
            server.port(IMAP)
        )
        .as_bytes(),
    );
    let keys = format!(
        "<pipe-message>cat > {}<enter><delete-message><sync-mailbox><quit>",
        read.display()
    );
    neomutt_pipes_message_one(&rc, &keys, &read);
    let left: Vec<Option<usize>> = inbox(&server)
        .iter()
        .map(|m| message_number(&m.body))
        .collect();
    assert_eq!(left, vec![Some(2), Some(3)]);
    server.assert_consistent(ACCOUNT);
}

/// `openssl s_client -starttls imap` on the plain IMAP port: it reads the
/// greeting, sends STARTTLS, does the handshake (verifying roost's
/// certificate), and the session goes on in TLS.
#[test]
fn openssl_s_client_starttls_imap() {
    let server = start();
    let script = format!("a1 LOGIN {ACCOUNT} {PASSWORD}\r\na2 LOGOUT\r\n");
    let ran = run(
        program("openssl")
            .args([
                "s_client",
                "-quiet",
                "-verify_return_error",
                "-starttls",
                "imap",
            ])
            .args(["-connect", &format!("127.0.0.1:{}", server.port(IMAP))])
            .arg("-CAfile")
            .arg(cert(&server)),
        script.as_bytes(),
    )
    .ok("openssl s_client -starttls imap");
    // s_client swallows the greeting and STARTTLS exchange; what follows
    // is the TLS session.
    assert_eq!(
        ran.text(),
        format!(
            "a1 OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n* BYE roost logging out\r\n\
a2 OK LOGOUT completed\r\n"
        )
    );
}

/// STARTTLS with smtplib (RFC 3207), on the MX port and on submission:
/// offered in EHLO before TLS and not after, the session starts over after
/// the handshake, and a command pipelined after STARTTLS is dropped.
#[test]
fn python_smtplib_starttls_and_the_injection_case() {
    let server = start();
    let cafile = cert(&server);
    let cafile = cafile.to_str().expect("utf-8 temp path");
    for base in [SMTP, SUBMISSION] {
        let ran = run(
            python("smtp_starttls.py").args(["localhost", &port(&server, base), cafile]),
            b"",
        )
        .ok("smtp_starttls.py");
        assert_eq!(
            ran.text(),
            "offered True\n\
starttls 220 2.0.0 Ready to start TLS\n\
tls TLSv1.3\n\
offered-after False\n\
again (503, b'5.5.1 TLS is already active')\n\
answer 220 2.0.0 Ready to start TLS\n\
after-handshake nothing\n\
mail-before-ehlo 503 5.5.1 Send EHLO or HELO first\n\
quit 221 2.0.0 localhost closing connection\n",
            "port {base}"
        );
    }
}

// --- TLS client certificates (EXTERNAL, PREAUTH) -------------------------

/// `openssl s_client` with a client certificate, over `args`, sending
/// `script`; what it printed.
fn s_client_with_cert(server: &Server, args: &[&str], key: &Path, script: &str) -> String {
    let crt = key.with_extension("crt");
    run(
        program("openssl")
            .args(["s_client", "-quiet", "-verify_return_error"])
            .args(args)
            .arg("-CAfile")
            .arg(cert(server))
            .arg("-cert")
            .arg(&crt)
            .arg("-key")
            .arg(key),
        script.as_bytes(),
    )
    .ok("openssl s_client")
    .text()
}

/// The whole life of a device key: `tlspubkey gen` prints openssl
/// commands that make it (they run as printed), `tlspubkey add` registers
/// it (the fingerprint is openssl's SHA-256 of the public key), IMAPS
/// starts with `* PREAUTH`, submissions needs no AUTH; a key with preauth
/// off logs in with AUTHENTICATE EXTERNAL (over STARTTLS too) and refuses
/// another account; after `tlspubkey rm` the key is nobody's.
#[test]
fn client_certificates_preauth_external_and_tlspubkey() {
    let server = start();
    let keys = tempfile::tempdir().expect("tempdir");
    let sh = |script: &str| {
        run(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(keys.path()),
            b"",
        )
        .ok(script)
        .text()
    };
    let recipe = server.admin_ok(&["tlspubkey", "gen", ACCOUNT, "--name", "laptop"]);
    let commands: String = recipe
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("roost "))
        .map(|l| format!("{l}\n"))
        .collect();
    // The .p12 step asks for a password on a terminal; given here.
    sh(&commands.replace("-out laptop.p12", "-out laptop.p12 -passout pass:x"));
    assert!(recipe.ends_with(&format!(
        "roost admin tlspubkey add '{ACCOUNT}' --name 'laptop' --cert laptop.crt\n"
    )));
    assert!(keys.path().join("laptop.p12").is_file());
    let laptop = keys.path().join("laptop.key");
    let added = server.admin_ok(&[
        "tlspubkey",
        "add",
        ACCOUNT,
        "--name",
        "laptop",
        "--cert",
        laptop.with_extension("crt").to_str().expect("utf-8"),
    ]);
    let fingerprint = sh(
        "openssl x509 -in laptop.crt -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
    );
    let fingerprint = fingerprint.split(' ').next().expect("sha256sum");
    let added: serde_json::Value = serde_json::from_str(&added).expect("json");
    assert_eq!(
        added,
        serde_json::json!({"account": ACCOUNT, "name": "laptop", "preauth": true,
                           "sha256": fingerprint})
    );

    let imaps = [
        "-connect".to_string(),
        format!("127.0.0.1:{}", server.port(IMAPS)),
    ];
    let imaps = [imaps[0].as_str(), imaps[1].as_str()];
    assert_eq!(
        s_client_with_cert(&server, &imaps, &laptop, "a1 NOOP\r\na2 LOGOUT\r\n"),
        format!(
            "* PREAUTH [CAPABILITY {IMAP_CAPS}] Logged in as {ACCOUNT}\r\n\
             a1 OK NOOP completed\r\n* BYE roost logging out\r\na2 OK LOGOUT completed\r\n"
        )
    );
    let submissions = format!("127.0.0.1:{}", server.port(SUBMISSIONS));
    let ehlo = EHLO_SUBMISSION
        .lines()
        .filter(|l| !l.contains("AUTH") && !l.contains("STARTTLS"))
        .map(|l| l.replacen("ehlo 250 ", "", 1))
        .chain(["REQUIRETLS".to_string()])
        .collect::<Vec<_>>();
    let (last, first) = ehlo.split_last().expect("EHLO lines");
    let ehlo: String = first.iter().map(|l| format!("250-{l}\r\n")).collect();
    assert_eq!(
        s_client_with_cert(
            &server,
            &["-connect", &submissions],
            &laptop,
            "EHLO client.example.org\r\nMAIL FROM:<roost@localhost>\r\nQUIT\r\n"
        ),
        format!(
            "220 localhost ESMTP roost\r\n{ehlo}250 {last}\r\n250 2.1.0 Sender OK\r\n\
             221 2.0.0 localhost closing connection\r\n"
        )
    );

    // A second device, preauth off.
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout phone.key -out phone.crt -days 3650 -subj '/CN=phone' 2>/dev/null",
    );
    let phone = keys.path().join("phone.key");
    server.admin_ok(&[
        "tlspubkey",
        "add",
        ACCOUNT,
        "--name",
        "phone",
        "--cert",
        phone.with_extension("crt").to_str().expect("utf-8"),
        "--no-preauth",
    ]);
    server.admin_ok(&[
        "account",
        "add",
        "other@localhost",
        "--password",
        "other-secret",
    ]);
    let plain_roost = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("\0{ACCOUNT}\0{PASSWORD}"))
    };
    assert_eq!(
        s_client_with_cert(
            &server,
            &imaps,
            &phone,
            "a1 LOGIN other@localhost other-secret\r\na2 AUTHENTICATE EXTERNAL =\r\n\
             a3 LOGOUT\r\n"
        ),
        format!(
            "* OK [CAPABILITY {IMAP_CAPS} {IMAP_AUTH_TLS} AUTH=EXTERNAL] roost ready\r\n\
             a1 NO [AUTHORIZATIONFAILED] This connection's client certificate belongs to another account\r\n\
             a2 OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n\
             * BYE roost logging out\r\na3 OK LOGOUT completed\r\n"
        )
    );
    // Over STARTTLS on the plain port, EXTERNAL without an initial
    // response, then another mechanism for the same account elsewhere.
    let imap = format!("127.0.0.1:{}", server.port(IMAP));
    assert_eq!(
        s_client_with_cert(
            &server,
            &["-starttls", "imap", "-connect", &imap],
            &phone,
            "a1 AUTHENTICATE EXTERNAL\r\n\r\na2 LOGOUT\r\n"
        ),
        format!(
            "+ \r\na1 OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n\
             * BYE roost logging out\r\na2 OK LOGOUT completed\r\n"
        )
    );
    assert_eq!(
        s_client_with_cert(
            &server,
            &imaps,
            &phone,
            &format!("a1 AUTHENTICATE PLAIN {plain_roost}\r\na2 LOGOUT\r\n")
        )
        .lines()
        .nth(1),
        Some(format!("a1 OK [CAPABILITY {IMAP_CAPS}] Logged in").as_str())
    );

    let list: serde_json::Value =
        serde_json::from_str(&server.admin_ok(&["tlspubkey", "list", ACCOUNT])).expect("json");
    let names: Vec<(&str, bool)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|k| (k["name"].as_str().unwrap_or("?"), k["preauth"] == true))
        .collect();
    assert_eq!(names, [("laptop", true), ("phone", false)]);
    // The same key twice, anywhere, is refused.
    let again = server.admin(&[
        "tlspubkey",
        "add",
        "other@localhost",
        "--name",
        "stolen",
        "--cert",
        laptop.with_extension("crt").to_str().expect("utf-8"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!("roost: this key is already registered to {ACCOUNT} as \"laptop\"\n")
    );

    server.admin_ok(&["tlspubkey", "rm", ACCOUNT, "laptop"]);
    assert_eq!(
        s_client_with_cert(
            &server,
            &imaps,
            &laptop,
            "a1 AUTHENTICATE EXTERNAL =\r\na2 LOGOUT\r\n"
        )
        .lines()
        .nth(1),
        Some("a1 NO [AUTHENTICATIONFAILED] Invalid credentials")
    );
}

// --- TLS: STARTTLS on submission, ALPN on 443, SNI, tickets ----------------

/// `openssl s_client` with `args` (against localserve's certificate)
/// sending `script`: its exit status, what it printed, and its stderr.
fn s_client(server: &Server, args: &[&str], script: &str) -> Ran {
    run(
        program("openssl")
            .args(["s_client", "-verify_return_error", "-CAfile"])
            .arg(cert(server))
            .args(args),
        script.as_bytes(),
    )
}

/// What roost says to `EHLO client.example.org` on submission under TLS
/// 1.3, as `250` lines.
fn ehlo_submission_tls() -> String {
    let lines: Vec<String> = EHLO_SUBMISSION
        .replace("ehlo 250 AUTH", "ehlo 250 REQUIRETLS\nehlo 250 AUTH")
        .lines()
        .filter(|l| !l.contains("STARTTLS"))
        .map(|l| {
            l.replacen("ehlo 250 ", "", 1).replace(
                "AUTH SCRAM-SHA-256 ",
                "AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 ",
            )
        })
        .collect();
    let (last, first) = lines.split_last().expect("EHLO lines");
    let mut out: String = first.iter().map(|l| format!("250-{l}\r\n")).collect();
    out.push_str(&format!("250 {last}\r\n"));
    out
}

/// Submission with STARTTLS on 587, then AUTH, driven by `openssl
/// s_client -starttls smtp` and by swaks (`-tls` with AUTH LOGIN).
#[test]
fn starttls_then_auth_on_submission_with_openssl_and_swaks() {
    let server = start();
    let plain = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("\0{ACCOUNT}\0{PASSWORD}"))
    };
    let submission = format!("127.0.0.1:{}", server.port(SUBMISSION));
    let ran = s_client(
        &server,
        &["-quiet", "-starttls", "smtp", "-connect", &submission],
        &format!("EHLO client.example.org\r\nAUTH PLAIN {plain}\r\nQUIT\r\n"),
    )
    .ok("openssl s_client -starttls smtp");
    // s_client swallows the greeting and its own EHLO and STARTTLS.
    assert_eq!(
        ran.text(),
        format!(
            "{}235 2.7.0 Authentication successful\r\n221 2.0.0 localhost closing connection\r\n",
            ehlo_submission_tls()
        )
    );

    let data = file(&server, "m.eml", SWAKS_DATA);
    let ran = run(
        program("swaks")
            .args(["--server", &submission, "-tls"])
            .args(["--tls-verify", "--tls-ca-path"])
            .arg(cert(&server))
            .args([
                "--helo",
                "client.example.org",
                "--from",
                ACCOUNT,
                "--to",
                ACCOUNT,
            ])
            .args([
                "--auth",
                "LOGIN",
                "--auth-user",
                ACCOUNT,
                "--auth-password",
                PASSWORD,
            ])
            .arg("--data")
            .arg(format!("@{}", data.display())),
        b"",
    )
    .ok("swaks -tls --auth LOGIN");
    // The server's side of the transcript, line by line: `<-` in the
    // clear, `<~` under TLS.
    let replies: Vec<String> = ran
        .text()
        .lines()
        .filter(|l| l.starts_with("<-  ") || l.starts_with("<~  "))
        .map(String::from)
        .collect();
    let clear = EHLO_SUBMISSION.lines().map(|l| l.replacen("ehlo ", "", 1));
    let clear: Vec<String> = clear.collect();
    let (clear_last, clear_first) = clear.split_last().expect("EHLO lines");
    let tls: Vec<String> = ehlo_submission_tls().lines().map(String::from).collect();
    let mut expected = vec!["<-  220 localhost ESMTP roost".to_string()];
    expected.extend(
        clear_first
            .iter()
            .map(|l| format!("<-  {}", l.replacen("250 ", "250-", 1))),
    );
    expected.push(format!("<-  {clear_last}"));
    expected.push("<-  220 2.0.0 Ready to start TLS".into());
    expected.extend(tls.iter().map(|l| format!("<~  {l}")));
    for l in [
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0 Authentication successful",
        "250 2.1.0 Sender OK",
        "250 2.1.5 Recipient OK",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 OK, message delivered",
        "221 2.0.0 localhost closing connection",
    ] {
        expected.push(format!("<~  {l}"));
    }
    assert_eq!(replies, expected);
    assert_single_delivery(&server, &swaks_sent(), "client.example.org", "ESMTPSA");
}

/// Port 443 with ALPN (RFC 7301): `imap` reaches the IMAP server, `smtp`
/// the submission server, and `http/1.1` the web server.
#[test]
fn alpn_on_the_https_port_reaches_imap_smtp_and_http() {
    let server = start();
    let https = format!("127.0.0.1:{}", server.port(HTTPS));
    let ran = s_client(
        &server,
        &["-quiet", "-alpn", "imap", "-connect", &https],
        &format!("a1 LOGIN {ACCOUNT} {PASSWORD}\r\na2 LOGOUT\r\n"),
    )
    .ok("openssl s_client -alpn imap");
    assert_eq!(
        ran.text(),
        format!(
            "* OK [CAPABILITY {IMAP_CAPS} {IMAP_AUTH_TLS}] roost ready\r\n\
             a1 OK [CAPABILITY {IMAP_CAPS}] Logged in\r\n\
             * BYE roost logging out\r\na2 OK LOGOUT completed\r\n"
        )
    );
    let ran = s_client(
        &server,
        &["-quiet", "-alpn", "smtp", "-connect", &https],
        "EHLO client.example.org\r\nQUIT\r\n",
    )
    .ok("openssl s_client -alpn smtp");
    assert_eq!(
        ran.text(),
        format!(
            "220 localhost ESMTP roost\r\n{}221 2.0.0 localhost closing connection\r\n",
            ehlo_submission_tls()
        )
    );
    let ran = s_client(
        &server,
        &["-quiet", "-alpn", "http/1.1", "-connect", &https],
        "GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .ok("openssl s_client -alpn http/1.1");
    let text = ran.text();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("{\"accounts\":1,\"ok\":true}"), "{text}");
}

/// SNI: a name roost has no certificate for fails the handshake on IMAPS,
/// while on the MX port (STARTTLS) it gets the MX host's certificate and
/// the session goes on.
#[test]
fn unknown_sni_names_fail_except_on_the_mx_port() {
    let server = start();
    let imaps = format!("127.0.0.1:{}", server.port(IMAPS));
    let ran = s_client(
        &server,
        &[
            "-quiet",
            "-servername",
            "unknown.example",
            "-connect",
            &imaps,
        ],
        "a1 LOGOUT\r\n",
    );
    assert!(!ran.status.success(), "{}", ran.text());
    assert_eq!(ran.text(), "");
    // rustls refuses a name it has no certificate for with
    // access_denied (49).
    assert!(
        ran.stderr.contains("tlsv1 alert access denied")
            && ran.stderr.contains("SSL alert number 49"),
        "{}",
        ran.stderr
    );
    let ran = s_client(
        &server,
        &["-quiet", "-servername", "localhost", "-connect", &imaps],
        "a1 LOGOUT\r\n",
    )
    .ok("openssl s_client -servername localhost");
    assert!(
        ran.text().ends_with("a1 OK LOGOUT completed\r\n"),
        "{}",
        ran.text()
    );

    let mx = format!("127.0.0.1:{}", server.port(SMTP));
    let ran = s_client(
        &server,
        &[
            "-quiet",
            "-starttls",
            "smtp",
            "-servername",
            "unknown.example",
            "-connect",
            &mx,
        ],
        "QUIT\r\n",
    )
    .ok("openssl s_client -starttls smtp -servername unknown.example");
    assert_eq!(ran.text(), "221 2.0.0 localhost closing connection\r\n");
}

/// TLS session tickets: on IMAPS and submission a second connection
/// resumes the first's session; on the MX port, where they are off by
/// default, no session is offered to resume.
#[test]
fn session_tickets_resume_on_imaps_and_not_on_the_mx_port() {
    let server = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let session = dir.path().join("session.pem");
    let session = session.to_str().expect("utf-8");
    let resumed = |args: &[&str], script: &str| {
        let _ = std::fs::remove_file(session);
        // -ign_eof: read until the server closes, tickets included.
        let first = [args, &["-ign_eof", "-sess_out", session]].concat();
        s_client(&server, &first, script).ok("s_client -sess_out");
        if !Path::new(session).exists() {
            // Nothing to resume was offered at all.
            return "no session".to_string();
        }
        let second = [args, &["-ign_eof", "-sess_in", session]].concat();
        let ran = s_client(&server, &second, script).ok("s_client -sess_in");
        let text = ran.text();
        let reused = text
            .lines()
            .find(|l| l.starts_with("Reused, ") || l.starts_with("New, "));
        reused
            .unwrap_or_else(|| panic!("{text}"))
            .split(',')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let imaps = format!("127.0.0.1:{}", server.port(IMAPS));
    assert_eq!(resumed(&["-connect", &imaps], "a1 LOGOUT\r\n"), "Reused");
    // The same STARTTLS exchange resumes on submission, and not on the
    // MX port.
    let submission = format!("127.0.0.1:{}", server.port(SUBMISSION));
    assert_eq!(
        resumed(&["-starttls", "smtp", "-connect", &submission], "QUIT\r\n"),
        "Reused"
    );
    let mx = format!("127.0.0.1:{}", server.port(SMTP));
    assert_eq!(
        resumed(&["-starttls", "smtp", "-connect", &mx], "QUIT\r\n"),
        "no session"
    );
}

/// `roost admin imapserve` as mbsync's `Tunnel`: a pre-authenticated
/// session through the admin socket, for an account whose logins are
/// disabled (a migration), syncing every message.
#[test]
fn mbsync_tunnel_through_admin_imapserve() {
    let server = start();
    let mut imap = Imap::login(server.port(IMAP));
    fill_inbox(&mut imap, 20);
    drop(imap);
    // Read before logins are disabled: the harness reads over IMAP.
    let expected = server_side(&server);
    server.admin_ok(&[
        "account",
        "disable",
        ACCOUNT,
        "--message",
        "Moving to a new server",
    ]);
    let maildir = server.dir.join("tunnelled");
    std::fs::create_dir_all(&maildir).unwrap();
    let config = file(
        &server,
        "mbsyncrc-tunnel",
        format!(
            "IMAPAccount roost\nTunnel \"{bin} admin --dir {dir} imapserve {ACCOUNT}\"\n\n\
IMAPStore remote\nAccount roost\n\n\
MaildirStore local\nPath {mail}/\nInbox {mail}/INBOX\n\n\
Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nSyncState *\n",
            bin = binary().display(),
            dir = server.dir.display(),
            mail = maildir.display()
        )
        .as_bytes(),
    );
    mbsync(&config);
    let inbox_dir = maildir.join("INBOX");
    assert_eq!(maildir_side(&inbox_dir), expected);
    assert_eq!(expected.len(), 20);
}

/// `roost admin imapserve` as neomutt's `tunnel`: neomutt reads a message
/// through the pre-authenticated session, logins disabled.
#[test]
fn neomutt_tunnel_through_admin_imapserve() {
    let server = start();
    let mut imap = Imap::login(server.port(IMAP));
    fill_inbox(&mut imap, 2);
    drop(imap);
    server.admin_ok(&["account", "disable", ACCOUNT, "--message", "migrating"]);
    let read = server.dir.join("tunnel-read.txt");
    let rc = file(
        &server,
        "muttrc-tunnel",
        format!(
            "set tunnel=\"{bin} admin --dir {dir} imapserve {ACCOUNT}\"\n\
set folder=\"imap://localhost/\"\nset spoolfile=\"+INBOX\"\nset header_cache=\"\"\n\
set message_cachedir=\"\"\nset quit=yes\nset mail_check=0\nset timeout=1\n\
set wait_key=no\nset sort=mailbox-order\n",
            bin = binary().display(),
            dir = server.dir.display(),
        )
        .as_bytes(),
    );
    let keys = format!("<pipe-message>cat > {}<enter><quit>", read.display());
    neomutt_pipes_message_one(&rc, &keys, &read);
}

/// Runs neomutt with the config `rc` and the key presses `keys` (which
/// pipe the first message into `read`) under a pseudo-terminal, and checks
/// that what it piped is message 1 as sent.
fn neomutt_pipes_message_one(rc: &Path, keys: &str, read: &Path) {
    let command = format!(
        "TERM=xterm neomutt -n -F {} -e 'push \"{keys}\"'",
        rc.display()
    );
    let ran = run(
        program("script").args(["-qfec", &command, "/dev/null"]),
        b"",
    );
    assert!(
        ran.status.success(),
        "neomutt failed: {}\n{}",
        ran.text(),
        ran.stderr
    );
    assert_eq!(
        normalized(&std::fs::read(read).expect("neomutt piped the message")),
        normalized(&message(1, 3))
    );
}

// --- Postfix -----------------------------------------------------------------

#[path = "common/postfix.rs"]
mod postfix;

/// A real Postfix from Debian relays into roost's MX port: it takes a
/// message for roost@localhost, finds roost offering STARTTLS and takes it
/// (opportunistic TLS, as MTAs do), pipelines the envelope, and roost
/// stores it once with its own Received line above Postfix's.
#[test]
fn postfix_relays_into_roost_over_starttls() {
    let server = start();
    let port = free_port();
    let relay = postfix::Postfix::start(
        port,
        &format!(
            "relay_domains = localhost\n\
             relay_transport = smtp:[127.0.0.1]:{}\n\
             default_transport = error:only localhost here\n\
             smtp_tls_security_level = may\n\
             smtp_helo_name = postfix.test\n",
            server.port(SMTP)
        ),
    )
    .unwrap_or_else(|e| {
        panic!("Postfix: {e}; .ci/run installs it (apt-get install postfix) and runs as root")
    });
    let mut smtp = Smtp::connect(port);
    assert!(smtp
        .cmd("EHLO client.example.org")
        .starts_with("250-postfix.test"));
    let r = smtp.send_mail("client@example.org", &[ACCOUNT], PLAIN_MESSAGE);
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 Bye");
    let msgs = eventually_inbox(&server, &relay);
    assert_eq!(msgs.len(), 1);
    let stored = String::from_utf8_lossy(&msgs[0].body).into_owned();
    let (head, body) = stored.split_once("\r\n\r\n").expect("a header section");
    let sent = String::from_utf8_lossy(PLAIN_MESSAGE);
    let (sent_head, sent_body) = sent.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, sent_body);
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "Return-Path: <client@example.org>");
    assert_eq!(lines[1], "Received: from postfix.test ([127.0.0.1])");
    assert_eq!(lines[2], "\tby localhost (roost) with ESMTPS");
    assert!(lines[3].starts_with("\tfor <roost@localhost>; "), "{head}");
    // What roost found: localserve answers only for its own domains, so
    // example.org's SPF cannot be looked up; Postfix does not sign; the
    // From (localhost) fails DMARC, whose p=none delivers it. Then
    // Postfix's own trace line, then the sender's header (Postfix adds
    // Message-Id and Date, which it lacked).
    assert_eq!(
        lines[4..14],
        [
            "Received-SPF: temperror (localhost: error in processing during lookup of domain of client@example.org) client-ip=127.0.0.1;",
            "\tenvelope-from=\"client@example.org\"; helo=postfix.test; identity=mailfrom;",
            "Authentication-Results: localhost;",
            "\tiprev=pass policy.iprev=127.0.0.1 (localhost);",
            "\tspf=temperror smtp.mailfrom=client@example.org;",
            "\tspf=temperror smtp.helo=postfix.test;",
            "\tdkim=none;",
            "\tarc=none;",
            "\tdmarc=fail (p=none dis=none) header.from=localhost",
            "Received: from client.example.org (localhost [127.0.0.1])",
        ]
    );
    assert!(lines[14].starts_with("\tby postfix.test (Postfix) with ESMTP id "));
    for line in sent_head.split("\r\n") {
        assert!(lines.contains(&line), "{line:?} in {head}");
    }
    assert!(
        relay
            .log()
            .contains("status=sent (250 2.0.0 OK, message delivered)"),
        "{}",
        relay.log()
    );
    server.assert_consistent(ACCOUNT);
}

/// INBOX once Postfix has passed the message on (it retries on its own
/// schedule, so this waits for it).
fn eventually_inbox(server: &Server, relay: &postfix::Postfix) -> Vec<Fetched> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let msgs = inbox(server);
        if !msgs.is_empty() {
            return msgs;
        }
        assert!(
            Instant::now() < deadline,
            "Postfix did not deliver; its log:\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// --- DKIM, verified by dkimpy ----------------------------------------------

/// Mail submitted from a domain with DKIM keys is signed with each: an
/// ed25519 key roost made (`dkim gen`) and an RSA key openssl made
/// (`dkim import`). The signatures sit in the stored prefix; dkimpy, an
/// independent verifier, given the DNS records roost printed, passes both,
/// and fails both once the body changes.
#[test]
fn dkim_signatures_of_submitted_mail_verify_with_dkimpy() {
    let server = start();
    // The key localserve made on first start is tested on its own below.
    server.admin_ok(&["dkim", "rm", "localhost", "roost"]);
    let record = |out: String| -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        (
            v["name"].as_str().expect("name").to_string(),
            v["txt"].as_str().expect("txt").to_string(),
        )
    };
    let (ed_name, ed_txt) =
        record(server.admin_ok(&["dkim", "gen", "localhost", "--selector", "ed"]));
    assert_eq!(ed_name, "ed._domainkey.localhost");
    assert!(ed_txt.starts_with("v=DKIM1; k=ed25519; p="), "{ed_txt}");
    let key = server.dir.join("rsa.pem");
    run(
        program("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&key),
        b"",
    )
    .ok("openssl genpkey");
    let (rsa_name, rsa_txt) = record(server.admin_ok(&[
        "dkim",
        "import",
        "localhost",
        "--selector",
        "rsa",
        "--key",
        key.to_str().unwrap(),
    ]));
    assert!(
        rsa_txt.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{rsa_txt}"
    );

    let mut smtp = Smtp::connect(server.port(SUBMISSION));
    assert!(smtp
        .cmd("EHLO client.example.org")
        .starts_with("250-localhost greets"));
    assert_eq!(
        smtp.cmd("AUTH PLAIN AHJvb3N0QGxvY2FsaG9zdAByb29zdHJvb3N0"),
        "235 2.7.0 Authentication successful"
    );
    let r = smtp.send_mail(ACCOUNT, &[ACCOUNT], PLAIN_MESSAGE);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    let stored = inbox(&server).remove(0).body;
    // The sender's bytes are untouched; the signatures are in the prefix.
    assert_eq!(strip_prefix(&stored, PLAIN_MESSAGE), PLAIN_MESSAGE);
    let head = String::from_utf8_lossy(&stored[..stored.len() - PLAIN_MESSAGE.len()]).into_owned();
    assert_eq!(
        head.matches("DKIM-Signature: v=1;\r\n\ta=").count(),
        2,
        "{head}"
    );
    assert!(
        head.contains(
            "a=ed25519-sha256;\r\n\tc=relaxed/relaxed;\r\n\td=localhost;\r\n\ts=ed;\r\n\tt="
        ),
        "{head}"
    );
    assert!(
        head.contains(
            "a=rsa-sha256;\r\n\tc=relaxed/relaxed;\r\n\td=localhost;\r\n\ts=rsa;\r\n\tt="
        ),
        "{head}"
    );

    let verify = |bytes: &[u8]| {
        let path = file(&server, "signed.eml", bytes);
        run(
            python("dkim_verify.py")
                .arg(&path)
                .arg(format!("{ed_name}={ed_txt}"))
                .arg(format!("{rsa_name}={rsa_txt}")),
            b"",
        )
        .ok("dkim_verify.py")
        .text()
    };
    assert_eq!(verify(&stored), "signature 0: pass\nsignature 1: pass\n");
    let tampered = String::from_utf8_lossy(&stored).replace("last line", "last lime");
    assert_eq!(
        verify(tampered.as_bytes()),
        "signature 0: fail\nsignature 1: fail\n"
    );

    // A message too big to stage in memory: its body hashes are fed on
    // the async worker while it is small, then in the blocking writes
    // to its file, and the signatures still hold.
    let mut big = b"From: roost@localhost\r\nTo: roost@localhost\r\nSubject: big\r\n\r\n".to_vec();
    for i in 0..2 * roost_store::MAX_STAGED_IN_MEMORY / 40 {
        big.extend_from_slice(format!("line {i} of a big signed message\r\n").as_bytes());
    }
    assert!(big.len() > roost_store::MAX_STAGED_IN_MEMORY);
    let r = smtp.send_mail(ACCOUNT, &[ACCOUNT], &big);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    let stored = inbox(&server).pop().expect("the big message").body;
    assert_eq!(strip_prefix(&stored, &big), &big[..]);
    assert_eq!(verify(&stored), "signature 0: pass\nsignature 1: pass\n");
}

// --- localserve's own DNS answers ------------------------------------------

/// localserve makes a DKIM key for its domain on first start and answers
/// the SPF, DKIM and DMARC questions about its domains itself: its own
/// mail, signed at submission and sent again to the MX port from
/// loopback, passes DKIM and DMARC without a network (SPF says none:
/// RFC 7208 4.3 checks no single-label name such as localhost); the same
/// From sent unsigned fails DMARC, and is delivered all the same, as
/// localserve publishes p=none so local tools are never refused.
#[test]
fn localserve_checks_its_own_mail_without_a_network() {
    let server = start();
    let keys: serde_json::Value =
        serde_json::from_str(&server.admin_ok(&["dkim", "list", "localhost"])).expect("JSON");
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(keys[0]["selector"], "roost");
    assert_eq!(keys[0]["algorithm"], "ed25519");

    let mut smtp = Smtp::connect(server.port(SUBMISSION));
    smtp.cmd("EHLO client.example.org");
    assert_eq!(
        smtp.cmd("AUTH PLAIN AHJvb3N0QGxvY2FsaG9zdAByb29zdHJvb3N0"),
        "235 2.7.0 Authentication successful"
    );
    let r = smtp.send_mail(ACCOUNT, &[ACCOUNT], PLAIN_MESSAGE);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    let stored = inbox(&server).remove(0).body;
    // The signature and the sender's bytes, without roost's trace lines.
    let start_of_signature = stored
        .windows(15)
        .position(|w| w == b"DKIM-Signature:")
        .expect("a signature");
    let signed = stored[start_of_signature..].to_vec();

    let mut mx = Smtp::connect(server.port(SMTP));
    mx.cmd("EHLO localhost");
    let r = mx.send_mail(ACCOUNT, &[ACCOUNT], &signed);
    assert_eq!(r, "250 2.0.0 OK, message delivered");
    mx.cmd("RSET");
    assert_eq!(
        mx.cmd("MAIL FROM:<someone@example.org>"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        mx.cmd(&format!("RCPT TO:<{ACCOUNT}>")),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        mx.cmd("DATA"),
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    mx.send_raw(&dot_stuff(PLAIN_MESSAGE));
    assert_eq!(mx.cmd("."), "250 2.0.0 OK, message delivered");

    let msgs = inbox(&server);
    assert_eq!(msgs.len(), 3);
    let fields = |n: usize, count: usize| -> Vec<String> {
        String::from_utf8_lossy(&msgs[n].body)
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Authentication-Results:"))
            .take(count)
            .map(|l| match l.find("header.b=") {
                Some(i) => l[..i].to_string(),
                None => l.to_string(),
            })
            .collect()
    };
    assert_eq!(
        fields(1, 8),
        [
            "Authentication-Results: localhost;",
            "\tiprev=pass policy.iprev=127.0.0.1 (localhost);",
            "\tspf=none smtp.mailfrom=roost@localhost;",
            "\tspf=none smtp.helo=localhost;",
            "\tdkim=pass header.d=localhost header.s=roost ",
            "\tarc=none;",
            "\tdmarc=pass (p=none dis=none) header.from=localhost",
            "DKIM-Signature: v=1;",
        ]
    );
    // example.org is not localserve's to answer, and lookups are off.
    assert_eq!(
        fields(2, 8),
        [
            "Authentication-Results: localhost;",
            "\tiprev=pass policy.iprev=127.0.0.1 (localhost);",
            "\tspf=temperror smtp.mailfrom=someone@example.org;",
            "\tspf=none smtp.helo=localhost;",
            "\tdkim=none;",
            "\tarc=none;",
            "\tdmarc=fail (p=none dis=none) header.from=localhost",
            "From: roost@localhost",
        ]
    );
}
