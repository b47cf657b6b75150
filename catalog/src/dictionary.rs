//! Which columns of a Parquet file get a dictionary: those whose first rows repeat their values.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::schema::types::ColumnPath;

/// Rows of a column looked at to judge it.
pub const SAMPLE_ROWS: usize = 4096;
/// Fewer sampled rows than this say too little: the column keeps the writer's default.
const SAMPLE_ROWS_MIN: usize = 64;
/// A column whose sample is more than this share (percent) distinct values is written without a
/// dictionary.
pub const DISTINCT_PERCENT_MAX: usize = 50;

/// Distinct values in `arrays` (a null counts as its slot's bytes), or `None` for a type not
/// judged here (booleans, nested and dictionary columns).
fn distinct(arrays: &[&dyn Array]) -> Option<usize> {
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let datas: Vec<_> = arrays.iter().map(|a| a.to_data()).collect();
    for (a, data) in arrays.iter().zip(&datas) {
        match a.data_type() {
            DataType::Utf8 => seen.extend(a.as_string::<i32>().iter().map(|v| v.unwrap_or("").as_bytes())),
            DataType::LargeUtf8 => seen.extend(a.as_string::<i64>().iter().map(|v| v.unwrap_or("").as_bytes())),
            DataType::Utf8View => seen.extend(a.as_string_view().iter().map(|v| v.unwrap_or("").as_bytes())),
            DataType::Binary => seen.extend(a.as_binary::<i32>().iter().map(|v| v.unwrap_or(b""))),
            DataType::LargeBinary => seen.extend(a.as_binary::<i64>().iter().map(|v| v.unwrap_or(b""))),
            DataType::BinaryView => seen.extend(a.as_binary_view().iter().map(|v| v.unwrap_or(b""))),
            dt => {
                let width = dt.primitive_width()?;
                let start = data.offset().checked_mul(width)?;
                let bytes = data.buffers().first()?.as_slice().get(start..start.checked_add(a.len().checked_mul(width)?)?)?;
                seen.extend(bytes.chunks_exact(width));
            }
        }
    }
    Some(seen.len())
}

/// `props` with the dictionary turned off for each top-level column whose first `SAMPLE_ROWS`
/// rows are mostly distinct (ids, timestamps, measurements): such a dictionary costs a hash per
/// value and is abandoned anyway once it outgrows its page. Repeating columns (categories,
/// codes, names) keep it, and so do nested ones.
pub fn adapt(mut props: WriterPropertiesBuilder, batches: &[RecordBatch]) -> WriterPropertiesBuilder {
    let Some(schema) = batches.first().map(RecordBatch::schema) else { return props };
    for (i, field) in schema.fields().iter().enumerate() {
        let mut sample: Vec<arrow_array::ArrayRef> = Vec::new();
        let mut rows = 0;
        for b in batches {
            if rows >= SAMPLE_ROWS {
                break;
            }
            let Some(col) = b.columns().get(i) else { break };
            let take = col.len().min(SAMPLE_ROWS - rows);
            sample.push(col.slice(0, take));
            rows += take;
        }
        if rows < SAMPLE_ROWS_MIN {
            continue;
        }
        let refs: Vec<&dyn Array> = sample.iter().map(|a| a.as_ref()).collect();
        if distinct(&refs).is_some_and(|d| d * 100 > rows * DISTINCT_PERCENT_MAX) {
            props = props.set_column_dictionary_enabled(ColumnPath::new(vec![field.name().clone()]), false);
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    #[test]
    fn mostly_distinct_columns_lose_the_dictionary_and_repeating_ones_keep_it() {
        let n = 5000;
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from_iter_values(0..n)) as arrow_array::ArrayRef),
            ("code", Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 100))) as _),
            ("x", Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64 * 0.5))) as _),
            ("name", Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("user-{i}")))) as _),
            ("color", Arc::new(StringArray::from_iter((0..n).map(|i| (i % 7 != 0).then(|| ["red", "blue"][i as usize % 2]))))),
        ])
        .expect("batch");
        // Two batches, the second a slice: the sample runs across them from each one's offset.
        let batches = [batch.slice(0, 1000), batch.slice(1000, 4000)];
        let props = adapt(WriterProperties::builder(), &batches).build();
        let dict = |c: &str| props.dictionary_enabled(&ColumnPath::new(vec![c.to_string()]));
        assert_eq!(
            ["id", "code", "x", "name", "color"].map(dict),
            [false, true, false, false, true],
            "ids, measurements and names are distinct; codes and colors repeat"
        );
        let few = adapt(WriterProperties::builder(), &[batch.slice(0, 10)]).build();
        assert!(few.dictionary_enabled(&ColumnPath::new(vec!["id".to_string()])), "ten rows are too few to judge");
    }
}
