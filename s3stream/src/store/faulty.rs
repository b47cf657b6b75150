//! A fault-injecting layer for tests: errors and latency on chosen operations, from a seeded source.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::{
    path::Path, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};
use parking_lot::Mutex;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Which faults to inject.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Probability that a put, get, delete or list fails (before reaching the store).
    pub error_rate: f64,
    /// Added to every call, uniformly in `[0, latency_ms_max]`.
    pub latency_ms_max: u64,
    /// Added to every put, fixed (a slow store, for timing tests under paused time).
    pub put_latency_ms: u64,
    /// Added to every `get_ranges` (block reads), fixed, for timing tests under paused time.
    pub get_ranges_latency_ms: u64,
    /// When set, `put_latency_ms` applies only to puts under this path prefix.
    pub put_latency_under: Option<String>,
    /// Seed of the random source, so a failing run can be replayed.
    pub seed: u64,
    pub on_put: bool,
    pub on_get: bool,
    pub on_delete: bool,
    pub on_list: bool,
    /// When set, every put under this path prefix fails (to stop a process at a chosen step).
    pub fail_puts_under: Option<String>,
}

/// The fault-injecting layer.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    rng: Mutex<StdRng>,
    /// Puts that began their `put_latency_ms` wait.
    delayed_puts: std::sync::atomic::AtomicU64,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        let rng = Mutex::new(StdRng::seed_from_u64(config.seed));
        Self { inner, config, rng, delayed_puts: Default::default() }
    }

    /// Puts that have begun their `put_latency_ms` wait (a test knows a put is in flight).
    pub fn delayed_puts(&self) -> u64 {
        self.delayed_puts.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn fault(&self, op: &str, enabled: bool) -> Result<()> {
        let (fail, delay) = {
            let mut rng = self.rng.lock();
            let fail = enabled && rng.random_bool(self.config.error_rate.clamp(0.0, 1.0));
            let delay = if self.config.latency_ms_max > 0 { rng.random_range(0..=self.config.latency_ms_max) } else { 0 };
            (fail, delay)
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if fail {
            return Err(object_store::Error::Generic { store: "faulty", source: format!("injected fault on {op}").into() });
        }
        Ok(())
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if self.config.fail_puts_under.as_deref().is_some_and(|p| location.as_ref().starts_with(p)) {
            return Err(object_store::Error::Generic { store: "faulty", source: format!("injected failure on put {location}").into() });
        }
        self.fault("put", self.config.on_put).await?;
        let slowed = self.config.put_latency_under.as_deref().is_none_or(|p| location.as_ref().starts_with(p));
        if self.config.put_latency_ms > 0 && slowed {
            self.delayed_puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(self.config.put_latency_ms)).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.fault("put", self.config.on_put).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.fault("get", self.config.on_get).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.fault("get", self.config.on_get).await?;
        if self.config.get_ranges_latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.get_ranges_latency_ms)).await;
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let fail = self.config.on_delete && self.rng.lock().random_bool(self.config.error_rate.clamp(0.0, 1.0));
        if fail {
            return locations.map(|_| Err(object_store::Error::Generic { store: "faulty", source: "injected fault on delete".into() })).boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let fail = self.config.on_list && self.rng.lock().random_bool(self.config.error_rate.clamp(0.0, 1.0));
        if fail {
            return futures::stream::once(async { Err(object_store::Error::Generic { store: "faulty", source: "injected fault on list".into() }) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.fault("list", self.config.on_list).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.fault("copy", self.config.on_put).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
