//! The commands an IMAP client sends, as typed values (RFC 9051 6, with
//! CONDSTORE from RFC 7162, MOVE from RFC 6851, UIDPLUS from RFC 4315, ID
//! from RFC 2971 and ENABLE from RFC 5161).
//!
//! [`super::parser`] builds these from framed bytes; the session actor
//! applies them. Nothing here knows about mailboxes or the store.

use super::search::SearchProgram;
use super::seqset::SeqSet;
use super::types::{Flag, ModSeq};
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
    /// RFC 8437 3: back to the not authenticated state.
    Unauthenticate,
    /// RFC 9208 4.1.1.
    GetQuota {
        root: String,
    },
    /// RFC 9208 4.1.2.
    GetQuotaRoot {
        mailbox: String,
    },
    /// RFC 9208 4.1.3: resource names (upper-cased) and limits.
    SetQuota {
        root: String,
        limits: Vec<(String, u64)>,
    },
    /// RFC 4469: an APPEND (or REPLACE) without a literal, its messages
    /// all CATENATE URL parts.
    Append(Box<crate::imap::append::AppendHead>),
    /// RFC 5267 4.3.5: the tags of live searches to stop updating.
    CancelUpdate(Vec<String>),
    /// RFC 5465 3.
    Notify(crate::imap::notify::NotifyCommand),
    /// RFC 5464 4.2.
    GetMetadata(crate::imap::metadata::GetMetadata),
    /// RFC 5464 4.3.
    SetMetadata(crate::imap::metadata::SetMetadata),

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
        /// RFC 9394 3.2: PARTIAL.
        partial: Option<crate::imap::search::PartialRange>,
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
    /// RFC 5256 3.
    Sort {
        uid: bool,
        sort: super::sort::SortCommand,
    },
    /// RFC 7377: ESEARCH over several mailboxes.
    Esearch(super::search::MultiSearch),
    /// RFC 5256 5.
    Thread {
        uid: bool,
        thread: super::sort::ThreadCommand,
    },
}

impl CommandBody {
    /// RFC 9586 3, 3.2, 3.5, 3.7 and 3.8: whether the command names
    /// messages by sequence number (all of FETCH, STORE, SEARCH, COPY,
    /// MOVE, SORT and THREAD without UID; a sequence-set search key; QRESYNC
    /// sequence-match data), which UIDONLY forbids.
    pub fn uses_sequence_numbers(&self) -> bool {
        use super::search::{SearchKey, SearchProgram};
        use super::seqset::SeqSet;
        // `$` is a saved set of UIDs, not message numbers.
        let in_keys = |p: &SearchProgram| {
            p.any_key(|k| matches!(k, SearchKey::SeqSet(s) if *s != SeqSet::SearchResult))
        };
        match self {
            CommandBody::Fetch { uid, .. }
            | CommandBody::Store { uid, .. }
            | CommandBody::Copy { uid, .. }
            | CommandBody::Move { uid, .. } => !uid,
            CommandBody::Search { uid, program } => !uid || in_keys(program),
            CommandBody::Sort { uid, sort } => !uid || in_keys(&sort.program),
            CommandBody::Thread { uid, thread } => !uid || in_keys(&thread.program),
            CommandBody::Esearch(ms) => in_keys(&ms.program),
            CommandBody::Select { params, .. } | CommandBody::Examine { params, .. } => params
                .qresync
                .as_ref()
                .is_some_and(|q| q.seq_match.is_some()),
            _ => false,
        }
    }
}

pub use super::fetch::{FetchAttr, FetchItems, Section, SectionText};
pub use super::mailbox::{ListCommand, ListReturn, ListSelect, QResync, SelectParams, StatusItem};
pub use super::store::StoreAction;
