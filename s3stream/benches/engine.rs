//! Storage engine benchmark: prints figures, with the disk's own fsync'd write rate as the baseline.
//!
//! `cargo bench -p floe-s3stream --bench engine` (set `FLOE_BENCH_SECONDS` for longer runs,
//! `FLOE_BENCH_SECTIONS` to a comma-separated subset of `wal,catch-up,compaction,object-wal`).
//! - raw: sequential writes of 1 MiB + fdatasync on the same disk (the ceiling for the file WAL);
//! - file WAL appends at several record sizes and client counts: MB/s, p50/p99 latency, % of raw;
//! - catch-up reads of uploaded data, cold caches, from the local filesystem (object_store's
//!   store and the broker's `file://` store) and from S3 on loopback (s3s-fs), without
//!   read-ahead (the baseline) and with 8 and 32 MiB of it;
//! - compaction of stream-set and small stream objects: objects before and after, its pace
//!   against `compaction_bytes_per_second`, read and write amplification;
//! - object WAL append latency against `wal_batch_interval_ms`.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_s3stream::{Engine, EngineConfig, WalKind};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

#[path = "../tests/support/s3s_loopback.rs"]
mod s3s_loopback;

fn seconds() -> f64 {
    std::env::var("FLOE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

/// Whether the run includes `section` (all sections unless `FLOE_BENCH_SECTIONS` names some).
fn section(name: &str) -> bool {
    std::env::var("FLOE_BENCH_SECTIONS").map_or(true, |s| s.split(',').any(|n| n.trim() == name))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn raw_fsync_rate(dir: &std::path::Path) -> f64 {
    let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(dir.join("raw")).expect("raw file");
    let chunk = vec![7u8; 1 << 20];
    let total: u64 = 256 << 20;
    f.set_len(total).expect("len");
    let t = Instant::now();
    let mut pos = 0;
    while pos < total {
        f.write_all_at(&chunk, pos).expect("write");
        f.sync_data().expect("sync");
        pos += chunk.len() as u64;
    }
    total as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn config(dir: &std::path::Path, wal: WalKind) -> EngineConfig {
    EngineConfig {
        wal,
        wal_dir: dir.join("wal"),
        wal_capacity_bytes: 1 << 30,
        upload_bytes: 64 << 20,
        upload_interval_ms: 1_000,
        compaction_interval_ms: 3_600_000,
        ..Default::default()
    }
}

async fn appends(engine: &Engine, clients: usize, size: usize, secs: f64) -> (f64, Vec<Duration>) {
    let mut streams = vec![];
    for _ in 0..clients {
        let id = engine.create_stream().await.expect("stream");
        engine.open_stream(id, engine.epoch()).await.expect("open");
        streams.push(id);
    }
    let payload = Bytes::from(vec![42u8; size]);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = vec![];
    for id in streams {
        let (e, p) = (engine.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            while Instant::now() < deadline {
                let t = Instant::now();
                e.append(id, e.epoch(), 1, p.clone()).await.expect("append");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let mb = (all.len() * size) as f64 / started.elapsed().as_secs_f64() / 1e6;
    all.sort();
    (mb, all)
}

/// Uploads `batches` of 64 KiB into one stream, then reads them back from a freshly opened
/// engine once per read-ahead setting; prints MB/s against `baseline` (no read-ahead on this
/// store when none is given) and returns the rate without read-ahead.
async fn catch_up_rates(name: &str, dir: &std::path::Path, store: Arc<dyn ObjectStore>, batches: u64, baseline: Option<f64>) -> f64 {
    let mut c = config(dir, WalKind::File);
    c.log_cache_bytes = 0;
    let e = Engine::open(c.clone(), store.clone()).await.expect("engine");
    let id = e.create_stream().await.expect("stream");
    e.open_stream(id, e.epoch()).await.expect("open");
    let payload = Bytes::from(vec![9u8; 64 << 10]);
    for _ in 0..batches {
        e.append(id, e.epoch(), 1, payload.clone()).await.expect("append");
    }
    e.close().await.expect("close");
    let mut none = None;
    for read_ahead in [0u64, 8 << 20, 32 << 20] {
        let e = Engine::open(EngineConfig { read_ahead_bytes: read_ahead, ..c.clone() }, store.clone()).await.expect("reopen");
        e.open_stream(id, e.epoch()).await.expect("open");
        let t = Instant::now();
        let (mut pos, mut bytes) = (0, 0usize);
        while pos < batches {
            let got = e.read(id, pos, u64::MAX, 1 << 20).await.expect("read");
            pos = got.last().expect("data").end_offset();
            bytes += got.iter().map(|b| b.payload.len()).sum::<usize>();
        }
        let rate = bytes as f64 / t.elapsed().as_secs_f64() / 1e6;
        let none = *none.get_or_insert(rate);
        println!("{name:>34} {:>10}Mi {rate:>10.1} {:>10.2}", read_ahead >> 20, rate / baseline.unwrap_or(none));
        e.close().await.expect("close");
    }
    none.unwrap_or_default()
}

/// 512 MiB appended over 8 streams, two of them hot (their uploads are stream objects, the cold
/// ones' stream-set objects), then compaction passes until none is due: bytes it read and wrote
/// against what was uploaded, objects before and after, and its pace against its byte-rate limit.
async fn compaction_amplification(dir: &std::path::Path) {
    let d = tempfile::tempdir_in(dir).expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(d.path()).expect("fs"));
    let mut c = config(d.path(), WalKind::File);
    (c.upload_bytes, c.stream_object_bytes, c.compaction_interval_ms) = (16 << 20, 4 << 20, 3_600_000);
    let e = Engine::open(c.clone(), store).await.expect("engine");
    let mut ids = vec![];
    for _ in 0..8 {
        let id = e.create_stream().await.expect("stream");
        e.open_stream(id, e.epoch()).await.expect("open");
        ids.push(id);
    }
    let payload = Bytes::from(vec![5u8; 64 << 10]);
    let mut appended = 0u64;
    for i in 0..8192usize {
        // Streams 0 and 1 take 6 batches in 16, the other six one each.
        let id = ids[if i % 16 < 6 {
            0
        } else if i % 16 < 12 {
            1
        } else {
            2 + i % 16 - 12 + (i / 16 % 2) * 2
        }];
        e.append(id, e.epoch(), 1, payload.clone()).await.expect("append");
        appended += payload.len() as u64;
    }
    e.flush().await.expect("upload");
    let (before_set, before_stream) = e.object_counts();
    let s = e.stats();
    let uploaded = s.upload_bytes.load(std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    let mut passes = 0;
    while e.compact().await.expect("compact") {
        passes += 1;
    }
    let took = t.elapsed().as_secs_f64();
    let (after_set, after_stream) = e.object_counts();
    let read = s.compaction_read_bytes.load(std::sync::atomic::Ordering::Relaxed);
    let written = s.compaction_written_bytes.load(std::sync::atomic::Ordering::Relaxed);
    println!("\ncompaction of {} MiB appended over 8 streams (2 hot), local store:", appended >> 20);
    println!(
        "  objects: {before_set} stream-set + {before_stream} stream before, {after_set} + {after_stream} after {passes} passes in {took:.1}s ({:.0} MiB/s read+written, limit {} MiB/s)",
        (read + written) as f64 / took / (1 << 20) as f64,
        c.compaction_bytes_per_second >> 20
    );
    println!(
        "  read amplification {:.2} (compaction read / uploaded), write amplification {:.2} ((uploaded + compaction written) / appended)",
        read as f64 / uploaded as f64,
        (uploaded + written) as f64 / appended as f64
    );
    e.close().await.expect("close");
}

#[tokio::main]
async fn main() {
    let secs = seconds();
    let dir = tempfile::tempdir_in(std::env::var("FLOE_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tmp");
    if section("wal") {
        wal_appends(dir.path(), secs).await;
    }
    if section("catch-up") {
        catch_up(dir.path()).await;
    }
    if section("compaction") {
        compaction_amplification(dir.path()).await;
    }
    if section("object-wal") {
        object_wal_latency(dir.path(), secs).await;
    }
}

/// File WAL appends at several record sizes and client counts against raw fdatasync'd writes.
async fn wal_appends(dir: &std::path::Path, secs: f64) {
    let raw = raw_fsync_rate(dir);
    println!("raw sequential write + fdatasync (1 MiB chunks): {raw:.1} MB/s");
    println!("\nfile WAL appends ({secs}s each):");
    println!("{:>8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>8}", "record", "clients", "MB/s", "appends/s", "p50 ms", "p99 ms", "% raw");
    for &size in &[1usize << 10, 16 << 10, 128 << 10] {
        for &clients in &[1usize, 8, 64] {
            let d = tempfile::tempdir_in(dir).expect("tmp");
            let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(d.path()).expect("fs"));
            let e = Engine::open(config(d.path(), WalKind::File), store).await.expect("engine");
            let (mb, lat) = appends(&e, clients, size, secs).await;
            println!(
                "{:>7}K {:>8} {:>10.1} {:>10.0} {:>9.2} {:>9.2} {:>7.0}%",
                size >> 10,
                clients,
                mb,
                lat.len() as f64 / secs,
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                mb / raw * 100.0
            );
            e.close().await.expect("close");
        }
    }
}

/// Catch-up reads of uploaded data with cold caches, 1 MiB per read (a consumer's
/// max.partition.fetch.bytes), without read-ahead (the baseline) and with it: from object_store's
/// `LocalFileSystem`, from the local store the broker opens (`file://`, which reads ranges
/// without zero-filling), both against the first's rate without read-ahead, and from S3.
async fn catch_up(dir: &std::path::Path) {
    println!("\ncatch-up reads, 1 MiB each, cold caches:");
    println!("{:>34} {:>12} {:>10} {:>10}", "store", "read-ahead", "MB/s", "x base");
    let d = tempfile::tempdir_in(dir).expect("tmp");
    let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(d.path()).expect("fs"));
    let base = catch_up_rates("local (object_store LocalFileSystem)", d.path(), local, 4096, None).await;
    let d = tempfile::tempdir_in(dir).expect("tmp");
    let floe = floe_s3stream::store::open_raw(&format!("file://{}", d.path().join("objects").display())).expect("file store");
    catch_up_rates("local (Floe's file:// store)", d.path(), floe, 4096, Some(base)).await;
    let root = tempfile::tempdir_in(dir).expect("tmp");
    std::fs::create_dir(root.path().join("bench")).expect("bucket directory");
    let endpoint = s3s_loopback::serve(root.path()).await;
    let d = tempfile::tempdir_in(dir).expect("tmp");
    catch_up_rates("S3 on loopback (s3s-fs)", d.path(), s3s_loopback::s3(&endpoint, "bench"), 2048, None).await;
}

/// Object WAL append latency at several batch intervals.
async fn object_wal_latency(dir: &std::path::Path, secs: f64) {
    println!("\nobject WAL (local object store) append latency, 8 clients, 4 KiB records:");
    println!("{:>12} {:>9} {:>9}", "interval ms", "p50 ms", "p99 ms");
    for &interval in &[10u64, 50, 250] {
        let d = tempfile::tempdir_in(dir).expect("tmp");
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(d.path()).expect("fs"));
        let mut c = config(d.path(), WalKind::Object);
        c.wal_batch_interval_ms = interval;
        let e = Engine::open(c, store).await.expect("engine");
        let (_, lat) = appends(&e, 8, 4 << 10, secs.max(1.0)).await;
        println!("{:>12} {:>9.2} {:>9.2}", interval, pct(&lat, 0.5), pct(&lat, 0.99));
        e.close().await.expect("close");
    }
}
