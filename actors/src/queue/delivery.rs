//! One destination domain's delivery worker: finds the domain's mail
//! servers (MX, RFC 5321 5.1), talks SMTP to the first that answers
//! (STARTTLS when offered, opportunistically; recipients pipelined when
//! PIPELINING is offered), and writes what came of each message.

use super::{dsn, now, QueueSettings, DELAY_DSN_AFTER, RETRY_SCHEDULE};
use crate::client::AccountClient;
use crate::dns::Dns;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_protocols::smtp::client::{dot_stuff, ReplyReader, ServerReply};
use roost_protocols::smtp::spf::AuthDns;
use roost_store::QueuedMessage;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

/// How long connecting to a server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reply may take (RFC 5321 4.5.3.2: 5 minutes for most).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the reply to the end of the data may take (RFC 5321
/// 4.5.3.2.6: 10 minutes).
pub const FINAL_REPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// Mail servers tried per domain, at most.
pub const MAX_HOSTS: usize = 10;

pub struct WorkerArgs {
    pub settings: Arc<QueueSettings>,
    pub domain: String,
    pub messages: Vec<QueuedMessage>,
}

pub struct Worker;

pub enum WorkerMsg {
    Run,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = Option<WorkerArgs>;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<Option<WorkerArgs>, ActorProcessingErr> {
        myself.cast(WorkerMsg::Run)?;
        Ok(Some(args))
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        _msg: WorkerMsg,
        state: &mut Option<WorkerArgs>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(args) = state.take() {
            deliver_domain(&args.settings, &args.domain, args.messages).await;
        }
        myself.stop(None);
        Ok(())
    }
}

/// What became of one recipient in one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered,
    /// Try again later; the reason.
    Temporary(String),
    /// Give up; the reply (or reason), and the server that gave it.
    Permanent(String, Option<String>),
}

/// Where a domain's mail goes: its MX hosts by preference, or the domain
/// itself (RFC 5321 5.1 implicit MX). `Err(true)` is permanent (a null
/// MX, RFC 7505; no such domain), `Err(false)` temporary.
async fn mail_hosts(dns: &Dns, domain: &str) -> Result<Vec<String>, (bool, String)> {
    let mx = dns
        .mx(domain)
        .await
        .map_err(|_| (false, format!("MX lookup of {domain} failed")))?;
    if !mx.is_empty() {
        return Ok(mx.into_iter().take(MAX_HOSTS).collect());
    }
    if dns.mx_is_null(domain).await {
        return Err((
            true,
            format!("{domain} accepts no mail (null MX, RFC 7505)"),
        ));
    }
    Ok(vec![domain.to_string()])
}

/// The addresses of a host, IPv6 first (RFC 5321 5.1 leaves the order to
/// the client; the first answer wins).
async fn addresses(dns: &Dns, host: &str) -> Vec<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    let mut out: Vec<IpAddr> = dns
        .aaaa(host)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(IpAddr::V6)
        .collect();
    out.extend(
        dns.a(host)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(IpAddr::V4),
    );
    out
}

async fn deliver_domain(s: &QueueSettings, domain: &str, messages: Vec<QueuedMessage>) {
    if s.localserve {
        for m in messages {
            let outcomes = simulate(s, &m).await;
            finish(s, m, outcomes, None).await;
        }
        return;
    }
    let hosts = match mail_hosts(&s.dns, domain).await {
        Ok(h) => h,
        Err((permanent, why)) => {
            for m in messages {
                let o = if permanent {
                    Outcome::Permanent(why.clone(), None)
                } else {
                    Outcome::Temporary(why.clone())
                };
                let outcomes = vec![o; m.recipients.len()];
                finish(s, m, outcomes, None).await;
            }
            return;
        }
    };
    let mut pending = messages;
    let mut last_error = format!("no mail server of {domain} could be reached");
    'hosts: for host in &hosts {
        for ip in addresses(&s.dns, host).await {
            let addr = SocketAddr::new(ip, s.remote_port);
            let mut session = match Session::open(s, addr, host, true).await {
                Ok(c) => c,
                Err(e) => {
                    last_error = format!("{host} [{ip}]: {e}");
                    continue;
                }
            };
            while let Some(m) = pending.first() {
                match session.send(s, m).await {
                    Ok(outcomes) => {
                        let m = pending.remove(0);
                        finish(s, m, outcomes, Some(host)).await;
                    }
                    Err(e) => {
                        // The connection broke: the rest go to the next
                        // server.
                        last_error = format!("{host} [{ip}]: {e}");
                        break;
                    }
                }
            }
            session.quit().await;
            if pending.is_empty() {
                break 'hosts;
            }
        }
    }
    for m in pending {
        let outcomes = vec![Outcome::Temporary(last_error.clone()); m.recipients.len()];
        finish(s, m, outcomes, None).await;
    }
}

/// localserve: nothing leaves the machine. A recipient whose local part
/// names an outcome gets it (`temperror`, `permerror`, `timeout`, or a
/// three-digit reply code); any other recipient's copy goes to the
/// account that submitted the message.
async fn simulate(s: &QueueSettings, m: &QueuedMessage) -> Vec<Outcome> {
    let mut out = Vec::new();
    for r in &m.recipients {
        let local = r.address.rsplit_once('@').map_or("", |(l, _)| l);
        let o = match local {
            "temperror" => Outcome::Temporary("451 4.0.0 simulated temporary error".into()),
            "permerror" => Outcome::Permanent("550 5.0.0 simulated permanent error".into(), None),
            "timeout" => Outcome::Temporary("simulated timeout".into()),
            code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                match code.as_bytes()[0] {
                    b'2' => Outcome::Delivered,
                    b'4' => Outcome::Temporary(format!("{code} simulated")),
                    _ => Outcome::Permanent(format!("{code} simulated"), None),
                }
            }
            _ => match deliver_to_sender(s, m).await {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Temporary(e),
            },
        };
        out.push(o);
    }
    out
}

/// localserve: the message goes to the submitter's INBOX.
async fn deliver_to_sender(s: &QueueSettings, m: &QueuedMessage) -> Result<(), String> {
    let Some(account) = m.account.clone() else {
        return Err("no account to deliver to".into());
    };
    let store = s.store.clone();
    let file = store.message_path(m.file);
    let staged = crate::task::blocking(move || {
        let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
        store.stage_bytes(&bytes).map_err(|e| e.to_string())
    })
    .await?;
    let prefix = format!("Return-Path: <{}>\r\n", m.sender).into_bytes();
    let message = dsn::new_message(staged, [prefix, m.header_prefix.clone()].concat())?;
    AccountClient::new(&account)
        .deliver(vec![message])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Writes what came of an attempt: delivered recipients go, failed ones
/// go with a DSN, the rest wait for the next attempt (or fail with the
/// last one).
async fn finish(
    s: &QueueSettings,
    mut m: QueuedMessage,
    outcomes: Vec<Outcome>,
    host: Option<&str>,
) {
    let mut failed = Vec::new();
    let mut kept = Vec::new();
    let mut temp_reason = None;
    for (mut r, o) in m.recipients.drain(..).zip(outcomes) {
        match o {
            Outcome::Delivered => info!(id = %m.id, rcpt = %r.address, "delivered"),
            Outcome::Permanent(why, mta) => {
                info!(id = %m.id, rcpt = %r.address, %why, "failed");
                failed.push((r.address, why, mta.or(host.map(str::to_string))));
            }
            Outcome::Temporary(why) => {
                r.last_error = Some(why.clone());
                temp_reason = Some(why);
                kept.push(r);
            }
        }
    }
    m.recipients = kept;
    let t = now();
    if !m.recipients.is_empty() {
        let reason = temp_reason.unwrap_or_default();
        if !reschedule(&mut m, &reason, t) {
            // The last attempt: the rest fail too.
            let why = format!("gave up after {} attempts: {reason}", m.attempts);
            failed.extend(
                m.recipients
                    .drain(..)
                    .map(|r| (r.address, why.clone(), None)),
            );
        }
    }
    if !failed.is_empty() {
        dsn::send(s, &m, &failed, dsn::Kind::Failed).await;
    }
    let delay_due = !m.recipients.is_empty() && m.attempts >= DELAY_DSN_AFTER && !m.delay_notified;
    if delay_due {
        let delayed: Vec<(String, String, Option<String>)> = m
            .recipients
            .iter()
            .map(|r| {
                (
                    r.address.clone(),
                    r.last_error.clone().unwrap_or_default(),
                    None,
                )
            })
            .collect();
        dsn::send(s, &m, &delayed, dsn::Kind::Delayed).await;
        m.delay_notified = true;
    }
    let store = s.store.clone();
    let written = crate::task::blocking(move || {
        if m.recipients.is_empty() {
            store.queue_remove(m.id)
        } else {
            store.queue_update(&m)
        }
    })
    .await;
    if let Err(e) = written {
        warn!(error = %e, "cannot write a queued message's state");
    }
}

/// Counts a failed attempt and sets the next one from
/// [`RETRY_SCHEDULE`]; false when there is none left.
pub fn reschedule(m: &mut QueuedMessage, reason: &str, now: i64) -> bool {
    m.attempts += 1;
    m.last_error = Some(reason.to_string());
    match RETRY_SCHEDULE.get(m.attempts as usize) {
        Some(wait) => {
            m.next_attempt = now + wait;
            true
        }
        None => false,
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP connection to a remote server.
struct Session {
    io: Box<dyn Io>,
    reader: ReplyReader,
    ehlo: ServerReply,
    tls: bool,
}

impl Session {
    /// Connects, reads the greeting, says EHLO and, when offered and
    /// `starttls`, upgrades to TLS and says EHLO again. A failed TLS
    /// handshake is tried once more without TLS (opportunistic TLS, RFC
    /// 3207 leaves it to the client).
    async fn open(
        s: &QueueSettings,
        addr: SocketAddr,
        host: &str,
        starttls: bool,
    ) -> Result<Session, String> {
        match Session::open_once(s, addr, host, starttls).await {
            Err(e) if starttls && e.starts_with("TLS") => {
                Box::pin(Session::open_once(s, addr, host, false)).await
            }
            other => other,
        }
    }

    async fn open_once(
        s: &QueueSettings,
        addr: SocketAddr,
        host: &str,
        starttls: bool,
    ) -> Result<Session, String> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let mut session = Session {
            io: Box::new(tcp),
            reader: ReplyReader::new(),
            ehlo: ServerReply {
                code: 0,
                lines: Vec::new(),
            },
            tls: false,
        };
        let greeting = session.reply(REPLY_TIMEOUT).await?;
        if greeting.code != 220 {
            return Err(format!("greeting: {}", greeting.text()));
        }
        session.ehlo = session.hello(&s.hostname).await?;
        if starttls && session.ehlo.offers("STARTTLS") {
            session.write(b"STARTTLS\r\n").await?;
            let r = session.reply(REPLY_TIMEOUT).await?;
            if r.code == 220 {
                session = session.upgrade(host).await?;
                session.ehlo = session.hello(&s.hostname).await?;
            }
        }
        Ok(session)
    }

    async fn hello(&mut self, hostname: &str) -> Result<ServerReply, String> {
        self.write(format!("EHLO {hostname}\r\n").as_bytes())
            .await?;
        let r = self.reply(REPLY_TIMEOUT).await?;
        if r.code != 250 {
            return Err(format!("EHLO: {}", r.text()));
        }
        Ok(r)
    }

    async fn upgrade(self, host: &str) -> Result<Session, String> {
        let connector = tokio_rustls::TlsConnector::from(opportunistic_tls());
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| format!("TLS: {host} is no server name"))?;
        let tls = connector
            .connect(name, self.io)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        Ok(Session {
            io: Box::new(tls),
            reader: ReplyReader::new(),
            ehlo: self.ehlo,
            tls: true,
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        tokio::time::timeout(REPLY_TIMEOUT, self.io.write_all(bytes))
            .await
            .map_err(|_| "write timed out".to_string())?
            .map_err(|e| format!("write: {e}"))
    }

    async fn reply(&mut self, limit: Duration) -> Result<ServerReply, String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = self.reader.next_reply()? {
                return Ok(r);
            }
            let n = tokio::time::timeout_at(deadline, self.io.read(&mut buf))
                .await
                .map_err(|_| "no reply in time".to_string())?
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.reader.feed(&buf[..n]);
        }
    }

    /// One message: MAIL, the RCPTs (pipelined when offered), DATA. The
    /// outcome of each recipient; `Err` when the connection failed.
    async fn send(&mut self, s: &QueueSettings, m: &QueuedMessage) -> Result<Vec<Outcome>, String> {
        if m.requiretls && !self.tls {
            let why = "REQUIRETLS: the server offers no TLS".to_string();
            return Ok(vec![Outcome::Temporary(why); m.recipients.len()]);
        }
        let mut mail = format!("MAIL FROM:<{}>", m.sender);
        if m.smtputf8 && self.ehlo.offers("SMTPUTF8") {
            mail.push_str(" SMTPUTF8");
        } else if m.smtputf8 {
            let why = "550 5.6.7 the server does not offer SMTPUTF8".to_string();
            return Ok(vec![Outcome::Permanent(why, None); m.recipients.len()]);
        }
        if m.eight_bit && self.ehlo.offers("8BITMIME") {
            mail.push_str(" BODY=8BITMIME");
        }
        if m.requiretls {
            mail.push_str(" REQUIRETLS");
        }
        let pipelining = self.ehlo.offers("PIPELINING");
        let mut commands = vec![format!("{mail}\r\n")];
        commands.extend(
            m.recipients
                .iter()
                .map(|r| format!("RCPT TO:<{}>\r\n", r.address)),
        );
        let mut replies = Vec::new();
        if pipelining {
            // RFC 2920: the envelope in one write, then its replies.
            self.write(commands.concat().as_bytes()).await?;
            for _ in &commands {
                replies.push(self.reply(REPLY_TIMEOUT).await?);
            }
        } else {
            for c in &commands {
                self.write(c.as_bytes()).await?;
                let r = self.reply(REPLY_TIMEOUT).await?;
                let stop = c.starts_with("MAIL") && !r.is_positive();
                replies.push(r);
                if stop {
                    break;
                }
            }
        }
        let mail_reply = &replies[0];
        if !mail_reply.is_positive() {
            let o = refusal(mail_reply);
            self.write(b"RSET\r\n").await?;
            self.reply(REPLY_TIMEOUT).await?;
            return Ok(vec![o; m.recipients.len()]);
        }
        let mut outcomes: Vec<Option<Outcome>> = replies[1..]
            .iter()
            .map(|r| (!r.is_positive()).then(|| refusal(r)))
            .collect();
        if outcomes.iter().all(Option::is_some) {
            self.write(b"RSET\r\n").await?;
            self.reply(REPLY_TIMEOUT).await?;
            return Ok(outcomes.into_iter().flatten().collect());
        }
        self.write(b"DATA\r\n").await?;
        let r = self.reply(REPLY_TIMEOUT).await?;
        if r.code != 354 {
            let o = refusal(&r);
            return Ok(outcomes
                .into_iter()
                .map(|x| x.unwrap_or_else(|| o.clone()))
                .collect());
        }
        self.send_content(s, m).await?;
        let r = self.reply(FINAL_REPLY_TIMEOUT).await?;
        let data = if r.is_positive() {
            Outcome::Delivered
        } else {
            refusal(&r)
        };
        for o in &mut outcomes {
            o.get_or_insert_with(|| data.clone());
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// The message, dot-stuffed, read from the store a piece at a time,
    /// then the end marker.
    async fn send_content(&mut self, s: &QueueSettings, m: &QueuedMessage) -> Result<(), String> {
        let store = s.store.clone();
        let m2 = m.clone();
        let reader = crate::task::blocking(move || store.queue_open(&m2))
            .await
            .map_err(|e| format!("cannot read the queued message: {e}"))?;
        let reader = Arc::new(reader);
        let len = reader.len();
        let mut at = 0u64;
        let mut line_start = true;
        let mut last = Vec::new();
        while at < len {
            let r = reader.clone();
            let piece = crate::task::blocking(move || r.read_at(at, 64 * 1024))
                .await
                .map_err(|e| format!("cannot read the queued message: {e}"))?;
            if piece.is_empty() {
                break;
            }
            at += piece.len() as u64;
            last = piece[piece.len().saturating_sub(2)..].to_vec();
            let stuffed = dot_stuff(&piece, &mut line_start);
            self.write(&stuffed).await?;
        }
        // The end marker starts a line of its own.
        let end: &[u8] = if last.ends_with(b"\r\n") || len == 0 {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        };
        self.write(end).await
    }

    async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.reply(REPLY_TIMEOUT)).await;
        }
    }
}

/// A refusing reply as an outcome.
fn refusal(r: &ServerReply) -> Outcome {
    if r.is_permanent() {
        Outcome::Permanent(r.text(), None)
    } else {
        Outcome::Temporary(r.text())
    }
}

/// TLS as SMTP between servers uses it without MTA-STS or DANE: the
/// connection is encrypted, the certificate is not checked (RFC 7435
/// opportunistic security); its signatures still are.
fn opportunistic_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                        .with_no_client_auth()
                });
            match config {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    warn!(error = %e, "no TLS client configuration");
                    Arc::new(
                        rustls::ClientConfig::builder()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    )
                }
            }
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
