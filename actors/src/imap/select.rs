//! SELECT, EXAMINE, CLOSE, UNSELECT (RFC 9051 6.3.2, 6.3.3, 6.4.1, 6.4.2)
//! and the session's view of the selected mailbox: its UIDs in sequence
//! order with their flags, kept current from the mailbox actor's events.

use super::{Done, ImapMsg, ImapState};
use crate::account::{AccountMsg, FlagAction};
use crate::directory::call_account;
use crate::events::{Change, ChangeEvent, MessageState};
use crate::mailbox::{MailboxMsg, MailboxNotice, MailboxSnapshot, Subscriber};
use ractor::ActorRef;
use roost_protocols::imap::response::{self, Code, Status};
use roost_protocols::imap::state::SessionState;
use roost_protocols::imap::types::{Flag, Flags, ModSeq, SeqNum, Uid, UidValidity};
use roost_store::MailboxId;
use std::sync::Arc;

/// The flags roost lets clients set, announced by SELECT.
const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

pub struct Selected {
    pub id: MailboxId,
    pub name: String,
    pub read_only: bool,
    pub uid_validity: UidValidity,
    /// The messages in sequence order: index + 1 is the sequence number.
    pub view: Vec<MessageState>,
    pub subscriber: u64,
    pub actor: ActorRef<MailboxMsg>,
    /// Events that arrived while they could not be written yet.
    pub pending: Vec<Arc<ChangeEvent>>,
    /// The mailbox actor went away: reopen and compare before the next write.
    pub stale: Option<String>,
}

impl Selected {
    pub fn seq_of(&self, uid: Uid) -> Option<usize> {
        self.view.binary_search_by_key(&uid, |m| m.uid).ok()
    }
}

impl ImapState {
    fn subscriber(&self) -> Subscriber {
        let me = self.myself.clone();
        Subscriber::new(move |notice| me.send_message(ImapMsg::Notice(notice)).is_ok())
    }

    pub(super) async fn select(&mut self, name: &str, read_only: bool) -> Done {
        // RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected.
        let had_selection = self.selected.is_some();
        self.unselect().await;
        if had_selection {
            response::untagged_status(
                &mut self.out,
                Status::Ok,
                Some(Code::Closed),
                "Previous mailbox closed",
            );
        }
        self.state = SessionState::Authenticated;
        let Some((account, _)) = self.account() else {
            return Done::no("Not logged in");
        };
        let account = account.to_string();
        let subscriber = self.subscriber();
        let sub_id = subscriber.id;
        let opened = call_account(&account, |reply| AccountMsg::OpenMailbox {
            name: name.to_string(),
            subscriber,
            reply,
        })
        .await;
        let opened = match opened {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return account_no(e),
            Err(e) => return Done::no_code(Code::Unavailable, e.to_string()),
        };
        let snap = opened.snapshot;
        let rec = &snap.record;
        let flags = format!("({SYSTEM_FLAGS})");
        self.out
            .extend_from_slice(format!("* FLAGS {flags}\r\n").as_bytes());
        let permanent: Vec<String> = if read_only {
            Vec::new()
        } else {
            SYSTEM_FLAGS
                .split(' ')
                .map(String::from)
                .chain(std::iter::once("\\*".to_string()))
                .collect()
        };
        response::untagged_status(
            &mut self.out,
            Status::Ok,
            Some(Code::PermanentFlags(permanent)),
            "Limited",
        );
        response::exists(&mut self.out, snap.messages.len() as u32);
        // IMAP4rev1 clients expect RECENT; roost keeps no \Recent state.
        self.out.extend_from_slice(b"* 0 RECENT\r\n");
        response::untagged_status(
            &mut self.out,
            Status::Ok,
            Some(Code::UidValidity(rec.uid_validity)),
            "UIDs valid",
        );
        response::untagged_status(
            &mut self.out,
            Status::Ok,
            Some(Code::UidNext(rec.uid_next)),
            "Predicted next UID",
        );
        let name = rec.name.clone();
        self.selected = Some(Selected {
            id: rec.id,
            name,
            read_only,
            uid_validity: rec.uid_validity,
            view: snap.messages,
            subscriber: sub_id,
            actor: opened.actor,
            pending: Vec::new(),
            stale: None,
        });
        self.state = SessionState::Selected { read_only };
        if read_only {
            Done::Tagged(Status::Ok, Some(Code::ReadOnly), "EXAMINE completed".into())
        } else {
            Done::Tagged(Status::Ok, Some(Code::ReadWrite), "SELECT completed".into())
        }
    }

    /// CLOSE (expunge silently when read-write) or UNSELECT.
    pub(super) async fn close(&mut self, expunge: bool) -> Done {
        if let (true, Some(sel), Some((account, _))) = (expunge, &self.selected, self.account()) {
            if !sel.read_only {
                let (account, mailbox) = (account.to_string(), sel.id);
                let r = call_account(&account, |reply| AccountMsg::Expunge {
                    mailbox,
                    uids: None,
                    reply,
                })
                .await;
                match r {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return account_no(e),
                    Err(e) => return Done::no_code(Code::Unavailable, e.to_string()),
                }
            }
        }
        self.unselect().await;
        self.state = SessionState::Authenticated;
        Done::ok("Mailbox closed")
    }

    /// Leaves the selected mailbox, telling its mailbox actor.
    pub(super) async fn unselect(&mut self) {
        // RFC 5182 2.1: the saved result belongs to the selected mailbox.
        self.saved_search.clear();
        let Some(sel) = self.selected.take() else {
            return;
        };
        if let Some((account, _)) = self.account() {
            if let Ok(actor) = crate::directory::account_ref(account).await {
                let _ = actor.cast(AccountMsg::CloseMailbox {
                    mailbox: sel.id,
                    subscriber: sel.subscriber,
                });
            }
        }
    }

    pub(super) async fn notice(&mut self, notice: MailboxNotice) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        match notice {
            MailboxNotice::Event(ev) => sel.pending.push(ev),
            // A subscription this selection no longer uses ended: ignore.
            MailboxNotice::Closed { subscriber } if subscriber != sel.subscriber => return,
            MailboxNotice::Closed { .. } => sel.stale = Some("the mailbox was closed".into()),
        }
        if self.idle.is_some() {
            self.sync_view().await;
        }
    }

    /// Writes the pending changes of the selected mailbox as untagged
    /// responses, reopening the mailbox first if its actor went away.
    pub(super) async fn sync_view(&mut self) {
        if self.selected.as_ref().is_some_and(|s| s.stale.is_some()) {
            self.reopen().await;
        }
        let Some(sel) = &mut self.selected else {
            return;
        };
        let events = std::mem::take(&mut sel.pending);
        for ev in events {
            apply_event(sel, &ev.change, &mut self.out);
        }
    }

    /// The mailbox actor stopped (its account restarted): subscribe again
    /// through the account's new actor and tell the client what changed
    /// meanwhile, or why the mailbox is gone.
    async fn reopen(&mut self) {
        let Some(sel) = &self.selected else {
            return;
        };
        let Some((account, _)) = self.account() else {
            return;
        };
        let (account, name, reason) = (
            account.to_string(),
            sel.name.clone(),
            sel.stale.clone().unwrap_or_default(),
        );
        let subscriber = self.subscriber();
        let sub_id = subscriber.id;
        let opened = call_account(&account, |reply| AccountMsg::OpenMailbox {
            name: name.clone(),
            subscriber,
            reply,
        })
        .await;
        let Some(sel) = &mut self.selected else {
            return;
        };
        match opened {
            Ok(Ok(o)) if o.snapshot.record.uid_validity == sel.uid_validity => {
                sel.actor = o.actor;
                sel.subscriber = sub_id;
                sel.stale = None;
                sel.pending.clear();
                resync(sel, o.snapshot, &mut self.out);
            }
            _ => {
                response::bye(
                    &mut self.out,
                    None,
                    &format!("Mailbox {name} is no longer available ({reason})"),
                );
                self.selected = None;
                self.closing = true;
            }
        }
    }

    /// Sets `\Seen` on messages a non-PEEK body fetch returns (RFC 9051
    /// 6.4.5); answers the new flags per UID.
    pub(super) async fn mark_seen(&mut self, uids: Vec<Uid>) -> Vec<MessageState> {
        let (Some(sel), Some((account, _))) = (&self.selected, self.account()) else {
            return Vec::new();
        };
        if sel.read_only || uids.is_empty() {
            return Vec::new();
        }
        let (account, mailbox) = (account.to_string(), sel.id);
        let r = call_account(&account, |reply| AccountMsg::SetFlags {
            mailbox,
            uids,
            action: FlagAction::Add,
            flags: Flags::from_iter([Flag::Seen]),
            reply,
        })
        .await;
        let changed = match r {
            Ok(Ok(changed)) => changed,
            _ => return Vec::new(),
        };
        self.update_view(&changed);
        changed
    }

    /// Records flag changes this session made itself.
    pub(super) fn update_view(&mut self, changed: &[MessageState]) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        for m in changed {
            if let Some(i) = sel.seq_of(m.uid) {
                if m.modseq > sel.view[i].modseq {
                    sel.view[i] = m.clone();
                }
            }
        }
    }
}

/// Applies one change to the view, writing what the client must hear.
/// Idempotent: a change the view already reflects writes nothing.
fn apply_event(sel: &mut Selected, change: &Change, out: &mut Vec<u8>) {
    match change {
        Change::MessagesAdded {
            mailbox, messages, ..
        } if *mailbox == sel.id => {
            let before = sel.view.len();
            let last = sel.view.last().map(|m| m.uid).unwrap_or(Uid(0));
            for m in messages.iter().filter(|m| m.uid > last) {
                sel.view.push(MessageState {
                    uid: m.uid,
                    flags: m.flags.clone(),
                    modseq: m.modseq,
                });
            }
            if sel.view.len() != before {
                response::exists(out, sel.view.len() as u32);
            }
        }
        Change::MessagesRemoved { mailbox, uids, .. } if *mailbox == sel.id => {
            remove_from_view(sel, uids, out);
        }
        Change::FlagsChanged {
            mailbox, messages, ..
        } if *mailbox == sel.id => {
            for m in messages {
                if let Some(i) = sel.seq_of(m.uid) {
                    if m.modseq > sel.view[i].modseq {
                        sel.view[i] = m.clone();
                        write_flags(out, i as u32 + 1, m.uid, &m.flags, None);
                    }
                }
            }
        }
        Change::MailboxRenamed { mailbox, name, .. } if *mailbox == sel.id => {
            sel.name = name.clone();
        }
        _ => {}
    }
}

/// Drops `uids` from the view, writing `* n EXPUNGE` for each in
/// ascending order, each number as it is once the earlier ones are gone
/// (RFC 9051 7.5.1). The view is compacted once, so expunging many
/// messages costs O(view + removed × log view), not O(view × removed).
pub(super) fn remove_from_view(sel: &mut Selected, uids: &[Uid], out: &mut Vec<u8>) {
    let mut gone: Vec<usize> = uids.iter().filter_map(|u| sel.seq_of(*u)).collect();
    if gone.is_empty() {
        return;
    }
    gone.sort_unstable();
    gone.dedup();
    for (already, &i) in gone.iter().enumerate() {
        response::expunge(out, SeqNum((i - already) as u32 + 1));
    }
    let mut next = 0;
    let mut index = 0;
    sel.view.retain(|_| {
        let drop = gone.get(next) == Some(&index);
        if drop {
            next += 1;
        }
        index += 1;
        !drop
    });
}

/// Brings the view in line with a fresh snapshot: EXPUNGE for what went,
/// FETCH FLAGS for what changed, EXISTS for what came.
fn resync(sel: &mut Selected, snap: MailboxSnapshot, out: &mut Vec<u8>) {
    let fresh: std::collections::HashMap<Uid, &MessageState> =
        snap.messages.iter().map(|m| (m.uid, m)).collect();
    let gone: Vec<Uid> = sel
        .view
        .iter()
        .map(|m| m.uid)
        .filter(|u| !fresh.contains_key(u))
        .collect();
    remove_from_view(sel, &gone, out);
    for (i, m) in sel.view.iter_mut().enumerate() {
        if let Some(f) = fresh.get(&m.uid) {
            if f.modseq != m.modseq {
                *m = (*f).clone();
                write_flags(out, i as u32 + 1, m.uid, &m.flags, None);
            }
        }
    }
    let last = sel.view.last().map(|m| m.uid).unwrap_or(Uid(0));
    let before = sel.view.len();
    sel.view
        .extend(snap.messages.into_iter().filter(|m| m.uid > last));
    if sel.view.len() != before {
        response::exists(out, sel.view.len() as u32);
    }
}

/// `* seq FETCH (UID u FLAGS (...))`, with MODSEQ when asked.
pub(super) fn write_flags(
    out: &mut Vec<u8>,
    seq: u32,
    uid: Uid,
    flags: &Flags,
    modseq: Option<ModSeq>,
) {
    let mut line = format!("* {seq} FETCH (UID {uid} FLAGS {flags}");
    if let Some(m) = modseq {
        line.push_str(&format!(" MODSEQ ({m})"));
    }
    line.push_str(")\r\n");
    out.extend_from_slice(line.as_bytes());
}

/// The tagged NO for an account actor's refusal.
pub(super) fn account_no(e: crate::account::AccountError) -> Done {
    use crate::account::AccountError as E;
    match e {
        E::NoMailbox(_) => Done::no_code(Code::Nonexistent, e.to_string()),
        E::AlreadyExists(_) => Done::no_code(Code::AlreadyExists, e.to_string()),
        E::OverQuota { .. } => Done::no_code(Code::OverQuota, e.to_string()),
        E::Cannot(_) => Done::no_code(Code::Cannot, e.to_string()),
        E::Store(_) => Done::no_code(Code::ServerBug, e.to_string()),
    }
}
