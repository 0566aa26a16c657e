//! Crash safety: `250` means durable. Eight SMTP clients deliver at once,
//! the server is killed with SIGKILL at a random moment, and after a restart
//! on the same directory every acknowledged message is in INBOX, byte for
//! byte, exactly once, under the UID it had before; the store's consistency
//! check passes. Several kill/restart cycles run over the same data.
//!
//! The seed comes from the clock and is printed; set `ROOST_CRASH_SEED` to
//! replay a run's timings.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Concurrent SMTP clients per cycle.
const CLIENTS: usize = 8;
/// Kill/restart cycles in one run.
const CYCLES: usize = 4;
/// The kill comes this long after the clients started, at the earliest...
const KILL_MIN: Duration = Duration::from_millis(200);
/// ...and at the latest.
const KILL_MAX: Duration = Duration::from_millis(1500);
/// Message numbers: `cycle * CYCLE_STRIDE + client * CLIENT_STRIDE + i`.
const CYCLE_STRIDE: usize = 1_000_000;
const CLIENT_STRIDE: usize = 100_000;

fn seed() -> u64 {
    if let Some(s) = std::env::var("ROOST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    nanos | 1
}

/// Body lines of message `n`: mostly small, every 16th one large enough to
/// span several of the server's 64 KiB data chunks.
fn body_lines(n: usize) -> usize {
    if n % 16 == 5 {
        3_000
    } else {
        1 + (n.wrapping_mul(2_654_435_761) >> 7) % 60
    }
}

fn expected(n: usize) -> Vec<u8> {
    message(n, body_lines(n))
}

/// What one client saw before its connection ended.
#[derive(Debug, Default)]
struct Outcome {
    /// Got `250` after the final dot: must survive.
    acked: Vec<usize>,
    /// The final dot was sent, no reply came: may or may not survive.
    in_flight: Vec<usize>,
    /// Got another reply after the final dot: must not be delivered.
    rejected: Vec<(usize, String)>,
    /// Why the client stopped.
    ended: String,
}

/// A client that takes a dying connection as the end of its run, not as a
/// failure.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(WAIT))?;
        let mut c = Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        };
        c.expect("220")?;
        Ok(c)
    }

    /// One (possibly multi-line) reply; the connection closing is an error.
    fn reply(&mut self) -> std::io::Result<String> {
        let mut all = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let more = line.as_bytes().get(3) == Some(&b'-');
            all.push(line);
            if !more {
                return Ok(all.join("\n"));
            }
        }
    }

    fn expect(&mut self, code: &str) -> std::io::Result<String> {
        let r = self.reply()?;
        if r.starts_with(code) {
            Ok(r)
        } else {
            Err(std::io::Error::other(format!("expected {code}, got {r}")))
        }
    }

    fn cmd(&mut self, line: &str, code: &str) -> std::io::Result<String> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.expect(code)
    }

    /// Sends messages `ids` one after another until the connection fails.
    fn run(mut self, ids: impl Iterator<Item = usize>) -> Outcome {
        let mut out = Outcome::default();
        if let Err(e) = self.cmd("EHLO crash.example.org", "250") {
            out.ended = format!("EHLO: {e}");
            return out;
        }
        for n in ids {
            let mut send = || -> std::io::Result<()> {
                self.cmd(&format!("MAIL FROM:<sender{n}@example.org>"), "250")?;
                self.cmd(&format!("RCPT TO:<{ACCOUNT}>"), "250")?;
                self.cmd("DATA", "354")?;
                let mut data = dot_stuff(&expected(n));
                data.extend_from_slice(b".\r\n");
                self.writer.write_all(&data)?;
                Ok(())
            };
            if let Err(e) = send() {
                // The final dot never went out: this message cannot count.
                out.ended = format!("before the end of message {n}: {e}");
                return out;
            }
            match self.reply() {
                Ok(r) if r == "250 2.0.0 OK, message delivered" => out.acked.push(n),
                Ok(r) => {
                    out.rejected.push((n, r.clone()));
                    out.ended = format!("message {n} rejected: {r}");
                    return out;
                }
                Err(e) => {
                    out.in_flight.push(n);
                    out.ended = format!("awaiting the reply to message {n}: {e}");
                    return out;
                }
            }
        }
        out.ended = "ran out of message numbers".into();
        out
    }
}

/// What the test knows about INBOX across cycles.
#[derive(Default)]
struct Ledger {
    /// Messages that must be in INBOX, with the UID a client saw them under
    /// (None until the first check after their delivery).
    must: BTreeMap<usize, Option<u32>>,
    /// Messages that may be in INBOX (sent, unanswered, before the kill).
    may: BTreeSet<usize>,
    /// The highest UID seen at the last check.
    max_uid: u32,
    uid_validity: Option<String>,
}

#[test]
fn acknowledged_mail_survives_sigkill_under_concurrent_delivery() {
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash test seed {seed} (set ROOST_CRASH_SEED={seed} to replay the timings)");
    let mut rng = XorShift(seed);
    let mut server = Server::start();
    let mut ledger = Ledger::default();
    let mut total_acked = 0;

    for cycle in 0..CYCLES {
        let cycle_start = Instant::now();
        let port = server.port(SMTP);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                thread::spawn(move || {
                    let base = cycle * CYCLE_STRIDE + c * CLIENT_STRIDE;
                    match Client::connect(port) {
                        Ok(client) => client.run(base..base + CLIENT_STRIDE),
                        Err(e) => Outcome {
                            ended: format!("connect: {e}"),
                            ..Outcome::default()
                        },
                    }
                })
            })
            .collect();
        let span = (KILL_MAX - KILL_MIN).as_millis() as u64;
        let delay = KILL_MIN + Duration::from_millis(rng.next() % (span + 1));
        thread::sleep(delay);
        server.kill9();
        let outcomes: Vec<Outcome> = clients
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect();

        let mut acked = 0;
        for (c, o) in outcomes.iter().enumerate() {
            assert!(
                o.rejected.is_empty(),
                "cycle {cycle} client {c}: the server refused mail before the kill: {:?}\nlog:\n{}",
                o.rejected,
                server.log()
            );
            acked += o.acked.len();
            ledger.must.extend(o.acked.iter().map(|&n| (n, None)));
            ledger.may.extend(o.in_flight.iter().copied());
        }
        let in_flight = ledger.may.len();
        eprintln!(
            "cycle {cycle}: killed after {delay:?}; {acked} messages acknowledged, \
             {in_flight} unanswered; per client: {:?}",
            outcomes.iter().map(|o| o.acked.len()).collect::<Vec<_>>()
        );
        total_acked += acked;

        server.spawn();
        check_inbox(&server, &mut ledger, cycle);
        server.assert_consistent(ACCOUNT);
        eprintln!(
            "cycle {cycle}: restart and check passed, {} messages in INBOX, cycle took {:?}",
            ledger.must.len(),
            cycle_start.elapsed()
        );
    }

    assert!(
        total_acked > 0,
        "no message was acknowledged in any cycle: the test proved nothing"
    );
    let log = server.log();
    assert!(
        !log.contains("panicked"),
        "the server panicked; log:\n{log}"
    );
    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
    eprintln!("crash test took {:?}", started.elapsed());
    drop(server);
    eprintln!("crash test with cleanup took {:?}", started.elapsed());
}

/// After a restart: INBOX holds every message of `ledger.must` under its
/// old UID, possibly some of `ledger.may`, nothing else, nothing twice, each
/// byte for byte as sent. Updates the ledger for the next cycle.
fn check_inbox(server: &Server, ledger: &mut Ledger, cycle: usize) {
    let mut imap = Imap::login(server.port(IMAP));
    let r = imap.cmd("SELECT INBOX");
    assert!(r.contains("OK [READ-WRITE] SELECT completed"), "{r}");
    let validity = r
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .map(str::to_string);
    assert!(validity.is_some(), "no UIDVALIDITY in {r}");
    if let Some(before) = &ledger.uid_validity {
        assert_eq!(
            validity.as_ref(),
            Some(before),
            "UIDVALIDITY changed in cycle {cycle}"
        );
    }
    ledger.uid_validity = validity;

    let exists = r
        .lines()
        .find_map(|l| {
            l.strip_prefix("* ")?
                .strip_suffix(" EXISTS")?
                .parse::<usize>()
                .ok()
        })
        .expect("EXISTS in SELECT");
    let fetched = if exists == 0 {
        Vec::new()
    } else {
        imap.fetch_all()
    };
    assert_eq!(
        fetched.len(),
        exists,
        "FETCH 1:* returned a different count than EXISTS"
    );

    let mut seen: BTreeMap<usize, u32> = BTreeMap::new();
    let mut last_uid = 0;
    for f in &fetched {
        assert!(
            f.uid > last_uid,
            "UIDs not ascending at seq {}: {} after {last_uid}",
            f.seq,
            f.uid
        );
        last_uid = f.uid;
        let n = message_number(&f.body).unwrap_or_else(|| {
            panic!(
                "cycle {cycle}: a message with no known Message-ID at seq {}:\n{}",
                f.seq,
                String::from_utf8_lossy(&f.body[..f.body.len().min(2000)])
            )
        });
        assert!(
            ledger.must.contains_key(&n) || ledger.may.contains(&n),
            "cycle {cycle}: message {n} is in INBOX but was never fully sent, or was \
             refused, or was unanswered and absent at an earlier check"
        );
        if let Some(uid) = seen.insert(n, f.uid) {
            panic!(
                "cycle {cycle}: message {n} is in INBOX twice, as UID {uid} and UID {}",
                f.uid
            );
        }
        let want = expected(n);
        let body = strip_prefix(&f.body, &want);
        assert!(
            body == &want[..],
            "cycle {cycle}: message {n} (UID {}) differs from what was sent ({} bytes stored)",
            f.uid,
            f.body.len()
        );
    }

    let lost: Vec<usize> = ledger
        .must
        .keys()
        .filter(|n| !seen.contains_key(n))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "cycle {cycle}: {} acknowledged messages are missing: {:?}\nlog:\n{}",
        lost.len(),
        &lost[..lost.len().min(20)],
        server.log()
    );
    for (n, old) in ledger.must.iter_mut() {
        let uid = seen[n];
        if let Some(old) = *old {
            assert_eq!(uid, old, "cycle {cycle}: message {n} changed UID");
        } else {
            // First seen now: a UID no client saw before the crash.
            assert!(
                uid > ledger.max_uid,
                "cycle {cycle}: message {n} reuses UID {uid}"
            );
        }
        *old = Some(uid);
    }
    let recovered: Vec<usize> = ledger
        .may
        .iter()
        .filter(|n| seen.contains_key(n))
        .copied()
        .collect();
    for &n in &recovered {
        assert!(
            seen[&n] > ledger.max_uid,
            "cycle {cycle}: message {n} reuses a UID"
        );
        ledger.must.insert(n, Some(seen[&n]));
    }
    eprintln!(
        "cycle {cycle}: {} of {} unanswered messages were delivered anyway",
        recovered.len(),
        ledger.may.len()
    );
    // Anything unanswered and absent now must stay absent: it drops out of
    // both sets.
    ledger.may.clear();
    ledger.max_uid = last_uid.max(ledger.max_uid);
    let r = imap.cmd("LOGOUT");
    assert!(r.contains("OK LOGOUT completed"), "{r}");
}
