//! What can go wrong in the store, and what it reports to its caller.

use std::fmt;
use std::path::PathBuf;

use rusqlite::ErrorCode;

/// A failed store operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The outbox is at its bound and nothing may be dropped to make room.
    #[error("outbox full ({rows} rows, {bytes} payload bytes)")]
    Full {
        /// Rows in the outbox.
        rows: u64,
        /// Payload bytes in the outbox.
        bytes: u64,
    },
    /// The file system has no room left (SQLITE_FULL); later writes work once space is freed.
    #[error("disk full")]
    DiskFull,
    /// The database file is damaged.
    #[error("database corrupt: {0}")]
    Corrupt(String),
    /// The database was written by a newer build; it is left untouched.
    #[error("database schema version {found} is newer than this build knows ({known})")]
    FutureSchema {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// Any other SQLite failure.
    #[error("sqlite: {0}")]
    Sqlite(String),
    /// A file-system operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What the OS said.
        message: String,
    },
    /// The store was closed; its writer has stopped.
    #[error("store closed")]
    Closed,
    /// `update_job` named a job that does not exist.
    #[error("no job {0}")]
    NoSuchJob(i64),
    /// `complete_message` named a message with no stored parts (already completed?).
    #[error("no stored parts for message {0}")]
    NoSuchMessage(String),
    /// A multipart SMS part with impossible numbering.
    #[error("invalid SMS part: {0}")]
    InvalidPart(String),
    /// A counter name the store uses itself.
    #[error("counter name {0:?} is reserved by the store")]
    ReservedCounter(String),
    /// A value could not be encoded as JSON.
    #[error("encoding: {0}")]
    Encode(String),
    /// A stored value could not be decoded.
    #[error("stored data unreadable: {0}")]
    Decode(String),
    /// A bug: a task failed or a reply had the wrong shape.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::FromSqlConversionFailure(..) = e {
            // A column the vocabulary does not know (see `store::vocab`).
            return StoreError::Decode(e.to_string());
        }
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Decode(e.to_string())
    }
}

impl StoreError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

/// Something the store did on its own that the caller should raise as an `alarm` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAlarm {
    /// A damaged database was renamed (kept, with its -wal/-shm) and a fresh one started.
    MovedAsideCorrupt {
        /// Where the damaged file now is.
        path: PathBuf,
        /// Why it was judged damaged.
        reason: String,
    },
}

impl fmt::Display for StoreAlarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreAlarm::MovedAsideCorrupt { path, reason } => write!(
                f,
                "database was corrupt ({reason}); moved aside to {} and started empty",
                path.display()
            ),
        }
    }
}
