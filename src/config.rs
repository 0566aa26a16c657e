//! The configuration: TOML in, a typed and validated [`Config`] out.
//!
//! Errors name the file, the key and what is wrong, so an administrator
//! can fix the file without reading code. `localserve` builds its Config
//! from embedded defaults instead of a file.

use anyhow::{anyhow, bail, Context, Result};
use roost_actors::listener::Protocol;
use roost_actors::tls::ListenerTls;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub hostname: String,
    pub max_message_size: u64,
    pub max_connections: usize,
    pub listen: Listen,
    pub tls: Option<TlsConfig>,
    pub log_level: String,
    pub log_json: bool,
    pub otlp_endpoint: Option<String>,
    pub dns: roost_actors::dns::DnsSettings,
    /// `[dns] dnssec` and `trust_anchor`: DNSSEC validation, for DANE.
    pub dnssec: roost_actors::dns::DnssecSettings,
    /// `[imap] progress_interval_ms`: how often, at most, a long SEARCH,
    /// SORT or THREAD reports its progress (RFC 9585 INPROGRESS).
    pub imap_progress_interval: std::time::Duration,
    /// `[smtp] max_connections_per_ip`.
    pub smtp_max_connections_per_ip: usize,
    /// `[smtp] limit_loopback`.
    pub smtp_limit_loopback: bool,
    /// `[queue] remote_port`: where remote mail servers listen (25).
    pub queue_remote_port: u16,
    /// `[queue] retry_after`: seconds to wait after each failed attempt.
    pub queue_retry_after: Vec<i64>,
    /// `[queue] keep_retired`: seconds messages that left the queue are
    /// kept, with their attempts (0: none).
    pub queue_keep_retired: i64,
    /// `[transports.NAME]` and `[[queue.routes]]`.
    pub queue_transports: roost_actors::queue::transport::Transports,
    /// `[queue] ca_file`, read: the authorities MX certificates are
    /// checked against under MTA-STS.
    pub queue_mx_roots: std::sync::Arc<rustls::RootCertStore>,
    /// `[queue] mta_sts_port`: the HTTPS port of policy servers (443).
    pub queue_mta_sts_port: u16,
    /// `[webhooks] retry_after`: seconds to wait after each failed call.
    pub webhook_retry_after: Vec<i64>,
    /// `[reports] dmarc_interval`: how often DMARC aggregate reports go
    /// out.
    pub dmarc_report_interval: Duration,
    /// `[reports] tls_interval`: how often TLS reports go out.
    pub tls_report_interval: Duration,
    /// `[webhooks] ca_file`, read: the authorities `https://` webhook
    /// URLs are checked against.
    pub webhook_roots: std::sync::Arc<rustls::RootCertStore>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default)]
    pub smtp: Vec<SocketAddr>,
    #[serde(default)]
    pub submission: Vec<SocketAddr>,
    #[serde(default)]
    pub submissions: Vec<SocketAddr>,
    #[serde(default)]
    pub imap: Vec<SocketAddr>,
    #[serde(default)]
    pub imaps: Vec<SocketAddr>,
    #[serde(default)]
    pub http: Vec<SocketAddr>,
    #[serde(default)]
    pub https: Vec<SocketAddr>,
}

/// The `[tls]` section, checked.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The MX host's certificate: served when a client names no host, and
    /// on port 25 when it names an unknown one.
    pub primary: TlsFiles,
    /// Further certificates, chosen by the name a client asks for (SNI).
    pub more: Vec<(PathBuf, PathBuf)>,
    /// Session tickets and client-certificate requests per listener kind.
    pub listeners: Vec<(Protocol, ListenerTls)>,
}

#[derive(Debug, Clone)]
pub enum TlsFiles {
    /// PEM certificate chain and private key.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate made on first start and kept in the data
    /// directory (localserve).
    SelfSigned,
}

/// The file's shape, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: PathBuf,
    hostname: String,
    max_message_size: Option<u64>,
    max_connections: Option<usize>,
    #[serde(default)]
    listen: Listen,
    tls: Option<TlsSection>,
    log: Option<LogSection>,
    telemetry: Option<TelemetrySection>,
    dns: Option<DnsSection>,
    imap: Option<ImapSection>,
    smtp: Option<SmtpSection>,
    queue: Option<QueueSection>,
    #[serde(default)]
    transports: std::collections::BTreeMap<String, TransportSection>,
    webhooks: Option<WebhooksSection>,
    reports: Option<ReportsSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportsSection {
    /// Seconds between DMARC aggregate reports (default 3600).
    dmarc_interval: Option<u64>,
    /// Seconds between TLS reports (default 86400).
    tls_interval: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksSection {
    /// Seconds to wait after each failed call; after the last it is given
    /// up.
    retry_after: Option<Vec<i64>>,
    /// PEM certificates of the authorities `https://` URLs are checked
    /// against (default: the system's).
    ca_file: Option<PathBuf>,
}

/// The certificates in a PEM file, as trusted roots.
fn load_roots(file: &Path, key: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(file).with_context(|| format!("key `{key}`: {}", file.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("key `{key}`: {}", file.display()))?;
    // A bundle may hold a certificate rustls cannot use; the rest serve.
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        bail!("key `{key}`: no certificates in {}", file.display());
    }
    Ok(roots)
}

/// A retry schedule: 1 to MAX_RETRY_STEPS waits of at least a second.
fn retry_schedule(list: Option<Vec<i64>>, default: &[i64], key: &str) -> Result<Vec<i64>> {
    let list = list.unwrap_or_else(|| default.to_vec());
    if list.is_empty()
        || list.len() > roost_actors::queue::MAX_RETRY_STEPS
        || list.iter().any(|w| *w < 1)
    {
        bail!(
            "key `{key}`: 1 to {} waits in seconds, each at least 1",
            roost_actors::queue::MAX_RETRY_STEPS
        );
    }
    Ok(list)
}

/// A `[transports.NAME]` table: a smarthost, or a fail transport.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportSection {
    /// `host:port` of a server that delivers onwards.
    smarthost: Option<String>,
    /// `implicit` (TLS from the first byte), `starttls` (required) or
    /// `none`; default `starttls`, or `implicit` for port 465.
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// A file holding the password (its first line).
    password_file: Option<PathBuf>,
    /// PEM certificates of the authorities the smarthost's certificate
    /// is checked against (default: the system's,
    /// /etc/ssl/certs/ca-certificates.crt).
    ca_file: Option<PathBuf>,
    /// A fail transport's reply, e.g. `550 5.7.1 no mail to this domain`.
    fail: Option<String>,
    /// Send the password with `tls = "none"` (RFC 4616 6: PLAIN belongs
    /// on an encrypted connection; only for a trusted network).
    insecure_auth: Option<bool>,
}

/// A `[[queue.routes]]` entry: the messages it matches take `transport`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    account: Option<String>,
    sender_domain: Option<String>,
    recipient_domain: Option<String>,
    transport: String,
}

/// The system's certificate authorities (Debian's ca-certificates).
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The system's authorities; none when the system has no bundle (then
/// `https://` webhook calls fail, each with the TLS error in its log).
fn system_roots() -> rustls::RootCertStore {
    load_roots(Path::new(SYSTEM_CA_FILE), "webhooks.ca_file").unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no certificate authorities for https webhooks");
        rustls::RootCertStore::empty()
    })
}

fn transports(
    sections: &std::collections::BTreeMap<String, TransportSection>,
    routes: &[RouteSection],
) -> Result<roost_actors::queue::transport::Transports> {
    use roost_actors::queue::transport::{
        fail_reply, Route, Smarthost, SmarthostTls, Transport, Transports, DIRECT,
    };
    let mut out = Transports::default();
    for (name, t) in sections {
        let key = format!("transports.{name}");
        if name == DIRECT {
            bail!("key `{key}`: `direct` is built in");
        }
        let transport = match (&t.smarthost, &t.fail) {
            (Some(_), Some(_)) | (None, None) => {
                bail!("key `{key}`: give either `smarthost` or `fail`")
            }
            (None, Some(reply)) => {
                if t.tls.is_some()
                    || t.username.is_some()
                    || t.password.is_some()
                    || t.password_file.is_some()
                    || t.ca_file.is_some()
                    || t.insecure_auth.is_some()
                {
                    bail!("key `{key}`: a fail transport takes only `fail`");
                }
                Transport::Fail(fail_reply(reply).ok_or_else(|| {
                    anyhow!("key `{key}.fail`: a 4xx or 5xx reply code, then text")
                })?)
            }
            (Some(target), None) => {
                let (host, port) = target
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                    .filter(|(h, p)| !h.is_empty() && *p > 0)
                    .ok_or_else(|| anyhow!("key `{key}.smarthost`: `host:port`"))?;
                let tls = match t.tls.as_deref() {
                    None if port == 465 => SmarthostTls::Implicit,
                    None | Some("starttls") => SmarthostTls::StartTls,
                    Some("implicit") => SmarthostTls::Implicit,
                    Some("none") => SmarthostTls::Plain,
                    Some(other) => {
                        bail!("key `{key}.tls`: `implicit`, `starttls` or `none`, not {other:?}")
                    }
                };
                let password = match (&t.password, &t.password_file) {
                    (Some(_), Some(_)) => {
                        bail!("key `{key}`: give `password` or `password_file`, not both")
                    }
                    (Some(p), None) => Some(p.clone()),
                    (None, Some(f)) => Some(
                        std::fs::read_to_string(f)
                            .with_context(|| format!("key `{key}.password_file`: {}", f.display()))?
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    ),
                    (None, None) => None,
                };
                let auth = match (&t.username, password) {
                    (Some(u), Some(p)) => Some((u.clone(), p)),
                    (None, None) => None,
                    _ => bail!("key `{key}`: `username` and a password go together"),
                };
                if tls == SmarthostTls::Plain && auth.is_some() && t.insecure_auth != Some(true) {
                    bail!(
                        "key `{key}`: a password over `tls = \"none\"` goes in the clear; \
                         set `insecure_auth = true` to allow it"
                    );
                }
                if tls == SmarthostTls::Plain && t.ca_file.is_some() {
                    bail!("key `{key}.ca_file`: no TLS with `tls = \"none\"`");
                }
                let roots = if tls == SmarthostTls::Plain {
                    rustls::RootCertStore::empty()
                } else {
                    let file = t
                        .ca_file
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_FILE));
                    load_roots(&file, &format!("{key}.ca_file"))?
                };
                Transport::Smarthost(std::sync::Arc::new(Smarthost {
                    host: host.to_ascii_lowercase(),
                    port,
                    tls,
                    auth,
                    roots: std::sync::Arc::new(roots),
                }))
            }
        };
        out.named.insert(name.clone(), transport);
    }
    for (i, r) in routes.iter().enumerate() {
        if r.transport != DIRECT && !out.named.contains_key(&r.transport) {
            bail!(
                "key `queue.routes[{i}].transport`: no transport {:?}",
                r.transport
            );
        }
        let lower = |d: &Option<String>| d.as_ref().map(|d| d.to_ascii_lowercase());
        out.routes.push(Route {
            when: roost_store::QueueFilter {
                account: r.account.clone(),
                sender_domain: lower(&r.sender_domain),
                recipient_domain: lower(&r.recipient_domain),
                ..Default::default()
            },
            transport: r.transport.clone(),
        });
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSection {
    /// The port of remote mail servers (default 25; another only for
    /// tests and special setups).
    remote_port: Option<u16>,
    /// Seconds to wait after each failed delivery attempt; after the last
    /// the message fails with a DSN.
    retry_after: Option<Vec<i64>>,
    /// Seconds messages that left the queue are kept (default 7 days; 0
    /// keeps none).
    keep_retired: Option<i64>,
    /// Which transport messages take, first match first.
    #[serde(default)]
    routes: Vec<RouteSection>,
    /// PEM certificates of the authorities MX hosts' certificates are
    /// checked against where MTA-STS asks (default: the system's).
    ca_file: Option<PathBuf>,
    /// The HTTPS port of MTA-STS policy servers (443; another only for
    /// tests).
    mta_sts_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpSection {
    /// Connections one client address may have open on each SMTP
    /// listener (default 20).
    max_connections_per_ip: Option<usize>,
    /// Apply that limit to loopback clients too (default false).
    limit_loopback: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImapSection {
    /// Milliseconds between progress notices of a long command (default
    /// 1000; 0 reports after every batch of messages).
    progress_interval_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsSection {
    /// Look up the reverse name of SMTP clients (default true).
    reverse_lookup: Option<bool>,
    /// Name servers as `ip:port`; the system's when absent.
    servers: Option<Vec<SocketAddr>>,
    /// Validate answers with DNSSEC, so the queue can use DANE (RFC
    /// 7672). Off by default: a resolver that strips DNSSEC records would
    /// make every signed domain's mail wait.
    dnssec: Option<bool>,
    /// A file of DNSKEY records (presentation format) to trust instead of
    /// the root zone's keys.
    trust_anchor: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    more: Vec<CertSection>,
    /// Listener kinds with session tickets; all but smtp when absent.
    session_tickets: Option<Vec<String>>,
    /// Listener kinds that ask for client certificates; none when absent.
    #[serde(default)]
    client_certificates: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertSection {
    cert: PathBuf,
    key: PathBuf,
}

/// Every kind of listener, by its name in the config.
const LISTENER_KINDS: [Protocol; 6] = [
    Protocol::Smtp,
    Protocol::Submission,
    Protocol::Submissions,
    Protocol::Imap,
    Protocol::Imaps,
    Protocol::Https,
];

/// Per-listener TLS from the two lists of listener names.
fn listener_tls(
    session_tickets: Option<&[String]>,
    client_certificates: &[String],
) -> Result<Vec<(Protocol, ListenerTls)>> {
    for (key, names) in [
        ("tls.session_tickets", session_tickets.unwrap_or_default()),
        ("tls.client_certificates", client_certificates),
    ] {
        for name in names {
            if !LISTENER_KINDS.iter().any(|p| p.name() == name) {
                bail!(
                    "key `{key}`: {name:?} is not a listener (smtp, submission, submissions, imap, imaps, https)"
                );
            }
        }
    }
    Ok(LISTENER_KINDS
        .iter()
        .map(|&p| {
            let named = |list: &[String]| list.iter().any(|n| n == p.name());
            let mut l = ListenerTls::default_for(p);
            if let Some(list) = session_tickets {
                l.session_tickets = named(list);
            }
            l.client_certificates = named(client_certificates);
            (p, l)
        })
        .collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetrySection {
    otlp_endpoint: Option<String>,
}

impl Config {
    pub fn localserve(dir: PathBuf, offset: u16) -> Config {
        let at = |port: u16| {
            vec![SocketAddr::from((
                [127, 0, 0, 1],
                port.saturating_add(offset),
            ))]
        };
        Config {
            data_dir: dir,
            hostname: "localhost".into(),
            max_message_size: roost_actors::listener::DEFAULT_MAX_MESSAGE_SIZE,
            max_connections: roost_actors::listener::MAX_CONNECTIONS_PER_LISTENER,
            listen: Listen {
                smtp: at(1025),
                submission: at(1587),
                submissions: at(1465),
                imap: at(1143),
                imaps: at(1993),
                http: at(1080),
                https: at(1443),
            },
            // Client certificates are asked for where users log in (not
            // on the MX port, and not on 443, where browsers would ask).
            tls: Some(TlsConfig {
                primary: TlsFiles::SelfSigned,
                more: Vec::new(),
                listeners: listener_tls(
                    None,
                    &["submission", "submissions", "imap", "imaps"].map(String::from),
                )
                .unwrap_or_default(),
            }),
            log_level: "info".into(),
            log_json: false,
            otlp_endpoint: None,
            // Every localserve client is on this machine.
            dns: roost_actors::dns::DnsSettings::Off,
            dnssec: roost_actors::dns::DnssecSettings::Off,
            imap_progress_interval: roost_actors::imap::PROGRESS_INTERVAL,
            smtp_max_connections_per_ip: roost_actors::smtp::MAX_CONNECTIONS_PER_IP,
            smtp_limit_loopback: false,
            queue_remote_port: 25,
            queue_retry_after: roost_actors::queue::RETRY_AFTER.to_vec(),
            queue_keep_retired: roost_store::KEEP_RETIRED,
            queue_transports: Default::default(),
            queue_mx_roots: std::sync::Arc::new(system_roots()),
            queue_mta_sts_port: 443,
            webhook_retry_after: roost_actors::queue::webhooks::RETRY_AFTER.to_vec(),
            dmarc_report_interval: roost_actors::reports::DMARC_INTERVAL,
            tls_report_interval: roost_actors::reports::TLS_INTERVAL,
            webhook_roots: std::sync::Arc::new(system_roots()),
        }
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Config> {
        let file: File = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| describe(text, e))?;
        if file.hostname.trim().is_empty() || file.hostname.contains(char::is_whitespace) {
            bail!("key `hostname`: {:?} is not a host name", file.hostname);
        }
        let max_message_size = file
            .max_message_size
            .unwrap_or(roost_actors::listener::DEFAULT_MAX_MESSAGE_SIZE);
        if max_message_size < 1024 {
            bail!("key `max_message_size`: {max_message_size} is below the minimum of 1024 bytes");
        }
        let max_connections = file
            .max_connections
            .unwrap_or(roost_actors::listener::MAX_CONNECTIONS_PER_LISTENER);
        if max_connections == 0 {
            bail!("key `max_connections`: must be at least 1");
        }
        let tls = match file.tls {
            None => None,
            Some(t) => Some(TlsConfig {
                listeners: listener_tls(t.session_tickets.as_deref(), &t.client_certificates)?,
                primary: TlsFiles::Files {
                    cert: t.cert,
                    key: t.key,
                },
                more: t.more.into_iter().map(|c| (c.cert, c.key)).collect(),
            }),
        };
        let l = &file.listen;
        for (key, addrs) in [
            ("listen.submissions", &l.submissions),
            ("listen.imaps", &l.imaps),
            ("listen.https", &l.https),
        ] {
            if !addrs.is_empty() && tls.is_none() {
                bail!("key `{key}`: implicit TLS needs a [tls] section with cert and key");
            }
        }
        let (log_level, log_json) = match file.log {
            None => ("info".to_string(), false),
            Some(l) => {
                let json = match l.format.as_deref() {
                    None | Some("text") => false,
                    Some("json") => true,
                    Some(other) => bail!("key `log.format`: {other:?} is not \"text\" or \"json\""),
                };
                (l.level.unwrap_or_else(|| "info".into()), json)
            }
        };
        let otlp_endpoint = file.telemetry.and_then(|t| t.otlp_endpoint);
        let dnssec = dnssec_settings(file.dns.as_ref())?;
        let dns = match file.dns {
            Some(DnsSection {
                reverse_lookup: Some(false),
                ..
            }) => roost_actors::dns::DnsSettings::Off,
            Some(DnsSection {
                servers: Some(servers),
                ..
            }) if !servers.is_empty() => roost_actors::dns::DnsSettings::Servers(servers),
            _ => roost_actors::dns::DnsSettings::System,
        };
        if let Some(ep) = &otlp_endpoint {
            if !ep.starts_with("http://") && !ep.starts_with("https://") {
                bail!("key `telemetry.otlp_endpoint`: {ep:?} is not an http(s) URL");
            }
        }
        let imap_progress_interval = file
            .imap
            .and_then(|i| i.progress_interval_ms)
            .map_or(roost_actors::imap::PROGRESS_INTERVAL, Duration::from_millis);
        let smtp_max_connections_per_ip = file
            .smtp
            .as_ref()
            .and_then(|s| s.max_connections_per_ip)
            .unwrap_or(roost_actors::smtp::MAX_CONNECTIONS_PER_IP);
        if smtp_max_connections_per_ip == 0 {
            bail!("key `smtp.max_connections_per_ip`: must be at least 1");
        }
        let smtp_limit_loopback = file
            .smtp
            .as_ref()
            .and_then(|s| s.limit_loopback)
            .unwrap_or(false);
        let queue_remote_port = file
            .queue
            .as_ref()
            .and_then(|q| q.remote_port)
            .unwrap_or(25);
        let queue_retry_after = retry_schedule(
            file.queue.as_ref().and_then(|q| q.retry_after.clone()),
            &roost_actors::queue::RETRY_AFTER,
            "queue.retry_after",
        )?;
        let webhook_retry_after = retry_schedule(
            file.webhooks.as_ref().and_then(|w| w.retry_after.clone()),
            &roost_actors::queue::webhooks::RETRY_AFTER,
            "webhooks.retry_after",
        )?;
        let webhook_roots = match file.webhooks.as_ref().and_then(|w| w.ca_file.clone()) {
            Some(f) => load_roots(&f, "webhooks.ca_file")?,
            None => system_roots(),
        };
        if queue_remote_port == 0 {
            bail!("key `queue.remote_port`: must be a port from 1 to 65535");
        }
        let queue_keep_retired = file
            .queue
            .as_ref()
            .and_then(|q| q.keep_retired)
            .unwrap_or(roost_store::KEEP_RETIRED);
        if queue_keep_retired < 0 {
            bail!("key `queue.keep_retired`: seconds, 0 or more");
        }
        let no_routes = Vec::new();
        let queue_transports = transports(
            &file.transports,
            file.queue.as_ref().map_or(&no_routes, |q| &q.routes),
        )?;
        let interval = |given: Option<u64>, default: Duration, key: &str| match given {
            None => Ok(default),
            Some(0) => Err(anyhow!("key `reports.{key}`: seconds, at least 1")),
            Some(n) => Ok(Duration::from_secs(n)),
        };
        let reports = file.reports.as_ref();
        let dmarc_report_interval = interval(
            reports.and_then(|r| r.dmarc_interval),
            roost_actors::reports::DMARC_INTERVAL,
            "dmarc_interval",
        )?;
        let tls_report_interval = interval(
            reports.and_then(|r| r.tls_interval),
            roost_actors::reports::TLS_INTERVAL,
            "tls_interval",
        )?;
        let queue_mx_roots = match file.queue.as_ref().and_then(|q| q.ca_file.clone()) {
            Some(f) => load_roots(&f, "queue.ca_file")?,
            None => system_roots(),
        };
        let queue_mta_sts_port = file
            .queue
            .as_ref()
            .and_then(|q| q.mta_sts_port)
            .unwrap_or(443);
        Ok(Config {
            queue_mx_roots: std::sync::Arc::new(queue_mx_roots),
            queue_mta_sts_port,
            dmarc_report_interval,
            tls_report_interval,
            webhook_retry_after,
            webhook_roots: std::sync::Arc::new(webhook_roots),
            queue_keep_retired,
            queue_transports,
            queue_remote_port,
            queue_retry_after,
            imap_progress_interval,
            smtp_max_connections_per_ip,
            smtp_limit_loopback,
            data_dir: file.data_dir,
            hostname: file.hostname.trim().to_ascii_lowercase(),
            max_message_size,
            max_connections,
            listen: file.listen,
            tls,
            log_level,
            log_json,
            otlp_endpoint,
            dns,
            dnssec,
        })
    }
}

/// "key `listen.smtp[0]`: invalid socket address syntax (line 4, column 9)".
fn describe(text: &str, e: serde_path_to_error::Error<toml::de::Error>) -> anyhow::Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let place = inner
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (line {line}, column {column})")
        })
        .unwrap_or_default();
    let message = inner.message().trim_end();
    if path == "." {
        anyhow!("{message}{place}")
    } else {
        anyhow!("key `{path}`: {message}{place}")
    }
}

/// `[dns] dnssec` and `trust_anchor`: whether answers are validated, and
/// from which keys.
fn dnssec_settings(dns: Option<&DnsSection>) -> Result<roost_actors::dns::DnssecSettings> {
    use roost_actors::dns::DnssecSettings;
    let Some(dns) = dns else {
        return Ok(DnssecSettings::Off);
    };
    // A trust anchor file is read whenever it is named: a mistake in it
    // shows at start, also while validation is off.
    let anchors = match &dns.trust_anchor {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("key `dns.trust_anchor`: cannot read {}", path.display())
            })?;
            let keys: Vec<(u8, Vec<u8>)> = text
                .lines()
                .filter_map(roost_protocols::smtp::dane::parse_dnskey)
                .collect();
            if keys.is_empty() {
                bail!(
                    "key `dns.trust_anchor`: {} holds no DNSKEY record",
                    path.display()
                );
            }
            Some(keys)
        }
    };
    if dns.reverse_lookup == Some(false) || !dns.dnssec.unwrap_or(false) {
        return Ok(DnssecSettings::Off);
    }
    Ok(anchors.map_or(DnssecSettings::Root, DnssecSettings::Anchors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let c = Config::parse(include_str!("../deploy/roost.toml")).unwrap();
        assert_eq!(c.hostname, "mail.example.org");
        assert_eq!(c.listen.smtp.len(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let e =
            Config::parse("data_dir = \"/x\"\nhostname = \"h\"\n[listen]\nsmtp = [\"nonsense\"]\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("listen.smtp"), "{e}");
        let e = Config::parse("data_dir = \"/x\"\nhostname = \"h\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = Config::parse(
            "data_dir = \"/x\"\nhostname = \"h\"\n[listen]\nimaps = [\"127.0.0.1:993\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("listen.imaps") && e.contains("[tls]"), "{e}");
        let e = Config::parse("data_dir = \"/x\"\nhostname = \"h\"\nmax_message_size = 10\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_message_size"), "{e}");
        let e = Config::parse("hostname = \"h\"\n").unwrap_err().to_string();
        assert!(e.contains("data_dir"), "{e}");
    }

    /// Transports and routes: each mistake named by its key; a good
    /// smarthost and fail transport, and routes to them in order.
    #[test]
    fn transports_and_routes() {
        let with = |body: &str| {
            Config::parse(&format!("data_dir = \"/x\"\nhostname = \"h\"\n{body}"))
                .map_err(|e| e.to_string())
        };
        let cases = [
            ("[transports.direct]\nfail = \"550 x\"\n", "key `transports.direct`: `direct` is built in"),
            ("[transports.t]\n", "key `transports.t`: give either `smarthost` or `fail`"),
            ("[transports.t]\nfail = \"250 fine\"\n", "key `transports.t.fail`: a 4xx or 5xx reply code, then text"),
            ("[transports.t]\nfail = \"550 x\"\ntls = \"none\"\n", "key `transports.t`: a fail transport takes only `fail`"),
            ("[transports.t]\nsmarthost = \"relay.example\"\n", "key `transports.t.smarthost`: `host:port`"),
            ("[transports.t]\nsmarthost = \"relay.example:587\"\ntls = \"maybe\"\n", "key `transports.t.tls`: `implicit`, `starttls` or `none`, not \"maybe\""),
            ("[transports.t]\nsmarthost = \"relay.example:25\"\ntls = \"none\"\nusername = \"u\"\n", "key `transports.t`: `username` and a password go together"),
            ("[transports.t]\nsmarthost = \"relay.example:25\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\n", "key `transports.t`: a password over `tls = \"none\"` goes in the clear; set `insecure_auth = true` to allow it"),
            ("[transports.t]\nfail = \"550 x\"\npassword = \"p\"\n", "key `transports.t`: a fail transport takes only `fail`"),
            ("[transports.t]\nsmarthost = \"relay.example:587\"\nca_file = \"/nonexistent.pem\"\n", "key `transports.t.ca_file`: /nonexistent.pem"),
            ("[[queue.routes]]\ntransport = \"relay\"\n", "key `queue.routes[0].transport`: no transport \"relay\""),
            ("[queue]\nkeep_retired = -1\n", "key `queue.keep_retired`: seconds, 0 or more"),
        ];
        for (body, expected) in cases {
            assert_eq!(with(body).unwrap_err(), expected, "{body}");
        }
        let c = with(
            "[transports.relay]\nsmarthost = \"Relay.example:465\"\nusername = \"u\"\npassword = \"p\"\n\
             [transports.nope]\nfail = \"550 5.7.1 not there\"\n\
             [[queue.routes]]\nrecipient_domain = \"Blocked.example\"\ntransport = \"nope\"\n\
             [[queue.routes]]\naccount = \"mjl\"\ntransport = \"relay\"\n",
        )
        .unwrap();
        let t = &c.queue_transports;
        assert_eq!(t.names(), ["direct", "nope", "relay"]);
        let Some(roost_actors::queue::transport::Transport::Smarthost(sh)) = t.named.get("relay")
        else {
            panic!("relay is no smarthost");
        };
        assert_eq!((sh.host.as_str(), sh.port), ("relay.example", 465));
        assert_eq!(
            sh.tls,
            roost_actors::queue::transport::SmarthostTls::Implicit
        );
        assert_eq!(sh.auth, Some(("u".to_string(), "p".to_string())));
        assert!(!sh.roots.is_empty());
        let routes: Vec<(Option<&str>, Option<&str>, &str)> = t
            .routes
            .iter()
            .map(|r| {
                (
                    r.when.recipient_domain.as_deref(),
                    r.when.account.as_deref(),
                    r.transport.as_str(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                (Some("blocked.example"), None, "nope"),
                (None, Some("mjl"), "relay")
            ]
        );
        assert_eq!(c.queue_keep_retired, roost_store::KEEP_RETIRED);
    }

    /// `[queue] retry_after`: 1 to MAX_RETRY_STEPS waits, each at least 1.
    #[test]
    fn retry_schedules_at_the_edges() {
        let with = |list: &str| {
            Config::parse(&format!(
                "data_dir = \"/x\"\nhostname = \"h\"\n[queue]\nretry_after = [{list}]\n"
            ))
        };
        let most = roost_actors::queue::MAX_RETRY_STEPS;
        let steps = |n: usize| vec!["60"; n].join(", ");
        assert_eq!(with("1").unwrap().queue_retry_after, [1]);
        assert_eq!(with(&steps(most)).unwrap().queue_retry_after.len(), most);
        for bad in [String::new(), steps(most + 1), "60, 0".into()] {
            let e = with(&bad).unwrap_err().to_string();
            assert!(e.contains("queue.retry_after"), "{e}");
        }
        let default = Config::parse("data_dir = \"/x\"\nhostname = \"h\"\n").unwrap();
        assert_eq!(default.queue_retry_after, roost_actors::queue::RETRY_AFTER);
    }

    #[test]
    fn tls_listener_settings() {
        let base = "data_dir = \"/x\"\nhostname = \"h\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n";
        let get = |c: &Config, p: Protocol| {
            let tls = c.tls.as_ref().unwrap();
            tls.listeners.iter().find(|(q, _)| *q == p).unwrap().1
        };
        // Defaults: tickets everywhere but smtp, client certificates nowhere.
        let c = Config::parse(base).unwrap();
        for p in LISTENER_KINDS {
            assert_eq!(get(&c, p), ListenerTls::default_for(p), "{p:?}");
        }
        assert!(!get(&c, Protocol::Smtp).session_tickets);
        assert!(get(&c, Protocol::Imaps).session_tickets);
        let c = Config::parse(&format!(
            "{base}session_tickets = [\"imaps\"]\nclient_certificates = [\"imap\", \"submissions\"]\n\
             more = [{{ cert = \"c2\", key = \"k2\" }}]\n"
        ))
        .unwrap();
        assert!(get(&c, Protocol::Imaps).session_tickets);
        assert!(!get(&c, Protocol::Imap).session_tickets);
        assert!(get(&c, Protocol::Imap).client_certificates);
        assert!(get(&c, Protocol::Submissions).client_certificates);
        assert!(!get(&c, Protocol::Smtp).client_certificates);
        assert_eq!(
            c.tls.as_ref().unwrap().more,
            vec![(PathBuf::from("c2"), PathBuf::from("k2"))]
        );
        let e = Config::parse(&format!("{base}client_certificates = [\"pop3\"]\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "key `tls.client_certificates`: \"pop3\" is not a listener (smtp, submission, submissions, imap, imaps, https)"
        );
    }
}
