//! The `raw` and `string` conversions: the record value as one binary or UTF-8 column.
//! Invalid UTF-8 is an error for that record, not a panic.

use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::error::{RecordError, Result, SchemaError};

/// The column a raw or string value becomes (AutoMQ's name for it).
pub const VALUE_COLUMN: &str = "_kafka_value";

fn one_column(data_type: DataType, col: ArrayRef) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new(VALUE_COLUMN, data_type, true)]));
    RecordBatch::try_new(schema, vec![col]).map_err(|e| SchemaError::Decode(e.to_string()))
}

/// `raw`: the bytes as they are (a null value stays null), copied once into the column.
pub fn raw_batch(records: &[(i64, Option<&[u8]>)]) -> Result<RecordBatch> {
    let col: BinaryArray = records.iter().map(|(_, v)| *v).collect();
    one_column(DataType::Binary, Arc::new(col))
}

/// `string`: the bytes as UTF-8 text; records that are not UTF-8 become errors.
pub fn string_batch(records: &[(i64, Option<&[u8]>)]) -> Result<(RecordBatch, Vec<RecordError>)> {
    let mut values: Vec<Option<&str>> = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (offset, v) in records {
        match v.map(std::str::from_utf8) {
            None => values.push(None),
            Some(Ok(s)) => values.push(Some(s)),
            Some(Err(e)) => errors.push(RecordError { offset: *offset, reason: format!("not UTF-8: {e}") }),
        }
    }
    let col: StringArray = values.into_iter().collect();
    Ok((one_column(DataType::Utf8, Arc::new(col))?, errors))
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
