//! STORE, EXPUNGE, UID EXPUNGE, COPY and MOVE (RFC 9051 6.4.3, 6.4.6 to
//! 6.4.9; UIDPLUS RFC 4315; MOVE RFC 6851), all through the account actor.

use super::select::{client_no, write_flags};
use super::{Done, ImapState};
use crate::account::FlagAction;
use crate::client::AccountClient;
use crate::client::ClientError;
use roost_protocols::imap::command::StoreAction;
use roost_protocols::imap::response::{self, Code, FetchResponseItem, Status};
use roost_protocols::imap::seqset::SeqSet;
use roost_protocols::imap::types::{Flag, Flags, ModSeq, Uid};

/// What a STORE asks for (RFC 9051 6.4.6, RFC 7162 3.1.3).
pub(super) struct StoreRequest {
    pub action: StoreAction,
    pub silent: bool,
    pub flags: Vec<Flag>,
    pub unchanged_since: Option<ModSeq>,
}

impl ImapState {
    pub(super) fn writable(&self) -> Result<(String, roost_store::MailboxId), Done> {
        let (Some(sel), Some((account, _))) = (&self.selected, self.account()) else {
            return Err(Done::bad("No mailbox selected"));
        };
        if sel.read_only {
            return Err(Done::no_code(
                Code::Cannot,
                "Mailbox is read-only (EXAMINE)",
            ));
        }
        Ok((account.to_string(), sel.id))
    }

    pub(super) async fn store_flags(&mut self, set: &SeqSet, uid: bool, req: StoreRequest) -> Done {
        let StoreRequest {
            action,
            silent,
            flags,
            unchanged_since,
        } = req;
        if unchanged_since.is_some() {
            self.use_condstore();
        }
        let targets = match self.resolve(set, uid) {
            Ok(t) => t,
            Err(e) => return Done::bad(e),
        };
        let (account, mailbox) = match self.writable() {
            Ok(x) => x,
            Err(done) => return done,
        };
        let action = match action {
            StoreAction::Add => FlagAction::Add,
            StoreAction::Remove => FlagAction::Remove,
            StoreAction::Replace => FlagAction::Replace,
        };
        let uids: Vec<Uid> = targets.iter().map(|(_, u)| *u).collect();
        let r = AccountClient::new(&account)
            .set_flags(
                mailbox,
                uids,
                action,
                Flags::from_iter(flags),
                unchanged_since,
            )
            .await;
        let result = match r {
            Ok(c) => c,
            Err(e) => return client_no(e),
        };
        self.note_own(&result.changed);
        let modseqs = self.selected.as_ref().is_some_and(|s| s.modseqs);
        if silent && modseqs {
            // RFC 7162 3.1.3: with CONDSTORE on, a FETCH with the new MODSEQ
            // goes out even for .SILENT.
            for m in &result.changed {
                if let Some(i) = self.selected.as_ref().and_then(|s| s.seq_of(m.uid)) {
                    let items = [
                        FetchResponseItem::Uid(m.uid),
                        FetchResponseItem::ModSeq(m.modseq),
                    ];
                    super::select::write_fetch(
                        &mut self.out,
                        (i as u32 + 1, m.uid),
                        &items,
                        self.uidonly,
                    );
                }
                if self.write_out_if_full().await.is_err() {
                    return Done::Later;
                }
            }
        }
        if !silent {
            // RFC 9051 6.4.6: the new flags of every message named, but
            // those a conditional STORE left alone (RFC 7162 3.1.3).
            for (seq, u) in &targets {
                if result.modified.contains(u) {
                    continue;
                }
                let state = self
                    .selected
                    .as_ref()
                    .and_then(|sel| sel.state(*seq as usize - 1).map(|m| (m, sel.modseqs)));
                if let Some((m, modseqs)) = state {
                    write_flags(
                        &mut self.out,
                        (*seq, *u),
                        &m.flags,
                        modseqs.then_some(m.modseq),
                        self.uidonly,
                    );
                }
                if self.write_out_if_full().await.is_err() {
                    return Done::Later;
                }
            }
        }
        if result.modified.is_empty() {
            return Done::ok("STORE completed");
        }
        // RFC 7162 3.1.3: MODIFIED names them as the command did, by
        // sequence number or by UID.
        let numbers: Vec<u32> = targets
            .iter()
            .filter(|(_, u)| result.modified.contains(u))
            .map(|&(seq, u)| if uid { u.0 } else { seq })
            .collect();
        Done::Tagged(
            Status::Ok,
            Some(Code::Modified(SeqSet::compact(numbers))),
            "Conditional STORE failed for some messages".into(),
        )
    }

    pub(super) async fn expunge(&mut self, set: Option<&SeqSet>) -> Done {
        let uids = match set {
            Some(set) => match self.resolve(set, true) {
                Ok(t) => Some(t.into_iter().map(|(_, u)| u).collect::<Vec<_>>()),
                Err(e) => return Done::bad(e),
            },
            None => None,
        };
        let (account, mailbox) = match self.writable() {
            Ok(x) => x,
            Err(done) => return done,
        };
        match AccountClient::new(&account).expunge(mailbox, uids).await {
            Ok(removed) => {
                self.forget(&removed);
                Done::ok("EXPUNGE completed")
            }
            Err(e) => client_no(e),
        }
    }

    /// Drops expunged UIDs from the view, writing `* n EXPUNGE` for each.
    fn forget(&mut self, removed: &[Uid]) {
        if let Some(sel) = &mut self.selected {
            super::select::remove_from_view(sel, removed, &mut self.out);
        }
    }

    pub(super) async fn copy(&mut self, set: &SeqSet, to: &str, uid: bool, remove: bool) -> Done {
        let targets = match self.resolve(set, uid) {
            Ok(t) => t,
            Err(e) => return Done::bad(e),
        };
        let (account, from) = if remove {
            match self.writable() {
                Ok(x) => x,
                Err(done) => return done,
            }
        } else {
            match (&self.selected, self.account()) {
                (Some(sel), Some((a, _))) => (a.to_string(), sel.id),
                _ => return Done::bad("No mailbox selected"),
            }
        };
        let uids: Vec<Uid> = targets.iter().map(|(_, u)| *u).collect();
        let r = AccountClient::new(&account)
            .copy(from, uids, to, remove)
            .await;
        let result = match r {
            Ok(c) => c,
            // RFC 9051 6.4.7: TRYCREATE when the target does not exist.
            Err(ClientError::Account(crate::account::AccountError::NoMailbox(n))) => {
                return Done::no_code(Code::TryCreate, format!("No mailbox named {n:?}"))
            }
            Err(e) => return client_no(e),
        };
        if result.pairs.is_empty() {
            return Done::ok(if remove {
                "No messages moved"
            } else {
                "No messages copied"
            });
        }
        let (src, dst): (Vec<Uid>, Vec<Uid>) = result.pairs.iter().copied().unzip();
        let code = Code::CopyUid {
            validity: result.uid_validity,
            from: uid_list(&src),
            to: uid_list(&dst),
        };
        if remove {
            // RFC 6851 4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
            response::untagged_status(&mut self.out, Status::Ok, Some(code), "Moved");
            self.forget(&src);
            Done::ok("MOVE completed")
        } else {
            Done::Tagged(Status::Ok, Some(code), "COPY completed".into())
        }
    }
}

/// A UID list in the compact form of RFC 4315 (`1:3,7`), order kept.
pub(super) fn uid_list(uids: &[Uid]) -> String {
    SeqSet::compact(uids.iter().map(|u| u.0))
}
