//! Table Topic translation benchmark on one core: a topic backlog of ~20-field JSON and Avro
//! records to committed Parquet (decode, conform, write, commit), next to the raw Arrow→Parquet
//! write of the same rows (the ceiling), upsert changes/s against a table of 1M keys, and a
//! compaction of a table's small files: its time and the peak resident memory it adds against the input
//! decoded (what a pass holding its input would need).
//! Run: `cargo bench -p floe-table-topic --bench translate` (`FLOE_BENCH_RECORDS`, `FLOE_BENCH_KEYS`,
//! `FLOE_BENCH_FORMATS`: `json,avro` by default, `FLOE_BENCH_COMPACT_FILES`: 64, 0 for none).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use floe_catalog::catalog::Catalog;
use floe_catalog::store::MemoryStore;
use floe_catalog::{Committer, ObjectStorage};
use floe_schema::registry::{MemoryLog, Registry, SchemaType};
use floe_schema::source::SchemaCache;
use floe_table_topic::coordinator::Coordinator;
use floe_table_topic::maintenance::{self, CompactionPolicy};
use floe_table_topic::table::{TableHandle, FILE_ROWS_MAX};
use floe_table_topic::{RecordSource, SourceRead, SourceRecord, Status, TableConfig};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use parking_lot::Mutex;

const WH: &str = "s3://bench/warehouse";
const TOPIC: &str = "bench";

/// A topic of one partition held in memory.
struct MemSource(Vec<SourceRecord>);

#[async_trait]
impl RecordSource for MemSource {
    async fn partitions(&self, _: &str) -> Result<i32, String> {
        Ok(1)
    }
    async fn bounds(&self, _: &str, _: i32) -> Result<(i64, i64), String> {
        Ok((0, self.0.len() as i64))
    }
    async fn read(&self, _: &str, _: i32, from: i64, bytes_max: u64) -> Result<SourceRead, String> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for r in self.0.iter().skip(from as usize) {
            if bytes >= bytes_max && !out.is_empty() {
                break;
            }
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            out.push(r.clone());
        }
        let next = from + out.len() as i64;
        Ok(SourceRead { records: out, next_offset: next, log_end: self.0.len() as i64 })
    }
}

/// One record's fields: id, 5 strings, 6 longs, 4 doubles, 2 booleans, a timestamp, a category.
struct Row {
    id: i64,
    strings: [String; 5],
    longs: [i64; 6],
    doubles: [f64; 4],
    flags: [bool; 2],
    ts_ms: i64,
    category: String,
}

fn row(i: i64) -> Row {
    let s = |k: i64| format!("value-{}-{}", k, i.wrapping_mul(2_654_435_761) % 100_000);
    Row {
        id: i,
        strings: [s(1), s(2), s(3), format!("user{}@example.com", i % 50_000), format!("https://example.com/p/{}", i % 997)],
        longs: [i * 3, i % 1000, i / 7, 1_700_000_000 + i, i ^ 0x5555, -i],
        doubles: [i as f64 * 0.5, (i % 100) as f64 / 3.0, 1.0 / (i + 1) as f64, i as f64 * 1.000_1],
        flags: [i % 2 == 0, i % 3 == 0],
        ts_ms: 1_767_225_600_000 + i,
        category: ["red", "green", "blue", "amber"][(i % 4) as usize].to_string(),
    }
}

fn json(r: &Row) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), r.id.into());
    for (k, v) in r.strings.iter().enumerate() {
        m.insert(format!("s{k}"), v.clone().into());
    }
    for (k, v) in r.longs.iter().enumerate() {
        m.insert(format!("l{k}"), (*v).into());
    }
    for (k, v) in r.doubles.iter().enumerate() {
        m.insert(format!("d{k}"), (*v).into());
    }
    for (k, v) in r.flags.iter().enumerate() {
        m.insert(format!("b{k}"), (*v).into());
    }
    m.insert("ts".into(), r.ts_ms.into());
    m.insert("category".into(), r.category.clone().into());
    serde_json::to_vec(&m).unwrap_or_default()
}

fn avro_schema() -> String {
    let mut fields = vec![serde_json::json!({"name": "id", "type": "long"})];
    fields.extend((0..5).map(|k| serde_json::json!({"name": format!("s{k}"), "type": "string"})));
    fields.extend((0..6).map(|k| serde_json::json!({"name": format!("l{k}"), "type": "long"})));
    fields.extend((0..4).map(|k| serde_json::json!({"name": format!("d{k}"), "type": "double"})));
    fields.extend((0..2).map(|k| serde_json::json!({"name": format!("b{k}"), "type": "boolean"})));
    fields.push(serde_json::json!({"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}));
    fields.push(serde_json::json!({"name": "category", "type": "string"}));
    serde_json::json!({"type": "record", "name": "Event", "namespace": "bench", "fields": fields}).to_string()
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// The Avro binary encoding of `r`, framed as Confluent's serializer frames it.
fn avro(r: &Row, schema_id: u32) -> Vec<u8> {
    let mut o = vec![0u8];
    o.extend(schema_id.to_be_bytes());
    let string = |o: &mut Vec<u8>, s: &str| {
        zigzag(o, s.len() as i64);
        o.extend(s.as_bytes());
    };
    zigzag(&mut o, r.id);
    for s in &r.strings {
        string(&mut o, s);
    }
    for l in r.longs {
        zigzag(&mut o, l);
    }
    for d in r.doubles {
        o.extend(d.to_le_bytes());
    }
    for b in r.flags {
        o.push(u8::from(b));
    }
    zigzag(&mut o, r.ts_ms);
    string(&mut o, &r.category);
    o
}

struct Bench {
    committer: Committer,
    schemas: Arc<SchemaCache>,
    registry: Arc<Registry>,
}

async fn bench() -> Bench {
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog = Arc::new(Catalog::open(Arc::new(MemoryStore::default()), objects.clone(), WH, "warehouse").expect("catalog"));
    let committer = Committer::new(catalog.clone(), ObjectStorage::new(objects.clone(), WH, "warehouse").file_io());
    let registry = Arc::new(Registry::open(Arc::new(MemoryLog::default())).await.expect("registry"));
    let schemas = Arc::new(SchemaCache::new(registry.clone(), Duration::from_secs(60)));
    Bench { committer, schemas, registry }
}

fn config(pairs: &[(&str, &str)]) -> Arc<TableConfig> {
    let mut m: BTreeMap<String, String> =
        BTreeMap::from([("enable".to_string(), "true".to_string()), ("commit.bytes.max".to_string(), (4u64 << 30).to_string())]);
    m.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let m = m.into_iter().map(|(k, v)| (format!("automq.table.topic.{k}"), v)).collect();
    Arc::new(TableConfig::from_topic(&m).expect("config").expect("enabled"))
}

fn records(values: Vec<Vec<u8>>, keys: Option<Vec<Vec<u8>>>) -> Vec<SourceRecord> {
    let mut keys = keys.map(|k| k.into_iter());
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| SourceRecord {
            offset: i as i64,
            timestamp_ms: 1_767_225_600_000 + i as i64,
            key: keys.as_mut().and_then(|k| k.next()).map(Bytes::from),
            value: Some(Bytes::from(v)),
            headers: vec![],
            undecodable: None,
        })
        .collect()
}

/// Runs cycles until `source` is all committed; returns the time taken.
async fn drain(b: &Bench, topic: &str, cfg: Arc<TableConfig>, source: Arc<MemSource>) -> Duration {
    let status = Arc::new(Mutex::new(Status::default()));
    let mut c = Coordinator::new(topic, cfg, source.clone(), b.committer.clone(), b.schemas.clone(), status.clone());
    let started = Instant::now();
    loop {
        match c.cycle().await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("cycle failed: {e}"),
        }
    }
    let took = started.elapsed();
    assert_eq!(status.lock().offsets.get(&0).copied(), Some(source.0.len() as i64), "every record committed");
    took
}

/// Rows of the table's live files of one kind (data, or position deletes), as written.
async fn table_rows(b: &Bench, topic: &str, content: iceberg::spec::DataContentType) -> Vec<arrow_array::RecordBatch> {
    let mut out = Vec::new();
    for f in live_files(b, topic).await.into_iter().filter(|f| f.file.content_type() == content) {
        let bytes = b.committer.io().new_input(f.file.file_path()).expect("input").read().await.expect("read");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|r| r.build()).expect("reader");
        out.extend(reader.map(|r| r.expect("batch")));
    }
    out
}

/// The table's live files.
async fn live_files(b: &Bench, topic: &str) -> Vec<floe_catalog::commit::LiveFile> {
    let t = b.committer.target().load(&vec!["default".to_string()], topic).await.expect("load");
    b.committer.live_files(&t.metadata).await.expect("files")
}

/// Bytes of the table's live files.
async fn table_bytes(b: &Bench, topic: &str) -> u64 {
    live_files(b, topic).await.iter().map(|f| f.file.file_size_in_bytes()).sum()
}

/// The ceiling: the same rows written straight from Arrow to Parquet with the same compression.
fn raw_parquet_write(batches: &[arrow_array::RecordBatch]) -> (Duration, usize) {
    let props = parquet::file::properties::WriterProperties::builder().set_compression(parquet::basic::Compression::ZSTD(Default::default())).build();
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batches[0].schema(), Some(props)).expect("writer");
    for b in batches {
        w.write(b).expect("write");
    }
    w.close().expect("close");
    (started.elapsed(), buf.len())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn translation(b: &Bench, format: &str, n: i64) {
    let rows: Vec<Row> = (0..n).map(row).collect();
    let (values, cfg) = match format {
        "json" => (rows.iter().map(json).collect::<Vec<_>>(), config(&[("convert.value.type", "json"), ("transform.value.type", "flatten")])),
        _ => {
            let id = b.registry.register("bench-avro-value", SchemaType::Avro, &avro_schema(), vec![]).await.expect("register");
            (rows.iter().map(|r| avro(r, id)).collect(), config(&[("convert.value.type", "by_schema_id"), ("transform.value.type", "flatten")]))
        }
    };
    let input_bytes: usize = values.iter().map(Vec::len).sum();
    let topic = format!("{TOPIC}-{format}");
    let took = drain(b, &topic, cfg, Arc::new(MemSource(records(values, None)))).await;
    let batches = table_rows(b, &topic, iceberg::spec::DataContentType::Data).await;
    let rows_out: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows_out as i64, n);
    let (raw, parquet_bytes) = raw_parquet_write(&batches);
    let table_mib = mib(table_bytes(b, &topic).await as usize);
    let secs = took.as_secs_f64();
    println!(
        "{format:>4}: {n} records, {:.1} MiB in → {table_mib:.1} MiB Parquet in the table: {:.1} MiB/s, {:.0} records/s per core ({:.2}s); raw Arrow→Parquet of the same rows ({:.1} MiB): {:.0} records/s ({:.2}s); translation/raw = {:.2}",
        mib(input_bytes),
        mib(input_bytes) / secs,
        n as f64 / secs,
        secs,
        mib(parquet_bytes),
        n as f64 / raw.as_secs_f64(),
        raw.as_secs_f64(),
        raw.as_secs_f64() / secs,
    );
}

async fn upsert(b: &Bench, keys: i64) {
    let cfg = config(&[
        ("convert.value.type", "json"),
        ("transform.value.type", "flatten"),
        ("upsert.enable", "true"),
        ("id.columns", "[id]"),
        ("compaction.enable", "false"),
    ]);
    let change = |i: i64, v: i64| format!("{{\"id\":{i},\"v\":{v},\"name\":\"n{i}\"}}").into_bytes();
    // Phase 1: every key once. Phase 2: as many changes to keys spread over the whole table.
    let mut values: Vec<Vec<u8>> = (0..keys).map(|i| change(i, 0)).collect();
    let load = MemSource(records(values.clone(), None));
    let topic = "bench-upsert";
    let load_took = drain(b, topic, cfg.clone(), Arc::new(load)).await;
    values.extend((0..keys).map(|i| change(i.wrapping_mul(7_919) % keys, 1)));
    let all = Arc::new(MemSource(records(values, None)));
    // A new coordinator: the key index is rebuilt from the table first (timed apart).
    let status = Arc::new(Mutex::new(Status::default()));
    let mut c = Coordinator::new(topic, cfg, all.clone(), b.committer.clone(), b.schemas.clone(), status.clone());
    let started = Instant::now();
    while c.cycle().await.expect("cycle") > 0 {}
    let took = started.elapsed();
    let rows = |batches: Vec<arrow_array::RecordBatch>| batches.iter().map(|b| b.num_rows()).sum::<usize>();
    let written = rows(table_rows(b, topic, iceberg::spec::DataContentType::Data).await);
    let deleted = rows(table_rows(b, topic, iceberg::spec::DataContentType::PositionDeletes).await);
    assert_eq!((written - deleted) as i64, keys, "one live row per key");
    println!(
        "upsert: {keys} keys loaded in {:.2}s; {keys} changes over them (index rebuilt from the table, then position deletes) in {:.2}s: {:.0} changes/s; {written} rows written, {deleted} position deletes, {} live",
        load_took.as_secs_f64(),
        took.as_secs_f64(),
        keys as f64 / took.as_secs_f64(),
        written - deleted
    );
}

/// The process's resident bytes now and at their peak since the last `reset_peak` (`VmRSS`, `VmHWM`).
fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0);
    (kib("VmRSS:") * 1024, kib("VmHWM:") * 1024)
}

/// Freed heap handed back to the OS (so that resident memory is the heap in use, not what earlier
/// phases freed), then the peak starts again from here; returns the resident bytes.
fn reset_peak() -> u64 {
    floe_io_sys::release_free_heap();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    resident().0
}

/// `n` JSON records committed as `files` small files, then one compaction of them
/// (`maintenance::prepare`, the pass's read-merge-write), with the peak resident memory it added
/// next to the bytes its input takes decoded.
async fn compaction(b: &Bench, n: i64, files: i64) {
    let values: Vec<Vec<u8>> = (0..n).map(|i| json(&row(i))).collect();
    let per_file = values.iter().map(Vec::len).sum::<usize>() as u64 / files.max(1) as u64;
    let cfg = config(&[("convert.value.type", "json"), ("transform.value.type", "flatten"), ("commit.bytes.max", &per_file.max(1).to_string())]);
    let topic = format!("{TOPIC}-compact");
    drain(b, &topic, cfg, Arc::new(MemSource(records(values, None)))).await;
    let owner = (floe_table_topic::table::OWNER_KEY, topic.as_str());
    let mut table = TableHandle::open(b.committer.clone(), vec!["default".to_string()], &topic, owner).await.expect("open").expect("the table");
    let small = live_files(b, &topic).await;
    let policy =
        CompactionPolicy { target_file_bytes: u64::MAX, files_min: 2, input_bytes_max: u64::MAX, trigger_files: 64, file_rows_max: FILE_ROWS_MAX as u64 };
    let before = reset_peak();
    let started = Instant::now();
    let prepared = maintenance::prepare(&table, &policy).await.expect("prepare").expect("small files to merge");
    let took = started.elapsed();
    let (_, peak) = resident();
    maintenance::apply(&mut table, prepared).await.expect("apply");
    let mut decoded = 0usize;
    for f in &small {
        decoded += floe_table_topic::files::read(b.committer.io(), f.file.file_path(), None)
            .await
            .expect("read")
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum::<usize>();
    }
    let after = live_files(b, &topic).await;
    println!(
        "compaction: {n} records in {} files ({:.1} MiB Parquet) → {} files in {:.2}s ({:.0} records/s); peak resident memory added {:.1} MiB; the input decoded {:.1} MiB",
        small.len(),
        mib(small.iter().map(|f| f.file.file_size_in_bytes() as usize).sum()),
        after.len(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        mib(peak.saturating_sub(before) as usize),
        mib(decoded),
    );
}

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let b = bench().await;
        let n = env("FLOE_BENCH_RECORDS", 200_000);
        // First, while the heap is small: its figure is a peak.
        let files = env("FLOE_BENCH_COMPACT_FILES", 64);
        if files > 0 {
            compaction(&b, n, files).await;
        }
        // Each format in a process of its own gives figures that the other's heap does not sway.
        let formats = std::env::var("FLOE_BENCH_FORMATS").unwrap_or_else(|_| "json,avro".into());
        for format in formats.split(',') {
            translation(&b, format.trim(), n).await;
        }
        upsert(&b, env("FLOE_BENCH_KEYS", 1_000_000)).await;
    });
}
