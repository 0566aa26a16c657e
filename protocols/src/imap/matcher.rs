//! Runs a [`SearchProgram`] against one message at a time (RFC 9051
//! 6.4.4). The caller supplies what it knows of each message as a
//! [`Candidate`]; [`SearchProgram::needs`] says beforehand whether the
//! program looks at the stored record (size, dates) or at the message
//! itself (header and body keys), so nothing else is read.
//!
//! String keys match as case-insensitive substrings of MIME-decoded
//! header values and decoded body text ([`crate::message::text`]). The
//! text of a message is made once, on the first key that needs it.
//! Evaluation recurses over NOT, OR and lists, as deep as the parser
//! allowed ([`super::search::MAX_SEARCH_DEPTH`]).

use super::search::{SearchDate, SearchKey, SearchProgram};
use super::seqset::SeqSet;
use super::types::{Flag, Flags, ModSeq};
use crate::message::date::days_from_civil;
use crate::message::header::header_end;
use crate::message::text::{body_text, header_fields, message_text, TextField};
use std::cell::OnceCell;

/// What a program reads beyond a message's flags and numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Size, internal date or save date.
    pub record: bool,
    /// The message's header: header and sent-date keys.
    pub header: bool,
    /// The whole message: BODY and TEXT.
    pub body: bool,
}

impl SearchProgram {
    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        let mut todo: Vec<&SearchKey> = self.keys.iter().collect();
        while let Some(k) = todo.pop() {
            match k {
                SearchKey::Larger(_)
                | SearchKey::Smaller(_)
                | SearchKey::Before(_)
                | SearchKey::On(_)
                | SearchKey::Since(_)
                | SearchKey::Older(_)
                | SearchKey::Younger(_)
                | SearchKey::SavedBefore(_)
                | SearchKey::SavedOn(_)
                | SearchKey::SavedSince(_) => n.record = true,
                SearchKey::Bcc(_)
                | SearchKey::Cc(_)
                | SearchKey::From(_)
                | SearchKey::To(_)
                | SearchKey::Subject(_)
                | SearchKey::Header(..)
                | SearchKey::SentBefore(_)
                | SearchKey::SentOn(_)
                | SearchKey::SentSince(_) => n.header = true,
                SearchKey::Body(_) | SearchKey::Text(_) => n.body = true,
                SearchKey::Not(k) => todo.push(k),
                SearchKey::Or(a, b) => todo.extend([&**a, &**b]),
                SearchKey::And(ks) => todo.extend(ks),
                _ => {}
            }
        }
        n
    }

    /// Whether a MODSEQ key appears (RFC 7162 3.1.5: the response then
    /// carries the highest modseq of the matches).
    pub fn uses_modseq(&self) -> bool {
        self.any_key(|k| matches!(k, SearchKey::ModSeq(_)))
    }

    /// RFC 5182: whether `$` (the saved result) is among the keys.
    pub fn uses_saved_result(&self) -> bool {
        self.any_key(|k| matches!(k, SearchKey::SeqSet(SeqSet::SearchResult)))
    }

    /// Whether any key, at any depth, satisfies `f` (iterative: nesting
    /// is bounded by the parser, but a work list needs no stack).
    pub fn any_key(&self, f: impl Fn(&SearchKey) -> bool) -> bool {
        let mut todo: Vec<&SearchKey> = self.keys.iter().collect();
        while let Some(k) = todo.pop() {
            if f(k) {
                return true;
            }
            match k {
                SearchKey::Not(k) => todo.push(k),
                SearchKey::Or(a, b) => todo.extend([&**a, &**b]),
                SearchKey::And(ks) => todo.extend(ks),
                _ => {}
            }
        }
        false
    }
}

/// One message as the search sees it.
pub struct Candidate<'a> {
    pub seq: u32,
    pub uid: u32,
    pub flags: &'a Flags,
    pub modseq: ModSeq,
    /// From the record; only read when [`Needs::record`].
    pub size: u64,
    pub internal_date: i64,
    pub save_date: i64,
    /// The whole message when [`Needs::body`], else its header when
    /// [`Needs::header`], else nothing.
    pub message: &'a [u8],
}

/// The mailbox-wide facts a program is run with.
pub struct Matcher<'p> {
    program: &'p SearchProgram,
    /// Messages in the mailbox and its largest UID, for `*`.
    count: u32,
    max_uid: u32,
    /// RFC 5182: the UIDs of the saved result, sorted, for `$`.
    saved: &'p [u32],
    /// The current time (unix seconds), for OLDER and YOUNGER.
    now: i64,
}

/// Text made from the message on first need.
#[derive(Default)]
struct Lazy {
    fields: OnceCell<Vec<TextField>>,
    body: OnceCell<String>,
    text: OnceCell<String>,
}

impl<'p> Matcher<'p> {
    pub fn new(program: &'p SearchProgram, count: u32, max_uid: u32, saved: &'p [u32]) -> Self {
        Matcher {
            program,
            count,
            max_uid,
            saved,
            now: 0,
        }
    }

    /// The current time (unix seconds) OLDER and YOUNGER count back from.
    pub fn at(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    pub fn matches(&self, c: &Candidate<'_>) -> bool {
        let lazy = Lazy::default();
        self.program.keys.iter().all(|k| self.key(k, c, &lazy))
    }

    fn key(&self, key: &SearchKey, c: &Candidate<'_>, lazy: &Lazy) -> bool {
        let flag = |f: Flag| c.flags.contains(&f);
        match key {
            SearchKey::All => true,
            SearchKey::Answered => flag(Flag::Answered),
            SearchKey::Deleted => flag(Flag::Deleted),
            SearchKey::Draft => flag(Flag::Draft),
            SearchKey::Flagged => flag(Flag::Flagged),
            SearchKey::Seen => flag(Flag::Seen),
            SearchKey::Unanswered => !flag(Flag::Answered),
            SearchKey::Undeleted => !flag(Flag::Deleted),
            SearchKey::Undraft => !flag(Flag::Draft),
            SearchKey::Unflagged => !flag(Flag::Flagged),
            SearchKey::Unseen => !flag(Flag::Seen),
            // roost keeps no \Recent: no message is new or recent.
            SearchKey::New | SearchKey::Recent => false,
            SearchKey::Old | SearchKey::Unrecent => true,
            SearchKey::Keyword(k) => has_keyword(c.flags, k),
            SearchKey::Unkeyword(k) => !has_keyword(c.flags, k),
            SearchKey::Bcc(s) => self.field(c, lazy, "bcc", s),
            SearchKey::Cc(s) => self.field(c, lazy, "cc", s),
            SearchKey::From(s) => self.field(c, lazy, "from", s),
            SearchKey::To(s) => self.field(c, lazy, "to", s),
            SearchKey::Subject(s) => self.field(c, lazy, "subject", s),
            SearchKey::Header(name, s) => self.field(c, lazy, &name.to_lowercase(), s),
            SearchKey::Body(s) => lazy
                .body
                .get_or_init(|| body_text(c.message))
                .contains(&s.to_lowercase()),
            SearchKey::Text(s) => lazy
                .text
                .get_or_init(|| message_text(c.message))
                .contains(&s.to_lowercase()),
            SearchKey::Before(d) => day_of(c.internal_date) < days(d),
            SearchKey::On(d) => day_of(c.internal_date) == days(d),
            SearchKey::Since(d) => day_of(c.internal_date) >= days(d),
            SearchKey::SentBefore(d) => self.sent_day(c, lazy).is_some_and(|s| s < days(d)),
            SearchKey::SentOn(d) => self.sent_day(c, lazy).is_some_and(|s| s == days(d)),
            SearchKey::SentSince(d) => self.sent_day(c, lazy).is_some_and(|s| s >= days(d)),
            // RFC 5032 2: both inclusive, to the second.
            SearchKey::Older(n) => c.internal_date <= self.now - i64::from(*n),
            SearchKey::Younger(n) => c.internal_date >= self.now - i64::from(*n),
            SearchKey::SavedBefore(d) => day_of(saved(c)) < days(d),
            SearchKey::SavedOn(d) => day_of(saved(c)) == days(d),
            SearchKey::SavedSince(d) => day_of(saved(c)) >= days(d),
            SearchKey::SavedDateSupported => true,
            SearchKey::Larger(n) => c.size > *n,
            SearchKey::Smaller(n) => c.size < *n,
            SearchKey::Uid(set) => self.in_set(set, c.uid, self.max_uid, c.uid),
            SearchKey::SeqSet(set) => self.in_set(set, c.seq, self.count, c.uid),
            SearchKey::ModSeq(m) => c.modseq >= *m,
            SearchKey::Not(k) => !self.key(k, c, lazy),
            SearchKey::Or(a, b) => self.key(a, c, lazy) || self.key(b, c, lazy),
            SearchKey::And(ks) => ks.iter().all(|k| self.key(k, c, lazy)),
        }
    }

    /// Whether `n` is in `set` (`*` being `largest`); `$` is matched by UID.
    fn in_set(&self, set: &SeqSet, n: u32, largest: u32, uid: u32) -> bool {
        match set {
            SeqSet::SearchResult => self.saved.binary_search(&uid).is_ok(),
            set => set.contains(n, largest),
        }
    }

    /// RFC 9051 6.4.4: a header key matches when the field's decoded value
    /// contains the string; `HEADER name ""` matches any message that has
    /// the field.
    fn field(&self, c: &Candidate<'_>, lazy: &Lazy, name: &str, s: &str) -> bool {
        let fields = lazy
            .fields
            .get_or_init(|| header_fields(&c.message[..header_end(c.message)]));
        let needle = s.to_lowercase();
        fields
            .iter()
            .any(|f| f.name == name && f.value.contains(&needle))
    }

    /// The day of the Date field in its own zone (RFC 9051 6.4.4:
    /// "disregarding time and timezone").
    fn sent_day(&self, c: &Candidate<'_>, lazy: &Lazy) -> Option<i64> {
        let fields = lazy
            .fields
            .get_or_init(|| header_fields(&c.message[..header_end(c.message)]));
        let date = &fields.iter().find(|f| f.name == "date")?.value;
        let utc = mailparse::dateparse(date).ok()?;
        Some((utc + zone_offset(date)).div_euclid(86_400))
    }
}

fn has_keyword(flags: &Flags, k: &str) -> bool {
    flags
        .iter()
        .any(|f| matches!(f, Flag::Keyword(x) if x.eq_ignore_ascii_case(k)))
}

/// RFC 8514 4.3: the save date, or the internal date for a message
/// stored before roost kept save dates (0).
fn saved(c: &Candidate<'_>) -> i64 {
    if c.save_date == 0 {
        c.internal_date
    } else {
        c.save_date
    }
}

fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

fn days(d: &SearchDate) -> i64 {
    days_from_civil(i64::from(d.year), i64::from(d.month), i64::from(d.day))
}

/// The `+hhmm` / `-hhmm` zone at the end of an RFC 5322 date, in seconds.
fn zone_offset(date: &str) -> i64 {
    let zone = date.split_whitespace().find(|w| {
        w.len() == 5
            && (w.starts_with('+') || w.starts_with('-'))
            && w[1..].bytes().all(|b| b.is_ascii_digit())
    });
    let Some(z) = zone else { return 0 };
    let h: i64 = z[1..3].parse().unwrap_or(0);
    let m: i64 = z[3..5].parse().unwrap_or(0);
    let secs = h * 3600 + m * 60;
    if z.starts_with('-') {
        -secs
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::CommandBody;
    use crate::imap::parser::parse_command;

    fn program(criteria: &str) -> SearchProgram {
        match parse_command(format!("t SEARCH {criteria}").as_bytes())
            .unwrap()
            .body
        {
            CommandBody::Search { program, .. } => program,
            other => panic!("not a search: {other:?}"),
        }
    }

    const MSG: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\n\
To: team@example.org\r\nSubject: Quarterly Report\r\n\
Date: Tue, 01 Dec 2026 23:30:00 -0500\r\nX-Tag: Blue\r\n\r\nThe numbers look GOOD.\r\n";

    fn run(criteria: &str, flags: &[Flag]) -> bool {
        let p = program(criteria);
        let flags = Flags::from_iter(flags.iter().cloned());
        let c = Candidate {
            seq: 2,
            uid: 20,
            flags: &flags,
            modseq: ModSeq(7),
            size: 500,
            internal_date: days_from_civil(2026, 12, 2) * 86_400 + 3600,
            save_date: 0,
            message: MSG,
        };
        Matcher::new(&p, 3, 30, &[10, 20]).matches(&c)
    }

    #[test]
    fn flags_numbers_and_logic() {
        assert!(run("ALL", &[]));
        assert!(run("SEEN", &[Flag::Seen]));
        assert!(!run("UNSEEN", &[Flag::Seen]));
        assert!(run("KEYWORD $label", &[Flag::Keyword("$Label".into())]));
        assert!(run("2", &[]) && run("2:*", &[]) && !run("3", &[]));
        assert!(run("UID 15:25", &[]) && !run("UID 21:*", &[]));
        assert!(run("$", &[]) && run("UID $", &[]));
        assert!(run("NOT NEW OLD", &[]));
        assert!(run("OR SEEN UID 20", &[]));
        assert!(!run("(SEEN UID 20)", &[]));
        assert!(run("LARGER 499 SMALLER 501", &[]) && !run("LARGER 500", &[]));
        assert!(run("MODSEQ 7", &[]) && !run("MODSEQ 8", &[]));
    }

    /// RFC 5032 (WITHIN, inclusive to the second) and RFC 8514 (SAVED*,
    /// by day; the internal date where a message has no save date).
    #[test]
    fn within_and_save_dates() {
        let p = |c: &str| program(c);
        let flags = Flags::default();
        let internal = days_from_civil(2026, 12, 2) * 86_400 + 3600;
        let saved = days_from_civil(2026, 12, 5) * 86_400 + 60;
        let c = |save_date| Candidate {
            seq: 1,
            uid: 1,
            flags: &flags,
            modseq: ModSeq(1),
            size: 1,
            internal_date: internal,
            save_date,
            message: b"",
        };
        let now = internal + 100;
        let at = |crit: &str, save_date| {
            Matcher::new(&p(crit), 1, 1, &[])
                .at(now)
                .matches(&c(save_date))
        };
        assert!(at("OLDER 100", 0) && !at("OLDER 101", 0));
        assert!(at("YOUNGER 100", 0) && !at("YOUNGER 99", 0));
        assert!(at("SAVEDON 5-Dec-2026", saved) && !at("SAVEDON 2-Dec-2026", saved));
        assert!(at("SAVEDSINCE 5-Dec-2026", saved) && !at("SAVEDSINCE 6-Dec-2026", saved));
        assert!(at("SAVEDBEFORE 6-Dec-2026", saved) && !at("SAVEDBEFORE 5-Dec-2026", saved));
        // No save date kept: the internal date stands in.
        assert!(at("SAVEDON 2-Dec-2026", 0));
        assert!(at("SAVEDATESUPPORTED", 0));
        // WITHIN takes a non-zero number of seconds.
        assert!(parse_command(b"t SEARCH OLDER 0").is_err());
        assert!(parse_command(b"t SEARCH YOUNGER x").is_err());
    }

    #[test]
    fn header_body_and_dates() {
        assert!(run("FROM \"jörg\"", &[]));
        assert!(run("FROM JORG@EXAMPLE", &[]));
        assert!(run("SUBJECT \"quarterly report\"", &[]));
        assert!(!run("SUBJECT annual", &[]));
        assert!(run("HEADER X-Tag blue", &[]));
        assert!(run("HEADER X-Tag \"\"", &[]) && !run("HEADER X-Other \"\"", &[]));
        assert!(run("BODY good", &[]) && !run("BODY quarterly", &[]));
        assert!(run("TEXT quarterly", &[]) && run("TEXT good", &[]));
        assert!(run("ON 2-Dec-2026", &[]) && run("SINCE 2-Dec-2026", &[]));
        assert!(run("BEFORE 3-Dec-2026", &[]) && !run("BEFORE 2-Dec-2026", &[]));
        // Sent 1 Dec in its own zone, though 2 Dec in UTC.
        assert!(run("SENTON 1-Dec-2026", &[]));
        assert!(run("SENTBEFORE 2-Dec-2026", &[]) && !run("SENTSINCE 2-Dec-2026", &[]));
    }

    #[test]
    fn needs() {
        assert_eq!(program("SEEN UID 1:*").needs(), Needs::default());
        assert_eq!(
            program("NOT (OR SEEN LARGER 5)").needs(),
            Needs {
                record: true,
                ..Needs::default()
            }
        );
        assert!(program("OR SEEN (NOT SUBJECT x)").needs().header);
        assert!(program("OR SEEN (NOT BODY x)").needs().body);
        assert!(program("NOT MODSEQ 5").uses_modseq());
        assert!(!program("SEEN").uses_modseq());
    }
}
