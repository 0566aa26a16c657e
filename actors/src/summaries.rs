//! Message summaries (ENVELOPE, BODYSTRUCTURE): built from a message file
//! when it is stored, or on first need for messages stored before roost
//! kept them. Everything here blocks; callers run it through
//! [`crate::task::blocking`].

use roost_protocols::message::summary::Summary;
use roost_store::{FileId, MessageRecord, Store, StoreError};
use std::path::Path;
use std::sync::Arc;

/// The summary of the message in the file at `path`.
pub fn of_file(path: &Path) -> std::io::Result<Summary> {
    let bytes = std::fs::read(path)?;
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
        match of_file(&store.message_path(rec.file)) {
            Ok(s) => {
                let s = Arc::new(s);
                built.push((rec.file, s.clone()));
                out.push(Some(s));
            }
            // Expunged since the record was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(None),
            Err(e) => {
                return Err(StoreError::Io {
                    path: store.message_path(rec.file),
                    source: e,
                })
            }
        }
    }
    Ok((out, built))
}
