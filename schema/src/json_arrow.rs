//! Parsed JSON records straight into Arrow columns of an inferred schema, with no value tree in
//! between: the fast path of schemaless JSON. `None` when a value does not fit its column (the
//! caller then converts record by record, so each misfit is an error of its own).

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, NullArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, SchemaRef};
use serde_json::Value as Json;

fn nulls(valid: &[bool]) -> Option<NullBuffer> {
    valid.iter().any(|v| !v).then(|| NullBuffer::from(valid.to_vec()))
}

/// The value when there is one (absent and JSON null are both null).
fn present<'a>(v: &Option<&'a Json>) -> Option<&'a Json> {
    v.filter(|j| !j.is_null())
}

/// The column of type `dt` holding `values` (`None` or JSON null: a null), or `None` when one
/// does not fit.
fn column(values: &[Option<&Json>], dt: &DataType) -> Option<ArrayRef> {
    Some(match dt {
        DataType::Boolean => {
            let vals: Option<BooleanArray> = values.iter().map(|v| present(v).map(|j| j.as_bool().ok_or(())).transpose().ok()).collect();
            Arc::new(vals?)
        }
        DataType::Int32 => {
            let vals: Option<Int32Array> =
                values.iter().map(|v| present(v).map(|j| j.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or(())).transpose().ok()).collect();
            Arc::new(vals?)
        }
        DataType::Int64 => {
            let vals: Option<Int64Array> = values.iter().map(|v| present(v).map(|j| j.as_i64().ok_or(())).transpose().ok()).collect();
            Arc::new(vals?)
        }
        DataType::Float64 => {
            let vals: Option<Float64Array> = values.iter().map(|v| present(v).map(|j| j.as_f64().ok_or(())).transpose().ok()).collect();
            Arc::new(vals?)
        }
        DataType::Utf8 => {
            let vals: Option<StringArray> = values.iter().map(|v| present(v).map(|j| j.as_str().ok_or(())).transpose().ok()).collect();
            Arc::new(vals?)
        }
        DataType::Null => Arc::new(NullArray::new(values.len())),
        DataType::List(f) => {
            let mut lengths = Vec::with_capacity(values.len());
            let mut valid = Vec::with_capacity(values.len());
            let mut items: Vec<Option<&Json>> = Vec::new();
            for v in values {
                match present(v) {
                    None => {
                        lengths.push(0);
                        valid.push(false);
                    }
                    Some(j) => {
                        let a = j.as_array()?;
                        lengths.push(a.len());
                        valid.push(true);
                        items.extend(a.iter().map(Some));
                    }
                }
            }
            let child = column(&items, f.data_type())?;
            Arc::new(ListArray::try_new(f.clone(), OffsetBuffer::from_lengths(lengths), child, nulls(&valid)).ok()?)
        }
        DataType::Struct(fs) => {
            let mut valid = Vec::with_capacity(values.len());
            let mut objects = Vec::with_capacity(values.len());
            for v in values {
                match present(v) {
                    None => {
                        valid.push(false);
                        objects.push(None);
                    }
                    Some(j) => {
                        let o = j.as_object()?;
                        // A field the schema does not know is a misfit, not something to drop.
                        if o.keys().any(|k| fs.find(k).is_none()) {
                            return None;
                        }
                        valid.push(true);
                        objects.push(Some(o));
                    }
                }
            }
            let mut children = Vec::with_capacity(fs.len());
            for f in fs {
                let vals: Vec<Option<&Json>> = objects.iter().map(|o| o.and_then(|o| o.get(f.name()))).collect();
                children.push(column(&vals, f.data_type())?);
            }
            Arc::new(StructArray::try_new(fs.clone(), children, nulls(&valid)).ok()?)
        }
        _ => return None,
    })
}

/// The records (JSON objects) as a batch of `schema`, or `None` when one does not fit it.
pub fn batch(schema: &SchemaRef, records: &[&Json]) -> Option<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for r in records {
        let o = r.as_object()?;
        if o.keys().any(|k| schema.fields().find(k).is_none()) {
            return None;
        }
    }
    for f in schema.fields() {
        let vals: Vec<Option<&Json>> = records.iter().map(|r| r.get(f.name())).collect();
        columns.push(column(&vals, f.data_type())?);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(records.len()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options).ok()
}
