//! The loop's table upkeep between its commits: compaction, snapshot expiry and orphan removal.
//!
//! What reads or writes many files runs beside the loop, which keeps committing meanwhile: an
//! append-only table's compaction is prepared (planned, read, merged, written) by a task and
//! committed by the loop between two of its commits; an expiry's snapshots are removed by the
//! loop (one metadata commit) and their files deleted by a task. An upsert table compacts inline
//! (its key index and position deletes point into the files rewritten); orphan removal runs in
//! the loop once per maintenance interval (between its commits, no file of its own is in flight).
//! The tasks run on the low-priority upkeep thread (`background.rs`).

use std::sync::Arc;
use std::time::Duration;

use floe_catalog::commit::{Expired, Retention};
use iceberg::spec::TableMetadata;

use crate::error::Result;
use crate::maintenance::{self, Compacted, Prepared};
use crate::table::TableHandle;

use super::{ns_of, Coordinator};

/// Work of the loop's running beside it; aborted when the loop stops (files a compaction wrote
/// and never committed, or an expiry left, are orphans the next orphan removal takes).
pub(super) struct InFlight<T>(tokio::task::JoinHandle<T>);

impl<T> InFlight<T> {
    /// Whether the task finished.
    pub(super) fn done(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Drop for InFlight<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The loop's background upkeep: at most one compaction and one expired-file cleanup at a time.
#[derive(Default)]
pub(super) struct Background {
    pub(super) compaction: Option<InFlight<Result<Option<Prepared>>>>,
    pub(super) cleanup: Option<InFlight<()>>,
    /// A pass wanted a compaction while one was in flight: it starts once that one landed.
    pub(super) compaction_due: bool,
}

impl Coordinator {
    /// Commits a compaction prepared beside the loop once it is written; then, once per
    /// maintenance interval (or after `compaction.trigger.files` new files), (by the interval
    /// only) orphan removal, expiry and the next compaction. A failure is logged and tried
    /// again next time: it never holds up commits.
    pub(super) async fn maintain(&mut self) {
        let started = std::time::Instant::now();
        self.upkeep().await;
        self.histograms.maintenance_seconds.observe(started.elapsed().as_secs_f64());
    }

    async fn upkeep(&mut self) {
        self.land_compaction().await;
        if self.background.compaction_due && self.background.compaction.is_none() {
            self.start_compaction();
        }
        if self.background.cleanup.as_ref().is_some_and(InFlight::done) {
            self.background.cleanup = None;
        }
        let by_time = self.maintained_at.is_none_or(|t| t.elapsed() >= Duration::from_millis(self.cfg.maintenance_interval_ms));
        let by_files = self.cfg.compaction.as_ref().is_some_and(|p| self.files_since_maintenance >= p.trigger_files);
        if !by_time && !by_files {
            return;
        }
        self.files_since_maintenance = 0;
        if by_time {
            self.maintained_at = Some(tokio::time::Instant::now());
        }
        // An idle table (no record since this loop started) is maintained too.
        if !self.open_for_maintenance().await {
            return;
        }
        if self.cfg.keyed() {
            self.compact_inline().await;
        }
        // Before this pass's expiry hands its files to a cleanup task (orphan removal would race it).
        if by_time && self.background.compaction.is_none() && self.background.cleanup.is_none() {
            self.remove_orphans().await;
        }
        self.expire().await;
        if !self.cfg.keyed() {
            self.start_compaction();
        }
    }

    /// Opens the table when the loop has not (yet, or again after a failure); false when it does
    /// not exist or cannot be loaded.
    async fn open_for_maintenance(&mut self) -> bool {
        if self.table.is_some() {
            return true;
        }
        match TableHandle::open(self.committer.clone(), ns_of(&self.cfg), self.cfg.table(&self.topic), (crate::table::OWNER_KEY, &self.topic)).await {
            Ok(Some(t)) => {
                self.table = Some(t);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "the table could not be loaded for maintenance; tried again next interval");
                false
            }
        }
    }

    /// Upsert tables: compaction between commits, the key index rebuilt after it.
    async fn compact_inline(&mut self) {
        let (Some(policy), Some(table)) = (self.cfg.compaction.clone(), self.table.as_mut()) else { return };
        let done = maintenance::compact(table, &policy).await;
        self.compacted(done);
    }

    /// Append-only tables: the next compaction starts beside the loop, on the table as it is now;
    /// while one is in flight, the next starts as soon as it landed.
    fn start_compaction(&mut self) {
        let (Some(policy), Some(table)) = (self.cfg.compaction.clone(), self.table.as_ref()) else { return };
        if self.background.compaction.is_some() {
            self.background.compaction_due = true;
            return;
        }
        self.background.compaction_due = false;
        let view = table.clone();
        self.background.compaction = Some(InFlight(crate::background::spawn(async move { maintenance::prepare(&view, &policy).await })));
    }

    /// Commits the compaction prepared beside the loop, if it is written.
    async fn land_compaction(&mut self) {
        let Some(mut task) = self.background.compaction.take_if(|t| t.done()) else { return };
        let prepared = match (&mut task.0).await {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return tracing::warn!(topic = %self.topic, error = %e, "preparing a table compaction failed; tried again next interval"),
            Err(e) => return tracing::warn!(topic = %self.topic, error = %e, "the table compaction task died; tried again next interval"),
        };
        if !self.open_for_maintenance().await {
            return maintenance::discard(self.committer.io(), prepared).await;
        }
        let Some(table) = self.table.as_mut() else { return };
        let done = maintenance::apply(table, prepared).await.map(Some);
        self.compacted(done);
    }

    /// Counts a compaction; after a failure the table is read again.
    fn compacted(&mut self, done: Result<Option<Compacted>>) {
        match done {
            Ok(Some(done)) => {
                // Rows moved to new files: the key index is rebuilt from the table when next needed.
                self.index = None;
                self.status.lock().compacted(done.files_in + done.delete_files_in);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "table compaction failed; the table is re-read and compaction tried next interval");
                self.table = None;
                self.index = None;
            }
        }
    }

    /// Snapshot expiry of the table and its dead-letter table: the snapshots go here, their
    /// files in a task beside the loop (none while the previous one still deletes).
    async fn expire(&mut self) {
        if !self.cfg.expire_enabled || self.background.cleanup.is_some() {
            return;
        }
        let now_ms = (self.now_ms)();
        let retention = Retention {
            older_than_ms: now_ms.saturating_sub((self.cfg.expire_older_than_hours as i64).saturating_mul(3_600_000)),
            retain_last: self.cfg.expire_retain_last,
            retain_max: self.cfg.expire_retain_max,
        };
        let mut gone: Vec<(String, Expired, Arc<TableMetadata>)> = Vec::new();
        for table in [self.table.as_mut(), self.dlq.as_mut()].into_iter().flatten() {
            match maintenance::expire(table, retention).await {
                Ok(Some(expired)) => gone.push((table.name.clone(), expired, table.loaded.metadata.clone())),
                Ok(None) => {}
                Err(e) => tracing::warn!(topic = %self.topic, table = %table.name, error = %e, "snapshot expiry failed; tried again next interval"),
            }
        }
        if gone.is_empty() {
            return;
        }
        let committer = self.committer.clone();
        self.background.cleanup = Some(InFlight(crate::background::spawn(async move {
            for (table, expired, after) in gone {
                match committer.delete_expired(&expired, &after).await {
                    Ok(files) => tracing::debug!(table, files, "files of expired snapshots deleted"),
                    Err(e) => tracing::warn!(table, error = %e, "deleting the files of expired snapshots failed; orphan removal takes them"),
                }
            }
        })));
    }

    /// Removes files no snapshot of the table or its dead-letter table reaches, older than
    /// `orphan.older.than.ms`. Run between the loop's own commits, so no file of its own is in
    /// flight; the grace period covers any other writer of the table.
    async fn remove_orphans(&mut self) {
        let now_ms = (self.now_ms)();
        let orphans_before_ms = now_ms.saturating_sub(i64::try_from(self.cfg.orphan_older_than_ms).unwrap_or(i64::MAX));
        for table in [self.table.as_ref(), self.dlq.as_ref()].into_iter().flatten() {
            if let Err(e) = table.committer().remove_orphans(&table.loaded.metadata, orphans_before_ms).await {
                tracing::warn!(topic = %self.topic, table = %table.name, error = %e, "orphan file removal failed; tried again next interval");
            }
        }
    }
}
