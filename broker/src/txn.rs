//! Transactions (issue 16, in progress): the coordinator's per-transactional-id state machine and its partitioned durable log, and a partition's transaction index (LSO, aborted transactions); markers and read_committed follow (see `docs/design/0002-transactions.md`).

pub mod index;
pub mod log;
pub mod metadata;
