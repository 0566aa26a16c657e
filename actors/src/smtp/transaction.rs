//! One mail transaction: MAIL, RCPT, DATA, and the delivery that ends it.

use super::{SmtpState, MAX_RECIPIENTS};
use crate::account::{AccountError, NewMessage, Target};
use crate::client::AccountClient;
use crate::task::blocking;
use crate::time::{now_unix, rfc5322_date};
use roost_protocols::imap::types::Flags;
use roost_protocols::message::address::parse_address_list;
use roost_protocols::message::arc;
use roost_protocols::message::dkim::BodyHasher;
use roost_protocols::message::dkim_verify::{signatures, Canon, Signature};
use roost_protocols::message::header::{fields, header_end, MAX_HEADER_FIELDS};
use roost_protocols::message::thread::ThreadKeys;
use roost_protocols::smtp::command::{
    BodyType, ForwardPath, MailParams, Notify, Param, RcptParams, ReversePath,
};
use roost_protocols::smtp::conn::DataOutcome;
use roost_protocols::smtp::reply::Reply;
use roost_store::{canonical_address, AliasRecord, Resolved, StagedWriter, Store};
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::Arc;
use tracing::{info, warn};

/// How much of the message's start is kept in memory to read its header
/// (threading keys); the rest only goes to the staged file.
pub const HEADER_CAPTURE: usize = 64 * 1024;

/// A piece of message text at most this long is staged and hashed on the
/// async worker when it stays in memory (see
/// [`roost_store::StagedWriter::write_in_memory`]); larger pieces go to a
/// blocking task.
pub const INLINE_CHUNK: usize = 16 * 1024;

/// The body hashes a message feeds as it streams in: the signing hash of
/// submission, and the simple and relaxed ones DKIM verification needs.
type Hashers = (
    Option<BodyHasher>,
    Option<roost_protocols::message::dkim_verify::SimpleBodyHasher>,
    Option<BodyHasher>,
);

/// Feeds the body part of `chunk` (from `hash_from`, if the body has
/// begun) to every hash there is.
fn feed(hashers: &mut Hashers, chunk: &[u8], hash_from: Option<usize>) {
    let Some(from) = hash_from else { return };
    let body = &chunk[from..];
    if let Some(h) = &mut hashers.0 {
        h.update(body);
    }
    if let Some(h) = &mut hashers.1 {
        h.update(body);
    }
    if let Some(h) = &mut hashers.2 {
        h.update(body);
    }
}

pub struct Transaction {
    pub from: ReversePath,
    /// (address as given, account name): one entry per account an
    /// accepted RCPT reaches (an alias reaches several).
    pub recipients: Vec<(String, String)>,
    /// Accepted RCPT commands, for RCPTMAX.
    pub rcpts: usize,
    /// Submission: recipients at other domains, for the outgoing queue.
    pub remote: Vec<String>,
    /// RFC 8689: the message must travel over TLS only.
    requiretls: bool,
    /// RFC 4865: when a held message is released (unix seconds).
    release: Option<i64>,
    /// RFC 3461: RET and ENVID from MAIL; NOTIFY and ORCPT per accepted
    /// recipient address.
    ret: Option<roost_protocols::smtp::Ret>,
    envid: Option<String>,
    dsn: Vec<(String, Option<Notify>, Option<String>)>,
    /// (address in lower case, account) pairs in `recipients`.
    reached: std::collections::HashSet<(String, String)>,
    /// RFC 1870: the size the client declared with MAIL, if any.
    declared_size: Option<u64>,
    /// RFC 6152 / RFC 3030 3: the BODY the client declared.
    pub body: Option<BodyType>,
    /// RFC 6531 3.4: the client asked for SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 3030 2: the message arrives in BDAT chunks (no DATA then).
    pub chunked: bool,
    /// BDAT octets received so far.
    pub received: u64,
    /// BDAT: a bare CR or LF was in a chunk.
    pub bare_line_ending: bool,
    /// Submission: the DKIM body hash, fed as the body streams in (RFC
    /// 6376 3.4.4), once the header section has gone by.
    body_hash: Option<BodyHasher>,
    header_done: bool,
    /// How much of `head` was searched for the empty line that ends the
    /// header section: each write searches only what it added.
    head_scanned: usize,
    /// MX: the message's DKIM signatures are checked (RFC 6376 6).
    verify_dkim: bool,
    dkim_signatures: Vec<Result<Signature, String>>,
    /// MX: the ARC Sets of the header (RFC 8617).
    arc: arc::Chain,
    verify_hashes: super::verify::BodyHashes,
    /// MX: iprev and SPF, looked up while the message streams in.
    envelope: Option<EnvelopeTask>,
    file: Option<StagedWriter>,
    head: Vec<u8>,
    write_error: Option<String>,
    /// Submission: the header section is held back (in `head`) until it
    /// ends, so its X-Roost-Extra fields can be taken out of it.
    hold_header: bool,
    /// What the X-Roost-Extra fields said, and why they cannot be taken.
    extra: Vec<(String, String)>,
    extra_error: Option<Reply>,
}

impl Transaction {
    /// Starts staging the message (in memory: no I/O until it is large,
    /// and then in [`Transaction::write`]'s blocking task).
    pub fn open_file(&mut self, store: &Store) -> Result<(), Reply> {
        if self.file.is_some() {
            return Ok(());
        }
        match store.stage() {
            Ok(w) => {
                self.file = Some(w);
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "cannot stage a message");
                Err(Reply::new(
                    451,
                    Some((4, 3, 0)),
                    "Local error in processing, try again later",
                ))
            }
        }
    }

    /// Appends a piece of the message (at most `DATA_CHUNK` bytes) to the
    /// staged file, off the async workers.
    pub async fn write(&mut self, chunk: Vec<u8>) {
        let before = self.head.len();
        if self.head.len() < HEADER_CAPTURE {
            let take = (HEADER_CAPTURE - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        let hashing = self.body_hash.is_some() || self.verify_dkim;
        let found = if hashing && !self.header_done {
            let end = blank_line_after(&self.head, self.head_scanned.saturating_sub(2));
            self.head_scanned = self.head.len();
            end
        } else {
            None
        };
        let mut hash_from = None;
        if let Some(end) = found {
            self.header_done = true;
            if self.verify_dkim {
                self.dkim_signatures = signatures(&self.head[..end]);
                self.arc = arc::chain(&self.head[..end]);
                // RFC 8617 5.2 step 5: only the newest message signature
                // is checked, so only its body hash is needed.
                let newest_ams = match &self.arc {
                    arc::Chain::Sets(sets) => sets.last().map(|s| &s.message_signature),
                    _ => None,
                };
                for sig in self.dkim_signatures.iter().flatten().chain(newest_ams) {
                    match sig.body_canon {
                        Canon::Simple => {
                            self.verify_hashes
                                .simple
                                .get_or_insert_with(Default::default);
                        }
                        Canon::Relaxed => {
                            self.verify_hashes
                                .relaxed
                                .get_or_insert_with(Default::default);
                        }
                    }
                }
            }
            hash_from = Some(end.saturating_sub(before).min(chunk.len()));
        } else if self.header_done {
            hash_from = Some(0);
        }
        let mut chunk = chunk;
        if self.hold_header {
            let take = self.head.len() - before;
            match found {
                Some(end) => {
                    // The header without its extra fields, then what
                    // follows it; the body starts after the header.
                    let kept = self.take_extra(end);
                    let mut out = kept.clone();
                    out.extend_from_slice(&self.head[end..]);
                    out.extend_from_slice(&chunk[take..]);
                    hash_from = Some(kept.len());
                    let rest = self.head[end..].to_vec();
                    self.head = kept;
                    self.head.extend_from_slice(&rest);
                    chunk = out;
                    self.hold_header = false;
                }
                // Longer than roost reads: written as it came (submission
                // refuses such a header, see `check_from`).
                None if self.head.len() >= HEADER_CAPTURE => {
                    let mut out = self.head.clone();
                    out.extend_from_slice(&chunk[take..]);
                    chunk = out;
                    self.hold_header = false;
                }
                None => return,
            }
        }
        if self.write_error.is_some() {
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        // A small piece that stays in memory costs a copy and a few
        // microseconds of hashing: less than a trip to a blocking thread.
        let mut hashers = self.take_hashers();
        if chunk.len() <= INLINE_CHUNK && file.write_in_memory(&chunk) {
            feed(&mut hashers, &chunk, hash_from);
            self.put_hashers(hashers);
            self.file = Some(file);
            return;
        }
        // Larger pieces, and writes to a file: the body hashes are CPU
        // work, done with the write, off the async workers.
        let written = blocking(move || {
            feed(&mut hashers, &chunk, hash_from);
            file.write_all(&chunk).map(|()| (file, hashers))
        })
        .await;
        match written {
            Ok((file, hashers)) => {
                self.file = Some(file);
                self.put_hashers(hashers);
            }
            Err(e) => self.write_error = Some(e),
        }
    }

    fn take_hashers(&mut self) -> Hashers {
        (
            self.body_hash.take(),
            self.verify_hashes.simple.take(),
            self.verify_hashes.relaxed.take(),
        )
    }

    fn put_hashers(&mut self, (signing, simple, relaxed): Hashers) {
        self.body_hash = signing;
        self.verify_hashes.simple = simple;
        self.verify_hashes.relaxed = relaxed;
    }

    /// A bare CR or LF in the header section (as far as it was captured).
    pub fn bare_in_header(&self) -> bool {
        bare_line_end_in_header(&self.head)
    }

    pub async fn finish(mut self, outcome: DataOutcome, session: &SmtpState) -> Reply {
        match outcome {
            DataOutcome::Ok => {}
            DataOutcome::TooLarge => return Reply::message_too_large(),
            DataOutcome::BareLineEnding => return Reply::bare_line_ending(),
        }
        let local_error = || {
            Reply::new(
                451,
                Some((4, 3, 0)),
                "Local error in processing, try again later",
            )
        };
        if self.hold_header {
            // The message was all header: written now, without its extra
            // fields.
            self.hold_header = false;
            let end = self.head.len();
            let kept = self.take_extra(end);
            self.head = kept.clone();
            if let Some(file) = self.file.take() {
                let written = blocking(move || {
                    let mut file = file;
                    file.write_all(&kept).map(|()| file)
                })
                .await;
                match written {
                    Ok(file) => self.file = Some(file),
                    Err(e) => self.write_error = Some(e),
                }
            }
        }
        if let Some(e) = &self.write_error {
            warn!(error = %e, "writing the staged message failed");
            return local_error();
        }
        if let Some(reply) = self.extra_error.take() {
            return reply;
        }
        // RFC 8601 5: results that claim to come from this server cannot
        // be renamed in the sender's bytes, so such a message is refused.
        let claimed = fields(&self.head[..header_end(&self.head)])
            .into_iter()
            .filter(|f| f.name.eq_ignore_ascii_case(b"Authentication-Results"))
            .any(|f| {
                let v = String::from_utf8_lossy(&f.value);
                let id = v.trim_start().split([';', ' ', '\t']).next().unwrap_or("");
                id.eq_ignore_ascii_case(&session.services.hostname)
            });
        if claimed {
            return Reply::new(
                550,
                Some((5, 7, 1)),
                format!(
                    "Authentication-Results in the name of {} refused (RFC 8601 5)",
                    session.services.hostname
                ),
            );
        }
        if session.protocol.is_submission() {
            if let Some(account) = &session.authenticated {
                let head = self.head[..header_end(&self.head)].to_vec();
                // All of it was read: ended by its empty line, or the
                // whole message (one without a body) fit.
                let complete = header_complete(&self.head) || self.head.len() < HEADER_CAPTURE;
                let (store, account) = (session.services.store.clone(), account.clone());
                let checked = blocking(move || {
                    Ok::<_, String>(check_from(&store, &account, &head, complete))
                })
                .await;
                match checked {
                    Ok(Ok(())) => {}
                    Ok(Err(reply)) => return reply,
                    Err(_) => return local_error(),
                }
            }
        }
        // MX: what iprev, SPF, DKIM and DMARC say, for
        // Authentication-Results, and what the From domain's DMARC policy
        // asks for when they fail.
        let now = now_unix();
        let (results, junk) = if self.verify_dkim {
            match self.authenticate(session, now).await {
                Ok(r) => r,
                Err(reply) => return reply,
            }
        } else {
            (String::new(), false)
        };
        let Some(file) = self.file.take() else {
            return local_error();
        };
        let keys = ThreadKeys::from_header(&self.head[..header_end(&self.head)]);
        // RFC 4865: a held message goes to the queue for every recipient,
        // local ones too, and is delivered when it is released.
        if self.release.is_some() {
            for (address, _) in std::mem::take(&mut self.recipients) {
                if !self.remote.contains(&address) {
                    self.remote.push(address);
                }
            }
        }
        let mut accounts: Vec<&str> = Vec::new();
        for (_, account) in &self.recipients {
            if !accounts.contains(&account.as_str()) {
                accounts.push(account);
            }
        }
        let head = self.head[..header_end(&self.head)].to_vec();
        let author = author_of(&head);
        // One blocking task: the staged message finished, its summary, and
        // where each account files it.
        let finished = {
            let store = session.services.store.clone();
            let sender = match &self.from {
                ReversePath::Mailbox(a) => canonical_address(&a.to_string()),
                ReversePath::Null => None,
            };
            let names: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
            let author = author.clone();
            blocking(move || {
                let staged = file.finish()?;
                // A summary that cannot be read now is made on first FETCH.
                let summary = crate::summaries::of_staged(&staged).ok().map(Arc::new);
                let routes = route(&store, &names, &head, sender.as_deref(), author.as_deref());
                Ok::<_, roost_store::StoreError>((staged, summary, routes))
            })
            .await
        };
        let Ok((staged, summary, routes)) = finished else {
            return local_error();
        };
        let mut known: Vec<(roost_store::AccountId, Vec<String>)> = Vec::new();
        // Submission: signed with the From domain's DKIM keys, in the
        // prefix, never into the sender's bytes.
        let dkim = match (self.body_hash.take(), &author) {
            (Some(hasher), Some(author)) if self.header_done => {
                let body_hash = hasher.finish();
                let domain = author.rsplit('@').next().unwrap_or_default().to_lowercase();
                let (store, header) = (
                    session.services.store.clone(),
                    self.head[..header_end(&self.head)].to_vec(),
                );
                blocking(move || {
                    let keys = store.dkim_keys(&domain)?;
                    Ok::<_, roost_store::StoreError>(super::dkim::sign(
                        &keys, &header, &body_hash, &domain, now,
                    ))
                })
                .await
                .unwrap_or_default()
            }
            _ => String::new(),
        };
        let mut delivered = 0;
        let mut delivered_to: Vec<String> = Vec::new();
        let mut failures = Vec::new();
        let mut staged = Some(staged);
        // Submission: recipients at other domains go to the outgoing queue,
        // durably, before anything else is answered.
        if !self.remote.is_empty() {
            let Some(original) = staged.take() else {
                return local_error();
            };
            let store = session.services.store.clone();
            let keep_original = !accounts.is_empty();
            let copied = blocking(move || {
                let copy = if keep_original {
                    Some(store.stage_copy(&original)?)
                } else {
                    None
                };
                Ok::<_, roost_store::StoreError>(match copy {
                    Some(c) => (Some(original), c),
                    None => (None, original),
                })
            })
            .await;
            let Ok((rest, for_queue)) = copied else {
                return local_error();
            };
            staged = rest;
            let prefix = format!(
                "{}{dkim}",
                session.received_line(&[], "", now, self.smtputf8)
            );
            if let Err(e) = self
                .queue(session, for_queue, prefix.into_bytes(), now)
                .await
            {
                warn!(error = %e, "queueing failed");
                return local_error();
            }
        }
        // A DSN about mail this server sent, or a report: read once, for
        // every account that takes it.
        let inbound = super::inbound::inspect(
            &session.services.store,
            &self.head[..header_end(&self.head)],
            staged.as_ref(),
            &self.recipients,
        )
        .await;
        for (i, account) in accounts.iter().enumerate() {
            // The last account takes the staged file itself; the others get
            // a hard-linked copy of it.
            let file = if i + 1 == accounts.len() {
                staged.take()
            } else {
                match staged.take() {
                    Some(original) => {
                        let store = session.services.store.clone();
                        let linked = blocking(move || {
                            let copy = store.stage_copy(&original);
                            Ok::<_, roost_store::StoreError>((original, copy))
                        })
                        .await;
                        match linked {
                            Ok((original, copy)) => {
                                staged = Some(original);
                                copy.ok()
                            }
                            Err(_) => None,
                        }
                    }
                    None => None,
                }
            };
            let Some(file) = file else {
                failures.push((account.to_string(), "staging failed".to_string(), false));
                continue;
            };
            // RFC 5321 4.4: the final delivery records the envelope sender.
            let return_path = match &self.from {
                ReversePath::Null => "<>".to_string(),
                ReversePath::Mailbox(a) => format!("<{a}>"),
            };
            let prefix = format!(
                "Return-Path: {return_path}\r\n{}{results}{dkim}",
                session.received_line(&self.recipients, account, now, self.smtputf8)
            );
            let message = NewMessage {
                target: match routes.get(i).and_then(|r| r.mailbox.clone()) {
                    // DMARC quarantine wins over the recipient's rules.
                    _ if junk => Target::Junk,
                    Some(mailbox) => Target::RuleOrInbox(mailbox),
                    None => Target::Inbox,
                },
                staged: file,
                flags: Flags::new(),
                internal_date: now,
                header_prefix: prefix.into_bytes(),
                keys: keys.clone(),
                summary: summary.clone(),
                extra: self.extra.clone(),
            };
            match AccountClient::new(account).deliver(vec![message]).await {
                Ok(_) => {
                    delivered += 1;
                    delivered_to.push(account.to_string());
                    if session.services.store.has_webhooks()
                        && !inbound.only_bounces(account, &self.recipients)
                    {
                        self.incoming_event(&session.services.store, account, &keys, junk)
                            .await;
                    }
                    let from = match &self.from {
                        ReversePath::Null => String::new(),
                        ReversePath::Mailbox(a) => a.to_string(),
                    };
                    super::inbound::delivered(
                        &session.services.store,
                        &inbound,
                        account,
                        &from,
                        now,
                    )
                    .await;
                    // Filed outside the intro mailbox: its author is known
                    // from now on (written once, not for every message).
                    if let (Some(r), Some(a)) = (routes.get(i), &author) {
                        if let (Some(id), false, false) = (r.account, r.intro, r.known) {
                            known.push((id, vec![a.clone()]));
                        }
                    }
                }
                Err(e) => {
                    let full = matches!(
                        e,
                        crate::client::ClientError::Account(AccountError::OverQuota { .. })
                    );
                    failures.push((account.to_string(), e.to_string(), full));
                }
            }
        }
        // Whoever a user writes to is known to them.
        let writer = session
            .authenticated
            .clone()
            .filter(|_| session.protocol.is_submission());
        let written: Vec<String> = self.recipients.iter().map(|(a, _)| a.clone()).collect();
        if !known.is_empty() || writer.is_some() {
            let store = session.services.store.clone();
            let _ = blocking(move || {
                if let Some(me) = writer.and_then(|w| store.account(&w).ok().flatten()) {
                    known.push((me.id, written));
                }
                for (id, addresses) in known {
                    store.mark_known(id, &addresses)?;
                }
                Ok::<_, roost_store::StoreError>(())
            })
            .await;
        }
        if !failures.is_empty() && !self.remote.is_empty() {
            // The message is queued for the other recipients already: a
            // 4xx would make the client send it again to them. The local
            // recipients that could not take it get a DSN instead.
            warn!(
                ?failures,
                delivered, "delivery failed for some accounts; DSN sent"
            );
            let mut failed: Vec<crate::queue::dsn::Entry> = Vec::new();
            for (account, why, full) in &failures {
                let code = if *full { "552 5.2.2 " } else { "451 4.3.0 " };
                for (address, a) in &self.recipients {
                    let (notify, orcpt) = self.dsn_of(address);
                    if a == account && notify.is_none_or(|n| n.failure) {
                        failed.push(crate::queue::dsn::Entry {
                            address: address.clone(),
                            why: format!("{code}{why}"),
                            mta: None,
                            orcpt,
                            notify,
                        });
                    }
                }
            }
            self.report(session, now)
                .send(&failed, crate::queue::dsn::Kind::Failed)
                .await;
            self.success_reports(session, &delivered_to, now).await;
            return Reply::new(250, Some((2, 0, 0)), "OK, queued for delivery");
        }
        if !failures.is_empty() {
            // SMTP has one reply for all recipients. When nobody got the
            // message and every account was full, that is final (RFC 5321
            // 4.2.2's 552: the sender's bounce tells them). Otherwise a
            // temporary failure keeps the message with the client, which
            // tries again later: the accounts that already have it may get
            // it twice, but no recipient loses it (quota is checked at RCPT
            // already, so this is the rare case; the outgoing queue's DSNs
            // will end it).
            warn!(?failures, delivered, "delivery failed for some accounts");
            let over_quota = |f: &(String, String, bool)| f.2;
            return if delivered == 0 && failures.iter().all(over_quota) {
                Reply::new(552, Some((5, 2, 2)), "Mailbox full")
            } else if failures.iter().any(over_quota) {
                Reply::new(452, Some((4, 2, 2)), "Mailbox full, try again later")
            } else {
                local_error()
            };
        }
        info!(
            recipients = self.recipients.len(),
            delivered, "message delivered"
        );
        self.success_reports(session, &delivered_to, now).await;
        if self.remote.is_empty() {
            Reply::new(250, Some((2, 0, 0)), "OK, message delivered")
        } else {
            Reply::new(250, Some((2, 0, 0)), "OK, queued for delivery")
        }
    }
}

impl Transaction {
    /// NOTIFY and ORCPT given for `address`.
    fn dsn_of(&self, address: &str) -> (Option<Notify>, Option<String>) {
        self.dsn
            .iter()
            .find(|(a, ..)| a == address)
            .map(|(_, n, o)| (*n, o.clone()))
            .unwrap_or_default()
    }

    /// RFC 3461 5.2.2: a "delivered" DSN for the local recipients that
    /// asked for one with NOTIFY=SUCCESS (never for the null sender).
    async fn success_reports(&self, session: &SmtpState, delivered: &[String], now: i64) {
        let mut seen = std::collections::HashSet::new();
        let rcpts: Vec<crate::queue::dsn::Entry> = self
            .recipients
            .iter()
            .filter(|(_, account)| delivered.contains(account))
            // One report per RCPT address, also for an alias's members.
            .filter(|(address, _)| seen.insert(address.clone()))
            .filter_map(|(address, _)| {
                let (notify, orcpt) = self.dsn_of(address);
                notify
                    .filter(|n| n.success)
                    .map(|_| crate::queue::dsn::Entry {
                        address: address.clone(),
                        why: "250 2.0.0 delivered".into(),
                        mta: None,
                        orcpt,
                        notify,
                    })
            })
            .collect();
        if rcpts.is_empty() {
            return;
        }
        self.report(session, now)
            .send(&rcpts, crate::queue::dsn::Kind::Delivered)
            .await;
    }

    /// A DSN about this transaction's message.
    fn report<'a>(&'a self, session: &'a SmtpState, now: i64) -> crate::queue::dsn::Report<'a> {
        crate::queue::dsn::Report {
            store: &session.services.store,
            hostname: &session.services.hostname,
            sender: match &self.from {
                ReversePath::Mailbox(a) => a.to_string(),
                ReversePath::Null => String::new(),
            },
            about: format!("local.{now}"),
            arrival: now,
            original_header: self.head[..header_end(&self.head)].to_vec(),
            envid: self.envid.clone(),
            whole: None,
        }
    }

    /// Queues the message once per destination domain of its remote
    /// recipients (durable when this returns) and wakes the queue.
    async fn queue(
        &self,
        session: &SmtpState,
        staged: roost_store::StagedFile,
        prefix: Vec<u8>,
        now: i64,
    ) -> Result<(), String> {
        let mut by_domain: Vec<roost_store::QueuedMessage> = Vec::new();
        for address in &self.remote {
            let domain = address
                .rsplit_once('@')
                .map_or("", |(_, d)| d)
                .to_ascii_lowercase();
            let (notify, orcpt) = self.dsn_of(address);
            let recipient = roost_store::QueuedRecipient {
                address: address.clone(),
                last_error: None,
                notify,
                orcpt,
            };
            match by_domain.iter_mut().find(|m| m.domain == domain) {
                Some(m) => m.recipients.push(recipient),
                None => by_domain.push(roost_store::QueuedMessage {
                    id: roost_store::QueueId(0),
                    created: now,
                    account: session.authenticated.clone(),
                    sender: match &self.from {
                        ReversePath::Mailbox(a) => a.to_string(),
                        ReversePath::Null => String::new(),
                    },
                    domain,
                    recipients: vec![recipient],
                    file: roost_store::FileId(0),
                    header_prefix: prefix.clone(),
                    smtputf8: self.smtputf8,
                    eight_bit: self.body == Some(BodyType::EightBitMime),
                    binary: self.body == Some(BodyType::BinaryMime),
                    in_flight: false,
                    ret: self.ret,
                    envid: self.envid.clone(),
                    requiretls: self.requiretls,
                    attempts: 0,
                    next_attempt: self.release.unwrap_or(now),
                    last_error: None,
                    hold: false,
                    delay_notified: false,
                    transport: None,
                    attempt_log: Vec::new(),
                    done: Vec::new(),
                    extra: self.extra.clone(),
                    // RFC 8689 5: REQUIRETLS wins over the field.
                    tls_optional: !self.requiretls && self.tls_required_no(),
                }),
            }
        }
        let store = session.services.store.clone();
        let queued = blocking(move || store.queue_add(staged, by_domain))
            .await
            .map_err(|e| e.to_string())?;
        for m in &queued {
            info!(id = %m.id, domain = %m.domain, recipients = m.recipients.len(), "queued");
        }
        crate::queue::kick();
        Ok(())
    }
}

/// The most X-Roost-Extra fields one submitted message may carry.
pub const MAX_EXTRA_FIELDS: usize = 20;
impl Transaction {
    /// RFC 8689 5: the header has `TLS-Required: No`.
    fn tls_required_no(&self) -> bool {
        fields(&self.head[..header_end(&self.head)])
            .iter()
            .any(|f| {
                f.name.eq_ignore_ascii_case(b"TLS-Required")
                    && f.value.trim_ascii().eq_ignore_ascii_case(b"No")
            })
    }

    /// The `incoming` webhook event of a message delivered to `account`.
    async fn incoming_event(&self, store: &Store, account: &str, keys: &ThreadKeys, junk: bool) {
        let event = serde_json::json!({
            "from": match &self.from {
                ReversePath::Null => String::new(),
                ReversePath::Mailbox(a) => a.to_string(),
            },
            // Only this account's own addresses: the other recipients
            // (Bcc among them) are not its business.
            "to": self
                .recipients
                .iter()
                .filter(|(_, owner)| owner == account)
                .map(|(a, _)| a.to_string())
                .collect::<Vec<_>>(),
            "subject": keys.subject,
            "message_id": keys.message_id,
            "junk": junk,
            "extra": crate::queue::webhooks::extra_json(&self.extra),
        });
        let (store, account) = (store.clone(), account.to_string());
        let _ = blocking(move || {
            crate::queue::webhooks::emit(&store, &account, "incoming", event);
            Ok::<_, String>(())
        })
        .await;
    }
}

/// The most bytes of extra data (keys and values) one message may carry.
pub const MAX_EXTRA_BYTES: usize = 4096;
/// The field name prefix whose fields become the message's extra data.
const EXTRA_PREFIX: &[u8] = b"x-roost-extra-";

impl Transaction {
    /// Takes the X-Roost-Extra-<key> fields out of `head[..end]` into
    /// `extra` (key in lower case, value unfolded and trimmed; a later
    /// field of a key replaces an earlier one) and answers the header
    /// without them. Past the limits, or a field without a key, the
    /// message is refused when it ends.
    fn take_extra(&mut self, end: usize) -> Vec<u8> {
        let mut kept = Vec::with_capacity(end);
        let mut in_extra = false;
        let mut fields = 0;
        for line in self.head[..end].split_inclusive(|&b| b == b'\n') {
            let continuation = matches!(line.first(), Some(b' ' | b'\t'));
            if !continuation {
                let name_end = line.iter().position(|&b| b == b':');
                in_extra = name_end.is_some_and(|n| {
                    line[..n].len() >= EXTRA_PREFIX.len()
                        && line[..EXTRA_PREFIX.len()].eq_ignore_ascii_case(EXTRA_PREFIX)
                });
                if in_extra {
                    let n = name_end.unwrap_or_default();
                    let key = String::from_utf8_lossy(&line[EXTRA_PREFIX.len()..n])
                        .trim()
                        .to_ascii_lowercase();
                    let value = String::from_utf8_lossy(&line[n + 1..]).trim().to_string();
                    if key.is_empty() {
                        self.extra_error.get_or_insert_with(|| {
                            Reply::new(550, Some((5, 6, 0)), "X-Roost-Extra field without a key")
                        });
                    }
                    fields += 1;
                    self.extra.retain(|(k, _)| *k != key);
                    self.extra.push((key, value));
                }
            } else if in_extra {
                if let Some((_, value)) = self.extra.last_mut() {
                    let more = String::from_utf8_lossy(line);
                    value.push(' ');
                    value.push_str(more.trim());
                }
            }
            if !in_extra {
                kept.extend_from_slice(line);
            }
        }
        let bytes: usize = self.extra.iter().map(|(k, v)| k.len() + v.len()).sum();
        if fields > MAX_EXTRA_FIELDS || bytes > MAX_EXTRA_BYTES {
            self.extra_error.get_or_insert_with(|| {
                Reply::new(
                    552,
                    Some((5, 3, 4)),
                    format!(
                        "Too much extra data: at most {MAX_EXTRA_FIELDS} X-Roost-Extra fields \
                         and {MAX_EXTRA_BYTES} bytes"
                    ),
                )
            });
        }
        kept
    }
}

/// The envelope checks' task, stopped when its transaction ends first.
struct EnvelopeTask(tokio::task::JoinHandle<super::verify::EnvelopeChecks>);

impl Drop for EnvelopeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Transaction {
    /// MX: iprev, SPF, DKIM and DMARC. The Authentication-Results and
    /// Received-SPF fields for the stored prefix, and whether DMARC asks
    /// for quarantine; `Err` is the reply when it asks for rejection (RFC
    /// 7489 6.6.2, 10.3: refused in the SMTP transaction).
    async fn authenticate(
        &mut self,
        session: &SmtpState,
        now: i64,
    ) -> Result<(String, bool), Reply> {
        let hostname = &session.services.hostname;
        let dns = &session.services.dns;
        // The checks never hold the final reply longer than this.
        let deadline = tokio::time::Instant::now() + super::verify::CHECKS_DEADLINE;
        let envelope = match self.envelope.as_mut() {
            Some(task) => match tokio::time::timeout_at(deadline, &mut task.0).await {
                Ok(Ok(checks)) => Some(checks),
                _ => None,
            },
            None => None,
        };
        let head = &self.head[..header_end(&self.head)];
        let mut dkim_instead = None;
        let mut outcomes = Vec::new();
        let mut arc = None;
        if !self.header_done {
            // Signatures the header's size kept roost from reading.
            let lower = String::from_utf8_lossy(&self.head).to_ascii_lowercase();
            if lower.contains("dkim-signature:") {
                dkim_instead = Some("dkim=permerror (header section too large to verify)");
            }
            if lower.contains("arc-seal:") {
                arc = Some("fail (header section too large to verify)".to_string());
            }
        } else {
            let hashes = std::mem::take(&mut self.verify_hashes);
            let simple = hashes.simple.map(|h| h.finish());
            let relaxed = hashes.relaxed.map(|h| h.finish_bytes());
            let signatures = std::mem::take(&mut self.dkim_signatures);
            let checked = tokio::time::timeout_at(
                deadline,
                super::verify::verify(dns, head, signatures, simple.clone(), relaxed.clone(), now),
            )
            .await;
            outcomes = checked.unwrap_or_else(|_| super::verify::timed_out(&self.head));
            let chain = std::mem::replace(&mut self.arc, arc::Chain::None);
            arc = Some(
                tokio::time::timeout_at(
                    deadline,
                    super::verify::verify_arc(dns, head, chain, simple, relaxed, now),
                )
                .await
                .unwrap_or_else(|_| "temperror (timed out)".to_string()),
            );
        }
        // RFC 7489 6.6.1: every author domain is checked; a message with
        // several From fields or addresses is held to the strictest
        // failing policy among them. A From past what roost reads could
        // slip by unchecked, so such a message goes to Junk (nothing is
        // lost, and nothing unchecked reaches the Inbox).
        let all = fields(head);
        let complete = (header_complete(&self.head) || self.head.len() < HEADER_CAPTURE)
            && all.len() < MAX_HEADER_FIELDS;
        let mut domains: Vec<String> = Vec::new();
        for f in all.iter().filter(|f| f.name.eq_ignore_ascii_case(b"From")) {
            for author in mailboxes(&f.value) {
                let d = roost_protocols::smtp::dmarc::a_label(
                    author.rsplit('@').next().unwrap_or_default(),
                );
                if !domains.contains(&d) {
                    domains.push(d);
                }
            }
        }
        if envelope.is_some() && domains.len() > MAX_AUTHOR_DOMAINS {
            return Err(Reply::new(
                550,
                Some((5, 7, 1)),
                format!("Too many author domains to check, at most {MAX_AUTHOR_DOMAINS}"),
            ));
        }
        use roost_protocols::smtp::dmarc::Policy;
        let mut junk = false;
        let mut refusal = None;
        let mut dmarc = Vec::new();
        if let Some(env) = &envelope {
            if !complete {
                junk = true;
                dmarc.push("permerror (header section too large to check)".to_string());
            } else if domains.is_empty() {
                dmarc.push("none (no From address)".to_string());
            }
            for domain in &domains {
                let sample =
                    (std::collections::hash_map::RandomState::new().hash_one(now) % 100) as u8;
                let e = match tokio::time::timeout_at(
                    deadline,
                    super::verify::check_dmarc(dns, domain, env, &outcomes, sample),
                )
                .await
                {
                    Ok(e) => e,
                    Err(_) => roost_protocols::smtp::dmarc::Evaluation::unfinished(),
                };
                match e.disposition {
                    Policy::Reject if refusal.is_none() => {
                        refusal = Some(Reply::new(
                            550,
                            Some((5, 7, 1)),
                            format!("Message refused by the DMARC policy of {domain}"),
                        ))
                    }
                    Policy::Quarantine => junk = true,
                    _ => {}
                }
                super::verify::record_dmarc(session, &e, env, &outcomes, domain, now).await;
                dmarc.push(match &e.found {
                    Some(_) => format!(
                        "{} (p={} dis={}) header.from={domain}",
                        e.result.as_str(),
                        e.policy.as_str(),
                        e.disposition.as_str()
                    ),
                    None => format!("{} header.from={domain}", e.result.as_str()),
                });
            }
        }
        if let Some(reply) = refusal {
            return Err(reply);
        }
        let results = super::verify::authentication_results(
            hostname,
            &super::verify::Results {
                envelope: envelope.as_ref(),
                dkim: &outcomes,
                dkim_instead,
                arc,
                dmarc,
            },
        );
        let received_spf = envelope
            .as_ref()
            .map(|e| {
                let identity = if e.sender.is_some() {
                    "mailfrom"
                } else {
                    "helo"
                };
                roost_protocols::smtp::spf::received_spf(
                    e.mail_from,
                    hostname,
                    &e.query,
                    identity,
                    e.sender.as_deref(),
                )
            })
            .unwrap_or_default();
        Ok((format!("{received_spf}{results}"), junk))
    }
}

impl SmtpState {
    pub(super) fn mail(&mut self, from: ReversePath, params: &[Param]) {
        if self.helo.is_none() {
            return self.bad_command(Reply::bad_sequence("Send EHLO or HELO first"));
        }
        if self.tx.is_some() {
            return self.bad_command(Reply::bad_sequence("Nested MAIL command"));
        }
        if self.protocol.is_submission() && self.authenticated.is_none() {
            return self.bad_command(Reply::new(530, Some((5, 7, 0)), "Authentication required"));
        }
        // RFC 5321 4.1.1.11 with 2.2.1: extension parameters exist only
        // after EHLO offered them.
        if !self.esmtp && !params.is_empty() {
            return self.bad_command(Reply::parameter_not_recognized(
                "MAIL parameters need EHLO, not HELO",
            ));
        }
        let params = match MailParams::from_params(params) {
            Ok(p) => p,
            Err(e) => return self.bad_command(e.0),
        };
        if let Some(p) = params.other.first() {
            return self.bad_command(Reply::parameter_not_recognized(format!(
                "Parameter {} is not supported",
                p.keyword
            )));
        }
        // RFC 8689 4.1: REQUIRETLS is offered over TLS only. Mail that asks
        // for it here reaches local mailboxes only (nothing is relayed
        // before the outgoing queue), so it never leaves TLS.
        if params.requiretls && !self.peer.tls {
            return self.bad_command(Reply::parameter_not_recognized(
                "REQUIRETLS is offered over TLS only",
            ));
        }
        if let ReversePath::Mailbox(a) = &from {
            if !params.smtputf8 && !a.is_ascii() {
                return self.bad_command(Reply::non_ascii_address(
                    "Non-ASCII sender address needs the SMTPUTF8 parameter",
                ));
            }
        }
        if let ReversePath::Mailbox(a) = &from {
            let domain = a
                .to_string()
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_string();
            if let Some(reply) = self.disabled_domain(&domain) {
                return self.reply(reply);
            }
        }
        // RFC 4865: FUTURERELEASE, on submission only, at most
        // MAX_FUTURE_RELEASE ahead; a time already past releases at once.
        let now = crate::time::now_unix();
        let release = match (params.hold_for, params.hold_until) {
            (None, None) => None,
            _ if !self.protocol.is_submission() => {
                return self.bad_command(Reply::parameter_not_recognized(
                    "FUTURERELEASE is offered on submission only",
                ))
            }
            (Some(secs), _) => Some(now.saturating_add(secs as i64)),
            (None, Some(at)) => Some(at),
        };
        if release.is_some_and(|at| at > now + super::MAX_FUTURE_RELEASE) {
            return self.bad_command(Reply::new(
                501,
                Some((5, 5, 4)),
                format!(
                    "FUTURERELEASE is at most {} seconds ahead",
                    super::MAX_FUTURE_RELEASE
                ),
            ));
        }
        let release = release.filter(|at| *at > now);
        // RFC 1870 6: a declared size over the limit is refused at once.
        if params
            .size
            .is_some_and(|s| s > self.services.max_message_size)
        {
            return self.reply(Reply::message_too_large());
        }
        self.reader.new_message();
        self.chunks_failed = false;
        let verify = self.protocol == crate::listener::Protocol::Smtp;
        let envelope = verify.then(|| {
            let sender = match &from {
                ReversePath::Mailbox(a) => Some(a.to_string()),
                ReversePath::Null => None,
            };
            EnvelopeTask(tokio::spawn(super::verify::check_envelope(
                self.services.dns.clone(),
                self.peer.addr.ip(),
                self.helo.clone().unwrap_or_default(),
                sender,
            )))
        });
        self.tx = Some(Transaction {
            from,
            recipients: Vec::new(),
            rcpts: 0,
            remote: Vec::new(),
            requiretls: params.requiretls,
            release,
            ret: params.ret,
            envid: params.envid.clone(),
            dsn: Vec::new(),
            reached: Default::default(),
            declared_size: params.size,
            body: params.body,
            smtputf8: params.smtputf8,
            chunked: false,
            received: 0,
            bare_line_ending: false,
            body_hash: (self.protocol.is_submission() && self.authenticated.is_some())
                .then(BodyHasher::new),
            header_done: false,
            head_scanned: 0,
            verify_dkim: verify,
            dkim_signatures: Vec::new(),
            arc: arc::Chain::None,
            verify_hashes: Default::default(),
            envelope,
            file: None,
            head: Vec::new(),
            write_error: None,
            hold_header: self.protocol.is_submission() && self.authenticated.is_some(),
            extra: Vec::new(),
            extra_error: None,
        });
        self.reply(Reply::sender_ok());
    }

    pub(super) async fn rcpt(&mut self, to: ForwardPath, params: &[Param]) {
        let Some(tx) = &self.tx else {
            return self.bad_command(Reply::bad_sequence("MAIL first"));
        };
        // RFC 5321 4.1.1.11 with 2.2.1: extension parameters exist only
        // after EHLO offered them.
        if !self.esmtp && !params.is_empty() {
            return self.bad_command(Reply::parameter_not_recognized(
                "RCPT parameters need EHLO, not HELO",
            ));
        }
        let rcpt_params = match RcptParams::from_params(params) {
            Ok(p) => p,
            Err(e) => return self.bad_command(e.0),
        };
        if let Some(p) = rcpt_params.other.first() {
            return self.bad_command(Reply::parameter_not_recognized(format!(
                "Parameter {} is not supported",
                p.keyword
            )));
        }
        if let ForwardPath::Mailbox(a) = &to {
            if !tx.smtputf8 && !a.is_ascii() {
                return self.bad_command(Reply::non_ascii_address(
                    "Non-ASCII recipient address needs SMTPUTF8 in MAIL",
                ));
            }
        }
        if tx.rcpts >= MAX_RECIPIENTS {
            // RFC 5321 4.5.3.1.10: 452 for too many recipients; the client
            // sends the rest in another transaction (RFC 9422 RCPTMAX).
            return self.reply(Reply::new(
                452,
                Some((4, 5, 3)),
                format!("Too many recipients, at most {MAX_RECIPIENTS} per message"),
            ));
        }
        let address = match &to {
            ForwardPath::Postmaster => format!("postmaster@{}", self.services.hostname),
            ForwardPath::Mailbox(a) => a.to_string(),
        };
        let domain = address.rsplit('@').next().unwrap_or_default().to_string();
        if let Some(reply) = self.disabled_domain(&domain) {
            return self.reply(reply);
        }
        let lookup = Lookup {
            store: self.services.store.clone(),
            address: address.clone(),
            domain,
            postmaster: matches!(to, ForwardPath::Postmaster),
            declared: tx.declared_size.unwrap_or(0),
            authenticated: self.authenticated.clone(),
        };
        let (reply, accounts, remote) = match blocking(move || Ok::<_, String>(lookup.run())).await
        {
            Ok(r) => r,
            Err(_) => (local_error(), Vec::new(), false),
        };
        if reply.is_positive() {
            if let Some(tx) = &mut self.tx {
                tx.rcpts += 1;
                if !tx.dsn.iter().any(|(a, ..)| *a == address) {
                    tx.dsn.push((
                        address.clone(),
                        rcpt_params.notify,
                        rcpt_params.orcpt.clone(),
                    ));
                }
                // RFC 5321 2.4: a remote local part may mean something by
                // its case; only the domain is compared without it.
                let same = |r: &String| {
                    let (rl, rd) = r.rsplit_once('@').unwrap_or((r, ""));
                    let (al, ad) = address.rsplit_once('@').unwrap_or((&address, ""));
                    rl == al && rd.eq_ignore_ascii_case(ad)
                };
                if remote && !tx.remote.iter().any(same) {
                    tx.remote.push(address.clone());
                }
                for account in accounts {
                    if tx.reached.insert((address.to_lowercase(), account.clone())) {
                        tx.recipients.push((address.clone(), account));
                    }
                }
            }
        }
        if reply.is_permanent() {
            self.bad_commands += 1;
        }
        self.reply(reply);
    }

    /// A temporary refusal when `domain` is a local domain whose mail an
    /// administrator disabled: senders keep the message and retry.
    fn disabled_domain(&self, domain: &str) -> Option<Reply> {
        match self.services.store.domain_disabled(domain) {
            Ok(false) => None,
            Ok(true) => Some(Reply::new(
                451,
                Some((4, 7, 1)),
                format!("Mail for {domain} is disabled for now, try again later"),
            )),
            Err(e) => {
                warn!(error = %e, "domain lookup failed");
                Some(Reply::new(
                    451,
                    Some((4, 3, 0)),
                    "Local error in processing, try again later",
                ))
            }
        }
    }

    /// RFC 5321 4.4: the trace line roost adds at the top of the message;
    /// RFC 3848 protocol types, and RFC 6531's UTF8SMTP ones when the
    /// client asked for SMTPUTF8.
    fn received_line(
        &self,
        recipients: &[(String, String)],
        account: &str,
        now: i64,
        smtputf8: bool,
    ) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let with = match (
            self.esmtp,
            smtputf8,
            self.peer.tls,
            self.authenticated.is_some(),
        ) {
            (false, ..) => "SMTP",
            (true, false, false, false) => "ESMTP",
            (true, false, true, false) => "ESMTPS",
            (true, false, false, true) => "ESMTPA",
            (true, false, true, true) => "ESMTPSA",
            (true, true, false, false) => "UTF8SMTP",
            (true, true, true, false) => "UTF8SMTPS",
            (true, true, false, true) => "UTF8SMTPA",
            (true, true, true, true) => "UTF8SMTPSA",
        };
        let rdns = self
            .rdns
            .as_deref()
            .map(|n| format!("{n} "))
            .unwrap_or_default();
        let mut line = format!(
            "Received: from {helo} ({rdns}[{}])\r\n\tby {} (roost) with {with}",
            self.peer.addr.ip(),
            self.services.hostname
        );
        let mine: Vec<&str> = recipients
            .iter()
            .filter(|(_, a)| a == account)
            .map(|(addr, _)| addr.as_str())
            .collect();
        if mine.len() == 1 {
            line.push_str(&format!("\r\n\tfor <{}>", mine[0]));
        }
        line.push_str(&format!("; {}\r\n", rfc5322_date(now)));
        line
    }
}

fn local_error() -> Reply {
    Reply::new(
        451,
        Some((4, 3, 0)),
        "Local error in processing, try again later",
    )
}

/// One RCPT's lookup, run off the async workers: who the address reaches
/// and whether they can take the message.
struct Lookup {
    store: Store,
    address: String,
    domain: String,
    /// The bare `<Postmaster>` (RFC 5321 4.1.1.3), which every server takes.
    postmaster: bool,
    declared: u64,
    /// The account logged in on submission.
    authenticated: Option<String>,
}

impl Lookup {
    /// The reply, the accounts reached when it is positive, and whether
    /// the address is someone else's to deliver (the outgoing queue's).
    fn run(self) -> (Reply, Vec<String>, bool) {
        let (reply, accounts) = self.resolve();
        let remote = reply.is_positive() && accounts.is_empty();
        (reply, accounts, remote)
    }

    fn resolve(self) -> (Reply, Vec<String>) {
        let store = &self.store;
        let resolved = match store.resolve_recipient(&self.address) {
            Ok(Some(r)) => Some(r),
            Ok(None) if self.postmaster => store
                .accounts()
                .ok()
                .and_then(|a| a.into_iter().next())
                .map(|a| Resolved::Account(Box::new(a))),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "recipient lookup failed");
                return (local_error(), Vec::new());
            }
        };
        let address = &self.address;
        match resolved {
            Some(Resolved::Account(account)) if over_quota(store, &account.name, self.declared) => {
                (
                    Reply::new(452, Some((4, 2, 2)), format!("Mailbox full: {address}")),
                    Vec::new(),
                )
            }
            Some(Resolved::Account(account)) => (Reply::recipient_ok(), vec![account.name]),
            Some(Resolved::Alias(alias)) => match self.alias_members(&alias) {
                Ok(accounts) => (Reply::recipient_ok(), accounts),
                Err(reply) => (reply, Vec::new()),
            },
            // A report-only domain's other addresses are hosted elsewhere:
            // submitted mail for them goes out like any remote mail.
            None if self.authenticated.is_some() && self.report_only() => {
                (Reply::recipient_ok(), Vec::new())
            }
            None if store.has_domain(&self.domain).unwrap_or(false) => (
                Reply::new(
                    550,
                    Some((5, 1, 1)),
                    format!("No such user here: {address}"),
                ),
                Vec::new(),
            ),
            // Submission: the outgoing queue takes it, unless it bounced
            // for good before (the account's suppression list).
            None if self.authenticated.is_some() => match self.suppression() {
                Some(reason) => {
                    if let Some(account) = &self.authenticated {
                        let event = serde_json::json!({"to": address, "reason": reason});
                        crate::queue::webhooks::emit(store, account, "suppressed", event);
                    }
                    (
                        Reply::new(
                            550,
                            Some((5, 1, 1)),
                            format!("{address} is on your suppression list: {reason}"),
                        ),
                        Vec::new(),
                    )
                }
                None => (Reply::recipient_ok(), Vec::new()),
            },
            None => (
                Reply::new(
                    550,
                    Some((5, 7, 1)),
                    format!("Relaying denied: {} is not a local domain", self.domain),
                ),
                Vec::new(),
            ),
        }
    }

    /// Why the logged-in account's suppression list holds this address.
    fn suppression(&self) -> Option<String> {
        let name = self.authenticated.as_ref()?;
        let account = self.store.account(name).ok()??;
        let s = self.store.suppressed(account.id, &self.address).ok()??;
        Some(s.reason)
    }

    fn report_only(&self) -> bool {
        matches!(self.store.domain(&self.domain), Ok(Some(d)) if d.report_only)
    }

    /// The accounts an alias's message goes to: its members, except the
    /// sender (a member writing to the list gets no copy of their own
    /// message) and members over quota. Only members may send to an alias
    /// that is not open to everyone, and a member is known by logging in
    /// on submission: an envelope sender proves nothing. At least one
    /// member must take the message, or the RCPT fails as a full mailbox
    /// would.
    fn alias_members(&self, alias: &AliasRecord) -> Result<Vec<String>, Reply> {
        let store = &self.store;
        let own: Vec<String> = match &self.authenticated {
            Some(name) => match store.account(name) {
                Ok(Some(a)) => std::iter::once(&a.name)
                    .chain(&a.addresses)
                    .filter_map(|x| canonical_address(x))
                    .collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        if !alias.post_public && !alias.members.iter().any(|m| own.contains(m)) {
            return Err(Reply::new(
                550,
                Some((5, 7, 1)),
                format!(
                    "Only members may send to {}, from their account",
                    alias.address
                ),
            ));
        }
        let mut accounts: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut full = false;
        for member in &alias.members {
            if own.contains(member) {
                continue;
            }
            let Ok(Some(account)) = store.account_by_address(member) else {
                continue;
            };
            if !seen.insert(account.id) {
                continue;
            }
            if over_quota(store, &account.name, self.declared) {
                full = true;
            } else {
                accounts.push(account.name);
            }
        }
        match (accounts.is_empty(), full) {
            (false, _) => Ok(accounts),
            (true, true) => Err(Reply::new(
                452,
                Some((4, 2, 2)),
                format!("Mailbox full: {}", alias.address),
            )),
            (true, false) => Err(Reply::new(
                550,
                Some((5, 1, 1)),
                format!("No member of {} takes this message", alias.address),
            )),
        }
    }
}

/// Where the header section of `head` ends (just past its empty line, as
/// `header_end` says), looking only at line ends from `from` on, so a
/// message arriving in small pieces is searched once, not once a piece.
fn blank_line_after(head: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        if head.starts_with(b"\r\n") {
            return Some(2);
        }
        if head.starts_with(b"\n") {
            return Some(1);
        }
    }
    let mut i = from.min(head.len());
    while let Some(off) = head[i..].iter().position(|&b| b == b'\n') {
        let p = i + off;
        match &head[p + 1..] {
            [b'\n', ..] => return Some(p + 2),
            [b'\r', b'\n', ..] => return Some(p + 3),
            _ => {}
        }
        i = p + 1;
    }
    None
}

/// Whether `captured` (the start of a message) holds its whole header
/// section, up to the empty line that ends it.
pub(super) fn header_complete(captured: &[u8]) -> bool {
    let end = header_end(captured);
    end < captured.len()
        || captured.ends_with(b"\n\n")
        || captured.ends_with(b"\n\r\n")
        || captured == b"\r\n"
}

/// Whether a header section has a CR or LF that is not part of a CRLF:
/// even a binary body (RFC 3030 3) has a header of CRLF lines.
pub(super) fn bare_line_end_in_header(captured: &[u8]) -> bool {
    let head = &captured[..header_end(captured)];
    head.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => head.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || head[i - 1] != b'\r',
        _ => false,
    })
}

/// Where one account's copy goes.
#[derive(Clone, Default)]
struct Routing {
    account: Option<roost_store::AccountId>,
    /// A rule's or the intro mailbox; `None` for INBOX.
    mailbox: Option<String>,
    /// To the intro mailbox: the author is not known yet.
    intro: bool,
    /// The author is a known correspondent already (nothing to mark).
    known: bool,
}

/// Each account's mailbox: by its delivery rules (the first that
/// matches); else, for an account with an intro mailbox, there when the
/// author (the From address) is not a known correspondent; else INBOX.
fn route(
    store: &Store,
    accounts: &[String],
    head: &[u8],
    sender: Option<&str>,
    author: Option<&str>,
) -> Vec<Routing> {
    let header: Vec<(String, String)> = fields(head)
        .into_iter()
        .map(|f| {
            (
                String::from_utf8_lossy(f.name).into_owned(),
                String::from_utf8_lossy(&f.value).trim().to_string(),
            )
        })
        .collect();
    accounts
        .iter()
        .map(|name| {
            let Some(record) = store.account(name).ok().flatten() else {
                return Routing::default();
            };
            let id = record.id;
            let known = author.is_some_and(|a| store.is_known(id, a).unwrap_or(false));
            let rule = store
                .rules(id)
                .ok()
                .and_then(|rules| rules.into_iter().find(|r| r.matches(&header, sender)));
            if let Some(rule) = rule {
                return Routing {
                    account: Some(id),
                    mailbox: Some(rule.mailbox),
                    intro: false,
                    known,
                };
            }
            let intro = store
                .intro_mailbox(id)
                .ok()
                .flatten()
                .filter(|_| author.is_some() && !known);
            Routing {
                account: Some(id),
                intro: intro.is_some(),
                mailbox: intro,
                known,
            }
        })
        .collect()
}

/// The first address of the From field, if any.
fn author_of(head: &[u8]) -> Option<String> {
    let from = fields(head)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(b"From"))?;
    mailboxes(&from.value).into_iter().next()
}

/// The `local@domain` addresses of an address-list field value (groups'
/// names and ends left out).
fn mailboxes(value: &[u8]) -> Vec<String> {
    parse_address_list(value)
        .into_iter()
        .filter_map(|a| match (a.mailbox, a.host) {
            (Some(m), Some(h)) => Some(format!(
                "{}@{}",
                String::from_utf8_lossy(&m),
                String::from_utf8_lossy(&h)
            )),
            _ => None,
        })
        .collect()
}

/// The most distinct From domains one message may have on the MX port:
/// each is a DMARC evaluation.
pub const MAX_AUTHOR_DOMAINS: usize = 5;

/// A header section longer than roost reads: what it hides (a From, a
/// signature) could not be checked.
fn header_too_large() -> Reply {
    Reply::new(
        554,
        Some((5, 6, 0)),
        format!(
            "Header section too large to check: at most {HEADER_CAPTURE} bytes and {} fields",
            MAX_HEADER_FIELDS - 1
        ),
    )
}

/// Submission (RFC 6409 8 lets the MSA check what it is given): the
/// message has exactly one From field (RFC 5322 3.6), naming one address,
/// and that address is the logged-in account's (also with a tag after a
/// catchall separator), or an alias that lets its members send as it
/// (AllowMsgFrom) with the account among them.
fn check_from(store: &Store, account: &str, head: &[u8], complete: bool) -> Result<(), Reply> {
    // A From the check cannot see (past the captured start of the message,
    // or past the fields read) must not slip through.
    let all = fields(head);
    if !complete || all.len() >= MAX_HEADER_FIELDS {
        return Err(header_too_large());
    }
    let from: Vec<_> = all
        .into_iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"From"))
        .collect();
    if from.len() != 1 {
        return Err(Reply::new(
            550,
            Some((5, 6, 0)),
            format!(
                "A message needs exactly one From header field, this one has {}",
                from.len()
            ),
        ));
    }
    let addresses = mailboxes(&from[0].value);
    let [address] = addresses.as_slice() else {
        return Err(Reply::new(
            550,
            Some((5, 7, 1)),
            "The From header field must name exactly one address, yours",
        ));
    };
    let not_yours = || {
        Reply::new(
            550,
            Some((5, 7, 1)),
            format!("From address {address} is not one of {account}'s addresses"),
        )
    };
    let record = match store.account(account) {
        Ok(Some(r)) => r,
        _ => return Err(not_yours()),
    };
    match store.resolve_sender(address) {
        Ok(Some(Resolved::Account(owner))) if owner.id == record.id => Ok(()),
        Ok(Some(Resolved::Alias(alias))) if alias.allow_msg_from => {
            let own: Vec<String> = std::iter::once(&record.name)
                .chain(&record.addresses)
                .filter_map(|a| canonical_address(a))
                .collect();
            if alias.members.iter().any(|m| own.contains(m)) {
                Ok(())
            } else {
                Err(not_yours())
            }
        }
        Ok(_) => Err(not_yours()),
        Err(e) => {
            warn!(error = %e, "From address lookup failed");
            Err(Reply::new(
                451,
                Some((4, 3, 0)),
                "Local error in processing, try again later",
            ))
        }
    }
}

/// RFC 1870 6.1 and RFC 3463 4.2.2: whether `declared` more bytes would take
/// the account past its quota. A failed lookup says no: delivery checks
/// the quota again, exactly, in the account actor.
fn over_quota(store: &Store, account: &str, declared: u64) -> bool {
    let Ok(Some(record)) = store.account(account) else {
        return false;
    };
    let Some(quota) = record.quota_bytes else {
        return false;
    };
    let used: u64 = store
        .mailboxes(record.id)
        .map(|m| m.iter().map(|m| m.counts.size).sum())
        .unwrap_or(0);
    // Every message has at least one byte.
    used.saturating_add(declared.max(1)) > quota
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_end_is_found_as_header_end_finds_it_however_the_bytes_come() {
        let messages: [&[u8]; 5] = [
            b"A: b\r\nC: d\r\n\r\nbody\r\n",
            b"\r\nbody",
            b"A: b\n\nbody",
            b"A: b\r\n folded\r\n\r\n",
            b"A: b\r\nno end",
        ];
        for m in messages {
            let want = header_complete(m).then(|| header_end(m));
            for piece in 1..=m.len() {
                let (mut head, mut scanned, mut found) = (Vec::new(), 0usize, None);
                for chunk in m.chunks(piece) {
                    head.extend_from_slice(chunk);
                    if found.is_none() {
                        found = blank_line_after(&head, scanned.saturating_sub(2));
                        scanned = head.len();
                    }
                }
                assert_eq!(
                    found,
                    want,
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(m)
                );
            }
        }
    }
}
