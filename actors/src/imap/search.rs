//! SEARCH and UID SEARCH (RFC 9051 6.4.4, 6.4.9) with ESEARCH's RETURN
//! options (RFC 4731: MIN, MAX, COUNT, ALL), SEARCHRES (RFC 5182: SAVE
//! and `$`) and CONDSTORE's MODSEQ key (RFC 7162 3.1.5).
//!
//! The program runs in one blocking task over the session's view: flags,
//! UIDs and modseqs come from the view, sizes and dates from the
//! mailbox's records (read in one scan, in UID order, only when a key
//! needs them), and header and body keys from the message files, read
//! one at a time and only for programs that need them.

use super::progress::Progress;
use super::{Done, ImapState};
use crate::task::blocking;
use roost_protocols::imap::matcher::{Candidate, Matcher, Needs};
use roost_protocols::imap::references::{references, ThreadInput};
use roost_protocols::imap::response::{self, Code, Esearch};
use roost_protocols::imap::search::{MultiSearch, SearchProgram, SearchReturn, SearchSource};
use roost_protocols::imap::seqset::SeqSet;
use roost_protocols::imap::sort::{
    compare, ordered_set, ordered_subject, ordered_subject_response, sent_date, sort_values,
    SortCommand, SortCriterion, SortKey, SortValue, ThreadAlgorithm, ThreadCommand,
};
use roost_protocols::imap::types::{Flags, ModSeq, Uid};
use roost_protocols::message::header::raw_header_value;
use roost_protocols::message::thread::ThreadKeys;
use roost_store::{AccountId, MailboxId, MailboxRecord, MessageRecord, Store, StoreError};

/// The charsets SEARCH accepts (RFC 9051 6.4.4: UTF-8 at least).
const CHARSETS: [&str; 2] = ["UTF-8", "US-ASCII"];

/// One message of the view, as the blocking search gets it.
pub(super) struct Entry {
    uid: Uid,
    /// Expunged (its expunge not yet reported here): matches nothing.
    gone: bool,
    flags: Flags,
    modseq: ModSeq,
}

/// The view, account, mailbox and sorted saved UIDs a search runs with.
pub(super) type Setup = (Vec<Entry>, AccountId, MailboxId, Vec<u32>);

/// A match: its sequence number, UID and modseq.
pub(super) type Hit = (u32, Uid, ModSeq);

impl ImapState {
    /// The selected mailbox's messages as a search sees them: flags and
    /// modseqs as the shared index has them now; a message expunged but
    /// not yet reported keeps its number and matches no flag key.
    fn search_view(&self) -> Option<(Vec<Entry>, AccountId, MailboxId)> {
        let (Some(sel), Some((_, account))) = (&self.selected, self.account()) else {
            return None;
        };
        let view: Vec<Entry> = sel
            .index
            .read(|ix| {
                sel.view
                    .iter()
                    .map(|uid| {
                        let m = ix.state(uid);
                        Entry {
                            uid,
                            gone: m.is_none(),
                            flags: m.as_ref().map(|m| m.flags.clone()).unwrap_or_default(),
                            modseq: m.map_or(ModSeq(0), |m| m.modseq),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some((view, account, sel.id))
    }

    /// What SORT and THREAD start from: the charset checked (BADCHARSET
    /// otherwise), the selected mailbox's view and the saved result.
    pub(super) fn search_setup(&self, program: &SearchProgram) -> Result<Setup, Done> {
        if let Some(cs) = program
            .charset
            .as_ref()
            .filter(|cs| !CHARSETS.contains(&cs.as_str()))
        {
            return Err(Done::no_code(
                Code::Other(format!("BADCHARSET ({})", CHARSETS.join(" "))),
                format!("Charset {cs} is not supported"),
            ));
        }
        let Some((view, account, mailbox)) = self.search_view() else {
            return Err(Done::bad("No mailbox selected"));
        };
        let mut saved: Vec<u32> = self.saved_search.iter().map(|u| u.0).collect();
        saved.sort_unstable();
        Ok((view, account, mailbox, saved))
    }

    /// Runs `program` over `view` of a mailbox off the async workers,
    /// reporting progress for the command tagged `tag`.
    async fn search_in(
        &mut self,
        tag: &str,
        account: AccountId,
        mailbox: MailboxId,
        (view, program, saved): (Vec<Entry>, SearchProgram, Vec<u32>),
    ) -> Result<Vec<Hit>, String> {
        let store = self.services.store.clone();
        let run = move |progress: &mut Progress| {
            let search = (&view[..], &program, &saved[..]);
            run_search(&store, account, mailbox, search, progress)
        };
        self.with_progress(tag, run).await
    }

    /// RFC 5256 3: SORT and UID SORT (and SORT=DISPLAY's keys, RFC 5957):
    /// the search part as SEARCH runs it, then the matches ordered by the
    /// criteria, read off the async workers.
    pub(super) async fn sort(&mut self, tag: &str, uid: bool, sort: SortCommand) -> Done {
        let (view, account, mailbox, saved) = match self.search_setup(&sort.program) {
            Ok(s) => s,
            Err(done) => return done,
        };
        let store = self.services.store.clone();
        let returns = sort.returns.clone();
        // RFC 7162 3.1.5: a MODSEQ key turns CONDSTORE on and the answer
        // carries the highest modseq of what matched.
        let uses_modseq = sort.program.uses_modseq();
        if uses_modseq {
            self.use_condstore();
        }
        let update = match self.wants_update(tag, uid, returns.as_deref()) {
            Ok(live) => live,
            Err(done) => return done,
        };
        let live = update.then(|| (sort.program.clone(), sort.criteria.clone()));
        let run = move |progress: &mut Progress| {
            let search = (&view[..], &sort.program, &saved[..]);
            ordered_hits(
                &store,
                account,
                mailbox,
                search,
                Some(&sort.criteria),
                progress,
            )
        };
        let hits = match self.with_progress(tag, run).await {
            Ok(r) => r,
            Err(e) => return Done::no(format!("SORT failed: {e}")),
        };
        if let Some((program, criteria)) = live {
            let results = hits.iter().map(|h| h.1).collect();
            self.add_context(tag, program, Some(criteria), results);
        }
        let modseq = uses_modseq
            .then(|| hits.iter().map(|h| h.2).max())
            .flatten();
        let numbers: Vec<u32> = hits
            .iter()
            .map(|h| if uid { h.1 .0 } else { h.0 })
            .collect();
        match returns {
            None => response::sort(&mut self.out, &numbers, modseq),
            // RFC 5267 3.1: ESORT answers ESEARCH; MIN and MAX are the
            // first and last in sort order, ALL keeps that order.
            Some(opts) => {
                let bare = opts.iter().all(|o| *o == SearchReturn::Context);
                let has = |o| bare && o == SearchReturn::All || opts.contains(&o);
                let e = Esearch {
                    tag: tag.to_string(),
                    mailbox: None,
                    uid,
                    min: has(SearchReturn::Min)
                        .then(|| numbers.first().copied())
                        .flatten(),
                    max: has(SearchReturn::Max)
                        .then(|| numbers.last().copied())
                        .flatten(),
                    count: has(SearchReturn::Count).then_some(numbers.len() as u32),
                    all: (has(SearchReturn::All) && !numbers.is_empty())
                        .then(|| ordered_set(&numbers)),
                    // RFC 9394 3.1: a page of the results in sort order.
                    partial: SearchReturn::partial(&opts).map(|r| {
                        let page = r.pick(&numbers);
                        (r.wire(), (!page.is_empty()).then(|| ordered_set(page)))
                    }),
                    modseq,
                };
                response::esearch(&mut self.out, &e);
            }
        }
        Done::ok(if uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        })
    }

    /// RFC 7377: ESEARCH over the mailboxes its sources name, each with
    /// matches answered by one ESEARCH carrying the MAILBOX and
    /// UIDVALIDITY correlators, always in UIDs; nothing for a mailbox
    /// without matches.
    pub(super) async fn multisearch(&mut self, tag: &str, ms: MultiSearch) -> Done {
        if ms.sources.contains(&SearchSource::Selected) && self.selected.is_none() {
            return Done::bad("ESEARCH IN (selected) needs a selected mailbox");
        }
        let returns = ms.program.returns.clone().unwrap_or_default();
        if returns.contains(&SearchReturn::Update) {
            return Done::bad("UPDATE is for SEARCH and SORT in the selected mailbox");
        }
        let save = returns.contains(&SearchReturn::Save);
        if save && !ms.only_selected() {
            // RFC 7377 2.2.
            return Done::bad("SAVE needs the selected mailbox as the only source");
        }
        // `$` holds UIDs of the selected mailbox only.
        if ms.program.uses_saved_result() && !ms.only_selected() {
            return Done::bad("$ refers to the selected mailbox only");
        }
        let uses_modseq = ms.program.uses_modseq();
        if uses_modseq {
            self.use_condstore();
        }
        if let Some(cs) = ms
            .program
            .charset
            .as_ref()
            .filter(|cs| !CHARSETS.contains(&cs.as_str()))
        {
            // RFC 5182 2.1: a failed SAVE empties `$`.
            if save {
                self.saved_search.clear();
            }
            return Done::no_code(
                Code::Other(format!("BADCHARSET ({})", CHARSETS.join(" "))),
                format!("Charset {cs} is not supported"),
            );
        }
        let records = match self.mailbox_records().await {
            Ok(r) => r,
            Err(e) => return Done::no(e),
        };
        let selected = self.selected.as_ref().map(|s| s.id);
        let chosen: Vec<MailboxRecord> = records
            .into_iter()
            .filter(|r| ms.sources.iter().any(|s| source_has(s, r, selected)))
            .collect();
        let mut saved: Vec<u32> = self.saved_search.iter().map(|u| u.0).collect();
        saved.sort_unstable();
        for rec in chosen {
            let view = if Some(rec.id) == selected {
                match self.search_view() {
                    Some((view, _, _)) => view,
                    None => continue,
                }
            } else {
                let (store, account, mailbox) = (self.services.store.clone(), rec.account, rec.id);
                let states = blocking(move || store.message_states(account, mailbox)).await;
                match states {
                    Ok(states) => states
                        .into_iter()
                        .map(|(uid, modseq, flags)| Entry {
                            uid,
                            gone: false,
                            flags,
                            modseq,
                        })
                        .collect(),
                    Err(e) => return Done::no(format!("ESEARCH failed: {e}")),
                }
            };
            let search = (view, ms.program.clone(), saved.clone());
            let hits = match self.search_in(tag, rec.account, rec.id, search).await {
                Ok(h) => h,
                Err(e) => {
                    if save {
                        self.saved_search.clear();
                    }
                    return Done::no(format!("ESEARCH failed: {e}"));
                }
            };
            if save {
                self.saved_search = saved_result(&returns, &hits);
            }
            // RFC 7377 2.1: nothing for a mailbox without matches; as with
            // SEARCH, RETURN (SAVE) alone answers nothing either.
            let only_save = save && returns.iter().all(|o| *o == SearchReturn::Save);
            if hits.is_empty() || only_save {
                continue;
            }
            let has = |o| returns.is_empty() && o == SearchReturn::All || returns.contains(&o);
            let uids: Vec<u32> = hits.iter().map(|h| h.1 .0).collect();
            let e = Esearch {
                tag: tag.to_string(),
                mailbox: Some((self.mailbox_out(&rec.name), rec.uid_validity.0)),
                uid: true,
                min: has(SearchReturn::Min).then(|| uids[0]),
                max: has(SearchReturn::Max).then(|| uids[uids.len() - 1]),
                count: has(SearchReturn::Count).then_some(uids.len() as u32),
                all: has(SearchReturn::All).then(|| SeqSet::compact(uids.iter().copied())),
                partial: SearchReturn::partial(&returns).map(|r| {
                    let page = r.pick(&uids);
                    (
                        r.wire(),
                        (!page.is_empty()).then(|| SeqSet::compact(page.iter().copied())),
                    )
                }),
                modseq: uses_modseq
                    .then(|| hits.iter().map(|h| h.2).max())
                    .flatten(),
            };
            response::esearch(&mut self.out, &e);
            if self.write_out_if_full().await.is_err() {
                return Done::Later;
            }
        }
        Done::ok("ESEARCH completed")
    }

    /// RFC 5256 3: THREAD and UID THREAD, by ORDEREDSUBJECT or
    /// REFERENCES, the search part as SEARCH runs it, off the async
    /// workers.
    pub(super) async fn thread(&mut self, tag: &str, uid: bool, thread: ThreadCommand) -> Done {
        let (view, account, mailbox, saved) = match self.search_setup(&thread.program) {
            Ok(s) => s,
            Err(done) => return done,
        };
        let store = self.services.store.clone();
        if thread.program.uses_modseq() {
            self.use_condstore();
        }
        let run = move |progress: &mut Progress| {
            let search = (&view[..], &thread.program, &saved[..]);
            match thread.algorithm {
                ThreadAlgorithm::OrderedSubject => {
                    ordered_subject_threads(&store, account, mailbox, search, uid, progress)
                }
                ThreadAlgorithm::References => {
                    references_threads(&store, account, mailbox, search, uid, progress)
                }
            }
        };
        let threads = match self.with_progress(tag, run).await {
            Ok(r) => r,
            Err(e) => return Done::no(format!("THREAD failed: {e}")),
        };
        response::thread(&mut self.out, &threads);
        Done::ok(if uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        })
    }

    pub(super) async fn search(&mut self, tag: &str, uid: bool, program: SearchProgram) -> Done {
        if let Some(cs) = &program.charset {
            if !CHARSETS.contains(&cs.as_str()) {
                // RFC 5182 2.1: a SEARCH ... SAVE that fails empties `$`.
                if saves(&program.returns) {
                    self.saved_search.clear();
                }
                return Done::no_code(
                    Code::Other(format!("BADCHARSET ({})", CHARSETS.join(" "))),
                    format!("Charset {cs} is not supported"),
                );
            }
        }
        let Some((view, account, mailbox)) = self.search_view() else {
            return Done::bad("No mailbox selected");
        };
        let mut saved: Vec<u32> = self.saved_search.iter().map(|u| u.0).collect();
        saved.sort_unstable();
        // RFC 9051 6.4.4: an IMAP4rev2 session always gets ESEARCH.
        let returns = match (&program.returns, self.rev2) {
            (None, true) => Some(Vec::new()),
            (r, _) => r.clone(),
        };
        let uses_modseq = program.uses_modseq();
        if uses_modseq {
            self.use_condstore();
        }
        let update = match self.wants_update(tag, uid, returns.as_deref()) {
            Ok(live) => live,
            Err(done) => return done,
        };
        let live = update.then(|| program.clone());
        let hits = match self
            .search_in(tag, account, mailbox, (view, program, saved))
            .await
        {
            Ok(h) => h,
            Err(e) => {
                if saves(&returns) {
                    self.saved_search.clear();
                }
                return Done::no(format!("SEARCH failed: {e}"));
            }
        };
        if let Some(program) = live {
            let results = hits.iter().map(|h| h.1).collect();
            self.add_context(tag, program, None, results);
        }
        // RFC 7162 3.1.5: the highest modseq of what matched.
        let modseq = uses_modseq
            .then(|| hits.iter().map(|h| h.2).max())
            .flatten();
        let number = |h: &Hit| if uid { h.1 .0 } else { h.0 };
        match &returns {
            None => {
                let numbers: Vec<u32> = hits.iter().map(number).collect();
                response::search(&mut self.out, &numbers, modseq);
            }
            Some(opts) => {
                // RFC 4731 3.1: no options (CONTEXT is only a hint, RFC 5267
                // 4.2) means ALL.
                let all = opts.iter().all(|o| *o == SearchReturn::Context)
                    || opts.contains(&SearchReturn::All);
                let only_save = !opts.is_empty() && opts.iter().all(|o| *o == SearchReturn::Save);
                if !only_save {
                    let has = |o| opts.contains(&o);
                    let e = Esearch {
                        tag: tag.to_string(),
                        mailbox: None,
                        uid,
                        min: has(SearchReturn::Min)
                            .then(|| hits.first().map(number))
                            .flatten(),
                        max: has(SearchReturn::Max)
                            .then(|| hits.last().map(number))
                            .flatten(),
                        count: has(SearchReturn::Count).then_some(hits.len() as u32),
                        all: (all && !hits.is_empty())
                            .then(|| SeqSet::compact(hits.iter().map(number))),
                        partial: SearchReturn::partial(opts).map(|r| {
                            let page = r.pick(&hits);
                            (
                                r.wire(),
                                (!page.is_empty())
                                    .then(|| SeqSet::compact(page.iter().map(number))),
                            )
                        }),
                        modseq,
                    };
                    response::esearch(&mut self.out, &e);
                }
            }
        }
        if let Some(opts) = returns.as_ref().filter(|_| saves(&returns)) {
            self.saved_search = saved_result(opts, &hits);
        }
        Done::ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        })
    }
}

/// RFC 5182 2.4 (RFC 9051 6.4.4.1): with MIN, MAX or PARTIAL (RFC 9394
/// 3.1) but neither ALL nor COUNT, `$` holds just the messages those
/// return; otherwise all matches.
fn saved_result(opts: &[SearchReturn], hits: &[Hit]) -> Vec<Uid> {
    let has = |o| opts.contains(&o);
    if has(SearchReturn::All) || has(SearchReturn::Count) {
        return hits.iter().map(|h| h.1).collect();
    }
    let (min, max) = (has(SearchReturn::Min), has(SearchReturn::Max));
    let partial = SearchReturn::partial(opts);
    if !min && !max && partial.is_none() {
        return hits.iter().map(|h| h.1).collect();
    }
    let mut out: Vec<Uid> =
        partial.map_or_else(Vec::new, |r| r.pick(hits).iter().map(|h| h.1).collect());
    if let (true, Some(h)) = (min, hits.first()) {
        if !out.contains(&h.1) {
            out.push(h.1);
        }
    }
    if let (true, Some(h)) = (max, hits.last()) {
        if !out.contains(&h.1) {
            out.push(h.1);
        }
    }
    out
}

fn saves(returns: &Option<Vec<SearchReturn>>) -> bool {
    returns
        .as_ref()
        .is_some_and(|r| r.contains(&SearchReturn::Save))
}

fn run_search(
    store: &Store,
    account: AccountId,
    mailbox: MailboxId,
    (view, program, saved): (&[Entry], &SearchProgram, &[u32]),
    progress: &mut Progress,
) -> Result<Vec<Hit>, StoreError> {
    progress.start(view.len() as u64);
    let needs = program.needs();
    let wants_record = needs.record || needs.header || needs.body;
    // One scan in UID order, joined with the view (also in UID order).
    let records: Vec<MessageRecord> = if wants_record {
        store.messages(account, mailbox)?
    } else {
        Vec::new()
    };
    let max_uid = view.last().map_or(0, |m| m.uid.0);
    let matcher =
        Matcher::new(program, view.len() as u32, max_uid, saved).at(crate::time::now_unix());
    let mut hits = Vec::new();
    let mut r = 0;
    for (i, m) in view.iter().enumerate() {
        progress.tick(i as u64);
        if m.gone {
            continue;
        }
        let record = if wants_record {
            while r < records.len() && records[r].uid < m.uid {
                r += 1;
            }
            match records.get(r) {
                Some(rec) if rec.uid == m.uid => Some(rec),
                // Expunged since the view was made: not a match.
                _ => continue,
            }
        } else {
            None
        };
        let bytes = match record {
            Some(rec) if needs.body || needs.header => match read(store, rec, needs) {
                Ok(b) => b,
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => return Err(e),
            },
            _ => Vec::new(),
        };
        let candidate = Candidate {
            seq: i as u32 + 1,
            uid: m.uid.0,
            flags: &m.flags,
            modseq: m.modseq,
            size: record.map_or(0, |r| r.size),
            internal_date: record.map_or(0, |r| r.internal_date),
            save_date: record.map_or(0, |r| r.save_date),
            message: &bytes,
        };
        if matcher.matches(&candidate) {
            hits.push((i as u32 + 1, m.uid, m.modseq));
        }
    }
    Ok(hits)
}

/// The search's matches, in sequence order, or ordered by `criteria`
/// (ties in sequence order, RFC 5256 3).
pub(super) fn ordered_hits(
    store: &Store,
    account: AccountId,
    mailbox: MailboxId,
    search: (&[Entry], &SearchProgram, &[u32]),
    criteria: Option<&[SortCriterion]>,
    progress: &mut Progress,
) -> Result<Vec<Hit>, StoreError> {
    let Some(criteria) = criteria else {
        return run_search(store, account, mailbox, search, progress);
    };
    let mut keyed = matched_values(store, account, mailbox, search, criteria, progress)?;
    keyed.sort_by(|a, b| compare(criteria, &a.1, &b.1));
    Ok(keyed.into_iter().map(|k| k.0).collect())
}

/// A match with its values under the sort criteria.
type Keyed = (Hit, Vec<SortValue>);
/// Whether source filter `s` takes the mailbox `r` (RFC 5465 6: inboxes
/// is INBOX, where new mail arrives; subtree goes all the way down,
/// subtree-one one level).
fn source_has(s: &SearchSource, r: &MailboxRecord, selected: Option<MailboxId>) -> bool {
    let under = |n: &String, depth_one: bool| {
        r.name == *n
            || r.name
                .strip_prefix(n.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| !depth_one || !rest.contains('/'))
    };
    match s {
        SearchSource::Selected => Some(r.id) == selected,
        SearchSource::Inboxes => r.name == "INBOX",
        SearchSource::Personal => true,
        SearchSource::Subscribed => r.subscribed,
        SearchSource::Subtree(names) => names.iter().any(|n| under(n, false)),
        SearchSource::SubtreeOne(names) => names.iter().any(|n| under(n, true)),
        SearchSource::Mailboxes(names) => names.contains(&r.name),
    }
}

/// What SORT and THREAD order: the search's matches with their values
/// under `criteria`, in sequence order. Records and summaries are read a
/// batch at a time and only the values kept, so a large mailbox never has
/// all its summaries in memory at once; summaries made on the way are not
/// kept (FETCH keeps them).
fn matched_values(
    store: &Store,
    account: AccountId,
    mailbox: MailboxId,
    search: (&[Entry], &SearchProgram, &[u32]),
    criteria: &[SortCriterion],
    progress: &mut Progress,
) -> Result<Vec<Keyed>, StoreError> {
    let hits = run_search(store, account, mailbox, search, progress)?;
    let needs_envelope = criteria
        .iter()
        .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size));
    let mut keyed = Vec::with_capacity(hits.len());
    for batch in hits.chunks(super::fetch::FETCH_BATCH) {
        let uids: Vec<Uid> = batch.iter().map(|h| h.1).collect();
        let records = super::fetch::read_records(store, account, mailbox, &uids)?;
        let summaries = if needs_envelope {
            crate::summaries::load(store, &records)?.0
        } else {
            vec![None; records.len()]
        };
        for (h, (rec, summary)) in batch.iter().zip(records.iter().zip(&summaries)) {
            let values = sort_values(
                criteria,
                summary.as_ref().map(|s| &s.envelope),
                rec.as_ref().map_or(0, |r| r.internal_date),
                rec.as_ref().map_or(0, |r| r.size),
            );
            keyed.push((*h, values));
        }
    }
    Ok(keyed)
}

/// ORDEREDSUBJECT's `thread-list`s: the matches by base subject and sent
/// date.
fn ordered_subject_threads(
    store: &Store,
    account: AccountId,
    mailbox: MailboxId,
    search: (&[Entry], &SearchProgram, &[u32]),
    uid: bool,
    progress: &mut Progress,
) -> Result<String, StoreError> {
    let by = [SortKey::Subject, SortKey::Date].map(|key| SortCriterion {
        reverse: false,
        key,
    });
    let keyed = matched_values(store, account, mailbox, search, &by, progress)?;
    let messages: Vec<(u32, Vec<u8>, i64)> = keyed
        .into_iter()
        .map(|(h, v)| {
            let n = if uid { h.1 .0 } else { h.0 };
            match (&v[0], &v[1]) {
                (SortValue::Text(s), SortValue::Number(d)) => (n, s.clone(), *d),
                _ => (n, Vec::new(), 0),
            }
        })
        .collect();
    Ok(ordered_subject_response(&ordered_subject(&messages)))
}

/// REFERENCES' `thread-list`s: each match's threading keys and sent date
/// read from its header, a batch of records at a time.
fn references_threads(
    store: &Store,
    account: AccountId,
    mailbox: MailboxId,
    search: (&[Entry], &SearchProgram, &[u32]),
    uid: bool,
    progress: &mut Progress,
) -> Result<String, StoreError> {
    let hits = run_search(store, account, mailbox, search, progress)?;
    let mut inputs = Vec::with_capacity(hits.len());
    for batch in hits.chunks(super::fetch::FETCH_BATCH) {
        let uids: Vec<Uid> = batch.iter().map(|h| h.1).collect();
        let records = super::fetch::read_records(store, account, mailbox, &uids)?;
        for (h, rec) in batch.iter().zip(records) {
            let Some(rec) = rec else { continue };
            let head = super::fetch::read_header(&store.open_message(&rec)?)?;
            let date = raw_header_value(&head, "Date");
            inputs.push(ThreadInput {
                number: if uid { h.1 .0 } else { h.0 },
                keys: ThreadKeys::from_header(&head),
                date: sent_date(date.as_deref().map(str::as_bytes), rec.internal_date),
            });
        }
    }
    Ok(references(&inputs).response())
}

/// The whole message for body keys; for header keys only its header.
fn read(store: &Store, rec: &MessageRecord, needs: Needs) -> Result<Vec<u8>, StoreError> {
    let reader = store.open_message(rec)?;
    if needs.body {
        reader.read_all()
    } else {
        super::fetch::read_header(&reader)
    }
}
