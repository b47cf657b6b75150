//! `flatten_debezium`: a Debezium change event (JSON with a `schema`/`payload` pair, or a bare
//! envelope) becomes its row image — `after` for c/r/u, `before` for d — plus a `_cdc` struct
//! (`op` as I/U/D, `ts`, `offset`, `source` as db.table).
//!
//! Column types come from the event's Kafka Connect schema when it has one, else from JSON
//! inference. A tombstone (null value) is recognised and reported apart, and so is a delete whose
//! row image is missing (`before: null`, a table without REPLICA IDENTITY FULL): only the record's
//! key says which row went, so the caller decides (a keyed table deletes by key; others reject it).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value as Json;

use crate::arrow::record_batch;
use crate::error::{RecordError, Result, SchemaError};
use crate::json::JsonInference;
use crate::value::Value;

/// The operation of a change, as the `_cdc.op` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// TRUNCATE of the whole source table (op `t`; Debezium sends it when `skipped.operations`
    /// does not list it).
    Truncate,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "I",
            Op::Update => "U",
            Op::Delete => "D",
            Op::Truncate => "T",
        }
    }
}

/// One flattened change event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: Op,
    /// The row image, a JSON object.
    pub row: Json,
    /// The Connect schema of the row image, when the event carried one.
    pub row_schema: Option<Json>,
    pub ts_ms: Option<i64>,
    /// `db.table` from the event's source block.
    pub source: Option<String>,
}

/// Why a delete may come without its row image.
const REPLICA_HINT: &str = " (the source table may lack REPLICA IDENTITY FULL; only the key says which row went)";

fn invalid(msg: impl Into<String>) -> SchemaError {
    SchemaError::Decode(msg.into())
}

/// Flattens one record value; `Ok(None)` for a tombstone.
pub fn flatten(value: Option<&[u8]>) -> Result<Option<Change>> {
    let Some(bytes) = value else { return Ok(None) };
    let json: Json = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let (envelope, schema) = match (json.get("schema"), json.get("payload")) {
        (Some(s), Some(p)) => (p.clone(), Some(s.clone())),
        _ => (json, None),
    };
    if envelope.is_null() {
        return Ok(None);
    }
    let op = match envelope.get("op").and_then(Json::as_str) {
        Some("c" | "r") => Op::Insert,
        Some("u") => Op::Update,
        Some("d") => Op::Delete,
        Some("t") => {
            let ts_ms = envelope.get("ts_ms").and_then(Json::as_i64);
            return Ok(Some(Change { op: Op::Truncate, row: Json::Null, row_schema: None, ts_ms, source: None }));
        }
        Some(other) => return Err(invalid(format!("unknown Debezium op {other:?}"))),
        None => return Err(invalid("not a Debezium envelope: no \"op\"")),
    };
    let image = if op == Op::Delete { "before" } else { "after" };
    let row = envelope.get(image).cloned().unwrap_or(Json::Null);
    if !row.is_object() {
        let error = if op == Op::Delete { SchemaError::KeylessDelete } else { SchemaError::Decode };
        return Err(error(format!(
            "{} event without a row image: \"{image}\" is {}{}",
            op.code(),
            if row.is_null() { "null".to_string() } else { row.to_string() },
            if op == Op::Delete { REPLICA_HINT } else { "" }
        )));
    }
    let row_schema = schema.as_ref().and_then(|s| s.get("fields")?.as_array()?.iter().find(|f| f.get("field").and_then(Json::as_str) == Some(image)).cloned());
    let source = envelope.get("source").map(|s| {
        let db = s.get("db").and_then(Json::as_str).unwrap_or("");
        let table = s.get("table").and_then(Json::as_str).unwrap_or("");
        format!("{db}.{table}")
    });
    Ok(Some(Change { op, row, row_schema, ts_ms: envelope.get("ts_ms").and_then(Json::as_i64), source }))
}

/// The Arrow type of a Kafka Connect schema, honouring its logical types.
fn connect_type(s: &Json) -> Result<DataType> {
    let name = s.get("name").and_then(Json::as_str).unwrap_or("");
    let ty = s.get("type").and_then(Json::as_str).unwrap_or("");
    Ok(match (name, ty) {
        ("org.apache.kafka.connect.data.Date" | "io.debezium.time.Date", "int32") => DataType::Date32,
        (
            "org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp" | "io.debezium.time.MicroTimestamp" | "io.debezium.time.NanoTimestamp",
            "int64",
        ) => DataType::Timestamp(TimeUnit::Microsecond, None),
        (_, "int8" | "int16" | "int32") => DataType::Int32,
        (_, "int64") => DataType::Int64,
        (_, "float32" | "float") => DataType::Float32,
        (_, "float64" | "double") => DataType::Float64,
        (_, "boolean") => DataType::Boolean,
        (_, "string") => DataType::Utf8,
        (_, "bytes") => DataType::Binary,
        (_, "array") => {
            let items = s.get("items").ok_or_else(|| SchemaError::InvalidSchema("array without items".into()))?;
            DataType::List(Arc::new(Field::new("element", connect_type(items)?, true)))
        }
        (_, "struct") => DataType::Struct(connect_fields(s)?),
        (_, other) => return Err(SchemaError::Unsupported(format!("Connect type {other:?} ({name})"))),
    })
}

fn connect_fields(s: &Json) -> Result<Fields> {
    let fields = s.get("fields").and_then(Json::as_array).ok_or_else(|| SchemaError::InvalidSchema("struct without fields".into()))?;
    fields
        .iter()
        .map(|f| {
            let name = f.get("field").and_then(Json::as_str).ok_or_else(|| SchemaError::InvalidSchema("field without a name".into()))?;
            let optional = f.get("optional").and_then(Json::as_bool).unwrap_or(true);
            Ok(Field::new(name, connect_type(f)?, optional))
        })
        .collect::<Result<Vec<_>>>()
        .map(Fields::from)
}

/// A JSON value of a Connect-typed column into a [`Value`] (timestamps scaled to microseconds).
fn typed(v: &Json, s: &Json, path: &str) -> Result<Value> {
    let bad = || SchemaError::Mismatch { column: path.to_string(), reason: format!("{v} does not fit its Connect schema") };
    if v.is_null() {
        return Ok(Value::Null);
    }
    let name = s.get("name").and_then(Json::as_str).unwrap_or("");
    Ok(match connect_type(s)? {
        DataType::Date32 => Value::Date(v.as_i64().and_then(|d| i32::try_from(d).ok()).ok_or_else(bad)?),
        DataType::Timestamp(_, _) => {
            let n = v.as_i64().ok_or_else(bad)?;
            Value::TimestampMicros(match name {
                "io.debezium.time.MicroTimestamp" => n,
                "io.debezium.time.NanoTimestamp" => n / 1000,
                _ => n.checked_mul(1000).ok_or_else(bad)?,
            })
        }
        DataType::Int32 => Value::Int(v.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(bad)?),
        DataType::Int64 => Value::Long(v.as_i64().ok_or_else(bad)?),
        DataType::Float32 => Value::Float(v.as_f64().ok_or_else(bad)? as f32),
        DataType::Float64 => Value::Double(v.as_f64().ok_or_else(bad)?),
        DataType::Boolean => Value::Boolean(v.as_bool().ok_or_else(bad)?),
        DataType::Utf8 => Value::String(v.as_str().ok_or_else(bad)?.to_string()),
        DataType::Binary => Value::Bytes(v.as_str().ok_or_else(bad)?.as_bytes().to_vec()),
        DataType::List(_) => {
            let items = s.get("items").ok_or_else(bad)?;
            Value::Array(v.as_array().ok_or_else(bad)?.iter().map(|x| typed(x, items, path)).collect::<Result<_>>()?)
        }
        DataType::Struct(_) => {
            let fields = s.get("fields").and_then(Json::as_array).ok_or_else(bad)?;
            Value::Record(
                fields
                    .iter()
                    .map(|f| {
                        let n = f.get("field").and_then(Json::as_str).unwrap_or("");
                        typed(v.get(n).unwrap_or(&Json::Null), f, &format!("{path}.{n}"))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        _ => return Err(bad()),
    })
}

/// The `_cdc` column.
pub fn cdc_field() -> Field {
    Field::new(
        "_cdc",
        DataType::Struct(Fields::from(vec![
            Field::new("op", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("offset", DataType::Int64, false),
            Field::new("source", DataType::Utf8, true),
        ])),
        false,
    )
}

fn cdc_value(c: &Change, offset: i64) -> Value {
    Value::Record(vec![
        Value::String(c.op.code().to_string()),
        c.ts_ms.map_or(Value::Null, |t| Value::TimestampMicros(t.saturating_mul(1000))),
        Value::Long(offset),
        c.source.clone().map_or(Value::Null, Value::String),
    ])
}

/// The flattened batch: rows (with `_cdc`), per-record errors, and the offsets of tombstones.
#[derive(Debug)]
pub struct DebeziumBatch {
    pub batch: RecordBatch,
    pub errors: Vec<RecordError>,
    pub tombstones: Vec<i64>,
    /// Offsets of TRUNCATE events.
    pub truncates: Vec<i64>,
    /// Deletes without a row image, with the reason a table that cannot delete by key gives.
    pub keyless_deletes: Vec<RecordError>,
}

/// Whether `e` is [`flatten`]'s error for a delete without a row image.
fn is_keyless_delete(e: &SchemaError) -> bool {
    matches!(e, SchemaError::KeylessDelete(_))
}

/// Flattened JSON change events: one run of rows per stretch of events with the same row schema
/// (a column added or dropped in the source starts a new run, and the table evolves between
/// them), with per-record errors and the offsets of tombstones.
#[derive(Debug)]
pub struct DebeziumRuns {
    /// (rows with `_cdc`, the offset of each row), in offset order.
    pub runs: Vec<(RecordBatch, Vec<i64>)>,
    pub errors: Vec<RecordError>,
    pub tombstones: Vec<i64>,
    /// Deletes without a row image, with the reason a table that cannot delete by key gives.
    pub keyless_deletes: Vec<RecordError>,
    /// Offsets of TRUNCATE events.
    pub truncates: Vec<i64>,
}

/// Flattens a batch of change events. Events that carry a Connect schema are typed by it, each
/// stretch of one row schema a run of its own; events without one are inferred (widened in
/// `inference`) into one run.
pub fn decode_batch(inference: &mut JsonInference, records: &[(i64, Option<&[u8]>)]) -> Result<DebeziumRuns> {
    let mut out = DebeziumRuns { runs: Vec::new(), errors: Vec::new(), tombstones: Vec::new(), keyless_deletes: Vec::new(), truncates: Vec::new() };
    let mut changes = Vec::new();
    for (offset, value) in records {
        match flatten(*value) {
            Ok(Some(c)) if c.op == Op::Truncate => out.truncates.push(*offset),
            Ok(Some(c)) => changes.push((*offset, c)),
            Ok(None) => out.tombstones.push(*offset),
            Err(e) if is_keyless_delete(&e) => out.keyless_deletes.push(RecordError { offset: *offset, reason: e.to_string() }),
            Err(e) => out.errors.push(RecordError { offset: *offset, reason: e.to_string() }),
        }
    }
    // `before` and `after` carry the same columns under different schema names: runs are told
    // apart by their columns.
    let columns = |c: &Change| c.row_schema.as_ref().map(|s| s.get("fields").cloned().unwrap_or(Json::Null));
    let mut inferred = Vec::new();
    let mut i = 0;
    while i < changes.len() {
        let key = columns(&changes[i].1);
        let len = changes[i..].iter().take_while(|(_, c)| columns(c) == key).count();
        let stretch = &changes[i..i + len];
        i += len;
        match stretch[0].1.row_schema.as_ref() {
            Some(schema) => {
                if let Some(run) = typed_run(schema, stretch, &mut out.errors)? {
                    out.runs.push(run);
                }
            }
            None => inferred.extend(stretch.iter().cloned()),
        }
    }
    if !inferred.is_empty() {
        if let Some(run) = inferred_run(inference, inferred, &mut out.errors)? {
            out.runs.push(run);
        }
    }
    out.errors.sort_by_key(|e| e.offset);
    Ok(out)
}

/// Rows of events typed by their shared Connect row schema.
fn typed_run(schema: &Json, changes: &[(i64, Change)], errors: &mut Vec<RecordError>) -> Result<Option<(RecordBatch, Vec<i64>)>> {
    let fields = connect_fields(schema)?;
    let mut rows = Vec::with_capacity(changes.len());
    let mut offsets = Vec::with_capacity(changes.len());
    for (offset, c) in changes {
        match typed(&c.row, schema, "") {
            Ok(Value::Record(mut v)) => {
                v.push(cdc_value(c, *offset));
                rows.push(Value::Record(v));
                offsets.push(*offset);
            }
            Ok(_) => errors.push(RecordError { offset: *offset, reason: "the row image is not a record".into() }),
            Err(e) => errors.push(RecordError { offset: *offset, reason: e.to_string() }),
        }
    }
    run_batch(fields, &rows).map(|b| b.map(|b| (b, offsets)))
}

/// Rows of schemaless events, their columns inferred.
fn inferred_run(inference: &mut JsonInference, changes: Vec<(i64, Change)>, errors: &mut Vec<RecordError>) -> Result<Option<(RecordBatch, Vec<i64>)>> {
    let mut kept = Vec::with_capacity(changes.len());
    for (offset, c) in changes {
        match inference.observe(&c.row) {
            Ok(()) => kept.push((offset, c)),
            Err(e) => errors.push(RecordError { offset, reason: e.to_string() }),
        }
    }
    let mut rows = Vec::with_capacity(kept.len());
    let mut offsets = Vec::with_capacity(kept.len());
    for (offset, c) in &kept {
        match inference.row(&c.row) {
            Ok(Value::Record(mut v)) => {
                v.push(cdc_value(c, *offset));
                rows.push(Value::Record(v));
                offsets.push(*offset);
            }
            Ok(_) => errors.push(RecordError { offset: *offset, reason: "the row image is not an object".into() }),
            Err(e) => errors.push(RecordError { offset: *offset, reason: e.to_string() }),
        }
    }
    run_batch(inference.schema().fields().clone(), &rows).map(|b| b.map(|b| (b, offsets)))
}

/// The columns plus `_cdc`, as a batch; `None` without rows.
fn run_batch(fields: Fields, rows: &[Value]) -> Result<Option<RecordBatch>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut all: Vec<Field> = fields.iter().map(|f| f.as_ref().clone()).collect();
    all.push(cdc_field());
    record_batch(Arc::new(Schema::new(all)), rows).map(Some)
}

/// Flattens a batch of Avro-encoded change events (framing already removed) written with the
/// envelope schema `envelope`; `None` values are tombstones.
pub fn decode_avro_batch(envelope: &crate::avro::AvroSchema, records: &[(i64, Option<&[u8]>)]) -> Result<DebeziumBatch> {
    if !matches!(envelope, crate::avro::AvroSchema::Record { .. }) {
        return Err(SchemaError::Unsupported("a Debezium envelope must be a record".into()));
    }
    decode_envelope_batch(&envelope.arrow_schema()?, |b| crate::avro::decode(envelope, b), records)
}

/// Flattens a batch of Protobuf-encoded change events (Confluent's ProtobufConverter: message
/// indexes first, framing already removed) of the envelope message `envelope`.
pub fn decode_protobuf_batch(envelope: &crate::protobuf::ProtoSchema, records: &[(i64, Option<&[u8]>)]) -> Result<DebeziumBatch> {
    let decode = |b: &[u8]| {
        let (indexes, rest) = crate::protobuf::split_indexes(b)?;
        match indexes.as_slice() {
            [] | [0] => envelope.decode(rest),
            _ => envelope.by_indexes(&indexes)?.decode(rest),
        }
    };
    decode_envelope_batch(&envelope.arrow_schema()?, decode, records)
}

/// Flattens change events decoded by `decode` into values shaped as `envelope` (the Arrow form
/// of the envelope: `before`, `after`, `op`, `source`, `ts_ms`); `None` values are tombstones.
fn decode_envelope_batch(envelope: &Schema, decode: impl Fn(&[u8]) -> Result<Value>, records: &[(i64, Option<&[u8]>)]) -> Result<DebeziumBatch> {
    let fields = envelope.fields();
    let at = |name: &str| fields.iter().position(|f| f.name() == name);
    let (Some(before), Some(after), Some(op_at)) = (at("before"), at("after"), at("op")) else {
        return Err(SchemaError::Unsupported("not a Debezium envelope: it needs before, after and op".into()));
    };
    let DataType::Struct(row_fields) = fields[after].data_type() else {
        return Err(SchemaError::Unsupported("the envelope's after is not a record".into()));
    };
    let source_at = at("source");
    let source_fields: Vec<String> = match source_at.map(|i| fields[i].data_type()) {
        Some(DataType::Struct(fs)) => fs.iter().map(|f| f.name().clone()).collect(),
        _ => vec![],
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut tombstones = Vec::new();
    let mut keyless_deletes = Vec::new();
    let mut truncates = Vec::new();
    for (offset, value) in records {
        let Some(bytes) = value else {
            tombstones.push(*offset);
            continue;
        };
        let event = decode(bytes).and_then(|v| {
            let Value::Record(vs) = v else { return Err(invalid("the envelope is not a record")) };
            let op = match text(vs.get(op_at)).as_deref() {
                Some("c" | "r") => Op::Insert,
                Some("u") => Op::Update,
                Some("d") => Op::Delete,
                Some("t") => return Ok(None),
                other => return Err(invalid(format!("unknown Debezium op {other:?}"))),
            };
            let image = if op == Op::Delete { before } else { after };
            let row = vs.get(image).cloned().unwrap_or(Value::Null);
            let Value::Record(mut cells) = row else {
                let error = if op == Op::Delete { SchemaError::KeylessDelete } else { SchemaError::Decode };
                let hint = if op == Op::Delete { REPLICA_HINT } else { "" };
                return Err(error(format!("{} event without a row image: \"{}\" is null{hint}", op.code(), fields[image].name())));
            };
            let source = match source_at.and_then(|i| vs.get(i)) {
                Some(Value::Record(src)) => {
                    let get = |n: &str| source_fields.iter().position(|f| f == n).and_then(|i| text(src.get(i))).unwrap_or_default();
                    Some(format!("{}.{}", get("db"), get("table")))
                }
                _ => None,
            };
            let ts_ms = match at("ts_ms").and_then(|i| vs.get(i)) {
                Some(Value::Long(t)) => Some(*t),
                _ => None,
            };
            let change = Change { op, row: Json::Null, row_schema: None, ts_ms, source };
            cells.push(cdc_value(&change, *offset));
            Ok(Some(Value::Record(cells)))
        });
        match event {
            Ok(Some(r)) => rows.push(r),
            Ok(None) => truncates.push(*offset),
            Err(e) if is_keyless_delete(&e) => keyless_deletes.push(RecordError { offset: *offset, reason: e.to_string() }),
            Err(e) => errors.push(RecordError { offset: *offset, reason: e.to_string() }),
        }
    }
    let mut columns: Vec<Field> = row_fields.iter().map(|f| f.as_ref().clone()).collect();
    columns.push(cdc_field());
    let batch = record_batch(Arc::new(Schema::new(columns)), &rows)?;
    Ok(DebeziumBatch { batch, errors, tombstones, truncates, keyless_deletes })
}

#[cfg(test)]
mod tests;
