//! The loop's table upkeep between its commits: compaction, snapshot expiry and orphan removal.
//!
//! An append-only table's compaction is prepared (planned, read, merged and written) by a task
//! beside the loop, which keeps committing meanwhile; the loop commits the merged files between
//! two of its own commits, so a large merge never holds up freshness. An upsert table compacts
//! inline: its key index and position deletes point into the files being rewritten.

use std::time::Duration;

use crate::error::Result;
use crate::maintenance::{self, Compacted, Prepared};
use crate::table::TableHandle;

use super::{ns_of, Coordinator};

/// A compaction being prepared; aborted when the loop stops (its files, never committed, are
/// orphans the next loop's orphan removal takes).
pub(super) struct InFlight(tokio::task::JoinHandle<Result<Option<Prepared>>>);

impl InFlight {
    /// Whether the merged files are written (or the task failed).
    pub(super) fn done(&self) -> bool {
        self.0.is_finished()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Coordinator {
    /// Commits a compaction prepared beside the loop once it is written; then, once per
    /// maintenance interval (or after `compaction.trigger.files` new files), expiry, orphan
    /// removal and the next compaction. A failure is logged and tried again next interval: it
    /// never holds up commits.
    pub(super) async fn maintain(&mut self) {
        self.land_compaction().await;
        let by_time = self.maintained_at.is_none_or(|t| t.elapsed() >= Duration::from_millis(self.cfg.maintenance_interval_ms));
        let by_files = self.cfg.compaction.as_ref().is_some_and(|p| self.files_since_maintenance >= p.trigger_files);
        if !by_time && !by_files {
            return;
        }
        self.files_since_maintenance = 0;
        self.maintained_at = Some(tokio::time::Instant::now());
        // An idle table (no record since this loop started) is maintained too.
        if !self.open_for_maintenance().await {
            return;
        }
        if self.cfg.keyed() {
            self.compact_inline().await;
        }
        self.expire_and_remove_orphans().await;
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

    /// Append-only tables: the next compaction starts beside the loop, on the table as it is now.
    fn start_compaction(&mut self) {
        let (Some(policy), Some(table)) = (self.cfg.compaction.clone(), self.table.as_ref()) else { return };
        if self.compaction.is_some() {
            return;
        }
        let view = table.clone();
        self.compaction = Some(InFlight(tokio::spawn(async move { maintenance::prepare(&view, &policy).await })));
    }

    /// Commits the compaction prepared beside the loop, if it is written.
    async fn land_compaction(&mut self) {
        let Some(mut task) = self.compaction.take_if(|t| t.done()) else { return };
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

    /// Snapshot expiry of the table and its dead-letter table, and removal of files no snapshot
    /// references (not while a compaction's files, written but uncommitted, are in flight).
    async fn expire_and_remove_orphans(&mut self) {
        let now_ms = (self.now_ms)();
        let orphans_before_ms = now_ms.saturating_sub(i64::try_from(self.cfg.orphan_older_than_ms).unwrap_or(i64::MAX));
        let in_flight = self.compaction.is_some();
        for table in [self.table.as_mut(), self.dlq.as_mut()].into_iter().flatten() {
            if self.cfg.expire_enabled {
                if let Err(e) = maintenance::expire(table, self.cfg.expire_older_than_hours, self.cfg.expire_retain_last, now_ms).await {
                    tracing::warn!(topic = %self.topic, table = %table.name, error = %e, "snapshot expiry failed; tried again next interval");
                }
            }
            if in_flight {
                continue;
            }
            // Between this loop's own commits no file of its own is in flight; the grace period
            // covers any other writer of the table.
            if let Err(e) = table.committer().remove_orphans(&table.loaded.metadata, orphans_before_ms).await {
                tracing::warn!(topic = %self.topic, table = %table.name, error = %e, "orphan file removal failed; tried again next interval");
            }
        }
    }
}
