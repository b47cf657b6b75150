//! Floe's Kafka-compatible broker: the wire protocol, topics, groups, producers, on the storage engine.
//!
//! Modules:
//! - [`admin`]: health and Prometheus metrics on the admin listener.
//! - [`broker`]: the `Broker` component, its builder and background tasks.
//! - [`listen`]: binding the named Kafka listeners; [`server`], [`connection`]: the listener and the per-connection request loop; [`decode`]:
//!   request decoding under an allocation budget (with the guarded global allocator below).
//! - [`handlers`]: one function per Kafka API, and the version table.
//! - [`topics`], [`topic_config`], [`partition`]: topics, their configs, partitions.
//! - [`records`]: record batch validation (stored as received); [`cleaner`]: log compaction of
//!   `cleanup.policy=compact` topics.
//! - [`groups`]: the consumer group coordinator; [`state`]: durable offsets and producer state;
//!   [`expiry`]: offsets and groups past the offsets retention.
//! - [`catalog_store`]: the Iceberg catalog's pointers in the engine's metadata.
//! - [`schema_log`]: the Schema Registry's log on a storage stream.
//! - [`security`]: named listeners, TLS, SASL and SCRAM users.
//! - [`cluster`]: cluster mode on etcd (membership, placement, moves, recovery, balancing,
//!   requests between brokers).
//! - [`txn`]: transactions (the coordinator, its log, markers, verification).
//! - [`settings`], [`units`]: settings from file, `FLOE_*` and flags; [`error`]: the one error type.

pub mod admin;
pub mod broker;
pub mod catalog_store;
pub mod cleaner;
pub mod cli;
pub mod cluster;
pub mod connection;
pub mod decode;
pub mod error;
pub mod expiry;
pub mod groups;
pub mod handlers;
pub mod heap;
pub mod listen;
pub mod partition;
pub mod records;
pub mod reference;
pub mod request_metrics;
pub mod schema_log;
pub mod security;
pub mod server;
pub mod settings;
pub mod state;
pub mod table_source;
pub mod topic_config;
pub mod topics;
pub mod txn;
pub mod units;

/// Every binary and test that links the broker decodes requests under an allocation guard.
#[global_allocator]
static ALLOCATOR: floe_alloc_guard::GuardedAlloc = floe_alloc_guard::GuardedAlloc;

pub use broker::{Broker, BrokerBuilder, Clock, SystemClock};
pub use error::BrokerError;
pub use settings::Settings;
