//! LIST, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and STATUS
//! (RFC 9051 6.3.4 to 6.3.11). LIST and STATUS read the store directly,
//! off the async workers (an account may have thousands of mailboxes);
//! every change goes through the account actor. Patterns are matched in
//! linear time by [`MailboxPattern`].

use super::select::client_no;
use super::{Done, ImapState};
use crate::account::{normalize_name, MAILBOX_DELIMITER};
use crate::client::{AccountClient, ClientError};
use crate::task::blocking;
use roost_protocols::imap::command::{ListCommand, StatusItem};
use roost_protocols::imap::pattern::MailboxPattern;
use roost_protocols::imap::response::{self, Code, Status, StatusValue};
use roost_protocols::imap::types::ModSeq;
use roost_store::{MailboxRecord, SpecialUse};

impl ImapState {
    pub(super) async fn mailbox_records(&self) -> Result<Vec<MailboxRecord>, String> {
        let (_, id) = self.account().ok_or("Not logged in")?;
        let store = self.services.store.clone();
        blocking(move || store.mailboxes(id)).await
    }

    /// The mailboxes matching `reference` + any of `patterns`, in store
    /// order, or the answer to give instead. Read and matched off the
    /// async workers: up to `MAX_MAILBOXES` names of up to
    /// `MAX_MAILBOX_NAME` bytes.
    async fn matching(
        &self,
        reference: &str,
        patterns: &[String],
    ) -> Result<Vec<MatchedMailbox>, Done> {
        let compiled = patterns
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| MailboxPattern::new(&format!("{reference}{p}"), MAILBOX_DELIMITER as u8))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Done::Tagged(Status::Bad, Some(Code::TooBig), e.to_string()))?;
        let (_, id) = self.account().ok_or_else(|| Done::no("Not logged in"))?;
        let store = self.services.store.clone();
        blocking(move || {
            let records = store.mailboxes(id)?;
            Ok::<_, roost_store::StoreError>(matched(records, &compiled))
        })
        .await
        .map_err(Done::no)
    }

    /// RFC 3501 6.3.9: the subscribed mailboxes matching the pattern.
    pub(super) async fn lsub(&mut self, reference: &str, pattern: &str) -> Done {
        let found = match self.matching(reference, &[pattern.to_string()]).await {
            Ok(r) => r,
            Err(done) => return done,
        };
        for m in found.iter().filter(|m| m.record.subscribed) {
            let name = self.mailbox_out(&m.record.name);
            response::lsub(&mut self.out, &[], Some(MAILBOX_DELIMITER), &name);
            if self.write_out_if_full().await.is_err() {
                return Done::Later;
            }
        }
        Done::ok("LSUB completed")
    }

    /// RFC 9051 6.3.9 with LIST-EXTENDED (RFC 5258), LIST-STATUS
    /// (RFC 5819) and SPECIAL-USE (RFC 6154). Children, subscription and
    /// special-use attributes are always given; `\Subscribed` only where
    /// the mailbox is subscribed.
    pub(super) async fn list(&mut self, cmd: ListCommand) -> Done {
        // RFC 9051 6.3.9.1: an empty pattern asks for the delimiter.
        if !cmd.extended && cmd.patterns.iter().all(|p| p.is_empty()) {
            response::list(&mut self.out, &["\\Noselect"], Some(MAILBOX_DELIMITER), "");
            return Done::ok("LIST completed");
        }
        let found = match self.matching(&cmd.reference, &cmd.patterns).await {
            Ok(r) => r,
            Err(done) => return done,
        };
        let select = cmd.select;
        for m in &found {
            let r = &m.record;
            // RFC 5258 3.1: with RECURSIVEMATCH, a parent whose children
            // match the selection is listed with CHILDINFO.
            let childinfo: Vec<&str> = if select.recursive_match {
                let mut c = Vec::new();
                if select.subscribed && m.subscribed_child {
                    c.push("SUBSCRIBED");
                }
                if select.special_use && m.special_use_child {
                    c.push("SPECIAL-USE");
                }
                c
            } else {
                Vec::new()
            };
            let selected_itself = (!select.subscribed || r.subscribed)
                && (!select.special_use || r.special_use.is_some());
            if !selected_itself && childinfo.is_empty() {
                continue;
            }
            let mut attrs = vec![if m.has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            if r.subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = r.special_use {
                attrs.push(su.attribute());
            }
            let name = self.mailbox_out(&r.name);
            response::list_extended(
                &mut self.out,
                &attrs,
                Some(MAILBOX_DELIMITER),
                &name,
                &childinfo,
            );
            if let Some(items) = &cmd.returns.status {
                // RFC 5819: STATUS follows each selectable mailbox's LIST.
                let values = self.status_of(r, items).await;
                response::status(&mut self.out, &name, &values);
            }
            if let Some(asked) = &cmd.returns.metadata {
                // RFC 9590 3: METADATA follows each mailbox's LIST.
                self.list_metadata(r.id, &name, asked).await;
            }
            if self.write_out_if_full().await.is_err() {
                return Done::Later;
            }
        }
        if cmd
            .returns
            .status
            .as_ref()
            .is_some_and(|i| i.contains(&StatusItem::HighestModSeq))
        {
            self.use_condstore();
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
        let name = self.mailbox_out(&rec.name);
        let values = self.status_of(&rec, items).await;
        response::status(&mut self.out, &name, &values);
        Done::ok("STATUS completed")
    }

    /// RFC 9051 7.2.4 status values of a mailbox, DELETED-STORAGE (which
    /// reads message sizes) included.
    pub(super) async fn status_of(
        &self,
        rec: &MailboxRecord,
        items: &[StatusItem],
    ) -> Vec<StatusValue> {
        let mut values = status_values(rec, items);
        if items.contains(&StatusItem::DeletedStorage) {
            let freed = self.deleted_storage(rec).await;
            for v in &mut values {
                if let StatusValue::DeletedStorage(n) = v {
                    *n = freed;
                }
            }
        }
        values
    }

    /// RFC 9208 4.1.4 DELETED-STORAGE: read off the async workers, and
    /// only when some message has `\Deleted`.
    async fn deleted_storage(&self, rec: &MailboxRecord) -> u64 {
        if rec.counts.deleted == 0 {
            return 0;
        }
        let (store, account, mailbox) = (self.services.store.clone(), rec.account, rec.id);
        crate::task::blocking(move || store.deleted_size(account, mailbox))
            .await
            .unwrap_or(0)
    }

    /// RFC 9208 4.1.2: the account's one quota root, `""`, governs every
    /// mailbox (existing or not) when the account has a limit.
    pub(super) async fn get_quota_root(&mut self, mailbox: &str) -> Done {
        let name = self.mailbox_out(&normalize_name(mailbox));
        let resources = match self.quota_resources().await {
            Ok(r) => r,
            Err(done) => return done,
        };
        if resources.is_empty() {
            response::quota_root(&mut self.out, &name, &[]);
        } else {
            response::quota_root(&mut self.out, &name, &[QUOTA_ROOT]);
            response::quota(&mut self.out, QUOTA_ROOT, &resources);
        }
        Done::ok("GETQUOTAROOT completed")
    }

    /// RFC 9208 4.1.1.
    pub(super) async fn get_quota(&mut self, root: &str) -> Done {
        let resources = match self.quota_resources().await {
            Ok(r) => r,
            Err(done) => return done,
        };
        if root != QUOTA_ROOT || resources.is_empty() {
            return Done::no_code(Code::Nonexistent, format!("No quota root {root:?}"));
        }
        response::quota(&mut self.out, QUOTA_ROOT, &resources);
        Done::ok("GETQUOTA completed")
    }

    /// The limited resources with usage and limit (RFC 9208 5.1: STORAGE
    /// in units of 1024 octets, usage rounded up; 5.2: MESSAGE exact).
    async fn quota_resources(&self) -> Result<Vec<(&'static str, u64, u64)>, Done> {
        let Some(account) = self.account_name() else {
            return Err(Done::no("Not logged in"));
        };
        let usage = AccountClient::new(&account)
            .usage()
            .await
            .map_err(client_no)?;
        let mut resources = Vec::new();
        if let Some(limit) = usage.quota_bytes {
            resources.push(("STORAGE", usage.bytes.div_ceil(1024), limit / 1024));
        }
        if let Some(limit) = usage.quota_messages {
            resources.push(("MESSAGE", usage.messages, limit));
        }
        Ok(resources)
    }

    fn account_name(&self) -> Option<String> {
        self.account().map(|(n, _)| n.to_string())
    }

    /// RFC 9051 6.3.4 with RFC 6154 3 (CREATE ... (USE (attr))).
    pub(super) async fn create(&mut self, mailbox: &str, special_use: &[String]) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let special_use = match special_use {
            [] => None,
            [one] => match SpecialUse::from_attribute(one) {
                Some(su) => Some(su),
                None => {
                    return Done::no_code(
                        Code::Other("USEATTR".into()),
                        format!("{one} is not a special use roost knows"),
                    )
                }
            },
            _ => {
                return Done::no_code(
                    Code::Other("USEATTR".into()),
                    "A mailbox has at most one special use here",
                )
            }
        };
        let r = AccountClient::new(&account)
            .create_mailbox(mailbox, special_use)
            .await;
        // RFC 8474 4.1: CREATE answers the new mailbox's id.
        match r {
            Ok(id) => Done::Tagged(
                Status::Ok,
                Some(Code::MailboxId(response::mailbox_object_id(id.0))),
                "CREATE completed".into(),
            ),
            Err(e) => client_no(e),
        }
    }

    pub(super) async fn delete(&mut self, mailbox: &str) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let r = AccountClient::new(&account).delete_mailbox(mailbox).await;
        finish(r, "DELETE completed")
    }

    pub(super) async fn rename(&mut self, from: &str, to: &str) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let r = AccountClient::new(&account).rename_mailbox(from, to).await;
        finish(r, "RENAME completed")
    }

    pub(super) async fn subscribe(&mut self, mailbox: &str, subscribed: bool) -> Done {
        let Some(account) = self.account_name() else {
            return Done::no("Not logged in");
        };
        let r = AccountClient::new(&account)
            .set_subscribed(mailbox, subscribed)
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

/// The name of the one quota root each account has (RFC 9208 3.2).
pub const QUOTA_ROOT: &str = "";

/// The tagged answer to an account call whose value the client does not see.
pub(super) fn finish<T>(r: Result<T, ClientError>, ok: &str) -> Done {
    match r {
        Ok(_) => Done::ok(ok),
        Err(e) => client_no(e),
    }
}

/// RFC 9051 7.2.4 status-att-list values of a mailbox record.
fn status_values(rec: &MailboxRecord, items: &[StatusItem]) -> Vec<StatusValue> {
    items
        .iter()
        .map(|&item| match item {
            StatusItem::Messages => StatusValue::Messages(rec.counts.total),
            StatusItem::UidNext => StatusValue::UidNext(rec.uid_next),
            StatusItem::UidValidity => StatusValue::UidValidity(rec.uid_validity),
            StatusItem::Unseen => StatusValue::Unseen(rec.counts.unseen),
            StatusItem::Deleted => StatusValue::Deleted(rec.counts.deleted),
            // Filled in by `status_of`, which reads the sizes.
            StatusItem::DeletedStorage => StatusValue::DeletedStorage(0),
            StatusItem::MailboxId => StatusValue::MailboxId(rec.id.0),
            StatusItem::Size => StatusValue::Size(rec.counts.size),
            StatusItem::HighestModSeq => {
                StatusValue::HighestModSeq(ModSeq(rec.highest_modseq.0.max(1)))
            }
            StatusItem::Recent => StatusValue::Recent(0),
        })
        .collect()
}

/// A mailbox LIST or LSUB names, with what its response line says.
struct MatchedMailbox {
    record: MailboxRecord,
    has_children: bool,
    /// Some descendant is subscribed / has a special use (RFC 5258
    /// CHILDINFO).
    subscribed_child: bool,
    special_use_child: bool,
}

/// The records whose names match any pattern, in store order, each
/// knowing about its descendants: in sorted order they are the names
/// right after "name/" that start with it.
fn matched(records: Vec<MailboxRecord>, patterns: &[MailboxPattern]) -> Vec<MatchedMailbox> {
    let mut sorted: Vec<&MailboxRecord> = records.iter().collect();
    sorted.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    records
        .iter()
        .filter(|r| patterns.iter().any(|p| p.matches(&r.name)))
        .map(|r| {
            let prefix = format!("{}{MAILBOX_DELIMITER}", r.name);
            let after = sorted.partition_point(|n| n.name.as_str() < prefix.as_str());
            let descendants = sorted[after..]
                .iter()
                .take_while(|d| d.name.starts_with(&prefix));
            let (mut any, mut subscribed_child, mut special_use_child) = (false, false, false);
            for d in descendants {
                any = true;
                subscribed_child |= d.subscribed;
                special_use_child |= d.special_use.is_some();
                if subscribed_child && special_use_child {
                    break;
                }
            }
            MatchedMailbox {
                record: r.clone(),
                has_children: any,
                subscribed_child,
                special_use_child,
            }
        })
        .collect()
}
