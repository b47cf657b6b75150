//! Avro: schemas parsed from their JSON form, mapped to Arrow, and binary records decoded.

mod decode;
mod schema;

pub use decode::{decode, decode_batch};
pub use schema::{AvroField, AvroSchema};
