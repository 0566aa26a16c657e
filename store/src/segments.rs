//! Message contents in append-only segment files.
//!
//! A commit appends the bytes of every message it stores to the active
//! segment (`seg/<id>`, hex) and fsyncs it once, so a group commit of many
//! messages creates no inode and spends one data fsync. The index maps each
//! file id to its [`Slice`] (`CONTENT`), and each slice to its length and
//! how many file ids share it (`SLICE`; COPY adds a file id to a slice
//! instead of writing the bytes again). Bytes are never changed in place.
//!
//! Reclaiming: when a slice's last file id goes, and the commit that
//! removed it is durable, its bytes are punched out of the segment
//! (`fallocate(PUNCH_HOLE)`) together with the dead bytes around it, up to
//! the live or kept slices on either side (bytes of a commit that failed
//! or crashed after its append, and parts of disk blocks its neighbours
//! shared); a sealed segment with no live slice left is removed. Kept are
//! slices a reader has open (punched once the last reader lets go, at a
//! later commit) and slices whose removal is applied but not yet durable
//! (a crash would bring them back).
//!
//! Ordering: appends, the segment fsync and the index batch that names the
//! new slices happen under one lock, which working out a punch also takes,
//! so a punch never meets bytes that are written but not yet indexed.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::files::StagedFile;
use crate::keys;
use crate::records::FileId;

/// A segment is sealed and a new one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// The largest file system block size punching rounds the end of a file
/// up to.
const BLOCK: u64 = 64 * 1024;

/// Where one message's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Slice {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

impl Slice {
    fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A slice's entry in the index: its length and the file ids sharing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SliceUse {
    pub len: u64,
    pub refs: u32,
}

/// `seg/<id>`.
pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}"))
}

/// The slice `file` names in the index, if any.
pub(crate) fn content_of(db: &sled::Db, file: FileId) -> Result<Option<Slice>> {
    crate::get(db, &keys::content(file))
}

/// The index entry of the slice at `offset` of `segment`, if any.
pub(crate) fn use_of(db: &sled::Db, segment: u64, offset: u64) -> Result<Option<SliceUse>> {
    crate::get(db, &keys::slice(segment, offset))
}

#[derive(Debug)]
struct Active {
    id: u64,
    file: File,
    size: u64,
}

#[derive(Debug, Default)]
struct Readers {
    /// Slices readers have open: (segment, offset) -> (length, readers).
    open: HashMap<(u64, u64), (u64, usize)>,
    /// Dead slices not yet punched because a reader had them open.
    deferred: Vec<Slice>,
    /// Slices whose removal a commit has applied but not yet flushed: a
    /// crash could bring them back, so their bytes stay until that
    /// commit's own reclaim.
    pending: Vec<Slice>,
    /// Sealed segments not yet checked for being empty.
    sealed: Vec<u64>,
}

impl Readers {
    /// Forgets `dead` as pending: their commit is durable, or never
    /// applied.
    fn no_longer_pending(&mut self, dead: &[Slice]) {
        for d in dead {
            if let Some(i) = self.pending.iter().position(|p| p == d) {
                self.pending.swap_remove(i);
            }
        }
    }

    /// Slices of `segment` whose bytes must stay for now (open, waiting
    /// for a reader, or removed by a commit not yet durable), as
    /// (offset, length).
    fn kept(&self, segment: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let open = self
            .open
            .iter()
            .filter(move |(o, _)| o.0 == segment)
            .map(|(o, v)| (o.1, v.0));
        let waiting = self
            .deferred
            .iter()
            .chain(&self.pending)
            .filter(move |d| d.segment == segment)
            .map(|d| (d.offset, d.len));
        open.chain(waiting)
    }
}

/// The segment files of one store.
#[derive(Debug)]
pub(crate) struct Segments {
    dir: PathBuf,
    /// The append lock (see the module's ordering note).
    active: Mutex<Option<Active>>,
    readers: Arc<Mutex<Readers>>,
}

/// The append lock, held from the first append of a commit until its
/// index batch is applied.
pub(crate) struct Appender<'a> {
    segments: &'a Segments,
    guard: MutexGuard<'a, Option<Active>>,
    /// Bytes appended since the last sync.
    unsynced: bool,
    /// A new segment file was created: `seg/` needs an fsync.
    created: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Segments {
    /// Opens `dir`, removing segment files no slice refers to (left by a
    /// commit that crashed before its index batch, or sealed and emptied
    /// when a crash came before their removal).
    pub(crate) fn open(dir: PathBuf, db: &sled::Db) -> Result<Segments> {
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            if let Some(parent) = dir.parent() {
                crate::files::sync_dir(parent)?;
            }
        }
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let path = entry.map_err(|e| StoreError::io(&dir, e))?.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| u64::from_str_radix(n, 16).ok());
            let Some(id) = id else { continue };
            if db.scan_prefix(keys::segment_prefix(id)).next().is_none() {
                crate::files::remove_if_present(&path)?;
                tracing::info!(segment = id, "removed a segment no message uses");
            }
        }
        Ok(Segments {
            dir,
            active: Mutex::new(None),
            readers: Default::default(),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn appender(&self) -> Appender<'_> {
        Appender {
            segments: self,
            guard: lock(&self.active),
            unsynced: false,
            created: false,
        }
    }

    /// The slice of `file`, opened for reading and held against punching
    /// until the returned guard drops; `None` if the file has no slice.
    pub(crate) fn open_slice(
        &self,
        db: &sled::Db,
        file: FileId,
    ) -> Result<Option<(File, Slice, SliceHold)>> {
        let mut r = lock(&self.readers);
        // Looked up under the readers' lock: a punch (which also takes it)
        // either happened before, and the key is gone, or waits for the
        // hold to drop.
        let Some(slice) = content_of(db, file)? else {
            return Ok(None);
        };
        let path = segment_path(&self.dir, slice.segment);
        let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let entry = r
            .open
            .entry((slice.segment, slice.offset))
            .or_insert((slice.len, 0));
        entry.1 += 1;
        let hold = SliceHold {
            readers: Arc::clone(&self.readers),
            at: (slice.segment, slice.offset),
        };
        Ok(Some((f, slice, hold)))
    }

    /// Notes slices a commit is about to remove from the index, before it
    /// applies its batch; their bytes stay until [`Segments::reclaim`]
    /// for them, which runs once that commit is durable.
    pub(crate) fn removing(&self, dead: &[Slice]) {
        if !dead.is_empty() {
            lock(&self.readers).pending.extend_from_slice(dead);
        }
    }

    /// Takes back [`Segments::removing`] for a batch that was not applied.
    pub(crate) fn not_removing(&self, dead: &[Slice]) {
        lock(&self.readers).no_longer_pending(dead);
    }

    /// Punches out `dead` slices (passed to [`Segments::removing`] before
    /// their commit applied its batch; now durable), and removes sealed
    /// segments left without a live slice. Slices a reader holds wait for
    /// a later call. Failures are logged: the index is already right, and
    /// the bytes are only space.
    pub(crate) fn reclaim(&self, db: &sled::Db, dead: Vec<Slice>) {
        // Most commits remove nothing: they need not wait for the append
        // lock (another commit's segment fsync) to find that out.
        {
            let r = lock(&self.readers);
            if dead.is_empty() && r.deferred.is_empty() && r.sealed.is_empty() {
                return;
            }
        }
        let active = lock(&self.active);
        let active_id = active.as_ref().map(|a| a.id);
        let mut r = lock(&self.readers);
        r.no_longer_pending(&dead);
        let mut todo = std::mem::take(&mut r.deferred);
        todo.extend(dead);
        let mut emptied = std::mem::take(&mut r.sealed);
        let mut punches = Vec::new();
        for s in todo {
            let held = r.open.iter().any(|(o, v)| {
                o.0 == s.segment && (o.1 == s.offset || (o.1 < s.end() && o.1 + v.0 > s.offset))
            });
            if held {
                r.deferred.push(s);
                continue;
            }
            match self.dead_around(db, &r, s) {
                Ok(range) => punches.push((s, range)),
                Err(e) => {
                    tracing::warn!(error = %e, segment = s.segment, "could not reclaim a slice")
                }
            }
            if !emptied.contains(&s.segment) {
                emptied.push(s.segment);
            }
        }
        // The ranges hold no byte a reader can still open (those are live
        // or kept), so readers need not wait for the punches; appends do.
        drop(r);
        for (s, (from, to)) in punches {
            if let Err(e) = self.punch(s.segment, from, to) {
                tracing::warn!(error = %e, segment = s.segment, "could not reclaim a slice");
            }
        }
        let mut r = lock(&self.readers);
        for seg in emptied {
            if Some(seg) == active_id {
                continue;
            }
            let live = db.scan_prefix(keys::segment_prefix(seg)).next().is_some();
            if live {
                continue;
            }
            if r.kept(seg).next().is_some() {
                // Checked again once what holds it lets go.
                r.sealed.push(seg);
                continue;
            }
            let path = segment_path(&self.dir, seg);
            if let Err(e) = crate::files::remove_if_present(&path) {
                tracing::warn!(error = %e, segment = seg, "could not remove an empty segment");
            }
        }
    }

    /// The dead bytes around dead slice `s`: from the end of the live or
    /// kept slice before it to the start of the one after it (`None`: the
    /// end of the file). Called under the append lock, so every byte not
    /// in an indexed slice, and not kept, is dead.
    fn dead_around(&self, db: &sled::Db, r: &Readers, s: Slice) -> Result<(u64, Option<u64>)> {
        let mut from = 0;
        let below = db
            .range(keys::segment_prefix(s.segment)..keys::slice(s.segment, s.offset))
            .next_back();
        if let Some(kv) = below {
            let (k, v) = kv?;
            let u: SliceUse = rmp_serde::from_slice(&v)?;
            from = keys::slice_of(&k).map_or(0, |(_, off)| off + u.len);
        }
        let mut to = None;
        let above = db
            .range(keys::slice(s.segment, s.offset + 1)..keys::segment_prefix(s.segment + 1))
            .next();
        if let Some(kv) = above {
            to = keys::slice_of(&kv?.0).map(|(_, off)| off);
        }
        for (off, len) in r.kept(s.segment) {
            if off + len <= s.offset {
                from = from.max(off + len);
            } else if off >= s.end() {
                to = Some(to.map_or(off, |t: u64| t.min(off)));
            }
        }
        Ok((from.min(s.offset), to.map(|t| t.max(s.end()))))
    }

    /// Punches `[from, to)` of `segment` (`to` `None`: to the end of the
    /// file).
    fn punch(&self, segment: u64, from: u64, to: Option<u64>) -> Result<()> {
        let path = segment_path(&self.dir, segment);
        let f = match File::options().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        // Nothing above: past the end of the file, to a whole block, so
        // the file system frees the last, partly used block as well (the
        // file keeps its size).
        let to = match to {
            Some(t) => t,
            None => {
                let len = f.metadata().map_err(|e| StoreError::io(&path, e))?.len();
                len.div_ceil(BLOCK) * BLOCK
            }
        };
        punch_hole(&f, from, to.saturating_sub(from)).map_err(|e| StoreError::io(&path, e))
    }
}

/// Frees the disk blocks of `len` bytes at `offset`; reads of them give
/// zeros and the file keeps its size.
fn punch_hole(f: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    if len == 0 {
        return Ok(());
    }
    let mode = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    fallocate(f, mode, offset, len).map_err(io::Error::from)
}

/// Keeps a slice from being punched while a reader has it open.
#[derive(Debug)]
pub(crate) struct SliceHold {
    readers: Arc<Mutex<Readers>>,
    at: (u64, u64),
}

impl Drop for SliceHold {
    fn drop(&mut self) {
        let mut r = lock(&self.readers);
        if let Some(e) = r.open.get_mut(&self.at) {
            e.1 -= 1;
            if e.1 == 0 {
                r.open.remove(&self.at);
            }
        }
    }
}

impl Appender<'_> {
    /// Appends a staged message to the active segment (starting one if
    /// there is none or it is full) and says where it went. Durable only
    /// after [`sync`](Appender::sync).
    pub(crate) fn append(
        &mut self,
        staged: &StagedFile,
        next_id: impl FnOnce() -> Result<u64>,
    ) -> Result<Slice> {
        let full = self.guard.as_ref().is_none_or(|a| a.size >= SEGMENT_BYTES);
        if full {
            let id = next_id()?;
            let path = segment_path(&self.segments.dir, id);
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| StoreError::io(&path, e))?;
            if let Some(old) = self.guard.take() {
                // Its last appends are durable only once synced.
                if self.unsynced {
                    old.file
                        .sync_data()
                        .map_err(|e| StoreError::io(segment_path(&self.segments.dir, old.id), e))?;
                }
                // Emptied while active, it is removed by a later reclaim.
                lock(&self.segments.readers).sealed.push(old.id);
            }
            *self.guard = Some(Active { id, file, size: 0 });
            self.created = true;
        }
        let Some(a) = self.guard.as_mut() else {
            return Err(StoreError::Invalid("no active segment".into()));
        };
        let path = segment_path(&self.segments.dir, a.id);
        let offset = a.size;
        let written = (|| {
            a.file.seek(SeekFrom::Start(offset))?;
            staged.copy_to(&mut a.file)
        })();
        let len = match written {
            Ok(n) if n == staged.size() => n,
            Ok(n) => {
                // The staged file changed under us; what was appended is
                // dead bytes, never indexed. The next commit starts a new
                // segment.
                *self.guard = None;
                return Err(StoreError::Invalid(format!(
                    "staged message was {} bytes, {n} appended",
                    staged.size()
                )));
            }
            Err(e) => {
                *self.guard = None;
                return Err(StoreError::io(&path, e));
            }
        };
        // An empty message still takes a byte of the segment, so no two
        // slices ever share an offset (and an index key).
        a.size = offset + len.max(1);
        self.unsynced = true;
        Ok(Slice {
            segment: a.id,
            offset,
            len,
        })
    }

    /// Makes every append so far durable: one data fsync of the segment,
    /// and one of `seg/` if a segment was created. Returns the fsyncs.
    pub(crate) fn sync(&mut self) -> Result<usize> {
        let mut n = 0;
        if self.unsynced {
            if let Some(a) = self.guard.as_ref() {
                if let Err(e) = a.file.sync_data() {
                    // What the file holds after a failed fsync is unknown:
                    // the next commit starts a new segment.
                    let path = segment_path(&self.segments.dir, a.id);
                    *self.guard = None;
                    return Err(StoreError::io(path, e));
                }
                n += 1;
            }
            self.unsynced = false;
        }
        if self.created {
            crate::files::sync_dir(&self.segments.dir)?;
            self.created = false;
            n += 1;
        }
        Ok(n)
    }
}

/// The content index changes of one commit: which file ids name which
/// slices, and how many file ids each touched slice ends with.
#[derive(Debug, Default)]
pub(crate) struct ContentChanges {
    put: HashMap<FileId, Slice>,
    removed: HashSet<FileId>,
    /// Per slice: the slice, its stored reference count (0 if the commit
    /// appended it), and the change.
    refs: HashMap<(u64, u64), (Slice, u32, i64)>,
}

impl ContentChanges {
    /// `file` names a slice this commit appended.
    pub(crate) fn stored(&mut self, db: &sled::Db, file: FileId, slice: Slice) -> Result<()> {
        self.name(db, file, slice)?;
        self.refs
            .insert((slice.segment, slice.offset), (slice, 0, 1));
        Ok(())
    }

    /// `to` names `slice` too.
    pub(crate) fn link(&mut self, db: &sled::Db, to: FileId, slice: Slice) -> Result<()> {
        self.name(db, to, slice)?;
        self.adjust(db, slice, 1)
    }

    /// Contents are immutable: a file id that names bytes already cannot
    /// name others (a caller's bug, which would lose the first).
    fn name(&mut self, db: &sled::Db, file: FileId, slice: Slice) -> Result<()> {
        if self.slice_of(db, file)?.is_some() {
            return Err(StoreError::AlreadyExists(format!("message file {file}")));
        }
        self.put.insert(file, slice);
        Ok(())
    }

    /// The slice `file` names, as this commit leaves it so far.
    pub(crate) fn slice_of(&self, db: &sled::Db, file: FileId) -> Result<Option<Slice>> {
        if let Some(s) = self.put.get(&file) {
            return Ok(Some(*s));
        }
        if self.removed.contains(&file) {
            return Ok(None);
        }
        content_of(db, file)
    }

    /// Drops each of `files` from the content index; returns those that
    /// have no slice (message files stored before segments).
    pub(crate) fn remove(&mut self, db: &sled::Db, files: &[FileId]) -> Result<Vec<FileId>> {
        let mut plain = Vec::new();
        for &f in files {
            match self.slice_of(db, f)? {
                Some(s) => {
                    self.put.remove(&f);
                    self.removed.insert(f);
                    self.adjust(db, s, -1)?;
                }
                None if self.removed.contains(&f) => {}
                None => plain.push(f),
            }
        }
        Ok(plain)
    }

    fn adjust(&mut self, db: &sled::Db, slice: Slice, delta: i64) -> Result<()> {
        let at = (slice.segment, slice.offset);
        let e = match self.refs.entry(at) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored = use_of(db, slice.segment, slice.offset)?.map_or(0, |u| u.refs);
                v.insert((slice, stored, 0))
            }
        };
        e.2 += delta;
        Ok(())
    }

    /// Writes the changes into `batch`; returns the slices no file id
    /// names any more, to reclaim once the batch is durable.
    pub(crate) fn write(self, batch: &mut sled::Batch) -> Result<Vec<Slice>> {
        for f in &self.removed {
            batch.remove(keys::content(*f));
        }
        for (f, s) in &self.put {
            batch.insert(keys::content(*f), crate::encode(s)?);
        }
        let mut dead = Vec::new();
        for (slice, stored, delta) in self.refs.into_values() {
            let refs = i64::from(stored) + delta;
            let key = keys::slice(slice.segment, slice.offset);
            if refs > 0 {
                let refs = u32::try_from(refs).unwrap_or(u32::MAX);
                let u = SliceUse {
                    len: slice.len,
                    refs,
                };
                batch.insert(key, crate::encode(&u)?);
            } else {
                batch.remove(key);
                dead.push(slice);
            }
        }
        Ok(dead)
    }
}
