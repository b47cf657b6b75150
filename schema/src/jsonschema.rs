//! JSON Schema into Arrow, and JSON records decoded by it: objects → structs (`required` → not
//! null), arrays → lists, `integer` → long, `number` → double, `string` with format `date-time` →
//! timestamp, `date` → date; `["null", T]` types are nullable. Local `$ref`s and combinators
//! (`oneOf`, `anyOf`, …) have no single column type and are refused.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value as Json;

use crate::error::{Result, SchemaError};
use crate::value::Value;

fn unsupported(path: &str, why: &str) -> SchemaError {
    SchemaError::Unsupported(format!("{}: {why}", if path.is_empty() { "the top level" } else { path }))
}

fn type_of(s: &Json, path: &str) -> Result<(DataType, bool)> {
    if ["oneOf", "anyOf", "allOf", "$ref", "not"].iter().any(|k| s.get(k).is_some()) {
        return Err(unsupported(path, "combinators and $ref have no single column type"));
    }
    let (ty, nullable) = match s.get("type") {
        Some(Json::String(t)) => (t.as_str(), false),
        Some(Json::Array(ts)) => {
            let names: Vec<&str> = ts.iter().filter_map(Json::as_str).collect();
            let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
            match non_null.as_slice() {
                [one] => (*one, names.contains(&"null")),
                _ => return Err(unsupported(path, "several non-null types")),
            }
        }
        None if s.get("properties").is_some() => ("object", false),
        _ => return Err(unsupported(path, "no type")),
    };
    let t = match ty {
        "object" => {
            let required: Vec<&str> = s.get("required").and_then(Json::as_array).map(|r| r.iter().filter_map(Json::as_str).collect()).unwrap_or_default();
            let props = s.get("properties").and_then(Json::as_object).ok_or_else(|| unsupported(path, "an object without properties"))?;
            let mut fields = Vec::with_capacity(props.len());
            for (name, p) in props {
                let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                let (t, n) = type_of(p, &child)?;
                fields.push(Field::new(name, t, n || !required.contains(&name.as_str())));
            }
            DataType::Struct(Fields::from(fields))
        }
        "array" => {
            let items = s.get("items").ok_or_else(|| unsupported(path, "an array without items"))?;
            let (t, n) = type_of(items, &format!("{path}.element"))?;
            DataType::List(Arc::new(Field::new("element", t, n)))
        }
        "integer" => DataType::Int64,
        "number" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "string" => match s.get("format").and_then(Json::as_str) {
            Some("date-time") => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Some("date") => DataType::Date32,
            _ => DataType::Utf8,
        },
        other => return Err(unsupported(path, &format!("type {other}"))),
    };
    Ok((t, nullable))
}

/// The Arrow schema of a JSON Schema whose top level is an object.
pub fn arrow_schema(schema: &Json) -> Result<Schema> {
    match type_of(schema, "")? {
        (DataType::Struct(fields), _) => Ok(Schema::new(fields)),
        _ => Err(unsupported("", "the top level must be an object")),
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (chrono's range; anything else is `None`).
fn days(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    i32::try_from(d.signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days()).ok()
}

/// Microseconds since the epoch of an RFC 3339 date-time (`2024-05-01T10:00:00.5Z`, `+02:00`),
/// `None` outside what a microsecond timestamp holds.
fn micros(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros())
}

/// A JSON value as a [`Value`] of the given Arrow type (shared by schemaless JSON).
pub fn convert(v: &Json, dt: &DataType, path: &str) -> Result<Value> {
    let bad = || SchemaError::Mismatch { column: path.to_string(), reason: format!("{v} does not fit {dt}") };
    Ok(match (v, dt) {
        (Json::Null, _) => Value::Null,
        (Json::Bool(b), DataType::Boolean) => Value::Boolean(*b),
        (Json::Number(n), DataType::Int32) => Value::Int(n.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(bad)?),
        (Json::Number(n), DataType::Int64) => Value::Long(n.as_i64().ok_or_else(bad)?),
        (Json::Number(n), DataType::Float64) => Value::Double(n.as_f64().ok_or_else(bad)?),
        (Json::String(s), DataType::Utf8) => Value::String(s.clone()),
        (Json::String(s), DataType::Date32) => Value::Date(days(s).ok_or_else(bad)?),
        (Json::String(s), DataType::Timestamp(_, _)) => Value::TimestampMicros(micros(s).ok_or_else(bad)?),
        (Json::Array(items), DataType::List(f)) => Value::Array(items.iter().map(|i| convert(i, f.data_type(), path)).collect::<Result<_>>()?),
        (Json::Object(o), DataType::Struct(fs)) => Value::Record(
            fs.iter()
                .map(|f| o.get(f.name()).map_or(Ok(Value::Null), |x| convert(x, f.data_type(), &format!("{path}.{}", f.name()))))
                .collect::<Result<_>>()?,
        ),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schema_maps_and_values_convert() {
        let s: Json = serde_json::from_str(
            r#"{"type":"object","required":["id"],"properties":{
            "id":{"type":"integer"}, "name":{"type":["null","string"]}, "at":{"type":"string","format":"date-time"},
            "day":{"type":"string","format":"date"}, "tags":{"type":"array","items":{"type":"string"}},
            "geo":{"type":"object","properties":{"lat":{"type":"number"}}}}}"#,
        )
        .expect("json");
        let a = arrow_schema(&s).expect("arrow");
        assert!(!a.field_with_name("id").expect("id").is_nullable());
        assert!(a.field_with_name("name").expect("name").is_nullable());
        let row: Json = serde_json::from_str(r#"{"id":7,"at":"2024-01-02T03:04:05.5+01:00","day":"2024-03-01","tags":["x"],"geo":{"lat":1.5}}"#).expect("row");
        let Value::Record(v) = convert(&row, &DataType::Struct(a.fields().clone()), "").expect("convert") else { panic!("record") };
        assert_eq!(v[0], Value::Long(7));
        assert_eq!(v[2], Value::TimestampMicros(1_704_161_045_500_000));
        assert_eq!(v[3], Value::Date(19_783));
        assert!(convert(&serde_json::json!({"id": "x"}), &DataType::Struct(a.fields().clone()), "").is_err());
        assert!(arrow_schema(&serde_json::json!({"oneOf": []})).is_err());
        assert_eq!(days("1970-01-01"), Some(0));
        assert_eq!(micros("1970-01-01T00:00:01Z"), Some(1_000_000));
    }

    #[test]
    fn out_of_range_dates_and_times_are_errors_not_overflows() {
        // Each of these overflowed the hand-written arithmetic (a panic in a debug build).
        for bad in ["99999999999999999-01-01T00:00:00Z", "2024-01-01T99999999999999:00:00Z", "2024-01-01T00:00:00+99999999999:00", "2024-13-01T00:00:00Z"] {
            assert_eq!(micros(bad), None, "{bad}");
        }
        assert_eq!(days("-9999999999999-01-01"), None);
        assert_eq!(days("2024-02-30"), None);
        assert_eq!(micros("2024-01-01T00:00:00.123456789Z"), Some(1_704_067_200_123_456));
    }
}
