//! Test harness: runs the real `roost` binary as a child process on its own
//! ports and data directory, and speaks SMTP, IMAP and the admin CLI to it
//! over real sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const SMTP: u16 = 1025;
pub const SUBMISSION: u16 = 1587;
pub const SUBMISSIONS: u16 = 1465;
pub const IMAP: u16 = 1143;
pub const IMAPS: u16 = 1993;
pub const HTTP: u16 = 1080;
pub const HTTPS: u16 = 1443;
pub const ACCOUNT: &str = "roost@localhost";
pub const PASSWORD: &str = "roostroost";
/// What roost's IMAP server announces after login, in order.
pub const IMAP_CAPS: &str = "IMAP4rev2 IMAP4rev1 LITERAL+ MULTIAPPEND CATENATE REPLACE IDLE MOVE UIDPLUS \
ESEARCH SEARCHRES WITHIN SAVEDATE SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES ESORT CONTEXT=SEARCH CONTEXT=SORT MULTISEARCH NOTIFY PARTIAL INPROGRESS CONDSTORE QRESYNC \
LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE CHILDREN UNSELECT NAMESPACE ID ENABLE UNAUTHENTICATE UIDONLY OBJECTID PREVIEW QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE METADATA LIST-METADATA SASL-IR COMPRESS=DEFLATE APPENDLIMIT=67108864";
/// The mechanisms announced before login on a plain loopback connection,
/// after [`IMAP_CAPS`].
pub const IMAP_AUTH: &str =
    "AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-1 AUTH=CRAM-MD5 AUTH=PLAIN AUTH=LOGIN";
/// The same under TLS 1.3, where channel binding makes -PLUS possible.
pub const IMAP_AUTH_TLS: &str = "AUTH=SCRAM-SHA-256-PLUS AUTH=SCRAM-SHA-1-PLUS \
AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-1 AUTH=CRAM-MD5 AUTH=PLAIN AUTH=LOGIN";

/// How long a test waits for anything before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

static NEXT: AtomicU16 = AtomicU16::new(0);

/// A loopback port free at the moment (for servers the test does not
/// start through roost: Postfix, openssl, Python).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A port offset no other server of this test run uses: offsets inside one
/// process differ by less than the smallest gap between two base ports
/// (55), processes are 1400 apart, and every port stays below 32768, where
/// Linux's ephemeral range (client sockets, TIME_WAIT) begins.
pub fn fresh_offset() -> u16 {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 50, "too many servers in one test binary");
    2_000 + (std::process::id() % 20) as u16 * 1400 + n
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_roost"))
}

pub struct Server {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub offset: u16,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A fresh server in a new temporary data directory.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server {
            child: None,
            dir,
            offset: fresh_offset(),
            _tmp: Some(tmp),
        };
        s.spawn();
        s
    }

    /// Starts the binary again on the same directory and ports.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("test-server.log"))
            .expect("log file");
        let child = Command::new(binary())
            .args(["localserve", "--dir"])
            .arg(&self.dir)
            .args(["--port-offset", &self.offset.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start roost");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let up = [SMTP, IMAP, HTTP]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", self.port(*p))).is_ok())
                // The socket file appears at bind, a moment before listen:
                // ready means a connection is taken.
                && std::os::unix::net::UnixStream::connect(self.dir.join("roost.sock")).is_ok();
            if up {
                return;
            }
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("roost exited early with {status}; log:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "roost did not come up; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self, base: u16) -> u16 {
        base + self.offset
    }

    /// The server process's resident memory, in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("server running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in proc status")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("test-server.log")).unwrap_or_default()
    }

    /// Runs `roost admin --dir DIR args...`.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .arg("admin")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("run roost admin")
    }

    /// `roost admin` that must succeed; its stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "roost admin {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The live tree as JSON.
    pub fn tree(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin_ok(&["tree", "--json"])).expect("tree json")
    }

    /// Asserts the store's consistency check passes for `account`.
    pub fn assert_consistent(&self, account: &str) {
        let out = self.admin_ok(&["check", account]);
        assert_eq!(out.trim(), "consistent", "consistency check: {out}");
    }

    /// SIGKILL: nothing is flushed, nothing is said goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_kill(c.id() as libc::pid_t, libc::SIGTERM);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "roost did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` until it returns Some, or fails the test after [`WAIT`].
/// FUTURERELEASE's EHLO keyword ends with the latest release time, which
/// moves with the clock (RFC 4865 3): `<date>` stands for it, so a whole
/// EHLO reply can be compared.
pub fn mask_release(s: &str) -> String {
    const KEY: &str = "FUTURERELEASE 2592000 ";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(KEY) {
        out.push_str(&rest[..i + KEY.len()]);
        rest = &rest[i + KEY.len()..];
        let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        out.push_str("<date>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finds the node named `name` anywhere in a tree snapshot.
pub fn find_node<'a>(nodes: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    for n in nodes.as_array()? {
        if n["name"] == name {
            return Some(n);
        }
        if let Some(found) = find_node(&n["children"], name) {
            return Some(found);
        }
    }
    None
}

/// A loopback connection with the harness's read timeout, split for
/// line reading and writing.
/// A connection to 127.0.0.1:`port` from the loopback address `from`
/// (any of 127.0.0.0/8), so a test can be several clients at once.
pub fn connect_from(from: std::net::Ipv4Addr, port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let addr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // address structs live across the calls that read them.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let local = addr(from, 0);
        let r = libc::bind(fd, &local as *const _ as *const libc::sockaddr, len);
        assert_eq!(r, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let remote = addr(std::net::Ipv4Addr::LOCALHOST, port);
        let r = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    };
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

fn connect(port: u16) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

/// A line-oriented SMTP client.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        let mut c = Smtp::connect_raw(port);
        let greeting = c.reply();
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        c
    }

    /// Connects from the loopback address `from` and reads the greeting.
    pub fn connect_from(from: std::net::Ipv4Addr, port: u16) -> Smtp {
        let s = connect_from(from, port);
        let mut c = Smtp {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        c
    }

    /// Connects without reading the greeting.
    pub fn connect_raw(port: u16) -> Smtp {
        let (reader, writer) = connect(port);
        Smtp { reader, writer }
    }

    /// Reads one (possibly multi-line) reply, lines joined with "\n".
    pub fn reply(&mut self) -> String {
        let mut all = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            if n == 0 {
                all.push("<closed>".to_string());
                break;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let more = line.as_bytes().get(3) == Some(&b'-');
            all.push(line);
            if !more {
                break;
            }
        }
        all.join("\n")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Sends one command line and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// A whole transaction; `data` is the message with CRLF line ends,
    /// dot-stuffed here. Returns the reply to the final dot.
    pub fn send_mail(&mut self, from: &str, to: &[&str], data: &[u8]) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "MAIL: {r}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(r.starts_with("250"), "RCPT: {r}");
        }
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "DATA: {r}");
        self.send_raw(&dot_stuff(data));
        self.send_raw(b".\r\n");
        self.reply()
    }
}

pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut at_line_start = true;
    for &b in data {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An IMAP client that returns raw response bytes, literals included.
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
}

impl Imap {
    pub fn connect(port: u16) -> Imap {
        let mut c = Imap::connect_raw(port);
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c
    }

    /// Connects without reading the greeting.
    pub fn connect_raw(port: u16) -> Imap {
        let (reader, writer) = connect(port);
        Imap {
            reader,
            writer,
            next_tag: 1,
        }
    }

    pub fn login(port: u16) -> Imap {
        let mut c = Imap::connect(port);
        let r = c.cmd(&format!("LOGIN {ACCOUNT} {PASSWORD}"));
        assert!(r.contains(" OK "), "login: {r}");
        c
    }

    pub fn set_timeout(&self, t: Duration) {
        self.writer.set_read_timeout(Some(t)).unwrap();
    }

    /// One response line with any literals it announces, as text (lossy).
    pub fn line(&mut self) -> String {
        String::from_utf8_lossy(&self.line_bytes()).into_owned()
    }

    /// One response line with its literals, raw.
    pub fn line_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).expect("read line");
            if n == 0 {
                out.extend_from_slice(b"<closed>");
                return out;
            }
            out.extend_from_slice(&line);
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            let Some(open) = trimmed.iter().rposition(|&b| b == b'{') else {
                return out;
            };
            if !trimmed.ends_with(b"}") {
                return out;
            }
            let Ok(n) = std::str::from_utf8(&trimmed[open + 1..trimmed.len() - 1])
                .unwrap_or("x")
                .trim_end_matches('+')
                .parse::<usize>()
            else {
                return out;
            };
            let mut lit = vec![0; n];
            self.reader.read_exact(&mut lit).expect("read literal");
            out.extend_from_slice(&lit);
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Sends `TAG command` and returns every line up to and including the
    /// tagged one, as text.
    pub fn cmd(&mut self, command: &str) -> String {
        String::from_utf8_lossy(&self.cmd_bytes(command)).into_owned()
    }

    pub fn cmd_bytes(&mut self, command: &str) -> Vec<u8> {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        self.send_raw(format!("{tag} {command}\r\n").as_bytes());
        self.until_tagged(&tag)
    }

    /// Sends NOOPs (tagged `w1`, `w2`, ..., apart from the `a` tags) until
    /// the untagged responses so far contain `needle`: another session's
    /// change reaches this one a moment after that session is answered.
    /// Returns every untagged line those NOOPs brought, in order.
    pub fn untagged_until(&mut self, needle: &str) -> String {
        let mut seen = String::new();
        for n in 1..=250 {
            let tag = format!("w{n}");
            self.send_raw(format!("{tag} NOOP\r\n").as_bytes());
            let out = String::from_utf8_lossy(&self.until_tagged(&tag)).into_owned();
            let (untagged, tagged) = out.split_at(out.rfind(&format!("{tag} ")).unwrap_or(0));
            assert_eq!(tagged, format!("{tag} OK NOOP completed\r\n"));
            seen.push_str(untagged);
            if seen.contains(needle) {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{needle:?} never came; saw {seen:?}");
    }

    pub fn until_tagged(&mut self, tag: &str) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let line = self.line_bytes();
            let done =
                line.starts_with(format!("{tag} ").as_bytes()) || line.ends_with(b"<closed>");
            all.extend_from_slice(&line);
            if done {
                return all;
            }
        }
    }
}

/// The message `n`, with a body big enough to matter and a dot line.
pub fn message(n: usize, body_lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: sender{n}@example.org\r\nTo: {ACCOUNT}\r\nSubject: message {n}\r\nMessage-ID: <msg{n}@example.org>\r\n\r\n"
    )
    .into_bytes();
    for i in 0..body_lines {
        m.extend_from_slice(format!("line {i} of message {n}: the quick brown fox\r\n").as_bytes());
    }
    m.extend_from_slice(b".a line that starts with a dot\r\n");
    m
}

/// The bytes roost stores after its own prefix (Return-Path, Received).
pub fn strip_prefix<'a>(stored: &'a [u8], original: &[u8]) -> &'a [u8] {
    assert!(
        stored.len() >= original.len(),
        "stored message shorter than original"
    );
    let tail = &stored[stored.len() - original.len()..];
    let head = &stored[..stored.len() - original.len()];
    let head = String::from_utf8_lossy(head);
    assert!(head.starts_with("Return-Path: <"), "prefix: {head}");
    assert!(head.contains("Received: from "), "prefix: {head}");
    tail
}

/// One message as `FETCH 1:* (UID BODY.PEEK[])` returns it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub seq: u32,
    pub uid: u32,
    pub body: Vec<u8>,
}

impl Imap {
    /// Every message of the selected mailbox, whole, without setting
    /// \Seen. Other untagged responses are skipped; the command must end OK.
    pub fn fetch_all(&mut self) -> Vec<Fetched> {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        self.send_raw(format!("{tag} FETCH 1:* (UID BODY.PEEK[])\r\n").as_bytes());
        let mut out = Vec::new();
        loop {
            let resp = self.line_bytes();
            if resp.starts_with(format!("{tag} ").as_bytes()) {
                let text = String::from_utf8_lossy(&resp);
                assert!(text.starts_with(&format!("{tag} OK ")), "FETCH: {text}");
                return out;
            }
            assert!(
                !resp.ends_with(b"<closed>"),
                "connection closed during FETCH"
            );
            if let Some(f) = parse_fetch(&resp) {
                out.push(f);
            }
        }
    }
}

/// `* n FETCH (UID u BODY[] {len}\r\n<literal>)\r\n`, as [`Imap::line_bytes`]
/// returns it; `None` for any other response.
fn parse_fetch(resp: &[u8]) -> Option<Fetched> {
    let crlf = resp.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&resp[..crlf]).ok()?;
    let rest = head.strip_prefix("* ")?;
    let (seq, rest) = rest.split_once(" FETCH (")?;
    let uid = rest.split_once("UID ")?.1;
    let uid: String = uid.chars().take_while(char::is_ascii_digit).collect();
    let len = rest.rsplit_once('{')?.1.strip_suffix('}')?;
    let len: usize = len.parse().ok()?;
    let start = crlf + 2;
    Some(Fetched {
        seq: seq.parse().ok()?,
        uid: uid.parse().ok()?,
        body: resp.get(start..start + len)?.to_vec(),
    })
}

/// The `n` of a [`message`]`(n, ..)`, read from its Message-ID header.
pub fn message_number(stored: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(stored);
    let id = text.split("\r\nMessage-ID: <msg").nth(1)?;
    id.split_once("@example.org>")?.0.parse().ok()
}

/// xorshift64: reproducible pseudo-random numbers from one seed.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Sends `TAG APPEND head {n}`, waits for the continuation, sends the
/// message, and returns everything up to the tagged answer.
pub fn append(imap: &mut Imap, tag: &str, head: &str, message: &[u8]) -> String {
    imap.send_raw(format!("{tag} APPEND {head} {{{}}}\r\n", message.len()).as_bytes());
    let cont = imap.line();
    assert_eq!(cont, "+ Ready for literal data\r\n");
    imap.send_raw(message);
    imap.send_raw(b"\r\n");
    String::from_utf8_lossy(&imap.until_tagged(tag)).into_owned()
}

/// A mailbox's UIDVALIDITY, asked with STATUS.
pub fn uid_validity(imap: &mut Imap, mailbox: &str) -> u32 {
    let r = imap.cmd(&format!("STATUS {mailbox} (UIDVALIDITY)"));
    let start = r.find("UIDVALIDITY ").expect("uidvalidity") + 12;
    r[start..].split(')').next().unwrap().parse().unwrap()
}
