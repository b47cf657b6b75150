//! Transactions (issue 16, in progress): the coordinator's per-transactional-id state machine; the coordinator partitions, markers and read_committed follow (see `docs/design/0002-transactions.md`).

pub mod metadata;
