//! Opening the object store named by a URL, wrapped in the retrying and instrumented layers.

pub mod durable_local;
pub mod faulty;
pub mod instrumented;
pub mod retry;

use std::sync::Arc;

use object_store::{aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory, ObjectStore};

pub use faulty::{FaultConfig, FaultyStore};
pub use instrumented::{InstrumentedStore, OpStats, StoreMetrics};
pub use retry::{RetryConfig, RetryingStore};

use crate::{Error, Result};

/// The URL without AutoMQ's bucket id: `s3.data.buckets` values read `0@s3://bucket?…`.
pub fn without_bucket_id(url: &str) -> &str {
    match url.split_once('@') {
        Some((id, rest)) if !id.is_empty() && id.bytes().all(|c| c.is_ascii_digit()) => rest,
        _ => url,
    }
}

/// Opens `file:///dir`, `memory://` or `s3://bucket?endpoint=…&region=…&pathStyle=…` (AutoMQ's
/// `s3.data.buckets` form, its `0@` bucket id included, is accepted), unwrapped. Credentials come
/// from the usual `AWS_*` variables, or AutoMQ's `KAFKA_S3_ACCESS_KEY` / `KAFKA_S3_SECRET_KEY`.
pub fn open_raw(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let url = without_bucket_id(url);
    let parsed = url::Url::parse(url).map_err(|e| Error::InvalidArgument(format!("object store URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "file" => {
            let dir = parsed.to_file_path().map_err(|()| Error::InvalidArgument(format!("not a local path: {url}")))?;
            std::fs::create_dir_all(&dir)?;
            Ok(Arc::new(durable_local::DurableLocal::new(LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true))))
        }
        "memory" => Ok(Arc::new(InMemory::new())),
        "s3" => {
            let bucket = parsed.host_str().ok_or_else(|| Error::InvalidArgument(format!("no bucket in {url}")))?;
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (aws, automq) in [("AWS_ACCESS_KEY_ID", "KAFKA_S3_ACCESS_KEY"), ("AWS_SECRET_ACCESS_KEY", "KAFKA_S3_SECRET_KEY")] {
                if let (Err(_), Ok(v)) = (std::env::var(aws), std::env::var(automq)) {
                    b = if aws == "AWS_ACCESS_KEY_ID" { b.with_access_key_id(v) } else { b.with_secret_access_key(v) };
                }
            }
            for (k, v) in parsed.query_pairs() {
                b = match k.as_ref() {
                    "endpoint" => b.with_endpoint(v.as_ref()).with_allow_http(v.starts_with("http://")),
                    "region" => b.with_region(v.as_ref()),
                    "virtual_hosted" => b.with_virtual_hosted_style_request(v == "true"),
                    // AutoMQ's spelling: path-style requests (what MinIO needs) unless false.
                    "pathStyle" => b.with_virtual_hosted_style_request(v == "false"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automq_bucket_urls_are_accepted_and_unknown_options_refused() {
        assert_eq!(without_bucket_id("0@s3://b?region=r"), "s3://b?region=r");
        assert_eq!(without_bucket_id("s3://b?endpoint=http://u@h:9000"), "s3://b?endpoint=http://u@h:9000", "an @ later on is not a bucket id");
        assert!(open_raw("0@s3://floe?region=us-east-1&endpoint=http://127.0.0.1:9000&pathStyle=true").is_ok());
        let e = open_raw("s3://floe?pathstyle=true").expect_err("a misspelt option is refused");
        assert!(e.to_string().contains("pathstyle"), "{e}");
    }
}
