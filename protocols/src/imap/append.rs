//! APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502) and BINARY's
//! literal8 (RFC 3516 4.4), and REPLACE and UID REPLACE (RFC 8508 3.1,
//! 3.2), which are an APPEND of one message naming the message it
//! replaces: the parts of the command around its message literals.
//!
//! An APPEND's messages never pass through the parser: the framer streams
//! each message literal to the session as it arrives (see
//! [`super::framer::FrameEvent::AppendLiteral`]), and hands over only the
//! text before it, the *head*. The first head holds the tag, the mailbox
//! and the first message's flags and date; each later head (MULTIAPPEND)
//! holds one more message's flags and date.
//!
//! ```text
//! a1 APPEND Drafts (\Seen) "01-Jan-2026 10:00:00 +0100" {310}   first head
//!  (\Draft) {120}                                               next head
//! ```

use super::catenate::{parse_segment, AppendItem, AppendState};
use super::command::ParseError;
use super::framer::tag_of;
use super::parser::{PResult, Parser};
use super::types::Flag;
use crate::message::date::days_from_civil;

/// One message's attributes (RFC 9051 9 append-opts without CATENATE).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppendOptions {
    pub flags: Vec<Flag>,
    /// The INTERNALDATE asked for, in unix seconds.
    pub date: Option<i64>,
}

/// The first head of an APPEND (or REPLACE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendHead {
    pub tag: String,
    pub mailbox: String,
    /// REPLACE's message in the selected mailbox.
    pub replace: Option<ReplaceTarget>,
    /// What follows the mailbox name (messages, CATENATE parts).
    pub items: Vec<AppendItem>,
    /// Where the next segment starts.
    pub state: AppendState,
}

/// RFC 8508 3: the message a REPLACE expunges once its new message is
/// stored: a sequence number, or a UID for UID REPLACE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaceTarget {
    pub uid: bool,
    pub number: u32,
}

/// Whether `prefix`, the command so far up to a literal's `{`, is an
/// APPEND whose next argument is a message or a CATENATE TEXT part (so
/// the literal is streamed), rather than a mailbox name sent as a literal.
pub fn is_message_position(prefix: &[u8]) -> bool {
    parse_first_head(prefix).is_ok()
}

/// Reads `tag SP "APPEND" SP mailbox` and the first segment up to the
/// first message literal: `SP [flag-list SP] [date-time SP]`, or a
/// CATENATE part list up to its first TEXT (RFC 4469 5); or RFC 8508 4's
/// `tag SP ["UID" SP] "REPLACE" SP number SP mailbox ...`.
pub fn parse_first_head(head: &[u8]) -> Result<AppendHead, ParseError> {
    parse_head(head, true)
}

/// Reads a whole APPEND that carries no message literal (every message a
/// CATENATE of URLs).
pub fn parse_whole(command: &[u8]) -> Result<AppendHead, ParseError> {
    parse_head(command, false)
}

fn parse_head(head: &[u8], literal_follows: bool) -> Result<AppendHead, ParseError> {
    let tag = tag_of(head).ok_or(ParseError {
        tag: None,
        message: "Missing or invalid command tag".into(),
    })?;
    let mut p = Parser {
        s: head,
        i: tag.len() + 1,
    };
    let err = |message: String| ParseError {
        tag: Some(tag.clone()),
        message,
    };
    let replace = if p.eat_word("APPEND ") {
        None
    } else {
        let uid = p.eat_word("UID ");
        if !p.eat_word("REPLACE ") {
            return Err(err("Not an APPEND".into()));
        }
        let number = p.nz_number().map_err(err)?;
        p.sp().map_err(err)?;
        Some(ReplaceTarget { uid, number })
    };
    let mailbox = p.mailbox().map_err(err)?;
    let (items, state) = p
        .append_segment(AppendState::Between, literal_follows)
        .map_err(err)?;
    Ok(AppendHead {
        tag: tag.clone(),
        mailbox,
        replace,
        items,
        state,
    })
}

/// Reads a later segment: the text between two message literals
/// (`literal_follows`) or after the last one.
pub fn parse_next_head(
    head: &[u8],
    state: AppendState,
    literal_follows: bool,
) -> PResult<(Vec<AppendItem>, AppendState)> {
    parse_segment(head, state, literal_follows)
}

/// One message's `SP [flag-list SP] [date-time SP]`.
pub(super) fn message_options(p: &mut Parser<'_>) -> PResult<AppendOptions> {
    p.sp()?;
    let mut opts = AppendOptions::default();
    if p.peek() == Some(b'(') {
        opts.flags = flag_list(p)?;
        p.sp()?;
    }
    if p.peek() == Some(b'"') {
        let raw = p.quoted()?;
        opts.date = Some(parse_date_time(&raw).ok_or("Invalid date-time")?);
        p.sp()?;
    }
    Ok(opts)
}

/// RFC 9051 9 flag-list: `(` [flag *(SP flag)] `)`.
fn flag_list(p: &mut Parser<'_>) -> PResult<Vec<Flag>> {
    p.expect(b'(', "a flag list")?;
    let mut flags = Vec::new();
    if p.eat(b')') {
        return Ok(flags);
    }
    loop {
        let flag = p.flag()?;
        if flags.len() == super::parser::MAX_LIST_ITEMS {
            return Err(format!(
                "Too many flags (at most {})",
                super::parser::MAX_LIST_ITEMS
            ));
        }
        flags.push(flag);
        if p.eat(b')') {
            return Ok(flags);
        }
        p.sp()?;
    }
}

/// RFC 9051 9 date-time without its quotes:
/// `dd-Mon-yyyy hh:mm:ss +zzzz`, the day possibly space-padded.
pub fn parse_date_time(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let (date, rest) = s
        .split_once(' ')
        .filter(|(d, _)| !d.is_empty())
        .or_else(|| {
            // " 1-Jan-2026 ...": a space-padded day.
            let t = s.strip_prefix(' ')?;
            t.split_once(' ')
        })?;
    let mut d = date.split('-');
    let (day, mon, year) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || day.is_empty() || day.len() > 2 || year.len() != 4 {
        return None;
    }
    let day: i64 = digits(day)?;
    let year: i64 = digits(year)?;
    let month = crate::message::date::MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(mon))? as i64
        + 1;
    let (time, zone) = rest.split_once(' ')?;
    let mut t = time.split(':');
    let (h, mi, se) = (t.next()?, t.next()?, t.next()?);
    if t.next().is_some() || [h, mi, se].iter().any(|x| x.len() != 2) {
        return None;
    }
    let (h, mi, se): (i64, i64, i64) = (digits(h)?, digits(mi)?, digits(se)?);
    if zone.len() != 5 || !zone.is_ascii() {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (zh, zm): (i64, i64) = (digits(&zone[1..3])?, digits(&zone[3..5])?);
    let max_day = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > max_day || h > 23 || mi > 59 || se > 60 || zm > 59 {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + se;
    Some(local - sign * (zh * 3600 + zm * 60))
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first message's options.
    fn opts(h: &AppendHead) -> AppendOptions {
        match &h.items[0] {
            AppendItem::Message { options, .. } => options.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn first_heads() {
        let h = parse_first_head(b"a1 APPEND INBOX ").unwrap();
        assert_eq!(h.tag, "a1");
        assert_eq!(h.mailbox, "INBOX");
        assert_eq!(opts(&h), AppendOptions::default());
        assert_eq!(h.items[1], AppendItem::Literal);
        let h = parse_first_head(
            b"a2 append \"Sent Items\" (\\Seen $Label) \"01-Jan-2026 10:00:00 +0100\" ",
        )
        .unwrap();
        assert_eq!(h.mailbox, "Sent Items");
        assert_eq!(opts(&h).flags.len(), 2);
        assert_eq!(opts(&h).date, Some(1_767_258_000));
        let h = parse_first_head(b"a3 APPEND {5}\r\ninbox () ").unwrap();
        assert_eq!(h.mailbox, "INBOX");
        // Where a mailbox literal would go: not a message.
        assert!(!is_message_position(b"a3 APPEND "));
        assert!(!is_message_position(b"a3 LOGIN "));
        assert!(is_message_position(b"a3 APPEND x "));
        let e = parse_first_head(b"a4 APPEND x (\\Recent) ").unwrap_err();
        assert_eq!(e.tag.as_deref(), Some("a4"));
        assert!(parse_first_head(b"a5 APPEND x \"bad date\" ").is_err());
        assert!(parse_first_head(b"a6 APPEND x").is_err());
        assert_eq!(h.replace, None);
    }

    #[test]
    fn replace_heads() {
        let h = parse_first_head(b"a1 REPLACE 4 Drafts (\\Draft) ").unwrap();
        assert_eq!(h.mailbox, "Drafts");
        assert_eq!(
            h.replace,
            Some(ReplaceTarget {
                uid: false,
                number: 4
            })
        );
        let h = parse_first_head(b"a2 uid replace 1200 INBOX ").unwrap();
        assert_eq!(
            h.replace,
            Some(ReplaceTarget {
                uid: true,
                number: 1200
            })
        );
        assert!(is_message_position(b"a3 REPLACE 1 x "));
        assert!(!is_message_position(b"a3 REPLACE 1 "));
        assert_eq!(
            parse_first_head(b"a4 REPLACE 0 x ").unwrap_err().message,
            "Expected a non-zero number"
        );
        assert!(parse_first_head(b"a5 UID APPEND x ").is_err());
    }

    #[test]
    fn next_heads() {
        let next = |s: &[u8]| parse_next_head(s, AppendState::Between, true);
        let plain = AppendItem::Message {
            options: AppendOptions::default(),
            catenate: false,
        };
        assert_eq!(
            next(b" ").unwrap(),
            (vec![plain, AppendItem::Literal], AppendState::Between)
        );
        let draft = AppendItem::Message {
            options: AppendOptions {
                flags: vec![Flag::Draft],
                date: None,
            },
            catenate: false,
        };
        assert_eq!(next(b" (\\Draft) ").unwrap().0[0], draft);
        assert!(next(b"").is_err());
        assert!(next(b" junk ").is_err());
        // A CATENATE message's first TEXT part.
        assert!(is_message_position(b"a1 APPEND x CATENATE (TEXT "));
        assert!(is_message_position(
            b"a1 APPEND x (\\Seen) CATENATE (URL /x/;UID=1 TEXT "
        ));
        assert!(!is_message_position(b"a1 APPEND x CATENATE (URL "));
        let whole = parse_whole(b"a1 APPEND x CATENATE (URL /x/;UID=1)").unwrap();
        assert_eq!(whole.items.len(), 3);
    }

    #[test]
    fn date_times() {
        assert_eq!(parse_date_time(b"01-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_date_time(b" 1-Jan-1970 01:00:00 +0100"), Some(0));
        assert_eq!(parse_date_time(b"1-Jan-1970 00:00:00 -0001"), Some(60));
        assert_eq!(
            parse_date_time(b"29-Feb-2024 12:00:00 +0000"),
            Some(1_709_208_000)
        );
        assert_eq!(parse_date_time(b"29-Feb-2023 12:00:00 +0000"), None);
        assert_eq!(parse_date_time(b"01-Foo-2024 12:00:00 +0000"), None);
        assert_eq!(parse_date_time(b"01-Jan-2024 24:00:00 +0000"), None);
        assert_eq!(parse_date_time(b"01-Jan-2024 12:00:00 0000"), None);
        assert_eq!(parse_date_time(b""), None);
        // Found by fuzzing: a multi-byte character in the zone.
        assert_eq!(
            parse_date_time("01-Jan-2024 12:00:00 +0\u{3c7}0".as_bytes()),
            None
        );
    }
}
