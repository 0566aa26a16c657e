//! Consistency checks of one account: what the account actor promised the
//! index and the files would say, checked against what they do say. Run
//! after tests and by `roost admin check`; an empty list means consistent.
//! Nothing here repairs anything.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use roost_protocols::imap::types::{Flag, ModSeq, Uid};

use crate::error::{Result, StoreError};
use crate::keys;
use crate::records::{FileId, FileRef, MailboxCounts, MailboxId, MailboxRecord, MessageRecord};
use crate::Store;

/// Segment slices by (segment, offset), with how many messages name each.
type SliceUses = BTreeMap<(u64, u64), (crate::segments::Slice, u32)>;

/// A message or an expunged UID, for naming where a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub mailbox: MailboxId,
    pub uid: Uid,
    /// True for a tombstone.
    pub expunged: bool,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.expunged {
            "expunged UID"
        } else {
            "message UID"
        };
        write!(f, "{what} {} in mailbox {}", self.uid, self.mailbox)
    }
}

/// One inconsistency found by [`Store::check_consistency`].
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The counts kept on the mailbox differ from its messages.
    CountsMismatch {
        mailbox: MailboxId,
        name: String,
        stored: MailboxCounts,
        actual: MailboxCounts,
    },
    /// RFC 9051 2.3.1.1: UIDNEXT must exceed every UID ever assigned.
    UidNotBelowUidNext { place: Place, uid_next: Uid },
    /// A message or tombstone in a mailbox that does not exist.
    NoSuchMailbox { place: Place },
    /// The message's file is missing.
    MissingFile {
        place: Place,
        file: FileId,
        path: PathBuf,
    },
    /// The file's size is not the record's size less its header prefix.
    FileSizeMismatch {
        place: Place,
        file: FileId,
        expected: u64,
        actual: u64,
    },
    /// Two changes share one modseq.
    DuplicateModSeq {
        modseq: ModSeq,
        first: Place,
        second: Place,
    },
    /// Two messages share one createseq.
    DuplicateCreateSeq {
        createseq: ModSeq,
        first: Place,
        second: Place,
    },
    /// A modseq beyond the account's last allocated one.
    /// A message's compact state (modseq and flags) is missing, differs
    /// from its record, or is left over from a message that is gone.
    MessageStateMismatch { place: Place },
    /// A tombstone and the modseq index of tombstones disagree: one has an
    /// entry the other lacks.
    VanishedIndexMismatch { place: Place, modseq: ModSeq },
    ModSeqAboveLast {
        place: Place,
        modseq: ModSeq,
        last: ModSeq,
    },
    /// RFC 7162 3.1.2: HIGHESTMODSEQ must be at least every modseq in the mailbox.
    HighestModSeqTooLow {
        mailbox: MailboxId,
        name: String,
        highest: ModSeq,
        seen: ModSeq,
    },
    /// A mailbox's HIGHESTMODSEQ beyond the account's last allocated modseq.
    HighestModSeqAboveLast {
        mailbox: MailboxId,
        name: String,
        highest: ModSeq,
        last: ModSeq,
    },
    /// The message's file has no entry in the file index.
    FileIndexMissing { place: Place, file: FileId },
    /// The file index sends the message's file to another message.
    FileIndexWrong {
        place: Place,
        file: FileId,
        points_to: Place,
    },
    /// A file index entry names a message that does not exist or has
    /// another file.
    FileIndexDangling { file: FileId, points_to: Place },
    /// A segment slice's count of file ids is not the number of this
    /// account's messages that name it (slices are never shared between
    /// accounts). Too high leaks its bytes; too low would reclaim them
    /// while a message still names them.
    SliceRefsMismatch {
        segment: u64,
        offset: u64,
        refs: u32,
        used: u32,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MessageStateMismatch { place } => {
                write!(f, "{place}: its compact state disagrees with its record")
            }
            Problem::VanishedIndexMismatch { place, modseq } => write!(
                f,
                "{place}: tombstone and its modseq index entry (modseq {modseq}) disagree"
            ),
            Problem::CountsMismatch {
                mailbox,
                name,
                stored,
                actual,
            } => write!(
                f,
                "mailbox {mailbox} ({name}) records {} messages, {} unseen, {} deleted, {} bytes, \
                 but holds {} messages, {} unseen, {} deleted, {} bytes",
                stored.total,
                stored.unseen,
                stored.deleted,
                stored.size,
                actual.total,
                actual.unseen,
                actual.deleted,
                actual.size
            ),
            Problem::UidNotBelowUidNext { place, uid_next } => {
                write!(f, "{place} is not below the mailbox's UIDNEXT {uid_next}")
            }
            Problem::NoSuchMailbox { place } => {
                write!(f, "{place} belongs to a mailbox that does not exist")
            }
            Problem::MissingFile { place, file, path } => write!(
                f,
                "{place} has no message file {file} (expected at {})",
                path.display()
            ),
            Problem::FileSizeMismatch {
                place,
                file,
                expected,
                actual,
            } => write!(
                f,
                "{place}: message file {file} has {actual} bytes, the record says {expected}"
            ),
            Problem::DuplicateModSeq {
                modseq,
                first,
                second,
            } => write!(f, "{first} and {second} share modseq {modseq}"),
            Problem::DuplicateCreateSeq {
                createseq,
                first,
                second,
            } => write!(f, "{first} and {second} share createseq {createseq}"),
            Problem::ModSeqAboveLast {
                place,
                modseq,
                last,
            } => write!(
                f,
                "{place} has modseq {modseq}, above the account's last modseq {last}"
            ),
            Problem::HighestModSeqTooLow {
                mailbox,
                name,
                highest,
                seen,
            } => write!(
                f,
                "mailbox {mailbox} ({name}) has HIGHESTMODSEQ {highest} but holds modseq {seen}"
            ),
            Problem::HighestModSeqAboveLast {
                mailbox,
                name,
                highest,
                last,
            } => write!(
                f,
                "mailbox {mailbox} ({name}) has HIGHESTMODSEQ {highest}, above the account's \
                 last modseq {last}"
            ),
            Problem::FileIndexMissing { place, file } => {
                write!(f, "{place}: file {file} is missing from the file index")
            }
            Problem::FileIndexWrong {
                place,
                file,
                points_to,
            } => write!(
                f,
                "{place}: the file index sends file {file} to {points_to} instead"
            ),
            Problem::FileIndexDangling { file, points_to } => write!(
                f,
                "the file index sends file {file} to {points_to}, which does not hold it"
            ),
            Problem::SliceRefsMismatch {
                segment,
                offset,
                refs,
                used,
            } => write!(
                f,
                "segment {segment:x} slice at {offset} counts {refs} file ids, {used} messages name it"
            ),
        }
    }
}

/// Counts as the account actor should have kept them.
fn counts_of(messages: &[MessageRecord]) -> MailboxCounts {
    let mut c = MailboxCounts::default();
    for m in messages {
        c.total += 1;
        if !m.flags.contains(&Flag::Seen) {
            c.unseen += 1;
        }
        if m.flags.contains(&Flag::Deleted) {
            c.deleted += 1;
        }
        c.size += m.size;
    }
    c
}

fn place_of(m: &MessageRecord) -> Place {
    Place {
        mailbox: m.mailbox,
        uid: m.uid,
        expunged: false,
    }
}

/// Remembers where each sequence value was first seen and reports repeats.
#[derive(Default)]
struct Unique(HashMap<ModSeq, Place>);

impl Unique {
    fn see(&mut self, v: ModSeq, p: Place) -> Option<Place> {
        match self.0.get(&v) {
            Some(first) => Some(*first),
            None => {
                self.0.insert(v, p);
                None
            }
        }
    }
}

impl Store {
    /// Checks one account. `Ok(vec![])` means consistent.
    pub fn check_consistency(&self, account_name: &str) -> Result<Vec<Problem>> {
        let account = self
            .account(account_name)?
            .ok_or_else(|| StoreError::NotFound(format!("account {account_name}")))?;
        let id = account.id;
        let last = account.last_modseq;
        let mailboxes: BTreeMap<MailboxId, MailboxRecord> =
            self.mailboxes(id)?.into_iter().map(|m| (m.id, m)).collect();
        let mut problems = Vec::new();

        let mut by_mailbox: BTreeMap<MailboxId, Vec<MessageRecord>> = BTreeMap::new();
        for m in self.scan::<MessageRecord>(&keys::account_prefix(keys::MESSAGE, id))? {
            by_mailbox.entry(m.mailbox).or_default().push(m);
        }
        let tombstones =
            self.scan::<crate::Tombstone>(&keys::account_prefix(keys::TOMBSTONE, id))?;

        let mut modseqs = Unique::default();
        let mut createseqs = Unique::default();
        let mut highest_seen: BTreeMap<MailboxId, ModSeq> = BTreeMap::new();
        let mut check_seq = |place: Place, modseq: ModSeq, problems: &mut Vec<Problem>| {
            if let Some(first) = modseqs.see(modseq, place) {
                problems.push(Problem::DuplicateModSeq {
                    modseq,
                    first,
                    second: place,
                });
            }
            if modseq > last {
                problems.push(Problem::ModSeqAboveLast {
                    place,
                    modseq,
                    last,
                });
            }
            let h = highest_seen.entry(place.mailbox).or_insert(modseq);
            *h = (*h).max(modseq);
            match mailboxes.get(&place.mailbox) {
                None => problems.push(Problem::NoSuchMailbox { place }),
                Some(mb) if place.uid >= mb.uid_next => {
                    problems.push(Problem::UidNotBelowUidNext {
                        place,
                        uid_next: mb.uid_next,
                    })
                }
                Some(_) => {}
            }
        };

        // How many messages name each segment slice.
        let mut used: SliceUses = BTreeMap::new();
        for messages in by_mailbox.values() {
            for m in messages {
                let place = place_of(m);
                check_seq(place, m.modseq, &mut problems);
                if let Some(first) = createseqs.see(m.createseq, place) {
                    problems.push(Problem::DuplicateCreateSeq {
                        createseq: m.createseq,
                        first,
                        second: place,
                    });
                }
                if let Some(s) = self.check_file(m, &mut problems)? {
                    used.entry((s.segment, s.offset)).or_insert((s, 0)).1 += 1;
                }
            }
        }
        for t in &tombstones {
            let place = Place {
                mailbox: t.mailbox,
                uid: t.uid,
                expunged: true,
            };
            check_seq(place, t.modseq, &mut problems);
        }
        // Every message has its compact state, equal to its record's.
        let mut states: BTreeMap<(MailboxId, Uid), (ModSeq, roost_protocols::imap::types::Flags)> =
            BTreeMap::new();
        for mb in mailboxes.keys() {
            for (uid, modseq, flags) in self.message_states(id, *mb)? {
                states.insert((*mb, uid), (modseq, flags));
            }
        }
        for messages in by_mailbox.values() {
            for m in messages {
                let same = states
                    .remove(&(m.mailbox, m.uid))
                    .is_some_and(|(modseq, flags)| modseq == m.modseq && flags == m.flags);
                if !same {
                    problems.push(Problem::MessageStateMismatch { place: place_of(m) });
                }
            }
        }
        for (mailbox, uid) in states.into_keys() {
            let place = Place {
                mailbox,
                uid,
                expunged: false,
            };
            problems.push(Problem::MessageStateMismatch { place });
        }
        // Every tombstone has its entry in the modseq index, and no entry
        // is left without its tombstone.
        let mut indexed = std::collections::BTreeSet::new();
        for k in self
            .inner
            .db
            .scan_prefix(keys::account_prefix(keys::VANISHED, id))
            .keys()
        {
            let k = k?;
            let mailbox = MailboxId(u32::from_be_bytes(
                k.get(5..9)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or_default(),
            ));
            if let Some((modseq, uid)) = keys::vanished_parts(&k) {
                indexed.insert((mailbox, uid, modseq));
            }
        }
        for t in &tombstones {
            if !indexed.remove(&(t.mailbox, t.uid, t.modseq)) {
                let place = Place {
                    mailbox: t.mailbox,
                    uid: t.uid,
                    expunged: true,
                };
                problems.push(Problem::VanishedIndexMismatch {
                    place,
                    modseq: t.modseq,
                });
            }
        }
        for (mailbox, uid, modseq) in indexed {
            let place = Place {
                mailbox,
                uid,
                expunged: true,
            };
            problems.push(Problem::VanishedIndexMismatch { place, modseq });
        }

        for mb in mailboxes.values() {
            let actual = counts_of(by_mailbox.get(&mb.id).map_or(&[][..], |v| v));
            if actual != mb.counts {
                problems.push(Problem::CountsMismatch {
                    mailbox: mb.id,
                    name: mb.name.clone(),
                    stored: mb.counts,
                    actual,
                });
            }
            if let Some(&seen) = highest_seen.get(&mb.id) {
                if seen > mb.highest_modseq {
                    problems.push(Problem::HighestModSeqTooLow {
                        mailbox: mb.id,
                        name: mb.name.clone(),
                        highest: mb.highest_modseq,
                        seen,
                    });
                }
            }
            if mb.highest_modseq > last {
                problems.push(Problem::HighestModSeqAboveLast {
                    mailbox: mb.id,
                    name: mb.name.clone(),
                    highest: mb.highest_modseq,
                    last,
                });
            }
        }

        self.check_file_index(id, &by_mailbox, &mut problems)?;
        self.check_slice_refs(used, &mut problems)?;
        Ok(problems)
    }

    /// Checks the message's bytes; returns its segment slice, if it has
    /// one.
    fn check_file(
        &self,
        m: &MessageRecord,
        problems: &mut Vec<Problem>,
    ) -> Result<Option<crate::segments::Slice>> {
        let place = place_of(m);
        let expected = m.size.saturating_sub(m.header_prefix.len() as u64);
        if let Some(slice) = self.content_slice(m.file)? {
            self.check_slice(m, slice, expected, problems)?;
            return Ok(Some(slice));
        }
        let path = self.message_path(m.file);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() != expected || m.size < m.header_prefix.len() as u64 => {
                problems.push(Problem::FileSizeMismatch {
                    place,
                    file: m.file,
                    expected,
                    actual: meta.len(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(Problem::MissingFile {
                    place,
                    file: m.file,
                    path,
                });
            }
            Err(e) => return Err(StoreError::io(path, e)),
        }
        Ok(None)
    }

    /// A message in a segment: its slice is indexed (else it may be
    /// punched at any time), as long as the record says, and inside the
    /// segment file.
    fn check_slice(
        &self,
        m: &MessageRecord,
        slice: crate::segments::Slice,
        expected: u64,
        problems: &mut Vec<Problem>,
    ) -> Result<()> {
        let place = place_of(m);
        let path = self.segment_path(slice.segment);
        let indexed = self.slice_use(slice)?.is_some_and(|u| u.len == slice.len);
        let on_disk = match std::fs::metadata(&path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io(path, e)),
        };
        match on_disk {
            Some(len) if indexed => {
                let actual = len.saturating_sub(slice.offset).min(slice.len);
                if actual != expected || m.size < m.header_prefix.len() as u64 {
                    problems.push(Problem::FileSizeMismatch {
                        place,
                        file: m.file,
                        expected,
                        actual,
                    });
                }
            }
            _ => problems.push(Problem::MissingFile {
                place,
                file: m.file,
                path,
            }),
        }
        Ok(())
    }

    /// Each slice's stored count against the messages that name it.
    fn check_slice_refs(&self, used: SliceUses, problems: &mut Vec<Problem>) -> Result<()> {
        for ((segment, offset), (slice, n)) in used {
            let refs = self.slice_use(slice)?.map_or(0, |u| u.refs);
            if refs != n {
                problems.push(Problem::SliceRefsMismatch {
                    segment,
                    offset,
                    refs,
                    used: n,
                });
            }
        }
        Ok(())
    }

    fn check_file_index(
        &self,
        id: crate::AccountId,
        by_mailbox: &BTreeMap<MailboxId, Vec<MessageRecord>>,
        problems: &mut Vec<Problem>,
    ) -> Result<()> {
        let mut index: HashMap<FileId, FileRef> = HashMap::new();
        for kv in self
            .inner
            .db
            .scan_prefix(keys::account_prefix(keys::FILE, id))
        {
            let (k, v) = kv?;
            let Some(file) = keys::file_id_of(&k) else {
                continue;
            };
            index.insert(file, rmp_serde::from_slice(&v)?);
        }
        let to_place = |r: &FileRef| Place {
            mailbox: r.mailbox,
            uid: r.uid,
            expunged: false,
        };
        for m in by_mailbox.values().flatten() {
            let place = place_of(m);
            match index.get(&m.file) {
                None => problems.push(Problem::FileIndexMissing {
                    place,
                    file: m.file,
                }),
                Some(r) if to_place(r) != place => problems.push(Problem::FileIndexWrong {
                    place,
                    file: m.file,
                    points_to: to_place(r),
                }),
                Some(_) => {}
            }
        }
        for (file, r) in &index {
            let holds = by_mailbox
                .get(&r.mailbox)
                .and_then(|ms| {
                    ms.binary_search_by_key(&r.uid, |m| m.uid)
                        .ok()
                        .map(|i| &ms[i])
                })
                .is_some_and(|m| m.file == *file);
            if !holds {
                problems.push(Problem::FileIndexDangling {
                    file: *file,
                    points_to: to_place(r),
                });
            }
        }
        Ok(())
    }
}
