//! Webhooks: an account's URL, and the calls waiting to be made to it.
//! Calls are a small queue of their own (a due index like the mail
//! queue's), retried with backoff, and kept as history when made or given
//! up, for as long as messages that left the queue are
//! (`[queue] keep_retired`).

use crate::queue::Attempt;
use crate::records::AccountId;
use crate::{encode, keys, Result, Store};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// Where an account's events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The `Authorization` header's value, when the receiver wants one.
    pub authorization: Option<String>,
}

impl WebhookConfig {
    /// The longest URL or header value taken.
    pub const MAX_LEN: usize = 2048;
}

/// Calls waiting at most, over all accounts: past it (a receiver down
/// for long under much mail) new events are dropped, and logged.
pub const MAX_PENDING_CALLS: usize = 100_000;

/// One event for an account's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCall {
    pub id: u64,
    pub account: String,
    /// `delivered`, `failed`, `incoming`, ...
    pub event: String,
    pub url: String,
    pub authorization: Option<String>,
    /// The JSON body.
    pub payload: String,
    /// Unix seconds.
    pub created: i64,
    pub attempts: u32,
    pub next_attempt: i64,
    pub attempt_log: Vec<Attempt>,
    /// In the history: whether the receiver took it (2xx).
    #[serde(default)]
    pub delivered: bool,
}

/// What [`Store::webhook_change`] does with the call its closure saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookChange {
    /// Write it back (its next attempt as changed).
    Retry,
    /// Done (made or given up): into the history.
    Done,
}

impl Store {
    /// Sets (or with `None` removes) an account's webhook.
    pub fn set_webhook(&self, account: AccountId, config: Option<&WebhookConfig>) -> Result<()> {
        match config {
            Some(c) => self.put_key(keys::webhook_config(account), encode(c)?)?,
            None => drop(self.remove_key(keys::webhook_config(account))?),
        }
        self.note_webhooks()?;
        self.flush()
    }

    /// Whether some account has a webhook: when none has, nothing needs
    /// to build events at all.
    pub fn has_webhooks(&self) -> bool {
        self.inner.has_webhooks.load(Ordering::Relaxed)
    }

    pub(crate) fn note_webhooks(&self) -> Result<()> {
        let any = self
            .inner
            .db
            .scan_prefix([keys::WEBHOOK_CONFIG])
            .keys()
            .next()
            .transpose()?
            .is_some();
        self.inner.has_webhooks.store(any, Ordering::Relaxed);
        let pending = self.inner.db.scan_prefix([keys::WEBHOOK]).keys().count();
        self.inner
            .webhooks_pending
            .store(pending, Ordering::Relaxed);
        Ok(())
    }

    pub fn webhook_config(&self, account: AccountId) -> Result<Option<WebhookConfig>> {
        self.get(&keys::webhook_config(account))
    }

    /// Queues an event for `account`'s webhook, due at `now`, flushed;
    /// `None` when the account has none. Refused past
    /// [`MAX_PENDING_CALLS`].
    pub fn webhook_add(
        &self,
        account: &str,
        event: &str,
        payload: String,
        now: i64,
    ) -> Result<Option<u64>> {
        self.webhook_add_within(account, event, payload, now, MAX_PENDING_CALLS)
    }

    pub(crate) fn webhook_add_within(
        &self,
        account: &str,
        event: &str,
        payload: String,
        now: i64,
        most: usize,
    ) -> Result<Option<u64>> {
        let Some(a) = self.account(account)? else {
            return Ok(None);
        };
        let Some(config) = self.webhook_config(a.id)? else {
            return Ok(None);
        };
        if self.inner.webhooks_pending.load(Ordering::Relaxed) >= most {
            return Err(crate::StoreError::Invalid(format!(
                "{most} webhook calls wait already"
            )));
        }
        let call = WebhookCall {
            id: self.inner.db.generate_id()?.saturating_add(1),
            account: account.to_string(),
            event: event.to_string(),
            url: config.url,
            authorization: config.authorization,
            payload,
            created: now,
            attempts: 0,
            next_attempt: now,
            attempt_log: Vec::new(),
            delivered: false,
        };
        let mut batch = sled::Batch::default();
        batch.insert(keys::webhook(call.id), encode(&call)?);
        batch.insert(keys::timed(keys::WEBHOOK_DUE, now, call.id), &[][..]);
        self.apply_and_flush(batch)?;
        self.inner.webhooks_pending.fetch_add(1, Ordering::Relaxed);
        Ok(Some(call.id))
    }

    /// Calls due at `now`, soonest first, at most `limit`.
    pub fn webhooks_due(&self, now: i64, limit: usize) -> Result<Vec<WebhookCall>> {
        let end = keys::timed(keys::WEBHOOK_DUE, now.saturating_add(1), 0);
        let mut out = Vec::new();
        for k in self.inner.db.range(vec![keys::WEBHOOK_DUE]..end).keys() {
            let Some(id) = keys::timed_id(&k?) else {
                continue;
            };
            if let Some(call) = self.get::<WebhookCall>(&keys::webhook(id))? {
                out.push(call);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Calls waiting, oldest first, at most `limit`.
    pub fn webhooks_pending(&self, limit: usize) -> Result<Vec<WebhookCall>> {
        self.inner
            .db
            .scan_prefix([keys::WEBHOOK])
            .values()
            .take(limit)
            .map(|v| Ok(rmp_serde::from_slice(&v?)?))
            .collect()
    }

    /// Changes a waiting call under the queue's lock: `change` sets its
    /// next attempt (and log) and says whether it is done. Not flushed on
    /// its own: a crash repeats a call at worst. `false` when there is no
    /// such call.
    pub fn webhook_change(
        &self,
        id: u64,
        change: impl FnOnce(&mut WebhookCall) -> WebhookChange,
    ) -> Result<bool> {
        let _guard = self
            .inner
            .queue_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(old) = self.get::<WebhookCall>(&keys::webhook(id))? else {
            return Ok(false);
        };
        let mut call = old.clone();
        let what = change(&mut call);
        let mut batch = sled::Batch::default();
        batch.remove(keys::timed(keys::WEBHOOK_DUE, old.next_attempt, id));
        match what {
            WebhookChange::Retry => {
                batch.insert(
                    keys::timed(keys::WEBHOOK_DUE, call.next_attempt, id),
                    &[][..],
                );
                batch.insert(keys::webhook(id), encode(&call)?);
            }
            WebhookChange::Done => {
                self.inner.webhooks_pending.fetch_sub(1, Ordering::Relaxed);
                batch.remove(keys::webhook(id));
                if self.keep_retired_secs() > 0 {
                    let at = call.attempt_log.last().map_or(call.created, |a| a.at);
                    batch.insert(keys::timed(keys::WEBHOOK_DONE, at, id), encode(&call)?);
                }
            }
        }
        self.apply_batch(batch)?;
        Ok(true)
    }

    /// Calls made or given up, newest first, `account`'s only when given,
    /// at most `limit`.
    pub fn webhook_history(&self, account: Option<&str>, limit: usize) -> Result<Vec<WebhookCall>> {
        let mut out = Vec::new();
        for v in self
            .inner
            .db
            .scan_prefix([keys::WEBHOOK_DONE])
            .values()
            .rev()
        {
            if out.len() >= limit {
                break;
            }
            let call: WebhookCall = rmp_serde::from_slice(&v?)?;
            if account.is_none_or(|a| a == call.account) {
                out.push(call);
            }
        }
        Ok(out)
    }

    /// Removes history older than the kept time at `now`; how many.
    pub fn prune_webhook_history(&self, now: i64) -> Result<usize> {
        self.prune_timed(keys::WEBHOOK_DONE, now)
    }
}
