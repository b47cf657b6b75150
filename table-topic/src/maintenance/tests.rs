//! Compaction planning: thresholds, the input budget, and delete files removed only with every file they hit.

use std::collections::{HashMap, HashSet};

use floe_catalog::commit::LiveFile;
use iceberg::spec::{DataContentType, DataFileBuilder, DataFileFormat, Struct};

use super::*;

fn file(path: &str, content: DataContentType, bytes: u64, seq: i64) -> LiveFile {
    file_of_rows(path, content, bytes, 1, seq)
}

fn file_of_rows(path: &str, content: DataContentType, bytes: u64, rows: u64, seq: i64) -> LiveFile {
    let file = DataFileBuilder::default()
        .content(content)
        .file_path(path.to_string())
        .file_format(DataFileFormat::Parquet)
        .file_size_in_bytes(bytes)
        .record_count(rows)
        .partition(Struct::empty())
        .partition_spec_id(0)
        .build()
        .expect("data file");
    LiveFile { file, sequence_number: seq, partition_spec_id: 0 }
}

fn policy(files_min: usize, input_bytes_max: u64) -> CompactionPolicy {
    CompactionPolicy { target_file_bytes: 1000, files_min, input_bytes_max, trigger_files: 64, file_rows_max: 100 }
}

#[test]
fn below_the_threshold_nothing_happens() {
    let live = vec![file("a", DataContentType::Data, 10, 1), file("b", DataContentType::Data, 10, 2), file("big", DataContentType::Data, 5000, 3)];
    assert_eq!(plan(&live, &HashMap::new(), &policy(3, u64::MAX)), Plan::default(), "two small files, three needed");
    let p = plan(&live, &HashMap::new(), &policy(2, u64::MAX));
    assert_eq!(p.data, vec!["a", "b"], "large files stay when no delete hits them");
}

#[test]
fn deletes_pull_in_the_files_they_hit_and_go_with_them() {
    let live = vec![
        file("a", DataContentType::Data, 10, 1),
        file("big", DataContentType::Data, 5000, 2),
        file("c", DataContentType::Data, 10, 3),
        file("d1", DataContentType::PositionDeletes, 5, 4),
        file("d2", DataContentType::PositionDeletes, 5, 5),
    ];
    let hits: Hits = HashMap::from([
        ("d1".to_string(), HashMap::from([("big".to_string(), HashSet::from([0]))])),
        ("d2".to_string(), HashMap::from([("c".to_string(), HashSet::from([0])), ("elsewhere".to_string(), HashSet::from([1]))])),
    ]);
    let p = plan(&live, &hits, &policy(2, u64::MAX));
    assert_eq!(p.data, vec!["a", "big", "c"], "oldest first, the large file too because d1 hits it");
    assert_eq!(p.deletes, vec!["d1"], "d2 also hits a file not rewritten");
    // Within a budget, files that do not fit are left, and so is every delete file hitting them.
    let p = plan(&live, &hits, &policy(2, 100));
    assert_eq!(p.data, vec!["a", "c"]);
    assert!(p.deletes.is_empty());
    assert_eq!(plan(&live, &hits, &policy(2, 15)), Plan::default(), "one small file alone is not worth a rewrite");
}

#[test]
fn small_files_merge_by_size_tier_so_a_compacted_file_is_not_rewritten_by_every_pass() {
    // Three fresh files of ~10 bytes (tier 1), two earlier outputs of ~100 (tier 2), one of 800.
    let live = vec![
        file("out-a", DataContentType::Data, 100, 1),
        file("out-b", DataContentType::Data, 120, 2),
        file("out-c", DataContentType::Data, 800, 3),
        file("new-1", DataContentType::Data, 10, 4),
        file("new-2", DataContentType::Data, 12, 5),
        file("new-3", DataContentType::Data, 9, 6),
    ];
    assert_eq!(plan(&live, &HashMap::new(), &policy(3, u64::MAX)).data, vec!["new-1", "new-2", "new-3"], "only the fresh tier holds three");
    let p = plan(&live, &HashMap::new(), &policy(2, u64::MAX));
    assert_eq!(
        p.data,
        vec!["out-a", "out-b", "new-1", "new-2", "new-3"],
        "the highest tier holding two, with every smaller file, not the 800-byte file above it"
    );
    let older = &live[..3];
    assert_eq!(plan(older, &HashMap::new(), &policy(2, u64::MAX)).data, vec!["out-a", "out-b"]);
    assert_eq!(plan(older, &HashMap::new(), &policy(3, u64::MAX)), Plan::default(), "no tier holds three: the file count stays bounded by tiers × files.min");
}

#[test]
fn under_a_steady_stream_of_small_files_the_live_count_stays_bounded() {
    // A commit writes a 1 KiB file; a pass runs every 64 of them and merges as planned into one
    // file of their total size, as `compact` writes it.
    let (files_min, mut live, mut seq, mut most) = (8, Vec::new(), 0i64, 0usize);
    for pass in 0..400 {
        for _ in 0..64 {
            seq += 1;
            live.push(file(&format!("f{seq}"), DataContentType::Data, 1024, seq));
        }
        let p = plan(
            &live,
            &HashMap::new(),
            &CompactionPolicy { target_file_bytes: 1 << 40, files_min, input_bytes_max: u64::MAX, trigger_files: 64, file_rows_max: u64::MAX },
        );
        if p.data.is_empty() {
            continue;
        }
        let merged: u64 = live.iter().filter(|f| p.data.contains(&f.file.file_path().to_string())).map(|f| f.file.file_size_in_bytes()).sum();
        live.retain(|f| !p.data.contains(&f.file.file_path().to_string()));
        seq += 1;
        live.push(file(&format!("out{pass}"), DataContentType::Data, merged, seq));
        most = most.max(live.len());
    }
    // 400 passes made 25,600 files (25 MiB): after each pass no size tier holds more than
    // files_min (the pass's output may complete one), so the count is bounded by the tiers.
    let mut per_tier: HashMap<u32, usize> = HashMap::new();
    for f in &live {
        *per_tier.entry(super::tier(f.file.file_size_in_bytes())).or_default() += 1;
    }
    assert!(per_tier.values().all(|n| *n <= files_min), "{per_tier:?}");
    assert!(most <= 64 + 4 * files_min, "{most} live files at most");
}

#[test]
fn files_as_full_as_a_written_file_gets_are_never_merged_again() {
    // Well-compressed rows: a full output (`file_rows_max` rows) stays far below
    // `target_file_bytes`. A commit writes 5,000 rows; a pass runs every 64 commits and writes
    // its merge as files of at most `file_rows_max` rows, as `Rewriter` does.
    let policy = CompactionPolicy { target_file_bytes: 1 << 40, files_min: 8, input_bytes_max: u64::MAX, trigger_files: 64, file_rows_max: 1_000_000 };
    let sized = |path: String, rows: u64, seq: i64| file_of_rows(&path, DataContentType::Data, rows * 10, rows, seq);
    let (mut live, mut seq, mut produced, mut rewritten) = (Vec::new(), 0i64, 0u64, 0u64);
    for _ in 0..400 {
        for _ in 0..64 {
            seq += 1;
            live.push(sized(format!("f{seq}"), 5_000, seq));
            produced += 5_000;
        }
        let p = plan(&live, &HashMap::new(), &policy);
        let rows: u64 = live.iter().filter(|f| p.data.contains(&f.file.file_path().to_string())).map(|f| f.file.record_count()).sum();
        rewritten += rows;
        live.retain(|f| !p.data.contains(&f.file.file_path().to_string()));
        let mut left = rows;
        while left > 0 {
            let n = left.min(policy.file_rows_max);
            seq += 1;
            live.push(sized(format!("out{seq}"), n, seq));
            left -= n;
        }
    }
    // 128M rows went in; each is rewritten about once per size tier on its way to a full file
    // (a full file rewritten by every pass made this grow with the table: the whole table every pass).
    assert!(rewritten <= 6 * produced, "{rewritten} rows rewritten for {produced} produced");
    let full = live.iter().filter(|f| f.file.record_count() == policy.file_rows_max).count();
    assert!(full >= 100, "the rows end up in full files: {full}");
}
