//! A layer that retries transient failures of idempotent calls with exponential back-off.
//!
//! Conditional puts (`PutMode::Create`/`Update`) are retried too: a caller that sees
//! `AlreadyExists` after a retry must check whether the object is its own (the manifest and the
//! object WAL do).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::{
    path::Path, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub attempts_max: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { attempts_max: 8, backoff_initial_ms: 20, backoff_max_ms: 2_000 }
    }
}

/// The retrying layer.
#[derive(Debug)]
pub struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
    config: RetryConfig,
}

impl RetryingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, config: RetryConfig) -> Self {
        Self { inner, config }
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut delay = self.config.backoff_initial_ms;
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if attempt < self.config.attempts_max && transient(&e) => {
                    tracing::debug!(op = what, attempt, error = %e, "object store call failed, retrying");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    delay = (delay * 2).min(self.config.backoff_max_ms);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. })
}

impl fmt::Display for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Retrying({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.retry("put", || self.inner.put_opts(location, payload.clone(), opts.clone())).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.retry("get", || self.inner.get_opts(location, options.clone())).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.retry("get_ranges", || self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    /// Lists with retries. The listing is gathered whole before it is yielded, so a failure part
    /// way is retried from the start; Floe lists only small prefixes (`meta/`, `wal/`).
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let config = self.config.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            let this = RetryingStore { inner, config };
            this.retry("list", || this.inner.list(prefix.as_ref()).try_collect::<Vec<_>>()).await
        })
        .map_ok(|v| futures::stream::iter(v.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.retry("list", || self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.retry("copy", || self.inner.copy_opts(from, to, options.clone())).await
    }
}
