//! CATENATE (RFC 4469): an APPEND message made of parts, text sent as
//! literals and pieces of messages already in the user's mailboxes named
//! by IMAP URLs (RFC 5092).
//!
//! As with APPEND, literals never reach the parser: the framer streams
//! them, and the text between two literals (a *segment*) is read here
//! into [`AppendItem`]s, carrying an [`AppendState`] from one segment to
//! the next:
//!
//! ```text
//! a1 APPEND Drafts (\Seen) CATENATE (URL "/Drafts;UIDVALIDITY=3/;UID=7" TEXT {42}
//! <42 octets> URL "/INBOX;UIDVALIDITY=1/;UID=3/;SECTION=2.MIME" TEXT {310}
//! <310 octets>)
//! ```

use super::command::Section;
use super::parser::{PResult, Parser};

/// Longest IMAP URL taken, in octets.
pub const MAX_URL: usize = 2048;
/// Parts one CATENATE message may have.
pub const MAX_CATENATE_PARTS: usize = 100;

/// What a segment of an APPEND says, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendItem {
    /// A message starts with these flags and date; `catenate` when its
    /// data come as CATENATE parts, otherwise as the literal that follows.
    Message {
        options: super::append::AppendOptions,
        catenate: bool,
    },
    /// A CATENATE part taken from a message by URL.
    Url(String),
    /// The literal after this segment is a CATENATE TEXT part.
    Text,
    /// The literal after this segment is the whole message.
    Literal,
    /// The current message's CATENATE parts end.
    EndParts,
}

/// Where a segment starts: between messages, or inside a CATENATE part
/// list (`first`: no part read yet, so no space before the next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendState {
    #[default]
    Between,
    InParts {
        first: bool,
        parts: usize,
    },
}

/// Reads one segment starting in `state`. A `head` segment ends where a
/// message literal starts (its last item is [`AppendItem::Text`] or
/// [`AppendItem::Literal`]); the last segment (`head` false) ends the
/// command between messages.
pub fn parse_segment(
    seg: &[u8],
    state: AppendState,
    head: bool,
) -> PResult<(Vec<AppendItem>, AppendState)> {
    let mut p = Parser { s: seg, i: 0 };
    p.append_segment(state, head)
}

impl Parser<'_> {
    pub(super) fn append_segment(
        &mut self,
        mut state: AppendState,
        head: bool,
    ) -> PResult<(Vec<AppendItem>, AppendState)> {
        let mut items = Vec::new();
        loop {
            match state {
                AppendState::Between => {
                    if self.at_end() {
                        if head {
                            return Err("Expected a message".into());
                        }
                        return Ok((items, state));
                    }
                    let started = self.message_start(head);
                    // After the last literal, only a CATENATE message may
                    // follow; anything else is stray text.
                    let (message, next) = started.map_err(|e| {
                        if head {
                            e
                        } else {
                            "Unexpected characters after the message literal".into()
                        }
                    })?;
                    items.push(message);
                    match next {
                        Some(literal) => {
                            items.push(literal);
                            return Ok((items, AppendState::Between));
                        }
                        None => {
                            state = AppendState::InParts {
                                first: true,
                                parts: 0,
                            }
                        }
                    }
                }
                AppendState::InParts { first, parts } => {
                    if self.eat(b')') {
                        if first {
                            return Err("CATENATE needs at least one part".into());
                        }
                        items.push(AppendItem::EndParts);
                        state = AppendState::Between;
                        continue;
                    }
                    if !first {
                        self.sp()?;
                    }
                    if parts == MAX_CATENATE_PARTS {
                        return Err(format!(
                            "Too many CATENATE parts (at most {MAX_CATENATE_PARTS})"
                        ));
                    }
                    let next = AppendState::InParts {
                        first: false,
                        parts: parts + 1,
                    };
                    if self.eat_word("URL ") {
                        let url = self.astring_bytes()?;
                        if url.len() > MAX_URL {
                            return Err(format!("URL longer than {MAX_URL} octets"));
                        }
                        // RFC 3986 URLs are printable ASCII; `]` would end
                        // a BADURL response code early.
                        if url.iter().any(|&b| !(0x21..0x7f).contains(&b) || b == b']') {
                            return Err("Invalid character in URL".into());
                        }
                        items.push(AppendItem::Url(String::from_utf8_lossy(&url).into_owned()));
                        state = next;
                    } else if self.eat_word("TEXT ") {
                        if !head || !self.at_end() {
                            return Err("Expected a literal after TEXT".into());
                        }
                        items.push(AppendItem::Text);
                        return Ok((items, next));
                    } else {
                        return Err("Expected URL or TEXT".into());
                    }
                }
            }
        }
    }
}

impl Parser<'_> {
    /// A message's options, then its literal (`Some(Literal)`, in a head)
    /// or the opening of its CATENATE part list (`None`).
    fn message_start(&mut self, head: bool) -> PResult<(AppendItem, Option<AppendItem>)> {
        let options = super::append::message_options(self)?;
        if self.at_end() {
            if !head {
                return Err("A message needs a literal or CATENATE".into());
            }
            let message = AppendItem::Message {
                options,
                catenate: false,
            };
            return Ok((message, Some(AppendItem::Literal)));
        }
        if !self.eat_word("CATENATE (") {
            return Err("Expected a message literal or CATENATE".into());
        }
        let message = AppendItem::Message {
            options,
            catenate: true,
        };
        Ok((message, None))
    }
}

/// An IMAP URL naming a message, or a part of one, in the user's own
/// mailboxes (RFC 5092 3: `imap://[user@]host[:port]` followed by an
/// absolute path, or the path alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// The user named in the authority, if any (percent-decoded).
    pub user: Option<String>,
    /// The mailbox name (percent-decoded UTF-8).
    pub mailbox: String,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    pub section: Section,
    /// `;PARTIAL=offset[.length]`.
    pub partial: Option<(u32, Option<u32>)>,
}

/// RFC 5092 3, 6: `[imap://[user[;AUTH=...]@]host[:port]]/mailbox
/// [;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]`; parameter names
/// without case; `;URLAUTH` (RFC 4467) and mailbox-only URLs are refused.
pub fn parse_url(url: &str) -> Result<ImapUrl, String> {
    let bad = || format!("Not a message URL: {url}");
    let (user, path) = match strip_prefix_nocase(url, "imap://") {
        Some(rest) => {
            let slash = rest.find('/').ok_or_else(bad)?;
            let authority = &rest[..slash];
            let user = authority.rsplit_once('@').map(|(u, _)| {
                let name = u.split(';').next().unwrap_or("");
                percent_decode(name)
            });
            let user = user.transpose()?.filter(|u| !u.is_empty());
            (user, &rest[slash..])
        }
        None => (None, url),
    };
    let path = path.strip_prefix('/').ok_or_else(bad)?;
    let mut pieces = path.split("/;");
    let mailbox_piece = pieces.next().ok_or_else(bad)?;
    let (enc_mailbox, validity) = match mailbox_piece.split_once(';') {
        Some((m, v)) => {
            let v = strip_prefix_nocase(v, "UIDVALIDITY=").ok_or_else(bad)?;
            (m, Some(v.parse::<u32>().map_err(|_| bad())?))
        }
        None => (mailbox_piece, None),
    };
    let mailbox = percent_decode(enc_mailbox)?;
    if mailbox.is_empty() {
        return Err(bad());
    }
    let uid_piece = pieces.next().ok_or_else(bad)?;
    let uid = strip_prefix_nocase(uid_piece, "UID=")
        .and_then(|u| u.parse::<u32>().ok())
        .filter(|&u| u > 0)
        .ok_or_else(bad)?;
    let mut section = Section::default();
    let mut partial = None;
    for piece in pieces {
        if let Some(s) = strip_prefix_nocase(piece, "SECTION=") {
            let spec = percent_decode(s)?;
            let text = format!("[{spec}]");
            let mut p = Parser {
                s: text.as_bytes(),
                i: 0,
            };
            section = p.section()?;
            p.end()?;
        } else if let Some(s) = strip_prefix_nocase(piece, "PARTIAL=") {
            let (offset, length) = match s.split_once('.') {
                Some((o, l)) => (o, Some(l.parse::<u32>().map_err(|_| bad())?)),
                None => (s, None),
            };
            partial = Some((offset.parse::<u32>().map_err(|_| bad())?, length));
        } else {
            return Err(format!("Unsupported URL part ;{piece} in {url}"));
        }
    }
    Ok(ImapUrl {
        user,
        mailbox,
        uid_validity: validity,
        uid,
        section,
        partial,
    })
}

fn strip_prefix_nocase<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// RFC 3986 2.1: `%XX` to its octet; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("Truncated %-escape in URL")?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return Err("Invalid %-escape in URL".into());
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "Invalid %-escape in URL")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URL names a mailbox that is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::append::AppendOptions;
    use crate::imap::command::SectionText;

    fn msg(catenate: bool) -> AppendItem {
        AppendItem::Message {
            options: AppendOptions::default(),
            catenate,
        }
    }

    #[test]
    fn segments_of_a_catenate() {
        let (items, state) = parse_segment(
            b" CATENATE (URL \"/INBOX;UIDVALIDITY=5/;UID=1\" TEXT ",
            AppendState::Between,
            true,
        )
        .unwrap();
        assert_eq!(
            items,
            vec![
                msg(true),
                AppendItem::Url("/INBOX;UIDVALIDITY=5/;UID=1".into()),
                AppendItem::Text
            ]
        );
        assert_eq!(
            state,
            AppendState::InParts {
                first: false,
                parts: 2
            }
        );
        // After the literal: one more URL, the end, and a plain message.
        let (items, state) =
            parse_segment(b" URL /x;UIDVALIDITY=1/;UID=2) (\\Seen) ", state, true).unwrap();
        assert_eq!(
            items,
            vec![
                AppendItem::Url("/x;UIDVALIDITY=1/;UID=2".into()),
                AppendItem::EndParts,
                AppendItem::Message {
                    options: AppendOptions {
                        flags: vec![crate::imap::types::Flag::Seen],
                        date: None
                    },
                    catenate: false
                },
                AppendItem::Literal
            ]
        );
        assert_eq!(state, AppendState::Between);
        // The tail: a message of URLs only.
        let (items, state) = parse_segment(b" CATENATE (URL /a/;UID=1)", state, false).unwrap();
        assert_eq!(
            items,
            vec![
                msg(true),
                AppendItem::Url("/a/;UID=1".into()),
                AppendItem::EndParts
            ]
        );
        assert_eq!(state, AppendState::Between);
        assert_eq!(
            parse_segment(
                b" CATENATE (URL \"/a]/;UID=1\")",
                AppendState::Between,
                false
            )
            .unwrap_err(),
            "Invalid character in URL"
        );
        assert!(parse_segment(b"", AppendState::Between, false)
            .unwrap()
            .0
            .is_empty());
        for (seg, state, head) in [
            (&b" CATENATE ()"[..], AppendState::Between, false),
            (b" CATENATE (FOO x)", AppendState::Between, false),
            (b" CATENATE (TEXT ", AppendState::Between, false),
            (b" (\\Seen)", AppendState::Between, false),
            (b" CATENATE (URL /a/;UID=1", AppendState::Between, false),
        ] {
            assert!(parse_segment(seg, state, head).is_err(), "{seg:?}");
        }
        let url = |n: usize| format!(" CATENATE (URL \"/{}/;UID=1\")", "m".repeat(n - 8));
        assert!(parse_segment(url(MAX_URL).as_bytes(), AppendState::Between, false).is_ok());
        assert_eq!(
            parse_segment(url(MAX_URL + 1).as_bytes(), AppendState::Between, false).unwrap_err(),
            format!("URL longer than {MAX_URL} octets")
        );
        let many = format!(
            " CATENATE ({})",
            vec!["URL /a/;UID=1"; MAX_CATENATE_PARTS].join(" ")
        );
        assert!(parse_segment(many.as_bytes(), AppendState::Between, false).is_ok());
        let past = format!(
            " CATENATE ({})",
            vec!["URL /a/;UID=1"; MAX_CATENATE_PARTS + 1].join(" ")
        );
        assert_eq!(
            parse_segment(past.as_bytes(), AppendState::Between, false).unwrap_err(),
            format!("Too many CATENATE parts (at most {MAX_CATENATE_PARTS})")
        );
    }

    #[test]
    fn urls_name_a_message_and_a_part() {
        let u = parse_url("/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME").unwrap();
        assert_eq!(u.mailbox, "Drafts");
        assert_eq!(u.uid_validity, Some(385759045));
        assert_eq!(u.uid, 20);
        assert_eq!(u.section.part, vec![1]);
        assert_eq!(u.section.text, Some(SectionText::Mime));
        let u = parse_url("imap://bob;AUTH=*@mail.example/My%20Box/;uid=3/;section=HEADER.FIELDS%20(FROM)/;partial=0.1024")
            .unwrap();
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.mailbox, "My Box");
        assert_eq!(u.uid_validity, None);
        assert_eq!(
            u.section.text,
            Some(SectionText::HeaderFields(vec!["FROM".into()]))
        );
        assert_eq!(u.partial, Some((0, Some(1024))));
        for bad in [
            "INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX;UIDVALIDITY=x/;UID=1",
            "/INBOX/;UID=1/;URLAUTH=anonymous",
            "/INBOX/;UID=1/;SECTION=9X",
            "/%ZZ/;UID=1",
            "/%+1/;UID=1",
            "imap://host",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
