//! Handoff tests: two engines on one bucket pass streams back and forth, each compacting and
//! collecting garbage, and neither loses a batch; a restart keeps what was taken over.

use super::super::tests::{cfg, fill, fill_uploaded, open_streams, read_all, same};
use super::*;
use crate::EngineConfig;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStore;

fn node(dir: &std::path::Path, id: u32, epoch_min: u64) -> EngineConfig {
    EngineConfig { node_prefix: format!("nodes/{id}/"), epoch_min, compaction_object_count: 2, ..cfg(&dir.join(id.to_string())) }
}

/// Moves `id` from `a` to `b`, checking the attachment comes along.
async fn hand(a: &Engine, b: &Engine, id: StreamId, note: &str) -> StreamInfo {
    let end = a.seal_stream(id).await.expect("seal");
    assert!(a.append(id, a.epoch(), 1, Bytes::from_static(b"late")).await.is_err(), "a sealed stream takes no append");
    a.export_stream(id, note.to_string()).await.expect("export");
    assert!(matches!(a.stream_info(id), Err(Error::StreamNotFound(_))));
    let (info, got) = b.import_stream(id).await.expect("import");
    assert_eq!((info.end, got.as_deref()), (end, Some(note)));
    info
}

#[tokio::test]
async fn streams_move_between_engines_and_back_without_losing_a_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = Engine::open(node(dir.path(), 1, 10), store.clone()).await.expect("open a");
    let b = Engine::open(node(dir.path(), 2, 20), store.clone()).await.expect("open b");
    assert_eq!((a.epoch(), b.epoch()), (10, 20));
    let ids = open_streams(&a, 2).await;
    assert!(ids.iter().all(|&i| i >> 40 == 10), "stream ids carry the epoch: {ids:?}");
    // Uploaded rounds, then some only in the WAL: sealing uploads them.
    let mut want = fill_uploaded(&a, &ids, 2, 4).await;
    for (k, v) in fill(&a, &ids, 3).await.into_iter().enumerate() {
        want[k].extend(v);
    }
    hand(&a, &b, ids[0], "state at 1").await;
    same(&read_all(&b, ids[0]).await, &want[0]);
    // Both keep working on what they hold; both compact and collect garbage at once.
    for (k, v) in fill_uploaded(&a, &ids[1..], 3, 2).await.into_iter().enumerate() {
        want[k + 1].extend(v);
    }
    for v in fill_uploaded(&b, &ids[..1], 3, 2).await {
        want[0].extend(v);
    }
    assert!(a.compact().await.expect("compact a"));
    assert!(b.compact().await.expect("compact b"));
    a.collect_garbage().await.expect("gc a");
    b.collect_garbage().await.expect("gc b");
    same(&read_all(&b, ids[0]).await, &want[0]);
    same(&read_all(&a, ids[1]).await, &want[1]);
    // And back: offsets go on where they were.
    hand(&b, &a, ids[0], "state at 2").await;
    for v in fill(&a, &ids[..1], 2).await {
        want[0].extend(v);
    }
    same(&read_all(&a, ids[0]).await, &want[0]);
    b.compact().await.expect("compact b");
    b.collect_garbage().await.expect("gc b");
    same(&read_all(&a, ids[0]).await, &want[0]);
    // A restart of the taker keeps the stream, from its own chain.
    a.close().await.expect("close");
    let a = Engine::open(node(dir.path(), 1, 30), store.clone()).await.expect("reopen a");
    for (k, &id) in ids.iter().enumerate() {
        a.open_stream(id, a.epoch()).await.expect("open");
        same(&read_all(&a, id).await, &want[k]);
    }
}

#[tokio::test]
async fn an_unsealed_stream_is_not_handed_over_and_an_absent_handoff_is_no_stream() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = Engine::open(node(dir.path(), 1, 1), store.clone()).await.expect("open a");
    let b = Engine::open(node(dir.path(), 2, 2), store.clone()).await.expect("open b");
    let ids = open_streams(&a, 1).await;
    fill(&a, &ids, 2).await;
    assert!(matches!(a.export_stream(ids[0], String::new()).await, Err(Error::InvalidArgument(_))));
    assert!(matches!(b.import_stream(ids[0]).await, Err(Error::StreamNotFound(_))));
    // A taker that took over and retries (a lost answer) gets the same stream again.
    hand(&a, &b, ids[0], "n").await;
    let (again, note) = b.import_stream(ids[0]).await.expect("retry");
    assert_eq!((again.end, note), (6, None));
}
