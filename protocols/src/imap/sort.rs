//! SORT (RFC 5256 3) with SORT=DISPLAY (RFC 5957): the criteria, their
//! parser, and the values messages are ordered by. The session runs the
//! search part, reads what the criteria need, and orders the matches with
//! [`compare`]; ties keep sequence-number order (RFC 5256 3).
//!
//! Strings compare under `i;ascii-casemap` (RFC 4790 9.2: ASCII letters
//! upper-cased, octets otherwise), the comparator RFC 5256 names.

use super::parser::{PResult, Parser};
use super::search::{SearchProgram, SearchReturn};
use crate::message::address::Address;
use crate::message::header::decode_value;
use crate::message::summary::Envelope;
use crate::message::thread::base_subject;
use std::cmp::Ordering;

/// Sort criteria one command may give, at most.
pub const MAX_SORT_CRITERIA: usize = 16;

/// RFC 5256 3 and RFC 5957 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// A SORT command's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortCommand {
    /// RFC 5267 3 (ESORT): `RETURN (...)`, answered with ESEARCH; `None`
    /// for the plain `* SORT` form. SAVE is not among them.
    pub returns: Option<Vec<SearchReturn>>,
    pub criteria: Vec<SortCriterion>,
    /// The search part; its charset is the SORT's (always given).
    pub program: SearchProgram,
}

impl SortCommand {
    /// Whether any criterion reads the message's header (through its
    /// summary), not just its record.
    pub fn needs_envelope(&self) -> bool {
        self.criteria
            .iter()
            .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size))
    }
}

impl Parser<'_> {
    // RFC 5256 4: sort = ["UID" SP] "SORT" SP sort-criteria SP
    //     search-criteria; sort-criteria = "(" sort-criterion
    //     *(SP sort-criterion) ")"; sort-criterion = ["REVERSE" SP]
    //     sort-key; search-criteria = charset 1*(SP search-key).
    pub(super) fn sort(&mut self) -> PResult<SortCommand> {
        self.sp()?;
        // RFC 5267 5: extended-sort = ["UID" SP] "SORT" search-return-opts
        //     SP sort-criteria SP search-criteria.
        let mut returns = None;
        if self.eat_word("RETURN ") {
            let opts = self.search_returns()?;
            if opts.contains(&SearchReturn::Save) {
                return Err("SAVE is not a SORT return option".into());
            }
            returns = Some(opts);
            self.sp()?;
        }
        self.expect(b'(', "'(' before sort criteria")?;
        let mut criteria = Vec::new();
        loop {
            if criteria.len() >= MAX_SORT_CRITERIA {
                return Err(format!(
                    "Too many sort criteria (at most {MAX_SORT_CRITERIA})"
                ));
            }
            let mut word = self.atom_upper("a sort key")?;
            let reverse = word == "REVERSE";
            if reverse {
                self.sp()?;
                word = self.atom_upper("a sort key")?;
            }
            let key = match word.as_str() {
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                other => return Err(format!("Unknown sort key {other}")),
            };
            criteria.push(SortCriterion { reverse, key });
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.sp()?;
        let charset = self.astring()?.to_ascii_uppercase();
        let mut program = self.search_keys()?;
        program.charset = Some(charset);
        Ok(SortCommand {
            returns,
            criteria,
            program,
        })
    }
}

/// RFC 5267 3.2: an ESORT `ALL` in sort order; only an ascending run of
/// consecutive numbers becomes a range.
pub fn ordered_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// RFC 5256 5: `THREAD algorithm charset search-criteria`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCommand {
    pub algorithm: ThreadAlgorithm,
    pub program: SearchProgram,
}

/// The threading algorithms roost implements (RFC 5256 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

impl Parser<'_> {
    // RFC 5256 4: thread = ["UID" SP] "THREAD" SP thread-alg SP
    //     search-criteria.
    pub(super) fn thread(&mut self) -> PResult<ThreadCommand> {
        self.sp()?;
        let algorithm = match self.atom_upper("a threading algorithm")?.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            other => return Err(format!("Unsupported threading algorithm {other}")),
        };
        self.sp()?;
        let charset = self.astring()?.to_ascii_uppercase();
        let mut program = self.search_keys()?;
        program.charset = Some(charset);
        Ok(ThreadCommand { algorithm, program })
    }
}

/// RFC 5256 3 ORDEREDSUBJECT: messages (a number each, with their base
/// subject and sent date) in threads. Messages of one base subject make
/// a thread, ordered by sent date; the first is the parent of all the
/// others; threads are ordered by their first message's sent date. Ties
/// keep the order given (sequence order).
pub fn ordered_subject(messages: &[(u32, Vec<u8>, i64)]) -> Vec<Vec<u32>> {
    let mut sorted: Vec<&(u32, Vec<u8>, i64)> = messages.iter().collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.cmp(&b.2)));
    let mut threads: Vec<(i64, Vec<u32>)> = Vec::new();
    let mut subject: Option<&[u8]> = None;
    for m in sorted {
        if subject != Some(&m.1[..]) {
            threads.push((m.2, Vec::new()));
            subject = Some(&m.1);
        }
        if let Some(t) = threads.last_mut() {
            t.1.push(m.0);
        }
    }
    threads.sort_by_key(|t| t.0);
    threads.into_iter().map(|t| t.1).collect()
}

/// RFC 5256 4 `thread-list` for ORDEREDSUBJECT threads: the first message,
/// then its one child (`(1 2)`) or its children as siblings
/// (`(1 (2)(3))`).
pub fn ordered_subject_response(threads: &[Vec<u32>]) -> String {
    let mut out = String::new();
    for t in threads {
        let Some((first, children)) = t.split_first() else {
            continue;
        };
        out.push('(');
        out.push_str(&first.to_string());
        match children {
            [] => {}
            [one] => out.push_str(&format!(" {one}")),
            many => {
                out.push(' ');
                for c in many {
                    out.push_str(&format!("({c})"));
                }
            }
        }
        out.push(')');
    }
    out
}

/// One message's value under one criterion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    Number(i64),
    /// Already case-mapped for `i;ascii-casemap`.
    Text(Vec<u8>),
}

/// What a message is ordered by: its criteria's values in order.
pub fn sort_values(
    criteria: &[SortCriterion],
    envelope: Option<&Envelope>,
    internal_date: i64,
    size: u64,
) -> Vec<SortValue> {
    criteria
        .iter()
        .map(|c| match c.key {
            SortKey::Arrival => SortValue::Number(internal_date),
            SortKey::Size => SortValue::Number(i64::try_from(size).unwrap_or(i64::MAX)),
            SortKey::Date => SortValue::Number(sent_date(
                envelope.and_then(|e| e.date.as_deref()),
                internal_date,
            )),
            SortKey::Subject => text(
                envelope
                    .and_then(|e| e.subject.as_ref())
                    .map(|s| base_subject(&decode_value(s)))
                    .unwrap_or_default()
                    .as_bytes(),
            ),
            // RFC 5256 3: the addr-mailbox (local part) of the first
            // address, empty when there is none.
            SortKey::From => mailbox_of(envelope.map(|e| &e.from[..])),
            SortKey::To => mailbox_of(envelope.map(|e| &e.to[..])),
            SortKey::Cc => mailbox_of(envelope.map(|e| &e.cc[..])),
            // RFC 5957 2: the display name of the first address, or its
            // addr-spec when it has none.
            SortKey::DisplayFrom => display_of(envelope.map(|e| &e.from[..])),
            SortKey::DisplayTo => display_of(envelope.map(|e| &e.to[..])),
        })
        .collect()
}

/// RFC 5256 2.2: the Date header's time in UTC, or the internal date when
/// the header is missing or unreadable.
pub fn sent_date(date: Option<&[u8]>, internal_date: i64) -> i64 {
    date.and_then(|d| mailparse::dateparse(&String::from_utf8_lossy(d)).ok())
        .unwrap_or(internal_date)
}

/// RFC 4790 9.2: `i;ascii-casemap` compares octets with ASCII letters
/// upper-cased.
fn text(s: &[u8]) -> SortValue {
    SortValue::Text(s.to_ascii_uppercase())
}

fn first(addrs: Option<&[Address]>) -> Option<&Address> {
    addrs?.iter().find(|a| a.host.is_some())
}

fn mailbox_of(addrs: Option<&[Address]>) -> SortValue {
    text(
        first(addrs)
            .and_then(|a| a.mailbox.as_deref())
            .unwrap_or(b""),
    )
}

fn display_of(addrs: Option<&[Address]>) -> SortValue {
    let Some(a) = first(addrs) else {
        return text(b"");
    };
    let name = a.name.as_ref().map(|n| decode_value(n)).unwrap_or_default();
    if !name.trim().is_empty() {
        return text(name.trim().as_bytes());
    }
    let spec = [
        a.mailbox.as_deref().unwrap_or(b""),
        b"@",
        a.host.as_deref().unwrap_or(b""),
    ]
    .concat();
    text(&spec)
}

/// Orders two messages' values under `criteria`; `Equal` leaves them in
/// sequence order (the caller's stable sort).
pub fn compare(criteria: &[SortCriterion], a: &[SortValue], b: &[SortValue]) -> Ordering {
    for (c, (x, y)) in criteria.iter().zip(a.iter().zip(b)) {
        let o = x.cmp(y);
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::CommandBody;
    use crate::imap::parser::parse_command;
    use crate::message::summary::Summary;

    fn sort(line: &str) -> SortCommand {
        match parse_command(line.as_bytes()).unwrap().body {
            CommandBody::Sort { sort, .. } => sort,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn criteria_parse() {
        let s = sort("t SORT (REVERSE DATE subject) UTF-8 ALL");
        assert_eq!(
            s.criteria,
            [
                SortCriterion {
                    reverse: true,
                    key: SortKey::Date
                },
                SortCriterion {
                    reverse: false,
                    key: SortKey::Subject
                }
            ]
        );
        assert_eq!(s.program.charset.as_deref(), Some("UTF-8"));
        assert!(s.needs_envelope());
        assert!(!sort("t UID SORT (ARRIVAL REVERSE SIZE) us-ascii UNSEEN").needs_envelope());
        for bad in [
            "t SORT () UTF-8 ALL",
            "t SORT (DATE) ALL",
            "t SORT (REVERSE) UTF-8 ALL",
            "t SORT (COLOUR) UTF-8 ALL",
            "t SORT (DATE) UTF-8",
            "t SORT DATE UTF-8 ALL",
        ] {
            assert!(parse_command(bad.as_bytes()).is_err(), "{bad}");
        }
        let many = format!(
            "t SORT ({}) UTF-8 ALL",
            vec!["SIZE"; MAX_SORT_CRITERIA].join(" ")
        );
        assert_eq!(sort(&many).criteria.len(), MAX_SORT_CRITERIA);
        let over = format!(
            "t SORT ({}) UTF-8 ALL",
            vec!["SIZE"; MAX_SORT_CRITERIA + 1].join(" ")
        );
        assert!(parse_command(over.as_bytes()).is_err());
    }

    #[test]
    fn values_follow_rfc5256_and_rfc5957() {
        let env = Summary::build(
            b"From: \"Zed\" <alice@example.org>\r\nTo: bob@example.org\r\n\
Subject: Re: [list] =?utf-8?q?caf=C3=A9?= (fwd)\r\nDate: Tue, 01 Dec 2026 10:00:00 +0100\r\n\r\nx\r\n",
        )
        .envelope;
        let all = [
            SortKey::Arrival,
            SortKey::Cc,
            SortKey::Date,
            SortKey::From,
            SortKey::Size,
            SortKey::Subject,
            SortKey::To,
            SortKey::DisplayFrom,
            SortKey::DisplayTo,
        ]
        .map(|key| SortCriterion {
            reverse: false,
            key,
        });
        let v = sort_values(&all, Some(&env), 5, 7);
        let date = crate::message::date::days_from_civil(2026, 12, 1) * 86_400 + 9 * 3600;
        assert_eq!(
            v,
            [
                SortValue::Number(5),
                SortValue::Text(vec![]),
                SortValue::Number(date),
                SortValue::Text(b"ALICE".to_vec()),
                SortValue::Number(7),
                SortValue::Text("CAFé".as_bytes().to_vec()),
                SortValue::Text(b"BOB".to_vec()),
                SortValue::Text(b"ZED".to_vec()),
                SortValue::Text(b"BOB@EXAMPLE.ORG".to_vec()),
            ]
        );
        // Without a summary: the internal date stands in for DATE.
        assert_eq!(sort_values(&all[2..3], None, 5, 7), [SortValue::Number(5)]);
    }

    #[test]
    fn compare_honours_reverse_and_ties() {
        let c = [
            SortCriterion {
                reverse: true,
                key: SortKey::Size,
            },
            SortCriterion {
                reverse: false,
                key: SortKey::Arrival,
            },
        ];
        let v = |s, a| [SortValue::Number(s), SortValue::Number(a)];
        assert_eq!(compare(&c, &v(2, 1), &v(1, 1)), Ordering::Less);
        assert_eq!(compare(&c, &v(1, 1), &v(1, 2)), Ordering::Less);
        assert_eq!(compare(&c, &v(1, 1), &v(1, 1)), Ordering::Equal);
    }

    #[test]
    fn ordered_subject_threads() {
        let m = |n, s: &str, d| (n, s.as_bytes().to_vec(), d);
        let threads = ordered_subject(&[
            m(1, "B", 50),
            m(2, "A", 30),
            m(3, "B", 10),
            m(4, "C", 20),
            m(5, "B", 40),
            m(6, "A", 60),
        ]);
        assert_eq!(threads, vec![vec![3, 5, 1], vec![4], vec![2, 6]]);
        assert_eq!(ordered_subject_response(&threads), "(3 (5)(1))(4)(2 6)");
        assert_eq!(ordered_subject_response(&[]), "");
        match parse_command(b"t UID THREAD ORDEREDSUBJECT utf-8 SEEN")
            .unwrap()
            .body
        {
            CommandBody::Thread { uid, thread } => {
                assert!(uid);
                assert_eq!(thread.algorithm, ThreadAlgorithm::OrderedSubject);
                assert_eq!(thread.program.charset.as_deref(), Some("UTF-8"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_command(b"t THREAD REFS UTF-8 ALL").is_err());
        match parse_command(b"t THREAD references US-ASCII ALL")
            .unwrap()
            .body
        {
            CommandBody::Thread { thread, .. } => {
                assert_eq!(thread.algorithm, ThreadAlgorithm::References)
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_command(b"t THREAD ORDEREDSUBJECT UTF-8").is_err());
    }

    #[test]
    fn esort_sets_keep_sort_order() {
        assert_eq!(ordered_set(&[5, 6, 7, 3, 2, 9]), "5:7,3,2,9");
        assert_eq!(ordered_set(&[]), "");
        assert_eq!(ordered_set(&[4]), "4");
        let s = sort("t SORT RETURN (MIN COUNT) (SIZE) UTF-8 ALL");
        assert_eq!(
            s.returns,
            Some(vec![SearchReturn::Min, SearchReturn::Count])
        );
        assert_eq!(
            sort("t SORT RETURN () (SIZE) UTF-8 ALL").returns,
            Some(vec![])
        );
        assert!(parse_command(b"t SORT RETURN (SAVE) (SIZE) UTF-8 ALL").is_err());
    }
}
