//! TLS handshakes per second on IMAPS (993's stand-in) from 20 concurrent
//! clients: full handshakes (no resumption: certificate, key exchange,
//! signature) and resumed ones (a TLS 1.3 session ticket from an earlier
//! connection). Each is a fresh TCP connection that completes the
//! handshake, reads the IMAP greeting and closes.
//!
//! `cargo bench --bench tls_handshakes [-- SECONDS]` (default 10 per
//! kind); prints a markdown table for BENCHMARKS.md.

#[path = "server.rs"]
mod server;

use server::{roost_binary, Server};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 20;
const DEFAULT_SECONDS: u64 = 10;

fn main() -> ExitCode {
    let seconds = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    match run(Duration::from_secs(seconds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls_handshakes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client_config(server: &Server, resume: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = std::fs::read(server.cert_path()).map_err(|e| format!("certificate: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// One connection: handshake, greeting, close. Whether it resumed.
fn handshake(port: u16, config: &Arc<rustls::ClientConfig>) -> Result<bool, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut greeting = String::new();
    tls.read_line(&mut greeting).map_err(|e| e.to_string())?;
    if !greeting.starts_with("* OK") {
        return Err(format!("greeting: {greeting:?}"));
    }
    let resumed = tls.get_ref().conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok(resumed)
}

/// Handshakes per second from CLIENTS threads for `time`, and how many
/// of them resumed.
fn measure(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    time: Duration,
) -> Result<(usize, usize, f64), String> {
    let start = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let config = config.clone();
                s.spawn(move || -> Result<(usize, usize), String> {
                    let (mut n, mut resumed) = (0, 0);
                    while start.elapsed() < time {
                        resumed += usize::from(handshake(port, &config)?);
                        n += 1;
                    }
                    Ok((n, resumed))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a client panicked".to_string())?)
            .collect::<Result<Vec<_>, String>>()
    })?;
    let total: usize = results.iter().map(|r| r.0).sum();
    let resumed: usize = results.iter().map(|r| r.1).sum();
    Ok((total, resumed, total as f64 / start.elapsed().as_secs_f64()))
}

fn run(time: Duration) -> Result<(), String> {
    let server = Server::start(&roost_binary()?)?;
    let port = server.imaps_port();
    let (full, full_resumed, full_rate) = measure(port, client_config(&server, false)?, time)?;
    if full_resumed != 0 {
        return Err(format!(
            "{full_resumed} handshakes resumed without resumption"
        ));
    }
    let resuming = client_config(&server, true)?;
    // One connection first, for a ticket to resume with.
    handshake(port, &resuming)?;
    let (again, resumed, again_rate) = measure(port, resuming, time)?;
    println!("| TLS 1.3 handshakes on IMAPS, {CLIENTS} concurrent clients | handshakes | resumed | handshakes/s |");
    println!("|---|---:|---:|---:|");
    println!("| full (ECDSA P-256 certificate, X25519) | {full} | 0 | {full_rate:.0} |");
    println!("| with a session ticket | {again} | {resumed} | {again_rate:.0} |");
    Ok(())
}
