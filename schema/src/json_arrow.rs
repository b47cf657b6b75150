//! Parsed JSON records straight into Arrow columns of an inferred schema, with no value tree in
//! between: the fast path of schemaless JSON. `None` when a value does not fit its column (the
//! caller then converts record by record, so each misfit is an error of its own).

use std::collections::HashMap;
use std::sync::Arc;

use crate::json_doc::Doc;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, NullArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Fields, SchemaRef};

fn nulls(valid: &[bool]) -> Option<NullBuffer> {
    valid.iter().any(|v| !v).then(|| NullBuffer::from(valid.to_vec()))
}

/// The value when there is one (absent and JSON null are both null).
fn present<'v, 'a>(v: &Option<&'v Doc<'a>>) -> Option<&'v Doc<'a>> {
    v.filter(|j| !matches!(j, Doc::Null))
}

/// The column of type `dt` holding `values` (`None` or JSON null: a null), or `None` when one
/// does not fit.
fn column(values: &[Option<&Doc>], dt: &DataType) -> Option<ArrayRef> {
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
            let mut items: Vec<Option<&Doc>> = Vec::new();
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
            let (valid, children) = split(values, fs)?;
            let children = fs.iter().zip(&children).map(|(f, vals)| column(vals, f.data_type())).collect::<Option<Vec<_>>>()?;
            Arc::new(StructArray::try_new(fs.clone(), children, nulls(&valid)).ok()?)
        }
        _ => return None,
    })
}

/// One field's values across the rows (`None`: absent or null).
type Column<'a> = Vec<Option<&'a Doc<'a>>>;

/// Objects (or nulls) into one list of values per field, walking each object once in its own
/// order (records written by one program keep their keys in the schema's order, so the position
/// is tried before the name). `None` when a value is not an object or has a field `fields` lacks.
fn split<'a>(objects: &[Option<&'a Doc<'a>>], fields: &Fields) -> Option<(Vec<bool>, Vec<Column<'a>>)> {
    let by_name: HashMap<&str, usize> = fields.iter().enumerate().map(|(i, f)| (f.name().as_str(), i)).collect();
    let mut columns: Vec<Vec<Option<&Doc>>> = vec![Vec::with_capacity(objects.len()); fields.len()];
    let mut valid = Vec::with_capacity(objects.len());
    for (row, v) in objects.iter().enumerate() {
        for c in columns.iter_mut() {
            c.push(None);
        }
        let Some(j) = present(v) else {
            valid.push(false);
            continue;
        };
        valid.push(true);
        for (pos, (k, x)) in j.as_object()?.iter().enumerate() {
            let i = match fields.get(pos) {
                Some(f) if f.name() == k => pos,
                _ => *by_name.get(k.as_ref())?,
            };
            columns[i][row] = Some(x);
        }
    }
    Some((valid, columns))
}

/// The records (JSON objects) as a batch of `schema`, or `None` when one does not fit it.
pub fn batch(schema: &SchemaRef, records: &[&Doc]) -> Option<RecordBatch> {
    let objects: Vec<Option<&Doc>> = records.iter().map(|r| Some(*r)).collect();
    let (valid, values) = split(&objects, schema.fields())?;
    if valid.iter().any(|v| !v) {
        return None;
    }
    let columns = schema.fields().iter().zip(&values).map(|(f, vals)| column(vals, f.data_type())).collect::<Option<Vec<_>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(records.len()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonInference;

    /// The value-tree conversion the fast path replaces, as the reference.
    fn reference(schema: &SchemaRef, records: &[Doc]) -> RecordBatch {
        let row_type = DataType::Struct(schema.fields().clone());
        let rows: Vec<_> = records.iter().map(|r| crate::jsonschema::convert(&r.to_json(), &row_type, "").expect("fits")).collect();
        crate::arrow::record_batch(schema.clone(), &rows).expect("batch")
    }

    #[test]
    fn columns_equal_the_value_tree_path_whatever_the_key_order() {
        let records: Vec<Doc> = [
            r#"{"id": 1, "name": "a", "tags": ["x", "y"], "geo": {"lat": 1.5, "lon": 2}, "ok": true}"#,
            r#"{"ok": false, "geo": {"lon": 3.25}, "id": 3000000000, "tags": [], "name": null}"#,
            r#"{"id": 2, "geo": null, "tags": null, "extra": {"deep": [1, 2]}}"#,
            r#"{"name": "d", "id": 4, "ok": null, "tags": ["z"], "geo": {"lat": null, "lon": -1}}"#,
        ]
        .iter()
        .map(|s| Doc::parse(s.as_bytes()).expect("json"))
        .collect();
        let mut inference = JsonInference::default();
        for r in &records {
            inference.observe_doc(r).expect("widens");
        }
        let schema: SchemaRef = Arc::new(inference.schema());
        let refs: Vec<&Doc> = records.iter().collect();
        let fast = batch(&schema, &refs).expect("every record fits");
        assert_eq!(fast, reference(&schema, &records));
        assert_eq!(fast.num_rows(), 4);
    }

    #[test]
    fn a_misfit_is_refused_not_coerced() {
        let schema: SchemaRef = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new("id", DataType::Int32, true)]));
        for bad in [r#"{"id": "7"}"#, r#"{"id": 1.5}"#, r#"{"id": 1, "other": 2}"#, r#"[1]"#, r#"{"id": 3000000000}"#] {
            let j = Doc::parse(bad.as_bytes()).expect("json");
            assert!(batch(&schema, &[&j]).is_none(), "{bad} does not fit an int column");
        }
    }
}
