//! The storage engine's one error type, and the coarse kinds a caller can act on.

use crate::StreamId;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fenced: a newer owner (epoch {current}) has taken over from epoch {ours}")]
    Fenced { ours: u64, current: u64 },
    #[error("stream {0} does not exist")]
    StreamNotFound(StreamId),
    #[error("stream {0} is not open")]
    StreamNotOpen(StreamId),
    #[error("offset {offset} of stream {stream} is out of range [{start}, {end})")]
    OffsetOutOfRange { stream: StreamId, offset: u64, start: u64, end: u64 },
    #[error("checksum mismatch in {object} at byte {offset}")]
    ChecksumMismatch { object: String, offset: u64 },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata encoding: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a caller can do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong; retrying will not help.
    InvalidInput,
    /// A transient failure; the same call may succeed later.
    Unavailable,
    /// Stored data failed a check.
    Corruption,
    /// Another owner took over.
    Fenced,
    /// A bug or an unexpected state.
    Internal,
}

impl Error {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Fenced { .. } => ErrorKind::Fenced,
            Error::StreamNotFound(_) | Error::StreamNotOpen(_) | Error::OffsetOutOfRange { .. } | Error::InvalidArgument(_) => ErrorKind::InvalidInput,
            Error::ChecksumMismatch { .. } | Error::Corrupt { .. } => ErrorKind::Corruption,
            Error::ShuttingDown | Error::ObjectStore(_) | Error::Io(_) => ErrorKind::Unavailable,
            Error::Json(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt { what: what.into(), reason: reason.into() }
    }
}

/// Result with the engine's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
