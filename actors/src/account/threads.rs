//! Threading new mail (RFC 5256 and JWZ-style): by Message-ID,
//! In-Reply-To and References, falling back on the base subject of replies.

use super::*;

impl AccountState {
    /// RFC 5256 and JWZ-style threading by Message-ID, In-Reply-To and
    /// References, falling back on the base subject of replies.
    pub(super) fn match_thread(&mut self, keys: &ThreadKeys, file: FileId) -> ThreadMatch {
        let mut refs: Vec<&String> = keys.references.iter().collect();
        for id in &keys.in_reply_to {
            if !refs.contains(&id) {
                refs.push(id);
            }
        }
        // Nearest reference first: the first one found is the parent.
        let parents_found: Vec<ThreadRef> = refs
            .iter()
            .rev()
            .filter_map(|id| self.thread_by_message_id(id))
            .collect();
        let parents: Vec<FileId> = parents_found.iter().map(|r| r.file).collect();
        let mut found = parents_found.first().copied();
        let mut missing_link = refs
            .last()
            .is_some_and(|id| self.thread_by_message_id(id).is_none());
        if found.is_none() && keys.is_reply_or_forward && !keys.base_subject.is_empty() {
            found = self.thread_by_subject(&keys.base_subject);
            missing_link = found.is_some() || missing_link;
        }
        let m = match found {
            Some(r) => ThreadMatch {
                thread: r.thread,
                parents,
                missing_link,
                muted: r.muted,
                collapsed: r.collapsed,
            },
            None => ThreadMatch {
                thread: ThreadId(file.0),
                parents: Vec::new(),
                missing_link,
                muted: false,
                collapsed: false,
            },
        };
        let r = ThreadRef {
            thread: m.thread,
            file,
            muted: m.muted,
            collapsed: m.collapsed,
        };
        let account = self.record.id;
        if let Some(id) = &keys.message_id {
            self.pending.by_message_id.insert(id.clone(), r);
            self.pending.puts.push(Record::ThreadByMessageId {
                account,
                message_id: id.clone(),
                r,
            });
        }
        if !keys.base_subject.is_empty() {
            self.pending.by_subject.insert(keys.base_subject.clone(), r);
            self.pending.puts.push(Record::ThreadBySubject {
                account,
                base_subject: keys.base_subject.clone(),
                r,
            });
        }
        m
    }

    pub(super) fn thread_by_message_id(&self, id: &str) -> Option<ThreadRef> {
        if let Some(r) = self.pending.by_message_id.get(id) {
            return Some(*r);
        }
        self.store
            .thread_by_message_id(self.record.id, id)
            .ok()
            .flatten()
    }

    pub(super) fn thread_by_subject(&self, subject: &str) -> Option<ThreadRef> {
        if let Some(r) = self.pending.by_subject.get(subject) {
            return Some(*r);
        }
        self.store
            .thread_by_subject(self.record.id, subject)
            .ok()
            .flatten()
    }
}

pub(super) struct ThreadMatch {
    pub(super) thread: ThreadId,
    pub(super) parents: Vec<FileId>,
    pub(super) missing_link: bool,
    pub(super) muted: bool,
    pub(super) collapsed: bool,
}
