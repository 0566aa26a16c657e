//! The mailbox actor: the live index of one open mailbox.
//!
//! It exists while at least one session or web view has the mailbox open,
//! as a child of its account actor. It loads the mailbox's UIDs, flags and
//! modseqs once, keeps them current from the account's change events, hands
//! a consistent snapshot to each new subscriber and forwards every later
//! event to all of them. It never writes: the account actor is the writer.

use crate::events::{Change, ChangeEvent, MessageState};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use roost_protocols::imap::types::{Flags, ModSeq, Uid};
use roost_store::{AccountId, MailboxId, MailboxRecord, Store};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a subscriber hears from its mailbox actor.
#[derive(Debug, Clone)]
pub enum MailboxNotice {
    Event(Arc<ChangeEvent>),
    /// The subscription ended without the subscriber asking (account
    /// restarted, mailbox deleted, mailbox actor killed): the subscriber must
    /// reopen the mailbox or tell its client why not.
    Closed {
        subscriber: u64,
    },
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

/// The mailbox as it stands when a subscriber joins; every event after it
/// reaches the subscriber.
#[derive(Debug, Clone)]
pub struct MailboxSnapshot {
    pub record: MailboxRecord,
    pub messages: Vec<MessageState>,
}

pub enum MailboxMsg {
    Subscribe(Subscriber, RpcReplyPort<MailboxSnapshot>),
    /// Answers how many subscribers remain.
    Unsubscribe(u64, RpcReplyPort<usize>),
    Event(Arc<ChangeEvent>),
}

pub struct MailboxActor;

pub struct MailboxArgs {
    pub store: Store,
    pub account: AccountId,
    pub mailbox: MailboxId,
}

pub struct MailboxState {
    record: MailboxRecord,
    index: BTreeMap<Uid, (Flags, ModSeq)>,
    subscribers: Vec<Subscriber>,
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
        let (record, messages) = tokio::task::spawn_blocking(move || {
            let record = args
                .store
                .mailbox(args.account, args.mailbox)?
                .ok_or_else(|| {
                    roost_store::StoreError::NotFound(format!("mailbox {}", args.mailbox))
                })?;
            let messages = args.store.messages(args.account, args.mailbox)?;
            Ok::<_, roost_store::StoreError>((record, messages))
        })
        .await??;
        Ok(MailboxState {
            record,
            index: messages
                .into_iter()
                .map(|m| (m.uid, (m.flags, m.modseq)))
                .collect(),
            subscribers: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<MailboxMsg>,
        msg: MailboxMsg,
        state: &mut MailboxState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MailboxMsg::Subscribe(sub, reply) => {
                state.subscribers.push(sub);
                let _ = reply.send(state.snapshot());
            }
            MailboxMsg::Unsubscribe(id, reply) => {
                state.subscribers.retain(|s| s.id != id);
                let _ = reply.send(state.subscribers.len());
            }
            MailboxMsg::Event(event) => {
                state.apply(&event.change);
                state
                    .subscribers
                    .retain(|s| s.notify(MailboxNotice::Event(event.clone())));
                // Every subscriber went away without saying so (a killed
                // session): nobody watches any more.
                if state.subscribers.is_empty() {
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}

impl MailboxState {
    fn snapshot(&self) -> MailboxSnapshot {
        MailboxSnapshot {
            record: self.record.clone(),
            messages: self
                .index
                .iter()
                .map(|(uid, (flags, modseq))| MessageState {
                    uid: *uid,
                    flags: flags.clone(),
                    modseq: *modseq,
                })
                .collect(),
        }
    }

    /// Applies a change to the index. Idempotent: a change the index already
    /// reflects (older modseq, known UID) changes nothing.
    fn apply(&mut self, change: &Change) {
        match change {
            Change::MessagesAdded {
                messages, counts, ..
            } => {
                for m in messages {
                    self.index
                        .entry(m.uid)
                        .or_insert_with(|| (m.flags.clone(), m.modseq));
                    self.record.uid_next = self.record.uid_next.max(Uid(m.uid.0 + 1));
                    self.record.highest_modseq = self.record.highest_modseq.max(m.modseq);
                }
                self.record.counts = *counts;
            }
            Change::MessagesRemoved { uids, counts, .. } => {
                for uid in uids {
                    self.index.remove(uid);
                }
                self.record.counts = *counts;
            }
            Change::FlagsChanged {
                messages, counts, ..
            } => {
                for m in messages {
                    if let Some(entry) = self.index.get_mut(&m.uid) {
                        if m.modseq > entry.1 {
                            *entry = (m.flags.clone(), m.modseq);
                        }
                    }
                    self.record.highest_modseq = self.record.highest_modseq.max(m.modseq);
                }
                self.record.counts = *counts;
            }
            Change::MailboxRenamed { name, .. } => self.record.name = name.clone(),
            Change::MailboxAdded { .. } | Change::MailboxRemoved { .. } => {}
        }
    }
}
