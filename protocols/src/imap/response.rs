//! Encoders for the IMAP server's responses (RFC 9051 7), writing bytes
//! into a caller's `Vec<u8>`. Every function writes one whole response
//! ending in CRLF, so the session can batch several into one write.
//!
//! Strings go out in the safest form their bytes allow (atom, quoted string
//! or literal), and free text is cleaned of CR, LF and NUL so nothing a
//! caller passes can break the framing. Rendering ENVELOPE and
//! BODYSTRUCTURE is the message module's job; they arrive here pre-rendered.

use super::types::{Flag, ModSeq, SeqNum, Uid, UidValidity};
use crate::message::date::{civil_from_days, MONTHS};
use crate::message::summary::{BodyStructure, Envelope};
use std::io::Write as _;
use std::sync::Arc;

/// The status of a tagged or untagged status response (RFC 9051 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        }
    }

    fn default_text(self) -> &'static str {
        match self {
            Status::Ok => "completed",
            Status::No => "failed",
            Status::Bad => "invalid command",
        }
    }
}

/// RFC 9051 7.1 response codes, with those of RFC 5530 (ALREADYEXISTS and
/// friends), RFC 4315 (APPENDUID, COPYUID) and RFC 7162 (HIGHESTMODSEQ,
/// NOMODSEQ, MODIFIED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    Capability(Vec<String>),
    Parse,
    /// Flags as they are written, e.g. `\Seen`, `\*`.
    PermanentFlags(Vec<String>),
    ReadOnly,
    ReadWrite,
    TryCreate,
    UidNext(Uid),
    UidValidity(UidValidity),
    /// IMAP4rev1: the sequence number of the first unseen message.
    Unseen(u32),
    HighestModSeq(ModSeq),
    NoModSeq,
    /// RFC 8474 4.1: `MAILBOXID (id)`.
    MailboxId(String),
    /// RFC 9586 3: a message number was used after ENABLE UIDONLY.
    UidRequired,
    /// RFC 7162 3.1.3: the messages STORE did not change, as a set.
    Modified(String),
    /// `uids` is a uid-set in wire form (one UID, or several after
    /// MULTIAPPEND).
    AppendUid {
        validity: UidValidity,
        uids: String,
    },
    /// `from` and `to` are uid-sets in wire form.
    CopyUid {
        validity: UidValidity,
        from: String,
        to: String,
    },
    Closed,
    TooBig,
    Nonexistent,
    AlreadyExists,
    ServerBug,
    Limit,
    OverQuota,
    Cannot,
    AuthenticationFailed,
    AuthorizationFailed,
    Unavailable,
    PrivacyRequired,
    ContactAdmin,
    NoPerm,
    InUse,
    ExpungeIssued,
    ClientBug,
    /// Any other code, written as given (without `]`, CR or LF).
    Other(String),
}

impl Code {
    fn render(&self) -> String {
        let simple = |s: &str| s.to_string();
        let code = match self {
            Code::Alert => simple("ALERT"),
            Code::Capability(caps) => format!("CAPABILITY {}", caps.join(" ")),
            Code::Parse => simple("PARSE"),
            Code::PermanentFlags(flags) => format!("PERMANENTFLAGS ({})", flags.join(" ")),
            Code::ReadOnly => simple("READ-ONLY"),
            Code::ReadWrite => simple("READ-WRITE"),
            Code::TryCreate => simple("TRYCREATE"),
            Code::UidNext(uid) => format!("UIDNEXT {uid}"),
            Code::UidValidity(v) => format!("UIDVALIDITY {v}"),
            Code::Unseen(n) => format!("UNSEEN {n}"),
            Code::HighestModSeq(m) => format!("HIGHESTMODSEQ {m}"),
            Code::NoModSeq => simple("NOMODSEQ"),
            Code::MailboxId(id) => format!("MAILBOXID ({id})"),
            Code::UidRequired => simple("UIDREQUIRED"),
            Code::Modified(set) => format!("MODIFIED {set}"),
            Code::AppendUid { validity, uids } => format!("APPENDUID {validity} {uids}"),
            Code::CopyUid { validity, from, to } => format!("COPYUID {validity} {from} {to}"),
            Code::Closed => simple("CLOSED"),
            Code::TooBig => simple("TOOBIG"),
            Code::Nonexistent => simple("NONEXISTENT"),
            Code::AlreadyExists => simple("ALREADYEXISTS"),
            Code::ServerBug => simple("SERVERBUG"),
            Code::Limit => simple("LIMIT"),
            Code::OverQuota => simple("OVERQUOTA"),
            Code::Cannot => simple("CANNOT"),
            Code::AuthenticationFailed => simple("AUTHENTICATIONFAILED"),
            Code::AuthorizationFailed => simple("AUTHORIZATIONFAILED"),
            Code::Unavailable => simple("UNAVAILABLE"),
            Code::PrivacyRequired => simple("PRIVACYREQUIRED"),
            Code::ContactAdmin => simple("CONTACTADMIN"),
            Code::NoPerm => simple("NOPERM"),
            Code::InUse => simple("INUSE"),
            Code::ExpungeIssued => simple("EXPUNGEISSUED"),
            Code::ClientBug => simple("CLIENTBUG"),
            Code::Other(s) => s.clone(),
        };
        code.chars()
            .filter(|&c| !matches!(c, ']' | '\r' | '\n' | '\0'))
            .collect()
    }
}

/// `tag OK [code] text` (RFC 9051 7.1).
pub fn tagged(out: &mut Vec<u8>, tag: &str, status: Status, code: Option<Code>, text: &str) {
    push_text(out, tag);
    out.push(b' ');
    status_body(out, status.as_str(), code, text, status.default_text());
}

/// `* OK [code] text`, e.g. `* OK [UIDVALIDITY 3] UIDs valid`.
pub fn untagged_status(out: &mut Vec<u8>, status: Status, code: Option<Code>, text: &str) {
    out.extend_from_slice(b"* ");
    status_body(out, status.as_str(), code, text, status.default_text());
}

/// `* BYE text` (RFC 9051 7.1.5).
pub fn bye(out: &mut Vec<u8>, code: Option<Code>, text: &str) {
    out.extend_from_slice(b"* ");
    status_body(out, "BYE", code, text, "logging out");
}

/// `* PREAUTH text` greeting (RFC 9051 7.1.4).
pub fn preauth(out: &mut Vec<u8>, code: Option<Code>, text: &str) {
    out.extend_from_slice(b"* ");
    status_body(out, "PREAUTH", code, text, "logged in");
}

/// `+ text` (RFC 9051 7.5). For SASL, `text` is the base64 challenge.
pub fn continuation(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+ ");
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

fn status_body(out: &mut Vec<u8>, word: &str, code: Option<Code>, text: &str, default: &str) {
    out.extend_from_slice(word.as_bytes());
    out.push(b' ');
    if let Some(code) = code {
        out.push(b'[');
        out.extend_from_slice(code.render().as_bytes());
        out.extend_from_slice(b"] ");
    }
    push_text(out, if text.is_empty() { default } else { text });
    out.extend_from_slice(b"\r\n");
}

/// RFC 9051 9 text: anything but CR and LF (and NUL, which is no CHAR).
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|b| {
        if matches!(b, b'\r' | b'\n' | 0) {
            b' '
        } else {
            b
        }
    }));
}

/// `* n EXISTS` (RFC 9051 7.4.1).
pub fn exists(out: &mut Vec<u8>, n: u32) {
    let _ = write!(out, "* {n} EXISTS\r\n");
}

/// `* n RECENT` (IMAP4rev1 7.3.2), for rev1 clients.
pub fn recent(out: &mut Vec<u8>, n: u32) {
    let _ = write!(out, "* {n} RECENT\r\n");
}

/// `* n EXPUNGE` (RFC 9051 7.5.1).
pub fn expunge(out: &mut Vec<u8>, seq: SeqNum) {
    let _ = write!(out, "* {seq} EXPUNGE\r\n");
}

/// `* FLAGS (...)` (RFC 9051 7.3.5).
pub fn flags_line(out: &mut Vec<u8>, flags: &[Flag]) {
    out.extend_from_slice(b"* FLAGS ");
    flag_list(out, flags);
    out.extend_from_slice(b"\r\n");
}

/// `* CAPABILITY IMAP4rev2 ...` (RFC 9051 7.2.2).
pub fn capability(out: &mut Vec<u8>, caps: &[&str]) {
    atom_line(out, "CAPABILITY", caps);
}

/// `* ENABLED ...` (RFC 5161 3.2); an empty list is valid.
pub fn enabled(out: &mut Vec<u8>, caps: &[&str]) {
    atom_line(out, "ENABLED", caps);
}

fn atom_line(out: &mut Vec<u8>, word: &str, atoms: &[&str]) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(word.as_bytes());
    for a in atoms {
        out.push(b' ');
        push_text(out, a);
    }
    out.extend_from_slice(b"\r\n");
}

/// `* LIST (attrs) "/" name` (RFC 9051 7.3.1); `None` delimiter is NIL.
pub fn list(out: &mut Vec<u8>, attrs: &[&str], delimiter: Option<char>, name: &str) {
    list_line(out, "LIST", attrs, delimiter, name);
}

/// A LIST line with RFC 5258 CHILDINFO extended data when `childinfo`
/// is not empty: `* LIST (attrs) "/" name ("CHILDINFO" ("SUBSCRIBED"))`.
pub fn list_extended(
    out: &mut Vec<u8>,
    attrs: &[&str],
    delimiter: Option<char>,
    name: &str,
    childinfo: &[&str],
) {
    list_line(out, "LIST", attrs, delimiter, name);
    if childinfo.is_empty() {
        return;
    }
    out.truncate(out.len() - 2);
    out.extend_from_slice(b" (\"CHILDINFO\" (");
    for (i, c) in childinfo.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        quoted_or_literal(out, c.as_bytes());
    }
    out.extend_from_slice(b"))\r\n");
}

/// `* LIST (attrs) "/" name ("OLDNAME" ("old"))`: a renamed mailbox
/// (RFC 5465 5.4 with RFC 9051 7.3.1's OLDNAME extended data).
pub fn list_renamed(out: &mut Vec<u8>, delimiter: Option<char>, name: &str, old: &str) {
    list_line(out, "LIST", &[], delimiter, name);
    out.truncate(out.len() - 2);
    out.extend_from_slice(b" (\"OLDNAME\" (");
    quoted_or_literal(out, old.as_bytes());
    out.extend_from_slice(b"))\r\n");
}

/// `* LSUB (attrs) "/" name` (RFC 3501 7.2.3), for IMAP4rev1 clients.
pub fn lsub(out: &mut Vec<u8>, attrs: &[&str], delimiter: Option<char>, name: &str) {
    list_line(out, "LSUB", attrs, delimiter, name);
}

fn list_line(out: &mut Vec<u8>, verb: &str, attrs: &[&str], delimiter: Option<char>, name: &str) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(verb.as_bytes());
    out.extend_from_slice(b" (");
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        push_text(out, a);
    }
    out.extend_from_slice(b") ");
    delimiter_or_nil(out, delimiter);
    out.push(b' ');
    astring(out, name.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn delimiter_or_nil(out: &mut Vec<u8>, delimiter: Option<char>) {
    match delimiter {
        Some(d) => quoted_or_literal(out, d.to_string().as_bytes()),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `* NAMESPACE (("prefix" "/")) NIL NIL` (RFC 9051 7.3.3): one personal
/// namespace, no shared or other users' ones.
pub fn namespace(out: &mut Vec<u8>, personal: Option<(&str, Option<char>)>) {
    out.extend_from_slice(b"* NAMESPACE ");
    match personal {
        Some((prefix, delimiter)) => {
            out.extend_from_slice(b"((");
            quoted_or_literal(out, prefix.as_bytes());
            out.push(b' ');
            delimiter_or_nil(out, delimiter);
            out.extend_from_slice(b"))");
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.extend_from_slice(b" NIL NIL\r\n");
}

/// One value of a STATUS response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusValue {
    Messages(u32),
    UidNext(Uid),
    UidValidity(UidValidity),
    Unseen(u32),
    Deleted(u32),
    DeletedStorage(u64),
    /// RFC 8474 4.1: the mailbox's number, written as its object id.
    MailboxId(u32),
    Size(u64),
    HighestModSeq(ModSeq),
    Recent(u32),
}

/// RFC 8474 4.1 and 7 (`objectid = 1*255(ALPHA / DIGIT / "_" / "-")`):
/// a mailbox's id, from its number, never reused in the account.
pub fn mailbox_object_id(n: u32) -> String {
    format!("F{n}")
}

/// RFC 8474 5.1: a message's id, from its file's number, unique in the
/// data directory and kept when the message moves.
pub fn email_object_id(file: u64) -> String {
    format!("M{file}")
}

/// RFC 8474 5.2: a thread's id, from its number in the account.
pub fn thread_object_id(thread: u64) -> String {
    format!("T{thread}")
}

/// `* QUOTAROOT mailbox root...` (RFC 9208 4.2.2); no roots for a mailbox
/// no quota governs.
pub fn quota_root(out: &mut Vec<u8>, mailbox: &str, roots: &[&str]) {
    out.extend_from_slice(b"* QUOTAROOT ");
    astring(out, mailbox.as_bytes());
    for root in roots {
        out.push(b' ');
        astring(out, root.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// `* QUOTA root (RESOURCE usage limit ...)` (RFC 9208 4.2.1).
pub fn quota(out: &mut Vec<u8>, root: &str, resources: &[(&str, u64, u64)]) {
    out.extend_from_slice(b"* QUOTA ");
    astring(out, root.as_bytes());
    out.extend_from_slice(b" (");
    for (i, (name, usage, limit)) in resources.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let _ = write!(out, "{name} {usage} {limit}");
    }
    out.extend_from_slice(b")\r\n");
}

/// `* STATUS name (MESSAGES 3 UIDNEXT 4)` (RFC 9051 7.3.4).
pub fn status(out: &mut Vec<u8>, name: &str, items: &[StatusValue]) {
    out.extend_from_slice(b"* STATUS ");
    astring(out, name.as_bytes());
    out.extend_from_slice(b" (");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let _ = match item {
            StatusValue::Messages(n) => write!(out, "MESSAGES {n}"),
            StatusValue::UidNext(n) => write!(out, "UIDNEXT {n}"),
            StatusValue::UidValidity(n) => write!(out, "UIDVALIDITY {n}"),
            StatusValue::Unseen(n) => write!(out, "UNSEEN {n}"),
            StatusValue::Deleted(n) => write!(out, "DELETED {n}"),
            StatusValue::DeletedStorage(n) => write!(out, "DELETED-STORAGE {n}"),
            StatusValue::MailboxId(n) => write!(out, "MAILBOXID ({})", mailbox_object_id(*n)),
            StatusValue::Size(n) => write!(out, "SIZE {n}"),
            StatusValue::HighestModSeq(n) => write!(out, "HIGHESTMODSEQ {n}"),
            StatusValue::Recent(n) => write!(out, "RECENT {n}"),
        };
    }
    out.extend_from_slice(b")\r\n");
}

/// RFC 7162 3.2.10: `* VANISHED uids`, or `* VANISHED (EARLIER) uids`
/// when reporting expunges the client missed.
pub fn vanished(out: &mut Vec<u8>, earlier: bool, uids: &str) {
    out.extend_from_slice(if earlier {
        b"* VANISHED (EARLIER) "
    } else {
        b"* VANISHED "
    });
    out.extend_from_slice(uids.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// RFC 4731 / RFC 9051 7.3.4: what an ESEARCH response reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Esearch {
    pub tag: String,
    /// RFC 7377 2.1: the MAILBOX and UIDVALIDITY correlators of a
    /// multi-mailbox search (the name in wire form).
    pub mailbox: Option<(String, u32)>,
    pub uid: bool,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub count: Option<u32>,
    /// A sequence set in wire form, never empty.
    pub all: Option<String>,
    /// RFC 9394 3.1: the range asked for and the page (wire form; `None`
    /// for an empty page, written `NIL`).
    pub partial: Option<(String, Option<String>)>,
    /// RFC 7162 3.1.5.
    pub modseq: Option<ModSeq>,
}

/// `* ESEARCH (TAG "a1") UID MIN 2 MAX 9 COUNT 3 ALL 2,5,9`.
pub fn esearch(out: &mut Vec<u8>, e: &Esearch) {
    out.extend_from_slice(b"* ESEARCH (TAG ");
    quoted_or_literal(out, e.tag.as_bytes());
    if let Some((name, validity)) = &e.mailbox {
        out.extend_from_slice(b" MAILBOX ");
        astring(out, name.as_bytes());
        let _ = write!(out, " UIDVALIDITY {validity}");
    }
    out.push(b')');
    if e.uid {
        out.extend_from_slice(b" UID");
    }
    if let Some(n) = e.min {
        let _ = write!(out, " MIN {n}");
    }
    if let Some(n) = e.max {
        let _ = write!(out, " MAX {n}");
    }
    if let Some(n) = e.count {
        let _ = write!(out, " COUNT {n}");
    }
    if let Some(all) = &e.all {
        let _ = write!(out, " ALL {all}");
    }
    if let Some((range, page)) = &e.partial {
        let _ = write!(
            out,
            " PARTIAL ({range} {})",
            page.as_deref().unwrap_or("NIL")
        );
    }
    if let Some(m) = e.modseq {
        let _ = write!(out, " MODSEQ {m}");
    }
    out.extend_from_slice(b"\r\n");
}

/// `* SEARCH 2 5 (MODSEQ 9)` (RFC 9051 7.3.5 for rev1 clients, RFC 7162
/// 3.1.5 for the MODSEQ part).
pub fn search(out: &mut Vec<u8>, numbers: &[u32], modseq: Option<ModSeq>) {
    out.extend_from_slice(b"* SEARCH");
    for n in numbers {
        let _ = write!(out, " {n}");
    }
    if let Some(m) = modseq {
        let _ = write!(out, " (MODSEQ {m})");
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 5267 4.3: `* ESEARCH (TAG "t") UID REMOVEFROM (pos set ...)
/// ADDTO (pos set ...)`, an update of a live search or sort; either list
/// may be empty and is then left out.
pub fn esearch_update(
    out: &mut Vec<u8>,
    tag: &str,
    removed: &[(u32, String)],
    added: &[(u32, String)],
) {
    out.extend_from_slice(b"* ESEARCH (TAG ");
    quoted_or_literal(out, tag.as_bytes());
    out.extend_from_slice(b") UID");
    for (name, pairs) in [("REMOVEFROM", removed), ("ADDTO", added)] {
        if pairs.is_empty() {
            continue;
        }
        let _ = write!(out, " {name} (");
        for (i, (pos, set)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            let _ = write!(out, "{pos} {set}");
        }
        out.push(b')');
    }
    out.extend_from_slice(b"\r\n");
}

/// `* THREAD (1 2)(3)` (RFC 5256 4); `list` is the thread-list.
pub fn thread(out: &mut Vec<u8>, list: &str) {
    out.extend_from_slice(b"* THREAD");
    if !list.is_empty() {
        out.push(b' ');
        out.extend_from_slice(list.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// `* SORT 3 1 2` (RFC 5256 4), in sort order, with `(MODSEQ n)` after a
/// MODSEQ key (RFC 7162 3.1.5).
pub fn sort(out: &mut Vec<u8>, numbers: &[u32], modseq: Option<ModSeq>) {
    out.extend_from_slice(b"* SORT");
    for n in numbers {
        let _ = write!(out, " {n}");
    }
    if let Some(m) = modseq {
        let _ = write!(out, " (MODSEQ {m})");
    }
    out.extend_from_slice(b"\r\n");
}

/// `* ID ("name" "roost")` or `* ID NIL` (RFC 2971 3.2).
pub fn id(out: &mut Vec<u8>, params: Option<&[(&str, Option<&str>)]>) {
    out.extend_from_slice(b"* ID ");
    match params {
        None => out.extend_from_slice(b"NIL"),
        Some(params) => {
            out.push(b'(');
            for (i, (field, value)) in params.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                quoted_or_literal(out, field.as_bytes());
                out.push(b' ');
                nstring(out, value.map(str::as_bytes));
            }
            out.push(b')');
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// One data item of a FETCH response (RFC 9051 7.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchResponseItem {
    Uid(Uid),
    Flags(Vec<Flag>),
    Rfc822Size(u64),
    /// Seconds since the Unix epoch and the zone offset in minutes east of
    /// UTC, written as `"25-Nov-2026 09:30:00 +0000"`.
    InternalDate {
        secs: i64,
        offset_minutes: i32,
    },
    /// RFC 7162 3.1.4: `MODSEQ (n)`.
    ModSeq(ModSeq),
    /// RFC 8514 4.3: `SAVEDATE "date-time"` (unix seconds, written in UTC).
    SaveDate(i64),
    /// RFC 8970 6: `PREVIEW "text"` or `PREVIEW NIL`.
    Preview(Option<String>),
    /// RFC 8474 7: `EMAILID (id)`.
    EmailId(String),
    /// RFC 8474 7: `THREADID (id)`, or NIL.
    ThreadId(Option<String>),
    Envelope(Arc<Envelope>),
    /// `BODYSTRUCTURE` when `extended`, else the non-extensible `BODY`.
    BodyStructure {
        body: Arc<BodyStructure>,
        extended: bool,
    },
    /// `label` as echoed, e.g. `BODY[]`, `BODY[HEADER]<0>`; the data is
    /// always sent as a literal.
    BodySection {
        label: String,
        data: Vec<u8>,
    },
    /// `label` e.g. `BINARY[1]`; sent as literal8 when the data holds NUL.
    Binary {
        label: String,
        data: Vec<u8>,
    },
    /// `label` e.g. `BINARY.SIZE[1]`.
    BinarySize {
        label: String,
        size: u64,
    },
    Rfc822(Vec<u8>),
    Rfc822Header(Vec<u8>),
    Rfc822Text(Vec<u8>),
    /// `label` (`BODY[]`, `RFC822`, ...) and the announcement of a literal
    /// of `len` bytes, `{len}` CRLF; the caller sends exactly those bytes
    /// next, so a large body goes out in pieces instead of whole.
    LiteralFollows {
        label: String,
        len: u64,
    },
}

/// `* seq FETCH (...)` (RFC 9051 7.5.2).
pub fn fetch(out: &mut Vec<u8>, seq: SeqNum, items: &[FetchResponseItem]) {
    fetch_open(out, seq);
    for (i, item) in items.iter().enumerate() {
        fetch_item_at(out, i, item);
    }
    fetch_close(out);
}

/// RFC 9586 3.3: under UIDONLY, `* uid UIDFETCH (...)` replaces FETCH;
/// the UID item appears only when the client asked for it.
pub fn uidfetch(out: &mut Vec<u8>, uid: Uid, items: &[FetchResponseItem]) {
    uidfetch_open(out, uid);
    for (i, item) in items.iter().enumerate() {
        fetch_item_at(out, i, item);
    }
    fetch_close(out);
}

/// `* uid UIDFETCH (`, to be continued as [`fetch_open`] is.
pub fn uidfetch_open(out: &mut Vec<u8>, uid: Uid) {
    let _ = write!(out, "* {uid} UIDFETCH (");
}

/// The start of a FETCH response written piece by piece: `* seq FETCH (`,
/// then each item with [`fetch_item_at`], then [`fetch_close`].
pub fn fetch_open(out: &mut Vec<u8>, seq: SeqNum) {
    let _ = write!(out, "* {seq} FETCH (");
}

/// Item number `index` (from 0) of a FETCH response begun with
/// [`fetch_open`].
pub fn fetch_item_at(out: &mut Vec<u8>, index: usize, item: &FetchResponseItem) {
    if index > 0 {
        out.push(b' ');
    }
    fetch_item(out, item);
}

pub fn fetch_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b")\r\n");
}

fn fetch_item(out: &mut Vec<u8>, item: &FetchResponseItem) {
    use FetchResponseItem as F;
    match item {
        F::Uid(uid) => {
            let _ = write!(out, "UID {uid}");
        }
        F::Flags(flags) => {
            out.extend_from_slice(b"FLAGS ");
            flag_list(out, flags);
        }
        F::Rfc822Size(n) => {
            let _ = write!(out, "RFC822.SIZE {n}");
        }
        F::InternalDate {
            secs,
            offset_minutes,
        } => {
            out.extend_from_slice(b"INTERNALDATE \"");
            out.extend_from_slice(internal_date(*secs, *offset_minutes).as_bytes());
            out.push(b'"');
        }
        F::SaveDate(secs) => {
            out.extend_from_slice(b"SAVEDATE \"");
            out.extend_from_slice(internal_date(*secs, 0).as_bytes());
            out.push(b'"');
        }
        F::ModSeq(m) => {
            let _ = write!(out, "MODSEQ ({m})");
        }
        F::Preview(text) => {
            out.extend_from_slice(b"PREVIEW ");
            nstring(out, text.as_deref().map(str::as_bytes));
        }
        F::EmailId(id) => {
            let _ = write!(out, "EMAILID ({id})");
        }
        F::ThreadId(Some(id)) => {
            let _ = write!(out, "THREADID ({id})");
        }
        F::ThreadId(None) => out.extend_from_slice(b"THREADID NIL"),
        F::Envelope(env) => {
            out.extend_from_slice(b"ENVELOPE ");
            super::bodystructure::write_envelope(out, env);
        }
        F::BodyStructure { body, extended } => {
            out.extend_from_slice(if *extended {
                b"BODYSTRUCTURE "
            } else {
                b"BODY "
            });
            super::bodystructure::write_body(out, body, *extended);
        }
        F::BodySection { label, data } => labelled_literal(out, label, data),
        F::Binary { label, data } => {
            push_text(out, label);
            out.push(b' ');
            if data.contains(&0) {
                out.push(b'~');
            }
            literal(out, data);
        }
        F::BinarySize { label, size } => {
            push_text(out, label);
            let _ = write!(out, " {size}");
        }
        F::Rfc822(data) => labelled_literal(out, "RFC822", data),
        F::Rfc822Header(data) => labelled_literal(out, "RFC822.HEADER", data),
        F::Rfc822Text(data) => labelled_literal(out, "RFC822.TEXT", data),
        F::LiteralFollows { label, len } => {
            push_text(out, label);
            let _ = write!(out, " {{{len}}}\r\n");
        }
    }
}

fn labelled_literal(out: &mut Vec<u8>, label: &str, data: &[u8]) {
    push_text(out, label);
    out.push(b' ');
    literal(out, data);
}

fn flag_list(out: &mut Vec<u8>, flags: &[Flag]) {
    out.push(b'(');
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        push_text(out, &f.to_string());
    }
    out.push(b')');
}

/// The latest moment a four-digit year can show: 9999-12-31 23:59:59 UTC.
const MAX_DATE_SECS: i64 = 253_402_300_799;
/// RFC 9051 9 zone = ("+" / "-") 4DIGIT.
const MAX_ZONE_MINUTES: i32 = 99 * 60 + 59;

/// RFC 9051 9 date-time without its quotes: `25-Nov-2026 09:30:00 +0000`,
/// with a space-padded day (date-day-fixed). Moments outside years
/// 1970-9999 are clamped.
pub fn internal_date(secs: i64, offset_minutes: i32) -> String {
    let offset = offset_minutes.clamp(-MAX_ZONE_MINUTES, MAX_ZONE_MINUTES);
    let local = secs
        .saturating_add(i64::from(offset) * 60)
        .clamp(0, MAX_DATE_SECS);
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let tod = local.rem_euclid(86_400);
    let sign = if offset < 0 { '-' } else { '+' };
    let zone = offset.abs();
    format!(
        "{d:>2}-{}-{y:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        MONTHS[(m - 1) as usize],
        tod / 3600,
        tod / 60 % 60,
        tod % 60,
        zone / 60,
        zone % 60
    )
}

/// `* METADATA mailbox (entry value ...)` (RFC 5464 4.4.1); a value with
/// a NUL octet goes as literal8 (RFC 5464 5: `value = nstring /
/// literal8`), a missing one as NIL.
pub fn metadata(out: &mut Vec<u8>, mailbox: &str, entries: &[(String, Option<Vec<u8>>)]) {
    out.extend_from_slice(b"* METADATA ");
    astring(out, mailbox.as_bytes());
    out.extend_from_slice(b" (");
    for (i, (entry, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        astring(out, entry.as_bytes());
        out.push(b' ');
        match value {
            Some(v) if v.contains(&0) => {
                let _ = write!(out, "~{{{}}}\r\n", v.len());
                out.extend_from_slice(v);
            }
            v => nstring(out, v.as_deref()),
        }
    }
    out.extend_from_slice(b")\r\n");
}

// --- strings ---------------------------------------------------------------

/// RFC 9051 9 astring: an atom when every byte is an ASTRING-CHAR,
/// otherwise a quoted string or literal.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty()
        && s.iter()
            .all(|&b| super::types::is_atom_char(b) || b == b']')
    {
        out.extend_from_slice(s);
    } else {
        quoted_or_literal(out, s);
    }
}

/// RFC 9051 9 nstring: NIL or a string (never an atom, which could read as
/// NIL).
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => quoted_or_literal(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// RFC 9051 9 string: a quoted string when every byte is printable ASCII,
/// a literal when there is CR, LF, another control byte or 8-bit data.
pub fn quoted_or_literal(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        out.push(b'"');
        for &b in s {
            if matches!(b, b'"' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// RFC 9051 9 literal: `{n}` CRLF and the bytes.
pub fn literal(out: &mut Vec<u8>, data: &[u8]) {
    let _ = write!(out, "{{{}}}\r\n", data.len());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tagged_and_untagged_status() {
        assert_eq!(
            render(|o| tagged(o, "a1", Status::Ok, None, "NOOP completed")),
            "a1 OK NOOP completed\r\n"
        );
        assert_eq!(
            render(|o| tagged(
                o,
                "a2",
                Status::No,
                Some(Code::TryCreate),
                "no such mailbox"
            )),
            "a2 NO [TRYCREATE] no such mailbox\r\n"
        );
        assert_eq!(
            render(|o| tagged(o, "a3", Status::Bad, None, "")),
            "a3 BAD invalid command\r\n"
        );
        assert_eq!(
            render(|o| untagged_status(
                o,
                Status::Ok,
                Some(Code::UidValidity(UidValidity(3))),
                "UIDs valid"
            )),
            "* OK [UIDVALIDITY 3] UIDs valid\r\n"
        );
        assert_eq!(
            render(|o| untagged_status(o, Status::Bad, None, "line\r\ninjected")),
            "* BAD line  injected\r\n"
        );
        assert_eq!(render(|o| bye(o, None, "")), "* BYE logging out\r\n");
        assert_eq!(
            render(|o| preauth(o, None, "welcome")),
            "* PREAUTH welcome\r\n"
        );
        assert_eq!(render(|o| continuation(o, "")), "+ \r\n");
        assert_eq!(
            render(|o| continuation(o, "Ready for literal data")),
            "+ Ready for literal data\r\n"
        );
    }

    #[test]
    fn codes() {
        let cases: Vec<(Code, &str)> = vec![
            (Code::Alert, "ALERT"),
            (
                Code::Capability(vec!["IMAP4rev2".into(), "IDLE".into()]),
                "CAPABILITY IMAP4rev2 IDLE",
            ),
            (
                Code::PermanentFlags(vec!["\\Seen".into(), "\\*".into()]),
                "PERMANENTFLAGS (\\Seen \\*)",
            ),
            (Code::ReadOnly, "READ-ONLY"),
            (Code::ReadWrite, "READ-WRITE"),
            (Code::UidNext(Uid(42)), "UIDNEXT 42"),
            (Code::Unseen(7), "UNSEEN 7"),
            (
                Code::HighestModSeq(ModSeq(u64::MAX >> 1)),
                "HIGHESTMODSEQ 9223372036854775807",
            ),
            (
                Code::AppendUid {
                    validity: UidValidity(38505),
                    uids: "3955".into(),
                },
                "APPENDUID 38505 3955",
            ),
            (
                Code::CopyUid {
                    validity: UidValidity(38505),
                    from: "304,319:320".into(),
                    to: "3956:3958".into(),
                },
                "COPYUID 38505 304,319:320 3956:3958",
            ),
            (Code::AuthenticationFailed, "AUTHENTICATIONFAILED"),
            (Code::Other("X-ODD]\r\n".into()), "X-ODD"),
        ];
        for (code, text) in cases {
            assert_eq!(
                render(|o| tagged(o, "t", Status::Ok, Some(code), "x")),
                format!("t OK [{text}] x\r\n")
            );
        }
    }

    #[test]
    fn untagged_data() {
        assert_eq!(render(|o| exists(o, 23)), "* 23 EXISTS\r\n");
        assert_eq!(render(|o| recent(o, 0)), "* 0 RECENT\r\n");
        assert_eq!(render(|o| expunge(o, SeqNum(4))), "* 4 EXPUNGE\r\n");
        assert_eq!(
            render(|o| flags_line(o, &[Flag::Seen, Flag::Keyword("$Junk".into())])),
            "* FLAGS (\\Seen $Junk)\r\n"
        );
        assert_eq!(
            render(|o| capability(o, &["IMAP4rev2", "IMAP4rev1", "LITERAL+"])),
            "* CAPABILITY IMAP4rev2 IMAP4rev1 LITERAL+\r\n"
        );
        assert_eq!(render(|o| enabled(o, &[])), "* ENABLED\r\n");
        assert_eq!(
            render(|o| list(o, &["\\HasNoChildren"], Some('/'), "INBOX")),
            "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
        );
        assert_eq!(
            render(|o| list(o, &[], None, "a b\"c")),
            "* LIST () NIL \"a b\\\"c\"\r\n"
        );
        assert_eq!(
            render(|o| list(o, &[], Some('\\'), "Entwürfe")),
            "* LIST () \"\\\\\" {9}\r\nEntwürfe\r\n"
        );
        assert_eq!(
            render(|o| status(
                o,
                "Sent Items",
                &[
                    StatusValue::Messages(3),
                    StatusValue::UidNext(Uid(4)),
                    StatusValue::Size(100)
                ]
            )),
            "* STATUS \"Sent Items\" (MESSAGES 3 UIDNEXT 4 SIZE 100)\r\n"
        );
        assert_eq!(
            render(|o| namespace(o, Some(("", Some('/'))))),
            "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
        );
        assert_eq!(render(|o| search(o, &[], None)), "* SEARCH\r\n");
        assert_eq!(
            render(|o| search(o, &[2, 5], Some(ModSeq(9)))),
            "* SEARCH 2 5 (MODSEQ 9)\r\n"
        );
        assert_eq!(render(|o| id(o, None)), "* ID NIL\r\n");
        assert_eq!(
            render(|o| id(o, Some(&[("name", Some("roost")), ("os", None)]))),
            "* ID (\"name\" \"roost\" \"os\" NIL)\r\n"
        );
    }

    #[test]
    fn fetch_items() {
        let items = [
            FetchResponseItem::Uid(Uid(7)),
            FetchResponseItem::Flags(vec![Flag::Seen, Flag::Flagged]),
            FetchResponseItem::Rfc822Size(1234),
            FetchResponseItem::InternalDate {
                secs: 1_795_599_000,
                offset_minutes: 0,
            },
            FetchResponseItem::ModSeq(ModSeq(12)),
            FetchResponseItem::BodySection {
                label: "BODY[HEADER]<0>".into(),
                data: b"From: a\r\n\r\n".to_vec(),
            },
            FetchResponseItem::Rfc822Text(Vec::new()),
            FetchResponseItem::Envelope(Arc::new(Envelope::default())),
        ];
        assert_eq!(
            render(|o| fetch(o, SeqNum(12), &items)),
            "* 12 FETCH (UID 7 FLAGS (\\Seen \\Flagged) RFC822.SIZE 1234 \
             INTERNALDATE \"25-Nov-2026 09:30:00 +0000\" MODSEQ (12) \
             BODY[HEADER]<0> {11}\r\nFrom: a\r\n\r\n RFC822.TEXT {0}\r\n ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
        );
        let mut out = Vec::new();
        fetch(
            &mut out,
            SeqNum(1),
            &[
                FetchResponseItem::Binary {
                    label: "BINARY[1]".into(),
                    data: b"a\0b".to_vec(),
                },
                FetchResponseItem::BinarySize {
                    label: "BINARY.SIZE[1]".into(),
                    size: 3,
                },
            ],
        );
        assert_eq!(
            out,
            b"* 1 FETCH (BINARY[1] ~{3}\r\na\0b BINARY.SIZE[1] 3)\r\n"
        );
    }

    #[test]
    fn internal_dates() {
        assert_eq!(internal_date(0, 0), " 1-Jan-1970 00:00:00 +0000");
        assert_eq!(
            internal_date(1_795_599_000, 0),
            "25-Nov-2026 09:30:00 +0000"
        );
        assert_eq!(
            internal_date(1_795_599_000, 60),
            "25-Nov-2026 10:30:00 +0100"
        );
        assert_eq!(
            internal_date(1_795_599_000, -570),
            "25-Nov-2026 00:00:00 -0930"
        );
        // 2024-02-29 is a leap day.
        assert_eq!(
            internal_date(1_709_164_800, 0),
            "29-Feb-2024 00:00:00 +0000"
        );
        assert_eq!(internal_date(-5, 0), " 1-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(i64::MAX, 0), "31-Dec-9999 23:59:59 +0000");
        assert_eq!(internal_date(0, i32::MAX), " 5-Jan-1970 03:59:00 +9959");
    }

    #[test]
    fn string_forms() {
        let s = |b: &[u8]| render(|o| astring(o, b));
        assert_eq!(s(b"INBOX"), "INBOX");
        assert_eq!(s(b"a]b"), "a]b");
        assert_eq!(s(b""), "\"\"");
        assert_eq!(s(b"a b"), "\"a b\"");
        assert_eq!(s(b"50%"), "\"50%\"");
        assert_eq!(s(b"q\"\\"), "\"q\\\"\\\\\"");
        assert_eq!(s(b"a\r\nb"), "{4}\r\na\r\nb");
        assert_eq!(s(b"tab\there"), "{8}\r\ntab\there");
        assert_eq!(s("é".as_bytes()), "{2}\r\né");
        assert_eq!(render(|o| nstring(o, Some(b"NIL"))), "\"NIL\"");
        assert_eq!(render(|o| nstring(o, None)), "NIL");
    }
}
