//! roost's persistence: a sled index of rmp-serde records plus immutable
//! message contents in append-only segment files.
//!
//! The store computes nothing. Each account's single writer, its account
//! actor, decides every UID, modseq, count and thread and hands the store a
//! [`Commit`] to make durable; reads may come from anywhere at once. There
//! are no actors and no network here.
//!
//! On disk, under the data directory:
//!
//! - `index/`: the sled database, one tree. Keys are a record-type byte and
//!   big-endian ids (see `keys.rs`), values are rmp-serde with field names.
//! - `seg/<segment id>`: mailbox message contents, appended to the active
//!   segment by each commit (see `segments.rs`); the index names each
//!   message's slice.
//! - `msg/<shard>/<file id>`: one immutable file per queued message, and
//!   mailbox messages stored before segments; the shard is
//!   `file_id / 1024` in hex.
//! - `tmp/`: staged messages too large to stage in memory; emptied on open.
//!
//! The durability rule of [`Store::commit`]: the commit's messages are
//! appended to a segment and it is fsynced once (a new segment's directory
//! too), then every record and slice written in one atomic sled batch and
//! the index flushed, and only then are the bytes of removed messages
//! reclaimed. A kill at any moment leaves either the old state or the new
//! one, never a record without its bytes; bytes a killed commit appended
//! are never indexed and are reclaimed later.
#![forbid(unsafe_code)]

mod bounce;
mod consistency;
mod error;
mod files;
mod inbound;
mod keys;
mod queue;
mod records;
mod secrets;
mod segments;
mod threads;
mod webhooks;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use roost_protocols::imap::types::{Flag, Flags, ModSeq, Uid, UidValidity};
use roost_protocols::message::summary::Summary;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use bounce::{may_be_bounce_address, MAC_HEX, MAX_LOCAL_PART};
pub use consistency::{Place, Problem};
pub use error::{Result, StoreError};
pub use files::{
    MessageReader, StagedFile, StagedSource, StagedWriter, FILES_PER_SHARD, MAX_STAGED_IN_MEMORY,
    STAGED_MEMORY_BUDGET,
};
pub use inbound::{InboundReport, MAX_INBOUND_REPORTS, MAX_KEPT_REPORT_BYTES};
pub use queue::{
    finish_waiting, Attempt, Finished, FinishedAs, HoldRule, QueueChange, QueueFilter, QueueId,
    QueuedMessage, QueuedRecipient, RetiredMessage, SentMessage, KEEP_RETIRED, MAX_ATTEMPT_LOG,
};
pub use records::{
    AccountId, AccountRecord, AliasRecord, CachedPolicy, DeliveryRule, DkimAlgorithm, DkimKey,
    DmarcEvaluation, DomainRecord, FileId, LoginAttempt, MailboxCounts, MailboxId, MailboxRecord,
    MessageRecord, Record, RecordKey, ReportData, SpecialUse, Suppression, ThreadId, ThreadRef,
    TlsPublicKey, TlsResult, Tombstone,
};
pub use roost_protocols::sasl::{CramMd5Secret, ScramSecret};
pub use secrets::{random_bytes, PasswordSecrets, SALT_LEN, SCRAM_ITERATIONS};
pub use segments::SEGMENT_BYTES;
pub use webhooks::{WebhookCall, WebhookChange, WebhookConfig, MAX_PENDING_CALLS};

use files::Placer;
use records::{now_unix, FileRef};

/// How often (in evaluations recorded) old DMARC evaluations are pruned.
pub const DMARC_PRUNE_EVERY: u32 = 1000;

/// RFC 7162 3.1: an account's `last_modseq` when it is created; new
/// mailboxes start with this HIGHESTMODSEQ.
pub const INITIAL_MODSEQ: ModSeq = ModSeq(2);
/// The index's page cache, in bytes. sled's own default is 1 GiB, which a
/// busy server's index fills over hours (resident memory growing all the
/// while); what is not cached is read from the page-cached file.
pub const INDEX_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The mailboxes every new account gets, in id order (RFC 9051 5.1 INBOX,
/// RFC 6154 special-use for the rest).
pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// Everything one commit makes durable, computed by the account actor.
#[derive(Debug, Default)]
pub struct Commit {
    /// Records to write. In one commit, a put wins over a delete of the
    /// same key.
    pub puts: Vec<Record>,
    pub deletes: Vec<RecordKey>,
    /// Staged messages to store under the given file ids (appended to a
    /// segment).
    pub place_files: Vec<(StagedFile, FileId)>,
    /// `(existing, new)`: the existing file's bytes under a new id too
    /// (the same segment slice, or a hard link for a message file stored
    /// before segments).
    pub link_files: Vec<(FileId, FileId)>,
    /// File ids the index no longer refers to: their bytes are reclaimed
    /// once no file id uses them.
    pub remove_files: Vec<FileId>,
    /// `(account, mailbox, n)`: drop the mailbox's `n` oldest tombstones,
    /// raising its vanished floor to the newest of them.
    pub prune_tombstones: Vec<(AccountId, MailboxId, usize)>,
}

impl Commit {
    /// True if the commit would change nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.deletes.is_empty()
            && self.place_files.is_empty()
            && self.link_files.is_empty()
            && self.remove_files.is_empty()
            && self.prune_tombstones.is_empty()
    }
}

/// What one commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Puts plus deletes.
    pub records: usize,
    /// Files placed plus files linked.
    pub files: usize,
    /// Segment and directory fsyncs this commit spent (the index's own
    /// fsync is counted by the flush).
    pub fsyncs: usize,
}

/// Totals since the store was opened, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlushStats {
    pub commits: u64,
    /// sled flushes, by commits and account administration alike.
    pub flushes: u64,
    /// Records put or deleted by commits.
    pub records: u64,
    /// Message files placed or linked by commits.
    pub messages_placed: u64,
    /// Every fsync the store made: segments, queue files, directories and
    /// the index.
    pub fsyncs: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
    records: AtomicU64,
    messages_placed: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    /// Bytes staged messages hold in memory (see `STAGED_MEMORY_BUDGET`).
    pub(crate) staged_memory: AtomicU64,
}

/// The store. Cheap to clone; every clone is the same store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    msg_dir: PathBuf,
    tmp_dir: PathBuf,
    segments: segments::Segments,
    db: sled::Db,
    /// Serializes account and domain administration, which allocate from
    /// store-wide counters outside any account actor.
    admin: Mutex<()>,
    tmp_seq: AtomicU64,
    /// Numbers DMARC evaluations apart within a microsecond.
    dmarc_seq: std::sync::atomic::AtomicU32,
    /// Serializes changes of queued messages (read, change, write).
    queue_lock: Mutex<()>,
    /// Seconds messages that left the queue are kept (0: none).
    keep_retired: std::sync::atomic::AtomicI64,
    /// Some account has a webhook (so events are worth building).
    has_webhooks: std::sync::atomic::AtomicBool,
    /// Webhook calls waiting (see `MAX_PENDING_CALLS`).
    webhooks_pending: std::sync::atomic::AtomicUsize,
    counters: Arc<Counters>,
    /// sled's data file, fsynced after each flush (see [`Store::flush`]);
    /// opened once, so a commit does not open and close it again.
    index_file: (PathBuf, std::fs::File),
    gate: FlushGate,
    /// The local domains whose mail is disabled, kept in memory: SMTP asks
    /// at every MAIL and RCPT on the async workers, where a read of the
    /// index could wait for another account's batch to be applied (sled
    /// holds one lock over every read while it applies one).
    disabled_domains: Mutex<HashSet<String>>,
}

/// Group flush across callers. A flush that starts after a caller's batch
/// was applied covers that batch, so commits that arrive while a flush runs
/// (from any account actor) wait for the next one and share it.
#[derive(Debug, Default)]
struct FlushGate {
    state: Mutex<GateState>,
    done: std::sync::Condvar,
    /// Chaos: the next flush fails, as an I/O error would fail it.
    fail_next: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct GateState {
    /// Flush requests handed out so far, numbered from 1.
    requested: u64,
    /// Every request up to this one is durable.
    completed: u64,
    /// Why the first flush that failed did. No later flush is trusted:
    /// after a failed fsync, Linux may drop the pages it could not write
    /// and report the next fsync clean, so a change acknowledged after
    /// it could be lost, and bytes its removal frees could be punched
    /// while the index on disk still names them. Every later request
    /// fails, and commits are refused, until the store is opened again.
    failed: Option<String>,
    running: bool,
}

/// The error of every change after a failed index flush.
fn unwritable(why: &str) -> StoreError {
    StoreError::Unwritable(why.to_string())
}

/// Store-wide floor for new UIDVALIDITY values, so an account deleted and
/// created again never repeats one (RFC 9051 2.3.1.1).
const UID_VALIDITY_FLOOR: &[u8] = b"uid_validity_floor";
/// Set once every message has its compact state record.
const MESSAGE_STATES_ADDED: &[u8] = b"message_states_added";
/// Set once the address index is in its case-folded form.
const ADDRESS_KEYS_FOLDED: &[u8] = b"address_keys_folded";

impl Store {
    /// Opens (creating if needed) the store in `dir` and empties `tmp/`.
    pub fn open(dir: &Path) -> Result<Store> {
        let msg_dir = dir.join("msg");
        let tmp_dir = dir.join("tmp");
        let index_dir = dir.join("index");
        for d in [dir, &msg_dir, &tmp_dir] {
            std::fs::create_dir_all(d).map_err(|e| StoreError::io(d, e))?;
        }
        let removed = files::empty_dir(&tmp_dir)?;
        if removed > 0 {
            tracing::info!(removed, "removed unfinished staged files");
        }
        let db = sled::Config::new()
            .path(&index_dir)
            .cache_capacity(INDEX_CACHE_BYTES)
            .open()?;
        let segments = segments::Segments::open(dir.join("seg"), &db)?;
        let index_path = index_dir.join("db");
        let index_file = std::fs::File::open(&index_path)
            .map(|f| (index_path.clone(), f))
            .map_err(|e| StoreError::io(&index_path, e))?;
        let store = Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                msg_dir,
                tmp_dir,
                segments,
                db,
                admin: Mutex::new(()),
                tmp_seq: AtomicU64::new(0),
                dmarc_seq: Default::default(),
                queue_lock: Mutex::new(()),
                keep_retired: std::sync::atomic::AtomicI64::new(queue::KEEP_RETIRED),
                has_webhooks: Default::default(),
                webhooks_pending: Default::default(),
                counters: Arc::new(Counters::default()),
                index_file,
                gate: FlushGate::default(),
                disabled_domains: Default::default(),
            }),
        };
        let disabled = store.domains()?.into_iter().filter(|d| d.disabled);
        *store.disabled_domains() = disabled.map(|d| d.name).collect();
        store.add_message_states()?;
        store.fold_address_keys()?;
        store.note_webhooks()?;
        Ok(store)
    }

    /// Address index keys written before local parts were indexed without
    /// case are rewritten in today's form, once, at open.
    fn fold_address_keys(&self) -> Result<()> {
        let done = keys::meta(ADDRESS_KEYS_FOLDED);
        if self.inner.db.get(&done)?.is_some() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut changed = 0;
        for item in self.inner.db.scan_prefix([keys::ADDRESS]) {
            let (k, v) = item?;
            let Ok(text) = std::str::from_utf8(&k[1..]) else {
                continue;
            };
            let Some(form) = keys::index_form(text) else {
                continue;
            };
            if form != text {
                batch.remove(k.clone());
                if !self.inner.db.contains_key(keys::address(&form))? {
                    batch.insert(keys::address(&form), v);
                }
                changed += 1;
            }
        }
        batch.insert(done, &[][..]);
        if changed > 0 {
            self.apply_and_flush(batch)?;
            tracing::info!(changed, "address index rewritten in its folded form");
        } else {
            // Nothing moved: the mark reaches the disk with the next flush
            // (lost in a crash, the scan just runs once more).
            self.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Data directories from before the compact message states get them
    /// once, from the message records.
    fn add_message_states(&self) -> Result<()> {
        let done = keys::meta(MESSAGE_STATES_ADDED);
        if self.inner.db.get(&done)?.is_some() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut n = 0usize;
        for v in self.inner.db.scan_prefix([keys::MESSAGE]).values() {
            let m: MessageRecord = rmp_serde::from_slice(&v?)?;
            batch.insert(
                keys::message_state(m.account, m.mailbox, m.uid),
                records::encode_state(m.modseq, &m.flags),
            );
            n += 1;
        }
        batch.insert(done, Vec::new());
        if n == 0 {
            // Nothing to lose: the mark is made durable by the next flush,
            // and redoing this after a crash is harmless.
            self.apply_batch(batch)?;
            return Ok(());
        }
        self.apply_and_flush(batch)?;
        tracing::info!(messages = n, "added compact message states");
        Ok(())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Makes every batch applied before this call durable. Concurrent
    /// callers share flushes (see `FlushGate`).
    pub fn flush(&self) -> Result<()> {
        let gate = &self.inner.gate;
        let mut g = gate.state.lock().unwrap_or_else(|e| e.into_inner());
        g.requested += 1;
        let mine = g.requested;
        loop {
            if g.completed >= mine {
                return Ok(());
            }
            if let Some(why) = &g.failed {
                return Err(unwritable(why));
            }
            if g.running {
                g = gate.done.wait(g).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            g.running = true;
            let target = g.requested;
            drop(g);
            let result = self.flush_now();
            g = gate.state.lock().unwrap_or_else(|e| e.into_inner());
            g.running = false;
            match result {
                Ok(()) => g.completed = target,
                Err(e) => {
                    tracing::error!(error = %e, "index flush failed: the store takes no more changes until roost restarts");
                    g.failed = Some(e.to_string());
                }
            }
            gate.done.notify_all();
        }
    }

    /// Fails once a flush has failed (see `GateState::failed`): a
    /// change made now could not be made durable.
    fn writable(&self) -> Result<()> {
        self.failure().map_or(Ok(()), |why| Err(unwritable(&why)))
    }

    // Every write to the index goes through these three (but the bounce
    // key's compare-and-swap, which checks for itself), and each is
    // refused once a flush has failed (see `GateState::failed`).

    fn apply_batch(&self, batch: sled::Batch) -> Result<()> {
        self.writable()?;
        Ok(self.inner.db.apply_batch(batch)?)
    }

    fn put_key(&self, key: impl AsRef<[u8]>, value: impl Into<sled::IVec>) -> Result<()> {
        self.writable()?;
        self.inner.db.insert(key.as_ref(), value)?;
        Ok(())
    }

    /// The value that was at `key`, if any.
    fn remove_key(&self, key: impl AsRef<[u8]>) -> Result<Option<sled::IVec>> {
        self.writable()?;
        Ok(self.inner.db.remove(key.as_ref())?)
    }

    /// Chaos (`roost admin fail-flush`, and tests): the next index flush
    /// fails, as a disk error would fail it.
    pub fn fail_next_flush(&self) {
        self.inner.gate.fail_next.store(true, Ordering::SeqCst);
    }

    /// Why an index flush failed, once one has: the store then takes no
    /// more changes (see `GateState::failed`), and the server should stop
    /// and be started again.
    pub fn failure(&self) -> Option<String> {
        let g = self.inner.gate.state.lock();
        g.unwrap_or_else(|e| e.into_inner()).failed.clone()
    }

    fn flush_now(&self) -> Result<()> {
        if self.inner.gate.fail_next.swap(false, Ordering::SeqCst) {
            let failure = std::io::Error::other("injected flush failure");
            return Err(StoreError::io(&self.inner.index_file.0, failure));
        }
        self.inner.db.flush()?;
        // sled 0.34 makes its log durable with sync_file_range(2), which
        // writes neither file metadata nor the disk's volatile write cache;
        // an fsync of its data file does both, so an acknowledged change
        // also survives a power cut.
        let (path, file) = &self.inner.index_file;
        file.sync_all().map_err(|e| StoreError::io(path, e))?;
        self.inner.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.inner.counters.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Totals since open.
    pub fn stats(&self) -> FlushStats {
        let c = &self.inner.counters;
        FlushStats {
            commits: c.commits.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            messages_placed: c.messages_placed.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
        }
    }

    // ---- staging ----

    /// Starts staging a message (in memory, spilling to `tmp/` when
    /// large).
    pub fn stage(&self) -> Result<StagedWriter> {
        let seq = self.inner.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.inner.tmp_dir.join(format!("{seq}.stage"));
        Ok(StagedWriter::new(path, Arc::clone(&self.inner.counters)))
    }

    /// Stages `bytes` in one go.
    pub fn stage_bytes(&self, bytes: &[u8]) -> Result<StagedFile> {
        use std::io::Write;
        let mut w = self.stage()?;
        let path = self.inner.tmp_dir.clone();
        w.write_all(bytes).map_err(|e| StoreError::io(path, e))?;
        w.finish()
    }

    /// Stages the same message again for another account (one delivery to
    /// several accounts): a hard link, so no byte is written twice.
    pub fn stage_copy(&self, staged: &StagedFile) -> Result<StagedFile> {
        let seq = self.inner.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.inner.tmp_dir.join(format!("{seq}.stage"));
        staged
            .link_copy(path.clone())
            .map_err(|e| StoreError::io(path, e))
    }

    /// Where a message file lives: queued messages, and mailbox messages
    /// stored before segments. Mailbox messages are read with
    /// [`Store::open_message`] or [`Store::read_content`].
    pub fn message_path(&self, id: FileId) -> PathBuf {
        files::message_path(&self.inner.msg_dir, id)
    }

    /// A file id never handed out before, also across restarts.
    pub fn next_file_id(&self) -> Result<FileId> {
        // sled persists its id generator ahead of use and skips forward on
        // recovery; 0 is kept free so no message file is ever named "0".
        Ok(FileId(self.inner.db.generate_id()?.saturating_add(1)))
    }

    // ---- helpers ----

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        get(&self.inner.db, key)
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>> {
        self.inner
            .db
            .scan_prefix(prefix)
            .values()
            .map(|v| Ok(rmp_serde::from_slice(&v?)?))
            .collect()
    }

    fn apply_and_flush(&self, batch: sled::Batch) -> Result<()> {
        self.apply_batch(batch)?;
        self.flush()
    }

    fn admin_lock(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data of its own, so a poisoned lock is
        // still a good lock.
        self.inner
            .admin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remove_files(&self, ids: &[FileId]) {
        for id in ids {
            if let Err(e) = files::remove_if_present(&self.message_path(*id)) {
                tracing::warn!(error = %e, file = id.0, "could not remove a message file");
            }
        }
    }

    // ---- domains ----

    /// Adds a domain to accept mail for.
    pub fn add_domain(&self, name: &str) -> Result<DomainRecord> {
        let name = normalize_domain(name)?;
        let _guard = self.admin_lock();
        let key = keys::domain(&name);
        if self.inner.db.contains_key(&key)? {
            return Err(StoreError::AlreadyExists(format!("domain {name}")));
        }
        let rec = DomainRecord {
            name,
            created: now_unix(),
            disabled: false,
            catchall_separator: String::new(),
            localpart_case_sensitive: false,
            report_only: false,
        };
        let mut batch = sled::Batch::default();
        batch.insert(key, encode(&rec)?);
        self.apply_and_flush(batch)?;
        Ok(rec)
    }

    /// The account a TLS client key is registered to, and the key.
    pub fn account_by_tls_key(&self, spki: &[u8]) -> Result<Option<(AccountRecord, TlsPublicKey)>> {
        let Some(id) = self
            .inner
            .db
            .get(keys::tls_key(&TlsPublicKey::fingerprint(spki)))?
        else {
            return Ok(None);
        };
        let id = AccountId(u32::from_be_bytes(id.as_ref().try_into().map_err(
            |_| StoreError::Codec("TLS key index value is not 4 bytes".into()),
        )?));
        let Some(account) = self.account_by_id(id)? else {
            return Ok(None);
        };
        let key = account
            .tls_public_keys
            .iter()
            .find(|k| k.spki == spki)
            .cloned();
        Ok(key.map(|k| (account, k)))
    }

    /// Adds login attempts; `seq` numbers them apart within a
    /// microsecond. Not flushed on its own: the next group commit or
    /// flush makes them durable, and a crash may lose the last few.
    pub fn add_login_attempts(&self, attempts: &[LoginAttempt], seq: &mut u32) -> Result<()> {
        let mut batch = sled::Batch::default();
        for a in attempts {
            *seq = seq.wrapping_add(1);
            batch.insert(keys::login_attempt(a.time_us, *seq), encode(a)?);
        }
        self.apply_batch(batch)?;
        Ok(())
    }

    /// The MTA-STS policy kept for `domain`, expired or not.
    pub fn mta_sts_policy(&self, domain: &str) -> Result<Option<CachedPolicy>> {
        self.get(&keys::mta_sts(&domain.to_ascii_lowercase()))
    }

    /// Keeps `domain`'s MTA-STS policy; not flushed on its own (a lost
    /// one is fetched again).
    pub fn set_mta_sts_policy(&self, domain: &str, p: &CachedPolicy) -> Result<()> {
        self.put_key(keys::mta_sts(&domain.to_ascii_lowercase()), encode(p)?)?;
        Ok(())
    }

    /// Records a DMARC evaluation; every [`DMARC_PRUNE_EVERY`]th record
    /// of its kind also removes those past [`DmarcEvaluation::MAX_KEPT`].
    /// Not flushed on its own, like login attempts.
    pub fn add_dmarc_evaluation(&self, e: &DmarcEvaluation) -> Result<()> {
        self.add_report_data(ReportData::Dmarc, e.time_us, e)
    }

    /// Records the outcome of one outgoing TLS session, as
    /// [`Store::add_dmarc_evaluation`] does.
    pub fn add_tls_result(&self, r: &TlsResult) -> Result<()> {
        self.add_report_data(ReportData::Tls, r.time_us, r)
    }

    fn add_report_data<T: Serialize>(&self, kind: ReportData, time_us: u64, r: &T) -> Result<()> {
        let seq = self.inner.dmarc_seq.fetch_add(1, Ordering::Relaxed);
        self.put_key(keys::report_data(kind.key(), time_us, seq), encode(r)?)?;
        if seq % DMARC_PRUNE_EVERY == DMARC_PRUNE_EVERY - 1 {
            self.prune_report_data(kind, kind.max_kept())?;
        }
        Ok(())
    }

    /// Removes the oldest records of `kind` beyond the newest `keep`.
    pub fn prune_report_data(&self, kind: ReportData, keep: usize) -> Result<usize> {
        let total = self.inner.db.scan_prefix([kind.key()]).keys().count();
        let excess = total.saturating_sub(keep);
        let mut batch = sled::Batch::default();
        for k in self.inner.db.scan_prefix([kind.key()]).keys().take(excess) {
            batch.remove(k?);
        }
        self.apply_batch(batch)?;
        Ok(excess)
    }

    /// The records of `kind` from `from_us` up to (not including)
    /// `to_us`, oldest first.
    pub fn report_data_between<T: DeserializeOwned>(
        &self,
        kind: ReportData,
        from_us: u64,
        to_us: u64,
    ) -> Result<Vec<T>> {
        let from = keys::report_data(kind.key(), from_us, 0);
        let to = keys::report_data(kind.key(), to_us, 0);
        self.inner
            .db
            .range(from..to)
            .values()
            .map(|v| Ok(rmp_serde::from_slice(&v?)?))
            .collect()
    }

    /// Up to when (unix microseconds) records of `kind` were reported; 0
    /// before the first report.
    pub fn reported_until(&self, kind: ReportData) -> Result<u64> {
        Ok(
            match self.inner.db.get(keys::meta(kind.reported_until()))? {
                Some(v) => u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Codec("a time is not 8 bytes".into()))?,
                ),
                None => 0,
            },
        )
    }

    /// Records that records of `kind` up to `us` were reported; flushed.
    pub fn set_reported_until(&self, kind: ReportData, us: u64) -> Result<()> {
        self.put_key(keys::meta(kind.reported_until()), &us.to_be_bytes()[..])?;
        self.flush()
    }

    /// The newest `limit` DMARC evaluations, newest first.
    pub fn dmarc_evaluations(&self, limit: usize) -> Result<Vec<DmarcEvaluation>> {
        self.inner
            .db
            .scan_prefix([keys::DMARC_EVALUATION])
            .values()
            .rev()
            .take(limit)
            .map(|v| Ok(rmp_serde::from_slice(&v?)?))
            .collect()
    }

    /// How many login attempts are kept.
    pub fn login_attempt_count(&self) -> usize {
        self.inner.db.scan_prefix([keys::LOGIN_ATTEMPT]).count()
    }

    /// Removes the oldest login attempts beyond the newest `keep`.
    pub fn prune_login_attempts(&self, keep: usize) -> Result<usize> {
        let total = self.login_attempt_count();
        let excess = total.saturating_sub(keep);
        let mut batch = sled::Batch::default();
        for k in self
            .inner
            .db
            .scan_prefix([keys::LOGIN_ATTEMPT])
            .keys()
            .take(excess)
        {
            batch.remove(k?);
        }
        self.apply_batch(batch)?;
        Ok(excess)
    }

    /// The newest `limit` login attempts, newest first; only those naming
    /// `account` when given.
    pub fn login_attempts(&self, account: Option<&str>, limit: usize) -> Result<Vec<LoginAttempt>> {
        let mut out = Vec::new();
        for v in self
            .inner
            .db
            .scan_prefix([keys::LOGIN_ATTEMPT])
            .values()
            .rev()
        {
            let a: LoginAttempt = rmp_serde::from_slice(&v?)?;
            if account.is_none_or(|name| a.account.as_deref() == Some(name)) {
                out.push(a);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Removes a domain; its accounts stay.
    pub fn remove_domain(&self, name: &str) -> Result<()> {
        let name = normalize_domain(name)?;
        let _guard = self.admin_lock();
        if self.remove_key(keys::domain(&name))?.is_none() {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        self.disabled_domains().remove(&name);
        self.flush()
    }

    /// Disables or enables mail to and from a domain.
    pub fn set_domain_disabled(&self, name: &str, disabled: bool) -> Result<DomainRecord> {
        let name = normalize_domain(name)?;
        let _guard = self.admin_lock();
        let key = keys::domain(&name);
        let mut rec: DomainRecord = self
            .get(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("domain {name}")))?;
        rec.disabled = disabled;
        let mut batch = sled::Batch::default();
        batch.insert(key, encode(&rec)?);
        // The set follows the applied record, as a read of the index
        // would, even if the flush then fails.
        self.apply_batch(batch)?;
        if disabled {
            self.disabled_domains().insert(rec.name.clone());
        } else {
            self.disabled_domains().remove(&rec.name);
        }
        self.flush()?;
        Ok(rec)
    }

    fn disabled_domains(&self) -> MutexGuard<'_, HashSet<String>> {
        // A set of names is whole after any panic.
        self.inner
            .disabled_domains
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sets how a domain's local parts match: the tag separator
    /// characters (`""` for none) and case sensitivity, and whether it is
    /// report-only; `None` keeps one.
    pub fn set_domain_matching(
        &self,
        name: &str,
        catchall_separator: Option<String>,
        localpart_case_sensitive: Option<bool>,
        report_only: Option<bool>,
    ) -> Result<DomainRecord> {
        let name = normalize_domain(name)?;
        if let Some(sep) = &catchall_separator {
            if sep
                .chars()
                .any(|c| c == '@' || c == '.' || c.is_whitespace() || c.is_control())
                || sep.chars().count() > MAX_SEPARATORS
            {
                return Err(StoreError::Invalid(format!(
                    "{sep:?}: separators are up to {MAX_SEPARATORS} characters, \
                     not '@', '.', spaces or controls"
                )));
            }
        }
        let _guard = self.admin_lock();
        let key = keys::domain(&name);
        let mut rec: DomainRecord = self
            .get(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("domain {name}")))?;
        if let Some(sep) = catchall_separator {
            rec.catchall_separator = sep;
        }
        if let Some(cs) = localpart_case_sensitive {
            rec.localpart_case_sensitive = cs;
        }
        if let Some(r) = report_only {
            rec.report_only = r;
        }
        let mut batch = sled::Batch::default();
        batch.insert(key, encode(&rec)?);
        self.apply_and_flush(batch)?;
        Ok(rec)
    }

    /// A local domain's record.
    pub fn domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        match normalize_domain(name) {
            Ok(n) => self.get(&keys::domain(&n)),
            Err(_) => Ok(None),
        }
    }

    // ---- delivery rules ----

    /// An account's delivery rules, in the order they are tried.
    pub fn rules(&self, account: AccountId) -> Result<Vec<DeliveryRule>> {
        Ok(self.get(&keys::rules(account))?.unwrap_or_default())
    }

    /// Adds a rule at the end of an account's list.
    pub fn add_rule(&self, name: &str, mut rule: DeliveryRule) -> Result<Vec<DeliveryRule>> {
        if rule.header.is_none() && rule.sender.is_none() {
            return Err(StoreError::Invalid(
                "a rule needs a header or a sender condition".into(),
            ));
        }
        if let Some(sender) = &mut rule.sender {
            *sender = match sender.strip_prefix('@') {
                Some(d) => format!("@{}", normalize_domain(d)?),
                None => normalize_address(sender)?,
            };
        }
        let too_long = rule.mailbox.is_empty()
            || rule.mailbox.len() > MAX_RULE_TEXT
            || rule.header.as_ref().is_some_and(|(n, t)| {
                n.is_empty() || n.len() > MAX_RULE_TEXT || t.len() > MAX_RULE_TEXT
            });
        if too_long {
            return Err(StoreError::Invalid(format!(
                "rule texts are 1 to {MAX_RULE_TEXT} bytes"
            )));
        }
        let _guard = self.admin_lock();
        let account = self.require_account(name)?;
        let mut rules = self.rules(account.id)?;
        if rules.len() >= MAX_RULES {
            return Err(StoreError::Invalid(format!(
                "an account has at most {MAX_RULES} rules"
            )));
        }
        rules.push(rule);
        let mut batch = sled::Batch::default();
        batch.insert(keys::rules(account.id), encode(&rules)?);
        self.apply_and_flush(batch)?;
        Ok(rules)
    }

    /// Removes an account's rule number `index` (from 1).
    pub fn remove_rule(&self, name: &str, index: usize) -> Result<Vec<DeliveryRule>> {
        let _guard = self.admin_lock();
        let account = self.require_account(name)?;
        let mut rules = self.rules(account.id)?;
        if index == 0 || index > rules.len() {
            return Err(StoreError::NotFound(format!("rule {index} of {name}")));
        }
        rules.remove(index - 1);
        let mut batch = sled::Batch::default();
        batch.insert(keys::rules(account.id), encode(&rules)?);
        self.apply_and_flush(batch)?;
        Ok(rules)
    }

    // ---- DKIM ----

    /// A local domain's DKIM keys; mail from it is signed with each.
    pub fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>> {
        match normalize_domain(domain) {
            Ok(d) => Ok(self.get(&keys::dkim(&d))?.unwrap_or_default()),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Adds a DKIM key to a local domain under a selector it does not use.
    pub fn add_dkim_key(&self, domain: &str, key: DkimKey) -> Result<Vec<DkimKey>> {
        let d = normalize_domain(domain)?;
        let selector_ok = !key.selector.is_empty()
            && key.selector.len() <= MAX_SELECTOR
            && key.selector.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !selector_ok {
            return Err(StoreError::Invalid(format!(
                "{:?}: a selector is DNS labels of letters, digits and '-', at most {MAX_SELECTOR} bytes",
                key.selector
            )));
        }
        let _guard = self.admin_lock();
        if !self.has_domain(&d)? {
            return Err(StoreError::Invalid(format!("domain {d} is not configured")));
        }
        let mut all = self.dkim_keys(&d)?;
        if all
            .iter()
            .any(|k| k.selector.eq_ignore_ascii_case(&key.selector))
        {
            return Err(StoreError::AlreadyExists(format!(
                "selector {} of {d}",
                key.selector
            )));
        }
        if all.len() >= MAX_DKIM_KEYS {
            return Err(StoreError::Invalid(format!(
                "a domain has at most {MAX_DKIM_KEYS} DKIM keys"
            )));
        }
        all.push(key);
        let mut batch = sled::Batch::default();
        batch.insert(keys::dkim(&d), encode(&all)?);
        self.apply_and_flush(batch)?;
        Ok(all)
    }

    /// Removes a domain's DKIM key.
    pub fn remove_dkim_key(&self, domain: &str, selector: &str) -> Result<Vec<DkimKey>> {
        let d = normalize_domain(domain)?;
        let _guard = self.admin_lock();
        let mut all = self.dkim_keys(&d)?;
        let before = all.len();
        all.retain(|k| !k.selector.eq_ignore_ascii_case(selector));
        if all.len() == before {
            return Err(StoreError::NotFound(format!("selector {selector} of {d}")));
        }
        let mut batch = sled::Batch::default();
        batch.insert(keys::dkim(&d), encode(&all)?);
        self.apply_and_flush(batch)?;
        Ok(all)
    }

    // ---- first-time senders ----

    /// The mailbox an account's mail from first-time senders goes to.
    pub fn intro_mailbox(&self, account: AccountId) -> Result<Option<String>> {
        self.get(&keys::intro(account))
    }

    /// Sets (or with `None` turns off) an account's intro mailbox.
    pub fn set_intro_mailbox(&self, name: &str, mailbox: Option<String>) -> Result<()> {
        if mailbox
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.len() > MAX_RULE_TEXT)
        {
            return Err(StoreError::Invalid(format!(
                "a mailbox name is 1 to {MAX_RULE_TEXT} bytes"
            )));
        }
        let _guard = self.admin_lock();
        let account = self.require_account(name)?;
        let mut batch = sled::Batch::default();
        match mailbox {
            Some(m) => batch.insert(keys::intro(account.id), encode(&m)?),
            None => batch.remove(keys::intro(account.id)),
        }
        self.apply_and_flush(batch)
    }

    /// Whether the account has written to `address` or had mail from it
    /// filed outside its intro mailbox.
    pub fn is_known(&self, account: AccountId, address: &str) -> Result<bool> {
        match keys::normalize_address(address) {
            Some(n) => Ok(self.inner.db.contains_key(keys::known(account, &n))?),
            None => Ok(false),
        }
    }

    /// Remembers correspondents of an account. Not flushed on its own: a
    /// mark lost in a crash only sends that correspondent's next message
    /// to the intro mailbox once more.
    pub fn mark_known(&self, account: AccountId, addresses: &[String]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for a in addresses {
            if let Some(n) = keys::normalize_address(a) {
                batch.insert(keys::known(account, &n), &[][..]);
            }
        }
        self.apply_batch(batch)?;
        Ok(())
    }

    // ---- suppression lists ----

    /// Whether `address` is on `account`'s suppression list.
    pub fn suppressed(&self, account: AccountId, address: &str) -> Result<Option<Suppression>> {
        match keys::normalize_address(address) {
            Some(n) => self.get(&keys::suppressed(account, &n)),
            None => Ok(None),
        }
    }

    /// Puts `address` on `account`'s suppression list (again, with the
    /// new reason), at most [`Suppression::MAX_PER_ACCOUNT`] addresses.
    pub fn suppress(&self, account: AccountId, s: &Suppression) -> Result<()> {
        self.suppress_within(account, s, Suppression::MAX_PER_ACCOUNT)
    }

    fn suppress_within(&self, account: AccountId, s: &Suppression, most: usize) -> Result<()> {
        let n = keys::normalize_address(&s.address)
            .ok_or_else(|| StoreError::Invalid(format!("{:?} is no address", s.address)))?;
        let key = keys::suppressed(account, &n);
        let held = || {
            self.inner
                .db
                .scan_prefix(keys::account_prefix(keys::SUPPRESSED, account))
                .keys()
                .count()
        };
        if !self.inner.db.contains_key(&key)? && held() >= most {
            return Err(StoreError::Invalid(format!(
                "the suppression list holds at most {most} addresses"
            )));
        }
        self.put_key(key, encode(s)?)?;
        self.flush()
    }

    /// Takes `address` off `account`'s suppression list; false when it
    /// was not on it.
    pub fn unsuppress(&self, account: AccountId, address: &str) -> Result<bool> {
        let Some(n) = keys::normalize_address(address) else {
            return Ok(false);
        };
        let was = self.remove_key(keys::suppressed(account, &n))?.is_some();
        self.flush()?;
        Ok(was)
    }

    /// `account`'s suppression list, by address.
    pub fn suppressions(&self, account: AccountId) -> Result<Vec<Suppression>> {
        self.scan(&keys::account_prefix(keys::SUPPRESSED, account))
    }

    // ---- aliases and recipients ----

    /// Creates an alias (or list) whose mail goes to `members`, local
    /// account addresses all.
    pub fn add_alias(
        &self,
        address: &str,
        members: &[String],
        post_public: bool,
        allow_msg_from: bool,
    ) -> Result<AliasRecord> {
        let address = normalize_address(address)?;
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        if !self.has_domain(domain)? {
            return Err(StoreError::Invalid(format!(
                "domain {domain} is not configured"
            )));
        }
        if members.is_empty() || members.len() > MAX_ALIAS_MEMBERS {
            return Err(StoreError::Invalid(format!(
                "an alias has 1 to {MAX_ALIAS_MEMBERS} members"
            )));
        }
        let _guard = self.admin_lock();
        if self.address_owner(&address)?.is_some()
            || self.get::<AliasRecord>(&keys::alias(&address))?.is_some()
        {
            return Err(StoreError::AlreadyExists(format!("address {address}")));
        }
        let mut normalized = Vec::new();
        for m in members {
            let n = normalize_address(m)?;
            if self.address_owner(&n)?.is_none() {
                return Err(StoreError::Invalid(format!(
                    "member {n} is not a local account's address (members outside \
                     roost need the outgoing queue)"
                )));
            }
            if !normalized.contains(&n) {
                normalized.push(n);
            }
        }
        let rec = AliasRecord {
            address: address.clone(),
            members: normalized,
            post_public,
            allow_msg_from,
            created: now_unix(),
        };
        let mut batch = sled::Batch::default();
        batch.insert(keys::alias(&address), encode(&rec)?);
        self.apply_and_flush(batch)?;
        Ok(rec)
    }

    pub fn remove_alias(&self, address: &str) -> Result<()> {
        let address = normalize_address(address)?;
        let _guard = self.admin_lock();
        if self.remove_key(keys::alias(&address))?.is_none() {
            return Err(StoreError::NotFound(format!("alias {address}")));
        }
        self.flush()
    }

    /// Every alias, by address.
    pub fn aliases(&self) -> Result<Vec<AliasRecord>> {
        self.scan(&[keys::ALIAS])
    }

    /// Who gets mail for `addr`: an address (an account's, or an
    /// alias's) that matches whole; else, in a domain with a catchall
    /// separator, the address before the first separator character;
    /// else the domain's catchall destination (`@domain`). `None` for an
    /// address nobody here takes (or one outside the local domains).
    pub fn resolve_recipient(&self, addr: &str) -> Result<Option<Resolved>> {
        self.resolve(addr, true)
    }

    /// Whose address `addr` is, for a From check: like
    /// [`resolve_recipient`](Store::resolve_recipient) but without the
    /// catchall destination (owning a catchall is not owning every
    /// address of the domain).
    pub fn resolve_sender(&self, addr: &str) -> Result<Option<Resolved>> {
        self.resolve(addr, false)
    }

    fn resolve(&self, addr: &str, catchall: bool) -> Result<Option<Resolved>> {
        let Some((local, domain)) = addr.trim().rsplit_once('@') else {
            return Ok(None);
        };
        let Some(dom) = self.domain(domain)? else {
            return Ok(None);
        };
        let exact = |local: &str| -> Result<Option<Resolved>> {
            let Ok(n) = normalize_address(&format!("{local}@{}", dom.name)) else {
                return Ok(None);
            };
            if let Some(id) = self.address_owner(&n)? {
                let Some(account) = self.get::<AccountRecord>(&keys::account(id))? else {
                    return Ok(None);
                };
                if dom.localpart_case_sensitive {
                    use unicode_normalization::UnicodeNormalization;
                    let given: String = format!("{local}@{}", dom.name).nfc().collect();
                    let stored = std::iter::once(&account.name).chain(&account.addresses);
                    if !stored.into_iter().any(|a| *a == given) {
                        return Ok(None);
                    }
                }
                return Ok(Some(Resolved::Account(Box::new(account))));
            }
            Ok(self
                .get::<AliasRecord>(&keys::alias(&n))?
                .map(Resolved::Alias))
        };
        if let Some(r) = exact(local)? {
            return Ok(Some(r));
        }
        // Each separator from the left: with `+-`, `john-doe+x` tries
        // `john`, then `john-doe`.
        for (cut, c) in local.char_indices() {
            if cut > 0 && dom.catchall_separator.contains(c) {
                if let Some(r) = exact(&local[..cut])? {
                    return Ok(Some(r));
                }
            }
        }
        if !catchall {
            return Ok(None);
        }
        match self.address_owner(&format!("@{}", dom.name))? {
            Some(id) => Ok(self
                .get::<AccountRecord>(&keys::account(id))?
                .map(|a| Resolved::Account(Box::new(a)))),
            None => Ok(None),
        }
    }

    /// Whether `name` is a local domain whose mail is disabled. Answered
    /// from memory, never waiting on the index.
    pub fn domain_disabled(&self, name: &str) -> Result<bool> {
        let Ok(name) = normalize_domain(name) else {
            return Ok(false);
        };
        Ok(self.disabled_domains().contains(&name))
    }

    /// Every domain, by name.
    pub fn domains(&self) -> Result<Vec<DomainRecord>> {
        self.scan(&[keys::DOMAIN])
    }

    /// Whether mail for `name` is accepted (case-insensitive).
    pub fn has_domain(&self, name: &str) -> Result<bool> {
        match normalize_domain(name) {
            Ok(n) => Ok(self.inner.db.contains_key(keys::domain(&n))?),
            Err(_) => Ok(false),
        }
    }

    // ---- accounts ----

    /// Creates an account with its default mailboxes. `name` is its primary
    /// address and login name.
    pub fn create_account(
        &self,
        name: &str,
        password: &str,
        quota: Option<u64>,
    ) -> Result<AccountRecord> {
        let name = keys::display_address(name).ok_or_else(|| {
            StoreError::Invalid(format!("{name:?} is not an address (local@domain)"))
        })?;
        let key_form = normalize_address(&name)?;
        // Deriving is the slow part; do it before taking the lock.
        let secrets = PasswordSecrets::derive(password)?;
        let _guard = self.admin_lock();
        let addr_key = keys::address(&key_form);
        if self.inner.db.contains_key(&addr_key)?
            || self.inner.db.contains_key(keys::alias(&key_form))?
        {
            return Err(StoreError::AlreadyExists(format!("account {name}")));
        }
        let id = AccountId(self.read_counter(keys::NEXT_ACCOUNT_ID)?.max(1));
        let now = now_unix();
        let floor = self.read_counter(UID_VALIDITY_FLOOR)?;
        let base = u32::try_from(now).unwrap_or(u32::MAX / 2).max(floor).max(1);
        let count = DEFAULT_MAILBOXES.len() as u32;

        let mut batch = sled::Batch::default();
        for (i, (mbox, special_use)) in (1u32..).zip(DEFAULT_MAILBOXES) {
            let rec = MailboxRecord {
                account: id,
                id: MailboxId(i),
                name: mbox.to_string(),
                uid_validity: UidValidity(base.saturating_add(i - 1)),
                uid_next: Uid(1),
                special_use,
                subscribed: true,
                highest_modseq: INITIAL_MODSEQ,
                counts: MailboxCounts::default(),
                tombstones: 0,
            };
            batch.insert(keys::mailbox(id, rec.id), encode(&rec)?);
        }
        let account = AccountRecord {
            id,
            name: name.clone(),
            addresses: Vec::new(),
            password: secrets,
            quota_bytes: quota,
            quota_messages: None,
            next_uid_validity: base.saturating_add(count),
            last_modseq: INITIAL_MODSEQ,
            next_mailbox_id: count + 1,
            disabled: None,
            tls_public_keys: Vec::new(),
            created: now,
            unique_mail_from: false,
        };
        batch.insert(keys::account(id), encode(&account)?);
        batch.insert(addr_key, &id.0.to_be_bytes()[..]);
        batch.insert(
            keys::meta(keys::NEXT_ACCOUNT_ID),
            &(id.0 + 1).to_be_bytes()[..],
        );
        batch.insert(
            keys::meta(UID_VALIDITY_FLOOR),
            &base.saturating_add(count).to_be_bytes()[..],
        );
        self.apply_and_flush(batch)?;
        tracing::info!(account = %name, id = id.0, "account created");
        Ok(account)
    }

    fn read_counter(&self, name: &[u8]) -> Result<u32> {
        Ok(match self.inner.db.get(keys::meta(name))? {
            Some(v) => u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Codec("counter is not 4 bytes".into()))?,
            ),
            None => 0,
        })
    }

    /// Replaces an account's password secrets.
    ///
    /// This writes the account record outside its account actor: call it
    /// through the actor, or have the actor reload the record afterwards.
    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let secrets = PasswordSecrets::derive(password)?;
        let _guard = self.admin_lock();
        let mut account = self.require_account(name)?;
        account.password = secrets;
        let mut batch = sled::Batch::default();
        batch.insert(keys::account(account.id), encode(&account)?);
        self.apply_and_flush(batch)
    }

    /// Removes an account: every record, then every message file.
    pub fn delete_account(&self, name: &str) -> Result<()> {
        let _guard = self.admin_lock();
        let account = self.require_account(name)?;
        let id = account.id;
        let files: Vec<FileId> = self
            .scan::<MessageRecord>(&keys::account_prefix(keys::MESSAGE, id))?
            .iter()
            .map(|m| m.file)
            .collect();
        let mut batch = sled::Batch::default();
        batch.remove(keys::account(id));
        for addr in std::iter::once(&account.name).chain(&account.addresses) {
            if let Some(n) = keys::index_form(addr) {
                if self.address_owner(&n)? == Some(id) {
                    batch.remove(keys::address(&n));
                }
            }
        }
        for kind in keys::PER_ACCOUNT {
            for k in self
                .inner
                .db
                .scan_prefix(keys::account_prefix(kind, id))
                .keys()
            {
                batch.remove(k?);
            }
        }
        for f in &files {
            batch.remove(keys::summary(*f));
        }
        let mut contents = segments::ContentChanges::default();
        let plain = contents.remove(&self.inner.db, &files)?;
        let dead = contents.write(&mut batch)?;
        for k in &account.tls_public_keys {
            batch.remove(keys::tls_key(&TlsPublicKey::fingerprint(&k.spki)));
        }
        self.inner.segments.removing(&dead);
        if let Err(e) = self.apply_batch(batch) {
            self.inner.segments.not_removing(&dead);
            return Err(e);
        }
        self.flush()?;
        // The index no longer refers to the files; a crash here leaves only
        // orphans, never a record without its file.
        self.remove_files(&plain);
        self.inner.segments.reclaim(&self.inner.db, dead);
        self.note_webhooks()?;
        tracing::info!(account = %account.name, id = id.0, "account deleted");
        Ok(())
    }

    /// Every account, by id.
    pub fn accounts(&self) -> Result<Vec<AccountRecord>> {
        self.scan(&[keys::ACCOUNT])
    }

    /// The account whose primary address is `name`.
    pub fn account(&self, name: &str) -> Result<Option<AccountRecord>> {
        let Ok(n) = normalize_address(name) else {
            return Ok(None);
        };
        Ok(self
            .account_by_address(&n)?
            .filter(|a| keys::normalize_address(&a.name).as_deref() == Some(n.as_str())))
    }

    /// The account by id.
    pub fn account_by_id(&self, id: AccountId) -> Result<Option<AccountRecord>> {
        self.get(&keys::account(id))
    }

    /// The account receiving mail for `addr` (primary or extra address).
    pub fn account_by_address(&self, addr: &str) -> Result<Option<AccountRecord>> {
        let Ok(n) = normalize_address(addr) else {
            return Ok(None);
        };
        match self.address_owner(&n)? {
            Some(id) => self.get(&keys::account(id)),
            None => Ok(None),
        }
    }

    fn address_owner(&self, normalized: &str) -> Result<Option<AccountId>> {
        match self.inner.db.get(keys::address(normalized))? {
            Some(v) => {
                let b: [u8; 4] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Codec("address index value".into()))?;
                Ok(Some(AccountId(u32::from_be_bytes(b))))
            }
            None => Ok(None),
        }
    }

    fn require_account(&self, name: &str) -> Result<AccountRecord> {
        self.account(name)?
            .ok_or_else(|| StoreError::NotFound(format!("account {name}")))
    }

    /// Adds an extra address to an account; `@domain` makes the account
    /// the domain's catchall destination.
    ///
    /// Only for an account whose actor is not running (tests, tools): a
    /// running account actor rewrites its record, so the server changes
    /// addresses through it ([`check_new_address`](Store::check_new_address),
    /// then a `Record::Account` commit, which keeps the index).
    pub fn add_address(&self, name: &str, addr: &str) -> Result<AccountRecord> {
        let shown = self.check_new_address(addr)?;
        let _guard = self.admin_lock();
        let mut account = self.require_account(name)?;
        account.addresses.push(shown);
        let mut batch = sled::Batch::default();
        let stored = self.get::<AccountRecord>(&keys::account(account.id))?;
        self.index_addresses(&mut batch, &account, stored.as_ref())?;
        batch.insert(keys::account(account.id), encode(&account)?);
        self.apply_and_flush(batch)?;
        Ok(account)
    }

    /// Checks that `addr` can become an account's address (a local
    /// domain's, used by no account or alias; `@domain` for a catchall)
    /// and returns the form to keep.
    pub fn check_new_address(&self, addr: &str) -> Result<String> {
        let (shown, key) = match addr.trim().strip_prefix('@') {
            Some(domain) => {
                let d = format!("@{}", normalize_domain(domain)?);
                (d.clone(), d)
            }
            None => {
                let shown = keys::display_address(addr).ok_or_else(|| {
                    StoreError::Invalid(format!("{addr:?} is not an address (local@domain)"))
                })?;
                let key = normalize_address(&shown)?;
                (shown, key)
            }
        };
        let domain = key.rsplit('@').next().unwrap_or_default();
        if !self.has_domain(domain)? {
            return Err(StoreError::Invalid(format!(
                "domain {domain} is not configured"
            )));
        }
        if self.address_owner(&key)?.is_some()
            || self.get::<AliasRecord>(&keys::alias(&key))?.is_some()
        {
            return Err(StoreError::AlreadyExists(format!("address {shown}")));
        }
        Ok(shown)
    }

    /// Brings the address index in line with `account`'s name and
    /// addresses: keys it no longer has go, keys it has point at it. A
    /// key another account holds is left alone.
    /// `old` is the record as stored; an account whose addresses did not
    /// change (every other commit of its actor) costs nothing here.
    fn index_addresses(
        &self,
        batch: &mut sled::Batch,
        account: &AccountRecord,
        old: Option<&AccountRecord>,
    ) -> Result<()> {
        if old.is_some_and(|o| o.name == account.name && o.addresses == account.addresses) {
            return Ok(());
        }
        let forms = |a: &AccountRecord| -> Vec<String> {
            std::iter::once(&a.name)
                .chain(&a.addresses)
                .filter_map(|x| keys::index_form(x))
                .collect()
        };
        let new = forms(account);
        if let Some(old) = old {
            for k in forms(old) {
                if !new.contains(&k) && self.address_owner(&k)? == Some(account.id) {
                    batch.remove(keys::address(&k));
                }
            }
        }
        for k in new {
            match self.address_owner(&k)? {
                Some(other) if other != account.id => {}
                _ => batch.insert(keys::address(&k), &account.id.0.to_be_bytes()[..]),
            }
        }
        Ok(())
    }

    /// Takes addresses that left their account out of every alias (an
    /// alias left with no member goes too), so whoever gets an address
    /// next does not inherit its memberships.
    pub fn drop_alias_members(&self, addresses: &[String]) -> Result<()> {
        let gone: Vec<String> = addresses
            .iter()
            .filter_map(|a| keys::index_form(a))
            .collect();
        let _guard = self.admin_lock();
        let mut batch = sled::Batch::default();
        let mut changed = false;
        for mut alias in self.aliases()? {
            let before = alias.members.len();
            alias.members.retain(|m| !gone.contains(m));
            if alias.members.len() == before {
                continue;
            }
            changed = true;
            if alias.members.is_empty() {
                batch.remove(keys::alias(&alias.address));
            } else {
                batch.insert(keys::alias(&alias.address), encode(&alias)?);
            }
        }
        if changed {
            self.apply_and_flush(batch)?;
        }
        Ok(())
    }

    /// Removes an extra address; the primary address cannot be removed.
    /// (Like [`add_address`](Store::add_address): not for an account
    /// whose actor runs.)
    pub fn remove_address(&self, name: &str, addr: &str) -> Result<AccountRecord> {
        let n = keys::index_form(addr)
            .ok_or_else(|| StoreError::Invalid(format!("{addr:?} is not an address")))?;
        let _guard = self.admin_lock();
        let mut account = self.require_account(name)?;
        if keys::index_form(&account.name).as_deref() == Some(n.as_str()) {
            return Err(StoreError::Invalid(format!(
                "{n} is the account's primary address; delete the account instead"
            )));
        }
        let before = account.addresses.len();
        account
            .addresses
            .retain(|a| keys::index_form(a).as_deref() != Some(n.as_str()));
        if account.addresses.len() == before {
            return Err(StoreError::NotFound(format!("address {n} of {name}")));
        }
        let mut batch = sled::Batch::default();
        let stored = self.get::<AccountRecord>(&keys::account(account.id))?;
        self.index_addresses(&mut batch, &account, stored.as_ref())?;
        batch.insert(keys::account(account.id), encode(&account)?);
        self.apply_and_flush(batch)?;
        Ok(account)
    }

    // ---- reads ----

    /// An account's mailboxes, by id.
    pub fn mailboxes(&self, account: AccountId) -> Result<Vec<MailboxRecord>> {
        self.scan(&keys::account_prefix(keys::MAILBOX, account))
    }

    pub fn mailbox(&self, account: AccountId, id: MailboxId) -> Result<Option<MailboxRecord>> {
        self.get(&keys::mailbox(account, id))
    }

    /// A mailbox's messages as (UID, modseq, flags), in UID order: the
    /// compact records, a fraction of the whole ones to read and decode.
    pub fn message_states(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<(Uid, ModSeq, Flags)>> {
        let prefix = keys::mailbox_prefix(keys::MESSAGE_STATE, account, mailbox);
        let mut out = Vec::new();
        for kv in self.inner.db.scan_prefix(prefix) {
            let (k, v) = kv?;
            let (Some(uid), Some((modseq, flags))) =
                (keys::message_state_uid(&k), records::decode_state(&v))
            else {
                return Err(StoreError::Invalid(format!(
                    "bad message state record {k:?}"
                )));
            };
            out.push((uid, modseq, flags));
        }
        Ok(out)
    }

    /// RFC 9208 4.1.4: the sum of the sizes of a mailbox's messages with
    /// `\Deleted`, what EXPUNGE would free.
    pub fn deleted_size(&self, account: AccountId, mailbox: MailboxId) -> Result<u64> {
        let mut total = 0u64;
        for (uid, _, flags) in self.message_states(account, mailbox)? {
            if flags.contains(&Flag::Deleted) {
                if let Some(m) = self.message(account, mailbox, uid)? {
                    total = total.saturating_add(m.size);
                }
            }
        }
        Ok(total)
    }

    /// A mailbox's messages with UIDs in `first..=last`, in UID order: one
    /// range scan of the index.
    pub fn messages_between(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        first: Uid,
        last: Uid,
    ) -> Result<Vec<MessageRecord>> {
        if first > last {
            return Ok(Vec::new());
        }
        let start = keys::message(account, mailbox, first);
        let end = keys::message(account, mailbox, last);
        self.inner
            .db
            .range(start..=end)
            .values()
            .map(|v| Ok(rmp_serde::from_slice(&v?)?))
            .collect()
    }

    /// A mailbox's messages in UID order.
    pub fn messages(&self, account: AccountId, mailbox: MailboxId) -> Result<Vec<MessageRecord>> {
        self.scan(&keys::mailbox_prefix(keys::MESSAGE, account, mailbox))
    }

    pub fn message(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
    ) -> Result<Option<MessageRecord>> {
        self.get(&keys::message(account, mailbox, uid))
    }

    /// The message stored in `file`, through the file index.
    pub fn message_by_file(
        &self,
        account: AccountId,
        file: FileId,
    ) -> Result<Option<MessageRecord>> {
        match self.get::<FileRef>(&keys::file(account, file))? {
            Some(r) => self.message(account, r.mailbox, r.uid),
            None => Ok(None),
        }
    }

    /// RFC 7162 3.2.5.1: the UIDs expunged from a mailbox after `since`,
    /// ascending, and the mailbox's vanished floor: when `since` is below
    /// the floor, tombstones that would answer have been pruned, and the
    /// list is not complete.
    pub fn vanished_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<(Vec<Uid>, ModSeq)> {
        let start = keys::vanished(account, mailbox, ModSeq(since.0.saturating_add(1)), Uid(0));
        let end = keys::vanished(account, mailbox, ModSeq(u64::MAX), Uid(u32::MAX));
        let mut uids = Vec::new();
        for k in self.inner.db.range(start..=end).keys() {
            if let Some((_, uid)) = keys::vanished_parts(&k?) {
                uids.push(uid);
            }
        }
        uids.sort_unstable();
        let floor = self
            .get::<ModSeq>(&keys::vanished_floor(account, mailbox))?
            .unwrap_or(ModSeq(0));
        Ok((uids, floor))
    }

    /// Adds the removal of a mailbox's `n` oldest tombstones to `batch`,
    /// and the floor they leave.
    fn prune_tombstones(
        &self,
        batch: &mut sled::Batch,
        a: AccountId,
        m: MailboxId,
        n: usize,
    ) -> Result<()> {
        let mut floor = self
            .get::<ModSeq>(&keys::vanished_floor(a, m))?
            .unwrap_or(ModSeq(0));
        let prefix = keys::mailbox_prefix(keys::VANISHED, a, m);
        for k in self.inner.db.scan_prefix(prefix).keys().take(n) {
            let k = k?;
            if let Some((modseq, uid)) = keys::vanished_parts(&k) {
                batch.remove(keys::tombstone(a, m, uid));
                floor = floor.max(modseq);
            }
            batch.remove(k);
        }
        batch.insert(keys::vanished_floor(a, m), encode(&floor)?);
        Ok(())
    }

    /// The stored summary of the message in `file`, if it has one yet.
    pub fn summary(&self, file: FileId) -> Result<Option<Summary>> {
        self.get(&keys::summary(file))
    }

    /// The METADATA entries of a mailbox (or the server's, with
    /// [`MailboxId::SERVER`]), by name.
    pub fn metadata(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = keys::mailbox_prefix(keys::METADATA, account, mailbox);
        self.inner
            .db
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let entry = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((entry, v.to_vec()))
            })
            .collect()
    }

    /// The mailbox and name of every METADATA entry of the account (the
    /// server's under [`MailboxId::SERVER`]), without their values.
    pub fn metadata_names(&self, account: AccountId) -> Result<Vec<(MailboxId, String)>> {
        let prefix = keys::account_prefix(keys::METADATA, account);
        self.inner
            .db
            .scan_prefix(&prefix)
            .keys()
            .filter_map(|k| {
                let k = match k {
                    Ok(k) => k,
                    Err(e) => return Some(Err(e.into())),
                };
                // account ‖ mailbox ‖ entry; a key too short is not ours.
                let rest = k.get(prefix.len()..)?;
                let id = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
                let entry = String::from_utf8_lossy(&rest[4..]).into_owned();
                Some(Ok((MailboxId(id), entry)))
            })
            .collect()
    }

    /// A mailbox's expunged UIDs, in UID order.
    pub fn tombstones(&self, account: AccountId, mailbox: MailboxId) -> Result<Vec<Tombstone>> {
        self.scan(&keys::mailbox_prefix(keys::TOMBSTONE, account, mailbox))
    }

    pub fn thread_by_message_id(
        &self,
        account: AccountId,
        message_id: &str,
    ) -> Result<Option<ThreadRef>> {
        self.get(&keys::thread_by_message_id(account, message_id))
    }

    pub fn thread_by_subject(
        &self,
        account: AccountId,
        base_subject: &str,
    ) -> Result<Option<ThreadRef>> {
        self.get(&keys::thread_by_subject(account, base_subject))
    }

    /// The message as a client sees it: header prefix, then the file.
    /// Reads the whole file into memory: callers that may meet large
    /// messages use [`Store::open_message`] and read it in pieces.
    pub fn read_message(&self, m: &MessageRecord) -> Result<Vec<u8>> {
        self.open_message(m)?.read_all()
    }

    /// The message opened for reading in pieces.
    pub fn open_message(&self, m: &MessageRecord) -> Result<MessageReader> {
        self.open_content(m.header_prefix.clone(), m.file)
    }

    fn open_content(&self, prefix: Vec<u8>, file: FileId) -> Result<MessageReader> {
        let segs = &self.inner.segments;
        match segs.open_slice(&self.inner.db, file)? {
            Some((f, slice, hold)) => {
                let path = segments::segment_path(segs.dir(), slice.segment);
                Ok(MessageReader::of_slice(prefix, path, f, slice, hold))
            }
            None => MessageReader::open(prefix, self.message_path(file)),
        }
    }

    /// The segment slice a file id names, if it has one.
    pub(crate) fn content_slice(&self, file: FileId) -> Result<Option<segments::Slice>> {
        segments::content_of(&self.inner.db, file)
    }

    /// A slice's index entry.
    pub(crate) fn slice_use(&self, s: segments::Slice) -> Result<Option<segments::SliceUse>> {
        segments::use_of(&self.inner.db, s.segment, s.offset)
    }

    pub(crate) fn segment_path(&self, segment: u64) -> PathBuf {
        segments::segment_path(self.inner.segments.dir(), segment)
    }

    /// A stored file's bytes (without any header prefix). An expunged
    /// file reads as `NotFound`.
    pub fn read_content(&self, file: FileId) -> std::io::Result<Vec<u8>> {
        let as_io = |e: StoreError| match e {
            StoreError::Io { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        };
        self.open_content(Vec::new(), file)
            .and_then(|reader| reader.read_all())
            .map_err(as_io)
    }

    // ---- writes ----

    /// Makes `c` durable, in the house order: files into place, directory
    /// fsyncs, one atomic batch, flush, then unlink removed files.
    ///
    /// If placing files or applying the batch fails, the files this commit
    /// placed are removed again and nothing changed. If the final flush
    /// fails, the records are applied in memory but may not be on disk:
    /// the account actor should treat the store as failed and restart.
    /// Putting a `Record::Account` does not touch the address index; use
    /// [`add_address`](Store::add_address) for that.
    pub fn commit(&self, c: Commit) -> Result<CommitStats> {
        let Commit {
            puts,
            deletes,
            place_files,
            link_files,
            remove_files,
            prune_tombstones,
        } = c;
        self.writable()?;
        // Encode first: a record that cannot be written should fail the
        // commit before any file moves.
        let mut batch = self.build_batch(&puts, &deletes, &link_files)?;
        // Each prune reads the stored tombstones, not the batch: several
        // of one mailbox in one commit (expunges from several sessions in
        // one group commit) must be one prune of their sum, or the last
        // would set the floor below tombstones an earlier one removed.
        let mut prunes: std::collections::BTreeMap<(AccountId, MailboxId), usize> =
            Default::default();
        for (a, m, n) in prune_tombstones {
            *prunes.entry((a, m)).or_default() += n;
        }
        for ((a, m), n) in prunes {
            self.prune_tombstones(&mut batch, a, m, n)?;
        }

        // New messages go into a segment; links share a slice, or
        // hard-link a message file stored before segments.
        let db = &self.inner.db;
        let mut placer = Placer::new(&self.inner.msg_dir);
        let mut contents = segments::ContentChanges::default();
        let mut appender = (!place_files.is_empty()).then(|| self.inner.segments.appender());
        let stored = (|| -> Result<(usize, Vec<FileId>, Vec<segments::Slice>)> {
            if let Some(app) = appender.as_mut() {
                for (staged, id) in &place_files {
                    let slice = app.append(staged, || Ok(db.generate_id()?))?;
                    contents.stored(db, *id, slice)?;
                }
            }
            for &(from, to) in &link_files {
                match contents.slice_of(db, from)? {
                    Some(slice) => contents.link(db, to, slice)?,
                    None => placer.link(from, to)?,
                }
            }
            let mut fsyncs = placer.sync_dirs()?;
            if let Some(app) = appender.as_mut() {
                fsyncs += app.sync()?;
            }
            let plain = contents.remove(db, &remove_files)?;
            let dead = std::mem::take(&mut contents).write(&mut batch)?;
            Ok((fsyncs, plain, dead))
        })();
        let files = place_files.len() + link_files.len();
        // The bytes are in the segment (or gone with a failed commit).
        drop(place_files);
        let (fsyncs, plain_removals, dead) = match stored {
            Ok(v) => v,
            Err(e) => {
                placer.undo();
                return Err(e);
            }
        };
        // Until this commit is durable, a crash could bring back what it
        // removes: those bytes stay until its own reclaim below.
        self.inner.segments.removing(&dead);
        if let Err(e) = self.apply_batch(batch) {
            self.inner.segments.not_removing(&dead);
            placer.undo();
            return Err(e);
        }
        // The new slices are indexed: punches may look at the segment.
        drop(appender);
        self.flush()?;

        // The commit is durable now; bytes that will not go away are
        // orphans to log, not a failed commit.
        self.remove_files(&plain_removals);
        self.inner.segments.reclaim(&self.inner.db, dead);

        let records = puts.len() + deletes.len();
        let cn = &self.inner.counters;
        cn.commits.fetch_add(1, Ordering::Relaxed);
        cn.records.fetch_add(records as u64, Ordering::Relaxed);
        cn.messages_placed
            .fetch_add(files as u64, Ordering::Relaxed);
        cn.fsyncs.fetch_add(fsyncs as u64, Ordering::Relaxed);
        Ok(CommitStats {
            records,
            files,
            fsyncs,
        })
    }

    /// One batch for all of a commit's records, keeping the file index in
    /// step with message records. sled's batch keeps the last write per
    /// key, so deletes go in first, then puts, then the file index.
    fn build_batch(
        &self,
        puts: &[Record],
        deletes: &[RecordKey],
        links: &[(FileId, FileId)],
    ) -> Result<sled::Batch> {
        let mut batch = sled::Batch::default();
        let mut index_removals = Vec::new();
        let mut index_inserts = Vec::new();
        let mut threads = threads::ThreadChanges::new(&self.inner.db);
        // The files this commit keeps a message record of.
        let kept: std::collections::HashMap<FileId, AccountId> = puts
            .iter()
            .filter_map(|r| match r {
                Record::Message(m) => Some((m.file, m.account)),
                _ => None,
            })
            .collect();
        for key in deletes {
            let k = match key {
                RecordKey::Mailbox(a, m) => {
                    batch.remove(keys::vanished_floor(*a, *m));
                    keys::mailbox(*a, *m)
                }
                RecordKey::Message(a, m, u) => {
                    batch.remove(keys::message_state(*a, *m, *u));
                    let k = keys::message(*a, *m, *u);
                    if let Some(old) = self.get::<MessageRecord>(&k)? {
                        index_removals.push(old);
                    }
                    k
                }
                RecordKey::Tombstone(a, m, u) => {
                    let k = keys::tombstone(*a, *m, *u);
                    if let Some(t) = self.get::<Tombstone>(&k)? {
                        batch.remove(keys::vanished(*a, *m, t.modseq, *u));
                    }
                    k
                }
                RecordKey::Metadata(a, m, e) => keys::metadata(*a, *m, e),
            };
            batch.remove(k);
        }
        for rec in puts {
            let (k, v) = match rec {
                Record::Account(a) => {
                    // The address and TLS key indexes follow the record;
                    // the stored record is read once for both.
                    let old: Option<AccountRecord> = self.get(&keys::account(a.id))?;
                    self.index_addresses(&mut batch, a, old.as_ref())?;
                    let keys_changed = old
                        .as_ref()
                        .is_none_or(|o| o.tls_public_keys != a.tls_public_keys);
                    let print = |k: &TlsPublicKey| TlsPublicKey::fingerprint(&k.spki);
                    for k in old.iter().flat_map(|o| &o.tls_public_keys) {
                        if keys_changed && !a.tls_public_keys.iter().any(|n| n.spki == k.spki) {
                            batch.remove(keys::tls_key(&print(k)));
                        }
                    }
                    for k in a.tls_public_keys.iter().filter(|_| keys_changed) {
                        batch.insert(keys::tls_key(&print(k)), &a.id.0.to_be_bytes()[..]);
                    }
                    (keys::account(a.id), encode(a)?)
                }
                Record::Mailbox(m) => (keys::mailbox(m.account, m.id), encode(m)?),
                Record::Message(m) => {
                    let k = keys::message(m.account, m.mailbox, m.uid);
                    if let Some(old) = self.get::<MessageRecord>(&k)? {
                        if old.file != m.file {
                            index_removals.push(old);
                        }
                    }
                    let fr = FileRef {
                        mailbox: m.mailbox,
                        uid: m.uid,
                    };
                    index_inserts.push((keys::file(m.account, m.file), encode(&fr)?));
                    batch.insert(
                        keys::message_state(m.account, m.mailbox, m.uid),
                        records::encode_state(m.modseq, &m.flags),
                    );
                    (k, encode(m)?)
                }
                Record::Tombstone(t) => {
                    let index = keys::vanished(t.account, t.mailbox, t.modseq, t.uid);
                    batch.insert(index, Vec::new());
                    (keys::tombstone(t.account, t.mailbox, t.uid), encode(t)?)
                }
                Record::ThreadByMessageId {
                    account,
                    message_id,
                    r,
                } => {
                    // A message expunged in the commit that stores it
                    // never carries its keys.
                    if kept.contains_key(&r.file) {
                        threads.put(*account, threads::ThreadKey::MessageId(message_id), r)?;
                    }
                    continue;
                }
                Record::ThreadBySubject {
                    account,
                    base_subject,
                    r,
                } => {
                    if kept.contains_key(&r.file) {
                        threads.put(*account, threads::ThreadKey::Subject(base_subject), r)?;
                    }
                    continue;
                }
                Record::Summary { file, summary } => (keys::summary(*file), encode(&**summary)?),
                Record::Metadata {
                    account,
                    mailbox,
                    entry,
                    value,
                } => (keys::metadata(*account, *mailbox, entry), value.clone()),
            };
            batch.insert(k, v);
        }
        // A linked file is the same bytes: its summary and thread keys go
        // with it.
        for (from, to) in links {
            if let Some(v) = self.inner.db.get(keys::summary(*from))? {
                batch.insert(keys::summary(*to), v);
            }
            if let Some(account) = kept.get(to) {
                threads.link(*account, *from, *to)?;
            }
        }
        for old in index_removals {
            // Only drop the index entry if it still names the old message.
            let k = keys::file(old.account, old.file);
            let here = FileRef {
                mailbox: old.mailbox,
                uid: old.uid,
            };
            if self.get::<FileRef>(&k)? == Some(here) {
                batch.remove(k);
                // The file goes; so does its summary, unless a put in
                // this commit (a move) keeps the file.
                if !kept.contains_key(&old.file) {
                    batch.remove(keys::summary(old.file));
                    threads.file_removed(old.account, old.file)?;
                }
            }
        }
        for (k, v) in index_inserts {
            batch.insert(k, v);
        }
        threads.write(&mut batch)?;
        Ok(batch)
    }
}

/// The record at `key` of `db`, decoded.
fn get<T: DeserializeOwned>(db: &sled::Db, key: &[u8]) -> Result<Option<T>> {
    match db.get(key)? {
        Some(v) => Ok(Some(rmp_serde::from_slice(&v)?)),
        None => Ok(None),
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(rmp_serde::to_vec_named(v)?)
}

/// Who gets mail for an address ([`Store::resolve_recipient`]).
#[derive(Debug, Clone)]
pub enum Resolved {
    Account(Box<AccountRecord>),
    Alias(AliasRecord),
}

/// The form addresses are compared in: local part NFC and lower case,
/// domain lower case. `None` for text that is not `local@domain`.
pub fn canonical_address(addr: &str) -> Option<String> {
    keys::normalize_address(addr)
}

/// DKIM keys a domain can have (one per selector).
pub const MAX_DKIM_KEYS: usize = 8;
/// The longest DKIM selector.
pub const MAX_SELECTOR: usize = 63;

/// Delivery rules an account can have.
pub const MAX_RULES: usize = 100;
/// The longest mailbox name, header name or header text in a rule.
pub const MAX_RULE_TEXT: usize = 1000;

/// Members an alias can have.
pub const MAX_ALIAS_MEMBERS: usize = 1000;
/// Catchall separator characters a domain can have.
pub const MAX_SEPARATORS: usize = 8;

fn normalize_address(addr: &str) -> Result<String> {
    keys::normalize_address(addr)
        .ok_or_else(|| StoreError::Invalid(format!("{addr:?} is not an address (local@domain)")))
}

fn normalize_domain(name: &str) -> Result<String> {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if n.is_empty() || n.contains('@') || n.contains(char::is_whitespace) {
        return Err(StoreError::Invalid(format!(
            "{name:?} is not a domain name"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
