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
    /// A record's fields are shared by every reference to it (a named type used twice is one
    /// allocation, not two copies).
    Record {
        name: String,
        fields: Arc<[AvroField]>,
    },
    Enum {
        name: String,
        symbols: Vec<String>,
    },
    Array(Box<AvroSchema>),
    Map(Box<AvroSchema>),
    Union(Vec<AvroSchema>),
    Fixed {
        name: String,
        size: usize,
    },
    /// On bytes (`fixed: None`) or fixed (`Some(size)`).
    Decimal {
        precision: u8,
        scale: i8,
        fixed: Option<usize>,
    },
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

/// Most nodes of a schema with every named reference expanded (what decoding and the Arrow
/// conversion walk): a 4 KB schema that references each named type twice would expand to 2^40.
pub const SCHEMA_NODES_MAX: usize = 100_000;
/// Largest `fixed` size (Arrow's fixed-size binary holds it for every row, null or not).
pub const FIXED_BYTES_MAX: usize = 1 << 16;
/// Deepest nesting of a schema with every named reference expanded.
pub const SCHEMA_DEPTH_MAX: usize = 64;

fn invalid(msg: impl Into<String>) -> SchemaError {
    SchemaError::InvalidSchema(msg.into())
}

struct Parser {
    named: HashMap<String, AvroSchema>,
    /// (expanded nodes, expanded depth) of each named type.
    sizes: HashMap<String, (usize, usize)>,
    defining: Vec<String>,
    /// Expanded nodes so far, the current depth, and the deepest expanded depth reached.
    nodes: usize,
    depth: usize,
    deepest: usize,
}

/// (expanded nodes, expanded depth) of a parsed schema; stops counting past the limit.
fn measure(s: &AvroSchema) -> (usize, usize) {
    let (n, d) = match s {
        AvroSchema::Record { fields, .. } => {
            fields.iter().map(|f| measure(&f.schema)).fold((0usize, 0usize), |(n, d), (fn_, fd)| (n.saturating_add(fn_).min(SCHEMA_NODES_MAX + 1), d.max(fd)))
        }
        AvroSchema::Array(x) | AvroSchema::Map(x) => measure(x),
        AvroSchema::Union(xs) => xs.iter().map(measure).fold((0usize, 0usize), |(n, d), (xn, xd)| (n.saturating_add(xn).min(SCHEMA_NODES_MAX + 1), d.max(xd))),
        _ => (0, 0),
    };
    (n + 1, d + 1)
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
        let mut p = Parser { named: HashMap::new(), sizes: HashMap::new(), defining: vec![], nodes: 0, depth: 0, deepest: 0 };
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
            AvroSchema::Fixed { size, .. } => (DataType::FixedSizeBinary(i32::try_from(*size).map_err(|_| invalid(format!("fixed size {size}")))?), false),
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
                self.sizes.insert(name.clone(), measure(s));
                for f in fields.iter() {
                    self.register(&f.schema);
                }
            }
            AvroSchema::Enum { name, .. } | AvroSchema::Fixed { name, .. } => {
                self.named.insert(name.clone(), s.clone());
                self.sizes.insert(name.clone(), (1, 1));
            }
            AvroSchema::Array(x) | AvroSchema::Map(x) => self.register(x),
            AvroSchema::Union(xs) => xs.iter().for_each(|x| self.register(x)),
            _ => {}
        }
    }

    /// Counts `nodes` more expanded nodes reaching `depth` levels below the current one.
    fn grow(&mut self, nodes: usize, depth: usize) -> Result<()> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.deepest = self.deepest.max(self.depth + depth);
        if self.nodes > SCHEMA_NODES_MAX {
            return Err(invalid(format!("the schema expands to more than {SCHEMA_NODES_MAX} nodes (SCHEMA_NODES_MAX) with its named types in place")));
        }
        if self.deepest > SCHEMA_DEPTH_MAX {
            return Err(invalid(format!("the schema nests deeper than {SCHEMA_DEPTH_MAX} levels (SCHEMA_DEPTH_MAX) with its named types in place")));
        }
        Ok(())
    }

    fn parse(&mut self, json: &Json, ns: Option<&str>) -> Result<AvroSchema> {
        self.depth += 1;
        let r = self.grow(1, 0).and_then(|()| self.parse_node(json, ns));
        self.depth -= 1;
        r
    }

    fn parse_node(&mut self, json: &Json, ns: Option<&str>) -> Result<AvroSchema> {
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
                        self.sizes.insert(name.clone(), (1, 1));
                        self.named.insert(name, s.clone());
                        Ok(s)
                    }
                    Some("fixed") => {
                        let name = self.name_of(o, ns)?;
                        let size = o.get("size").and_then(Json::as_u64).ok_or_else(|| invalid(format!("fixed {name} needs a size")))?;
                        let size = usize::try_from(size)
                            .ok()
                            .filter(|&n| n <= FIXED_BYTES_MAX)
                            .ok_or_else(|| invalid(format!("fixed {name} of {size} bytes is over FIXED_BYTES_MAX ({FIXED_BYTES_MAX})")))?;
                        let s = AvroSchema::Fixed { name: name.clone(), size };
                        self.sizes.insert(name.clone(), (1, 1));
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

    fn by_name(&mut self, s: &str, ns: Option<&str>) -> Result<AvroSchema> {
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
                let key = if self.named.contains_key(&full) { full } else { name.to_string() };
                let found = self.named.get(&key).cloned().ok_or_else(|| invalid(format!("unknown type {name}")))?;
                // The reference node itself was counted by `parse`; its type adds the rest.
                let (n, d) = self.sizes.get(&key).copied().unwrap_or((1, 1));
                self.grow(n - 1, d - 1)?;
                found
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
        let (nodes_before, outer_deepest) = (self.nodes, std::mem::replace(&mut self.deepest, self.depth));
        self.defining.push(name.clone());
        let mut fields = Vec::new();
        for f in o.get("fields").and_then(Json::as_array).ok_or_else(|| invalid(format!("record {name} needs fields")))? {
            let fname = f.get("name").and_then(Json::as_str).ok_or_else(|| invalid(format!("a field of {name} has no name")))?;
            let schema = self.parse(f.get("type").ok_or_else(|| invalid(format!("field {fname} has no type")))?, child_ns.as_deref())?;
            fields.push(AvroField { name: fname.to_string(), schema, default: f.get("default").cloned() });
        }
        self.defining.pop();
        // The record node was counted by `parse`, one level up.
        let size = (self.nodes - nodes_before + 1, self.deepest - self.depth + 1);
        self.deepest = self.deepest.max(outer_deepest);
        let s = AvroSchema::Record { name: name.clone(), fields: fields.into() };
        self.sizes.insert(name.clone(), size);
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
