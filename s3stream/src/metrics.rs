//! Latency histograms (the Prometheus histogram type, from `prometheus-client`) and their bounds.

use std::time::Duration;

use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::histogram::Histogram;

/// Bucket bounds of request and I/O times, in seconds: 100 µs, doubling, up to ~13 s (and +Inf).
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 18)
}

/// A histogram of durations with [`latency_buckets`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// Latency histograms by one label (`op`, `api`): each value's histogram made on first use.
pub type Labelled = Family<[(&'static str, String); 1], Histogram, fn() -> Histogram>;

/// An empty [`Labelled`] family of [`latency_histogram`]s.
pub fn labelled() -> Labelled {
    Family::new_with_constructor(latency_histogram)
}

/// A histogram of durations in seconds that has a default (for counters' structs).
#[derive(Debug, Clone)]
pub struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Self {
        Self(latency_histogram())
    }
}

impl Latency {
    /// Counts one duration.
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }

    /// The histogram, shared (for a registry at scrape time).
    pub fn histogram(&self) -> Histogram {
        self.0.clone()
    }
}
