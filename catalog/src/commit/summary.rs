//! Snapshot summaries: what a snapshot added and removed, and the table's running totals.

use std::collections::HashMap;

use iceberg::spec::{DataContentType, DataFile};

/// Counts of one side (added or removed) of a snapshot.
#[derive(Default, Debug, Clone, Copy)]
pub struct Side {
    pub data_files: u64,
    pub records: u64,
    pub delete_files: u64,
    pub position_delete_files: u64,
    pub position_deletes: u64,
    pub equality_delete_files: u64,
    pub equality_deletes: u64,
    pub files_size: u64,
}

impl Side {
    /// Counts one file.
    pub fn add(&mut self, f: &DataFile) {
        self.files_size += f.file_size_in_bytes();
        match f.content_type() {
            DataContentType::Data => {
                self.data_files += 1;
                self.records += f.record_count();
            }
            DataContentType::PositionDeletes => {
                self.delete_files += 1;
                self.position_delete_files += 1;
                self.position_deletes += f.record_count();
            }
            DataContentType::EqualityDeletes => {
                self.delete_files += 1;
                self.equality_delete_files += 1;
                self.equality_deletes += f.record_count();
            }
        }
    }
}

const TOTALS: [&str; 6] = ["total-records", "total-files-size", "total-data-files", "total-delete-files", "total-position-deletes", "total-equality-deletes"];

/// The summary map of a new snapshot: the spec's `added-*`, `deleted-*`/`removed-*` and `total-*`
/// keys, then `extra` (our own keys). Totals are carried from the parent; when the parent has none
/// (a table written by an engine that skips them) they are left out rather than guessed.
pub fn build(parent: Option<&HashMap<String, String>>, added: Side, removed: Side, extra: &HashMap<String, String>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut put = |k: &str, v: u64| {
        if v > 0 {
            m.insert(k.to_string(), v.to_string());
        }
    };
    put("added-data-files", added.data_files);
    put("added-records", added.records);
    put("added-files-size", added.files_size);
    put("added-delete-files", added.delete_files);
    put("added-position-delete-files", added.position_delete_files);
    put("added-position-deletes", added.position_deletes);
    put("added-equality-delete-files", added.equality_delete_files);
    put("added-equality-deletes", added.equality_deletes);
    put("deleted-data-files", removed.data_files);
    put("deleted-records", removed.records);
    put("removed-files-size", removed.files_size);
    put("removed-delete-files", removed.delete_files);
    put("removed-position-delete-files", removed.position_delete_files);
    put("removed-position-deletes", removed.position_deletes);
    put("removed-equality-delete-files", removed.equality_delete_files);
    put("removed-equality-deletes", removed.equality_deletes);
    let deltas = [
        (added.records, removed.records),
        (added.files_size, removed.files_size),
        (added.data_files, removed.data_files),
        (added.delete_files, removed.delete_files),
        (added.position_deletes, removed.position_deletes),
        (added.equality_deletes, removed.equality_deletes),
    ];
    let previous: Option<Vec<u64>> = match parent {
        None => Some(vec![0; TOTALS.len()]),
        Some(p) => TOTALS.iter().map(|k| p.get(*k).and_then(|v| v.parse().ok())).collect(),
    };
    if let Some(previous) = previous {
        for ((key, prev), (add, remove)) in TOTALS.iter().zip(previous).zip(deltas) {
            m.insert(key.to_string(), (prev + add).saturating_sub(remove).to_string());
        }
    }
    for (k, v) in extra {
        m.insert(k.clone(), v.clone());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_carry_from_the_parent_and_are_left_out_when_unknown() {
        let added = Side { data_files: 2, records: 10, files_size: 100, ..Default::default() };
        let first = build(None, added, Side::default(), &HashMap::new());
        assert_eq!(first["total-records"], "10");
        assert_eq!(first["total-data-files"], "2");
        assert_eq!(first["total-delete-files"], "0");
        let removed = Side { data_files: 1, records: 4, files_size: 40, ..Default::default() };
        let dels = Side { delete_files: 1, position_delete_files: 1, position_deletes: 3, files_size: 7, ..Default::default() };
        let extra = HashMap::from([("floe.commit-id".to_string(), "c1".to_string())]);
        let second = build(Some(&first), dels, removed, &extra);
        assert_eq!(second["total-records"], "6");
        assert_eq!(second["total-data-files"], "1");
        assert_eq!(second["total-delete-files"], "1");
        assert_eq!(second["total-position-deletes"], "3");
        assert_eq!(second["total-files-size"], "67");
        assert_eq!(second["deleted-records"], "4");
        assert_eq!(second["floe.commit-id"], "c1");
        let unknown = build(Some(&HashMap::new()), added, Side::default(), &HashMap::new());
        assert!(!unknown.contains_key("total-records"));
        assert_eq!(unknown["added-records"], "10");
    }
}
