//! Fitting a decoded batch to the table's (evolved) schema: columns matched by name, nested
//! structs by field name, missing columns null, types promoted (int → long, float → double).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use arrow_array::{new_null_array, ArrayRef, RecordBatch, RecordBatchOptions, StructArray};
use arrow_schema::{DataType, Field, SchemaRef};

/// `batch` with exactly `target`'s fields, or why it cannot have them.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, String> {
    let rows = batch.num_rows();
    let mut cols = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        cols.push(column(batch.column_by_name(f.name()), f, rows)?);
    }
    RecordBatch::try_new_with_options(target.clone(), cols, &RecordBatchOptions::new().with_row_count(Some(rows))).map_err(|e| e.to_string())
}

fn column(src: Option<&ArrayRef>, f: &Field, rows: usize) -> Result<ArrayRef, String> {
    let Some(a) = src else { return Ok(new_null_array(f.data_type(), rows)) };
    match (a.data_type(), f.data_type()) {
        (DataType::Struct(_), DataType::Struct(target)) => {
            let s = a.as_struct();
            let children = target.iter().map(|c| column(s.column_by_name(c.name()), c, rows)).collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(target.clone(), children, s.nulls().cloned()).map_err(|e| format!("column {}: {e}", f.name()))?))
        }
        (x, y) if x == y => Ok(a.clone()),
        (x, y) => arrow_cast::cast(a, y).map_err(|e| format!("column {}: {x} does not fit {y}: {e}", f.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int32Array, Int64Array, StringArray};
    use arrow_schema::{Fields, Schema};

    #[test]
    fn columns_match_by_name_promote_and_fill_nulls() {
        let inner = Fields::from(vec![Field::new("b", DataType::Int32, true)]);
        let src_schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true), Field::new("s", DataType::Struct(inner.clone()), true)]));
        let s = StructArray::try_new(inner, vec![Arc::new(Int32Array::from(vec![7, 8]))], None).expect("struct");
        let batch = RecordBatch::try_new(src_schema, vec![Arc::new(Int32Array::from(vec![1, 2])), Arc::new(s)]).expect("batch");
        let target_inner = Fields::from(vec![Field::new("a", DataType::Utf8, true), Field::new("b", DataType::Int64, true)]);
        let target = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Struct(target_inner), true),
            Field::new("new", DataType::Utf8, true),
            Field::new("x", DataType::Int64, true),
        ]));
        let out = conform(&batch, &target).expect("conform");
        assert_eq!(out.column(2).as_any().downcast_ref::<Int64Array>().expect("long").values(), &[1, 2]);
        assert_eq!(out.column(1).null_count(), 2);
        let s = out.column(0).as_struct();
        assert_eq!(s.column(1).as_any().downcast_ref::<Int64Array>().expect("long").values(), &[7, 8]);
        assert_eq!(s.column(0).as_any().downcast_ref::<StringArray>().expect("str").null_count(), 2);
        let narrowing = Arc::new(Schema::new(vec![Field::new("x", DataType::Struct(Fields::empty()), true)]));
        assert!(conform(&batch, &narrowing).is_err());
    }
}
