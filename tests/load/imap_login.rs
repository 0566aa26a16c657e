//! IMAP logins per second from 20 concurrent clients: first logins (each
//! pays an argon2id verification) and repeat logins (a remembered
//! verification). Each login is a fresh connection: greeting, LOGIN,
//! LOGOUT.
//!
//! `cargo bench --bench imap_login [-- ACCOUNTS REPEATS]`; prints a
//! markdown table for BENCHMARKS.md.

#[path = "server.rs"]
mod server;

use server::{roost_binary, Server};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 20;
const DEFAULT_ACCOUNTS: usize = 100;
const DEFAULT_REPEATS: usize = 100;
const PASSWORD: &str = "login-bench-secret";

fn main() -> ExitCode {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .filter_map(|a| a.parse().ok())
        .collect();
    let accounts = args
        .first()
        .copied()
        .unwrap_or(DEFAULT_ACCOUNTS)
        .max(CLIENTS);
    let repeats = args.get(1).copied().unwrap_or(DEFAULT_REPEATS);
    match run(accounts, repeats) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imap_login: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One connection: greeting, LOGIN, LOGOUT; the LOGIN must succeed.
fn login(port: u16, user: &str) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    r.get_mut()
        .write_all(format!("a LOGIN {user} {PASSWORD}\r\nb LOGOUT\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("closed before LOGIN's answer".into());
        }
        if line.starts_with("a ") {
            return if line.starts_with("a OK") {
                Ok(())
            } else {
                Err(format!("LOGIN {user}: {line}"))
            };
        }
    }
}

/// Runs `per_client(k)` logins on each of CLIENTS threads; logins/s.
fn measure(
    port: u16,
    users: Arc<Vec<String>>,
    logins_of: impl Fn(usize) -> Vec<usize> + Sync,
) -> Result<(usize, f64), String> {
    let start = Instant::now();
    let total = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let users = users.clone();
                let picks = logins_of(k);
                s.spawn(move || -> Result<usize, String> {
                    for &u in &picks {
                        login(port, &users[u])?;
                    }
                    Ok(picks.len())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a client panicked".to_string())?)
            .sum::<Result<usize, String>>()
    })?;
    Ok((total, total as f64 / start.elapsed().as_secs_f64()))
}

fn run(accounts: usize, repeats: usize) -> Result<(), String> {
    let binary = roost_binary()?;
    let server = Server::start(&binary)?;
    let users: Vec<String> = (0..accounts)
        .map(|i| format!("bench{i}@localhost"))
        .collect();
    for u in &users {
        server.admin(&["account", "add", u, "--password", PASSWORD])?;
    }
    let users = Arc::new(users);
    let port = server.imap_port();
    // First logins: every account once, shared out over the clients.
    let (first, first_rate) = measure(port, users.clone(), |k| {
        (k..accounts).step_by(CLIENTS).collect()
    })?;
    // Repeat logins: each client logs in to one account again and again.
    let (again, again_rate) = measure(port, users.clone(), |k| vec![k; repeats])?;
    println!("| logins, {CLIENTS} concurrent clients, a connection each | logins | logins/s |");
    println!("|---|---:|---:|");
    println!("| first (argon2id) | {first} | {first_rate:.0} |");
    println!("| repeat (remembered) | {again} | {again_rate:.0} |");
    Ok(())
}
