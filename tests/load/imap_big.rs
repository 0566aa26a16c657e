//! A mailbox of many messages (100,000 by default): how long the commands
//! a client runs against it take, how fast APPEND fills it from 1 and from
//! 16 clients, and what a session holding it selected costs in memory.
//!
//! `cargo bench --bench imap_big [-- MESSAGES]`; prints a markdown table
//! for BENCHMARKS.md. Each timed command runs 5 times and the median is
//! reported, measured from the client's send to the tagged OK; the first
//! SELECT, which loads the mailbox's index, is reported on its own.

#[path = "server.rs"]
mod server;

use server::{roost_binary, rss_kib, Server, LOCAL_ACCOUNT};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PASSWORD: &str = "roostroost";
/// Messages per MULTIAPPEND when filling the mailbox.
const FILL_BATCH: usize = 500;
const RUNS: usize = 5;
const DEFAULT_MESSAGES: usize = 100_000;

fn main() -> ExitCode {
    let n = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map_or(Ok(DEFAULT_MESSAGES), |a| a.parse::<usize>());
    let n = match n {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("imap_big: the argument is a message count");
            return ExitCode::FAILURE;
        }
    };
    match run(n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imap_big: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A test message, different in subject and body per `i`.
fn message(i: usize) -> Vec<u8> {
    format!(
        "From: Sender {s} <sender{s}@example.org>\r\nTo: {LOCAL_ACCOUNT}\r\n\
Subject: report {i}\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <big{i}@example.org>\r\n\r\n\
Line one of message {i}, about the quick brown fox.\r\nSecond line: token{i}end.\r\n",
        s = i % 97
    )
    .into_bytes()
}

struct Client {
    r: BufReader<TcpStream>,
    tag: u64,
}

impl Client {
    fn login(server: &Server) -> Result<Client, String> {
        let stream = TcpStream::connect(("127.0.0.1", server.imap_port()))
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(600)))
            .map_err(|e| e.to_string())?;
        let mut c = Client {
            r: BufReader::new(stream),
            tag: 0,
        };
        c.line()?;
        c.cmd(&format!("LOGIN {LOCAL_ACCOUNT} {PASSWORD}"))?;
        Ok(c)
    }

    fn line(&mut self) -> Result<Vec<u8>, String> {
        let mut line = Vec::new();
        loop {
            let mut part = Vec::new();
            let n = self
                .r
                .read_until(b'\n', &mut part)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed".into());
            }
            line.extend_from_slice(&part);
            let t = part.strip_suffix(b"\r\n").unwrap_or(&part);
            let lit = t
                .strip_suffix(b"}")
                .and_then(|t| t.iter().rposition(|&b| b == b'{').map(|o| &t[o + 1..]))
                .and_then(|d| std::str::from_utf8(d).ok()?.parse::<usize>().ok());
            match lit {
                Some(len) => {
                    let mut data = vec![0; len];
                    self.r
                        .read_exact(&mut data)
                        .map_err(|e| format!("read literal: {e}"))?;
                    line.extend_from_slice(&data);
                }
                None => return Ok(line),
            }
        }
    }

    /// Sends `command` (and `extra` bytes right after its line) and reads
    /// to the tagged answer, which must be OK; the untagged count.
    fn send(&mut self, command: &str, extra: &[u8]) -> Result<usize, String> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let mut out = format!("{tag} {command}\r\n").into_bytes();
        out.extend_from_slice(extra);
        self.r
            .get_mut()
            .write_all(&out)
            .map_err(|e| format!("write: {e}"))?;
        let mut untagged = 0;
        loop {
            let line = self.line()?;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                let text = String::from_utf8_lossy(&line);
                return if text.starts_with(&format!("{tag} OK")) {
                    Ok(untagged)
                } else {
                    Err(format!("{command:.60}: {text}"))
                };
            }
            untagged += 1;
        }
    }

    fn cmd(&mut self, command: &str) -> Result<usize, String> {
        self.send(command, b"")
    }

    /// MULTIAPPEND of `messages` with non-synchronizing literals.
    fn append_all(&mut self, messages: &[Vec<u8>]) -> Result<(), String> {
        let (first, rest) = messages.split_first().ok_or("nothing to append")?;
        let mut extra = first.clone();
        for m in rest {
            extra.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
            extra.extend_from_slice(m);
        }
        extra.extend_from_slice(b"\r\n");
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let mut out = format!("{tag} APPEND INBOX {{{}+}}\r\n", first.len()).into_bytes();
        out.extend_from_slice(&extra);
        self.r
            .get_mut()
            .write_all(&out)
            .map_err(|e| format!("write: {e}"))?;
        loop {
            let line = self.line()?;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                let text = String::from_utf8_lossy(&line);
                return if text.starts_with(&format!("{tag} OK")) {
                    Ok(())
                } else {
                    Err(format!("APPEND: {text}"))
                };
            }
        }
    }
}

/// Median time of `RUNS` runs of `command`, and its untagged count.
fn time(c: &mut Client, command: &str) -> Result<(f64, usize), String> {
    let mut times = Vec::with_capacity(RUNS);
    let mut untagged = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        untagged = c.cmd(command)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[RUNS / 2], untagged))
}

fn run(n: usize) -> Result<(), String> {
    let binary = roost_binary()?;
    let server = Server::start(&binary)?;
    server.admin(&["account", "passwd", LOCAL_ACCOUNT, "--password", PASSWORD])?;
    let mut c = Client::login(&server)?;

    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<Vec<u8>> = (i..(i + FILL_BATCH).min(n)).map(message).collect();
        c.append_all(&batch)?;
        i += batch.len();
    }
    let fill = start.elapsed().as_secs_f64();
    println!("Mailbox of {n} messages, filled by MULTIAPPEND of {FILL_BATCH} in {fill:.1} s ({:.0} messages/s).", n as f64 / fill);
    println!();

    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib(server.pid())?;
    println!("| command | median ms | untagged responses |");
    println!("|---|---:|---:|");
    // The first SELECT loads the mailbox's index; later ones find it
    // loaded (the mailbox actor lingers after its last subscriber).
    let start = Instant::now();
    let untagged = c.cmd("SELECT INBOX")?;
    let cold = start.elapsed().as_secs_f64() * 1000.0;
    println!("| `SELECT INBOX`, first (loads the index), once | {cold:.1} | {untagged} |");
    let commands = [
        "SELECT INBOX",
        "SELECT INBOX (CONDSTORE)",
        "UID FETCH 1:* (UID FLAGS)",
        "FETCH 1:* (ENVELOPE)",
        "SEARCH UNSEEN",
        "SEARCH SUBJECT \"report 99999\"",
        "SEARCH BODY token77777end",
        "STORE 1:* +FLAGS.SILENT (\\Seen)",
        "STORE 1:* -FLAGS.SILENT (\\Seen)",
    ];
    for command in commands {
        let (ms, untagged) = time(&mut c, command)?;
        println!("| `{command}` | {ms:.1} | {untagged} |");
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_one = rss_kib(server.pid())?;
    let mut others = Vec::new();
    for _ in 0..10 {
        let mut o = Client::login(&server)?;
        o.cmd("SELECT INBOX")?;
        others.push(o);
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_eleven = rss_kib(server.pid())?;
    println!();
    println!(
        "Memory: server RSS {rss_before} KiB before the timed commands, {rss_one} KiB with one session holding the mailbox selected, {rss_eleven} KiB with 11: {:.0} KiB per further selecting session.",
        (rss_eleven.saturating_sub(rss_one)) as f64 / 10.0
    );
    drop(others);

    println!();
    println!("| APPEND throughput | messages | seconds | messages/s |");
    println!("|---|---:|---:|---:|");
    for clients in [1usize, 16] {
        let per = 2000 / clients;
        let start = Instant::now();
        let handles: Vec<_> = (0..clients)
            .map(|k| {
                let mut cl = Client::login(&server);
                std::thread::spawn(move || -> Result<(), String> {
                    let cl = cl.as_mut().map_err(|e| e.clone())?;
                    for j in 0..per {
                        let m = message(1_000_000 + k * per + j);
                        let line = format!("APPEND INBOX {{{}+}}", m.len());
                        let mut extra = m;
                        extra.extend_from_slice(b"\r\n");
                        cl.send(&line, &extra)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "an APPEND client panicked")??;
        }
        let secs = start.elapsed().as_secs_f64();
        let total = per * clients;
        println!(
            "| {clients} client(s), one message per APPEND | {total} | {secs:.2} | {:.0} |",
            total as f64 / secs
        );
    }
    Ok(())
}
