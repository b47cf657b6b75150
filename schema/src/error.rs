//! The schema crate's error type, and the per-record error a pipeline sends to a dead-letter table.

/// What can go wrong with schemas and records.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("unsupported schema: {0}")]
    Unsupported(String),
    #[error("cannot decode record: {0}")]
    Decode(String),
    #[error("value does not fit column {column}: {reason}")]
    Mismatch { column: String, reason: String },
    #[error("not in the Confluent wire format: {0}")]
    WireFormat(String),
}

/// A record that could not be turned into a row: where it was and why. It never fails the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// Offset of the record in its partition.
    pub offset: i64,
    pub reason: String,
}

/// Result with the crate's error.
pub type Result<T, E = SchemaError> = std::result::Result<T, E>;
