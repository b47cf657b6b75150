//! Avro, Protobuf, JSON and Debezium records into Arrow, and the built-in Schema Registry (not built yet: see issue 4).
