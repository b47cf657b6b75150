//! The dead-letter table: records that could not become rows, kept whole with the reason.

use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::conform::conform;
use crate::source::SourceRecord;
use crate::system;

/// Columns of a dead-letter table: the system columns, the raw value and the error.
pub fn schema() -> Schema {
    let mut fields = system::fields();
    fields.push(Field::new("_kafka_value", DataType::Binary, true));
    fields.push(Field::new("_error", DataType::Utf8, true));
    Schema::new(fields)
}

/// Rows for `letters` (partition, record, reason), in the table's schema `target`.
pub fn batch(target: &SchemaRef, letters: &[(i32, &SourceRecord, &str)]) -> Result<RecordBatch, String> {
    let mut parts: Vec<RecordBatch> = Vec::new();
    // System columns are built per partition.
    let mut partitions: Vec<i32> = letters.iter().map(|l| l.0).collect();
    partitions.sort_unstable();
    partitions.dedup();
    for p in partitions {
        let these: Vec<&(i32, &SourceRecord, &str)> = letters.iter().filter(|l| l.0 == p).collect();
        let recs: Vec<&SourceRecord> = these.iter().map(|l| l.1).collect();
        let mut cols = system::columns(p, &recs)?;
        let values: BinaryArray = these.iter().map(|l| l.1.value.as_deref()).collect();
        let errors: StringArray = these.iter().map(|l| Some(l.2)).collect();
        cols.push(Arc::new(values) as ArrayRef);
        cols.push(Arc::new(errors) as ArrayRef);
        let b = RecordBatch::try_new(Arc::new(schema()), cols).map_err(|e| e.to_string())?;
        parts.push(conform(&b, target)?);
    }
    arrow_select::concat::concat_batches(target, &parts).map_err(|e| e.to_string())
}
