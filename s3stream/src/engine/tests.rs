//! Engine tests: round trips, recovery from the WAL and from the bucket alone, crashes at each
//! step of an upload, trim, fencing, compaction, and a long run against a failing store.

use super::*;
use crate::object::ObjectBuilder;
use crate::store::{FaultConfig, FaultyStore};
use object_store::memory::InMemory;
use object_store::PutPayload;

pub(super) fn cfg(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        wal_dir: dir.join("wal"),
        wal_capacity_bytes: 4 << 20,
        upload_interval_ms: 3_600_000,
        compaction_interval_ms: 3_600_000,
        object_grace_ms: 0,
        ..Default::default()
    }
}

pub(super) fn payload(stream: u64, i: u64) -> Bytes {
    Bytes::from(format!("stream {stream} batch {i} {}", "x".repeat((i % 7) as usize * 50)))
}

pub(super) async fn read_all(e: &Engine, id: StreamId) -> Vec<Batch> {
    let info = e.stream_info(id).expect("info");
    let mut out = vec![];
    let mut pos = info.start;
    while pos < info.end {
        let got = e.read(id, pos, u64::MAX, 1000).await.expect("read");
        assert!(!got.is_empty(), "no progress at {pos}");
        pos = got.last().expect("non-empty").end_offset();
        out.extend(got);
    }
    out
}

pub(super) async fn fill(e: &Engine, ids: &[StreamId], n: u64) -> Vec<Vec<(u64, Bytes)>> {
    let mut expect = vec![vec![]; ids.len()];
    for i in 0..n {
        for (k, &id) in ids.iter().enumerate() {
            let p = payload(id, i);
            let base = e.append(id, e.epoch(), 3, p.clone()).await.expect("append");
            expect[k].push((base, p));
        }
    }
    expect
}

/// `rounds` of `fill(n)`, each uploaded as its own stream-set object; what each stream holds.
pub(super) async fn fill_uploaded(e: &Engine, ids: &[StreamId], rounds: usize, n: u64) -> Vec<Vec<(u64, Bytes)>> {
    let mut want = vec![vec![]; ids.len()];
    for _ in 0..rounds {
        for (k, v) in fill(e, ids, n).await.into_iter().enumerate() {
            want[k].extend(v);
        }
        e.flush().await.expect("flush");
    }
    want
}

pub(super) fn same(got: &[Batch], want: &[(u64, Bytes)]) {
    let got: Vec<(u64, Bytes)> = got.iter().map(|b| (b.base_offset, b.payload.clone())).collect();
    assert_eq!(got, want);
}

pub(super) async fn open_streams(e: &Engine, n: usize) -> Vec<StreamId> {
    let mut ids = vec![];
    for _ in 0..n {
        let id = e.create_stream().await.expect("create");
        e.open_stream(id, e.epoch()).await.expect("open");
        ids.push(id);
    }
    ids
}

/// A catalog commit (`kv_put`) or a trim does not wait while an upload puts its objects: the
/// manifest is locked only to take the objects' ids and to commit them. Paused time: the data
/// object's put takes a whole (virtual) second, the manifest's puts none.
#[tokio::test(start_paused = true)]
async fn metadata_writes_do_not_wait_for_an_upload_in_flight() {
    let dir = tempfile::tempdir().expect("tmp");
    let slow = FaultConfig { put_latency_ms: 1000, put_latency_under: Some("data/".into()), ..Default::default() };
    let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new()), slow));
    let e = Engine::open(cfg(dir.path()), faulty.clone()).await.expect("open");
    let ids = open_streams(&e, 1).await;
    for i in 0..3u8 {
        e.append(ids[0], e.epoch(), 1, Bytes::from(vec![i; 100])).await.expect("append");
    }
    let upload = tokio::spawn({
        let e = e.clone();
        async move { e.flush().await }
    });
    while faulty.delayed_puts() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t0 = tokio::time::Instant::now();
    e.kv_put(vec![("catalog/t".into(), Some("v1".into()))]).await.expect("kv put");
    e.trim(ids[0], 1).await.expect("trim");
    assert!(t0.elapsed() < Duration::from_millis(1000), "waited for the upload: {:?}", t0.elapsed());
    assert!(!upload.is_finished(), "the upload was still putting its object");
    upload.await.expect("task").expect("upload");
    assert_eq!(e.uploaded_end(ids[0]).expect("stream"), 3, "the upload committed every record");
    let left: Vec<u64> = read_all(&e, ids[0]).await.iter().map(|b| b.base_offset).collect();
    assert_eq!(left, [1, 2], "the trim meanwhile holds");
    assert_eq!(e.kv_scan("catalog/"), [("catalog/t".to_string(), "v1".to_string())]);
}

#[tokio::test]
async fn append_read_across_cache_and_objects() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut c = cfg(dir.path());
    c.log_cache_bytes = 2_000; // force reads of uploaded data to go to objects
    c.object_block_bytes = 700;
    let e = Engine::open(c, store).await.expect("open");
    let ids = open_streams(&e, 3).await;
    let first = fill(&e, &ids, 20).await;
    e.flush().await.expect("flush");
    let second = fill(&e, &ids, 10).await;
    for (k, &id) in ids.iter().enumerate() {
        let mut want = first[k].clone();
        want.extend(second[k].clone());
        same(&read_all(&e, id).await, &want);
        assert_eq!(want[1].0, 3, "offsets advance by the batch count");
        // A read starting inside a batch returns that whole batch.
        let got = e.read(id, 4, 7, u64::MAX).await.expect("read");
        assert_eq!(got[0].base_offset, 3);
    }
    assert!(e.stats().object_reads.load(Relaxed) > 0);
    assert!(matches!(e.read(ids[0], 10_000, 10_001, 10).await, Err(Error::OffsetOutOfRange { .. })));
    e.close().await.expect("close");
}

#[tokio::test]
async fn restart_replays_the_wal_and_a_fresh_node_recovers_from_the_bucket() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let e = Engine::open(cfg(dir.path()), store.clone()).await.expect("open");
    let ids = open_streams(&e, 2).await;
    let a = fill(&e, &ids, 15).await;
    e.flush().await.expect("flush");
    let b = fill(&e, &ids, 5).await;
    e.crash();
    drop(e);
    // Same WAL directory: uploaded data plus the WAL's tail.
    let e = Engine::open(cfg(dir.path()), store.clone()).await.expect("reopen");
    for (k, &id) in ids.iter().enumerate() {
        let mut want = a[k].clone();
        want.extend(b[k].clone());
        same(&read_all(&e, id).await, &want);
    }
    e.close().await.expect("close uploads the tail");
    // A fresh node: empty local directory, same bucket.
    let fresh = tempfile::tempdir().expect("tmp");
    let e = Engine::open(cfg(fresh.path()), store).await.expect("fresh");
    for (k, &id) in ids.iter().enumerate() {
        let mut want = a[k].clone();
        want.extend(b[k].clone());
        same(&read_all(&e, id).await, &want);
    }
}

#[tokio::test]
async fn stamps_land_in_what_is_read_recovered_and_uploaded_and_nowhere_else() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let e = Engine::open(cfg(dir.path()), store.clone()).await.expect("open");
    let ids = open_streams(&e, 1).await;
    let given = Bytes::from(vec![0xAAu8; 40]);
    let mut want = vec![];
    for _ in 0..3 {
        let stamp = |base: u64| vec![Stamp { at: 0, value: base }, Stamp { at: 32, value: base + 1000 }];
        let (base, durable) = e.append_start(ids[0], e.epoch(), 2, given.clone(), stamp).await.expect("append");
        durable.wait().await.expect("durable");
        let mut stored = vec![0xAAu8; 40];
        stored[..8].copy_from_slice(&base.to_be_bytes());
        stored[32..].copy_from_slice(&(base + 1000).to_be_bytes());
        want.push((base, Bytes::from(stored)));
    }
    assert_eq!(given, Bytes::from(vec![0xAAu8; 40]), "the caller's bytes are not written to");
    let outside = e.append_start(ids[0], e.epoch(), 1, Bytes::from_static(b"short"), |_| vec![Stamp { at: 0, value: 1 }]).await;
    assert!(matches!(outside, Err(Error::InvalidArgument(_))), "a stamp past the payload's end is refused");
    same(&read_all(&e, ids[0]).await, &want);
    e.crash();
    drop(e);
    let e = Engine::open(cfg(dir.path()), store.clone()).await.expect("reopen from the WAL");
    same(&read_all(&e, ids[0]).await, &want);
    e.close().await.expect("close uploads");
    let fresh = tempfile::tempdir().expect("tmp");
    let e = Engine::open(cfg(fresh.path()), store).await.expect("from the bucket alone");
    same(&read_all(&e, ids[0]).await, &want);
}

#[tokio::test]
async fn the_object_wal_needs_no_disk() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut c = cfg(dir.path());
    c.wal = WalKind::Object;
    c.wal_batch_interval_ms = 5;
    let e = Engine::open(c.clone(), store.clone()).await.expect("open");
    let ids = open_streams(&e, 2).await;
    let a = fill(&e, &ids, 10).await;
    e.crash();
    drop(e);
    let other = tempfile::tempdir().expect("tmp");
    c.wal_dir = other.path().join("unused");
    let e = Engine::open(c, store).await.expect("reopen");
    for (k, &id) in ids.iter().enumerate() {
        same(&read_all(&e, id).await, &a[k]);
    }
    assert!(!other.path().join("unused").exists(), "the object WAL touches no local disk");
}

/// A request that queued while the previous WAL object was being written has already waited:
/// its group goes out as soon as the writer is free, not a whole linger after that. Time is
/// tokio's, paused and advanced only by the timers themselves: exact, and no real waiting.
#[tokio::test(start_paused = true)]
async fn the_object_wal_linger_counts_from_arrival() {
    let dir = tempfile::tempdir().expect("tmp");
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let slow = FaultConfig { put_latency_ms: 1000, ..Default::default() };
    let e = {
        let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(mem, slow));
        let mut c = cfg(dir.path());
        c.wal = WalKind::Object;
        c.wal_batch_interval_ms = 600;
        Engine::open(c, store).await.expect("open")
    };
    let ids = open_streams(&e, 1).await;
    let t0 = tokio::time::Instant::now();
    let (_, first) = e.append_start(ids[0], e.epoch(), 1, Bytes::from_static(b"aaaa"), |_| vec![]).await.expect("first");
    // The first group lingers 600 ms and is written from 600 to 1600 ms; the second request
    // comes at 700 ms, so its linger is over (at 1300 ms) when the writer is free again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, second) = e.append_start(ids[0], e.epoch(), 1, Bytes::from_static(b"bbbb"), |_| vec![]).await.expect("second");
    second.wait().await.expect("second durable");
    first.wait().await.expect("first durable");
    let took = t0.elapsed();
    // Written from 1600 to 2600 ms; had it lingered again from 1600 ms, 3200 ms.
    assert!(took >= Duration::from_millis(2600), "two puts and a linger take at least 2.6 s, took {took:?}");
    assert!(took < Duration::from_millis(2700), "the second group lingered again after the first put: {took:?}");
    same(&read_all(&e, ids[0]).await, &[(0, Bytes::from_static(b"aaaa")), (1, Bytes::from_static(b"bbbb"))]);
}

#[tokio::test]
async fn a_crash_between_upload_and_commit_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let failing: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(mem.clone(), FaultConfig { fail_puts_under: Some("meta/".into()), ..Default::default() }));
    let e = Engine::open(cfg(dir.path()), mem.clone()).await.expect("open");
    let ids = open_streams(&e, 2).await;
    let a = fill(&e, &ids, 10).await;
    e.close().await.expect("close");
    drop(e);
    // Reopen on a store whose manifest commits fail, append, and "die" in upload after the object put.
    // Claiming the epoch is itself a manifest commit.
    let e = Engine::open(cfg(dir.path()), failing).await.ok();
    assert!(e.is_none(), "opening needs a manifest commit");
    let e = Engine::open(cfg(dir.path()), mem.clone()).await.expect("open");
    for &id in &ids {
        e.open_stream(id, e.epoch()).await.expect("open stream");
    }
    let b = fill(&e, &ids, 5).await;
    // Upload by hand: object put succeeds, then the process dies before the commit.
    let pending = e.inner.state.lock().log_cache.pending();
    let mut builder = ObjectBuilder::new(1 << 20);
    for (s, bs) in &pending {
        for x in bs {
            builder.push(*s, x);
        }
    }
    let id = e.inner.meta.lock().await.current().next_object_id;
    mem.put(&object_path(id), PutPayload::from(builder.finish().0)).await.expect("orphan put");
    e.crash();
    drop(e);
    let e = Engine::open(cfg(dir.path()), mem.clone()).await.expect("recover");
    for (k, &id) in ids.iter().enumerate() {
        let mut want = a[k].clone();
        want.extend(b[k].clone());
        same(&read_all(&e, id).await, &want);
    }
    e.close().await.expect("close");
}

#[tokio::test]
async fn a_crash_between_commit_and_wal_trim_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let e = Engine::open(cfg(dir.path()), store.clone()).await.expect("open");
    let ids = open_streams(&e, 2).await;
    let a = fill(&e, &ids, 10).await;
    let wal = dir.path().join("wal/wal.log");
    let before_trim = std::fs::read(&wal).expect("wal");
    e.flush().await.expect("flush");
    e.crash();
    drop(e);
    std::fs::write(&wal, before_trim).expect("restore the untrimmed WAL");
    let e = Engine::open(cfg(dir.path()), store).await.expect("recover");
    for (k, &id) in ids.iter().enumerate() {
        same(&read_all(&e, id).await, &a[k]);
    }
}

#[tokio::test]
async fn trim_frees_objects_and_refuses_reads_below_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let e = Engine::open(cfg(dir.path()), store.clone()).await.expect("open");
    let ids = open_streams(&e, 1).await;
    let a = fill(&e, &ids, 10).await;
    e.flush().await.expect("flush");
    let b = fill(&e, &ids, 10).await;
    e.flush().await.expect("flush");
    e.trim(ids[0], b[0][0].0).await.expect("trim");
    assert!(matches!(e.read(ids[0], 0, 10, 100).await, Err(Error::OffsetOutOfRange { .. })));
    same(&read_all(&e, ids[0]).await, &b[0]);
    assert_eq!(e.collect_garbage().await.expect("gc"), 1, "the object holding only trimmed data is deleted");
    drop(a);
}

#[tokio::test]
async fn a_later_epoch_fences_the_earlier_owner() {
    let d1 = tempfile::tempdir().expect("tmp");
    let d2 = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = Engine::open(cfg(d1.path()), store.clone()).await.expect("open");
    let ids = open_streams(&old, 1).await;
    fill(&old, &ids, 3).await;
    old.flush().await.expect("flush");
    let new = Engine::open(cfg(d2.path()), store).await.expect("take over");
    assert!(new.epoch() > old.epoch());
    fill(&old, &ids, 1).await;
    let err = old.flush().await.expect_err("the old owner cannot commit");
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    assert!(matches!(old.create_stream().await, Err(Error::Fenced { .. })));
    new.open_stream(ids[0], new.epoch()).await.expect("open");
    assert_eq!(new.stream_info(ids[0]).expect("info").end, 9);
}

/// With the object WAL, the new owner claims the next WAL name: the old owner's next write finds
/// it taken and nothing more is acknowledged, and everything it did acknowledge is recovered —
/// also when its WAL was trimmed empty (the manifest's committed position is the floor).
#[tokio::test]
async fn with_the_object_wal_a_fenced_owner_acknowledges_nothing_more_and_loses_nothing() {
    for trimmed in [false, true] {
        let (d1, d2) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut c = cfg(d1.path());
        c.wal = WalKind::Object;
        c.wal_batch_interval_ms = 1;
        let old = Engine::open(c.clone(), store.clone()).await.expect("open");
        let ids = open_streams(&old, 1).await;
        let mut acked = fill(&old, &ids, 5).await.remove(0);
        if trimmed {
            old.flush().await.expect("flush");
            acked.extend(fill(&old, &ids, 2).await.remove(0));
            old.flush().await.expect("upload and trim everything");
        }
        c.wal_dir = d2.path().join("wal");
        let new = Engine::open(c, store.clone()).await.expect("take over");
        // The new owner writes, uploads and trims its WAL before the old one wakes: the fence stays.
        new.open_stream(ids[0], new.epoch()).await.expect("open");
        acked.extend(fill(&new, &ids, 2).await.remove(0));
        new.flush().await.expect("upload and trim");
        let err = old.append(ids[0], old.epoch(), 3, payload(9, 9)).await.expect_err("fenced");
        assert!(matches!(err, Error::Fenced { .. }), "trimmed={trimmed}: {err}");
        assert!(old.failure().is_some_and(|r| r.contains("fenced")), "the old owner reports itself not ready");
        assert!(matches!(old.append(ids[0], old.epoch(), 3, payload(9, 10)).await, Err(Error::Fenced { .. })), "and stays fenced");
        same(&read_all(&new, ids[0]).await, &acked);
        let more = fill(&new, &ids, 2).await.remove(0);
        acked.extend(more);
        new.flush().await.expect("the new owner writes and uploads on");
        same(&read_all(&new, ids[0]).await, &acked);
    }
}

#[tokio::test]
async fn compaction_merges_objects_and_keeps_every_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut c = cfg(dir.path());
    c.compaction_object_count = 3;
    c.log_cache_bytes = 0;
    let e = Engine::open(c, store.clone()).await.expect("open");
    let ids = open_streams(&e, 3).await;
    let mut want = fill_uploaded(&e, &ids, 4, 5).await;
    e.trim(ids[1], want[1][2].0).await.expect("trim");
    want[1].drain(..2);
    assert!(e.compact().await.expect("compact"));
    let m = e.inner.state.lock().committed.clone();
    assert_eq!(m.objects.values().filter(|o| o.stream_object).count(), 3);
    assert_eq!(m.objects.values().filter(|o| !o.stream_object).count(), 0);
    for (k, &id) in ids.iter().enumerate() {
        same(&read_all(&e, id).await, &want[k]);
    }
    assert_eq!(e.collect_garbage().await.expect("gc"), 4);
    for (k, &id) in ids.iter().enumerate() {
        same(&read_all(&e, id).await, &want[k]);
    }
}

#[tokio::test]
async fn a_failing_store_loses_no_acknowledged_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faulty: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(
        mem.clone(),
        FaultConfig { error_rate: 0.05, latency_ms_max: 3, seed: 7, on_put: true, on_get: true, on_delete: true, on_list: true, ..Default::default() },
    ));
    let store = crate::store::wrap(faulty, Default::default());
    let mut c = cfg(dir.path());
    c.wal = WalKind::Object;
    c.wal_batch_interval_ms = 2;
    c.upload_interval_ms = 50;
    c.log_cache_bytes = 0;
    c.compaction_interval_ms = 200;
    c.compaction_object_count = 4;
    let e = Engine::open(c.clone(), store.clone()).await.expect("open");
    let ids = open_streams(&e, 4).await;
    let mut tasks = vec![];
    for &id in &ids {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = vec![];
            for i in 0..150u64 {
                let p = payload(id, i);
                if let Ok(base) = e.append(id, e.epoch(), 1, p.clone()).await {
                    acked.push((base, p));
                }
                if i % 25 == 0 {
                    let _ = e.read(id, 0, u64::MAX, 4096).await;
                }
            }
            acked
        }));
    }
    let mut acked = vec![];
    for t in tasks {
        acked.push(t.await.expect("task"));
    }
    assert!(acked.iter().all(|a| a.len() == 150), "retries hide a 5% failure rate");
    e.crash();
    drop(e);
    let e = Engine::open(c, store).await.expect("recover");
    for (k, &id) in ids.iter().enumerate() {
        same(&read_all(&e, id).await, &acked[k]);
    }
}

#[tokio::test]
async fn a_stream_with_much_data_gets_an_object_of_its_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut c = cfg(dir.path());
    c.stream_object_bytes = 4_000;
    let e = Engine::open(c, store).await.expect("open");
    let ids = open_streams(&e, 3).await;
    let big = Bytes::from(vec![1u8; 1000]);
    let mut want_big = vec![];
    for _ in 0..6 {
        want_big.push((e.append(ids[0], e.epoch(), 1, big.clone()).await.expect("append"), big.clone()));
    }
    let small = fill(&e, &ids[1..], 3).await;
    e.flush().await.expect("flush");
    let m = e.inner.state.lock().committed.clone();
    let kinds: Vec<bool> = m.objects.values().map(|o| o.stream_object).collect();
    assert_eq!(kinds.iter().filter(|&&k| k).count(), 1, "one stream object");
    assert_eq!(kinds.iter().filter(|&&k| !k).count(), 1, "one stream-set object for the rest");
    same(&read_all(&e, ids[0]).await, &want_big);
    same(&read_all(&e, ids[1]).await, &small[0]);
    same(&read_all(&e, ids[2]).await, &small[1]);
}

#[tokio::test]
async fn compaction_keeps_runs_apart_when_a_stream_object_sits_between() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut c = cfg(dir.path());
    c.stream_object_bytes = 3_000;
    c.compaction_object_count = 2;
    c.log_cache_bytes = 0;
    let e = Engine::open(c, store).await.expect("open");
    let ids = open_streams(&e, 2).await;
    let mut want = vec![];
    // Small, then big (its own stream object), then small again: interleaved ranges.
    for round in 0..3 {
        let size = if round == 1 { 1000 } else { 1 };
        for i in 0..4 {
            let p = Bytes::from(vec![round as u8 + i; size]);
            want.push((e.append(ids[0], e.epoch(), 2, p.clone()).await.expect("append"), p));
        }
        fill(&e, &ids[1..], 1).await;
        e.flush().await.expect("flush");
    }
    assert!(e.compact().await.expect("compact"));
    same(&read_all(&e, ids[0]).await, &want);
    for start in [0u64, 7, 8, 9, 17, 23] {
        let got = e.read(ids[0], start, u64::MAX, 1).await.expect("read");
        assert!(got[0].base_offset <= start && start < got[0].end_offset(), "read at {start} starts at {}", got[0].base_offset);
    }
}

#[tokio::test]
async fn scan_visits_batches_in_order_across_objects_and_cache_and_stops_on_break() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let e = Engine::open(cfg(dir.path()), store).await.expect("open");
    let ids = open_streams(&e, 1).await;
    let mut want = fill(&e, &ids, 10).await.remove(0);
    e.flush().await.expect("flush");
    want.extend(fill(&e, &ids, 10).await.remove(0));
    let mut seen = vec![];
    e.scan(ids[0], 0, u64::MAX, 300, |b| {
        seen.push((b.base_offset, b.payload));
        Ok::<_, Error>(std::ops::ControlFlow::Continue(()))
    })
    .await
    .expect("scan");
    assert_eq!(seen, want);
    let mut n = 0;
    e.scan(ids[0], 0, u64::MAX, 300, |_| {
        n += 1;
        Ok::<_, Error>(if n == 3 { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) })
    })
    .await
    .expect("scan");
    assert_eq!(n, 3, "a break stops the scan");
}

/// The engine's wall clock, moved by hand.
struct ManualClock(std::sync::atomic::AtomicI64);

impl crate::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Objects no longer referenced stay for `object_grace_ms` by the injected clock (readers may
/// still hold them), then go.
#[tokio::test]
async fn garbage_waits_out_the_grace_period_on_the_injected_clock() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(1_000_000)));
    let c = EngineConfig { object_grace_ms: 60_000, compaction_object_count: 3, log_cache_bytes: 0, ..cfg(dir.path()) };
    let e = Engine::open_with_clock(c, store, clock.clone()).await.expect("open");
    let ids = open_streams(&e, 2).await;
    for _ in 0..3 {
        fill(&e, &ids, 5).await;
        e.flush().await.expect("upload");
    }
    assert!(e.compact().await.expect("compact"), "three objects merged");
    assert_eq!(e.collect_garbage().await.expect("gc"), 0, "within the grace period");
    clock.0.fetch_add(59_999, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(e.collect_garbage().await.expect("gc"), 0, "a millisecond before its end");
    clock.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(e.collect_garbage().await.expect("gc"), 3, "the three merged objects, once it is over");
}

/// Every batch from `from` on, reading with a small budget (so gaps fall between reads too).
async fn read_from(e: &Engine, id: StreamId, from: u64) -> Vec<Batch> {
    let end = e.stream_info(id).expect("info").end;
    let mut out: Vec<Batch> = vec![];
    let mut pos = from;
    while pos < end {
        let got = e.read(id, pos, u64::MAX, 200).await.expect("read");
        let Some(last) = got.last() else { break };
        pos = last.end_offset();
        out.extend(got);
    }
    out
}

/// The test's filter: drops batches whose index is a multiple of 3, replaces those ≡ 1 (mod 3).
fn thin(b: &Batch) -> Result<Rewritten> {
    Ok(match (b.base_offset / 3) % 3 {
        0 => Rewritten::Drop,
        1 => Rewritten::Replace(Bytes::from(format!("rewritten {}", b.base_offset))),
        _ => Rewritten::Keep,
    })
}

fn thinned(want: &[(u64, Bytes)], upto: u64) -> Vec<(u64, Bytes)> {
    want.iter()
        .filter_map(|(o, p)| match ((o / 3) % 3, *o < upto) {
            (_, false) | (2, true) => Some((*o, p.clone())),
            (1, true) => Some((*o, Bytes::from(format!("rewritten {o}")))),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn rewrite_keeps_offsets_skips_gaps_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut c = cfg(dir.path());
    c.log_cache_bytes = 0; // reads of uploaded data go to objects
    let e = Engine::open(c.clone(), store.clone()).await.expect("open");
    let ids = open_streams(&e, 2).await;
    let mut want = fill(&e, &ids, 30).await;
    e.flush().await.expect("flush");
    // Only what is uploaded is rewritten: the tail appended now stays as it is.
    let tail = fill(&e, &ids, 4).await;
    want[0].extend(tail[0].clone());
    want[1].extend(tail[1].clone());
    let stats = e.rewrite(ids[0], 1_000, 500, thin).await.expect("rewrite");
    assert_eq!(stats.to, 90, "stops at the uploaded end");
    assert_eq!((stats.batches_read, stats.batches_dropped, stats.batches_replaced), (30, 10, 10));
    let expect = thinned(&want[0], 90);
    same(&read_from(&e, ids[0], 0).await, &expect);
    // A read from a dropped offset starts at the next batch kept; the other stream is untouched.
    assert_eq!(e.read(ids[0], 27, 1_000, 1).await.expect("read")[0].base_offset, 30);
    same(&read_from(&e, ids[1], 0).await, &want[1]);
    assert_eq!(e.collect_garbage().await.expect("gc"), 0, "the shared object still serves the other stream");
    e.close().await.expect("close");
    let fresh = tempfile::tempdir().expect("tmp");
    let e = Engine::open(cfg(fresh.path()), store).await.expect("reopen");
    same(&read_from(&e, ids[0], 0).await, &expect);
    same(&read_from(&e, ids[1], 0).await, &want[1]);
}

#[tokio::test]
async fn rewrite_and_stream_set_compaction_replace_only_their_own_ranges() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut c = cfg(dir.path());
    c.compaction_object_count = 2;
    c.log_cache_bytes = 0;
    let e = Engine::open(c, store.clone()).await.expect("open");
    let ids = open_streams(&e, 2).await;
    let want = fill_uploaded(&e, &ids, 3, 10).await;
    e.rewrite(ids[0], 60, 300, thin).await.expect("rewrite");
    // The stream-set objects still hold stream 0's old batches: compaction must not bring them back.
    assert!(e.compact().await.expect("compact"));
    e.rewrite(ids[0], 90, 300, thin).await.expect("rewrite again");
    e.trim(ids[1], 12).await.expect("trim");
    assert!(e.collect_garbage().await.expect("gc") > 0, "the rewritten objects are freed");
    same(&read_from(&e, ids[0], 0).await, &thinned(&want[0], 90));
    let trimmed: Vec<(u64, Bytes)> = want[1].iter().filter(|(o, _)| *o >= 12).cloned().collect();
    same(&read_from(&e, ids[1], 12).await, &trimmed);
}

#[tokio::test]
async fn a_gap_up_to_the_log_cache_is_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let e = Engine::open(cfg(dir.path()), store).await.expect("open");
    let id = open_streams(&e, 1).await[0];
    fill(&e, &[id], 5).await;
    e.flush().await.expect("flush");
    let cached = fill(&e, &[id], 2).await.remove(0);
    // Everything uploaded is dropped; the cache keeps only what came after.
    e.rewrite(id, 15, 100, |_| Ok::<_, Error>(Rewritten::Drop)).await.expect("rewrite");
    same(&e.read(id, 3, 1_000, 1_000).await.expect("read"), &cached);
}

#[tokio::test]
async fn repeated_rewrites_of_a_growing_stream_reach_its_end_each_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let e = Engine::open(cfg(dir.path()), store).await.expect("open");
    let id = open_streams(&e, 1).await[0];
    for i in 0..6u64 {
        e.append(id, e.epoch(), 1, payload(id, i)).await.expect("append");
        e.flush().await.expect("flush");
        let end = i + 1;
        let stats =
            e.rewrite(id, end, 4 << 20, |b| Ok::<_, Error>(if b.end_offset() < end { Rewritten::Drop } else { Rewritten::Keep })).await.expect("rewrite");
        assert_eq!(stats.to, end, "pass {i}: {stats:?}");
        let got = read_from(&e, id, 0).await;
        assert_eq!(got.iter().map(|b| b.base_offset).collect::<Vec<_>>(), vec![i]);
    }
}

/// `reads` catch-up reads of 8 KiB from the start of a stream of 4 KiB batches in 4 KiB blocks;
/// returns the GET requests each read cost and what was read.
async fn catch_up(read_ahead_bytes: u64, reads: usize) -> (Vec<u64>, Vec<Batch>) {
    let dir = tempfile::tempdir().expect("tmp");
    let metrics = Arc::new(crate::store::StoreMetrics::default());
    let store: Arc<dyn ObjectStore> = Arc::new(crate::store::InstrumentedStore::new(Arc::new(InMemory::new()), metrics.clone()));
    let c = EngineConfig { log_cache_bytes: 0, object_block_bytes: 4096, read_ahead_bytes, ..cfg(dir.path()) };
    let e = Engine::open(c, store).await.expect("open");
    let ids = open_streams(&e, 1).await;
    for i in 0..64u8 {
        e.append(ids[0], e.epoch(), 1, Bytes::from(vec![i; 4000])).await.expect("append");
    }
    e.flush().await.expect("upload");
    let mut gets = vec![];
    let mut read = vec![];
    let mut pos = 0;
    for _ in 0..reads {
        let before = metrics.get.requests.load(Relaxed);
        let got = e.read(ids[0], pos, u64::MAX, 8000).await.expect("read");
        gets.push(metrics.get.requests.load(Relaxed) - before);
        pos = got.last().expect("data").end_offset();
        read.extend(got);
        // Let a read-ahead the read started finish (the store answers at once).
        for _ in 0..1000 {
            if e.inner.read_ahead.lock().streams.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    (gets, read)
}

#[tokio::test]
async fn catch_up_reads_find_the_blocks_read_ahead_in_the_cache() {
    let (without, plain) = catch_up(0, 6).await;
    assert!(without.iter().all(|&g| g >= 1), "without read-ahead every read goes to the store: {without:?}");
    let (with, ahead) = catch_up(64 << 10, 6).await;
    assert_eq!(plain, ahead, "the same batches either way");
    assert_eq!(ahead.len(), 12);
    assert!(ahead.iter().enumerate().all(|(i, b)| b.base_offset == i as u64 && b.payload[0] == i as u8));
    // The first read fetches its blocks and starts a read-ahead of 64 KiB (16 blocks): the next
    // reads are served from the cache until under half of the window ahead is left.
    assert!(with[0] >= 1, "{with:?}");
    assert_eq!(&with[1..], &[0, 0, 0, 0, 0], "reads after the first found their blocks read ahead: {with:?}");
}

/// A catch-up read that needs blocks a read-ahead is fetching waits for that request rather than
/// asking the store for them again.
#[tokio::test(start_paused = true)]
async fn a_read_waits_for_the_blocks_a_read_ahead_is_fetching_instead_of_fetching_them_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let metrics = Arc::new(crate::store::StoreMetrics::default());
    let slow = FaultyStore::new(Arc::new(InMemory::new()), FaultConfig { get_ranges_latency_ms: 100, ..Default::default() });
    let store: Arc<dyn ObjectStore> = Arc::new(crate::store::InstrumentedStore::new(Arc::new(slow), metrics.clone()));
    let c = EngineConfig { log_cache_bytes: 0, object_block_bytes: 4096, read_ahead_bytes: 64 << 10, ..cfg(dir.path()) };
    let e = Engine::open(c, store).await.expect("open");
    let ids = open_streams(&e, 1).await;
    for i in 0..64u8 {
        e.append(ids[0], e.epoch(), 1, Bytes::from(vec![i; 4000])).await.expect("append");
    }
    e.flush().await.expect("upload");
    let gets = || metrics.get.requests.load(Relaxed);
    let first = e.read(ids[0], 0, u64::MAX, 8000).await.expect("read");
    assert_eq!(first.len(), 2);
    // The read-ahead the first read started asks the store for the next 64 KiB.
    for _ in 0..1000 {
        if !e.inner.read_ahead.lock().in_flight.is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    // 64 KiB ahead: the blocks of 2 batches each (4 KiB blocks) after the first read's one.
    assert_eq!(e.inner.read_ahead.lock().in_flight.len(), 9, "the read-ahead's blocks are in flight");
    let before = gets();
    let t = tokio::time::Instant::now();
    let second = e.read(ids[0], 2, u64::MAX, 8000).await.expect("read");
    assert!(t.elapsed() <= Duration::from_millis(100), "the second read ended with the read-ahead's request: {:?}", t.elapsed());
    assert_eq!(second.iter().map(|b| (b.base_offset, b.payload[0])).collect::<Vec<_>>(), vec![(2, 2), (3, 3)]);
    assert_eq!(gets() - before, 1, "one request between them: the read-ahead's, not one of the read's own");
    assert!(e.inner.read_ahead.lock().in_flight.is_empty());
}

#[tokio::test]
async fn small_stream_objects_of_a_stream_are_merged_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let c = EngineConfig { stream_object_bytes: 1, compaction_object_count: 3, log_cache_bytes: 0, ..cfg(dir.path()) };
    let e = Engine::open(c, store).await.expect("open");
    let ids = open_streams(&e, 1).await;
    // Each upload writes the stream's batches as a stream object of its own.
    let want = fill_uploaded(&e, &ids, 5, 4).await;
    let objects = |e: &Engine| e.inner.state.lock().committed.objects.values().map(|o| (o.stream_object, o.size)).collect::<Vec<_>>();
    let before = objects(&e);
    assert_eq!(before.len(), 5);
    assert!(before.iter().all(|(stream_object, _)| *stream_object));
    assert!(e.compact().await.expect("compact"), "five small stream objects in a row");
    let after = objects(&e);
    assert_eq!(after.len(), 1, "{after:?}");
    let read: u64 = before.iter().map(|(_, s)| s).sum();
    assert_eq!(e.stats().compaction_read_bytes.load(Relaxed), read, "each input read once");
    assert_eq!(e.stats().compaction_written_bytes.load(Relaxed), after[0].1);
    same(&read_all(&e, ids[0]).await, &want[0]);
    assert_eq!(e.collect_garbage().await.expect("gc"), 5);
    same(&read_all(&e, ids[0]).await, &want[0]);
    assert!(!e.compact().await.expect("compact"), "one object: nothing left to merge");
}
