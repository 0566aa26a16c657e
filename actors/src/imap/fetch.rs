//! FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9).
//!
//! Flags and UIDs come from the session's view; sizes, dates and bodies
//! from the store, read directly (reads never go through the account
//! actor). A body fetched without PEEK sets `\Seen` through the account
//! actor first, so the response already carries the new flags.

use super::section::{partial, section_bytes};
use super::{Done, ImapState};
use roost_protocols::imap::command::{FetchAttr, Section, SectionText};
use roost_protocols::imap::response::{self, FetchResponseItem};
use roost_protocols::imap::seqset::SeqSet;
use roost_protocols::imap::types::{Flag, SeqNum, Uid};
use roost_store::MessageRecord;

/// Output a FETCH may gather before it is written out mid-command.
pub const FETCH_FLUSH_BYTES: usize = 256 * 1024;

impl ImapState {
    /// The (sequence number, UID) pairs a set names in the current view.
    /// Sequence numbers past the end are an error (RFC 9051 9 seq-number).
    pub(super) fn resolve(&self, set: &SeqSet, uid: bool) -> Result<Vec<(u32, Uid)>, String> {
        let Some(sel) = &self.selected else {
            return Err("No mailbox selected".into());
        };
        if matches!(set, SeqSet::SearchResult) {
            return Err("$ (SEARCHRES) is not supported".into());
        }
        if uid {
            let max = sel.view.last().map(|m| m.uid.0).unwrap_or(0);
            return Ok(sel
                .view
                .iter()
                .enumerate()
                .filter(|(_, m)| set.contains(m.uid.0, max))
                .map(|(i, m)| (i as u32 + 1, m.uid))
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
            .map(|n| (n, sel.view[n as usize - 1].uid))
            .collect())
    }

    pub(super) async fn fetch(&mut self, set: &SeqSet, items: &[FetchAttr], uid: bool) -> Done {
        if let Some(attr) = items.iter().find(|a| !supported(a)) {
            // Refused before any response is written: all or nothing.
            return Done::bad(format!(
                "FETCH {} is not implemented yet in this version of roost",
                attr_name(attr)
            ));
        }
        let targets = match self.resolve(set, uid) {
            Ok(t) => t,
            Err(e) => return Done::bad(e),
        };
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
                    self.selected
                        .as_ref()
                        .is_some_and(|s| !s.view[*seq as usize - 1].flags.contains(&Flag::Seen))
                })
                .map(|(_, u)| *u)
                .collect();
            flags_changed = !self.mark_seen(unseen).await.is_empty();
        }
        let wants_body = items.iter().any(needs_body);
        for (seq, u) in targets {
            // Read one message at a time, after \Seen was set: a whole
            // mailbox's records never sit in memory together.
            let record = if needs_record {
                match self.services.store.message(account_id, mailbox, u) {
                    Ok(Some(r)) => Some(r),
                    Ok(None) => continue, // expunged meanwhile: skipped
                    Err(e) => return Done::no(format!("Cannot read messages: {e}")),
                }
            } else {
                None
            };
            let record = record.as_ref();
            let body = match (wants_body, record) {
                (true, Some(rec)) => match self.services.store.read_message(rec) {
                    Ok(b) => Some(b),
                    // Expunged by another session since the record was read.
                    Err(_) => continue,
                },
                _ => None,
            };
            let mut out_items = Vec::with_capacity(items.len() + 1);
            if uid && !items.contains(&FetchAttr::Uid) {
                out_items.push(FetchResponseItem::Uid(u));
            }
            for attr in items {
                match self.fetch_item(attr, u, seq, record, body.as_deref()) {
                    Ok(item) => out_items.push(item),
                    Err(e) => return Done::no(e),
                }
            }
            if flags_changed && sets_seen && !items.contains(&FetchAttr::Flags) {
                if let Some(sel) = &self.selected {
                    out_items.push(FetchResponseItem::Flags(
                        sel.view[seq as usize - 1].flags.to_vec(),
                    ));
                }
            }
            response::fetch(&mut self.out, SeqNum(seq), &out_items);
            // A FETCH of a whole mailbox must not sit in memory whole.
            if self.out.len() >= FETCH_FLUSH_BYTES && self.flush_out().await.is_err() {
                self.closing = true;
                return Done::Later;
            }
        }
        Done::ok("FETCH completed")
    }

    fn fetch_item(
        &self,
        attr: &FetchAttr,
        uid: Uid,
        seq: u32,
        record: Option<&MessageRecord>,
        body: Option<&[u8]>,
    ) -> Result<FetchResponseItem, String> {
        let state = self
            .selected
            .as_ref()
            .map(|s| s.view[seq as usize - 1].clone())
            .ok_or("No mailbox selected")?;
        let rec = || record.ok_or_else(|| "message vanished".to_string());
        let msg = || body.ok_or_else(|| "message body unavailable".to_string());
        Ok(match attr {
            FetchAttr::Uid => FetchResponseItem::Uid(uid),
            FetchAttr::Flags => FetchResponseItem::Flags(state.flags.to_vec()),
            FetchAttr::ModSeq => FetchResponseItem::ModSeq(state.modseq),
            FetchAttr::Rfc822Size => FetchResponseItem::Rfc822Size(rec()?.size),
            FetchAttr::InternalDate => FetchResponseItem::InternalDate {
                secs: rec()?.internal_date,
                offset_minutes: 0,
            },
            FetchAttr::Rfc822 => FetchResponseItem::Rfc822(msg()?.to_vec()),
            FetchAttr::Rfc822Header => {
                let msg = msg()?;
                let s = Section {
                    part: vec![],
                    text: Some(SectionText::Header),
                };
                FetchResponseItem::Rfc822Header(section_bytes(msg, &s).unwrap_or_default())
            }
            FetchAttr::Rfc822Text => {
                let msg = msg()?;
                let s = Section {
                    part: vec![],
                    text: Some(SectionText::Text),
                };
                FetchResponseItem::Rfc822Text(section_bytes(msg, &s).unwrap_or_default())
            }
            FetchAttr::BodySection {
                section,
                partial: range,
                ..
            } => {
                let data = section_bytes(msg()?, section).unwrap_or_default();
                // RFC 9051 7.5.2: the origin is echoed, the length is not.
                let label = match range {
                    Some((origin, _)) => format!("BODY[{}]<{origin}>", section.to_wire()),
                    None => format!("BODY[{}]", section.to_wire()),
                };
                FetchResponseItem::BodySection {
                    label,
                    data: partial(data, *range),
                }
            }
            // Refused up front by `supported`.
            _ => return Err(format!("FETCH {} is not implemented", attr_name(attr))),
        })
    }
}

fn supported(attr: &FetchAttr) -> bool {
    !matches!(
        attr,
        FetchAttr::Envelope
            | FetchAttr::BodyStructure
            | FetchAttr::Body
            | FetchAttr::Binary { .. }
            | FetchAttr::BinarySize { .. }
    )
}

/// Items that need the message's bytes.
fn needs_body(attr: &FetchAttr) -> bool {
    matches!(
        attr,
        FetchAttr::Rfc822
            | FetchAttr::Rfc822Header
            | FetchAttr::Rfc822Text
            | FetchAttr::BodySection { .. }
    )
}

/// RFC 9051 6.4.5: BODY[...] and RFC822 (but not their PEEK forms) set \Seen.
fn sets_seen(attr: &FetchAttr) -> bool {
    matches!(
        attr,
        FetchAttr::Rfc822 | FetchAttr::Rfc822Text | FetchAttr::BodySection { peek: false, .. }
    )
}

fn attr_name(attr: &FetchAttr) -> &'static str {
    match attr {
        FetchAttr::Envelope => "ENVELOPE",
        FetchAttr::BodyStructure => "BODYSTRUCTURE",
        FetchAttr::Body => "BODY",
        FetchAttr::Binary { .. } => "BINARY",
        FetchAttr::BinarySize { .. } => "BINARY.SIZE",
        _ => "item",
    }
}
