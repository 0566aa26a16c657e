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
}

/// A staged message ready for an account actor.
pub fn new_message(staged: StagedFile, header_prefix: Vec<u8>) -> Result<NewMessage, String> {
    let path = staged.path().to_path_buf();
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
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

/// Sends the sender of `m` a DSN for `recipients`: (address, what
/// happened, the server that said it).
pub async fn send(
    s: &QueueSettings,
    m: &QueuedMessage,
    recipients: &[(String, String, Option<String>)],
    kind: Kind,
) {
    if m.sender.is_empty() || recipients.is_empty() {
        return;
    }
    // RFC 8689 5: the header of a REQUIRETLS message stays out of a DSN
    // that may travel without TLS.
    let file = s.store.message_path(m.file);
    let requiretls = m.requiretls;
    let original = crate::task::blocking(move || {
        if requiretls {
            return Ok(Vec::new());
        }
        let mut head = Vec::new();
        use std::io::Read;
        std::fs::File::open(&file)
            .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
            .map_err(|e| e.to_string())?;
        head.truncate(header_end(&head));
        Ok::<_, String>(head)
    })
    .await
    .unwrap_or_default();
    let report = Report {
        store: &s.store,
        hostname: &s.hostname,
        sender: &m.sender,
        about: m.id.to_string(),
        arrival: m.created,
        original_header: original,
    };
    report.send(recipients, kind).await;
}

/// What a DSN is about, wherever it comes from (the queue, or a local
/// delivery that failed after the rest of the message was queued).
pub struct Report<'a> {
    pub store: &'a roost_store::Store,
    pub hostname: &'a str,
    /// The original message's sender, who gets the DSN.
    pub sender: &'a str,
    /// A word that makes the DSN's Message-ID unique (the queue id).
    pub about: String,
    pub arrival: i64,
    pub original_header: Vec<u8>,
}

impl Report<'_> {
    pub async fn send(self, recipients: &[(String, String, Option<String>)], kind: Kind) {
        if self.sender.is_empty() || recipients.is_empty() {
            return;
        }
        let t = now();
        let dsn = Dsn {
            reporting_mta: self.hostname.to_string(),
            date: crate::time::rfc5322_date(t),
            arrival_date: crate::time::rfc5322_date(self.arrival),
            to: self.sender.to_string(),
            message_id: format!("dsn.{}.{}@{}", self.about, t, self.hostname),
            recipients: recipients
                .iter()
                .map(|(address, why, mta)| {
                    let code: u16 = why.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                    let enhanced = why
                        .get(4..)
                        .and_then(|rest| rest.split(' ').next())
                        .filter(|e| e.split('.').count() == 3 && e.starts_with(['4', '5']));
                    let status = match kind {
                        Kind::Failed if code >= 500 => status_of(code, enhanced),
                        Kind::Failed => "5.4.7".to_string(),
                        Kind::Delayed => status_of(code.clamp(400, 499), enhanced),
                    };
                    DsnRecipient {
                        address: address.clone(),
                        action: match kind {
                            Kind::Failed => Action::Failed,
                            Kind::Delayed => Action::Delayed,
                        },
                        status,
                        diagnostic: Some(why.clone()),
                        remote_mta: mta.clone(),
                    }
                })
                .collect(),
            original_header: self.original_header,
            boundary: format!("dsn-{}-{}", self.about, t),
        };
        if let Err(e) = deliver(self.store, self.sender, dsn.build()).await {
            warn!(about = %self.about, error = %e, "cannot send a DSN");
        }
    }
}

/// Delivers a DSN to `to`: into a local account, or into the queue.
async fn deliver(store: &roost_store::Store, to: &str, bytes: Vec<u8>) -> Result<(), String> {
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
                }],
                file: roost_store::FileId(0),
                header_prefix: Vec::new(),
                smtputf8: !to.is_ascii(),
                eight_bit: true,
                binary: false,
                in_flight: false,
                requiretls: false,
                attempts: 0,
                next_attempt: now(),
                last_error: None,
                hold: false,
                delay_notified: false,
            };
            crate::task::blocking(move || queue_store.queue_add(staged, vec![queued]))
                .await
                .map_err(|e| format!("cannot queue a DSN: {e}"))?;
            super::kick();
            Ok(())
        }
    }
}
