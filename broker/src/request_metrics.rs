//! Request time per API, as a Prometheus histogram (`floe_request_seconds{api}`): from the whole
//! request read to its response encoded, long-poll waits and durability waits included.

use std::sync::OnceLock;
use std::time::Duration;

use floe_s3stream::metrics::{labelled, Histogram, Labelled};
use kafka_protocol::messages::ApiKey;

/// One histogram per API key, made on the API's first request.
pub struct RequestMetrics {
    family: Labelled,
    by_key: Vec<OnceLock<Histogram>>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        let keys = crate::handlers::VERSIONS.iter().map(|(k, _, _)| *k as usize + 1).max().unwrap_or(0);
        Self { family: labelled(), by_key: (0..keys).map(|_| OnceLock::new()).collect() }
    }
}

impl RequestMetrics {
    /// Counts one request of `api` that took `took`.
    pub fn observe(&self, api: ApiKey, took: Duration) {
        if let Some(slot) = self.by_key.get(api as usize) {
            slot.get_or_init(|| self.family.get_or_create_owned(&[("api", format!("{api:?}"))])).observe(took.as_secs_f64());
        }
    }

    /// The histograms, labelled by API name, for a registry at scrape time.
    pub fn family(&self) -> Labelled {
        self.family.clone()
    }
}
