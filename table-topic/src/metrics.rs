//! Commit time, commit lag and the loop's upkeep time of each table, as Prometheus histograms labelled by topic and table.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Histograms labelled `topic` and `table`.
pub type ByTable = Family<[(&'static str, String); 2], Histogram, fn() -> Histogram>;

/// Bounds, in seconds: fine around the sub-second freshness a short `commit.interval.ms` gives,
/// coarse up to the minutes a paused or lagging table shows (and +Inf).
const BOUNDS_SECONDS: [f64; 22] = [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

fn histogram() -> Histogram {
    Histogram::new(BOUNDS_SECONDS)
}

/// The node's Table Topic histograms.
pub struct TableMetrics {
    /// A commit cycle that committed: read, decode, write, commit.
    pub commit_seconds: ByTable,
    /// Per commit, from the timestamp of the oldest record it holds to the snapshot landing:
    /// the worst delay a record of that commit saw from produce to visible in the table
    /// (record timestamps, as Kafka Streams' end-to-end latency; a future one counts as 0).
    pub commit_lag_seconds: ByTable,
    /// Upkeep run by the commit loop between its commits (a compaction's commit, snapshot
    /// expiry, orphan removal): time the next commit waited for.
    pub maintenance_seconds: ByTable,
}

impl Default for TableMetrics {
    fn default() -> Self {
        Self {
            commit_seconds: Family::new_with_constructor(histogram),
            commit_lag_seconds: Family::new_with_constructor(histogram),
            maintenance_seconds: Family::new_with_constructor(histogram),
        }
    }
}

/// One table's histograms.
#[derive(Debug, Clone)]
pub struct TableHistograms {
    pub commit_seconds: Histogram,
    pub commit_lag_seconds: Histogram,
    pub maintenance_seconds: Histogram,
}

impl Default for TableHistograms {
    fn default() -> Self {
        Self { commit_seconds: histogram(), commit_lag_seconds: histogram(), maintenance_seconds: histogram() }
    }
}

impl TableMetrics {
    /// The histograms of `table`, fed from `topic`.
    pub fn for_table(&self, topic: &str, table: &str) -> TableHistograms {
        let labels = labels(topic, table);
        TableHistograms {
            commit_seconds: self.commit_seconds.get_or_create_owned(&labels),
            commit_lag_seconds: self.commit_lag_seconds.get_or_create_owned(&labels),
            maintenance_seconds: self.maintenance_seconds.get_or_create_owned(&labels),
        }
    }

    /// Drops a table's histograms (its topic stopped being a Table Topic).
    pub fn forget(&self, topic: &str, table: &str) {
        let labels = labels(topic, table);
        self.commit_seconds.remove(&labels);
        self.commit_lag_seconds.remove(&labels);
        self.maintenance_seconds.remove(&labels);
    }
}

fn labels(topic: &str, table: &str) -> [(&'static str, String); 2] {
    [("topic", topic.to_string()), ("table", table.to_string())]
}
