//! Sequence sets (RFC 9051 9, `sequence-set`): the `1:4,7,9:*` argument of
//! FETCH, STORE, COPY, MOVE and their UID forms.
//!
//! A [`SeqSet`] is only syntax: it does not know whether it names sequence
//! numbers or UIDs, nor how large the mailbox is. The session resolves it
//! against the largest number in use with [`SeqSet::contains`] or
//! [`SeqSet::iter`].

use std::fmt;
use thiserror::Error;

/// One end of a range: a number or `*`, the largest number in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqBound {
    Num(u32),
    /// RFC 9051 9: `"*"` represents the largest number in use.
    Star,
}

impl SeqBound {
    fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqBound::Num(n) => n,
            SeqBound::Star => largest,
        }
    }
}

impl fmt::Display for SeqBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqBound::Num(n) => n.fmt(f),
            SeqBound::Star => f.write_str("*"),
        }
    }
}

/// A single number (`start == end`) or a range `start:end`, kept in the
/// order the client wrote it: RFC 9051 9 says `4:2` means `2:4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqRange {
    pub start: SeqBound,
    pub end: SeqBound,
}

impl SeqRange {
    /// The inclusive bounds, lowest first, once `*` is `largest`.
    fn bounds(&self, largest: u32) -> (u32, u32) {
        let a = self.start.resolve(largest);
        let b = self.end.resolve(largest);
        (a.min(b), a.max(b))
    }
}

impl fmt::Display for SeqRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            self.start.fmt(f)
        } else {
            write!(f, "{}:{}", self.start, self.end)
        }
    }
}

/// RFC 9051 9 `sequence-set`, or the `$` of RFC 5182 (SEARCHRES).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SeqSet {
    /// One or more numbers and ranges, never empty.
    Ranges(Vec<SeqRange>),
    /// RFC 5182 2.1: `$`, the result of the last SEARCH ... SAVE. The
    /// session rejects it until SEARCHRES is implemented.
    SearchResult,
}

/// Why a sequence set did not parse; the session answers `BAD`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SeqSetError {
    #[error("empty sequence set")]
    Empty,
    #[error("empty element in sequence set")]
    EmptyElement,
    #[error("0 is not a valid message number or UID")]
    Zero,
    #[error("number in sequence set has a leading zero")]
    LeadingZero,
    #[error("number in sequence set is larger than 4294967295")]
    TooLarge,
    #[error("invalid character in sequence set")]
    InvalidChar,
}

impl SeqSet {
    /// Parses the wire form; `s` must be exactly the set, nothing around it.
    pub fn parse(s: &str) -> Result<SeqSet, SeqSetError> {
        if s.is_empty() {
            return Err(SeqSetError::Empty);
        }
        if s == "$" {
            return Ok(SeqSet::SearchResult);
        }
        let mut ranges = Vec::new();
        for element in s.split(',') {
            ranges.push(parse_range(element)?);
        }
        Ok(SeqSet::Ranges(ranges))
    }

    /// Numbers in the compact wire form (`1:3,7`), order kept: runs of
    /// consecutive numbers become ranges (RFC 4315 uid-set, RFC 4731 ALL).
    pub fn compact(numbers: impl IntoIterator<Item = u32>) -> String {
        SeqSet::compact_ranges(&SeqSet::runs(numbers))
    }

    /// Numbers as runs of consecutive ones, order kept.
    pub fn runs(numbers: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for n in numbers {
            match out.last_mut() {
                Some((_, end)) if end.checked_add(1) == Some(n) => *end = n,
                _ => out.push((n, n)),
            }
        }
        out
    }

    /// Ranges in the compact wire form (`1:3,7`).
    pub fn compact_ranges(ranges: &[(u32, u32)]) -> String {
        let parts: Vec<String> = ranges
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}:{hi}")
                }
            })
            .collect();
        parts.join(",")
    }

    /// The set `n` (a single number), as a convenience for callers.
    pub fn single(n: u32) -> SeqSet {
        SeqSet::Ranges(vec![SeqRange {
            start: SeqBound::Num(n),
            end: SeqBound::Num(n),
        }])
    }

    /// Whether `n` is in the set when `*` means `largest`. Only numbers in
    /// `1..=largest` can be members, so that `contains` agrees with `iter`:
    /// on an empty mailbox (`largest == 0`) nothing is contained.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        if n == 0 || n > largest {
            return false;
        }
        match self {
            SeqSet::Ranges(ranges) => ranges.iter().any(|r| {
                let (lo, hi) = r.bounds(largest);
                lo <= n && n <= hi
            }),
            SeqSet::SearchResult => false,
        }
    }

    /// The members in `1..=largest`, ascending and without duplicates.
    /// RFC 9051 9: `5:*` with 3 messages is `3:5`, so it yields 3. Numbers
    /// above `largest` written explicitly name nothing and are skipped.
    /// `$` yields nothing: resolve it before calling.
    pub fn iter(&self, largest: u32) -> impl Iterator<Item = u32> {
        self.spans(largest).into_iter().flat_map(|(lo, hi)| lo..=hi)
    }

    /// The members in `1..=largest` as sorted, disjoint, non-adjacent
    /// inclusive spans: what [`SeqSet::spans_contain`] searches, so that
    /// testing many numbers against a set of many ranges costs
    /// `O(log ranges)` each rather than `O(ranges)`.
    pub fn spans(&self, largest: u32) -> Vec<(u32, u32)> {
        let mut spans: Vec<(u32, u32)> = match self {
            SeqSet::Ranges(ranges) => ranges
                .iter()
                .map(|r| r.bounds(largest))
                .filter(|&(lo, _)| lo <= largest)
                .map(|(lo, hi)| (lo.max(1), hi.min(largest)))
                .filter(|&(lo, hi)| lo <= hi)
                .collect(),
            SeqSet::SearchResult => Vec::new(),
        };
        spans.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (lo, hi) in spans {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        merged
    }

    /// Whether `n` lies in spans made by [`SeqSet::spans`].
    pub fn spans_contain(spans: &[(u32, u32)], n: u32) -> bool {
        let i = spans.partition_point(|&(_, hi)| hi < n);
        spans.get(i).is_some_and(|&(lo, _)| lo <= n)
    }

    /// Whether `*` appears anywhere in the set.
    pub fn has_star(&self) -> bool {
        match self {
            SeqSet::Ranges(ranges) => ranges
                .iter()
                .any(|r| r.start == SeqBound::Star || r.end == SeqBound::Star),
            SeqSet::SearchResult => false,
        }
    }

    /// The largest number written explicitly (ignoring `*`), so a session
    /// can reject sequence numbers beyond the mailbox (RFC 9051 9,
    /// `seq-number`: such numbers are invalid).
    pub fn max_number(&self) -> Option<u32> {
        match self {
            SeqSet::Ranges(ranges) => ranges
                .iter()
                .flat_map(|r| [r.start, r.end])
                .filter_map(|b| match b {
                    SeqBound::Num(n) => Some(n),
                    SeqBound::Star => None,
                })
                .max(),
            SeqSet::SearchResult => None,
        }
    }
}

fn parse_range(element: &str) -> Result<SeqRange, SeqSetError> {
    match element.split_once(':') {
        Some((a, b)) => Ok(SeqRange {
            start: parse_bound(a)?,
            end: parse_bound(b)?,
        }),
        None => {
            let n = parse_bound(element)?;
            Ok(SeqRange { start: n, end: n })
        }
    }
}

// RFC 9051 9: seq-number = nz-number / "*"; nz-number = digit-nz *DIGIT,
// at most 4294967295.
fn parse_bound(s: &str) -> Result<SeqBound, SeqSetError> {
    if s.is_empty() {
        return Err(SeqSetError::EmptyElement);
    }
    if s == "*" {
        return Ok(SeqBound::Star);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SeqSetError::InvalidChar);
    }
    if s.bytes().all(|b| b == b'0') {
        return Err(SeqSetError::Zero);
    }
    if s.starts_with('0') {
        return Err(SeqSetError::LeadingZero);
    }
    s.parse::<u32>()
        .map(SeqBound::Num)
        .map_err(|_| SeqSetError::TooLarge)
}

impl fmt::Display for SeqSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqSet::Ranges(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    r.fmt(f)?;
                }
                Ok(())
            }
            SeqSet::SearchResult => f.write_str("$"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn compact_lists() {
        assert_eq!(SeqSet::compact([1, 2, 3, 7]), "1:3,7");
        assert_eq!(SeqSet::compact([5]), "5");
        assert_eq!(SeqSet::compact([4, 5, 9, 10, 12]), "4:5,9:10,12");
        assert_eq!(SeqSet::compact([3, 2]), "3,2");
        assert_eq!(SeqSet::compact([]), "");
        assert_eq!(
            SeqSet::compact([u32::MAX - 1, u32::MAX]),
            "4294967294:4294967295"
        );
    }

    use super::*;

    fn set(s: &str) -> SeqSet {
        SeqSet::parse(s).unwrap()
    }

    fn all(s: &str, largest: u32) -> Vec<u32> {
        set(s).iter(largest).collect()
    }

    #[test]
    fn parses_and_displays_wire_form() {
        for s in ["1", "1:5", "5:1", "*", "1:*", "*:3", "1,3,5:7,*", "$"] {
            assert_eq!(set(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_zero_leading_zero_and_garbage() {
        assert_eq!(SeqSet::parse(""), Err(SeqSetError::Empty));
        assert_eq!(SeqSet::parse("0"), Err(SeqSetError::Zero));
        assert_eq!(SeqSet::parse("1:0"), Err(SeqSetError::Zero));
        assert_eq!(SeqSet::parse("01"), Err(SeqSetError::LeadingZero));
        assert_eq!(SeqSet::parse("1,"), Err(SeqSetError::EmptyElement));
        assert_eq!(SeqSet::parse(",1"), Err(SeqSetError::EmptyElement));
        assert_eq!(SeqSet::parse("1:"), Err(SeqSetError::EmptyElement));
        assert_eq!(SeqSet::parse("1:2:3"), Err(SeqSetError::InvalidChar));
        assert_eq!(SeqSet::parse("-1"), Err(SeqSetError::InvalidChar));
        assert_eq!(SeqSet::parse("1 2"), Err(SeqSetError::InvalidChar));
        assert_eq!(SeqSet::parse("$,1"), Err(SeqSetError::InvalidChar));
        assert_eq!(SeqSet::parse("**"), Err(SeqSetError::InvalidChar));
    }

    #[test]
    fn largest_u32_is_the_edge() {
        assert_eq!(set("4294967295").max_number(), Some(u32::MAX));
        assert_eq!(SeqSet::parse("4294967296"), Err(SeqSetError::TooLarge));
        assert!(set("4294967295").contains(u32::MAX, u32::MAX));
        assert_eq!(all("4294967294:*", u32::MAX), vec![u32::MAX - 1, u32::MAX]);
    }

    #[test]
    fn reversed_ranges_and_star() {
        assert_eq!(all("5:2", 10), vec![2, 3, 4, 5]);
        assert_eq!(all("*:8", 10), vec![8, 9, 10]);
        // RFC 9051 9: with 3 messages, 5:* is 3:5, which holds message 3.
        assert_eq!(all("5:*", 3), vec![3]);
        assert!(set("5:*").contains(3, 3));
        assert!(!set("5:*").contains(2, 3));
    }

    #[test]
    fn iter_is_sorted_without_duplicates_and_bounded() {
        assert_eq!(all("7,1:3,2,9:8,*", 10), vec![1, 2, 3, 7, 8, 9, 10]);
        assert_eq!(all("3:4,5:6", 10), vec![3, 4, 5, 6]);
        assert_eq!(all("20,1", 5), vec![1]);
        assert_eq!(all("1:4294967295", 3), vec![1, 2, 3]);
    }

    #[test]
    fn star_on_an_empty_mailbox_names_nothing() {
        assert_eq!(all("*", 0), Vec::<u32>::new());
        assert_eq!(all("1:*", 0), Vec::<u32>::new());
        assert!(!set("1:*").contains(1, 0));
        assert!(set("1:*").has_star());
        assert!(!set("1:2").has_star());
    }

    #[test]
    fn search_result_is_its_own_variant() {
        assert_eq!(set("$"), SeqSet::SearchResult);
        assert!(!set("$").contains(1, 5));
        assert_eq!(set("$").iter(5).count(), 0);
    }

    #[test]
    fn spans_agree_with_contains() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..500 {
            let mut text = Vec::new();
            for _ in 0..(1 + x % 6) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let a = 1 + x % 30;
                let b = 1 + (x >> 8) % 30;
                text.push(if x % 3 == 0 {
                    format!("{a}")
                } else {
                    format!("{a}:{b}")
                });
            }
            let s = set(&text.join(","));
            let spans = s.spans(25);
            for n in 0..=30 {
                assert_eq!(
                    SeqSet::spans_contain(&spans, n),
                    s.contains(n, 25),
                    "{s} {n}"
                );
            }
        }
    }
}
