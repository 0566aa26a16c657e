//! The thread index's reference counts.
//!
//! A message-id or base-subject entry of the thread index stays while a
//! message file that carries it stays, and goes with the last one: without
//! that the index would grow with every message ever received, expunged or
//! not. Each file that wrote entries remembers which (`FILE_THREAD`); a copy
//! of the file counts again; a file that goes counts down. Entries written
//! before the counts existed have none and are never removed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::records::{AccountId, FileId, ThreadId, ThreadRef};
use crate::{encode, keys, Result};

/// A thread-index entry as stored: the [`ThreadRef`] readers decode, and
/// how many message files carry its key (`None`: written before counting).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct CountedRef {
    thread: ThreadId,
    file: FileId,
    muted: bool,
    collapsed: bool,
    #[serde(default)]
    refs: Option<u32>,
}

/// The thread-index keys one message file wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FileKeys {
    message_id: Option<String>,
    base_subject: Option<String>,
}

impl FileKeys {
    fn index_keys(&self, account: AccountId) -> Vec<Vec<u8>> {
        let by_id = self
            .message_id
            .iter()
            .map(|id| keys::thread_by_message_id(account, id));
        let by_subject = self
            .base_subject
            .iter()
            .map(|s| keys::thread_by_subject(account, s));
        by_id.chain(by_subject).collect()
    }
}

/// Which key of the thread index a put names.
pub(crate) enum ThreadKey<'a> {
    MessageId(&'a str),
    Subject(&'a str),
}

/// One commit's changes to the thread index and its counts, read through
/// to the database, so that changes to one entry in one commit add up.
/// [`ThreadChanges::write`] puts the outcome into the commit's batch.
pub(crate) struct ThreadChanges<'a> {
    db: &'a sled::Db,
    entries: HashMap<Vec<u8>, Option<CountedRef>>,
    files: HashMap<Vec<u8>, Option<FileKeys>>,
}

impl<'a> ThreadChanges<'a> {
    pub(crate) fn new(db: &'a sled::Db) -> ThreadChanges<'a> {
        ThreadChanges {
            db,
            entries: HashMap::new(),
            files: HashMap::new(),
        }
    }

    fn entry(&mut self, key: &[u8]) -> Result<Option<CountedRef>> {
        if let Some(e) = self.entries.get(key) {
            return Ok(*e);
        }
        let e = match self.db.get(key)? {
            Some(v) => Some(rmp_serde::from_slice(&v)?),
            None => None,
        };
        self.entries.insert(key.to_vec(), e);
        Ok(e)
    }

    fn file_keys(&mut self, key: &[u8]) -> Result<Option<FileKeys>> {
        if let Some(f) = self.files.get(key) {
            return Ok(f.clone());
        }
        let f = match self.db.get(key)? {
            Some(v) => Some(rmp_serde::from_slice(&v)?),
            None => None,
        };
        self.files.insert(key.to_vec(), f.clone());
        Ok(f)
    }

    /// A new message file `r.file` carries `which`: the entry now leads to
    /// `r`, counted once more.
    pub(crate) fn put(
        &mut self,
        account: AccountId,
        which: ThreadKey,
        r: &ThreadRef,
    ) -> Result<()> {
        let key = match which {
            ThreadKey::MessageId(id) => keys::thread_by_message_id(account, id),
            ThreadKey::Subject(s) => keys::thread_by_subject(account, s),
        };
        let refs = match self.entry(&key)? {
            None => Some(1),
            Some(old) => old.refs.map(|n| n.saturating_add(1)),
        };
        let counted = CountedRef {
            thread: r.thread,
            file: r.file,
            muted: r.muted,
            collapsed: r.collapsed,
            refs,
        };
        self.entries.insert(key, Some(counted));
        let fk = keys::file_thread(account, r.file);
        let mut keys = self.file_keys(&fk)?.unwrap_or_default();
        match which {
            ThreadKey::MessageId(id) => keys.message_id = Some(id.to_string()),
            ThreadKey::Subject(s) => keys.base_subject = Some(s.to_string()),
        }
        self.files.insert(fk, Some(keys));
        Ok(())
    }

    /// `to` is a copy of `from`'s bytes: it carries the same keys.
    pub(crate) fn link(&mut self, account: AccountId, from: FileId, to: FileId) -> Result<()> {
        let Some(keys) = self.file_keys(&keys::file_thread(account, from))? else {
            return Ok(());
        };
        for k in keys.index_keys(account) {
            if let Some(mut e) = self.entry(&k)? {
                e.refs = e.refs.map(|n| n.saturating_add(1));
                self.entries.insert(k, Some(e));
            }
        }
        self.files
            .insert(keys::file_thread(account, to), Some(keys));
        Ok(())
    }

    /// `file` goes: its keys count one less, and an entry no file carries
    /// any more goes too.
    pub(crate) fn file_removed(&mut self, account: AccountId, file: FileId) -> Result<()> {
        let fk = keys::file_thread(account, file);
        let Some(keys) = self.file_keys(&fk)? else {
            return Ok(());
        };
        for k in keys.index_keys(account) {
            if let Some(mut e) = self.entry(&k)? {
                let Some(n) = e.refs else { continue };
                if n <= 1 {
                    self.entries.insert(k, None);
                } else {
                    e.refs = Some(n - 1);
                    self.entries.insert(k, Some(e));
                }
            }
        }
        self.files.insert(fk, None);
        Ok(())
    }

    /// Puts every change into `batch`.
    pub(crate) fn write(self, batch: &mut sled::Batch) -> Result<()> {
        for (k, e) in self.entries {
            match e {
                Some(e) => batch.insert(k, encode(&e)?),
                None => batch.remove(k),
            }
        }
        for (k, f) in self.files {
            match f {
                Some(f) => batch.insert(k, encode(&f)?),
                None => batch.remove(k),
            }
        }
        Ok(())
    }
}
