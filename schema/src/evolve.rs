//! Schema evolution: from the table's schema and a record's schema, the new table schema, or a
//! refusal with the reason.
//!
//! Allowed: new columns (nested ones too, always optional), required → optional, int → long,
//! float → double, decimal precision raised at the same scale. A column the record no longer has
//! stays, as optional. Field ids come from [`FieldIds`], so they are never reused.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};

use crate::error::{Result, SchemaError};
use crate::ids::FieldIds;

fn refuse(path: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Unsupported(format!("column {path}: {}", reason.into()))
}

fn promote(path: &str, table: &DataType, record: &DataType) -> Result<DataType> {
    use DataType::*;
    Ok(match (table, record) {
        (a, b) if a == b => a.clone(),
        (Int32, Int32) => Int32,
        (Int64, Int32) | (Int32, Int64) => Int64,
        (Float64, Float32) | (Float32, Float64) => Float64,
        (Decimal128(p1, s1), Decimal128(p2, s2)) if s1 == s2 => Decimal128((*p1).max(*p2), *s1),
        (Decimal128(_, s1), Decimal128(_, s2)) => return Err(refuse(path, format!("decimal scale cannot change ({s1} to {s2})"))),
        (Struct(a), Struct(b)) => Struct(Fields::from(merge(path, a, b)?)),
        (List(a), List(b)) => List(Arc::new(child(&format!("{path}.element"), a, b)?)),
        (Map(a, sorted), Map(b, _)) => {
            let (DataType::Struct(ka), DataType::Struct(kb)) = (a.data_type(), b.data_type()) else {
                return Err(refuse(path, "map entries are not structs"));
            };
            Map(Arc::new(Field::new(a.name(), DataType::Struct(Fields::from(merge(path, ka, kb)?)), false)), *sorted)
        }
        (a, b) => return Err(refuse(path, format!("{b} cannot replace {a}"))),
    })
}

fn child(path: &str, table: &Field, record: &Field) -> Result<Field> {
    let t = promote(path, table.data_type(), record.data_type())?;
    // Never narrow: a column stays optional once it is.
    Ok(Field::new(table.name(), t, table.is_nullable() || record.is_nullable()).with_metadata(table.metadata().clone()))
}

fn merge(parent: &str, table: &Fields, record: &Fields) -> Result<Vec<Field>> {
    let path_of = |n: &str| if parent.is_empty() { n.to_string() } else { format!("{parent}.{n}") };
    let mut out = Vec::with_capacity(table.len() + record.len());
    for t in table {
        match record.iter().find(|r| r.name() == t.name()) {
            Some(r) => out.push(child(&path_of(t.name()), t, r)?),
            // Dropped from the record: the column stays, optional.
            None => out.push(t.as_ref().clone().with_nullable(true)),
        }
    }
    for r in record {
        if !table.iter().any(|t| t.name() == r.name()) {
            out.push(r.as_ref().clone().with_nullable(true));
        }
    }
    Ok(out)
}

/// The table schema after `record` arrives, with field ids (old ones kept, new ones fresh).
pub fn evolve(table: &Schema, record: &Schema, ids: &mut FieldIds) -> Result<Schema> {
    let fields = merge("", table.fields(), record.fields())?;
    Ok(ids.assign(&Schema::new_with_metadata(fields, table.metadata().clone())))
}

/// True when every value of `record` can be written to `table` unchanged or promoted.
pub fn fits(table: &Schema, record: &Schema) -> bool {
    fn field_fits(t: &Field, r: &Field) -> bool {
        (t.is_nullable() || !r.is_nullable()) && type_fits(t.data_type(), r.data_type())
    }
    fn type_fits(t: &DataType, r: &DataType) -> bool {
        use DataType::*;
        match (t, r) {
            (a, b) if a == b => true,
            (Int64, Int32) | (Float64, Float32) => true,
            (Decimal128(p1, s1), Decimal128(p2, s2)) => s1 == s2 && p1 >= p2,
            (Struct(a), Struct(b)) => {
                b.iter().all(|rf| a.iter().any(|tf| tf.name() == rf.name() && field_fits(tf, rf)))
                    && a.iter().all(|tf| tf.is_nullable() || b.iter().any(|rf| rf.name() == tf.name()))
            }
            (List(a), List(b)) => field_fits(a, b),
            // A map's keys are never null (Iceberg holds them required), whatever the record's
            // entries say; its values are fields like any other.
            (Map(a, _), Map(b, _)) => match (a.data_type(), b.data_type()) {
                (Struct(ta), Struct(tb)) if ta.len() == 2 && tb.len() == 2 => type_fits(ta[0].data_type(), tb[0].data_type()) && field_fits(&ta[1], &tb[1]),
                (x, y) => type_fits(x, y),
            },
            _ => false,
        }
    }
    type_fits(&DataType::Struct(table.fields().clone()), &DataType::Struct(record.fields().clone()))
}

#[cfg(test)]
mod tests;
