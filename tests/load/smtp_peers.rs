//! SMTP delivery beside Postfix: Postfix's own `smtp-source` sends the
//! same load, one receiver after the other in one run, to
//!
//! - `smtp-sink` (Postfix's test server: it answers and stores nothing,
//!   the protocol's ceiling on this machine),
//! - Postfix from Debian, accepting into its own disk queue (started by
//!   this tool on loopback with its own configuration in a temporary
//!   directory; its queue hands every message to the `discard` transport,
//!   so delivery costs it nothing more),
//! - roost (`localserve`, release build), delivering each message durably
//!   into a mailbox before it answers 250,
//!
//! and prints one markdown row per receiver: messages per second, and
//! roost's rate as a multiple of Postfix's and as a share of the sink's.
//! For roost it also prints the store's fsyncs per message.
//!
//! One more row bounds what delivery could gain: the same roost with the
//! same load, but to an unknown recipient, refused at RCPT (smtp-source
//! then sends RSET and QUIT). That is the session without DATA and
//! delivery, one round trip fewer, and its rate as a share of the sink's
//! is the most a cheaper delivery could bring roost to.
//!
//! Every row also says where the machine's CPU went while it ran, per
//! message: smtp-source's own (its user and system time), the rest of
//! the machine's busy time (the receiver, and the kernel's work for it:
//! everything but smtp-source, on a machine otherwise quiet), and how
//! much of the time the CPUs were idle. A receiver that leaves no idle
//! time is bound by CPU, not by waiting.
//!
//! Runs as `cargo bench --bench smtp_peers [-- --messages N --size S
//! --sessions C]` (defaults: 10,000 messages of 1 KiB over 20 sessions).
//! It needs Debian's postfix package, and root (Postfix's queue belongs to
//! the postfix user); without either, it says so and measures what it
//! can. It asserts nothing about the figures: it is a measuring tool.

#[path = "../common/postfix.rs"]
mod postfix;
#[path = "server.rs"]
mod server;

use postfix::Postfix;
use server::{free_port, roost_binary, start_sink, Server};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";
/// The longest any receiver may take for the whole load.
const DEADLINE: Duration = Duration::from_secs(600);

struct Load {
    messages: usize,
    size: usize,
    sessions: usize,
}

fn main() {
    let load = match parse_args() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("smtp_peers: {e}");
            std::process::exit(2);
        }
    };
    if !Path::new(SMTP_SOURCE).exists() {
        eprintln!(
            "smtp_peers: {SMTP_SOURCE} is missing (apt-get install postfix); nothing to measure"
        );
        return;
    }
    println!(
        "smtp-source, {} messages of {} bytes over {} sessions\n",
        load.messages, load.size, load.sessions
    );
    println!("| receiver | msg/s | seconds | CPU us/msg, receiver | CPU us/msg, smtp-source | idle | note |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let sink = measure_sink(&load);
    let postfix = measure_postfix(&load);
    let (roost, undelivered) = measure_roost(&load);
    println!();
    if let (Some(r), Some(p)) = (roost, postfix) {
        println!("roost / Postfix: {:.2}x", r / p);
    }
    if let (Some(r), Some(s)) = (roost, sink) {
        println!("roost / smtp-sink: {:.2}", r / s);
    }
    if let (Some(r), Some(s)) = (undelivered, sink) {
        println!("roost refusing at RCPT / smtp-sink: {:.2}", r / s);
    }
}

/// What smtp-source must say of a load refused at RCPT: one warning per
/// message, each this refusal, and nothing else.
const REFUSED: &str = "warning: recipient rejected: 550 5.1.1 No such user here: nobody@localhost";

fn parse_args() -> Result<Load, String> {
    let mut load = Load {
        messages: 10_000,
        size: 1024,
        sessions: 20,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--messages" => load.messages = value("--messages")?,
            "--size" => load.size = value("--size")?,
            "--sessions" => load.sessions = value("--sessions")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(load)
}

/// Clock ticks per second in `/proc` (USER_HZ: 100 on Linux, whatever
/// the kernel's own tick rate).
const USER_HZ: f64 = 100.0;

/// CPU time so far, in seconds: the machine's busy (user, nice, system,
/// irq, softirq) and idle (idle, iowait) time over all CPUs, and that of
/// this process's children that have ended and been waited for.
#[derive(Clone, Copy)]
struct Cpu {
    busy: f64,
    idle: f64,
    children: f64,
}

fn cpu_now() -> Result<Cpu, String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let all: Vec<f64> = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if all.len() < 7 {
        return Err("/proc/stat has no cpu line".into());
    }
    let me =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    // proc(5): after the command in parentheses, field 3 (state) on;
    // cutime and cstime are fields 16 and 17.
    let fields: Vec<f64> = me
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(13).take(2))
        .into_iter()
        .flatten()
        .filter_map(|v| v.parse().ok())
        .collect();
    if fields.len() != 2 {
        return Err("/proc/self/stat has no children's times".into());
    }
    Ok(Cpu {
        busy: (all[0] + all[1] + all[2] + all[5] + all[6]) / USER_HZ,
        idle: (all[3] + all[4]) / USER_HZ,
        children: (fields[0] + fields[1]) / USER_HZ,
    })
}

/// One load's figures.
struct Run {
    rate: f64,
    secs: f64,
    /// CPU per message, microseconds: the machine's busy time less
    /// smtp-source's, and smtp-source's.
    receiver_us: f64,
    source_us: f64,
    /// Share of the CPUs' time spent idle, in percent.
    idle: f64,
}

/// Runs smtp-source against `port`.
fn source(load: &Load, port: u16, to: &str) -> Result<Run, String> {
    source_expecting(load, port, to, false)
}

/// [`source`]; `refused`: every recipient is refused at RCPT, and
/// smtp-source goes on (`-A`) to the next message.
fn source_expecting(load: &Load, port: u16, to: &str, refused: bool) -> Result<Run, String> {
    let before = cpu_now()?;
    let start = Instant::now();
    let mut child = Command::new(SMTP_SOURCE)
        .args(if refused { &["-A"][..] } else { &[][..] })
        .args(["-s", &load.sessions.to_string()])
        .args(["-m", &load.messages.to_string()])
        .args(["-l", &load.size.to_string()])
        .args([
            "-M",
            "client.example.org",
            "-f",
            "load@example.org",
            "-t",
            to,
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("smtp-source: {e}"))?;
    // Read while it runs: a refused load writes a warning per message,
    // more than a pipe holds.
    let mut stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut err = Vec::new();
            e.read_to_end(&mut err)
                .map(|_| String::from_utf8_lossy(&err).into_owned())
        })
    });
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let err = match stderr.take().map(|t| t.join()) {
                Some(Ok(Ok(err))) => err,
                Some(Ok(Err(e))) => return Err(format!("smtp-source's stderr: {e}")),
                Some(Err(_)) | None => return Err("smtp-source's stderr was not read".into()),
            };
            let lines: Vec<&str> = err.lines().collect();
            let unexpected = lines.iter().find(|l| !(refused && l.ends_with(REFUSED)));
            if !status.success() || unexpected.is_some() {
                let said = unexpected.map_or("", |l| l.trim());
                return Err(format!("smtp-source: {status}: {said}"));
            }
            if refused && lines.len() != load.messages {
                return Err(format!(
                    "smtp-source: {} refusals for {} messages",
                    lines.len(),
                    load.messages
                ));
            }
            break;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err("smtp-source did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = start.elapsed().as_secs_f64();
    let after = cpu_now()?;
    let n = load.messages as f64;
    let source = after.children - before.children;
    let busy = after.busy - before.busy;
    let idle = after.idle - before.idle;
    Ok(Run {
        rate: n / secs,
        secs,
        receiver_us: (busy - source).max(0.0) * 1e6 / n,
        source_us: source * 1e6 / n,
        idle: 100.0 * idle / (busy + idle).max(f64::MIN_POSITIVE),
    })
}

fn report(name: &str, r: Result<Run, String>, note: &str) -> Option<f64> {
    match r {
        Ok(r) => {
            println!(
                "| {name} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0}% | {note} |",
                r.rate, r.secs, r.receiver_us, r.source_us, r.idle
            );
            Some(r.rate)
        }
        Err(e) => {
            println!("| {name} | - | - | - | - | - | {e} |");
            None
        }
    }
}

fn measure_sink(load: &Load) -> Option<f64> {
    let run = || -> Result<Run, String> {
        let port = free_port()?;
        let _sink = start_sink(port)?;
        source(load, port, "sink@example.org")
    };
    report("smtp-sink", run(), "answers, stores nothing")
}

fn measure_postfix(load: &Load) -> Option<f64> {
    let run = || -> Result<Run, String> {
        let port = free_port()?;
        // Every message is taken into the queue (fsynced before 250, as
        // Postfix always does) and then discarded.
        let _postfix = Postfix::start(
            port,
            "relay_domains = example.org localhost\n             relay_transport = discard\n             default_transport = discard\n",
        )?;
        source(load, port, "someone@example.org")
    };
    report(
        "Postfix (into its queue)",
        run(),
        "fsyncs its queue file before 250",
    )
}

/// roost delivering, and (first, on the same server) roost refusing
/// every recipient at RCPT.
fn measure_roost(load: &Load) -> (Option<f64>, Option<f64>) {
    let mut fsyncs_per_message = String::new();
    let mut undelivered = Err("not run".to_string());
    let mut run = || -> Result<Run, String> {
        let binary = roost_binary()?;
        let server = Server::start(&binary)?;
        undelivered = source_expecting(load, server.smtp_port(), "nobody@localhost", true);
        let fsyncs = |s: &Server| -> Result<u64, String> {
            let v: serde_json::Value =
                serde_json::from_str(&s.admin(&["stats"])?).map_err(|e| e.to_string())?;
            v["fsyncs"].as_u64().ok_or("no fsyncs counter".to_string())
        };
        let before = fsyncs(&server)?;
        let r = source(load, server.smtp_port(), "roost@localhost")?;
        let after = fsyncs(&server)?;
        fsyncs_per_message = format!(
            "durable in a mailbox before 250; {:.2} fsyncs/msg",
            (after - before) as f64 / load.messages as f64
        );
        Ok(r)
    };
    let r = run();
    let undelivered = report(
        "roost, recipient refused at RCPT",
        undelivered,
        "no DATA, no delivery: RSET and QUIT",
    );
    (report("roost", r, &fsyncs_per_message), undelivered)
}
