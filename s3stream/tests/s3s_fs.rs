//! The engine against an S3 API served in-process by `s3s-fs` on loopback (signed requests, real
//! HTTP): a round trip and a fresh node recovering from the bucket. s3s-fs's conditional puts
//! are not atomic, so races are tested on moto instead (`s3_api.rs`).

use bytes::Bytes;
use floe_s3stream::{Engine, EngineConfig, WalKind};

#[path = "support/s3s_loopback.rs"]
mod s3s_loopback;
use s3s_loopback::{s3, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_and_fresh_node_recovery_over_s3s_fs() {
    let root = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(root.path().join("floe")).expect("bucket directory");
    let endpoint = serve(root.path()).await;
    for wal in [WalKind::File, WalKind::Object] {
        let prefix_dir = tempfile::tempdir().expect("tmp");
        let cfg = |dir: &std::path::Path| EngineConfig {
            wal,
            wal_dir: dir.join("wal"),
            wal_capacity_bytes: 8 << 20,
            wal_batch_interval_ms: 5,
            upload_interval_ms: 3_600_000,
            log_cache_bytes: 0,
            ..Default::default()
        };
        let bucket_store = s3(&endpoint, "floe");
        let e = Engine::open(cfg(prefix_dir.path()), bucket_store.clone()).await.expect("open");
        let id = e.create_stream().await.expect("create");
        e.open_stream(id, e.epoch()).await.expect("open stream");
        let mut want = vec![];
        for i in 0..200u32 {
            let p = Bytes::from(format!("{wal:?} record {i} {}", "z".repeat((i % 13) as usize * 40)));
            want.push((e.append(id, e.epoch(), 2, p.clone()).await.expect("append"), p));
        }
        e.flush().await.expect("upload");
        let got = e.read(id, 0, u64::MAX, u64::MAX).await.expect("read");
        assert_eq!(got.iter().map(|b| (b.base_offset, b.payload.clone())).collect::<Vec<_>>(), want);
        e.close().await.expect("close");
        // A fresh node with an empty local directory recovers the stream from the bucket.
        let fresh = tempfile::tempdir().expect("tmp");
        let e = Engine::open(cfg(fresh.path()), bucket_store).await.expect("fresh node");
        e.open_stream(id, e.epoch()).await.expect("open stream");
        let got = e.read(id, 0, u64::MAX, u64::MAX).await.expect("read");
        assert_eq!(got.iter().map(|b| (b.base_offset, b.payload.clone())).collect::<Vec<_>>(), want, "{wal:?}");
        e.close().await.expect("close");
    }
}
