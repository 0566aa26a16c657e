//! `roost serve -c FILE`: configuration errors name the file and key, the
//! connection limit holds at its edge, and spans reach an OTLP endpoint.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("roost.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn config_errors_name_the_file_the_key_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("hostname = \"h\"\n", "missing field `data_dir`"),
        (
            "data_dir = \"/tmp/x\"\nhostname = \"h\"\n[listen]\nsmtp = [\"not an address\"]\n",
            "listen.smtp",
        ),
        (
            "data_dir = \"/tmp/x\"\nhostname = \"h\"\nmax_conections = 5\n",
            "max_conections",
        ),
        (
            "data_dir = \"/tmp/x\"\nhostname = \"h\"\n[listen]\nimaps = [\"127.0.0.1:1\"]\n",
            "key `listen.imaps`: implicit TLS needs a [tls] section",
        ),
        (
            "data_dir = \"/tmp/x\"\nhostname = \"h\"\n[log]\nformat = \"xml\"\n",
            "key `log.format`: \"xml\" is not \"text\" or \"json\"",
        ),
        (
            "data_dir = \"/tmp/x\"\nhostname = \"h\"\n[dns]\ntrust_anchor = \"/nonexistent/k\"\n",
            "key `dns.trust_anchor`: cannot read /nonexistent/k",
        ),
        (
            "data_dir = \"/tmp/x\"\nhostname = \"h\"\n[dns]\ntrust_anchor = \"/etc/passwd\"\n",
            "key `dns.trust_anchor`: /etc/passwd holds no DNSKEY record",
        ),
    ];
    for (body, expected) in cases {
        let path = write_config(tmp.path(), body);
        let out = Command::new(binary())
            .args(["serve", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{body} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!("roost: {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
    let out = Command::new(binary())
        .args(["serve", "-c", "/nonexistent/roost.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read config file /nonexistent/roost.toml"));
}

struct Served {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Without a `[dns]` section the server would ask the system's resolver.
const NO_DNS: &str = "[dns]\nreverse_lookup = false\n";

fn serve(extra: &str, smtp: u16, imap: u16) -> Served {
    serve_with_dns(extra, smtp, imap, NO_DNS)
}

fn serve_with_dns(extra: &str, smtp: u16, imap: u16, dns: &str) -> Served {
    serve_config(
        &format!(
            "hostname = \"mx.test\"\n{extra}\n[listen]\nsmtp = [\"127.0.0.1:{smtp}\"]\nimap = [\"127.0.0.1:{imap}\"]\n{dns}"
        ),
        imap,
    )
}

#[test]
fn connection_limit_refuses_one_past_the_edge() {
    let offset = fresh_offset();
    let (smtp, imap) = (SMTP + offset, IMAP + offset);
    let _server = serve("max_connections = 2", smtp, imap);
    let first = Smtp::connect(smtp);
    let mut second = Smtp::connect(smtp);
    // The third is one past the limit of 2.
    let mut third = Smtp::connect_raw(smtp);
    assert_eq!(
        third.reply(),
        "421 4.7.0 Too many connections, try again later"
    );
    assert_eq!(third.reply(), "<closed>");
    // Each listener counts its own connections.
    let _i1 = Imap::connect(imap);
    let _i2 = Imap::connect(imap);
    let mut i3 = Imap::connect_raw(imap);
    assert_eq!(
        i3.line(),
        "* BYE [UNAVAILABLE] Too many connections, try again later\r\n"
    );
    // A place frees up when a session ends.
    drop(first);
    assert!(second.cmd("QUIT").starts_with("221"));
    drop(second);
    eventually("a free place", || {
        let mut s = Smtp::connect_raw(smtp);
        let greeting = s.reply();
        greeting.starts_with("220 mx.test").then_some(())
    });
}

/// The first line a server sends on `stream`.
fn first_line(stream: std::net::TcpStream) -> String {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// `[smtp] max_connections_per_ip`: a client address past its limit on an
/// SMTP listener gets 421; other addresses, and IMAP, are not counted
/// against it; loopback clients are exempt unless `limit_loopback`.
#[test]
fn per_address_limit_on_smtp_listeners() {
    let offset = fresh_offset();
    let (smtp, imap) = (SMTP + offset, IMAP + offset);
    let _server = serve(
        "[smtp]\nmax_connections_per_ip = 2\nlimit_loopback = true",
        smtp,
        imap,
    );
    let first = Smtp::connect(smtp);
    let _second = Smtp::connect(smtp);
    let mut third = Smtp::connect_raw(smtp);
    assert_eq!(
        third.reply(),
        "421 4.7.0 Too many connections from your address, try again later"
    );
    assert_eq!(third.reply(), "<closed>");
    let other = std::net::Ipv4Addr::new(127, 0, 0, 2);
    assert!(first_line(connect_from(other, smtp)).starts_with("220 mx.test"));
    let _imap: Vec<Imap> = (0..3).map(|_| Imap::connect(imap)).collect();
    drop(first);
    eventually("the address's place back", || {
        let mut s = Smtp::connect_raw(smtp);
        s.reply().starts_with("220 mx.test").then_some(())
    });

    let offset = fresh_offset();
    let (smtp, imap) = (SMTP + offset, IMAP + offset);
    let _server = serve("[smtp]\nmax_connections_per_ip = 1", smtp, imap);
    let _a = Smtp::connect(smtp);
    let _b = Smtp::connect(smtp);
}

/// A minimal HTTP server that records the first POST it receives.
fn otlp_sink(listener: TcpListener) -> std::thread::JoinHandle<(String, Vec<u8>)> {
    std::thread::spawn(move || loop {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        if head.starts_with("POST ") {
            return (head, body);
        }
    })
}

#[test]
fn spans_are_exported_to_the_configured_otlp_endpoint() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let received = otlp_sink(sink);
    let offset = fresh_offset();
    let (smtp, imap) = (SMTP + offset, IMAP + offset);
    let mut server = serve(
        &format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}/v1/traces\""),
        smtp,
        imap,
    );
    let mut c = Imap::connect(imap);
    assert!(c.cmd("CAPABILITY").contains("OK CAPABILITY completed"));
    assert!(c.cmd("LOGOUT").contains("OK LOGOUT completed"));
    // SIGTERM flushes the span exporter on the way out.
    let pid = server.child.id();
    assert!(Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(status.success());
    let (head, body) = received.join().unwrap();
    assert!(head.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-protobuf"),
        "{head}"
    );
    // The protobuf carries the service and span names as plain strings.
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("roost"), "service name");
    assert!(text.contains("imap"), "the connection span");
}

fn received_line(smtp: u16, imap: u16) -> String {
    let mut c = Smtp::connect(smtp);
    c.cmd("EHLO client.example.org");
    let r = c.send_mail("s@example.org", &["roost@localhost"], &message(1, 1));
    assert!(r.starts_with("250"), "{r}");
    let mut i = Imap::login(imap);
    i.cmd("SELECT INBOX");
    let r = i.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (RECEIVED)]");
    let start = r.find("Received: ").expect("a Received line");
    r[start..r[start..].find("by ").map(|e| start + e).unwrap()].to_string()
}

/// Runs `roost admin --dir DATA ARGS...`, which must succeed.
fn admin_ok(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("admin")
        .arg("--dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server whose data directory holds the localserve account, so mail
/// can be delivered to roost@localhost.
fn serve_with_account(dns: &str) -> (Served, u16, u16) {
    let offset = fresh_offset();
    let (smtp, imap) = (SMTP + offset, IMAP + offset);
    let server = serve_with_dns("", smtp, imap, dns);
    let data = server.dir.path().join("data");
    let admin = |args: &[&str]| admin_ok(&data, args);
    admin(&["domain", "add", "localhost"]);
    admin(&["account", "add", "roost@localhost", "--password", PASSWORD]);
    (server, smtp, imap)
}

#[test]
fn received_lines_carry_the_clients_reverse_dns_name() {
    // Nothing listens on port 9: the name comes from the resolver itself,
    // which answers for 127.0.0.0/8 (RFC 6761 6.3). Lookups of other
    // addresses against a real server are tested in roost-actors' dns module.
    let (_server, smtp, imap) = serve_with_account("[dns]\nservers = [\"127.0.0.1:9\"]\n");
    assert_eq!(
        received_line(smtp, imap),
        "Received: from client.example.org (localhost [127.0.0.1])\r\n\t"
    );
}

#[test]
fn received_lines_without_reverse_dns_name_only_the_address() {
    let (_server, smtp, imap) = serve_with_account(NO_DNS);
    assert_eq!(
        received_line(smtp, imap),
        "Received: from client.example.org ([127.0.0.1])\r\n\t"
    );
}

/// RFC 9585 INPROGRESS: with `[imap] progress_interval_ms = 0` a SEARCH,
/// SORT or THREAD over more than one batch (PROGRESS_BATCH, 256) of
/// messages reports each batch done, tagged with the command's tag,
/// before its answer (THREAD too); a mailbox of less than a batch reports
/// nothing.
#[test]
fn long_searches_report_their_progress() {
    let offset = fresh_offset();
    let (smtp, imap) = (SMTP + offset, IMAP + offset);
    let server = serve_with_dns("[imap]\nprogress_interval_ms = 0", smtp, imap, NO_DNS);
    let data = server.dir.path().join("data");
    for args in [
        &["domain", "add", "localhost"][..],
        &["account", "add", ACCOUNT, "--password", PASSWORD],
    ] {
        admin_ok(&data, args);
    }
    let mut c = Imap::login(imap);
    // `n` small messages in one MULTIAPPEND.
    let fill = |c: &mut Imap, tag: &str, mailbox: &str, n: usize| {
        let m = b"Subject: p\r\n\r\nx\r\n";
        let mut cmd = format!("{tag} APPEND {mailbox}").into_bytes();
        for _ in 0..n {
            cmd.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
            cmd.extend_from_slice(m);
        }
        cmd.extend_from_slice(b"\r\n");
        c.send_raw(&cmd);
        let r = String::from_utf8_lossy(&c.until_tagged(tag)).into_owned();
        assert!(r.ends_with("APPEND completed\r\n"), "{r}");
    };
    fill(&mut c, "p1", "INBOX", 600);
    assert!(c.cmd("SELECT INBOX").contains(" OK [READ-WRITE] "));
    assert_eq!(
        c.cmd("SEARCH RETURN (COUNT) SUBJECT p"),
        "* OK [INPROGRESS (\"a3\" 256 600)] Searching\r\n\
         * OK [INPROGRESS (\"a3\" 512 600)] Searching\r\n\
         * ESEARCH (TAG \"a3\") COUNT 600\r\na3 OK SEARCH completed\r\n"
    );
    assert_eq!(
        c.cmd("SORT RETURN (MIN) (SIZE) UTF-8 ALL"),
        "* OK [INPROGRESS (\"a4\" 256 600)] Searching\r\n\
         * OK [INPROGRESS (\"a4\" 512 600)] Searching\r\n\
         * ESEARCH (TAG \"a4\") MIN 1\r\na4 OK SORT completed\r\n"
    );
    assert_eq!(
        c.cmd("THREAD REFERENCES UTF-8 UID 1:2"),
        "* OK [INPROGRESS (\"a5\" 256 600)] Searching\r\n\
         * OK [INPROGRESS (\"a5\" 512 600)] Searching\r\n\
         * THREAD ((1)(2))\r\na5 OK THREAD completed\r\n"
    );
    // Less than one batch: no notice.
    assert_eq!(
        c.cmd("CREATE Small"),
        "a6 OK [MAILBOXID (F7)] CREATE completed\r\n"
    );
    fill(&mut c, "p2", "Small", 255);
    assert!(c.cmd("SELECT Small").contains(" OK [READ-WRITE] "));
    assert_eq!(
        c.cmd("SEARCH RETURN (COUNT) SUBJECT p"),
        "* ESEARCH (TAG \"a8\") COUNT 255\r\na8 OK SEARCH completed\r\n"
    );
}

/// dnsmasq from Debian on loopback, answering the TXT records given
/// (cut into strings of at most 255 octets, RFC 1035 3.3.14), killed
/// when dropped.
struct Dnsmasq {
    child: std::process::Child,
    port: u16,
    _conf: tempfile::TempDir,
}

impl Dnsmasq {
    /// Tries a few ports: dnsmasq needs its port free for UDP and TCP,
    /// and the other tests' servers take ports of their own meanwhile.
    fn start(txt: &[(&str, &str)]) -> Dnsmasq {
        Dnsmasq::start_with(txt, &[])
    }

    /// With more dnsmasq options: `--host-record`, `--ptr-record`,
    /// `--local` for further zones.
    fn start_with(txt: &[(&str, &str)], options: &[&str]) -> Dnsmasq {
        assert!(
            std::path::Path::new("/usr/sbin/dnsmasq").exists(),
            "dnsmasq is missing; .ci/run installs it (apt-get install dnsmasq-base)"
        );
        for _ in 0..10 {
            let conf_dir = tempfile::tempdir().unwrap();
            let Some(port) = free_udp_and_tcp_port() else {
                continue;
            };
            let mut cmd = Command::new("/usr/sbin/dnsmasq");
            cmd.args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .args(["--listen-address=127.0.0.1", "--pid-file=", "--user=root"])
            // Names under it that have no record are NXDOMAIN, not refused.
            .arg("--local=/example.org/")
            .arg(format!("--port={port}"))
            .args(options);
            // In a configuration file, where dnsmasq reads quoted
            // strings (on its command line it splits them at commas).
            let conf = conf_dir.path().join(format!("txt-{port}.conf"));
            let lines: String = txt
                .iter()
                .map(|(name, record)| {
                    let parts: Vec<String> = record
                        .as_bytes()
                        .chunks(250)
                        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                        .collect();
                    format!("txt-record={name},{}\n", parts.join(","))
                })
                .collect();
            std::fs::write(&conf, lines).unwrap();
            cmd.arg(format!("--conf-file={}", conf.display()));
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq");
            let mut dns = Dnsmasq {
                child,
                port,
                _conf: conf_dir,
            };
            if dns.answers() {
                return dns;
            }
            let _ = dns.child.kill();
        }
        panic!("dnsmasq did not start on any of 10 ports");
    }

    /// Whether it answers a TXT query for "x." within 3 s (and still runs).
    fn answers(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(("127.0.0.1", self.port)).unwrap();
            let query = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 16, 0, 1];
            let _ = sock.send(&query);
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            if sock.recv(&mut [0u8; 512]).is_ok() {
                return true;
            }
        }
        false
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RSA key made by openssl in `dir`: its PEM file, and the public key
/// in base64 for a DKIM key record's `p=`.
fn rsa_key(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl genpkey");
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl pkey");
    let p = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&out.stdout)
    };
    (key, p)
}

/// DKIM verification on the MX port (RFC 6376 6), with keys from a DNS
/// server on loopback: a message signed by dkimpy (an independent signer)
/// with simple/simple and relaxed/relaxed passes both; changed in transit
/// it fails; a signature without a key is a permanent error; unsigned
/// mail says none. The results go into Authentication-Results (RFC 8601)
/// in the stored prefix.
#[test]
fn dkim_signatures_of_incoming_mail_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (key, p) = rsa_key(dir.path());
    let plain = dir.path().join("plain.eml");
    std::fs::write(
        &plain,
        b"From: someone@example.org\r\nTo: roost@localhost\r\nSubject: signed\r\n\r\nHello  there \r\n\r\n",
    )
    .unwrap();
    let signed = dir.path().join("signed.eml");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/dkim_sign.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&key)
        .args(["sel", "example.org"])
        .arg(&plain)
        .arg(&signed)
        .args(["simple/simple", "relaxed/relaxed"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read(&signed).unwrap();

    let record = format!("v=DKIM1; k=rsa; p={p}");
    // SPF fails for every sender; DMARC passes on the aligned signature.
    let dns = Dnsmasq::start(&[
        ("sel._domainkey.example.org", &record),
        ("example.org", "v=spf1 -all"),
        ("_dmarc.example.org", "v=DMARC1; p=none"),
    ]);
    let dns_port = dns.port;
    let (_server, smtp, imap) =
        serve_with_account(&format!("[dns]\nservers = [\"127.0.0.1:{dns_port}\"]\n"));
    let tampered = String::from_utf8_lossy(&signed)
        .replace("Hello", "Hallo")
        .into_bytes();
    let unknown = String::from_utf8_lossy(&signed)
        .replace("s=sel", "s=gone")
        .into_bytes();
    // A From added above the signed one: the signature cannot be trusted.
    let two_from = [b"From: evil@example.org\r\n".as_slice(), &signed].concat();
    let mut c = Smtp::connect(smtp);
    c.cmd("EHLO client.example.org");
    for m in [&signed, &tampered, &unknown, &message(1, 1), &two_from] {
        let r = c.send_mail("someone@example.org", &["roost@localhost"], m);
        assert_eq!(r, "250 2.0.0 OK, message delivered");
    }
    let mut i = Imap::login(imap);
    i.cmd("SELECT INBOX");
    let results: Vec<String> = (1..=5)
        .map(|n| {
            let r = i.cmd(&format!(
                "FETCH {n} BODY.PEEK[HEADER.FIELDS (AUTHENTICATION-RESULTS)]"
            ));
            let start = r.find("Authentication-Results: ").expect("the field");
            let end = r[start..].find("\r\n\r\n").unwrap() + start;
            r[start..end]
                .split("header.b=")
                .enumerate()
                .map(|(i, part)| {
                    if i == 0 {
                        part
                    } else {
                        part.trim_start_matches(|c: char| {
                            c.is_ascii_alphanumeric() || c == '+' || c == '/'
                        })
                    }
                })
                .collect::<Vec<_>>()
                .join("header.b=B")
        })
        .collect();
    // iprev and SPF are the same for all five; DMARC passes only where a
    // signature of example.org verified.
    let field = |dkim: &str, dmarc: &str| {
        format!(
            "Authentication-Results: mx.test;\r\n\
             \tiprev=pass policy.iprev=127.0.0.1 (localhost);\r\n\
             \tspf=fail smtp.mailfrom=someone@example.org;\r\n\
             \tspf=none smtp.helo=client.example.org;\r\n\
             {dkim};\r\n\
             \tarc=none;\r\n\
             \tdmarc={dmarc} header.from=example.org"
        )
    };
    let twice = |one: &str| format!("\t{one};\r\n\t{one}");
    let fail = "fail (p=none dis=none)";
    assert_eq!(
        results,
        [
            field(&twice("dkim=pass header.d=example.org header.s=sel header.b=B"), "pass (p=none dis=none)"),
            field(&twice("dkim=fail (body hash did not verify) header.d=example.org header.s=sel header.b=B"), fail),
            field(&twice("dkim=permerror (no key) header.d=example.org header.s=gone header.b=B"), fail),
            field("\tdkim=none", fail),
            "Authentication-Results: mx.test;\r\n\
             \tiprev=pass policy.iprev=127.0.0.1 (localhost);\r\n\
             \tspf=fail smtp.mailfrom=someone@example.org;\r\n\
             \tspf=none smtp.helo=client.example.org;\r\n\
             \tdkim=permerror (not exactly one From field) header.d=example.org header.s=sel header.b=B;\r\n\
             \tdkim=permerror (not exactly one From field) header.d=example.org header.s=sel header.b=B;\r\n\
             \tarc=none;\r\n\
             \tdmarc=fail (p=none dis=none) header.from=example.org".to_string(),
        ]
    );
}

/// The trace and result fields roost put above message `n` of `mailbox`.
fn auth_fields(imap: &mut Imap, mailbox: &str, n: usize) -> String {
    imap.cmd(&format!("SELECT {mailbox}"));
    let r = imap.cmd(&format!(
        "FETCH {n} BODY.PEEK[HEADER.FIELDS (RECEIVED-SPF AUTHENTICATION-RESULTS)]"
    ));
    let start = r.find("Received-SPF: ").expect("the fields");
    let end = r[start..].find("\r\n\r\n").unwrap() + start;
    r[start..end].to_string()
}

/// SPF (RFC 7208), iprev (RFC 8601 3) and DMARC (RFC 7489) on the MX
/// port, with records from dnsmasq on loopback, clients on two loopback
/// addresses: 127.0.0.1 may send for example.org, 127.0.0.2 may not.
/// DMARC's reject is refused in the transaction, quarantine goes to Junk,
/// none is delivered, and every evaluation is kept for the reports.
#[test]
fn spf_iprev_and_dmarc_of_incoming_mail() {
    let dns = Dnsmasq::start_with(
        &[
            ("example.org", "v=spf1 ip4:127.0.0.1 -all"),
            (
                "_dmarc.example.org",
                "v=DMARC1; p=reject; rua=mailto:dmarc@example.org",
            ),
            ("q.example.org", "v=spf1 ip4:127.0.0.1 -all"),
            ("_dmarc.q.example.org", "v=DMARC1; p=quarantine"),
            ("_dmarc.none.example.org", "v=DMARC1; p=none"),
            ("client.example.org", "v=spf1 a -all"),
        ],
        &[
            "--host-record=client.example.org,127.0.0.1",
            "--local=/example.net/",
        ],
    );
    let (server, smtp, imap) =
        serve_with_account(&format!("[dns]\nservers = [\"127.0.0.1:{}\"]\n", dns.port));
    let data = server.dir.path().join("data");
    let send = |from: [u8; 4], mail_from: &str, author: &str, subject: &str| {
        let mut c = Smtp::connect_from(from.into(), smtp);
        c.cmd("EHLO client.example.org");
        let m =
            format!("From: {author}\r\nTo: roost@localhost\r\nSubject: {subject}\r\n\r\nHi\r\n");
        let r = c.cmd(&format!("MAIL FROM:<{mail_from}>"));
        assert_eq!(r, "250 2.1.0 Sender OK");
        assert_eq!(c.cmd("RCPT TO:<roost@localhost>"), "250 2.1.5 Recipient OK");
        assert_eq!(
            c.cmd("DATA"),
            "354 Start mail input; end with <CRLF>.<CRLF>"
        );
        c.send_raw(m.as_bytes());
        c.cmd(".")
    };
    let ok = "250 2.0.0 OK, message delivered";
    let (one, two) = ([127, 0, 0, 1], [127, 0, 0, 2]);
    assert_eq!(
        send(one, "a@example.org", "a@example.org", "aligned spf"),
        ok
    );
    assert_eq!(
        send(two, "a@example.org", "a@example.org", "forged"),
        "550 5.7.1 Message refused by the DMARC policy of example.org"
    );
    assert_eq!(
        send(two, "b@q.example.org", "b@q.example.org", "quarantined"),
        ok
    );
    assert_eq!(
        send(two, "c@none.example.org", "c@none.example.org", "monitored"),
        ok
    );
    assert_eq!(send(one, "", "x@other.example.net", "bounce"), ok);
    let mut i = Imap::login(imap);
    assert_eq!(
        auth_fields(&mut i, "INBOX", 1),
        "Received-SPF: pass (mx.test: domain of a@example.org designates 127.0.0.1 as permitted sender) client-ip=127.0.0.1;\r\n\
         \tenvelope-from=\"a@example.org\"; helo=client.example.org; identity=mailfrom;\r\n\
         Authentication-Results: mx.test;\r\n\
         \tiprev=pass policy.iprev=127.0.0.1 (localhost);\r\n\
         \tspf=pass smtp.mailfrom=a@example.org;\r\n\
         \tspf=pass smtp.helo=client.example.org;\r\n\
         \tdkim=none;\r\n\
         \tarc=none;\r\n\
         \tdmarc=pass (p=reject dis=none) header.from=example.org"
    );
    assert_eq!(
        auth_fields(&mut i, "INBOX", 2),
        "Received-SPF: none (mx.test: domain of c@none.example.org does not publish SPF) client-ip=127.0.0.2;\r\n\
         \tenvelope-from=\"c@none.example.org\"; helo=client.example.org; identity=mailfrom;\r\n\
         Authentication-Results: mx.test;\r\n\
         \tiprev=fail policy.iprev=127.0.0.2;\r\n\
         \tspf=none smtp.mailfrom=c@none.example.org;\r\n\
         \tspf=fail smtp.helo=client.example.org;\r\n\
         \tdkim=none;\r\n\
         \tarc=none;\r\n\
         \tdmarc=fail (p=none dis=none) header.from=none.example.org"
    );
    assert_eq!(
        auth_fields(&mut i, "INBOX", 3),
        "Received-SPF: pass (mx.test: HELO name client.example.org designates 127.0.0.1 as permitted sender) client-ip=127.0.0.1;\r\n\
         \tenvelope-from=\"<>\"; helo=client.example.org; identity=helo;\r\n\
         Authentication-Results: mx.test;\r\n\
         \tiprev=pass policy.iprev=127.0.0.1 (localhost);\r\n\
         \tspf=pass smtp.helo=client.example.org;\r\n\
         \tdkim=none;\r\n\
         \tarc=none;\r\n\
         \tdmarc=none header.from=other.example.net"
    );
    assert_eq!(
        auth_fields(&mut i, "Junk", 1),
        "Received-SPF: fail (mx.test: domain of b@q.example.org does not designate 127.0.0.2 as permitted sender) client-ip=127.0.0.2;\r\n\
         \tenvelope-from=\"b@q.example.org\"; helo=client.example.org; identity=mailfrom;\r\n\
         Authentication-Results: mx.test;\r\n\
         \tiprev=fail policy.iprev=127.0.0.2;\r\n\
         \tspf=fail smtp.mailfrom=b@q.example.org;\r\n\
         \tspf=fail smtp.helo=client.example.org;\r\n\
         \tdkim=none;\r\n\
         \tarc=none;\r\n\
         \tdmarc=fail (p=quarantine dis=quarantine) header.from=q.example.org"
    );
    // What the aggregate reports will be made of, newest first; the time
    // left out.
    let listed: Vec<String> = admin_ok(&data, &["dmarcevaluations"])
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(
        listed,
        [
            "127.0.0.2 from=none.example.org policy=none.example.org p=none sp=none pct=100 adkim=r aspf=r dmarc=fail disposition=none spf=none.example.org=none dkim=none",
            "127.0.0.2 from=q.example.org policy=q.example.org p=quarantine sp=quarantine pct=100 adkim=r aspf=r dmarc=fail disposition=quarantine spf=q.example.org=fail dkim=none",
            "127.0.0.2 from=example.org policy=example.org p=reject sp=reject pct=100 adkim=r aspf=r dmarc=fail disposition=reject spf=example.org=fail dkim=none",
            "127.0.0.1 from=example.org policy=example.org p=reject sp=reject pct=100 adkim=r aspf=r dmarc=pass disposition=none spf=example.org=pass dkim=none",
        ]
    );
}

/// Runs a script under tests/clients with python3; it must succeed.
fn python(script: &str, args: &[&std::ffi::OsStr]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ARC (RFC 8617 5.2) on the MX port: chains sealed by dkimpy (an
/// independent sealer) at two hops pass; a body changed after the last
/// hop fails its message signature; a changed earlier set fails the seal
/// that covers it; a wrong cv= is a broken chain; mail without ARC says
/// none.
#[test]
fn arc_chains_of_incoming_mail_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (key, p) = rsa_key(dir.path());
    let path = |name: &str| dir.path().join(name);
    std::fs::write(
        path("m0.eml"),
        "Authentication-Results: hop1.example.org; spf=pass smtp.mailfrom=example.org\r\n\
         From: a@example.org\r\nTo: roost@localhost\r\nSubject: forwarded\r\n\r\nBody\r\n",
    )
    .unwrap();
    let seal = |srv: &str, from: &str, to: &str| {
        python(
            "arc_seal.py",
            &[
                key.as_os_str(),
                "sel".as_ref(),
                "example.org".as_ref(),
                srv.as_ref(),
                path(from).as_os_str(),
                path(to).as_os_str(),
            ],
        )
    };
    seal("hop1.example.org", "m0.eml", "m1.eml");
    let one = std::fs::read_to_string(path("m1.eml")).unwrap();
    std::fs::write(
        path("m1b.eml"),
        format!("Authentication-Results: hop2.example.org; arc=pass\r\n{one}"),
    )
    .unwrap();
    seal("hop2.example.org", "m1b.eml", "m2.eml");
    let two = std::fs::read_to_string(path("m2.eml")).unwrap();
    let dns = Dnsmasq::start(&[(
        "sel._domainkey.example.org",
        &format!("v=DKIM1; k=rsa; p={p}"),
    )]);
    let (_server, smtp, imap) =
        serve_with_account(&format!("[dns]\nservers = [\"127.0.0.1:{}\"]\n", dns.port));
    let cases = [
        one.clone(),
        two.clone(),
        two.replace("\r\n\r\nBody\r\n", "\r\n\r\nB0dy\r\n"),
        two.replace(
            "ARC-Authentication-Results: i=1; hop1.example.org",
            "ARC-Authentication-Results: i=1; hop9.example.org",
        ),
        one.replace("cv=none", "cv=pass"),
        String::from_utf8(message(1, 1)).unwrap(),
    ];
    let mut c = Smtp::connect(smtp);
    c.cmd("EHLO client.example.org");
    for m in &cases {
        let r = c.send_mail("a@example.org", &["roost@localhost"], m.as_bytes());
        assert_eq!(r, "250 2.0.0 OK, message delivered");
    }
    let mut i = Imap::login(imap);
    i.cmd("SELECT INBOX");
    let results: Vec<String> = (1..=cases.len())
        .map(|n| {
            let r = i.cmd(&format!(
                "FETCH {n} BODY.PEEK[HEADER.FIELDS (AUTHENTICATION-RESULTS)]"
            ));
            // roost's field is the first; the hops' fields follow it.
            let start = r.find("\tarc=").expect("an arc result");
            r[start + 1..start + r[start..].find(";\r\n").unwrap()].to_string()
        })
        .collect();
    assert_eq!(
        results,
        [
            "arc=pass (i=1)",
            "arc=pass (i=2)",
            "arc=fail (message signature 2: body hash did not verify)",
            "arc=fail (seal 2 did not verify)",
            "arc=fail (ARC-Seal 1 has the wrong cv=)",
            "arc=none",
        ]
    );
}

/// RFC 7489 6.6.1 with several authors: every From domain is evaluated
/// and the strictest failing policy applies; more than
/// MAX_AUTHOR_DOMAINS (5) domains is refused; a header section longer
/// than roost reads (a From could hide past it) goes to Junk.
#[test]
fn dmarc_holds_every_author_domain() {
    let dns = Dnsmasq::start_with(
        &[
            ("example.org", "v=spf1 ip4:127.0.0.1 -all"),
            ("_dmarc.example.org", "v=DMARC1; p=none"),
            ("_dmarc.strict.example.net", "v=DMARC1; p=reject"),
        ],
        &[
            "--host-record=client.example.org,127.0.0.1",
            "--local=/example.net/",
        ],
    );
    let (_server, smtp, imap) =
        serve_with_account(&format!("[dns]\nservers = [\"127.0.0.1:{}\"]\n", dns.port));
    let mut c = Smtp::connect(smtp);
    c.cmd("EHLO client.example.org");
    let send = |c: &mut Smtp, head: &str| {
        let m = format!("{head}To: roost@localhost\r\nSubject: authors\r\n\r\nHi\r\n");
        c.send_mail("a@example.org", &["roost@localhost"], m.as_bytes())
    };
    // The envelope passes SPF for example.org, which aligns with the
    // first author only; the second author's domain asks for reject.
    assert_eq!(
        send(&mut c, "From: a@example.org, b@strict.example.net\r\n"),
        "550 5.7.1 Message refused by the DMARC policy of strict.example.net"
    );
    assert_eq!(
        send(
            &mut c,
            "From: a@example.org\r\nFrom: b@strict.example.net\r\n"
        ),
        "550 5.7.1 Message refused by the DMARC policy of strict.example.net"
    );
    let authors = |n: usize| {
        let list: Vec<String> = (0..n).map(|i| format!("a@d{i}.example.org")).collect();
        format!("From: {}\r\n", list.join(", "))
    };
    assert_eq!(send(&mut c, &authors(5)), "250 2.0.0 OK, message delivered");
    assert_eq!(
        send(&mut c, &authors(6)),
        "550 5.7.1 Too many author domains to check, at most 5"
    );
    // 2000 fields before the From: more than roost reads.
    let padded = format!(
        "{}From: b@strict.example.net\r\n",
        "X-Pad: 1\r\n".repeat(2000)
    );
    assert_eq!(send(&mut c, &padded), "250 2.0.0 OK, message delivered");
    let mut i = Imap::login(imap);
    i.cmd("SELECT Junk");
    let r = i.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (AUTHENTICATION-RESULTS)]");
    assert!(
        r.contains("\tdmarc=permerror (header section too large to check)\r\n\r\n"),
        "{r}"
    );
    i.cmd("SELECT INBOX");
    let r = i.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (AUTHENTICATION-RESULTS)]");
    let start = r.find("\tdmarc=").expect("dmarc results");
    let end = r[start..].find("\r\n\r\n").unwrap() + start;
    assert_eq!(
        &r[start..end],
        "\tdmarc=pass (p=none dis=none) header.from=d0.example.org;\r\n\
         \tdmarc=pass (p=none dis=none) header.from=d1.example.org;\r\n\
         \tdmarc=pass (p=none dis=none) header.from=d2.example.org;\r\n\
         \tdmarc=pass (p=none dis=none) header.from=d3.example.org;\r\n\
         \tdmarc=pass (p=none dis=none) header.from=d4.example.org"
    );
}

/// A server from a whole config body (its `[listen]` and everything).
fn serve_config(body: &str, imap: u16) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!("data_dir = \"{}\"\n{body}", data.display()),
    );
    let child = spawn_serve(&config, &data, imap);
    Served { child, dir }
}

/// `roost serve -c config`, once it answers on `imap` and its admin socket.
fn spawn_serve(config: &std::path::Path, data: &std::path::Path, imap: u16) -> std::process::Child {
    let child = Command::new(binary())
        .args(["serve", "-c"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", imap)).is_err()
        || !data.join("roost.sock").exists()
    {
        assert!(Instant::now() < deadline, "roost serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Served {
    /// Kills the server with SIGKILL (nothing of it runs on) and starts
    /// it again on the same configuration and data.
    fn kill9_and_restart(&mut self, imap: u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let config = self.dir.path().join("roost.toml");
        self.child = spawn_serve(&config, &self.dir.path().join("data"), imap);
    }
}

/// The subjects in `mailbox` of `user`, in order.
fn subjects_of(imap: u16, user: &str, password: &str, mailbox: &str) -> Vec<String> {
    let mut c = Imap::connect(imap);
    let r = c.cmd(&format!("LOGIN {user} {password}"));
    assert!(r.contains(" OK "), "{r}");
    let r = c.cmd(&format!("EXAMINE {mailbox}"));
    if r.contains("* 0 EXISTS") {
        return Vec::new();
    }
    let r = c.cmd("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    r.lines()
        .filter_map(|l| l.strip_prefix("Subject: "))
        .map(str::to_string)
        .collect()
}

/// dnsmasq with an MX record for remote.example (mx.remote.example, at
/// 127.0.0.1), NXDOMAIN for other names under example, and `more`.
fn mx_dns(more: &[&str]) -> Dnsmasq {
    let mut options = vec![
        "--mx-host=remote.example,mx.remote.example,10",
        "--host-record=mx.remote.example,127.0.0.1",
        "--local=/example/",
    ];
    options.extend_from_slice(more);
    Dnsmasq::start_with(&[], &options)
}

/// A sending roost (a.test) with submission and IMAP listeners, DNS from
/// `dns_port`, its queue delivering to `remote_port`, and the account
/// alice@local.example; with its submission and IMAP ports.
fn queue_sender(dns_port: u16, remote_port: u16) -> (Served, u16, u16) {
    sender_with(&format!(
        "[dns]\nservers = [\"127.0.0.1:{dns_port}\"]\n[queue]\nremote_port = {remote_port}\n"
    ))
}

/// A sending roost (a.test) with submission and IMAP listeners, `more`
/// configuration, and the account alice@local.example; with its
/// submission and IMAP ports.
fn sender_with(more: &str) -> (Served, u16, u16) {
    sender_listening(&[], more)
}

/// As [`sender_with`], with more `[listen]` lines (`smtp = [...]`).
fn sender_listening(listen: &[&str], more: &str) -> (Served, u16, u16) {
    let offset = fresh_offset();
    let (sub, imap) = (SUBMISSION + offset, IMAP + offset);
    let listen: String = listen.iter().map(|l| format!("{l}\n")).collect();
    let sender = serve_config(
        &format!(
            "hostname = \"a.test\"\n\
             [listen]\nsubmission = [\"127.0.0.1:{sub}\"]\nimap = [\"127.0.0.1:{imap}\"]\n\
             {listen}{more}"
        ),
        imap,
    );
    let data = sender.dir.path().join("data");
    admin_ok(&data, &["domain", "add", "local.example"]);
    admin_ok(
        &data,
        &[
            "account",
            "add",
            "alice@local.example",
            "--password",
            "alicesecret1",
        ],
    );
    (sender, sub, imap)
}

/// A localserve roost as a smarthost, with alice@local.example (password
/// relaysecret1); the config lines of a transport to it (without its
/// name's table header): host, port, login, CA file.
fn smarthost() -> (Server, String) {
    let relay = Server::start();
    relay.admin_ok(&["domain", "add", "local.example"]);
    relay.admin_ok(&[
        "account",
        "add",
        "alice@local.example",
        "--password",
        "relaysecret1",
    ]);
    let lines = format!(
        "smarthost = \"localhost:{}\"\nusername = \"alice@local.example\"\n\
         password = \"relaysecret1\"\nca_file = \"{}\"\n",
        relay.port(SUBMISSION),
        relay.dir.join("localserve-cert.pem").display()
    );
    (relay, lines)
}

/// A submission session logged in as alice@local.example.
fn alice_on(port: u16) -> Smtp {
    let mut sub = Smtp::connect(port);
    sub.cmd("EHLO client.example.org");
    // "\0alice@local.example\0alicesecret1"
    assert_eq!(
        sub.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsLmV4YW1wbGUAYWxpY2VzZWNyZXQx"),
        "235 2.7.0 Authentication successful"
    );
    sub
}

/// The outgoing queue between two roost servers on loopback, with MX
/// records from dnsmasq: mail submitted for another domain is queued
/// (durably, before the 250), delivered to that domain's MX, retried
/// after a temporary refusal (here at once, by `queue retry`), and a
/// permanent refusal comes back to the sender as an RFC 3464 DSN.
#[test]
fn the_queue_delivers_retries_and_returns_failures() {
    let offset = fresh_offset();
    let (b_smtp, b_imap) = (SMTP + offset, IMAP + offset);
    let receiver = serve_with_dns("", b_smtp, b_imap, NO_DNS);
    let b_data = receiver.dir.path().join("data");
    admin_ok(&b_data, &["domain", "add", "remote.example"]);
    admin_ok(
        &b_data,
        &[
            "account",
            "add",
            "bob@remote.example",
            "--password",
            "bobsecret1",
        ],
    );
    // No MX for implicit.example: the domain is its own mail host.
    let dns = mx_dns(&["--host-record=implicit.example,127.0.0.1"]);
    let (sender, a_sub, a_imap) = queue_sender(dns.port, b_smtp);
    let a_data = sender.dir.path().join("data");
    let mut sub = alice_on(a_sub);
    let submit = |sub: &mut Smtp, to: &[&str], subject: &str| {
        let m = format!("From: alice@local.example\r\nSubject: {subject}\r\n\r\nHello\r\n.dot\r\n");
        sub.send_mail("alice@local.example", to, m.as_bytes())
    };
    let queued = "250 2.0.0 OK, queued for delivery";
    assert_eq!(submit(&mut sub, &["bob@remote.example"], "first"), queued);
    let bob = |mailbox: &str| subjects_of(b_imap, "bob@remote.example", "bobsecret1", mailbox);
    eventually("delivery to the remote server", || {
        (bob("INBOX") == ["first"]).then_some(())
    });
    // Mixed: a local recipient at once, the remote one through the queue.
    assert_eq!(
        submit(
            &mut sub,
            &["alice@local.example", "bob@remote.example"],
            "both"
        ),
        queued
    );
    eventually("the second delivery", || {
        (bob("INBOX") == ["first", "both"]).then_some(())
    });
    let alice = |mailbox: &str| subjects_of(a_imap, "alice@local.example", "alicesecret1", mailbox);
    assert_eq!(alice("INBOX"), ["both"]);
    // The message arrived as sent, dots and all, with the sender's trace.
    let mut i = Imap::connect(b_imap);
    i.cmd("LOGIN bob@remote.example bobsecret1");
    i.cmd("EXAMINE INBOX");
    let r = i.cmd("FETCH 1 BODY.PEEK[TEXT]");
    assert_eq!(
        r,
        "* 1 FETCH (BODY[TEXT] {13}\r\nHello\r\n.dot\r\n)\r\na3 OK FETCH completed\r\n"
    );

    // A temporary refusal: kept and retried.
    admin_ok(&b_data, &["domain", "disable", "remote.example"]);
    assert_eq!(submit(&mut sub, &["bob@remote.example"], "later"), queued);
    let listed = eventually("a failed attempt", || {
        let l = admin_ok(&a_data, &["queue", "list"]);
        l.contains("attempts=1").then_some(l)
    });
    let id = listed.split(' ').next().unwrap().to_string();
    assert!(
        listed.ends_with(
            "last=\"451 4.7.1 Mail for remote.example is disabled for now, try again later\"\n"
        ),
        "{listed}"
    );
    assert!(
        listed.starts_with(&format!(
            "{id} remote.example from=<alice@local.example> to=bob@remote.example attempts=1 next="
        )),
        "{listed}"
    );
    admin_ok(&b_data, &["domain", "enable", "remote.example"]);
    admin_ok(&a_data, &["queue", "retry", &id]);
    eventually("the retried delivery", || {
        (bob("INBOX") == ["first", "both", "later"]).then_some(())
    });
    eventually("an empty queue", || {
        admin_ok(&a_data, &["queue", "list"])
            .is_empty()
            .then_some(())
    });

    // A permanent refusal: a DSN back to the sender.
    assert_eq!(submit(&mut sub, &["nobody@remote.example"], "lost"), queued);
    eventually("the DSN", || {
        (alice("INBOX") == ["both", "Undelivered mail returned to sender"]).then_some(())
    });
    let mut i = Imap::connect(a_imap);
    i.cmd("LOGIN alice@local.example alicesecret1");
    i.cmd("EXAMINE INBOX");
    let r = i.cmd("FETCH 2 BODY.PEEK[2]");
    let status: Vec<&str> = r.lines().skip(1).take(8).collect();
    assert_eq!(
        status,
        [
            "Reporting-MTA: dns; a.test",
            status[1],
            "",
            "Final-Recipient: rfc822; nobody@remote.example",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.remote.example",
            "Diagnostic-Code: smtp; 550 5.1.1 No such user here: nobody@remote.example",
        ]
    );
    assert!(status[1].starts_with("Arrival-Date: "), "{r}");
    let r = i.cmd("FETCH 2 BODY.PEEK[3]");
    assert!(r.contains("\r\nSubject: lost\r\n"), "{r}");

    // A domain without MX records takes mail at its own address; a domain
    // that does not exist fails at once.
    admin_ok(&b_data, &["domain", "add", "implicit.example"]);
    admin_ok(
        &b_data,
        &[
            "account",
            "add",
            "carol@implicit.example",
            "--password",
            "carolsecret1",
        ],
    );
    assert_eq!(
        submit(&mut sub, &["carol@implicit.example"], "implicit"),
        queued
    );
    eventually("delivery without MX", || {
        (subjects_of(b_imap, "carol@implicit.example", "carolsecret1", "INBOX") == ["implicit"])
            .then_some(())
    });
    assert_eq!(submit(&mut sub, &["x@nodomain.example"], "nowhere"), queued);
    eventually("the second DSN", || {
        (alice("INBOX").len() == 3).then_some(())
    });
    let mut i = Imap::connect(a_imap);
    i.cmd("LOGIN alice@local.example alicesecret1");
    i.cmd("EXAMINE INBOX");
    let r = i.cmd("FETCH 3 BODY.PEEK[2]");
    let status: Vec<&str> = r.lines().skip(4).take(4).collect();
    assert_eq!(
        status,
        [
            "Final-Recipient: rfc822; x@nodomain.example",
            "Action: failed",
            "Status: 5.1.2",
            "Diagnostic-Code: smtp; 550 5.1.2 no such domain: nodomain.example",
        ]
    );
}

#[path = "common/postfix.rs"]
mod postfix;

/// A real Postfix from Debian as the receiving server: roost's queue
/// finds it by MX (dnsmasq), talks SMTP to it (pipelined envelope, 8-bit
/// body) and Postfix takes both messages (its log says `status=sent`;
/// its discard transport drops them afterwards). roost's queue is empty
/// after.
#[test]
fn the_queue_delivers_to_a_real_postfix() {
    let port = free_port();
    let relay = postfix::Postfix::start(
        port,
        "relay_domains = remote.example\n\
         relay_transport = discard\n\
         default_transport = discard\n\
         smtpd_helo_required = yes\n",
    )
    .unwrap_or_else(|e| {
        panic!("Postfix: {e}; .ci/run installs it (apt-get install postfix) and runs as root")
    });
    let dns = mx_dns(&[]);
    let (sender, a_sub, _) = queue_sender(dns.port, port);
    let a_data = sender.dir.path().join("data");
    let mut sub = alice_on(a_sub);
    for (to, subject) in [
        ("bob@remote.example", "one"),
        ("carol@remote.example", "två"),
    ] {
        assert_eq!(
            sub.cmd("MAIL FROM:<alice@local.example> BODY=8BITMIME"),
            "250 2.1.0 Sender OK"
        );
        assert_eq!(
            sub.cmd(&format!("RCPT TO:<{to}>")),
            "250 2.1.5 Recipient OK"
        );
        assert_eq!(
            sub.cmd("DATA"),
            "354 Start mail input; end with <CRLF>.<CRLF>"
        );
        sub.send_raw(
            format!(
                "From: alice@local.example\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello\r\n.\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(sub.reply(), "250 2.0.0 OK, queued for delivery");
    }
    let log = eventually("Postfix taking both messages", || {
        let log = relay.log();
        (log.matches("status=sent").count() >= 2).then_some(log)
    });
    for to in ["bob@remote.example", "carol@remote.example"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("to=<{to}>")) && l.contains("status=sent")),
            "{log}"
        );
    }
    assert!(log.contains("from=<alice@local.example>"), "{log}");
    eventually("an empty queue", || {
        admin_ok(&a_data, &["queue", "list"])
            .is_empty()
            .then_some(())
    });
}

/// Transports: routes send mail through a smarthost (a localserve roost's
/// submission port: STARTTLS, its certificate checked against the
/// configured CA file, AUTH PLAIN; or implicit TLS on its 465 port; or
/// plain SMTP to its MX port) or refuse it with a fail transport's reply
/// (a DSN to the sender); a smarthost that refuses the login, or whose
/// certificate the configured CA did not sign, keeps the message queued
/// with the reason. Retired messages record the smarthost.
#[test]
fn transports_relay_through_a_smarthost_or_refuse() {
    let (relay, relay_lines) = smarthost();
    let relay_sub = relay.port(SUBMISSION);
    let badlogin = relay_lines.replace("relaysecret1", "wrong-password");
    // Implicit TLS on the submissions port (465), and a CA that did not
    // sign the smarthost's certificate.
    let implicit = relay_lines.replace(
        &format!("localhost:{relay_sub}"),
        &format!("localhost:{}\"\ntls = \"implicit", relay.port(SUBMISSIONS)),
    );
    let other_ca = tempfile::tempdir().unwrap();
    ca_signed(other_ca.path(), "unused", &["unused.example"]);
    let wrong_ca = relay_lines.replace(
        &relay.dir.join("localserve-cert.pem").display().to_string(),
        &other_ca.path().join("ca.pem").display().to_string(),
    );
    assert_ne!(wrong_ca, relay_lines);
    // Plain SMTP to the smarthost's MX port, no login, for a domain it
    // takes mail for.
    relay.admin_ok(&["domain", "add", "plainrelay.example"]);
    relay.admin_ok(&[
        "account",
        "address-add",
        "alice@local.example",
        "p@plainrelay.example",
    ]);
    let plain = format!(
        "smarthost = \"localhost:{}\"\ntls = \"none\"\n",
        relay.port(SMTP)
    );
    let (sender, sub, imap) = sender_with(&format!(
        "{NO_DNS}\
         [transports.relay]\n{relay_lines}\
         [transports.plain]\n{plain}\
         [[queue.routes]]\nrecipient_domain = \"plainrelay.example\"\ntransport = \"plain\"\n\
         [transports.implicit]\n{implicit}\
         [transports.wrongca]\n{wrong_ca}\
         [[queue.routes]]\nrecipient_domain = \"implicit.example\"\ntransport = \"implicit\"\n\
         [[queue.routes]]\nrecipient_domain = \"wrongca.example\"\ntransport = \"wrongca\"\n\
         [transports.badlogin]\n{badlogin}\
         [transports.nope]\nfail = \"550 5.7.1 no mail to blocked.example\"\n\
         [[queue.routes]]\nrecipient_domain = \"blocked.example\"\ntransport = \"nope\"\n\
         [[queue.routes]]\nrecipient_domain = \"badlogin.example\"\ntransport = \"badlogin\"\n\
         [[queue.routes]]\naccount = \"alice@local.example\"\ntransport = \"relay\"\n"
    ));
    let data = sender.dir.path().join("data");
    let mut alice = alice_on(sub);
    let submit = |sub: &mut Smtp, to: &str, subject: &str| {
        let m = format!("From: alice@local.example\r\nSubject: {subject}\r\n\r\nHello\r\n");
        sub.send_mail("alice@local.example", &[to], m.as_bytes())
    };
    let queued = "250 2.0.0 OK, queued for delivery";
    assert_eq!(
        submit(&mut alice, "someone@elsewhere.example", "relayed"),
        queued
    );
    // The smarthost (localserve) delivers each to the submitting account.
    let relayed = |what: &str, want: &[&str]| {
        eventually(what, || {
            let mut got = subjects_of(
                relay.port(IMAP),
                "alice@local.example",
                "relaysecret1",
                "INBOX",
            );
            got.sort();
            (got == want).then_some(())
        })
    };
    relayed("the message relayed over STARTTLS", &["relayed"]);
    assert_eq!(submit(&mut alice, "i@implicit.example", "implicit"), queued);
    relayed(
        "the message relayed over implicit TLS",
        &["implicit", "relayed"],
    );
    assert_eq!(submit(&mut alice, "p@plainrelay.example", "plain"), queued);
    relayed(
        "the message relayed over plain SMTP",
        &["implicit", "plain", "relayed"],
    );
    assert_eq!(submit(&mut alice, "w@wrongca.example", "unchecked"), queued);
    // The queue's line for a message tried once and kept.
    let kept = |domain: &str| {
        eventually(&format!("the message for {domain} kept"), || {
            let l = admin_ok(&data, &["queue", "list", "--to-domain", domain]);
            l.contains("attempts=1").then_some(l)
        })
    };
    let listed = kept("wrongca.example");
    assert!(
        listed.ends_with(&format!(
            " last=\"localhost:{relay_sub}: TLS handshake: invalid peer certificate: UnknownIssuer\"\n"
        )),
        "{listed}"
    );
    assert_eq!(submit(&mut alice, "x@blocked.example", "refused"), queued);
    let mine = || subjects_of(imap, "alice@local.example", "alicesecret1", "INBOX");
    eventually("the fail transport's DSN", || {
        (mine() == ["Undelivered mail returned to sender"]).then_some(())
    });
    let mut c = Imap::connect(imap);
    c.cmd("LOGIN alice@local.example alicesecret1");
    c.cmd("EXAMINE INBOX");
    let dsn = c.cmd("FETCH 1 BODY.PEEK[TEXT]");
    assert!(
        dsn.contains("Diagnostic-Code: smtp; 550 5.7.1 no mail to blocked.example"),
        "{dsn}"
    );
    assert_eq!(submit(&mut alice, "y@badlogin.example", "kept"), queued);
    let listed = kept("badlogin.example");
    assert!(
        listed.ends_with(&format!(
            " last=\"localhost:{relay_sub}: AUTH: 535 5.7.8 Authentication credentials invalid\"\n"
        )),
        "{listed}"
    );
    let retired: serde_json::Value =
        serde_json::from_str(&admin_ok(&data, &["queue", "retired"])).unwrap();
    let rows: Vec<String> = retired
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} | {}",
                r["domain"].as_str().unwrap(),
                r["recipients"][0]["result"].as_str().unwrap(),
                r["recipients"][0]["detail"].as_str().unwrap(),
                r["attempts"][0]["host"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "blocked.example failed 550 5.7.1 no mail to blocked.example | -",
            "plainrelay.example delivered delivered to localhost | localhost",
            "implicit.example delivered delivered to localhost | localhost",
            "elsewhere.example delivered delivered to localhost | localhost",
        ]
    );
}

/// A webhook receiver on loopback: each request's head lines and JSON
/// body, in order; the first request is answered 503, the rest 200.
fn webhook_receiver() -> (
    u16,
    std::sync::mpsc::Receiver<(Vec<String>, serde_json::Value)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                head.push(line);
            }
            let len: usize = head
                .iter()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = conn.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            if tx.send((head, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// Webhooks: an account's events reach its URL as JSON with the
/// configured Authorization header and the message's extra data:
/// delivered (through a smarthost), failed (a fail transport's 550),
/// suppressed (a later submission to that address), delayed (after the
/// fifth attempt), canceled (dropped by the admin) and incoming. A call
/// answered 503 is made again; the history keeps both attempts.
#[test]
fn webhooks_carry_every_event_with_the_extra_data() {
    let (_relay, relay_lines) = smarthost();
    let (hook_port, calls) = webhook_receiver();
    let (sender, sub, _) = sender_with(&format!(
        "{NO_DNS}\
         [webhooks]\nretry_after = [1, 1, 1]\n\
         [transports.relay]\n{relay_lines}\
         [transports.bounce]\nfail = \"550 5.1.1 no such user there\"\n\
         [transports.later]\nfail = \"451 4.4.1 try again later\"\n\
         [queue]\nretry_after = [1, 1, 1, 1, 3600]\n\
         [[queue.routes]]\nrecipient_domain = \"bounce.example\"\ntransport = \"bounce\"\n\
         [[queue.routes]]\nrecipient_domain = \"later.example\"\ntransport = \"later\"\n\
         [[queue.routes]]\ntransport = \"relay\"\n"
    ));
    let data = sender.dir.path().join("data");
    let url = format!("http://127.0.0.1:{hook_port}/hook?k=1");
    assert_eq!(
        admin_ok(
            &data,
            &[
                "webhook",
                "set",
                "alice@local.example",
                &url,
                "--authorization",
                "Bearer s3cret"
            ]
        ),
        format!(
            "{{\n  \"account\": \"alice@local.example\",\n  \"authorization\": true,\n  \"url\": \"{url}\"\n}}\n"
        )
    );
    let mut alice = alice_on(sub);
    let submit = |sub: &mut Smtp, to: &str, subject: &str| {
        let m = format!(
            "From: alice@local.example\r\nSubject: {subject}\r\nX-Roost-Extra-Campaign: c-{subject}\r\n\r\nHello\r\n"
        );
        sub.send_mail("alice@local.example", &[to], m.as_bytes())
    };
    let next = || {
        calls
            .recv_timeout(Duration::from_secs(30))
            .expect("a webhook call")
    };
    // The head, with the call's id and the body's length masked.
    let masked = |head: &[String]| -> Vec<String> {
        let mut h: Vec<String> = head
            .iter()
            .map(|l| {
                if l.starts_with("x-roost-call: ") {
                    "x-roost-call: N".to_string()
                } else if l.starts_with("content-length: ") {
                    "content-length: N".to_string()
                } else {
                    l.clone()
                }
            })
            .collect();
        h[1..].sort();
        h
    };
    let summary = |body: &serde_json::Value| -> String {
        let field = |k: &str| body[k].as_str().unwrap_or("-").to_string();
        format!(
            "{} {} to={} reply={} extra={}",
            field("event"),
            field("account"),
            body["to"],
            field("reply"),
            body["extra"]
        )
    };
    let queued = "250 2.0.0 OK, queued for delivery";
    assert_eq!(submit(&mut alice, "x@elsewhere.example", "relayed"), queued);
    let (head, body) = next();
    assert_eq!(
        masked(&head),
        [
            "POST /hook?k=1 HTTP/1.1",
            "authorization: Bearer s3cret",
            "content-length: N",
            "content-type: application/json",
            &format!("host: 127.0.0.1:{hook_port}"),
            "user-agent: roost",
            "x-roost-call: N",
            "x-roost-event: delivered",
        ]
    );
    let delivered = "delivered alice@local.example to=\"x@elsewhere.example\" reply=- \
                     extra={\"campaign\":\"c-relayed\"}";
    assert_eq!(summary(&body), delivered);
    assert_eq!(body["host"], "localhost");
    assert_eq!(body["from"], "alice@local.example");
    assert_eq!(body["version"], 1);
    assert!(body["time"].as_str().unwrap().ends_with('Z'), "{body}");
    // Answered 503 the first time: made again a second later.
    let (_, again) = next();
    assert_eq!(again, body);

    assert_eq!(submit(&mut alice, "y@bounce.example", "bounced"), queued);
    assert_eq!(
        summary(&next().1),
        "failed alice@local.example to=\"y@bounce.example\" reply=550 5.1.1 no such user there \
         extra={\"campaign\":\"c-bounced\"}"
    );
    // A fail transport's refusal is this server's own: the address is
    // not suppressed. The admin puts it there.
    admin_ok(
        &data,
        &[
            "suppression",
            "add",
            "alice@local.example",
            "y@bounce.example",
        ],
    );
    assert_eq!(
        alice.cmd("MAIL FROM:<alice@local.example>"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        alice.cmd("RCPT TO:<y@bounce.example>"),
        "550 5.1.1 y@bounce.example is on your suppression list: added by the admin"
    );
    assert_eq!(alice.cmd("RSET"), "250 2.0.0 OK");
    let suppressed = next().1;
    assert_eq!(
        (
            &suppressed["event"],
            &suppressed["to"],
            &suppressed["reason"]
        ),
        (
            &serde_json::json!("suppressed"),
            &serde_json::json!("y@bounce.example"),
            &serde_json::json!("added by the admin")
        )
    );
    assert_eq!(submit(&mut alice, "z@later.example", "late"), queued);
    assert_eq!(
        summary(&next().1),
        "delayed alice@local.example to=\"z@later.example\" reply=451 4.4.1 try again later \
         extra={\"campaign\":\"c-late\"}"
    );
    // Dropped once its worker is done with it.
    eventually("the drop", || {
        let out = admin_ok(&data, &["queue", "drop", "--to-domain", "later.example"]);
        out.contains("\"messages\": 1").then_some(())
    });
    assert_eq!(
        summary(&next().1),
        "canceled alice@local.example to=\"z@later.example\" \
         reply=removed from the queue by the admin extra={\"campaign\":\"c-late\"}"
    );
    assert_eq!(
        submit(&mut alice, "alice@local.example", "to myself"),
        "250 2.0.0 OK, message delivered"
    );
    let incoming = next().1;
    assert_eq!(
        (
            &incoming["event"],
            &incoming["to"],
            &incoming["subject"],
            &incoming["extra"]
        ),
        (
            &serde_json::json!("incoming"),
            &serde_json::json!(["alice@local.example"]),
            &serde_json::json!("to myself"),
            &serde_json::json!({"campaign": "c-to myself"})
        )
    );
    // The history: six calls, the first with its two attempts.
    let history = eventually("six calls in the history", || {
        let h: serde_json::Value = serde_json::from_str(&admin_ok(
            &data,
            &["webhook", "history", "--account", "alice@local.example"],
        ))
        .unwrap();
        (h.as_array().unwrap().len() == 6).then_some(h)
    });
    let first = history.as_array().unwrap().last().unwrap();
    let results: Vec<&str> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        (
            first["event"].as_str(),
            results,
            first["delivered"].as_bool()
        ),
        (Some("delivered"), vec!["HTTP 503", "HTTP 200"], Some(true))
    );
    assert_eq!(admin_ok(&data, &["webhook", "pending"]), "[]\n");
}

/// DMARC aggregate reports (RFC 7489 7.2): mail from a.example is
/// evaluated on one roost; its report scheduler (every 2 s here) sends a
/// gzipped XML report to each `rua` address through its queue, to the
/// other roost (a.example's MX): to the policy domain's own address, to
/// an outside address that publishes its `_report._dmarc` record, and
/// not to one that does not (RFC 7489 7.1).
#[test]
fn dmarc_aggregate_reports_reach_the_rua_addresses() {
    use std::io::Read as _;
    let dns = Dnsmasq::start_with(
        &[
            ("a.example", "v=spf1 ip4:127.0.0.1 -all"),
            (
                "_dmarc.a.example",
                "v=DMARC1; p=none; rua=mailto:dmarc@a.example,mailto:r@third.example,mailto:x@elsewhere.example",
            ),
            ("a.example._report._dmarc.third.example", "v=DMARC1"),
        ],
        &[
            "--mx-host=a.example,mx.a.example,10",
            "--mx-host=third.example,mx.a.example,10",
            "--mx-host=elsewhere.example,mx.a.example,10",
            "--host-record=mx.a.example,127.0.0.1",
            "--local=/example/",
        ],
    );
    let offset = fresh_offset();
    let (a_smtp, a_imap) = (SMTP + offset, IMAP + offset);
    let receiver = serve_with_dns("", a_smtp, a_imap, NO_DNS);
    let a_data = receiver.dir.path().join("data");
    for (domain, account) in [
        ("a.example", "dmarc@a.example"),
        ("third.example", "r@third.example"),
        ("elsewhere.example", "x@elsewhere.example"),
    ] {
        admin_ok(&a_data, &["domain", "add", domain]);
        admin_ok(
            &a_data,
            &["account", "add", account, "--password", "reportsecret1"],
        );
    }
    let (evaluator, smtp, _) = serve_with_account(&format!(
        "[dns]\nservers = [\"127.0.0.1:{}\"]\n[queue]\nremote_port = {a_smtp}\n[reports]\ndmarc_interval = 2\n",
        dns.port
    ));
    let mut c = Smtp::connect(smtp);
    c.cmd("EHLO client.a.example");
    let m = "From: a@a.example\r\nTo: roost@localhost\r\nSubject: evaluated\r\n\r\nHi\r\n";
    assert_eq!(
        c.send_mail("a@a.example", &["roost@localhost"], m.as_bytes()),
        "250 2.0.0 OK, message delivered"
    );
    let report_of = |account: &str| {
        eventually("a report", || {
            let s = subjects_of(a_imap, account, "reportsecret1", "INBOX");
            (!s.is_empty()).then_some(s)
        })
    };
    assert_eq!(report_of("dmarc@a.example").len(), 1);
    let mut i = Imap::connect(a_imap);
    i.cmd("LOGIN dmarc@a.example reportsecret1");
    i.cmd("EXAMINE INBOX");
    // The subject, unfolded.
    let fetched = i
        .cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        .replace("\r\n ", " ");
    let subject = fetched
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("{fetched}"));
    let id = subject
        .strip_prefix("Report Domain: a.example Submitter: mx.test Report-ID: <")
        .and_then(|s| s.strip_suffix(".a.example>"))
        .unwrap_or_else(|| panic!("{subject}"));
    let end: i64 = id.parse().unwrap();
    assert_eq!(report_of("r@third.example").len(), 1);
    // The report as attached: gzipped XML, named as RFC 7489 7.2.1.1 says.
    let head = i.cmd("FETCH 1 BODY.PEEK[2.MIME]");
    assert!(
        head.contains("Content-Type: application/gzip\r\n"),
        "{head}"
    );
    // receiver!policy-domain!begin!end.xml.gz; the period is one interval
    // or a little more (ticks drift against whole seconds).
    let begin: i64 = head
        .split_once("filename=\"mx.test!a.example!")
        .and_then(|(_, rest)| rest.split_once(&format!("!{end}.xml.gz\"")))
        .and_then(|(b, _)| b.parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    assert!((1..=4).contains(&(end - begin)), "{begin} {end}");
    let gz = i.cmd_bytes("FETCH 1 BINARY.PEEK[2]");
    let start = gz.iter().position(|&b| b == b'}').unwrap() + 3;
    let end_of = gz.len() - gz.iter().rev().position(|&b| b == b')').unwrap() - 1;
    let mut xml = String::new();
    flate2::read::GzDecoder::new(&gz[start..end_of])
        .read_to_string(&mut xml)
        .unwrap();
    assert_eq!(
        xml,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n  <report_metadata>\n\
             \x20   <org_name>mx.test</org_name>\n    <email>postmaster@mx.test</email>\n\
             \x20   <report_id>{end}.a.example</report_id>\n    <date_range>\n      <begin>{begin}</begin>\n      <end>{end}</end>\n    </date_range>\n\
             \x20 </report_metadata>\n  <policy_published>\n    <domain>a.example</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n\
             \x20   <p>none</p>\n    <sp>none</sp>\n    <pct>100</pct>\n    <fo>0</fo>\n  </policy_published>\n\
             \x20 <record>\n    <row>\n      <source_ip>127.0.0.1</source_ip>\n      <count>1</count>\n\
             \x20     <policy_evaluated>\n        <disposition>none</disposition>\n        <dkim>fail</dkim>\n        <spf>pass</spf>\n      </policy_evaluated>\n\
             \x20   </row>\n    <identifiers>\n      <header_from>a.example</header_from>\n    </identifiers>\n\
             \x20   <auth_results>\n      <spf>\n        <domain>a.example</domain>\n        <result>pass</result>\n      </spf>\n    </auth_results>\n  </record>\n\
             </feedback>\n"
        )
    );
    // Nothing for the address that does not take a.example's reports.
    std::thread::sleep(Duration::from_secs(3));
    assert!(subjects_of(a_imap, "x@elsewhere.example", "reportsecret1", "INBOX").is_empty());
    drop(evaluator);
}

/// TLS reports (RFC 8460): the queue keeps how each session's TLS went;
/// a recipient domain that publishes `_smtp._tls` gets a gzipped JSON
/// report (in a multipart/report of type tlsrpt) at its mailto address,
/// here saying its MX offered no STARTTLS.
#[test]
fn tls_reports_reach_the_recipient_domain() {
    let (_receiver, b_imap, _dns, _sender) = tls_report_setup("", "over no TLS");
    let report = tls_report(b_imap);
    let id = report["report-id"].as_str().unwrap();
    assert!(id.ends_with(".remote.example"), "{id}");
    // RFC 3339 UTC times, the start before the end.
    let (start, end) = (
        report["date-range"]["start-datetime"].as_str().unwrap(),
        report["date-range"]["end-datetime"].as_str().unwrap(),
    );
    let utc = |t: &str| t.len() == 27 && t.ends_with('Z') && t.as_bytes()[10] == b'T';
    assert!(utc(start) && utc(end) && start < end, "{start} {end}");
    assert_eq!(
        report,
        serde_json::json!({
            "organization-name": "a.test",
            "date-range": {"start-datetime": start, "end-datetime": end},
            "contact-info": "postmaster@a.test",
            "report-id": id,
            "policies": [{
                "policy": {"policy-type": "no-policy-found", "policy-domain": "remote.example"},
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
                "failure-details": [{
                    "result-type": "starttls-not-supported",
                    "sending-mta-ip": "127.0.0.1",
                    "receiving-mx-hostname": "mx.remote.example",
                    "receiving-ip": "127.0.0.1",
                    "failed-session-count": 1,
                }],
            }],
        })
    );
}

/// A slow receiving server on loopback: it takes every message, waiting
/// `delay` before each `250` to the data (so deliveries are in flight
/// when the sender is killed), and keeps each message's subject.
fn slow_receiver(delay: Duration) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                let _ = w.write_all(b"220 slow.example ESMTP\r\n");
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 slow.example\r\n",
                        "DATA" => {
                            let _ = w.write_all(b"354 go on\r\n");
                            let mut subject = String::new();
                            loop {
                                let mut l = String::new();
                                if r.read_line(&mut l).unwrap_or(0) == 0 || l == ".\r\n" {
                                    break;
                                }
                                if let Some(s) = l.strip_prefix("Subject: ") {
                                    subject = s.trim_end().to_string();
                                }
                            }
                            std::thread::sleep(delay);
                            kept.lock().unwrap().push(subject);
                            b"250 2.0.0 taken\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n");
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    (port, got)
}

/// Kill -9 of the sender, repeated, while its queue delivers: after the
/// restarts every message acknowledged to the submitter is delivered,
/// none lost; a message delivered twice is one whose remote `250` came
/// before the kill let its outcome be written (counted and printed).
#[test]
fn queued_mail_survives_repeated_kill_9_during_delivery() {
    const MESSAGES: usize = 40;
    const KILLS: usize = 4;
    let (port, got) = slow_receiver(Duration::from_millis(100));
    let dns = mx_dns(&[]);
    let (mut sender, sub, imap) = sender_with(&format!(
        "[dns]\nservers = [\"127.0.0.1:{}\"]\n[queue]\nremote_port = {port}\nretry_after = [1, 1, 1, 1, 1, 1, 1, 1]\n",
        dns.port
    ));
    let data = sender.dir.path().join("data");
    let mut alice = alice_on(sub);
    for n in 0..MESSAGES {
        let m = format!("From: alice@local.example\r\nSubject: m{n}\r\n\r\nHello\r\n");
        assert_eq!(
            alice.send_mail("alice@local.example", &["bob@remote.example"], m.as_bytes()),
            "250 2.0.0 OK, queued for delivery"
        );
    }
    drop(alice);
    let mut rng = XorShift(0x5eed_1234);
    for kill in 0..KILLS {
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 600));
        let delivered = got.lock().unwrap().len();
        // The first kill comes while the queue is still delivering.
        assert!(kill > 0 || delivered < MESSAGES, "{delivered}");
        sender.kill9_and_restart(imap);
    }
    eventually("an empty queue", || {
        admin_ok(&data, &["queue", "list"]).is_empty().then_some(())
    });
    let got = got.lock().unwrap().clone();
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    let want: Vec<String> = {
        let mut w: Vec<String> = (0..MESSAGES).map(|n| format!("m{n}")).collect();
        w.sort();
        w
    };
    assert_eq!(unique, want, "every message delivered");
    let duplicates = got.len() - unique.len();
    eprintln!("{KILLS} kills during delivery: {} deliveries of {MESSAGES} messages, {duplicates} delivered twice", got.len());
    assert!(duplicates <= MESSAGES, "{duplicates}");
}

/// A receiving roost for remote.example (bob, and tls for its TLS
/// reports; `tls` is its `[tls]` section or nothing), dnsmasq with its MX
/// and TLSRPT record, and a sending roost that reports TLS every 2 s and
/// has sent bob one message with `subject`. The receiver's IMAP port.
fn tls_report_setup(tls: &str, subject: &str) -> (Served, u16, Dnsmasq, Served) {
    tls_report_setup_with(
        tls,
        subject,
        "v=TLSRPTv1; rua=mailto:tls@remote.example",
        "",
    )
}

/// As [`tls_report_setup`], with the TLSRPT record given and `more`
/// `[queue]` keys for the sender.
fn tls_report_setup_with(
    tls: &str,
    subject: &str,
    record: &str,
    more: &str,
) -> (Served, u16, Dnsmasq, Served) {
    let offset = fresh_offset();
    let (b_smtp, b_imap) = (SMTP + offset, IMAP + offset);
    let receiver = serve_with_dns(tls, b_smtp, b_imap, NO_DNS);
    let b_data = receiver.dir.path().join("data");
    admin_ok(&b_data, &["domain", "add", "remote.example"]);
    for account in ["bob@remote.example", "tls@remote.example"] {
        admin_ok(
            &b_data,
            &["account", "add", account, "--password", "remotesecret1"],
        );
    }
    let dns = Dnsmasq::start_with(
        &[("_smtp._tls.remote.example", record)],
        &[
            "--mx-host=remote.example,mx.remote.example,10",
            "--host-record=mx.remote.example,127.0.0.1",
            "--local=/example/",
        ],
    );
    let (sender, sub, _) = sender_with(&format!(
        "[dns]\nservers = [\"127.0.0.1:{}\"]\n[queue]\nremote_port = {b_smtp}\n{more}[reports]\ntls_interval = 2\n",
        dns.port
    ));
    let mut alice = alice_on(sub);
    let m = format!("From: alice@local.example\r\nSubject: {subject}\r\n\r\nHello\r\n");
    assert_eq!(
        alice.send_mail("alice@local.example", &["bob@remote.example"], m.as_bytes()),
        "250 2.0.0 OK, queued for delivery"
    );
    (receiver, b_imap, dns, sender)
}

/// The first TLS report tls@remote.example got: its head checked, its
/// JSON.
fn tls_report(b_imap: u16) -> serde_json::Value {
    tls_report_of(b_imap, "tls@remote.example")
}

/// The first TLS report `account` (password remotesecret1) got.
fn tls_report_of(b_imap: u16, account: &str) -> serde_json::Value {
    tls_report_json_of(b_imap, account, "remote.example")
}

/// The first TLS report `account` got, about policy domain `domain`.
fn tls_report_json_of(b_imap: u16, account: &str, domain: &str) -> serde_json::Value {
    use std::io::Read as _;
    eventually("the report", || {
        (!subjects_of(b_imap, account, "remotesecret1", "INBOX").is_empty()).then_some(())
    });
    let mut i = Imap::connect(b_imap);
    i.cmd(&format!("LOGIN {account} remotesecret1"));
    i.cmd("EXAMINE INBOX");
    let head = i.cmd("FETCH 1 BODY.PEEK[HEADER]").replace("\r\n ", " ");
    for line in [
        "From: TLS report <postmaster@a.test>",
        &format!("TLS-Report-Domain: {domain}"),
        "TLS-Report-Submitter: a.test",
    ] {
        assert!(head.contains(&format!("{line}\r\n")), "{line} in {head}");
    }
    assert!(
        head.contains("Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary="),
        "{head}"
    );
    let part = i.cmd("FETCH 1 BODY.PEEK[2.MIME]");
    assert!(
        part.contains("Content-Type: application/tlsrpt+gzip\r\n"),
        "{part}"
    );
    let gz = i.cmd_bytes("FETCH 1 BINARY.PEEK[2]");
    let start = gz.iter().position(|&b| b == b'}').unwrap() + 3;
    let end = gz.len() - gz.iter().rev().position(|&b| b == b')').unwrap() - 1;
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[start..end])
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

/// TLS between two servers: the receiving roost has a certificate, the
/// queue says STARTTLS (opportunistically), the receiver records the
/// message as having come over TLS (ESMTPS), and the TLS report counts
/// one successful session.
#[test]
fn the_queue_delivers_over_starttls_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_signed(dir.path(), "mx", &["mx.remote.example"]);
    let tls = format!("[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n");
    let (_receiver, b_imap, _dns, _sender) = tls_report_setup(&tls, "over TLS");
    let report = tls_report(b_imap);
    assert_eq!(
        report["policies"],
        serde_json::json!([{
            "policy": {"policy-type": "no-policy-found", "policy-domain": "remote.example"},
            "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0},
            "failure-details": [],
        }])
    );
    let mut i = Imap::connect(b_imap);
    i.cmd("LOGIN bob@remote.example remotesecret1");
    i.cmd("EXAMINE INBOX");
    let received = i
        .cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (RECEIVED)]")
        .replace("\r\n\t", " ");
    assert!(received.contains(" with ESMTPS "), "{received}");
}

/// Runs openssl with `args`; it must succeed.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test certificate authority in `dir` (ca.pem, ca.key), and a
/// certificate it signs for `names` (`<stem>.pem`, `<stem>.key`).
fn ca_signed(dir: &std::path::Path, stem: &str, names: &[&str]) -> (String, String) {
    let p = |f: &str| dir.join(f).display().to_string();
    if !dir.join("ca.pem").exists() {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=roost test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ]);
    }
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        dir.join(format!("{stem}.ext")),
        format!("subjectAltName={san}\n"),
    )
    .unwrap();
    let (cert, key, csr) = (
        p(&format!("{stem}.pem")),
        p(&format!("{stem}.key")),
        p(&format!("{stem}.csr")),
    );
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &format!("/CN={}", names[0]),
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&format!("{stem}.ext")),
        "-out",
        &cert,
    ]);
    (cert, key)
}

/// `openssl s_server -WWW`: HTTPS on loopback serving `dir`'s files,
/// killed when dropped.
struct HttpsFiles(std::process::Child, u16);

impl HttpsFiles {
    fn start(dir: &std::path::Path, cert: &str, key: &str) -> HttpsFiles {
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", cert, "-key", key])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        HttpsFiles(child, port)
    }
}

impl Drop for HttpsFiles {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// MTA-STS (RFC 8461): remote.example publishes an enforced policy
/// (fetched over HTTPS, its certificate checked against the configured
/// CA) naming its MX, which has a certificate from that CA: the queue
/// delivers over checked TLS and the TLS report names the `sts` policy.
/// other.example's policy names no MX it has: its mail waits, with the
/// reason.
#[test]
fn mta_sts_policies_are_fetched_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (mx_cert, mx_key) = ca_signed(dir.path(), "mx", &["mx.remote.example", "mx.other.example"]);
    let (sts_cert, sts_key) = ca_signed(
        dir.path(),
        "sts",
        &["mta-sts.remote.example", "mta-sts.other.example"],
    );
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join(".well-known")).unwrap();
    std::fs::write(
        www.join(".well-known/mta-sts.txt"),
        "version: STSv1\r\nmode: enforce\r\nmx: mx.remote.example\r\nmax_age: 86400\r\n",
    )
    .unwrap();
    let policy_server = HttpsFiles::start(&www, &sts_cert, &sts_key);
    let offset = fresh_offset();
    let (b_smtp, b_imap) = (SMTP + offset, IMAP + offset);
    let tls = format!("[tls]\ncert = \"{mx_cert}\"\nkey = \"{mx_key}\"\n");
    let receiver = serve_with_dns(&tls, b_smtp, b_imap, NO_DNS);
    let b_data = receiver.dir.path().join("data");
    for domain in ["remote.example", "other.example"] {
        admin_ok(&b_data, &["domain", "add", domain]);
    }
    for account in [
        "bob@remote.example",
        "tls@other.example",
        "carol@other.example",
    ] {
        admin_ok(
            &b_data,
            &["account", "add", account, "--password", "remotesecret1"],
        );
    }
    let dns = Dnsmasq::start_with(
        &[
            ("_mta-sts.remote.example", "v=STSv1; id=2026a"),
            ("_mta-sts.other.example", "v=STSv1; id=1"),
            // The report goes to other.example, whose policy its MX
            // does not match: reports go out despite TLS policies (RFC
            // 8460 5.3).
            (
                "_smtp._tls.remote.example",
                "v=TLSRPTv1; rua=mailto:tls@other.example",
            ),
        ],
        &[
            "--mx-host=remote.example,mx.remote.example,10",
            "--mx-host=other.example,mx.other.example,10",
            "--host-record=mx.remote.example,127.0.0.1",
            "--host-record=mx.other.example,127.0.0.1",
            "--host-record=mta-sts.remote.example,127.0.0.1",
            "--host-record=mta-sts.other.example,127.0.0.1",
            "--local=/example/",
        ],
    );
    let (sender, sub, _) = sender_with(&format!(
        "[dns]\nservers = [\"127.0.0.1:{}\"]\n[queue]\nremote_port = {b_smtp}\nca_file = \"{}\"\nmta_sts_port = {}\n[reports]\ntls_interval = 2\n",
        dns.port,
        dir.path().join("ca.pem").display(),
        policy_server.1
    ));
    let a_data = sender.dir.path().join("data");
    let mut alice = alice_on(sub);
    for to in ["bob@remote.example", "carol@other.example"] {
        let m = format!("From: alice@local.example\r\nSubject: to {to}\r\n\r\nHello\r\n");
        assert_eq!(
            alice.send_mail("alice@local.example", &[to], m.as_bytes()),
            "250 2.0.0 OK, queued for delivery"
        );
    }
    eventually("delivery under the policy", || {
        (subjects_of(b_imap, "bob@remote.example", "remotesecret1", "INBOX")
            == ["to bob@remote.example"])
        .then_some(())
    });
    let waiting = eventually("the refused domain's message", || {
        let l = admin_ok(&a_data, &["queue", "list", "--to-domain", "other.example"]);
        l.contains("attempts=1").then_some(l)
    });
    assert!(
        waiting.ends_with(" last=\"MTA-STS: no MX host of other.example matches its policy\"\n"),
        "{waiting}"
    );
    assert!(subjects_of(b_imap, "carol@other.example", "remotesecret1", "INBOX").is_empty());
    // RFC 8689 5: a message that says TLS-Required: No is delivered
    // without the policy (its own lane; the other one still waits).
    let m = "From: alice@local.example\r\nTLS-Required: No\r\nSubject: tls optional\r\n\r\nHi\r\n";
    assert_eq!(
        alice.send_mail(
            "alice@local.example",
            &["carol@other.example"],
            m.as_bytes()
        ),
        "250 2.0.0 OK, queued for delivery"
    );
    eventually("the TLS-optional message", || {
        (subjects_of(b_imap, "carol@other.example", "remotesecret1", "INBOX") == ["tls optional"])
            .then_some(())
    });
    assert!(
        admin_ok(&a_data, &["queue", "list", "--to-domain", "other.example"])
            .contains(" to=carol@other.example attempts=")
    );
    let report = tls_report_of(b_imap, "tls@other.example");
    assert_eq!(
        report["policies"],
        serde_json::json!([{
            "policy": {
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.remote.example", "max_age: 86400"],
                "mx-host": ["mx.remote.example"],
                "policy-domain": "remote.example",
            },
            "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0},
            "failure-details": [],
        }])
    );
}

/// RFC 8460 5.4: a TLS report URI that is https gets the gzipped JSON
/// POSTed as application/tlsrpt+gzip, the receiver's certificate checked
/// against the configured authorities (a Python HTTPS server here).
#[test]
fn tls_reports_are_posted_to_https_uris() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_signed(dir.path(), "https", &["localhost"]);
    let posted = dir.path().join("posted");
    let (mut server, port) = https_recorder(&posted, &cert, &key);
    let record = format!("v=TLSRPTv1; rua=https://localhost:{port}/tlsrpt");
    let ca = format!("ca_file = \"{}\"\n", dir.path().join("ca.pem").display());
    let (_receiver, _, _dns, _sender) = tls_report_setup_with("", "posted report", &record, &ca);
    let got = eventually("the posted report", || std::fs::read(&posted).ok());
    let _ = server.kill();
    let _ = server.wait();
    let split = got.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got[..split]),
        "/tlsrpt application/tlsrpt+gzip"
    );
    let mut json = String::new();
    flate2::read::GzDecoder::new(&got[split + 1..])
        .read_to_string(&mut json)
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        report["policies"][0]["policy"],
        serde_json::json!({"policy-type": "no-policy-found", "policy-domain": "remote.example"})
    );
    assert_eq!(
        report["policies"][0]["summary"],
        serde_json::json!({"total-successful-session-count": 0, "total-failure-session-count": 1})
    );
}

/// A Python HTTPS server on loopback with `cert` and `key`: the path,
/// Content-Type and body of each POST written to `out` (the last one
/// wins), answered 200. Its process and port.
fn https_recorder(out: &std::path::Path, cert: &str, key: &str) -> (std::process::Child, u16) {
    let script = "import http.server, os, ssl, sys\n\
        out, cert, key = sys.argv[1:4]\n\
        class H(http.server.BaseHTTPRequestHandler):\n\
        \x20   def do_POST(self):\n\
        \x20       body = self.rfile.read(int(self.headers['Content-Length']))\n\
        \x20       head = (self.path + ' ' + self.headers['Content-Type'] + '\\n').encode()\n\
        \x20       open(out + '.tmp', 'wb').write(head + body)\n\
        \x20       os.rename(out + '.tmp', out)\n\
        \x20       self.send_response(200)\n\
        \x20       self.send_header('Content-Length', '0')\n\
        \x20       self.end_headers()\n\
        \x20   def log_message(self, *a):\n\
        \x20       pass\n\
        srv = http.server.HTTPServer(('127.0.0.1', 0), H)\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        ctx.load_cert_chain(cert, key)\n\
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
        print(srv.server_address[1], flush=True)\n\
        srv.serve_forever()\n";
    let mut server = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out)
        .args([cert, key])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    (server, port)
}

/// Webhooks to an `https://` URL: the receiver's certificate is checked
/// against `[webhooks] ca_file`, and the event arrives (here `incoming`,
/// for a message alice sends herself).
#[test]
fn webhooks_go_to_https_receivers() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_signed(dir.path(), "https", &["localhost"]);
    let posted = dir.path().join("posted");
    let (mut server, port) = https_recorder(&posted, &cert, &key);
    let (sender, sub, _) = sender_with(&format!(
        "{NO_DNS}[webhooks]\nca_file = \"{}\"\n",
        dir.path().join("ca.pem").display()
    ));
    let data = sender.dir.path().join("data");
    let url = format!("https://localhost:{port}/hook");
    admin_ok(&data, &["webhook", "set", "alice@local.example", &url]);
    let mut alice = alice_on(sub);
    let m = "From: alice@local.example\r\nSubject: note to self\r\n\r\nHello\r\n";
    assert_eq!(
        alice.send_mail(
            "alice@local.example",
            &["alice@local.example"],
            m.as_bytes()
        ),
        "250 2.0.0 OK, message delivered"
    );
    let got = eventually("the posted event", || std::fs::read(&posted).ok());
    let _ = server.kill();
    let _ = server.wait();
    let split = got.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got[..split]),
        "/hook application/json"
    );
    let event: serde_json::Value = serde_json::from_slice(&got[split + 1..]).unwrap();
    assert_eq!(
        (
            event["event"].as_str(),
            event["subject"].as_str(),
            event["to"].clone()
        ),
        (
            Some("incoming"),
            Some("note to self"),
            serde_json::json!(["alice@local.example"])
        )
    );
}

/// A DSN that comes back to a message's unique envelope sender is matched
/// to that message: its results become webhook events (`failed`,
/// `expanded`; `unrecognized` for what is not a DSN), a permanent failure
/// goes on the suppression list. DMARC and TLS reports sent to an account
/// are read and kept, and listed by `roost admin incomingreports`.
#[test]
fn dsns_and_reports_that_come_back_are_matched_and_kept() {
    use std::io::Write as _;
    let (relay, relay_lines) = smarthost();
    let (hook_port, calls) = webhook_receiver();
    let mx = free_port();
    let (sender, sub, imap) = sender_listening(
        &[&format!("smtp = [\"127.0.0.1:{mx}\"]")],
        &format!(
            "{NO_DNS}\
             [webhooks]\nretry_after = [1, 1, 1]\n\
             [transports.relay]\n{relay_lines}\
             [[queue.routes]]\ntransport = \"relay\"\n"
        ),
    );
    let data = sender.dir.path().join("data");
    admin_ok(
        &data,
        &[
            "domain",
            "set",
            "local.example",
            "--catchall-separator",
            "+",
        ],
    );
    assert_eq!(
        admin_ok(
            &data,
            &["account", "unique-mail-from", "alice@local.example", "true"]
        ),
        "{\n  \"name\": \"alice@local.example\",\n  \"unique_mail_from\": true\n}\n"
    );
    let url = format!("http://127.0.0.1:{hook_port}/hook");
    admin_ok(&data, &["webhook", "set", "alice@local.example", &url]);
    let next = || {
        calls
            .recv_timeout(Duration::from_secs(30))
            .expect("a webhook call")
            .1
    };

    let mut alice = alice_on(sub);
    let message = "From: alice@local.example\r\nSubject: tracked\r\n\
                   X-Roost-Extra-Campaign: c7\r\n\r\nHello\r\n";
    assert_eq!(
        alice.send_mail(
            "alice@local.example",
            &["x@elsewhere.example", "list@elsewhere.example"],
            message.as_bytes()
        ),
        "250 2.0.0 OK, queued for delivery"
    );
    // Taken by the smarthost: `delivered` for each recipient (the first
    // call answered 503, so made again), in any order.
    let mut delivered: Vec<(String, String, u64)> = (0..3)
        .map(|_| {
            let e = next();
            (
                e["event"].as_str().unwrap_or("-").to_string(),
                e["to"].as_str().unwrap_or("-").to_string(),
                e["queue_id"].as_u64().expect("a queue id"),
            )
        })
        .collect();
    delivered.sort();
    delivered.dedup();
    let queue_id = delivered[0].2;
    let to = |a: &str| ("delivered".to_string(), a.to_string(), queue_id);
    assert_eq!(
        delivered,
        [to("list@elsewhere.example"), to("x@elsewhere.example")]
    );
    // The smarthost saw the message's own envelope sender.
    let relay_imap = relay.port(IMAP);
    let return_path = eventually("the message at the smarthost", || {
        let mut c = Imap::connect(relay_imap);
        c.cmd("LOGIN alice@local.example relaysecret1");
        c.cmd("EXAMINE INBOX");
        let all = c.fetch_all();
        let body = String::from_utf8_lossy(&all.first()?.body).into_owned();
        body.lines()
            .find_map(|l| l.strip_prefix("Return-Path: <"))
            .map(|l| l.trim_end_matches('>').to_string())
    });
    let prefix = format!("alice+dsn.{queue_id}.");
    assert!(
        return_path.starts_with(&prefix) && return_path.ends_with("@local.example"),
        "{return_path}"
    );
    let mac = &return_path[prefix.len()..return_path.len() - "@local.example".len()];
    assert_eq!(mac.len(), 16, "{return_path}");

    // The DSN the next hop would send: one failure, one expansion.
    let dsn = format!(
        "From: MAILER-DAEMON@elsewhere.example\r\nTo: {return_path}\r\n\
         Subject: Delivery Status Notification\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"rpt\"\r\n\r\n\
         --rpt\r\nContent-Type: text/plain\r\n\r\nSome recipients failed.\r\n\
         --rpt\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.elsewhere.example\r\n\r\n\
         Final-Recipient: rfc822; x@elsewhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 no such user\r\nRemote-MTA: dns; mx2.elsewhere.example\r\n\r\n\
         Final-Recipient: rfc822; list@elsewhere.example\r\nAction: expanded\r\nStatus: 2.0.0\r\n\r\n\
         --rpt\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: tracked\r\n\r\n--rpt--\r\n"
    );
    let mut remote = Smtp::connect(mx);
    remote.cmd("EHLO mx.elsewhere.example");
    assert_eq!(
        remote.send_mail("", &[&return_path], dsn.as_bytes()),
        "250 2.0.0 OK, message delivered"
    );
    let summary = |e: &serde_json::Value| {
        format!(
            "{} queue_id={} to={} status={} reply={} host={} dsn={} extra={}",
            e["event"].as_str().unwrap_or("-"),
            e["queue_id"],
            e["to"].as_str().unwrap_or("-"),
            e["status"].as_str().unwrap_or("-"),
            e["reply"].as_str().unwrap_or("-"),
            e["host"].as_str().unwrap_or("-"),
            e["dsn"],
            e["extra"]
        )
    };
    // Calls are made side by side: in any order.
    let mut events = vec![summary(&next()), summary(&next())];
    events.sort();
    assert_eq!(
        events,
        [
            format!(
                "expanded queue_id={queue_id} to=list@elsewhere.example status=2.0.0 \
                 reply=2.0.0 host=- dsn=true extra={{\"campaign\":\"c7\"}}"
            ),
            format!(
                "failed queue_id={queue_id} to=x@elsewhere.example status=5.1.1 \
                 reply=550 5.1.1 no such user host=mx2.elsewhere.example dsn=true \
                 extra={{\"campaign\":\"c7\"}}"
            ),
        ]
    );
    // The failure is permanent: the address, and only it, is suppressed.
    let suppressed: serde_json::Value = serde_json::from_str(&admin_ok(
        &data,
        &["suppression", "list", "alice@local.example"],
    ))
    .unwrap();
    let addresses: Vec<&str> = suppressed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["x@elsewhere.example"]);
    // A DSN about an address the message never went to is not about it
    // (nothing suppressed); one from a sender that is not null is no DSN.
    let stranger = dsn
        .replace("x@elsewhere.example", "victim@elsewhere.example")
        .replace("list@elsewhere.example", "other@elsewhere.example");
    assert_eq!(
        remote.send_mail("", &[&return_path], stranger.as_bytes()),
        "250 2.0.0 OK, message delivered"
    );
    let e = next();
    assert_eq!(
        (e["event"].as_str(), e["reason"].as_str()),
        (
            Some("unrecognized"),
            Some("it names none of the message's recipients")
        )
    );
    assert_eq!(
        remote.send_mail("mailer@elsewhere.example", &[&return_path], dsn.as_bytes()),
        "250 2.0.0 OK, message delivered"
    );
    let e = next();
    assert_eq!(
        (e["event"].as_str(), e["reason"].as_str()),
        (
            Some("unrecognized"),
            Some("not a DSN: it comes from a reverse-path that is not null")
        )
    );
    let suppressed: serde_json::Value = serde_json::from_str(&admin_ok(
        &data,
        &["suppression", "list", "alice@local.example"],
    ))
    .unwrap();
    assert_eq!(suppressed.as_array().map(Vec::len), Some(1));
    // Mail to the address that is not a DSN: unrecognized, and still
    // delivered (nothing is lost).
    assert_eq!(
        remote.send_mail(
            "someone@elsewhere.example",
            &[&return_path],
            b"Subject: out of office\r\n\r\nAway.\r\n"
        ),
        "250 2.0.0 OK, message delivered"
    );
    let e = next();
    assert_eq!(
        (
            e["event"].as_str(),
            e["queue_id"].as_u64(),
            e["reason"].as_str()
        ),
        (
            Some("unrecognized"),
            Some(queue_id),
            Some("not a DSN: not a multipart/report")
        )
    );
    // A made-up MAC is no unique address: plain tagged mail, `incoming`.
    let forged = format!("alice+dsn.{queue_id}.0000000000000000@local.example");
    assert_eq!(
        remote.send_mail("", &[&forged], dsn.as_bytes()),
        "250 2.0.0 OK, message delivered"
    );
    let e = next();
    assert_eq!(
        (e["event"].as_str(), e["to"].clone()),
        (Some("incoming"), serde_json::json!([forged]))
    );

    // Reports: a gzipped DMARC aggregate report and a TLS report.
    let xml = "<?xml version=\"1.0\"?>\n<feedback><report_metadata>\
        <org_name>elsewhere.example</org_name><email>dmarc@elsewhere.example</email>\
        <report_id>r-77</report_id><date_range><begin>1700000000</begin>\
        <end>1700086400</end></date_range></report_metadata>\
        <policy_published><domain>local.example</domain><p>none</p></policy_published>\
        <record><row><source_ip>192.0.2.9</source_ip><count>4</count>\
        <policy_evaluated><disposition>none</disposition><dkim>pass</dkim>\
        <spf>fail</spf></policy_evaluated></row><identifiers>\
        <header_from>local.example</header_from></identifiers></record></feedback>";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(xml.as_bytes()).unwrap();
    let gz = base64_lines(&gz.finish().unwrap());
    let dmarc = format!(
        "From: dmarc@elsewhere.example\r\nTo: alice@local.example\r\n\
         Subject: Report Domain: local.example Submitter: elsewhere.example Report-ID: r-77\r\n\
         Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
         --m\r\nContent-Type: text/plain\r\n\r\nA DMARC report.\r\n\
         --m\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"elsewhere.example!local.example!1700000000!1700086400.xml.gz\"\r\n\r\n\
         {gz}--m--\r\n"
    );
    assert_eq!(
        remote.send_mail(
            "dmarc@elsewhere.example",
            &["alice@local.example"],
            dmarc.as_bytes()
        ),
        "250 2.0.0 OK, message delivered"
    );
    let json = r#"{"organization-name":"elsewhere.example","date-range":{"start-datetime":"2026-12-01T00:00:00Z","end-datetime":"2026-12-01T23:59:59Z"},"contact-info":"tls@elsewhere.example","report-id":"t-9","policies":[{"policy":{"policy-type":"sts","policy-domain":"local.example"},"summary":{"total-successful-session-count":12,"total-failure-session-count":3},"failure-details":[{"result-type":"certificate-expired","failed-session-count":3}]}]}"#;
    let tls = format!(
        "From: tls@elsewhere.example\r\nTo: alice@local.example\r\n\
         Subject: Report Domain: local.example Submitter: elsewhere.example Report-ID: <t-9>\r\n\
         TLS-Report-Domain: local.example\r\nTLS-Report-Submitter: elsewhere.example\r\n\
         Content-Type: multipart/report; report-type=tlsrpt; boundary=\"t\"\r\n\r\n\
         --t\r\nContent-Type: text/plain\r\n\r\nA TLS report.\r\n\
         --t\r\nContent-Type: application/tlsrpt+json\r\n\r\n{json}\r\n--t--\r\n"
    );
    assert_eq!(
        remote.send_mail(
            "tls@elsewhere.example",
            &["alice@local.example"],
            tls.as_bytes()
        ),
        "250 2.0.0 OK, message delivered"
    );
    let listed = admin_ok(&data, &["incomingreports"]);
    let listed: Vec<String> = listed
        .lines()
        .map(|l| match l.split_once(' ') {
            // The time each came in.
            Some((t, rest)) if t.ends_with('Z') => format!("TIME {rest}"),
            _ => l.to_string(),
        })
        .collect();
    assert_eq!(
        listed,
        [
            "TIME alice@local.example tls from=elsewhere.example id=t-9 \
             begin=2026-12-01T00:00:00Z end=2026-12-01T23:59:59Z policies=1",
            "  sts local.example successful=12 failed=3 certificate-expired=3",
            "TIME alice@local.example dmarc from=elsewhere.example id=r-77 \
             domain=local.example p=none begin=2023-11-14T22:13:20.000000Z \
             end=2023-11-15T22:13:20.000000Z records=1",
            "  192.0.2.9 count=4 disposition=none dkim=pass spf=fail header_from=local.example",
        ]
    );
    // The reports are mail too: both in the INBOX with the rest.
    assert_eq!(
        subjects_of(imap, "alice@local.example", "alicesecret1", "INBOX"),
        [
            "Delivery Status Notification",
            "Delivery Status Notification",
            "Delivery Status Notification",
            "out of office",
            "Delivery Status Notification",
            "Report Domain: local.example Submitter: elsewhere.example Report-ID: r-77",
            "Report Domain: local.example Submitter: elsewhere.example Report-ID: <t-9>",
        ]
    );
}

/// Base64 in lines of 76, each ending in CRLF.
fn base64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    b64.as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect()
}

/// A loopback port free for UDP and TCP both (as a DNS server needs), or
/// `None` when the UDP port the system chose is taken for TCP.
fn free_udp_and_tcp_port() -> Option<u16> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::net::TcpListener::bind(("127.0.0.1", port))
        .is_ok()
        .then_some(port)
}

/// Knot DNS from Debian on a free loopback port: a parent zone it signs
/// (DNSSEC, its default policy), and child zones delegated from it,
/// signed (with their DS records in the parent) or not. The parent's
/// keys are the trust anchor, so a signed child is proven secure through
/// its DS record and an unsigned one proven insecure (no DS), as under
/// the root.
struct Knot {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Knot {
    /// `children`: (name under `parent`, records, signed).
    fn start(parent: &str, children: &[(&str, &str, bool)]) -> Knot {
        assert!(
            std::path::Path::new("/usr/sbin/knotd").exists(),
            "knotd is missing; .ci/run installs it (apt-get install knot knot-dnsutils)"
        );
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let Some(port) = free_udp_and_tcp_port() else {
                continue;
            };
            let d = dir.path().display().to_string();
            std::fs::create_dir_all(dir.path().join("db")).unwrap();
            let zones: String = std::iter::once((parent, true))
                .chain(children.iter().map(|(name, _, signed)| (*name, *signed)))
                .map(|(name, signed)| {
                    let signing = if signed {
                        "    dnssec-signing: on\n"
                    } else {
                        ""
                    };
                    format!("  - domain: {name}\n{signing}")
                })
                .collect();
            std::fs::write(
                dir.path().join("knot.conf"),
                format!(
                    "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
                     database:\n    storage: \"{d}/db\"\n\
                     log:\n  - target: {d}/knot.log\n    any: info\n\
                     template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n\
                     zone:\n{zones}"
                ),
            )
            .unwrap();
            let zone_file = |zone: &str, records: &str| {
                std::fs::write(
                    dir.path().join(format!("{zone}.zone")),
                    format!(
                        "$ORIGIN {zone}.\n$TTL 300\n\
                         @ SOA ns.{zone}. admin.{zone}. 1 3600 600 86400 300\n\
                         @ NS ns\nns A 127.0.0.1\n{records}"
                    ),
                )
                .unwrap();
            };
            // The parent delegates each child, with glue.
            let delegations: String = children
                .iter()
                .map(|(name, _, _)| format!("{name}. NS ns.{name}.\nns.{name}. A 127.0.0.1\n"))
                .collect();
            zone_file(parent, &delegations);
            for (name, records, _) in children {
                zone_file(name, records);
            }
            let child = Command::new("/usr/sbin/knotd")
                .arg("-c")
                .arg(dir.path().join("knot.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("knotd");
            let mut knot = Knot { child, port, dir };
            if knot.answers(&["+short", "DNSKEY", parent]) {
                knot.publish_ds(parent, children);
                return knot;
            }
            let _ = knot.child.kill();
        }
        panic!("knotd did not start on any of 10 ports");
    }

    /// Whether a question gets an answer within 10 s (and knotd runs).
    fn answers(&mut self, question: &[&str]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.dig(question).trim().is_empty() {
                return true;
            }
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Puts the signed children's DS records (SHA-256) into the parent
    /// zone, reloads it, and waits until they are served.
    fn publish_ds(&mut self, parent: &str, children: &[(&str, &str, bool)]) {
        let conf = self.dir.path().join("knot.conf");
        let mut ds = String::new();
        for (name, _, signed) in children {
            if !signed {
                continue;
            }
            assert!(
                self.answers(&["+short", "DNSKEY", name]),
                "{name} is not signed"
            );
            let out = Command::new("keymgr")
                .arg("-c")
                .arg(&conf)
                .args([name, "ds"])
                .output()
                .expect("keymgr");
            let text = String::from_utf8_lossy(&out.stdout);
            ds.extend(
                text.lines()
                    .filter(|l| l.contains(" 13 2 "))
                    .map(|l| format!("{l}\n")),
            );
        }
        let file = self.dir.path().join(format!("{parent}.zone"));
        let zone = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, zone + &ds).unwrap();
        let reload = Command::new("knotc")
            .arg("-c")
            .arg(&conf)
            .args(["zone-reload", parent])
            .output()
            .expect("knotc");
        assert!(reload.status.success(), "{reload:?}");
        for (name, _, signed) in children {
            if *signed {
                assert!(self.answers(&["+short", "DS", name]), "no DS for {name}");
            }
        }
    }

    /// kdig's answer to `args`, asked of this server.
    fn dig(&self, args: &[&str]) -> String {
        let out = Command::new("kdig")
            .arg("@127.0.0.1")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("kdig (apt-get install knot-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A trust anchor file for the zone: its DNSKEY records, all of them
    /// (a zone anchored below the root needs every key anchored: nothing
    /// above it vouches for the rest).
    fn trust_anchor(&self, zone: &str) -> std::path::PathBuf {
        let keys = self.dig(&["+noall", "+answer", "DNSKEY", zone]);
        let ksk: String = keys
            .lines()
            .filter(|l| l.contains("DNSKEY"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(ksk.lines().count() >= 2, "no KSK and ZSK in {keys}");
        let path = self.dir.path().join("anchor.keys");
        std::fs::write(&path, ksk).unwrap();
        path
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Submits a message as alice over STARTTLS (certificate not checked)
/// with python's smtplib, MAIL carrying REQUIRETLS; what it printed.
fn submit_requiretls(port: u16, to: &str, subject: &str) -> String {
    let script = "import smtplib, ssl, sys\n\
        port, to, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n\
        ctx = ssl.create_default_context()\n\
        ctx.check_hostname = False\n\
        ctx.verify_mode = ssl.CERT_NONE\n\
        s = smtplib.SMTP('127.0.0.1', port, timeout=30)\n\
        s.ehlo('client.example.org')\n\
        s.starttls(context=ctx)\n\
        s.ehlo('client.example.org')\n\
        s.login('alice@local.example', 'alicesecret1')\n\
        msg = 'From: alice@local.example\\r\\nSubject: ' + subject + '\\r\\n\\r\\nHello\\r\\n'\n\
        print('sent', s.sendmail('alice@local.example', [to], msg, mail_options=['REQUIRETLS']))\n\
        s.quit()\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([&port.to_string(), to, subject])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SHA-256 of a PEM certificate's SubjectPublicKeyInfo, in hex (a
/// TLSA `3 1 1` record's data), or of its whole DER (`2 0 1`).
fn tlsa_digest(pem: &str, whole: bool) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let der = if whole {
        let text = std::fs::read_to_string(pem).unwrap();
        let b64: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    } else {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-pubkey", "-in", pem])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// DANE (RFC 7672) between two roost servers, over zones Knot serves: a
/// signed parent (its keys the trust anchor), a signed child proven
/// through its DS record, an unsigned child proven insecure (its TLSA
/// record, matching nothing, does not count: delivered opportunistically).
/// The sender validates the answers itself, and delivers to an MX host
/// whose DANE-EE(3) or DANE-TA(2) record
/// matches its certificate; to one whose only record is PKIX-EE
/// (unusable), over TLS without checking; never to one whose record
/// matches nothing, nor to one that offers no STARTTLS (the messages
/// wait, with the reason). REQUIRETLS mail goes to the authenticated
/// host and fails, with a DSN, where DANE checks nothing. The TLS report
/// for a DANE host names policy type `tlsa` and its records.
#[test]
fn dane_authenticates_mx_hosts_by_their_tlsa_records() {
    let certs = tempfile::tempdir().unwrap();
    let hosts = [
        "mx-ee.dane.test",
        "mx-ta.dane.test",
        "mx-bad.dane.test",
        "mx-pkix.dane.test",
    ];
    let (cert, key) = ca_signed(certs.path(), "mx", &hosts);
    // The chain the receiver sends: its certificate, then the CA (RFC
    // 7672 3.1.2: a DANE-TA anchor is sent by the server).
    let ca = certs.path().join("ca.pem").display().to_string();
    let chain = certs.path().join("chain.pem");
    std::fs::write(
        &chain,
        std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&ca).unwrap(),
    )
    .unwrap();
    let ee = tlsa_digest(&cert, false);
    let ta = tlsa_digest(&ca, true);
    let dane_zone = format!(
        "ee MX 10 mx-ee\nta MX 10 mx-ta\nbad MX 10 mx-bad\npkix MX 10 mx-pkix\n\
             mx-ee A 127.0.0.1\nmx-ta A 127.0.0.1\nmx-bad A 127.0.0.1\nmx-pkix A 127.0.0.1\n\
             _25._tcp.mx-ee TLSA 3 1 1 {ee}\n\
             _25._tcp.mx-ta TLSA 2 0 1 {ta}\n\
             _25._tcp.mx-bad TLSA 3 1 1 {}\n\
             _25._tcp.mx-pkix TLSA 1 1 1 {ee}\n\
             plain MX 10 mx-plain\nmx-plain A 127.0.0.2\n_25._tcp.mx-plain TLSA 3 1 1 {ee}\n\
             _smtp._tls.mx-ee TXT \"v=TLSRPTv1; rua=mailto:tls@ee.dane.test\"\n",
        "00".repeat(32)
    );
    // An unsigned zone: its TLSA record (matching nothing) is not proven,
    // so it does not count (RFC 7672 2.2.1, 2.2.2).
    let unsigned_zone = format!(
        "@ MX 10 mx\nmx A 127.0.0.1\n_25._tcp.mx TLSA 3 1 1 {}\n",
        "00".repeat(32)
    );
    let knot = Knot::start(
        "test",
        &[
            ("dane.test", &dane_zone, true),
            ("insecure.test", &unsigned_zone, false),
        ],
    );
    let anchor = knot.trust_anchor("test");

    let offset = fresh_offset();
    let (b_smtp, b_imap) = (SMTP + offset, IMAP + offset);
    let tls = format!("[tls]\ncert = \"{}\"\nkey = \"{key}\"\n", chain.display());
    let receiver = serve_with_dns(&tls, b_smtp, b_imap, NO_DNS);
    let b_data = receiver.dir.path().join("data");
    for domain in [
        "ee.dane.test",
        "ta.dane.test",
        "bad.dane.test",
        "pkix.dane.test",
        "insecure.test",
    ] {
        admin_ok(&b_data, &["domain", "add", domain]);
    }
    for account in ["bob@ee.dane.test", "tls@ee.dane.test"] {
        admin_ok(
            &b_data,
            &["account", "add", account, "--password", "remotesecret1"],
        );
    }
    for other in [
        "bob@ta.dane.test",
        "bob@bad.dane.test",
        "bob@pkix.dane.test",
        "bob@insecure.test",
    ] {
        admin_ok(
            &b_data,
            &["account", "address-add", "bob@ee.dane.test", other],
        );
    }
    // A receiver without TLS on 127.0.0.2: DANE says TLS, it offers none.
    let plain_imap = IMAP + fresh_offset();
    let plain = serve_config(
        &format!(
            "hostname = \"plain.test\"\n\
             [listen]\nsmtp = [\"127.0.0.2:{b_smtp}\"]\nimap = [\"127.0.0.1:{plain_imap}\"]\n{NO_DNS}"
        ),
        plain_imap,
    );
    admin_ok(
        &plain.dir.path().join("data"),
        &["domain", "add", "plain.dane.test"],
    );
    // The sender takes submissions over STARTTLS too (REQUIRETLS).
    let (a_cert, a_key) = ca_signed(certs.path(), "a", &["a.test"]);
    let (sender, sub, a_imap) = sender_with(&format!(
        "[dns]\nservers = [\"127.0.0.1:{}\"]\ndnssec = true\ntrust_anchor = \"{}\"\n\
         [queue]\nremote_port = {b_smtp}\n[reports]\ntls_interval = 2\n\
         [tls]\ncert = \"{a_cert}\"\nkey = \"{a_key}\"\n",
        knot.port,
        anchor.display()
    ));
    let data = sender.dir.path().join("data");
    let mut alice = alice_on(sub);
    for domain in ["ee", "ta", "bad", "pkix", "plain", "insecure"] {
        let m = format!("From: alice@local.example\r\nSubject: to {domain}\r\n\r\nHello\r\n");
        let to = match domain {
            "insecure" => "bob@insecure.test".to_string(),
            _ => format!("bob@{domain}.dane.test"),
        };
        assert_eq!(
            alice.send_mail("alice@local.example", &[&to], m.as_bytes()),
            "250 2.0.0 OK, queued for delivery"
        );
    }
    eventually("four messages delivered", || {
        let mut got = subjects_of(b_imap, "bob@ee.dane.test", "remotesecret1", "INBOX");
        got.sort();
        (got == ["to ee", "to insecure", "to pkix", "to ta"]).then_some(())
    });
    // Each over TLS.
    let mut i = Imap::connect(b_imap);
    i.cmd("LOGIN bob@ee.dane.test remotesecret1");
    i.cmd("EXAMINE INBOX");
    for n in 1..=4 {
        let received = i
            .cmd(&format!("FETCH {n} BODY.PEEK[HEADER.FIELDS (RECEIVED)]"))
            .replace("\r\n\t", " ");
        assert!(received.contains(" with ESMTPS "), "{received}");
    }
    // The one whose record matches nothing waits, with the reason.
    // The queue's line for a message tried once, its id and next attempt
    // masked.
    let kept = |domain: &str| {
        eventually(&format!("the message for {domain} kept"), || {
            let list = admin_ok(&data, &["queue", "list", "--to-domain", domain]);
            list.contains(" attempts=1 ").then(|| {
                list.split_whitespace()
                    .skip(1)
                    .map(|w| if w.starts_with("next=") { "next=T" } else { w })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
    };
    assert_eq!(
        kept("bad.dane.test"),
        "bad.dane.test from=<alice@local.example> to=bob@bad.dane.test attempts=1 next=T \
         last=\"mx-bad.dane.test [127.0.0.1]: TLS handshake: unexpected error: DANE: no TLSA \
         record matches the server's certificate\""
    );
    // The one that offers no STARTTLS gets nothing in plain text.
    assert_eq!(
        kept("plain.dane.test"),
        "plain.dane.test from=<alice@local.example> to=bob@plain.dane.test attempts=1 next=T \
         last=\"mx-plain.dane.test [127.0.0.2]: STARTTLS is not offered (DANE requires TLS)\""
    );
    // The TLS report goes to the MX host's own TLSRPT address.
    let report = tls_report_json_of(b_imap, "tls@ee.dane.test", "mx-ee.dane.test");
    assert_eq!(
        report["policies"],
        serde_json::json!([{
            "policy": {
                "policy-type": "tlsa",
                "policy-string": [format!("3 1 1 {}", ee.to_uppercase())],
                "policy-domain": "mx-ee.dane.test",
            },
            "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0},
            "failure-details": [],
        }])
    );
    // REQUIRETLS (RFC 8689 4.2.1): to a DANE-authenticated host it goes
    // (with REQUIRETLS on MAIL); to one whose TLSA records are unusable
    // (TLS, nothing checked) it does not, and the sender gets a DSN.
    for (to, subject) in [
        ("bob@ee.dane.test", "requiretls to ee"),
        ("bob@pkix.dane.test", "requiretls to pkix"),
    ] {
        assert_eq!(submit_requiretls(sub, to, subject), "sent {}\n");
    }
    eventually("the REQUIRETLS message over DANE", || {
        subjects_of(b_imap, "bob@ee.dane.test", "remotesecret1", "INBOX")
            .contains(&"requiretls to ee".to_string())
            .then_some(())
    });
    eventually("the REQUIRETLS failure's DSN", || {
        (subjects_of(a_imap, "alice@local.example", "alicesecret1", "INBOX")
            == ["Undelivered mail returned to sender"])
        .then_some(())
    });
    let mut c = Imap::connect(a_imap);
    c.cmd("LOGIN alice@local.example alicesecret1");
    c.cmd("EXAMINE INBOX");
    let dsn = c.cmd("FETCH 1 BODY.PEEK[TEXT]");
    assert!(
        dsn.contains("Final-Recipient: rfc822; bob@pkix.dane.test\r\n")
            && dsn.contains(
                "Diagnostic-Code: smtp; 550 5.7.30 REQUIRETLS needs an MX and certificate \
                 validated by MTA-STS or DANE, and the destination has neither an enforced \
                 MTA-STS policy nor DANE\r\n"
            ),
        "{dsn}"
    );
    assert!(
        !subjects_of(b_imap, "bob@ee.dane.test", "remotesecret1", "INBOX")
            .contains(&"requiretls to pkix".to_string())
    );
}
