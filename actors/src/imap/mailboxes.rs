//! LIST, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and STATUS
//! (RFC 9051 6.3.4 to 6.3.11). LIST and STATUS read the store directly,
//! off the async workers (an account may have thousands of mailboxes);
//! every change goes through the account actor. Patterns are matched in
//! linear time by [`MailboxPattern`].

use super::select::account_no;
use super::{Done, ImapState};
use crate::account::{normalize_name, AccountMsg, MAILBOX_DELIMITER};
use crate::directory::call_account;
use crate::task::blocking;
use roost_protocols::imap::command::StatusItem;
use roost_protocols::imap::pattern::MailboxPattern;
use roost_protocols::imap::response::{self, Code, Status, StatusValue};
use roost_store::{MailboxRecord, SpecialUse};

impl ImapState {
    async fn mailbox_records(&self) -> Result<Vec<MailboxRecord>, String> {
        let (_, id) = self.account().ok_or("Not logged in")?;
        let store = self.services.store.clone();
        blocking(move || store.mailboxes(id)).await
    }

    /// The mailboxes matching `reference` + `pattern`, in store order, or
    /// the answer to give instead. Read and matched off the async workers:
    /// up to `MAX_MAILBOXES` names of up to `MAX_MAILBOX_NAME` bytes.
    async fn matching(&self, reference: &str, pattern: &str) -> Result<Vec<MatchedMailbox>, Done> {
        let full = format!("{reference}{pattern}");
        let pattern = MailboxPattern::new(&full, MAILBOX_DELIMITER as u8)
            .map_err(|e| Done::Tagged(Status::Bad, Some(Code::TooBig), e.to_string()))?;
        let (_, id) = self.account().ok_or_else(|| Done::no("Not logged in"))?;
        let store = self.services.store.clone();
        blocking(move || {
            let records = store.mailboxes(id)?;
            Ok::<_, roost_store::StoreError>(matched(records, &pattern))
        })
        .await
        .map_err(Done::no)
    }

    /// RFC 3501 6.3.9: the subscribed mailboxes matching the pattern.
    pub(super) async fn lsub(&mut self, reference: &str, pattern: &str) -> Done {
        let found = match self.matching(reference, pattern).await {
            Ok(r) => r,
            Err(done) => return done,
        };
        for m in found.iter().filter(|m| m.subscribed) {
            response::lsub(&mut self.out, &[], Some(MAILBOX_DELIMITER), &m.name);
            if self.write_out_if_full().await.is_err() {
                return Done::Later;
            }
        }
        Done::ok("LSUB completed")
    }

    pub(super) async fn list(&mut self, reference: &str, pattern: &str) -> Done {
        // RFC 9051 6.3.9.1: an empty pattern asks for the delimiter.
        if pattern.is_empty() {
            response::list(&mut self.out, &["\\Noselect"], Some(MAILBOX_DELIMITER), "");
            return Done::ok("LIST completed");
        }
        let found = match self.matching(reference, pattern).await {
            Ok(r) => r,
            Err(done) => return done,
        };
        for m in &found {
            let mut attrs = vec![if m.has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            if m.subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = m.special_use {
                attrs.push(su.attribute());
            }
            response::list(&mut self.out, &attrs, Some(MAILBOX_DELIMITER), &m.name);
            if self.write_out_if_full().await.is_err() {
                return Done::Later;
            }
        }
        Done::ok("LIST completed")
    }

    pub(super) async fn status(&mut self, mailbox: &str, items: &[StatusItem]) -> Done {
        if items.contains(&StatusItem::HighestModSeq) {
            self.use_condstore();
        }
        let name = normalize_name(mailbox);
        let records = match self.mailbox_records().await {
            Ok(r) => r,
            Err(e) => return Done::no(e),
        };
        let Some(rec) = records.into_iter().find(|r| r.name == name) else {
            return Done::no_code(Code::Nonexistent, format!("No mailbox named {name:?}"));
        };
        let values: Vec<StatusValue> = items
            .iter()
            .map(|&item| match item {
                StatusItem::Messages => StatusValue::Messages(rec.counts.total),
                StatusItem::UidNext => StatusValue::UidNext(rec.uid_next),
                StatusItem::UidValidity => StatusValue::UidValidity(rec.uid_validity),
                StatusItem::Unseen => StatusValue::Unseen(rec.counts.unseen),
                StatusItem::Deleted => StatusValue::Deleted(rec.counts.deleted),
                StatusItem::Size => StatusValue::Size(rec.counts.size),
                StatusItem::HighestModSeq => StatusValue::HighestModSeq(
                    roost_protocols::imap::types::ModSeq(rec.highest_modseq.0.max(1)),
                ),
                StatusItem::Recent => StatusValue::Recent(0),
            })
            .collect();
        response::status(&mut self.out, &rec.name, &values);
        Done::ok("STATUS completed")
    }

    fn account_name(&self) -> Option<String> {
        self.account().map(|(n, _)| n.to_string())
    }

    pub(super) async fn create(&mut self, mailbox: &str) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let name = mailbox.to_string();
        let r = call_account(&account, |reply| AccountMsg::CreateMailbox { name, reply }).await;
        finish(r, "CREATE completed")
    }

    pub(super) async fn delete(&mut self, mailbox: &str) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let name = mailbox.to_string();
        let r = call_account(&account, |reply| AccountMsg::DeleteMailbox { name, reply }).await;
        finish(r, "DELETE completed")
    }

    pub(super) async fn rename(&mut self, from: &str, to: &str) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let (from, to) = (from.to_string(), to.to_string());
        let r = call_account(&account, |reply| AccountMsg::RenameMailbox {
            from,
            to,
            reply,
        })
        .await;
        finish(r, "RENAME completed")
    }

    pub(super) async fn subscribe(&mut self, mailbox: &str, subscribed: bool) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let name = mailbox.to_string();
        let r = call_account(&account, |reply| AccountMsg::SetSubscribed {
            name,
            subscribed,
            reply,
        })
        .await;
        finish(
            r,
            if subscribed {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            },
        )
    }
}

/// The tagged answer to an account call whose value the client does not see.
pub(super) fn finish<T>(
    r: Result<Result<T, crate::account::AccountError>, crate::directory::CallError>,
    ok: &str,
) -> Done {
    match r {
        Ok(Ok(_)) => Done::ok(ok),
        Ok(Err(e)) => account_no(e),
        Err(e) => Done::no_code(Code::Unavailable, e.to_string()),
    }
}

/// A mailbox LIST or LSUB names, with what its response line says.
struct MatchedMailbox {
    name: String,
    subscribed: bool,
    special_use: Option<SpecialUse>,
    has_children: bool,
}

/// The records whose names match, in store order, each knowing whether it
/// has children: the first name at or after "name/" in sorted order
/// starts with that prefix exactly when one does.
fn matched(records: Vec<MailboxRecord>, pattern: &MailboxPattern) -> Vec<MatchedMailbox> {
    let mut names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    records
        .iter()
        .filter(|r| pattern.matches(&r.name))
        .map(|r| {
            let prefix = format!("{}{MAILBOX_DELIMITER}", r.name);
            let after = names.partition_point(|n| *n < prefix.as_str());
            MatchedMailbox {
                name: r.name.clone(),
                subscribed: r.subscribed,
                special_use: r.special_use,
                has_children: names.get(after).is_some_and(|n| n.starts_with(&prefix)),
            }
        })
        .collect()
}
