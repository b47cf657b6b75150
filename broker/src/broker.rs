//! The `Broker`: settings plus injected components (object store, clock), the storage engine,
//! topics, durable state and the group coordinator; and its background tasks.

use std::sync::Arc;
use std::time::Duration;

use floe_s3stream::store::StoreMetrics;
use floe_s3stream::Engine;
use object_store::ObjectStore;
use tokio::sync::Notify;

use crate::error::{BrokerError, Result};
use crate::groups::{Coordinator, GroupSettings};
use crate::schema_log::EngineLog;
use crate::security::listeners::Listener;
use crate::security::users::Users;
use crate::security::SecurityMetrics;
use crate::settings::Settings;
use crate::state::StateStore;
use crate::topic_config;
use crate::topics::Topics;

/// Where time comes from (injected, so tests can control it): the storage engine's clock, one
/// for the whole node.
pub use floe_s3stream::{Clock, SystemClock};

/// A running node.
pub struct Broker {
    pub settings: Settings,
    pub engine: Engine,
    pub topics: Topics,
    pub state: Arc<StateStore>,
    pub groups: Coordinator,
    /// The built-in Iceberg catalog.
    pub catalog: Arc<floe_catalog::Catalog>,
    /// The built-in Schema Registry.
    pub registry: Arc<floe_schema::registry::Registry>,
    pub clock: Arc<dyn Clock>,
    pub store_metrics: Arc<StoreMetrics>,
    /// The node's Table Topics (a commit loop per enabled topic).
    pub table_topics: Arc<floe_table_topic::TableTopics>,
    /// Woken after every durable produce, for long-polling fetches.
    pub data_appended: Notify,
    /// Request bytes read and not yet answered, across all connections: a permit per byte,
    /// `requests_inflight_bytes_max` of them (at least one request's worth).
    pub requests_inflight: Arc<tokio::sync::Semaphore>,
    /// When each group was last seen with members, for offsets retention.
    pub group_activity: crate::expiry::Activity,
    /// The bound Kafka listeners (set once they are bound), each with the address it advertises.
    pub listeners: parking_lot::RwLock<Vec<Arc<Listener>>>,
    /// SCRAM users (checked by SASL PLAIN and SCRAM).
    pub users: Users,
    /// Where users and ACLs are kept (in a cluster, read again by the sync rounds).
    pub security_store: Arc<crate::security::store::SecurityStore>,
    /// OAUTHBEARER's token checks, when a JWKS file is configured.
    pub oauth: Option<crate::security::oauth::OAuthValidator>,
    /// ACLs and the decisions made with them.
    pub authorizer: crate::security::authorizer::Authorizer,
    /// Authentication counters.
    pub security_metrics: Arc<SecurityMetrics>,
    /// Request time per API (`/metrics`).
    pub request_metrics: crate::request_metrics::RequestMetrics,
    /// Connections open across all listeners: a permit each, `connections_max` of them.
    pub connection_slots: Arc<tokio::sync::Semaphore>,
    /// The transaction coordinator.
    pub txn: crate::txn::coordinator::TxnCoordinator,
    /// Log compaction counters.
    pub cleaner: crate::cleaner::CleanerStats,
    /// Resident memory against the heap's use, and releases of freed heap.
    pub heap: crate::heap::HeapKeeper,
    /// This node's cluster membership, once joined (cluster mode only).
    pub membership: std::sync::OnceLock<Arc<crate::cluster::membership::Membership>>,
    /// This node's view of its cluster's topics and brokers (cluster mode only).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The object store the engine uses (a cluster's controller opens lost brokers' storage on it).
    pub object_store: Arc<dyn ObjectStore>,
}

/// Semaphore permits for a byte budget (a semaphore holds fewer than 2^61 permits; one request
/// takes at most them all).
pub fn inflight_permits(bytes: u64) -> u32 {
    bytes.clamp(1, u64::from(u32::MAX >> 3)) as u32
}

/// Builds a [`Broker`] from settings and components.
pub struct BrokerBuilder {
    settings: Settings,
    store: Option<Arc<dyn ObjectStore>>,
    clock: Arc<dyn Clock>,
    store_metrics: Arc<StoreMetrics>,
}

impl Broker {
    /// Starts building a broker with `settings`.
    pub fn builder(settings: Settings) -> BrokerBuilder {
        BrokerBuilder { settings, store: None, clock: Arc::new(SystemClock), store_metrics: Arc::default() }
    }
}

impl BrokerBuilder {
    /// The object store (already wrapped as wanted); default: opened from the settings' URL.
    pub fn object_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens the engine, loads topics and state, and starts the background tasks.
    pub async fn build(self) -> Result<Arc<Broker>> {
        let s = self.settings;
        let store = match self.store {
            Some(st) => st,
            None => {
                let url = s.object_store_url().map_err(BrokerError::Internal)?;
                floe_s3stream::store::open(&url, self.store_metrics.clone())?
            }
        };
        let cluster = match s.etcd_endpoints.is_empty() {
            true => None,
            false => Some(connect_cluster(&s).await?),
        };
        let mut engine_config = s.engine_config();
        if let Some(c) = &cluster {
            engine_config.epoch_min = crate::cluster::placement::next_engine_epoch(&c.etcd, &c.name).await?;
        }
        let engine = Engine::open_with_clock(engine_config, store.clone(), self.clock.clone()).await?;
        let store_for_recovery = store.clone();
        let (topics, producer_id_floor) = match &cluster {
            None => (Topics::load(engine.clone()).await?, 0),
            Some(c) => {
                let topics = Topics::for_cluster(engine.clone(), c.clone());
                let placement = crate::cluster::placement::read(&c.etcd, &c.name).await?;
                *c.brokers.write() = crate::cluster::membership::list(&c.etcd, &c.name).await?;
                let node = crate::cluster::sync::Node { engine: &engine, state: None, cluster: c, now_ms: self.clock.now_ms() };
                crate::cluster::sync::apply(&topics, &node, &placement).await;
                // Engine epochs differ between brokers: so do the producer id ranges above them.
                (topics, (engine.epoch() << 32) as i64)
            }
        };
        let offsets_partitions = cluster.as_ref().map(|_| s.offsets_topic_num_partitions.max(1));
        let state = StateStore::open(engine.clone(), &topics, self.clock.now_ms(), producer_id_floor, offsets_partitions).await?;
        let log = Arc::new(EngineLog::open(engine.clone()).await?);
        let url = s.object_store_url().map_err(BrokerError::Internal)?;
        let warehouse = format!("{}/warehouse", location_root(&url));
        // A cluster's brokers share one catalog: its pointers live in etcd.
        let catalog_store: Arc<dyn floe_catalog::store::CatalogStore> = match &cluster {
            None => Arc::new(crate::catalog_store::EngineCatalogStore(engine.clone())),
            Some(c) => Arc::new(crate::cluster::catalog_store::EtcdCatalogStore::new(c.etcd.clone(), &c.name)),
        };
        let catalog =
            Arc::new(floe_catalog::Catalog::open(catalog_store, store, &warehouse, "warehouse").map_err(|e| BrokerError::Internal(format!("catalog: {e}")))?);
        let registry = Arc::new(floe_schema::registry::Registry::open(log).await.map_err(|e| BrokerError::Internal(format!("schema registry: {e}")))?);
        let groups = Coordinator::new(
            GroupSettings {
                initial_rebalance_delay: Duration::from_millis(s.group_initial_rebalance_delay_ms.0),
                min_session_timeout_ms: s.group_min_session_timeout_ms.0 as i32,
                max_session_timeout_ms: s.group_max_session_timeout_ms.0 as i32,
            },
            self.clock.clone(),
        );
        // Users and ACLs: the cluster's own, in etcd, when there is one.
        let security_store = Arc::new(match &cluster {
            None => crate::security::store::SecurityStore::Engine(engine.clone()),
            Some(c) => crate::security::store::SecurityStore::Shared(crate::security::store::SharedKv::open(c.etcd.clone(), &c.name).await?),
        });
        let users = Users::open(security_store.clone()).await?;
        let txn_limits = crate::txn::coordinator::TxnLimits {
            max_timeout_ms: s.transaction_max_timeout_ms.0 as i64,
            id_expiration_ms: s.transactional_id_expiration_ms.0 as i64,
        };
        let txn = match &cluster {
            None => crate::txn::coordinator::TxnCoordinator::open(engine.clone(), s.transaction_state_partitions, txn_limits).await?,
            Some(_) => {
                // Coordinator state lives in the internal topics' partitions, moved like any.
                let txn = crate::txn::coordinator::TxnCoordinator::for_cluster(engine.clone(), s.transaction_state_partitions, txn_limits);
                let (offsets_partitions, txn_partitions) = (s.offsets_topic_num_partitions, s.transaction_state_partitions);
                crate::cluster::sync::open_internal_topics(&topics, (&state, &groups, &txn), offsets_partitions, txn_partitions).await?;
                txn
            }
        };
        let authorizer = crate::security::authorizer::Authorizer::open(security_store.clone(), &s);
        let oauth = crate::security::oauth::OAuthValidator::from_settings(&s).map_err(|e| BrokerError::Internal(format!("OAUTHBEARER: {e}")))?;
        if oauth.is_none() && s.sasl_enabled_mechanisms.iter().any(|m| m.eq_ignore_ascii_case("OAUTHBEARER")) {
            return Err(BrokerError::Internal("OAUTHBEARER is enabled but sasl_oauthbearer_jwks_file is not set".into()));
        }
        let committer = match &s.table_catalog_uri {
            None => floe_catalog::Committer::with_storage(catalog.clone(), catalog.storage().clone()),
            Some(uri) => {
                let target = floe_catalog::rest_target::RestTarget::new(uri, s.table_catalog_token.clone(), None)
                    .map_err(|e| BrokerError::Internal(format!("table catalog: {e}")))?;
                let storage = match &s.table_warehouse {
                    None => catalog.storage().clone(),
                    Some(w) => {
                        let store = floe_s3stream::store::open(w, self.store_metrics.clone())?;
                        floe_catalog::ObjectStorage::new(store, location_root(w), "")
                    }
                };
                tracing::info!(catalog = %uri, warehouse = s.table_warehouse.as_deref().unwrap_or("Floe's own"), "Table Topics commit to an external REST catalog");
                floe_catalog::Committer::with_storage(target, storage)
            }
        };
        let source: Arc<dyn floe_schema::source::SchemaSource> = match &s.table_schema_registry_url {
            None => registry.clone(),
            Some(url) => {
                let mut http = floe_schema::http_source::HttpSource::new(url, Duration::from_secs(30))
                    .map_err(|e| BrokerError::Internal(format!("table schema registry: {e}")))?;
                if let Some(info) = &s.table_schema_registry_basic_auth_user_info {
                    http = http.with_basic_auth(info).map_err(|e| BrokerError::Internal(format!("table schema registry: {e}")))?;
                }
                tracing::info!(registry = %url, "Table Topics resolve schemas from an external registry");
                Arc::new(http)
            }
        };
        let schemas = Arc::new(floe_schema::source::SchemaCache::new(source, Duration::from_secs(5)));
        let clock = self.clock.clone();
        let s_connections_max = s.connections_max.max(1);
        let inflight = Arc::new(tokio::sync::Semaphore::new(inflight_permits(s.requests_inflight_bytes_max.0.max(s.socket_request_max_bytes.0)) as usize));
        // (At least one request's worth, so that the largest request can always be read.)
        let broker = Arc::new_cyclic(|weak| Broker {
            table_topics: floe_table_topic::TableTopics::with_clock(Arc::new(crate::table_source::BrokerSource::new(weak.clone())), committer, schemas, {
                let clock = clock.clone();
                Arc::new(move || clock.now_ms())
            }),
            settings: s,
            engine,
            topics,
            state,
            groups,
            registry,
            catalog,
            clock,
            store_metrics: self.store_metrics,
            data_appended: Notify::new(),
            requests_inflight: inflight,
            group_activity: Default::default(),
            listeners: Default::default(),
            users,
            security_store,
            oauth,
            authorizer,
            security_metrics: Arc::default(),
            request_metrics: Default::default(),
            connection_slots: Arc::new(tokio::sync::Semaphore::new(s_connections_max)),
            txn,
            cleaner: Default::default(),
            heap: Default::default(),
            membership: Default::default(),
            cluster,
            object_store: store_for_recovery,
        });
        spawn_background(&broker);
        Ok(broker)
    }
}

/// The etcd client and an empty view of the cluster; refuses to start while a live node holds
/// this node's id (its engine would fence that node's storage).
async fn connect_cluster(s: &Settings) -> Result<Arc<crate::cluster::Cluster>> {
    use crate::cluster::{etcd::Etcd, membership};
    let timeout = Duration::from_millis(s.cluster_session_timeout_ms.0.max(500));
    let etcd = Etcd::new(&s.etcd_endpoints, timeout)?;
    if let Some(kv) = etcd.get(&membership::broker_key(&s.cluster_name, s.node_id)).await? {
        return Err(BrokerError::Coordination(format!("node id {} is taken by a live node: {}", s.node_id, String::from_utf8_lossy(&kv.value))));
    }
    let cluster = crate::cluster::Cluster::new(etcd, &s.cluster_name, s.node_id);
    let security = crate::cli::command_config::ClientSecurity::from_properties(&s.inter_broker_client)
        .map_err(|e| BrokerError::Internal(format!("inter_broker_client: {e:#}")))?;
    cluster.peers.configure(security, s.inter_broker_listener_name.clone().map(|n| n.to_uppercase()));
    Ok(Arc::new(cluster))
}

/// Splits "host:port".
pub fn split_host_port(addr: &str) -> (String, i32) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(|c| c == '[' || c == ']').to_string(), p.parse().unwrap_or(9092)),
        None => (addr.to_string(), 9092),
    }
}

/// How often Table Topic loops are brought in line with topic configs.
const TABLE_TOPIC_RECONCILE_MS: u64 = 500;

/// Runs `task` every `period` (the first time after one period) for as long as the broker lives.
fn every<F, Fut>(b: &Arc<Broker>, period: Duration, task: F)
where
    F: Fn(Arc<Broker>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(b);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(b) = weak.upgrade() else { break };
            task(b).await;
        }
    });
}

fn spawn_background(b: &Arc<Broker>) {
    every(b, Duration::from_millis(100), |b| async move { b.groups.tick() });
    // The first pass soon after start finishes transactions a restart left half-ended.
    let txn_period = b.settings.transaction_abort_timed_out_transaction_cleanup_interval_ms.0.clamp(100, 1_000);
    every(b, Duration::from_millis(txn_period), |b| async move {
        let due = b.txn.next_tick_ms.load(std::sync::atomic::Ordering::Relaxed);
        let now = b.clock.now_ms();
        if now >= due {
            b.txn
                .next_tick_ms
                .store(now + b.settings.transaction_abort_timed_out_transaction_cleanup_interval_ms.0 as i64, std::sync::atomic::Ordering::Relaxed);
            b.txn.tick(&b).await;
        }
    });
    if b.settings.log_cleaner_enable {
        every(b, Duration::from_millis(b.settings.log_cleaner_backoff_ms.0.max(100)), |b| async move { crate::cleaner::clean_all(&b).await });
    }
    if b.cluster.is_some() {
        every(b, Duration::from_millis(b.settings.cluster_sync_interval_ms.0.max(10)), |b| async move { crate::cluster::sync::run_once(&b).await });
        every(b, Duration::from_millis(b.settings.cluster_balance_interval_ms.0.max(100)), |b| async move {
            let (Some(c), Some(m)) = (&b.cluster, b.membership.get()) else { return };
            // Every broker reports its load; the controller then weighs everyone's.
            let report = c.load.sample(b.settings.node_id, &b.topics, b.clock.now_ms());
            if let Err(e) = crate::cluster::load::publish(c, &report).await {
                tracing::warn!(error = %e, "publishing this node's load failed");
            }
            if m.controller_epoch().is_none() {
                return;
            }
            let s = &b.settings;
            let (cooldown_ms, moves_max) = (s.cluster_move_cooldown_ms.0 as i64, s.cluster_concurrent_moves_max.max(1));
            let per_weight = crate::cluster::balance::PerWeight {
                bytes: s.cluster_balance_bytes_per_weight.0 as f64,
                requests: s.cluster_balance_requests_per_weight as f64,
            };
            if let Err(e) = c.balancer.run_once(c, b.clock.now_ms(), cooldown_ms, moves_max, per_weight).await {
                tracing::warn!(error = %e, "balancing the cluster failed; retrying");
            }
        });
    }
    every(b, Duration::from_millis(TABLE_TOPIC_RECONCILE_MS), |b| async move {
        // In a cluster a table is committed by the broker leading its topic's partition 0 (it
        // reads the other partitions from their leaders); the table's committed offsets and the
        // catalog's compare-and-swap keep a committer that lost it from committing twice.
        let topics: Vec<(String, std::collections::BTreeMap<String, String>)> = b
            .topics
            .all()
            .iter()
            .filter(|t| b.cluster.is_none() || t.partitions.first().is_some_and(|p| p.local))
            .map(|t| (t.meta.name.clone(), t.meta.configs.clone()))
            .collect();
        b.table_topics.reconcile(&topics);
    });
    every(b, Duration::from_millis(b.settings.retention_check_interval_ms.0.max(100)), |b| async move {
        b.enforce_retention().await;
        if let Err(e) = crate::expiry::expire_groups(&b, b.clock.now_ms()).await {
            tracing::warn!(error = %e, "offsets retention failed; it will be retried");
        }
    });
    every(b, Duration::from_millis(b.settings.heap_check_interval_ms.0.max(100)), |b| async move {
        // A release takes each allocator arena's lock in turn: off the runtime's threads.
        let max_bytes = b.settings.heap_retained_bytes_max.0;
        let _ = tokio::task::spawn_blocking(move || b.heap.check(&crate::heap::ProcessHeap, max_bytes)).await;
    });
    every(b, Duration::from_millis(b.settings.state_snapshot_interval_ms.0.max(100)), |b| async move {
        let before = b.clock.now_ms() - b.settings.producer_id_expiration_ms.0 as i64;
        for t in b.topics.all() {
            for p in t.local_partitions() {
                p.producers.lock().expire(before);
            }
        }
        if let Err(e) = b.state.snapshot(&b.topics).await {
            tracing::warn!(error = %e, "state snapshot failed; it will be retried");
        }
    });
}

impl Broker {
    /// The bound listeners, each with the address it advertises.
    pub fn listeners(&self) -> Vec<Arc<Listener>> {
        self.listeners.read().clone()
    }

    /// Trims every partition past its retention.ms / retention.bytes (whole index spans only).
    pub async fn enforce_retention(&self) {
        let now = self.clock.now_ms();
        for topic in self.topics.all() {
            let policy = topic.meta.configs.get("cleanup.policy").map_or("delete", String::as_str);
            if !policy.contains("delete") {
                continue;
            }
            let ms = topic_config::long(&topic.meta.configs, "retention.ms").unwrap_or(-1);
            let bytes = topic_config::long(&topic.meta.configs, "retention.bytes").unwrap_or(-1);
            if ms < 0 && bytes < 0 {
                continue;
            }
            for p in topic.local_partitions() {
                let Ok(info) = self.engine.stream_info(p.stream) else { continue };
                let mut cut = p.time_index.lock().retention_cut(info.start as i64, info.end as i64, now, ms, bytes);
                // Never past an open transaction (its records stay readable, the LSO in the log).
                let lso = p.txn.lock().lso(info.end as i64);
                cut = cut.map(|c| c.min(lso)).filter(|&c| c > info.start as i64);
                // Never trim what the topic's table has not committed yet.
                if let (Some(c), Some(committed)) = (cut, self.table_topics.committed(&p.topic, p.index)) {
                    if c > committed {
                        tracing::warn!(topic = %p.topic, partition = p.index, retention_cut = c, table_committed = committed, "retention held back by table-topic lag");
                        cut = (committed > info.start as i64).then_some(committed);
                    }
                }
                if let Some(cut) = cut {
                    match self.engine.trim(p.stream, cut as u64).await {
                        Ok(()) => {
                            p.time_index.lock().trim(cut);
                            p.txn.lock().trim(cut);
                            tracing::info!(topic = %p.topic, partition = p.index, log_start = cut, "retention trimmed the partition");
                        }
                        Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention trim failed"),
                    }
                }
            }
        }
    }

    /// Snapshots state and closes the engine (everything acknowledged is already durable).
    pub async fn shutdown(&self) -> Result<()> {
        self.table_topics.shutdown().await;
        if let Err(e) = self.state.snapshot(&self.topics).await {
            tracing::warn!(error = %e, "final state snapshot failed; state is rebuilt from the log on start");
        }
        let closed = self.engine.close().await;
        // Only now: once the key is gone the controller may open this node's storage.
        if let Some(m) = self.membership.get() {
            m.retire().await;
        }
        closed?;
        Ok(())
    }
}

/// The location prefix of an object store URL (`s3://bucket?endpoint=…` → `s3://bucket`): Iceberg
/// locations under it map onto the store's own paths.
fn location_root(object_store_url: &str) -> &str {
    object_store_url.split('?').next().unwrap_or(object_store_url).trim_end_matches('/')
}
