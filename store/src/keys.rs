//! The index's key layout. Every key is one record-type byte followed by
//! big-endian ids, so that a prefix scan of `type ‖ account` lists one
//! account's records of that type and a scan of `type ‖ account ‖ mailbox`
//! lists one mailbox's records in UID order. Nothing here touches sled.

use roost_protocols::imap::types::{ModSeq, Uid};

use crate::records::{AccountId, FileId, MailboxId};

/// Store-wide counters, followed by the counter's name.
pub(crate) const META: u8 = 0x01;
/// Domains, followed by the lower-case name.
pub(crate) const DOMAIN: u8 = 0x02;
/// Account records, followed by the account id.
pub(crate) const ACCOUNT: u8 = 0x03;
/// Address -> account id, followed by the normalized address (or
/// `@domain` for a domain's catchall destination).
pub(crate) const ADDRESS: u8 = 0x04;
/// Aliases and lists, followed by the normalized address.
pub(crate) const ALIAS: u8 = 0x05;
/// Mailboxes: account, mailbox.
pub(crate) const MAILBOX: u8 = 0x10;
/// Messages: account, mailbox, uid.
pub(crate) const MESSAGE: u8 = 0x11;
/// Tombstones: account, mailbox, uid.
pub(crate) const TOMBSTONE: u8 = 0x12;
/// File -> message: account, file.
pub(crate) const FILE: u8 = 0x13;
/// Message-id -> thread: account, message-id bytes.
pub(crate) const THREAD_MESSAGE_ID: u8 = 0x14;
/// Base subject -> thread: account, subject bytes.
pub(crate) const THREAD_SUBJECT: u8 = 0x15;
/// The thread-index keys a message file wrote, so they can be counted
/// down when it goes: account, file.
pub(crate) const FILE_THREAD: u8 = 0x1b;

/// METADATA entries (RFC 5464): account, mailbox (0 for the server's
/// entries), entry name; the value is the raw value.
pub(crate) const METADATA: u8 = 0x1a;

/// An account's delivery rules: account; the value is the whole list.
pub(crate) const RULES: u8 = 0x07;
/// An account's intro mailbox, for first-time senders: account; the value
/// is the mailbox name.
pub(crate) const INTRO: u8 = 0x08;
/// An account's known correspondents: account, canonical address; no
/// value.
pub(crate) const KNOWN: u8 = 0x09;

/// A domain's DKIM keys: the lower-case domain; the value is the list.
pub(crate) const DKIM: u8 = 0x0a;

/// An account's suppression list: account, canonical address; the value
/// is the suppression record.
pub(crate) const SUPPRESSED: u8 = 0x0b;

/// Every record type that belongs to one account, after its account record.
pub(crate) const PER_ACCOUNT: [u8; 16] = [
    RULES,
    WEBHOOK_CONFIG,
    INTRO,
    KNOWN,
    SUPPRESSED,
    METADATA,
    MAILBOX,
    MESSAGE,
    MESSAGE_STATE,
    TOMBSTONE,
    FILE,
    THREAD_MESSAGE_ID,
    THREAD_SUBJECT,
    FILE_THREAD,
    VANISHED,
    VANISHED_FLOOR,
];

/// Tombstones by modseq: account, mailbox, modseq, uid; no value. What
/// QRESYNC asks ("expunged since modseq m") is a range scan of this.
pub(crate) const VANISHED: u8 = 0x17;
/// The highest modseq of tombstones pruned from a mailbox: account,
/// mailbox. Below it the index no longer knows every expunge.
pub(crate) const VANISHED_FLOOR: u8 = 0x18;
/// The compact state of each message (modseq and flags): account,
/// mailbox, uid. What opening a mailbox reads, instead of whole records.
pub(crate) const MESSAGE_STATE: u8 = 0x19;
/// Message summaries (ENVELOPE, BODYSTRUCTURE), followed by the file id:
/// file ids are unique in the data directory, and a file never changes.
pub(crate) const SUMMARY: u8 = 0x16;

/// TLS client keys -> account id, followed by the key's SHA-256.
pub(crate) const TLS_KEY: u8 = 0x06;

/// Login attempts: unix microseconds, then a sequence number, both
/// big-endian, so a scan runs oldest first.
pub(crate) const LOGIN_ATTEMPT: u8 = 0x20;

/// DMARC evaluations of incoming mail, for aggregate reports (RFC 7489
/// 7.2): unix microseconds, then a sequence number, oldest first.
pub(crate) const DMARC_EVALUATION: u8 = 0x21;

/// Queued messages, followed by the queue id.
pub(crate) const QUEUE: u8 = 0x22;
/// The queue's due index: next attempt (unix seconds, as an offset
/// binary i64), then the queue id; no value.
pub(crate) const QUEUE_DUE: u8 = 0x23;

/// Hold rules of the queue, followed by the rule's id.
pub(crate) const HOLD_RULE: u8 = 0x24;
/// Messages that left the queue: when (unix seconds, offset binary),
/// then the queue id, so a scan runs oldest first.
pub(crate) const RETIRED: u8 = 0x25;

/// Outcomes of outgoing TLS sessions, for TLS reports (RFC 8460):
/// unix microseconds, then a sequence number, oldest first.
pub(crate) const TLS_RESULT: u8 = 0x2a;

/// MTA-STS policies of destination domains (RFC 8461 5), by domain.
pub(crate) const MTA_STS: u8 = 0x2b;

/// Webhook calls waiting to be made, followed by the call's id.
pub(crate) const WEBHOOK: u8 = 0x26;
/// Their due index: next attempt (offset binary), then the id; no value.
pub(crate) const WEBHOOK_DUE: u8 = 0x27;
/// Webhook calls made or given up: when, then the id, oldest first.
pub(crate) const WEBHOOK_DONE: u8 = 0x28;
/// An account's webhook: account; the value is its configuration.
pub(crate) const WEBHOOK_CONFIG: u8 = 0x29;

/// A retired message's time by its id: id; the value is the time.
pub(crate) const RETIRED_ID: u8 = 0x2c;
/// Reports that came in: when, then the id, oldest first.
pub(crate) const INBOUND_REPORT: u8 = 0x2d;

/// Where a message file's bytes live in a segment: file id -> `Slice`.
pub(crate) const CONTENT: u8 = 0x2e;
/// The slices of segment files still in use: segment id, offset ->
/// (length, how many file ids share it).
pub(crate) const SLICE: u8 = 0x2f;

/// The counter of account ids.
pub(crate) const NEXT_ACCOUNT_ID: &[u8] = b"next_account_id";
/// The key of the MACs in per-message envelope senders.
pub(crate) const BOUNCE_KEY: &[u8] = b"bounce_key";

fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.push(kind);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

pub(crate) fn meta(name: &[u8]) -> Vec<u8> {
    key(META, &[name])
}

pub(crate) fn tls_key(fingerprint: &[u8; 32]) -> Vec<u8> {
    key(TLS_KEY, &[fingerprint])
}

pub(crate) fn login_attempt(micros: u64, seq: u32) -> Vec<u8> {
    key(LOGIN_ATTEMPT, &[&micros.to_be_bytes(), &seq.to_be_bytes()])
}

/// A record kept for reports (DMARC evaluations, TLS results): kind,
/// unix microseconds, a sequence number, so a scan runs oldest first.
pub(crate) fn report_data(kind: u8, micros: u64, seq: u32) -> Vec<u8> {
    key(kind, &[&micros.to_be_bytes(), &seq.to_be_bytes()])
}

pub(crate) fn queue(id: crate::QueueId) -> Vec<u8> {
    key(QUEUE, &[&id.0.to_be_bytes()])
}

/// `kind`, then seconds (offset binary: signed seconds sort as unsigned
/// once the sign bit is flipped), then an id: the shape of every
/// time-ordered index.
pub(crate) fn timed(kind: u8, at: i64, id: u64) -> Vec<u8> {
    let t = (at as u64) ^ (1 << 63);
    key(kind, &[&t.to_be_bytes(), &id.to_be_bytes()])
}

/// The id of a [`timed`] key.
pub(crate) fn timed_id(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.get(9..17)?.try_into().ok()?))
}

pub(crate) fn queue_due(at: i64, id: crate::QueueId) -> Vec<u8> {
    timed(QUEUE_DUE, at, id.0)
}

pub(crate) fn mta_sts(domain: &str) -> Vec<u8> {
    key(MTA_STS, &[domain.as_bytes()])
}

pub(crate) fn webhook(id: u64) -> Vec<u8> {
    key(WEBHOOK, &[&id.to_be_bytes()])
}

pub(crate) fn webhook_config(a: AccountId) -> Vec<u8> {
    account_prefix(WEBHOOK_CONFIG, a)
}

pub(crate) fn hold_rule(id: u64) -> Vec<u8> {
    key(HOLD_RULE, &[&id.to_be_bytes()])
}

pub(crate) fn retired(at: i64, id: crate::QueueId) -> Vec<u8> {
    timed(RETIRED, at, id.0)
}

pub(crate) fn retired_id(id: crate::QueueId) -> Vec<u8> {
    key(RETIRED_ID, &[&id.0.to_be_bytes()])
}

/// The queue id of a due-index key.
pub(crate) fn queue_due_id(k: &[u8]) -> Option<crate::QueueId> {
    timed_id(k).map(crate::QueueId)
}

pub(crate) fn domain(name: &str) -> Vec<u8> {
    key(DOMAIN, &[name.as_bytes()])
}

pub(crate) fn account(a: AccountId) -> Vec<u8> {
    key(ACCOUNT, &[&a.0.to_be_bytes()])
}

pub(crate) fn address(normalized: &str) -> Vec<u8> {
    key(ADDRESS, &[normalized.as_bytes()])
}

pub(crate) fn alias(normalized: &str) -> Vec<u8> {
    key(ALIAS, &[normalized.as_bytes()])
}

/// `kind ‖ account`: the prefix of all of one account's records of a kind.
pub(crate) fn rules(a: AccountId) -> Vec<u8> {
    key(RULES, &[&a.0.to_be_bytes()])
}

pub(crate) fn dkim(domain: &str) -> Vec<u8> {
    key(DKIM, &[domain.as_bytes()])
}

pub(crate) fn intro(a: AccountId) -> Vec<u8> {
    key(INTRO, &[&a.0.to_be_bytes()])
}

pub(crate) fn known(a: AccountId, address: &str) -> Vec<u8> {
    key(KNOWN, &[&a.0.to_be_bytes(), address.as_bytes()])
}

pub(crate) fn suppressed(a: AccountId, address: &str) -> Vec<u8> {
    key(SUPPRESSED, &[&a.0.to_be_bytes(), address.as_bytes()])
}

pub(crate) fn account_prefix(kind: u8, a: AccountId) -> Vec<u8> {
    key(kind, &[&a.0.to_be_bytes()])
}

pub(crate) fn mailbox(a: AccountId, m: MailboxId) -> Vec<u8> {
    key(MAILBOX, &[&a.0.to_be_bytes(), &m.0.to_be_bytes()])
}

/// `kind ‖ account ‖ mailbox`: the prefix of one mailbox's messages or tombstones.
pub(crate) fn mailbox_prefix(kind: u8, a: AccountId, m: MailboxId) -> Vec<u8> {
    key(kind, &[&a.0.to_be_bytes(), &m.0.to_be_bytes()])
}

pub(crate) fn message(a: AccountId, m: MailboxId, u: Uid) -> Vec<u8> {
    key(
        MESSAGE,
        &[&a.0.to_be_bytes(), &m.0.to_be_bytes(), &u.0.to_be_bytes()],
    )
}

pub(crate) fn message_state(a: AccountId, m: MailboxId, u: Uid) -> Vec<u8> {
    key(
        MESSAGE_STATE,
        &[&a.0.to_be_bytes(), &m.0.to_be_bytes(), &u.0.to_be_bytes()],
    )
}

/// Reads the uid back out of a [`message_state`] key.
pub(crate) fn message_state_uid(key: &[u8]) -> Option<Uid> {
    let uid: [u8; 4] = key.get(9..13)?.try_into().ok()?;
    Some(Uid(u32::from_be_bytes(uid)))
}

pub(crate) fn tombstone(a: AccountId, m: MailboxId, u: Uid) -> Vec<u8> {
    key(
        TOMBSTONE,
        &[&a.0.to_be_bytes(), &m.0.to_be_bytes(), &u.0.to_be_bytes()],
    )
}

pub(crate) fn file(a: AccountId, f: FileId) -> Vec<u8> {
    key(FILE, &[&a.0.to_be_bytes(), &f.0.to_be_bytes()])
}

pub(crate) fn file_thread(a: AccountId, f: FileId) -> Vec<u8> {
    key(FILE_THREAD, &[&a.0.to_be_bytes(), &f.0.to_be_bytes()])
}

pub(crate) fn thread_by_message_id(a: AccountId, message_id: &str) -> Vec<u8> {
    key(
        THREAD_MESSAGE_ID,
        &[&a.0.to_be_bytes(), message_id.as_bytes()],
    )
}

pub(crate) fn thread_by_subject(a: AccountId, base_subject: &str) -> Vec<u8> {
    key(
        THREAD_SUBJECT,
        &[&a.0.to_be_bytes(), base_subject.as_bytes()],
    )
}

pub(crate) fn vanished(a: AccountId, m: MailboxId, modseq: ModSeq, u: Uid) -> Vec<u8> {
    key(
        VANISHED,
        &[
            &a.0.to_be_bytes(),
            &m.0.to_be_bytes(),
            &modseq.0.to_be_bytes(),
            &u.0.to_be_bytes(),
        ],
    )
}

/// Reads modseq and uid back out of a [`vanished`] key.
pub(crate) fn vanished_parts(key: &[u8]) -> Option<(ModSeq, Uid)> {
    let modseq: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    let uid: [u8; 4] = key.get(17..21)?.try_into().ok()?;
    Some((
        ModSeq(u64::from_be_bytes(modseq)),
        Uid(u32::from_be_bytes(uid)),
    ))
}

pub(crate) fn metadata(a: AccountId, m: MailboxId, entry: &str) -> Vec<u8> {
    key(
        METADATA,
        &[&a.0.to_be_bytes(), &m.0.to_be_bytes(), entry.as_bytes()],
    )
}

pub(crate) fn vanished_floor(a: AccountId, m: MailboxId) -> Vec<u8> {
    key(VANISHED_FLOOR, &[&a.0.to_be_bytes(), &m.0.to_be_bytes()])
}

pub(crate) fn content(f: FileId) -> Vec<u8> {
    key(CONTENT, &[&f.0.to_be_bytes()])
}

pub(crate) fn slice(segment: u64, offset: u64) -> Vec<u8> {
    key(SLICE, &[&segment.to_be_bytes(), &offset.to_be_bytes()])
}

pub(crate) fn segment_prefix(segment: u64) -> Vec<u8> {
    key(SLICE, &[&segment.to_be_bytes()])
}

/// Reads segment id and offset back out of a [`slice`] key.
pub(crate) fn slice_of(key: &[u8]) -> Option<(u64, u64)> {
    let seg: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    let off: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    Some((u64::from_be_bytes(seg), u64::from_be_bytes(off)))
}

pub(crate) fn summary(f: FileId) -> Vec<u8> {
    key(SUMMARY, &[&f.0.to_be_bytes()])
}

/// Reads the file id back out of a [`file`] key.
pub(crate) fn file_id_of(key: &[u8]) -> Option<FileId> {
    let tail: [u8; 8] = key.get(5..13)?.try_into().ok()?;
    Some(FileId(u64::from_be_bytes(tail)))
}

/// The form addresses are indexed under: RFC 5321 2.4 makes the domain
/// case-insensitive; the local part is kept as given. `None` without an `@`
/// or with an empty side.
/// The form addresses are kept and shown in: the local part in NFC with
/// its case, the domain in lower case.
pub(crate) fn display_address(addr: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let addr = addr.trim();
    let (local, domain) = addr.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    let local: String = local.nfc().collect();
    Some(format!("{local}@{}", domain.to_lowercase()))
}

/// The form addresses are indexed and compared under: the display form
/// with the local part in lower case too. (A domain whose local parts
/// match with their case checks the display form after the lookup.)
pub(crate) fn normalize_address(addr: &str) -> Option<String> {
    let shown = display_address(addr)?;
    let (local, domain) = shown.rsplit_once('@')?;
    Some(format!("{}@{domain}", local.to_lowercase()))
}

/// The index form of an account's address: [`normalize_address`], or
/// `@domain` (lower case) for a domain's catchall destination.
pub(crate) fn index_form(addr: &str) -> Option<String> {
    match addr.trim().strip_prefix('@') {
        Some(d) if !d.is_empty() && !d.contains('@') => Some(format!("@{}", d.to_lowercase())),
        Some(_) => None,
        None => normalize_address(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_sort_by_uid_within_a_mailbox() {
        let a = AccountId(1);
        let m = MailboxId(2);
        let k9 = message(a, m, Uid(9));
        let k10 = message(a, m, Uid(10));
        let k256 = message(a, m, Uid(256));
        assert!(k9 < k10 && k10 < k256);
        assert!(k9.starts_with(&mailbox_prefix(MESSAGE, a, m)));
        assert!(!message(a, MailboxId(3), Uid(1)).starts_with(&mailbox_prefix(MESSAGE, a, m)));
    }

    #[test]
    fn file_id_round_trips() {
        let k = file(AccountId(7), FileId(0x0102_0304_0506_0708));
        assert_eq!(file_id_of(&k), Some(FileId(0x0102_0304_0506_0708)));
        assert_eq!(file_id_of(&k[..12]), None);
    }

    #[test]
    fn addresses_fold_case_and_compose() {
        assert_eq!(
            normalize_address(" Roost@LocalHost ").as_deref(),
            Some("roost@localhost")
        );
        assert_eq!(
            display_address(" Roost@LocalHost ").as_deref(),
            Some("Roost@localhost")
        );
        assert_eq!(index_form("@LocalHost").as_deref(), Some("@localhost"));
        assert_eq!(index_form("@"), None);
        // NFD "é" composes to NFC before folding.
        assert_eq!(
            normalize_address("Jose\u{301}@Example.ORG").as_deref(),
            Some("jos\u{e9}@example.org")
        );
        assert_eq!(normalize_address("nobody"), None);
        assert_eq!(normalize_address("@x"), None);
        assert_eq!(normalize_address("x@"), None);
    }
}
