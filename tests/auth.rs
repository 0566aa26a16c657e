//! Authentication end to end over real sockets: every SASL mechanism over
//! IMAP AUTHENTICATE and SMTP AUTH, good and bad credentials, NFC and NFD
//! usernames, disabled logins with their message, and SCRAM -PLUS with
//! channel binding over TLS.
//!
//! The SCRAM client here is written from RFC 5802 with the hash crates
//! directly, not with roost's own SCRAM code, so the two check each
//! other. Server lines are compared whole; where they carry random parts
//! (nonces, salts, signatures), the client checks those parts and the
//! transcript shows a placeholder.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use hmac::{Mac, SimpleHmac};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;

const TAG: &str = "a1";

// --- a client that speaks either protocol ---------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Imap,
    Smtp,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

struct Client {
    io: BufReader<Box<dyn Stream>>,
    proto: Proto,
    /// RFC 9266 tls-exporter data, on TLS 1.3 connections.
    exporter: Option<Vec<u8>>,
    /// RFC 5929 tls-server-end-point data: SHA-256 of the server's
    /// certificate (localserve's is signed with ECDSA-SHA256).
    end_point: Option<Vec<u8>>,
    /// The last line sent, for failure messages.
    last: String,
}

impl Client {
    fn plain(port: u16, proto: Proto) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(WAIT)).unwrap();
        Client::greeted(Box::new(s), proto, None)
    }

    /// From another loopback address: failures are counted per address.
    fn plain_from(from: Ipv4Addr, port: u16, proto: Proto) -> Client {
        Client::greeted(Box::new(connect_from(from, port)), proto, None)
    }

    /// Implicit TLS, verified against localserve's certificate.
    fn tls(server: &Server, port: u16, proto: Proto) -> Client {
        let pem = std::fs::read(server.dir.join("localserve-cert.pem")).expect("cert");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.expect("pem")).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).expect("handshake");
        }
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let exporter = conn
            .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
            .expect("exporter")
            .to_vec();
        let end_point = conn.peer_certificates().and_then(|c| c.first()).map(|c| {
            use sha2::Digest;
            sha2::Sha256::digest(c).to_vec()
        });
        let stream = rustls::StreamOwned::new(conn, tcp);
        let mut c = Client::greeted(Box::new(stream), proto, Some(exporter));
        c.end_point = end_point;
        c
    }

    fn greeted(s: Box<dyn Stream>, proto: Proto, exporter: Option<Vec<u8>>) -> Client {
        let mut c = Client {
            io: BufReader::new(s),
            proto,
            exporter,
            end_point: None,
            last: String::new(),
        };
        let greeting = c.line();
        assert!(
            greeting.starts_with(if proto == Proto::Imap { "* OK" } else { "220 " }),
            "{greeting}"
        );
        if proto == Proto::Smtp {
            c.send("EHLO client.example.org");
            while c.line().starts_with("250-") {}
        }
        c
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let read = self.io.read_line(&mut line);
        if read.unwrap_or_else(|e| panic!("read after {:?}: {e}", self.last)) == 0 {
            return "<closed>".into();
        }
        line.trim_end_matches(['\r', '\n']).to_string()
    }

    fn send(&mut self, line: &str) {
        self.last = line.to_string();
        let s = self.io.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        s.flush().expect("flush");
    }

    /// Starts an exchange; returns the server's first line.
    fn begin(&mut self, mechanism: &str, initial: Option<&[u8]>) -> String {
        let ir = match initial {
            Some([]) => " =".to_string(),
            Some(b) => format!(" {}", B64.encode(b)),
            None => String::new(),
        };
        match self.proto {
            Proto::Imap => self.send(&format!("{TAG} AUTHENTICATE {mechanism}{ir}")),
            Proto::Smtp => self.send(&format!("AUTH {mechanism}{ir}")),
        }
        self.line()
    }

    /// The decoded challenge in a server line, if it is one.
    fn challenge(&self, line: &str) -> Option<Vec<u8>> {
        let rest = match self.proto {
            Proto::Imap => line.strip_prefix("+ ").or((line == "+").then_some(""))?,
            Proto::Smtp => line
                .strip_prefix("334 ")
                .or((line == "334").then_some(""))?,
        };
        Some(B64.decode(rest).expect("challenge is base64"))
    }

    fn answer(&mut self, data: &[u8]) -> String {
        self.send(&B64.encode(data));
        self.line()
    }

    /// The line that ends a successful login, for this protocol.
    fn logged_in(&self) -> String {
        match self.proto {
            Proto::Imap => format!("{TAG} OK [CAPABILITY {IMAP_CAPS}] Logged in"),
            Proto::Smtp => "235 2.7.0 Authentication successful".into(),
        }
    }

    fn invalid(&self) -> String {
        match self.proto {
            Proto::Imap => format!("{TAG} NO [AUTHENTICATIONFAILED] Invalid credentials"),
            Proto::Smtp => "535 5.7.8 Authentication credentials invalid".into(),
        }
    }
}

// --- mechanisms, client side ----------------------------------------------

/// How one client run of a mechanism went: the server's lines, with the
/// random parts the client checked shown as placeholders.
fn plain(c: &mut Client, user: &str, password: &str, ir: bool) -> Vec<String> {
    let msg = format!("\0{user}\0{password}").into_bytes();
    if ir {
        return vec![c.begin("PLAIN", Some(&msg))];
    }
    let first = c.begin("PLAIN", None);
    assert_eq!(c.challenge(&first), Some(vec![]), "{first}");
    vec![first, c.answer(&msg)]
}

fn login(c: &mut Client, user: &str, password: &str) -> Vec<String> {
    let first = c.begin("LOGIN", None);
    let second = c.answer(user.as_bytes());
    vec![first, second, c.answer(password.as_bytes())]
}

fn cram_md5(c: &mut Client, user: &str, password: &str) -> Vec<String> {
    let first = c.begin("CRAM-MD5", None);
    let challenge = c.challenge(&first).expect("challenge");
    let text = String::from_utf8(challenge.clone()).expect("ascii");
    // RFC 2195 2: a msg-id; roost's is 36 hex digits at its name.
    assert!(
        text.starts_with('<')
            && text.ends_with("@localhost>")
            && text[1..37].bytes().all(|b| b.is_ascii_hexdigit()),
        "{text}"
    );
    // HMAC-MD5 through roost's own code: python's smtplib and imaplib
    // (tests/clients.rs) check it independently.
    let digest = roost_protocols::sasl::CramMd5Secret::derive(password).hmac(&challenge);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let placeholder = first.replace(&B64.encode(&challenge), "<challenge>");
    vec![placeholder, c.answer(format!("{user} {hex}").as_bytes())]
}

#[derive(Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => {
                let mut m = SimpleHmac::<sha1::Sha1>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha256 => {
                let mut m = SimpleHmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn h(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    fn hi(self, password: &str, salt: &[u8], i: u32) -> Vec<u8> {
        match self {
            Hash::Sha1 => {
                let mut out = vec![0; 20];
                pbkdf2::pbkdf2::<SimpleHmac<sha1::Sha1>>(password.as_bytes(), salt, i, &mut out)
                    .unwrap();
                out
            }
            Hash::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2::<SimpleHmac<sha2::Sha256>>(password.as_bytes(), salt, i, &mut out)
                    .unwrap();
                out
            }
        }
    }
}

/// Which SCRAM a client runs: `gs2` is the GS2 header to send, `cb_data`
/// the channel-binding data to put after it.
struct Scram<'a> {
    mechanism: &'a str,
    hash: Hash,
    gs2: &'a str,
    cb_data: &'a [u8],
}

/// A SCRAM client run (RFC 5802 3 and 7).
fn scram(c: &mut Client, how: &Scram, user: &str, password: &str, ir: bool) -> Vec<String> {
    let Scram {
        mechanism,
        hash,
        gs2,
        cb_data,
    } = *how;
    let cnonce = "rOprNGfwEbeRWgbNEkqO";
    let bare = format!(
        "n={},r={cnonce}",
        user.replace('=', "=3D").replace(',', "=2C")
    );
    let first = format!("{gs2}{bare}");
    let mut lines = Vec::new();
    let mut reply = if ir {
        c.begin(mechanism, Some(first.as_bytes()))
    } else {
        let l = c.begin(mechanism, None);
        assert_eq!(c.challenge(&l), Some(vec![]), "{l}");
        lines.push(l);
        c.answer(first.as_bytes())
    };
    let Some(server_first) = c.challenge(&reply) else {
        lines.push(reply);
        return lines;
    };
    let server_first = String::from_utf8(server_first).expect("utf-8");
    let mut attrs = server_first.split(',');
    let nonce = attrs
        .next()
        .unwrap()
        .strip_prefix("r=")
        .unwrap()
        .to_string();
    let salt = B64
        .decode(attrs.next().unwrap().strip_prefix("s=").unwrap())
        .unwrap();
    let iterations: u32 = attrs
        .next()
        .unwrap()
        .strip_prefix("i=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(nonce.starts_with(cnonce) && nonce.len() > cnonce.len() + 16);
    assert!(salt.len() >= 16 && iterations >= 4096, "{server_first}");
    lines.push(reply.replace(
        &B64.encode(&server_first),
        &format!("<r=client+server,s=salt,i={iterations}>"),
    ));
    let mut cbind = gs2.as_bytes().to_vec();
    cbind.extend_from_slice(cb_data);
    let without_proof = format!("c={},r={nonce}", B64.encode(&cbind));
    let auth = format!("{bare},{server_first},{without_proof}");
    let salted = hash.hi(password, &salt, iterations);
    let client_key = hash.hmac(&salted, b"Client Key");
    let stored = hash.h(&client_key);
    let sig = hash.hmac(&stored, auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(k, s)| k ^ s).collect();
    reply = c.answer(format!("{without_proof},p={}", B64.encode(&proof)).as_bytes());
    let Some(server_final) = c.challenge(&reply) else {
        lines.push(reply);
        return lines;
    };
    // The server proves it knows the password too.
    let server_key = hash.hmac(&salted, b"Server Key");
    let expected = format!("v={}", B64.encode(hash.hmac(&server_key, auth.as_bytes())));
    assert_eq!(String::from_utf8_lossy(&server_final), expected);
    lines.push(reply.replace(&B64.encode(&server_final), "<v=verified>"));
    lines.push(c.answer(b""));
    lines
}

fn scram_plain(
    c: &mut Client,
    mech: &str,
    hash: Hash,
    user: &str,
    pw: &str,
    ir: bool,
) -> Vec<String> {
    let how = Scram {
        mechanism: mech,
        hash,
        gs2: "n,,",
        cb_data: &[],
    };
    scram(c, &how, user, pw, ir)
}

// --- expectations ---------------------------------------------------------

/// The continuation line carrying `text` (already in its shown form).
fn cont(proto: Proto, text: &str) -> String {
    match (proto, text) {
        (Proto::Imap, "") => "+ ".into(),
        (Proto::Imap, t) => format!("+ {t}"),
        (Proto::Smtp, "") => "334 ".into(),
        (Proto::Smtp, t) => format!("334 {t}"),
    }
}

fn scram_lines(proto: Proto, end: &str) -> Vec<String> {
    vec![
        cont(proto, "<r=client+server,s=salt,i=4096>"),
        cont(proto, "<v=verified>"),
        end.to_string(),
    ]
}

/// Every mechanism with the right password and a wrong one, each on a
/// fresh connection, with and without an initial response. Each
/// connection comes from a loopback address of its own, so the failures
/// do not add up to a throttled source.
fn every_mechanism(server: &Server, port: u16, proto: Proto) {
    let next = std::cell::Cell::new(0u8);
    let fresh = || {
        next.set(next.get() + 1);
        Client::plain_from(Ipv4Addr::new(127, 0, 1, next.get()), port, proto)
    };
    for password in [PASSWORD, "wrong-password"] {
        let probe = fresh();
        let end = if password == PASSWORD {
            probe.logged_in()
        } else {
            probe.invalid()
        };
        for ir in [true, false] {
            let mut c = fresh();
            let mut want = if ir { vec![] } else { vec![cont(proto, "")] };
            want.push(end.clone());
            assert_eq!(plain(&mut c, ACCOUNT, password, ir), want, "PLAIN ir={ir}");
        }
        let mut c = fresh();
        assert_eq!(
            login(&mut c, ACCOUNT, password),
            [
                cont(proto, "VXNlcm5hbWU6"),
                cont(proto, "UGFzc3dvcmQ6"),
                end.clone()
            ],
            "LOGIN"
        );
        let mut c = fresh();
        assert_eq!(
            cram_md5(&mut c, ACCOUNT, password),
            [cont(proto, "<challenge>"), end.clone()],
            "CRAM-MD5"
        );
        for (mech, hash) in [("SCRAM-SHA-1", Hash::Sha1), ("SCRAM-SHA-256", Hash::Sha256)] {
            for ir in [true, false] {
                let mut c = fresh();
                let mut want = if ir { vec![] } else { vec![cont(proto, "")] };
                if password == PASSWORD {
                    want.extend(scram_lines(proto, &end));
                } else {
                    // A wrong proof ends the exchange at the client's
                    // final message.
                    want.push(cont(proto, "<r=client+server,s=salt,i=4096>"));
                    want.push(end.clone());
                }
                assert_eq!(
                    scram_plain(&mut c, mech, hash, ACCOUNT, password, ir),
                    want,
                    "{mech} ir={ir}"
                );
            }
        }
    }
    // An unknown user looks like a wrong password, SCRAM included: a
    // salt comes back, and the proof fails.
    let mut c = fresh();
    assert_eq!(
        scram_plain(
            &mut c,
            "SCRAM-SHA-256",
            Hash::Sha256,
            "nobody@localhost",
            "x",
            true
        ),
        [cont(proto, "<r=client+server,s=salt,i=4096>"), c.invalid()]
    );
    server.assert_consistent(ACCOUNT);
}

#[test]
fn imap_every_mechanism_good_and_bad() {
    let server = Server::start();
    every_mechanism(&server, server.port(IMAP), Proto::Imap);
}

#[test]
fn submission_every_mechanism_good_and_bad() {
    let server = Server::start();
    every_mechanism(&server, server.port(SUBMISSION), Proto::Smtp);
}

/// Framing errors, cancels and unknown mechanisms: a protocol error to
/// the client, and the session goes on.
#[test]
fn malformed_exchanges_are_protocol_errors() {
    let server = Server::start();
    let mut c = Client::plain(server.port(IMAP), Proto::Imap);
    assert_eq!(c.begin("PLAIN", None), "+ ");
    c.send("*");
    assert_eq!(
        c.line(),
        "a1 BAD AUTHENTICATE failed: authentication cancelled"
    );
    assert_eq!(c.begin("LOGIN", None), "+ VXNlcm5hbWU6");
    c.send("not base64!");
    assert_eq!(c.line(), "a1 BAD AUTHENTICATE failed: invalid base64");
    c.send("a1 AUTHENTICATE PLAIN dGlt=");
    assert_eq!(c.line(), "a1 BAD AUTHENTICATE failed: invalid base64");
    assert_eq!(
        c.begin("DIGEST-MD5", None),
        "a1 NO [CANNOT] Unsupported authentication mechanism"
    );
    // A SCRAM message that breaks the grammar is a failed login.
    assert_eq!(
        c.begin("SCRAM-SHA-256", Some(b"x,,n=roost@localhost,r=abc")),
        "a1 NO [AUTHENTICATIONFAILED] Invalid credentials"
    );
    assert_eq!(
        c.begin("PLAIN", Some(format!("\0{ACCOUNT}\0{PASSWORD}").as_bytes())),
        c.logged_in()
    );

    let mut s = Client::plain(server.port(SUBMISSION), Proto::Smtp);
    assert_eq!(s.begin("LOGIN", None), "334 VXNlcm5hbWU6");
    s.send("*");
    assert_eq!(s.line(), "501 5.0.0 Authentication canceled");
    assert_eq!(
        s.begin("CRAM-MD5", Some(b"x")),
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(s.begin("PLAIN", None), "334 ");
    s.send("@@@");
    assert_eq!(s.line(), "501 5.5.2 Invalid base64 data");
    assert_eq!(
        s.begin("GSSAPI", None),
        "504 5.5.4 Unrecognized authentication type"
    );
    assert_eq!(
        s.begin("PLAIN", Some(format!("\0{ACCOUNT}\0{PASSWORD}").as_bytes())),
        s.logged_in()
    );
}

/// RFC 8265: a username typed in NFD finds the account created in NFC.
#[test]
fn nfd_usernames_find_nfc_accounts() {
    let server = Server::start();
    let nfc = "zo\u{eb}@localhost";
    let nfd = "zoe\u{308}@localhost";
    server.admin_ok(&["account", "add", nfc, "--password", "umlaut-secret"]);
    for user in [nfc, nfd] {
        for proto in [Proto::Imap, Proto::Smtp] {
            let port = server.port(if proto == Proto::Imap {
                IMAP
            } else {
                SUBMISSION
            });
            let mut c = Client::plain(port, proto);
            assert_eq!(plain(&mut c, user, "umlaut-secret", true), [c.logged_in()]);
            let mut c = Client::plain(port, proto);
            let end = c.logged_in();
            assert_eq!(
                scram_plain(
                    &mut c,
                    "SCRAM-SHA-256",
                    Hash::Sha256,
                    user,
                    "umlaut-secret",
                    true
                ),
                scram_lines(proto, &end)
            );
        }
    }
}

/// An administrator disables an account's logins with a message: every
/// mechanism shows it, mail to the account is still delivered, and
/// enabling it again lets the same password in.
#[test]
fn disabled_logins_show_their_message_and_mail_still_arrives() {
    let server = Server::start();
    let why = "Suspended after a phishing report; call the help desk";
    server.admin_ok(&["account", "disable", ACCOUNT, "--message", why]);
    let imap_no = format!("{TAG} NO [CONTACTADMIN] Login disabled: {why}");
    let smtp_no = format!("535 5.7.8 Login disabled: {why}");

    let mut c = Client::plain(server.port(IMAP), Proto::Imap);
    c.send(&format!("{TAG} LOGIN {ACCOUNT} {PASSWORD}"));
    assert_eq!(c.line(), imap_no);
    let mut c = Client::plain(server.port(IMAP), Proto::Imap);
    assert_eq!(
        scram_plain(
            &mut c,
            "SCRAM-SHA-256",
            Hash::Sha256,
            ACCOUNT,
            PASSWORD,
            true
        ),
        [
            cont(Proto::Imap, "<r=client+server,s=salt,i=4096>"),
            cont(Proto::Imap, "<v=verified>"),
            imap_no.clone()
        ]
    );
    let mut c = Client::plain(server.port(SUBMISSION), Proto::Smtp);
    assert_eq!(cram_md5(&mut c, ACCOUNT, PASSWORD)[1], smtp_no);
    // A wrong password still says only that.
    let mut c = Client::plain(server.port(SUBMISSION), Proto::Smtp);
    assert_eq!(plain(&mut c, ACCOUNT, "wrong", true), [c.invalid()]);

    let mut mx = Smtp::connect(server.port(SMTP));
    mx.cmd("EHLO sender.example");
    assert_eq!(
        mx.send_mail(
            "a@sender.example",
            &[ACCOUNT],
            b"Subject: still here\r\n\r\nhi\r\n"
        ),
        "250 2.0.0 OK, message delivered"
    );

    // The web pages say it too.
    let web = http_get_events(server.port(HTTP), ACCOUNT, PASSWORD);
    assert_eq!(
        web,
        format!("HTTP/1.1 403 Forbidden|Login disabled: {why}\n")
    );

    server.admin_ok(&["account", "enable", ACCOUNT]);
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("STATUS INBOX (MESSAGES)");
    assert_eq!(
        r,
        "* STATUS INBOX (MESSAGES 1)\r\na2 OK STATUS completed\r\n"
    );

    // The message is one reply line of text.
    let out = server.admin(&["account", "disable", ACCOUNT, "--message", "two\nlines"]);
    assert!(!out.status.success());
}

/// SCRAM-SHA-256-PLUS over implicit TLS 1.3 with `tls-exporter` (RFC
/// 9266) and `tls-server-end-point` (RFC 5929): the right binding data
/// logs in; other data, a binding type the
/// connection lacks, and a "y" flag where -PLUS is offered all fail.
#[test]
fn scram_plus_binds_to_the_tls_connection() {
    let server = Server::start();
    for (port, proto) in [(IMAPS, Proto::Imap), (SUBMISSIONS, Proto::Smtp)] {
        let port = server.port(port);
        let mut c = Client::tls(&server, port, proto);
        let cb = c.exporter.clone().expect("TLS 1.3");
        let end = c.logged_in();
        assert_eq!(
            plus(
                &mut c,
                "SCRAM-SHA-256-PLUS",
                Hash::Sha256,
                "p=tls-exporter,,",
                &cb,
                true
            ),
            scram_lines(proto, &end)
        );
        let mut c = Client::tls(&server, port, proto);
        let end = c.logged_in();
        let own = cb_of(&c);
        assert_eq!(
            plus(
                &mut c,
                "SCRAM-SHA-1-PLUS",
                Hash::Sha1,
                "p=tls-exporter,,",
                &own,
                false
            ),
            [vec![cont(proto, "")], scram_lines(proto, &end)].concat()
        );
        // RFC 5929 tls-server-end-point, the binding older clients use.
        let mut c = Client::tls(&server, port, proto);
        let end = c.logged_in();
        let end_point = c.end_point.clone().expect("server certificate");
        assert_eq!(
            plus(
                &mut c,
                "SCRAM-SHA-256-PLUS",
                Hash::Sha256,
                "p=tls-server-end-point,,",
                &end_point,
                true
            ),
            scram_lines(proto, &end)
        );
        // Another connection's exporter value.
        let mut c = Client::tls(&server, port, proto);
        let invalid = c.invalid();
        assert_eq!(
            plus(
                &mut c,
                "SCRAM-SHA-256-PLUS",
                Hash::Sha256,
                "p=tls-exporter,,",
                &cb,
                true
            ),
            [
                cont(proto, "<r=client+server,s=salt,i=4096>"),
                invalid.clone()
            ]
        );
        let mut c = Client::tls(&server, port, proto);
        assert_eq!(
            plus(
                &mut c,
                "SCRAM-SHA-256-PLUS",
                Hash::Sha256,
                "p=tls-unique,,",
                &cb,
                true
            ),
            std::slice::from_ref(&invalid)
        );
        let mut c = Client::tls(&server, port, proto);
        assert_eq!(
            plus(&mut c, "SCRAM-SHA-256", Hash::Sha256, "y,,", &[], true),
            std::slice::from_ref(&invalid)
        );
    }
    // Without TLS, -PLUS is not offered, and refused.
    let mut c = Client::plain(server.port(IMAP), Proto::Imap);
    assert_eq!(
        c.begin("SCRAM-SHA-256-PLUS", None),
        "a1 NO [CANNOT] Unsupported authentication mechanism"
    );
}

/// A -PLUS (or `y`-flagged) SCRAM run as the test account.
fn plus(
    c: &mut Client,
    mechanism: &str,
    hash: Hash,
    gs2: &str,
    cb_data: &[u8],
    ir: bool,
) -> Vec<String> {
    let how = Scram {
        mechanism,
        hash,
        gs2,
        cb_data,
    };
    scram(c, &how, ACCOUNT, PASSWORD, ir)
}

fn cb_of(c: &Client) -> Vec<u8> {
    c.exporter.clone().expect("TLS 1.3")
}

/// Good logins are never refused: twenty first logins at once from one
/// address (a NAT, a client opening its connections together), each
/// paying a full verification, all get in; past the ten attempts one
/// address may have in progress, the rest wait their turn.
#[test]
fn a_burst_of_good_logins_from_one_address_all_get_in() {
    let server = Server::start();
    let office = Ipv4Addr::new(127, 0, 2, 9);
    let imap = server.port(IMAP);
    let users: Vec<String> = (0..20).map(|i| format!("burst{i}@localhost")).collect();
    for u in &users {
        server.admin_ok(&["account", "add", u, "--password", PASSWORD]);
    }
    let logins: Vec<_> = users
        .into_iter()
        .map(|u| {
            std::thread::spawn(move || {
                let mut c = Client::plain_from(office, imap, Proto::Imap);
                (plain(&mut c, &u, PASSWORD, true), c.logged_in())
            })
        })
        .collect();
    for l in logins {
        let (answer, logged_in) = l.join().expect("login");
        assert_eq!(answer, [logged_in]);
    }
}

/// Failures are counted per source address. After ten, the next attempt
/// from that address is refused at once, whatever the mechanism and even
/// with the right password, unless that password was remembered from an
/// earlier good login (good logins are never throttled). Another address
/// is not affected. Every attempt is recorded, and `roost admin
/// loginattempts` lists them newest first.
#[test]
fn brute_force_from_one_address_is_refused_and_others_are_not() {
    let server = Server::start();
    let attacker = Ipv4Addr::new(127, 0, 2, 1);
    let neighbour = Ipv4Addr::new(127, 0, 2, 2);
    let imap = server.port(IMAP);
    let mut c = Client::plain_from(attacker, imap, Proto::Imap);
    assert_eq!(plain(&mut c, ACCOUNT, PASSWORD, true), [c.logged_in()]);

    // REFUSE_AFTER_FAILURES (10) failures, at once: each waits out its
    // own growing delay.
    let guesses: Vec<_> = (0..10)
        .map(|n| {
            std::thread::spawn(move || {
                let mut c = Client::plain_from(attacker, imap, Proto::Imap);
                plain(&mut c, ACCOUNT, &format!("guess-{n}"), true)
            })
        })
        .collect();
    for g in guesses {
        assert_eq!(
            g.join().expect("guess"),
            ["a1 NO [AUTHENTICATIONFAILED] Invalid credentials"]
        );
    }

    // The eleventh: refused, over IMAP and submission alike.
    let mut c = Client::plain_from(attacker, imap, Proto::Imap);
    assert_eq!(
        plain(&mut c, ACCOUNT, "guess-10", true),
        ["a1 NO [UNAVAILABLE] Too many failed logins from your address, try again later"]
    );
    let mut s = Client::plain_from(attacker, server.port(SUBMISSION), Proto::Smtp);
    assert_eq!(
        plain(&mut s, ACCOUNT, "guess-11", true),
        ["454 4.7.0 Too many failed logins from your address, try again later"]
    );
    let mut c = Client::plain_from(attacker, imap, Proto::Imap);
    assert_eq!(
        scram_plain(
            &mut c,
            "SCRAM-SHA-256",
            Hash::Sha256,
            ACCOUNT,
            PASSWORD,
            true
        ),
        ["a1 NO [UNAVAILABLE] Too many failed logins from your address, try again later"]
    );
    // The remembered password still gets in.
    let mut c = Client::plain_from(attacker, imap, Proto::Imap);
    assert_eq!(plain(&mut c, ACCOUNT, PASSWORD, true), [c.logged_in()]);
    // Refusals use up a session's tries: one connection cannot go on
    // guessing against remembered logins. And past REFUSED_CACHED_CHECKS
    // (5) nothing is checked, the right password included.
    let mut c = Client::plain_from(attacker, imap, Proto::Imap);
    for n in 1..=4 {
        c.send(&format!("a{n} LOGIN {ACCOUNT} guess-x{n}"));
    }
    let refused = "Too many failed logins from your address, try again later";
    let lines: Vec<String> = (0..5).map(|_| c.line()).collect();
    assert_eq!(
        lines,
        [
            format!("a1 NO [UNAVAILABLE] {refused}"),
            format!("a2 NO [UNAVAILABLE] {refused}"),
            "* BYE Too many failed logins".to_string(),
            format!("a3 NO [UNAVAILABLE] {refused}"),
            "<closed>".to_string(),
        ]
    );
    let mut c = Client::plain_from(attacker, imap, Proto::Imap);
    assert_eq!(
        plain(&mut c, ACCOUNT, PASSWORD, true),
        [format!("a1 NO [UNAVAILABLE] {refused}")]
    );

    let mut c = Client::plain_from(neighbour, imap, Proto::Imap);
    assert_eq!(plain(&mut c, ACCOUNT, "typo", true), [c.invalid()]);
    let mut c = Client::plain_from(neighbour, imap, Proto::Imap);
    assert_eq!(plain(&mut c, ACCOUNT, PASSWORD, true), [c.logged_in()]);

    // The records, newest first; the time and the client's port vary.
    let listed = eventually("ten recorded attempts", || {
        let out = server.admin_ok(&["loginattempts", "--limit", "10"]);
        (out.lines().count() == 10 && out.contains("127.0.2.2")).then_some(out)
    });
    let shown: Vec<String> = listed
        .lines()
        .map(|line| {
            let (time, rest) = line.split_once(' ').expect("time");
            assert!(
                time.len() == "2026-12-01T18:20:00.123456Z".len() && time.ends_with('Z'),
                "{line}"
            );
            let (remote, rest) = rest.split_once(' ').expect("remote");
            let ip = remote.rsplit_once(':').expect("port").0;
            format!("{ip} {rest}")
        })
        .collect();
    let user = format!("{ACCOUNT:?}");
    // Refused unchecked, an attempt names no account ("-").
    assert_eq!(
        shown,
        [
            format!("127.0.2.2 imap PLAIN {user} {ACCOUNT} ok"),
            format!("127.0.2.2 imap PLAIN {user} {ACCOUNT} invalid"),
            format!("127.0.2.1 imap PLAIN {user} - throttled"),
            format!("127.0.2.1 imap LOGIN {user} - throttled"),
            format!("127.0.2.1 imap LOGIN {user} {ACCOUNT} throttled"),
            format!("127.0.2.1 imap LOGIN {user} {ACCOUNT} throttled"),
            format!("127.0.2.1 imap PLAIN {user} {ACCOUNT} ok"),
            format!("127.0.2.1 imap SCRAM-SHA-256 {user} - throttled"),
            format!("127.0.2.1 submission PLAIN {user} {ACCOUNT} throttled"),
            format!("127.0.2.1 imap PLAIN {user} {ACCOUNT} throttled"),
        ]
    );
    let out = server.admin_ok(&[
        "loginattempts",
        "--account",
        ACCOUNT,
        "--limit",
        "5",
        "--json",
    ]);
    let attempts: serde_json::Value = serde_json::from_str(&out).expect("json");
    let results: Vec<&str> = attempts
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["result"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(results, ["ok", "invalid", "throttled", "throttled", "ok"]);
}

/// `GET /events` with HTTP Basic credentials: the status line and, for an
/// answer with a body of known length, the body (`status|body`).
fn http_get_events(port: u16, user: &str, password: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let auth = B64.encode(format!("{user}:{password}"));
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut all = String::new();
    s.read_to_string(&mut all).expect("read");
    let status = all.lines().next().unwrap_or("").to_string();
    let body = all.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    format!("{status}|{body}")
}

/// A disabled domain: mail to it and from it is refused with a 4xx (the
/// sender keeps it and retries), its accounts still log in; enabled
/// again, mail flows.
#[test]
fn a_disabled_domain_gets_4xx_for_mail_and_its_logins_still_work() {
    let server = Server::start();
    server.admin_ok(&["domain", "add", "example.com"]);
    server.admin_ok(&[
        "account",
        "add",
        "bob@example.com",
        "--password",
        "bob-secret",
    ]);
    let out = server.admin_ok(&["domain", "disable", "example.com"]);
    let out: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        out,
        serde_json::json!({"name": "example.com", "disabled": true})
    );
    let refused = "451 4.7.1 Mail for example.com is disabled for now, try again later";

    let mut mx = Smtp::connect(server.port(SMTP));
    mx.cmd("EHLO sender.example");
    assert_eq!(
        mx.cmd("MAIL FROM:<a@sender.example>"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(mx.cmd("RCPT TO:<bob@example.com>"), refused);
    assert_eq!(
        mx.cmd("RCPT TO:<roost@localhost>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(mx.cmd("RSET"), "250 2.0.0 OK");
    assert_eq!(mx.cmd("MAIL FROM:<bob@example.com>"), refused);

    // Bob logs in and is told the same when he sends.
    let mut s = Client::plain(server.port(SUBMISSION), Proto::Smtp);
    assert_eq!(
        plain(&mut s, "bob@example.com", "bob-secret", true),
        [s.logged_in()]
    );
    s.send("MAIL FROM:<bob@example.com>");
    assert_eq!(s.line(), refused);
    let mut c = Client::plain(server.port(IMAP), Proto::Imap);
    assert_eq!(
        plain(&mut c, "bob@example.com", "bob-secret", true),
        [c.logged_in()]
    );

    server.admin_ok(&["domain", "enable", "example.com"]);
    let mut mx = Smtp::connect(server.port(SMTP));
    mx.cmd("EHLO sender.example");
    assert_eq!(
        mx.send_mail(
            "a@sender.example",
            &["bob@example.com"],
            b"Subject: hi\r\n\r\nhi\r\n"
        ),
        "250 2.0.0 OK, message delivered"
    );
}

/// RFC 5802 2.2: SCRAM clients hash the SASLprep (NFKC) form of the
/// password; PLAIN sends it as typed. Both log in to an account whose
/// password has a compatibility character.
#[test]
fn scram_takes_the_saslprep_form_of_a_password() {
    let server = Server::start();
    // U+FB01 LATIN SMALL LIGATURE FI; SASLprep makes it "fi".
    server.admin_ok(&[
        "account",
        "add",
        "lig@localhost",
        "--password",
        "\u{fb01}sh-secret",
    ]);
    let port = server.port(IMAP);
    let mut c = Client::plain(port, Proto::Imap);
    let end = c.logged_in();
    assert_eq!(
        scram_plain(
            &mut c,
            "SCRAM-SHA-256",
            Hash::Sha256,
            "lig@localhost",
            "fish-secret",
            true
        ),
        scram_lines(Proto::Imap, &end)
    );
    let mut c = Client::plain(port, Proto::Imap);
    assert_eq!(
        plain(&mut c, "lig@localhost", "\u{fb01}sh-secret", true),
        [c.logged_in()]
    );
}
