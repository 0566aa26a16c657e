//! What a delivered message may be besides mail: a DSN about a message
//! this server sent (it came to the unique envelope sender of
//! [`roost_store::Store::bounce_address`]), or a DMARC or TLS report. The
//! message is delivered to its accounts as any other; then the DSN's
//! results become webhook events (`delivered`, `delayed`, `failed`,
//! `relayed`, `expanded`, or `unrecognized` when it cannot be read or
//! matched) and a report is kept for `roost admin incomingreports`.

use crate::task::blocking;
use roost_protocols::message::inbound::{
    find_report, looks_like_report, parse_dsn, Dsn, DsnAction, Report,
};
use roost_store::{QueueId, StagedFile, Store, Suppression};
use serde_json::json;
use tracing::{info, warn};

/// The most octets of a message read to look for a DSN or a report; a
/// larger one is delivered without being read.
pub const MAX_INBOUND_READ: u64 = 16 << 20;

/// What [`inspect`] found.
#[derive(Default)]
pub struct Inbound {
    /// Recipients that are unique envelope senders: address, account,
    /// the queue id it names.
    bounce_to: Vec<(String, String, QueueId)>,
    dsn: Option<Result<Dsn, String>>,
    report: Option<Result<Report, String>>,
}

impl Inbound {
    /// Whether `account` got the message only at unique envelope senders
    /// (it then hears of it as a DSN, not as `incoming` mail).
    pub fn only_bounces(&self, account: &str, recipients: &[(String, String)]) -> bool {
        recipients
            .iter()
            .filter(|(_, owner)| owner == account)
            .all(|(a, _)| self.bounce_to.iter().any(|(b, _, _)| b == a))
    }
}

/// Looks at a message about to be delivered: which recipients are unique
/// envelope senders, and, when some are or the header says the message
/// is a report, reads it (at most [`MAX_INBOUND_READ`] octets), off the
/// async workers.
pub async fn inspect(
    store: &Store,
    head: &[u8],
    staged: Option<&StagedFile>,
    recipients: &[(String, String)],
) -> Inbound {
    let Some(staged) = staged else {
        return Inbound::default();
    };
    // Most mail is neither: decided here, without a blocking task.
    let report_like = looks_like_report(head);
    let recipients: Vec<(String, String)> = recipients
        .iter()
        .filter(|(a, _)| roost_store::may_be_bounce_address(a))
        .cloned()
        .collect();
    if recipients.is_empty() && !report_like {
        return Inbound::default();
    }
    let (store, source, size) = (store.clone(), staged.source(), staged.size());
    let found = blocking(move || {
        let mut found = Inbound::default();
        for (address, account) in recipients {
            if let Some(id) = store.bounce_id(&address).map_err(|e| e.to_string())? {
                found.bounce_to.push((address, account, id));
            }
        }
        if found.bounce_to.is_empty() && !report_like {
            return Ok(found);
        }
        if size > MAX_INBOUND_READ {
            let why = format!("larger than {MAX_INBOUND_READ} octets, not read");
            found.dsn = Some(Err(why.clone()));
            found.report = report_like.then_some(Err(why));
            return Ok(found);
        }
        let msg = source
            .read_to_vec(MAX_INBOUND_READ)
            .map_err(|e| format!("staged message: {e}"))?;
        if !found.bounce_to.is_empty() {
            found.dsn = Some(parse_dsn(&msg));
        }
        if report_like {
            found.report = find_report(&msg);
        }
        Ok::<_, String>(found)
    })
    .await;
    found.unwrap_or_else(|e| {
        warn!(error = %e, "cannot read a message for DSNs and reports");
        Inbound::default()
    })
}

/// After `account` took the message: keeps its report, and turns a DSN
/// to one of its unique envelope senders into webhook events (and its
/// permanent failures into suppressions).
pub async fn delivered(store: &Store, inbound: &Inbound, account: &str, from: &str, now: i64) {
    let mine: Vec<(String, QueueId)> = inbound
        .bounce_to
        .iter()
        .filter(|(_, owner, _)| owner == account)
        .map(|(a, _, id)| (a.clone(), *id))
        .collect();
    if inbound.report.is_none() && mine.is_empty() {
        return;
    }
    // One message names a queued message once, however many of its
    // unique addresses it came to.
    let mut seen = std::collections::HashSet::new();
    let mine: Vec<(String, QueueId)> = mine
        .into_iter()
        .filter(|(_, id)| seen.insert(*id))
        .collect();
    let (store, account, from) = (store.clone(), account.to_string(), from.to_string());
    let (report, dsn) = (inbound.report.clone(), inbound.dsn.clone());
    let done = blocking(move || {
        match report {
            Some(Ok(report)) => {
                let id = store.inbound_report_add(&account, &from, report, now)?;
                info!(%account, id, "report kept");
            }
            Some(Err(why)) => info!(%account, %why, "a report that cannot be read"),
            None => {}
        }
        for (address, id) in mine {
            let dsn = match (&dsn, from.is_empty()) {
                // RFC 3464 2, RFC 5321 4.5.5: DSNs come from the null
                // reverse-path; anything else is mail, not a report.
                (Some(Ok(_)), false) => {
                    Some(Err("it comes from a reverse-path that is not null".into()))
                }
                (d, _) => d.clone(),
            };
            dsn_events(&store, &account, &address, id, dsn.as_ref(), now)?;
        }
        Ok::<_, roost_store::StoreError>(())
    })
    .await;
    if let Err(e) = done {
        warn!(error = %e, "cannot keep a report or a DSN's events");
    }
}

/// The events of a DSN that came to `address` (naming queued message
/// `id`) for `account`.
fn dsn_events(
    store: &Store,
    account: &str,
    address: &str,
    id: QueueId,
    dsn: Option<&Result<Dsn, String>>,
    now: i64,
) -> roost_store::Result<()> {
    let emit = |event: &str, payload: serde_json::Value| {
        if store.has_webhooks() {
            crate::queue::webhooks::emit(store, account, event, payload);
        }
    };
    let unrecognized = |why: &str| {
        info!(%account, %address, %why, "an unrecognized DSN");
        emit(
            "unrecognized",
            json!({"queue_id": id.0, "to": address, "reason": why}),
        );
    };
    let sent = store
        .sent_message(id)?
        .filter(|m| m.account() == Some(account));
    let (dsn, sent) = match (dsn, sent) {
        (Some(Ok(dsn)), Some(sent)) => (dsn, sent),
        (Some(Err(why)), _) => {
            unrecognized(&format!("not a DSN: {why}"));
            return Ok(());
        }
        (_, None) => {
            unrecognized("no such message of this account is known");
            return Ok(());
        }
        (None, Some(_)) => return Ok(()),
    };
    let mut hard = Vec::new();
    // RFC 3464 2.3.1, 2.3.2: Original-Recipient is the address this
    // server sent to, Final-Recipient the one the reporting server
    // delivered to (after forwarding); a result about neither of the
    // message's recipients is not about this message.
    let about: Vec<(&str, &roost_protocols::message::inbound::DsnResult)> = dsn
        .recipients
        .iter()
        .filter_map(|r| {
            [r.original.as_deref(), Some(r.recipient.as_str())]
                .into_iter()
                .flatten()
                .find(|a| sent.was_sent_to(a))
                .map(|a| (a, r))
        })
        .collect();
    if about.is_empty() {
        unrecognized("it names none of the message's recipients");
        return Ok(());
    }
    for (address, r) in about {
        let reply = r.diagnostic.clone().unwrap_or_else(|| r.status.clone());
        if r.action == DsnAction::Failed && r.status.starts_with('5') {
            hard.push(Suppression {
                address: address.to_string(),
                since: now,
                reason: reply.clone(),
            });
        }
        info!(%account, queue_id = id.0, recipient = %r.recipient, action = r.action.as_str(), "DSN matched");
        emit(
            r.action.as_str(),
            json!({
                "queue_id": id.0,
                "from": sent.sender(),
                "to": address,
                "status": r.status,
                "reply": reply,
                "host": r.remote_mta,
                "dsn": true,
                "reporting_mta": dsn.reporting_mta,
                "extra": crate::queue::webhooks::extra_json(sent.extra()),
            }),
        );
    }
    if !hard.is_empty() {
        if let Some(a) = store.account(account)? {
            for h in &hard {
                store.suppress(a.id, h)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DSN of exactly `size` octets (padded in its text part).
    fn dsn_of_size(size: usize) -> Vec<u8> {
        let head = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
                    --b\r\nContent-Type: message/delivery-status\r\n\r\n\
                    Reporting-MTA: dns; x\r\n\r\n\
                    Final-Recipient: rfc822; bob@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
                    --b\r\nContent-Type: text/plain\r\n\r\n";
        let tail = "\r\n--b--\r\n";
        let mut m = head.as_bytes().to_vec();
        m.resize(size - tail.len(), b'x');
        m.extend_from_slice(tail.as_bytes());
        m
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn messages_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add_domain("a.example").unwrap();
        store
            .set_domain_matching("a.example", Some("+".into()), None, None)
            .unwrap();
        let to = store
            .bounce_address("alice@a.example", QueueId(3))
            .unwrap()
            .unwrap();
        let recipients = vec![(to.clone(), "alice@a.example".to_string())];
        let limit = MAX_INBOUND_READ as usize;
        let edge = store.stage_bytes(&dsn_of_size(limit)).unwrap();
        let found = inspect(&store, b"", Some(&edge), &recipients).await;
        assert_eq!(
            found.bounce_to,
            [(to.clone(), "alice@a.example".into(), QueueId(3))]
        );
        assert!(found.only_bounces("alice@a.example", &recipients));
        assert_eq!(
            found.dsn.map(|d| d.map(|d| d.recipients.len())),
            Some(Ok(1))
        );
        let past = store.stage_bytes(&dsn_of_size(limit + 1)).unwrap();
        let found = inspect(&store, b"", Some(&past), &recipients).await;
        assert_eq!(
            found.dsn.map(|d| d.map(|d| d.recipients.len())),
            Some(Err(format!(
                "larger than {MAX_INBOUND_READ} octets, not read"
            )))
        );
        // Plain mail to a plain address is not read at all.
        let plain = vec![("alice@a.example".to_string(), "alice@a.example".to_string())];
        let found = inspect(&store, b"Subject: hi\r\n\r\n", Some(&edge), &plain).await;
        assert!(found.dsn.is_none() && found.report.is_none() && found.bounce_to.is_empty());
        assert!(!found.only_bounces("alice@a.example", &plain));
    }
}
