//! Iceberg catalogs: the built-in REST catalog (commits checked and atomic), serving every engine.
//!
//! Modules:
//! - [`catalog`]: namespaces, tables, commits; metadata JSON in the object store.
//! - [`store`]: where the catalog's pointers live (injected; the broker keeps them in the engine).
//! - [`server`]: the Iceberg REST API over the catalog (axum).
//! - [`error`]: the crate's error type and its REST form.

pub mod catalog;
pub mod error;
pub mod server;
pub mod store;

pub use catalog::Catalog;
pub use error::CatalogError;
