//! The outgoing queue's records: one per message and destination domain,
//! with its recipients there, its own message file (hard links of one
//! staged file when a message goes to several domains) and the time of
//! its next attempt. A due index (time, id) lets the scheduler find what
//! is due without reading every record.

use crate::files::{self, Placer};
use crate::records::FileId;
use crate::{encode, keys, MessageReader, Result, StagedFile, Store, StoreError};
use roost_protocols::smtp::{Notify, Ret};
use serde::{Deserialize, Serialize};

/// A queued message's id, unique in the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u64);

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    /// The address as given in RCPT TO.
    pub address: String,
    /// The last temporary failure for this recipient, if any.
    #[serde(default)]
    pub last_error: Option<String>,
    /// RFC 3461 NOTIFY, when the sender gave it.
    #[serde(default)]
    pub notify: Option<Notify>,
    /// RFC 3461 ORCPT, `addr-type;address`.
    #[serde(default)]
    pub orcpt: Option<String>,
}

/// A message waiting to go to one destination domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub id: QueueId,
    /// Unix seconds.
    pub created: i64,
    /// The account that submitted it, if one did (DSNs go to it).
    pub account: Option<String>,
    /// The reverse-path; empty for the null sender (a DSN, which never
    /// gets a DSN back).
    pub sender: String,
    /// The destination domain, lower case.
    pub domain: String,
    pub recipients: Vec<QueuedRecipient>,
    pub file: FileId,
    /// Lines roost added (Received, DKIM-Signature), sent before the file.
    pub header_prefix: Vec<u8>,
    /// RFC 6531: the message needs SMTPUTF8 at the next hop.
    #[serde(default)]
    pub smtputf8: bool,
    /// RFC 6152: the message has 8-bit content (BODY=8BITMIME).
    #[serde(default)]
    pub eight_bit: bool,
    /// RFC 3030 3: the message is binary (BODY=BINARYMIME); it goes out
    /// only with BDAT.
    #[serde(default)]
    pub binary: bool,
    /// RFC 8689: the message must travel over TLS only.
    #[serde(default)]
    pub requiretls: bool,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: i64,
    /// What the last attempt said, for `queue list`.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Held: not tried until released.
    #[serde(default)]
    pub hold: bool,
    /// A delay DSN went out already.
    #[serde(default)]
    pub delay_notified: bool,
    /// RFC 3461 RET and ENVID, when the sender gave them.
    #[serde(default)]
    pub ret: Option<Ret>,
    #[serde(default)]
    pub envid: Option<String>,
    /// A delivery worker has it (its due entry is pushed past the
    /// worker's deadline); cleared when the worker writes the outcome,
    /// and at start, after a crash of the whole process.
    #[serde(default)]
    pub in_flight: bool,
    /// The transport the admin chose for it; `None`: the configured
    /// routes choose.
    #[serde(default)]
    pub transport: Option<String>,
    /// Every attempt so far, oldest first (at most [`MAX_ATTEMPT_LOG`]:
    /// the newest are kept).
    #[serde(default)]
    pub attempt_log: Vec<Attempt>,
    /// Recipients finished while others wait: what became of each.
    #[serde(default)]
    pub done: Vec<Finished>,
    /// The message's extra data (`X-Roost-Extra-*` at submission), for
    /// the webhook events about it.
    #[serde(default)]
    pub extra: Vec<(String, String)>,
    /// RFC 8689 5: the message says `TLS-Required: No`: policies that
    /// require TLS (MTA-STS) are not applied to it.
    #[serde(default)]
    pub tls_optional: bool,
}

/// How long messages that left the queue are kept unless configured
/// (`[queue] keep_retired`): 7 days.
pub const KEEP_RETIRED: i64 = 7 * 86_400;

/// Attempts kept in a queued message's log.
pub const MAX_ATTEMPT_LOG: usize = 64;

/// One attempt at delivering a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Unix seconds.
    pub at: i64,
    /// The server tried, when one was reached.
    pub host: Option<String>,
    /// What it came to: the reply, or why there was none.
    pub result: String,
}

/// How a recipient left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishedAs {
    Delivered,
    Failed,
    Dropped,
}

impl FinishedAs {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishedAs::Delivered => "delivered",
            FinishedAs::Failed => "failed",
            FinishedAs::Dropped => "dropped",
        }
    }
}

/// What became of one recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub address: String,
    /// Unix seconds.
    pub at: i64,
    pub how: FinishedAs,
    /// The server's reply, or the reason.
    pub detail: String,
}

impl QueuedMessage {
    /// Adds an attempt to the log, keeping the newest [`MAX_ATTEMPT_LOG`].
    pub fn log_attempt(&mut self, a: Attempt) {
        if self.attempt_log.len() >= MAX_ATTEMPT_LOG {
            self.attempt_log.remove(0);
        }
        self.attempt_log.push(a);
    }

    /// The domain of the reverse-path, lower case; empty for the null
    /// sender.
    pub fn sender_domain(&self) -> String {
        self.sender
            .rsplit_once('@')
            .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
    }
}

/// A message that left the queue (delivered, failed or dropped), with
/// what became of each recipient and every attempt; kept for the time
/// configured (`[queue] keep_retired`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredMessage {
    pub id: QueueId,
    /// Unix seconds: queued, and left the queue.
    pub created: i64,
    pub retired: i64,
    pub account: Option<String>,
    pub sender: String,
    pub domain: String,
    pub transport: Option<String>,
    pub recipients: Vec<Finished>,
    pub attempts: Vec<Attempt>,
    /// The message's extra data, for events about it after it left.
    #[serde(default)]
    pub extra: Vec<(String, String)>,
}

/// A message this server sent: still queued, or retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentMessage {
    Queued(QueuedMessage),
    Retired(RetiredMessage),
}

impl SentMessage {
    pub fn account(&self) -> Option<&str> {
        match self {
            SentMessage::Queued(m) => m.account.as_deref(),
            SentMessage::Retired(m) => m.account.as_deref(),
        }
    }

    pub fn sender(&self) -> &str {
        match self {
            SentMessage::Queued(m) => &m.sender,
            SentMessage::Retired(m) => &m.sender,
        }
    }

    pub fn extra(&self) -> &[(String, String)] {
        match self {
            SentMessage::Queued(m) => &m.extra,
            SentMessage::Retired(m) => &m.extra,
        }
    }

    /// Whether `address` was one of its recipients (without case).
    pub fn was_sent_to(&self, address: &str) -> bool {
        let same = |a: &str| a.eq_ignore_ascii_case(address);
        match self {
            SentMessage::Queued(m) => {
                m.recipients.iter().any(|r| same(&r.address))
                    || m.done.iter().any(|r| same(&r.address))
            }
            SentMessage::Retired(m) => m.recipients.iter().any(|r| same(&r.address)),
        }
    }
}

/// A hold rule: messages queued from then on that match it are held
/// until the admin releases them. A field left out matches anything; a
/// rule with none holds every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRule {
    pub id: u64,
    /// The submitting account.
    pub account: Option<String>,
    /// The domain of the reverse-path.
    pub sender_domain: Option<String>,
    /// The destination domain.
    pub recipient_domain: Option<String>,
}

impl HoldRule {
    /// Hold rules kept at most.
    pub const MAX: usize = 100;

    pub fn matches(&self, m: &QueuedMessage) -> bool {
        let same = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        same(&self.account, m.account.as_deref().unwrap_or(""))
            && same(&self.sender_domain, &m.sender_domain())
            && same(&self.recipient_domain, &m.domain)
    }
}

/// A choice of queued messages for the admin's operations: each field
/// given narrows it; none given chooses every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFilter {
    /// These messages only (empty: any).
    #[serde(default)]
    pub ids: Vec<u64>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub sender_domain: Option<String>,
    #[serde(default)]
    pub recipient_domain: Option<String>,
    /// Held ones, or those not held.
    #[serde(default)]
    pub held: Option<bool>,
}

impl QueueFilter {
    /// Whether it chooses every message.
    pub fn is_empty(&self) -> bool {
        *self == QueueFilter::default()
    }

    pub fn matches(&self, m: &QueuedMessage) -> bool {
        let rule = HoldRule {
            id: 0,
            account: self.account.clone(),
            sender_domain: self.sender_domain.clone(),
            recipient_domain: self.recipient_domain.clone(),
        };
        (self.ids.is_empty() || self.ids.contains(&m.id.0))
            && self.held.is_none_or(|h| h == m.hold)
            && rule.matches(m)
    }
}

/// What [`Store::queue_change`] does with the record its closure saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueChange {
    /// Leave it as stored.
    Keep,
    /// Write the changed record.
    Write,
    /// Remove it and its file.
    Remove,
}

impl Store {
    /// Queues one message for each destination domain: `staged` is placed
    /// once and hard-linked for the others, the records written and
    /// flushed; the message is durable when this returns. Ids and file ids
    /// are filled in here; the records are returned as stored.
    pub fn queue_add(
        &self,
        staged: StagedFile,
        messages: Vec<QueuedMessage>,
    ) -> Result<Vec<QueuedMessage>> {
        if messages.is_empty() {
            return Ok(messages);
        }
        let rules = self.hold_rules()?;
        self.queue_add_under(staged, messages, rules)
    }

    /// [`Store::queue_add`] with the hold rules as read before the
    /// messages are written (`rules`). A rule added meanwhile is applied
    /// after the write: either this second reading sees it, or the rule
    /// was added after the write and its own scan of the queue holds the
    /// messages; none escapes, and no lock is held across the fsyncs.
    pub(crate) fn queue_add_under(
        &self,
        staged: StagedFile,
        mut messages: Vec<QueuedMessage>,
        rules: Vec<HoldRule>,
    ) -> Result<Vec<QueuedMessage>> {
        for m in &mut messages {
            m.id = QueueId(self.inner.db.generate_id()?.saturating_add(1));
            m.file = self.next_file_id()?;
            if rules.iter().any(|r| r.matches(m)) {
                m.hold = true;
            }
        }
        let mut placer = Placer::new(&self.inner.msg_dir);
        let placed = placer
            .place(staged, messages[0].file, &self.inner.counters)
            .and_then(|()| {
                messages[1..]
                    .iter()
                    .try_for_each(|m| placer.link(messages[0].file, m.file))
            });
        let synced = placed.and_then(|()| placer.sync_dirs());
        if let Err(e) = synced {
            placer.undo();
            return Err(e);
        }
        let mut batch = sled::Batch::default();
        for m in &messages {
            batch.insert(keys::queue(m.id), encode(m)?);
            if !m.hold {
                batch.insert(keys::queue_due(m.next_attempt, m.id), &[][..]);
            }
        }
        if let Err(e) = self.apply_batch(batch) {
            placer.undo();
            return Err(e);
        }
        let added: Vec<HoldRule> = self
            .hold_rules()?
            .into_iter()
            .filter(|r| !rules.iter().any(|seen| seen.id == r.id))
            .collect();
        for m in &mut messages {
            if !m.hold && added.iter().any(|r| r.matches(m)) {
                self.queue_change_lazily(m.id, |stored| {
                    stored.hold = true;
                    (QueueChange::Write, ())
                })?;
                m.hold = true;
            }
        }
        self.flush()?;
        Ok(messages)
    }

    /// The queued message `id`.
    pub fn queued(&self, id: QueueId) -> Result<Option<QueuedMessage>> {
        self.get(&keys::queue(id))
    }

    /// Every queued message, oldest id first.
    pub fn queue_list(&self) -> Result<Vec<QueuedMessage>> {
        self.scan(&[keys::QUEUE])
    }

    /// The first `limit` queued messages, oldest id first.
    pub fn queue_list_first(&self, limit: usize) -> Result<Vec<QueuedMessage>> {
        self.inner
            .db
            .scan_prefix([keys::QUEUE])
            .values()
            .take(limit)
            .map(|v| Ok(rmp_serde::from_slice(&v?)?))
            .collect()
    }

    /// Queued messages due at `now`, soonest first, at most `limit`. Held
    /// messages have no due entry, so they cost nothing here.
    pub fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueuedMessage>> {
        let mut out = Vec::new();
        let end = keys::queue_due(now.saturating_add(1), QueueId(0));
        for k in self.inner.db.range(vec![keys::QUEUE_DUE]..end).keys() {
            let k = k?;
            let Some(id) = keys::queue_due_id(&k) else {
                continue;
            };
            if let Some(m) = self.queued(id)? {
                if !m.hold && m.next_attempt <= now {
                    out.push(m);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Changes a queued message under the queue's lock, so writers (the
    /// delivery workers, the admin) never undo each other: `change` gets
    /// the stored record and says what to do with it. The due entry
    /// follows the record (none while held); a removed message's file
    /// goes too. Flushed. `Ok(None)` when there is no such message.
    pub fn queue_change<T>(
        &self,
        id: QueueId,
        change: impl FnOnce(&mut QueuedMessage) -> (QueueChange, T),
    ) -> Result<Option<T>> {
        self.change_queued(id, change, true)
    }

    /// As [`Store::queue_change`], without a flush of its own: for what a
    /// crash may lose at the cost of a repeat (an attempt's outcome, a
    /// lease), never for what a client was promised. The next flush (of
    /// any caller, or sled's own within half a second) makes it durable.
    /// A delivered message whose removal is lost this way comes back
    /// without its file; [`Store::queue_file_gone`] tells the worker so.
    pub fn queue_change_lazily<T>(
        &self,
        id: QueueId,
        change: impl FnOnce(&mut QueuedMessage) -> (QueueChange, T),
    ) -> Result<Option<T>> {
        self.change_queued(id, change, false)
    }

    /// Whether a queued message's file is gone: its removal was applied
    /// and then lost in a crash, so it was delivered (or failed) already.
    pub fn queue_file_gone(&self, m: &QueuedMessage) -> bool {
        matches!(
            std::fs::metadata(self.message_path(m.file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        )
    }

    fn change_queued<T>(
        &self,
        id: QueueId,
        change: impl FnOnce(&mut QueuedMessage) -> (QueueChange, T),
        flush: bool,
    ) -> Result<Option<T>> {
        let _guard = self
            .inner
            .queue_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(old) = self.get::<QueuedMessage>(&keys::queue(id))? else {
            return Ok(None);
        };
        let mut m = old.clone();
        let (what, answer) = change(&mut m);
        let mut batch = sled::Batch::default();
        batch.remove(keys::queue_due(old.next_attempt, old.id));
        match what {
            QueueChange::Keep => return Ok(Some(answer)),
            QueueChange::Write => {
                if !m.hold {
                    batch.insert(keys::queue_due(m.next_attempt, m.id), &[][..]);
                }
                batch.insert(keys::queue(m.id), encode(&m)?);
                self.apply(batch, flush)?;
            }
            QueueChange::Remove => {
                batch.remove(keys::queue(m.id));
                if self.keep_retired() {
                    let retired = retire(m.clone(), crate::records::now_unix());
                    batch.insert(keys::retired(retired.retired, m.id), encode(&retired)?);
                    batch.insert(keys::retired_id(m.id), &retired.retired.to_be_bytes()[..]);
                }
                self.apply(batch, flush)?;
                if let Err(e) = files::remove_if_present(&self.message_path(m.file)) {
                    tracing::warn!(error = %e, file = m.file.0, "could not remove a queued message's file");
                }
            }
        }
        Ok(Some(answer))
    }

    fn apply(&self, batch: sled::Batch, flush: bool) -> Result<()> {
        if flush {
            self.apply_and_flush(batch)
        } else {
            self.apply_batch(batch)
        }
    }

    /// Writes a queued message as given (tests and tools; the server goes
    /// through [`Store::queue_change`]).
    pub fn queue_update(&self, m: &QueuedMessage) -> Result<()> {
        let new = m.clone();
        self.queue_change(m.id, move |stored| {
            *stored = new;
            (QueueChange::Write, ())
        })?
        .ok_or_else(|| StoreError::NotFound(format!("queued message {}", m.id)))
    }

    /// Removes a queued message and its file; recipients still waiting
    /// are retired as dropped.
    pub fn queue_remove(&self, id: QueueId) -> Result<()> {
        self.queue_retire(id, FinishedAs::Dropped, "removed from the queue")
    }

    /// Removes a queued message and its file; recipients still waiting
    /// are retired `how`, for `why`.
    pub fn queue_retire(&self, id: QueueId, how: FinishedAs, why: &str) -> Result<()> {
        self.queue_change(id, |m| {
            finish_waiting(m, how, why, crate::records::now_unix());
            (QueueChange::Remove, ())
        })?
        .ok_or_else(|| StoreError::NotFound(format!("queued message {id}")))
    }

    /// The queued messages `filter` chooses, oldest id first, at most
    /// `limit`.
    pub fn queue_select(&self, filter: &QueueFilter, limit: usize) -> Result<Vec<QueuedMessage>> {
        let mut out = Vec::new();
        if !filter.ids.is_empty() {
            let mut ids = filter.ids.clone();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                if out.len() >= limit {
                    break;
                }
                if let Some(m) = self.queued(QueueId(id))? {
                    if filter.matches(&m) {
                        out.push(m);
                    }
                }
            }
            return Ok(out);
        }
        for v in self.inner.db.scan_prefix([keys::QUEUE]).values() {
            if out.len() >= limit {
                break;
            }
            let m: QueuedMessage = rmp_serde::from_slice(&v?)?;
            if filter.matches(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }

    // ---- hold rules ----

    /// The hold rules, oldest first.
    pub fn hold_rules(&self) -> Result<Vec<HoldRule>> {
        self.scan(&[keys::HOLD_RULE])
    }

    /// Adds a hold rule (at most [`HoldRule::MAX`]) and holds the queued
    /// messages it matches now. The rule as stored, and how many
    /// messages it held.
    pub fn hold_rule_add(&self, mut rule: HoldRule) -> Result<(HoldRule, usize)> {
        if self.hold_rules()?.len() >= HoldRule::MAX {
            return Err(StoreError::Invalid(format!(
                "at most {} hold rules",
                HoldRule::MAX
            )));
        }
        rule.id = self.inner.db.generate_id()?.saturating_add(1);
        self.put_key(keys::hold_rule(rule.id), encode(&rule)?)?;
        let mut held = 0;
        for m in self.queue_list()? {
            if !m.hold && rule.matches(&m) {
                self.queue_change_lazily(m.id, |stored| {
                    stored.hold = true;
                    (QueueChange::Write, ())
                })?;
                held += 1;
            }
        }
        self.flush()?;
        Ok((rule, held))
    }

    /// Removes a hold rule; false when there was none. Messages it held
    /// stay held until released.
    pub fn hold_rule_rm(&self, id: u64) -> Result<bool> {
        let was = self.remove_key(keys::hold_rule(id))?.is_some();
        self.flush()?;
        Ok(was)
    }

    // ---- retired messages ----

    /// Whether messages leaving the queue are kept (`[queue]
    /// keep_retired` above zero).
    fn keep_retired(&self) -> bool {
        self.keep_retired_secs() > 0
    }

    pub(crate) fn keep_retired_secs(&self) -> i64 {
        self.inner
            .keep_retired
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long messages that left the queue are kept, in seconds; 0
    /// keeps none.
    pub fn set_keep_retired(&self, seconds: i64) {
        self.inner
            .keep_retired
            .store(seconds.max(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// Removes retired messages older than the configured time at `now`;
    /// how many.
    pub fn prune_retired(&self, now: i64) -> Result<usize> {
        let end = keys::timed(
            keys::RETIRED,
            now.saturating_sub(self.keep_retired_secs()),
            0,
        );
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in self.inner.db.range(vec![keys::RETIRED]..end).keys() {
            let k = k?;
            if let Some(id) = keys::timed_id(&k) {
                batch.remove(keys::retired_id(QueueId(id)));
            }
            batch.remove(k);
            n += 1;
        }
        self.apply_batch(batch)?;
        Ok(n)
    }

    /// The message with queue id `id`, queued or retired (while its
    /// record is kept).
    pub fn sent_message(&self, id: QueueId) -> Result<Option<SentMessage>> {
        if let Some(m) = self.queued(id)? {
            return Ok(Some(SentMessage::Queued(m)));
        }
        let Some(at) = self.inner.db.get(keys::retired_id(id))? else {
            return Ok(None);
        };
        let Ok(at) = <[u8; 8]>::try_from(&at[..]) else {
            return Ok(None);
        };
        let at = i64::from_be_bytes(at);
        Ok(self
            .get::<RetiredMessage>(&keys::retired(at, id))?
            .map(SentMessage::Retired))
    }

    /// Removes entries of the time-ordered index `kind` older than the
    /// kept time at `now`; how many.
    pub(crate) fn prune_timed(&self, kind: u8, now: i64) -> Result<usize> {
        let end = keys::timed(kind, now.saturating_sub(self.keep_retired_secs()), 0);
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in self.inner.db.range(vec![kind]..end).keys() {
            batch.remove(k?);
            n += 1;
        }
        self.apply_batch(batch)?;
        Ok(n)
    }

    /// The newest retired messages `account` sent (any account's when
    /// `None`), newest first, at most `limit`.
    pub fn retired(&self, account: Option<&str>, limit: usize) -> Result<Vec<RetiredMessage>> {
        let mut out = Vec::new();
        for v in self.inner.db.scan_prefix([keys::RETIRED]).values().rev() {
            if out.len() >= limit {
                break;
            }
            let r: RetiredMessage = rmp_serde::from_slice(&v?)?;
            if account.is_none_or(|a| r.account.as_deref() == Some(a)) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// At start: messages a delivery worker had when the process ended are
    /// due again now. Returns how many.
    pub fn queue_release_leases(&self, now: i64) -> Result<usize> {
        let mut released = 0;
        for m in self.queue_list()? {
            if m.in_flight {
                self.queue_change_lazily(m.id, |stored| {
                    stored.in_flight = false;
                    stored.next_attempt = now;
                    (QueueChange::Write, ())
                })?;
                released += 1;
            }
        }
        if released > 0 {
            self.flush()?;
        }
        Ok(released)
    }

    /// The queued message as it goes out: its prefix, then its file.
    pub fn queue_open(&self, m: &QueuedMessage) -> Result<MessageReader> {
        MessageReader::open(m.header_prefix.clone(), self.message_path(m.file))
    }
}

/// Recipients still waiting finish `how`, for `why`.
pub fn finish_waiting(m: &mut QueuedMessage, how: FinishedAs, why: &str, now: i64) {
    let waiting: Vec<QueuedRecipient> = m.recipients.drain(..).collect();
    m.done.extend(waiting.into_iter().map(|r| Finished {
        address: r.address,
        at: now,
        how,
        detail: why.to_string(),
    }));
}

/// A removed message as it is kept.
fn retire(m: QueuedMessage, now: i64) -> RetiredMessage {
    let mut recipients = m.done;
    recipients.extend(m.recipients.into_iter().map(|r| Finished {
        address: r.address,
        at: now,
        how: FinishedAs::Dropped,
        detail: "removed from the queue".into(),
    }));
    RetiredMessage {
        id: m.id,
        created: m.created,
        retired: now,
        account: m.account,
        sender: m.sender,
        domain: m.domain,
        transport: m.transport,
        recipients,
        attempts: m.attempt_log,
        extra: m.extra,
    }
}
