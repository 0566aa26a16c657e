//! FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9).
//!
//! Flags and UIDs come from the session's view; sizes, dates and bodies
//! from the store, read directly (reads never go through the account
//! actor) and always off the async workers: records in batches of
//! [`FETCH_BATCH`], message files and MIME walks one message at a time.
//! A body fetched without PEEK sets `\Seen` through the account actor
//! first, so the response already carries the new flags.
//!
//! Memory stays bounded whatever is fetched: a whole message (`BODY[]`,
//! `RFC822`) and its text (`BODY[TEXT]`) are sent from the file in pieces
//! of [`BODY_PIECE`] bytes and never held whole; header sections read only
//! the header; a numbered part is found from the message's stored
//! structure and sent from the file in pieces too (its header fields read
//! from just that header); and the output buffer is written out whenever
//! it passes `MAX_PENDING_OUTPUT`. ENVELOPE, BODYSTRUCTURE and BINARY come
//! from the stored summary, made on first need for older messages.

use super::{Done, ImapState};
use crate::events::MessageState;
use crate::summaries;
use crate::task::blocking;
use roost_protocols::imap::command::{FetchAttr, Section, SectionText};
use roost_protocols::imap::response::Code;
use roost_protocols::imap::response::{self, FetchResponseItem};
use roost_protocols::imap::section::{locate_in_structure, Located, SectionData, Sections};
use roost_protocols::imap::seqset::SeqSet;
use roost_protocols::imap::types::{Flag, ModSeq, SeqNum, Uid};
use roost_protocols::message::decode::TransferEncoding;
use roost_protocols::message::header::header_end;
use roost_protocols::message::summary::Summary;
use roost_store::{MessageReader, MessageRecord, Store, StoreError};
use std::sync::Arc;
use tracing::warn;

/// Message records read from the store in one blocking call.
pub const FETCH_BATCH: usize = 256;
/// Bytes of a whole message read from its file and sent at a time.
pub const BODY_PIECE: usize = 64 * 1024;
/// How much of a message is read to find its header when only header
/// sections are asked for; real headers fit many times over.
pub const HEADER_PROBE: usize = 64 * 1024;

/// RFC 7162 FETCH modifiers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FetchModifiers {
    pub changed_since: Option<ModSeq>,
    /// RFC 7162 3.2.6: report expunged UIDs of the set first.
    pub vanished: bool,
    /// RFC 9394 3.2: only this page of the messages left to fetch.
    pub partial: Option<roost_protocols::imap::search::PartialRange>,
}

/// Where the bytes of one body item come from.
enum BodySource {
    /// A range of the message file (prefix included), read in pieces.
    File { start: u64, len: u64 },
    /// A section of the message bytes read for this message, built (header
    /// fields picked out) only when it is about to be sent, so one FETCH
    /// holds one built section at a time.
    Section(Located, Option<(u32, u32)>),
    /// A BINARY item, decoded while the bodies were prepared.
    Ready(FetchResponseItem),
}

/// Why a message's bodies could not be prepared.
enum BodyError {
    Store(StoreError),
    /// RFC 3516 4.3: a BINARY part in an encoding roost cannot undo.
    UnknownCte(String),
}

impl From<StoreError> for BodyError {
    fn from(e: StoreError) -> Self {
        BodyError::Store(e)
    }
}

/// The `<origin.length>` of a FETCH item.
type Partial = Option<(u32, u32)>;

/// The bodies one message's FETCH items need, prepared off the workers.
struct Bodies {
    reader: Arc<MessageReader>,
    /// What sections are found in: the whole message when a numbered part
    /// was asked for and has no stored structure to be found by, else just
    /// its header when a header section was.
    bytes: Option<Arc<Vec<u8>>>,
    /// One entry per FETCH item, `None` for items without a body.
    sources: Vec<Option<BodySource>>,
}

impl ImapState {
    /// The (sequence number, UID) pairs a set names in the current view.
    /// Sequence numbers past the end are an error (RFC 9051 9 seq-number).
    pub(super) fn resolve(&self, set: &SeqSet, uid: bool) -> Result<Vec<(u32, Uid)>, String> {
        let Some(sel) = &self.selected else {
            return Err("No mailbox selected".into());
        };
        if matches!(set, SeqSet::SearchResult) {
            // RFC 5182 2.1: `$` is the saved result, by UID, whichever
            // form the command takes; expunged messages have left it.
            return Ok(self
                .saved_search
                .iter()
                .filter_map(|&u| sel.seq_of(u).map(|i| (i as u32 + 1, u)))
                .collect());
        }
        if uid {
            let max = sel.view.last_uid().map_or(0, |u| u.0);
            let spans = set.spans(max);
            return Ok(sel
                .view
                .iter()
                .enumerate()
                .filter(|(_, u)| SeqSet::spans_contain(&spans, u.0))
                .map(|(i, u)| (i as u32 + 1, u))
                .collect());
        }
        let count = sel.view.len() as u32;
        if set.max_number().is_some_and(|n| n > count) {
            return Err(format!(
                "Invalid message sequence number (the mailbox has {count} messages)"
            ));
        }
        Ok(set
            .iter(count)
            .map(|n| (n, sel.view.uid(n as usize - 1)))
            .collect())
    }

    pub(super) async fn fetch(
        &mut self,
        set: &SeqSet,
        items: &[FetchAttr],
        uid: bool,
        modifiers: FetchModifiers,
    ) -> Done {
        // RFC 7162 3.2.6: VANISHED only once QRESYNC is enabled.
        if modifiers.vanished && !self.qresync {
            return Done::bad("VANISHED needs QRESYNC to be enabled first");
        }
        let mut targets = match self.resolve(set, uid) {
            Ok(t) => t,
            Err(e) => return Done::bad(e),
        };
        let mut items = items.to_vec();
        if let Some(since) = modifiers.changed_since {
            // RFC 7162 3.1.4.1: only what changed after `since`, with its
            // MODSEQ.
            self.use_condstore();
            if !items.contains(&FetchAttr::ModSeq) {
                items.push(FetchAttr::ModSeq);
            }
            if let Some(sel) = &self.selected {
                let changed: std::collections::HashSet<usize> =
                    super::select::changed_since(sel, since)
                        .into_iter()
                        .map(|(i, _)| i)
                        .collect();
                targets.retain(|(seq, _)| changed.contains(&(*seq as usize - 1)));
            }
            if modifiers.vanished {
                if let Err(e) = self.report_vanished(set, since).await {
                    return Done::no(format!("Cannot read what was expunged: {e}"));
                }
            }
        } else if items.contains(&FetchAttr::ModSeq) {
            self.use_condstore();
        }
        if let Some(range) = modifiers.partial {
            // RFC 9394 3.2: positions among the messages the set (and
            // CHANGEDSINCE) leave, in ascending order.
            targets.sort_unstable_by_key(|t| t.0);
            targets.dedup_by_key(|t| t.0);
            targets = range.pick(&targets).to_vec();
        }
        let items = &items[..];
        let (Some(sel), Some((_, account_id))) = (&self.selected, self.account()) else {
            return Done::bad("No mailbox selected");
        };
        let mailbox = sel.id;
        let sets_seen = !sel.read_only && items.iter().any(sets_seen);
        let needs_record = items
            .iter()
            .any(|a| !matches!(a, FetchAttr::Flags | FetchAttr::Uid | FetchAttr::ModSeq));

        let mut flags_changed = false;
        if sets_seen {
            let unseen: Vec<Uid> = targets
                .iter()
                .filter(|(seq, _)| {
                    self.selected.as_ref().is_some_and(|s| {
                        s.state(*seq as usize - 1)
                            .is_some_and(|m| !m.flags.contains(&Flag::Seen))
                    })
                })
                .map(|(_, u)| *u)
                .collect();
            flags_changed = !self.mark_seen(unseen).await.is_empty();
        }
        let wants_body = items.iter().any(needs_body);
        let wants_summary = items.iter().any(needs_summary);
        let wants_preview = items.iter().any(|a| matches!(a, FetchAttr::Preview { .. }));
        let items: Arc<[FetchAttr]> = items.into();
        for batch in targets.chunks(FETCH_BATCH) {
            // Records are read a batch at a time, after \Seen was set: a
            // whole mailbox's records never sit in memory together.
            let (records, summaries) = if needs_record {
                let uids: Vec<Uid> = batch.iter().map(|(_, u)| *u).collect();
                let store = self.services.store.clone();
                let read = move || {
                    let records = read_records(&store, account_id, mailbox, &uids)?;
                    let summaries = match wants_summary {
                        true => Some(summaries::load_with(&store, &records, wants_preview)?),
                        false => None,
                    };
                    Ok::<_, StoreError>((records, summaries))
                };
                match blocking(read).await {
                    Ok((records, Some((summaries, built)))) => {
                        self.keep_summaries(built).await;
                        (records, summaries)
                    }
                    Ok((records, None)) => (records, vec![None; batch.len()]),
                    Err(e) => return Done::no(format!("Cannot read messages: {e}")),
                }
            } else {
                (vec![None; batch.len()], vec![None; batch.len()])
            };
            for ((&(seq, u), record), summary) in batch.iter().zip(records).zip(summaries) {
                // Expunged by another session meanwhile (its expunge not yet
                // reported here): skipped, whatever was asked.
                let Some(state) = self
                    .selected
                    .as_ref()
                    .and_then(|s| s.state(seq as usize - 1))
                else {
                    continue;
                };
                if needs_record && record.is_none() {
                    continue;
                }
                if wants_summary && summary.is_none() {
                    continue;
                }
                let bodies = match (wants_body, &record) {
                    (true, Some(rec)) => {
                        let (store, rec, items, sum) = (
                            self.services.store.clone(),
                            rec.clone(),
                            items.clone(),
                            summary.clone(),
                        );
                        let prepare = move || {
                            let r = prepare_bodies(&store, &rec, &items, sum.as_deref());
                            Ok::<_, std::convert::Infallible>(r)
                        };
                        let prepared = match blocking(prepare).await {
                            Ok(r) => r,
                            Err(e) => Err(BodyError::Store(StoreError::Invalid(e))),
                        };
                        match prepared {
                            Ok(Some(b)) => Some(b),
                            // The file went with an expunge since the record was read.
                            Ok(None) => continue,
                            Err(BodyError::UnknownCte(part)) => {
                                return Done::no_code(
                                    Code::Other("UNKNOWN-CTE".into()),
                                    format!("Cannot decode part {part} of message {}", u.0),
                                );
                            }
                            Err(BodyError::Store(e)) => {
                                warn!(error = %e, uid = u.0, "cannot read a message for FETCH");
                                return Done::no(format!("Cannot read message {}: {e}", u.0));
                            }
                        }
                    }
                    _ => None,
                };
                let extra_flags = flags_changed && !items.contains(&FetchAttr::Flags);
                let message = FetchedMessage {
                    seq,
                    uid: u,
                    state,
                    record: record.as_ref(),
                    summary: summary.as_deref(),
                    bodies,
                    uid_first: uid && !items.contains(&FetchAttr::Uid),
                    extra_flags,
                };
                if let Err(e) = self.write_message(&items, message).await {
                    return e;
                }
            }
        }
        Done::ok("FETCH completed")
    }

    /// RFC 7162 3.2.6: `* VANISHED (EARLIER)` for the UIDs of `set`
    /// expunged after `since`.
    async fn report_vanished(&mut self, set: &SeqSet, since: ModSeq) -> Result<(), String> {
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        let (mailbox, uid_next) = (sel.id, sel.uid_next);
        let uids = self.vanished_since(mailbox, uid_next, set, since).await?;
        if !uids.is_empty() {
            response::vanished(&mut self.out, true, &SeqSet::compact_ranges(&uids));
        }
        Ok(())
    }

    /// Writes one `* n FETCH (...)` response, sending bodies in pieces.
    async fn write_message(
        &mut self,
        items: &[FetchAttr],
        m: FetchedMessage<'_>,
    ) -> Result<(), Done> {
        let mut index = 0;
        if self.uidonly {
            // RFC 9586 3.3: the UID leads; the UID item only if asked for.
            response::uidfetch_open(&mut self.out, m.uid);
        } else {
            response::fetch_open(&mut self.out, SeqNum(m.seq));
        }
        if m.uid_first && !self.uidonly {
            response::fetch_item_at(&mut self.out, index, &FetchResponseItem::Uid(m.uid));
            index += 1;
        }
        for (i, attr) in items.iter().enumerate() {
            let source = m.bodies.as_ref().and_then(|b| b.sources[i].as_ref());
            match (source, &m.bodies) {
                (Some(source), Some(bodies)) => {
                    let label = body_label(attr);
                    self.send_body(bodies, source, index, label).await?;
                }
                _ => {
                    let item = self.fetch_item(attr, &m).map_err(Done::no)?;
                    response::fetch_item_at(&mut self.out, index, &item);
                }
            }
            index += 1;
        }
        if m.extra_flags {
            if let Some(state) = self
                .selected
                .as_ref()
                .and_then(|s| s.state(m.seq as usize - 1))
            {
                let flags = state.flags.to_vec();
                response::fetch_item_at(&mut self.out, index, &FetchResponseItem::Flags(flags));
            }
        }
        response::fetch_close(&mut self.out);
        self.write_out_if_full().await.map_err(|_| Done::Later)
    }

    /// Announces one body item as item `index` and sends its bytes.
    async fn send_body(
        &mut self,
        bodies: &Bodies,
        source: &BodySource,
        index: usize,
        label: String,
    ) -> Result<(), Done> {
        let fail = |this: &mut ImapState| {
            // The literal was announced; the response cannot be finished.
            this.closing = true;
            Done::Later
        };
        match source {
            BodySource::Section(located, partial) => {
                let msg = bodies.bytes.clone().unwrap_or_default();
                let (located, partial) = (located.clone(), *partial);
                let build = move || {
                    let data = located.build(&msg).partial(partial);
                    Ok::<_, StoreError>((data, msg))
                };
                // The response is open: a failure here cannot be a NO.
                let Ok((data, msg)) = blocking(build).await else {
                    return Err(fail(self));
                };
                let bytes = data.bytes(&msg);
                let len = bytes.len() as u64;
                let announce = FetchResponseItem::LiteralFollows { label, len };
                response::fetch_item_at(&mut self.out, index, &announce);
                for piece in bytes.chunks(BODY_PIECE) {
                    self.out.extend_from_slice(piece);
                    if self.write_out_if_full().await.is_err() {
                        return Err(fail(self));
                    }
                }
            }
            BodySource::Ready(item) => response::fetch_item_at(&mut self.out, index, item),
            BodySource::File { start, len } => {
                let announce = FetchResponseItem::LiteralFollows { label, len: *len };
                response::fetch_item_at(&mut self.out, index, &announce);
                let (mut at, end) = (*start, start + len);
                while at < end {
                    let reader = bodies.reader.clone();
                    let want = (end - at).min(BODY_PIECE as u64) as usize;
                    let piece = blocking(move || reader.read_at(at, want)).await;
                    match piece {
                        Ok(piece) if piece.len() == want => self.out.extend_from_slice(&piece),
                        _ => return Err(fail(self)),
                    }
                    at += want as u64;
                    if self.write_out_if_full().await.is_err() {
                        return Err(fail(self));
                    }
                }
            }
        }
        Ok(())
    }

    /// Items that need no body: from the view, the record and the summary.
    fn fetch_item(
        &self,
        attr: &FetchAttr,
        m: &FetchedMessage<'_>,
    ) -> Result<FetchResponseItem, String> {
        let state = &m.state;
        let rec = || m.record.ok_or_else(|| "message vanished".to_string());
        let summary = || m.summary.ok_or_else(|| "message vanished".to_string());
        Ok(match attr {
            FetchAttr::Uid => FetchResponseItem::Uid(m.uid),
            FetchAttr::Flags => FetchResponseItem::Flags(state.flags.to_vec()),
            FetchAttr::ModSeq => FetchResponseItem::ModSeq(state.modseq),
            FetchAttr::SaveDate => FetchResponseItem::SaveDate(rec()?.save_date),
            FetchAttr::EmailId => {
                FetchResponseItem::EmailId(response::email_object_id(rec()?.file.0))
            }
            // The preview is made with the summary (at delivery, or on
            // first need for older messages), so LAZY never has to wait.
            FetchAttr::Preview { .. } => FetchResponseItem::Preview(summary()?.preview.clone()),
            FetchAttr::ThreadId => {
                FetchResponseItem::ThreadId(Some(response::thread_object_id(rec()?.thread_id.0)))
            }
            FetchAttr::Rfc822Size => FetchResponseItem::Rfc822Size(rec()?.size),
            FetchAttr::InternalDate => FetchResponseItem::InternalDate {
                secs: rec()?.internal_date,
                offset_minutes: 0,
            },
            FetchAttr::Envelope => {
                FetchResponseItem::Envelope(Arc::new(summary()?.envelope.clone()))
            }
            FetchAttr::BodyStructure | FetchAttr::Body => FetchResponseItem::BodyStructure {
                body: Arc::new(summary()?.body.clone()),
                extended: matches!(attr, FetchAttr::BodyStructure),
            },
            // Prepared as bodies.
            _ => return Err("FETCH item without its data".to_string()),
        })
    }

    /// Hands summaries this FETCH had to build to the account, which keeps
    /// them, so the next FETCH reads them.
    pub(super) async fn keep_summaries(&self, built: Vec<(roost_store::FileId, Arc<Summary>)>) {
        if built.is_empty() {
            return;
        }
        let Some((account, _)) = self.account() else {
            return;
        };
        let client = crate::client::AccountClient::new(account);
        for (file, summary) in built {
            client.store_summary(file, summary).await;
        }
    }
}

/// What [`ImapState::write_message`] writes for one message.
struct FetchedMessage<'a> {
    seq: u32,
    uid: Uid,
    /// Flags and modseq as the FETCH began on this message.
    state: MessageState,
    record: Option<&'a MessageRecord>,
    summary: Option<&'a Summary>,
    bodies: Option<Bodies>,
    /// UID FETCH: UID goes first even when not asked for.
    uid_first: bool,
    /// \Seen was set by this FETCH: FLAGS goes last when not asked for.
    extra_flags: bool,
}

/// The records of `uids` (ascending), `None` for one that is gone. A
/// dense batch (the usual `1:*`) is one range scan of the index; a sparse
/// one, a lookup per UID.
pub(super) fn read_records(
    store: &Store,
    account: roost_store::AccountId,
    mailbox: roost_store::MailboxId,
    uids: &[Uid],
) -> Result<Vec<Option<MessageRecord>>, StoreError> {
    let (Some(&first), Some(&last)) = (uids.first(), uids.last()) else {
        return Ok(Vec::new());
    };
    let span = u64::from(last.0.saturating_sub(first.0)) + 1;
    if first > last || span > 2 * uids.len() as u64 {
        return uids
            .iter()
            .map(|&u| store.message(account, mailbox, u))
            .collect();
    }
    let mut found = store
        .messages_between(account, mailbox, first, last)?
        .into_iter()
        .peekable();
    Ok(uids
        .iter()
        .map(|&u| {
            while found.peek().is_some_and(|r| r.uid < u) {
                found.next();
            }
            found.next_if(|r| r.uid == u)
        })
        .collect())
}

/// Opens the message and works out where each body item's bytes lie.
/// `None` when the message's file is gone (expunged since its record was
/// read).
fn prepare_bodies(
    store: &Store,
    record: &MessageRecord,
    items: &[FetchAttr],
    summary: Option<&Summary>,
) -> Result<Option<Bodies>, BodyError> {
    let reader = match store.open_message(record) {
        Ok(r) => r,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let file_range = |range: std::ops::Range<usize>, partial: Partial| {
        let data = SectionData::Range(range).partial(partial);
        BodySource::File {
            start: data.range_start() as u64,
            len: data.len() as u64,
        }
    };
    let len = reader.len() as usize;
    let sections: Vec<Option<(Section, Partial)>> = items.iter().map(body_section).collect();
    let asked = || sections.iter().flatten().map(|(s, _)| s);
    // A numbered part is found from the stored structure and read alone;
    // without one, the whole message is walked. The message's own header
    // and its fields need only the header.
    let walk = summary.is_none() && asked().any(|s| !s.part.is_empty());
    let bytes = if walk {
        Some(reader.read_all()?)
    } else if asked().any(|s| s.part.is_empty() && s.text.is_some()) {
        Some(read_header(&reader)?)
    } else {
        None
    };
    let header_len = bytes.as_deref().map_or(0, header_end);
    let finder = bytes.as_deref().map(Sections::new);
    let prefix = record.header_prefix.len();
    let empty = || Located::Data(SectionData::Owned(Vec::new()));
    let mut sources: Vec<Option<BodySource>> = Vec::with_capacity(sections.len());
    for s in sections {
        let Some((section, partial)) = s else {
            sources.push(None);
            continue;
        };
        let source = match (&finder, &section.text, summary) {
            _ if is_whole(&section) => file_range(0..len, partial),
            // The text is the rest of the file: sent from it in pieces.
            (_, Some(SectionText::Text), _) if section.part.is_empty() => {
                file_range(header_len..len, partial)
            }
            (_, _, Some(summary)) if !section.part.is_empty() => {
                match locate_in_structure(&summary.body, prefix, &section) {
                    // A run of the message: sent from the file in pieces.
                    Some(Located::Data(SectionData::Range(r))) => file_range(r, partial),
                    Some(Located::Data(d)) => BodySource::Section(Located::Data(d), partial),
                    // Header fields: only that header is read.
                    Some(Located::Fields {
                        header,
                        names,
                        keep,
                    }) => {
                        let h = reader.read_at(header.start as u64, header.len())?;
                        let fields = Located::Fields {
                            header: 0..h.len(),
                            names,
                            keep,
                        };
                        BodySource::Section(Located::Data(fields.build(&h)), partial)
                    }
                    None => BodySource::Section(empty(), partial),
                }
            }
            (Some(finder), _, _) => {
                BodySource::Section(finder.find(&section).unwrap_or_else(empty), partial)
            }
            (None, _, _) => file_range(0..0, partial),
        };
        sources.push(Some(source));
    }
    drop(finder);
    for (attr, source) in items.iter().zip(sources.iter_mut()) {
        if let Some(item) = binary_item(&reader, record, attr, summary)? {
            *source = Some(BodySource::Ready(item));
        }
    }
    Ok(Some(Bodies {
        reader: Arc::new(reader),
        bytes: bytes.map(Arc::new),
        sources,
    }))
}

/// RFC 9051 6.4.5 BINARY[part]<partial> and BINARY.SIZE[part]: the part's
/// content with its transfer encoding undone (RFC 3516). `BINARY[]` is the
/// whole message as stored; a part that does not exist is empty.
fn binary_item(
    reader: &MessageReader,
    record: &MessageRecord,
    attr: &FetchAttr,
    summary: Option<&Summary>,
) -> Result<Option<FetchResponseItem>, BodyError> {
    let (part, partial, size_only) = match attr {
        FetchAttr::Binary { part, partial, .. } => (part, *partial, false),
        FetchAttr::BinarySize { part } => (part, None, true),
        _ => return Ok(None),
    };
    let wire = part
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let data = if part.is_empty() {
        reader.read_all()?
    } else {
        let found = summary.and_then(|s| s.body.find(part).and_then(|i| s.body.part(i)));
        match found {
            None => Vec::new(),
            Some(p) => {
                let Some(encoding) = TransferEncoding::from_name(&p.encoding) else {
                    return Err(BodyError::UnknownCte(wire));
                };
                // Summary offsets are into the file; the prefix comes first.
                let start = record.header_prefix.len() as u64 + p.body_start;
                let len = p.end.saturating_sub(p.body_start) as usize;
                encoding.decode(&reader.read_at(start, len)?)
            }
        }
    };
    if size_only {
        return Ok(Some(FetchResponseItem::BinarySize {
            label: format!("BINARY.SIZE[{wire}]"),
            size: data.len() as u64,
        }));
    }
    let label = match partial {
        Some((origin, _)) => format!("BINARY[{wire}]<{origin}>"),
        None => format!("BINARY[{wire}]"),
    };
    let data = match SectionData::Owned(data).partial(partial) {
        SectionData::Owned(d) => d,
        SectionData::Range(_) => Vec::new(),
    };
    Ok(Some(FetchResponseItem::Binary { label, data }))
}

/// The message's header section, blank line included: read from its
/// first [`HEADER_PROBE`] bytes, or from the whole message when the header
/// is longer than that (or there is no body).
pub(super) fn read_header(reader: &MessageReader) -> Result<Vec<u8>, StoreError> {
    let mut head = reader.read_at(0, HEADER_PROBE)?;
    let complete = head.len() as u64 == reader.len()
        || header_end(&head) < head.len()
        || head.ends_with(b"\n\n")
        || head.ends_with(b"\n\r\n");
    if !complete {
        head = reader.read_all()?;
    }
    head.truncate(header_end(&head));
    Ok(head)
}

/// The section and partial range a body item asks for.
fn body_section(attr: &FetchAttr) -> Option<(Section, Partial)> {
    let text = |t| Section {
        part: vec![],
        text: Some(t),
    };
    match attr {
        FetchAttr::Rfc822 => Some((Section::default(), None)),
        FetchAttr::Rfc822Header => Some((text(SectionText::Header), None)),
        FetchAttr::Rfc822Text => Some((text(SectionText::Text), None)),
        FetchAttr::BodySection {
            section, partial, ..
        } => Some((section.clone(), *partial)),
        _ => None,
    }
}

fn is_whole(section: &Section) -> bool {
    section.part.is_empty() && section.text.is_none()
}

/// The name a body item is echoed with (RFC 9051 7.5.2: the origin of a
/// partial fetch is echoed, its length is not).
fn body_label(attr: &FetchAttr) -> String {
    match attr {
        FetchAttr::Rfc822 => "RFC822".into(),
        FetchAttr::Rfc822Header => "RFC822.HEADER".into(),
        FetchAttr::Rfc822Text => "RFC822.TEXT".into(),
        FetchAttr::BodySection {
            section, partial, ..
        } => match partial {
            Some((origin, _)) => format!("BODY[{}]<{origin}>", section.to_wire()),
            None => format!("BODY[{}]", section.to_wire()),
        },
        _ => String::new(),
    }
}

/// Items that need the message's bytes.
fn needs_body(attr: &FetchAttr) -> bool {
    body_section(attr).is_some()
        || matches!(
            attr,
            FetchAttr::Binary { .. } | FetchAttr::BinarySize { .. }
        )
}

/// Items written from the message's stored summary, or whose part it
/// locates.
fn needs_summary(attr: &FetchAttr) -> bool {
    match attr {
        FetchAttr::Envelope
        | FetchAttr::BodyStructure
        | FetchAttr::Preview { .. }
        | FetchAttr::Body
        | FetchAttr::Binary { .. }
        | FetchAttr::BinarySize { .. } => true,
        FetchAttr::BodySection { section, .. } => !section.part.is_empty(),
        _ => false,
    }
}

/// RFC 9051 6.4.5: BODY[...] and RFC822 (but not their PEEK forms) set \Seen.
fn sets_seen(attr: &FetchAttr) -> bool {
    matches!(
        attr,
        FetchAttr::Rfc822
            | FetchAttr::Rfc822Text
            | FetchAttr::BodySection { peek: false, .. }
            | FetchAttr::Binary { peek: false, .. }
    )
}
