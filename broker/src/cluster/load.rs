//! Load reports: every broker publishes the bytes per second produced to each partition it serves (`/floe-load/<c>/<id>`), which the controller's balancer weighs.
//!
//! They live outside the cluster's `/floe/<c>/` keys on purpose: a report changes every round,
//! and a change under `/floe/<c>/` makes every broker read the placement again.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::error::{BrokerError, Result};
use crate::topics::Topics;

/// What one broker reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub node_id: i32,
    /// When it was measured (the broker's clock).
    pub at_ms: i64,
    /// `topic/index` → bytes per second produced since the previous report.
    pub bytes_in_per_s: BTreeMap<String, f64>,
}

fn prefix(cluster: &str) -> String {
    format!("/floe-load/{cluster}/")
}

/// Bytes produced so far per partition served here, by (topic, index).
type Counts = HashMap<(String, i32), u64>;

/// Turns byte counters into rates between two samples.
#[derive(Default)]
pub struct LoadMeter {
    /// The previous sample: when, and the counters then.
    last: parking_lot::Mutex<Option<(i64, Counts)>>,
}

impl LoadMeter {
    /// Rates of the partitions served here since the previous sample (none the first time).
    pub fn sample(&self, node_id: i32, topics: &Topics, now_ms: i64) -> LoadReport {
        let counts: Counts = topics
            .all()
            .iter()
            .flat_map(|t| t.local_partitions().map(|p| ((p.topic.clone(), p.index), p.bytes_in.load(std::sync::atomic::Ordering::Relaxed))).collect::<Vec<_>>())
            .collect();
        let mut report = LoadReport { node_id, at_ms: now_ms, ..Default::default() };
        let mut last = self.last.lock();
        if let Some((then, before)) = last.as_ref() {
            let secs = ((now_ms - then).max(1)) as f64 / 1000.0;
            for ((topic, index), n) in &counts {
                // A partition that came back starts its counter again: no negative rate.
                let delta = n.saturating_sub(before.get(&(topic.clone(), *index)).copied().unwrap_or(0));
                if delta > 0 {
                    report.bytes_in_per_s.insert(format!("{topic}/{index}"), delta as f64 / secs);
                }
            }
        }
        *last = Some((now_ms, counts));
        report
    }
}

/// Publishes this broker's report.
pub async fn publish(c: &Cluster, report: &LoadReport) -> Result<()> {
    let value = serde_json::to_vec(report).map_err(|e| BrokerError::Internal(e.to_string()))?;
    c.etcd.put(&format!("{}{}", prefix(&c.name), report.node_id), &value).await
}

/// Bytes per second per partition, from every broker's last report (unreadable ones skipped).
pub async fn read(c: &Cluster) -> Result<HashMap<(String, i32), f64>> {
    let mut out = HashMap::new();
    for kv in c.etcd.prefix(&prefix(&c.name)).await? {
        let Ok(report) = serde_json::from_slice::<LoadReport>(&kv.value) else { continue };
        for (key, rate) in report.bytes_in_per_s {
            if let Some((topic, index)) = key.rsplit_once('/').and_then(|(t, i)| Some((t.to_string(), i.parse::<i32>().ok()?))) {
                out.insert((topic, index), rate);
            }
        }
    }
    Ok(out)
}
