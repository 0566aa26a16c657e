//! DSNs (RFC 3464) from the queue to a message's sender: when recipients
//! fail, and once when delivery is delayed. Never for a message with the
//! null sender (RFC 5321 4.5.5: a DSN never answers a DSN). A sender at a
//! local address gets the DSN in their INBOX at once; a remote sender's
//! goes out through the queue, with the null sender.

use super::{now, QueueSettings};
use crate::account::{NewMessage, Target};
use crate::client::AccountClient;
use roost_protocols::imap::types::Flags;
use roost_protocols::message::dsn::{status_of, Action, Dsn, DsnRecipient};
use roost_protocols::message::header::header_end;
use roost_protocols::message::thread::ThreadKeys;
use roost_store::{QueueId, QueuedMessage, QueuedRecipient, Resolved, StagedFile};
use tracing::warn;

pub enum Kind {
    Failed,
    Delayed,
    /// NOTIFY=SUCCESS: delivered here.
    Delivered,
    /// NOTIFY=SUCCESS: handed to a server that sends no DSNs.
    Relayed,
}

/// One recipient a DSN reports on.
#[derive(Debug, Clone)]
pub struct Entry {
    pub address: String,
    /// What happened: a server's reply, or roost's reason.
    pub why: String,
    /// The server that said it.
    pub mta: Option<String>,
    /// RFC 3461 ORCPT.
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY, when given.
    pub notify: Option<roost_protocols::smtp::Notify>,
}

impl Entry {
    /// An entry for a queued recipient.
    pub fn of(r: &QueuedRecipient, why: String, mta: Option<String>) -> Entry {
        Entry {
            address: r.address.clone(),
            why,
            mta,
            orcpt: r.orcpt.clone(),
            notify: r.notify,
        }
    }
}

/// The largest message a RET=FULL DSN returns whole; larger ones come
/// back as their header.
pub const MAX_RETURNED: u64 = 1024 * 1024;

/// A staged message ready for an account actor.
pub fn new_message(staged: StagedFile, header_prefix: Vec<u8>) -> Result<NewMessage, String> {
    let bytes = staged.source().read_all().map_err(|e| e.to_string())?;
    let keys = ThreadKeys::from_header(&bytes[..header_end(&bytes)]);
    Ok(NewMessage {
        target: Target::Inbox,
        staged,
        flags: Flags::new(),
        internal_date: now(),
        header_prefix,
        keys,
        summary: None,
        extra: Vec::new(),
    })
}

/// Sends the sender of `m` a DSN for `recipients`, those whose NOTIFY
/// asks for this kind (RFC 3461 4.1: without NOTIFY, failures and
/// delays).
pub async fn send(s: &QueueSettings, m: &QueuedMessage, recipients: &[Entry], kind: Kind) {
    let wanted: Vec<Entry> = recipients
        .iter()
        .filter(|e| match (&kind, e.notify) {
            (Kind::Failed | Kind::Delayed, None) => true,
            (Kind::Failed, Some(n)) => n.failure,
            (Kind::Delayed, Some(n)) => n.delay,
            (Kind::Delivered | Kind::Relayed, n) => n.is_some_and(|n| n.success),
        })
        .cloned()
        .collect();
    if m.sender.is_empty() || wanted.is_empty() {
        return;
    }
    // RFC 8689 5: the header of a REQUIRETLS message stays out of a DSN
    // that may travel without TLS. RFC 3461 4.3: RET=FULL returns the
    // whole message on failure (up to MAX_RETURNED).
    let file = s.store.message_path(m.file);
    let requiretls = m.requiretls;
    // A binary message cannot travel inside a DSN sent with DATA: its
    // header only (RFC 3030 3).
    let full = matches!(kind, Kind::Failed)
        && m.ret == Some(roost_protocols::smtp::Ret::Full)
        && !m.binary;
    let prefix = m.header_prefix.clone();
    let original = crate::task::blocking(move || {
        if requiretls {
            return Ok((Vec::new(), None));
        }
        let size = std::fs::metadata(&file)
            .map(|m| m.len())
            .unwrap_or(u64::MAX);
        let mut bytes = Vec::new();
        use std::io::Read;
        let limit = if full && size <= MAX_RETURNED {
            MAX_RETURNED
        } else {
            64 * 1024
        };
        std::fs::File::open(&file)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .map_err(|e| e.to_string())?;
        if full && size <= MAX_RETURNED {
            let head = bytes[..header_end(&bytes)].to_vec();
            // As it was sent: roost's own lines above the sender's.
            return Ok((head, Some([prefix, bytes].concat())));
        }
        bytes.truncate(header_end(&bytes));
        Ok::<_, String>((bytes, None))
    })
    .await
    .unwrap_or_default();
    let report = Report {
        store: &s.store,
        hostname: &s.hostname,
        sender: m.sender.clone(),
        about: m.id.to_string(),
        arrival: m.created,
        original_header: original.0,
        envid: m.envid.clone(),
        whole: original.1,
    };
    report.send(&wanted, kind).await;
}

/// What a DSN is about, wherever it comes from (the queue, or a local
/// delivery).
pub struct Report<'a> {
    pub store: &'a roost_store::Store,
    pub hostname: &'a str,
    /// The original message's sender, who gets the DSN.
    pub sender: String,
    /// A word that makes the DSN's Message-ID unique (the queue id).
    pub about: String,
    pub arrival: i64,
    pub original_header: Vec<u8>,
    /// RFC 3461 ENVID.
    pub envid: Option<String>,
    /// The whole original message, for RET=FULL.
    pub whole: Option<Vec<u8>>,
}

impl Report<'_> {
    pub async fn send(self, recipients: &[Entry], kind: Kind) {
        if self.sender.is_empty() || recipients.is_empty() {
            return;
        }
        let t = now();
        let whole = self.whole.is_some();
        let dsn = Dsn {
            reporting_mta: self.hostname.to_string(),
            date: crate::time::rfc5322_date(t),
            arrival_date: crate::time::rfc5322_date(self.arrival),
            to: self.sender.clone(),
            message_id: format!("dsn.{}.{}@{}", self.about, t, self.hostname),
            envid: self.envid.clone(),
            recipients: recipients
                .iter()
                .map(|e| {
                    let why = &e.why;
                    let code: u16 = why.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                    let enhanced = why
                        .get(4..)
                        .and_then(|rest| rest.split(' ').next())
                        .filter(|e| e.split('.').count() == 3 && e.starts_with(['2', '4', '5']));
                    let (action, status) = match kind {
                        Kind::Failed if code >= 500 => (Action::Failed, status_of(code, enhanced)),
                        Kind::Failed => (Action::Failed, "5.4.7".to_string()),
                        Kind::Delayed => {
                            (Action::Delayed, status_of(code.clamp(400, 499), enhanced))
                        }
                        Kind::Delivered => (Action::Delivered, "2.0.0".to_string()),
                        Kind::Relayed => (Action::Relayed, "2.0.0".to_string()),
                    };
                    DsnRecipient {
                        address: e.address.clone(),
                        action,
                        status,
                        // Only a server's reply is a Diagnostic-Code.
                        diagnostic: matches!(kind, Kind::Failed | Kind::Delayed)
                            .then(|| why.clone()),
                        remote_mta: e.mta.clone(),
                        original_recipient: e.orcpt.clone(),
                    }
                })
                .collect(),
            original_header: self.whole.unwrap_or(self.original_header),
            whole,
            // Random, so the returned message cannot end the part early.
            boundary: format!("dsn-{}-{}", self.about, random_hex()),
        };
        if let Err(e) = deliver(self.store, &self.sender, dsn.build(), false).await {
            warn!(about = %self.about, error = %e, "cannot send a DSN");
        }
    }
}

/// Delivers a DSN (or a report) to `to`: into a local account, or into
/// the queue; `tls_optional` queues it as `TLS-Required: No` mail (RFC
/// 8460 5.3: reports go out despite TLS failures).
pub(crate) async fn deliver(
    store: &roost_store::Store,
    to: &str,
    bytes: Vec<u8>,
    tls_optional: bool,
) -> Result<(), String> {
    let queue_store = store.clone();
    let store = store.clone();
    let to_owned = to.to_string();
    let (local, staged) = crate::task::blocking(move || {
        let local = match store.resolve_recipient(&to_owned) {
            Ok(Some(Resolved::Account(a))) => Some(a.name),
            _ => None,
        };
        let staged = store.stage_bytes(&bytes).map_err(|e| e.to_string())?;
        Ok::<_, String>((local, staged))
    })
    .await?;
    match local {
        Some(account) => {
            let prefix = b"Return-Path: <>\r\n".to_vec();
            let message = crate::task::blocking(move || new_message(staged, prefix)).await?;
            AccountClient::new(&account)
                .deliver(vec![message])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        None => {
            let domain = to
                .rsplit_once('@')
                .map_or("", |(_, d)| d)
                .to_ascii_lowercase();
            let queued = QueuedMessage {
                id: QueueId(0),
                created: now(),
                account: None,
                sender: String::new(),
                domain,
                recipients: vec![QueuedRecipient {
                    address: to.to_string(),
                    last_error: None,
                    notify: None,
                    orcpt: None,
                }],
                file: roost_store::FileId(0),
                header_prefix: Vec::new(),
                smtputf8: !to.is_ascii(),
                eight_bit: true,
                binary: false,
                in_flight: false,
                ret: None,
                envid: None,
                requiretls: false,
                attempts: 0,
                next_attempt: now(),
                last_error: None,
                hold: false,
                delay_notified: false,
                transport: None,
                attempt_log: Vec::new(),
                done: Vec::new(),
                extra: Vec::new(),
                tls_optional,
            };
            crate::task::blocking(move || queue_store.queue_add(staged, vec![queued]))
                .await
                .map_err(|e| format!("cannot queue a DSN: {e}"))?;
            super::kick();
            Ok(())
        }
    }
}

/// 24 random hex digits (getrandom, through ring).
fn random_hex() -> String {
    use ring::rand::SecureRandom;
    let mut buf = [0u8; 12];
    let _ = ring::rand::SystemRandom::new().fill(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
