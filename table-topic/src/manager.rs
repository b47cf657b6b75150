//! The Table Topics of a node: a commit loop per enabled topic, started, restarted on a config
//! change and stopped on disable or delete, with each one's status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use floe_catalog::Committer;
use floe_schema::source::SchemaCache;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::config::TableConfig;
use crate::coordinator::Coordinator;
use crate::metrics::TableMetrics;
use crate::source::RecordSource;
use crate::status::Status;

struct Task {
    cfg: TableConfig,
    stop: tokio::sync::watch::Sender<bool>,
    handle: JoinHandle<()>,
    status: Arc<Mutex<Status>>,
}

/// All Table Topics of a node.
pub struct TableTopics {
    source: Arc<dyn RecordSource>,
    committer: Committer,
    schemas: Arc<SchemaCache>,
    tasks: Mutex<HashMap<String, Task>>,
    now_ms: crate::NowMs,
    /// Commit time and lag per table (`/metrics`).
    pub metrics: TableMetrics,
}

impl TableTopics {
    /// Table Topics reading from `source`, committing with `committer`, decoding with `schemas`.
    pub fn new(source: Arc<dyn RecordSource>, committer: Committer, schemas: Arc<SchemaCache>) -> Arc<Self> {
        Self::with_clock(source, committer, schemas, crate::system_now_ms())
    }

    /// [`TableTopics::new`] with the wall clock its loops age snapshots and orphan files by.
    pub fn with_clock(source: Arc<dyn RecordSource>, committer: Committer, schemas: Arc<SchemaCache>, now_ms: crate::NowMs) -> Arc<Self> {
        Arc::new(TableTopics { source, committer, schemas, tasks: Mutex::new(HashMap::new()), now_ms, metrics: TableMetrics::default() })
    }

    /// Brings the running loops in line with the topics and their configs. A topic whose
    /// config is invalid keeps no loop (the broker refuses such configs; this is a second guard).
    pub fn reconcile(&self, topics: &[(String, BTreeMap<String, String>)]) {
        let mut tasks = self.tasks.lock();
        let wanted: HashMap<&str, TableConfig> = topics
            .iter()
            .filter_map(|(name, configs)| match TableConfig::from_topic(configs) {
                Ok(Some(c)) => Some((name.as_str(), c)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "table topic not started");
                    None
                }
            })
            .collect();
        // A stopped loop may be in the middle of a commit: its successor waits for it to end, so
        // that one table never has two writers (the new one builds its key index from the table).
        let mut stopping: HashMap<String, JoinHandle<()>> = HashMap::new();
        let names: Vec<String> = tasks.keys().cloned().collect();
        for name in names {
            let keep = tasks.get(&name).is_some_and(|t| wanted.get(name.as_str()).is_some_and(|c| *c == t.cfg) && !t.handle.is_finished());
            if !keep {
                if let Some(t) = tasks.remove(&name) {
                    let _ = t.stop.send(true);
                    if !wanted.contains_key(name.as_str()) {
                        let table = t.status.lock().table.clone();
                        self.metrics.forget(&name, &table);
                    }
                    tracing::info!(topic = %name, "table topic loop stopped");
                    stopping.insert(name, t.handle);
                }
            }
        }
        for (name, cfg) in wanted {
            if tasks.contains_key(name) {
                continue;
            }
            let table = format!("{}.{}", cfg.namespace, cfg.table(name));
            let histograms = self.metrics.for_table(name, &table);
            let status = Arc::new(Mutex::new(Status { topic: name.to_string(), table, started_ms: crate::status::now_ms(), ..Default::default() }));
            let (stop, rx) = tokio::sync::watch::channel(false);
            let coordinator = Coordinator::new(name, Arc::new(cfg.clone()), self.source.clone(), self.committer.clone(), self.schemas.clone(), status.clone())
                .with_clock(self.now_ms.clone())
                .with_histograms(histograms);
            let previous = stopping.remove(name);
            let handle = tokio::spawn(async move {
                if let Some(p) = previous {
                    let _ = p.await;
                }
                coordinator.run(rx).await
            });
            tracing::info!(topic = %name, table = %format!("{}.{}", cfg.namespace, cfg.table(name)), interval_ms = cfg.commit_interval_ms, "table topic loop started");
            tasks.insert(name.to_string(), Task { cfg, stop, handle, status });
        }
    }

    /// The status of every Table Topic.
    pub fn statuses(&self) -> Vec<Status> {
        let mut out: Vec<Status> = self.tasks.lock().values().map(|t| t.status.lock().clone()).collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }

    /// The next offset the table of `topic` has committed for `partition` (retention must not
    /// trim past it). `None` when the topic is not a Table Topic.
    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        let tasks = self.tasks.lock();
        let offset = tasks.get(topic).map(|t| t.status.lock().offsets.get(&partition).copied().unwrap_or(0));
        offset
    }

    /// Stops every loop and waits for them.
    pub async fn shutdown(&self) {
        let tasks: Vec<Task> = self.tasks.lock().drain().map(|(_, t)| t).collect();
        for t in tasks {
            let _ = t.stop.send(true);
            let _ = t.handle.await;
        }
    }
}
