//! The catalog's one error type, and its REST form (`ErrorModel`: message, type, code).

/// What a catalog call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("Namespace does not exist: {0}")]
    NoSuchNamespace(String),
    #[error("Namespace already exists: {0}")]
    NamespaceExists(String),
    #[error("Namespace is not empty: {0}")]
    NamespaceNotEmpty(String),
    #[error("Table does not exist: {0}")]
    NoSuchTable(String),
    #[error("Table already exists: {0}")]
    TableExists(String),
    #[error("Commit failed: {0}")]
    CommitFailed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("not authorized")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
}

impl CatalogError {
    /// (HTTP status, exception type) as the REST spec names them.
    pub fn rest(&self) -> (u16, &'static str) {
        match self {
            CatalogError::NoSuchNamespace(_) => (404, "NoSuchNamespaceException"),
            CatalogError::NoSuchTable(_) => (404, "NoSuchTableException"),
            CatalogError::NamespaceExists(_) | CatalogError::TableExists(_) => (409, "AlreadyExistsException"),
            CatalogError::NamespaceNotEmpty(_) => (409, "NamespaceNotEmptyException"),
            CatalogError::CommitFailed(_) => (409, "CommitFailedException"),
            CatalogError::BadRequest(_) | CatalogError::Iceberg(_) => (400, "BadRequestException"),
            CatalogError::Unauthorized => (401, "NotAuthorizedException"),
            CatalogError::Forbidden(_) => (403, "ForbiddenException"),
            CatalogError::Storage(_) => (500, "ServiceFailureException"),
        }
    }
}

/// Result with the catalog's error.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
