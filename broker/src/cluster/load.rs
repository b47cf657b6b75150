//! Load reports: every broker publishes the bytes per second produced and fetched and the requests per second of each partition it serves (`/floe-load/<c>/<id>`), which the controller's balancer weighs.
//!
//! They live outside the cluster's `/floe/<c>/` keys on purpose: a report changes every round,
//! and a change under `/floe/<c>/` makes every broker read the placement again.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::error::{BrokerError, Result};
use crate::topics::Topics;

/// What one broker reports: rates since its previous report, by `topic/index`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub node_id: i32,
    /// When it was measured (the broker's clock).
    pub at_ms: i64,
    /// Bytes per second produced.
    pub bytes_in_per_s: BTreeMap<String, f64>,
    /// Bytes per second fetched.
    #[serde(default)]
    pub bytes_out_per_s: BTreeMap<String, f64>,
    /// Produce and fetch reads per second.
    #[serde(default)]
    pub requests_per_s: BTreeMap<String, f64>,
}

/// One partition's rates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub bytes_in_per_s: f64,
    pub bytes_out_per_s: f64,
    pub requests_per_s: f64,
}

fn prefix(cluster: &str) -> String {
    format!("/floe-load/{cluster}/")
}

/// (bytes in, bytes out, requests) so far per partition served here, by (topic, index).
type Counts = HashMap<(String, i32), [u64; 3]>;

/// Turns traffic counters into rates between two samples.
#[derive(Default)]
pub struct LoadMeter {
    /// The previous sample: when, and the counters then.
    last: parking_lot::Mutex<Option<(i64, Counts)>>,
}

impl LoadMeter {
    /// Rates of the partitions served here since the previous sample (none the first time).
    pub fn sample(&self, node_id: i32, topics: &Topics, now_ms: i64) -> LoadReport {
        let counts: Counts =
            topics.all().iter().flat_map(|t| t.local_partitions().map(|p| ((p.topic.clone(), p.index), p.traffic.totals())).collect::<Vec<_>>()).collect();
        let mut report = LoadReport { node_id, at_ms: now_ms, ..Default::default() };
        let mut last = self.last.lock();
        if let Some((then, before)) = last.as_ref() {
            let secs = ((now_ms - then).max(1)) as f64 / 1000.0;
            for ((topic, index), now) in &counts {
                let before = before.get(&(topic.clone(), *index)).copied().unwrap_or_default();
                let key = format!("{topic}/{index}");
                let maps = [&mut report.bytes_in_per_s, &mut report.bytes_out_per_s, &mut report.requests_per_s];
                for (i, map) in maps.into_iter().enumerate() {
                    // A partition that came back starts its counters again: no negative rate.
                    let delta = now[i].saturating_sub(before[i]);
                    if delta > 0 {
                        map.insert(key.clone(), delta as f64 / secs);
                    }
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

/// Each partition's rates, from every broker's last report (unreadable ones skipped).
pub async fn read(c: &Cluster) -> Result<HashMap<(String, i32), Rates>> {
    let mut out: HashMap<(String, i32), Rates> = HashMap::new();
    for kv in c.etcd.prefix(&prefix(&c.name)).await? {
        let Ok(report) = serde_json::from_slice::<LoadReport>(&kv.value) else { continue };
        let maps = [report.bytes_in_per_s, report.bytes_out_per_s, report.requests_per_s];
        for (i, map) in maps.into_iter().enumerate() {
            for (key, rate) in map {
                let Some((topic, index)) = key.rsplit_once('/').and_then(|(t, i)| Some((t.to_string(), i.parse::<i32>().ok()?))) else { continue };
                let r = out.entry((topic, index)).or_default();
                match i {
                    0 => r.bytes_in_per_s = rate,
                    1 => r.bytes_out_per_s = rate,
                    _ => r.requests_per_s = rate,
                }
            }
        }
    }
    Ok(out)
}
