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

#[path = "server.rs"]
mod server;

use server::{roost_binary, Server};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::process::{Child, Command, Stdio};
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
    println!("| roost, first (argon2id) | {first} | {first_rate:.0} |");
    println!("| roost, repeat (remembered) | {again} | {again_rate:.0} |");
    drop(server);
    match Dovecot::start(&users) {
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

/// Dovecot from Debian, on loopback, killed when dropped.
struct Dovecot {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    const BINARY: &'static str = "/usr/sbin/dovecot";
    /// The uid and gid mail is kept under (nobody).
    const MAIL_ID: u32 = 65534;

    fn start(users: &[String]) -> Result<Dovecot, String> {
        if !Path::new(Self::BINARY).exists() {
            return Err(format!(
                "{} is not installed (apt-get install dovecot-imapd)",
                Self::BINARY
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        let id = Self::MAIL_ID;
        let status = Command::new("chown")
            .arg(format!("{id}:{id}"))
            .arg(d.join("home"))
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("cannot chown its mail home (not root?)".into());
        }
        let passwd: String = users
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}{PASSWORD}\n"))
            .collect();
        std::fs::write(d.join("passwd"), passwd).map_err(|e| e.to_string())?;
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
log_path = {d}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\n\
auth_mechanisms = plain login\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
userdb {{\n  driver = static\n  args = uid={id} gid={id} home={d}/home/%u\n}}\n\
first_valid_uid = 1\nmail_location = maildir:~/Maildir\n\
service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            d = d.display()
        );
        let conf_path = d.join("dovecot.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let child = Command::new(Self::BINARY)
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start dovecot: {e}"))?;
        let dovecot = Dovecot {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("dovecot did not come up".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        login(port, &users[0]).map_err(|e| format!("dovecot login: {e}"))?;
        Ok(dovecot)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
