//! Change events: what every mutation of an account tells its watchers.
//!
//! An event carries what a client needs to update its view (UIDs, flags,
//! modseqs, mailbox counts, renames), so IMAP IDLE sessions, webmail SSE
//! streams and the admin event stream never need an extra store read. The
//! account actor emits events only after the change is durable.

use roost_protocols::imap::types::{Flags, ModSeq, Uid, UidValidity};
use roost_store::{MailboxCounts, MailboxId};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many events a slow hub subscriber may fall behind before it is told
/// that it lagged (and should resynchronise).
pub const HUB_CAPACITY: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct ChangeEvent {
    pub account: String,
    /// The account's modseq after this change.
    pub modseq: ModSeq,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageState {
    pub uid: Uid,
    pub flags: Flags,
    pub modseq: ModSeq,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddedMessage {
    pub uid: Uid,
    pub flags: Flags,
    pub modseq: ModSeq,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    MessagesAdded {
        mailbox: MailboxId,
        name: String,
        uid_validity: UidValidity,
        messages: Vec<AddedMessage>,
        counts: MailboxCounts,
    },
    MessagesRemoved {
        mailbox: MailboxId,
        name: String,
        uids: Vec<Uid>,
        /// The mailbox's highest modseq after the removal (RFC 7162: an
        /// expunge is a change too).
        modseq: ModSeq,
        counts: MailboxCounts,
    },
    FlagsChanged {
        mailbox: MailboxId,
        name: String,
        messages: Vec<MessageState>,
        counts: MailboxCounts,
    },
    MailboxAdded {
        mailbox: MailboxId,
        name: String,
    },
    MailboxRenamed {
        mailbox: MailboxId,
        old_name: String,
        name: String,
    },
    MailboxRemoved {
        mailbox: MailboxId,
        name: String,
    },
    /// SUBSCRIBE or UNSUBSCRIBE (RFC 5465 5.4 SubscriptionChange).
    SubscriptionChanged {
        mailbox: MailboxId,
        name: String,
        subscribed: bool,
    },
}

impl Change {
    /// The mailbox this change is about.
    pub fn mailbox(&self) -> MailboxId {
        match self {
            Change::MessagesAdded { mailbox, .. }
            | Change::MessagesRemoved { mailbox, .. }
            | Change::FlagsChanged { mailbox, .. }
            | Change::MailboxAdded { mailbox, .. }
            | Change::MailboxRenamed { mailbox, .. }
            | Change::MailboxRemoved { mailbox, .. }
            | Change::SubscriptionChanged { mailbox, .. } => *mailbox,
        }
    }
}

/// The process-wide fan-out of change events to SSE streams, the admin
/// event stream and IMAP sessions under NOTIFY. Sessions get their
/// selected mailbox's events from its mailbox actor.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<ChangeEvent>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    pub fn new() -> EventHub {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        EventHub { tx }
    }

    pub fn publish(&self, event: Arc<ChangeEvent>) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.tx.subscribe()
    }
}
