//! The outgoing queue under load: roost (`serve`, release build) takes N
//! messages on submission over C sessions, all for a recipient at
//! `[127.0.0.1]`, and delivers them through its queue to Postfix's
//! `smtp-sink` on loopback (`[queue] remote_port`). It prints the
//! submission rate and the queue's delivery rate (N over the time from
//! the first submission until the queue is empty). Then, with the sink
//! stopped, it queues M more messages (each tried once and kept for its
//! retry) and prints roost's resident memory before and after.
//!
//! Runs as `cargo bench --bench queue_load [-- --messages N --sessions C
//! --size S --kept M]` (defaults: 10,000 messages of 1 KiB over 20
//! sessions; 100,000 kept). It needs Debian's postfix package for
//! smtp-sink. It asserts nothing about the figures: it is a measuring
//! tool.

#[path = "server.rs"]
mod server;

use server::{free_port, roost_binary, rss_kib, start_sink, wait_for_port, Killed};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// The longest the queue may take to empty.
const DEADLINE: Duration = Duration::from_secs(1800);
/// "\0u@bench.test\0benchsecret1"
const PLAIN: &str = "AHVAYmVuY2gudGVzdABiZW5jaHNlY3JldDE=";

struct Load {
    messages: usize,
    sessions: usize,
    size: usize,
    kept: usize,
}

fn main() {
    let load = match parse_args() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("queue_load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&load) {
        eprintln!("queue_load: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> Result<Load, String> {
    let mut load = Load {
        messages: 10_000,
        sessions: 20,
        size: 1024,
        kept: 100_000,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--messages" => load.messages = value,
            "--sessions" => load.sessions = value.max(1),
            "--size" => load.size = value,
            "--kept" => load.kept = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(load)
}

fn admin(binary: &Path, data: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(binary)
        .arg("admin")
        .arg("--dir")
        .arg(data)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "roost admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(load: &Load) -> Result<(), String> {
    if !Path::new(SMTP_SINK).exists() {
        return Err(format!("{SMTP_SINK} is missing (apt-get install postfix)"));
    }
    let binary = roost_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let (sink_port, submission) = (free_port()?, free_port()?);
    let config = dir.path().join("roost.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nhostname = \"bench.test\"\n\
             [log]\nlevel = \"warn\"\n\
             [listen]\nsubmission = [\"127.0.0.1:{submission}\"]\n\
             [dns]\nreverse_lookup = false\n\
             [queue]\nremote_port = {sink_port}\n",
            data.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.path().join("roost.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&binary)
        .args(["serve", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("roost: {e}"))?;
    let roost = Killed(child);
    wait_for_port(submission)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("roost.sock").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    admin(&binary, &data, &["domain", "add", "bench.test"])?;
    admin(
        &binary,
        &data,
        &[
            "account",
            "add",
            "u@bench.test",
            "--password",
            "benchsecret1",
        ],
    )?;
    let pid = roost.0.id();
    println!(
        "roost queue: {} messages of {} bytes over {} sessions to smtp-sink\n",
        load.messages, load.size, load.sessions
    );

    // Delivery: the sink takes everything.
    let sink = start_sink(sink_port)?;
    let start = Instant::now();
    submit(submission, load.messages, load.sessions, load.size)?;
    let submitted = start.elapsed().as_secs_f64();
    wait_empty(&binary, &data)?;
    let emptied = start.elapsed().as_secs_f64();
    println!("| phase | messages | seconds | msg/s |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| submission (queued, durable before 250) | {} | {submitted:.1} | {:.0} |",
        load.messages,
        load.messages as f64 / submitted
    );
    println!(
        "| first submission to empty queue (delivered to smtp-sink) | {} | {emptied:.1} | {:.0} |",
        load.messages,
        load.messages as f64 / emptied
    );
    drop(sink);

    // Memory: messages kept for their retry (the sink is gone).
    if load.kept > 0 {
        let before = rss_kib(pid)?;
        let start = Instant::now();
        submit(submission, load.kept, load.sessions, load.size)?;
        let queued = start.elapsed().as_secs_f64();
        // Let the first attempts run and fail.
        std::thread::sleep(Duration::from_secs(10));
        let after = rss_kib(pid)?;
        let listed = admin(&binary, &data, &["queue", "list", "--limit", "1"])?;
        println!(
            "\n{} messages kept in the queue (queued in {queued:.0} s): RSS {} MiB before, {} MiB after; first listed: {}",
            load.kept,
            before / 1024,
            after / 1024,
            listed.trim()
        );
    }
    Ok(())
}

/// Submits `n` messages over `sessions` connections, each its own thread.
fn submit(port: u16, n: usize, sessions: usize, size: usize) -> Result<(), String> {
    let body: String = "x".repeat(70) + "\r\n";
    let mut message =
        String::from("From: u@bench.test\r\nTo: someone@[127.0.0.1]\r\nSubject: load\r\n\r\n");
    while message.len() < size {
        message.push_str(&body);
    }
    let threads: Vec<_> = (0..sessions)
        .map(|i| {
            let count = n / sessions + usize::from(i < n % sessions);
            let message = message.clone();
            std::thread::spawn(move || session(port, count, &message))
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a session panicked".to_string())??;
    }
    Ok(())
}

fn session(port: u16, count: usize, message: &str) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let mut reply = || -> Result<String, String> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("connection closed".into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line);
            }
        }
    };
    let expect = |r: String, code: &str| {
        if r.starts_with(code) {
            Ok(())
        } else {
            Err(format!("expected {code}, got {r}"))
        }
    };
    expect(reply()?, "220")?;
    let send = |w: &mut TcpStream, s: &str| w.write_all(s.as_bytes()).map_err(|e| e.to_string());
    send(&mut writer, "EHLO load.example\r\n")?;
    expect(reply()?, "250")?;
    send(&mut writer, &format!("AUTH PLAIN {PLAIN}\r\n"))?;
    expect(reply()?, "235")?;
    for _ in 0..count {
        // Pipelined envelope (RFC 2920).
        send(
            &mut writer,
            "MAIL FROM:<u@bench.test>\r\nRCPT TO:<someone@[127.0.0.1]>\r\nDATA\r\n",
        )?;
        expect(reply()?, "250")?;
        expect(reply()?, "250")?;
        expect(reply()?, "354")?;
        send(&mut writer, message)?;
        send(&mut writer, ".\r\n")?;
        expect(reply()?, "250")?;
    }
    send(&mut writer, "QUIT\r\n")?;
    Ok(())
}

/// Waits until the queue lists nothing.
fn wait_empty(binary: &Path, data: &Path) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if admin(binary, data, &["queue", "list", "--limit", "1"])?.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the queue did not empty in time".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
