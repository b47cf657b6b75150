//! The admin listener: `/health/live`, `/health/ready`, `/metrics` (Prometheus text format) and
//! `/v1/table-topics[/{topic}]` (each Table Topic's status as JSON).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::broker::Broker;

mod histograms;

/// The admin router.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/table-topics", get(table_topics))
        .route("/v1/table-topics/{topic}", get(table_topic))
        .with_state(broker)
}

/// Serves the admin API until `shutdown` resolves.
/// (`listener` is plain TCP, or TLS.)
pub async fn serve<L>(broker: Arc<Broker>, listener: L, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(broker)).with_graceful_shutdown(shutdown).await
}

async fn ready(State(b): State<Arc<Broker>>) -> Response {
    if let Some(m) = b.membership.get().filter(|m| !m.registered()) {
        let why = format!("not registered in the cluster (node {}, last epoch {})", b.settings.node_id, m.epoch());
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    match b.engine.failure() {
        None => (StatusCode::OK, "ready").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metrics in Prometheus text format.
pub fn render(b: &Broker) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let s = b.engine.stats();
    let c = |x: &std::sync::atomic::AtomicU64| vec![(String::new(), x.load(Relaxed) as f64)];
    metric("floe_appends_total", "counter", "Batches appended to streams.", c(&s.appends));
    metric("floe_append_bytes_total", "counter", "Bytes appended to streams.", c(&s.append_bytes));
    metric("floe_wal_writes_total", "counter", "WAL group writes (one fsync or one object each).", c(&s.wal_writes));
    metric("floe_wal_write_seconds_sum", "counter", "Time spent in WAL group writes.", vec![(String::new(), s.wal_write_us_sum.load(Relaxed) as f64 / 1e6)]);
    metric("floe_uploads_total", "counter", "Uploads of WAL data to object storage.", c(&s.uploads));
    metric("floe_upload_bytes_total", "counter", "Bytes uploaded as objects.", c(&s.upload_bytes));
    metric("floe_object_reads_total", "counter", "Reads served from objects.", c(&s.object_reads));
    metric("floe_cache_reads_total", "counter", "Reads served from the log cache.", c(&s.cache_reads));
    metric("floe_read_ahead_bytes_total", "counter", "Object blocks fetched ahead of catch-up readers.", c(&s.read_ahead_bytes));
    metric("floe_compactions_total", "counter", "Compaction passes that merged objects.", c(&s.compactions));
    let (set_objects, stream_objects) = b.engine.object_counts();
    metric(
        "floe_objects",
        "gauge",
        "Live objects in the manifest, by kind.",
        vec![("{kind=\"stream_set\"}".into(), set_objects as f64), ("{kind=\"stream\"}".into(), stream_objects as f64)],
    );
    metric(
        "floe_compaction_read_bytes_total",
        "counter",
        "Bytes compaction read (read amplification against floe_upload_bytes_total).",
        c(&s.compaction_read_bytes),
    );
    metric(
        "floe_compaction_written_bytes_total",
        "counter",
        "Bytes compaction wrote (write amplification against floe_upload_bytes_total).",
        c(&s.compaction_written_bytes),
    );
    metric("floe_stream_rewrites_total", "counter", "Stream prefixes rewritten by log compaction.", c(&s.rewrites));
    metric("floe_objects_deleted_total", "counter", "Unreferenced objects deleted.", c(&s.objects_deleted));
    let (log_cache, pending, hits, misses) = b.engine.cache_stats();
    metric("floe_log_cache_bytes", "gauge", "Bytes in the log cache.", vec![(String::new(), log_cache as f64)]);
    metric("floe_upload_pending_bytes", "gauge", "Bytes durable in the WAL, not yet uploaded.", vec![(String::new(), pending as f64)]);
    metric("floe_block_cache_hits_total", "counter", "Block cache hits.", vec![(String::new(), hits as f64)]);
    metric("floe_block_cache_misses_total", "counter", "Block cache misses.", vec![(String::new(), misses as f64)]);
    let h = &b.heap;
    metric("floe_resident_bytes", "gauge", "The node's resident memory at the last heap check.", c(&h.resident_bytes));
    metric("floe_heap_in_use_bytes", "gauge", "Bytes of live heap allocations at the last heap check.", c(&h.in_use_bytes));
    metric("floe_heap_releases_total", "counter", "Releases of freed heap to the system (heap_retained_bytes_max).", c(&h.releases));
    metric("floe_heap_released_bytes_total", "counter", "Resident bytes those releases returned.", c(&h.released_bytes));
    let ops = b.store_metrics.ops();
    for (name, help, f) in [
        ("floe_object_store_requests_total", "Object store requests by operation.", 0),
        ("floe_object_store_errors_total", "Object store errors by operation.", 1),
        ("floe_object_store_bytes_total", "Object store bytes by operation.", 2),
        ("floe_object_store_seconds_sum", "Object store request time by operation.", 3),
    ] {
        let samples = ops
            .iter()
            .map(|(op, st)| {
                let v = match f {
                    0 => st.requests.load(Relaxed) as f64,
                    1 => st.errors.load(Relaxed) as f64,
                    2 => st.bytes.load(Relaxed) as f64,
                    _ => st.latency_us_sum.load(Relaxed) as f64 / 1e6,
                };
                (format!("{{op=\"{op}\"}}"), v)
            })
            .collect();
        metric(name, "counter", help, samples);
    }
    let mut hw = Vec::new();
    let mut high = std::collections::HashMap::new();
    for t in b.topics.all() {
        for p in t.local_partitions() {
            if let Ok(info) = b.engine.stream_info(p.stream) {
                high.insert((t.meta.name.clone(), p.index), info.end as i64);
                hw.push((format!("{{topic=\"{}\",partition=\"{}\"}}", label(&t.meta.name), p.index), info.end as f64));
            }
        }
    }
    metric("floe_partition_high_watermark", "gauge", "Offset after the last durable record.", hw);
    let mut lag = Vec::new();
    for g in b.state.groups_with_offsets() {
        for (topic, partition, committed) in b.state.group_offsets(&g) {
            if let Some(h) = high.get(&(topic.clone(), partition)) {
                let l = (h - committed.offset).max(0);
                lag.push((format!("{{group=\"{}\",topic=\"{}\",partition=\"{partition}\"}}", label(&g), label(&topic)), l as f64));
            }
        }
    }
    metric("floe_consumer_group_lag", "gauge", "High watermark minus the committed offset.", lag);
    let tables = b.table_topics.statuses();
    let now = floe_table_topic::status::now_ms();
    let per_table = |f: &dyn Fn(&floe_table_topic::Status) -> f64| -> Vec<(String, f64)> {
        tables.iter().map(|t| (format!("{{topic=\"{}\",table=\"{}\"}}", label(&t.topic), label(&t.table)), f(t))).collect()
    };
    metric("floe_table_topic_lag_records", "gauge", "Records in the log not yet committed to the table.", per_table(&|t| t.lag_records as f64));
    metric(
        "floe_table_topic_freshness_seconds",
        "gauge",
        "How long the table has been behind its log (0: caught up).",
        per_table(&|t| t.freshness_seconds(now)),
    );
    metric("floe_table_topic_last_commit_timestamp_seconds", "gauge", "When the last commit landed.", per_table(&|t| t.last_commit_ms as f64 / 1e3));
    metric("floe_table_topic_paused", "gauge", "1 while the table is paused at a bad record.", per_table(&|t| f64::from(u8::from(t.paused.is_some()))));
    metric("floe_table_topic_commits_total", "counter", "Snapshots committed.", per_table(&|t| t.commits as f64));
    metric("floe_table_topic_records_total", "counter", "Records committed (rows, deletes and invalid records).", per_table(&|t| t.committed_records as f64));
    metric("floe_table_topic_invalid_records_total", "counter", "Records sent to the dead-letter table.", per_table(&|t| t.invalid_records as f64));
    metric("floe_table_topic_files_written_total", "counter", "Data and delete files written by commits.", per_table(&|t| t.files_written as f64));
    metric("floe_table_topic_bytes_written_total", "counter", "Bytes of files written by commits.", per_table(&|t| t.bytes_written as f64));
    metric("floe_table_topic_compactions_total", "counter", "Compactions committed.", per_table(&|t| t.compactions as f64));
    let sec = &b.security_metrics;
    metric(
        "floe_sasl_authentications_total",
        "counter",
        "SASL exchanges completed, by result (re-authentications included).",
        vec![
            ("{result=\"ok\"}".into(), sec.authentications.load(Relaxed) as f64),
            ("{result=\"failed\"}".into(), sec.authentication_failures.load(Relaxed) as f64),
        ],
    );
    metric("floe_authorization_denials_total", "counter", "Requests (or parts of them) refused by the ACLs.", c(&b.authorizer.denials));
    metric("floe_tls_handshake_failures_total", "counter", "TLS handshakes refused or timed out.", c(&sec.tls_handshake_failures));
    if let Some(m) = b.membership.get() {
        let gauge = |v: i64| vec![(String::new(), v as f64)];
        metric("floe_cluster_registered", "gauge", "1 while this node's broker key is held by its live etcd lease.", gauge(i64::from(m.registered())));
        metric("floe_cluster_broker_epoch", "gauge", "This node's broker epoch (the revision of its registration).", gauge(m.epoch()));
        metric(
            "floe_cluster_controller_epoch",
            "gauge",
            "The controller epoch while this node is the controller, else 0.",
            gauge(m.controller_epoch().unwrap_or(0)),
        );
    }
    if let Some(cl) = &b.cluster {
        let st = &cl.stats;
        metric("floe_cluster_partitions_handed_over_total", "counter", "Partitions this node handed over to another broker (planned moves).", c(&st.moves_out));
        metric("floe_cluster_partitions_taken_over_total", "counter", "Partitions this node started serving (new, moved in, or reopened).", c(&st.takeovers));
        metric("floe_cluster_etcd_requests_total", "counter", "Requests this node sent to etcd.", vec![(String::new(), cl.etcd.requests.load(Relaxed) as f64)]);
        metric("floe_cluster_recoveries_total", "counter", "Lost brokers whose partitions this node took over as controller.", c(&st.recoveries));
        metric(
            "floe_cluster_balancer_moves_total",
            "counter",
            "Partition moves the balancer asked for (this node as controller), by reason.",
            vec![("{reason=\"drain\"}".into(), st.drain_moves.load(Relaxed) as f64), ("{reason=\"balance\"}".into(), st.balance_moves.load(Relaxed) as f64)],
        );
        metric("floe_cluster_sync_failures_total", "counter", "Rounds of reading the cluster's assignments from etcd that failed.", c(&st.sync_failures));
        let local: usize = b.topics.all().iter().map(|t| t.local_partitions().count()).sum();
        metric("floe_cluster_partitions_served", "gauge", "Partitions this node serves now.", vec![(String::new(), local as f64)]);
    }
    let lc = &b.cleaner;
    metric("floe_log_cleaner_passes_total", "counter", "Log compaction passes over a partition.", c(&lc.passes));
    metric(
        "floe_log_cleaner_records_removed_total",
        "counter",
        "Records log compaction removed (superseded, expired tombstones, keyless).",
        c(&lc.records_removed),
    );
    metric("floe_log_cleaner_tombstones_removed_total", "counter", "Tombstones removed past delete.retention.ms.", c(&lc.tombstones_removed));
    metric("floe_log_cleaner_bytes_read_total", "counter", "Bytes log compaction read.", c(&lc.bytes_read));
    metric("floe_log_cleaner_bytes_written_total", "counter", "Bytes the compacted ranges hold after their passes.", c(&lc.bytes_written));
    metric("floe_log_cleaner_failures_total", "counter", "Log compaction passes that failed (retried).", c(&lc.failures));
    let t = &b.txn.metrics;
    metric("floe_transactions_open", "gauge", "Transactions begun and not yet complete.", vec![(String::new(), b.txn.open_count() as f64)]);
    metric(
        "floe_transactions_total",
        "counter",
        "Transactions ended, by outcome (timed_out ones are counted in aborted too).",
        vec![
            ("{outcome=\"committed\"}".into(), t.committed.load(Relaxed) as f64),
            ("{outcome=\"aborted\"}".into(), t.aborted.load(Relaxed) as f64),
            ("{outcome=\"timed_out\"}".into(), t.timed_out.load(Relaxed) as f64),
        ],
    );
    metric("floe_transaction_fenced_total", "counter", "Open transactions aborted because a new producer took their transactional id.", c(&t.fenced));
    metric("floe_transaction_markers_total", "counter", "COMMIT/ABORT markers written into partitions.", c(&t.markers_written));
    metric(
        "floe_transaction_marker_seconds_sum",
        "counter",
        "Time from a transaction's end being durable to its markers being durable.",
        vec![(String::new(), t.marker_us_sum.load(Relaxed) as f64 / 1e6)],
    );
    metric("floe_transaction_marker_seconds_count", "counter", "Transactions whose markers were written.", c(&t.ended));
    histograms::render(b, &mut out);
    out
}

/// Every Table Topic's status.
async fn table_topics(State(b): State<Arc<Broker>>) -> Response {
    let mut all = b.table_topics.statuses();
    all.sort_by(|x, y| x.topic.cmp(&y.topic));
    json(&all)
}

fn json(v: &impl serde::Serialize) -> Response {
    match serde_json::to_string(v) {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One Table Topic's status; 503 while a topic whose config enables it has not started yet (its
/// loop starts within a reconcile interval); else 404.
async fn table_topic(State(b): State<Arc<Broker>>, Path(topic): Path<String>) -> Response {
    match b.table_topics.statuses().into_iter().find(|s| s.topic == topic) {
        Some(s) => json(&s),
        None if b.topics.get(&topic).is_some_and(|t| t.meta.configs.get("automq.table.topic.enable").is_some_and(|v| v.eq_ignore_ascii_case("true"))) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{topic}'s table is starting")).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("{topic} is not a Table Topic on this node")).into_response(),
    }
}

async fn metrics(State(b): State<Arc<Broker>>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render(&b)).into_response()
}
