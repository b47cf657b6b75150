//! Records into value columns: each conversion (raw, string, json, by_schema_id, by_latest_schema)
//! and transform (none, flatten, flatten_debezium) gives Arrow batches with, per row, the offset it
//! came from; records that cannot convert come back as errors, never dropped.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, StructArray};
use arrow_schema::{DataType, Field, Schema};
use floe_schema::json::JsonInference;
use floe_schema::protobuf::ProtoSchema;
use floe_schema::source::{decode_payload, resolve_framed, Compiled, SchemaCache};
use floe_schema::{debezium, simple, RecordError, Value};

use crate::config::{compile_proto, Convert, TableConfig, Transform};
use crate::source::SourceRecord;

/// (offset, value) of one record.
type Pair<'a> = (i64, Option<&'a [u8]>);

/// The column holding the whole value when it is not flattened.
pub use floe_schema::simple::VALUE_COLUMN;

/// Rows decoded from a run of records that share one schema.
#[derive(Debug)]
pub struct Decoded {
    /// Value columns only.
    pub batch: RecordBatch,
    /// Offset of each row.
    pub offsets: Vec<i64>,
}

/// Everything decoded from some records.
#[derive(Debug, Default)]
pub struct DecodeOutput {
    pub runs: Vec<Decoded>,
    pub errors: Vec<RecordError>,
    /// Offsets of records with a null value (deletes, for keyed tables).
    pub tombstones: Vec<i64>,
    /// Offsets of Debezium TRUNCATE events (the table is emptied there).
    pub truncates: Vec<i64>,
}

impl DecodeOutput {
    /// Takes the outcome of decoding `values` (records with a value) as one run: its rows, with
    /// the records that failed on their own as errors; or, when no run could be built at all (no
    /// column could be), every record as an error.
    fn add(&mut self, values: &[Pair], result: Result<(RecordBatch, Vec<RecordError>), String>) {
        match result {
            Ok((batch, errors)) => {
                // `values` holds no tombstone (those have no value), so only errors are skipped.
                let offsets = remaining(values, &errors.iter().map(|e| e.offset).collect::<Vec<_>>());
                self.errors.extend(errors);
                self.runs.push(Decoded { batch, offsets });
            }
            Err(reason) => self.errors.extend(values.iter().map(|(o, _)| err(*o, &reason))),
        }
    }
}

/// Schemaless JSON is decoded this many records at a time.
const JSON_CHUNK_RECORDS: usize = 2048;

type JsonDecoded = Result<(RecordBatch, Vec<RecordError>), floe_schema::SchemaError>;

/// Schemaless JSON values, a chunk at a time, each chunk a run: a chunk's parsed documents
/// (several times the size of its rows) are dropped before the next chunk is parsed, so they stay
/// in the cache and their memory is reused. The columns are those inferred from all of them, as
/// if decoded at once: a chunk decoded before a later one widened a column (int to double, a new
/// field) is built again, from its good records, at the final schema. Which records fail does
/// not change: each is judged against the schema inferred from the records before it.
fn decode_json<'v, 'a>(values: &'v [Pair<'a>]) -> Vec<(&'v [Pair<'a>], JsonDecoded)> {
    let mut inference = JsonInference::default();
    let decoded: Vec<_> = values.chunks(JSON_CHUNK_RECORDS).map(|chunk| (chunk, floe_schema::json::decode_batch(&mut inference, &present(chunk)))).collect();
    let fields = inference.schema().fields().clone();
    decoded
        .into_iter()
        .map(|(chunk, result)| match result {
            Ok((batch, errors)) if batch.schema().fields() != &fields => {
                let failed: std::collections::HashSet<i64> = errors.iter().map(|e| e.offset).collect();
                let good: Vec<(i64, &[u8])> = present(chunk).into_iter().filter(|(o, _)| !failed.contains(o)).collect();
                let again =
                    floe_schema::json::decode_batch(&mut inference.clone(), &good).map(|(batch, more)| (batch, errors.into_iter().chain(more).collect()));
                (chunk, again)
            }
            other => (chunk, other),
        })
        .collect()
}

fn err(offset: i64, reason: impl ToString) -> RecordError {
    RecordError { offset, reason: reason.to_string() }
}

/// Offsets of `records` without those in `minus`, in order.
fn remaining(records: &[(i64, Option<&[u8]>)], minus: &[i64]) -> Vec<i64> {
    let skip: std::collections::HashSet<i64> = minus.iter().copied().collect();
    records.iter().map(|r| r.0).filter(|o| !skip.contains(o)).collect()
}

fn wrap_value(batch: RecordBatch, transform: Transform) -> Result<RecordBatch, String> {
    if transform != Transform::None || (batch.num_columns() == 1 && batch.schema().field(0).name() == VALUE_COLUMN) {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    let fields = batch.schema().fields().clone();
    let col: ArrayRef = Arc::new(StructArray::try_new(fields.clone(), batch.columns().to_vec(), None).map_err(|e| e.to_string())?);
    let schema = Arc::new(Schema::new(vec![Field::new(VALUE_COLUMN, DataType::Struct(fields), true)]));
    RecordBatch::try_new_with_options(schema, vec![col], &RecordBatchOptions::new().with_row_count(Some(rows))).map_err(|e| e.to_string())
}

/// The (offset, bytes) of the records that have a value.
fn present<'a>(values: &[(i64, Option<&'a [u8]>)]) -> Vec<(i64, &'a [u8])> {
    values.iter().filter_map(|(o, v)| v.map(|v| (*o, v))).collect()
}

/// Decodes record values as the table's config says.
pub struct Decoder {
    cfg: Arc<TableConfig>,
    topic: String,
    schemas: Arc<SchemaCache>,
    /// The compiled `.proto` of `protobuf_file` values (read once, when the pipeline starts).
    proto: Option<Result<ProtoSchema, String>>,
}

impl Decoder {
    /// A decoder for `topic`'s values, with schemas from `schemas`.
    pub fn new(cfg: Arc<TableConfig>, topic: &str, schemas: Arc<SchemaCache>) -> Self {
        let proto = match &cfg.value {
            Convert::ProtobufFile { file, message } => Some(compile_proto(file, message).map_err(|e| format!("protobuf file {file}: {e}"))),
            _ => None,
        };
        Decoder { cfg, topic: topic.to_string(), schemas, proto }
    }

    /// Decodes `records` (one partition, in offset order).
    pub async fn decode(&self, records: &[SourceRecord]) -> DecodeOutput {
        let mut out = DecodeOutput::default();
        let pairs: Vec<(i64, Option<&[u8]>)> = records.iter().map(|r| (r.offset, r.value.as_deref())).collect();
        let keyed = self.cfg.keyed();
        // Tombstones: deletes for keyed tables; rows of nulls otherwise.
        let (nulls, values): (Vec<Pair>, Vec<Pair>) = pairs.iter().partition(|(_, v)| v.is_none());
        if keyed || self.cfg.transform == Transform::FlattenDebezium {
            out.tombstones = nulls.iter().map(|r| r.0).collect();
        } else if !nulls.is_empty() {
            let batch = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &RecordBatchOptions::new().with_row_count(Some(nulls.len())));
            if let Ok(batch) = batch {
                out.runs.push(Decoded { batch, offsets: nulls.iter().map(|r| r.0).collect() });
            }
        }
        if values.is_empty() {
            return out;
        }
        let result = match (&self.cfg.value, self.cfg.transform) {
            (Convert::Raw, _) => simple::raw_batch(&values).map_err(|e| e.to_string()).map(|b| (b, vec![])),
            (Convert::String, _) => simple::string_batch(&values).map_err(|e| e.to_string()),
            (Convert::Json, Transform::FlattenDebezium) => {
                // Runs of one row schema each: a column added or dropped mid-batch evolves the table.
                match debezium::decode_batch(&mut JsonInference::default(), &values) {
                    Ok(d) => {
                        // A `{"payload": null}` value is a tombstone too.
                        out.tombstones.extend(d.tombstones);
                        out.truncates.extend(d.truncates);
                        let mut errors = d.errors;
                        self.keyless_deletes(d.keyless_deletes, &mut errors, &mut out);
                        out.errors.extend(errors);
                        out.runs.extend(d.runs.into_iter().map(|(batch, offsets)| Decoded { batch, offsets }));
                    }
                    Err(e) => out.errors.extend(values.iter().map(|(o, _)| err(*o, e.to_string()))),
                }
                out.errors.sort_by_key(|e| e.offset);
                return out;
            }
            (Convert::Json, t) => {
                for (chunk, result) in decode_json(&values) {
                    out.add(chunk, result.map_err(|e| e.to_string()).and_then(|(b, e)| Ok((wrap_value(b, t)?, e))));
                }
                out.errors.sort_by_key(|e| e.offset);
                return out;
            }
            (Convert::ProtobufFile { .. }, t) => match &self.proto {
                Some(Ok(schema)) => {
                    floe_schema::protobuf::decode_batch(schema, &present(&values)).map_err(|e| e.to_string()).and_then(|(b, e)| Ok((wrap_value(b, t)?, e)))
                }
                Some(Err(e)) => Err(e.clone()),
                None => Err("no protobuf schema".to_string()),
            },
            (Convert::BySchemaId, _) | (Convert::ByLatestSchema { .. }, _) => {
                self.decode_with_schemas(&values, &mut out).await;
                return out;
            }
        };
        out.add(&values, result);
        out.errors.sort_by_key(|e| e.offset);
        out
    }

    /// A record key as JSON, for tombstones and `[_from_debezium_key_]`: a registry-framed key
    /// (`convert.key.type=by_schema_id`: Avro, Protobuf or JSON Schema) is decoded through its
    /// schema into a JSON object; any other key is returned as it is (JSON already, or not a
    /// key that names id columns).
    pub async fn key_json(&self, key: &bytes::Bytes) -> bytes::Bytes {
        if self.cfg.key != Convert::BySchemaId {
            return key.clone();
        }
        match floe_schema::source::decode_framed(&self.schemas, key).await {
            Ok((_, compiled, value)) => match compiled.arrow_schema() {
                Ok(schema) => bytes::Bytes::from(value.to_json(&DataType::Struct(schema.fields().clone())).to_string()),
                Err(_) => key.clone(),
            },
            Err(_) => key.clone(),
        }
    }

    /// Debezium deletes without a row image: a keyed table deletes them by the record key (as
    /// tombstones); any other table cannot tell which row went, so they are invalid records.
    fn keyless_deletes(&self, deletes: Vec<RecordError>, errors: &mut Vec<RecordError>, out: &mut DecodeOutput) {
        if self.cfg.keyed() {
            out.tombstones.extend(deletes.iter().map(|e| e.offset));
        } else {
            errors.extend(deletes);
        }
    }

    /// Schema-registry records: runs of one schema decode together.
    async fn decode_with_schemas(&self, values: &[(i64, Option<&[u8]>)], out: &mut DecodeOutput) {
        let mut run: Vec<(i64, Value)> = Vec::new();
        let mut run_raw: Vec<(i64, Option<&[u8]>)> = Vec::new();
        let mut run_schema: Option<(u32, Arc<Compiled>)> = None;
        let latest_subject = match &self.cfg.value {
            Convert::ByLatestSchema { subject, message } => {
                Some((subject.clone().unwrap_or_else(|| floe_schema::source::default_subject(&self.topic, false)), message.clone()))
            }
            _ => None,
        };
        for &(offset, value) in values {
            let Some(bytes) = value else { continue };
            let resolved = match &latest_subject {
                Some((subject, message)) => self.schemas.latest(subject, message.as_deref()).await.map(|(id, c)| (id, c, bytes, false)),
                None => resolve_framed(&self.schemas, bytes).await.map(|(id, c, payload)| (id, c, payload, true)),
            };
            let (id, compiled, payload, framed) = match resolved {
                Ok(r) => r,
                Err(e) => {
                    out.errors.push(err(offset, e));
                    continue;
                }
            };
            if run_schema.as_ref().is_some_and(|(rid, _)| *rid != id) {
                self.flush_run(run_schema.take(), std::mem::take(&mut run), std::mem::take(&mut run_raw), out);
            }
            run_schema = Some((id, compiled.clone()));
            if self.cfg.transform == Transform::FlattenDebezium {
                run_raw.push((offset, Some(payload)));
                continue;
            }
            match decode_payload(&compiled, payload, framed) {
                Ok(v) => run.push((offset, v)),
                Err(e) => out.errors.push(err(offset, e)),
            }
        }
        self.flush_run(run_schema, run, run_raw, out);
        out.errors.sort_by_key(|e| e.offset);
    }

    fn flush_run(&self, schema: Option<(u32, Arc<Compiled>)>, rows: Vec<(i64, Value)>, raw: Vec<(i64, Option<&[u8]>)>, out: &mut DecodeOutput) {
        let Some((_, compiled)) = schema else { return };
        if self.cfg.transform == Transform::FlattenDebezium {
            let decoded = match compiled.as_ref() {
                Compiled::Avro(envelope) => debezium::decode_avro_batch(envelope, &raw),
                Compiled::Protobuf(envelope) => debezium::decode_protobuf_batch(envelope, &raw),
                Compiled::Json(_) => {
                    out.errors.extend(raw.iter().map(|(o, _)| err(*o, "flatten_debezium with a schema registry needs Avro or Protobuf change events")));
                    return;
                }
            };
            match decoded {
                Ok(d) => {
                    let skipped =
                        d.errors.iter().chain(&d.keyless_deletes).map(|e| e.offset).chain(d.tombstones.iter().copied()).chain(d.truncates.iter().copied());
                    let offsets = remaining(&raw, &skipped.collect::<Vec<_>>());
                    let mut errors = d.errors;
                    out.tombstones.extend(d.tombstones);
                    out.truncates.extend(d.truncates);
                    self.keyless_deletes(d.keyless_deletes, &mut errors, out);
                    out.errors.extend(errors);
                    out.runs.push(Decoded { batch: d.batch, offsets });
                }
                Err(e) => out.errors.extend(raw.iter().map(|(o, _)| err(*o, &e))),
            }
            return;
        }
        if rows.is_empty() {
            return;
        }
        let built = compiled
            .arrow_schema()
            .and_then(|s| floe_schema::arrow::record_batch(Arc::new(s), &rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>()))
            .map_err(|e| e.to_string())
            .and_then(|b| wrap_value(b, self.cfg.transform));
        match built {
            Ok(batch) => out.runs.push(Decoded { batch, offsets: rows.iter().map(|r| r.0).collect() }),
            Err(e) => out.errors.extend(rows.iter().map(|(o, _)| err(*o, &e))),
        }
    }
}

/// Makes every field nullable, nested ones too (rows may lack any column after evolution).
pub fn all_nullable(dt: &DataType) -> DataType {
    match dt {
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| nullable_field(f)).collect()),
        DataType::List(f) => DataType::List(Arc::new(nullable_field(f))),
        DataType::Map(f, sorted) => {
            // Map keys stay required; values become optional.
            let DataType::Struct(kv) = f.data_type() else { return dt.clone() };
            let kv: Vec<Field> = kv.iter().enumerate().map(|(i, c)| if i == 0 { c.as_ref().clone() } else { nullable_field(c) }).collect();
            DataType::Map(Arc::new(Field::new(f.name(), DataType::Struct(kv.into()), false).with_metadata(f.metadata().clone())), *sorted)
        }
        other => other.clone(),
    }
}

fn nullable_field(f: &Field) -> Field {
    Field::new(f.name(), all_nullable(f.data_type()), true).with_metadata(f.metadata().clone())
}

#[cfg(test)]
mod tests;
