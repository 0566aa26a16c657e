//! GETMETADATA and SETMETADATA (RFC 5464 4.2, 4.3), and the METADATA
//! that LIST-METADATA (RFC 9590 3) answers after each mailbox listed.
//! Entries are read straight from the store, off the async workers;
//! changes go through the account actor.

use super::{Done, ImapState};
use crate::client::AccountClient;
use crate::task::blocking;
use roost_protocols::imap::metadata::{within, Depth, GetMetadata, SetMetadata};
use roost_protocols::imap::response::{self, Code};
use roost_store::{AccountId, MailboxId, Store, StoreError};

/// Entries as answered: a name and its value, or NIL.
type Entries = Vec<(String, Option<Vec<u8>>)>;

/// The entries of `mailbox` that `asked` names within `depth`: each asked
/// entry that has no value as NIL, the longer values than `maxsize` left
/// out and the longest of those counted.
fn pick(
    stored: Vec<(String, Vec<u8>)>,
    asked: &[String],
    depth: Depth,
    maxsize: Option<u32>,
) -> (Entries, Option<usize>) {
    let mut out: Entries = Vec::new();
    let mut longest = None;
    for a in asked {
        if !stored.iter().any(|(e, _)| e == a) && !out.iter().any(|(e, _)| e == a) {
            out.push((a.clone(), None));
        }
    }
    for (entry, value) in stored {
        if !asked.iter().any(|a| within(a, &entry, depth)) {
            continue;
        }
        if maxsize.is_some_and(|m| value.len() > m as usize) {
            longest = longest.max(Some(value.len()));
            continue;
        }
        out.push((entry, Some(value)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (out, longest)
}

/// The id of mailbox `name`, or the server's entries for `""`.
fn mailbox_id(
    store: &Store,
    account: AccountId,
    name: &str,
) -> Result<Option<MailboxId>, StoreError> {
    if name.is_empty() {
        return Ok(Some(MailboxId::SERVER));
    }
    Ok(store
        .mailboxes(account)?
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.id))
}

impl ImapState {
    pub(super) async fn getmetadata(&mut self, get: GetMetadata) -> Done {
        let Some((_, account)) = self.account() else {
            return Done::no("Not logged in");
        };
        let name = match get.mailbox.is_empty() {
            true => String::new(),
            false => match self.mailbox_in(&get.mailbox) {
                Ok(n) => n,
                Err(e) => return Done::bad(e),
            },
        };
        let store = self.services.store.clone();
        let wanted = name.clone();
        let read = blocking(move || {
            let Some(id) = mailbox_id(&store, account, &wanted)? else {
                return Ok(None);
            };
            let stored = store.metadata(account, id)?;
            Ok::<_, StoreError>(Some(pick(stored, &get.entries, get.depth, get.maxsize)))
        })
        .await;
        let (entries, longest) = match read {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Done::no_code(
                    Code::Nonexistent,
                    format!("No mailbox named {:?}", get.mailbox),
                )
            }
            Err(e) => return Done::no(format!("GETMETADATA failed: {e}")),
        };
        let shown = self.mailbox_out(&name);
        response::metadata(&mut self.out, &shown, &entries);
        match longest {
            // RFC 5464 4.2.1: the longest value left out by MAXSIZE.
            Some(n) => Done::Tagged(
                response::Status::Ok,
                Some(Code::Other(format!("METADATA LONGENTRIES {n}"))),
                "GETMETADATA completed".into(),
            ),
            None => Done::ok("GETMETADATA completed"),
        }
    }

    pub(super) async fn setmetadata(&mut self, set: SetMetadata) -> Done {
        let Some((account, _)) = self.account() else {
            return Done::no("Not logged in");
        };
        let account = account.to_string();
        let mailbox = if set.mailbox.is_empty() {
            None
        } else {
            match self.mailbox_in(&set.mailbox) {
                Ok(n) => Some(n),
                Err(e) => return Done::bad(e),
            }
        };
        let r = AccountClient::new(&account)
            .set_metadata(mailbox, set.entries)
            .await;
        match r {
            Ok(()) => Done::ok("SETMETADATA completed"),
            // RFC 5464 4.3: the limits are answered with their codes.
            Err(e) => super::select::client_no(e),
        }
    }

    /// RFC 9590 3: the METADATA response following a listed mailbox.
    pub(super) async fn list_metadata(
        &mut self,
        mailbox: MailboxId,
        shown: &str,
        asked: &[String],
    ) {
        let Some((_, account)) = self.account() else {
            return;
        };
        let store = self.services.store.clone();
        let asked_owned = asked.to_vec();
        let read = blocking(move || {
            let stored = store.metadata(account, mailbox)?;
            Ok::<_, StoreError>(pick(stored, &asked_owned, Depth::Zero, None).0)
        })
        .await;
        if let Ok(entries) = read {
            response::metadata(&mut self.out, shown, &entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_entries_follow_depth_and_maxsize() {
        let stored = vec![
            ("/private/a".to_string(), b"1".to_vec()),
            ("/private/a/b".to_string(), b"22".to_vec()),
            ("/private/a/b/c".to_string(), b"333".to_vec()),
            ("/shared/a".to_string(), b"4444".to_vec()),
        ];
        let asked = ["/private/a".to_string(), "/private/z".to_string()];
        // One level down; or all the way down with the 3-octet value left
        // out by MAXSIZE 2: the same entries either way.
        let expected = vec![
            ("/private/a".to_string(), Some(b"1".to_vec())),
            ("/private/a/b".to_string(), Some(b"22".to_vec())),
            ("/private/z".to_string(), None),
        ];
        assert_eq!(
            pick(stored.clone(), &asked, Depth::One, None),
            (expected.clone(), None)
        );
        assert_eq!(
            pick(stored, &asked, Depth::Infinity, Some(2)),
            (expected, Some(3))
        );
    }
}
