//! The account actor's METADATA entries (RFC 5464): set and removed here,
//! in the account's commits, read by sessions straight from the store.
//!
//! The names of all the account's entries are kept in memory once first
//! needed (at most [`MAX_METADATA_ENTRIES`]), so a change is checked
//! against the limits with what earlier, not yet committed, changes did.

use super::*;

/// Longest value one entry may hold, in octets (RFC 5464 4.3: a longer
/// one gets `[METADATA MAXSIZE n]`).
pub const MAX_METADATA_VALUE: usize = 64 * 1024;
/// Entries one account may hold over its mailboxes and the server's
/// (RFC 5464 4.3: past it, `[METADATA TOOMANY]`).
pub const MAX_METADATA_ENTRIES: usize = 1000;

impl AccountState {
    /// The names of every entry, read from the store (one scan of the
    /// account's keys, no values) the first time.
    fn load_metadata_names(&mut self) -> Result<(), AccountError> {
        if self.metadata_names.is_none() {
            let names = self
                .store
                .metadata_names(self.record.id)
                .map_err(store_err)?;
            self.metadata_names = Some(names.into_iter().collect());
        }
        Ok(())
    }

    /// RFC 5464 4.3: every entry set (or, with no value, removed), or
    /// none when one is too long or they would be too many.
    pub(super) fn set_metadata(
        &mut self,
        mailbox: Option<&str>,
        entries: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), AccountError> {
        let id = match mailbox {
            None => MailboxId::SERVER,
            Some(name) => self.mailbox_by_name(name)?,
        };
        if entries
            .iter()
            .any(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_METADATA_VALUE))
        {
            return Err(AccountError::MetadataMaxSize(MAX_METADATA_VALUE));
        }
        let account = self.record.id;
        self.load_metadata_names()?;
        let names = self.metadata_names.get_or_insert_with(BTreeSet::new);
        let mut count = names.len();
        for (entry, value) in &entries {
            match (names.contains(&(id, entry.clone())), value) {
                (false, Some(_)) => count += 1,
                (true, None) => count -= 1,
                _ => {}
            }
        }
        if count > MAX_METADATA_ENTRIES {
            return Err(AccountError::MetadataTooMany);
        }
        for (entry, value) in entries {
            if value.is_some() {
                names.insert((id, entry.clone()));
            } else {
                names.remove(&(id, entry.clone()));
            }
            // The last change of an entry within one commit wins.
            self.pending.metadata.insert((id, entry), value);
        }
        let _ = account;
        // RFC 7162 3.2: a mailbox's METADATA change raises its modseq.
        if id != MailboxId::SERVER {
            let modseq = self.next_modseq();
            self.mailbox_mut(id)?.highest_modseq = modseq;
            self.pending.mailboxes.insert(id);
        }
        Ok(())
    }

    /// A mailbox is deleted: its entries go with it.
    pub(super) fn drop_metadata(&mut self, id: MailboxId) -> Result<(), AccountError> {
        let account = self.record.id;
        self.load_metadata_names()?;
        let names = self.metadata_names.get_or_insert_with(BTreeSet::new);
        let gone: Vec<String> = names
            .iter()
            .filter(|(m, _)| *m == id)
            .map(|(_, e)| e.clone())
            .collect();
        for entry in gone {
            names.remove(&(id, entry.clone()));
            self.pending.metadata.insert((id, entry), None);
        }
        let _ = account;
        Ok(())
    }
}
