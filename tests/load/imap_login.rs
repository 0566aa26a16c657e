//! IMAP logins per second from 20 concurrent clients: first logins (each
//! pays an argon2id verification) and repeat logins (a remembered
//! verification). Each login is a fresh connection: greeting, LOGIN,
//! LOGOUT. In the same run, the same logins against Dovecot from Debian
//! (`/usr/sbin/dovecot`), started by this tool on loopback with its own
//! configuration in a temporary directory and the same accounts as a
//! passwd-file of plain passwords (Dovecot's own fast path: no hash to
//! verify at all); skipped, saying so, where Dovecot is missing or the
//! tool does not run as root (Dovecot must switch users).
//!
//! `cargo bench --bench imap_login [-- ACCOUNTS REPEATS]`; prints a
//! markdown table for BENCHMARKS.md.

#[path = "dovecot.rs"]
mod dovecot;
#[path = "server.rs"]
mod server;

use dovecot::{login, Dovecot};
use server::{roost_binary, Server};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

const CLIENTS: usize = 20;
const DEFAULT_ACCOUNTS: usize = 100;
const DEFAULT_REPEATS: usize = 100;

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
                        login(port, &users[u], dovecot::PASSWORD)?;
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
        server.admin(&["account", "add", u, "--password", dovecot::PASSWORD])?;
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
    println!("| roost, first (argon2id) | {first} | {first_rate:.0} |");
    println!("| roost, repeat (remembered) | {again} | {again_rate:.0} |");
    drop(server);
    match Dovecot::start(&users, dovecot::PASSWORD) {
        Ok(dovecot) => {
            let port = dovecot.port;
            let (first, d_first) = measure(port, users.clone(), |k| {
                (k..accounts).step_by(CLIENTS).collect()
            })?;
            let (again, d_again) = measure(port, users.clone(), |k| vec![k; repeats])?;
            println!("| Dovecot, first (plain passwords) | {first} | {d_first:.0} |");
            println!("| Dovecot, repeat (plain passwords) | {again} | {d_again:.0} |");
            println!();
            println!(
                "roost / Dovecot: first logins {:.2}x, repeat logins {:.2}x",
                first_rate / d_first,
                again_rate / d_again
            );
        }
        Err(e) => println!("\nDovecot not measured: {e}"),
    }
    Ok(())
}
