//! APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), APPENDUID
//! (RFC 4315 3), APPENDLIMIT (RFC 7889) and literal8 (RFC 3516 4.4).
//!
//! The framer streams each message literal here; its bytes go straight
//! into a staged file, written and fsynced off the async workers, so a
//! message never sits in memory whole. Before a literal is accepted the
//! session checks its size against [`append_limit`] and asks the account
//! whether the mailbox exists and the quota has room, so a synchronizing
//! literal that would fail is never sent. All of a MULTIAPPEND's messages
//! are added in one call to the account actor: all of them, or none.
//!
//! REPLACE and UID REPLACE (RFC 8508) come the same way with one message
//! and the message it replaces, resolved to a UID when the command
//! starts; the account actor adds the new one and expunges the old one
//! in one call, both or neither.
//!
//! A CATENATE message (RFC 4469) is built in its staged file part by
//! part: TEXT literals stream in like a message literal, URL parts are
//! read from the user's own messages off the async workers. Its size is
//! held to APPENDLIMIT as it grows, and it joins the others in the one
//! all-or-nothing call.

use super::messages::uid_list;
use super::{Done, ImapState};
use crate::account::{AccountError, Delivered, NewMessage, Target};
use crate::client::{AccountClient, ClientError};
use crate::task::blocking;
use crate::time::now_unix;
use roost_protocols::imap::append::ReplaceTarget;
use roost_protocols::imap::append::{parse_first_head, parse_next_head, AppendHead, AppendOptions};
use roost_protocols::imap::catenate::{parse_url, AppendItem, AppendState};
use roost_protocols::imap::response::{self, Code, Status};
use roost_protocols::imap::section::locate;
use roost_protocols::imap::seqset::SeqSet;
use roost_protocols::imap::state::SessionState;
use roost_protocols::imap::types::{Flags, Uid};
use roost_protocols::message::header::header_end;
use roost_protocols::message::thread::ThreadKeys;
use roost_store::{MailboxId, StagedWriter, StoreError};
use std::io::Write;
use std::sync::Arc;

/// An APPEND whose messages are arriving.
pub(super) struct Append {
    tag: String,
    mailbox: String,
    /// Messages received whole and staged.
    done: Vec<NewMessage>,
    /// The message whose literal is arriving.
    current: Option<Receiving>,
    /// Bytes of every message so far, for the quota.
    bytes: u64,
    /// What went wrong after a literal was accepted: the rest of the
    /// command is read and dropped, then this is the answer.
    failed: Option<Done>,
    /// REPLACE: the selected mailbox and the UID of the message replaced.
    replaces: Option<(MailboxId, Uid)>,
    /// Where the command's next segment starts (RFC 4469 parts).
    state: AppendState,
}

struct Receiving {
    writer: Option<StagedWriter>,
    options: AppendOptions,
    /// RFC 4469: the message comes as CATENATE parts.
    catenate: bool,
    /// Bytes of this message so far.
    size: u64,
}

/// RFC 7889: the largest message APPEND takes, the same limit SMTP puts
/// on a message.
pub(super) fn append_limit(state: &ImapState) -> u64 {
    state.services.max_message_size
}

impl ImapState {
    /// An APPEND message literal (or CATENATE TEXT part) was announced
    /// with `head` before it.
    pub(super) async fn append_literal(&mut self, head: &[u8], size: u64) {
        let started = match self.append.take() {
            Some(a) => self.next_message(a, head),
            None => self.first_message(head),
        };
        let Some((mut append, items)) = started else {
            self.framer.refuse_literal();
            return;
        };
        if append.failed.is_none() {
            if let Err(done) = self.append_items(&mut append, items).await {
                append.failed = Some(done);
            }
        }
        if let Some(done) = append.failed.take() {
            self.framer.refuse_literal();
            return self.finish(&append.tag, done);
        }
        let limit = append_limit(self);
        let so_far = append.current.as_ref().map_or(0, |c| c.size);
        if so_far.saturating_add(size) > limit {
            self.framer.refuse_literal();
            let text = format!(
                "Message of {} bytes is larger than APPENDLIMIT {limit}",
                so_far.saturating_add(size)
            );
            return self.finish(&append.tag, Done::no_code(Code::TooBig, text));
        }
        let Some((account, _)) = self.account() else {
            self.framer.refuse_literal();
            return self.finish(&append.tag, Done::no("Not logged in"));
        };
        let (account, mailbox, bytes) = (
            account.to_string(),
            append.mailbox.clone(),
            append.bytes + size,
        );
        let allowed = AccountClient::new(&account)
            .can_append(&mailbox, bytes)
            .await;
        let refusal = allowed.err().map(append_no);
        if let Some(done) = refusal {
            self.framer.refuse_literal();
            return self.finish(&append.tag, done);
        }
        if let Err(done) = self.ensure_writer(&mut append).await {
            self.framer.refuse_literal();
            return self.finish(&append.tag, done);
        }
        append.bytes = bytes;
        if let Some(current) = &mut append.current {
            current.size += size;
        }
        self.append = Some(append);
        if self.framer.accept_literal() {
            response::continuation(&mut self.out, "Ready for literal data");
            let _ = self.flush_out().await;
        }
    }

    /// The current message's staged file, made when its first bytes come.
    async fn ensure_writer(&mut self, append: &mut Append) -> Result<(), Done> {
        let Some(current) = &mut append.current else {
            return Err(Done::bad("No message is being received"));
        };
        if current.writer.is_none() {
            // Staging starts in memory: no I/O here.
            let writer = self
                .services
                .store
                .stage()
                .map_err(|e| Done::no(format!("Cannot store: {e}")))?;
            current.writer = Some(writer);
        }
        Ok(())
    }

    /// Acts on what a segment said: messages begin, URL parts are read
    /// into the message, CATENATE part lists end (and their message with
    /// them).
    async fn append_items(
        &mut self,
        append: &mut Append,
        items: Vec<AppendItem>,
    ) -> Result<(), Done> {
        for item in items {
            match item {
                AppendItem::Message { options, catenate } => {
                    if append.current.is_some() {
                        return Err(Done::bad("A message began before the last one ended"));
                    }
                    append.current = Some(Receiving {
                        writer: None,
                        options,
                        catenate,
                        size: 0,
                    });
                }
                AppendItem::Url(url) => {
                    let part = self.url_part(&url).await?;
                    let limit = append_limit(self);
                    let added = part.len() as u64;
                    let size = append.current.as_ref().map_or(0, |c| c.size) + added;
                    if size > limit {
                        let text =
                            format!("Message of {size} bytes is larger than APPENDLIMIT {limit}");
                        return Err(Done::no_code(Code::TooBig, text));
                    }
                    self.ensure_writer(append).await?;
                    let Some(current) = &mut append.current else {
                        return Err(Done::bad("No message is being received"));
                    };
                    let Some(mut writer) = current.writer.take() else {
                        return Err(Done::bad("No message is being received"));
                    };
                    let writer = blocking(move || writer.write_all(&part).map(|()| writer))
                        .await
                        .map_err(|e| Done::no(format!("Cannot store: {e}")))?;
                    current.writer = Some(writer);
                    current.size = size;
                    append.bytes += added;
                }
                AppendItem::EndParts => self.finish_message(append).await?,
                AppendItem::Text | AppendItem::Literal => {}
            }
        }
        Ok(())
    }

    /// RFC 4469 5 with RFC 5092: the bytes a URL part names, from the
    /// user's own messages; anything else is `[BADURL url]`.
    async fn url_part(&mut self, url: &str) -> Result<Vec<u8>, Done> {
        let bad = |why: String| Done::no_code(Code::Other(format!("BADURL {url}")), why);
        let parsed = parse_url(url).map_err(bad)?;
        let Some((account, account_id)) = self.account() else {
            return Err(Done::no("Not logged in"));
        };
        if parsed
            .user
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(account))
        {
            return Err(bad("The URL names another user".into()));
        }
        // Names go as UTF-8; a rev1 client may give modified UTF-7.
        let names = [
            parsed.mailbox.clone(),
            self.mailbox_in(&parsed.mailbox).unwrap_or_default(),
        ];
        let limit = append_limit(self);
        let store = self.services.store.clone();
        let read = blocking(move || {
            let Some(mailbox) = store
                .mailboxes(account_id)?
                .into_iter()
                .find(|m| names.contains(&m.name))
            else {
                return Ok(Err("No such mailbox"));
            };
            if parsed
                .uid_validity
                .is_some_and(|v| v != mailbox.uid_validity.0)
            {
                return Ok(Err("The mailbox's UIDVALIDITY has changed"));
            }
            let Some(rec) = store.message(account_id, mailbox.id, Uid(parsed.uid))? else {
                return Ok(Err("No such message"));
            };
            let partial = parsed.partial.map(|(o, l)| (o, l.unwrap_or(u32::MAX)));
            let reader = store.open_message(&rec)?;
            if parsed.section == Default::default() {
                // The whole message, or a range of it: only those bytes
                // are read.
                let (start, len) = partial.map_or((0, u64::MAX), |(o, l)| (o.into(), l.into()));
                let len = len.min(reader.len().saturating_sub(start));
                if len > limit {
                    return Ok(Err("The part is larger than APPENDLIMIT"));
                }
                return Ok(Ok(reader.read_at(start, len as usize)?));
            }
            // A section is found in the message, read whole (it is at
            // most APPENDLIMIT, as every stored message).
            let bytes = reader.read_all()?;
            let Some(data) = locate(&bytes, &parsed.section) else {
                return Ok(Err("No such section"));
            };
            Ok::<_, StoreError>(Ok(data.partial(partial).bytes(&bytes).to_vec()))
        })
        .await;
        match read {
            Ok(Ok(part)) => Ok(part),
            Ok(Err(why)) => Err(bad(why.into())),
            Err(e) => Err(Done::no(format!("Cannot read {url}: {e}"))),
        }
    }

    /// Reads the first head: tag, mailbox and what follows up to the
    /// first literal.
    fn first_message(&mut self, head: &[u8]) -> Option<(Append, Vec<AppendItem>)> {
        let parsed = match parse_first_head(head) {
            Ok(h) => h,
            Err(e) => {
                self.bad(e.tag.as_deref(), None, &e.message);
                return None;
            }
        };
        self.start_append(parsed)
    }

    /// An APPEND (or REPLACE) begins: the session may take one now, the
    /// mailbox name is read, REPLACE's message found.
    fn start_append(&mut self, parsed: AppendHead) -> Option<(Append, Vec<AppendItem>)> {
        let in_command = self.idle.is_some() || self.authenticating.is_some();
        let authenticated = matches!(
            self.state,
            SessionState::Authenticated | SessionState::Selected { .. }
        );
        if in_command || !authenticated {
            let text = if in_command {
                "APPEND is not allowed now"
            } else {
                "APPEND requires authentication"
            };
            self.bad(Some(&parsed.tag), None, text);
            return None;
        }
        let mailbox = match self.mailbox_in(&parsed.mailbox) {
            Ok(m) => m,
            Err(e) => {
                self.bad(Some(&parsed.tag), None, &e);
                return None;
            }
        };
        let (replaces, failed) = match parsed.replace {
            None => (None, None),
            Some(target) => match self.replace_target(target) {
                Ok(r) => (Some(r), None),
                Err(Done::Tagged(Status::Bad, code, text)) => {
                    self.bad(Some(&parsed.tag), code, &text);
                    return None;
                }
                Err(done) => (None, Some(done)),
            },
        };
        let append = Append {
            tag: parsed.tag,
            mailbox,
            done: Vec::new(),
            current: None,
            bytes: 0,
            failed,
            replaces,
            state: parsed.state,
        };
        Some((append, parsed.items))
    }

    /// RFC 8508 3.1, 3.2: REPLACE's message in the selected, writable
    /// mailbox; a number outside the mailbox is BAD, a UID not in it NO.
    fn replace_target(&self, target: ReplaceTarget) -> Result<(MailboxId, Uid), Done> {
        if self.uidonly && !target.uid {
            return Err(Done::Tagged(
                Status::Bad,
                Some(Code::UidRequired),
                "Message numbers are not allowed once UIDONLY is enabled".into(),
            ));
        }
        if self.selected.is_none() {
            return Err(Done::bad("REPLACE requires a selected mailbox"));
        }
        let (_, mailbox) = self.writable()?;
        let found = self
            .resolve(&SeqSet::single(target.number), target.uid)
            .map_err(Done::bad)?;
        match found.first() {
            Some(&(_, uid)) => Ok((mailbox, uid)),
            None => Err(Done::no_code(
                Code::Other("NONEXISTENT".into()),
                format!("No message with UID {} to replace", target.number),
            )),
        }
    }

    /// Reads a later head: the text between two literals.
    fn next_message(
        &mut self,
        mut append: Append,
        head: &[u8],
    ) -> Option<(Append, Vec<AppendItem>)> {
        match parse_next_head(head, append.state, true) {
            Ok((items, state)) => {
                let messages = items
                    .iter()
                    .filter(|i| matches!(i, AppendItem::Message { .. }))
                    .count();
                if append.replaces.is_some() && messages > 0 {
                    self.bad(Some(&append.tag), None, "REPLACE takes one message");
                    return None;
                }
                append.state = state;
                Some((append, items))
            }
            Err(e) => {
                self.bad(Some(&append.tag), None, &e);
                None
            }
        }
    }

    /// The next bytes of the message literal being received.
    pub(super) async fn append_data(&mut self, data: Vec<u8>) {
        let Some(append) = &mut self.append else {
            return;
        };
        if append.failed.is_some() {
            return;
        }
        let Some(mut writer) = append.current.as_mut().and_then(|c| c.writer.take()) else {
            return;
        };
        let written = blocking(move || writer.write_all(&data).map(|()| writer)).await;
        let Some(append) = &mut self.append else {
            return;
        };
        match (written, append.current.as_mut()) {
            (Ok(w), Some(current)) => current.writer = Some(w),
            (Err(e), _) => append.failed = Some(Done::no(format!("Cannot store: {e}"))),
            (Ok(_), None) => {}
        }
    }

    /// The literal is complete: a plain message ends with it; a CATENATE
    /// TEXT part leaves its message open for more parts.
    pub(super) async fn append_end_literal(&mut self) {
        let Some(mut append) = self.append.take() else {
            return;
        };
        let plain = append.current.as_ref().is_some_and(|c| !c.catenate);
        if append.failed.is_none() && plain {
            if let Err(done) = self.finish_message(&mut append).await {
                append.failed = Some(done);
            }
        }
        self.append = Some(append);
    }

    /// The current message is complete: its staged file made durable and
    /// read for its summary and threading keys.
    async fn finish_message(&mut self, append: &mut Append) -> Result<(), Done> {
        let Some(current) = append.current.take() else {
            return Ok(());
        };
        let writer = match current.writer {
            Some(w) => w,
            None => self
                .services
                .store
                .stage()
                .map_err(|e| Done::no(format!("Cannot store: {e}")))?,
        };
        let finished = blocking(move || {
            let staged = writer.finish()?;
            let bytes = staged.source().read_all().map_err(|e| StoreError::Io {
                path: "staged message".into(),
                source: e,
            })?;
            let keys = ThreadKeys::from_header(&bytes[..header_end(&bytes)]);
            let summary = roost_protocols::message::summary::Summary::build(&bytes);
            Ok::<_, StoreError>((staged, keys, summary))
        })
        .await;
        let (staged, keys, summary) =
            finished.map_err(|e| Done::no(format!("Cannot store: {e}")))?;
        append.done.push(NewMessage {
            target: Target::Name(append.mailbox.clone()),
            staged,
            flags: Flags::from_iter(current.options.flags),
            internal_date: current.options.date.unwrap_or_else(now_unix),
            header_prefix: Vec::new(),
            keys,
            summary: Some(Arc::new(summary)),
            extra: Vec::new(),
        });
        Ok(())
    }

    /// The APPEND's line ended: the rest of it read (CATENATE's last
    /// parts), then its messages are added, all or none.
    pub(super) async fn append_end(&mut self, tail: &[u8]) {
        let Some(append) = self.append.take() else {
            return;
        };
        if let Some(done) = append.failed {
            return self.finish(&append.tag, done);
        }
        let items = match parse_next_head(tail, append.state, false) {
            Ok((items, _)) => items,
            Err(e) => return self.bad(Some(&append.tag), None, &e),
        };
        if append.replaces.is_some()
            && items
                .iter()
                .any(|i| matches!(i, AppendItem::Message { .. }))
        {
            return self.bad(Some(&append.tag), None, "REPLACE takes one message");
        }
        self.store_append(append, items).await
    }

    /// RFC 4469: an APPEND with no literal at all, every message made of
    /// URL parts.
    pub(super) async fn append_whole(&mut self, head: AppendHead) {
        if let Some((append, items)) = self.start_append(head) {
            if let Some(done) = append.failed {
                return self.finish(&append.tag, done);
            }
            self.store_append(append, items).await
        }
    }

    /// The last items acted on, then every message added (or, for
    /// REPLACE, the one message stored and the old one expunged).
    async fn store_append(&mut self, mut append: Append, items: Vec<AppendItem>) {
        if let Err(done) = self.append_items(&mut append, items).await {
            return self.finish(&append.tag, done);
        }
        if append.current.is_some() {
            return self.bad(Some(&append.tag), None, "A message was left unfinished");
        }
        let Some((account, _)) = self.account() else {
            return self.finish(&append.tag, Done::no("Not logged in"));
        };
        let account = account.to_string();
        let mut messages = append.done;
        if let Some((mailbox, uid)) = append.replaces {
            let done = match messages.pop() {
                Some(message) => self.replace(&account, message, mailbox, uid).await,
                None => Done::no("REPLACE received no message"),
            };
            return self.finish(&append.tag, done);
        }
        let r = AccountClient::new(&account).deliver(messages).await;
        let done = match r {
            Ok(delivered) => match delivered.first() {
                Some(first) => {
                    self.show_appended(&delivered);
                    let uids: Vec<Uid> = delivered.iter().map(|d| d.uid).collect();
                    let code = Code::AppendUid {
                        validity: first.uid_validity,
                        uids: uid_list(&uids),
                    };
                    Done::Tagged(Status::Ok, Some(code), "APPEND completed".into())
                }
                None => Done::ok("APPEND completed"),
            },
            Err(e) => append_no(e),
        };
        self.sync_view().await;
        self.finish(&append.tag, done);
    }

    /// RFC 8508 3.3: the new message stored, then the old one expunged;
    /// APPENDUID in an untagged OK before the expunge is reported.
    async fn replace(
        &mut self,
        account: &str,
        message: NewMessage,
        mailbox: MailboxId,
        uid: Uid,
    ) -> Done {
        let r = AccountClient::new(account)
            .replace(message, mailbox, uid)
            .await;
        let done = match r {
            Ok(delivered) => {
                let code = Code::AppendUid {
                    validity: delivered.uid_validity,
                    uids: uid_list(&[delivered.uid]),
                };
                response::untagged_status(
                    &mut self.out,
                    Status::Ok,
                    Some(code),
                    "Replacement message stored",
                );
                self.show_appended(std::slice::from_ref(&delivered));
                if let Some(sel) = &mut self.selected {
                    super::select::remove_from_view(sel, &[uid], &mut self.out);
                }
                Done::ok("REPLACE completed")
            }
            Err(e) => append_no(e),
        };
        self.sync_view().await;
        done
    }

    /// Messages appended to the selected mailbox join the view at once
    /// (RFC 9051 6.3.12: the server SHOULD send EXISTS), when they are the
    /// next UIDs it expects; otherwise another delivery came between, and
    /// the mailbox's events bring all of them in order.
    fn show_appended(&mut self, delivered: &[Delivered]) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        let first = &delivered[0];
        if first.mailbox != sel.id || first.uid != sel.uid_next {
            return;
        }
        for d in delivered {
            sel.uid_next = sel.uid_next.max(Uid(d.uid.0 + 1));
            sel.known_modseq = sel.known_modseq.max(d.modseq);
            sel.view.push(d.uid);
        }
        response::exists(&mut self.out, sel.view.len() as u32);
    }

    /// Writes the APPEND's tagged answer.
    fn finish(&mut self, tag: &str, done: Done) {
        if let Done::Tagged(status, code, text) = done {
            if status == Status::Bad {
                self.bad(Some(tag), code, &text);
            } else {
                response::tagged(&mut self.out, tag, status, code, &text);
            }
        }
    }
}

/// RFC 9051 6.3.12: a missing mailbox is `[TRYCREATE]`.
fn append_no(e: ClientError) -> Done {
    match e {
        ClientError::Account(e @ AccountError::NoMailbox(_)) => {
            Done::no_code(Code::TryCreate, e.to_string())
        }
        e => super::select::client_no(e),
    }
}
