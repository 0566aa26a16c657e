//! NOTIFY (RFC 5465): a session hears about mailboxes other than the
//! selected one. NOTIFY SET subscribes the session to the server's change
//! events (filtered to its account by a small task that forwards them to
//! the session actor); each event a group asks for becomes a STATUS
//! (message events) or LIST (names, subscriptions) response, written at
//! once when no command is under way, or held (at most
//! [`MAX_HELD_EVENTS`]) until the command in progress ends.
//!
//! The selected mailbox keeps its own updates (EXISTS, EXPUNGE, FETCH),
//! written where RFC 9051 7.5.2 allows: a SELECTED or SELECTED-DELAYED
//! group must ask for MessageNew and MessageExpunge, which is what roost
//! always reports for it.

use super::{Done, ImapMsg, ImapState};
use crate::account::MAILBOX_DELIMITER;
use crate::events::{Change, ChangeEvent};
use crate::task::{blocking, TaskGuard};
use roost_protocols::imap::command::StatusItem;
use roost_protocols::imap::notify::{check_group, Event, EventGroup, Filter, NotifyCommand};
use roost_protocols::imap::response::{self, Code, Status};
use roost_store::MailboxRecord;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Events held while a command is under way; one more turns NOTIFY off
/// with NOTIFICATIONOVERFLOW (RFC 5465 5.8).
pub const MAX_HELD_EVENTS: usize = 1000;

/// The events roost reports (RFC 5465 3: BADEVENT lists them).
const SUPPORTED: &str = "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange";

/// A session's NOTIFY SET.
pub(super) struct Notify {
    /// The groups about mailboxes other than the selected one, names in
    /// roost's form.
    groups: Vec<EventGroup>,
    held: Vec<Arc<ChangeEvent>>,
    /// Events forwarded to the session and not yet taken: the forwarding
    /// task stops with an overflow past [`MAX_HELD_EVENTS`], so a session
    /// that does not keep up (a client that stopped reading) never piles
    /// them up in its actor's mailbox.
    in_flight: Arc<AtomicUsize>,
    _forward: TaskGuard,
}

/// Which kind of event a change is.
fn kind(change: &Change) -> Event {
    match change {
        Change::MessagesAdded { .. } => Event::MessageNew(Vec::new()),
        Change::MessagesRemoved { .. } => Event::MessageExpunge,
        Change::FlagsChanged { .. } => Event::FlagChange,
        Change::MailboxAdded { .. }
        | Change::MailboxRenamed { .. }
        | Change::MailboxRemoved { .. } => Event::MailboxName,
        Change::SubscriptionChanged { .. } => Event::SubscriptionChange,
    }
}

fn same_kind(a: &Event, b: &Event) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Whether `filter` covers mailbox `name` (RFC 5465 6).
fn covers(filter: &Filter, name: &str, subscribed: bool) -> bool {
    let under = |m: &String| {
        name == m
            || name
                .strip_prefix(m.as_str())
                .is_some_and(|r| r.starts_with(MAILBOX_DELIMITER))
    };
    match filter {
        Filter::Selected | Filter::SelectedDelayed => false,
        Filter::Inboxes => name == "INBOX",
        Filter::Personal => true,
        Filter::Subscribed => subscribed,
        Filter::Subtree(names) => names.iter().any(under),
        Filter::Mailboxes(names) => names.iter().any(|m| m == name),
    }
}

impl Notify {
    /// The first group covering the mailbox decides (RFC 5465 6: a
    /// mailbox is in one group), then whether it asks for `event`.
    fn wants(&self, name: &str, subscribed: bool, event: &Event) -> bool {
        self.groups
            .iter()
            .find(|g| covers(&g.filter, name, subscribed))
            .is_some_and(|g| g.events.iter().any(|e| same_kind(e, event)))
    }
}

impl ImapState {
    /// RFC 5465 3: NOTIFY SET and NOTIFY NONE.
    pub(super) async fn notify(&mut self, cmd: NotifyCommand) -> Done {
        let (status, groups) = match cmd {
            NotifyCommand::None => {
                self.notify = None;
                return Done::ok("NOTIFY completed");
            }
            NotifyCommand::Set { status, groups } => (status, groups),
        };
        let badevent = |why: &str| {
            Done::no_code(
                Code::Other(format!("BADEVENT ({SUPPORTED})")),
                why.to_string(),
            )
        };
        let mut kept = Vec::new();
        for mut g in groups {
            if let Err(e) = check_group(&g) {
                return Done::bad(e);
            }
            for e in &g.events {
                let supported = match e {
                    Event::MessageNew(atts) => atts.is_empty(),
                    Event::MessageExpunge
                    | Event::FlagChange
                    | Event::MailboxName
                    | Event::SubscriptionChange => true,
                    _ => false,
                };
                if !supported {
                    return badevent(&format!("{} is not supported", e.name()));
                }
            }
            if g.filter.is_selected() {
                if !g.events.iter().any(|e| matches!(e, Event::MessageNew(_))) {
                    return badevent("The selected mailbox's changes are always reported");
                }
                continue;
            }
            let names = match &mut g.filter {
                Filter::Subtree(n) | Filter::Mailboxes(n) => Some(n),
                _ => None,
            };
            if let Some(names) = names {
                for n in names.iter_mut() {
                    match self.mailbox_in(n) {
                        Ok(m) => *n = m,
                        Err(e) => return Done::bad(e),
                    }
                }
            }
            kept.push(g);
        }
        let Some((account, _)) = self.account() else {
            return Done::no("Not logged in");
        };
        let account = account.to_string();
        let mut rx = self.services.hub.subscribe();
        let me = self.myself.clone();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counted = in_flight.clone();
        let forward = TaskGuard::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.account == account => {
                        if counted.fetch_add(1, Ordering::AcqRel) >= MAX_HELD_EVENTS {
                            let _ = me.cast(ImapMsg::AccountLagged);
                            return;
                        }
                        if me.cast(ImapMsg::Account(ev)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        let _ = me.cast(ImapMsg::AccountLagged);
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        self.notify = Some(Notify {
            groups: kept,
            held: Vec::new(),
            in_flight,
            _forward: forward,
        });
        if status {
            // RFC 5465 3: STATUS now for every watched mailbox.
            let records = self.mailbox_records().await.unwrap_or_default();
            let selected = self.selected.as_ref().map(|s| s.id);
            let message_event = Event::MessageNew(Vec::new());
            for r in records {
                let watched = self
                    .notify
                    .as_ref()
                    .is_some_and(|n| n.wants(&r.name, r.subscribed, &message_event));
                if watched && Some(r.id) != selected {
                    self.write_notify_status(&r).await;
                }
            }
        }
        Done::ok("NOTIFY completed")
    }

    /// A change in the account: written now, or held while a command
    /// streams.
    pub(super) async fn account_event(&mut self, ev: Arc<ChangeEvent>) {
        let busy = self.append.is_some() || self.authenticating.is_some();
        let Some(n) = &mut self.notify else {
            return;
        };
        // Saturating: an event sent under an earlier NOTIFY SET may still
        // arrive after a new one started counting.
        let _ = n
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(1))
            });
        if busy || !n.held.is_empty() {
            if n.held.len() == MAX_HELD_EVENTS {
                return self.notify_overflow();
            }
            n.held.push(ev);
            if busy {
                return;
            }
        } else {
            return self.write_event(&ev).await;
        }
        self.write_held_events().await;
    }

    /// Events held during a command, once it is over.
    pub(super) async fn write_held_events(&mut self) {
        if self.append.is_some() || self.authenticating.is_some() {
            return;
        }
        let held = match &mut self.notify {
            Some(n) => std::mem::take(&mut n.held),
            None => return,
        };
        for ev in held {
            self.write_event(&ev).await;
        }
    }

    /// RFC 5465 5.8: events were lost; NOTIFY is off until set again.
    pub(super) fn notify_overflow(&mut self) {
        if self.notify.take().is_some() {
            response::untagged_status(
                &mut self.out,
                Status::Ok,
                Some(Code::Other("NOTIFICATIONOVERFLOW".into())),
                "Too many notifications; NOTIFY is off",
            );
        }
    }

    async fn write_event(&mut self, ev: &ChangeEvent) {
        let event = kind(&ev.change);
        let selected = self.selected.as_ref().map(|s| s.id);
        let delim = Some(MAILBOX_DELIMITER);
        match &ev.change {
            Change::MessagesAdded { mailbox, .. }
            | Change::MessagesRemoved { mailbox, .. }
            | Change::FlagsChanged { mailbox, .. } => {
                // The selected mailbox has its own updates.
                if Some(*mailbox) == selected {
                    return;
                }
                let Some(rec) = self.mailbox_record(*mailbox).await else {
                    return;
                };
                if self.wants(&rec.name, rec.subscribed, &event) {
                    self.write_notify_status(&rec).await;
                }
            }
            Change::MailboxAdded { name, .. } => {
                if self.wants(name, false, &event) {
                    let shown = self.mailbox_out(name);
                    response::list(&mut self.out, &[], delim, &shown);
                }
            }
            Change::MailboxRenamed { name, old_name, .. } => {
                if self.wants(name, false, &event) || self.wants(old_name, false, &event) {
                    let (shown, old) = (self.mailbox_out(name), self.mailbox_out(old_name));
                    response::list_renamed(&mut self.out, delim, &shown, &old);
                }
            }
            Change::MailboxRemoved { name, .. } => {
                if self.wants(name, false, &event) {
                    let shown = self.mailbox_out(name);
                    response::list(&mut self.out, &["\\NonExistent"], delim, &shown);
                }
            }
            Change::SubscriptionChanged {
                name, subscribed, ..
            } => {
                if self.wants(name, true, &event) || self.wants(name, false, &event) {
                    let shown = self.mailbox_out(name);
                    let attrs: &[&str] = if *subscribed { &["\\Subscribed"] } else { &[] };
                    response::list(&mut self.out, attrs, delim, &shown);
                }
            }
        }
    }

    fn wants(&self, name: &str, subscribed: bool, event: &Event) -> bool {
        self.notify
            .as_ref()
            .is_some_and(|n| n.wants(name, subscribed, event))
    }

    async fn mailbox_record(&self, id: roost_store::MailboxId) -> Option<MailboxRecord> {
        let (_, account) = self.account()?;
        let store = self.services.store.clone();
        blocking(move || store.mailbox(account, id))
            .await
            .ok()
            .flatten()
    }

    /// RFC 5465 5.1-5.3: a watched mailbox's STATUS.
    async fn write_notify_status(&mut self, rec: &MailboxRecord) {
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
            StatusItem::Unseen,
        ];
        if self.condstore {
            items.push(StatusItem::HighestModSeq);
        }
        let values = self.status_of(rec, &items).await;
        let shown = self.mailbox_out(&rec.name);
        response::status(&mut self.out, &shown, &values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn filters_cover_their_mailboxes() {
        let subtree = Filter::Subtree(vec!["Lists".into()]);
        assert!(covers(&subtree, "Lists", false));
        assert!(covers(&subtree, "Lists/rust/users", false));
        assert!(!covers(&subtree, "Listsx", false));
        assert!(covers(&Filter::Inboxes, "INBOX", false));
        assert!(!covers(&Filter::Inboxes, "Archive", false));
        assert!(covers(&Filter::Subscribed, "Archive", true));
        assert!(!covers(&Filter::Subscribed, "Archive", false));
        assert!(covers(&Filter::Mailboxes(vec!["A".into()]), "A", false));
        assert!(!covers(&Filter::Mailboxes(vec!["A".into()]), "A/b", false));
        assert!(!covers(&Filter::SelectedDelayed, "INBOX", false));
        // The first group covering a mailbox decides.
        let n = Notify {
            groups: vec![
                EventGroup {
                    filter: Filter::Inboxes,
                    events: vec![],
                },
                EventGroup {
                    filter: Filter::Personal,
                    events: vec![Event::MessageNew(vec![]), Event::MessageExpunge],
                },
            ],
            held: Vec::new(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            _forward: TaskGuard::spawn(async {}),
        };
        let new = Event::MessageNew(vec![]);
        assert!(!n.wants("INBOX", false, &new));
        assert!(n.wants("Archive", false, &new));
        assert!(!n.wants("Archive", false, &Event::FlagChange));
    }
}
