//! A mixed IMAP workload, side by side with Dovecot: 20 clients over 100
//! accounts, each client looping over its own share of the accounts (so
//! no two clients touch one account at once) through a whole session:
//! connect (to the greeting), LOGIN, SELECT, FETCH of every message's
//! flags, FETCH of the newest bodies, STORE (\Flagged on the newest),
//! APPEND, EXPUNGE (the oldest message, by UID STORE \Deleted and UID
//! EXPUNGE), LOGOUT.
//!
//! Every answer is checked against what the client knows of its accounts:
//! each command's tagged OK; the message count SELECT reports against the
//! FETCH of all flags; the message it flagged last time still \Flagged;
//! the message it expunged last time gone; the bodies' literals as long
//! as their sizes; STORE's FETCH showing \Flagged; APPENDUID and the
//! EXPUNGE response. A mismatch is an error, counted per command type.
//!
//! Each account starts with [`START_MESSAGES`] messages. The same run
//! measures roost (the release binary, `localserve` on a fresh directory)
//! and then Dovecot from Debian (see `dovecot.rs`), each for the same
//! time, and prints per command type: completed operations, operations
//! per second over the run, mean latency, errors; and roost's resident
//! memory sampled through its run.
//!
//! `cargo bench --bench imap_mixed [-- SECONDS [roost] [same-headers]]`:
//! SECONDS per server (default 30); `roost` skips Dovecot (the long
//! memory run); `same-headers` gives every message one subject and no
//! Message-ID.

#[path = "dovecot.rs"]
mod dovecot;
#[path = "server.rs"]
mod server;

use dovecot::{Dovecot, PASSWORD};
use server::{roost_binary, rss_kib, Server};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 20;
const ACCOUNTS: usize = 100;
/// Messages each account holds when the measured run starts; each loop
/// adds one and removes one, so it stays there.
const START_MESSAGES: usize = 20;
/// How many of the newest messages the body FETCH reads.
const BODIES: usize = 3;
const DEFAULT_SECONDS: u64 = 30;
/// `same-headers`: every message has one subject and no Message-ID, so
/// the thread index does not grow with the messages (to tell its part in
/// memory growth from the rest).
static SAME_HEADERS: AtomicBool = AtomicBool::new(false);
/// How often roost's memory is sampled.
const RSS_EVERY: Duration = Duration::from_secs(10);

/// The command types measured, in the order of a loop.
const KINDS: [&str; 9] = [
    "connect",
    "LOGIN",
    "SELECT",
    "FETCH flags",
    "FETCH bodies",
    "STORE",
    "APPEND",
    "EXPUNGE",
    "LOGOUT",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seconds = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let roost_only = args.iter().any(|a| a == "roost");
    SAME_HEADERS.store(args.iter().any(|a| a == "same-headers"), Ordering::Relaxed);
    match run(Duration::from_secs(seconds), roost_only) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imap_mixed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Operations, time spent and errors of one command type.
#[derive(Default, Clone, Copy)]
struct Tally {
    ops: u64,
    micros: u64,
    errors: u64,
}

type Tallies = [Tally; KINDS.len()];

/// What a client knows of one of its accounts between visits.
#[derive(Default)]
struct Known {
    /// Messages it holds (the client is the only one changing it).
    count: usize,
    /// The UID flagged on the last visit.
    flagged: Option<u32>,
    /// The UID expunged on the last visit.
    expunged: Option<u32>,
}

/// A blocking IMAP client that reads responses with their literals.
struct Conn {
    r: BufReader<TcpStream>,
    next: u64,
}

/// One response line with the literals inside it, and the tag's status.
struct Answer {
    untagged: Vec<String>,
    /// The literals' lengths as announced and as read.
    literals: Vec<(usize, usize)>,
    tagged: String,
}

impl Conn {
    fn connect(port: u16) -> Result<Conn, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(server::WAIT))
            .map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Conn {
            r: BufReader::new(s),
            next: 0,
        };
        let greeting = c.line()?;
        if !greeting.starts_with("* OK") {
            return Err(format!("greeting: {greeting}"));
        }
        Ok(c)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        if self.r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        Ok(line)
    }

    /// Sends `command` (with `data` as a non-synchronizing literal after
    /// it, if any) and reads up to its tagged answer.
    fn cmd(&mut self, command: &str, data: Option<&[u8]>) -> Result<Answer, String> {
        self.next += 1;
        let tag = format!("m{}", self.next);
        let mut out = format!("{tag} {command}").into_bytes();
        if let Some(d) = data {
            out.extend_from_slice(format!(" {{{}+}}\r\n", d.len()).as_bytes());
            out.extend_from_slice(d);
        }
        out.extend_from_slice(b"\r\n");
        self.r
            .get_mut()
            .write_all(&out)
            .map_err(|e| e.to_string())?;
        let mut answer = Answer {
            untagged: Vec::new(),
            literals: Vec::new(),
            tagged: String::new(),
        };
        let prefix = format!("{tag} ");
        loop {
            let mut line = self.line()?;
            // A line ending in {n} has n bytes of literal, then goes on.
            while let Some(n) = literal_len(&line) {
                let mut buf = vec![0u8; n];
                self.r.read_exact(&mut buf).map_err(|e| e.to_string())?;
                answer.literals.push((n, buf.len()));
                line.push_str(&self.line()?);
            }
            if let Some(rest) = line.strip_prefix(&prefix) {
                answer.tagged = rest.trim_end().to_string();
                return Ok(answer);
            }
            answer.untagged.push(line.trim_end().to_string());
        }
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let body = line.strip_suffix("}\r\n")?;
    let open = body.rfind('{')?;
    body[open + 1..].parse().ok()
}

fn ok(a: &Answer, what: &str) -> Result<(), String> {
    if a.tagged.starts_with("OK") {
        Ok(())
    } else {
        Err(format!("{what}: {}", a.tagged))
    }
}

/// A message of about 2 KiB, different each time.
fn message(user: &str, n: u64) -> Vec<u8> {
    let mut m = if SAME_HEADERS.load(Ordering::Relaxed) {
        format!(
            "From: load@example.org\r\nTo: {user}\r\nSubject: load\r\n\
Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n\r\n"
        )
    } else {
        format!(
            "From: load@example.org\r\nTo: {user}\r\nSubject: load {n}\r\n\
Message-ID: <{n}.{user}>\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\n\r\n"
        )
    }
    .into_bytes();
    for i in 0..30 {
        m.extend_from_slice(
            format!("line {i} of message {n}, some words to read.......\r\n").as_bytes(),
        );
    }
    m
}

/// `(UID n FLAGS (...))` pairs out of FETCH responses.
fn uids_and_flags(untagged: &[String]) -> Vec<(u32, String)> {
    untagged
        .iter()
        .filter(|l| l.contains(" FETCH ("))
        .filter_map(|l| {
            let uid = l
                .split("UID ")
                .nth(1)?
                .split([' ', ')'])
                .next()?
                .parse()
                .ok()?;
            let flags = l.split("FLAGS (").nth(1)?.split(')').next()?.to_string();
            Some((uid, flags))
        })
        .collect()
}

/// One visit to `user`: the whole session, each command timed into
/// `tally`; the first error ends the visit.
fn visit(
    port: u16,
    user: &str,
    known: &mut Known,
    serial: &mut u64,
    tally: &mut Tallies,
) -> Result<(), (usize, String)> {
    let start = Instant::now();
    let mut conn = Conn::connect(port).map_err(|e| (0, e))?;
    tally[0].micros += start.elapsed().as_micros() as u64;
    tally[0].ops += 1;
    let mut timed = |kind: usize,
                     conn: &mut Conn,
                     command: &str,
                     data: Option<&[u8]>|
     -> Result<Answer, (usize, String)> {
        let start = Instant::now();
        let a = conn.cmd(command, data).map_err(|e| (kind, e))?;
        tally[kind].micros += start.elapsed().as_micros() as u64;
        tally[kind].ops += 1;
        ok(&a, KINDS[kind]).map_err(|e| (kind, e))?;
        Ok(a)
    };
    timed(1, &mut conn, &format!("LOGIN {user} {PASSWORD}"), None)?;
    let a = timed(2, &mut conn, "SELECT INBOX", None)?;
    let exists: usize = a
        .untagged
        .iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .ok_or((2, "no EXISTS".to_string()))?;
    if exists != known.count {
        return Err((
            2,
            format!("{user}: {exists} messages, expected {}", known.count),
        ));
    }
    let a = timed(3, &mut conn, "FETCH 1:* (UID FLAGS)", None)?;
    let flags = uids_and_flags(&a.untagged);
    if flags.len() != exists {
        return Err((3, format!("{user}: {} FETCHes for {exists}", flags.len())));
    }
    if let Some(f) = known.flagged {
        if !flags
            .iter()
            .any(|(u, fl)| *u == f && fl.contains("\\Flagged"))
        {
            return Err((3, format!("{user}: UID {f} lost its \\Flagged")));
        }
    }
    if let Some(x) = known.expunged {
        if flags.iter().any(|(u, _)| *u == x) {
            return Err((3, format!("{user}: expunged UID {x} is back")));
        }
    }
    let first = exists.saturating_sub(BODIES - 1).max(1);
    let a = timed(
        4,
        &mut conn,
        &format!("FETCH {first}:{exists} (RFC822.SIZE BODY.PEEK[])"),
        None,
    )?;
    let sizes: Vec<usize> = a
        .untagged
        .iter()
        .filter_map(|l| {
            l.split("RFC822.SIZE ")
                .nth(1)?
                .split([' ', ')'])
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let read: Vec<usize> = a.literals.iter().map(|l| l.1).collect();
    if read.len() != exists + 1 - first || sizes != read {
        return Err((4, format!("{user}: bodies {read:?}, sizes {sizes:?}")));
    }
    let newest = flags.last().map(|f| f.0).ok_or((5, "empty".to_string()))?;
    let a = timed(
        5,
        &mut conn,
        &format!("UID STORE {newest} +FLAGS (\\Flagged)"),
        None,
    )?;
    if !a
        .untagged
        .iter()
        .any(|l| l.contains(" FETCH (") && l.contains("\\Flagged"))
    {
        return Err((5, format!("{user}: STORE answered {:?}", a.untagged)));
    }
    *serial += 1;
    let a = timed(
        6,
        &mut conn,
        "APPEND INBOX (\\Seen)",
        Some(&message(user, *serial)),
    )?;
    if !a.tagged.contains("[APPENDUID ") {
        return Err((6, format!("{user}: APPEND answered {}", a.tagged)));
    }
    // The oldest message that is not the one just flagged goes.
    let oldest = flags[0].0;
    if oldest == newest {
        return Err((7, format!("{user}: one message left")));
    }
    timed(
        5,
        &mut conn,
        &format!("UID STORE {oldest} +FLAGS.SILENT (\\Deleted)"),
        None,
    )?;
    let a = timed(7, &mut conn, &format!("UID EXPUNGE {oldest}"), None)?;
    if a.untagged
        .iter()
        .filter(|l| l.ends_with(" EXPUNGE"))
        .count()
        != 1
    {
        return Err((7, format!("{user}: EXPUNGE answered {:?}", a.untagged)));
    }
    timed(8, &mut conn, "LOGOUT", None)?;
    known.flagged = Some(newest);
    known.expunged = Some(oldest);
    Ok(())
}

/// Fills every account with START_MESSAGES messages.
fn fill(port: u16, users: &[String]) -> Result<(), String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|k| {
                s.spawn(move || -> Result<(), String> {
                    for user in users.iter().skip(k).step_by(CLIENTS) {
                        let mut c = Conn::connect(port)?;
                        ok(&c.cmd(&format!("LOGIN {user} {PASSWORD}"), None)?, "LOGIN")?;
                        for i in 0..START_MESSAGES {
                            let m = message(user, i as u64);
                            ok(&c.cmd("APPEND INBOX", Some(&m))?, "APPEND")?;
                        }
                        c.cmd("LOGOUT", None)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a client panicked".to_string())?)
    })
}

/// What one server did over the run.
struct Outcome {
    tallies: Tallies,
    seconds: f64,
    loops: u64,
    first_errors: Vec<String>,
}

/// The measured run: each client visits its accounts in turn until
/// `length` has passed; `sample` runs every RSS_EVERY meanwhile.
fn measure(
    port: u16,
    users: &[String],
    length: Duration,
    mut sample: impl FnMut(),
) -> Result<Outcome, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let stop = stop.clone();
                s.spawn(move || {
                    let mine: Vec<&String> = users.iter().skip(k).step_by(CLIENTS).collect();
                    let mut known: HashMap<&str, Known> = mine
                        .iter()
                        .map(|u| {
                            let k = Known {
                                count: START_MESSAGES,
                                ..Known::default()
                            };
                            (u.as_str(), k)
                        })
                        .collect();
                    let mut tally: Tallies = Default::default();
                    let (mut loops, mut serial, mut errors) = (0u64, 1_000_000u64, Vec::new());
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let user = mine[i % mine.len()];
                        i += 1;
                        let k = known.get_mut(user.as_str()).expect("known");
                        match visit(port, user, k, &mut serial, &mut tally) {
                            Ok(()) => loops += 1,
                            Err((kind, e)) => {
                                tally[kind].errors += 1;
                                if errors.len() < 3 {
                                    errors.push(e);
                                }
                                // Whatever it knew of the account may be
                                // wrong now: learn it again.
                                k.count = recount(port, user).unwrap_or(k.count);
                                k.flagged = None;
                                k.expunged = None;
                            }
                        }
                    }
                    (tally, loops, errors)
                })
            })
            .collect();
        let mut next = Instant::now() + RSS_EVERY;
        while start.elapsed() < length {
            std::thread::sleep(Duration::from_millis(200));
            if Instant::now() >= next {
                sample();
                next += RSS_EVERY;
            }
        }
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a client panicked".to_string()))
            .collect::<Result<Vec<_>, String>>()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let mut outcome = Outcome {
        tallies: Default::default(),
        seconds,
        loops: 0,
        first_errors: Vec::new(),
    };
    for (tally, loops, errors) in results {
        for (sum, t) in outcome.tallies.iter_mut().zip(tally) {
            sum.ops += t.ops;
            sum.micros += t.micros;
            sum.errors += t.errors;
        }
        outcome.loops += loops;
        outcome.first_errors.extend(errors);
    }
    Ok(outcome)
}

/// The account's message count, asked afresh after an error.
fn recount(port: u16, user: &str) -> Result<usize, String> {
    let mut c = Conn::connect(port)?;
    ok(&c.cmd(&format!("LOGIN {user} {PASSWORD}"), None)?, "LOGIN")?;
    let a = c.cmd("STATUS INBOX (MESSAGES)", None)?;
    let n = a
        .untagged
        .iter()
        .find_map(|l| {
            l.split("MESSAGES ")
                .nth(1)?
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .ok_or("no STATUS")?;
    c.cmd("LOGOUT", None)?;
    Ok(n)
}

fn print(name: &str, o: &Outcome) {
    println!(
        "\n{name}: {} loops in {:.0} s ({:.1} loops/s)\n",
        o.loops,
        o.seconds,
        o.loops as f64 / o.seconds
    );
    println!("| {name} | ops | ops/s | mean ms | errors |");
    println!("|---|---:|---:|---:|---:|");
    for (kind, t) in KINDS.iter().zip(o.tallies) {
        println!(
            "| {kind} | {} | {:.0} | {:.2} | {} |",
            t.ops,
            t.ops as f64 / o.seconds,
            mean_ms(t),
            t.errors
        );
    }
    for e in &o.first_errors {
        println!("error: {e}");
    }
}

fn mean_ms(t: Tally) -> f64 {
    if t.ops == 0 {
        0.0
    } else {
        t.micros as f64 / t.ops as f64 / 1000.0
    }
}

fn run(length: Duration, roost_only: bool) -> Result<(), String> {
    let users: Vec<String> = (0..ACCOUNTS)
        .map(|i| format!("mixed{i}@localhost"))
        .collect();
    let binary = roost_binary()?;
    let server = Server::start(&binary)?;
    for u in &users {
        server.admin(&["account", "add", u, "--password", PASSWORD])?;
    }
    let port = server.imap_port();
    fill(port, &users)?;
    let pid = server.pid();
    let mut rss: Vec<u64> = vec![rss_kib(pid)?];
    let roost = measure(port, &users, length, || {
        if let Ok(k) = rss_kib(pid) {
            rss.push(k);
        }
    })?;
    rss.push(rss_kib(pid)?);
    drop(server);
    println!(
        "{CLIENTS} clients over {ACCOUNTS} accounts of {START_MESSAGES} messages, {} s per server",
        length.as_secs()
    );
    print("roost", &roost);
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "\nroost resident memory, MiB, every {} s: {}",
        RSS_EVERY.as_secs(),
        rss.iter()
            .map(|&k| format!("{:.0}", mib(k)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if roost_only {
        return Ok(());
    }
    let dovecot = match Dovecot::start(&users, PASSWORD) {
        Ok(d) => d,
        Err(e) => {
            println!("\nDovecot not measured: {e}");
            return Ok(());
        }
    };
    fill(dovecot.port, &users)?;
    let theirs = measure(dovecot.port, &users, length, || {})?;
    drop(dovecot);
    print("Dovecot", &theirs);
    println!("\n| command | roost ops/s | Dovecot ops/s | ratio | roost mean ms | Dovecot mean ms | latency ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, kind) in KINDS.iter().enumerate() {
        let (a, b) = (roost.tallies[i], theirs.tallies[i]);
        let rate = |t: Tally, o: &Outcome| t.ops as f64 / o.seconds;
        println!(
            "| {kind} | {:.0} | {:.0} | {:.2}x | {:.2} | {:.2} | {:.2}x |",
            rate(a, &roost),
            rate(b, &theirs),
            rate(a, &roost) / rate(b, &theirs),
            mean_ms(a),
            mean_ms(b),
            mean_ms(b) / mean_ms(a).max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}
