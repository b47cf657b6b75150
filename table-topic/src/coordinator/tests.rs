//! The commit loop with a compaction prepared beside it: the loop commits while the merged files
//! are written, the compaction lands on top of those commits keeping every row, and one whose
//! input files were truncated away meanwhile changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use floe_catalog::catalog::Catalog;
use floe_catalog::store::MemoryStore;
use floe_catalog::{Change, Committer, ObjectStorage};
use floe_schema::registry::{MemoryLog, Registry};
use floe_schema::source::SchemaCache;
use object_store::memory::InMemory;
use parking_lot::Mutex;

use super::Coordinator;
use crate::source::{RecordSource, SourceRead, SourceRecord};
use crate::status::Status;
use crate::TableConfig;

/// One partition of JSON records `{"n": …}`, appended to by the test.
#[derive(Default)]
struct Topic(Mutex<Vec<SourceRecord>>);

impl Topic {
    fn append(&self, count: usize) {
        let mut records = self.0.lock();
        for _ in 0..count {
            let n = records.len() as i64;
            let value = Bytes::from(format!("{{\"n\": {n}}}"));
            records.push(SourceRecord { offset: n, timestamp_ms: 1_767_225_600_000 + n, key: None, value: Some(value), headers: vec![], undecodable: None });
        }
    }
}

#[async_trait]
impl RecordSource for Topic {
    async fn partitions(&self, _: &str) -> Result<i32, String> {
        Ok(1)
    }
    async fn bounds(&self, _: &str, _: i32) -> Result<(i64, i64), String> {
        Ok((0, self.0.lock().len() as i64))
    }
    async fn read(&self, _: &str, _: i32, from: i64, _: u64) -> Result<SourceRead, String> {
        let records: Vec<SourceRecord> = self.0.lock().iter().skip(from as usize).cloned().collect();
        let end = from + records.len() as i64;
        Ok(SourceRead { records, next_offset: end, log_end: end })
    }
}

struct Setup {
    objects: Arc<dyn object_store::ObjectStore>,
    topic: Arc<Topic>,
    committer: Committer,
    coordinator: Coordinator,
}

async fn setup() -> Setup {
    setup_with(&[]).await
}

/// As `setup`, with more `automq.table.topic.*` settings.
async fn setup_with(extra: &[(&str, &str)]) -> Setup {
    let objects: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
    let wh = "memory:///wh";
    let catalog = Arc::new(Catalog::open(Arc::new(MemoryStore::default()), objects.clone(), wh, "wh").expect("catalog"));
    let committer = Committer::new(catalog, ObjectStorage::new(objects.clone(), wh, "wh").file_io());
    let registry = Arc::new(Registry::open(Arc::new(MemoryLog::default())).await.expect("registry"));
    let schemas = Arc::new(SchemaCache::new(registry, Duration::from_secs(60)));
    let configs: BTreeMap<String, String> = [
        ("enable", "true"),
        ("convert.value.type", "json"),
        ("transform.value.type", "flatten"),
        ("compaction.files.min", "2"),
        ("compaction.trigger.files", "4"),
        ("maintenance.interval.ms", "3600000"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (format!("automq.table.topic.{k}"), v.to_string()))
    .collect();
    let cfg = Arc::new(TableConfig::from_topic(&configs).expect("valid").expect("enabled"));
    let topic = Arc::new(Topic::default());
    let coordinator = Coordinator::new("events", cfg, topic.clone(), committer.clone(), schemas, Arc::new(Mutex::new(Status::default())));
    Setup { objects, topic, committer, coordinator }
}

/// Commits one round of `count` new records.
async fn round(s: &mut Setup, count: usize) {
    s.topic.append(count);
    assert_eq!(s.coordinator.cycle().await.expect("cycle"), count);
}

/// Waits for the compaction task (on the upkeep thread) to finish writing.
async fn compaction_written(c: &Coordinator) {
    // Polled, not spun: the upkeep thread runs at a lower priority than this one.
    while !c.background.compaction.as_ref().expect("a compaction in flight").done() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Every compaction output in the store, committed or not.
async fn merged_files(s: &Setup) -> Vec<String> {
    use futures::TryStreamExt;
    let all: Vec<object_store::ObjectMeta> = s.objects.list(None).try_collect().await.expect("list");
    all.into_iter().map(|m| m.location.to_string()).filter(|p| p.contains("/data/compacted-")).collect()
}

/// The live data files of the table and the `n` of every live row, sorted.
async fn table(s: &Setup) -> (Vec<String>, Vec<i64>) {
    let t = s.committer.target().load(&vec!["default".to_string()], "events").await.expect("load");
    let mut paths = Vec::new();
    let mut ns = Vec::new();
    for f in s.committer.live_files(&t.metadata).await.expect("live files") {
        for b in crate::files::read(s.committer.io(), f.file.file_path(), Some(&["n"])).await.expect("read") {
            let col = arrow_cast::cast(b.column(0), &arrow_schema::DataType::Int64).expect("n is a number");
            ns.extend(col.as_any().downcast_ref::<arrow_array::Int64Array>().expect("cast").values().iter().copied());
        }
        paths.push(f.file.file_path().to_string());
    }
    ns.sort();
    (paths, ns)
}

#[tokio::test]
async fn a_compaction_prepared_beside_the_loop_lands_on_top_of_the_commits_made_meanwhile() {
    let mut s = setup().await;
    for _ in 0..4 {
        round(&mut s, 10).await;
    }
    let (small, _) = table(&s).await;
    assert_eq!(small.len(), 4, "a file a commit");
    s.coordinator.maintain().await;
    assert!(s.coordinator.background.compaction.is_some(), "four new files start a compaction");
    // The loop commits while the compaction is in flight.
    round(&mut s, 10).await;
    round(&mut s, 10).await;
    let (during, _) = table(&s).await;
    assert_eq!(during.len(), 6);
    compaction_written(&s.coordinator).await;
    s.coordinator.maintain().await;
    assert!(s.coordinator.background.compaction.is_none());
    let (after, rows) = table(&s).await;
    assert_eq!(rows, (0..60).collect::<Vec<_>>(), "every row once");
    assert_eq!(after.len(), 3, "the four merged into one; the two committed meanwhile stay: {after:?}");
    assert!(small.iter().all(|p| !after.contains(p)));
    let meanwhile: Vec<&String> = during.iter().filter(|p| !small.contains(p)).collect();
    assert!(meanwhile.iter().all(|p| after.contains(p)), "files committed during the compaction are kept");
    let t = s.committer.target().load(&vec!["default".to_string()], "events").await.expect("load");
    assert_eq!(crate::offsets::committed(&t.metadata).get(&0), Some(&60), "the compaction snapshot carries the offsets on");
    assert_eq!(s.coordinator.status.lock().compactions, 1);
    // The loop goes on from where it was.
    round(&mut s, 5).await;
    assert_eq!(table(&s).await.1, (0..65).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_compaction_whose_files_went_meanwhile_changes_nothing_and_leaves_no_file() {
    let mut s = setup().await;
    for _ in 0..4 {
        round(&mut s, 10).await;
    }
    s.coordinator.maintain().await;
    compaction_written(&s.coordinator).await;
    // Every file goes (as a TRUNCATE does) before the compaction is committed.
    let (files, _) = table(&s).await;
    let t = s.committer.target().load(&vec!["default".to_string()], "events").await.expect("load");
    let removed: HashSet<String> = files.iter().cloned().collect();
    let props = std::collections::HashMap::new();
    s.committer.commit(&vec!["default".to_string()], "events", &t, Change::Replace { removed, data: vec![], deletes: vec![] }, &props).await.expect("empty");
    assert_eq!(merged_files(&s).await.len(), 1, "the merged file is written");
    // The loop's own TRUNCATE would leave it with the table as it now is.
    s.coordinator.table = None;
    s.coordinator.maintain().await;
    assert!(s.coordinator.background.compaction.is_none());
    let (after, rows) = table(&s).await;
    assert!(after.is_empty() && rows.is_empty(), "no row comes back: {rows:?}");
    assert_eq!(merged_files(&s).await, Vec::<String>::new(), "the merged file is deleted");
    assert_eq!(s.coordinator.status.lock().compactions, 0);
}

#[tokio::test]
async fn a_compaction_writes_each_partition_as_files_of_at_most_the_row_cap_keeping_every_row() {
    // Four rows a partition (n - n % 4); a commit's ten rows span three partitions, and the
    // partitions at a commit's edges span two commits' files.
    let mut s = setup_with(&[("partition.by", "[truncate(n, 4)]")]).await;
    for _ in 0..4 {
        round(&mut s, 10).await;
    }
    let mut policy = s.coordinator.cfg.compaction.clone().expect("compaction is on");
    policy.file_rows_max = 3;
    let table = s.coordinator.table.as_mut().expect("the table is open");
    let done = crate::maintenance::compact(table, &policy).await.expect("compacted").expect("small files to merge");
    assert!(done.files_in >= 2, "small files were merged: {done:?}");
    let t = s.committer.target().load(&vec!["default".to_string()], "events").await.expect("load");
    let mut every = Vec::new();
    // Per partition, the rows of each file the compaction wrote.
    let mut merged: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for f in s.committer.live_files(&t.metadata).await.expect("live files") {
        use iceberg::spec::{Literal, PrimitiveLiteral};
        let partition = match f.file.partition().fields().first() {
            Some(Some(Literal::Primitive(PrimitiveLiteral::Int(p)))) => i64::from(*p),
            Some(Some(Literal::Primitive(PrimitiveLiteral::Long(p)))) => *p,
            _ => panic!("{} has no partition value: {:?}", f.file.file_path(), f.file.partition()),
        };
        if f.file.file_path().contains("/data/compacted-") {
            merged.entry(partition).or_default().push(f.file.record_count() as i64);
        }
        for b in crate::files::read(s.committer.io(), f.file.file_path(), Some(&["n"])).await.expect("read") {
            let col = arrow_cast::cast(b.column(0), &arrow_schema::DataType::Int64).expect("n is a number");
            for n in col.as_any().downcast_ref::<arrow_array::Int64Array>().expect("cast").values().iter().copied() {
                assert_eq!(partition, n - n % 4, "row {n} is in its partition's file");
                every.push(n);
            }
        }
    }
    assert_eq!(merged.values().flatten().sum::<i64>(), done.rows as i64);
    assert_eq!(merged.values().map(Vec::len).sum::<usize>(), done.files_out);
    for (partition, mut files) in merged.clone() {
        files.sort_unstable_by(|a, b| b.cmp(a));
        let last = files.pop().expect("a file");
        assert!(files.iter().all(|n| *n == 3) && (1..=3).contains(&last), "partition {partition}: files of {files:?} and {last} rows");
    }
    assert!(merged.values().any(|f| f.len() > 1), "a partition's merged rows rolled into a second file: {merged:?}");
    every.sort();
    assert_eq!(every, (0..40).collect::<Vec<_>>(), "every row once");
}
