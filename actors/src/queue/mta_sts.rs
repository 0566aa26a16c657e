//! MTA-STS for the queue (RFC 8461): the policy of a destination domain,
//! from the store's cache while its record's id is the same and its
//! `max_age` lasts, else fetched over HTTPS (the certificate checked,
//! no redirects, at most `MAX_POLICY_BYTES`) and kept.

use super::QueueSettings;
use crate::task::blocking;
use roost_protocols::smtp::mta_sts::{parse_record, Policy, MAX_POLICY_BYTES};
use roost_store::CachedPolicy;
use std::time::Duration;
use tracing::{info, warn};

/// How long a policy fetch may take (RFC 8461 3.3 suggests a minute at
/// most).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// After a failed fetch, the same domain's policy is not fetched again
/// for this long (RFC 8461 3.3: at least five minutes per record id).
pub const FETCH_BACKOFF: i64 = 300;
/// Domains whose failed fetch is remembered, at most (the memory is
/// emptied when full).
pub const MAX_BACKOFF_ENTRIES: usize = 10_000;

/// Domains whose last fetch failed, and until when not to try again.
fn backoff() -> &'static std::sync::Mutex<std::collections::HashMap<String, i64>> {
    static B: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, i64>>> =
        std::sync::OnceLock::new();
    B.get_or_init(Default::default)
}

fn backing_off(domain: &str, now: i64) -> bool {
    let b = backoff().lock().unwrap_or_else(|e| e.into_inner());
    b.get(domain).is_some_and(|until| *until > now)
}

/// Forgets a domain's back-off (its policy was fetched).
fn clear_back_off(domain: &str) {
    let mut b = backoff().lock().unwrap_or_else(|e| e.into_inner());
    b.remove(domain);
}

fn back_off(domain: &str, now: i64) {
    let mut b = backoff().lock().unwrap_or_else(|e| e.into_inner());
    if b.len() >= MAX_BACKOFF_ENTRIES {
        b.clear();
    }
    b.insert(domain.to_string(), now + FETCH_BACKOFF);
}

/// The policy that applies to mail for `domain` now, if any (RFC 8461
/// 5.1): a cached one that is still valid when the record is gone or
/// unchanged or the fetch fails; a fresh one when the record's id
/// changed or nothing is cached.
pub async fn policy_for(s: &QueueSettings, domain: &str) -> Option<Policy> {
    let now = super::now();
    let (store, d) = (s.store.clone(), domain.to_string());
    let cached = blocking(move || store.mta_sts_policy(&d))
        .await
        .ok()
        .flatten()
        .filter(|c| c.expires > now);
    // RFC 8461 3.1: exactly one record that starts with v=STSv1.
    let records = s.dns.txt_records(&format!("_mta-sts.{domain}")).await;
    let ours: Vec<String> = records
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.starts_with("v=STSv1"))
        .collect();
    let id = match ours.as_slice() {
        [record] => parse_record(record).ok(),
        _ => None,
    };
    let Some(id) = id else {
        return cached.map(|c| c.policy);
    };
    if let Some(c) = cached.as_ref().filter(|c| c.id == id) {
        // RFC 8461 10.2: refreshed in the background past half its life,
        // so it never lapses while mail flows.
        if now > c.fetched + (c.expires - c.fetched) / 2 && !backing_off(domain, now) {
            // Marked as backing off while it runs, so deliveries meanwhile
            // start no second fetch; a successful one clears the mark.
            back_off(domain, now);
            let (s, domain, id) = (s.clone(), domain.to_string(), id.clone());
            tokio::spawn(async move {
                refresh(&s, &domain, id, now).await;
            });
        }
        return Some(c.policy.clone());
    }
    if backing_off(domain, now) {
        return cached.map(|c| c.policy);
    }
    match refresh(s, domain, id, now).await {
        Some(policy) => Some(policy),
        None => cached.map(|c| c.policy),
    }
}

/// Fetches `domain`'s policy for record `id` and keeps it; `None` (and a
/// back-off) when the fetch fails.
async fn refresh(s: &QueueSettings, domain: &str, id: String, now: i64) -> Option<Policy> {
    match fetch(s, domain).await {
        Ok(policy) => {
            clear_back_off(domain);
            info!(%domain, %id, mode = ?policy.mode, "MTA-STS policy fetched");
            let kept = CachedPolicy {
                id,
                policy: policy.clone(),
                fetched: now,
                expires: now.saturating_add(policy.max_age as i64),
            };
            let (store, d) = (s.store.clone(), domain.to_string());
            if let Err(e) = blocking(move || store.set_mta_sts_policy(&d, &kept)).await {
                warn!(%domain, error = %e, "cannot keep an MTA-STS policy");
            }
            Some(policy)
        }
        Err(e) => {
            warn!(%domain, error = %e, "MTA-STS policy fetch failed; not tried again for 5 minutes");
            back_off(domain, now);
            None
        }
    }
}

/// `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461 3.3).
async fn fetch(s: &QueueSettings, domain: &str) -> Result<Policy, String> {
    let host = format!("mta-sts.{domain}");
    let addresses = super::delivery::addresses(&s.dns, &host).await;
    if addresses.is_empty() {
        return Err(format!("{host} has no address"));
    }
    // Each address in turn (IPv6 first) until one answers, as delivery
    // tries a host's addresses; all within FETCH_TIMEOUT.
    let answer = tokio::time::timeout(FETCH_TIMEOUT, async {
        let mut last = String::new();
        for address in addresses {
            let target = crate::http_client::Target {
                host: &host,
                port: s.mta_sts_port,
                tls: Some(&s.mx_roots),
                address: Some(address),
            };
            let request =
                hyper::Request::get("/.well-known/mta-sts.txt").header(hyper::header::HOST, &host);
            match crate::http_client::request(&target, request, Vec::new(), MAX_POLICY_BYTES, true)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(e) => last = format!("[{address}]: {e}"),
            }
        }
        Err(last)
    })
    .await
    .map_err(|_| "the policy fetch timed out".to_string())??;
    // 3.3: only a 200 counts (no redirects); the type is text/plain.
    if answer.status != 200 {
        return Err(format!("HTTP {}", answer.status));
    }
    if !answer
        .content_type
        .to_ascii_lowercase()
        .starts_with("text/plain")
    {
        return Err(format!("Content-Type {:?}", answer.content_type));
    }
    let text = String::from_utf8(answer.body).map_err(|_| "the policy is not UTF-8".to_string())?;
    Policy::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed fetch holds the domain back for FETCH_BACKOFF seconds:
    /// at the edge still, one past not; the memory is bounded.
    #[test]
    fn failed_fetches_back_off_for_five_minutes() {
        back_off("backoff.example", 1000);
        assert!(backing_off("backoff.example", 1000 + FETCH_BACKOFF - 1));
        assert!(!backing_off("backoff.example", 1000 + FETCH_BACKOFF));
        assert!(!backing_off("other-backoff.example", 1000));
        for i in 0..MAX_BACKOFF_ENTRIES + 1 {
            back_off(&format!("d{i}.backoff.example"), 1000);
        }
        assert!(backoff().lock().unwrap().len() <= MAX_BACKOFF_ENTRIES);
    }
}
