//! One destination domain's delivery worker: finds the domain's mail
//! servers (MX, RFC 5321 5.1), talks SMTP to the first that answers
//! (STARTTLS when offered, opportunistically; recipients pipelined when
//! PIPELINING is offered), and writes what came of each message.

use super::dane::HostTls;
use super::transport::{Smarthost, SmarthostTls, Transport};
use super::{dsn, now, webhooks, QueueSettings, DELAY_DSN_AFTER};
use crate::client::AccountClient;
use crate::dns::{Dns, MxAnswer};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_protocols::smtp::client::{dot_stuff, ReplyReader, ServerReply};
use roost_protocols::smtp::command::xtext_encode;
use roost_protocols::smtp::dane::DanePolicy;
use roost_protocols::smtp::mta_sts::{Mode, Policy};
use roost_protocols::smtp::spf::AuthDns;
use roost_protocols::smtp::Ret;
use roost_store::{
    Attempt, Finished, FinishedAs, QueueChange, QueuedMessage, QueuedRecipient, Resolved,
};
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
/// Addresses tried per mail server, at most.
pub const MAX_ADDRESSES_PER_HOST: usize = 4;
/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one worker may take for all its messages; what is left then
/// is tried again later.
pub const WORKER_DEADLINE: Duration = Duration::from_secs(1800);

pub struct WorkerArgs {
    pub settings: Arc<QueueSettings>,
    /// The messages say `TLS-Required: No` (RFC 8689 5): no MTA-STS.
    pub tls_optional: bool,
    pub domain: String,
    pub transport: Transport,
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
            let policies = !args.tls_optional;
            deliver_domain(
                &args.settings,
                &args.domain,
                &args.transport,
                policies,
                args.messages,
            )
            .await;
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
    /// Refused by this server's own configuration (a fail transport):
    /// given up like [`Outcome::Permanent`], but the address is not
    /// suppressed, since no server said it is bad.
    Configured(String),
}

/// Where a domain's mail goes (RFC 5321 5.1): an address literal's
/// address, its MX hosts, or the domain itself without MX. `Err(true)`
/// is permanent (a null MX, RFC 7505; no such domain), `Err(false)`
/// temporary.
async fn mail_hosts(dns: &Dns, domain: &str) -> Result<Vec<String>, (bool, String)> {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return match ip.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![ip.to_string()]),
            Err(_) => Err((true, format!("550 5.1.2 {domain} is no address"))),
        };
    }
    match dns.mail_exchangers(domain).await {
        Ok(MxAnswer::Hosts(h)) => Ok(h.into_iter().take(MAX_HOSTS).collect()),
        Ok(MxAnswer::NoMx) => Ok(vec![domain.to_string()]),
        Ok(MxAnswer::Null) => Err((
            true,
            format!("556 5.1.10 {domain} accepts no mail (null MX, RFC 7505)"),
        )),
        Ok(MxAnswer::NoDomain) => Err((true, format!("550 5.1.2 no such domain: {domain}"))),
        Err(_) => Err((false, format!("MX lookup of {domain} failed"))),
    }
}

/// The addresses of a host, IPv6 first (RFC 5321 5.1 leaves the order to
/// the client), at most [`MAX_ADDRESSES_PER_HOST`].
pub(crate) async fn addresses(dns: &Dns, host: &str) -> Vec<IpAddr> {
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
    out.truncate(MAX_ADDRESSES_PER_HOST);
    out
}

/// A connection to the first of `hosts` that answers; the reason when
/// none does. A host that is this server is skipped (RFC 5321 5.1: mail
/// must not loop back here).
async fn connect(
    s: &QueueSettings,
    domain: &str,
    hosts: &[String],
    sts: Option<&Policy>,
    dane: Option<&[HostTls]>,
    record: bool,
) -> Result<(Session, String), String> {
    let enforce = sts.is_some_and(|p| p.mode == Mode::Enforce);
    let mut last = "no mail server could be reached".to_string();
    let mut all_self = !hosts.is_empty();
    for (i, host) in hosts.iter().enumerate() {
        if host.eq_ignore_ascii_case(&s.hostname) {
            continue;
        }
        all_self = false;
        // RFC 7672: DANE, where the host publishes TLSA records, takes
        // the place of MTA-STS's checks.
        let host_dane = dane.and_then(|d| d.get(i));
        let policy = match (host_dane, sts) {
            (Some(HostTls::Unusable(why)), _) => {
                if record {
                    let failed = (Some("dnssec-invalid"), (None, None));
                    record_tls(s, domain, host, TlsPolicy::Dnssec, failed).await;
                }
                last = why.clone();
                continue;
            }
            (Some(HostTls::Required(p)), _) => TlsPolicy::Dane(p),
            (_, Some(p)) => TlsPolicy::Sts(p),
            (_, None) => TlsPolicy::None,
        };
        for ip in addresses(&s.dns, host).await {
            let addr = SocketAddr::new(ip, s.remote_port);
            let checks = match policy {
                TlsPolicy::Dane(p) => Checks::Dane(
                    super::dane::tls_config(p, host, domain),
                    matches!(p, DanePolicy::Authenticate(_)),
                ),
                TlsPolicy::Sts(p) if p.mode == Mode::Enforce => Checks::Enforce(&s.mx_roots),
                TlsPolicy::Sts(p) if p.mode == Mode::Testing => Checks::Testing(&s.mx_roots),
                _ => Checks::None,
            };
            let required = enforce || matches!(policy, TlsPolicy::Dane(_));
            match Session::open(s, addr, host, checks).await {
                Ok(session) => {
                    // Mail sent without policies (reports among it, RFC
                    // 8460 5.3) is not counted in the next report.
                    if record {
                        let tls = (session.tls_failure, session.ends);
                        record_tls(s, domain, host, policy, tls).await;
                    }
                    return Ok((session, host.clone()));
                }
                Err(e) => {
                    if let Some(kind) = required.then(|| tls_failure_kind(&e)).flatten() {
                        if record {
                            let failed = (Some(kind), (None, Some(addr)));
                            record_tls(s, domain, host, policy, failed).await;
                        }
                    }
                    last = format!("{host} [{ip}]: {e}");
                }
            }
        }
    }
    if all_self {
        return Err(format!(
            "{LOOP_PREFIX}the mail servers of this domain are this server"
        ));
    }
    Err(last)
}

/// Keeps how a session to one of `domain`'s MX hosts went with TLS, for
/// the TLS reports (RFC 8460; without MTA-STS or DANE the policy type is
/// `no-policy-found`).
async fn record_tls(
    s: &QueueSettings,
    domain: &str,
    host: &str,
    policy: TlsPolicy<'_>,
    (failure, ends): (
        Option<&'static str>,
        (Option<SocketAddr>, Option<SocketAddr>),
    ),
) {
    let ip = |a: Option<SocketAddr>| a.map_or(String::new(), |a| a.ip().to_string());
    let (policy_domain, policy_type, policy_string) = match policy {
        TlsPolicy::Sts(p) if p.mode != Mode::None => (domain, "sts", p.lines()),
        // RFC 8460 4.4: DANE's policy domain is the TLSA base domain, the
        // MX host, whose own TLSRPT record gets the report.
        TlsPolicy::Dane(p) => (host, "tlsa", p.lines()),
        TlsPolicy::Dnssec => (host, "tlsa", Vec::new()),
        _ => (domain, "no-policy-found", Vec::new()),
    };
    let result = roost_store::TlsResult {
        time_us: now().max(0) as u64 * 1_000_000,
        domain: policy_domain.to_string(),
        policy_type: policy_type.into(),
        policy_string,
        mx_host: host.to_string(),
        receiving_ip: ip(ends.1),
        sending_ip: ip(ends.0),
        failure: failure.map(str::to_string),
    };
    let store = s.store.clone();
    if let Err(e) = crate::task::blocking(move || store.add_tls_result(&result)).await {
        warn!(error = %e, "cannot record a TLS result");
    }
}

/// The policy a session to an MX host was under, for the TLS reports.
#[derive(Clone, Copy)]
enum TlsPolicy<'a> {
    None,
    Sts(&'a Policy),
    Dane(&'a DanePolicy),
    /// The host's TLSA records could not be had (RFC 8460
    /// `dnssec-invalid`).
    Dnssec,
}

/// RFC 8460 4.3's result type for a connection that failed under an
/// enforced policy, read from its error; `None` for failures that are
/// not about TLS (the host did not answer).
fn tls_failure_kind(error: &str) -> Option<&'static str> {
    if error.contains("STARTTLS is not offered") {
        Some("starttls-not-supported")
    } else if !error.starts_with("TLS") {
        None
    } else if error.contains("DANE: ") {
        // RFC 8460 4.3.2.1: none of the TLSA records validated it.
        Some("tlsa-invalid")
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        Some("certificate-host-mismatch")
    } else if error.contains("Expired") || error.contains("certificate expired") {
        Some("certificate-expired")
    } else if error.contains("UnknownIssuer") || error.contains("unknown issuer") {
        Some("certificate-not-trusted")
    } else {
        Some("validation-failure")
    }
}

/// The reason a connection attempt gives when the MX points back here.
const LOOP_PREFIX: &str = "554 5.4.6 ";

async fn deliver_domain(
    s: &QueueSettings,
    domain: &str,
    transport: &Transport,
    policies: bool,
    messages: Vec<QueuedMessage>,
) {
    // Held messages (FUTURERELEASE) for this server's own domains are
    // delivered here, not sent anywhere.
    let (store, d) = (s.store.clone(), domain.to_string());
    let local = crate::task::blocking(move || store.domain(&d))
        .await
        .ok()
        .flatten()
        .is_some_and(|d| !d.report_only);
    if local {
        for m in messages {
            if already_done(s, &m).await {
                continue;
            }
            let outcomes = deliver_here(s, &m).await;
            finish(s, m, outcomes, None, false).await;
        }
        return;
    }
    if s.localserve {
        for m in messages {
            if already_done(s, &m).await {
                continue;
            }
            let outcomes = simulate(s, &m).await;
            // The simulated servers send no DSNs of their own.
            finish(s, m, outcomes, None, true).await;
        }
        return;
    }
    let smarthost = match transport {
        Transport::Direct => None,
        Transport::Smarthost(sh) => Some(sh.clone()),
        Transport::Fail(reply) => {
            let o = if reply.starts_with('4') {
                Outcome::Temporary(reply.clone())
            } else {
                Outcome::Configured(reply.clone())
            };
            for m in messages {
                if !already_done(s, &m).await {
                    let all = vec![o.clone(); m.recipients.len()];
                    finish(s, m, all, None, false).await;
                }
            }
            return;
        }
    };
    let deadline = tokio::time::Instant::now() + WORKER_DEADLINE;
    let hosts = match &smarthost {
        Some(sh) => Ok(vec![sh.host.clone()]),
        None => mail_hosts(&s.dns, domain).await,
    };
    // RFC 7672: where DNSSEC proves the MX RRset, its hosts, and DANE
    // for those whose TLSA records it proves.
    let (hosts, dane) = match (&hosts, &smarthost) {
        (Ok(_), None) if policies => match super::dane::plan(s, domain, MAX_HOSTS).await {
            Ok(Some(plan)) => {
                let (h, tls): (Vec<String>, Vec<HostTls>) = plan.into_iter().unzip();
                (Ok(h), Some(tls))
            }
            Ok(None) => (hosts, None),
            Err(why) => (Err((false, why)), None),
        },
        _ => (hosts, None),
    };
    // RFC 8461 4.1, 5: under an enforced MTA-STS policy only the MX hosts
    // it names are used, over TLS with a checked certificate.
    let sts = match &smarthost {
        None if policies => super::mta_sts::policy_for(s, domain).await,
        _ => None,
    };
    let enforce = sts.as_ref().filter(|p| p.mode == Mode::Enforce);
    let (hosts, dane) = match (hosts, enforce) {
        (Ok(h), Some(p)) => {
            let mut tls = dane.map(|d| d.into_iter());
            let matching: Vec<(String, Option<HostTls>)> = h
                .into_iter()
                .map(|h| {
                    let t = tls.as_mut().and_then(|t| t.next());
                    (h, t)
                })
                .filter(|(h, _)| p.matches(h))
                .collect();
            if matching.is_empty() {
                let why = format!("MTA-STS: no MX host of {domain} matches its policy");
                (Err((false, why)), None)
            } else {
                let (h, t): (Vec<String>, Vec<Option<HostTls>>) = matching.into_iter().unzip();
                (Ok(h), t.into_iter().collect::<Option<Vec<HostTls>>>())
            }
        }
        (h, _) => (h, dane),
    };
    let dane_authenticates = dane.as_ref().is_some_and(|d| {
        d.iter()
            .any(|h| matches!(h, HostTls::Required(DanePolicy::Authenticate(_))))
    });
    let mut session: Option<(Session, String)> = None;
    let mut unreachable: Option<String> = None;
    for m in messages {
        let all = |o: Outcome| vec![o; m.recipients.len()];
        if already_done(s, &m).await {
            continue;
        }
        // RFC 8689 4.2.1: a REQUIRETLS message needs a validated MX
        // (DNSSEC or MTA-STS) and a validated certificate: an enforced
        // MTA-STS policy or DANE-authenticated hosts; without either it
        // fails (5.7.30). A smarthost is configured, not looked up, and
        // its certificate is checked: it gets the message if it offers
        // REQUIRETLS. The session itself must be checked TLS to a server
        // that offers REQUIRETLS (see `transaction`).
        if m.requiretls && smarthost.is_none() && enforce.is_none() && !dane_authenticates {
            let why = "550 5.7.30 REQUIRETLS needs an MX and certificate validated by \
                       MTA-STS or DANE, and the destination has neither an enforced \
                       MTA-STS policy nor DANE";
            finish(
                s,
                m.clone(),
                all(Outcome::Permanent(why.into(), None)),
                None,
                false,
            )
            .await;
            continue;
        }
        let hosts = match &hosts {
            Ok(h) => h,
            Err((true, why)) => {
                finish(
                    s,
                    m.clone(),
                    all(Outcome::Permanent(why.clone(), None)),
                    None,
                    false,
                )
                .await;
                continue;
            }
            Err((false, why)) => {
                finish(
                    s,
                    m.clone(),
                    all(Outcome::Temporary(why.clone())),
                    None,
                    false,
                )
                .await;
                continue;
            }
        };
        if tokio::time::Instant::now() >= deadline {
            let why = "delivery ran out of time; tried again later".to_string();
            finish(s, m.clone(), all(Outcome::Temporary(why)), None, false).await;
            continue;
        }
        if session.is_none() && unreachable.is_none() {
            let connected = match &smarthost {
                Some(sh) => Session::open_smarthost(s, sh)
                    .await
                    .map(|session| (session, sh.host.clone()))
                    .map_err(|e| format!("{}:{}: {e}", sh.host, sh.port)),
                None => connect(s, domain, hosts, sts.as_ref(), dane.as_deref(), policies).await,
            };
            match connected {
                Ok(c) => session = Some(c),
                Err(why) => unreachable = Some(why),
            }
        }
        let Some((open, host)) = session.as_mut() else {
            let why = unreachable.clone().unwrap_or_default();
            let o = if why.starts_with(LOOP_PREFIX) {
                Outcome::Permanent(why, None)
            } else {
                Outcome::Temporary(why)
            };
            finish(s, m.clone(), all(o), None, false).await;
            continue;
        };
        let host = host.clone();
        match open.send(s, &m).await {
            Ok(outcomes) => {
                let relay_reports = !open.ehlo.offers("DSN");
                finish(s, m, outcomes, Some(&host), relay_reports).await
            }
            Err(e) => {
                // The connection is in an unknown state: this message is
                // tried again later, the next one on a new connection.
                session = None;
                let why = format!("{host}: {e}");
                finish(s, m.clone(), all(Outcome::Temporary(why)), None, false).await;
            }
        }
    }
    if let Some((open, _)) = session {
        open.quit().await;
    }
}

/// A message whose file is gone was finished before a crash that lost
/// only its record's removal: the record goes now.
async fn already_done(s: &QueueSettings, m: &QueuedMessage) -> bool {
    let (store, probe) = (s.store.clone(), m.clone());
    let gone = crate::task::blocking(move || Ok::<_, String>(store.queue_file_gone(&probe)))
        .await
        .unwrap_or(false);
    if gone {
        warn!(id = %m.id, "a queued message without its file: finished before a crash; removed");
        let (store, id) = (s.store.clone(), m.id);
        let _ = crate::task::blocking(move || store.queue_remove(id)).await;
    }
    gone
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

/// A queued message's recipients at this server's own domains: each
/// account the address reaches (an alias's members) gets it in its INBOX.
async fn deliver_here(s: &QueueSettings, m: &QueuedMessage) -> Vec<Outcome> {
    let mut out = Vec::new();
    for r in &m.recipients {
        let (store, address) = (s.store.clone(), r.address.clone());
        let accounts = crate::task::blocking(move || {
            Ok::<_, String>(match store.resolve_recipient(&address) {
                Ok(Some(Resolved::Account(a))) => Some(vec![a.name]),
                Ok(Some(Resolved::Alias(alias))) => Some(
                    alias
                        .members
                        .iter()
                        .filter_map(|member| store.account_by_address(member).ok().flatten())
                        .map(|a| a.name)
                        .collect(),
                ),
                Ok(None) => None,
                Err(e) => return Err(e.to_string()),
            })
        })
        .await;
        let o = match accounts {
            Err(e) => Outcome::Temporary(e),
            Ok(None) => {
                Outcome::Permanent(format!("550 5.1.1 No such user here: {}", r.address), None)
            }
            Ok(Some(names)) => {
                let mut result = Outcome::Delivered;
                for account in names {
                    if let Err(e) = deliver_copy(s, m, &account).await {
                        result = Outcome::Temporary(e);
                    }
                }
                result
            }
        };
        out.push(o);
    }
    out
}

/// One copy of a queued message into `account`'s INBOX.
async fn deliver_copy(s: &QueueSettings, m: &QueuedMessage, account: &str) -> Result<(), String> {
    let store = s.store.clone();
    let file = store.message_path(m.file);
    let prefix = [
        format!("Return-Path: <{}>\r\n", m.sender).into_bytes(),
        m.header_prefix.clone(),
    ]
    .concat();
    let message = crate::task::blocking(move || {
        let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
        let staged = store.stage_bytes(&bytes).map_err(|e| e.to_string())?;
        dsn::new_message(staged, prefix)
    })
    .await?;
    AccountClient::new(account)
        .deliver(vec![message])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// localserve: the message goes to the submitter's INBOX.
async fn deliver_to_sender(s: &QueueSettings, m: &QueuedMessage) -> Result<(), String> {
    let Some(account) = m.account.clone() else {
        return Err("no account to deliver to".into());
    };
    deliver_copy(s, m, &account).await
}

/// Writes what came of an attempt: delivered recipients go (with a
/// "relayed" DSN for NOTIFY=SUCCESS when `relay_reports`: the server
/// sends none itself), failed ones go with a DSN, the rest wait for the
/// next attempt (or fail with the last one). An admin's hold or drop
/// meanwhile is kept.
async fn finish(
    s: &QueueSettings,
    mut m: QueuedMessage,
    outcomes: Vec<Outcome>,
    host: Option<&str>,
    relay_reports: bool,
) {
    let mut failed = Vec::new();
    let mut relayed = Vec::new();
    let mut kept = Vec::new();
    let mut temp_reason = None;
    let mut perm_reason = None;
    let at = now();
    let finished = |r: &QueuedRecipient, how, detail: String| Finished {
        address: r.address.clone(),
        at,
        how,
        detail,
    };
    let mut done = Vec::new();
    let mut events = Vec::new();
    let delivered = if relay_reports {
        "relayed"
    } else {
        "delivered"
    };
    let recipients: Vec<QueuedRecipient> = m.recipients.drain(..).collect();
    let mut configured = Vec::new();
    for (mut r, o) in recipients.into_iter().zip(outcomes) {
        let o = match o {
            Outcome::Configured(why) => {
                configured.push(r.address.clone());
                Outcome::Permanent(why, None)
            }
            o => o,
        };
        match o {
            Outcome::Delivered => {
                info!(id = %m.id, rcpt = %r.address, "delivered");
                events.push((delivered, webhooks::about(&m, &r.address, None, host)));
                let to = host.map_or("delivered".to_string(), |h| format!("delivered to {h}"));
                done.push(finished(&r, FinishedAs::Delivered, to));
                if relay_reports {
                    relayed.push(dsn::Entry::of(
                        &r,
                        "250 2.0.0 relayed".into(),
                        host.map(str::to_string),
                    ));
                }
            }
            Outcome::Permanent(why, mta) => {
                info!(id = %m.id, rcpt = %r.address, %why, "failed");
                done.push(finished(&r, FinishedAs::Failed, why.clone()));
                perm_reason.get_or_insert_with(|| why.clone());
                let event = webhooks::about(&m, &r.address, Some(&why), mta.as_deref().or(host));
                events.push(("failed", event));
                let mta = mta.or(host.map(str::to_string));
                failed.push(dsn::Entry::of(&r, why, mta));
            }
            Outcome::Temporary(why) => {
                r.last_error = Some(why.clone());
                temp_reason = Some(why);
                kept.push(r);
            }
            Outcome::Configured(_) => {}
        }
    }
    m.recipients = kept;
    m.log_attempt(Attempt {
        at,
        host: host.map(str::to_string),
        result: temp_reason
            .clone()
            .or(perm_reason)
            .unwrap_or_else(|| "delivered".into()),
    });
    if !m.recipients.is_empty() {
        let reason = temp_reason.unwrap_or_default();
        if !reschedule(&mut m, &reason, now(), &s.retry_after) {
            // The last attempt: the rest fail too.
            let why = format!("gave up after {} attempts: {reason}", m.attempts);
            for r in std::mem::take(&mut m.recipients) {
                events.push(("failed", webhooks::about(&m, &r.address, Some(&why), None)));
                failed.push(dsn::Entry::of(&r, why.clone(), None));
                done.push(finished(&r, FinishedAs::Failed, why.clone()));
            }
        }
    }
    m.done.extend(done);
    if !failed.is_empty() {
        let hard: Vec<dsn::Entry> = failed
            .iter()
            .filter(|e| !configured.contains(&e.address))
            .cloned()
            .collect();
        suppress_hard_failures(s, &m, &hard).await;
        dsn::send(s, &m, &failed, dsn::Kind::Failed).await;
    }
    if !relayed.is_empty() {
        dsn::send(s, &m, &relayed, dsn::Kind::Relayed).await;
    }
    let delay_due = !m.recipients.is_empty() && m.attempts >= DELAY_DSN_AFTER && !m.delay_notified;
    if delay_due {
        let delayed: Vec<dsn::Entry> = m
            .recipients
            .iter()
            .map(|r| dsn::Entry::of(r, r.last_error.clone().unwrap_or_default(), None))
            .collect();
        dsn::send(s, &m, &delayed, dsn::Kind::Delayed).await;
        m.delay_notified = true;
        for r in &m.recipients {
            let event = webhooks::about(&m, &r.address, r.last_error.as_deref(), None);
            events.push(("delayed", event));
        }
    }
    webhooks::emit_all(&s.store, m.account.as_deref(), events).await;
    let store = s.store.clone();
    let written = crate::task::blocking(move || {
        // An outcome lost in a crash means a repeat: another attempt, or
        // (for a remote 250 not yet recorded) a duplicate, never a loss.
        store.queue_change_lazily(m.id, move |stored| {
            if m.recipients.is_empty() {
                // Retired as it ends: with its attempts and outcomes.
                *stored = m;
                return (QueueChange::Remove, ());
            }
            // Held, or sent another way, by the admin meanwhile: stays so.
            m.hold = stored.hold;
            m.transport = stored.transport.clone();
            m.in_flight = false;
            *stored = m;
            (QueueChange::Write, ())
        })
    })
    .await;
    if let Err(e) = written {
        warn!(error = %e, "cannot write a queued message's state");
    }
}

/// Addresses a server refused for good (5xx) go on the submitting
/// account's suppression list: its later submissions to them fail at
/// once instead of bouncing again.
async fn suppress_hard_failures(s: &QueueSettings, m: &QueuedMessage, failed: &[dsn::Entry]) {
    let Some(account) = m.account.clone() else {
        return;
    };
    let hard: Vec<roost_store::Suppression> = failed
        .iter()
        .filter(|e| e.why.starts_with('5'))
        .map(|e| roost_store::Suppression {
            address: e.address.clone(),
            since: now(),
            reason: e.why.clone(),
        })
        .collect();
    if hard.is_empty() {
        return;
    }
    let store = s.store.clone();
    let done = crate::task::blocking(move || {
        let Some(a) = store.account(&account)? else {
            return Ok(());
        };
        for h in &hard {
            store.suppress(a.id, h)?;
        }
        Ok::<_, roost_store::StoreError>(())
    })
    .await;
    if let Err(e) = done {
        warn!(error = %e, "cannot add to a suppression list");
    }
}

/// Counts a failed attempt and sets the next one: after the n-th failed
/// attempt the next waits `schedule[n - 1]` seconds; false when there is
/// none left.
pub fn reschedule(m: &mut QueuedMessage, reason: &str, now: i64, schedule: &[i64]) -> bool {
    m.attempts += 1;
    m.last_error = Some(reason.to_string());
    match schedule.get(m.attempts as usize - 1) {
        Some(wait) => {
            m.next_attempt = now + wait;
            true
        }
        None => false,
    }
}

/// What a session to an MX host must show of its TLS (RFC 8461).
#[derive(Clone)]
enum Checks<'a> {
    /// No policy: opportunistic TLS.
    None,
    /// A testing policy: checked, failures reported, delivered anyway.
    Testing(&'a Arc<rustls::RootCertStore>),
    /// An enforced policy: checked TLS or nothing.
    Enforce(&'a Arc<rustls::RootCertStore>),
    /// DANE (RFC 7672): TLS or nothing, with this configuration; whether
    /// it authenticates the server.
    Dane(Arc<rustls::ClientConfig>, bool),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP connection to a remote server.
struct Session {
    io: Box<dyn Io>,
    reader: ReplyReader,
    ehlo: ServerReply,
    /// The connection is TLS with a certificate checked against trusted
    /// roots (a smarthost's), not just opportunistic.
    verified_tls: bool,
    /// Why the session has no TLS, as RFC 8460 4.3 names it; `None`
    /// with TLS.
    tls_failure: Option<&'static str>,
    /// This side's and the server's addresses.
    ends: (Option<SocketAddr>, Option<SocketAddr>),
}

/// Whether a reply is a success (2xx; RFC 5321 4.2.1: 3xx only after
/// DATA).
fn success(r: &ServerReply) -> bool {
    r.code / 100 == 2
}

impl Session {
    /// Connects, reads the greeting, says EHLO (HELO when EHLO is not
    /// known) and, when offered, upgrades to TLS and says EHLO again. A
    /// failed TLS handshake is tried once more without TLS (opportunistic
    /// TLS, RFC 3207 leaves it to the client).
    /// Under an enforced MTA-STS policy (`validate`), STARTTLS is
    /// required and the certificate checked against those roots and the
    /// MX host's name; nothing falls back to plain text.
    async fn open(
        s: &QueueSettings,
        addr: SocketAddr,
        host: &str,
        checks: Checks<'_>,
    ) -> Result<Session, String> {
        match checks {
            Checks::Dane(config, authenticated) => {
                let session = Session::open_once(s, addr, host, Some(config)).await?;
                if session.tls_failure.is_some() {
                    return Err("STARTTLS is not offered (DANE requires TLS)".into());
                }
                return Ok(Session {
                    verified_tls: authenticated,
                    ..session
                });
            }
            Checks::Enforce(roots) => {
                let session = Session::open_once(s, addr, host, Some(verified_tls(roots))).await?;
                if session.tls_failure.is_some() {
                    return Err("STARTTLS is not offered (MTA-STS requires TLS)".into());
                }
                return Ok(Session {
                    verified_tls: true,
                    ..session
                });
            }
            // RFC 8461 5: a testing policy is checked as an enforced one,
            // its failures reported, and the mail delivered anyway.
            Checks::Testing(roots) => {
                match Session::open_once(s, addr, host, Some(verified_tls(roots))).await {
                    Ok(session) if session.tls_failure.is_none() => {
                        return Ok(Session {
                            verified_tls: true,
                            ..session
                        })
                    }
                    Ok(session) => return Ok(session),
                    Err(e) if e.starts_with("TLS") => {
                        let kind = tls_failure_kind(&e);
                        let mut session =
                            Box::pin(Session::open(s, addr, host, Checks::None)).await?;
                        session.tls_failure = kind.or(session.tls_failure);
                        return Ok(session);
                    }
                    Err(e) => return Err(e),
                }
            }
            Checks::None => {}
        }
        match Session::open_once(s, addr, host, Some(opportunistic_tls())).await {
            Err(e) if e.starts_with("TLS") => {
                let mut plain = Session::open_once(s, addr, host, None).await?;
                plain.tls_failure = Some("validation-failure");
                Ok(plain)
            }
            other => other,
        }
    }

    async fn open_once(
        s: &QueueSettings,
        addr: SocketAddr,
        host: &str,
        starttls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Session, String> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        // Commands and replies are small and answered one by one: without
        // this, Nagle's algorithm and delayed ACKs hold each for ~40 ms.
        let _ = tcp.set_nodelay(true);
        let ends = (tcp.local_addr().ok(), Some(addr));
        let mut session = Session::over(Box::new(tcp));
        session.ends = ends;
        session.greeting_and_hello(s).await?;
        session.tls_failure = Some("starttls-not-supported");
        if let Some(config) = starttls.filter(|_| session.ehlo.offers("STARTTLS")) {
            session.write(b"STARTTLS\r\n").await?;
            let r = session.reply(REPLY_TIMEOUT).await?;
            if r.code == 220 {
                session = session.upgrade(host, config, false).await?;
                session.ehlo = session.hello(&s.hostname).await?;
                session.tls_failure = None;
            }
        }
        Ok(session)
    }

    fn over(io: Box<dyn Io>) -> Session {
        Session {
            io,
            reader: ReplyReader::new(),
            ehlo: ServerReply {
                code: 0,
                lines: Vec::new(),
            },
            verified_tls: false,
            tls_failure: None,
            ends: (None, None),
        }
    }

    async fn greeting_and_hello(&mut self, s: &QueueSettings) -> Result<(), String> {
        let greeting = self.reply(REPLY_TIMEOUT).await?;
        if greeting.code != 220 {
            return Err(format!("greeting: {}", greeting.text()));
        }
        self.ehlo = self.hello(&s.hostname).await?;
        Ok(())
    }

    /// A session with a smarthost: TLS as configured (its certificate
    /// checked; STARTTLS required when configured, never skipped), then
    /// AUTH PLAIN (RFC 4954, RFC 4616) when credentials are configured.
    async fn open_smarthost(s: &QueueSettings, sh: &Smarthost) -> Result<Session, String> {
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::lookup_host((sh.host.as_str(), sh.port)),
        )
        .await
        .map_err(|_| "name lookup timed out".to_string())?
        .map_err(|e| format!("name lookup: {e}"))?
        .take(MAX_ADDRESSES_PER_HOST)
        .collect();
        let mut last = "no address".to_string();
        let mut tcp = None;
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(t)) => {
                    tcp = Some(t);
                    break;
                }
                Ok(Err(e)) => last = format!("connect: {e}"),
                Err(_) => last = "connect timed out".into(),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        let config = verified_tls(&sh.roots);
        let mut session = Session::over(Box::new(tcp));
        if sh.tls == SmarthostTls::Implicit {
            session = session.upgrade(&sh.host, config.clone(), true).await?;
        }
        session.greeting_and_hello(s).await?;
        if sh.tls == SmarthostTls::StartTls {
            if !session.ehlo.offers("STARTTLS") {
                return Err("the smarthost offers no STARTTLS".into());
            }
            session.write(b"STARTTLS\r\n").await?;
            let r = session.reply(REPLY_TIMEOUT).await?;
            if r.code != 220 {
                return Err(format!("STARTTLS: {}", r.text()));
            }
            session = session.upgrade(&sh.host, config, true).await?;
            session.ehlo = session.hello(&s.hostname).await?;
        }
        if let Some((user, password)) = &sh.auth {
            session.authenticate(user, password).await?;
        }
        Ok(session)
    }

    /// AUTH PLAIN with an initial response (RFC 4954 4, RFC 4616 2).
    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), String> {
        use base64::Engine as _;
        let offers_plain = self.ehlo.lines.iter().any(|l| {
            let mut words = l.split_ascii_whitespace();
            words.next().is_some_and(|w| w.eq_ignore_ascii_case("AUTH"))
                && words.any(|w| w.eq_ignore_ascii_case("PLAIN"))
        });
        if !offers_plain {
            return Err("the smarthost does not offer AUTH PLAIN".into());
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.write(format!("AUTH PLAIN {token}\r\n").as_bytes())
            .await?;
        let r = self.reply(REPLY_TIMEOUT).await?;
        if r.code != 235 {
            return Err(format!("AUTH: {}", r.text()));
        }
        Ok(())
    }

    /// EHLO, or HELO when the server does not know EHLO (RFC 5321 3.2).
    async fn hello(&mut self, hostname: &str) -> Result<ServerReply, String> {
        self.write(format!("EHLO {hostname}\r\n").as_bytes())
            .await?;
        let r = self.reply(REPLY_TIMEOUT).await?;
        if r.code == 250 {
            return Ok(r);
        }
        if matches!(r.code, 500 | 502) {
            self.write(format!("HELO {hostname}\r\n").as_bytes())
                .await?;
            let r = self.reply(REPLY_TIMEOUT).await?;
            if r.code == 250 {
                // No keywords: no extensions.
                return Ok(ServerReply {
                    code: 250,
                    lines: r.lines.into_iter().take(1).collect(),
                });
            }
            return Err(format!("HELO: {}", r.text()));
        }
        Err(format!("EHLO: {}", r.text()))
    }

    async fn upgrade(
        self,
        host: &str,
        config: Arc<rustls::ClientConfig>,
        verified: bool,
    ) -> Result<Session, String> {
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| format!("TLS: {host} is no server name"))?;
        let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connector.connect(name, self.io))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS handshake: {e}"))?;
        Ok(Session {
            io: Box::new(tls),
            reader: ReplyReader::new(),
            ehlo: self.ehlo,
            verified_tls: verified,
            tls_failure: None,
            ends: self.ends,
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        tokio::time::timeout(REPLY_TIMEOUT, self.io.write_all(bytes))
            .await
            .map_err(|_| "write timed out".to_string())?
            .map_err(|e| format!("write: {e}"))
    }

    async fn reply(&mut self, limit: Duration) -> Result<ServerReply, String> {
        read_reply(&mut self.io, &mut self.reader, limit).await
    }

    /// One message: its recipients in transactions of at most the
    /// server's RCPTMAX (RFC 9422); recipients a server put off with 452
    /// while taking others go again at once in a new transaction (RFC
    /// 5321 4.5.3.1.10). The outcome of each recipient; `Err` when the
    /// connection is no longer usable.
    async fn send(&mut self, s: &QueueSettings, m: &QueuedMessage) -> Result<Vec<Outcome>, String> {
        let all = |o: Outcome| vec![o; m.recipients.len()];
        if m.smtputf8 && !self.ehlo.offers("SMTPUTF8") {
            let why = "553 5.6.7 the server does not take SMTPUTF8 mail".to_string();
            return Ok(all(Outcome::Permanent(why, None)));
        }
        let binary = m.binary && !(self.ehlo.offers("BINARYMIME") && self.ehlo.offers("CHUNKING"));
        if binary || (m.eight_bit && !self.ehlo.offers("8BITMIME")) {
            // RFC 6152 3, RFC 3030 3: 8-bit or binary content only where
            // the server says it takes it; roost does not convert.
            let why = "554 5.6.3 the server does not take this message's 8-bit or binary content"
                .to_string();
            return Ok(all(Outcome::Permanent(why, None)));
        }
        let most = self
            .ehlo
            .limit("RCPTMAX")
            .filter(|n| *n > 0)
            .unwrap_or(m.recipients.len().max(1));
        let mut outcomes: Vec<Option<Outcome>> = vec![None; m.recipients.len()];
        let mut todo: Vec<usize> = (0..m.recipients.len()).collect();
        while !todo.is_empty() {
            let batch: Vec<usize> = todo.drain(..most.min(todo.len())).collect();
            let results = self.transaction(s, m, &batch).await?;
            let some_taken = results.iter().any(|o| matches!(o, Outcome::Delivered));
            for (i, o) in batch.into_iter().zip(results) {
                match o {
                    Outcome::Temporary(why) if some_taken && why.starts_with("452") => todo.push(i),
                    o => outcomes[i] = Some(o),
                }
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Temporary("not tried".into())))
            .collect())
    }

    /// One transaction: MAIL, the RCPTs of `batch` (pipelined when
    /// offered, RFC 2920), DATA or BDAT.
    async fn transaction(
        &mut self,
        s: &QueueSettings,
        m: &QueuedMessage,
        batch: &[usize],
    ) -> Result<Vec<Outcome>, String> {
        let mut mail = format!("MAIL FROM:<{}>", envelope_sender(s, m).await);
        if m.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if m.requiretls {
            // RFC 8689 4.2.1: only over a checked TLS connection to a
            // server that offers it.
            if !(self.verified_tls && self.ehlo.offers("REQUIRETLS")) {
                // Tried again later (another MX may offer it); after the
                // last attempt it fails.
                let why = "450 4.7.30 REQUIRETLS: the server's connection is not checked \
                           TLS or it does not offer REQUIRETLS";
                return Ok(vec![Outcome::Temporary(why.into()); batch.len()]);
            }
            mail.push_str(" REQUIRETLS");
        }
        if m.binary {
            mail.push_str(" BODY=BINARYMIME");
        } else if m.eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        // RFC 3461 5.2: the DSN parameters go on where the server takes
        // them.
        let dsn = self.ehlo.offers("DSN");
        if dsn {
            match m.ret {
                Some(Ret::Full) => mail.push_str(" RET=FULL"),
                Some(Ret::Hdrs) => mail.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(e) = &m.envid {
                mail.push_str(&format!(" ENVID={}", xtext_encode(e)));
            }
        }
        let mut commands = vec![format!("{mail}\r\n")];
        commands.extend(batch.iter().map(|&i| {
            let r = &m.recipients[i];
            let mut line = format!("RCPT TO:<{}>", r.address);
            if dsn {
                if let Some(n) = r.notify {
                    line.push_str(&format!(" NOTIFY={}", n.to_param()));
                }
                if let Some((kind, addr)) = r.orcpt.as_deref().and_then(|o| o.split_once(';')) {
                    line.push_str(&format!(" ORCPT={kind};{}", xtext_encode(addr)));
                }
            }
            line.push_str("\r\n");
            line
        }));
        let mut replies = Vec::new();
        if self.ehlo.offers("PIPELINING") {
            // The envelope in one write, then its replies, one per command.
            self.write(commands.concat().as_bytes()).await?;
            for _ in &commands {
                replies.push(self.reply(REPLY_TIMEOUT).await?);
            }
        } else {
            for c in &commands {
                self.write(c.as_bytes()).await?;
                let r = self.reply(REPLY_TIMEOUT).await?;
                let stop = c.starts_with("MAIL") && !success(&r);
                replies.push(r);
                if stop {
                    break;
                }
            }
        }
        if !success(&replies[0]) {
            let o = refusal(&replies[0]);
            self.reset().await?;
            return Ok(vec![o; batch.len()]);
        }
        let mut outcomes: Vec<Option<Outcome>> = replies[1..]
            .iter()
            .map(|r| (!success(r)).then(|| refusal(r)))
            .collect();
        if outcomes.iter().all(Option::is_some) {
            self.reset().await?;
            return Ok(outcomes.into_iter().flatten().collect());
        }
        let data = if m.binary {
            self.send_chunk(s, m).await?
        } else {
            self.write(b"DATA\r\n").await?;
            let r = self.reply(REPLY_TIMEOUT).await?;
            if r.code != 354 {
                let o = refusal(&r);
                self.reset().await?;
                return Ok(outcomes
                    .into_iter()
                    .map(|x| x.unwrap_or_else(|| o.clone()))
                    .collect());
            }
            self.send_content(s, m).await?;
            self.reply(FINAL_REPLY_TIMEOUT).await?
        };
        let data = if success(&data) {
            Outcome::Delivered
        } else {
            refusal(&data)
        };
        for o in &mut outcomes {
            o.get_or_insert_with(|| data.clone());
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// RSET after a transaction that went nowhere.
    async fn reset(&mut self) -> Result<(), String> {
        self.write(b"RSET\r\n").await?;
        let r = self.reply(REPLY_TIMEOUT).await?;
        if success(&r) {
            Ok(())
        } else {
            Err(format!("RSET: {}", r.text()))
        }
    }

    /// The message, read from the store a piece at a time.
    async fn pieces(
        s: &QueueSettings,
        m: &QueuedMessage,
    ) -> Result<(Arc<roost_store::MessageReader>, u64), String> {
        let store = s.store.clone();
        let m2 = m.clone();
        let reader = crate::task::blocking(move || store.queue_open(&m2))
            .await
            .map_err(|e| format!("cannot read the queued message: {e}"))?;
        let len = reader.len();
        Ok((Arc::new(reader), len))
    }

    async fn piece(reader: &Arc<roost_store::MessageReader>, at: u64) -> Result<Vec<u8>, String> {
        let r = reader.clone();
        crate::task::blocking(move || r.read_at(at, 64 * 1024))
            .await
            .map_err(|e| format!("cannot read the queued message: {e}"))
    }

    /// The message dot-stuffed for DATA, then the end marker on a line
    /// of its own (RFC 5321 4.5.2).
    async fn send_content(&mut self, s: &QueueSettings, m: &QueuedMessage) -> Result<(), String> {
        let (reader, len) = Session::pieces(s, m).await?;
        let mut at = 0u64;
        let mut line_start = true;
        let mut tail = Tail::default();
        while at < len {
            let piece = Session::piece(&reader, at).await?;
            if piece.is_empty() {
                break;
            }
            at += piece.len() as u64;
            tail.push(&piece);
            let stuffed = dot_stuff(&piece, &mut line_start);
            self.write(&stuffed).await?;
        }
        self.write(tail.end_marker()).await
    }

    /// A binary message as one BDAT LAST chunk (RFC 3030 2); its reply.
    async fn send_chunk(
        &mut self,
        s: &QueueSettings,
        m: &QueuedMessage,
    ) -> Result<ServerReply, String> {
        let (reader, len) = Session::pieces(s, m).await?;
        self.write(format!("BDAT {len} LAST\r\n").as_bytes())
            .await?;
        let mut at = 0u64;
        while at < len {
            let piece = Session::piece(&reader, at).await?;
            if piece.is_empty() {
                return Err("the queued message is shorter than it was".into());
            }
            at += piece.len() as u64;
            self.write(&piece).await?;
        }
        self.reply(FINAL_REPLY_TIMEOUT).await
    }

    async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.reply(REPLY_TIMEOUT)).await;
        }
    }
}

/// The next reply a server sends on `io`, within `limit`.
pub(crate) async fn read_reply(
    io: &mut (impl AsyncRead + Unpin),
    reader: &mut ReplyReader,
    limit: Duration,
) -> Result<ServerReply, String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = reader.next_reply()? {
            return Ok(r);
        }
        let n = tokio::time::timeout_at(deadline, io.read(&mut buf))
            .await
            .map_err(|_| "no reply in time".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        reader.feed(&buf[..n]);
    }
}

/// The last two bytes of a message sent in pieces, for its end marker.
#[derive(Default)]
struct Tail([u8; 2], usize);

impl Tail {
    fn push(&mut self, piece: &[u8]) {
        for &b in piece.iter().rev().take(2).collect::<Vec<_>>().iter().rev() {
            self.0 = [self.0[1], *b];
            self.1 += 1;
        }
    }

    /// ".\r\n" after a final CRLF (or nothing at all); the missing line
    /// end first otherwise (a final bare CR gets its LF).
    fn end_marker(&self) -> &'static [u8] {
        match (self.1, self.0) {
            (0, _) => b".\r\n",
            (_, [b'\r', b'\n']) => b".\r\n",
            (_, [_, b'\r']) => b"\n.\r\n",
            _ => b"\r\n.\r\n",
        }
    }
}

/// A refusing reply as an outcome: 5xx is final, except the replies that
/// say the two sides misunderstood each other (500-504), which are tried
/// again; 4xx is tried again.
fn refusal(r: &ServerReply) -> Outcome {
    if r.is_permanent() && !(500..=504).contains(&r.code) {
        Outcome::Permanent(r.text(), None)
    } else {
        Outcome::Temporary(r.text())
    }
}

/// TLS to a smarthost or a webhook: the certificate checked against
/// `roots` and the configured name.
pub(crate) fn verified_tls(roots: &Arc<rustls::RootCertStore>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => Arc::new(
            b.with_root_certificates(roots.clone())
                .with_no_client_auth(),
        ),
        Err(e) => no_tls(e),
    }
}

/// A configuration that trusts nothing, when rustls has none to give.
pub(crate) fn no_tls(e: rustls::Error) -> Arc<rustls::ClientConfig> {
    warn!(error = %e, "no TLS client configuration");
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    )
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
            config.map_or_else(no_tls, Arc::new)
        })
        .clone()
}

/// Takes any certificate; checks the handshake's signatures.
#[derive(Debug)]
pub(crate) struct AnyCertificate(pub(crate) Arc<rustls::crypto::CryptoProvider>);

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

/// The reverse-path `m` goes out with: its sender, or, when its account
/// asks for it, the unique address its DSNs are matched by
/// ([`roost_store::Store::bounce_address`]).
async fn envelope_sender(s: &QueueSettings, m: &QueuedMessage) -> String {
    let Some(account) = m.account.clone().filter(|_| !m.sender.is_empty()) else {
        return m.sender.clone();
    };
    let (store, sender, id) = (s.store.clone(), m.sender.clone(), m.id);
    let unique = crate::task::blocking(move || match store.account(&account)? {
        Some(a) if a.unique_mail_from => store.bounce_address(&sender, id),
        _ => Ok(None),
    })
    .await;
    match unique {
        Ok(Some(address)) => address,
        Ok(None) => m.sender.clone(),
        Err(e) => {
            warn!(id = %m.id, error = %e, "cannot make the unique envelope sender");
            m.sender.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5321 4.5.2: the end marker on a line of its own, whatever the
    /// message's last bytes and however it was cut into pieces.
    #[test]
    fn end_markers_after_any_last_bytes() {
        let marker = |pieces: &[&[u8]]| {
            let mut t = Tail::default();
            for p in pieces {
                t.push(p);
            }
            t.end_marker()
        };
        assert_eq!(marker(&[]), b".\r\n");
        assert_eq!(marker(&[b"a\r\n"]), b".\r\n");
        assert_eq!(marker(&[b"a\r", b"\n"]), b".\r\n");
        assert_eq!(marker(&[b"abc", b"\n"]), b"\r\n.\r\n");
        assert_eq!(marker(&[b"no end"]), b"\r\n.\r\n");
        assert_eq!(marker(&[b"bare\r"]), b"\n.\r\n");
        assert_eq!(marker(&[b"x"]), b"\r\n.\r\n");
    }

    /// Replies that end a recipient for good, and those tried again.
    #[test]
    fn tls_failures_are_named_as_rfc_8460_names_them() {
        let cases = [
            ("STARTTLS is not offered (DANE requires TLS)", Some("starttls-not-supported")),
            (
                "TLS handshake: unexpected error: DANE: no TLSA record matches the server's certificate",
                Some("tlsa-invalid"),
            ),
            ("TLS handshake: invalid peer certificate: Expired", Some("certificate-expired")),
            ("TLS handshake: invalid peer certificate: UnknownIssuer", Some("certificate-not-trusted")),
            ("TLS handshake: invalid peer certificate: NotValidForName", Some("certificate-host-mismatch")),
            ("TLS handshake: received fatal alert", Some("validation-failure")),
            ("connect: Connection refused", None),
        ];
        for (error, kind) in cases {
            assert_eq!(tls_failure_kind(error), kind, "{error}");
        }
    }

    #[test]
    fn refusals_that_are_final_and_those_that_are_not() {
        let r = |code: u16| ServerReply {
            code,
            lines: vec!["text".into()],
        };
        assert!(matches!(refusal(&r(550)), Outcome::Permanent(..)));
        assert!(matches!(refusal(&r(554)), Outcome::Permanent(..)));
        for code in [421, 451, 452, 500, 501, 502, 503, 504] {
            assert!(matches!(refusal(&r(code)), Outcome::Temporary(_)), "{code}");
        }
        assert!(success(&r(250)) && !success(&r(354)) && !success(&r(450)));
    }
}
