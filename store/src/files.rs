//! Message files on disk: staging a message while it streams in, placing it
//! under `msg/<shard>/<file id>` at commit, hard-linking copies, and the
//! directory fsyncs that make a rename durable.
//!
//! A message file is written once and never changed. Sessions stage into
//! `tmp/` concurrently and fsync their own file; the account actor's commit
//! renames staged files into place and fsyncs each distinct directory once,
//! so a group commit of many messages costs few directory fsyncs. This
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

/// A message being written into `tmp/`. Dropping it before
/// [`finish`](StagedWriter::finish) removes the temporary file.
#[derive(Debug)]
pub struct StagedWriter {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    size: u64,
    counters: Arc<Counters>,
}

impl StagedWriter {
    pub(crate) fn create(path: PathBuf, counters: Arc<Counters>) -> Result<StagedWriter> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(StagedWriter {
            file: Some(BufWriter::new(file)),
            path,
            size: 0,
            counters,
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and fsyncs the file, ready to be placed by a commit.
    pub fn finish(mut self) -> Result<StagedFile> {
        let Some(buffered) = self.file.take() else {
            return Err(StoreError::Invalid("staged writer already finished".into()));
        };
        let path = self.path.clone();
        let file = buffered
            .into_inner()
            .map_err(|e| StoreError::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io(&path, e))?;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        // Ownership of the temporary file passes to the StagedFile.
        let staged = StagedFile {
            path: std::mem::take(&mut self.path),
            size: self.size,
        };
        Ok(staged)
    }
}

impl Write for StagedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("staged writer already finished"))?;
        let n = file.write(buf)?;
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
        // Close before unlinking; an empty path means ownership moved on.
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A complete, fsynced message file in `tmp/`, waiting for a commit.
/// Dropping it unused removes the file; a commit consumes it.
#[derive(Debug)]
pub struct StagedFile {
    path: PathBuf,
    size: u64,
}

impl StagedFile {
    /// A second staged file with the same bytes, as a hard link: the bytes
    /// are already durable, and committing renames the link into place.
    pub(crate) fn link_copy(&self, to: PathBuf) -> std::io::Result<StagedFile> {
        std::fs::hard_link(&self.path, &to)?;
        Ok(StagedFile {
            path: to,
            size: self.size,
        })
    }

    /// Where the staged bytes are, for a session that wants to parse them
    /// before handing them to the account actor.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Gives up ownership of the temporary path (it was renamed away).
    fn disarm(&mut self) {
        self.path = PathBuf::new();
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
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

    /// Renames a staged file to its place.
    pub(crate) fn place(&mut self, mut staged: StagedFile, id: FileId) -> Result<()> {
        let to = self.target(id)?;
        fs::rename(&staged.path, &to).map_err(|e| StoreError::io(&to, e))?;
        staged.disarm();
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

    /// Files placed by this commit so far.
    pub(crate) fn placed(&self) -> usize {
        self.placed.len()
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
    len: u64,
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
        })
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
                .read_exact_at(&mut out[at..], from - plen)
                .map_err(|e| StoreError::io(&self.path, e))?;
        }
        Ok(out)
    }

    /// The whole message.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.read_at(0, self.len as usize)
    }
}
