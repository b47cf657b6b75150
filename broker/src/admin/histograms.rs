//! The latency histograms of `/metrics`, encoded by `prometheus-client` into the same exposition.

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::registry::Registry;

use crate::broker::Broker;

/// Appends every histogram: request time per API, WAL group write and fsync, upload, object
/// store request time per operation, Table Topic commit time and commit lag.
pub fn render(b: &Broker, out: &mut String) {
    let mut r = Registry::default();
    r.register("floe_request_seconds", "Request time by API, from the request read to its response ready.", b.request_metrics.family());
    let s = b.engine.stats();
    r.register("floe_wal_group_write_seconds", "WAL group writes, to durable (fsync or object put included).", s.wal_write_seconds.histogram());
    r.register("floe_wal_fsync_seconds", "The file WAL's fsync of a group.", s.wal_fsync_seconds.histogram());
    r.register("floe_upload_seconds", "Uploads: objects built and put, manifest committed, WAL trimmed.", s.upload_seconds.histogram());
    r.register(
        "floe_object_store_request_seconds",
        "Object store request time by operation (a GET to its first bytes).",
        b.store_metrics.request_seconds.clone(),
    );
    let t = &b.table_topics.metrics;
    r.register("floe_table_topic_commit_seconds", "Table Topic commit cycles that committed: read, decode, write, commit.", t.commit_seconds.clone());
    r.register("floe_table_topic_commit_lag_seconds", "Per commit, from its oldest record's timestamp to the snapshot landing.", t.commit_lag_seconds.clone());
    r.register(
        "floe_table_topic_maintenance_seconds",
        "Upkeep the commit loop ran between two commits (compaction commit, snapshot expiry, orphan removal).",
        t.maintenance_seconds.clone(),
    );
    if let Err(e) = encode_registry(out, &r) {
        tracing::warn!(error = %e, "histograms could not be encoded");
    }
}
