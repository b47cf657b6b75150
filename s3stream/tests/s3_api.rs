//! The engine on a real S3 API on loopback (moto_server, whose conditional puts are atomic).
//! `scripts/test.sh` starts moto and sets `FLOE_TEST_S3_ENDPOINT`; without it these tests say so and pass.

use std::sync::Arc;

use bytes::Bytes;
use floe_s3stream::{store, Engine, EngineConfig, Error, WalKind};
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

fn endpoint() -> Option<String> {
    let e = std::env::var("FLOE_TEST_S3_ENDPOINT").ok();
    if e.is_none() {
        eprintln!("FLOE_TEST_S3_ENDPOINT is not set: S3 API tests not run (scripts/test.sh sets it)");
    }
    e
}

async fn bucket(endpoint: &str) -> Arc<dyn ObjectStore> {
    let name = format!("fence-{}", std::process::id() as u64 * 1000 + rand_suffix());
    let client = reqwest_put_bucket(endpoint, &name).await;
    assert!(client, "bucket {name} could not be created");
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(&name)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("s3 store");
    store::wrap(Arc::new(s3), Default::default())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64 % 1000)
}

/// Creates a bucket with a plain HTTP PUT (moto accepts unsigned requests).
async fn reqwest_put_bucket(endpoint: &str, name: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = endpoint.trim_start_matches("http://");
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return false };
    let req = format!("PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.starts_with("HTTP/1.1 200")
}

fn cfg(dir: &std::path::Path) -> EngineConfig {
    EngineConfig { wal: WalKind::Object, wal_dir: dir.to_path_buf(), wal_batch_interval_ms: 5, upload_interval_ms: 3_600_000, ..Default::default() }
}

#[tokio::test]
async fn two_engines_race_on_one_bucket_and_the_later_epoch_wins() {
    let Some(ep) = endpoint() else { return };
    let store = bucket(&ep).await;
    let dir = tempfile::tempdir().expect("tmp");
    let old = Engine::open(cfg(dir.path()), store.clone()).await.expect("first owner");
    let id = old.create_stream().await.expect("create");
    old.open_stream(id, old.epoch()).await.expect("open");
    for i in 0..20u32 {
        old.append(id, old.epoch(), 1, Bytes::from(format!("r{i}"))).await.expect("append");
    }
    old.flush().await.expect("upload");
    // Both race to commit: the newcomer claims the bucket while the old owner keeps uploading.
    let (new, raced) = tokio::join!(Engine::open(cfg(dir.path()), store.clone()), async {
        let _ = old.append(id, old.epoch(), 1, Bytes::from_static(b"late")).await;
        old.flush().await
    });
    let new = new.expect("the newcomer opens");
    assert!(new.epoch() > old.epoch());
    // Whatever the interleaving, the old owner can no longer commit metadata.
    let after = old.create_stream().await;
    assert!(matches!(after, Err(Error::Fenced { .. })), "old owner still commits: {after:?} (race result {raced:?})");
    new.open_stream(id, new.epoch()).await.expect("reopen");
    let got = new.read(id, 0, u64::MAX, u64::MAX).await.expect("read");
    assert!(got.len() >= 20, "every batch acknowledged before the take-over is there");
    for (i, b) in got.iter().take(20).enumerate() {
        assert_eq!(b.payload, Bytes::from(format!("r{i}")));
    }
}
