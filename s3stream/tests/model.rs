//! Property test: random appends, uploads, compactions, trims, crashes and reads against a model.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use floe_s3stream::{Batch, Engine, EngineConfig};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { stream: usize, count: u32, len: usize },
    Flush,
    Compact,
    Trim { stream: usize, fraction: u8 },
    Crash,
    Read { stream: usize, fraction: u8, bytes_max: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 1..4u32, 0..3000usize).prop_map(|(stream, count, len)| Op::Append { stream, count, len }),
        3 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => (0..3usize, 0..100u8).prop_map(|(stream, fraction)| Op::Trim { stream, fraction }),
        1 => Just(Op::Crash),
        2 => (0..3usize, 0..100u8, 1..5000u64).prop_map(|(stream, fraction, bytes_max)| Op::Read { stream, fraction, bytes_max }),
    ]
}

fn config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        wal_dir: dir.join("wal"),
        wal_capacity_bytes: 4 << 20,
        upload_interval_ms: 3_600_000,
        compaction_interval_ms: 3_600_000,
        compaction_object_count: 2,
        stream_object_bytes: 2_500,
        object_block_bytes: 2_000,
        log_cache_bytes: 0,
        block_cache_bytes: 8_000,
        object_grace_ms: 0,
        ..Default::default()
    }
}

async fn open(dir: &std::path::Path, store: Arc<dyn ObjectStore>, ids: &[u64]) -> Engine {
    let e = Engine::open(config(dir), store).await.expect("open");
    for &id in ids {
        e.open_stream(id, e.epoch()).await.expect("open stream");
    }
    e
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut e = Engine::open(config(dir.path()), store.clone()).await.expect("open");
    let mut ids = vec![];
    for _ in 0..3 {
        let id = e.create_stream().await.expect("create");
        e.open_stream(id, e.epoch()).await.expect("open");
        ids.push(id);
    }
    // The model: every acknowledged batch of each stream, and its start offset.
    let mut model: Vec<(u64, BTreeMap<u64, Batch>)> = vec![(0, BTreeMap::new()); 3];
    let mut n = 0u8;
    for op in ops {
        match op {
            Op::Append { stream, count, len } => {
                n = n.wrapping_add(1);
                let payload = Bytes::from(vec![n; len]);
                let base = e.append(ids[stream], e.epoch(), count, payload.clone()).await.expect("append");
                let end = model[stream].1.values().last().map_or(model[stream].0, |b| b.end_offset());
                assert_eq!(base, end, "offsets are dense");
                model[stream].1.insert(base, Batch { base_offset: base, count, payload });
            }
            Op::Flush => e.flush().await.expect("flush"),
            Op::Compact => {
                e.compact().await.expect("compact");
                e.collect_garbage().await.expect("gc");
            }
            Op::Trim { stream, fraction } => {
                let (start, batches) = &mut model[stream];
                let end = batches.values().last().map_or(*start, |b| b.end_offset());
                let to = *start + (end - *start) * u64::from(fraction) / 100;
                e.trim(ids[stream], to).await.expect("trim");
                if to > *start {
                    *start = to;
                    batches.retain(|_, b| b.end_offset() > to);
                }
            }
            Op::Crash => {
                e.crash();
                e = open(dir.path(), store.clone(), &ids).await;
            }
            Op::Read { stream, fraction, bytes_max } => {
                let (start, batches) = &model[stream];
                let end = batches.values().last().map_or(*start, |b| b.end_offset());
                let from = *start + (end - *start) * u64::from(fraction) / 100;
                let got = e.read(ids[stream], from, u64::MAX, bytes_max).await.expect("read");
                let want: Vec<&Batch> = batches.values().filter(|b| b.end_offset() > from).collect();
                if from < end {
                    assert!(!got.is_empty(), "a read below the end returns something");
                }
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!((g.base_offset, g.count, &g.payload), (w.base_offset, w.count, &w.payload));
                }
                assert!(got.len() <= want.len());
            }
        }
    }
    // Everything acknowledged and not trimmed is there, in order, after one last crash.
    e.crash();
    let e = open(dir.path(), store, &ids).await;
    for (k, &id) in ids.iter().enumerate() {
        let (start, batches) = &model[k];
        let info = e.stream_info(id).expect("info");
        let want: Vec<Batch> = batches.values().cloned().collect();
        let mut got: Vec<Batch> = vec![];
        let mut pos = info.start.max(*start);
        while pos < info.end {
            let part = e.read(id, pos, u64::MAX, 3000).await.expect("read");
            pos = part.last().expect("progress").end_offset();
            got.extend(part);
        }
        // A trim is whole-range on recovery only if it was committed; trims here always commit.
        got.retain(|b| b.end_offset() > *start);
        assert_eq!(got, want, "stream {k}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn the_engine_behaves_like_its_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(run(ops));
    }
}
