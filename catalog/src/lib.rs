//! Iceberg catalogs: the built-in REST catalog (commits checked and atomic), serving every engine.
//!
//! Modules:
//! - [`catalog`]: namespaces, tables, commits; metadata JSON in the object store.
//! - [`store`]: where the catalog's pointers live (injected; the broker keeps them in the engine).
//! - [`server`]: the Iceberg REST API over the catalog (axum).
//! - [`storage`]: the iceberg crate's file IO on `object_store` (one S3 client for everything).
//! - [`files`]: Parquet data files and position-delete files.
//! - [`names`]: table names, namespace levels and table locations that are safe to store.
//! - [`commit`]: Floe's own snapshots: append, row-delta, replace, expiry.
//! - [`error`]: the crate's error type and its REST form.

pub mod access;
pub mod catalog;
pub mod commit;
pub mod dictionary;
pub mod error;
pub mod files;
pub mod names;
pub mod rest_target;
pub mod server;
pub mod storage;
pub mod store;
pub mod tokens;

pub use catalog::Catalog;
pub use commit::{Change, CommitTarget, Committer};
pub use error::CatalogError;
pub use storage::ObjectStorage;
