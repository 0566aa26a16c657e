//! The account actor's mailbox changes: create, rename (INBOX too),
//! delete and subscribe, and the mailbox actors it starts, lets linger and
//! stops.

use super::*;

impl AccountState {
    pub(super) fn create_mailbox(
        &mut self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxId, AccountError> {
        let name = validate_name(name)?;
        if self.mailbox_by_name(&name).is_ok() {
            return Err(AccountError::AlreadyExists(name));
        }
        let id = self.create_with_superiors(&name)?;
        if let Some(su) = special_use {
            self.mailbox_mut(id)?.special_use = Some(su);
        }
        Ok(id)
    }

    /// Creates `name` and, RFC 9051 6.3.4, any superior name that is
    /// missing; checks the mailbox budget for all of them first.
    pub(super) fn create_with_superiors(&mut self, name: &str) -> Result<MailboxId, AccountError> {
        let missing: Vec<String> = name
            .match_indices(MAILBOX_DELIMITER)
            .map(|(i, _)| name[..i].to_string())
            .chain(std::iter::once(name.to_string()))
            .filter(|n| self.mailbox_by_name(n).is_err())
            .collect();
        if self.mailboxes.len() + missing.len() > MAX_MAILBOXES {
            return Err(AccountError::Cannot(format!(
                "an account may have at most {MAX_MAILBOXES} mailboxes"
            )));
        }
        let mut id = None;
        for n in missing {
            id = Some(self.create_one(n)?);
        }
        id.map_or_else(|| self.mailbox_by_name(name), Ok)
    }

    pub(super) fn create_one(&mut self, name: String) -> Result<MailboxId, AccountError> {
        if self.mailboxes.len() >= MAX_MAILBOXES {
            return Err(AccountError::Cannot(format!(
                "an account may have at most {MAX_MAILBOXES} mailboxes"
            )));
        }
        let id = MailboxId(self.record.next_mailbox_id);
        self.record.next_mailbox_id += 1;
        let validity = UidValidity(self.record.next_uid_validity);
        self.record.next_uid_validity += 1;
        let modseq = self.next_modseq();
        self.mailboxes.insert(
            id,
            MailboxRecord {
                account: self.record.id,
                id,
                name: name.clone(),
                uid_validity: validity,
                uid_next: Uid(1),
                special_use: None,
                subscribed: true,
                highest_modseq: modseq,
                counts: MailboxCounts::default(),
                tombstones: 0,
            },
        );
        self.pending.mailboxes.insert(id);
        self.pending
            .changes
            .push(Change::MailboxAdded { mailbox: id, name });
        Ok(id)
    }

    pub(super) fn rename_mailbox(&mut self, from: &str, to: &str) -> Result<(), AccountError> {
        let id = self.mailbox_by_name(from)?;
        let old = self.mailboxes[&id].name.clone();
        let to = validate_name(to)?;
        if old == "INBOX" {
            return self.rename_inbox(id, &to);
        }
        if self.mailbox_by_name(&to).is_ok() {
            return Err(AccountError::AlreadyExists(to));
        }
        if to.starts_with(&format!("{old}{MAILBOX_DELIMITER}")) {
            return Err(AccountError::Cannot(format!(
                "{old} cannot be moved below itself"
            )));
        }
        // RFC 9051 6.3.6: inferior hierarchical names are renamed too.
        let child_prefix = format!("{old}{MAILBOX_DELIMITER}");
        let renamed: Vec<(MailboxId, String)> = self
            .mailboxes
            .values()
            .filter(|m| m.id == id || m.name.starts_with(&child_prefix))
            .map(|m| (m.id, format!("{to}{}", &m.name[old.len()..])))
            .collect();
        if let Some((_, taken)) = renamed
            .iter()
            .find(|(_, n)| self.mailbox_by_name(n).is_ok())
        {
            return Err(AccountError::AlreadyExists(taken.clone()));
        }
        if let Some((parent, _)) = to.rsplit_once(MAILBOX_DELIMITER) {
            if self.mailbox_by_name(parent).is_err() {
                self.create_with_superiors(parent)?;
            }
        }
        for (mid, new_name) in renamed {
            let modseq = self.next_modseq();
            let mb = self.mailbox_mut(mid)?;
            let old_name = std::mem::replace(&mut mb.name, new_name.clone());
            mb.highest_modseq = modseq;
            self.pending.mailboxes.insert(mid);
            self.pending.changes.push(Change::MailboxRenamed {
                mailbox: mid,
                old_name,
                name: new_name,
            });
        }
        Ok(())
    }

    /// RFC 9051 6.3.6: renaming INBOX moves its messages into a new
    /// mailbox of that name and leaves INBOX empty; INBOX's inferiors stay.
    pub(super) fn rename_inbox(&mut self, inbox: MailboxId, to: &str) -> Result<(), AccountError> {
        if self.mailbox_by_name(to).is_ok() {
            return Err(AccountError::AlreadyExists(to.to_string()));
        }
        let uids: Vec<Uid> = self.messages(inbox)?.iter().map(|m| m.uid).collect();
        self.create_with_superiors(to)?;
        self.copy(inbox, &uids, to, true)?;
        Ok(())
    }

    pub(super) async fn delete_mailbox(&mut self, name: &str) -> Result<(), AccountError> {
        let id = self.mailbox_by_name(name)?;
        let mb = self.mailboxes[&id].clone();
        if mb.name == "INBOX" {
            return Err(AccountError::Cannot("INBOX cannot be deleted".into()));
        }
        // RFC 9051 6.3.4 lets a server keep inferiors of a deleted name;
        // roost refuses instead, so no mailbox is ever left without its
        // superior (LIST would then have to invent one).
        let prefix = format!("{}{MAILBOX_DELIMITER}", mb.name);
        if self.mailboxes.values().any(|m| m.name.starts_with(&prefix)) {
            return Err(AccountError::Cannot(format!(
                "{} has mailboxes below it; delete those first",
                mb.name
            )));
        }
        for rec in self.messages(id)? {
            self.pending.messages.insert((id, rec.uid), None);
            self.pending
                .deletes
                .push(RecordKey::Message(rec.account, id, rec.uid));
            self.pending.remove.push(rec.file);
        }
        // Copies into it earlier in this batch are not in `messages` if they
        // were expunged again; their records are dropped at flush.
        for t in self
            .store
            .tombstones(self.record.id, id)
            .map_err(store_err)?
        {
            self.pending
                .deletes
                .push(RecordKey::Tombstone(t.account, t.mailbox, t.uid));
        }
        self.drop_metadata(id)?;
        self.next_modseq();
        self.mailboxes.remove(&id);
        self.pending.mailboxes.remove(&id);
        self.pending.deleted_mailboxes.push(id);
        self.indexes.remove(&id);
        if let Some(actor) = self.open.remove(&id) {
            actor.stop(Some(format!("mailbox {} was deleted", mb.name)));
        }
        self.pending.changes.push(Change::MailboxRemoved {
            mailbox: id,
            name: mb.name,
        });
        Ok(())
    }

    pub(super) fn set_subscribed(
        &mut self,
        name: &str,
        subscribed: bool,
    ) -> Result<(), AccountError> {
        let id = self.mailbox_by_name(name)?;
        let mb = self.mailbox_mut(id)?;
        let changed = mb.subscribed != subscribed;
        mb.subscribed = subscribed;
        let name = mb.name.clone();
        self.pending.mailboxes.insert(id);
        if changed {
            self.pending.changes.push(Change::SubscriptionChanged {
                mailbox: id,
                name,
                subscribed,
            });
        }
        Ok(())
    }

    /// The mailbox's live actor, started as this actor's child if needed.
    pub(super) async fn mailbox_actor(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        id: MailboxId,
    ) -> Result<ActorRef<MailboxMsg>, AccountError> {
        if let Some(a) = self.open.get(&id) {
            return Ok(a.clone());
        }
        let actor_name = format!("mailbox:{}/{}", self.record.name, id);
        let index = MailboxIndex::loading();
        let watchers = Arc::new(Watchers::default());
        let args = MailboxArgs {
            store: self.store.clone(),
            account: self.record.id,
            mailbox: id,
            index: index.clone(),
            watchers: watchers.clone(),
        };
        let (actor, _) = Actor::spawn_linked(
            Some(actor_name.clone()),
            MailboxActor,
            args,
            myself.get_cell(),
        )
        .await
        .map_err(|e| AccountError::Store(format!("cannot open mailbox: {e}")))?;
        self.registry.register(
            &actor.get_cell(),
            ActorKind::Mailbox,
            actor_name,
            Some(&myself.get_cell()),
            0,
        );
        self.open.insert(id, actor.clone());
        self.indexes.insert(id, (index, watchers));
        Ok(actor)
    }

    pub(super) async fn close_mailbox(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        mailbox: MailboxId,
        subscriber: u64,
    ) {
        let Some(actor) = self.open.get(&mailbox).cloned() else {
            return;
        };
        // The last subscriber left: the actor lingers, then goes unless
        // someone subscribed meanwhile.
        if let Ok(0) = ractor::call!(actor, MailboxMsg::Unsubscribe, subscriber) {
            let (me, id, linger) = (myself.clone(), actor.get_id(), self.mailbox_linger);
            tokio::spawn(async move {
                tokio::time::sleep(linger).await;
                let _ = me.cast(AccountMsg::MailboxIdle { mailbox, actor: id });
            });
        }
    }

    /// Stops a lingering mailbox actor that still has no subscriber; asking
    /// it here, in the account's own order, means no open can race the stop.
    pub(super) async fn stop_idle_mailbox(&mut self, mailbox: MailboxId, id: ractor::ActorId) {
        let Some(actor) = self.open.get(&mailbox).cloned() else {
            return;
        };
        if actor.get_id() != id {
            return;
        }
        // Subscriber ids start at 1: unsubscribing 0 just counts.
        if let Ok(0) = ractor::call!(actor, MailboxMsg::Unsubscribe, 0) {
            self.open.remove(&mailbox);
            self.indexes.remove(&mailbox);
            actor.stop(None);
            let _ = actor
                .get_cell()
                .wait(Some(std::time::Duration::from_secs(5)))
                .await;
        }
    }
}

/// `INBOX` is case-insensitive (RFC 9051 5.1); other names are kept as given.
pub fn normalize_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    }
}

pub(super) fn validate_name(name: &str) -> Result<String, AccountError> {
    let name = normalize_name(name.trim_end_matches(MAILBOX_DELIMITER));
    if name.is_empty() {
        return Err(AccountError::Cannot(
            "a mailbox name cannot be empty".into(),
        ));
    }
    if name.len() > MAX_MAILBOX_NAME {
        return Err(AccountError::Cannot(format!(
            "a mailbox name may be at most {MAX_MAILBOX_NAME} bytes"
        )));
    }
    if name.chars().any(|c| c.is_control() || c == '*' || c == '%')
        || name.starts_with(MAILBOX_DELIMITER)
        || name.contains("//")
    {
        return Err(AccountError::Cannot(format!(
            "{name:?} is not a valid mailbox name"
        )));
    }
    Ok(name)
}
