//! The account actor's message changes: delivery and APPEND, flags,
//! expunge, copy and move, with the counts and tombstones they keep.

use super::*;

impl AccountState {
    pub(super) fn deliver(
        &mut self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Delivered>, AccountError> {
        // Validate the whole call before changing anything: all or none.
        let mut targets = Vec::with_capacity(messages.len());
        for m in &messages {
            targets.push(match &m.target {
                Target::Inbox => self.mailbox_by_name("INBOX")?,
                Target::Name(n) => self.mailbox_by_name(n)?,
                Target::RuleOrInbox(n) => self
                    .mailbox_by_name(n)
                    .or_else(|_| self.mailbox_by_name("INBOX"))?,
                Target::Junk => match self
                    .mailboxes
                    .values()
                    .find(|m| m.special_use == Some(SpecialUse::Junk))
                {
                    Some(m) => m.id,
                    None => self.mailbox_by_name("INBOX")?,
                },
            });
        }
        let needed: u64 = messages
            .iter()
            .map(|m| m.staged.size() + m.header_prefix.len() as u64)
            .sum();
        self.check_quota(needed, messages.len() as u64)?;
        let files: Vec<FileId> = messages
            .iter()
            .map(|_| self.store.next_file_id())
            .collect::<Result<_, _>>()
            .map_err(store_err)?;
        let now = now_unix();
        let mut delivered = Vec::with_capacity(messages.len());
        let mut added: BTreeMap<MailboxId, Vec<AddedMessage>> = BTreeMap::new();
        for ((m, mailbox), file) in messages.into_iter().zip(targets).zip(files) {
            let modseq = self.next_modseq();
            let thread = self.match_thread(&m.keys, file);
            let mb = self.mailbox_mut(mailbox)?;
            let uid = mb.uid_next;
            mb.uid_next = Uid(uid.0 + 1);
            mb.highest_modseq = modseq;
            let rec = MessageRecord {
                account: mb.account,
                mailbox,
                uid,
                file,
                modseq,
                createseq: modseq,
                flags: m.flags,
                size: m.staged.size() + m.header_prefix.len() as u64,
                internal_date: m.internal_date,
                save_date: now,
                header_prefix: m.header_prefix,
                message_id: m.keys.message_id.clone(),
                thread_id: thread.thread,
                thread_parents: thread.parents,
                missing_link: thread.missing_link,
                muted: thread.muted,
                collapsed: thread.collapsed,
                extra: m.extra,
            };
            count_in(&mut mb.counts, &rec);
            delivered.push(Delivered {
                mailbox,
                uid_validity: mb.uid_validity,
                uid,
                flags: rec.flags.clone(),
                modseq,
            });
            added.entry(mailbox).or_default().push(AddedMessage {
                uid,
                flags: rec.flags.clone(),
                modseq,
                size: rec.size,
            });
            self.pending.mailboxes.insert(mailbox);
            self.pending.place.push((m.staged, file));
            if let Some(summary) = m.summary {
                self.pending.puts.push(Record::Summary { file, summary });
            }
            self.put_message(rec);
        }
        for (mailbox, messages) in added {
            let mb = &self.mailboxes[&mailbox];
            self.pending.changes.push(Change::MessagesAdded {
                mailbox,
                name: mb.name.clone(),
                uid_validity: mb.uid_validity,
                messages,
                counts: mb.counts,
            });
        }
        Ok(delivered)
    }

    /// RFC 8508 3.3: `message` added, then the message `uid` of `mailbox`
    /// expunged. Everything that can fail is checked first (the old
    /// message is there; the new one fits the quota, counted as an APPEND
    /// would be, before the old one's room is freed), so either both
    /// happen, in one commit, or neither.
    pub(super) fn replace(
        &mut self,
        message: NewMessage,
        mailbox: MailboxId,
        uid: Uid,
    ) -> Result<Delivered, AccountError> {
        self.mailbox_mut(mailbox)?;
        let Some(old) = self.message(mailbox, uid)? else {
            return Err(AccountError::Cannot(format!(
                "message {} to replace no longer exists",
                uid.0
            )));
        };
        let delivered = self
            .deliver(vec![message])?
            .pop()
            .ok_or_else(|| AccountError::Cannot("nothing was added".into()))?;
        self.remove_all(mailbox, &[old], true)?;
        Ok(delivered)
    }

    pub(super) fn set_flags(
        &mut self,
        mailbox: MailboxId,
        uids: &[Uid],
        action: FlagAction,
        flags: &Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagsSet, AccountError> {
        self.mailbox_mut(mailbox)?;
        let mut changed = Vec::new();
        let mut modified = Vec::new();
        for &uid in uids.iter().collect::<BTreeSet<_>>() {
            let Some(mut rec) = self.message(mailbox, uid)? else {
                continue;
            };
            if unchanged_since.is_some_and(|u| rec.modseq > u) {
                modified.push(uid);
                continue;
            }
            let new = apply_flags(&rec.flags, action, flags);
            if new == rec.flags {
                continue;
            }
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(mailbox)?;
            count_out(&mut mb.counts, &rec);
            rec.flags = new;
            rec.modseq = modseq;
            count_in(&mut mb.counts, &rec);
            mb.highest_modseq = modseq;
            changed.push(MessageState {
                uid,
                flags: rec.flags.clone(),
                modseq,
            });
            self.put_message(rec);
        }
        if !changed.is_empty() {
            let mb = &self.mailboxes[&mailbox];
            self.pending.mailboxes.insert(mailbox);
            self.pending.changes.push(Change::FlagsChanged {
                mailbox,
                name: mb.name.clone(),
                messages: changed.clone(),
                counts: mb.counts,
            });
        }
        Ok(FlagsSet { changed, modified })
    }

    pub(super) fn expunge(
        &mut self,
        mailbox: MailboxId,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<Uid>, AccountError> {
        if self.mailbox_mut(mailbox)?.counts.deleted == 0 {
            return Ok(Vec::new()); // nothing carries \Deleted: no scan
        }
        let candidates: Vec<MessageRecord> = match uids {
            None => self.messages(mailbox)?,
            Some(uids) => {
                let mut v = Vec::new();
                for uid in uids.iter().collect::<BTreeSet<_>>() {
                    if let Some(r) = self.message(mailbox, *uid)? {
                        v.push(r);
                    }
                }
                v
            }
        };
        let doomed: Vec<MessageRecord> = candidates
            .into_iter()
            .filter(|r| r.flags.contains(&Flag::Deleted))
            .collect();
        self.remove_all(mailbox, &doomed, true)
    }

    /// Expunges `doomed` from `mailbox`: tombstones, counts, file removal
    /// after the commit, one change event.
    pub(super) fn remove_all(
        &mut self,
        mailbox: MailboxId,
        doomed: &[MessageRecord],
        unlink_files: bool,
    ) -> Result<Vec<Uid>, AccountError> {
        let mut removed = Vec::with_capacity(doomed.len());
        for rec in doomed {
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(mailbox)?;
            count_out(&mut mb.counts, rec);
            mb.highest_modseq = modseq;
            self.remove_message(rec, modseq);
            if unlink_files {
                self.pending.remove.push(rec.file);
            }
            removed.push(rec.uid);
        }
        let mb = self.mailbox_mut(mailbox)?;
        mb.tombstones = mb.tombstones.saturating_add(removed.len() as u32);
        if let Some(n) = tombstones_to_prune(mb.tombstones) {
            mb.tombstones -= n as u32;
            self.pending.prune.push((mailbox, n));
        }
        if !removed.is_empty() {
            let mb = &self.mailboxes[&mailbox];
            self.pending.mailboxes.insert(mailbox);
            self.pending.changes.push(Change::MessagesRemoved {
                mailbox,
                name: mb.name.clone(),
                uids: removed.clone(),
                modseq: mb.highest_modseq,
                counts: mb.counts,
            });
        }
        Ok(removed)
    }

    pub(super) fn copy(
        &mut self,
        from: MailboxId,
        uids: &[Uid],
        to: &str,
        remove: bool,
    ) -> Result<CopyResult, AccountError> {
        self.mailbox_mut(from)?;
        let dest = self.mailbox_by_name(to)?;
        if remove && dest == from {
            return Err(AccountError::Cannot(
                "cannot move messages into the mailbox they are in".into(),
            ));
        }
        let mut sources = Vec::new();
        for uid in uids.iter().collect::<BTreeSet<_>>() {
            if let Some(r) = self.message(from, *uid)? {
                sources.push(r);
            }
        }
        if !remove {
            self.check_quota(sources.iter().map(|r| r.size).sum(), sources.len() as u64)?;
        }
        // Every record owns its file. A copy is a hard link under a new file
        // id, so expunging either side never touches the other; a move keeps
        // the file (and so the thread links that name it). Ids are taken
        // before anything changes, so a failure leaves nothing half done.
        let files: Vec<FileId> = if remove {
            sources.iter().map(|s| s.file).collect()
        } else {
            sources
                .iter()
                .map(|_| self.store.next_file_id())
                .collect::<Result<_, _>>()
                .map_err(store_err)?
        };
        let now = now_unix();
        let mut pairs = Vec::with_capacity(sources.len());
        let mut added = Vec::with_capacity(sources.len());
        for (src, file) in sources.iter().zip(files) {
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(dest)?;
            let uid = mb.uid_next;
            mb.uid_next = Uid(uid.0 + 1);
            mb.highest_modseq = modseq;
            let rec = MessageRecord {
                mailbox: dest,
                uid,
                file,
                modseq,
                createseq: modseq,
                save_date: now,
                ..src.clone()
            };
            count_in(&mut mb.counts, &rec);
            added.push(AddedMessage {
                uid,
                flags: rec.flags.clone(),
                modseq,
                size: rec.size,
            });
            pairs.push((src.uid, uid));
            if !remove {
                self.pending.link.push((src.file, file));
            }
            self.put_message(rec);
        }
        let mb = &self.mailboxes[&dest];
        let result = CopyResult {
            uid_validity: mb.uid_validity,
            pairs,
        };
        if !added.is_empty() {
            self.pending.mailboxes.insert(dest);
            self.pending.changes.push(Change::MessagesAdded {
                mailbox: dest,
                name: mb.name.clone(),
                uid_validity: mb.uid_validity,
                messages: added,
                counts: mb.counts,
            });
        }
        if remove {
            self.remove_all(from, &sources, false)?;
        }
        Ok(result)
    }
}

pub(super) fn apply_flags(old: &Flags, action: FlagAction, flags: &Flags) -> Flags {
    match action {
        FlagAction::Replace => flags.clone(),
        FlagAction::Add => {
            let mut f = old.clone();
            for flag in flags.iter() {
                f.insert(flag.clone());
            }
            f
        }
        FlagAction::Remove => {
            let mut f = old.clone();
            for flag in flags.iter() {
                f.remove(flag);
            }
            f
        }
    }
}

/// How many tombstones to prune from a mailbox that keeps `count`.
pub(super) fn tombstones_to_prune(count: u32) -> Option<usize> {
    (count > MAX_TOMBSTONES).then(|| (count - KEEP_TOMBSTONES) as usize)
}

pub(super) fn count_in(c: &mut MailboxCounts, rec: &MessageRecord) {
    c.total += 1;
    c.size += rec.size;
    if !rec.flags.contains(&Flag::Seen) {
        c.unseen += 1;
    }
    if rec.flags.contains(&Flag::Deleted) {
        c.deleted += 1;
    }
}

pub(super) fn count_out(c: &mut MailboxCounts, rec: &MessageRecord) {
    c.total = c.total.saturating_sub(1);
    c.size = c.size.saturating_sub(rec.size);
    if !rec.flags.contains(&Flag::Seen) {
        c.unseen = c.unseen.saturating_sub(1);
    }
    if rec.flags.contains(&Flag::Deleted) {
        c.deleted = c.deleted.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_are_pruned_past_the_limit_down_to_the_keep() {
        assert_eq!(tombstones_to_prune(MAX_TOMBSTONES), None);
        assert_eq!(
            tombstones_to_prune(MAX_TOMBSTONES + 1),
            Some((MAX_TOMBSTONES + 1 - KEEP_TOMBSTONES) as usize)
        );
    }
}
