//! Protobuf: schemas from `.proto` text (as a registry holds them, imports given as references),
//! from `.proto` files on disk, or from a descriptor set; records decoded into [`Value`]s.
//!
//! Mapping: messages → structs, repeated → lists, maps → maps (keys as strings), enums → their
//! names, oneof members and fields with presence → nullable, `google.protobuf.Timestamp` →
//! timestamp, wrappers (`Int64Value`, …) → nullable scalars. Unsigned 64-bit values above the
//! long range are per-record errors.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as PValue};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::arrow::record_batch;
use crate::error::{RecordError, Result, SchemaError};
use crate::value::Value;

/// Nesting deeper than this is refused (recursive messages have no table form).
const DEPTH_MAX: usize = 32;
/// Most columns (nested ones included) of a message's table form: a message used by two fields
/// of the next, 32 levels deep, would expand to 2^32.
pub const COLUMNS_MAX: usize = 100_000;

/// A message type to decode records with.
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    message: MessageDescriptor,
}

/// A schema file as a registry holds it: `.proto` text, or a base64 `FileDescriptorProto`
/// (as Confluent's Python and some other serializers register Protobuf schemas).
enum Source {
    Text(String),
    Descriptor(Box<prost_types::FileDescriptorProto>),
}

struct Sources(HashMap<String, Source>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        match self.0.get(name) {
            Some(Source::Text(src)) => File::from_source(name, src),
            Some(Source::Descriptor(d)) => Ok(File::from_file_descriptor_proto(d.as_ref().clone())),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Standard base64 (with padding) into bytes; `None` if `s` is not base64.
fn base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok().filter(|b| !b.is_empty())
}

/// A file given as a base64 `FileDescriptorProto`, with the name it declares.
fn descriptor(source: &str) -> Option<prost_types::FileDescriptorProto> {
    use prost::Message;
    let bytes = base64(source)?;
    let d = prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    d.name.is_some().then_some(d)
}

fn invalid(e: impl std::fmt::Display) -> SchemaError {
    SchemaError::InvalidSchema(e.to_string())
}

impl ProtoSchema {
    /// Compiles `.proto` source named `file` (its imports in `imports`: name → source; Google's
    /// well-known types are built in) and picks `message` (full name) or the file's first message.
    pub fn from_source(file: &str, source: &str, imports: &[(String, String)], message: Option<&str>) -> Result<Self> {
        let as_source = |text: &str| descriptor(text).map_or_else(|| Source::Text(text.to_string()), |d| Source::Descriptor(Box::new(d)));
        let mut files: HashMap<String, Source> = imports.iter().map(|(n, t)| (n.clone(), as_source(t))).collect();
        let (file, main) = match descriptor(source) {
            Some(d) => (d.name.clone().unwrap_or_else(|| file.to_string()), Source::Descriptor(Box::new(d))),
            None => (file.to_string(), Source::Text(source.to_string())),
        };
        let file = file.as_str();
        files.insert(file.to_string(), main);
        let mut chain = ChainFileResolver::new();
        chain.add(Sources(files));
        chain.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.open_file(file).map_err(invalid)?;
        let pool = compiler.descriptor_pool();
        Self::pick(&pool, file, message)
    }

    /// Compiles `.proto` files from disk (`includes` are the import roots).
    pub fn from_files(includes: &[std::path::PathBuf], files: &[std::path::PathBuf], message: &str) -> Result<Self> {
        let pool = protox::compile(files, includes).map_err(invalid)?;
        let pool = DescriptorPool::from_file_descriptor_set(pool).map_err(invalid)?;
        Self::pick(&pool, "", Some(message))
    }

    /// Reads a serialized `FileDescriptorSet`.
    pub fn from_descriptor_set(bytes: &[u8], message: &str) -> Result<Self> {
        let pool = DescriptorPool::decode(bytes).map_err(invalid)?;
        Self::pick(&pool, "", Some(message))
    }

    fn pick(pool: &DescriptorPool, file: &str, message: Option<&str>) -> Result<Self> {
        let message = match message {
            Some(m) => pool.get_message_by_name(m).ok_or_else(|| invalid(format!("no message {m}")))?,
            None => pool.get_file_by_name(file).and_then(|f| f.messages().next()).ok_or_else(|| invalid(format!("{file} defines no message")))?,
        };
        let s = Self { message };
        s.arrow_schema()?;
        Ok(s)
    }

    /// The message selected by Confluent message indexes (first index in the file, then nested).
    pub fn by_indexes(&self, indexes: &[i32]) -> Result<Self> {
        let file = self.message.parent_file();
        let mut it = indexes.iter();
        let first = usize::try_from(*it.next().unwrap_or(&0)).map_err(|_| invalid("negative message index"))?;
        let mut m = file.messages().nth(first).ok_or_else(|| invalid(format!("no message #{first}")))?;
        for &i in it {
            let i = usize::try_from(i).map_err(|_| invalid("negative message index"))?;
            let next = m.child_messages().nth(i);
            m = next.ok_or_else(|| invalid(format!("no nested message #{i} in {}", m.full_name())))?;
        }
        Ok(Self { message: m })
    }

    /// The message's descriptor.
    pub fn descriptor(&self) -> &MessageDescriptor {
        &self.message
    }

    /// The full name of the message.
    pub fn message_name(&self) -> &str {
        self.message.full_name()
    }

    /// The Arrow schema: the message's fields are the columns.
    pub fn arrow_schema(&self) -> Result<Schema> {
        Ok(Schema::new(fields_of(&self.message, 0, &mut { COLUMNS_MAX })?))
    }

    /// Decodes one message.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value> {
        let m = DynamicMessage::decode(self.message.clone(), bytes).map_err(|e| SchemaError::Decode(e.to_string()))?;
        message_value(&m)
    }
}

fn wrapper(name: &str) -> Option<DataType> {
    Some(match name {
        "google.protobuf.DoubleValue" => DataType::Float64,
        "google.protobuf.FloatValue" => DataType::Float32,
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" | "google.protobuf.UInt32Value" => DataType::Int64,
        "google.protobuf.Int32Value" => DataType::Int32,
        "google.protobuf.BoolValue" => DataType::Boolean,
        "google.protobuf.StringValue" => DataType::Utf8,
        "google.protobuf.BytesValue" => DataType::Binary,
        _ => return None,
    })
}

fn kind_type(kind: &Kind, depth: usize, budget: &mut usize) -> Result<DataType> {
    Ok(match kind {
        Kind::Double => DataType::Float64,
        Kind::Float => DataType::Float32,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => DataType::Int32,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => DataType::Int64,
        Kind::Bool => DataType::Boolean,
        Kind::String | Kind::Enum(_) => DataType::Utf8,
        Kind::Bytes => DataType::Binary,
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::Message(m) => match wrapper(m.full_name()) {
            Some(t) => t,
            None => DataType::Struct(Fields::from(fields_of(m, depth + 1, budget)?)),
        },
    })
}

fn field_of(fd: &FieldDescriptor, depth: usize, budget: &mut usize) -> Result<Field> {
    *budget = budget.checked_sub(1).ok_or_else(|| SchemaError::Unsupported(format!("the message expands to more than {COLUMNS_MAX} columns (COLUMNS_MAX)")))?;
    if fd.is_map() {
        let Kind::Message(entry) = fd.kind() else { return Err(invalid("a map without an entry message")) };
        let v = entry.map_entry_value_field();
        let value = Field::new("value", kind_type(&v.kind(), depth, budget)?, matches!(v.kind(), Kind::Message(_)));
        let entries = Fields::from(vec![Field::new("key", DataType::Utf8, false), value]);
        return Ok(Field::new(fd.name(), DataType::Map(Arc::new(Field::new("key_value", DataType::Struct(entries), false)), false), false));
    }
    let t = kind_type(&fd.kind(), depth, budget)?;
    if fd.is_list() {
        return Ok(Field::new(fd.name(), DataType::List(Arc::new(Field::new("element", t, false))), false));
    }
    let nullable = fd.supports_presence() || matches!(fd.kind(), Kind::Message(_));
    Ok(Field::new(fd.name(), t, nullable))
}

fn fields_of(m: &MessageDescriptor, depth: usize, budget: &mut usize) -> Result<Vec<Field>> {
    if depth > DEPTH_MAX {
        return Err(SchemaError::Unsupported(format!("message {} nests deeper than {DEPTH_MAX} (recursive?)", m.full_name())));
    }
    m.fields().map(|f| field_of(&f, depth, budget)).collect()
}

fn scalar(v: &PValue, kind: &Kind) -> Result<Value> {
    Ok(match v {
        PValue::Bool(b) => Value::Boolean(*b),
        PValue::I32(i) => Value::Int(*i),
        PValue::I64(i) => Value::Long(*i),
        PValue::U32(u) => Value::Long(i64::from(*u)),
        PValue::U64(u) => Value::Long(i64::try_from(*u).map_err(|_| SchemaError::Decode(format!("{u} does not fit a long")))?),
        PValue::F32(f) => Value::Float(*f),
        PValue::F64(f) => Value::Double(*f),
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::Bytes(b.to_vec()),
        PValue::EnumNumber(n) => match kind {
            Kind::Enum(e) => Value::String(e.get_value(*n).map_or_else(|| n.to_string(), |v| v.name().to_string())),
            _ => Value::Int(*n),
        },
        PValue::Message(m) => {
            let name = m.descriptor().full_name().to_string();
            if name == "google.protobuf.Timestamp" {
                let secs = m.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
                let nanos = m.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
                Value::TimestampMicros(secs.saturating_mul(1_000_000).saturating_add(i64::from(nanos) / 1000))
            } else if wrapper(&name).is_some() {
                match m.get_field_by_name("value") {
                    Some(v) => {
                        let fd = m.descriptor().get_field_by_name("value").ok_or_else(|| SchemaError::Decode("wrapper without value".into()))?;
                        scalar(&v, &fd.kind())?
                    }
                    None => Value::Null,
                }
            } else {
                message_value(m)?
            }
        }
        PValue::List(items) => Value::Array(items.iter().map(|i| scalar(i, kind)).collect::<Result<_>>()?),
        PValue::Map(_) => return Err(SchemaError::Decode("a map where a scalar was expected".into())),
    })
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(i) => i.to_string(),
        MapKey::I64(i) => i.to_string(),
        MapKey::U32(u) => u.to_string(),
        MapKey::U64(u) => u.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn message_value(m: &DynamicMessage) -> Result<Value> {
    let mut out = Vec::new();
    for fd in m.descriptor().fields() {
        if (fd.supports_presence() || matches!(fd.kind(), Kind::Message(_))) && !fd.is_list() && !fd.is_map() && !m.has_field(&fd) {
            out.push(Value::Null);
            continue;
        }
        let v = m.get_field(&fd);
        out.push(match v.as_ref() {
            PValue::Map(entries) => {
                let Kind::Message(entry) = fd.kind() else { return Err(SchemaError::Decode("map without entry".into())) };
                let vk = entry.map_entry_value_field().kind();
                let mut pairs: Vec<(String, Value)> = entries.iter().map(|(k, v)| Ok((map_key(k), scalar(v, &vk)?))).collect::<Result<_>>()?;
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Map(pairs)
            }
            other => scalar(other, &fd.kind()).map_err(|e| SchemaError::Decode(format!("field {}: {e}", fd.name())))?,
        });
    }
    Ok(Value::Record(out))
}

/// Splits Confluent's message indexes from a Protobuf payload (after the 5-byte header):
/// a zigzag varint count, then that many zigzag varint indexes; a count of 0 means `[0]`.
pub fn split_indexes(payload: &[u8]) -> Result<(Vec<i32>, &[u8])> {
    fn varint(b: &[u8], pos: &mut usize) -> Result<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let x = *b.get(*pos).ok_or_else(|| SchemaError::WireFormat("truncated message indexes".into()))?;
            *pos += 1;
            raw |= u64::from(x & 0x7f) << (7 * i);
            if x & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(SchemaError::WireFormat("bad varint in message indexes".into()))
    }
    let mut pos = 0;
    let count = varint(payload, &mut pos)?;
    if count == 0 {
        return Ok((vec![0], &payload[pos..]));
    }
    if !(1..=64).contains(&count) {
        return Err(SchemaError::WireFormat(format!("{count} message indexes")));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        out.push(i32::try_from(varint(payload, &mut pos)?).map_err(|_| SchemaError::WireFormat("message index out of range".into()))?);
    }
    Ok((out, &payload[pos..]))
}

/// Decodes many messages of one type into a batch; bad records become errors.
pub fn decode_batch(schema: &ProtoSchema, records: &[(i64, &[u8])]) -> Result<(RecordBatch, Vec<RecordError>)> {
    let arrow = Arc::new(schema.arrow_schema()?);
    let mut rows = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (offset, bytes) in records {
        match schema.decode(bytes) {
            Ok(v) => rows.push(v),
            Err(e) => errors.push(RecordError { offset: *offset, reason: e.to_string() }),
        }
    }
    Ok((record_batch(arrow, &rows)?, errors))
}

#[cfg(test)]
mod tests;
