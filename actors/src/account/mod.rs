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

mod mailboxes;
mod messages;
mod metadata;

pub use metadata::{MAX_METADATA_ENTRIES, MAX_METADATA_VALUE};
mod threads;

pub use mailboxes::normalize_name;

use crate::events::{AddedMessage, Change, ChangeEvent, EventHub, MessageState};
use crate::mailbox::{
    MailboxActor, MailboxArgs, MailboxIndex, MailboxMsg, MailboxSnapshot, Subscriber, Watchers,
};
use crate::time::now_unix;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use roost_protocols::imap::types::{Flag, Flags, ModSeq, Uid, UidValidity};
use roost_protocols::message::summary::Summary;
use roost_protocols::message::thread::ThreadKeys;
use roost_store::{
    AccountRecord, Commit, FileId, MailboxCounts, MailboxId, MailboxRecord, MessageRecord,
    PasswordSecrets, Record, RecordKey, SpecialUse, StagedFile, Store, ThreadId, ThreadRef,
    TlsPublicKey, Tombstone,
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
pub const MAX_TOMBSTONES: u32 = 1_000;
pub const KEEP_TOMBSTONES: u32 = 900;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no mailbox named {0:?}")]
    NoMailbox(String),
    #[error("mailbox {0:?} already exists")]
    AlreadyExists(String),
    #[error("over quota: {used} of {quota} bytes used, {needed} more needed")]
    OverQuota { used: u64, quota: u64, needed: u64 },
    #[error("over quota: {used} of {limit} messages stored, {needed} more needed")]
    OverMessageQuota { used: u64, limit: u64, needed: u64 },
    #[error("{0}")]
    Cannot(String),
    #[error("storage failed: {0}")]
    Store(String),
    /// The mailbox's actor was stopping as it was opened: open it again.
    #[error("the mailbox is being closed; try again")]
    Closing,
    /// RFC 5464 4.3: a METADATA value longer than this.
    #[error("a value is longer than {0} octets")]
    MetadataMaxSize(usize),
    /// RFC 5464 4.3: more METADATA entries than the account may hold.
    #[error("too many entries (at most {})", metadata::MAX_METADATA_ENTRIES)]
    MetadataTooMany,
}

/// An account's storage and message counts, and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
    pub quota_bytes: Option<u64>,
    pub quota_messages: Option<u64>,
}

/// A change to an account's TLS client keys.
#[derive(Debug, Clone)]
pub enum TlsKeyChange {
    Add(Box<TlsPublicKey>),
    /// Removes the key with this name.
    Remove(String),
}

/// A change to an account's extra addresses (the store keeps the address
/// index in step as the record commits).
pub enum AddressChange {
    /// An address checked with `Store::check_new_address`.
    Add(String),
    Remove(String),
}

/// Where a new message goes.
#[derive(Debug, Clone)]
pub enum Target {
    Inbox,
    Name(String),
    /// A delivery rule's mailbox, or INBOX when there is none by that name.
    RuleOrInbox(String),
    /// The mailbox marked \Junk (RFC 6154), or INBOX when there is none.
    Junk,
}

/// One message to add: already staged by the caller (the commit makes it
/// durable).
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
    /// Extra data kept with the message (see `MessageRecord::extra`).
    pub extra: Vec<(String, String)>,
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
    /// RFC 5464 4.3: sets (or removes, without a value) entries of a
    /// mailbox, or of the server when `mailbox` is `None`; all or none.
    SetMetadata {
        mailbox: Option<String>,
        entries: Vec<(String, Option<Vec<u8>>)>,
        reply: Reply<()>,
    },
    /// RFC 8508: adds one message and, only once it is in, expunges
    /// the message it replaces; neither happens without the other.
    Replace {
        message: Box<NewMessage>,
        mailbox: MailboxId,
        uid: Uid,
        reply: Reply<Delivered>,
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
    /// Registers or removes a TLS client key of this account.
    TlsKey {
        change: TlsKeyChange,
        reply: Reply<()>,
    },
    Address {
        change: AddressChange,
        reply: Reply<()>,
    },
    /// Disables logins with this message (`None` enables them).
    SetDisabled {
        why: Option<String>,
        reply: Reply<()>,
    },
    /// Whether queued messages go out with unique envelope senders.
    SetUniqueMailFrom {
        on: bool,
        reply: Reply<()>,
    },
    Record(RpcReplyPort<AccountRecord>),
    /// RFC 9208: what the account holds and its limits.
    Usage(Reply<Usage>),
    /// Sets the storage and message limits (`None`: none).
    SetQuota {
        bytes: Option<u64>,
        messages: Option<u64>,
        reply: Reply<()>,
    },
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
            && self.metadata.is_empty()
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
    /// METADATA entries changed but not yet committed, the last change of
    /// each kept; `None` = removed.
    metadata: BTreeMap<(MailboxId, String), Option<Vec<u8>>>,
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
    /// The shared index and the subscribers of each open mailbox, kept
    /// current and told by `flush`.
    indexes: HashMap<MailboxId, (Arc<MailboxIndex>, Arc<Watchers>)>,
    pending: Pending,
    flush_scheduled: bool,
    mailbox_linger: std::time::Duration,
    /// Every METADATA entry's mailbox and name, read when first needed.
    metadata_names: Option<BTreeSet<(MailboxId, String)>>,
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
            metadata_names: None,
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
            AccountMsg::Usage(reply) => {
                let _ = reply.send(Ok(state.usage()));
                return Ok(());
            }
            AccountMsg::CanAppend {
                mailbox,
                bytes,
                reply,
            } => {
                let r = state
                    .mailbox_by_name(&mailbox)
                    .and_then(|_| state.check_quota(bytes, 1));
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
            AccountMsg::SetMetadata {
                mailbox,
                entries,
                reply,
            } => {
                let r = state.set_metadata(mailbox.as_deref(), entries);
                state.answer(reply, r);
            }
            AccountMsg::Replace {
                message,
                mailbox,
                uid,
                reply,
            } => {
                let r = state.replace(*message, mailbox, uid);
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
            AccountMsg::TlsKey { change, reply } => {
                let keys = &mut state.record.tls_public_keys;
                let result = match change {
                    TlsKeyChange::Add(key) => {
                        if keys.iter().any(|k| k.name == key.name) {
                            Err(AccountError::Cannot(format!(
                                "the account already has a key named {:?}",
                                key.name
                            )))
                        } else if keys.iter().any(|k| k.spki == key.spki) {
                            Err(AccountError::Cannot(
                                "the account already has this key".into(),
                            ))
                        } else if keys.len() >= TlsPublicKey::MAX_PER_ACCOUNT {
                            Err(AccountError::Cannot(format!(
                                "the account has {} keys, the most it may have",
                                TlsPublicKey::MAX_PER_ACCOUNT
                            )))
                        } else {
                            keys.push(*key);
                            Ok(())
                        }
                    }
                    TlsKeyChange::Remove(name) => match keys.iter().position(|k| k.name == name) {
                        Some(i) => {
                            keys.remove(i);
                            Ok(())
                        }
                        None => Err(AccountError::Cannot(format!("no key named {name:?}"))),
                    },
                };
                if result.is_ok() {
                    state.record_changed();
                }
                state.answer(reply, result);
            }
            AccountMsg::Address { change, reply } => {
                let form = |a: &str| roost_store::canonical_address(a).unwrap_or(a.to_lowercase());
                let record = &mut state.record;
                let result = match change {
                    AddressChange::Add(addr) => {
                        if record.addresses.iter().any(|a| form(a) == form(&addr)) {
                            Err(AccountError::Cannot(format!(
                                "{addr} is already an address of the account"
                            )))
                        } else {
                            record.addresses.push(addr);
                            Ok(())
                        }
                    }
                    AddressChange::Remove(addr) => {
                        if form(&record.name) == form(&addr) {
                            Err(AccountError::Cannot(format!(
                                "{addr} is the account's primary address; delete the account instead"
                            )))
                        } else {
                            let before = record.addresses.len();
                            record.addresses.retain(|a| form(a) != form(&addr));
                            if record.addresses.len() == before {
                                Err(AccountError::Cannot(format!(
                                    "{addr} is not an address of the account"
                                )))
                            } else {
                                Ok(())
                            }
                        }
                    }
                };
                if result.is_ok() {
                    state.record_changed();
                }
                state.answer(reply, result);
            }
            AccountMsg::SetQuota {
                bytes,
                messages,
                reply,
            } => {
                state.record.quota_bytes = bytes;
                state.record.quota_messages = messages;
                state.record_changed();
                state.answer(reply, Ok(()));
            }
            AccountMsg::SetDisabled { why, reply } => {
                state.record.disabled = why;
                state.record_changed();
                state.answer(reply, Ok(()));
            }
            AccountMsg::SetUniqueMailFrom { on, reply } => {
                state.record.unique_mail_from = on;
                state.record_changed();
                state.answer(reply, Ok(()));
            }
            AccountMsg::SetPassword { secrets, reply } => {
                state.record.password = *secrets;
                state.record_changed();
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
        pending
            .puts
            .push(Record::Account(Box::new(self.record.clone())));
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
        let account = self.record.id;
        for ((mailbox, entry), value) in std::mem::take(&mut pending.metadata) {
            match value {
                Some(value) => pending.puts.push(Record::Metadata {
                    account,
                    mailbox,
                    entry,
                    value,
                }),
                None => pending
                    .deletes
                    .push(RecordKey::Metadata(account, mailbox, entry)),
            }
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
            // The shared index, so a caller reads its change back as soon
            // as it is answered, and the mailbox's subscribers, directly.
            let mailbox = event.change.mailbox();
            if let Some((index, watchers)) = self.indexes.get(&mailbox) {
                if !watchers.publish(index, &event) {
                    // Every subscriber went away without saying so: the
                    // mailbox actor goes, and the next open starts afresh.
                    if let Some(mb) = self.open.remove(&mailbox) {
                        mb.stop(None);
                    }
                    self.indexes.remove(&mailbox);
                }
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
    /// refused whole; exactly at the quota is allowed. `needed` bytes in
    /// `messages` messages.
    fn check_quota(&self, needed: u64, messages: u64) -> Result<(), AccountError> {
        let usage = self.usage();
        if let Some(quota) = self.record.quota_bytes {
            if usage.bytes.saturating_add(needed) > quota {
                return Err(AccountError::OverQuota {
                    used: usage.bytes,
                    quota,
                    needed,
                });
            }
        }
        if let Some(limit) = self.record.quota_messages {
            if usage.messages.saturating_add(messages) > limit {
                return Err(AccountError::OverMessageQuota {
                    used: usage.messages,
                    limit,
                    needed: messages,
                });
            }
        }
        Ok(())
    }

    /// The account record changed: it goes out with the next commit.
    fn record_changed(&mut self) {
        self.pending
            .puts
            .push(Record::Account(Box::new(self.record.clone())));
    }

    /// What the account holds, and its limits (RFC 9208 5.1, 5.2).
    fn usage(&self) -> Usage {
        Usage {
            bytes: self.mailboxes.values().map(|m| m.counts.size).sum(),
            messages: self
                .mailboxes
                .values()
                .map(|m| u64::from(m.counts.total))
                .sum(),
            quota_bytes: self.record.quota_bytes,
            quota_messages: self.record.quota_messages,
        }
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
}

fn store_err(e: roost_store::StoreError) -> AccountError {
    AccountError::Store(e.to_string())
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
mod tests;
