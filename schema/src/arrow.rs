//! Decoded values into Arrow arrays and record batches, column by column, recursively.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, MapArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};

use crate::error::{Result, SchemaError};
use crate::value::Value;

fn mismatch(f: &Field, reason: impl Into<String>) -> SchemaError {
    SchemaError::Mismatch { column: f.name().clone(), reason: reason.into() }
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    valid.iter().any(|v| !v).then(|| NullBuffer::from(valid))
}

/// A placeholder for a required child of a null struct (Arrow masks it; it is never read).
fn placeholder(dt: &DataType) -> Value {
    match dt {
        DataType::Boolean => Value::Boolean(false),
        DataType::Int32 => Value::Int(0),
        DataType::Int64 => Value::Long(0),
        DataType::Float32 => Value::Float(0.0),
        DataType::Float64 => Value::Double(0.0),
        DataType::Utf8 => Value::String(String::new()),
        DataType::Binary => Value::Bytes(vec![]),
        DataType::FixedSizeBinary(n) => Value::Fixed(vec![0; (*n).max(0) as usize]),
        DataType::Date32 => Value::Date(0),
        DataType::Time64(_) => Value::TimeMicros(0),
        DataType::Timestamp(_, _) => Value::TimestampMicros(0),
        DataType::Decimal128(_, _) => Value::Decimal(0),
        DataType::List(_) => Value::Array(vec![]),
        DataType::Map(_, _) => Value::Map(vec![]),
        DataType::Struct(fs) => Value::Record(fs.iter().map(|f| placeholder(f.data_type())).collect()),
        _ => Value::Null,
    }
}

macro_rules! primitive {
    ($values:expr, $f:expr, $builder:expr, { $($pat:pat => $out:expr),+ $(,)? }) => {{
        let mut b = $builder;
        for v in $values {
            match v {
                Value::Null if $f.is_nullable() => b.append_null(),
                Value::Null => return Err(mismatch($f, "null in a required column")),
                $($pat => b.append_value($out),)+
                other => return Err(mismatch($f, format!("{} does not fit {}", kind(other), $f.data_type()))),
            }
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "a boolean",
        Value::Int(_) => "an int",
        Value::Long(_) => "a long",
        Value::Float(_) => "a float",
        Value::Double(_) => "a double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a string",
        Value::Fixed(_) => "fixed bytes",
        Value::Date(_) => "a date",
        Value::TimeMicros(_) => "a time",
        Value::TimestampMicros(_) => "a timestamp",
        Value::Decimal(_) => "a decimal",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Record(_) => "a record",
    }
}

/// Builds one column from its values.
pub fn array(values: &[&Value], f: &Field) -> Result<ArrayRef> {
    let n = values.len();
    Ok(match f.data_type() {
        DataType::Boolean => primitive!(values, f, BooleanBuilder::with_capacity(n), { Value::Boolean(x) => *x }),
        DataType::Int32 => primitive!(values, f, Int32Builder::with_capacity(n), { Value::Int(x) => *x }),
        DataType::Int64 => primitive!(values, f, Int64Builder::with_capacity(n), { Value::Long(x) => *x, Value::Int(x) => i64::from(*x) }),
        DataType::Float32 => primitive!(values, f, Float32Builder::with_capacity(n), { Value::Float(x) => *x }),
        DataType::Float64 => primitive!(values, f, Float64Builder::with_capacity(n), {
            Value::Double(x) => *x, Value::Float(x) => f64::from(*x), Value::Long(x) => *x as f64, Value::Int(x) => f64::from(*x),
        }),
        DataType::Utf8 => primitive!(values, f, StringBuilder::with_capacity(n, n * 8), { Value::String(s) => s.as_str() }),
        DataType::Binary => primitive!(values, f, BinaryBuilder::with_capacity(n, n * 8), { Value::Bytes(b) => b.as_slice() }),
        DataType::Date32 => primitive!(values, f, Date32Builder::with_capacity(n), { Value::Date(d) => *d }),
        DataType::Time64(TimeUnit::Microsecond) => primitive!(values, f, Time64MicrosecondBuilder::with_capacity(n), { Value::TimeMicros(t) => *t }),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            primitive!(values, f, TimestampMicrosecondBuilder::with_capacity(n).with_timezone_opt(tz.clone()), { Value::TimestampMicros(t) => *t })
        }
        DataType::Decimal128(p, s) => {
            let b = Decimal128Builder::with_capacity(n).with_precision_and_scale(*p, *s).map_err(|e| mismatch(f, e.to_string()))?;
            primitive!(values, f, b, { Value::Decimal(d) => *d })
        }
        DataType::FixedSizeBinary(size) => {
            let mut b = FixedSizeBinaryBuilder::with_capacity(n, *size);
            for v in values {
                match v {
                    Value::Null if f.is_nullable() => b.append_null(),
                    Value::Null => return Err(mismatch(f, "null in a required column")),
                    Value::Fixed(x) | Value::Bytes(x) => b.append_value(x).map_err(|e| mismatch(f, e.to_string()))?,
                    other => return Err(mismatch(f, format!("{} does not fit {}", kind(other), f.data_type()))),
                }
            }
            Arc::new(b.finish())
        }
        DataType::List(item) => {
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0i32);
            let mut children: Vec<&Value> = Vec::new();
            let mut valid = Vec::with_capacity(n);
            for v in values {
                match v {
                    Value::Null if f.is_nullable() => valid.push(false),
                    Value::Null => return Err(mismatch(f, "null in a required column")),
                    Value::Array(items) => {
                        children.extend(items.iter());
                        valid.push(true);
                    }
                    other => return Err(mismatch(f, format!("{} is not a list", kind(other)))),
                }
                offsets.push(i32::try_from(children.len()).map_err(|_| mismatch(f, "list too long"))?);
            }
            let child = array(&children, item)?;
            Arc::new(
                ListArray::try_new(item.clone(), OffsetBuffer::new(ScalarBuffer::from(offsets)), child, nulls(valid))
                    .map_err(|e| mismatch(f, e.to_string()))?,
            )
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else { return Err(mismatch(f, "map entries are not a struct")) };
            if kv.len() != 2 {
                return Err(mismatch(f, "map entries need a key and a value"));
            }
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0i32);
            let mut keys: Vec<Value> = Vec::new();
            let mut vals: Vec<&Value> = Vec::new();
            let mut valid = Vec::with_capacity(n);
            for v in values {
                match v {
                    Value::Null if f.is_nullable() => valid.push(false),
                    Value::Null => return Err(mismatch(f, "null in a required column")),
                    Value::Map(pairs) => {
                        for (k, x) in pairs {
                            keys.push(Value::String(k.clone()));
                            vals.push(x);
                        }
                        valid.push(true);
                    }
                    other => return Err(mismatch(f, format!("{} is not a map", kind(other)))),
                }
                offsets.push(i32::try_from(vals.len()).map_err(|_| mismatch(f, "map too long"))?);
            }
            let key_refs: Vec<&Value> = keys.iter().collect();
            let k = array(&key_refs, &kv[0])?;
            let x = array(&vals, &kv[1])?;
            let entries_array = StructArray::try_new(kv.clone(), vec![k, x], None).map_err(|e| mismatch(f, e.to_string()))?;
            Arc::new(
                MapArray::try_new(entries.clone(), OffsetBuffer::new(ScalarBuffer::from(offsets)), entries_array, nulls(valid), *sorted)
                    .map_err(|e| mismatch(f, e.to_string()))?,
            )
        }
        DataType::Struct(fields) => {
            let mut valid = Vec::with_capacity(n);
            for v in values {
                match v {
                    Value::Null if f.is_nullable() => valid.push(false),
                    Value::Null => return Err(mismatch(f, "null in a required column")),
                    Value::Record(_) => valid.push(true),
                    other => return Err(mismatch(f, format!("{} is not a record", kind(other)))),
                }
            }
            let placeholders: Vec<Value> = fields.iter().map(|c| placeholder(c.data_type())).collect();
            let mut children = Vec::with_capacity(fields.len());
            for (i, c) in fields.iter().enumerate() {
                let col: Vec<&Value> = values
                    .iter()
                    .map(|v| match v {
                        Value::Record(vs) => vs.get(i).unwrap_or(&Value::Null),
                        _ if c.is_nullable() => &Value::Null,
                        _ => &placeholders[i],
                    })
                    .collect();
                children.push(array(&col, c)?);
            }
            Arc::new(StructArray::try_new(fields.clone(), children, nulls(valid)).map_err(|e| mismatch(f, e.to_string()))?)
        }
        other => return Err(mismatch(f, format!("Arrow type {other} is not supported"))),
    })
}

/// Builds a record batch from rows (each a `Value::Record` in the schema's field order).
pub fn record_batch(schema: SchemaRef, rows: &[Value]) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        let col: Vec<&Value> = rows
            .iter()
            .map(|r| match r {
                Value::Record(vs) => vs.get(i).unwrap_or(&Value::Null),
                _ => &Value::Null,
            })
            .collect();
        columns.push(array(&col, f)?);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema, columns, &options).map_err(|e| SchemaError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{Fields, Schema};

    #[test]
    fn nested_values_become_arrays_and_nulls_are_checked() {
        let inner = Fields::from(vec![Field::new("x", DataType::Int64, false), Field::new("tag", DataType::Utf8, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Struct(inner), true),
            Field::new("l", DataType::List(Arc::new(Field::new("element", DataType::Int32, true))), true),
        ]));
        let rows = vec![
            Value::Record(vec![Value::Long(1), Value::Record(vec![Value::Long(5), Value::String("a".into())]), Value::Array(vec![Value::Int(1), Value::Null])]),
            Value::Record(vec![Value::Int(2), Value::Null, Value::Null]),
        ];
        let b = record_batch(schema.clone(), &rows).expect("batch");
        assert_eq!(b.num_rows(), 2);
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().expect("ints");
        assert_eq!(ids.values().to_vec(), vec![1, 2]);
        let s = b.column(1).as_any().downcast_ref::<StructArray>().expect("struct");
        assert!(s.is_null(1));
        let tags = s.column(1).as_any().downcast_ref::<StringArray>().expect("strings");
        assert_eq!(tags.value(0), "a");
        let bad = vec![Value::Record(vec![Value::Null, Value::Null, Value::Null])];
        assert!(matches!(record_batch(schema.clone(), &bad), Err(SchemaError::Mismatch { column, .. }) if column == "id"));
        let wrong = vec![Value::Record(vec![Value::String("x".into()), Value::Null, Value::Null])];
        assert!(record_batch(schema, &wrong).is_err());
    }
}
