//! The records the store keeps, as the account actor sees them. These are
//! plain data: the account actor computes every value (UIDs, modseqs,
//! counts, threads) and the store only makes them durable. Encoding is
//! rmp-serde with field names, so a field added later with `#[serde(default)]`
//! still reads old records.

use roost_protocols::imap::types::{Flags, ModSeq, Uid, UidValidity};
use roost_protocols::message::summary::Summary;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::secrets::PasswordSecrets;

macro_rules! id_newtype {
    ($(#[$doc:meta] $name:ident($inner:ty);)*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_newtype! {
    /// An account's number, allocated once from a durable counter.
    AccountId(u32);
    /// A mailbox's number within its account, never reused.
    MailboxId(u32);
    /// A message file's number, unique in the data directory across restarts.
    FileId(u64);
    /// A conversation's number within its account.
    ThreadId(u64);
}

impl MailboxId {
    /// Where the server's own METADATA entries are kept: no mailbox has
    /// this number (they count from 1).
    pub const SERVER: MailboxId = MailboxId(0);
}

/// One account: its addresses, secrets, quota and the counters the account
/// actor allocates from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: AccountId,
    /// The primary address, which is also the login name (`roost@localhost`).
    pub name: String,
    /// Further addresses delivering to this account.
    pub addresses: Vec<String>,
    pub password: PasswordSecrets,
    /// RFC 9208: the storage limit in bytes, if any.
    pub quota_bytes: Option<u64>,
    /// RFC 9208 5.2: the limit on the number of messages, if any.
    #[serde(default)]
    pub quota_messages: Option<u64>,
    /// The UIDVALIDITY the next created mailbox receives.
    pub next_uid_validity: u32,
    /// RFC 7162 3.1: the last modseq handed out in this account.
    pub last_modseq: ModSeq,
    /// The id the next created mailbox receives.
    pub next_mailbox_id: u32,
    /// When set, logins are refused with this message.
    pub disabled: Option<String>,
    /// TLS client-certificate public keys that log in to this account,
    /// one per device.
    pub tls_public_keys: Vec<TlsPublicKey>,
    /// Unix seconds.
    pub created: i64,
    /// Each queued message goes out with its own envelope sender
    /// (`user+dsn.<id>.<mac>@domain`), so DSNs that come back are matched
    /// to it.
    #[serde(default)]
    pub unique_mail_from: bool,
}

/// RFC 6154 special-use attributes roost creates mailboxes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    Archive,
    Drafts,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    /// The special use an attribute names (case-insensitive), if roost
    /// knows it.
    pub fn from_attribute(attr: &str) -> Option<SpecialUse> {
        [
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
        ]
        .into_iter()
        .find(|su| su.attribute().eq_ignore_ascii_case(attr))
    }

    /// The attribute as IMAP writes it (RFC 6154 2).
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }
}

/// The counts STATUS reports, kept current by the account actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxCounts {
    pub total: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Messages with `\Deleted`.
    pub deleted: u32,
    /// Sum of the messages' sizes in bytes.
    pub size: u64,
}

/// One mailbox of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailboxRecord {
    pub account: AccountId,
    pub id: MailboxId,
    /// The full hierarchical name, `/`-separated.
    pub name: String,
    pub uid_validity: UidValidity,
    pub uid_next: Uid,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    pub highest_modseq: ModSeq,
    pub counts: MailboxCounts,
    /// Tombstones kept for the mailbox (RFC 7162 QRESYNC), so the account
    /// knows when to prune.
    #[serde(default)]
    pub tombstones: u32,
}

/// One message in one mailbox. The bytes live in an immutable file; what
/// changes (flags, modseq, thread state) lives here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uid: Uid,
    pub file: FileId,
    pub modseq: ModSeq,
    pub createseq: ModSeq,
    pub flags: Flags,
    /// `header_prefix.len()` plus the file's size: the RFC822.SIZE.
    pub size: u64,
    /// Unix seconds.
    pub internal_date: i64,
    /// RFC 8514: unix seconds.
    pub save_date: i64,
    /// Header lines roost adds at delivery (`Received:`), kept out of the
    /// immutable file so copies can share it.
    pub header_prefix: Vec<u8>,
    pub message_id: Option<String>,
    pub thread_id: ThreadId,
    /// The files of this message's ancestors, nearest first.
    pub thread_parents: Vec<FileId>,
    /// A parent was referenced but not found, or found only by subject.
    pub missing_link: bool,
    pub muted: bool,
    pub collapsed: bool,
    /// The message's extra data: what submission took from its
    /// `X-Roost-Extra-<key>` fields (key in lower case, value), for
    /// webhooks and the web API.
    #[serde(default)]
    pub extra: Vec<(String, String)>,
}

/// A message's modseq and flags in the compact form the store keeps
/// beside its record: modseq (8 bytes, big-endian), a byte of system
/// flags, then keywords separated by spaces.
pub(crate) fn encode_state(modseq: ModSeq, flags: &Flags) -> Vec<u8> {
    use roost_protocols::imap::types::Flag;
    let mut out = modseq.0.to_be_bytes().to_vec();
    let mut system = 0u8;
    let mut keywords: Vec<&str> = Vec::new();
    for f in flags.iter() {
        match f {
            Flag::Seen => system |= 1,
            Flag::Answered => system |= 2,
            Flag::Flagged => system |= 4,
            Flag::Deleted => system |= 8,
            Flag::Draft => system |= 16,
            Flag::Keyword(k) => keywords.push(k),
        }
    }
    out.push(system);
    out.extend_from_slice(keywords.join(" ").as_bytes());
    out
}

pub(crate) fn decode_state(v: &[u8]) -> Option<(ModSeq, Flags)> {
    use roost_protocols::imap::types::Flag;
    let modseq = ModSeq(u64::from_be_bytes(v.get(..8)?.try_into().ok()?));
    let system = *v.get(8)?;
    let mut flags = Flags::new();
    for (bit, f) in [
        (1, Flag::Seen),
        (2, Flag::Answered),
        (4, Flag::Flagged),
        (8, Flag::Deleted),
        (16, Flag::Draft),
    ] {
        if system & bit != 0 {
            flags.insert(f);
        }
    }
    for k in std::str::from_utf8(&v[9..]).ok()?.split(' ') {
        if !k.is_empty() {
            flags.insert(Flag::Keyword(k.to_string()));
        }
    }
    Some((modseq, flags))
}

/// RFC 7162 3.2.10: an expunged UID, remembered for QRESYNC VANISHED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uid: Uid,
    pub modseq: ModSeq,
}

/// Where a message-id or a base subject leads, for threading new mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRef {
    pub thread: ThreadId,
    pub file: FileId,
    pub muted: bool,
    pub collapsed: bool,
}

/// A domain roost accepts mail for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// Lower case.
    pub name: String,
    /// Unix seconds.
    pub created: i64,
    /// Mail to or from the domain is refused for now (4xx); its accounts
    /// still log in.
    #[serde(default)]
    pub disabled: bool,
    /// Characters that start a tag in a local part: with `+`, mail for
    /// `user+anything@domain` goes to `user@domain` when no address
    /// matches whole. Empty: no tags.
    #[serde(default)]
    pub catchall_separator: String,
    /// Local parts match with their case; by default they match without.
    #[serde(default)]
    pub localpart_case_sensitive: bool,
    /// Report-only: roost takes this domain's DMARC and TLS reports (at
    /// the addresses its accounts and aliases have there) but does not
    /// host its mail: anything else for it is someone else's to deliver,
    /// so submission relays it instead of refusing it.
    #[serde(default)]
    pub report_only: bool,
}

/// A DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DkimAlgorithm {
    /// ed25519-sha256 (RFC 8463).
    Ed25519,
    /// rsa-sha256 (RFC 6376 3.3.1).
    Rsa,
}

/// A domain's DKIM signing key under one selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimKey {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// The private key, PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// Unix seconds.
    pub created: i64,
}

/// A delivery rule: mail that meets every condition given goes to
/// `mailbox` (INBOX when there is no such mailbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRule {
    /// A header field's name, and text its value contains (both compared
    /// without case).
    pub header: Option<(String, String)>,
    /// The envelope sender: a whole address, or `@domain` for any there.
    pub sender: Option<String>,
    pub mailbox: String,
}

impl DeliveryRule {
    /// Whether a message with this header section and envelope sender
    /// (canonical, `None` for `<>`) meets the rule.
    pub fn matches(&self, header: &[(String, String)], sender: Option<&str>) -> bool {
        let header_ok = self.header.as_ref().is_none_or(|(name, text)| {
            let text = text.to_lowercase();
            header
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.to_lowercase().contains(&text))
        });
        let sender_ok = self.sender.as_ref().is_none_or(|want| match sender {
            None => false,
            Some(s) if want.starts_with('@') => s
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&want[1..])),
            Some(s) => s == want,
        });
        header_ok && sender_ok
    }
}

/// An alias or mailing list: mail for `address` goes to every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// Normalized, in a local domain.
    pub address: String,
    /// Local account addresses, normalized; no aliases (no nesting).
    pub members: Vec<String>,
    /// Anyone may send to it; otherwise only its members may.
    pub post_public: bool,
    /// Members may submit messages with the alias as their From address.
    #[serde(default)]
    pub allow_msg_from: bool,
    /// Unix seconds.
    pub created: i64,
}

/// A device's TLS client-certificate key, registered to an account. Only
/// the public key identifies the account: no CA, no expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPublicKey {
    /// The administrator's name for the device, unique in the account.
    pub name: String,
    /// SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// IMAP sessions with this key start logged in (`* PREAUTH`).
    pub preauth: bool,
    /// Unix seconds.
    pub added: i64,
}

impl TlsPublicKey {
    /// Registered keys per account, at most.
    pub const MAX_PER_ACCOUNT: usize = 100;
    /// Longest device name, in bytes.
    pub const MAX_NAME: usize = 64;

    /// SHA-256 of the SubjectPublicKeyInfo, the key's index and the
    /// fingerprint administrators see.
    pub fn fingerprint(spki: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(spki).into()
    }
}

/// One authentication attempt, as `roost admin loginattempts` lists it.
/// Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginAttempt {
    /// Unix microseconds.
    pub time_us: u64,
    /// The client's address and port.
    pub remote: String,
    /// `imap`, `imaps`, `submission`, `submissions`.
    pub protocol: String,
    /// `LOGIN` (IMAP's command) or the SASL mechanism.
    pub mechanism: String,
    /// The name as the client gave it, shortened to
    /// [`LoginAttempt::MAX_USERNAME`] characters.
    pub username: String,
    /// The account it named, when there is one.
    pub account: Option<String>,
    /// `ok`, `invalid`, `disabled`, `throttled`, `nosecret`, `aborted`
    /// or `temporary`.
    pub result: String,
}

impl LoginAttempt {
    /// Characters of a username kept in a record.
    pub const MAX_USERNAME: usize = 256;
}

/// An address an account's mail no longer goes to: it failed for good
/// (or the admin put it there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub address: String,
    /// Unix seconds.
    pub since: i64,
    /// The failure that put it there, or "added by the admin".
    pub reason: String,
}

impl Suppression {
    /// Addresses one account's suppression list holds at most.
    pub const MAX_PER_ACCOUNT: usize = 10_000;
}

/// One DMARC evaluation of an incoming message (RFC 7489 7.2.1.1's row):
/// what the aggregate report for the policy domain will say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcEvaluation {
    /// Unix microseconds.
    pub time_us: u64,
    pub source_ip: String,
    /// The From domain.
    pub header_from: String,
    /// Where the record was found, and what it said.
    pub policy_domain: String,
    pub published: String,
    /// Report addresses (`rua`).
    pub rua: Vec<String>,
    /// pass or fail.
    pub result: String,
    /// none, quarantine or reject: what was done.
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    /// (domain, selector, result) of each DKIM signature.
    pub dkim: Vec<(String, String, String)>,
    /// The SPF-checked domain (MAIL FROM, or HELO) and its result.
    pub spf_domain: String,
    pub spf_result: String,
}

impl DmarcEvaluation {
    /// How many evaluations are kept; past that the oldest go (the
    /// reports of the queue issue take them sooner).
    pub const MAX_KEPT: usize = 100_000;
}

/// The outcome of one outgoing SMTP session's TLS, for TLS reports
/// (RFC 8460).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsResult {
    /// Unix microseconds.
    pub time_us: u64,
    /// The recipient domain (the policy domain).
    pub domain: String,
    /// RFC 8460 4.3: `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: String,
    /// The policy's lines (RFC 8460 `policy-string`), for `sts`.
    #[serde(default)]
    pub policy_string: Vec<String>,
    pub mx_host: String,
    pub receiving_ip: String,
    pub sending_ip: String,
    /// `None` for a session with TLS; else the RFC 8460 4.3 result type
    /// (`starttls-not-supported`, `validation-failure`, ...).
    pub failure: Option<String>,
}

impl TlsResult {
    /// How many are kept; past that the oldest go.
    pub const MAX_KEPT: usize = 100_000;
}

/// A destination domain's MTA-STS policy as fetched (RFC 8461 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPolicy {
    /// The `id` of the `_mta-sts` record it was fetched for.
    pub id: String,
    pub policy: roost_protocols::smtp::mta_sts::Policy,
    /// Unix seconds: fetched, and usable until.
    pub fetched: i64,
    pub expires: i64,
}

/// Which records kept for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportData {
    /// DMARC evaluations of incoming mail.
    Dmarc,
    /// TLS outcomes of outgoing sessions.
    Tls,
}

impl ReportData {
    pub(crate) fn key(self) -> u8 {
        match self {
            ReportData::Dmarc => crate::keys::DMARC_EVALUATION,
            ReportData::Tls => crate::keys::TLS_RESULT,
        }
    }

    pub(crate) fn max_kept(self) -> usize {
        match self {
            ReportData::Dmarc => DmarcEvaluation::MAX_KEPT,
            ReportData::Tls => TlsResult::MAX_KEPT,
        }
    }

    /// The meta key of the time up to which this kind was reported.
    pub(crate) fn reported_until(self) -> &'static [u8] {
        match self {
            ReportData::Dmarc => b"dmarc_reported_until",
            ReportData::Tls => b"tls_reported_until",
        }
    }
}

/// A record to write in a [`Commit`](crate::Commit).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Boxed: an account record is several times the size of the others.
    Account(Box<AccountRecord>),
    Mailbox(MailboxRecord),
    Message(MessageRecord),
    Tombstone(Tombstone),
    ThreadByMessageId {
        account: AccountId,
        message_id: String,
        r: ThreadRef,
    },
    ThreadBySubject {
        account: AccountId,
        base_subject: String,
        r: ThreadRef,
    },
    /// The parsed summary of the message in `file`; removed with the
    /// file's last message record, copied when the file is linked.
    Summary {
        file: FileId,
        summary: std::sync::Arc<Summary>,
    },
    /// A METADATA entry (RFC 5464) of a mailbox, or of the server when
    /// `mailbox` is [`MailboxId::SERVER`].
    Metadata {
        account: AccountId,
        mailbox: MailboxId,
        entry: String,
        value: Vec<u8>,
    },
}

/// A record to delete in a [`Commit`](crate::Commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Mailbox(AccountId, MailboxId),
    Message(AccountId, MailboxId, Uid),
    Tombstone(AccountId, MailboxId, Uid),
    // Thread-index entries have no key here: they go with the last
    // message file that carries them (`threads.rs`).
    Metadata(AccountId, MailboxId, String),
}

/// The value of the file index: which message a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRef {
    pub mailbox: MailboxId,
    pub uid: Uid,
}

/// The current time in unix seconds; 0 if the clock is before 1970.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
