//! Where a table stands in its topic: the next offset of every partition, kept in the summary of
//! every snapshot Floe commits (`floe.offsets`), with the commit's id (`floe.commit-id`).

use std::collections::{BTreeMap, HashMap};

use iceberg::spec::TableMetadata;

/// Summary key holding `{"partition": next offset, …}`.
pub const OFFSETS_KEY: &str = "floe.offsets";
/// Summary key holding the commit's id.
pub const COMMIT_ID_KEY: &str = "floe.commit-id";

/// Next offset per partition.
pub type Offsets = BTreeMap<i32, i64>;

/// The offsets of the newest snapshot of `main` that has them (snapshots written by others, such
/// as a compaction by another engine, are walked past). Empty for a table Floe never committed.
pub fn committed(meta: &TableMetadata) -> Offsets {
    let mut cursor = meta.current_snapshot();
    while let Some(s) = cursor {
        if let Some(v) = s.summary().additional_properties.get(OFFSETS_KEY) {
            if let Ok(m) = serde_json::from_str::<BTreeMap<String, i64>>(v) {
                return m.into_iter().filter_map(|(k, v)| k.parse().ok().map(|p| (p, v))).collect();
            }
        }
        cursor = s.parent_snapshot_id().and_then(|p| meta.snapshot_by_id(p));
    }
    Offsets::new()
}

/// True when a snapshot of `main` carries `commit_id`.
pub fn contains_commit(meta: &TableMetadata, commit_id: &str) -> bool {
    let mut cursor = meta.current_snapshot();
    while let Some(s) = cursor {
        if s.summary().additional_properties.get(COMMIT_ID_KEY).is_some_and(|c| c == commit_id) {
            return true;
        }
        cursor = s.parent_snapshot_id().and_then(|p| meta.snapshot_by_id(p));
    }
    false
}

/// The summary properties of a commit.
pub fn properties(offsets: &Offsets, commit_id: &str, topic: &str) -> HashMap<String, String> {
    let m: BTreeMap<String, i64> = offsets.iter().map(|(p, o)| (p.to_string(), *o)).collect();
    HashMap::from([
        (OFFSETS_KEY.to_string(), serde_json::to_string(&m).unwrap_or_default()),
        (COMMIT_ID_KEY.to_string(), commit_id.to_string()),
        ("floe.topic".to_string(), topic.to_string()),
    ])
}
