//! A layer that counts requests, bytes, errors and latency per operation, for the metrics endpoint.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::metrics::{labelled, Histogram, Labelled};
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::{
    path::Path, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

/// Counters of one operation, and its request time histogram.
#[derive(Debug)]
pub struct OpStats {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub bytes: AtomicU64,
    pub latency_us_sum: AtomicU64,
    seconds: Histogram,
}

impl OpStats {
    fn new(family: &Labelled, op: &str) -> Self {
        let seconds = family.get_or_create_owned(&[("op", op.to_string())]);
        Self { requests: AtomicU64::new(0), errors: AtomicU64::new(0), bytes: AtomicU64::new(0), latency_us_sum: AtomicU64::new(0), seconds }
    }

    fn record<T>(&self, started: Instant, bytes: u64, r: &Result<T>) {
        let took = started.elapsed();
        self.requests.fetch_add(1, Relaxed);
        self.latency_us_sum.fetch_add(took.as_micros() as u64, Relaxed);
        self.seconds.observe(took.as_secs_f64());
        match r {
            Ok(_) => {
                self.bytes.fetch_add(bytes, Relaxed);
            }
            Err(_) => {
                self.errors.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Counters by operation, and request time by operation (`op` label).
#[derive(Debug)]
pub struct StoreMetrics {
    pub put: OpStats,
    pub get: OpStats,
    pub delete: OpStats,
    pub list: OpStats,
    pub copy: OpStats,
    pub request_seconds: Labelled,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        let f = labelled();
        let op = |name| OpStats::new(&f, name);
        Self { put: op("put"), get: op("get"), delete: op("delete"), list: op("list"), copy: op("copy"), request_seconds: f }
    }
}

impl StoreMetrics {
    /// (name, stats) of every operation.
    pub fn ops(&self) -> [(&'static str, &OpStats); 5] {
        [("put", &self.put), ("get", &self.get), ("delete", &self.delete), ("list", &self.list), ("copy", &self.copy)]
    }
}

/// The instrumented layer.
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<StoreMetrics>,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<StoreMetrics>) -> Self {
        Self { inner, metrics }
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let (t, n) = (Instant::now(), payload.content_length() as u64);
        let r = self.inner.put_opts(location, payload, opts).await;
        self.metrics.put.record(t, n, &r);
        r
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let t = Instant::now();
        let r = self.inner.get_opts(location, options).await;
        let n = r.as_ref().map_or(0, |g| g.range.end - g.range.start);
        self.metrics.get.record(t, n, &r);
        r
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let t = Instant::now();
        let r = self.inner.get_ranges(location, ranges).await;
        let n = r.as_ref().map_or(0, |v| v.iter().map(|b| b.len() as u64).sum());
        self.metrics.get.record(t, n, &r);
        r
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.metrics.delete.requests.fetch_add(1, Relaxed);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.metrics.list.requests.fetch_add(1, Relaxed);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let t = Instant::now();
        let r = self.inner.list_with_delimiter(prefix).await;
        self.metrics.list.record(t, 0, &r);
        r
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.copy_opts(from, to, options).await;
        self.metrics.copy.record(t, 0, &r);
        r
    }
}
