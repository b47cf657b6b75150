//! Avro schemas from JSON: records, enums, fixed, arrays, maps, unions, named references, and the
//! logical types decimal, date, time-millis/micros, timestamp-millis/micros, local-timestamp-*, uuid.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value as Json;

use crate::error::{Result, SchemaError};

/// A parsed Avro schema, with named references resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum AvroSchema {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record { name: String, fields: Vec<AvroField> },
    Enum { name: String, symbols: Vec<String> },
    Array(Box<AvroSchema>),
    Map(Box<AvroSchema>),
    Union(Vec<AvroSchema>),
    Fixed { name: String, size: usize },
    /// On bytes (`fixed: None`) or fixed (`Some(size)`).
    Decimal { precision: u8, scale: i8, fixed: Option<usize> },
    Uuid,
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    LocalTimestampMillis,
    LocalTimestampMicros,
}

/// A field of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct AvroField {
    pub name: String,
    pub schema: AvroSchema,
    pub default: Option<Json>,
}

fn invalid(msg: impl Into<String>) -> SchemaError {
    SchemaError::InvalidSchema(msg.into())
}

struct Parser {
    named: HashMap<String, AvroSchema>,
    defining: Vec<String>,
}

impl AvroSchema {
    /// Parses the JSON text of a schema.
    pub fn parse_str(text: &str) -> Result<Self> {
        let json: Json = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        Self::parse(&json)
    }

    /// Parses a schema from JSON.
    pub fn parse(json: &Json) -> Result<Self> {
        Self::parse_with(json, &[])
    }

    /// Parses a schema that may name types defined by `references` (schemas of other subjects).
    pub fn parse_with(json: &Json, references: &[AvroSchema]) -> Result<Self> {
        let mut p = Parser { named: HashMap::new(), defining: vec![] };
        for r in references {
            p.register(r);
        }
        p.parse(json, None)
    }

    /// The Arrow type of this schema and whether it is nullable (a union with null).
    pub fn arrow_type(&self) -> Result<(DataType, bool)> {
        Ok(match self {
            AvroSchema::Union(branches) => {
                let non_null: Vec<&AvroSchema> = branches.iter().filter(|b| **b != AvroSchema::Null).collect();
                match non_null.as_slice() {
                    [one] => (one.arrow_type()?.0, true),
                    [] => return Err(SchemaError::Unsupported("a union of only null has no column type".into())),
                    _ => return Err(SchemaError::Unsupported("unions of several non-null types have no Iceberg type".into())),
                }
            }
            AvroSchema::Null => return Err(SchemaError::Unsupported("a null-only field has no column type".into())),
            AvroSchema::Boolean => (DataType::Boolean, false),
            AvroSchema::Int => (DataType::Int32, false),
            AvroSchema::Long => (DataType::Int64, false),
            AvroSchema::Float => (DataType::Float32, false),
            AvroSchema::Double => (DataType::Float64, false),
            AvroSchema::Bytes => (DataType::Binary, false),
            AvroSchema::String | AvroSchema::Enum { .. } => (DataType::Utf8, false),
            AvroSchema::Fixed { size, .. } => (DataType::FixedSizeBinary(*size as i32), false),
            AvroSchema::Uuid => (DataType::FixedSizeBinary(16), false),
            AvroSchema::Decimal { precision, scale, .. } => (DataType::Decimal128(*precision, *scale), false),
            AvroSchema::Date => (DataType::Date32, false),
            AvroSchema::TimeMillis | AvroSchema::TimeMicros => (DataType::Time64(TimeUnit::Microsecond), false),
            AvroSchema::TimestampMillis | AvroSchema::TimestampMicros => (DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            AvroSchema::LocalTimestampMillis | AvroSchema::LocalTimestampMicros => (DataType::Timestamp(TimeUnit::Microsecond, None), false),
            AvroSchema::Array(item) => {
                let (t, nullable) = item.arrow_type()?;
                (DataType::List(Arc::new(Field::new("element", t, nullable))), false)
            }
            AvroSchema::Map(value) => {
                let (t, nullable) = value.arrow_type()?;
                let entries = Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", t, nullable)]);
                (DataType::Map(Arc::new(Field::new("key_value", DataType::Struct(entries), false)), false), false)
            }
            AvroSchema::Record { fields, .. } => (DataType::Struct(Fields::from(record_fields(fields)?)), false),
        })
    }

    /// The Arrow schema of a record schema (its fields become the columns).
    pub fn arrow_schema(&self) -> Result<Schema> {
        match self {
            AvroSchema::Record { fields, .. } => Ok(Schema::new(record_fields(fields)?)),
            other => Err(SchemaError::Unsupported(format!("the top level must be a record, not {other:?}"))),
        }
    }
}

fn record_fields(fields: &[AvroField]) -> Result<Vec<Field>> {
    fields
        .iter()
        .map(|f| {
            let (t, nullable) = f.schema.arrow_type().map_err(|e| SchemaError::Unsupported(format!("field {}: {e}", f.name)))?;
            Ok(Field::new(&f.name, t, nullable))
        })
        .collect()
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

impl Parser {
    /// Makes the named types inside `s` known, as a referenced schema's are.
    fn register(&mut self, s: &AvroSchema) {
        match s {
            AvroSchema::Record { name, fields } => {
                self.named.insert(name.clone(), s.clone());
                for f in fields {
                    self.register(&f.schema);
                }
            }
            AvroSchema::Enum { name, .. } | AvroSchema::Fixed { name, .. } => {
                self.named.insert(name.clone(), s.clone());
            }
            AvroSchema::Array(x) | AvroSchema::Map(x) => self.register(x),
            AvroSchema::Union(xs) => xs.iter().for_each(|x| self.register(x)),
            _ => {}
        }
    }

    fn parse(&mut self, json: &Json, ns: Option<&str>) -> Result<AvroSchema> {
        match json {
            Json::String(s) => self.by_name(s, ns),
            Json::Array(branches) => {
                let mut out = Vec::with_capacity(branches.len());
                for b in branches {
                    let s = self.parse(b, ns)?;
                    if matches!(s, AvroSchema::Union(_)) {
                        return Err(invalid("a union may not directly contain a union"));
                    }
                    out.push(s);
                }
                Ok(AvroSchema::Union(out))
            }
            Json::Object(o) => {
                let ty = o.get("type").ok_or_else(|| invalid("a schema object needs a \"type\""))?;
                if let Some(Json::String(logical)) = o.get("logicalType") {
                    if let Some(s) = self.logical(logical, o, ty, ns)? {
                        return Ok(s);
                    }
                }
                match ty.as_str() {
                    Some("record") | Some("error") => self.record(o, ns),
                    Some("enum") => {
                        let name = self.name_of(o, ns)?;
                        let symbols = o
                            .get("symbols")
                            .and_then(Json::as_array)
                            .ok_or_else(|| invalid(format!("enum {name} needs symbols")))?
                            .iter()
                            .map(|s| s.as_str().map(str::to_string).ok_or_else(|| invalid("enum symbols must be strings")))
                            .collect::<Result<Vec<_>>>()?;
                        let s = AvroSchema::Enum { name: name.clone(), symbols };
                        self.named.insert(name, s.clone());
                        Ok(s)
                    }
                    Some("fixed") => {
                        let name = self.name_of(o, ns)?;
                        let size = o.get("size").and_then(Json::as_u64).ok_or_else(|| invalid(format!("fixed {name} needs a size")))? as usize;
                        let s = AvroSchema::Fixed { name: name.clone(), size };
                        self.named.insert(name, s.clone());
                        Ok(s)
                    }
                    Some("array") => Ok(AvroSchema::Array(Box::new(self.parse(o.get("items").ok_or_else(|| invalid("array needs items"))?, ns)?))),
                    Some("map") => Ok(AvroSchema::Map(Box::new(self.parse(o.get("values").ok_or_else(|| invalid("map needs values"))?, ns)?))),
                    _ => self.parse(ty, ns),
                }
            }
            other => Err(invalid(format!("unexpected {other} in a schema"))),
        }
    }

    fn by_name(&self, s: &str, ns: Option<&str>) -> Result<AvroSchema> {
        Ok(match s {
            "null" => AvroSchema::Null,
            "boolean" => AvroSchema::Boolean,
            "int" => AvroSchema::Int,
            "long" => AvroSchema::Long,
            "float" => AvroSchema::Float,
            "double" => AvroSchema::Double,
            "bytes" => AvroSchema::Bytes,
            "string" => AvroSchema::String,
            name => {
                let full = full_name(name, ns);
                if self.defining.contains(&full) || self.defining.iter().any(|d| d == name) {
                    return Err(SchemaError::Unsupported(format!("recursive type {full} has no table representation")));
                }
                self.named.get(&full).or_else(|| self.named.get(name)).cloned().ok_or_else(|| invalid(format!("unknown type {name}")))?
            }
        })
    }

    fn name_of(&self, o: &serde_json::Map<String, Json>, ns: Option<&str>) -> Result<String> {
        let name = o.get("name").and_then(Json::as_str).ok_or_else(|| invalid("a named type needs a name"))?;
        let own_ns = o.get("namespace").and_then(Json::as_str).or(ns);
        Ok(full_name(name, own_ns))
    }

    fn record(&mut self, o: &serde_json::Map<String, Json>, ns: Option<&str>) -> Result<AvroSchema> {
        let name = self.name_of(o, ns)?;
        let child_ns = name.rsplit_once('.').map(|(n, _)| n.to_string());
        self.defining.push(name.clone());
        let mut fields = Vec::new();
        for f in o.get("fields").and_then(Json::as_array).ok_or_else(|| invalid(format!("record {name} needs fields")))? {
            let fname = f.get("name").and_then(Json::as_str).ok_or_else(|| invalid(format!("a field of {name} has no name")))?;
            let schema = self.parse(f.get("type").ok_or_else(|| invalid(format!("field {fname} has no type")))?, child_ns.as_deref())?;
            fields.push(AvroField { name: fname.to_string(), schema, default: f.get("default").cloned() });
        }
        self.defining.pop();
        let s = AvroSchema::Record { name: name.clone(), fields };
        self.named.insert(name, s.clone());
        Ok(s)
    }

    fn logical(&mut self, logical: &str, o: &serde_json::Map<String, Json>, ty: &Json, ns: Option<&str>) -> Result<Option<AvroSchema>> {
        let base = ty.as_str();
        Ok(Some(match (logical, base) {
            ("decimal", Some("bytes")) | ("decimal", Some("fixed")) => {
                let precision = o.get("precision").and_then(Json::as_u64).ok_or_else(|| invalid("decimal needs a precision"))?;
                let scale = o.get("scale").and_then(Json::as_u64).unwrap_or(0);
                if precision == 0 || precision > 38 || scale > precision {
                    return Err(SchemaError::Unsupported(format!("decimal({precision}, {scale}): precision 1..=38 and scale <= precision")));
                }
                let fixed = if base == Some("fixed") {
                    let s = self.parse(&Json::Object(o.iter().filter(|(k, _)| *k != "logicalType").map(|(k, v)| (k.clone(), v.clone())).collect()), ns)?;
                    match s {
                        AvroSchema::Fixed { size, .. } => Some(size),
                        _ => None,
                    }
                } else {
                    None
                };
                AvroSchema::Decimal { precision: precision as u8, scale: scale as i8, fixed }
            }
            ("uuid", Some("string")) => AvroSchema::Uuid,
            ("date", Some("int")) => AvroSchema::Date,
            ("time-millis", Some("int")) => AvroSchema::TimeMillis,
            ("time-micros", Some("long")) => AvroSchema::TimeMicros,
            ("timestamp-millis", Some("long")) => AvroSchema::TimestampMillis,
            ("timestamp-micros", Some("long")) => AvroSchema::TimestampMicros,
            ("local-timestamp-millis", Some("long")) => AvroSchema::LocalTimestampMillis,
            ("local-timestamp-micros", Some("long")) => AvroSchema::LocalTimestampMicros,
            // An unknown or misplaced logical type falls back to its base type, as the spec says.
            _ => return Ok(None),
        }))
    }
}
