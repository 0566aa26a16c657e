//! SMTP load tool: measures delivery throughput, latency and group commit.
//!
//! Runs as `cargo bench --bench smtp_load` (no libtest harness). For each
//! scenario it starts the release `roost` binary with `localserve` on a fresh
//! temporary data directory and a free port offset, opens C persistent SMTP
//! connections from C threads (EHLO once, then MAIL/RCPT/DATA per message),
//! delivers M messages of exactly S bytes, and prints one markdown table row:
//! messages per second, p50/p99 latency from writing the final "." to reading
//! the 250 (the reply comes only after the commit is durable), and what the
//! store counted in between (admin `stats` deltas): sled flushes, messages
//! placed per flush (the group-commit factor) and fsyncs per message.
//!
//! It is a measuring tool, not a test: it asserts nothing about the figures.
//! All traffic goes to 127.0.0.1, every wait has a deadline, and the server
//! is killed when a scenario ends, whatever happened.
#![forbid(unsafe_code)]

#[path = "server.rs"]
mod server;

use server::{roost_binary, Server, LOCAL_ACCOUNT, WAIT};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Default messages per scenario.
const DEFAULT_MESSAGES: usize = 2000;
/// Default message size in bytes (headers included, before dot-stuffing).
const DEFAULT_SIZE: usize = 4096;
/// Upper bounds that keep a mistyped flag from running for hours.
const MAX_MESSAGES: usize = 1_000_000;
const MAX_SIZE: usize = 16 * 1024 * 1024;
const MAX_CLIENTS: usize = 512;
const MAX_ACCOUNTS: usize = 512;
/// Body lines are at most this long, CRLF included (RFC 5322 2.1.1: 78
/// characters is the recommended line length).
const BODY_LINE: usize = 80;
const LOAD_PASSWORD: &str = "load-test-password";
const SENDER: &str = "load@example.org";

#[derive(Debug, Clone, Copy)]
struct Scenario {
    label: &'static str,
    messages: usize,
    size: usize,
    clients: usize,
    accounts: usize,
}

/// Store counters from `roost admin stats`, totals since the server started.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    commits: u64,
    flushes: u64,
    fsyncs: u64,
    messages_placed: u64,
}

struct Outcome {
    elapsed: Duration,
    latencies: Vec<Duration>,
    before: Stats,
    after: Stats,
}

fn main() -> ExitCode {
    let scenarios = match parse_args(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smtp_load: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let binary = match roost_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("smtp_load: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("smtp_load: using {}", binary.display());
    println!(
        "| scenario | clients | accounts | messages | size (B) | msg/s | p50 (ms) | p99 (ms) \
         | commits | sled flushes | msg/flush | fsyncs/msg |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &scenarios {
        match run_scenario(&binary, s) {
            Ok(o) => println!("{}", row(s, &o)),
            Err(e) => {
                eprintln!("smtp_load: scenario {} failed: {e}", s.label);
                return ExitCode::FAILURE;
            }
        }
        let _ = std::io::stdout().flush();
    }
    ExitCode::SUCCESS
}

const USAGE: &str = "usage: smtp_load [--messages M] [--size S] [--clients C] [--accounts A]
  with no flags, runs the standard scenarios (a) to (d); with any flag, one
  custom scenario (defaults M=2000 S=4096 C=1 A=1). `--bench` is ignored.";

fn default_scenarios() -> Vec<Scenario> {
    let s = |label, clients, accounts| Scenario {
        label,
        messages: DEFAULT_MESSAGES,
        size: DEFAULT_SIZE,
        clients,
        accounts,
    };
    vec![
        s("(a) 1 client, 1 account", 1, 1),
        s("(b) 8 clients, 1 account", 8, 1),
        s("(c) 32 clients, 1 account", 32, 1),
        s("(d) 8 clients, 8 accounts", 8, 8),
    ]
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Vec<Scenario>, String> {
    let mut custom = Scenario {
        label: "custom",
        messages: DEFAULT_MESSAGES,
        size: DEFAULT_SIZE,
        clients: 1,
        accounts: 1,
    };
    let mut any = false;
    let mut args = args;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let (slot, max) = match flag.as_str() {
            "--bench" => continue,
            "--messages" => (&mut custom.messages, MAX_MESSAGES),
            "--size" => (&mut custom.size, MAX_SIZE),
            "--clients" => (&mut custom.clients, MAX_CLIENTS),
            "--accounts" => (&mut custom.accounts, MAX_ACCOUNTS),
            "-h" | "--help" => return Err("help requested".into()),
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(format!("{flag} needs a value"))?,
        };
        let n: usize = value
            .parse()
            .map_err(|_| format!("{flag} {value:?} is not a number"))?;
        if n == 0 || n > max {
            return Err(format!("{flag} must be between 1 and {max}"));
        }
        *slot = n;
        any = true;
    }
    Ok(if any {
        vec![custom]
    } else {
        default_scenarios()
    })
}

/// The store counters of `roost admin stats`.
fn stats(server: &Server) -> Result<Stats, String> {
    let text = server.admin(&["stats"])?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("stats is not JSON ({e}): {text}"))?;
    let field = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| format!("stats has no counter {k:?}: {text}"))
    };
    Ok(Stats {
        commits: field("commits")?,
        flushes: field("flushes")?,
        fsyncs: field("fsyncs")?,
        messages_placed: field("messages_placed")?,
    })
}

fn run_scenario(binary: &Path, s: &Scenario) -> Result<Outcome, String> {
    eprintln!(
        "smtp_load: {}: {} messages of {} bytes, {} clients, {} accounts",
        s.label, s.messages, s.size, s.clients, s.accounts
    );
    let server = Server::start(binary)?;
    let accounts = prepare_accounts(&server, s.accounts)?;
    let port = server.smtp_port();

    // Every client connects and says EHLO before the clock starts.
    let barrier = Arc::new(Barrier::new(s.clients + 1));
    let mut handles = Vec::with_capacity(s.clients);
    for c in 0..s.clients {
        let share = s.messages / s.clients + usize::from(c < s.messages % s.clients);
        let rcpt = accounts[c % accounts.len()].clone();
        let barrier = barrier.clone();
        let size = s.size;
        handles.push(std::thread::spawn(move || {
            client(port, c, share, size, &rcpt, &barrier)
        }));
    }
    let before = stats(&server)?;
    barrier.wait();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(s.messages);
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(mut l)) => latencies.append(&mut l),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some("a client thread panicked".to_string())),
        }
    }
    let elapsed = start.elapsed();
    if let Some(e) = failure {
        return Err(e);
    }
    let after = stats(&server)?;
    Ok(Outcome {
        elapsed,
        latencies,
        before,
        after,
    })
}

/// The recipients: localserve's own account alone, or `n` fresh ones.
fn prepare_accounts(server: &Server, n: usize) -> Result<Vec<String>, String> {
    if n == 1 {
        return Ok(vec![LOCAL_ACCOUNT.to_string()]);
    }
    (1..=n)
        .map(|i| {
            let name = format!("load{i}@localhost");
            server.admin(&["account", "add", &name, "--password", LOAD_PASSWORD])?;
            Ok(name)
        })
        .collect()
}

/// One client: connect and EHLO, wait for the start, then `count`
/// transactions on the same connection. Returns each message's latency.
/// A client that fails still waits at the barrier first, so the others
/// (and the main thread) are never left waiting for it.
fn client(
    port: u16,
    id: usize,
    count: usize,
    size: usize,
    rcpt: &str,
    barrier: &Barrier,
) -> Result<Vec<Duration>, String> {
    let session = Session::open(port);
    barrier.wait();
    let mut session = session?;
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let message = build_message(id, n, size, rcpt);
        latencies.push(session.deliver(rcpt, &message)?);
    }
    let _ = session.command("QUIT");
    Ok(latencies)
}

/// An SMTP client connection (RFC 5321), one command at a time.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    fn open(port: u16) -> Result<Session, String> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(WAIT))
            .and_then(|()| stream.set_write_timeout(Some(WAIT)))
            .map_err(|e| format!("socket: {e}"))?;
        let reader = stream.try_clone().map_err(|e| format!("socket: {e}"))?;
        let mut s = Session {
            reader: BufReader::new(reader),
            writer: stream,
        };
        expect("greeting", &s.reply()?, "220")?;
        let ehlo = s.command("EHLO load.example.org")?;
        expect("EHLO", &ehlo, "250")?;
        Ok(s)
    }

    /// One transaction; the time from writing the final "." to the reply.
    fn deliver(&mut self, rcpt: &str, message: &[u8]) -> Result<Duration, String> {
        expect(
            "MAIL",
            &self.command(&format!("MAIL FROM:<{SENDER}>"))?,
            "250",
        )?;
        expect("RCPT", &self.command(&format!("RCPT TO:<{rcpt}>"))?, "250")?;
        expect("DATA", &self.command("DATA")?, "354")?;
        // The body never has a line starting with "." (RFC 5321 4.5.2), so it
        // goes out unchanged.
        self.send(message)?;
        let sent = Instant::now();
        self.send(b".\r\n")?;
        let reply = self.reply()?;
        let latency = sent.elapsed();
        expect("end of data", &reply, "250")?;
        Ok(latency)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .map_err(|e| format!("write: {e}"))
    }

    fn command(&mut self, line: &str) -> Result<String, String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One reply, multi-line ones joined (RFC 5321 4.2.1: "250-" continues).
    fn reply(&mut self) -> Result<String, String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("server closed the connection after {all:?}"));
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    }
}

fn expect(what: &str, reply: &str, code: &str) -> Result<(), String> {
    if reply.starts_with(code) {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {code}, got {:?}",
            reply.trim_end()
        ))
    }
}

/// A message of exactly `size` bytes (at least its headers plus one empty
/// line), CRLF line ends, no line starting with ".".
fn build_message(client: usize, n: usize, size: usize, rcpt: &str) -> Vec<u8> {
    let mut m = format!(
        "From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: load {client}-{n}\r\n\
         Message-ID: <load-{client}-{n}@example.org>\r\n\r\n"
    )
    .into_bytes();
    let mut left = size.saturating_sub(m.len());
    if left == 1 {
        left = 2;
    }
    while left > 0 {
        let mut line = left.min(BODY_LINE);
        // Never leave one byte over: a line needs at least its CRLF.
        if left - line == 1 {
            line -= 1;
        }
        m.extend(std::iter::repeat_n(b'x', line - 2));
        m.extend_from_slice(b"\r\n");
        left -= line;
    }
    m
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn row(s: &Scenario, o: &Outcome) -> String {
    let mut l = o.latencies.clone();
    l.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let placed = o.after.messages_placed - o.before.messages_placed;
    let flushes = o.after.flushes - o.before.flushes;
    let commits = o.after.commits - o.before.commits;
    let fsyncs = o.after.fsyncs - o.before.fsyncs;
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            "n/a".to_string()
        } else {
            format!("{:.2}", a as f64 / b as f64)
        }
    };
    format!(
        "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} |",
        s.label,
        s.clients,
        s.accounts,
        l.len(),
        s.size,
        l.len() as f64 / o.elapsed.as_secs_f64(),
        ms(percentile(&l, 50.0)),
        ms(percentile(&l, 99.0)),
        commits,
        flushes,
        ratio(placed, flushes),
        ratio(fsyncs, placed),
    )
}
