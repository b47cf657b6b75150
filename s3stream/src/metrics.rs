//! Latency histograms (the Prometheus histogram type, from `prometheus-client`) and their bounds.

use std::time::Duration;

use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::histogram::Histogram;

/// Bucket bounds of request and I/O times, in seconds: 1, 2.5 and 5 of each decade from 100 µs to
/// 10 s (and +Inf), as Prometheus' defaults, so that the round figures an objective is stated in
/// (a 5 ms p99, a 1 s timeout) are bounds and a p99 can be read against them.
const LATENCY_BOUNDS_SECONDS: [f64; 16] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// [`LATENCY_BOUNDS_SECONDS`], for a histogram's constructor.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    LATENCY_BOUNDS_SECONDS.into_iter()
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

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    /// The cumulative count of `name`'s bucket `le` in the text exposition.
    fn bucket(text: &str, name: &str, le: &str) -> u64 {
        let line = format!("{name}_bucket{{le=\"{le}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(line.as_str())).unwrap_or_else(|| panic!("no {le} bucket in {text}")).parse().expect("a count")
    }

    #[test]
    fn a_p99_can_be_read_against_5_ms() {
        let latency = Latency::default();
        for ms in [1, 3, 4, 6] {
            latency.observe(Duration::from_millis(ms));
        }
        let mut registry = Registry::default();
        registry.register("produce_seconds", "test", latency.histogram());
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        assert_eq!(bucket(&text, "produce_seconds", "0.005"), 3, "1, 3 and 4 ms are within 5 ms: {text}");
        assert_eq!(bucket(&text, "produce_seconds", "0.01"), 4, "{text}");
        assert_eq!(bucket(&text, "produce_seconds", "+Inf"), 4, "{text}");
    }
}
