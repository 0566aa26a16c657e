//! METADATA (RFC 5464): GETMETADATA and SETMETADATA, their entry names
//! and options, and LIST-METADATA's return option (RFC 9590 3).
//!
//! An entry name is a slash-separated path under `/private` (the user's
//! own value) or `/shared` (the value every user of the mailbox sees);
//! names compare without case (RFC 5464 3.2), so they are kept
//! lower-cased.

use super::parser::{PResult, Parser, MAX_LIST_ITEMS};

/// Longest entry name, in octets.
pub const MAX_ENTRY_NAME: usize = 1024;

/// RFC 5464 4.2.2 DEPTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// The entry itself.
    #[default]
    Zero,
    /// The entry and its children.
    One,
    /// The entry and all below it.
    Infinity,
}

/// `GETMETADATA [options] mailbox entries` (RFC 5464 4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMetadata {
    /// Empty for server entries.
    pub mailbox: String,
    /// RFC 5464 4.2.1 MAXSIZE: longer values are left out.
    pub maxsize: Option<u32>,
    pub depth: Depth,
    pub entries: Vec<String>,
}

/// `SETMETADATA mailbox (entry value ...)` (RFC 5464 4.3); a `None` value
/// removes the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMetadata {
    pub mailbox: String,
    pub entries: Vec<(String, Option<Vec<u8>>)>,
}

/// An entry name checked (RFC 5464 3.2: under `/private` or `/shared`,
/// no empty component, no trailing slash, no `*` or `%`, printable
/// ASCII) and lower-cased.
pub fn entry_name(raw: &[u8]) -> Result<String, String> {
    let shown = String::from_utf8_lossy(raw);
    if raw.len() > MAX_ENTRY_NAME {
        return Err(format!("Entry name longer than {MAX_ENTRY_NAME} octets"));
    }
    let bad = raw
        .iter()
        .any(|&b| !(0x21..0x7f).contains(&b) || b == b'*' || b == b'%');
    let name = shown.to_ascii_lowercase();
    let scoped = ["/private", "/shared"].iter().any(|scope| {
        name.strip_prefix(scope)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if bad || !scoped || name.contains("//") || name.ends_with('/') {
        return Err(format!("Invalid entry name {shown}"));
    }
    Ok(name)
}

/// Whether `entry` is `asked` or below it within `depth`.
pub fn within(asked: &str, entry: &str, depth: Depth) -> bool {
    if entry == asked {
        return true;
    }
    let Some(rest) = entry.strip_prefix(asked).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    match depth {
        Depth::Zero => false,
        Depth::One => !rest.contains('/'),
        Depth::Infinity => true,
    }
}

impl Parser<'_> {
    // RFC 5464 5: getmetadata = "GETMETADATA" [SP getmetadata-options]
    //     SP mailbox SP entries.
    pub(super) fn getmetadata(&mut self) -> PResult<GetMetadata> {
        self.sp()?;
        let mut get = GetMetadata {
            mailbox: String::new(),
            maxsize: None,
            depth: Depth::Zero,
            entries: Vec::new(),
        };
        if self.eat(b'(') {
            loop {
                let opt = self.atom_upper("a GETMETADATA option")?;
                self.sp()?;
                match opt.as_str() {
                    "MAXSIZE" if get.maxsize.is_none() => get.maxsize = Some(self.number()?),
                    "DEPTH" => {
                        get.depth = match self.atom_upper("a depth")?.as_str() {
                            "0" => Depth::Zero,
                            "1" => Depth::One,
                            "INFINITY" => Depth::Infinity,
                            other => return Err(format!("Invalid DEPTH {other}")),
                        }
                    }
                    _ => return Err(format!("Unknown GETMETADATA option {opt}")),
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            self.sp()?;
        }
        get.mailbox = self.mailbox()?;
        self.sp()?;
        get.entries = self.entries()?;
        Ok(get)
    }

    // RFC 5464 5: entries = entry / "(" entry *(SP entry) ")".
    pub(super) fn entries(&mut self) -> PResult<Vec<String>> {
        if !self.eat(b'(') {
            return Ok(vec![entry_name(&self.astring_bytes()?)?]);
        }
        let mut entries = Vec::new();
        loop {
            if entries.len() == MAX_LIST_ITEMS {
                return Err(format!("Too many entries (at most {MAX_LIST_ITEMS})"));
            }
            entries.push(entry_name(&self.astring_bytes()?)?);
            if self.eat(b')') {
                return Ok(entries);
            }
            self.sp()?;
        }
    }

    // RFC 5464 5: setmetadata = "SETMETADATA" SP mailbox SP "("
    //     entry-value *(SP entry-value) ")"; entry-value = entry SP value;
    //     value = nstring / literal8.
    pub(super) fn setmetadata(&mut self) -> PResult<SetMetadata> {
        let mailbox = self.sp_mailbox()?;
        self.sp()?;
        self.expect(b'(', "'(' before the entries")?;
        let mut entries: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        loop {
            if entries.len() == MAX_LIST_ITEMS {
                return Err(format!("Too many entries (at most {MAX_LIST_ITEMS})"));
            }
            let name = entry_name(&self.astring_bytes()?)?;
            self.sp()?;
            let value = if self.eat_word("NIL") {
                None
            } else if self.peek() == Some(b'"') {
                Some(self.quoted()?)
            } else {
                Some(self.literal()?)
            };
            // The last value given for a name is the one set.
            entries.retain(|(n, _)| *n != name);
            entries.push((name, value));
            if self.eat(b')') {
                return Ok(SetMetadata { mailbox, entries });
            }
            self.sp()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::CommandBody;
    use crate::imap::parse_command;

    fn body(line: &str) -> CommandBody {
        parse_command(line.as_bytes()).unwrap().body
    }

    fn error(line: &str) -> String {
        parse_command(line.as_bytes()).unwrap_err().message
    }

    #[test]
    fn entry_names_are_checked_and_lower_cased() {
        assert_eq!(entry_name(b"/Shared/Comment").unwrap(), "/shared/comment");
        assert_eq!(entry_name(b"/private").unwrap(), "/private");
        for bad in [
            &b"/public/x"[..],
            b"/private/",
            b"/private//x",
            b"/shared/a*",
            b"/shared/a%",
            b"/sharedx",
            b"comment",
            b"/shared/\xc3\xa9",
        ] {
            assert!(entry_name(bad).is_err(), "{bad:?}");
        }
        let long = format!("/shared/{}", "x".repeat(MAX_ENTRY_NAME - 8));
        assert!(entry_name(long.as_bytes()).is_ok());
        let past = format!("/shared/{}", "x".repeat(MAX_ENTRY_NAME - 7));
        assert!(entry_name(past.as_bytes()).is_err());
    }

    #[test]
    fn depth_decides_what_is_within() {
        assert!(within("/shared/a", "/shared/a", Depth::Zero));
        assert!(!within("/shared/a", "/shared/a/b", Depth::Zero));
        assert!(within("/shared/a", "/shared/a/b", Depth::One));
        assert!(!within("/shared/a", "/shared/a/b/c", Depth::One));
        assert!(within("/shared/a", "/shared/a/b/c", Depth::Infinity));
        assert!(!within("/shared/a", "/shared/ab", Depth::Infinity));
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            body("a GETMETADATA (MAXSIZE 100 DEPTH infinity) INBOX (/shared/Comment /private/x)"),
            CommandBody::GetMetadata(GetMetadata {
                mailbox: "INBOX".into(),
                maxsize: Some(100),
                depth: Depth::Infinity,
                entries: vec!["/shared/comment".into(), "/private/x".into()],
            })
        );
        assert_eq!(
            body("a GETMETADATA \"\" /shared/comment"),
            CommandBody::GetMetadata(GetMetadata {
                mailbox: String::new(),
                maxsize: None,
                depth: Depth::Zero,
                entries: vec!["/shared/comment".into()],
            })
        );
        assert_eq!(
            body("a SETMETADATA INBOX (/private/comment {3}\r\nabc /shared/x NIL /private/comment \"d\")"),
            CommandBody::SetMetadata(SetMetadata {
                mailbox: "INBOX".into(),
                entries: vec![
                    ("/shared/x".into(), None),
                    ("/private/comment".into(), Some(b"d".to_vec())),
                ],
            })
        );
        assert_eq!(
            error("a GETMETADATA (DEPTH 2) INBOX /shared/x"),
            "Invalid DEPTH 2"
        );
        assert_eq!(
            error("a SETMETADATA INBOX (/other/x \"v\")"),
            "Invalid entry name /other/x"
        );
        assert_eq!(error("a SETMETADATA INBOX ()"), "Expected a string");
    }
}
