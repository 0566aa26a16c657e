//! The mailbox actor and the live index of one open mailbox.
//!
//! The actor exists while at least one session or web view has the mailbox
//! open, as a child of its account actor. It loads the mailbox's UIDs,
//! flags and modseqs once, off the async workers and after it has started,
//! so the account actor never waits for the load; and hands each new
//! subscriber its UIDs and the shared [`MailboxIndex`]. It never writes:
//! the account actor is the writer. For each committed change, before it
//! answers the caller, the account actor applies the change to the shared
//! index and tells every subscriber ([`Watchers::publish`]), so a session
//! reads its own changes back, and a client that acts on one session's
//! answer finds the change already queued at every other session.
//!
//! The index is one compact table per open mailbox, shared by every
//! session that has it selected: 16 bytes a message, keywords aside. A
//! session keeps only its own sequence of UIDs (as runs, see
//! `imap::view`), so a selected mailbox of 100,000 messages costs a
//! session almost nothing.

use crate::events::{Change, ChangeEvent, MessageState};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use roost_protocols::imap::types::{Flag, Flags, ModSeq, Uid};
use roost_store::{AccountId, MailboxId, MailboxRecord, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// What a subscriber hears from its mailbox actor.
#[derive(Debug, Clone)]
pub enum MailboxNotice {
    /// A change, for the subscription `subscriber`.
    Event {
        subscriber: u64,
        event: Arc<ChangeEvent>,
    },
    /// The subscription ended without the subscriber asking (account
    /// restarted, mailbox deleted, mailbox actor killed): the subscriber must
    /// reopen the mailbox or tell its client why not.
    Closed { subscriber: u64 },
}

/// One watcher of a mailbox. `notify` returns false once the watcher is
/// gone, and the mailbox actor then forgets it. When the mailbox actor lets
/// go of a subscriber in any way, even by being killed, the subscriber hears
/// `Closed`: the notice is sent when the last handle is dropped.
#[derive(Clone)]
pub struct Subscriber {
    pub id: u64,
    inner: Arc<Notifier>,
}

struct Notifier {
    id: u64,
    notify: Box<dyn Fn(MailboxNotice) -> bool + Send + Sync>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        (self.notify)(MailboxNotice::Closed {
            subscriber: self.id,
        });
    }
}

impl Subscriber {
    pub fn new(notify: impl Fn(MailboxNotice) -> bool + Send + Sync + 'static) -> Subscriber {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        Subscriber {
            id,
            inner: Arc::new(Notifier {
                id,
                notify: Box::new(notify),
            }),
        }
    }

    pub fn notify(&self, notice: MailboxNotice) -> bool {
        (self.inner.notify)(notice)
    }
}

/// The subscribers of one open mailbox, shared by its actor (which adds
/// and removes them) and the account actor (which tells them each change).
/// Owned by the two actors only, never by a session: when both let go, the
/// subscribers hear `Closed`.
#[derive(Default)]
pub struct Watchers(std::sync::Mutex<Vec<Subscriber>>);

impl Watchers {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        // Nothing is left half-done under this lock by a panic.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `sub` and takes the snapshot under one lock with
    /// [`Watchers::publish`], so every change is in the snapshot or
    /// reaches `sub` as an event, never both and never neither.
    fn join(&self, index: &Arc<MailboxIndex>, sub: Subscriber) -> Option<MailboxSnapshot> {
        let mut list = self.list();
        let (record, uids) = index.read(|ix| (ix.record.clone(), ix.uids()))?;
        list.push(sub);
        Some(MailboxSnapshot {
            record,
            uids,
            index: index.clone(),
        })
    }

    /// Removes subscriber `id` (0 removes none); answers how many remain.
    fn leave(&self, id: u64) -> usize {
        let mut list = self.list();
        list.retain(|s| s.id != id);
        list.len()
    }

    /// Applies a committed change to the index and tells every
    /// subscriber. False when every subscriber went away without saying
    /// so (a killed session): nobody watches any more.
    pub fn publish(&self, index: &MailboxIndex, event: &Arc<ChangeEvent>) -> bool {
        let mut list = self.list();
        index.apply(&event.change);
        let before = list.len();
        list.retain(|s| {
            s.notify(MailboxNotice::Event {
                subscriber: s.id,
                event: event.clone(),
            })
        });
        before == 0 || !list.is_empty()
    }
}

/// The mailbox as it stands when a subscriber joins; every event after it
/// reaches the subscriber.
#[derive(Clone)]
pub struct MailboxSnapshot {
    pub record: MailboxRecord,
    /// The UIDs, ascending.
    pub uids: Vec<Uid>,
    pub index: Arc<MailboxIndex>,
}

/// The system flags as bits of [`Entry::system`].
const SEEN: u8 = 1;
const ANSWERED: u8 = 2;
const FLAGGED: u8 = 4;
const DELETED: u8 = 8;
const DRAFT: u8 = 16;

/// One message of the index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    modseq: u64,
    uid: u32,
    system: u8,
}

/// The shared index of an open mailbox: every message's flags and modseq,
/// by UID, and the mailbox record as of the last change applied.
pub struct MailboxIndex {
    state: RwLock<IndexState>,
}

enum IndexState {
    /// Changes committed while the load runs, applied once it is done.
    Loading(Vec<Change>),
    Ready(Index),
    /// The load failed; subscribers are refused.
    Failed,
}

pub struct Index {
    pub record: MailboxRecord,
    entries: Vec<Entry>,
    keywords: HashMap<u32, Vec<Flag>>,
}

impl MailboxIndex {
    pub fn loading() -> Arc<MailboxIndex> {
        Arc::new(MailboxIndex {
            state: RwLock::new(IndexState::Loading(Vec::new())),
        })
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IndexState> {
        // A panic while holding the lock leaves data written whole entry by
        // entry: still a usable index.
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a committed change (idempotent: what the index already
    /// reflects changes nothing).
    pub fn apply(&self, change: &Change) {
        match &mut *self.write() {
            IndexState::Loading(pending) => pending.push(change.clone()),
            IndexState::Ready(index) => index.apply(change),
            IndexState::Failed => {}
        }
    }

    /// Installs what the store holds, then the changes that came meanwhile.
    fn loaded(&self, record: MailboxRecord, messages: Vec<(Uid, ModSeq, Flags)>) {
        let mut index = Index {
            record,
            entries: Vec::with_capacity(messages.len()),
            keywords: HashMap::new(),
        };
        for (uid, modseq, flags) in messages {
            index.put(uid, &flags, modseq);
        }
        let mut state = self.write();
        if let IndexState::Loading(pending) = &*state {
            for change in pending {
                index.apply(change);
            }
        }
        *state = IndexState::Ready(index);
    }

    fn failed(&self) {
        *self.write() = IndexState::Failed;
    }

    /// Runs `f` on the loaded index; `None` while loading or after a
    /// failed load.
    pub fn read<R>(&self, f: impl FnOnce(&Index) -> R) -> Option<R> {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            IndexState::Ready(index) => Some(f(index)),
            _ => None,
        }
    }
}

impl Index {
    fn position(&self, uid: Uid) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&uid.0, |e| e.uid)
    }

    /// The message's flags and modseq now.
    pub fn state(&self, uid: Uid) -> Option<MessageState> {
        let e = self.entries[self.position(uid).ok()?];
        Some(MessageState {
            uid,
            flags: self.flags_of(&e),
            modseq: ModSeq(e.modseq),
        })
    }

    pub fn uids(&self) -> Vec<Uid> {
        self.entries.iter().map(|e| Uid(e.uid)).collect()
    }

    fn flags_of(&self, e: &Entry) -> Flags {
        let mut flags = Flags::new();
        for (bit, flag) in [
            (SEEN, Flag::Seen),
            (ANSWERED, Flag::Answered),
            (FLAGGED, Flag::Flagged),
            (DELETED, Flag::Deleted),
            (DRAFT, Flag::Draft),
        ] {
            if e.system & bit != 0 {
                flags.insert(flag);
            }
        }
        if let Some(k) = self.keywords.get(&e.uid) {
            for f in k {
                flags.insert(f.clone());
            }
        }
        flags
    }

    /// Sets a message's flags and modseq, adding it if it is new.
    fn put(&mut self, uid: Uid, flags: &Flags, modseq: ModSeq) {
        let mut system = 0;
        let mut keywords = Vec::new();
        for f in flags.iter() {
            match f {
                Flag::Seen => system |= SEEN,
                Flag::Answered => system |= ANSWERED,
                Flag::Flagged => system |= FLAGGED,
                Flag::Deleted => system |= DELETED,
                Flag::Draft => system |= DRAFT,
                Flag::Keyword(_) => keywords.push(f.clone()),
            }
        }
        let entry = Entry {
            modseq: modseq.0,
            uid: uid.0,
            system,
        };
        match self.position(uid) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
        if keywords.is_empty() {
            self.keywords.remove(&uid.0);
        } else {
            self.keywords.insert(uid.0, keywords);
        }
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::MessagesAdded {
                messages, counts, ..
            } => {
                for m in messages {
                    if self.position(m.uid).is_err() {
                        self.put(m.uid, &m.flags, m.modseq);
                    }
                    self.record.uid_next = self.record.uid_next.max(Uid(m.uid.0 + 1));
                    self.record.highest_modseq = self.record.highest_modseq.max(m.modseq);
                }
                self.record.counts = *counts;
            }
            Change::MessagesRemoved {
                uids,
                modseq,
                counts,
                ..
            } => {
                self.record.highest_modseq = self.record.highest_modseq.max(*modseq);
                let gone: std::collections::HashSet<u32> = uids.iter().map(|u| u.0).collect();
                self.entries.retain(|e| !gone.contains(&e.uid));
                for u in uids {
                    self.keywords.remove(&u.0);
                }
                self.record.counts = *counts;
            }
            Change::FlagsChanged {
                messages, counts, ..
            } => {
                for m in messages {
                    if let Ok(i) = self.position(m.uid) {
                        if m.modseq.0 > self.entries[i].modseq {
                            self.put(m.uid, &m.flags, m.modseq);
                        }
                    }
                    self.record.highest_modseq = self.record.highest_modseq.max(m.modseq);
                }
                self.record.counts = *counts;
            }
            Change::MailboxRenamed { name, .. } => self.record.name = name.clone(),
            Change::MailboxAdded { .. }
            | Change::MailboxRemoved { .. }
            | Change::SubscriptionChanged { .. } => {}
        }
    }
}

pub enum MailboxMsg {
    Subscribe(Subscriber, RpcReplyPort<MailboxSnapshot>),
    /// Answers how many subscribers remain.
    Unsubscribe(u64, RpcReplyPort<usize>),
}

pub struct MailboxActor;

pub struct MailboxArgs {
    pub store: Store,
    pub account: AccountId,
    pub mailbox: MailboxId,
    /// The index this actor loads; the account actor keeps it current.
    pub index: Arc<MailboxIndex>,
    pub watchers: Arc<Watchers>,
}

pub struct MailboxState {
    store: Store,
    account: AccountId,
    mailbox: MailboxId,
    index: Arc<MailboxIndex>,
    watchers: Arc<Watchers>,
}

impl Actor for MailboxActor {
    type Msg = MailboxMsg;
    type State = MailboxState;
    type Arguments = MailboxArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<MailboxMsg>,
        args: MailboxArgs,
    ) -> Result<MailboxState, ActorProcessingErr> {
        Ok(MailboxState {
            store: args.store,
            account: args.account,
            mailbox: args.mailbox,
            index: args.index,
            watchers: args.watchers,
        })
    }

    /// The load: after start, so whoever spawned this actor does not wait
    /// for it; subscribers' requests queue until it is done.
    async fn post_start(
        &self,
        _myself: ActorRef<MailboxMsg>,
        state: &mut MailboxState,
    ) -> Result<(), ActorProcessingErr> {
        let (store, account, mailbox) = (state.store.clone(), state.account, state.mailbox);
        let loaded = tokio::task::spawn_blocking(move || {
            let record = store
                .mailbox(account, mailbox)?
                .ok_or_else(|| roost_store::StoreError::NotFound(format!("mailbox {mailbox}")))?;
            let messages = store.message_states(account, mailbox)?;
            Ok::<_, roost_store::StoreError>((record, messages))
        })
        .await;
        match loaded {
            Ok(Ok((record, messages))) => {
                state.index.loaded(record, messages);
                Ok(())
            }
            Ok(Err(e)) => {
                state.index.failed();
                Err(e.into())
            }
            Err(e) => {
                state.index.failed();
                Err(e.into())
            }
        }
    }

    async fn handle(
        &self,
        _myself: ActorRef<MailboxMsg>,
        msg: MailboxMsg,
        state: &mut MailboxState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MailboxMsg::Subscribe(sub, reply) => {
                if let Some(snapshot) = state.watchers.join(&state.index, sub) {
                    let _ = reply.send(snapshot);
                }
            }
            MailboxMsg::Unsubscribe(id, reply) => {
                let _ = reply.send(state.watchers.leave(id));
            }
        }
        Ok(())
    }
}
