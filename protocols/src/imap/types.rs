//! The identifiers and values IMAP speaks in (RFC 9051 2.3), shared by the
//! store's records and the sessions. Newtypes, so that a UID never travels
//! where a sequence number or a modseq is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

/// RFC 9051 2.3.1.1: a message's unique identifier within its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Uid(pub u32);

/// RFC 9051 2.3.1.1: the mailbox's UIDVALIDITY value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UidValidity(pub u32);

/// RFC 7162 3.1: a modification sequence number, per account in roost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModSeq(pub u64);

/// RFC 9051 2.3.1.2: a message sequence number, 1-based, per session view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeqNum(pub u32);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display_inner!(Uid, UidValidity, ModSeq, SeqNum);

/// RFC 9051 2.3.2: the system flags, plus keywords.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// A keyword (an atom without a leading backslash), kept as the client
    /// spelled it; keywords compare case-insensitively on the wire.
    Keyword(String),
}

impl Flag {
    /// Parses one flag as it appears on the wire (`\Seen`, `$Forwarded`).
    /// `\Recent` and unknown system flags are not storable and give `None`.
    pub fn parse(s: &str) -> Option<Flag> {
        if let Some(system) = s.strip_prefix('\\') {
            return match system.to_ascii_lowercase().as_str() {
                "seen" => Some(Flag::Seen),
                "answered" => Some(Flag::Answered),
                "flagged" => Some(Flag::Flagged),
                "deleted" => Some(Flag::Deleted),
                "draft" => Some(Flag::Draft),
                _ => None,
            };
        }
        if s.is_empty() || !s.bytes().all(is_atom_char) {
            return None;
        }
        Some(Flag::Keyword(s.to_string()))
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flag::Seen => f.write_str("\\Seen"),
            Flag::Answered => f.write_str("\\Answered"),
            Flag::Flagged => f.write_str("\\Flagged"),
            Flag::Deleted => f.write_str("\\Deleted"),
            Flag::Draft => f.write_str("\\Draft"),
            Flag::Keyword(k) => f.write_str(k),
        }
    }
}

/// RFC 9051 9: ATOM-CHAR, any CHAR except atom-specials.
pub fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// A set of flags kept sorted and free of duplicates, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags(Vec<Flag>);

impl Flags {
    pub fn new() -> Flags {
        Flags(Vec::new())
    }

    pub fn contains(&self, flag: &Flag) -> bool {
        self.0.iter().any(|f| same_flag(f, flag))
    }

    /// Adds `flag`; returns whether the set changed.
    pub fn insert(&mut self, flag: Flag) -> bool {
        if self.contains(&flag) {
            return false;
        }
        self.0.push(flag);
        self.0.sort();
        true
    }

    /// Removes `flag`; returns whether the set changed.
    pub fn remove(&mut self, flag: &Flag) -> bool {
        let before = self.0.len();
        self.0.retain(|f| !same_flag(f, flag));
        before != self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Flag> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<I: IntoIterator<Item = Flag>>(iter: I) -> Flags {
        let mut f = Flags::new();
        for flag in iter {
            f.insert(flag);
        }
        f
    }
}

impl Flags {
    /// The flags as a list, for encoders that take a slice.
    pub fn to_vec(&self) -> Vec<Flag> {
        self.0.clone()
    }
}

fn same_flag(a: &Flag, b: &Flag) -> bool {
    match (a, b) {
        (Flag::Keyword(x), Flag::Keyword(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

impl fmt::Display for Flags {
    /// The parenthesized list of RFC 9051 7.5.2 (`(\Seen $Junk)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, flag) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{flag}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_sorted_and_deduplicated_case_insensitively() {
        let mut f = Flags::new();
        assert!(f.insert(Flag::Keyword("$Junk".into())));
        assert!(f.insert(Flag::Seen));
        assert!(!f.insert(Flag::Keyword("$junk".into())));
        assert_eq!(f.to_string(), "(\\Seen $Junk)");
        assert!(f.remove(&Flag::Keyword("$JUNK".into())));
        assert_eq!(f.to_string(), "(\\Seen)");
    }

    #[test]
    fn flag_parse_rejects_recent_and_specials() {
        assert_eq!(Flag::parse("\\SEEN"), Some(Flag::Seen));
        assert_eq!(Flag::parse("\\Recent"), None);
        assert_eq!(Flag::parse("a(b"), None);
        assert_eq!(Flag::parse(""), None);
    }
}
