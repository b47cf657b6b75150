//! The decoded value model shared by every format, before it becomes Arrow.

/// One decoded value. Records keep their fields in schema order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(Vec<u8>),
    String(String),
    Fixed(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    TimeMicros(i64),
    /// Microseconds since the Unix epoch.
    TimestampMicros(i64),
    /// Unscaled value; the scale is the column's.
    Decimal(i128),
    Array(Vec<Value>),
    Map(Vec<(String, Value)>),
    Record(Vec<Value>),
}

impl Value {
    /// The value as JSON, naming record fields after `data_type` (for tools and tests).
    pub fn to_json(&self, data_type: &arrow_schema::DataType) -> serde_json::Value {
        use arrow_schema::DataType;
        use serde_json::{json, Value as Json};
        match (self, data_type) {
            (Value::Null, _) => Json::Null,
            (Value::Boolean(b), _) => json!(b),
            (Value::Int(i), _) => json!(i),
            (Value::Long(i), _) | (Value::TimeMicros(i), _) | (Value::TimestampMicros(i), _) => json!(i),
            (Value::Date(d), _) => json!(d),
            (Value::Float(f), _) => json!(f),
            (Value::Double(f), _) => json!(f),
            (Value::Decimal(d), DataType::Decimal128(_, s)) => json!(format!("{d}e-{s}")),
            (Value::Decimal(d), _) => json!(d.to_string()),
            (Value::String(s), _) => json!(s),
            (Value::Bytes(b), _) | (Value::Fixed(b), _) => json!(b),
            (Value::Array(items), DataType::List(f)) => Json::Array(items.iter().map(|i| i.to_json(f.data_type())).collect()),
            (Value::Map(pairs), DataType::Map(entries, _)) => {
                let vt = match entries.data_type() {
                    DataType::Struct(kv) if kv.len() == 2 => kv[1].data_type().clone(),
                    _ => DataType::Null,
                };
                Json::Object(pairs.iter().map(|(k, v)| (k.clone(), v.to_json(&vt))).collect())
            }
            (Value::Record(vs), DataType::Struct(fields)) => {
                Json::Object(fields.iter().zip(vs).map(|(f, v)| (f.name().clone(), v.to_json(f.data_type()))).collect())
            }
            (Value::Array(items), _) => Json::Array(items.iter().map(|i| i.to_json(&DataType::Null)).collect()),
            (Value::Map(_) | Value::Record(_), _) => Json::Null,
        }
    }
}
