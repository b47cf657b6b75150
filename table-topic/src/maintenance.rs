//! Table maintenance: compaction of small data files, with the position deletes that hit them
//! applied, into fewer larger files as one replace snapshot (prepared beside the commit loop,
//! committed between its commits); and snapshot expiry with deletion of unreferenced files.

use std::collections::{HashMap, HashSet};

use arrow_array::BooleanArray;
use floe_catalog::commit::{Expired, LiveFile, Retention};
use floe_catalog::files::NewFile;
use floe_catalog::Change;
use iceberg::io::FileIO;
use iceberg::spec::DataContentType;

use crate::conform::conform;
use crate::error::{Result, TableTopicError};
use crate::files::{self, Hits};
use crate::offsets;
use crate::table::TableHandle;
use rewrite::Rewriter;

/// When and how much to compact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Data files below this size are small.
    pub target_file_bytes: u64,
    /// Compact once this many small data files, or delete files, are live.
    pub files_min: usize,
    /// Bytes of input files one compaction reads at most (bounds its memory).
    pub input_bytes_max: u64,
    /// Maintenance runs early once the loop has written this many data files since it last ran
    /// (a short commit interval writes a file a commit; waiting for the interval lets them pile up).
    pub trigger_files: u64,
    /// Rows a written file holds at most (`table::FILE_ROWS_MAX`): a file that full is not small.
    pub file_rows_max: u64,
}

/// Which files one compaction rewrites.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Data files read and rewritten.
    pub data: Vec<String>,
    /// Delete files that only hit rewritten files (removed with them).
    pub deletes: Vec<String>,
}

/// What a compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub files_in: usize,
    pub delete_files_in: usize,
    pub files_out: usize,
    pub rows: usize,
}

/// Size tiers of small files: a file's tier is ⌊log₈ bytes⌋, so one compaction of a tier's files
/// makes a file a tier or two up, and a byte is rewritten about once per tier on its way to
/// `target_file_bytes` instead of once per compaction.
fn tier(bytes: u64) -> u32 {
    bytes.max(1).ilog2() / 3
}

/// Whether a data file is worth merging: below `target_file_bytes`, and below the rows a written
/// file holds at most (`FILE_ROWS_MAX`) — a full file stays as it is whatever its size, else well
/// compressed full files stay "small" and the tier they fill is rewritten by every pass (seen:
/// the whole table, 40M rows, every 30 s).
fn is_small(f: &LiveFile, policy: &CompactionPolicy) -> bool {
    f.file.file_size_in_bytes() < policy.target_file_bytes && f.file.record_count() < policy.file_rows_max
}

/// Chooses the files to rewrite: the small data files of the highest size tier that holds
/// `files_min` of them, with every smaller one (the lowest such tier alone would be the fresh
/// files every time, while the tiers above filled without end), or, once `files_min` delete files are live,
/// every small data file; and data files some delete file hits. Oldest first, those that fit the
/// input budget; delete files go when every file they hit is rewritten.
pub fn plan(live: &[LiveFile], hits: &Hits, policy: &CompactionPolicy) -> Plan {
    let data: Vec<&LiveFile> = live.iter().filter(|f| f.file.content_type() == DataContentType::Data).collect();
    let delete_count = live.iter().filter(|f| f.file.content_type() == DataContentType::PositionDeletes).count();
    let hit: HashSet<&str> = hits.values().flat_map(|m| m.keys().map(String::as_str)).collect();
    // Each data file with its size tier when it is small (worth merging), judged once.
    let tiered: Vec<(&LiveFile, Option<u32>)> = data.into_iter().map(|f| (f, is_small(f, policy).then(|| tier(f.file.file_size_in_bytes())))).collect();
    let mut per_tier: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
    for t in tiered.iter().filter_map(|(_, t)| *t) {
        *per_tier.entry(t).or_default() += 1;
    }
    let full_tier = per_tier.iter().rev().find(|(_, n)| **n >= policy.files_min).map(|(t, _)| *t);
    let tier_max = match (full_tier, delete_count >= policy.files_min) {
        (_, true) => u32::MAX,
        (Some(t), false) => t,
        (None, false) => return Plan::default(),
    };
    let mut chosen: Vec<&LiveFile> =
        tiered.into_iter().filter(|(f, t)| t.is_some_and(|t| t <= tier_max) || hit.contains(f.file.file_path())).map(|(f, _)| f).collect();
    chosen.sort_by_key(|f| f.sequence_number);
    let mut budget = policy.input_bytes_max;
    let mut out = Plan::default();
    for f in chosen {
        if f.file.file_size_in_bytes() > budget {
            continue;
        }
        budget -= f.file.file_size_in_bytes();
        out.data.push(f.file.file_path().to_string());
    }
    let rewritten: HashSet<&str> = out.data.iter().map(String::as_str).collect();
    out.deletes = hits.iter().filter(|(_, m)| m.keys().all(|p| rewritten.contains(p.as_str()))).map(|(d, _)| d.clone()).collect();
    out.deletes.sort();
    // One file rewritten alone, with no delete file to drop, gains nothing.
    if out.data.len() < 2 && out.deletes.is_empty() {
        return Plan::default();
    }
    out
}

/// A compaction written but not yet committed: the files it rewrites and the files it wrote.
#[derive(Debug)]
pub struct Prepared {
    plan: Plan,
    files: Vec<NewFile>,
    rows: usize,
}

/// Compacts `table` when `policy` says so; `None` when there was nothing to do. A conflict with
/// another writer leaves the table as it was (the new files are deleted) and is returned.
pub async fn compact(table: &mut TableHandle, policy: &CompactionPolicy) -> Result<Option<Compacted>> {
    match prepare(table, policy).await? {
        Some(p) => apply(table, p).await.map(Some),
        None => Ok(None),
    }
}

/// The slow part of a compaction, on the table as `table` holds it: plans, reads the chosen
/// files (their rows fitted to the current schema, deleted positions left out) and writes the
/// merged files as the rows stream through (one input batch in memory, not the pass's input).
/// Nothing is committed: a loop may keep committing meanwhile and `apply` the result between
/// its commits.
pub async fn prepare(table: &TableHandle, policy: &CompactionPolicy) -> Result<Option<Prepared>> {
    let io = table.committer().io().clone();
    let live = table.committer().live_files(&table.loaded.metadata).await?;
    let delete_files: Vec<&LiveFile> = live.iter().filter(|f| f.file.content_type() == DataContentType::PositionDeletes).collect();
    let hits = files::delete_hits(&io, &delete_files).await?;
    let plan = plan(&live, &hits, policy);
    if plan.data.is_empty() && plan.deletes.is_empty() {
        return Ok(None);
    }
    let mut out = Rewriter::new(table, "compacted", policy.file_rows_max.try_into().unwrap_or(usize::MAX))?;
    let done = async {
        let rows = merge(table, &plan, &hits, &mut out).await?;
        Ok::<_, TableTopicError>((rows, out.finish().await?))
    }
    .await;
    match done {
        Ok((rows, files)) => Ok(Some(Prepared { plan, files, rows })),
        Err(e) => {
            out.discard().await;
            Err(e)
        }
    }
}

/// Streams the rows still live in the plan's files, fitted to the current schema, oldest file
/// first, into `out`, one batch at a time; returns how many there were.
async fn merge(table: &TableHandle, plan: &Plan, hits: &Hits, out: &mut Rewriter<'_>) -> Result<usize> {
    let io = table.committer().io();
    let gone = files::removed_positions(hits);
    let mut rows = 0;
    for path in &plan.data {
        let removed = gone.get(path.as_str());
        let mut pos = 0i64;
        for b in files::read_batches(io, path).await? {
            let b = b?;
            let n = b.num_rows() as i64;
            let b = match removed {
                Some(r) => {
                    let keep = BooleanArray::from_iter((pos..pos + n).map(|p| Some(!r.contains(&p))));
                    arrow_select::filter::filter_record_batch(&b, &keep)?
                }
                None => b,
            };
            pos += n;
            rows += b.num_rows();
            out.push(conform(&b, &table.arrow).map_err(|e| TableTopicError::Schema(format!("{path}: {e}")))?).await?;
        }
    }
    Ok(rows)
}

/// Commits a prepared compaction on top of the table as `table` holds it now (one replace
/// snapshot carrying the table's offsets on). When a rewritten file is no longer live (a TRUNCATE
/// came between) the commit fails, and the written files are deleted.
pub async fn apply(table: &mut TableHandle, prepared: Prepared) -> Result<Compacted> {
    let Prepared { plan, files, rows } = prepared;
    let removed: HashSet<String> = plan.data.iter().chain(&plan.deletes).cloned().collect();
    // The compaction snapshot carries the table's offsets on, so expiring older snapshots never
    // loses where the table stands in its topic.
    let mut props = HashMap::new();
    let committed = offsets::committed(&table.loaded.metadata);
    if let Some(v) = offsets::properties(&committed, "", "").remove(offsets::OFFSETS_KEY) {
        props.insert(offsets::OFFSETS_KEY.to_string(), v);
    }
    props.insert("floe.operation".into(), "compaction".into());
    let base = table.loaded.clone();
    match table.committer().commit(&table.ns, &table.name, &base, Change::Replace { removed, data: files.clone(), deletes: vec![] }, &props).await {
        Ok(t) => {
            table.loaded = t;
            let done = Compacted { files_in: plan.data.len(), delete_files_in: plan.deletes.len(), files_out: files.len(), rows };
            tracing::info!(table = %table.name, files_in = done.files_in, delete_files_in = done.delete_files_in, files_out = done.files_out, rows, "table compacted");
            Ok(done)
        }
        Err(e) => {
            discard(table.committer().io(), Prepared { plan, files, rows }).await;
            Err(e.into())
        }
    }
}

/// Deletes the files of a compaction that will not be committed.
pub async fn discard(io: &FileIO, prepared: Prepared) {
    for f in &prepared.files {
        let _ = io.delete(f.file.file_path()).await;
    }
}

/// Removes the snapshots `retention` lets go (one metadata commit); the files only they reached
/// are deleted by `Committer::delete_expired`, which may run beside later commits. `None` when
/// none expired.
pub async fn expire(table: &mut TableHandle, retention: Retention) -> Result<Option<Expired>> {
    let base = table.loaded.clone();
    let (after, expired) = table.committer().remove_snapshots(&table.ns, &table.name, &base, retention).await?;
    table.loaded = after;
    if let Some(e) = &expired {
        tracing::info!(table = %table.name, snapshots = e.snapshot_ids.len(), "snapshots expired");
    }
    Ok(expired)
}

mod rewrite;
#[cfg(test)]
mod tests;
