//! Debezium flattening on the real change events in `shared/fixtures/debezium/`.

use super::*;
use arrow_array::{Array, Float64Array, Int32Array, StringArray, StructArray};

/// A fixture from `shared/` beside the repo: found from the crate's directory at run time (cargo
/// runs tests there) or as compiled (a target dir shared by two clones may hold either's path).
fn fixture(name: &str) -> String {
    let here = std::env::current_dir().unwrap_or_default();
    let built = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tried: Vec<std::path::PathBuf> =
        [&here, &built].iter().flat_map(|d| ["../../shared", "../shared"].map(|up| d.join(up).join("fixtures/debezium").join(name))).collect();
    tried.iter().find_map(|p| std::fs::read_to_string(p).ok()).unwrap_or_else(|| panic!("fixture {name} (shared/ beside the repo) is not at any of {tried:?}"))
}

fn lines(name: &str) -> Vec<String> {
    fixture(name).lines().map(str::to_string).collect()
}

/// A decoded batch expected to be one run.
struct Single {
    batch: RecordBatch,
    errors: Vec<RecordError>,
    tombstones: Vec<i64>,
    keyless_deletes: Vec<RecordError>,
}

fn single(r: DebeziumRuns) -> Single {
    assert_eq!(r.runs.len(), 1, "one row schema, one run");
    let (batch, offsets) = r.runs.into_iter().next().expect("a run");
    assert_eq!(offsets.len(), batch.num_rows());
    Single { batch, errors: r.errors, tombstones: r.tombstones, keyless_deletes: r.keyless_deletes }
}

fn run(events: &[String]) -> Single {
    let input: Vec<(i64, Option<&[u8]>)> = events.iter().enumerate().map(|(i, e)| (i as i64, Some(e.as_bytes()))).collect();
    single(decode_batch(&mut JsonInference::default(), &input).expect("batch"))
}

fn ops(b: &RecordBatch) -> Vec<String> {
    let cdc = b.column_by_name("_cdc").expect("_cdc").as_any().downcast_ref::<StructArray>().expect("struct");
    let op = cdc.column(0).as_any().downcast_ref::<StringArray>().expect("op");
    (0..op.len()).map(|i| op.value(i).to_string()).collect()
}

#[test]
#[allow(clippy::approx_constant)] // 3.14 is a product's weight in the fixture, not pi
fn postgres_with_schema_gives_typed_rows_and_ops() {
    let out = run(&lines("postgres-schema-include.jsonl"));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let b = &out.batch;
    assert_eq!(b.num_rows(), 16);
    assert_eq!(ops(b).join(""), "IIIIIIIIIUUIIUUD");
    let schema = b.schema();
    assert_eq!(schema.field_with_name("id").expect("id").data_type(), &DataType::Int32);
    assert!(!schema.field_with_name("id").expect("id").is_nullable(), "optional: false in the Connect schema");
    let ids = b.column_by_name("id").expect("id").as_any().downcast_ref::<Int32Array>().expect("ints");
    let weights = b.column_by_name("weight").expect("weight").as_any().downcast_ref::<Float64Array>().expect("f64");
    assert_eq!((ids.value(0), weights.value(0)), (101, 3.14));
    assert_eq!(ids.value(15), 111, "the delete carries the deleted row's key from before");
    let cdc = b.column_by_name("_cdc").expect("_cdc").as_any().downcast_ref::<StructArray>().expect("struct");
    let source = cdc.column(3).as_any().downcast_ref::<StringArray>().expect("source");
    assert_eq!(source.value(0), "postgres.products");
}

#[test]
fn the_same_events_without_schema_infer_the_same_columns() {
    let with = run(&lines("postgres-schema-include.jsonl"));
    let without = run(&lines("postgres-schema-exclude.jsonl"));
    assert!(without.errors.is_empty(), "{:?}", without.errors);
    assert_eq!(ops(&without.batch), ops(&with.batch));
    let names = |b: &RecordBatch| b.schema().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    assert_eq!(names(&without.batch), names(&with.batch));
}

#[test]
fn mysql_and_the_single_samples_flatten() {
    let out = run(&lines("mysql-schema-include.jsonl"));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(ops(&out.batch).join(""), "IIIIIIIIIUUIIUUD", "MySQL snapshot rows come as c");
    for f in ["serde-with-schema.json", "serde-update.json"] {
        let out = run(&[fixture(f)]);
        assert!(out.errors.is_empty(), "{f}: {:?}", out.errors);
        assert_eq!(out.batch.num_rows(), 1, "{f}");
    }
}

/// The event with a column `added` (int64) in its row schema and `value` in its after image, as
/// Debezium sends after `ALTER TABLE … ADD COLUMN`.
fn with_column(event: &str, value: i64) -> String {
    let mut e: Json = serde_json::from_str(event).expect("json");
    for f in e["schema"]["fields"].as_array_mut().expect("fields") {
        if f["field"] == "before" || f["field"] == "after" {
            f["fields"].as_array_mut().expect("row fields").push(serde_json::json!({"type": "int64", "optional": true, "field": "added"}));
        }
    }
    if e["payload"]["after"].is_object() {
        e["payload"]["after"]["added"] = serde_json::json!(value);
    }
    e.to_string()
}

#[test]
fn a_column_added_mid_batch_starts_a_new_run_and_no_change_is_lost() {
    let events = lines("postgres-schema-include.jsonl");
    let mut changed: Vec<String> = events[..8].to_vec();
    changed.extend(events[8..].iter().enumerate().map(|(i, e)| with_column(e, i as i64)));
    let input: Vec<(i64, Option<&[u8]>)> = changed.iter().enumerate().map(|(i, e)| (i as i64, Some(e.as_bytes()))).collect();
    let out = decode_batch(&mut JsonInference::default(), &input).expect("batch");
    assert!(out.errors.is_empty(), "no change is an error: {:?}", out.errors);
    assert_eq!(out.runs.len(), 2, "split at the schema change");
    assert_eq!(out.runs[0].1, (0..8).collect::<Vec<i64>>());
    assert_eq!(out.runs[1].1, (8..16).collect::<Vec<i64>>());
    assert!(out.runs[0].0.schema().field_with_name("added").is_err());
    assert_eq!(out.runs[1].0.schema().field_with_name("added").expect("added").data_type(), &DataType::Int64);
    // And back: a column dropped again starts a third run.
    changed.push(events[9].clone());
    let input: Vec<(i64, Option<&[u8]>)> = changed.iter().enumerate().map(|(i, e)| (i as i64, Some(e.as_bytes()))).collect();
    let out = decode_batch(&mut JsonInference::default(), &input).expect("batch");
    assert_eq!(out.runs.iter().map(|r| r.1.len()).collect::<Vec<_>>(), vec![8, 8, 1]);
}

#[test]
fn a_delete_without_a_row_image_is_reported_apart_and_tombstones_are_recognised() {
    let events = lines("postgres-replica-identity.jsonl");
    let mut input: Vec<(i64, Option<&[u8]>)> = events.iter().enumerate().map(|(i, e)| (i as i64, Some(e.as_bytes()))).collect();
    input.push((99, None));
    let out = single(decode_batch(&mut JsonInference::default(), &input).expect("batch"));
    assert_eq!(out.batch.num_rows(), 15, "updates with before: null still have their after image");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.keyless_deletes.len(), 1);
    assert_eq!(out.keyless_deletes[0].offset, 15);
    assert!(out.keyless_deletes[0].reason.contains("REPLICA IDENTITY"), "{}", out.keyless_deletes[0].reason);
    assert_eq!(out.tombstones, vec![99]);
    assert!(flatten(Some(b"{\"payload\": null, \"schema\": {}}")).expect("ok").is_none(), "a null payload is a tombstone too");
    assert!(flatten(Some(b"{\"after\": {}}")).is_err(), "not an envelope");
}

#[test]
fn avro_encoded_envelopes_flatten_too() {
    use crate::avro::AvroSchema;
    let envelope = AvroSchema::parse_str(r#"{"type":"record","name":"Envelope","namespace":"db.inv.products","fields":[
        {"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"}]}],"default":null},
        {"name":"after","type":["null","Value"],"default":null},
        {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium","fields":[{"name":"db","type":"string"},{"name":"table","type":"string"}]}},
        {"name":"op","type":"string"},
        {"name":"ts_ms","type":["null","long"],"default":null}]}"#).expect("envelope");
    fn zz(v: i64) -> Vec<u8> {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = vec![];
        while u >= 0x80 {
            out.push((u as u8 & 0x7f) | 0x80);
            u >>= 7;
        }
        out.push(u as u8);
        out
    }
    fn s(x: &str) -> Vec<u8> {
        let mut o = zz(x.len() as i64);
        o.extend(x.as_bytes());
        o
    }
    let row = |id: i64, name: &str| {
        let mut o = zz(1);
        o.extend(zz(id));
        o.extend(s(name));
        o
    };
    let event = |before: Vec<u8>, after: Vec<u8>, op: &str| {
        let mut e = before;
        e.extend(after);
        e.extend(s("inv"));
        e.extend(s("products"));
        e.extend(s(op));
        e.extend(zz(1));
        e.extend(zz(1_700_000_000_000));
        e
    };
    let insert = event(zz(0), row(1, "a"), "c");
    let update = event(row(1, "a"), row(1, "b"), "u");
    let delete = event(row(1, "b"), zz(0), "d");
    let keyless = event(zz(0), zz(0), "d");
    let broken = event(row(1, "b"), zz(0), "u");
    let input: Vec<(i64, Option<&[u8]>)> = vec![(0, Some(&insert)), (1, Some(&update)), (2, Some(&delete)), (3, Some(&keyless)), (4, None), (5, Some(&broken))];
    let out = decode_avro_batch(&envelope, &input).expect("batch");
    assert_eq!(ops(&out.batch).join(""), "IUD");
    assert_eq!(out.keyless_deletes.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![3]);
    assert_eq!(out.errors.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![5], "an update without its after image");
    assert_eq!(out.tombstones, vec![4]);
    let ids = out.batch.column_by_name("id").expect("id").as_any().downcast_ref::<Int32Array>().expect("ints");
    assert_eq!(ids.values().to_vec(), vec![1, 1, 1]);
    let cdc = out.batch.column_by_name("_cdc").expect("_cdc").as_any().downcast_ref::<StructArray>().expect("struct");
    assert_eq!(cdc.column(3).as_any().downcast_ref::<StringArray>().expect("source").value(0), "inv.products");
}

#[test]
fn a_truncate_event_is_reported_by_offset_not_as_an_error() {
    let events = lines("postgres-schema-include.jsonl");
    let truncate = r#"{"schema":null,"payload":{"before":null,"after":null,"source":{"db":"shop","table":"orders"},"op":"t","ts_ms":1767225600000}}"#;
    let mut input: Vec<(i64, Option<&[u8]>)> = events[..3].iter().enumerate().map(|(i, e)| (i as i64, Some(e.as_bytes()))).collect();
    input.push((3, Some(truncate.as_bytes())));
    input.push((4, Some(events[3].as_bytes())));
    let out = decode_batch(&mut JsonInference::default(), &input).expect("batch");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.truncates, vec![3]);
    assert_eq!(out.runs.iter().flat_map(|r| r.1.clone()).collect::<Vec<i64>>(), vec![0, 1, 2, 4], "the rows around it stay rows");
}
