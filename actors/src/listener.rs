//! Listener actors: one per configured address and protocol.
//!
//! A listener binds its socket when it starts (so a taken port fails the
//! start, loudly) and runs an accept loop. Each accepted connection gets a
//! task of its own for the TLS handshake, so a slow handshake never holds up
//! the next accept, and then a session actor started as a temporary child of
//! the `connections` supervisor: a crash in one session ends that connection
//! and nothing else.

use crate::conn::{BoxStream, ConnCounter, ConnGuard, Peer, PerIpCounter};
use crate::imap::{ImapArgs, ImapSession};
use crate::smtp::{SmtpArgs, SmtpSession};
use crate::task::TaskGuard;
use crate::tls::{TlsFacts, TlsSetup};
use ractor::{Actor, ActorProcessingErr, ActorRef, SpawnErr};
use roost_store::Store;
use roost_supervisor::{start_child, ActorKind, ChildSpec, Restart, SupervisorMsg};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// Open connections one listener allows; past it new connections are told
/// to come back later and closed.
pub const MAX_CONNECTIONS_PER_LISTENER: usize = 1000;
/// How long a client may take to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default largest message accepted over SMTP.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// MX delivery, port 25.
    Smtp,
    /// Message submission with STARTTLS-less plain connection, port 587.
    Submission,
    /// Message submission over implicit TLS, port 465 (RFC 8314).
    Submissions,
    Imap,
    /// IMAP over implicit TLS, port 993.
    Imaps,
    /// HTTPS, port 443, where ALPN `imap` and `smtp` reach IMAP and
    /// submission for clients that can only get through on 443.
    Https,
}

impl Protocol {
    pub fn implicit_tls(self) -> bool {
        matches!(
            self,
            Protocol::Submissions | Protocol::Imaps | Protocol::Https
        )
    }

    pub fn is_submission(self) -> bool {
        matches!(self, Protocol::Submission | Protocol::Submissions)
    }

    pub fn is_smtp(self) -> bool {
        matches!(
            self,
            Protocol::Smtp | Protocol::Submission | Protocol::Submissions
        )
    }

    pub fn is_imap(self) -> bool {
        matches!(self, Protocol::Imap | Protocol::Imaps)
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Submission => "submission",
            Protocol::Submissions => "submissions",
            Protocol::Imap => "imap",
            Protocol::Imaps => "imaps",
            Protocol::Https => "https",
        }
    }

    /// The ALPN protocols (RFC 7301) a listener offers: on 443, IMAP and
    /// SMTP (RFC 9051 and RFC 8314 register `imap` and `smtp`) besides
    /// HTTP/1.1. Elsewhere none: with a list, rustls refuses a client
    /// whose ALPN offer matches nothing in it, and senders on port 25
    /// must never fail that way.
    pub fn alpn(self) -> &'static [&'static [u8]] {
        match self {
            Protocol::Https => &[b"http/1.1", b"imap", b"smtp"],
            _ => &[],
        }
    }
}

/// Serves an HTTP connection that came in over TLS on the HTTPS port.
pub type HttpsHandler = Arc<dyn Fn(BoxStream, SocketAddr) + Send + Sync>;

static HTTPS_HANDLER: std::sync::OnceLock<Mutex<Option<HttpsHandler>>> = std::sync::OnceLock::new();

/// Where HTTP connections on the HTTPS port go: the web server registers
/// itself when it starts. Until then they are closed.
pub fn set_https_handler(handler: Option<HttpsHandler>) {
    let slot = HTTPS_HANDLER.get_or_init(|| Mutex::new(None));
    if let Ok(mut s) = slot.lock() {
        *s = handler;
    }
}

fn https_handler() -> Option<HttpsHandler> {
    HTTPS_HANDLER
        .get()
        .and_then(|s| s.lock().ok().and_then(|h| h.clone()))
}

/// What every session needs from the server around it.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub hostname: String,
    pub max_message_size: u64,
    pub max_connections: usize,
    /// Connections one client address may have open on this listener
    /// (the SMTP listeners); `None`: no limit of its own.
    pub max_connections_per_ip: Option<usize>,
    /// The per-address limit applies to loopback clients too.
    pub limit_loopback: bool,
    /// RFC 9585: how often a long IMAP command reports progress.
    pub progress_interval: std::time::Duration,
    pub shutdown: watch::Receiver<bool>,
    /// This listener's TLS (implicit, or for STARTTLS).
    pub tls: Option<TlsAcceptor>,
    /// Every listener's TLS, for what a handshake tells the session.
    pub tls_setup: Option<Arc<TlsSetup>>,
    pub connections: ActorRef<SupervisorMsg>,
    pub dns: crate::dns::Dns,
    /// The server's change events (IMAP NOTIFY).
    pub hub: crate::events::EventHub,
}

pub struct ListenerArgs {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub services: Services,
}

pub struct Listener;

pub struct ListenerState {
    _accept_loop: TaskGuard,
}

pub enum ListenerMsg {}

impl Actor for Listener {
    type Msg = ListenerMsg;
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ListenerMsg>,
        args: ListenerArgs,
    ) -> Result<ListenerState, ActorProcessingErr> {
        if args.protocol.implicit_tls() && args.services.tls.is_none() {
            return Err(format!("{} needs a TLS certificate", args.protocol.name()).into());
        }
        let socket = TcpListener::bind(args.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
        info!(protocol = args.protocol.name(), addr = %args.addr, "listening");
        let counter = ConnCounter::default();
        let accept_loop =
            TaskGuard::spawn(accept_loop(socket, args.protocol, args.services, counter));
        Ok(ListenerState {
            _accept_loop: accept_loop,
        })
    }
}

async fn accept_loop(
    socket: TcpListener,
    protocol: Protocol,
    services: Services,
    counter: ConnCounter,
) {
    let mut shutdown = services.shutdown.clone();
    let per_ip = PerIpCounter::default();
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off a moment.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(mut guard) = counter.try_acquire(services.max_connections) else {
            tokio::spawn(refuse(tcp, protocol, REFUSED_BUSY));
            continue;
        };
        if let Some(max) = services.max_connections_per_ip {
            if services.limit_loopback || !addr.ip().to_canonical().is_loopback() {
                match per_ip.try_acquire(per_ip_key(addr.ip()), max) {
                    Some(g) => guard = guard.with_per_ip(g),
                    None => {
                        drop(guard);
                        tokio::spawn(refuse(tcp, protocol, REFUSED_PER_IP));
                        continue;
                    }
                }
            }
        }
        let services = services.clone();
        tokio::spawn(async move {
            if let Err(e) = start_session(tcp, addr, protocol, services, guard).await {
                debug!(peer = %addr, error = %e, "connection not started");
            }
        });
    }
}

/// What a client's connections are counted under: its IPv4 address (also
/// when it arrives mapped into IPv6), or its IPv6 /64, which one host
/// usually has whole.
fn per_ip_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

const REFUSED_BUSY: &str = "Too many connections, try again later";
const REFUSED_PER_IP: &str = "Too many connections from your address, try again later";

/// Tells a client over a connection limit to come back later.
async fn refuse(mut tcp: TcpStream, protocol: Protocol, why: &str) {
    let line = if protocol.is_imap() {
        format!("* BYE [UNAVAILABLE] {why}\r\n")
    } else {
        format!("421 4.7.0 {why}\r\n")
    };
    let line = line.as_bytes();
    if !protocol.implicit_tls() {
        let _ = tcp.write_all(line).await;
    }
    let _ = tcp.shutdown().await;
}

async fn start_session(
    tcp: TcpStream,
    addr: SocketAddr,
    protocol: Protocol,
    services: Services,
    guard: ConnGuard,
) -> Result<(), String> {
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (stream, facts): (BoxStream, TlsFacts) =
        match (&services.tls, &services.tls_setup, protocol.implicit_tls()) {
            (Some(acceptor), Some(setup), true) => {
                let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                    .await
                    .map_err(|_| "TLS handshake timed out".to_string())?
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                let facts = setup.facts(tls.get_ref().1, protocol);
                (Box::new(tls), facts)
            }
            _ => (Box::new(tcp), TlsFacts::default()),
        };
    // On 443, ALPN says which server the client wants.
    let protocol = match (protocol, facts.alpn.as_deref()) {
        (Protocol::Https, Some(b"imap")) => Protocol::Imaps,
        (Protocol::Https, Some(b"smtp")) => Protocol::Submissions,
        (Protocol::Https, _) => {
            match https_handler() {
                Some(serve) => serve(stream, addr),
                None => debug!(peer = %addr, "no web server for an HTTPS connection"),
            }
            drop(guard);
            return Ok(());
        }
        (p, _) => p,
    };
    let peer = Peer {
        addr,
        local,
        tls: protocol.implicit_tls(),
        binding: facts.binding,
        client_key: facts.client_key,
    };
    start_connection(stream, peer, protocol, services, guard, None).await
}

/// Starts the session of one connection under the `connections`
/// supervisor. `preauth` starts an IMAP or submission session logged in
/// to that account (`roost admin imapserve`, the web API's Send).
pub async fn start_connection(
    stream: BoxStream,
    peer: Peer,
    protocol: Protocol,
    services: Services,
    guard: ConnGuard,
    preauth: Option<(String, roost_store::AccountId)>,
) -> Result<(), String> {
    let name = format!("{}:{}", protocol.name(), peer.addr);
    let connections = services.connections.clone();
    let slot = Arc::new(Mutex::new(Some((stream, peer, services, guard, preauth))));
    let spec = ChildSpec::new(name, ActorKind::Session, Restart::Temporary, move |sup| {
        let taken = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            let Some((stream, peer, services, guard, preauth)) = taken else {
                return Err(SpawnErr::StartupFailed("connection already taken".into()));
            };
            // Sessions carry no ractor name: names must be unique, and a
            // peer may reconnect from the same port before the old session
            // is gone. The registry still shows them by name.
            let cell = if protocol.is_imap() {
                let args = ImapArgs {
                    stream,
                    peer,
                    protocol,
                    services,
                    guard,
                    preauth,
                };
                ImapSession::spawn_linked(None, ImapSession, args, sup)
                    .await?
                    .0
                    .get_cell()
            } else {
                let args = SmtpArgs {
                    stream,
                    peer,
                    protocol,
                    services,
                    guard,
                    preauth: preauth.map(|(name, _)| name),
                };
                SmtpSession::spawn_linked(None, SmtpSession, args, sup)
                    .await?
                    .0
                    .get_cell()
            };
            Ok(cell)
        }
    });
    start_child(&connections, spec).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::per_ip_key;

    #[test]
    fn addresses_count_by_v4_or_v6_slash_64() {
        let key = |s: &str| per_ip_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff::9"), "2001:db8:1:2::");
        assert_eq!(key("::1"), "::");
    }
}
