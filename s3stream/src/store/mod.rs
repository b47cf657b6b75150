//! Opening the object store named by a URL, wrapped in the retrying and instrumented layers.

pub mod faulty;
pub mod instrumented;
pub mod retry;

use std::sync::Arc;

use object_store::{aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory, ObjectStore};

pub use faulty::{FaultConfig, FaultyStore};
pub use instrumented::{InstrumentedStore, OpStats, StoreMetrics};
pub use retry::{RetryConfig, RetryingStore};

use crate::{Error, Result};

/// Opens `file:///dir`, `memory://` or `s3://bucket?endpoint=…&region=…` (credentials from the
/// usual `AWS_*` variables), unwrapped.
pub fn open_raw(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let parsed = url::Url::parse(url).map_err(|e| Error::InvalidArgument(format!("object store URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "file" => {
            let dir = parsed.to_file_path().map_err(|()| Error::InvalidArgument(format!("not a local path: {url}")))?;
            std::fs::create_dir_all(&dir)?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true)))
        }
        "memory" => Ok(Arc::new(InMemory::new())),
        "s3" => {
            let bucket = parsed.host_str().ok_or_else(|| Error::InvalidArgument(format!("no bucket in {url}")))?;
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (k, v) in parsed.query_pairs() {
                b = match k.as_ref() {
                    "endpoint" => b.with_endpoint(v.as_ref()).with_allow_http(v.starts_with("http://")),
                    "region" => b.with_region(v.as_ref()),
                    "virtual_hosted" => b.with_virtual_hosted_style_request(v == "true"),
                    other => return Err(Error::InvalidArgument(format!("unknown object store option {other:?} in {url}"))),
                };
            }
            Ok(Arc::new(b.build()?))
        }
        other => Err(Error::InvalidArgument(format!("unsupported object store scheme {other:?} (file, s3, memory)"))),
    }
}

/// Opens a store and wraps it: instrumented outside, retrying inside.
pub fn open(url: &str, metrics: Arc<StoreMetrics>) -> Result<Arc<dyn ObjectStore>> {
    Ok(wrap(open_raw(url)?, metrics))
}

/// Wraps any store in the retrying and instrumented layers.
pub fn wrap(inner: Arc<dyn ObjectStore>, metrics: Arc<StoreMetrics>) -> Arc<dyn ObjectStore> {
    let retrying: Arc<dyn ObjectStore> = Arc::new(RetryingStore::new(inner, RetryConfig::default()));
    Arc::new(InstrumentedStore::new(retrying, metrics))
}
