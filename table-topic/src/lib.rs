//! Table Topics: Kafka records into Iceberg snapshots, exactly once (not built yet: see issue 6).
