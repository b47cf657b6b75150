//! Record values into Arrow: Avro, JSON, Protobuf and Debezium envelopes, with stable Iceberg field ids.
//!
//! Pure: decoders take bytes and a schema and return Arrow arrays; no network, no tokio.
//! Modules:
//! - [`value`]: the decoded value model shared by every format; [`arrow`]: values into Arrow arrays.
//! - [`avro`]: Avro schemas (JSON) and the binary decoder.
//! - [`jsonschema`]: JSON Schema into Arrow, and JSON records decoded by it.
//! - [`protobuf`]: Protobuf schemas (`.proto` text, files, descriptor sets) and decoding.
//! - [`json`]: schemaless JSON with an inferred, widening Arrow schema; [`json_doc`]: records parsed borrowing their bytes; [`json_arrow`]: them straight into columns.
//! - [`debezium`]: `flatten_debezium` — change events into row images plus a `_cdc` column.
//! - [`registry`]: the built-in Schema Registry (Confluent REST API) on an injected durable log.
//! - [`simple`]: the `raw` and `string` conversions.
//! - [`source`]: `by_schema_id`/`by_latest_schema` — schemas from a source, compiled and cached.
//! - [`wire`]: the Confluent wire format (magic byte, schema id).
//! - [`evolve`]: schema evolution of a table as record schemas change.
//! - [`http_source`]: an external Schema Registry by URL, as a schema source.
//! - [`ids`]: Iceberg field ids on Arrow fields, stable across schema versions.
//! - [`error`]: the crate's error type and per-record errors.

pub mod arrow;
pub mod avro;
pub mod debezium;
pub mod error;
pub mod evolve;
pub mod http_source;
pub mod ids;
pub mod json;
pub mod json_arrow;
pub mod json_doc;
pub mod jsonschema;
pub mod protobuf;
pub mod registry;
pub mod simple;
pub mod source;
pub mod value;
pub mod wire;

pub use error::{RecordError, SchemaError};
pub use value::Value;
