//! The commands an IMAP client sends, as typed values (RFC 9051 6, with
//! CONDSTORE from RFC 7162, MOVE from RFC 6851, UIDPLUS from RFC 4315, ID
//! from RFC 2971 and ENABLE from RFC 5161).
//!
//! [`super::parser`] builds these from framed bytes; the session actor
//! applies them. Nothing here knows about mailboxes or the store.

use super::search::SearchProgram;
use super::seqset::SeqSet;
use super::types::{is_atom_char, Flag, ModSeq};
use thiserror::Error;

/// One tagged command line (RFC 9051 2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's tag; empty only for [`CommandBody::Done`], which has none.
    pub tag: String,
    pub body: CommandBody,
}

/// A command the session answers with `tag BAD message`, or `* BAD message`
/// when no valid tag could be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ParseError {
    pub tag: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    // RFC 9051 6.1: any state.
    Capability,
    Noop,
    Logout,
    /// RFC 2971 3.1: `None` for `ID NIL`.
    Id(Option<Vec<(String, Option<String>)>>),

    // RFC 9051 6.2: not authenticated.
    StartTls,
    Login {
        username: String,
        password: String,
    },
    /// `initial_response` is the base64 text as sent; `"="` means an empty
    /// initial response (RFC 9051 6.2.2).
    Authenticate {
        mechanism: String,
        initial_response: Option<String>,
    },

    // RFC 9051 6.3: authenticated.
    /// Capability names, upper-cased.
    Enable(Vec<String>),
    Select {
        mailbox: String,
        params: SelectParams,
    },
    Examine {
        mailbox: String,
        params: SelectParams,
    },
    Create {
        mailbox: String,
        /// RFC 6154 3: CREATE name (USE (attributes)), as written.
        special_use: Vec<String>,
    },
    Delete {
        mailbox: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        mailbox: String,
    },
    Unsubscribe {
        mailbox: String,
    },
    /// RFC 9051 6.3.9 with LIST-EXTENDED (RFC 5258), LIST-STATUS
    /// (RFC 5819) and SPECIAL-USE (RFC 6154); names are not normalised.
    List(ListCommand),
    /// RFC 3501 6.3.9: IMAP4rev1's list of subscribed mailboxes (rev2
    /// folded it into LIST (SUBSCRIBED), but rev1 clients still send it).
    Lsub {
        reference: String,
        pattern: String,
    },
    Namespace,
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    /// RFC 9051 6.3.13.
    Idle,
    /// RFC 4978 3: `COMPRESS mechanism`; the mechanism is upper-cased.
    Compress {
        mechanism: String,
    },
    /// The `DONE` line that ends IDLE; it has no tag.
    Done,

    // RFC 9051 6.4: selected.
    /// IMAP4rev1 6.4.1; kept for rev1 clients, acts as NOOP.
    Check,
    Close,
    Unselect,
    Expunge,
    /// RFC 4315 2.1 / RFC 9051 6.4.9: `UID EXPUNGE set`.
    UidExpunge(SeqSet),
    Fetch {
        set: SeqSet,
        items: FetchItems,
        uid: bool,
        /// RFC 7162 3.1.4.1: CHANGEDSINCE.
        changed_since: Option<ModSeq>,
        /// RFC 7162 3.2.6: VANISHED (UID FETCH with CHANGEDSINCE only).
        vanished: bool,
    },
    Store {
        set: SeqSet,
        uid: bool,
        action: StoreAction,
        silent: bool,
        flags: Vec<Flag>,
        /// RFC 7162 3.1.3: UNCHANGEDSINCE.
        unchanged_since: Option<ModSeq>,
    },
    Copy {
        set: SeqSet,
        mailbox: String,
        uid: bool,
    },
    Move {
        set: SeqSet,
        mailbox: String,
        uid: bool,
    },
    /// RFC 9051 6.4.4: SEARCH and UID SEARCH.
    Search {
        uid: bool,
        program: SearchProgram,
    },
}

/// A LIST command's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    pub reference: String,
    /// One or more patterns (RFC 5258 3: `mbox-or-pat`).
    pub patterns: Vec<String>,
    pub select: ListSelect,
    pub returns: ListReturn,
    /// Selection or return options were given: the extended form, whose
    /// answers may carry extended data (CHILDINFO).
    pub extended: bool,
}

/// RFC 5258 3.1 selection options (and RFC 6154 SPECIAL-USE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListSelect {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// RFC 5258 3.2 return options, RFC 5819 STATUS, RFC 6154 SPECIAL-USE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    pub status: Option<Vec<StatusItem>>,
}

/// SELECT and EXAMINE parameters (RFC 7162 3.1.8, 3.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<QResync>,
}

/// RFC 7162 3.2.5: what the client remembers of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QResync {
    pub uid_validity: u32,
    pub modseq: ModSeq,
    /// The UIDs the client knows; all when absent.
    pub known_uids: Option<SeqSet>,
    /// Sequence numbers and the UIDs the client has for them.
    pub seq_match: Option<(SeqSet, SeqSet)>,
}

/// RFC 9051 6.3.11 status-att (and RECENT from IMAP4rev1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    /// RFC 7162 3.1.6.
    HighestModSeq,
    Recent,
}

impl StatusItem {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::Deleted => "DELETED",
            StatusItem::Size => "SIZE",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::Recent => "RECENT",
        }
    }
}

/// RFC 9051 6.4.6: `+FLAGS`, `-FLAGS` or `FLAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    Add,
    Remove,
    Replace,
}

/// The attributes a FETCH asks for, macros already expanded.
pub type FetchItems = Vec<FetchAttr>;

/// RFC 9051 6.4.5 fetch-att.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Flags,
    Uid,
    Rfc822Size,
    InternalDate,
    Envelope,
    BodyStructure,
    /// `BODY` without a section: the non-extensible BODYSTRUCTURE.
    Body,
    /// RFC 7162 3.1.4.
    ModSeq,
    /// RFC 8514 4.3: when the message was saved in this mailbox.
    SaveDate,
    /// IMAP4rev1 `RFC822`, like `BODY[]` but sets \Seen.
    Rfc822,
    /// IMAP4rev1 `RFC822.HEADER`, like `BODY.PEEK[HEADER]`.
    Rfc822Header,
    /// IMAP4rev1 `RFC822.TEXT`, like `BODY[TEXT]`.
    Rfc822Text,
    BodySection {
        peek: bool,
        section: Section,
        /// `<origin.length>`.
        partial: Option<(u32, u32)>,
    },
    /// RFC 9051 6.4.5 / RFC 3516: `BINARY[part]<partial>`, decoded content.
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY.SIZE[part]`.
    BinarySize {
        part: Vec<u32>,
    },
}

/// RFC 9051 9 section-spec: an empty `part` is the whole message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names as sent; they compare case-insensitively.
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// Only after a part number.
    Mime,
}

impl Section {
    /// The section as it is echoed in a FETCH response (`HEADER.FIELDS
    /// (FROM SUBJECT)`, `1.2.MIME`), without the brackets.
    pub fn to_wire(&self) -> String {
        let mut out = self
            .part
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".");
        let text = match &self.text {
            None => return out,
            Some(SectionText::Header) => "HEADER".to_string(),
            Some(SectionText::Text) => "TEXT".to_string(),
            Some(SectionText::Mime) => "MIME".to_string(),
            Some(SectionText::HeaderFields(f)) => format!("HEADER.FIELDS ({})", header_list(f)),
            Some(SectionText::HeaderFieldsNot(f)) => {
                format!("HEADER.FIELDS.NOT ({})", header_list(f))
            }
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&text);
        out
    }
}

/// Field names as atoms where they can be, else quoted (RFC 9051 9
/// header-fld-name = astring); CR and LF cannot survive a quoted string, so
/// they become spaces.
fn header_list(fields: &[String]) -> String {
    let names: Vec<String> = fields
        .iter()
        .map(|f| {
            if !f.is_empty() && f.bytes().all(|b| is_atom_char(b) || b == b']') {
                return f.clone();
            }
            let mut q = String::with_capacity(f.len() + 2);
            q.push('"');
            for c in f.chars() {
                match c {
                    '"' | '\\' => {
                        q.push('\\');
                        q.push(c);
                    }
                    '\r' | '\n' => q.push(' '),
                    _ => q.push(c),
                }
            }
            q.push('"');
            q
        })
        .collect();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_wire_form() {
        let s = Section {
            part: vec![1, 2],
            text: Some(SectionText::Mime),
        };
        assert_eq!(s.to_wire(), "1.2.MIME");
        let s = Section {
            part: vec![],
            text: Some(SectionText::HeaderFields(vec![
                "From".into(),
                "Subject".into(),
            ])),
        };
        assert_eq!(s.to_wire(), "HEADER.FIELDS (From Subject)");
        let s = Section {
            part: vec![],
            text: Some(SectionText::HeaderFieldsNot(vec![
                "a b".into(),
                "q\"\r\n".into(),
                "".into(),
            ])),
        };
        assert_eq!(s.to_wire(), "HEADER.FIELDS.NOT (\"a b\" \"q\\\"  \" \"\")");
        assert_eq!(Section::default().to_wire(), "");
        let s = Section {
            part: vec![3],
            text: None,
        };
        assert_eq!(s.to_wire(), "3");
    }
}
