//! LIST, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and STATUS
//! (RFC 9051 6.3.4 to 6.3.11). LIST and STATUS read the store directly;
//! every change goes through the account actor.

use super::select::account_no;
use super::{Done, ImapState};
use crate::account::{normalize_name, AccountMsg, MAILBOX_DELIMITER};
use crate::directory::call_account;
use roost_protocols::imap::command::StatusItem;
use roost_protocols::imap::response::{self, Code, StatusValue};
use roost_store::MailboxRecord;

impl ImapState {
    fn mailbox_records(&self) -> Result<Vec<MailboxRecord>, String> {
        let (_, id) = self.account().ok_or("Not logged in")?;
        self.services.store.mailboxes(id).map_err(|e| e.to_string())
    }

    /// RFC 3501 6.3.9: the subscribed mailboxes matching the pattern.
    pub(super) fn lsub(&mut self, reference: &str, pattern: &str) -> Done {
        let records = match self.mailbox_records() {
            Ok(r) => r,
            Err(e) => return Done::no(e),
        };
        let full = format!("{reference}{pattern}");
        for rec in records
            .iter()
            .filter(|r| r.subscribed && list_match(&full, &r.name))
        {
            response::lsub(&mut self.out, &[], Some(MAILBOX_DELIMITER), &rec.name);
        }
        Done::ok("LSUB completed")
    }

    pub(super) fn list(&mut self, reference: &str, pattern: &str) -> Done {
        // RFC 9051 6.3.9.1: an empty pattern asks for the delimiter.
        if pattern.is_empty() {
            response::list(&mut self.out, &["\\Noselect"], Some(MAILBOX_DELIMITER), "");
            return Done::ok("LIST completed");
        }
        let records = match self.mailbox_records() {
            Ok(r) => r,
            Err(e) => return Done::no(e),
        };
        let full = format!("{reference}{pattern}");
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        for rec in &records {
            if !list_match(&full, &rec.name) {
                continue;
            }
            let prefix = format!("{}{MAILBOX_DELIMITER}", rec.name);
            let mut attrs = vec![if names.iter().any(|n| n.starts_with(&prefix)) {
                "\\HasChildren".to_string()
            } else {
                "\\HasNoChildren".to_string()
            }];
            if rec.subscribed {
                attrs.push("\\Subscribed".to_string());
            }
            if let Some(su) = rec.special_use {
                attrs.push(su.attribute().to_string());
            }
            let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
            response::list(&mut self.out, &attrs, Some(MAILBOX_DELIMITER), &rec.name);
        }
        Done::ok("LIST completed")
    }

    pub(super) fn status(&mut self, mailbox: &str, items: &[StatusItem]) -> Done {
        let name = normalize_name(mailbox);
        let records = match self.mailbox_records() {
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
                StatusItem::HighestModSeq => StatusValue::HighestModSeq(rec.highest_modseq),
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

/// RFC 9051 6.3.9: `*` matches anything, `%` anything but the delimiter.
fn list_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some(b'%') => {
                let stop = n.iter().position(|&b| b == b'/').unwrap_or(n.len());
                (0..=stop).any(|i| go(&p[1..], &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    // INBOX matches case-insensitively (RFC 9051 5.1).
    let name_cmp = name;
    if name_cmp == "INBOX" && pattern.eq_ignore_ascii_case("inbox") {
        return true;
    }
    go(pattern.as_bytes(), name_cmp.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::list_match;

    #[test]
    fn wildcards() {
        assert!(list_match("*", "INBOX"));
        assert!(list_match("*", "a/b/c"));
        assert!(list_match("%", "Sent"));
        assert!(!list_match("%", "a/b"));
        assert!(list_match("a/%", "a/b"));
        assert!(!list_match("a/%", "a/b/c"));
        assert!(list_match("inbox", "INBOX"));
        assert!(!list_match("Sen", "Sent"));
    }
}
