//! CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 4.3): a UID SEARCH or UID
//! SORT with RETURN (UPDATE) stays live while its mailbox is selected.
//! When the mailbox's view changes (new messages, expunges, flags) the
//! search runs again, off the async workers, and the difference goes to
//! the client as one ESEARCH with REMOVEFROM then ADDTO: position 0 and
//! UID sets for a search (kept in mailbox order), positions in sort order
//! for a sort. Updates end with the selection or CANCELUPDATE.
//!
//! Live contexts are answered in UIDs only; a SEARCH or SORT by message
//! number asking for UPDATE gets `NO [NOUPDATE "tag"]` (4.3.1 lets a
//! server refuse) and its other return options as usual.

use super::progress::Progress;
use super::{Done, ImapState};
use crate::task::blocking;
use roost_protocols::imap::response::{self, Code, Status};
use roost_protocols::imap::search::{SearchProgram, SearchReturn};
use roost_protocols::imap::seqset::SeqSet;
use roost_protocols::imap::sort::SortCriterion;
use roost_protocols::imap::types::{ModSeq, Uid};
use std::collections::HashSet;

/// Live contexts one session may keep (RFC 5267 4.3.1: at least one).
pub const MAX_UPDATE_CONTEXTS: usize = 4;

/// One live search or sort.
pub(super) struct LiveContext {
    tag: String,
    program: SearchProgram,
    /// The sort order of a UID SORT; `None` for a UID SEARCH.
    sort: Option<Vec<SortCriterion>>,
    /// The results as the client last heard them, in its order.
    results: Vec<Uid>,
}

/// What the view looked like when the contexts were last brought up to
/// date: its size, next UID and highest modseq.
pub(super) type ViewMark = (usize, Uid, ModSeq);
/// The mark of no view.
pub(super) const NO_MARK: ViewMark = (0, Uid(0), ModSeq(0));

/// Context positions and the UID sets at them.
type Pairs = Vec<(u32, String)>;

/// The REMOVEFROM and ADDTO pairs that turn `old` into `new`.
fn difference(old: &[Uid], new: &[Uid], sorted: bool) -> (Pairs, Pairs) {
    let old_set: HashSet<Uid> = old.iter().copied().collect();
    let new_set: HashSet<Uid> = new.iter().copied().collect();
    let compact = |uids: Vec<u32>| SeqSet::compact(uids);
    if !sorted {
        // Position 0: the client keeps a search's results in mailbox
        // order (RFC 5267 4.3.3, 4.3.4).
        let gone: Vec<u32> = old
            .iter()
            .filter(|u| !new_set.contains(u))
            .map(|u| u.0)
            .collect();
        let came: Vec<u32> = new
            .iter()
            .filter(|u| !old_set.contains(u))
            .map(|u| u.0)
            .collect();
        let pair = |v: Vec<u32>| {
            if v.is_empty() {
                vec![]
            } else {
                vec![(0, compact(v))]
            }
        };
        return (pair(gone), pair(came));
    }
    // From the highest position down, so each position is still right
    // when its pair is applied; then insertions at their final positions,
    // lowest first (the kept results keep their relative order).
    let removed = old
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, u)| !new_set.contains(u))
        .map(|(i, u)| (i as u32 + 1, u.0.to_string()))
        .collect();
    let added = new
        .iter()
        .enumerate()
        .filter(|(_, u)| !old_set.contains(u))
        .map(|(i, u)| (i as u32 + 1, u.0.to_string()))
        .collect();
    (removed, added)
}

impl ImapState {
    /// A searching command asked for UPDATE: the context goes live, or
    /// the client is told why not (an untagged NO; the command itself
    /// goes on). A tag already live is BAD (RFC 5267 4.3).
    pub(super) fn check_update(&mut self, tag: &str, uid: bool) -> Result<bool, Done> {
        if self.contexts.iter().any(|c| c.tag == tag) {
            return Err(Done::bad("Tag reuse: a live search already has this tag"));
        }
        let refuse = |out: &mut Vec<u8>, why: &str| {
            let code = Code::Other(format!("NOUPDATE \"{tag}\""));
            response::untagged_status(out, Status::No, Some(code), why);
        };
        if !uid {
            refuse(
                &mut self.out,
                "Updates are given for UID SEARCH and UID SORT",
            );
            return Ok(false);
        }
        if self.contexts.len() == MAX_UPDATE_CONTEXTS {
            refuse(&mut self.out, "Too many live searches");
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether a searching command with `returns` goes live: asked for
    /// with UPDATE and allowed ([`Self::check_update`]).
    pub(super) fn wants_update(
        &mut self,
        tag: &str,
        uid: bool,
        returns: Option<&[SearchReturn]>,
    ) -> Result<bool, Done> {
        if !returns.is_some_and(|r| r.contains(&SearchReturn::Update)) {
            return Ok(false);
        }
        self.check_update(tag, uid)
    }

    /// Keeps a context live with `results` as the client has them.
    pub(super) fn add_context(
        &mut self,
        tag: &str,
        program: SearchProgram,
        sort: Option<Vec<SortCriterion>>,
        results: Vec<Uid>,
    ) {
        self.context_mark = self.view_mark();
        self.contexts.push(LiveContext {
            tag: tag.to_string(),
            program,
            sort,
            results,
        });
    }

    pub(super) fn cancel_update(&mut self, tags: &[String]) -> Done {
        self.contexts.retain(|c| !tags.contains(&c.tag));
        Done::ok("CANCELUPDATE completed")
    }

    fn view_mark(&self) -> ViewMark {
        self.selected
            .as_ref()
            .map_or(NO_MARK, |s| (s.view.len(), s.uid_next, s.known_modseq))
    }

    /// The view changed since the contexts last ran: run each again and
    /// send what changed.
    pub(super) async fn update_contexts(&mut self) {
        if self.contexts.is_empty() || self.view_mark() == self.context_mark {
            return;
        }
        self.context_mark = self.view_mark();
        for i in 0..self.contexts.len() {
            let (program, sort) = (
                self.contexts[i].program.clone(),
                self.contexts[i].sort.clone(),
            );
            let Ok((view, account, mailbox, saved)) = self.search_setup(&program) else {
                continue;
            };
            let store = self.services.store.clone();
            let run = move || {
                let mut progress = Progress::silent();
                let search = (&view[..], &program, &saved[..]);
                super::search::ordered_hits(
                    &store,
                    account,
                    mailbox,
                    search,
                    sort.as_deref(),
                    &mut progress,
                )
            };
            let Ok(hits) = blocking(run).await else {
                continue;
            };
            let ctx = &mut self.contexts[i];
            let new: Vec<Uid> = hits.iter().map(|h| h.1).collect();
            let (removed, added) = difference(&ctx.results, &new, ctx.sort.is_some());
            if removed.is_empty() && added.is_empty() {
                continue;
            }
            ctx.results = new;
            let tag = ctx.tag.clone();
            response::esearch_update(&mut self.out, &tag, &removed, &added);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(v: &[u32]) -> Vec<Uid> {
        v.iter().map(|&u| Uid(u)).collect()
    }

    /// Applies REMOVEFROM then ADDTO pairs as RFC 5267 4.3.3 and 4.3.4
    /// say a client does.
    fn apply(list: &[u32], removed: &[(u32, String)], added: &[(u32, String)]) -> Vec<u32> {
        let mut l = list.to_vec();
        for (pos, set) in removed {
            let u: u32 = set.parse().unwrap();
            assert_eq!(l[*pos as usize - 1], u);
            l.remove(*pos as usize - 1);
        }
        for (pos, set) in added {
            l.insert(*pos as usize - 1, set.parse().unwrap());
        }
        l
    }

    #[test]
    fn sort_updates_rebuild_the_new_order() {
        let old = [5, 2, 9, 7, 1];
        let new = [4, 5, 9, 8, 1, 3];
        let (removed, added) = difference(&uids(&old), &uids(&new), true);
        assert_eq!(removed, vec![(4, "7".into()), (2, "2".into())]);
        assert_eq!(apply(&old, &removed, &added), new.to_vec());
    }

    #[test]
    fn search_updates_use_position_zero() {
        let (removed, added) = difference(&uids(&[1, 2, 3, 7]), &uids(&[1, 3, 8, 9]), false);
        assert_eq!(removed, vec![(0, "2,7".into())]);
        assert_eq!(added, vec![(0, "8:9".into())]);
        let (removed, added) = difference(&uids(&[1]), &uids(&[1]), false);
        assert!(removed.is_empty() && added.is_empty());
    }
}
