//! The crate's one error type.

/// What a Table Topic can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TableTopicError {
    /// A topic configuration that cannot work; the message names the key and the problem.
    #[error("invalid table topic config: {0}")]
    Config(String),
    /// Reading the topic failed.
    #[error("reading the topic: {0}")]
    Source(String),
    /// A record that cannot become a row (decode or transform failed).
    #[error("offset {offset}: {reason}")]
    Record { offset: i64, reason: String },
    /// The table's schema cannot take a record's schema.
    #[error("schema cannot evolve: {0}")]
    Schema(String),
    /// A table of the same name exists that Floe did not create for this topic.
    #[error("{0}")]
    NotOwned(String),
    /// A broken invariant of the coordinator itself (a bug, not a bad record or a failed read);
    /// the cycle fails and the next one starts from what the table records.
    #[error("internal: {0}")]
    Internal(String),
    /// The catalog or the object store failed.
    #[error("catalog: {0}")]
    Catalog(#[from] floe_catalog::CatalogError),
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Result with the crate's error.
pub type Result<T, E = TableTopicError> = std::result::Result<T, E>;
