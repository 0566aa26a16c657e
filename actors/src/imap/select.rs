//! SELECT, EXAMINE, CLOSE, UNSELECT (RFC 9051 6.3.2, 6.3.3, 6.4.1, 6.4.2)
//! and the session's view of the selected mailbox: its UIDs in sequence
//! order ([`View`]), kept current from the mailbox actor's events, with
//! flags and modseqs read from the mailbox's shared index.

use super::view::View;
use super::{Done, ImapMsg, ImapState};
use crate::account::{FlagAction, MAILBOX_DELIMITER};
use crate::client::{AccountClient, ClientError};
use crate::events::{Change, ChangeEvent, MessageState};
use crate::mailbox::{MailboxIndex, MailboxMsg, MailboxNotice, MailboxSnapshot, Subscriber};
use ractor::ActorRef;
use roost_protocols::imap::command::{QResync, SelectParams};
use roost_protocols::imap::response::{self, Code, FetchResponseItem, Status};
use roost_protocols::imap::seqset::SeqSet;
use roost_protocols::imap::state::SessionState;
use roost_protocols::imap::types::{Flag, Flags, ModSeq, SeqNum, Uid, UidValidity};
use roost_store::MailboxId;
use std::collections::HashSet;
use std::sync::Arc;

/// How often SELECT opens a mailbox whose actor is stopping as it asks.
const OPEN_ATTEMPTS: u32 = 5;

/// The flags roost lets clients set, announced by SELECT (RFC 9051 7.3.5).
const SYSTEM_FLAG_LIST: [Flag; 5] = [
    Flag::Answered,
    Flag::Flagged,
    Flag::Deleted,
    Flag::Seen,
    Flag::Draft,
];

/// The same, as PERMANENTFLAGS writes them.
const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

pub struct Selected {
    pub id: MailboxId,
    pub name: String,
    pub read_only: bool,
    pub uid_validity: UidValidity,
    /// The messages in sequence order: index + 1 is the sequence number.
    pub view: View,
    /// Flags and modseqs of the mailbox, shared with every session that
    /// has it selected.
    pub index: Arc<MailboxIndex>,
    /// Modseqs of flag changes this session made and already reported:
    /// their events are not written again.
    pub own: HashSet<u64>,
    /// The highest modseq this session has reported or been told of.
    pub known_modseq: ModSeq,
    pub subscriber: u64,
    pub actor: ActorRef<MailboxMsg>,
    /// Events that arrived while they could not be written yet.
    pub pending: Vec<Arc<ChangeEvent>>,
    /// The mailbox actor went away: reopen and compare before the next write.
    pub stale: Option<String>,
    /// The next UID as the view knows it: beyond every UID it has seen.
    pub uid_next: Uid,
    /// RFC 7162 3.1: CONDSTORE is on; flag changes carry MODSEQ.
    pub modseqs: bool,
    /// RFC 7162 3.2.10: QRESYNC is on; expunges are VANISHED, not EXPUNGE.
    pub vanished: bool,
    /// RFC 9586: UIDONLY is on; FETCH responses are UIDFETCH.
    pub uidonly: bool,
}

/// Own flag changes remembered for skipping their events; past this the
/// set is cleared (a few repeated FETCH responses, no harm).
const MAX_OWN_CHANGES: usize = 100_000;

impl Selected {
    pub fn seq_of(&self, uid: Uid) -> Option<usize> {
        self.view.seq_of(uid)
    }

    /// Flags and modseq of the message at index `i` now; `None` once it is
    /// expunged (though the view still numbers it until that is reported).
    pub fn state(&self, i: usize) -> Option<MessageState> {
        let uid = self.view.uid(i);
        self.index.read(|ix| ix.state(uid)).flatten()
    }

    /// Remembers flag changes this session reports itself.
    pub fn note_own(&mut self, changed: &[MessageState]) {
        if self.own.len() + changed.len() > MAX_OWN_CHANGES {
            self.own.clear();
        }
        for m in changed {
            self.own.insert(m.modseq.0);
            self.known_modseq = self.known_modseq.max(m.modseq);
        }
    }
}

impl ImapState {
    fn subscriber(&self) -> Subscriber {
        let me = self.myself.clone();
        Subscriber::new(move |notice| me.send_message(ImapMsg::Notice(notice)).is_ok())
    }

    pub(super) async fn select(
        &mut self,
        name: &str,
        read_only: bool,
        params: SelectParams,
    ) -> Done {
        // RFC 7162 3.2.5: QRESYNC parameters only once QRESYNC is enabled.
        if params.qresync.is_some() && !self.qresync {
            return Done::bad("QRESYNC must be enabled first (ENABLE QRESYNC)");
        }
        if params.condstore {
            self.condstore = true;
        }
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
        let (opened, sub_id) = match self.open_mailbox(&account, name).await {
            Ok(o) => o,
            Err(done) => return done,
        };
        let snap = opened.snapshot;
        let rec = &snap.record;
        response::flags_line(&mut self.out, &SYSTEM_FLAG_LIST);
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
        response::exists(&mut self.out, snap.uids.len() as u32);
        if !self.rev2 {
            // IMAP4rev1 clients expect RECENT; roost keeps no \Recent state.
            response::recent(&mut self.out, 0);
        }
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
        if self.rev2 {
            // RFC 9051 6.3.2: LIST with the mailbox's name and attributes.
            let name = self.mailbox_out(&rec.name);
            let mut attrs = vec![];
            if rec.subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = rec.special_use {
                attrs.push(su.attribute());
            }
            response::list(&mut self.out, &attrs, Some(MAILBOX_DELIMITER), &name);
        }
        // RFC 8474 4.1.
        response::untagged_status(
            &mut self.out,
            Status::Ok,
            Some(Code::MailboxId(response::mailbox_object_id(rec.id.0))),
            "Ok",
        );
        // RFC 7162 3.1.2.1: every SELECT of a mailbox that keeps modseqs
        // says how far they go (at least 1: 0 is not a mod-sequence-value).
        let highest = ModSeq(rec.highest_modseq.0.max(1));
        response::untagged_status(
            &mut self.out,
            Status::Ok,
            Some(Code::HighestModSeq(highest)),
            "Highest",
        );
        let name = rec.name.clone();
        let (id, uid_validity, uid_next) = (rec.id, rec.uid_validity, rec.uid_next);
        let rec = rec.clone();
        self.selected = Some(Selected {
            id,
            name,
            read_only,
            uid_validity,
            view: View::from_uids(snap.uids.iter().copied()),
            index: snap.index.clone(),
            own: HashSet::new(),
            known_modseq: rec.highest_modseq,
            subscriber: sub_id,
            actor: opened.actor,
            pending: Vec::new(),
            stale: None,
            uid_next,
            modseqs: self.condstore,
            // RFC 9586 3.4: under UIDONLY expunges are VANISHED too.
            vanished: self.qresync || self.uidonly,
            uidonly: self.uidonly,
        });
        self.state = SessionState::Selected { read_only };
        if let Some(q) = params.qresync.filter(|q| q.uid_validity == uid_validity.0) {
            if let Err(e) = self.qresync_replay(id, uid_next, &q).await {
                // RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected.
                self.unselect().await;
                self.state = SessionState::Authenticated;
                return Done::no(format!("Cannot read what changed: {e}"));
            }
        }
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
                let r = AccountClient::new(account).expunge(sel.id, None).await;
                if let Err(e) = r {
                    return client_no(e);
                }
            }
        }
        self.unselect().await;
        self.state = SessionState::Authenticated;
        Done::ok("Mailbox closed")
    }

    /// Leaves the selected mailbox, telling its mailbox actor.
    pub(super) async fn unselect(&mut self) {
        // RFC 5182 2.1: the saved result belongs to the selected mailbox;
        // so do live searches (RFC 5267 4.3).
        self.saved_search.clear();
        self.contexts.clear();
        let Some(sel) = self.selected.take() else {
            return;
        };
        if let Some((account, _)) = self.account() {
            AccountClient::new(account)
                .close_mailbox(sel.id, sel.subscriber)
                .await;
        }
    }

    pub(super) async fn notice(&mut self, notice: MailboxNotice) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        match notice {
            // Events of an earlier subscription (a SELECT of the same
            // mailbox again) are not this view's: its snapshot has them.
            MailboxNotice::Event { subscriber, .. } if subscriber != sel.subscriber => return,
            MailboxNotice::Event { event, .. } => sel.pending.push(event),
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
        self.update_contexts().await;
    }

    /// Opens `name` through the account, subscribing this session; tries
    /// again while the mailbox's actor is stopping.
    async fn open_mailbox(
        &self,
        account: &str,
        name: &str,
    ) -> Result<(crate::account::OpenedMailbox, u64), Done> {
        let mut attempt = 0;
        loop {
            let subscriber = self.subscriber();
            let sub_id = subscriber.id;
            let opened = AccountClient::new(account)
                .open_mailbox(name, subscriber)
                .await;
            match opened {
                Ok(o) => return Ok((o, sub_id)),
                Err(ClientError::Account(crate::account::AccountError::Closing))
                    if attempt < OPEN_ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(client_no(e)),
            }
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
        let opened = self.open_mailbox(&account, &name).await;
        let Some(sel) = &mut self.selected else {
            return;
        };
        match opened {
            Ok((o, sub_id)) if o.snapshot.record.uid_validity == sel.uid_validity => {
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
        let r = AccountClient::new(account)
            .set_flags(
                sel.id,
                uids,
                FlagAction::Add,
                Flags::from_iter([Flag::Seen]),
                None,
            )
            .await;
        let changed = match r {
            Ok(set) => set.changed,
            Err(_) => return Vec::new(),
        };
        self.note_own(&changed);
        changed
    }

    /// Flag changes this session made and reports itself: their events
    /// are not written again.
    pub(super) fn note_own(&mut self, changed: &[MessageState]) {
        if let Some(sel) = &mut self.selected {
            sel.note_own(changed);
        }
    }
}

impl ImapState {
    /// RFC 7162 3.2.5.1: after SELECT (QRESYNC ...), what the client missed:
    /// `VANISHED (EARLIER)` for the known UIDs expunged since its modseq,
    /// then `FETCH (UID FLAGS MODSEQ)` for messages changed since.
    async fn qresync_replay(
        &mut self,
        mailbox: MailboxId,
        uid_next: Uid,
        q: &QResync,
    ) -> Result<(), String> {
        let known = q
            .known_uids
            .clone()
            .unwrap_or_else(|| SeqSet::parse("1:*").expect("a valid set"));
        let vanished = self
            .vanished_since(mailbox, uid_next, &known, q.modseq)
            .await?;
        if !vanished.is_empty() {
            response::vanished(&mut self.out, true, &SeqSet::compact_ranges(&vanished));
        }
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        let max_uid = uid_next.0.saturating_sub(1);
        let changed = changed_since(sel, q.modseq);
        for (i, m) in changed {
            if known.contains(m.uid.0, max_uid) {
                write_flags(
                    &mut self.out,
                    (i as u32 + 1, m.uid),
                    &m.flags,
                    Some(m.modseq),
                    self.uidonly,
                );
            }
        }
        Ok(())
    }

    /// The UIDs in `set` expunged after `since` (RFC 7162 3.2.5.1, 3.2.6),
    /// as ascending ranges. Where tombstones that old were pruned, every
    /// UID of `set` below `uid_next` that is not in the view is reported
    /// (RFC 7162 and RFC 5162 4.1 allow a server that forgets expunges to
    /// answer so; clients ignore UIDs they never had).
    pub(super) async fn vanished_since(
        &self,
        mailbox: MailboxId,
        uid_next: Uid,
        set: &SeqSet,
        since: ModSeq,
    ) -> Result<Vec<(u32, u32)>, String> {
        let (Some(sel), Some((_, account))) = (&self.selected, self.account()) else {
            return Ok(Vec::new());
        };
        let store = self.services.store.clone();
        let (uids, floor) =
            crate::task::blocking(move || store.vanished_since(account, mailbox, since)).await?;
        let max_uid = uid_next.0.saturating_sub(1);
        if since >= floor {
            return Ok(SeqSet::runs(
                uids.into_iter()
                    .map(|u| u.0)
                    .filter(|&u| set.contains(u, max_uid)),
            ));
        }
        let present: Vec<u32> = sel.view.iter().map(|u| u.0).collect();
        Ok(missing_ranges(&present, &set.spans(max_uid)))
    }
}

/// The ranges within `spans` (ascending, disjoint) holding no number of
/// `present` (ascending). There are at most `present.len() + spans.len()`
/// of them, however many UIDs they cover, so a mailbox whose UIDs run into
/// the millions answers in as many ranges as it has messages.
fn missing_ranges(present: &[u32], spans: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut push = |lo: u32, hi: u32| match out.last_mut() {
        Some((_, end)) if end.checked_add(1) == Some(lo) => *end = hi,
        _ => out.push((lo, hi)),
    };
    let mut p = 0;
    for &(lo, hi) in spans {
        while p < present.len() && present[p] < lo {
            p += 1;
        }
        let mut next = lo;
        while p < present.len() && present[p] <= hi {
            if present[p] > next {
                push(next, present[p] - 1);
            }
            next = present[p].saturating_add(1);
            p += 1;
            if next == 0 || next > hi {
                break;
            }
        }
        if next <= hi && !(p > 0 && present[p - 1] == u32::MAX) {
            push(next, hi);
        }
    }
    out
}

/// The messages of the view whose modseq is above `since`, with their
/// index and state, read from the shared index in one pass.
pub(super) fn changed_since(sel: &Selected, since: ModSeq) -> Vec<(usize, MessageState)> {
    sel.index
        .read(|ix| {
            sel.view
                .iter()
                .enumerate()
                .filter_map(|(i, uid)| ix.state(uid).map(|m| (i, m)))
                .filter(|(_, m)| m.modseq > since)
                .collect()
        })
        .unwrap_or_default()
}

/// Applies one change to the view, writing what the client must hear.
/// Idempotent: a change the view already reflects writes nothing.
fn apply_event(sel: &mut Selected, change: &Change, out: &mut Vec<u8>) {
    match change {
        Change::MessagesAdded {
            mailbox, messages, ..
        } if *mailbox == sel.id => {
            // Only UIDs the view has not numbered before: anything below
            // its UIDNEXT was in its snapshot or is gone.
            let before = sel.view.len();
            for m in messages.iter() {
                if m.uid < sel.uid_next {
                    continue;
                }
                sel.uid_next = Uid(m.uid.0 + 1);
                sel.known_modseq = sel.known_modseq.max(m.modseq);
                sel.view.push(m.uid);
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
                // This session's own change was reported when it was made.
                if sel.own.remove(&m.modseq.0) {
                    continue;
                }
                sel.known_modseq = sel.known_modseq.max(m.modseq);
                if let Some(i) = sel.seq_of(m.uid) {
                    let modseq = sel.modseqs.then_some(m.modseq);
                    write_flags(out, (i as u32 + 1, m.uid), &m.flags, modseq, sel.uidonly);
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
/// (RFC 9051 7.5.1), or one `* VANISHED` under QRESYNC. The view is
/// compacted once, so expunging many messages costs
/// O(view runs + removed × log view), not O(view × removed).
pub(super) fn remove_from_view(sel: &mut Selected, uids: &[Uid], out: &mut Vec<u8>) {
    let mut gone: Vec<usize> = uids.iter().filter_map(|u| sel.seq_of(*u)).collect();
    if gone.is_empty() {
        return;
    }
    gone.sort_unstable();
    gone.dedup();
    if sel.vanished {
        let uids = gone.iter().map(|&i| sel.view.uid(i).0);
        response::vanished(out, false, &SeqSet::compact(uids));
    } else {
        for (already, &i) in gone.iter().enumerate() {
            response::expunge(out, SeqNum((i - already) as u32 + 1));
        }
    }
    sel.view.remove(&gone);
}

/// Brings the view in line with a fresh snapshot: EXPUNGE for what went,
/// FETCH FLAGS for what changed since the session last heard, EXISTS for
/// what came.
fn resync(sel: &mut Selected, snap: MailboxSnapshot, out: &mut Vec<u8>) {
    let old_next = sel.uid_next;
    sel.uid_next = sel.uid_next.max(snap.record.uid_next);
    sel.index = snap.index;
    let fresh: HashSet<Uid> = snap.uids.iter().copied().collect();
    let gone: Vec<Uid> = sel.view.iter().filter(|u| !fresh.contains(u)).collect();
    remove_from_view(sel, &gone, out);
    for (i, m) in changed_since(sel, sel.known_modseq) {
        let modseq = sel.modseqs.then_some(m.modseq);
        write_flags(out, (i as u32 + 1, m.uid), &m.flags, modseq, sel.uidonly);
    }
    sel.known_modseq = sel.known_modseq.max(snap.record.highest_modseq);
    let before = sel.view.len();
    for u in snap.uids.into_iter().filter(|u| *u >= old_next) {
        sel.view.push(u);
    }
    if sel.view.len() != before {
        response::exists(out, sel.view.len() as u32);
    }
}

/// `* seq FETCH (UID u FLAGS (...))`, with MODSEQ when asked; under
/// UIDONLY `* u UIDFETCH (FLAGS (...))` (RFC 9586 3.6).
pub(super) fn write_flags(
    out: &mut Vec<u8>,
    (seq, uid): (u32, Uid),
    flags: &Flags,
    modseq: Option<ModSeq>,
    uidonly: bool,
) {
    let mut items = vec![
        FetchResponseItem::Uid(uid),
        FetchResponseItem::Flags(flags.to_vec()),
    ];
    if let Some(m) = modseq {
        items.push(FetchResponseItem::ModSeq(m));
    }
    write_fetch(out, (seq, uid), &items, uidonly);
}

/// A FETCH response, or under UIDONLY a UIDFETCH one without the UID
/// item (RFC 9586 3.3: the UID leads the response already).
pub(super) fn write_fetch(
    out: &mut Vec<u8>,
    (seq, uid): (u32, Uid),
    items: &[FetchResponseItem],
    uidonly: bool,
) {
    if uidonly {
        let items: Vec<FetchResponseItem> = items
            .iter()
            .filter(|i| !matches!(i, FetchResponseItem::Uid(_)))
            .cloned()
            .collect();
        response::uidfetch(out, uid, &items);
    } else {
        response::fetch(out, SeqNum(seq), items);
    }
}

/// The tagged NO for a failed account call.
pub(super) fn client_no(e: ClientError) -> Done {
    match e {
        ClientError::Account(e) => account_no(e),
        ClientError::Call(e) => Done::no_code(Code::Unavailable, e.to_string()),
    }
}

/// The tagged NO for an account actor's refusal.
pub(super) fn account_no(e: crate::account::AccountError) -> Done {
    use crate::account::AccountError as E;
    match e {
        E::NoMailbox(_) => Done::no_code(Code::Nonexistent, e.to_string()),
        E::AlreadyExists(_) => Done::no_code(Code::AlreadyExists, e.to_string()),
        E::OverQuota { .. } | E::OverMessageQuota { .. } => {
            Done::no_code(Code::OverQuota, e.to_string())
        }
        E::Cannot(_) => Done::no_code(Code::Cannot, e.to_string()),
        E::Store(_) => Done::no_code(Code::ServerBug, e.to_string()),
        E::Closing => Done::no_code(Code::InUse, e.to_string()),
        E::MetadataMaxSize(n) => {
            Done::no_code(Code::Other(format!("METADATA MAXSIZE {n}")), e.to_string())
        }
        E::MetadataTooMany => Done::no_code(Code::Other("METADATA TOOMANY".into()), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::missing_ranges;
    use roost_protocols::imap::seqset::SeqSet;

    #[test]
    fn missing_ranges_are_the_gaps_within_the_set() {
        let present = [2, 3, 7];
        assert_eq!(
            missing_ranges(&present, &[(1, 8)]),
            vec![(1, 1), (4, 6), (8, 8)]
        );
        assert_eq!(missing_ranges(&present, &[(2, 3), (7, 7)]), vec![]);
        assert_eq!(
            missing_ranges(&present, &[(1, 2), (4, 5), (6, 9)]),
            vec![(1, 1), (4, 6), (8, 9)]
        );
        assert_eq!(missing_ranges(&[], &[]), vec![]);
        assert_eq!(missing_ranges(&[], &[(5, 9)]), vec![(5, 9)]);
        // Millions of UIDs gone, a few messages left: a few ranges.
        assert_eq!(
            missing_ranges(&[10, 4_000_000], &[(1, 4_000_001)]),
            vec![(1, 9), (11, 3_999_999), (4_000_001, 4_000_001)]
        );
        assert_eq!(
            missing_ranges(&[u32::MAX], &[(u32::MAX - 2, u32::MAX)]),
            vec![(u32::MAX - 2, u32::MAX - 1)]
        );
        assert_eq!(
            SeqSet::compact_ranges(&missing_ranges(&present, &[(1, 8)])),
            "1,4:6,8"
        );
        assert_eq!(
            SeqSet::runs([1, 2, 3, 5, 9, 10]),
            vec![(1, 3), (5, 5), (9, 10)]
        );
    }
}
