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
