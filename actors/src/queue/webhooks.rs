//! The webhooks actor (house plan: `queue` → `webhooks`): makes the calls
//! waiting in the store, an HTTP POST of a JSON event to the account's
//! URL each, at most [`MAX_CALLS_IN_FLIGHT`] at once. A 2xx answer is
//! done; anything else is tried again after the next step of
//! [`RETRY_AFTER`], and given up after the last. Made and given-up calls
//! are kept as history with every attempt.
//!
//! Events: `delivered` (the next server took it and will report itself),
//! `relayed` (it took it and sends no reports), `delayed`, `failed`,
//! `suppressed` (a submission to an address on the suppression list),
//! `canceled` (dropped by the admin), and `incoming` (a message delivered
//! to the account). Each carries the message's extra data
//! (`X-Roost-Extra-*` fields at submission).

use crate::task::{blocking, TaskGuard};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_store::{Attempt, QueuedMessage, Store, WebhookCall, WebhookChange};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The registered name of the webhooks actor.
pub const WEBHOOKS_ACTOR: &str = "webhooks";
/// Seconds to wait after each failed call: 1 minute, 5, 15, then 1, 3, 6
/// and 12 hours; after the last the call is given up (about 22 hours).
pub const RETRY_AFTER: [i64; 7] = [60, 300, 900, 3600, 10_800, 21_600, 43_200];
/// Calls made at once.
pub const MAX_CALLS_IN_FLIGHT: usize = 10;
/// How long one call may take, connecting to the answer's head.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the actor looks for due calls when nothing wakes it.
pub const TICK: Duration = Duration::from_secs(1);
/// The most of an answer's body read (and dropped).
pub const MAX_ANSWER_BODY: usize = 64 * 1024;
/// Why a call is given up at once.
const GONE: &str = "the account has no webhook any more";
/// Every how many seconds the history is pruned.
const PRUNE_EVERY: i64 = 60;

/// What the webhooks actor needs.
#[derive(Clone)]
pub struct WebhookSettings {
    pub store: Store,
    /// Seconds to wait after each failed call (see [`RETRY_AFTER`]).
    pub retry_after: Arc<Vec<i64>>,
    /// Certificate authorities for `https://` URLs.
    pub roots: Arc<rustls::RootCertStore>,
}

/// Queues `event` for `account`'s webhook (when it has one) and wakes the
/// actor. Blocking (a store write): call it from blocking work.
pub fn emit(store: &Store, account: &str, event: &str, mut payload: Value) {
    let now = crate::time::now_unix();
    if let Value::Object(fields) = &mut payload {
        fields.insert("version".into(), json!(1));
        fields.insert("event".into(), json!(event));
        fields.insert("account".into(), json!(account));
        fields.insert("time".into(), json!(crate::time::rfc3339(now)));
    }
    match store.webhook_add(account, event, payload.to_string(), now) {
        Ok(Some(_)) => kick(),
        Ok(None) => {}
        Err(e) => warn!(%account, %event, error = %e, "cannot queue a webhook call"),
    }
}

/// Extra data as the events carry it.
pub fn extra_json(extra: &[(String, String)]) -> Value {
    Value::Object(
        extra
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// An event about one recipient of a queued message.
pub fn about(m: &QueuedMessage, to: &str, reply: Option<&str>, host: Option<&str>) -> Value {
    json!({
        "queue_id": m.id.0,
        "from": m.sender,
        "to": to,
        "reply": reply,
        "host": host,
        "extra": extra_json(&m.extra),
    })
}

/// Queues `events` for `account`'s webhook, off the async workers;
/// nothing when no account has a webhook.
pub async fn emit_all(store: &Store, account: Option<&str>, events: Vec<(&'static str, Value)>) {
    let Some(account) = account.map(str::to_string) else {
        return;
    };
    if events.is_empty() || !store.has_webhooks() {
        return;
    }
    let store = store.clone();
    let _ = blocking(move || {
        for (event, payload) in events {
            emit(&store, &account, event, payload);
        }
        Ok::<_, String>(())
    })
    .await;
}

/// Wakes the actor (a call was queued).
pub fn kick() {
    if let Some(cell) = ractor::registry::where_is(WEBHOOKS_ACTOR) {
        let actor: ActorRef<WebhookMsg> = cell.into();
        let _ = actor.cast(WebhookMsg::Tick);
    }
}

pub enum WebhookMsg {
    Tick,
    /// A call finished (its outcome is written).
    Done(u64),
}

pub struct Webhooks;

pub struct WebhookState {
    settings: Arc<WebhookSettings>,
    /// Calls being made, by id.
    in_flight: HashMap<u64, TaskGuard>,
    pruned: i64,
}

impl Actor for Webhooks {
    type Msg = WebhookMsg;
    type State = WebhookState;
    type Arguments = WebhookSettings;

    async fn pre_start(
        &self,
        myself: ActorRef<WebhookMsg>,
        settings: WebhookSettings,
    ) -> Result<WebhookState, ActorProcessingErr> {
        myself.send_interval(TICK, || WebhookMsg::Tick);
        Ok(WebhookState {
            settings: Arc::new(settings),
            in_flight: HashMap::new(),
            pruned: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WebhookMsg>,
        msg: WebhookMsg,
        state: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebhookMsg::Tick => state.start_due(&myself).await,
            WebhookMsg::Done(id) => {
                state.in_flight.remove(&id);
                state.start_due(&myself).await;
            }
        }
        Ok(())
    }
}

impl WebhookState {
    async fn start_due(&mut self, myself: &ActorRef<WebhookMsg>) {
        let now = crate::time::now_unix();
        if now - self.pruned >= PRUNE_EVERY {
            self.pruned = now;
            let store = self.settings.store.clone();
            if let Err(e) = blocking(move || store.prune_webhook_history(now)).await {
                warn!(error = %e, "cannot prune the webhook history");
            }
        }
        let room = MAX_CALLS_IN_FLIGHT.saturating_sub(self.in_flight.len());
        if room == 0 {
            return;
        }
        let store = self.settings.store.clone();
        let want = room + self.in_flight.len();
        let due = match blocking(move || store.webhooks_due(now, want)).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot read the webhook calls");
                return;
            }
        };
        let due: Vec<WebhookCall> = due
            .into_iter()
            .filter(|c| !self.in_flight.contains_key(&c.id))
            .take(room)
            .collect();
        for call in due {
            let (settings, me, id) = (self.settings.clone(), myself.clone(), call.id);
            let task = TaskGuard::spawn(async move {
                make_call(&settings, call).await;
                let _ = me.cast(WebhookMsg::Done(id));
            });
            self.in_flight.insert(id, task);
        }
    }
}

/// One attempt at a call, and its outcome written. The account's
/// webhook as it is now: changed since the event, the call goes to the
/// new URL; removed (or the account gone), the call is given up.
async fn make_call(s: &WebhookSettings, mut call: WebhookCall) {
    let (store, account) = (s.store.clone(), call.account.clone());
    let current = blocking(move || match store.account(&account)? {
        Some(a) => store.webhook_config(a.id),
        None => Ok(None),
    })
    .await;
    let gone = matches!(current, Ok(None));
    let result = match current {
        Ok(Some(config)) => {
            call.url = config.url;
            call.authorization = config.authorization;
            tokio::time::timeout(CALL_TIMEOUT, post(s, &call))
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()))
        }
        Ok(None) => Err(GONE.into()),
        Err(e) => Err(format!("cannot read the webhook: {e}")),
    };
    let now = crate::time::now_unix();
    let (taken, why) = match result {
        Ok(status) if (200..300).contains(&status) => (true, format!("HTTP {status}")),
        Ok(status) => (false, format!("HTTP {status}")),
        Err(e) => (false, e),
    };
    if taken {
        info!(id = call.id, account = %call.account, event = %call.event, "webhook call made");
    } else {
        warn!(id = call.id, account = %call.account, event = %call.event, %why, "webhook call failed");
    }
    let store = s.store.clone();
    let schedule = s.retry_after.clone();
    let (url, authorization) = (call.url, call.authorization);
    let written = blocking(move || {
        store.webhook_change(call.id, |c| {
            // The history shows where the call went.
            c.url = url;
            c.authorization = authorization;
            c.attempts += 1;
            c.attempt_log.push(Attempt {
                at: now,
                host: None,
                result: why,
            });
            if taken {
                c.delivered = true;
                return WebhookChange::Done;
            }
            if gone {
                return WebhookChange::Done;
            }
            match schedule.get(c.attempts as usize - 1) {
                Some(wait) => {
                    c.next_attempt = now + wait;
                    WebhookChange::Retry
                }
                None => WebhookChange::Done,
            }
        })
    })
    .await;
    if let Err(e) = written {
        warn!(error = %e, "cannot write a webhook call's outcome");
    }
}

/// POSTs the call's JSON; the answer's status.
async fn post(s: &WebhookSettings, call: &WebhookCall) -> Result<u16, String> {
    let uri: hyper::Uri = call
        .url
        .parse()
        .map_err(|e| format!("bad URL {:?}: {e}", call.url))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("not an http(s) URL: {}", call.url)),
    };
    let host = uri.host().ok_or("a URL without a host")?.to_string();
    let target = crate::http_client::Target {
        host: &host,
        port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        tls: https.then_some(&s.roots),
        address: None,
    };
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("X-Roost-Event", call.event.as_str())
        .header("X-Roost-Call", call.id.to_string());
    if let Some(auth) = &call.authorization {
        request = request.header(hyper::header::AUTHORIZATION, auth.as_str());
    }
    // The answer's body is read (up to a bound) so the connection ends
    // cleanly.
    let answer = crate::http_client::request(
        &target,
        request,
        call.payload.clone().into_bytes(),
        MAX_ANSWER_BODY,
        false,
    )
    .await?;
    Ok(answer.status)
}

/// Whether `url` is one roost can call: `http` or `https` with a host,
/// at most [`roost_store::WebhookConfig::MAX_LEN`] long.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > roost_store::WebhookConfig::MAX_LEN {
        return Err(format!(
            "the URL is longer than {} bytes",
            roost_store::WebhookConfig::MAX_LEN
        ));
    }
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("credentials go in --authorization, not in the URL".into());
    }
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(()),
        _ => Err("the URL must be http:// or https:// with a host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_http_or_https_with_a_host_and_not_too_long() {
        assert_eq!(check_url("http://127.0.0.1:8080/hook"), Ok(()));
        assert_eq!(check_url("https://hooks.example/x?y=1"), Ok(()));
        for bad in [
            "ftp://x.example/",
            "hooks.example/x",
            "http://",
            "/path",
            "http://user:pass@h.example/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let most = roost_store::WebhookConfig::MAX_LEN;
        let url = |n: usize| format!("http://h.example/{}", "a".repeat(n - 17));
        assert_eq!(url(most).len(), most);
        assert_eq!(check_url(&url(most)), Ok(()));
        assert!(check_url(&url(most + 1)).is_err());
    }
}
