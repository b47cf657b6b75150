//! An S3 API served in-process by `s3s-fs` on loopback (signed requests, real HTTP), and a
//! client for it: shared by the `s3s_fs` test and the `engine` benchmark.

use std::sync::Arc;

use floe_s3stream::store;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// Serves the directories under `root` as buckets; returns the endpoint.
pub async fn serve(root: &std::path::Path) -> String {
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

/// The engine's store layers over an S3 client of `bucket` at `endpoint`.
pub fn s3(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
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
