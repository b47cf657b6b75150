//! Decoder tests on the shared Debezium fixtures: deletes without a row image, tombstones and rows stay aligned.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_schema::registry::{MemoryLog, Registry};
use floe_schema::source::SchemaCache;

use super::*;

fn fixture(name: &str) -> Vec<String> {
    // The crate's directory at run time (cargo sets it when it runs tests), not as compiled: a
    // target dir shared by two clones may hold a test binary built in the other.
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = format!("{crate_dir}/../../shared/fixtures/debezium/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).lines().map(str::to_string).collect()
}

async fn decoder(pairs: &[(&str, &str)]) -> Decoder {
    let mut m: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (format!("automq.table.topic.{k}"), v.to_string())).collect();
    m.insert("automq.table.topic.enable".into(), "true".into());
    let cfg = TableConfig::from_topic(&m).expect("valid").expect("enabled");
    let registry = Registry::open(Arc::new(MemoryLog::default())).await.expect("registry");
    Decoder::new(Arc::new(cfg), "products", Arc::new(SchemaCache::new(Arc::new(registry), Duration::from_secs(1))))
}

/// The replica-identity stream, each event with its key, and a tombstone after the delete as Debezium sends it.
fn records() -> Vec<SourceRecord> {
    let mut out = Vec::new();
    for line in fixture("postgres-replica-identity.jsonl") {
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        let row = if v["after"].is_null() { &v["before"] } else { &v["after"] };
        // The final delete names no row in its value: the key (id 111, as the other fixtures show) does.
        let id = row.get("id").cloned().unwrap_or(serde_json::json!(111));
        let key = Bytes::from(serde_json::json!({ "id": id }).to_string());
        let delete = v["op"] == "d";
        out.push(SourceRecord {
            offset: out.len() as i64,
            timestamp_ms: 0,
            key: Some(key.clone()),
            value: Some(Bytes::from(line)),
            headers: vec![],
            undecodable: None,
        });
        if delete {
            out.push(SourceRecord { offset: out.len() as i64, timestamp_ms: 0, key: Some(key), value: None, headers: vec![], undecodable: None });
        }
    }
    out
}

#[tokio::test]
async fn a_keyed_table_deletes_a_row_image_less_delete_by_its_key() {
    let d = decoder(&[
        ("convert.value.type", "json"),
        ("convert.key.type", "json"),
        ("transform.value.type", "flatten_debezium"),
        ("upsert.enable", "true"),
        ("id.columns", "[id]"),
    ])
    .await;
    let recs = records();
    assert_eq!(recs.len(), 17);
    let out = d.decode(&recs).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let mut tombstones = out.tombstones.clone();
    tombstones.sort_unstable();
    assert_eq!(tombstones, vec![15, 16], "the image-less delete and its tombstone");
    assert_eq!(out.runs.len(), 1);
    assert_eq!(out.runs[0].offsets, (0..15).collect::<Vec<i64>>(), "rows keep their own offsets");
    assert_eq!(out.runs[0].batch.num_rows(), 15);
}

#[tokio::test]
async fn an_unkeyed_table_rejects_it_with_the_reason() {
    let d = decoder(&[("convert.value.type", "json"), ("transform.value.type", "flatten_debezium")]).await;
    let out = d.decode(&records()).await;
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert_eq!(out.errors[0].offset, 15);
    assert!(out.errors[0].reason.contains("REPLICA IDENTITY"), "{}", out.errors[0].reason);
    assert_eq!(out.runs[0].offsets, (0..15).collect::<Vec<i64>>());
}

#[tokio::test]
async fn an_avro_framed_key_reads_as_a_json_object_of_its_fields() {
    let mut m: BTreeMap<String, String> = [("convert.key.type", "by_schema_id"), ("convert.value.type", "by_schema_id")]
        .iter()
        .map(|(k, v)| (format!("automq.table.topic.{k}"), v.to_string()))
        .collect();
    m.insert("automq.table.topic.enable".into(), "true".into());
    let cfg = TableConfig::from_topic(&m).expect("valid").expect("enabled");
    let registry = Arc::new(Registry::open(Arc::new(MemoryLog::default())).await.expect("registry"));
    let schema = r#"{"type":"record","name":"Key","fields":[{"name":"id","type":"int"}]}"#;
    let id = registry.register("pg.public.customers-key", floe_schema::registry::SchemaType::Avro, schema, vec![]).await.expect("register");
    let decoder = Decoder::new(Arc::new(cfg), "pg.public.customers", Arc::new(SchemaCache::new(registry, Duration::from_secs(1))));
    // Confluent framing: magic 0, the schema id, then Avro's zigzag int 3 (0x06).
    let mut framed = vec![0u8];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.push(0x06);
    let json = decoder.key_json(&Bytes::from(framed)).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&json).expect("json"), serde_json::json!({"id": 3}));
    assert_eq!(crate::keys::key_of_kafka_key(&json, &["id".to_string()]).as_deref(), Some("3"), "a tombstone's key names its row");
    let plain = Bytes::from_static(b"not framed");
    assert_eq!(decoder.key_json(&plain).await, plain, "a key that is not framed stays as it is");
}

#[tokio::test]
async fn schemaless_json_over_several_chunks_keeps_every_record_once_at_the_widest_schema() {
    let d = decoder(&[("convert.value.type", "json"), ("transform.value.type", "flatten")]).await;
    let n = 2 * JSON_CHUNK_RECORDS as i64 + 100;
    let bad = JSON_CHUNK_RECORDS as i64 + 7;
    let records: Vec<SourceRecord> = (0..n)
        .map(|i| {
            let value = match i {
                _ if i == bad => "{not json".to_string(),
                // The last chunk's amounts are doubles and bring a field.
                _ if i >= 2 * JSON_CHUNK_RECORDS as i64 => format!(r#"{{"id": {i}, "amount": {i}.5, "note": "n{i}"}}"#),
                _ => format!(r#"{{"id": {i}, "amount": {}}}"#, i * 2),
            };
            SourceRecord { offset: 1000 + i, timestamp_ms: 0, key: None, value: Some(Bytes::from(value)), headers: vec![], undecodable: None }
        })
        .collect();
    let out = d.decode(&records).await;
    assert_eq!(out.errors.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![1000 + bad]);
    let mut seen: Vec<i64> = out.runs.iter().flat_map(|r| r.offsets.iter().copied()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..n).filter(|i| *i != bad).map(|i| 1000 + i).collect::<Vec<_>>(), "every good record is a row, once");
    for run in &out.runs {
        assert_eq!(run.batch.num_rows(), run.offsets.len());
        let ids = run.batch.column_by_name("id").expect("id");
        let ids = arrow_cast::cast(ids, &DataType::Int64).expect("ids");
        let ids = ids.as_any().downcast_ref::<arrow_array::Int64Array>().expect("i64");
        assert_eq!(ids.values().iter().map(|id| 1000 + id).collect::<Vec<_>>(), run.offsets, "rows stay beside their offsets");
    }
    for run in &out.runs {
        // As if decoded at once: the rows before the doubles came are doubles too (Iceberg cannot
        // turn an int column into a double one later).
        let schema = run.batch.schema();
        assert_eq!(schema.field_with_name("amount").expect("amount").data_type(), &DataType::Float64);
        assert!(schema.field_with_name("note").is_ok());
    }
}
