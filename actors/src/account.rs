//! The account actor: the single writer of one account.
//!
//! Every mutation of an account comes here: deliver and append (quota check,
//! UID and modseq allocation, thread matching), flags, expunge, copy, move,
//! and mailbox create, rename and delete. A handler applies the change to the
//! actor's in-memory state, adds its records to the pending commit and
//! schedules a `Flush`. Mutations that arrive while a flush runs wait in the
//! mailbox and are committed together by the next flush: one sled batch, one
//! flush and one directory fsync per shard for all of them (group commit).
//! Each caller is answered only after its change is durable, and only then are
//! the change events published.
//!
//! If a commit fails, the in-memory state is ahead of the disk: the actor
//! answers every waiting caller with an error and fails, and its supervisor
//! starts a fresh one that reloads from the store.

use crate::events::{AddedMessage, Change, ChangeEvent, EventHub, MessageState};
use crate::mailbox::{
    MailboxActor, MailboxArgs, MailboxIndex, MailboxMsg, MailboxSnapshot, Subscriber,
};
use crate::time::now_unix;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use roost_protocols::imap::types::{Flag, Flags, ModSeq, Uid, UidValidity};
use roost_protocols::message::summary::Summary;
use roost_protocols::message::thread::ThreadKeys;
use roost_store::{
    AccountRecord, Commit, FileId, MailboxCounts, MailboxId, MailboxRecord, MessageRecord,
    PasswordSecrets, Record, RecordKey, SpecialUse, StagedFile, Store, ThreadId, ThreadRef,
    Tombstone,
};
use roost_supervisor::{ActorKind, ChildSpec, Registry, Restart};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The hierarchy delimiter of mailbox names (RFC 9051 5.1.1).
pub const MAILBOX_DELIMITER: char = '/';
/// The longest mailbox name, in bytes.
pub const MAX_MAILBOX_NAME: usize = 1024;
/// The most mailboxes one account may have.
pub const MAX_MAILBOXES: usize = 10_000;
/// How long a mailbox actor (and its loaded index) stays after its last
/// subscriber leaves, so a client that selects it again, or another
/// mailbox and back, does not wait for the load again.
pub const MAILBOX_LINGER: std::time::Duration = std::time::Duration::from_secs(60);
/// Tombstones (expunged UIDs, for QRESYNC) a mailbox keeps. Past this the
/// oldest are pruned down to [`KEEP_TOMBSTONES`], and the mailbox's
/// vanished floor records the newest modseq pruned.
pub const MAX_TOMBSTONES: u32 = 100_000;
pub const KEEP_TOMBSTONES: u32 = 90_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no mailbox named {0:?}")]
    NoMailbox(String),
    #[error("mailbox {0:?} already exists")]
    AlreadyExists(String),
    #[error("over quota: {used} of {quota} bytes used, {needed} more needed")]
    OverQuota { used: u64, quota: u64, needed: u64 },
    #[error("{0}")]
    Cannot(String),
    #[error("storage failed: {0}")]
    Store(String),
    /// The mailbox's actor was stopping as it was opened: open it again.
    #[error("the mailbox is being closed; try again")]
    Closing,
}

/// Where a new message goes.
#[derive(Debug, Clone)]
pub enum Target {
    Inbox,
    Name(String),
}

/// One message to add: already staged (written and fsynced) by the caller.
pub struct NewMessage {
    pub target: Target,
    pub staged: StagedFile,
    pub flags: Flags,
    pub internal_date: i64,
    pub header_prefix: Vec<u8>,
    pub keys: ThreadKeys,
    /// ENVELOPE and BODYSTRUCTURE, read from the staged file; `None` when
    /// it could not be read (the first FETCH that needs it makes it).
    pub summary: Option<Arc<Summary>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub mailbox: MailboxId,
    pub uid_validity: UidValidity,
    pub uid: Uid,
    pub flags: Flags,
    pub modseq: ModSeq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    Add,
    Remove,
    Replace,
}

/// What a flag change did.
#[derive(Debug, Clone, Default)]
pub struct FlagsSet {
    /// The messages whose flags changed, with their new state.
    pub changed: Vec<MessageState>,
    /// RFC 7162 3.1.3: messages left alone because they changed after the
    /// UNCHANGEDSINCE modseq.
    pub modified: Vec<Uid>,
}

/// RFC 4315 COPYUID: the destination's UIDVALIDITY and the UID pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResult {
    pub uid_validity: UidValidity,
    pub pairs: Vec<(Uid, Uid)>,
}

/// What a session gets when it opens a mailbox.
pub struct OpenedMailbox {
    pub snapshot: MailboxSnapshot,
    pub actor: ActorRef<MailboxMsg>,
}

pub type Reply<T> = RpcReplyPort<Result<T, AccountError>>;

/// The name an account's actor is registered under (`account:<name>`).
pub fn actor_name(account: &str) -> String {
    format!("account:{account}")
}

pub enum AccountMsg {
    /// Adds messages, all or none, in one commit (deliver, APPEND, MULTIAPPEND).
    Deliver {
        messages: Vec<NewMessage>,
        reply: Reply<Vec<Delivered>>,
    },
    SetFlags {
        mailbox: MailboxId,
        uids: Vec<Uid>,
        action: FlagAction,
        flags: Flags,
        /// RFC 7162 3.1.3: leave alone messages changed after this modseq.
        unchanged_since: Option<ModSeq>,
        reply: Reply<FlagsSet>,
    },
    /// Expunges the given UIDs, or every `\Deleted` message when `None`;
    /// only messages that carry `\Deleted` are expunged either way.
    Expunge {
        mailbox: MailboxId,
        uids: Option<Vec<Uid>>,
        reply: Reply<Vec<Uid>>,
    },
    /// Copies messages, and with `remove` moves them (RFC 6851).
    Copy {
        from: MailboxId,
        uids: Vec<Uid>,
        to: String,
        remove: bool,
        reply: Reply<CopyResult>,
    },
    CreateMailbox {
        name: String,
        /// RFC 6154 3: the special use it is created with.
        special_use: Option<SpecialUse>,
        reply: Reply<MailboxId>,
    },
    RenameMailbox {
        from: String,
        to: String,
        reply: Reply<()>,
    },
    DeleteMailbox {
        name: String,
        reply: Reply<()>,
    },
    SetSubscribed {
        name: String,
        subscribed: bool,
        reply: Reply<()>,
    },
    OpenMailbox {
        name: String,
        subscriber: Subscriber,
        reply: Reply<OpenedMailbox>,
    },
    CloseMailbox {
        mailbox: MailboxId,
        subscriber: u64,
    },
    /// Internal: a mailbox's last subscriber left [`MAILBOX_LINGER`] ago;
    /// stop its actor unless someone subscribed meanwhile.
    MailboxIdle {
        mailbox: MailboxId,
        actor: ractor::ActorId,
    },
    SetPassword {
        secrets: Box<PasswordSecrets>,
        reply: Reply<()>,
    },
    Record(RpcReplyPort<AccountRecord>),
    /// Whether `bytes` more could be appended to `mailbox` now (it exists,
    /// and the quota has room): asked before an APPEND's literal is read.
    CanAppend {
        mailbox: String,
        bytes: u64,
        reply: Reply<()>,
    },
    /// Keeps the summary a session made for a message stored without one.
    /// Dropped if the file's message is gone meanwhile.
    StoreSummary {
        file: FileId,
        summary: Arc<Summary>,
    },
    /// Internal: commit what is pending.
    Flush,
    /// Chaos testing: panic inside this handler.
    Panic,
}

pub struct AccountActor;

pub struct AccountArgs {
    pub name: String,
    pub store: Store,
    pub hub: EventHub,
    pub registry: Registry,
    /// Shared by every incarnation of this account's actor: held while a
    /// commit runs, and taken by a new incarnation before it reads the
    /// store, so a restart never reads state that a killed predecessor's
    /// commit is still writing.
    pub commit_lock: CommitLock,
    /// How long an unwatched mailbox actor stays ([`MAILBOX_LINGER`]).
    pub mailbox_linger: std::time::Duration,
}

pub type CommitLock = Arc<tokio::sync::Mutex<()>>;

type Answer = Box<dyn FnOnce(Result<(), AccountError>) + Send>;

impl Pending {
    fn is_empty(&self) -> bool {
        self.answers.is_empty()
            && self.puts.is_empty()
            && self.deletes.is_empty()
            && self.messages.is_empty()
            && self.mailboxes.is_empty()
            && self.deleted_mailboxes.is_empty()
            && self.place.is_empty()
            && self.link.is_empty()
            && self.remove.is_empty()
            && self.prune.is_empty()
    }
}

#[derive(Default)]
struct Pending {
    puts: Vec<Record>,
    deletes: Vec<RecordKey>,
    place: Vec<(StagedFile, FileId)>,
    link: Vec<(FileId, FileId)>,
    remove: Vec<FileId>,
    mailboxes: BTreeSet<MailboxId>,
    deleted_mailboxes: Vec<MailboxId>,
    /// Mailboxes whose oldest tombstones go, and how many.
    prune: Vec<(MailboxId, usize)>,
    changes: Vec<Change>,
    answers: Vec<Answer>,
    /// Message records changed but not yet committed; `None` = expunged.
    messages: HashMap<(MailboxId, Uid), Option<MessageRecord>>,
    by_message_id: HashMap<String, ThreadRef>,
    by_subject: HashMap<String, ThreadRef>,
}

pub struct AccountState {
    commit_lock: CommitLock,
    store: Store,
    hub: EventHub,
    registry: Registry,
    record: AccountRecord,
    mailboxes: BTreeMap<MailboxId, MailboxRecord>,
    open: HashMap<MailboxId, ActorRef<MailboxMsg>>,
    /// The shared index of each open mailbox, kept current by `flush`.
    indexes: HashMap<MailboxId, Arc<MailboxIndex>>,
    pending: Pending,
    flush_scheduled: bool,
    mailbox_linger: std::time::Duration,
}

impl Actor for AccountActor {
    type Msg = AccountMsg;
    type State = AccountState;
    type Arguments = AccountArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<AccountMsg>,
        args: AccountArgs,
    ) -> Result<AccountState, ActorProcessingErr> {
        // Mailbox actors of a crashed predecessor watch a state that is gone:
        // stop them, so their sessions reopen through this actor.
        let prefix = format!("mailbox:{}/", args.name);
        for name in ractor::registry::registered() {
            if name.starts_with(&prefix) {
                if let Some(cell) = ractor::registry::where_is(name) {
                    cell.stop(Some("account restarted".into()));
                    let _ = cell.wait(Some(std::time::Duration::from_secs(5))).await;
                }
            }
        }
        // Wait out any commit of a predecessor that was killed mid-flush.
        drop(args.commit_lock.lock().await);
        let store = args.store.clone();
        let name = args.name.clone();
        let (record, mailboxes) = tokio::task::spawn_blocking(move || {
            let record = store
                .account(&name)?
                .ok_or_else(|| roost_store::StoreError::NotFound(format!("account {name}")))?;
            let mailboxes = store.mailboxes(record.id)?;
            Ok::<_, roost_store::StoreError>((record, mailboxes))
        })
        .await??;
        Ok(AccountState {
            commit_lock: args.commit_lock,
            store: args.store,
            hub: args.hub,
            registry: args.registry,
            record,
            mailboxes: mailboxes.into_iter().map(|m| (m.id, m)).collect(),
            open: HashMap::new(),
            indexes: HashMap::new(),
            pending: Pending::default(),
            flush_scheduled: false,
            mailbox_linger: args.mailbox_linger,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<AccountMsg>,
        state: &mut AccountState,
    ) -> Result<(), ActorProcessingErr> {
        state.indexes.clear();
        for (_, mb) in state.open.drain() {
            mb.stop(Some("account stopped".into()));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<AccountMsg>,
        msg: AccountMsg,
        state: &mut AccountState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AccountMsg::Flush => {
                state.flush_scheduled = false;
                return state.flush().await;
            }
            AccountMsg::Panic => panic!("chaos: panic requested in account actor"),
            AccountMsg::Record(reply) => {
                let _ = reply.send(state.record.clone());
                return Ok(());
            }
            AccountMsg::CanAppend {
                mailbox,
                bytes,
                reply,
            } => {
                let r = state
                    .mailbox_by_name(&mailbox)
                    .and_then(|_| state.check_quota(bytes));
                let _ = reply.send(r);
                return Ok(());
            }
            AccountMsg::OpenMailbox {
                name,
                subscriber,
                reply,
            } => {
                let actor = match state.mailbox_by_name(&name) {
                    Ok(id) => state.mailbox_actor(&myself, id).await,
                    Err(e) => Err(e),
                };
                match actor {
                    // The mailbox actor answers once its index is loaded;
                    // this actor goes on meanwhile.
                    Ok(actor) => {
                        tokio::spawn(async move {
                            let r = ractor::call!(actor, MailboxMsg::Subscribe, subscriber)
                                .map(|snapshot| OpenedMailbox {
                                    snapshot,
                                    actor: actor.clone(),
                                })
                                .map_err(|_| AccountError::Closing);
                            let _ = reply.send(r);
                        });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
                return Ok(());
            }
            AccountMsg::CloseMailbox {
                mailbox,
                subscriber,
            } => {
                state.close_mailbox(&myself, mailbox, subscriber).await;
                return Ok(());
            }
            AccountMsg::MailboxIdle { mailbox, actor } => {
                state.stop_idle_mailbox(mailbox, actor).await;
                return Ok(());
            }
            AccountMsg::Deliver { messages, reply } => {
                let r = state.deliver(messages);
                state.answer(reply, r);
            }
            AccountMsg::SetFlags {
                mailbox,
                uids,
                action,
                flags,
                unchanged_since,
                reply,
            } => {
                let r = state.set_flags(mailbox, &uids, action, &flags, unchanged_since);
                state.answer(reply, r);
            }
            AccountMsg::Expunge {
                mailbox,
                uids,
                reply,
            } => {
                let r = state.expunge(mailbox, uids.as_deref());
                state.answer(reply, r);
            }
            AccountMsg::Copy {
                from,
                uids,
                to,
                remove,
                reply,
            } => {
                let r = state.copy(from, &uids, &to, remove);
                state.answer(reply, r);
            }
            AccountMsg::CreateMailbox {
                name,
                special_use,
                reply,
            } => {
                let r = state.create_mailbox(&name, special_use);
                state.answer(reply, r);
            }
            AccountMsg::RenameMailbox { from, to, reply } => {
                let r = state.rename_mailbox(&from, &to);
                state.answer(reply, r);
            }
            AccountMsg::DeleteMailbox { name, reply } => {
                let r = state.delete_mailbox(&name).await;
                state.answer(reply, r);
            }
            AccountMsg::SetSubscribed {
                name,
                subscribed,
                reply,
            } => {
                let r = state.set_subscribed(&name, subscribed);
                state.answer(reply, r);
            }
            AccountMsg::StoreSummary { file, summary } => {
                if state.file_is_live(file) {
                    state.pending.puts.push(Record::Summary { file, summary });
                }
            }
            AccountMsg::SetPassword { secrets, reply } => {
                state.record.password = *secrets;
                state
                    .pending
                    .puts
                    .push(Record::Account(state.record.clone()));
                state.answer(reply, Ok(()));
            }
        }
        if !state.flush_scheduled && !state.pending.is_empty() {
            state.flush_scheduled = true;
            myself.send_message(AccountMsg::Flush)?;
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<AccountMsg>,
        event: SupervisionEvent,
        state: &mut AccountState,
    ) -> Result<(), ActorProcessingErr> {
        // A mailbox actor that ends (last subscriber gone, or a crash) is
        // simply forgotten; the next open starts a new one from the store.
        if let SupervisionEvent::ActorTerminated(cell, ..)
        | SupervisionEvent::ActorFailed(cell, _) = event
        {
            state.open.retain(|_, r| r.get_id() != cell.get_id());
            let open = &state.open;
            state.indexes.retain(|id, _| open.contains_key(id));
        }
        Ok(())
    }
}

impl AccountState {
    /// Queues the reply until the pending commit is durable. A request that
    /// failed validation changed nothing and is answered at once.
    fn answer<T: Send + 'static>(&mut self, reply: Reply<T>, result: Result<T, AccountError>) {
        match result {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            // Nothing changed and nothing is waiting to be made durable: the
            // answer is true of the disk already, no flush is needed.
            Ok(value) if self.pending.is_empty() => {
                let _ = reply.send(Ok(value));
            }
            Ok(value) => self.pending.answers.push(Box::new(move |durable| {
                let _ = reply.send(durable.map(|()| value));
            })),
        }
    }

    async fn flush(&mut self) -> Result<(), ActorProcessingErr> {
        let mut pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        let account = self.record.id;
        for ((mailbox, uid), rec) in std::mem::take(&mut pending.messages) {
            if pending.deleted_mailboxes.contains(&mailbox) {
                continue; // deleted with its mailbox below
            }
            match rec {
                Some(rec) => pending.puts.push(Record::Message(rec)),
                None => pending
                    .deletes
                    .push(RecordKey::Message(account, mailbox, uid)),
            }
        }
        // Nothing of a mailbox deleted in this batch may be written back.
        pending.puts.retain(|r| match r {
            Record::Tombstone(t) => !pending.deleted_mailboxes.contains(&t.mailbox),
            _ => true,
        });
        pending.puts.push(Record::Account(self.record.clone()));
        for id in &pending.mailboxes {
            if let Some(mb) = self.mailboxes.get(id) {
                pending.puts.push(Record::Mailbox(mb.clone()));
            }
        }
        for id in &pending.deleted_mailboxes {
            pending
                .deletes
                .push(RecordKey::Mailbox(self.record.id, *id));
        }
        let commit = Commit {
            puts: pending.puts,
            deletes: pending.deletes,
            place_files: pending.place,
            link_files: pending.link,
            remove_files: pending.remove,
            prune_tombstones: pending
                .prune
                .iter()
                .filter(|(m, _)| !pending.deleted_mailboxes.contains(m))
                .map(|&(m, n)| (account, m, n))
                .collect(),
        };
        let store = self.store.clone();
        // The guard travels with the commit: if this actor is killed while
        // it waits, the commit still finishes before a successor reads.
        let guard = self.commit_lock.clone().lock_owned().await;
        let result = tokio::task::spawn_blocking(move || {
            let r = store.commit(commit);
            drop(guard);
            r
        })
        .await;
        let failure = match result {
            Ok(Ok(_stats)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("commit task failed: {e}")),
        };
        if let Some(reason) = failure {
            for answer in pending.answers {
                answer(Err(AccountError::Store(reason.clone())));
            }
            // The in-memory state is ahead of the disk: fail and reload.
            return Err(format!("commit failed: {reason}").into());
        }
        // Events go out before the callers hear "done", so a client that
        // acts on one session's answer finds the change already on its way
        // to every other session.
        let modseq = self.record.last_modseq;
        for change in pending.changes {
            let event = Arc::new(ChangeEvent {
                account: self.record.name.clone(),
                modseq,
                change,
            });
            // The shared index first, so a caller reads its change back as
            // soon as it is answered; then the mailbox's subscribers.
            if let Some(index) = self.indexes.get(&event.change.mailbox()) {
                index.apply(&event.change);
            }
            if let Some(mb) = self.open.get(&event.change.mailbox()) {
                let _ = mb.cast(MailboxMsg::Event(event.clone()));
            }
            self.hub.publish(event);
        }
        for answer in pending.answers {
            answer(Ok(()));
        }
        Ok(())
    }

    fn next_modseq(&mut self) -> ModSeq {
        self.record.last_modseq = ModSeq(self.record.last_modseq.0 + 1);
        self.record.last_modseq
    }

    fn mailbox_by_name(&self, name: &str) -> Result<MailboxId, AccountError> {
        let name = normalize_name(name);
        self.mailboxes
            .values()
            .find(|m| m.name == name)
            .map(|m| m.id)
            .ok_or(AccountError::NoMailbox(name))
    }

    fn mailbox_mut(&mut self, id: MailboxId) -> Result<&mut MailboxRecord, AccountError> {
        self.mailboxes
            .get_mut(&id)
            .ok_or_else(|| AccountError::NoMailbox(format!("#{id}")))
    }

    /// RFC 9208: a change that would take the account past its quota is
    /// refused whole; exactly at the quota is allowed.
    fn check_quota(&self, needed: u64) -> Result<(), AccountError> {
        let Some(quota) = self.record.quota_bytes else {
            return Ok(());
        };
        let used: u64 = self.mailboxes.values().map(|m| m.counts.size).sum();
        if used.saturating_add(needed) > quota {
            return Err(AccountError::OverQuota {
                used,
                quota,
                needed,
            });
        }
        Ok(())
    }

    /// The message as the account sees it now, pending changes included.
    fn message(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageRecord>, AccountError> {
        if let Some(pending) = self.pending.messages.get(&(mailbox, uid)) {
            return Ok(pending.clone());
        }
        self.store
            .message(self.record.id, mailbox, uid)
            .map_err(|e| AccountError::Store(e.to_string()))
    }

    /// Every message of a mailbox, pending changes included, in UID order.
    fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageRecord>, AccountError> {
        let stored = self
            .store
            .messages(self.record.id, mailbox)
            .map_err(|e| AccountError::Store(e.to_string()))?;
        let mut all: BTreeMap<Uid, MessageRecord> =
            stored.into_iter().map(|m| (m.uid, m)).collect();
        for ((mb, uid), rec) in &self.pending.messages {
            if *mb != mailbox {
                continue;
            }
            match rec {
                Some(r) => all.insert(*uid, r.clone()),
                None => all.remove(uid),
            };
        }
        Ok(all.into_values().collect())
    }

    /// Message records go to the commit in their final state only (see
    /// `flush`): a flag change and an expunge of the same message in one
    /// batch must end as an expunge.
    /// Whether `file` holds a message that is stored and not expunged by a
    /// change still pending.
    fn file_is_live(&self, file: FileId) -> bool {
        match self.store.message_by_file(self.record.id, file) {
            Ok(Some(m)) => !matches!(self.pending.messages.get(&(m.mailbox, m.uid)), Some(None)),
            _ => false,
        }
    }

    fn put_message(&mut self, rec: MessageRecord) {
        self.pending
            .messages
            .insert((rec.mailbox, rec.uid), Some(rec));
    }

    fn remove_message(&mut self, rec: &MessageRecord, modseq: ModSeq) {
        self.pending.messages.insert((rec.mailbox, rec.uid), None);
        self.pending.puts.push(Record::Tombstone(Tombstone {
            account: rec.account,
            mailbox: rec.mailbox,
            uid: rec.uid,
            modseq,
        }));
    }

    fn deliver(&mut self, messages: Vec<NewMessage>) -> Result<Vec<Delivered>, AccountError> {
        // Validate the whole call before changing anything: all or none.
        let mut targets = Vec::with_capacity(messages.len());
        for m in &messages {
            targets.push(match &m.target {
                Target::Inbox => self.mailbox_by_name("INBOX")?,
                Target::Name(n) => self.mailbox_by_name(n)?,
            });
        }
        let needed: u64 = messages
            .iter()
            .map(|m| m.staged.size() + m.header_prefix.len() as u64)
            .sum();
        self.check_quota(needed)?;
        let files: Vec<FileId> = messages
            .iter()
            .map(|_| self.store.next_file_id())
            .collect::<Result<_, _>>()
            .map_err(store_err)?;
        let now = now_unix();
        let mut delivered = Vec::with_capacity(messages.len());
        let mut added: BTreeMap<MailboxId, Vec<AddedMessage>> = BTreeMap::new();
        for ((m, mailbox), file) in messages.into_iter().zip(targets).zip(files) {
            let modseq = self.next_modseq();
            let thread = self.match_thread(&m.keys, file);
            let mb = self.mailbox_mut(mailbox)?;
            let uid = mb.uid_next;
            mb.uid_next = Uid(uid.0 + 1);
            mb.highest_modseq = modseq;
            let rec = MessageRecord {
                account: mb.account,
                mailbox,
                uid,
                file,
                modseq,
                createseq: modseq,
                flags: m.flags,
                size: m.staged.size() + m.header_prefix.len() as u64,
                internal_date: m.internal_date,
                save_date: now,
                header_prefix: m.header_prefix,
                message_id: m.keys.message_id.clone(),
                thread_id: thread.thread,
                thread_parents: thread.parents,
                missing_link: thread.missing_link,
                muted: thread.muted,
                collapsed: thread.collapsed,
            };
            count_in(&mut mb.counts, &rec);
            delivered.push(Delivered {
                mailbox,
                uid_validity: mb.uid_validity,
                uid,
                flags: rec.flags.clone(),
                modseq,
            });
            added.entry(mailbox).or_default().push(AddedMessage {
                uid,
                flags: rec.flags.clone(),
                modseq,
                size: rec.size,
            });
            self.pending.mailboxes.insert(mailbox);
            self.pending.place.push((m.staged, file));
            if let Some(summary) = m.summary {
                self.pending.puts.push(Record::Summary { file, summary });
            }
            self.put_message(rec);
        }
        for (mailbox, messages) in added {
            let mb = &self.mailboxes[&mailbox];
            self.pending.changes.push(Change::MessagesAdded {
                mailbox,
                name: mb.name.clone(),
                uid_validity: mb.uid_validity,
                messages,
                counts: mb.counts,
            });
        }
        Ok(delivered)
    }

    fn set_flags(
        &mut self,
        mailbox: MailboxId,
        uids: &[Uid],
        action: FlagAction,
        flags: &Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagsSet, AccountError> {
        self.mailbox_mut(mailbox)?;
        let mut changed = Vec::new();
        let mut modified = Vec::new();
        for &uid in uids.iter().collect::<BTreeSet<_>>() {
            let Some(mut rec) = self.message(mailbox, uid)? else {
                continue;
            };
            if unchanged_since.is_some_and(|u| rec.modseq > u) {
                modified.push(uid);
                continue;
            }
            let new = apply_flags(&rec.flags, action, flags);
            if new == rec.flags {
                continue;
            }
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(mailbox)?;
            count_out(&mut mb.counts, &rec);
            rec.flags = new;
            rec.modseq = modseq;
            count_in(&mut mb.counts, &rec);
            mb.highest_modseq = modseq;
            changed.push(MessageState {
                uid,
                flags: rec.flags.clone(),
                modseq,
            });
            self.put_message(rec);
        }
        if !changed.is_empty() {
            let mb = &self.mailboxes[&mailbox];
            self.pending.mailboxes.insert(mailbox);
            self.pending.changes.push(Change::FlagsChanged {
                mailbox,
                name: mb.name.clone(),
                messages: changed.clone(),
                counts: mb.counts,
            });
        }
        Ok(FlagsSet { changed, modified })
    }

    fn expunge(
        &mut self,
        mailbox: MailboxId,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<Uid>, AccountError> {
        if self.mailbox_mut(mailbox)?.counts.deleted == 0 {
            return Ok(Vec::new()); // nothing carries \Deleted: no scan
        }
        let candidates: Vec<MessageRecord> = match uids {
            None => self.messages(mailbox)?,
            Some(uids) => {
                let mut v = Vec::new();
                for uid in uids.iter().collect::<BTreeSet<_>>() {
                    if let Some(r) = self.message(mailbox, *uid)? {
                        v.push(r);
                    }
                }
                v
            }
        };
        let doomed: Vec<MessageRecord> = candidates
            .into_iter()
            .filter(|r| r.flags.contains(&Flag::Deleted))
            .collect();
        self.remove_all(mailbox, &doomed, true)
    }

    /// Expunges `doomed` from `mailbox`: tombstones, counts, file removal
    /// after the commit, one change event.
    fn remove_all(
        &mut self,
        mailbox: MailboxId,
        doomed: &[MessageRecord],
        unlink_files: bool,
    ) -> Result<Vec<Uid>, AccountError> {
        let mut removed = Vec::with_capacity(doomed.len());
        for rec in doomed {
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(mailbox)?;
            count_out(&mut mb.counts, rec);
            mb.highest_modseq = modseq;
            self.remove_message(rec, modseq);
            if unlink_files {
                self.pending.remove.push(rec.file);
            }
            removed.push(rec.uid);
        }
        let mb = self.mailbox_mut(mailbox)?;
        mb.tombstones = mb.tombstones.saturating_add(removed.len() as u32);
        if let Some(n) = tombstones_to_prune(mb.tombstones) {
            mb.tombstones -= n as u32;
            self.pending.prune.push((mailbox, n));
        }
        if !removed.is_empty() {
            let mb = &self.mailboxes[&mailbox];
            self.pending.mailboxes.insert(mailbox);
            self.pending.changes.push(Change::MessagesRemoved {
                mailbox,
                name: mb.name.clone(),
                uids: removed.clone(),
                counts: mb.counts,
            });
        }
        Ok(removed)
    }

    fn copy(
        &mut self,
        from: MailboxId,
        uids: &[Uid],
        to: &str,
        remove: bool,
    ) -> Result<CopyResult, AccountError> {
        self.mailbox_mut(from)?;
        let dest = self.mailbox_by_name(to)?;
        if remove && dest == from {
            return Err(AccountError::Cannot(
                "cannot move messages into the mailbox they are in".into(),
            ));
        }
        let mut sources = Vec::new();
        for uid in uids.iter().collect::<BTreeSet<_>>() {
            if let Some(r) = self.message(from, *uid)? {
                sources.push(r);
            }
        }
        if !remove {
            self.check_quota(sources.iter().map(|r| r.size).sum())?;
        }
        // Every record owns its file. A copy is a hard link under a new file
        // id, so expunging either side never touches the other; a move keeps
        // the file (and so the thread links that name it). Ids are taken
        // before anything changes, so a failure leaves nothing half done.
        let files: Vec<FileId> = if remove {
            sources.iter().map(|s| s.file).collect()
        } else {
            sources
                .iter()
                .map(|_| self.store.next_file_id())
                .collect::<Result<_, _>>()
                .map_err(store_err)?
        };
        let now = now_unix();
        let mut pairs = Vec::with_capacity(sources.len());
        let mut added = Vec::with_capacity(sources.len());
        for (src, file) in sources.iter().zip(files) {
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(dest)?;
            let uid = mb.uid_next;
            mb.uid_next = Uid(uid.0 + 1);
            mb.highest_modseq = modseq;
            let rec = MessageRecord {
                mailbox: dest,
                uid,
                file,
                modseq,
                createseq: modseq,
                save_date: now,
                ..src.clone()
            };
            count_in(&mut mb.counts, &rec);
            added.push(AddedMessage {
                uid,
                flags: rec.flags.clone(),
                modseq,
                size: rec.size,
            });
            pairs.push((src.uid, uid));
            if !remove {
                self.pending.link.push((src.file, file));
            }
            self.put_message(rec);
        }
        let mb = &self.mailboxes[&dest];
        let result = CopyResult {
            uid_validity: mb.uid_validity,
            pairs,
        };
        if !added.is_empty() {
            self.pending.mailboxes.insert(dest);
            self.pending.changes.push(Change::MessagesAdded {
                mailbox: dest,
                name: mb.name.clone(),
                uid_validity: mb.uid_validity,
                messages: added,
                counts: mb.counts,
            });
        }
        if remove {
            self.remove_all(from, &sources, false)?;
        }
        Ok(result)
    }

    fn create_mailbox(
        &mut self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxId, AccountError> {
        let name = validate_name(name)?;
        if self.mailbox_by_name(&name).is_ok() {
            return Err(AccountError::AlreadyExists(name));
        }
        let id = self.create_with_superiors(&name)?;
        if let Some(su) = special_use {
            self.mailbox_mut(id)?.special_use = Some(su);
        }
        Ok(id)
    }

    /// Creates `name` and, RFC 9051 6.3.4, any superior name that is
    /// missing; checks the mailbox budget for all of them first.
    fn create_with_superiors(&mut self, name: &str) -> Result<MailboxId, AccountError> {
        let missing: Vec<String> = name
            .match_indices(MAILBOX_DELIMITER)
            .map(|(i, _)| name[..i].to_string())
            .chain(std::iter::once(name.to_string()))
            .filter(|n| self.mailbox_by_name(n).is_err())
            .collect();
        if self.mailboxes.len() + missing.len() > MAX_MAILBOXES {
            return Err(AccountError::Cannot(format!(
                "an account may have at most {MAX_MAILBOXES} mailboxes"
            )));
        }
        let mut id = None;
        for n in missing {
            id = Some(self.create_one(n)?);
        }
        id.map_or_else(|| self.mailbox_by_name(name), Ok)
    }

    fn create_one(&mut self, name: String) -> Result<MailboxId, AccountError> {
        if self.mailboxes.len() >= MAX_MAILBOXES {
            return Err(AccountError::Cannot(format!(
                "an account may have at most {MAX_MAILBOXES} mailboxes"
            )));
        }
        let id = MailboxId(self.record.next_mailbox_id);
        self.record.next_mailbox_id += 1;
        let validity = UidValidity(self.record.next_uid_validity);
        self.record.next_uid_validity += 1;
        let modseq = self.next_modseq();
        self.mailboxes.insert(
            id,
            MailboxRecord {
                account: self.record.id,
                id,
                name: name.clone(),
                uid_validity: validity,
                uid_next: Uid(1),
                special_use: None,
                subscribed: true,
                highest_modseq: modseq,
                counts: MailboxCounts::default(),
                tombstones: 0,
            },
        );
        self.pending.mailboxes.insert(id);
        self.pending
            .changes
            .push(Change::MailboxAdded { mailbox: id, name });
        Ok(id)
    }

    fn rename_mailbox(&mut self, from: &str, to: &str) -> Result<(), AccountError> {
        let id = self.mailbox_by_name(from)?;
        let old = self.mailboxes[&id].name.clone();
        let to = validate_name(to)?;
        if old == "INBOX" {
            return self.rename_inbox(id, &to);
        }
        if self.mailbox_by_name(&to).is_ok() {
            return Err(AccountError::AlreadyExists(to));
        }
        if to.starts_with(&format!("{old}{MAILBOX_DELIMITER}")) {
            return Err(AccountError::Cannot(format!(
                "{old} cannot be moved below itself"
            )));
        }
        // RFC 9051 6.3.6: inferior hierarchical names are renamed too.
        let child_prefix = format!("{old}{MAILBOX_DELIMITER}");
        let renamed: Vec<(MailboxId, String)> = self
            .mailboxes
            .values()
            .filter(|m| m.id == id || m.name.starts_with(&child_prefix))
            .map(|m| (m.id, format!("{to}{}", &m.name[old.len()..])))
            .collect();
        if let Some((_, taken)) = renamed
            .iter()
            .find(|(_, n)| self.mailbox_by_name(n).is_ok())
        {
            return Err(AccountError::AlreadyExists(taken.clone()));
        }
        if let Some((parent, _)) = to.rsplit_once(MAILBOX_DELIMITER) {
            if self.mailbox_by_name(parent).is_err() {
                self.create_with_superiors(parent)?;
            }
        }
        for (mid, new_name) in renamed {
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(mid)?;
            let old_name = std::mem::replace(&mut mb.name, new_name.clone());
            mb.highest_modseq = modseq;
            self.pending.mailboxes.insert(mid);
            self.pending.changes.push(Change::MailboxRenamed {
                mailbox: mid,
                old_name,
                name: new_name,
            });
        }
        Ok(())
    }

    /// RFC 9051 6.3.6: renaming INBOX moves its messages into a new
    /// mailbox of that name and leaves INBOX empty; INBOX's inferiors stay.
    fn rename_inbox(&mut self, inbox: MailboxId, to: &str) -> Result<(), AccountError> {
        if self.mailbox_by_name(to).is_ok() {
            return Err(AccountError::AlreadyExists(to.to_string()));
        }
        let uids: Vec<Uid> = self.messages(inbox)?.iter().map(|m| m.uid).collect();
        self.create_with_superiors(to)?;
        self.copy(inbox, &uids, to, true)?;
        Ok(())
    }

    async fn delete_mailbox(&mut self, name: &str) -> Result<(), AccountError> {
        let id = self.mailbox_by_name(name)?;
        let mb = self.mailboxes[&id].clone();
        if mb.name == "INBOX" {
            return Err(AccountError::Cannot("INBOX cannot be deleted".into()));
        }
        // RFC 9051 6.3.4 lets a server keep inferiors of a deleted name;
        // roost refuses instead, so no mailbox is ever left without its
        // superior (LIST would then have to invent one).
        let prefix = format!("{}{MAILBOX_DELIMITER}", mb.name);
        if self.mailboxes.values().any(|m| m.name.starts_with(&prefix)) {
            return Err(AccountError::Cannot(format!(
                "{} has mailboxes below it; delete those first",
                mb.name
            )));
        }
        for rec in self.messages(id)? {
            self.pending.messages.insert((id, rec.uid), None);
            self.pending
                .deletes
                .push(RecordKey::Message(rec.account, id, rec.uid));
            self.pending.remove.push(rec.file);
        }
        // Copies into it earlier in this batch are not in `messages` if they
        // were expunged again; their records are dropped at flush.
        for t in self
            .store
            .tombstones(self.record.id, id)
            .map_err(store_err)?
        {
            self.pending
                .deletes
                .push(RecordKey::Tombstone(t.account, t.mailbox, t.uid));
        }
        self.next_modseq();
        self.mailboxes.remove(&id);
        self.pending.mailboxes.remove(&id);
        self.pending.deleted_mailboxes.push(id);
        self.indexes.remove(&id);
        if let Some(actor) = self.open.remove(&id) {
            actor.stop(Some(format!("mailbox {} was deleted", mb.name)));
        }
        self.pending.changes.push(Change::MailboxRemoved {
            mailbox: id,
            name: mb.name,
        });
        Ok(())
    }

    fn set_subscribed(&mut self, name: &str, subscribed: bool) -> Result<(), AccountError> {
        let id = self.mailbox_by_name(name)?;
        self.mailbox_mut(id)?.subscribed = subscribed;
        self.pending.mailboxes.insert(id);
        Ok(())
    }

    /// The mailbox's live actor, started as this actor's child if needed.
    async fn mailbox_actor(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        id: MailboxId,
    ) -> Result<ActorRef<MailboxMsg>, AccountError> {
        if let Some(a) = self.open.get(&id) {
            return Ok(a.clone());
        }
        let actor_name = format!("mailbox:{}/{}", self.record.name, id);
        let index = MailboxIndex::loading();
        let args = MailboxArgs {
            store: self.store.clone(),
            account: self.record.id,
            mailbox: id,
            index: index.clone(),
        };
        let (actor, _) = Actor::spawn_linked(
            Some(actor_name.clone()),
            MailboxActor,
            args,
            myself.get_cell(),
        )
        .await
        .map_err(|e| AccountError::Store(format!("cannot open mailbox: {e}")))?;
        self.registry.register(
            &actor.get_cell(),
            ActorKind::Mailbox,
            actor_name,
            Some(&myself.get_cell()),
            0,
        );
        self.open.insert(id, actor.clone());
        self.indexes.insert(id, index);
        Ok(actor)
    }

    async fn close_mailbox(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        mailbox: MailboxId,
        subscriber: u64,
    ) {
        let Some(actor) = self.open.get(&mailbox).cloned() else {
            return;
        };
        // The last subscriber left: the actor lingers, then goes unless
        // someone subscribed meanwhile.
        if let Ok(0) = ractor::call!(actor, MailboxMsg::Unsubscribe, subscriber) {
            let (me, id, linger) = (myself.clone(), actor.get_id(), self.mailbox_linger);
            tokio::spawn(async move {
                tokio::time::sleep(linger).await;
                let _ = me.cast(AccountMsg::MailboxIdle { mailbox, actor: id });
            });
        }
    }

    /// Stops a lingering mailbox actor that still has no subscriber; asking
    /// it here, in the account's own order, means no open can race the stop.
    async fn stop_idle_mailbox(&mut self, mailbox: MailboxId, id: ractor::ActorId) {
        let Some(actor) = self.open.get(&mailbox).cloned() else {
            return;
        };
        if actor.get_id() != id {
            return;
        }
        // Subscriber ids start at 1: unsubscribing 0 just counts.
        if let Ok(0) = ractor::call!(actor, MailboxMsg::Unsubscribe, 0) {
            self.open.remove(&mailbox);
            self.indexes.remove(&mailbox);
            actor.stop(None);
            let _ = actor
                .get_cell()
                .wait(Some(std::time::Duration::from_secs(5)))
                .await;
        }
    }

    /// RFC 5256 and JWZ-style threading by Message-ID, In-Reply-To and
    /// References, falling back on the base subject of replies.
    fn match_thread(&mut self, keys: &ThreadKeys, file: FileId) -> ThreadMatch {
        let mut refs: Vec<&String> = keys.references.iter().collect();
        for id in &keys.in_reply_to {
            if !refs.contains(&id) {
                refs.push(id);
            }
        }
        // Nearest reference first: the first one found is the parent.
        let parents_found: Vec<ThreadRef> = refs
            .iter()
            .rev()
            .filter_map(|id| self.thread_by_message_id(id))
            .collect();
        let parents: Vec<FileId> = parents_found.iter().map(|r| r.file).collect();
        let mut found = parents_found.first().copied();
        let mut missing_link = refs
            .last()
            .is_some_and(|id| self.thread_by_message_id(id).is_none());
        if found.is_none() && keys.is_reply_or_forward && !keys.base_subject.is_empty() {
            found = self.thread_by_subject(&keys.base_subject);
            missing_link = found.is_some() || missing_link;
        }
        let m = match found {
            Some(r) => ThreadMatch {
                thread: r.thread,
                parents,
                missing_link,
                muted: r.muted,
                collapsed: r.collapsed,
            },
            None => ThreadMatch {
                thread: ThreadId(file.0),
                parents: Vec::new(),
                missing_link,
                muted: false,
                collapsed: false,
            },
        };
        let r = ThreadRef {
            thread: m.thread,
            file,
            muted: m.muted,
            collapsed: m.collapsed,
        };
        let account = self.record.id;
        if let Some(id) = &keys.message_id {
            self.pending.by_message_id.insert(id.clone(), r);
            self.pending.puts.push(Record::ThreadByMessageId {
                account,
                message_id: id.clone(),
                r,
            });
        }
        if !keys.base_subject.is_empty() {
            self.pending.by_subject.insert(keys.base_subject.clone(), r);
            self.pending.puts.push(Record::ThreadBySubject {
                account,
                base_subject: keys.base_subject.clone(),
                r,
            });
        }
        m
    }

    fn thread_by_message_id(&self, id: &str) -> Option<ThreadRef> {
        if let Some(r) = self.pending.by_message_id.get(id) {
            return Some(*r);
        }
        self.store
            .thread_by_message_id(self.record.id, id)
            .ok()
            .flatten()
    }

    fn thread_by_subject(&self, subject: &str) -> Option<ThreadRef> {
        if let Some(r) = self.pending.by_subject.get(subject) {
            return Some(*r);
        }
        self.store
            .thread_by_subject(self.record.id, subject)
            .ok()
            .flatten()
    }
}

struct ThreadMatch {
    thread: ThreadId,
    parents: Vec<FileId>,
    missing_link: bool,
    muted: bool,
    collapsed: bool,
}

fn store_err(e: roost_store::StoreError) -> AccountError {
    AccountError::Store(e.to_string())
}

/// `INBOX` is case-insensitive (RFC 9051 5.1); other names are kept as given.
pub fn normalize_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    }
}

fn validate_name(name: &str) -> Result<String, AccountError> {
    let name = normalize_name(name.trim_end_matches(MAILBOX_DELIMITER));
    if name.is_empty() {
        return Err(AccountError::Cannot(
            "a mailbox name cannot be empty".into(),
        ));
    }
    if name.len() > MAX_MAILBOX_NAME {
        return Err(AccountError::Cannot(format!(
            "a mailbox name may be at most {MAX_MAILBOX_NAME} bytes"
        )));
    }
    if name.chars().any(|c| c.is_control() || c == '*' || c == '%')
        || name.starts_with(MAILBOX_DELIMITER)
        || name.contains("//")
    {
        return Err(AccountError::Cannot(format!(
            "{name:?} is not a valid mailbox name"
        )));
    }
    Ok(name)
}

fn apply_flags(old: &Flags, action: FlagAction, flags: &Flags) -> Flags {
    match action {
        FlagAction::Replace => flags.clone(),
        FlagAction::Add => {
            let mut f = old.clone();
            for flag in flags.iter() {
                f.insert(flag.clone());
            }
            f
        }
        FlagAction::Remove => {
            let mut f = old.clone();
            for flag in flags.iter() {
                f.remove(flag);
            }
            f
        }
    }
}

/// How many tombstones to prune from a mailbox that keeps `count`.
fn tombstones_to_prune(count: u32) -> Option<usize> {
    (count > MAX_TOMBSTONES).then(|| (count - KEEP_TOMBSTONES) as usize)
}

fn count_in(c: &mut MailboxCounts, rec: &MessageRecord) {
    c.total += 1;
    c.size += rec.size;
    if !rec.flags.contains(&Flag::Seen) {
        c.unseen += 1;
    }
    if rec.flags.contains(&Flag::Deleted) {
        c.deleted += 1;
    }
}

fn count_out(c: &mut MailboxCounts, rec: &MessageRecord) {
    c.total = c.total.saturating_sub(1);
    c.size = c.size.saturating_sub(rec.size);
    if !rec.flags.contains(&Flag::Seen) {
        c.unseen = c.unseen.saturating_sub(1);
    }
    if rec.flags.contains(&Flag::Deleted) {
        c.deleted = c.deleted.saturating_sub(1);
    }
}

/// How the accounts supervisor starts account actors. It also keeps each
/// account's commit lock for the life of the process, so every incarnation
/// of an account's actor shares one, even after the accounts supervisor was
/// itself restarted.
#[derive(Clone)]
pub struct AccountSpecs {
    store: Store,
    registry: Registry,
    hub: EventHub,
    locks: Arc<std::sync::Mutex<HashMap<String, CommitLock>>>,
}

impl AccountSpecs {
    pub fn new(store: Store, registry: Registry, hub: EventHub) -> AccountSpecs {
        AccountSpecs {
            store,
            registry,
            hub,
            locks: Arc::default(),
        }
    }

    /// The permanent child spec for account `name` (`account:<name>`).
    pub fn spec(&self, name: &str) -> ChildSpec {
        let commit_lock = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        let (name, this) = (name.to_string(), self.clone());
        ChildSpec::linked(
            actor_name(&name),
            ActorKind::Account,
            Restart::Permanent,
            move || {
                (
                    AccountActor,
                    AccountArgs {
                        name: name.clone(),
                        store: this.store.clone(),
                        hub: this.hub.clone(),
                        registry: this.registry.clone(),
                        commit_lock: commit_lock.clone(),
                        mailbox_linger: MAILBOX_LINGER,
                    },
                )
            },
        )
    }

    /// One spec per account in the store, for a (re)start of the accounts
    /// supervisor.
    pub fn all(&self) -> Result<Vec<ChildSpec>, roost_store::StoreError> {
        Ok(self
            .store
            .accounts()?
            .iter()
            .map(|a| self.spec(&a.name))
            .collect())
    }
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;

#[cfg(test)]
mod prune_tests {
    use super::*;

    #[test]
    fn tombstones_are_pruned_past_the_limit_down_to_the_keep() {
        assert_eq!(tombstones_to_prune(MAX_TOMBSTONES), None);
        assert_eq!(
            tombstones_to_prune(MAX_TOMBSTONES + 1),
            Some((MAX_TOMBSTONES + 1 - KEEP_TOMBSTONES) as usize)
        );
    }
}
