//! Transactions (KIP-98, KIP-447): the coordinator (per-id state machine, partitioned durable log, two-phase ends with markers) and a partition's transaction index (LSO, aborted transactions for read_committed). See `docs/design/0002-transactions.md`.

pub mod coordinator;
pub mod index;
pub mod log;
pub mod markers;
pub mod metadata;
pub mod offsets;
pub mod verify;
