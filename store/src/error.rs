//! The store's one error type. Each variant says what went wrong and, for
//! I/O, which path, so an operator reading a log knows where to look.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The sled index reported an error (disk full, corruption, lock held).
    #[error("index: {0}")]
    Index(#[from] sled::Error),
    /// A record could not be encoded or decoded.
    #[error("record codec: {0}")]
    Codec(String),
    /// The named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The named thing exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request itself is malformed (an address without a domain, ...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// An index flush failed earlier (why, in the field): the store takes
    /// no change that could not be made durable, until it is opened again.
    #[error("index flush failed ({0}): no more changes until roost restarts")]
    Unwritable(String),
}

impl StoreError {
    /// Wraps an I/O error with the path it concerned.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<rmp_serde::encode::Error> for StoreError {
    fn from(e: rmp_serde::encode::Error) -> StoreError {
        StoreError::Codec(e.to_string())
    }
}

impl From<rmp_serde::decode::Error> for StoreError {
    fn from(e: rmp_serde::decode::Error) -> StoreError {
        StoreError::Codec(e.to_string())
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
