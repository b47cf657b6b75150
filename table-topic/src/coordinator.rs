//! One table's commit loop: on each interval, read every partition from the offsets the table
//! itself records, turn records into rows (bad ones to the dead-letter table), write Parquet and
//! commit one snapshot whose summary holds the new offsets. After any failure the offsets are read
//! back from the table, so a crash anywhere neither loses nor duplicates a record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use floe_catalog::files::{NewFile, Placement};
use floe_catalog::{CatalogError, Change, Committer};
use floe_schema::source::SchemaCache;
use floe_schema::RecordError;
use iceberg::spec::DataContentType;
use parking_lot::Mutex;

use crate::config::{TableConfig, Tolerance};
use crate::conform::conform;
use crate::dlq;
use crate::error::{Result, TableTopicError};
use crate::keys::{self, KeyIndex};
use crate::metrics::TableHistograms;
use crate::offsets::{self, Offsets};
use crate::rows::{DecodeOutput, Decoder};
use crate::source::{RecordSource, SourceRecord};
use crate::status::Status;
use crate::system;
use crate::table::TableHandle;

/// Bytes read from one partition per read call.
const READ_BYTES_MAX: u64 = 8 << 20;

mod intake;
mod maintain;
#[cfg(test)]
mod tests;

/// Rows of one partition for one commit.
struct PartitionRows {
    partition: i32,
    /// Read by the partition's intake task, shared with the later phases.
    records: Arc<Vec<SourceRecord>>,
}

/// What one cycle read: records per partition, the offsets a commit of them reaches, the lag
/// left after them, and the lag before them.
struct Reading {
    parts: Vec<PartitionRows>,
    /// What each of `parts` decoded into, and its undecodable stored batches.
    decoded: Vec<(DecodeOutput, Vec<RecordError>)>,
    next: Offsets,
    lag: i64,
    behind: i64,
}

/// A cycle's figures for the status: records covered and invalid, lag left, start time, the
/// timestamp of its oldest record, and when intake (read and decode) and writing ended (the
/// phases' times, logged).
struct Tally {
    covered: usize,
    invalid: u64,
    lag: i64,
    started: std::time::Instant,
    oldest_ms: Option<i64>,
    intake_at: std::time::Instant,
    written_at: std::time::Instant,
}

/// What one cycle wrote: data and delete files, and the key index's changes once it commits.
struct Written {
    files: Vec<NewFile>,
    delete_files: Vec<NewFile>,
    new_rows: Vec<(String, (std::sync::Arc<str>, i64))>,
    removed_keys: Vec<String>,
}

/// What one cycle decoded: runs of rows (partition, batch, offsets), bad records, tombstones
/// (partition, offset, key).
struct Decoding {
    runs: Vec<(i32, RecordBatch, Vec<i64>)>,
    bad: Vec<(i32, RecordError)>,
    /// Keys as JSON (registry-framed keys decoded).
    tombstones: Vec<(i32, i64, Option<bytes::Bytes>)>,
    /// For `[_from_debezium_key_]`: the field names of the first record key of the cycle.
    key_fields: Option<Vec<String>>,
    /// Debezium TRUNCATE events (partition, offset), in partition then offset order.
    truncates: Vec<(i32, i64)>,
}

/// The commit loop of one Table Topic.
pub struct Coordinator {
    topic: String,
    cfg: Arc<TableConfig>,
    source: Arc<dyn RecordSource>,
    committer: Committer,
    /// Shared with the decode tasks (one per partition of a cycle).
    decoder: Arc<Decoder>,
    table: Option<TableHandle>,
    dlq: Option<TableHandle>,
    /// Next offset per partition, as last committed.
    offsets: Option<Offsets>,
    /// Upsert tables: where each key's live row is (rebuilt from the table when missing).
    index: Option<KeyIndex>,
    /// When compaction and expiry last ran, and the data files committed since.
    maintained_at: Option<tokio::time::Instant>,
    files_since_maintenance: u64,
    /// Compaction and expired-file cleanup running beside the loop.
    background: maintain::Background,
    pub status: Arc<Mutex<Status>>,
    /// Commit time and commit lag (`/metrics`).
    histograms: TableHistograms,
    /// The wall clock (injected): snapshot expiry and orphan age are decided by it.
    now_ms: crate::NowMs,
}

fn ns_of(cfg: &TableConfig) -> Vec<String> {
    cfg.namespace.split('.').map(str::to_string).collect()
}

impl Coordinator {
    /// A loop for `topic` with `cfg`.
    pub fn new(
        topic: &str,
        cfg: Arc<TableConfig>,
        source: Arc<dyn RecordSource>,
        committer: Committer,
        schemas: Arc<SchemaCache>,
        status: Arc<Mutex<Status>>,
    ) -> Self {
        Coordinator {
            topic: topic.to_string(),
            decoder: Arc::new(Decoder::new(cfg.clone(), topic, schemas)),
            cfg,
            source,
            committer,
            table: None,
            dlq: None,
            offsets: None,
            index: None,
            maintained_at: None,
            files_since_maintenance: 0,
            background: maintain::Background::default(),
            status,
            histograms: TableHistograms::default(),
            now_ms: crate::system_now_ms(),
        }
    }

    /// Where commit time and commit lag are counted (the node's, labelled with this table).
    pub fn with_histograms(mut self, histograms: TableHistograms) -> Self {
        self.histograms = histograms;
        self
    }

    /// The wall clock that ages snapshots and orphan files (the system's by default).
    pub fn with_clock(mut self, now_ms: crate::NowMs) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Runs until `stop` fires, committing every interval.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.cfg.commit_interval_ms);
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = tokio::time::Instant::now();
            let wait = match self.cycle().await {
                Ok(_) => {
                    backoff = Duration::from_millis(200);
                    self.maintain().await;
                    interval.saturating_sub(started.elapsed())
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "table topic commit failed; offsets are re-read from the table and the commit retried");
                    self.status.lock().last_error = Some(e.to_string());
                    self.offsets = None;
                    self.index = None;
                    self.table = None;
                    self.dlq = None;
                    backoff = (backoff * 2).min(interval.max(Duration::from_secs(1)) * 4);
                    backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    async fn table(&mut self, initial: &Schema) -> Result<&mut TableHandle> {
        if self.table.is_none() {
            let t = TableHandle::open_or_create(
                self.committer.clone(),
                ns_of(&self.cfg),
                self.cfg.table(&self.topic),
                initial,
                &self.cfg.partition_by,
                HashMap::from([(crate::table::OWNER_KEY.to_string(), self.topic.clone())]),
            )
            .await?;
            self.table = Some(t);
        }
        self.table.as_mut().ok_or_else(|| TableTopicError::Internal("table not open".into()))
    }

    /// Offsets committed in the table (loading the table when it exists).
    async fn committed_offsets(&mut self) -> Result<Offsets> {
        if let Some(o) = &self.offsets {
            return Ok(o.clone());
        }
        let o = match self.committer.target().load(&ns_of(&self.cfg), self.cfg.table(&self.topic)).await {
            Ok(t) => offsets::committed(&t.metadata),
            Err(CatalogError::NoSuchTable(_) | CatalogError::NoSuchNamespace(_)) => Offsets::new(),
            Err(e) => return Err(e.into()),
        };
        self.offsets = Some(o.clone());
        Ok(o)
    }

    /// Phases 1 and 2: reads each partition from the table's committed offsets, up to the
    /// commit's byte budget, and decodes it — a task per partition (`coordinator/intake.rs`), at
    /// most two per core at once; returns the records and what they decoded into, the offsets a
    /// commit of them reaches, and the lag.
    async fn read(&mut self, committed: &Offsets) -> Result<Reading> {
        let partitions = self.source.partitions(&self.topic).await.map_err(TableTopicError::Source)?;
        let shared = Arc::new(intake::Shared {
            source: self.source.clone(),
            decoder: self.decoder.clone(),
            topic: self.topic.clone(),
            budget: std::sync::atomic::AtomicU64::new(self.cfg.commit_bytes_max),
        });
        let at_once = Arc::new(tokio::sync::Semaphore::new(2 * std::thread::available_parallelism().map_or(1, usize::from)));
        let tasks: Vec<_> = (0..partitions)
            .map(|p| {
                let (shared, at_once, from) = (shared.clone(), at_once.clone(), committed.get(&p).copied());
                tokio::spawn(async move {
                    let _turn = at_once.acquire_owned().await.map_err(|e| TableTopicError::Internal(e.to_string()))?;
                    intake::intake(shared, p, from).await
                })
            })
            .collect();
        let (mut next, mut parts, mut decoded) = (committed.clone(), Vec::new(), Vec::new());
        let (mut lag, mut behind) = (0i64, 0i64);
        for (p, task) in (0..partitions).zip(tasks) {
            // A task that died fails the cycle, which is retried (no record is skipped).
            let got = task.await.map_err(|e| TableTopicError::Internal(format!("reading partition {p} failed: {e}")))??;
            behind += got.end - got.from;
            lag += got.end - got.next;
            next.insert(p, got.next);
            if !got.records.is_empty() {
                parts.push(PartitionRows { partition: p, records: got.records });
                decoded.push((got.decoded, got.undecodable));
            }
        }
        Ok(Reading { parts, decoded, next, lag, behind })
    }

    /// The partitions' decoded records gathered: undecodable stored batches and records that
    /// failed to decode become dead letters, deletes become tombstones.
    async fn decode(&self, parts: &[PartitionRows], decoded: Vec<(DecodeOutput, Vec<RecordError>)>) -> Decoding {
        let mut runs: Vec<(i32, RecordBatch, Vec<i64>)> = Vec::new();
        let mut bad: Vec<(i32, RecordError)> = Vec::new();
        let mut tombstones: Vec<(i32, i64, Option<bytes::Bytes>)> = Vec::new();
        let mut key_fields = None;
        let mut truncates = Vec::new();
        for (part, (out, undecodable)) in parts.iter().zip(decoded) {
            bad.extend(undecodable.into_iter().map(|e| (part.partition, e)));
            truncates.extend(out.truncates.iter().map(|o| (part.partition, *o)));
            for r in out.tombstones.iter().filter_map(|o| record_at(&part.records, *o)) {
                let key = match &r.key {
                    Some(k) => Some(self.decoder.key_json(k).await),
                    None => None,
                };
                tombstones.push((part.partition, r.offset, key));
            }
            if key_fields.is_none() && self.cfg.id_columns == crate::config::IdColumns::FromDebeziumKey {
                if let Some(k) = part.records.iter().filter(|r| r.undecodable.is_none()).find_map(|r| r.key.as_ref()) {
                    key_fields = keys::key_fields(&self.decoder.key_json(k).await);
                }
            }
            bad.extend(out.errors.into_iter().map(|e| (part.partition, e)));
            runs.extend(out.runs.into_iter().map(|r| (part.partition, r.batch, r.offsets)));
        }
        Decoding { runs, bad, tombstones, key_fields, truncates }
    }

    /// Phase 3: evolves the table's schema to take every run, then fits each run to it (with the
    /// system columns); a run the table cannot take becomes dead letters.
    async fn fit(&mut self, parts: &[PartitionRows], runs: Vec<(i32, RecordBatch, Vec<i64>)>, bad: &mut Vec<(i32, RecordError)>) -> Result<Vec<RecordBatch>> {
        let mut rows: Vec<RecordBatch> = Vec::new();
        if !runs.is_empty() {
            // The table's schema takes every run's columns, then each run is fitted to it.
            let mut fields: Vec<Field> = system::fields();
            for (_, b, _) in &runs {
                for f in b.schema().fields() {
                    if !fields.iter().any(|x| x.name() == f.name()) {
                        fields.push(f.as_ref().clone());
                    }
                }
            }
            let mut ok_runs = Vec::new();
            let table = self.table(&Schema::new(fields)).await?;
            for (p, b, offs) in runs {
                let mut record_fields: Vec<Field> = system::fields();
                record_fields.extend(b.schema().fields().iter().map(|f| f.as_ref().clone()));
                let record_schema = Arc::new(Schema::new(record_fields));
                match table.evolve(&record_schema).await {
                    Ok(()) => ok_runs.push((p, b, offs, record_schema)),
                    Err(TableTopicError::Schema(reason)) => {
                        bad.extend(offs.iter().map(|o| (p, RecordError { offset: *o, reason: format!("schema cannot evolve: {reason}") })))
                    }
                    Err(e) => return Err(e),
                }
            }
            let target: SchemaRef = table.arrow.clone();
            for (p, b, offs, record_schema) in ok_runs {
                let part = parts.iter().find(|x| x.partition == p).ok_or_else(|| TableTopicError::Internal("lost partition".into()))?;
                let recs: Vec<&SourceRecord> = offs.iter().filter_map(|o| record_at(&part.records, *o)).collect();
                let mut cols = system::columns(p, &recs).map_err(TableTopicError::Source)?;
                cols.extend(b.columns().iter().cloned());
                let full = RecordBatch::try_new(record_schema, cols)?;
                match conform(&full, &target) {
                    Ok(c) => rows.push(c),
                    Err(reason) => bad.extend(offs.iter().map(|o| (p, RecordError { offset: *o, reason: reason.clone() }))),
                }
            }
        }
        Ok(rows)
    }

    /// Phase 4: writes this commit's data files (and, for a keyed table, its position deletes in
    /// the partition of each file they hit).
    async fn write(&mut self, rows: &[RecordBatch], keyed: Option<KeyedPlan>, commit_id: &str) -> Result<Written> {
        let mut files: Vec<NewFile> = Vec::new();
        if self.table.is_none() {
            self.table(&Schema::new(system::fields())).await?;
        }
        let table = self.table.as_mut().ok_or_else(|| TableTopicError::Internal("table not open".into()))?;
        let writes_rows = keyed.as_ref().map_or(!rows.is_empty(), |plan| !plan.rows.is_empty());
        if writes_rows {
            // A changed `partition.by` takes effect with this commit's rows.
            table.evolve_spec(&self.cfg.partition_by).await?;
        }
        let mut delete_files: Vec<NewFile> = Vec::new();
        let mut new_rows: Vec<(String, (std::sync::Arc<str>, i64))> = Vec::new();
        let mut removed_keys: Vec<String> = Vec::new();
        match keyed {
            Some(plan) => {
                if !plan.rows.is_empty() {
                    let written = table.write(&commit_id[..8], rows, Some(&plan.rows)).await?;
                    let paths: Vec<std::sync::Arc<str>> = written.files.iter().map(|f| std::sync::Arc::from(f.file.file_path())).collect();
                    for (k, (f, pos)) in plan.keys.into_iter().zip(written.rows) {
                        new_rows.push((k, (paths[f].clone(), pos)));
                    }
                    files = written.files;
                }
                // A position delete goes in the partition (and spec) of the data file it hits.
                let index = self.index.as_ref().ok_or_else(|| TableTopicError::Internal("no key index".into()))?;
                let mut by_placement: HashMap<Placement, Vec<(String, i64)>> = HashMap::new();
                for (path, pos) in plan.deletes {
                    let placement = index
                        .placements
                        .get(path.as_str())
                        .cloned()
                        .ok_or_else(|| TableTopicError::Internal(format!("the key index knows no partition for {path}")))?;
                    by_placement.entry(placement).or_default().push((path, pos));
                }
                for (placement, rows) in by_placement {
                    let location = table.new_file_location(&format!("{}-deletes", &commit_id[..8]));
                    delete_files.extend(floe_catalog::files::write_position_deletes(table.committer().io(), &location, rows, &placement).await?);
                }
                removed_keys = plan.removed;
            }
            None if !rows.is_empty() => {
                files = table.write(&commit_id[..8], rows, None).await?.files;
            }
            None => {}
        }
        Ok(Written { files, delete_files, new_rows, removed_keys })
    }

    /// Phase 5: commits the written files in one snapshot carrying the offsets; on a conflict the
    /// files go unless the commit is found to have landed.
    async fn commit(&mut self, written: Written, (from, next): (&Offsets, &Offsets), commit_id: &str, tally: Tally) -> Result<usize> {
        let Tally { covered, invalid, lag, started, oldest_ms, intake_at, written_at } = tally;
        let Written { mut files, delete_files, new_rows, removed_keys } = written;
        let props = offsets::properties(next, commit_id, &self.topic);
        let table = self.table.as_mut().ok_or_else(|| TableTopicError::Internal("table not open".into()))?;
        let change = if self.cfg.keyed() { Change::RowDelta { data: files.clone(), deletes: delete_files.clone() } } else { Change::Append(files.clone()) };
        files.extend(delete_files);
        let base = table.loaded.clone();
        let result = match check_base(&base, from) {
            Ok(()) => table.committer().commit(&table.ns, &table.name, &base, change, &props).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(t) => {
                table.loaded = t;
                if let Some(index) = self.index.as_mut() {
                    for k in removed_keys {
                        index.rows.remove(&k);
                    }
                    index.rows.extend(new_rows);
                    for f in files.iter().filter(|f| f.file.content_type() == DataContentType::Data) {
                        index.placements.insert(std::sync::Arc::from(f.file.file_path()), Placement::of(f.partition_spec_id, &f.file));
                    }
                }
                self.offsets = Some(next.clone());
                let bytes: u64 = files.iter().map(|f| f.file.file_size_in_bytes()).sum();
                self.files_since_maintenance += files.iter().filter(|f| f.file.content_type() == DataContentType::Data).count() as u64;
                let mut status = self.status.lock();
                status.committed(next, covered as u64, invalid, lag);
                status.wrote(files.len() as u64, bytes, started.elapsed().as_millis() as u64);
                drop(status);
                self.histograms.commit_seconds.observe(started.elapsed().as_secs_f64());
                if let Some(oldest) = oldest_ms {
                    self.histograms.commit_lag_seconds.observe(((self.now_ms)() - oldest).max(0) as f64 / 1e3);
                }
                let ms = |from: std::time::Instant, to: std::time::Instant| to.saturating_duration_since(from).as_millis() as u64;
                let (intake_ms, write_ms, commit_ms) = (ms(started, intake_at), ms(intake_at, written_at), ms(written_at, std::time::Instant::now()));
                tracing::debug!(topic = %self.topic, records = covered, invalid, files = files.len(), intake_ms, write_ms, commit_ms, "table topic committed");
                Ok(covered)
            }
            Err(CatalogError::CommitFailed(m)) => {
                // A conflict may answer a retry of a commit whose first response was lost: only
                // a table that does not hold this commit lets its files go. Either way the next
                // cycle starts from what the table records.
                let landed = match table.committer().target().load(&table.ns, &table.name).await {
                    Ok(t) => offsets::contains_commit(&t.metadata, commit_id),
                    Err(_) => true, // unknown: keep the files (orphan removal takes them if unreferenced)
                };
                if landed {
                    tracing::warn!(topic = %self.topic, commit = %commit_id, "a commit answered as a conflict had landed; its files stay");
                } else {
                    for f in &files {
                        let _ = table.committer().io().delete(f.file.file_path()).await;
                    }
                }
                Err(TableTopicError::Catalog(CatalogError::CommitFailed(m)))
            }
            Err(e) => {
                // Unclear whether it landed: the table answers on the next cycle (offsets re-read).
                Err(e.into())
            }
        }
    }

    /// One commit: returns the number of records it covered.
    pub async fn cycle(&mut self) -> Result<usize> {
        let started = std::time::Instant::now();
        let committed = self.committed_offsets().await?;
        let Reading { parts, decoded, next, lag, behind } = self.read(&committed).await?;
        let intake_at = std::time::Instant::now();
        if next == committed {
            self.status.lock().caught_up(lag);
            return Ok(0);
        }
        // Until this commit lands, everything past the committed offsets is lag.
        self.status.lock().lag_records = behind;
        let covered: usize = parts.iter().map(|p| p.records.len()).sum();
        let oldest_ms = parts.iter().flat_map(|p| p.records.iter()).map(|r| r.timestamp_ms).min();
        let commit_id = uuid::Uuid::new_v4().to_string();

        // Decode; bad records go to the dead-letter table (or pause the table).
        let Decoding { runs, mut bad, tombstones, key_fields, truncates } = self.decode(&parts, decoded).await;
        self.stop_at_bad_record(&bad)?;
        if let Some(&(partition, at)) = truncates.iter().min_by_key(|(p, o)| (*p, *o)) {
            return self.truncate(&parts, (partition, at), bad, &committed, &commit_id, (behind, started)).await;
        }

        let rows = self.fit(&parts, runs, &mut bad).await?;
        let keyed = if self.cfg.keyed() { Some(self.keyed(key_fields, &rows, &tombstones, &mut bad).await?) } else { None };
        self.stop_at_bad_record(&bad)?;
        if !bad.is_empty() {
            self.dead_letters(&parts, &bad, &next).await?;
        }

        // Write, then commit.
        let written = self.write(&rows, keyed, &commit_id).await?;
        let invalid = bad.len() as u64;
        let tally = Tally { covered, invalid, lag, started, oldest_ms, intake_at, written_at: std::time::Instant::now() };
        self.commit(written, (&committed, &next), &commit_id, tally).await
    }

    /// A Debezium TRUNCATE at offset `at` of a partition: one snapshot removes every live file
    /// (data and deletes), and the table's offset in that partition moves past it. What came
    /// before it there is gone with the table's rows (its bad records still go to the dead-letter
    /// table); other partitions' records of this cycle are read again by the next one.
    async fn truncate(
        &mut self,
        parts: &[PartitionRows],
        (partition, at): (i32, i64),
        bad: Vec<(i32, RecordError)>,
        committed: &Offsets,
        commit_id: &str,
        (behind, started): (i64, std::time::Instant),
    ) -> Result<usize> {
        let mut next = committed.clone();
        next.insert(partition, at + 1);
        let bad: Vec<(i32, RecordError)> = bad.into_iter().filter(|(p, e)| *p == partition && e.offset < at).collect();
        if !bad.is_empty() {
            self.dead_letters(parts, &bad, &next).await?;
        }
        let props = offsets::properties(&next, commit_id, &self.topic);
        let table = self.table(&Schema::new(system::fields())).await?;
        let live = table.committer().live_files(&table.loaded.metadata).await?;
        let removed: std::collections::HashSet<String> = live.iter().map(|f| f.file.file_path().to_string()).collect();
        let files = removed.len();
        let base = table.loaded.clone();
        check_base(&base, committed)?;
        let change = Change::Replace { removed, data: vec![], deletes: vec![] };
        table.loaded = table.committer().commit(&table.ns, &table.name, &base, change, &props).await?;
        if self.index.is_some() {
            self.index = Some(KeyIndex::default());
        }
        self.offsets = Some(next.clone());
        let covered = parts.iter().filter(|p| p.partition == partition).flat_map(|p| p.records.iter()).filter(|r| r.offset <= at).count();
        let mut status = self.status.lock();
        status.committed(&next, covered as u64, bad.len() as u64, behind.saturating_sub(covered as i64).max(0));
        status.wrote(0, 0, started.elapsed().as_millis() as u64);
        drop(status);
        tracing::info!(topic = %self.topic, partition, offset = at, files_removed = files, "TRUNCATE: the table was emptied");
        Ok(covered)
    }

    /// With `errors.tolerance=none`, the first bad record pauses the table (nothing is committed,
    /// the loop tries again from the same offsets; a config change restarts it).
    fn stop_at_bad_record(&self, bad: &[(i32, RecordError)]) -> Result<()> {
        match bad.first() {
            Some((p, e)) if self.cfg.tolerance == Tolerance::None => {
                let reason = format!("paused at partition {p} offset {}: {}", e.offset, e.reason);
                self.status.lock().pause(&reason);
                Err(TableTopicError::Record { offset: e.offset, reason })
            }
            _ => Ok(()),
        }
    }

    async fn dead_letters(&mut self, parts: &[PartitionRows], bad: &[(i32, RecordError)], next: &Offsets) -> Result<()> {
        if self.dlq.is_none() {
            let name = self.cfg.dlq_name(&self.topic);
            let t = TableHandle::open_or_create(
                self.committer.clone(),
                ns_of(&self.cfg),
                &name,
                &dlq::schema(),
                &[],
                HashMap::from([(crate::table::DLQ_OWNER_KEY.to_string(), self.topic.clone())]),
            )
            .await?;
            self.dlq = Some(t);
        }
        let dlq = self.dlq.as_mut().ok_or_else(|| TableTopicError::Internal("dead-letter table not open".into()))?;
        // Exactly once here too: letters below what the dead-letter table already covers are skipped.
        let done = offsets::committed(&dlq.loaded.metadata);
        let letters: Vec<(i32, &SourceRecord, &str)> = bad
            .iter()
            .filter(|(p, e)| done.get(p).is_none_or(|o| e.offset >= *o))
            .filter_map(|(p, e)| parts.iter().find(|x| x.partition == *p).and_then(|x| record_at(&x.records, e.offset)).map(|r| (*p, r, e.reason.as_str())))
            .collect();
        if letters.is_empty() {
            return Ok(());
        }
        let batch = dlq::batch(&dlq.arrow, &letters).map_err(|e| TableTopicError::Internal(format!("dead letters do not fit the dead-letter table: {e}")))?;
        let commit_id = uuid::Uuid::new_v4().to_string();
        let files = dlq.write("dlq", std::slice::from_ref(&batch), None).await?.files;
        let base = dlq.loaded.clone();
        let t = dlq.committer().commit(&dlq.ns, &dlq.name, &base, Change::Append(files), &offsets::properties(next, &commit_id, &self.topic)).await?;
        dlq.loaded = t;
        tracing::warn!(topic = %self.topic, records = letters.len(), table = %dlq.name, first_error = %letters[0].2, last_error = %letters[letters.len() - 1].2, "invalid records written to the dead-letter table");
        Ok(())
    }

    /// Upsert: the last change of each key in this commit wins; a key's previous live row is
    /// removed with a position delete; deletes and tombstones write no row.
    async fn keyed(
        &mut self,
        key_fields: Option<Vec<String>>,
        rows: &[RecordBatch],
        tombstones: &[(i32, i64, Option<bytes::Bytes>)],
        bad: &mut Vec<(i32, RecordError)>,
    ) -> Result<KeyedPlan> {
        if self.table.is_none() {
            // Only tombstones so far: the table starts with the system columns.
            self.table(&Schema::new(system::fields())).await?;
        }
        let table = self.table.as_ref().ok_or_else(|| TableTopicError::Internal("table not open".into()))?;
        let ids: Vec<String> = match &self.cfg.id_columns {
            crate::config::IdColumns::Columns(c) => c.clone(),
            _ => {
                // `[_from_debezium_key_]`: the id columns are the fields of the record keys.
                match key_fields {
                    Some(f) => f,
                    None => return Ok(KeyedPlan { rows: vec![], keys: vec![], deletes: vec![], removed: vec![] }),
                }
            }
        };
        if self.index.is_none() {
            let live = table.committer().live_files(&table.loaded.metadata).await?;
            self.index = Some(KeyIndex::rebuild(table.committer().io(), &live, &ids).await?);
        }
        let cdc = self.cfg.cdc_field.clone().or_else(|| (self.cfg.transform == crate::config::Transform::FlattenDebezium).then(|| "_cdc.op".to_string()));
        let mut events: Vec<KeyEvent> = Vec::new();
        for (bi, batch) in rows.iter().enumerate() {
            let row_keys = keys::row_keys(batch, &ids)?;
            let is_delete = keys::deletes(batch, cdc.as_deref());
            let (parts, offs) = system::positions(batch).ok_or_else(|| TableTopicError::Schema("rows lack _kafka_metadata".into()))?;
            for (i, k) in row_keys.into_iter().enumerate() {
                match k {
                    Some(k) => events.push((parts.value(i), offs.value(i), k, (!is_delete[i]).then_some((bi, i)))),
                    None => bad
                        .push((parts.value(i), RecordError { offset: offs.value(i), reason: format!("an id column ({}) is null or missing", ids.join(", ")) })),
                }
            }
        }
        for (p, o, key) in tombstones {
            match key.as_deref().and_then(|k| keys::key_of_kafka_key(k, &ids)) {
                Some(k) => events.push((*p, *o, k, None)),
                None => bad.push((*p, RecordError { offset: *o, reason: "a tombstone whose key names no id columns".into() })),
            }
        }
        events.sort_by_key(|e| (e.0, e.1));
        let mut latest: HashMap<String, Option<(usize, usize)>> = HashMap::new();
        for (_, _, k, row) in events {
            latest.insert(k, row);
        }
        let index = self.index.as_ref().ok_or_else(|| TableTopicError::Internal("no key index".into()))?;
        let mut deletes = Vec::new();
        let mut keep: Vec<((usize, usize), String)> = Vec::new();
        let mut removed = Vec::new();
        for (k, row) in latest {
            if let Some((path, pos)) = index.rows.get(&k) {
                deletes.push((path.to_string(), *pos));
            }
            match row {
                Some(r) => keep.push((r, k)),
                None => removed.push(k),
            }
        }
        if index.rows.len() + keep.len() > keys::KEYS_MAX {
            return Err(TableTopicError::Config(format!("more than {} live keys: the upsert index limit", keys::KEYS_MAX)));
        }
        keep.sort_by_key(|r| r.0);
        // Only the rows that win are written, picked out of the decoded batches by the writer.
        let (rows, keys) = keep.into_iter().unzip();
        Ok(KeyedPlan { rows, keys, deletes, removed })
    }
}

/// One change of a key: partition, offset, key, and the (batch, row) to write (none for a delete).
type KeyEvent = (i32, i64, String, Option<(usize, usize)>);

/// What one upsert commit writes.
struct KeyedPlan {
    /// Rows to write, as (batch, row) of the decoded batches, in the order of `keys`.
    rows: Vec<(usize, usize)>,
    keys: Vec<String>,
    /// (data file, position) rows removed.
    deletes: Vec<(String, i64)>,
    /// Keys deleted without a new row (updated keys are replaced through `keys`).
    removed: Vec<String>,
}

/// The record at `offset` (records of a read are in offset order).
fn record_at(records: &[SourceRecord], offset: i64) -> Option<&SourceRecord> {
    records.binary_search_by_key(&offset, |r| r.offset).ok().map(|i| &records[i])
}

/// A commit builds only on a snapshot holding the offsets its records were read from: the table
/// may have moved on since they were (another broker committing while the table's committer
/// moved, or a schema change that found the table changed and read it again).
fn check_base(base: &floe_catalog::catalog::LoadedTable, read_from: &Offsets) -> std::result::Result<(), CatalogError> {
    match offsets::committed(&base.metadata) == *read_from {
        true => Ok(()),
        false => Err(CatalogError::CommitFailed("the table moved on since its offsets were read".into())),
    }
}
