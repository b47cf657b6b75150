//! One table's commit loop: on each interval, read every partition from the offsets the table
//! itself records, turn records into rows (bad ones to the dead-letter table), write Parquet and
//! commit one snapshot whose summary holds the new offsets. After any failure the offsets are read
//! back from the table, so a crash anywhere neither loses nor duplicates a record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use floe_catalog::{CatalogError, Change, Committer};
use floe_schema::source::SchemaCache;
use floe_schema::RecordError;
use iceberg::spec::DataFile;
use parking_lot::Mutex;

use crate::config::{TableConfig, Tolerance};
use crate::conform::conform;
use crate::dlq;
use crate::error::{Result, TableTopicError};
use crate::offsets::{self, Offsets};
use crate::rows::Decoder;
use crate::source::{RecordSource, SourceRecord};
use crate::status::Status;
use crate::system;
use crate::table::TableHandle;

/// Bytes read from one partition per read call.
const READ_BYTES_MAX: u64 = 8 << 20;

/// Rows of one partition for one commit.
struct PartitionRows {
    partition: i32,
    records: Vec<SourceRecord>,
}

/// The commit loop of one Table Topic.
pub struct Coordinator {
    topic: String,
    cfg: Arc<TableConfig>,
    source: Arc<dyn RecordSource>,
    committer: Committer,
    decoder: Decoder,
    table: Option<TableHandle>,
    dlq: Option<TableHandle>,
    /// Next offset per partition, as last committed.
    offsets: Option<Offsets>,
    pub status: Arc<Mutex<Status>>,
}

fn ns_of(cfg: &TableConfig) -> Vec<String> {
    cfg.namespace.split('.').map(str::to_string).collect()
}

impl Coordinator {
    /// A loop for `topic` with `cfg`.
    pub fn new(topic: &str, cfg: Arc<TableConfig>, source: Arc<dyn RecordSource>, committer: Committer, schemas: Arc<SchemaCache>, status: Arc<Mutex<Status>>) -> Self {
        Coordinator {
            topic: topic.to_string(),
            decoder: Decoder::new(cfg.clone(), topic, schemas),
            cfg,
            source,
            committer,
            table: None,
            dlq: None,
            offsets: None,
            status,
        }
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
                    interval.saturating_sub(started.elapsed())
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "table topic commit failed; offsets are re-read from the table and the commit retried");
                    self.status.lock().last_error = Some(e.to_string());
                    self.offsets = None;
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
            let t = TableHandle::open_or_create(self.committer.clone(), ns_of(&self.cfg), &self.topic, initial, HashMap::from([("floe.topic".to_string(), self.topic.clone())])).await?;
            self.table = Some(t);
        }
        self.table.as_mut().ok_or_else(|| TableTopicError::Source("table not open".into()))
    }

    /// Offsets committed in the table (loading the table when it exists).
    async fn committed_offsets(&mut self) -> Result<Offsets> {
        if let Some(o) = &self.offsets {
            return Ok(o.clone());
        }
        let o = match self.committer.target().load(&ns_of(&self.cfg), &self.topic).await {
            Ok(t) => offsets::committed(&t.metadata),
            Err(CatalogError::NoSuchTable(_) | CatalogError::NoSuchNamespace(_)) => Offsets::new(),
            Err(e) => return Err(e.into()),
        };
        self.offsets = Some(o.clone());
        Ok(o)
    }

    /// One commit: returns the number of records it covered.
    pub async fn cycle(&mut self) -> Result<usize> {
        let committed = self.committed_offsets().await?;
        let partitions = self.source.partitions(&self.topic).await.map_err(TableTopicError::Source)?;
        let mut next = committed.clone();
        let mut parts = Vec::new();
        let mut budget = self.cfg.commit_bytes_max;
        let mut lag = 0i64;
        for p in 0..partitions {
            let (start, end) = self.source.bounds(&self.topic, p).await.map_err(TableTopicError::Source)?;
            let mut from = committed.get(&p).copied().unwrap_or(start);
            if from < start {
                tracing::warn!(topic = %self.topic, partition = p, committed = from, log_start = start, "records the table never committed were trimmed from the log");
                from = start;
            }
            let mut records = Vec::new();
            while from < end && budget > 0 {
                let read = self.source.read(&self.topic, p, from, READ_BYTES_MAX.min(budget)).await.map_err(TableTopicError::Source)?;
                if read.next_offset <= from {
                    break;
                }
                let bytes: u64 = read.records.iter().map(|r| (r.value.as_ref().map_or(0, |v| v.len()) + r.key.as_ref().map_or(0, |k| k.len()) + 64) as u64).sum();
                budget = budget.saturating_sub(bytes.max(1));
                records.extend(read.records.into_iter().filter(|r| r.offset < end));
                from = read.next_offset.min(end);
            }
            lag += end - from;
            next.insert(p, from);
            if !records.is_empty() {
                parts.push(PartitionRows { partition: p, records });
            }
        }
        if next == committed {
            self.status.lock().caught_up(lag);
            return Ok(0);
        }
        let covered: usize = parts.iter().map(|p| p.records.len()).sum();
        let commit_id = uuid::Uuid::new_v4().to_string();

        // Decode; bad records go to the dead-letter table (or pause the table).
        let mut runs: Vec<(i32, RecordBatch, Vec<i64>)> = Vec::new();
        let mut bad: Vec<(i32, RecordError)> = Vec::new();
        for part in &parts {
            let out = self.decoder.decode(&part.records).await;
            bad.extend(out.errors.into_iter().map(|e| (part.partition, e)));
            runs.extend(out.runs.into_iter().map(|r| (part.partition, r.batch, r.offsets)));
        }
        if !bad.is_empty() && self.cfg.tolerance == Tolerance::None {
            let (p, e) = &bad[0];
            let reason = format!("paused at partition {p} offset {}: {}", e.offset, e.reason);
            self.status.lock().pause(&reason);
            return Err(TableTopicError::Record { offset: e.offset, reason });
        }

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
                let mut record_schema: Vec<Field> = system::fields();
                record_schema.extend(b.schema().fields().iter().map(|f| f.as_ref().clone()));
                match table.evolve(&Schema::new(record_schema)).await {
                    Ok(()) => ok_runs.push((p, b, offs)),
                    Err(TableTopicError::Schema(reason)) => bad.extend(offs.iter().map(|o| (p, RecordError { offset: *o, reason: format!("schema cannot evolve: {reason}") }))),
                    Err(e) => return Err(e),
                }
            }
            let target: SchemaRef = table.arrow.clone();
            for (p, b, offs) in ok_runs {
                let part = parts.iter().find(|x| x.partition == p).ok_or_else(|| TableTopicError::Source("lost partition".into()))?;
                let by_offset: HashMap<i64, &SourceRecord> = part.records.iter().map(|r| (r.offset, r)).collect();
                let recs: Vec<&SourceRecord> = offs.iter().filter_map(|o| by_offset.get(o).copied()).collect();
                let mut cols = system::columns(p, &recs).map_err(|e| TableTopicError::Source(e.to_string()))?;
                cols.extend(b.columns().iter().cloned());
                let mut fields = system::fields();
                fields.extend(b.schema().fields().iter().map(|f| f.as_ref().clone()));
                let full = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
                match conform(&full, &target) {
                    Ok(c) => rows.push(c),
                    Err(reason) => bad.extend(offs.iter().map(|o| (p, RecordError { offset: *o, reason: reason.clone() }))),
                }
            }
        }
        if !bad.is_empty() && self.cfg.tolerance == Tolerance::None {
            let (p, e) = &bad[0];
            let reason = format!("paused at partition {p} offset {}: {}", e.offset, e.reason);
            self.status.lock().pause(&reason);
            return Err(TableTopicError::Record { offset: e.offset, reason });
        }
        if !bad.is_empty() {
            self.dead_letters(&parts, &bad, &next).await?;
        }

        // Write and commit.
        let props = offsets::properties(&next, &commit_id, &self.topic);
        let mut files: Vec<DataFile> = Vec::new();
        let table = match self.table.as_mut() {
            Some(t) => t,
            None => {
                let initial = Schema::new(system::fields());
                self.table(&initial).await?
            }
        };
        if !rows.is_empty() {
            let schema = rows[0].schema();
            let batch = arrow_select::concat::concat_batches(&schema, &rows)?;
            files = table.write(&commit_id[..8], &batch).await?;
        }
        let base = table.loaded.clone();
        let result = table.committer().commit(&table.ns, &table.name, &base, Change::Append(files.clone()), &props).await;
        match result {
            Ok(t) => {
                table.loaded = t;
                self.offsets = Some(next.clone());
                let invalid = bad.len() as u64;
                self.status.lock().committed(&next, covered as u64, invalid, lag);
                tracing::debug!(topic = %self.topic, records = covered, invalid, files = files.len(), "table topic committed");
                Ok(covered)
            }
            Err(CatalogError::CommitFailed(m)) => {
                for f in &files {
                    let _ = table.committer().io().delete(f.file_path()).await;
                }
                Err(TableTopicError::Catalog(CatalogError::CommitFailed(m)))
            }
            Err(e) => {
                // Unclear whether it landed: the table answers on the next cycle (offsets re-read).
                Err(e.into())
            }
        }
    }

    async fn dead_letters(&mut self, parts: &[PartitionRows], bad: &[(i32, RecordError)], next: &Offsets) -> Result<()> {
        if self.dlq.is_none() {
            let name = self.cfg.dlq_name(&self.topic);
            let t = TableHandle::open_or_create(self.committer.clone(), ns_of(&self.cfg), &name, &dlq::schema(), HashMap::from([("floe.dead-letters-of".to_string(), self.topic.clone())])).await?;
            self.dlq = Some(t);
        }
        let dlq = self.dlq.as_mut().ok_or_else(|| TableTopicError::Source("dead-letter table not open".into()))?;
        // Exactly once here too: letters below what the dead-letter table already covers are skipped.
        let done = offsets::committed(&dlq.loaded.metadata);
        let letters: Vec<(i32, &SourceRecord, &str)> = bad
            .iter()
            .filter(|(p, e)| done.get(p).is_none_or(|o| e.offset >= *o))
            .filter_map(|(p, e)| parts.iter().find(|x| x.partition == *p).and_then(|x| x.records.iter().find(|r| r.offset == e.offset)).map(|r| (*p, r, e.reason.as_str())))
            .collect();
        if letters.is_empty() {
            return Ok(());
        }
        let batch = dlq::batch(&dlq.arrow, &letters).map_err(|e| TableTopicError::Source(e.to_string()))?;
        let commit_id = uuid::Uuid::new_v4().to_string();
        let files = dlq.write("dlq", &batch).await?;
        let base = dlq.loaded.clone();
        let t = dlq.committer().commit(&dlq.ns, &dlq.name, &base, Change::Append(files), &offsets::properties(next, &commit_id, &self.topic)).await?;
        dlq.loaded = t;
        tracing::warn!(topic = %self.topic, records = letters.len(), table = %dlq.name, first_error = %letters[0].2, last_error = %letters[letters.len() - 1].2, "invalid records written to the dead-letter table");
        Ok(())
    }
}
