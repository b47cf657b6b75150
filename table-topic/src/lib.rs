//! Table Topics: Kafka records into Iceberg snapshots, exactly once — a commit loop per topic.
//!
//! Records come through [`source::RecordSource`] (the broker implements it; this crate does not
//! import the broker). Modules:
//! - [`config`]: the `automq.table.topic.*` keys and their checks.
//! - [`rows`]: records into value columns per conversion and transform.
//! - [`system`]: `_kafka_key`, `_kafka_header`, `_kafka_metadata`.
//! - [`conform`]: a batch fitted to the table's evolved schema.
//! - [`table`]: a table created, evolved and written.
//! - [`offsets`]: the offsets every snapshot records, read back on start and after a conflict.
//! - [`coordinator`]: one table's commit loop; [`manager`]: all of a node's loops.
//! - [`keys`]: upsert keys and the index of live rows behind position deletes.
//! - [`dlq`]: the dead-letter table; [`status`]: what each table reports.

pub mod background;
pub mod config;
pub mod conform;
pub mod coordinator;
pub mod dlq;
pub mod error;
pub mod files;
pub mod keys;
pub mod maintenance;
pub mod manager;
pub mod metrics;
pub mod offsets;
pub mod partitioning;
pub mod rows;
pub mod source;
pub mod status;
pub mod system;
pub mod table;

pub use config::TableConfig;
pub use error::TableTopicError;
pub use manager::TableTopics;
pub use source::{RecordSource, SourceRead, SourceRecord};
pub use status::Status;

/// A wall clock in ms since the Unix epoch, injected (the broker passes its own).
pub type NowMs = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's wall clock.
pub fn system_now_ms() -> NowMs {
    std::sync::Arc::new(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
}
