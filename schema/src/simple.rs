//! The `raw` and `string` conversions: the record value as one binary or UTF-8 column.
//! Invalid UTF-8 is an error for that record, not a panic.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};

use crate::arrow::record_batch;
use crate::error::{RecordError, Result};
use crate::value::Value;

/// The column name a raw or string value gets.
pub const VALUE_COLUMN: &str = "value";

/// `raw`: the bytes as they are (a null value stays null).
pub fn raw_batch(records: &[(i64, Option<&[u8]>)]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new(VALUE_COLUMN, DataType::Binary, true)]));
    let rows: Vec<Value> = records.iter().map(|(_, v)| Value::Record(vec![v.map_or(Value::Null, |b| Value::Bytes(b.to_vec()))])).collect();
    record_batch(schema, &rows)
}

/// `string`: the bytes as UTF-8 text; records that are not UTF-8 become errors.
pub fn string_batch(records: &[(i64, Option<&[u8]>)]) -> Result<(RecordBatch, Vec<RecordError>)> {
    let schema = Arc::new(Schema::new(vec![Field::new(VALUE_COLUMN, DataType::Utf8, true)]));
    let mut rows = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (offset, v) in records {
        match v.map(std::str::from_utf8) {
            None => rows.push(Value::Record(vec![Value::Null])),
            Some(Ok(s)) => rows.push(Value::Record(vec![Value::String(s.to_string())])),
            Some(Err(e)) => errors.push(RecordError { offset: *offset, reason: format!("not UTF-8: {e}") }),
        }
    }
    Ok((record_batch(schema, &rows)?, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_keeps_bytes_and_string_refuses_bad_utf8() {
        let input: Vec<(i64, Option<&[u8]>)> = vec![(1, Some(b"ok")), (2, Some(&[0xff, 0xfe])), (3, None)];
        assert_eq!(raw_batch(&input).expect("raw").num_rows(), 3);
        let (b, errors) = string_batch(&input).expect("string");
        assert_eq!(b.num_rows(), 2);
        assert_eq!(errors.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![2]);
    }
}
