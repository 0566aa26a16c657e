//! Message summaries (ENVELOPE, BODYSTRUCTURE): built from a message file
//! when it is stored, or on first need for messages stored before roost
//! kept them. Everything here blocks; callers run it through
//! [`crate::task::blocking`].

use roost_protocols::message::summary::Summary;
use roost_store::{FileId, MessageRecord, StagedFile, Store, StoreError};
use std::sync::Arc;

/// The summary of the stored file `file` (`NotFound` once it is gone).
pub fn of_stored(store: &Store, file: FileId) -> std::io::Result<Summary> {
    let bytes = store.read_content(file)?;
    Ok(Summary::build(&bytes))
}

/// The summary of a staged message.
pub fn of_staged(staged: &StagedFile) -> std::io::Result<Summary> {
    let bytes = staged.source().read_all()?;
    Ok(Summary::build(&bytes))
}

/// The summaries of `records` (`None` where a record is `None` or its file
/// is gone), and those that had to be built, for the account to keep.
pub type Loaded = (Vec<Option<Arc<Summary>>>, Vec<(FileId, Arc<Summary>)>);

pub fn load(store: &Store, records: &[Option<MessageRecord>]) -> Result<Loaded, StoreError> {
    load_with(store, records, false)
}

/// As [`load`]; with `want_preview`, a stored summary without a preview
/// (made before roost kept them) is made again, and kept.
pub fn load_with(
    store: &Store,
    records: &[Option<MessageRecord>],
    want_preview: bool,
) -> Result<Loaded, StoreError> {
    let mut out = Vec::with_capacity(records.len());
    let mut built = Vec::new();
    for rec in records {
        let Some(rec) = rec else {
            out.push(None);
            continue;
        };
        if let Some(s) = store.summary(rec.file)? {
            if !want_preview || s.preview.is_some() {
                out.push(Some(Arc::new(s)));
                continue;
            }
        }
        match of_stored(store, rec.file) {
            Ok(s) => {
                let s = Arc::new(s);
                built.push((rec.file, s.clone()));
                out.push(Some(s));
            }
            // Expunged since the record was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(None),
            Err(e) => {
                return Err(StoreError::Io {
                    path: format!("stored file {}", rec.file).into(),
                    source: e,
                })
            }
        }
    }
    Ok((out, built))
}
