//! The engine against an S3 API served in-process by `s3s-fs` on loopback (signed requests, real
//! HTTP): a round trip and a fresh node recovering from the bucket. s3s-fs's conditional puts
//! are not atomic, so races are tested on moto instead (`s3_api.rs`).

use std::sync::Arc;

use bytes::Bytes;
use floe_s3stream::{store, Engine, EngineConfig, WalKind};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

async fn serve(root: &std::path::Path) -> String {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single("floe-ak", "floe-sk"));
        b.build()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    format!("http://{addr}")
}

fn s3(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    let s = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("floe-ak")
        .with_secret_access_key("floe-sk")
        .build()
        .expect("s3 client");
    store::wrap(Arc::new(s), Default::default())
}

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
