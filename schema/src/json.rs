//! Schemaless JSON: one object per record, an Arrow schema inferred and widened as records come
//! (int → long → double, new fields nullable, nested objects as structs, arrays as lists).
//!
//! A record that cannot fit (a string where numbers were, not an object, not JSON) is a per-record
//! error and leaves the schema as it was.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::Value as Json;

use crate::arrow::record_batch;
use crate::error::{RecordError, Result, SchemaError};
use crate::json_doc::Doc;
use crate::jsonschema::convert;
use crate::value::Value;

/// The inferred schema so far. `DataType::Null` marks a field seen only as null.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonInference {
    fields: Vec<Field>,
}

fn widen(path: &str, a: &DataType, b: &DataType) -> Result<DataType> {
    use DataType::*;
    Ok(match (a, b) {
        (x, y) if x == y => x.clone(),
        (Null, x) | (x, Null) => x.clone(),
        (Int32, Int64) | (Int64, Int32) => Int64,
        (Int32 | Int64 | Float64, Float64) | (Float64, Int32 | Int64) => Float64,
        (List(x), List(y)) => List(Arc::new(Field::new("element", widen(path, x.data_type(), y.data_type())?, true))),
        (Struct(x), Struct(y)) => Struct(Fields::from(merge(path, x.iter().map(|f| f.as_ref().clone()).collect(), y)?)),
        (x, y) => return Err(SchemaError::Mismatch { column: path.to_string(), reason: format!("{y} cannot widen {x}") }),
    })
}

fn merge(parent: &str, mut have: Vec<Field>, new: &Fields) -> Result<Vec<Field>> {
    for f in new {
        let path = if parent.is_empty() { f.name().clone() } else { format!("{parent}.{}", f.name()) };
        match have.iter_mut().find(|h| h.name() == f.name()) {
            Some(h) => *h = Field::new(h.name(), widen(&path, h.data_type(), f.data_type())?, true),
            None => have.push(Field::new(f.name(), f.data_type().clone(), true)),
        }
    }
    Ok(have)
}

/// The field named `name`, looked for first at `pos` (records keep their keys in one order).
fn field_at<'a, F: AsRef<Field> + 'a>(fields: impl IntoIterator<Item = &'a F> + Copy, pos: usize, name: &str) -> Option<&'a Field> {
    match fields.into_iter().nth(pos).map(AsRef::as_ref) {
        Some(f) if f.name() == name => Some(f),
        _ => fields.into_iter().map(AsRef::as_ref).find(|f| f.name() == name),
    }
}

/// True when `v` can be written to a column of type `dt` as it is.
fn fits(v: &Doc, dt: &DataType) -> bool {
    match (v, dt) {
        (Doc::Null, _) => true,
        (Doc::Bool(_), DataType::Boolean) => true,
        (Doc::Number(n), DataType::Int32) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        (Doc::Number(n), DataType::Int64) => n.as_i64().is_some(),
        (Doc::Number(_), DataType::Float64) => true,
        (Doc::String(_), DataType::Utf8) => true,
        (Doc::Array(items), DataType::List(f)) => items.iter().all(|i| fits(i, f.data_type())),
        (Doc::Object(o), DataType::Struct(fs)) => o.iter().enumerate().all(|(pos, (k, x))| field_at(fs, pos, k).is_some_and(|f| fits(x, f.data_type()))),
        _ => false,
    }
}

fn infer(v: &Doc) -> DataType {
    match v {
        Doc::Null => DataType::Null,
        Doc::Bool(_) => DataType::Boolean,
        Doc::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => DataType::Int32,
            Some(_) => DataType::Int64,
            None => DataType::Float64,
        },
        Doc::String(_) => DataType::Utf8,
        Doc::Array(items) => {
            let mut t = DataType::Null;
            for i in items {
                t = widen("", &t, &infer(i)).unwrap_or(DataType::Utf8);
            }
            DataType::List(Arc::new(Field::new("element", t, true)))
        }
        Doc::Object(o) => DataType::Struct(Fields::from(o.iter().map(|(k, v)| Field::new(k.as_ref(), infer(v), true)).collect::<Vec<_>>())),
    }
}

/// Fields still typed `Null` (never seen with a value) become strings in the output.
fn settle(dt: &DataType) -> DataType {
    match dt {
        DataType::Null => DataType::Utf8,
        DataType::List(f) => DataType::List(Arc::new(Field::new("element", settle(f.data_type()), true))),
        DataType::Struct(fs) => DataType::Struct(Fields::from(fs.iter().map(|f| Field::new(f.name(), settle(f.data_type()), true)).collect::<Vec<_>>())),
        other => other.clone(),
    }
}

impl JsonInference {
    /// The schema inferred so far (fields seen only as null are strings).
    pub fn schema(&self) -> Schema {
        Schema::new(self.fields.iter().map(|f| Field::new(f.name(), settle(f.data_type()), true)).collect::<Vec<_>>())
    }

    /// Widens the schema to hold this record; on error the schema is unchanged.
    pub fn observe(&mut self, record: &Json) -> Result<()> {
        self.observe_doc(&Doc::from(record))
    }

    /// As [`Self::observe`], for a parsed [`Doc`].
    pub fn observe_doc(&mut self, record: &Doc) -> Result<()> {
        // The steady state: the record fits the schema as it is, and nothing is built.
        if let Doc::Object(o) = record {
            if o.iter().enumerate().all(|(pos, (k, v))| field_at(&self.fields, pos, k).is_some_and(|f| fits(v, f.data_type()))) {
                return Ok(());
            }
        }
        let DataType::Struct(fields) = infer(record) else {
            return Err(SchemaError::Decode(format!("a record must be a JSON object, not {}", kind(record))));
        };
        self.fields = merge("", self.fields.clone(), &fields)?;
        Ok(())
    }

    /// The record as a row of the current schema.
    pub fn row(&self, record: &Json) -> Result<Value> {
        let dt = DataType::Struct(self.schema().fields().clone());
        convert(record, &dt, "")
    }
}

fn kind(v: &Doc) -> &'static str {
    match v {
        Doc::Null => "null",
        Doc::Bool(_) => "a boolean",
        Doc::Number(_) => "a number",
        Doc::String(_) => "a string",
        Doc::Array(_) => "an array",
        Doc::Object(_) => "an object",
    }
}

/// Decodes a batch of JSON records, widening `inference`; bad records become errors.
pub fn decode_batch(inference: &mut JsonInference, records: &[(i64, &[u8])]) -> Result<(RecordBatch, Vec<RecordError>)> {
    let mut parsed = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (offset, bytes) in records {
        let r = Doc::parse(bytes).map_err(|e| SchemaError::Decode(format!("not JSON: {e}"))).and_then(|j| {
            inference.observe_doc(&j)?;
            Ok(j)
        });
        match r {
            Ok(j) => parsed.push((*offset, j)),
            Err(e) => errors.push(RecordError { offset: *offset, reason: e.to_string() }),
        }
    }
    let schema = Arc::new(inference.schema());
    // Every parsed record fits the widened schema, so the columns are built straight from them;
    // should one not fit after all, each record is converted alone and a misfit is its error.
    let refs: Vec<&Doc> = parsed.iter().map(|(_, j)| j).collect();
    if let Some(batch) = crate::json_arrow::batch(&schema, &refs) {
        return Ok((batch, errors));
    }
    let row_type = DataType::Struct(schema.fields().clone());
    let mut rows = Vec::with_capacity(parsed.len());
    for (offset, j) in parsed {
        match convert(&j.to_json(), &row_type, "") {
            Ok(v) => rows.push(v),
            Err(e) => errors.push(RecordError { offset, reason: e.to_string() }),
        }
    }
    Ok((record_batch(schema, &rows)?, errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, StructArray};

    #[test]
    fn the_schema_widens_and_nests() {
        let mut inf = JsonInference::default();
        let recs = [
            br#"{"id": 1, "name": "a", "score": 3}"#.to_vec(),
            br#"{"id": 5000000000, "tags": ["x"], "addr": {"city": "Oslo"}, "nothing": null}"#.to_vec(),
            br#"{"id": 2, "score": 2.5, "addr": {"zip": 1234}}"#.to_vec(),
            br#"{"id": "not a number"}"#.to_vec(),
            b"[1, 2]".to_vec(),
            b"{not json".to_vec(),
        ];
        let input: Vec<(i64, &[u8])> = recs.iter().enumerate().map(|(i, r)| (100 + i as i64, r.as_slice())).collect();
        let (batch, errors) = decode_batch(&mut inf, &input).expect("batch");
        assert_eq!(errors.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![103, 104, 105]);
        assert!(errors[0].reason.contains("id"), "{}", errors[0].reason);
        let s = batch.schema();
        assert_eq!(s.field_with_name("id").expect("id").data_type(), &DataType::Int64, "int widened to long");
        assert_eq!(s.field_with_name("score").expect("score").data_type(), &DataType::Float64, "int widened to double");
        assert_eq!(s.field_with_name("nothing").expect("nothing").data_type(), &DataType::Utf8);
        let DataType::Struct(addr) = s.field_with_name("addr").expect("addr").data_type() else { panic!("not a struct") };
        assert_eq!(addr.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), vec!["city", "zip"]);
        assert_eq!(batch.num_rows(), 3);
        let score = batch.column_by_name("score").expect("score").as_any().downcast_ref::<Float64Array>().expect("f64");
        assert_eq!((score.value(0), score.is_null(1), score.value(2)), (3.0, true, 2.5));
        let addr = batch.column_by_name("addr").expect("addr").as_any().downcast_ref::<StructArray>().expect("struct");
        assert!(addr.is_null(0) && !addr.is_null(1));
    }
}
