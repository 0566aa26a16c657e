//! SEARCH criteria (RFC 9051 6.4.4 and 9 `search-key`, with RFC 3501's
//! rev1 keys, RFC 7162's MODSEQ and RFC 4731/9051 RETURN options), parsed
//! into a typed [`SearchProgram`].
//!
//! NOT, OR and parentheses nest, so the parser recurses; the recursion is
//! bounded by [`MAX_SEARCH_DEPTH`] and the whole program by
//! [`MAX_SEARCH_KEYS`], each refused with a protocol error past the limit.
//! This module only parses: evaluating a program is the session's work.

use super::parser::{PResult, Parser};
use super::seqset::SeqSet;
use super::types::ModSeq;

/// Deepest nesting of NOT, OR and parenthesised lists. A client ORing 60
/// addresses (`OR FROM a OR FROM b ...`) nests 60 deep; nothing real
/// goes further.
pub const MAX_SEARCH_DEPTH: usize = 64;
/// Most keys in one program, nested ones included.
pub const MAX_SEARCH_KEYS: usize = 1000;

/// RFC 9051 9 `date`: a day, without time or zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SearchDate {
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
}

/// One search key (RFC 9051 6.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Deleted,
    Draft,
    Flagged,
    Seen,
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unseen,
    /// RFC 3501 6.4.4 (IMAP4rev1 only): NEW, OLD, RECENT, UNRECENT.
    New,
    Old,
    Recent,
    Unrecent,
    Keyword(String),
    Unkeyword(String),
    Bcc(String),
    Cc(String),
    From(String),
    To(String),
    Subject(String),
    Body(String),
    Text(String),
    Header(String, String),
    Before(SearchDate),
    On(SearchDate),
    Since(SearchDate),
    SentBefore(SearchDate),
    SentOn(SearchDate),
    SentSince(SearchDate),
    Larger(u64),
    Smaller(u64),
    /// RFC 5032 2: INTERNALDATE at or before now minus this many seconds.
    Older(u32),
    /// RFC 5032 2: INTERNALDATE at or after now minus this many seconds.
    Younger(u32),
    /// RFC 8514 4.3: the save date's day (UTC) against a date.
    SavedBefore(SearchDate),
    SavedOn(SearchDate),
    SavedSince(SearchDate),
    /// RFC 8514 4.3: every message, where save dates are kept (always).
    SavedDateSupported,
    Uid(SeqSet),
    SeqSet(SeqSet),
    /// RFC 7162 3.1.5; the optional entry name and type are read and not
    /// kept (roost keeps one modseq per message).
    ModSeq(ModSeq),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    /// A parenthesised list: every key must match.
    And(Vec<SearchKey>),
}

/// RFC 9051 6.4.4 / RFC 4731 `search-return-opt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    /// RFC 5182: keep the result for `$`.
    Save,
    /// RFC 9394 3.1: one page of the results.
    Partial(PartialRange),
    /// RFC 5267 4.3: keep the result live, sending ADDTO and REMOVEFROM.
    Update,
    /// RFC 5267 4.2: a hint that the search will be used again.
    Context,
}

impl SearchReturn {
    /// The PARTIAL range among `opts`, if any.
    pub fn partial(opts: &[SearchReturn]) -> Option<PartialRange> {
        opts.iter().find_map(|o| match o {
            SearchReturn::Partial(r) => Some(*r),
            _ => None,
        })
    }
}

/// RFC 9394 3.1 `partial-range`: positions `first` to `last` (from 1)
/// among results in order, counted from the last result when `from_end`
/// (`-1:-100` is the last hundred). `first <= last` always: `500:400` is
/// read as `400:500`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialRange {
    pub from_end: bool,
    pub first: u32,
    pub last: u32,
}

impl PartialRange {
    /// The results the range covers, in their order; empty when it lies
    /// past them.
    pub fn pick<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let n = items.len();
        let (first, last) = (self.first as usize, self.last as usize);
        let (start, end) = if self.from_end {
            (n.saturating_sub(last), n.saturating_sub(first - 1))
        } else {
            (first - 1, last)
        };
        let end = end.min(n);
        if start >= end {
            return &[];
        }
        &items[start..end]
    }

    /// The range as written back in the answer.
    pub fn wire(&self) -> String {
        if self.from_end {
            format!("-{}:-{}", self.first, self.last)
        } else {
            format!("{}:{}", self.first, self.last)
        }
    }
}

/// RFC 7377 2 with RFC 5465 6: where an ESEARCH looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchSource {
    Selected,
    Inboxes,
    Personal,
    Subscribed,
    /// These mailboxes and all below them.
    Subtree(Vec<String>),
    /// These mailboxes and their children.
    SubtreeOne(Vec<String>),
    Mailboxes(Vec<String>),
}

/// Source filters one ESEARCH may give, at most.
pub const MAX_SEARCH_SOURCES: usize = 32;

/// RFC 7377 4: `ESEARCH [IN (...)] [RETURN (...)] search-program`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiSearch {
    /// `selected` when none are given (RFC 7377 2.2).
    pub sources: Vec<SearchSource>,
    pub program: SearchProgram,
}

impl MultiSearch {
    /// Whether only the selected mailbox is searched.
    pub fn only_selected(&self) -> bool {
        self.sources.iter().all(|s| *s == SearchSource::Selected)
    }

    /// Every mailbox name the sources give, for the session to translate.
    pub fn names_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.sources.iter_mut().flat_map(|s| match s {
            SearchSource::Subtree(n) | SearchSource::SubtreeOne(n) | SearchSource::Mailboxes(n) => {
                n.iter_mut()
            }
            _ => [].iter_mut(),
        })
    }
}

/// A whole SEARCH command's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchProgram {
    /// `RETURN (...)`; `None` for the plain (untagged SEARCH) form.
    pub returns: Option<Vec<SearchReturn>>,
    /// `CHARSET name`, upper-cased.
    pub charset: Option<String>,
    /// The keys given at top level, all of which must match.
    pub keys: Vec<SearchKey>,
}

impl Parser<'_> {
    /// RFC 9051 9: search = "SEARCH" [search-return-opts] SP search-program.
    pub(super) fn search_program(&mut self) -> PResult<SearchProgram> {
        self.sp()?;
        let mut returns = None;
        if self.eat_word("RETURN ") {
            returns = Some(self.search_returns()?);
            self.sp()?;
        }
        let mut charset = None;
        if self.eat_word("CHARSET ") {
            charset = Some(self.astring()?.to_ascii_uppercase());
            self.sp()?;
        }
        let mut count = 0;
        let mut keys = vec![self.search_key(1, &mut count)?];
        while self.eat(b' ') {
            keys.push(self.search_key(1, &mut count)?);
        }
        Ok(SearchProgram {
            returns,
            charset,
            keys,
        })
    }

    // RFC 7377 4: esearch = "ESEARCH" [SP esearch-source-opts]
    //     [SP search-return-opts] SP search-program;
    // esearch-source-opts = "IN" SP "(" source-mbox ")".
    pub(super) fn multisearch(&mut self) -> PResult<MultiSearch> {
        let mut sources = Vec::new();
        if self.eat_word(" IN (") {
            loop {
                if sources.len() >= MAX_SEARCH_SOURCES {
                    return Err(format!(
                        "Too many search sources (at most {MAX_SEARCH_SOURCES})"
                    ));
                }
                let filter = self.atom_upper("a mailbox filter")?;
                sources.push(match filter.as_str() {
                    "SELECTED" => SearchSource::Selected,
                    "INBOXES" => SearchSource::Inboxes,
                    "PERSONAL" => SearchSource::Personal,
                    "SUBSCRIBED" => SearchSource::Subscribed,
                    "SUBTREE" => SearchSource::Subtree(self.sp_mailboxes()?),
                    "SUBTREE-ONE" => SearchSource::SubtreeOne(self.sp_mailboxes()?),
                    "MAILBOXES" => SearchSource::Mailboxes(self.sp_mailboxes()?),
                    other => return Err(format!("Unknown mailbox filter {other}")),
                });
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        if sources.is_empty() {
            sources.push(SearchSource::Selected);
        }
        let program = self.search_program()?;
        Ok(MultiSearch { sources, program })
    }

    /// RFC 5465 8: one-or-more-mailbox = mailbox / "(" mailbox
    /// *(SP mailbox) ")".
    fn sp_mailboxes(&mut self) -> PResult<Vec<String>> {
        self.sp()?;
        if !self.eat(b'(') {
            return Ok(vec![self.mailbox()?]);
        }
        let mut names = Vec::new();
        loop {
            super::parser::push_item(&mut names, self.mailbox()?, "mailboxes")?;
            if self.eat(b')') {
                return Ok(names);
            }
            self.sp()?;
        }
    }

    /// `1*(SP search-key)`: the keys after SORT's charset (RFC 5256 4).
    pub(super) fn search_keys(&mut self) -> PResult<SearchProgram> {
        let mut count = 0;
        let mut keys = Vec::new();
        while self.eat(b' ') {
            keys.push(self.search_key(1, &mut count)?);
        }
        if keys.is_empty() {
            return Err("Expected search keys".into());
        }
        Ok(SearchProgram {
            returns: None,
            charset: None,
            keys,
        })
    }

    pub(super) fn search_returns(&mut self) -> PResult<Vec<SearchReturn>> {
        self.expect(b'(', "'(' after RETURN")?;
        let mut out = Vec::new();
        if self.eat(b')') {
            return Ok(out);
        }
        loop {
            let opt = match self.atom_upper("a search return option")?.as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                "SAVE" => SearchReturn::Save,
                "UPDATE" => SearchReturn::Update,
                "CONTEXT" => SearchReturn::Context,
                "PARTIAL" => {
                    self.sp()?;
                    let range = self.partial_range()?;
                    if SearchReturn::partial(&out).is_some_and(|r| r != range) {
                        return Err("PARTIAL given twice".into());
                    }
                    SearchReturn::Partial(range)
                }
                other => return Err(format!("Unknown search return option {other}")),
            };
            if !out.contains(&opt) {
                out.push(opt);
            }
            // RFC 5267 4.4 (RFC 9394 3.1): one PARTIAL or one ALL, not
            // both.
            if out.contains(&SearchReturn::All) && SearchReturn::partial(&out).is_some() {
                return Err("PARTIAL and ALL cannot be combined".into());
            }
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }

    // RFC 9394 3.1: partial-range = partial-range-first /
    //     partial-range-last; first = nz-number ":" nz-number,
    //     last = "-" nz-number ":" "-" nz-number.
    pub(super) fn partial_range(&mut self) -> PResult<PartialRange> {
        let from_end = self.eat(b'-');
        let a = self.nz_number()?;
        self.expect(b':', "':' in a PARTIAL range")?;
        if from_end {
            self.expect(b'-', "'-' in a PARTIAL range counted from the end")?;
        }
        let b = self.nz_number()?;
        Ok(PartialRange {
            from_end,
            first: a.min(b),
            last: a.max(b),
        })
    }

    /// One key at nesting level `depth`; `count` counts every key parsed.
    fn search_key(&mut self, depth: usize, count: &mut usize) -> PResult<SearchKey> {
        if depth > MAX_SEARCH_DEPTH {
            return Err(format!(
                "Search criteria nested too deeply (at most {MAX_SEARCH_DEPTH} levels)"
            ));
        }
        *count += 1;
        if *count > MAX_SEARCH_KEYS {
            return Err(format!("Too many search keys (at most {MAX_SEARCH_KEYS})"));
        }
        if self.eat(b'(') {
            let mut keys = vec![self.search_key(depth + 1, count)?];
            while self.eat(b' ') {
                keys.push(self.search_key(depth + 1, count)?);
            }
            self.expect(b')', "')' after search keys")?;
            return Ok(SearchKey::And(keys));
        }
        if self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
        {
            return Ok(SearchKey::SeqSet(self.seq_set()?));
        }
        let name = self.atom_upper("a search key")?;
        use SearchKey as K;
        Ok(match name.as_str() {
            "ALL" => K::All,
            "ANSWERED" => K::Answered,
            "DELETED" => K::Deleted,
            "DRAFT" => K::Draft,
            "FLAGGED" => K::Flagged,
            "SEEN" => K::Seen,
            "UNANSWERED" => K::Unanswered,
            "UNDELETED" => K::Undeleted,
            "UNDRAFT" => K::Undraft,
            "UNFLAGGED" => K::Unflagged,
            "UNSEEN" => K::Unseen,
            "NEW" => K::New,
            "OLD" => K::Old,
            "RECENT" => K::Recent,
            "UNRECENT" => K::Unrecent,
            "KEYWORD" => K::Keyword(self.sp_keyword()?),
            "UNKEYWORD" => K::Unkeyword(self.sp_keyword()?),
            "BCC" => K::Bcc(self.sp_astring()?),
            "CC" => K::Cc(self.sp_astring()?),
            "FROM" => K::From(self.sp_astring()?),
            "TO" => K::To(self.sp_astring()?),
            "SUBJECT" => K::Subject(self.sp_astring()?),
            "BODY" => K::Body(self.sp_astring()?),
            "TEXT" => K::Text(self.sp_astring()?),
            "HEADER" => {
                let field = self.sp_astring()?;
                K::Header(field, self.sp_astring()?)
            }
            "BEFORE" => K::Before(self.sp_date()?),
            "ON" => K::On(self.sp_date()?),
            "SINCE" => K::Since(self.sp_date()?),
            "SENTBEFORE" => K::SentBefore(self.sp_date()?),
            "SENTON" => K::SentOn(self.sp_date()?),
            "SENTSINCE" => K::SentSince(self.sp_date()?),
            "OLDER" => {
                self.sp()?;
                K::Older(self.nz_number()?)
            }
            "YOUNGER" => {
                self.sp()?;
                K::Younger(self.nz_number()?)
            }
            "SAVEDBEFORE" => K::SavedBefore(self.sp_date()?),
            "SAVEDON" => K::SavedOn(self.sp_date()?),
            "SAVEDSINCE" => K::SavedSince(self.sp_date()?),
            "SAVEDATESUPPORTED" => K::SavedDateSupported,
            "LARGER" => K::Larger(self.sp_number64()?),
            "SMALLER" => K::Smaller(self.sp_number64()?),
            "UID" => {
                self.sp()?;
                K::Uid(self.seq_set()?)
            }
            "MODSEQ" => K::ModSeq(self.search_modseq()?),
            "NOT" => {
                self.sp()?;
                K::Not(Box::new(self.search_key(depth + 1, count)?))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key(depth + 1, count)?;
                self.sp()?;
                K::Or(Box::new(a), Box::new(self.search_key(depth + 1, count)?))
            }
            _ => return Err(format!("Unknown search key {name}")),
        })
    }

    fn sp_astring(&mut self) -> PResult<String> {
        self.sp()?;
        self.astring()
    }

    /// RFC 9051 9: flag-keyword = "$MDNSent" / "$Forwarded" / ... / atom.
    fn sp_keyword(&mut self) -> PResult<String> {
        self.sp()?;
        let word = self.take_while(super::types::is_atom_char);
        if word.is_empty() {
            return Err("Expected a keyword".into());
        }
        Ok(String::from_utf8_lossy(word).into_owned())
    }

    /// RFC 9051 9: number64, at most 2^63 - 1.
    pub(super) fn sp_number64(&mut self) -> PResult<u64> {
        self.sp()?;
        let d = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(d)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| "Expected a number".to_string())
    }

    /// RFC 9051 9: date = date-text / DQUOTE date-text DQUOTE, with
    /// date-text = date-day "-" date-month "-" date-year.
    fn sp_date(&mut self) -> PResult<SearchDate> {
        self.sp()?;
        let quoted = self.eat(b'"');
        let day_digits = self.take_while(|b| b.is_ascii_digit());
        let day = match day_digits.len() {
            1 | 2 => std::str::from_utf8(day_digits)
                .ok()
                .and_then(|d| d.parse::<u8>().ok()),
            _ => None,
        }
        .filter(|d| (1..=31).contains(d))
        .ok_or_else(|| "Expected a date like 1-Feb-2026".to_string())?;
        self.expect(b'-', "'-' in date")?;
        let month = self.take_while(|b| b.is_ascii_alphabetic());
        let month = MONTHS
            .iter()
            .position(|m| m.as_bytes().eq_ignore_ascii_case(month))
            .ok_or_else(|| "Expected a month name (Jan to Dec) in date".to_string())?;
        self.expect(b'-', "'-' in date")?;
        let year = self.take_while(|b| b.is_ascii_digit());
        if year.len() != 4 {
            return Err("Expected a four-digit year in date".into());
        }
        let year = std::str::from_utf8(year)
            .ok()
            .and_then(|y| y.parse::<u16>().ok())
            .ok_or_else(|| "Expected a four-digit year in date".to_string())?;
        if quoted {
            self.expect(b'"', "'\"' after date")?;
        }
        Ok(SearchDate {
            year,
            month: month as u8 + 1,
            day,
        })
    }

    /// RFC 7162 3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP
    /// mod-sequence-valzer.
    fn search_modseq(&mut self) -> PResult<ModSeq> {
        self.sp()?;
        if self.peek() == Some(b'"') {
            self.astring()?;
            self.sp()?;
            let kind = self.atom_upper("an entry type")?;
            if !matches!(kind.as_str(), "PRIV" | "SHARED" | "ALL") {
                return Err(format!("Unknown entry type {kind}"));
            }
            self.sp()?;
        }
        self.modseq(true)
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::CommandBody;
    use crate::imap::parser::parse_command;

    fn program(line: &str) -> SearchProgram {
        match parse_command(line.as_bytes()) {
            Ok(c) => match c.body {
                CommandBody::Search { program, .. } => program,
                other => panic!("{other:?}"),
            },
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    fn error(line: &str) -> String {
        parse_command(line.as_bytes()).unwrap_err().message
    }

    fn date(year: u16, month: u8, day: u8) -> SearchDate {
        SearchDate { year, month, day }
    }

    #[test]
    fn keys_of_every_shape() {
        use SearchKey as K;
        let p = program(
            "a SEARCH UNSEEN SINCE 1-Feb-2024 before \"15-dec-2025\" FROM {5}\r\nalice \
             HEADER X-Spam yes LARGER 100 UID 1:5,9 2:* KEYWORD $Junk MODSEQ 7 \
             NOT (SEEN DELETED) OR TO bob CC \"carol x\"",
        );
        assert_eq!(p.returns, None);
        assert_eq!(p.charset, None);
        assert_eq!(
            p.keys,
            vec![
                K::Unseen,
                K::Since(date(2024, 2, 1)),
                K::Before(date(2025, 12, 15)),
                K::From("alice".into()),
                K::Header("X-Spam".into(), "yes".into()),
                K::Larger(100),
                K::Uid(SeqSet::parse("1:5,9").unwrap()),
                K::SeqSet(SeqSet::parse("2:*").unwrap()),
                K::Keyword("$Junk".into()),
                K::ModSeq(ModSeq(7)),
                K::Not(Box::new(K::And(vec![K::Seen, K::Deleted]))),
                K::Or(
                    Box::new(K::To("bob".into())),
                    Box::new(K::Cc("carol x".into()))
                ),
            ]
        );
    }

    #[test]
    fn return_options_charset_and_modseq_entry() {
        let p = program("a UID SEARCH RETURN (MIN COUNT min) CHARSET utf-8 ALL");
        assert_eq!(
            p.returns,
            Some(vec![SearchReturn::Min, SearchReturn::Count])
        );
        assert_eq!(p.charset.as_deref(), Some("UTF-8"));
        assert_eq!(program("a SEARCH RETURN () $").returns, Some(vec![]));
        // RFC 5267: UPDATE and the CONTEXT hint; PARTIAL or ALL, not both.
        assert_eq!(
            program("a UID SEARCH RETURN (UPDATE CONTEXT COUNT) ALL").returns,
            Some(vec![
                SearchReturn::Update,
                SearchReturn::Context,
                SearchReturn::Count
            ])
        );
        assert_eq!(
            error("a SEARCH RETURN (PARTIAL 1:5 ALL) ALL"),
            "PARTIAL and ALL cannot be combined"
        );
        assert_eq!(
            parse_command(b"a CANCELUPDATE \"B01\" \"B02\"")
                .unwrap()
                .body,
            CommandBody::CancelUpdate(vec!["B01".into(), "B02".into()])
        );
        assert_eq!(
            error("a CANCELUPDATE"),
            "CANCELUPDATE needs the tag of a search"
        );
        let p = program("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338");
        assert_eq!(p.keys, vec![SearchKey::ModSeq(ModSeq(620162338))]);
    }

    #[test]
    fn bad_criteria_are_refused() {
        assert_eq!(error("a SEARCH"), "Expected a space");
        assert_eq!(error("a SEARCH FROB"), "Unknown search key FROB");
        assert_eq!(error("a SEARCH FROM"), "Expected a space");
        assert_eq!(error("a SEARCH (SEEN"), "Expected ')' after search keys");
        assert_eq!(
            error("a SEARCH ON 32-Jan-2024"),
            "Expected a date like 1-Feb-2026"
        );
        assert_eq!(
            error("a SEARCH ON 1-Foo-2024"),
            "Expected a month name (Jan to Dec) in date"
        );
        assert_eq!(
            error("a SEARCH ON 1-Jan-24"),
            "Expected a four-digit year in date"
        );
        assert_eq!(error("a SEARCH RETURN (PARTIAL) ALL"), "Expected a space");
        assert_eq!(
            error("a SEARCH RETURN (FIRST) ALL"),
            "Unknown search return option FIRST"
        );
        assert_eq!(
            error("a SEARCH LARGER 9223372036854775808"),
            "Expected a number"
        );
        assert_eq!(
            error("a SEARCH SEEN)"),
            "Unexpected characters at end of command"
        );
    }

    fn nested_nots(levels: usize) -> String {
        format!("a SEARCH {}ALL", "NOT ".repeat(levels))
    }

    #[test]
    fn nesting_depth_edge() {
        // The top-level key is level 1: MAX - 1 NOTs reach level MAX.
        let p = program(&nested_nots(MAX_SEARCH_DEPTH - 1));
        let mut key = &p.keys[0];
        let mut levels = 1;
        while let SearchKey::Not(inner) = key {
            key = inner;
            levels += 1;
        }
        assert_eq!(levels, MAX_SEARCH_DEPTH);
        assert_eq!(
            error(&nested_nots(MAX_SEARCH_DEPTH)),
            "Search criteria nested too deeply (at most 64 levels)"
        );
        let parens = |n: usize| format!("a SEARCH {}ALL{}", "(".repeat(n), ")".repeat(n));
        assert!(matches!(
            program(&parens(MAX_SEARCH_DEPTH - 1)).keys[0],
            SearchKey::And(_)
        ));
        assert_eq!(
            error(&parens(MAX_SEARCH_DEPTH)),
            "Search criteria nested too deeply (at most 64 levels)"
        );
        // Far past the limit the answer is the same, found at the limit.
        assert_eq!(
            error(&format!("a SEARCH {}SEEN", "OR SEEN ".repeat(20_000))),
            "Search criteria nested too deeply (at most 64 levels)"
        );
    }

    #[test]
    fn key_count_edge() {
        let keys = |n: usize| format!("a SEARCH {}", vec!["SEEN"; n].join(" "));
        assert_eq!(program(&keys(MAX_SEARCH_KEYS)).keys.len(), MAX_SEARCH_KEYS);
        assert_eq!(
            error(&keys(MAX_SEARCH_KEYS + 1)),
            "Too many search keys (at most 1000)"
        );
    }
}
