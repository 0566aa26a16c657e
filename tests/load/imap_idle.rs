//! IMAP idle-connection memory: what one logged-in, INBOX-selected,
//! IDLE-ing connection costs the server.
//!
//! Runs as `cargo bench --bench imap_idle [-- N ...]` (no libtest harness;
//! default N: 500 and 990). It starts the release `roost localserve`,
//! opens one warm-up connection (so the account and mailbox actors exist),
//! reads the server's resident memory (VmRSS), then opens N connections,
//! each `LOGIN`, `SELECT INBOX`, `IDLE`, waits for them to settle and
//! reads VmRSS again. It prints one markdown row per N: RSS before and
//! after, the difference per connection, and RSS divided by connections.
//!
//! A measuring tool, not a test: it asserts nothing about the figures.
//! All traffic goes to 127.0.0.1, every read has a deadline, and the
//! server is killed when a run ends.
#![forbid(unsafe_code)]

#[path = "server.rs"]
mod server;

use server::{roost_binary, rss_kib, Server, LOCAL_ACCOUNT, WAIT};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

const PASSWORD: &str = "idle-test-password";
/// localserve's listeners take at most 1000 connections each.
const MAX_CONNECTIONS: usize = 990;
/// Time for the server's allocator to settle after the last IDLE.
const SETTLE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let counts: Result<Vec<usize>, String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .map(|a| match a.parse::<usize>() {
            Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => Ok(n),
            _ => Err(format!(
                "connection count must be 1..={MAX_CONNECTIONS}: {a}"
            )),
        })
        .collect();
    let counts = match counts {
        Ok(c) if c.is_empty() => vec![500, MAX_CONNECTIONS],
        Ok(c) => c,
        Err(e) => {
            eprintln!("imap_idle: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("| idle connections | RSS before (KiB) | RSS after (KiB) | per connection (KiB) | RSS / connections (KiB) |");
    println!("|---:|---:|---:|---:|---:|");
    for n in counts {
        match run(n) {
            Ok(row) => println!("{row}"),
            Err(e) => {
                eprintln!("imap_idle: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn run(n: usize) -> Result<String, String> {
    let binary = roost_binary()?;
    let server = Server::start(&binary)?;
    server.admin(&["account", "passwd", LOCAL_ACCOUNT, "--password", PASSWORD])?;
    let _warm = idle_connection(&server)?;
    std::thread::sleep(SETTLE);
    let before = rss_kib(server.pid())?;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        conns.push(idle_connection(&server).map_err(|e| format!("connection {i}: {e}"))?);
    }
    std::thread::sleep(SETTLE);
    let after = rss_kib(server.pid())?;
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    let total = 1 + n;
    Ok(format!(
        "| {n} | {before} | {after} | {per:.1} | {:.1} |",
        after as f64 / total as f64
    ))
}

/// A connection logged in, with INBOX selected, in IDLE.
fn idle_connection(server: &Server) -> Result<BufReader<TcpStream>, String> {
    let stream = TcpStream::connect(("127.0.0.1", server.imap_port()))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    expect_line(&mut r, "* OK")?;
    send(&mut r, &format!("a LOGIN {LOCAL_ACCOUNT} {PASSWORD}\r\n"))?;
    until_tagged(&mut r, "a OK")?;
    send(&mut r, "b SELECT INBOX\r\n")?;
    until_tagged(&mut r, "b OK")?;
    send(&mut r, "c IDLE\r\n")?;
    expect_line(&mut r, "+ ")?;
    Ok(r)
}

fn send(r: &mut BufReader<TcpStream>, line: &str) -> Result<(), String> {
    r.get_mut()
        .write_all(line.as_bytes())
        .map_err(|e| format!("write: {e}"))
}

fn read_line(r: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Err("connection closed".into()),
        Ok(_) => Ok(line),
        Err(e) => Err(format!("read: {e}")),
    }
}

fn expect_line(r: &mut BufReader<TcpStream>, start: &str) -> Result<(), String> {
    let line = read_line(r)?;
    if line.starts_with(start) {
        Ok(())
    } else {
        Err(format!("expected {start:?}, got {line:?}"))
    }
}

/// Reads untagged lines until the tagged one, which must start with `start`.
fn until_tagged(r: &mut BufReader<TcpStream>, start: &str) -> Result<(), String> {
    loop {
        let line = read_line(r)?;
        if line.starts_with("* ") {
            continue;
        }
        return if line.starts_with(start) {
            Ok(())
        } else {
            Err(format!("expected {start:?}, got {line:?}"))
        };
    }
}
