//! Mailbox name patterns of LIST and LSUB (RFC 9051 6.3.9): `*` matches
//! any run of characters, `%` any run without the hierarchy delimiter.
//!
//! Matching runs in time linear in the name for a given pattern: the
//! pattern is compiled to a bit-parallel automaton (one bit per pattern
//! position) and each name byte advances every live position at once, so
//! no pattern can make it backtrack. Patterns are limited to
//! [`MAX_PATTERN_LENGTH`] bytes, and runs of wildcards collapse (`%%%` is
//! `%`, `*%` is `*`), so neither length nor shape of a pattern turns into
//! work beyond `O(name × pattern / 64)`.

/// The longest pattern (reference and mailbox pattern joined) accepted;
/// longer ones are refused with a protocol error. Mailbox names are at
/// most 1024 bytes, so no useful pattern is longer.
pub const MAX_PATTERN_LENGTH: usize = 1024;

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("Mailbox pattern too long (at most {MAX_PATTERN_LENGTH} bytes)")]
    TooLong,
}

/// A compiled LIST pattern. See the module documentation.
#[derive(Debug, Clone)]
pub struct MailboxPattern {
    /// Number of positions: pattern elements + 1 (the accepting one).
    states: usize,
    words: usize,
    /// Positions holding `*`.
    star: Vec<u64>,
    /// Positions holding `%`.
    percent: Vec<u64>,
    /// The positions holding each literal byte the pattern uses, `words`
    /// u64s per byte, found through `slot`.
    literal: Vec<Vec<u64>>,
    /// For each byte value, its index in `literal` plus one; 0 when the
    /// pattern does not hold it.
    slot: [u16; 256],
    delimiter: u8,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Elem {
    Star,
    Percent,
    Byte(u8),
}

impl MailboxPattern {
    /// Compiles `pattern` for names whose hierarchy delimiter is
    /// `delimiter`.
    pub fn new(pattern: &str, delimiter: u8) -> Result<MailboxPattern, PatternError> {
        if pattern.len() > MAX_PATTERN_LENGTH {
            return Err(PatternError::TooLong);
        }
        let bytes = pattern.as_bytes();
        // RFC 9051 5.1: INBOX is case-insensitive. Names are stored with
        // INBOX upper-cased, so a pattern starting with it in any case is
        // upper-cased there.
        let inbox_prefix = bytes.len() >= 5
            && bytes[..5].eq_ignore_ascii_case(b"INBOX")
            && bytes
                .get(5)
                .is_none_or(|&b| b == delimiter || b == b'*' || b == b'%');
        let mut elems: Vec<Elem> = Vec::with_capacity(bytes.len());
        for (i, &b) in bytes.iter().enumerate() {
            let e = match b {
                b'*' => Elem::Star,
                b'%' => Elem::Percent,
                _ if inbox_prefix && i < 5 => Elem::Byte(b.to_ascii_uppercase()),
                _ => Elem::Byte(b),
            };
            // A run of wildcards matches what its widest member matches.
            match (elems.last_mut(), e) {
                (Some(last @ Elem::Percent), Elem::Star) => *last = Elem::Star,
                (Some(Elem::Star | Elem::Percent), Elem::Star | Elem::Percent) => {}
                _ => elems.push(e),
            }
        }
        let states = elems.len() + 1;
        let words = states.div_ceil(64);
        let mut star = vec![0u64; words];
        let mut percent = vec![0u64; words];
        let mut literal: Vec<Vec<u64>> = Vec::new();
        let mut slot = [0u16; 256];
        for (i, e) in elems.iter().enumerate() {
            let (w, bit) = (i / 64, 1u64 << (i % 64));
            match *e {
                Elem::Star => star[w] |= bit,
                Elem::Percent => percent[w] |= bit,
                Elem::Byte(b) => {
                    if slot[usize::from(b)] == 0 {
                        literal.push(vec![0u64; words]);
                        // At most 256 distinct bytes: fits a u16.
                        slot[usize::from(b)] = literal.len() as u16;
                    }
                    literal[usize::from(slot[usize::from(b)]) - 1][w] |= bit;
                }
            }
        }
        Ok(MailboxPattern {
            states,
            words,
            star,
            percent,
            literal,
            slot,
            delimiter,
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.as_bytes();
        let mut live = vec![0u64; self.words];
        let mut next = vec![0u64; self.words];
        live[0] = 1;
        self.close(&mut live);
        for &c in name {
            let lit = match self.slot[usize::from(c)] {
                0 => None,
                n => Some(&self.literal[usize::from(n) - 1]),
            };
            let mut carry = 0u64;
            for w in 0..self.words {
                // A literal position that matches moves one position on.
                let moved = lit.map_or(0, |m| live[w] & m[w]);
                next[w] = (moved << 1) | carry;
                carry = moved >> 63;
                // A wildcard position swallows the byte and stays.
                next[w] |= live[w] & self.star[w];
                if c != self.delimiter {
                    next[w] |= live[w] & self.percent[w];
                }
            }
            std::mem::swap(&mut live, &mut next);
            self.close(&mut live);
            if live.iter().all(|&w| w == 0) {
                return false;
            }
        }
        let last = self.states - 1;
        live[last / 64] & (1u64 << (last % 64)) != 0
    }

    /// Wildcards also match nothing: a live wildcard position makes the
    /// position after it live. Runs of wildcards were collapsed, so one
    /// pass reaches every such position.
    fn close(&self, live: &mut [u64]) {
        let mut carry = 0u64;
        let wildcards = self.star.iter().zip(&self.percent);
        for (word, (star, percent)) in live.iter_mut().zip(wildcards) {
            let wild = *word & (star | percent);
            let add = (wild << 1) | carry;
            carry = wild >> 63;
            *word |= add;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        MailboxPattern::new(pattern, b'/').unwrap().matches(name)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "INBOX"));
        assert!(m("*", "a/b/c"));
        assert!(m("*", ""));
        assert!(m("%", "Sent"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(!m("a/%", "a/b/c"));
        assert!(m("a/*", "a/b/c"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("%/%", "a/b"));
        assert!(!m("Sen", "Sent"));
        assert!(!m("Sentx", "Sent"));
        assert!(m("S%t", "Sent"));
        assert!(!m("S%t", "S/t"));
        assert!(m("*%", "a/b"));
        assert!(m("%*", "a/b"));
        assert!(m("%%%", "ab"));
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert!(m("inbox", "INBOX"));
        assert!(m("InBoX/%", "INBOX/Work"));
        assert!(!m("inbox/%", "INBOX/Work/Old"));
        assert!(!m("inbox", "Inbox"));
        assert!(!m("inboxes", "INBOXES"));
        assert!(m("inbox*", "INBOX"));
        assert!(m("inbox%", "INBOX"));
        assert!(!m("sent", "Sent"));
    }

    #[test]
    fn long_wildcard_runs_are_cheap() {
        let p = "%".repeat(60_000);
        assert_eq!(
            MailboxPattern::new(&p, b'/').unwrap_err(),
            PatternError::TooLong
        );
        let p = "%".repeat(MAX_PATTERN_LENGTH);
        let pat = MailboxPattern::new(&p, b'/').unwrap();
        assert_eq!(pat.states, 2);
        assert!(pat.matches("anything"));
        assert!(!pat.matches("a/b"));
    }

    #[test]
    fn pattern_length_edge() {
        let at = "a".repeat(MAX_PATTERN_LENGTH);
        assert!(MailboxPattern::new(&at, b'/').unwrap().matches(&at));
        let past = "a".repeat(MAX_PATTERN_LENGTH + 1);
        assert_eq!(
            MailboxPattern::new(&past, b'/').unwrap_err(),
            PatternError::TooLong
        );
    }

    #[test]
    fn backtracking_shapes_answer_correctly() {
        let p = format!("{}*b", "*a".repeat(20));
        let yes = format!("{}b", "a".repeat(200));
        let no = "a".repeat(200);
        assert!(m(&p, &yes));
        assert!(!m(&p, &no));
        // Patterns across word boundaries of the bit sets.
        let long = format!("{}%z", "x*".repeat(100));
        assert!(m(&long, &format!("{}z", "x".repeat(100))));
        assert!(!m(&long, &format!("{}y", "x".repeat(100))));
    }

    /// A plain backtracking matcher, as the reference for random tests.
    fn reference(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| reference(&p[1..], &n[i..])),
            Some(b'%') => {
                let stop = n.iter().position(|&b| b == b'/').unwrap_or(n.len());
                (0..=stop).any(|i| reference(&p[1..], &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && reference(&p[1..], &n[1..]),
        }
    }

    /// A xorshift generator: the random tests repeat from their seed.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn agrees_with_a_reference_matcher() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let alphabet = b"ab/*%";
        for _ in 0..20_000 {
            let plen = (next() % 8) as usize;
            let nlen = (next() % 8) as usize;
            let p: Vec<u8> = (0..plen).map(|_| alphabet[(next() % 5) as usize]).collect();
            let n: Vec<u8> = (0..nlen).map(|_| alphabet[(next() % 3) as usize]).collect();
            let (ps, ns) = (
                String::from_utf8(p.clone()).unwrap(),
                String::from_utf8(n.clone()).unwrap(),
            );
            assert_eq!(m(&ps, &ns), reference(&p, &n), "{ps:?} vs {ns:?}");
        }
    }

    /// Long patterns with a few wildcards, so positions cross the 64-bit
    /// words of the automaton, against the reference matcher.
    #[test]
    fn long_patterns_agree_with_the_reference() {
        let mut next = xorshift(0x0ddb_1a5e_5bad_5eed);
        for _ in 0..2000 {
            let base: Vec<u8> = (0..60 + next() % 100)
                .map(|_| {
                    if next() % 9 == 0 {
                        b'/'
                    } else {
                        b'a' + (next() % 2) as u8
                    }
                })
                .collect();
            // The pattern is the name with a few stretches made wildcards,
            // and sometimes one byte changed, so both answers occur.
            let mut p = base.clone();
            for _ in 0..next() % 4 {
                let at = (next() as usize) % p.len();
                let end = (at + (next() % 5) as usize).min(p.len());
                p.splice(at..end, [if next() % 2 == 0 { b'*' } else { b'%' }]);
            }
            if next() % 3 == 0 {
                let at = (next() as usize) % p.len();
                p[at] = b'b';
            }
            let (ps, ns) = (
                String::from_utf8(p.clone()).unwrap(),
                String::from_utf8(base.clone()).unwrap(),
            );
            assert_eq!(m(&ps, &ns), reference(&p, &base), "{ps:?} vs {ns:?}");
        }
    }
}
