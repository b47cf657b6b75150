//! The columns every Table Topic row carries, as AutoMQ names them: `_kafka_key`, `_kafka_header`
//! (map of string to binary) and `_kafka_metadata` (partition, offset, timestamp).

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::{ArrayRef, BinaryArray, Int32Array, Int64Array, StructArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Fields, TimeUnit};

use crate::source::SourceRecord;

pub const KEY: &str = "_kafka_key";
pub const HEADER: &str = "_kafka_header";
pub const METADATA: &str = "_kafka_metadata";

fn metadata_fields() -> Fields {
    Fields::from(vec![
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ])
}

fn map_names() -> MapFieldNames {
    MapFieldNames { entry: "key_value".into(), key: "key".into(), value: "value".into() }
}

/// The three system fields.
pub fn fields() -> Vec<Field> {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Binary, true)])),
        false,
    );
    vec![
        Field::new(KEY, DataType::Binary, true),
        Field::new(HEADER, DataType::Map(Arc::new(entries), false), true),
        Field::new(METADATA, DataType::Struct(metadata_fields()), true),
    ]
}

/// The system columns of `rows` (records of one partition).
pub fn columns(partition: i32, rows: &[&SourceRecord]) -> Result<Vec<ArrayRef>, String> {
    let key: BinaryArray = rows.iter().map(|r| r.key.as_deref()).collect();
    let mut headers = MapBuilder::new(Some(map_names()), StringBuilder::new(), BinaryBuilder::new());
    for r in rows {
        for (k, v) in &r.headers {
            headers.keys().append_value(k);
            headers.values().append_option(v.as_deref());
        }
        headers.append(true).map_err(|e| e.to_string())?;
    }
    let meta = StructArray::try_new(
        metadata_fields(),
        vec![
            Arc::new(Int32Array::from(vec![partition; rows.len()])),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.timestamp_ms.saturating_mul(1000))).with_timezone("UTC")),
        ],
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![Arc::new(key), Arc::new(headers.finish()), Arc::new(meta)])
}

/// The partition and offset columns of a batch's `_kafka_metadata`, when it has them.
pub fn positions(batch: &arrow_array::RecordBatch) -> Option<(&Int32Array, &Int64Array)> {
    let meta = batch.column_by_name(METADATA)?.as_any().downcast_ref::<StructArray>()?;
    Some((meta.column(0).as_any().downcast_ref::<Int32Array>()?, meta.column(1).as_any().downcast_ref::<Int64Array>()?))
}
