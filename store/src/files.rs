//! Staging a message while it streams in (in memory, or in `tmp/` when
//! large), message files under `msg/<shard>/<file id>` (queued messages,
//! and mailbox messages stored before segments), hard-linking copies, the
//! directory fsyncs that make a rename durable, and reading a stored
//! message.
//!
//! Sessions stage concurrently and fsync nothing: a mailbox commit copies
//! the staged bytes into a segment (`segments.rs`) and fsyncs it once for
//! all its messages; the queue writes each message to its own file and
//! fsyncs it. A message file is written once and never changed. This
//! module knows nothing of the index.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::records::FileId;
use crate::Counters;

/// Files per shard directory: consecutive file ids share a directory, so a
/// group commit touches one or two.
pub const FILES_PER_SHARD: u64 = 1024;

/// The shard directory name of a file: `file_id / 1024` in lower-case hex.
pub(crate) fn shard_name(id: FileId) -> String {
    format!("{:x}", id.0 / FILES_PER_SHARD)
}

/// `msg/<shard>/<file id>`.
pub(crate) fn message_path(msg_dir: &Path, id: FileId) -> PathBuf {
    msg_dir.join(shard_name(id)).join(id.0.to_string())
}

/// Removes everything inside `tmp`: staged files whose session or commit
/// never finished.
pub(crate) fn empty_dir(tmp: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(tmp).map_err(|e| StoreError::io(tmp, e))? {
        let path = entry.map_err(|e| StoreError::io(tmp, e))?.path();
        let res = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        res.map_err(|e| StoreError::io(&path, e))?;
        removed += 1;
    }
    Ok(removed)
}

/// Opens `dir` and fsyncs it, making renames and links inside it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(path, e)),
        _ => Ok(()),
    }
}

/// The largest message kept in memory while it is staged; a larger one
/// spills into a file in `tmp/`. Most mail is smaller, and a message in
/// memory costs no inode to create and unlink.
pub const MAX_STAGED_IN_MEMORY: usize = 128 * 1024;

/// Bytes all staged messages of the store may hold in memory at once;
/// past it, new staging spills to files however small the message.
pub const STAGED_MEMORY_BUDGET: u64 = 64 * 1024 * 1024;

/// A message being staged: in memory up to [`MAX_STAGED_IN_MEMORY`] (and
/// while the store's [`STAGED_MEMORY_BUDGET`] allows), then in a file in
/// `tmp/`. Dropping it before [`finish`](StagedWriter::finish) releases
/// both.
#[derive(Debug)]
pub struct StagedWriter {
    /// The message while it is in memory.
    memory: Vec<u8>,
    /// What this writer holds of the store's budget: `memory`'s capacity,
    /// not only its length (a growing vector holds up to twice that).
    counted: usize,
    file: Option<BufWriter<File>>,
    /// Where a spilled message goes; emptied once a `StagedFile` owns it.
    path: PathBuf,
    /// The file at `path` exists (it is removed on drop).
    created: bool,
    size: u64,
    counters: Arc<Counters>,
}

impl StagedWriter {
    pub(crate) fn new(path: PathBuf, counters: Arc<Counters>) -> StagedWriter {
        StagedWriter {
            memory: Vec::new(),
            counted: 0,
            file: None,
            path,
            created: false,
            size: 0,
            counters,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `buf` if it stays in memory (within
    /// [`MAX_STAGED_IN_MEMORY`] and the store's budget), doing no I/O;
    /// false, with nothing written, if it would go to a file.
    pub fn write_in_memory(&mut self, buf: &[u8]) -> bool {
        let needed = self.memory.len() + buf.len();
        if self.file.is_some() || needed > MAX_STAGED_IN_MEMORY {
            return false;
        }
        if needed > self.memory.capacity() {
            // Doubling, as a vector grows, but never past the message
            // limit, and only with budget for all of the new capacity.
            let cap = needed
                .max(self.memory.capacity().saturating_mul(2))
                .min(MAX_STAGED_IN_MEMORY);
            if !self.reserve(cap - self.counted) {
                return false;
            }
            self.memory.reserve_exact(cap - self.memory.len());
            self.recount();
        }
        self.memory.extend_from_slice(buf);
        self.size += buf.len() as u64;
        true
    }

    /// Brings `counted` to `memory`'s capacity (an allocator may give a
    /// little more than asked, or `shrink_to_fit` less).
    fn recount(&mut self) {
        let (cap, budget) = (self.memory.capacity(), &self.counters.staged_memory);
        if cap > self.counted {
            budget.fetch_add((cap - self.counted) as u64, Ordering::Relaxed);
        } else {
            budget.fetch_sub((self.counted - cap) as u64, Ordering::Relaxed);
        }
        self.counted = cap;
    }

    /// Takes `n` more bytes of the memory budget, or says no.
    fn reserve(&mut self, n: usize) -> bool {
        let budget = &self.counters.staged_memory;
        let mut now = budget.load(Ordering::Relaxed);
        loop {
            if now + n as u64 > STAGED_MEMORY_BUDGET {
                return false;
            }
            match budget.compare_exchange_weak(
                now,
                now + n as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.counted += n;
                    return true;
                }
                Err(seen) => now = seen,
            }
        }
    }

    /// Gives back the budget `memory` holds and empties it.
    fn release(&mut self) {
        self.memory = Vec::new();
        self.recount();
    }

    /// Moves what memory holds into a new file in `tmp/`.
    fn spill(&mut self) -> io::Result<()> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&self.path)?;
        self.created = true;
        let mut w = BufWriter::new(file);
        w.write_all(&self.memory)?;
        self.file = Some(w);
        self.release();
        Ok(())
    }

    /// The staged message, ready for a commit. Nothing is fsynced here:
    /// the commit copies the bytes into a segment and fsyncs that once for
    /// every message it stores (or, for the queue, fsyncs the file it
    /// places).
    pub fn finish(mut self) -> Result<StagedFile> {
        let size = self.size;
        if let Some(buffered) = self.file.take() {
            buffered
                .into_inner()
                .map_err(|e| StoreError::io(&self.path, e.into_error()))?;
            // Ownership of the temporary file passes to the StagedFile.
            let path = std::mem::take(&mut self.path);
            return Ok(StagedFile {
                body: Body::File(path),
                size,
            });
        }
        // Held until the commit: no more than its length, if the
        // allocator allows; the budget it holds passes to the `Held`.
        self.memory.shrink_to_fit();
        self.recount();
        let counted = std::mem::take(&mut self.counted);
        Ok(StagedFile {
            body: Body::Memory(Arc::new(Held {
                bytes: std::mem::take(&mut self.memory),
                counted,
                counters: Arc::clone(&self.counters),
            })),
            size,
        })
    }
}

impl Write for StagedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.write_in_memory(buf) {
            return Ok(buf.len());
        }
        if self.file.is_none() {
            self.spill()?;
        }
        let Some(f) = self.file.as_mut() else {
            return Err(io::Error::other("staged message has no file"));
        };
        let n = f.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for StagedWriter {
    fn drop(&mut self) {
        self.release();
        // Close before unlinking; an empty path means ownership moved on.
        self.file = None;
        if self.created && !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Staged bytes in memory, holding `counted` (their capacity) of the
/// budget.
#[derive(Debug)]
struct Held {
    bytes: Vec<u8>,
    counted: usize,
    counters: Arc<Counters>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counters
            .staged_memory
            .fetch_sub(self.counted as u64, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone)]
enum Body {
    Memory(Arc<Held>),
    /// A file in `tmp/`, removed when the last owner lets go.
    File(PathBuf),
}

/// A complete staged message, waiting for a commit. Dropping it unused
/// releases its memory or removes its file; a commit consumes it.
#[derive(Debug)]
pub struct StagedFile {
    body: Body,
    size: u64,
}

/// A way to read a staged message's bytes that can move to another
/// thread while its [`StagedFile`] stays where it is.
#[derive(Debug, Clone)]
pub struct StagedSource(Body);

impl StagedSource {
    /// Up to `max` bytes from the start.
    pub fn read_to_vec(&self, max: u64) -> io::Result<Vec<u8>> {
        use std::io::Read;
        match &self.0 {
            Body::Memory(held) => {
                let end = held
                    .bytes
                    .len()
                    .min(usize::try_from(max).unwrap_or(usize::MAX));
                Ok(held.bytes[..end].to_vec())
            }
            Body::File(path) => {
                let mut out = Vec::new();
                File::open(path)?.take(max).read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    /// The whole message.
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        self.read_to_vec(u64::MAX)
    }
}

impl StagedFile {
    /// A second staged message with the same bytes: memory is shared, a
    /// file is hard-linked, so no byte is written twice.
    pub(crate) fn link_copy(&self, to: PathBuf) -> std::io::Result<StagedFile> {
        let body = match &self.body {
            Body::Memory(held) => Body::Memory(Arc::clone(held)),
            Body::File(path) => {
                std::fs::hard_link(path, &to)?;
                Body::File(to)
            }
        };
        Ok(StagedFile {
            body,
            size: self.size,
        })
    }

    /// The staged bytes, for a session that wants to parse them before
    /// handing them to the account actor.
    pub fn source(&self) -> StagedSource {
        StagedSource(self.body.clone())
    }

    /// The message's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True if the bytes are in a file in `tmp/` rather than in memory.
    #[cfg(test)]
    pub(crate) fn in_file(&self) -> bool {
        matches!(self.body, Body::File(_))
    }

    /// Writes the bytes to `out`, which is positioned where they go.
    pub(crate) fn copy_to(&self, out: &mut File) -> io::Result<u64> {
        match &self.body {
            Body::Memory(held) => {
                out.write_all(&held.bytes)?;
                Ok(held.bytes.len() as u64)
            }
            Body::File(path) => io::copy(&mut File::open(path)?, out),
        }
    }

    /// Makes the bytes a durable file at `to` (which must not exist): a
    /// file in `tmp/` is fsynced and renamed, bytes in memory written and
    /// fsynced. The directory is the caller's to fsync.
    pub(crate) fn materialize(mut self, to: &Path, counters: &Counters) -> Result<()> {
        match &mut self.body {
            Body::File(path) => {
                File::open(&*path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| StoreError::io(&*path, e))?;
                fs::rename(&*path, to).map_err(|e| StoreError::io(to, e))?;
                // Renamed away: nothing left to remove.
                *path = PathBuf::new();
            }
            Body::Memory(held) => {
                let mut f = File::options()
                    .write(true)
                    .create_new(true)
                    .open(to)
                    .map_err(|e| StoreError::io(to, e))?;
                if let Err(e) = f.write_all(&held.bytes).and_then(|()| f.sync_all()) {
                    // Not placed: nothing of it may stay under its id.
                    let _ = fs::remove_file(to);
                    return Err(StoreError::io(to, e));
                }
            }
        }
        counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Body::File(path) = &self.body {
            if !path.as_os_str().is_empty() {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// Places the files of one commit, remembering which directories need an
/// fsync and what to undo if the commit fails before the index is written.
pub(crate) struct Placer<'a> {
    msg_dir: &'a Path,
    dirty_dirs: BTreeSet<PathBuf>,
    placed: Vec<PathBuf>,
}

impl<'a> Placer<'a> {
    pub(crate) fn new(msg_dir: &'a Path) -> Placer<'a> {
        Placer {
            msg_dir,
            dirty_dirs: BTreeSet::new(),
            placed: Vec::new(),
        }
    }

    /// Creates the shard directory of `id` if needed. A new directory's own
    /// entry lives in `msg/`, so `msg/` joins the directories to fsync.
    fn shard_for(&mut self, id: FileId) -> Result<PathBuf> {
        let shard = self.msg_dir.join(shard_name(id));
        match fs::create_dir(&shard) {
            Ok(()) => {
                self.dirty_dirs.insert(self.msg_dir.to_path_buf());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io(&shard, e)),
        }
        self.dirty_dirs.insert(shard.clone());
        Ok(shard)
    }

    fn target(&mut self, id: FileId) -> Result<PathBuf> {
        let path = self.shard_for(id)?.join(id.0.to_string());
        // Message files are immutable; a second file under one id is a bug
        // in the caller, and renaming over the first would lose it.
        if path.exists() {
            return Err(StoreError::AlreadyExists(format!("message file {}", id)));
        }
        Ok(path)
    }

    /// Makes a staged message a durable file in its place.
    pub(crate) fn place(
        &mut self,
        staged: StagedFile,
        id: FileId,
        counters: &Counters,
    ) -> Result<()> {
        let to = self.target(id)?;
        staged.materialize(&to, counters)?;
        self.placed.push(to);
        Ok(())
    }

    /// Hard-links an existing message file under a new id (COPY, MOVE).
    pub(crate) fn link(&mut self, existing: FileId, new: FileId) -> Result<()> {
        let from = message_path(self.msg_dir, existing);
        let to = self.target(new)?;
        fs::hard_link(&from, &to).map_err(|e| StoreError::io(&from, e))?;
        self.placed.push(to);
        Ok(())
    }

    /// Fsyncs each directory that gained an entry, once. Returns how many.
    pub(crate) fn sync_dirs(&self) -> Result<usize> {
        for dir in &self.dirty_dirs {
            sync_dir(dir)?;
        }
        Ok(self.dirty_dirs.len())
    }

    /// Best-effort removal of what this commit placed, after a failure that
    /// left the index untouched, so no file exists without its record.
    pub(crate) fn undo(self) {
        for path in &self.placed {
            if let Err(e) = remove_if_present(path) {
                tracing::warn!(error = %e, "could not remove a file of a failed commit");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_group_consecutive_ids() {
        assert_eq!(shard_name(FileId(0)), "0");
        assert_eq!(shard_name(FileId(FILES_PER_SHARD - 1)), "0");
        assert_eq!(shard_name(FileId(FILES_PER_SHARD)), "1");
        assert_eq!(shard_name(FileId(FILES_PER_SHARD * 255)), "ff");
        assert_eq!(
            message_path(Path::new("/d/msg"), FileId(2049)),
            PathBuf::from("/d/msg/2/2049")
        );
    }
}

/// An open stored message as a client sees it: the header prefix roost
/// added at delivery, then the immutable file. Reads are positional, so a
/// session can send a large message a chunk at a time without holding it
/// whole; the open file keeps its bytes readable even if the message is
/// expunged meanwhile.
#[derive(Debug)]
pub struct MessageReader {
    prefix: Vec<u8>,
    file: File,
    path: PathBuf,
    /// Where the message's bytes start in `file` (0 for a message file,
    /// the slice's offset in a segment).
    base: u64,
    len: u64,
    /// Keeps a segment slice from being punched while this reader lives.
    _hold: Option<crate::segments::SliceHold>,
}

impl MessageReader {
    pub(crate) fn open(prefix: Vec<u8>, path: PathBuf) -> Result<MessageReader> {
        let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let file_len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        Ok(MessageReader {
            len: prefix.len() as u64 + file_len,
            prefix,
            file,
            path,
            base: 0,
            _hold: None,
        })
    }

    /// A message whose bytes are a slice of a segment.
    pub(crate) fn of_slice(
        prefix: Vec<u8>,
        path: PathBuf,
        file: File,
        slice: crate::segments::Slice,
        hold: crate::segments::SliceHold,
    ) -> MessageReader {
        MessageReader {
            len: prefix.len() as u64 + slice.len,
            prefix,
            file,
            path,
            base: slice.offset,
            _hold: Some(hold),
        }
    }

    /// Size of the whole message, prefix included.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `max` bytes from offset `start` (fewer only at the end).
    pub fn read_at(&self, start: u64, max: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let end = self.len.min(start.saturating_add(max as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let plen = self.prefix.len() as u64;
        if start < plen {
            out.extend_from_slice(&self.prefix[start as usize..end.min(plen) as usize]);
        }
        let from = start.max(plen);
        if from < end {
            let at = out.len();
            out.resize(at + (end - from) as usize, 0);
            self.file
                .read_exact_at(&mut out[at..], self.base + from - plen)
                .map_err(|e| StoreError::io(&self.path, e))?;
        }
        Ok(out)
    }

    /// The whole message.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.read_at(0, self.len as usize)
    }
}
