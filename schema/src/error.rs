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
    /// A Debezium delete whose row image is missing: only the record key names the row.
    #[error("cannot decode record: {0}")]
    KeylessDelete(String),
    #[error("value does not fit column {column}: {reason}")]
    Mismatch { column: String, reason: String },
    #[error("not in the Confluent wire format: {0}")]
    WireFormat(String),
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {1} not found for subject '{0}'.")]
    VersionNotFound(String, String),
    #[error("Schema not found: {0}")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level: {0}")]
    InvalidCompatibility(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {reason}")]
    Incompatible { subject: String, reason: String },
    #[error("Error in the backend data store: {0}")]
    Store(String),
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
