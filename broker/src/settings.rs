//! Broker settings: a serde struct with defaults, read from a TOML file, then `FLOE_*` variables,
//! then command-line flags (each later source wins). Components are not settings: see `Broker::builder`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use floe_s3stream::{EngineConfig, WalKind};
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Millis};

/// Everything `floe serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the WAL and (by default) the local object store live.
    pub data_dir: PathBuf,
    /// Kafka listener; port 0 picks a free port.
    pub kafka_listen: String,
    /// host:port given to clients; defaults to the bound Kafka address.
    pub advertised_listener: Option<String>,
    /// Named Kafka listeners, `NAME://host:port` (Kafka's `listeners`); a name is a security
    /// protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or is mapped to one in
    /// `listener_security_protocol_map`. Set, it replaces `kafka_listen` and `advertised_listener`.
    #[serde(deserialize_with = "list")]
    pub listeners: Vec<String>,
    /// `NAME://host:port` given to clients that connect to listener NAME; a listener not named
    /// here advertises its bound address. Metadata answers with the addresses of the listener the
    /// request came in on.
    #[serde(deserialize_with = "list")]
    pub advertised_listeners: Vec<String>,
    /// Listener name to security protocol, as a table or as Kafka's `NAME:PROTOCOL,…`.
    #[serde(deserialize_with = "protocol_map")]
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// Certificate and key of the TLS listeners (SSL, SASL_SSL): the `[tls]` table.
    pub tls: TlsSettings,
    /// How a client certificate's subject (RFC 4514, `CN=alice,OU=eng,O=Floe`) becomes the
    /// principal `User:<name>` on SSL listeners (Kafka's `ssl.principal.mapping.rules`):
    /// `RULE:pattern/replacement/[LU]` entries and `DEFAULT` (the subject unchanged).
    pub ssl_principal_mapping_rules: String,
    /// SASL mechanisms offered on SASL listeners (`sasl.enabled.mechanisms`): PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER. PLAIN and SCRAM check the same stored SCRAM
    /// credentials; OAUTHBEARER needs `sasl_oauthbearer_jwks_file`.
    #[serde(deserialize_with = "list")]
    pub sasl_enabled_mechanisms: Vec<String>,
    /// Enforce ACLs (Kafka's `authorizer.class.name`): every request is checked against the
    /// stored ACLs (CreateAcls, `floe acl add`) before it acts.
    pub authorizer: bool,
    /// Principals (`User:name`) allowed everything, whatever the ACLs say (`super.users`).
    #[serde(deserialize_with = "list")]
    pub super_users: Vec<String>,
    /// With the authorizer on, allow a request on a resource no ACL covers
    /// (`allow.everyone.if.no.acl.found`); off, such requests are refused.
    pub allow_everyone_if_no_acl_found: bool,
    /// OAUTHBEARER: the JSON Web Key Set (a file, read again when it changes) whose keys sign
    /// the tokens clients present; set, OAUTHBEARER may be enabled in `sasl_enabled_mechanisms`.
    pub sasl_oauthbearer_jwks_file: Option<PathBuf>,
    /// OAUTHBEARER: the `iss` a token must carry (`sasl.oauthbearer.expected.issuer`).
    pub sasl_oauthbearer_expected_issuer: Option<String>,
    /// OAUTHBEARER: an `aud` a token must carry (`sasl.oauthbearer.expected.audience`).
    pub sasl_oauthbearer_expected_audience: Option<String>,
    /// OAUTHBEARER: the claim that names the principal (`sasl.oauthbearer.sub.claim.name`).
    pub sasl_oauthbearer_sub_claim_name: String,
    /// OAUTHBEARER: clock difference allowed when checking `exp` and `nbf`, in seconds.
    pub sasl_oauthbearer_clock_skew_seconds: u64,
    /// A SASL session lasts this long; the client re-authenticates on the same connection before
    /// it ends (KIP-368, `connections.max.reauth.ms`); 0: sessions do not expire.
    pub connections_max_reauth_ms: Millis,
    /// `file:///dir`, `s3://bucket?endpoint=…&region=…` or `memory://`; default `<data_dir>/objects`.
    pub object_store: Option<String>,
    /// Schema Registry listener (Confluent REST API).
    pub schema_registry_listen: String,
    /// Ask Schema Registry callers for credentials: HTTP Basic (a SCRAM user's name and
    /// password, as confluent-kafka's `basic.auth.user.info` sends them) or a Bearer token
    /// (checked as OAUTHBEARER's). Authenticated callers may read; writes need
    /// `schema_registry_writers` or `super_users`.
    pub schema_registry_auth: bool,
    /// Principals (`User:name`) that may register, delete and reconfigure schemas.
    #[serde(deserialize_with = "list")]
    pub schema_registry_writers: Vec<String>,
    /// Serve the Schema Registry over TLS (HTTPS) with the `[tls]` certificate.
    pub schema_registry_tls: bool,
    /// Serve the Iceberg REST catalog over TLS (HTTPS) with the `[tls]` certificate.
    pub catalog_tls: bool,
    /// Serve the admin listener over TLS (HTTPS) with the `[tls]` certificate.
    pub admin_tls: bool,
    /// Iceberg REST catalog listener.
    pub catalog_listen: String,
    /// When set, the catalog asks for `Authorization: Bearer <token>`.
    pub catalog_token: Option<String>,
    /// The catalog's OAuth2 client-credentials flow (`POST /v1/oauth/tokens`): a SCRAM user's
    /// name and password as client id and secret get a short-lived token (pyiceberg's and
    /// Spark's `credential=id:secret`); every other call then needs a token (or `catalog_token`).
    pub catalog_oauth: bool,
    /// How long a token from `/v1/oauth/tokens` lasts.
    pub catalog_token_ttl_ms: Millis,
    /// Hand the node's S3 credentials (`AWS_*`) with a table to catalog clients that present the
    /// token and ask for them (`X-Iceberg-Access-Delegation: vended-credentials`). Needs
    /// `catalog_token` or `catalog_oauth`; off, credentials are never sent.
    pub catalog_vend_credentials: bool,
    /// An external Iceberg REST catalog the Table Topics commit to; unset: the built-in one.
    pub table_catalog_uri: Option<String>,
    /// Bearer token sent to `table_catalog_uri`.
    pub table_catalog_token: Option<String>,
    /// Object store holding the external catalog's warehouse (`s3://bucket?endpoint=…`,
    /// `file:///dir`): table locations under `s3://bucket` (or the directory) are written there.
    /// Unset: Floe's own object store, so the catalog must place tables under Floe's warehouse.
    pub table_warehouse: Option<String>,
    /// An external Confluent-compatible Schema Registry the Table Topics resolve schemas from
    /// (AutoMQ's `schema.registry.url`); unset: the built-in one.
    pub table_schema_registry_url: Option<String>,
    /// `user:password` for HTTP Basic on `table_schema_registry_url` (Confluent's
    /// `basic.auth.user.info`).
    pub table_schema_registry_basic_auth_user_info: Option<String>,
    /// Metrics (`/metrics`) and health (`/health/live`, `/health/ready`) listener.
    pub admin_listen: String,
    /// This node's broker id in metadata responses, and its id in a cluster.
    pub node_id: i32,
    /// etcd's client URLs (`http://host:2379`, comma-separated): set, the node joins the
    /// cluster `cluster_name` there; empty, it runs alone.
    #[serde(deserialize_with = "list")]
    pub etcd_endpoints: Vec<String>,
    /// The cluster a node joins: its keys live under `/floe/<cluster_name>/` in etcd.
    pub cluster_name: String,
    /// A node not heard from for this long (its etcd lease, in whole seconds) leaves the cluster.
    pub cluster_session_timeout_ms: Millis,
    /// How often a cluster node checks etcd for changed topics and assignments (one small read;
    /// the whole set is read only when something changed).
    pub cluster_sync_interval_ms: Millis,
    /// How often the controller drains brokers asked to empty and evens partitions out.
    pub cluster_balance_interval_ms: Millis,
    /// Most partition moves under way at once (drain and balance).
    pub cluster_concurrent_moves_max: usize,
    /// A partition the balancer moved stays where it went for this long.
    pub cluster_move_cooldown_ms: Millis,
    /// A partition taking this many bytes per second (produced and fetched) weighs as much as
    /// one more partition when the balancer evens brokers out.
    pub cluster_balance_bytes_per_weight: ByteSize,
    /// A partition read or written this many times per second (produce and fetch reads) weighs
    /// as much as one more partition when the balancer evens brokers out.
    pub cluster_balance_requests_per_weight: u64,
    /// In a cluster, the listener brokers reach each other on (Table Topic reads, transaction
    /// markers and checks); unset: each broker's first.
    pub inter_broker_listener_name: Option<String>,
    /// How a broker connects to the others, as a client's properties with librdkafka's names
    /// (`security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`,
    /// `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`): the
    /// `[inter_broker_client]` table; empty: plaintext without SASL. With the authorizer on, its
    /// principal needs ClusterAction (a `super_users` entry).
    pub inter_broker_client: BTreeMap<String, String>,
    /// The cluster id in metadata responses.
    pub cluster_id: String,
    /// Create a topic when a client asks for one that does not exist (as Kafka does).
    pub auto_create_topics_enable: bool,
    /// Partitions of an auto-created topic, or of a created one that does not say.
    pub num_partitions: i32,
    /// Largest request accepted (`socket.request.max.bytes`).
    pub socket_request_max_bytes: ByteSize,
    /// Most client connections at once.
    pub connections_max: usize,
    /// Most requests read ahead of their responses on one connection. A produce is answered
    /// when its WAL group is durable (with the object WAL, up to `wal_batch_interval_ms` later),
    /// so a connection sends at most about this many produce requests per group; memory is
    /// bounded by the bytes cap below.
    pub connection_inflight_requests_max: usize,
    /// Most request bytes read ahead of their responses on one connection.
    pub connection_inflight_bytes_max: ByteSize,
    /// Connections idle this long are closed.
    pub connections_idle_ms: Millis,
    /// Default `max.message.bytes` of topics.
    pub message_max_bytes: ByteSize,
    /// Most bytes a compressed batch's records may inflate to when they are validated (on
    /// produce) or decoded (by a Table Topic); a batch past it is refused (dead-lettered).
    pub batch_decompressed_bytes_max: ByteSize,
    /// Most bytes of record data in one Fetch response, whatever the client asks
    /// (`fetch.max.bytes`).
    pub fetch_max_bytes: ByteSize,
    /// Most request bytes read but not yet answered across all connections of the node; a
    /// connection waits for room before it reads the next request's body.
    pub requests_inflight_bytes_max: ByteSize,
    /// Longest a Fetch may wait, whatever the client asks.
    pub fetch_max_wait_ms: Millis,
    /// Delay before the first rebalance of an empty group completes (`group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: Millis,
    /// Shortest session timeout a consumer may ask for (`group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: Millis,
    /// Longest session timeout a consumer may ask for (`group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: Millis,
    /// How often retention is enforced.
    pub retention_check_interval_ms: Millis,
    /// Idempotent-producer state is forgotten after this long without a batch (Kafka's
    /// `producer.id.expiration.ms`).
    pub producer_id_expiration_ms: Millis,
    /// Offsets of a group without members are deleted once it has been inactive this long
    /// (Kafka's `offsets.retention.minutes`, 7 days); a group with neither members nor offsets
    /// is removed at once. Checked every `retention_check_interval_ms`.
    pub offsets_retention_ms: Millis,
    /// How often producer state and offsets are snapshotted.
    pub state_snapshot_interval_ms: Millis,
    /// Longest `transaction.timeout.ms` a transactional producer may ask for (Kafka's
    /// `transaction.max.timeout.ms`).
    pub transaction_max_timeout_ms: Millis,
    /// Cluster mode: partitions of the offsets topic `__consumer_offsets` (Kafka's
    /// `offsets.topic.num.partitions`); a group is coordinated by the broker leading partition
    /// `hash(group) % n`, and its committed offsets live there. Fixed when the cluster's first
    /// broker creates the topic.
    pub offsets_topic_num_partitions: u32,
    /// Transaction coordinator partitions, each a stream (Kafka's
    /// `transaction.state.log.num.partitions`); fixed when the node first starts.
    pub transaction_state_partitions: u32,
    /// A transactional id with no transaction for this long is forgotten (Kafka's
    /// `transactional.id.expiration.ms`, 7 days).
    pub transactional_id_expiration_ms: Millis,
    /// How often open transactions are checked for their timeout, and unfinished ends retried
    /// (Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: Millis,
    /// Freed heap memory the node may keep resident: glibc's malloc keeps memory freed below a
    /// live allocation, so large transient buffers (uploads, merges, Parquet files) can leave
    /// gigabytes resident and unused. Past this much more than the last release left, the free
    /// pages of every arena are released to the system (`malloc_trim`). 0: never.
    pub heap_retained_bytes_max: ByteSize,
    /// How often resident memory is compared with the heap's use (`heap_retained_bytes_max`).
    pub heap_check_interval_ms: Millis,
    /// Whether `cleanup.policy=compact` topics are compacted (Kafka's `log.cleaner.enable`).
    pub log_cleaner_enable: bool,
    /// How often compacted topics are checked for a pass (Kafka's `log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: Millis,
    /// Memory for one pass's key map (Kafka's `log.cleaner.dedupe.buffer.size`): about 48 bytes
    /// a key; a pass that fills it cleans up to there and the next goes on.
    pub log_cleaner_dedupe_buffer_bytes: ByteSize,
    /// `text` or `json` logs.
    pub log_format: String,
    /// The storage engine: the `[storage]` table.
    pub storage: StorageSettings,
}

/// TLS of the Kafka listeners that use it. Files are PEM; they are read again when they change,
/// so certificates are renewed without a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain (leaf first).
    pub cert_file: Option<PathBuf>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// CA certificates that sign client certificates (mTLS); set, clients must present one
    /// unless `client_auth` says otherwise.
    pub client_ca_file: Option<PathBuf>,
    /// `required`, `requested` or `none` (Kafka's `ssl.client.auth`); default: `required` when
    /// `client_ca_file` is set.
    pub client_auth: Option<String>,
    /// How often the files are checked for changes.
    pub reload_interval_ms: Millis,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self { cert_file: None, key_file: None, client_ca_file: None, client_auth: None, reload_interval_ms: Millis(10_000) }
    }
}

/// A list from a TOML array or from a comma-separated string (as `FLOE_*` variables give it).
fn list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(v) => v,
        Raw::Text(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
    })
}

/// A map from a TOML table or from Kafka's `K:V,K:V` string.
fn protocol_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Map(BTreeMap<String, String>),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Map(m) => Ok(m),
        Raw::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| e.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).ok_or_else(|| format!("{e:?} is not NAME:PROTOCOL")))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom),
    }
}

/// Storage engine settings, in human units.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `file` (a local ring, group-committed fsync) or `object` (diskless).
    pub wal: WalKind,
    /// Size of the local WAL ring (`file` WAL).
    pub wal_capacity_bytes: ByteSize,
    /// Object WAL: how long appends wait to be written together in one object.
    pub wal_batch_interval_ms: Millis,
    /// Object WAL: write as soon as this many bytes are buffered.
    pub wal_batch_bytes: ByteSize,
    /// Upload WAL data into a stream-set object once this many bytes wait.
    pub upload_bytes: ByteSize,
    /// Upload at least this often.
    pub upload_interval_ms: Millis,
    /// Writes wait (back-pressure) once this many bytes are not yet uploaded.
    pub upload_pending_bytes_max: ByteSize,
    /// Memory for recent data, serving tailing reads.
    pub log_cache_bytes: ByteSize,
    /// Memory for blocks read from object storage, serving catch-up reads.
    pub block_cache_bytes: ByteSize,
    /// A catch-up read served from objects fetches this much more of its partition into the
    /// block cache in the background, in large ranged GETs (0: none; at most half the block
    /// cache is read ahead at once).
    pub read_ahead_bytes: ByteSize,
    /// How often compaction looks for stream-set objects to merge.
    pub compaction_interval_ms: Millis,
    /// Compaction reads and writes at most this many bytes per second, so that it never takes
    /// the I/O the produce path needs (0: unlimited).
    pub compaction_bytes_per_second: ByteSize,
    /// Objects no longer referenced are deleted after this long (readers may still hold them).
    pub object_grace_ms: Millis,
}

impl Default for StorageSettings {
    fn default() -> Self {
        let e = EngineConfig::default();
        Self {
            wal: e.wal,
            wal_capacity_bytes: ByteSize(e.wal_capacity_bytes),
            wal_batch_interval_ms: Millis(e.wal_batch_interval_ms),
            wal_batch_bytes: ByteSize(e.wal_batch_bytes),
            upload_bytes: ByteSize(e.upload_bytes),
            upload_interval_ms: Millis(e.upload_interval_ms),
            upload_pending_bytes_max: ByteSize(e.upload_pending_bytes_max),
            log_cache_bytes: ByteSize(e.log_cache_bytes),
            block_cache_bytes: ByteSize(e.block_cache_bytes),
            read_ahead_bytes: ByteSize(e.read_ahead_bytes),
            compaction_interval_ms: Millis(e.compaction_interval_ms),
            compaction_bytes_per_second: ByteSize(e.compaction_bytes_per_second),
            object_grace_ms: Millis(e.object_grace_ms),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("floe-data"),
            kafka_listen: "127.0.0.1:9092".into(),
            advertised_listener: None,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: BTreeMap::new(),
            tls: TlsSettings::default(),
            ssl_principal_mapping_rules: "DEFAULT".into(),
            sasl_enabled_mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-512".into(), "PLAIN".into()],
            connections_max_reauth_ms: Millis(0),
            sasl_oauthbearer_jwks_file: None,
            sasl_oauthbearer_expected_issuer: None,
            sasl_oauthbearer_expected_audience: None,
            sasl_oauthbearer_sub_claim_name: "sub".into(),
            sasl_oauthbearer_clock_skew_seconds: 30,
            authorizer: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            object_store: None,
            schema_registry_listen: "127.0.0.1:8081".into(),
            catalog_listen: "127.0.0.1:8181".into(),
            schema_registry_auth: false,
            schema_registry_tls: false,
            catalog_tls: false,
            admin_tls: false,
            schema_registry_writers: Vec::new(),
            catalog_token: None,
            catalog_vend_credentials: false,
            catalog_oauth: false,
            catalog_token_ttl_ms: Millis(3_600_000),
            table_catalog_uri: None,
            table_catalog_token: None,
            table_warehouse: None,
            table_schema_registry_url: None,
            table_schema_registry_basic_auth_user_info: None,
            admin_listen: "127.0.0.1:9644".into(),
            node_id: 0,
            etcd_endpoints: Vec::new(),
            cluster_name: "floe".into(),
            cluster_session_timeout_ms: Millis(2_000),
            cluster_sync_interval_ms: Millis(100),
            cluster_balance_interval_ms: Millis(10_000),
            cluster_concurrent_moves_max: 4,
            cluster_move_cooldown_ms: Millis(60_000),
            cluster_balance_bytes_per_weight: ByteSize(1 << 20),
            cluster_balance_requests_per_weight: 1000,
            inter_broker_listener_name: None,
            inter_broker_client: BTreeMap::new(),
            cluster_id: "floe-cluster".into(),
            auto_create_topics_enable: true,
            num_partitions: 1,
            socket_request_max_bytes: ByteSize(100 << 20),
            connections_max: 1024,
            connection_inflight_requests_max: 1024,
            connection_inflight_bytes_max: ByteSize(64 << 20),
            connections_idle_ms: Millis(600_000),
            message_max_bytes: ByteSize(1_048_588),
            batch_decompressed_bytes_max: ByteSize(64 << 20),
            fetch_max_bytes: ByteSize(55 << 20),
            requests_inflight_bytes_max: ByteSize(512 << 20),
            fetch_max_wait_ms: Millis(30_000),
            group_initial_rebalance_delay_ms: Millis(300),
            group_min_session_timeout_ms: Millis(1_000),
            group_max_session_timeout_ms: Millis(300_000),
            retention_check_interval_ms: Millis(30_000),
            producer_id_expiration_ms: Millis(86_400_000),
            offsets_retention_ms: Millis(7 * 24 * 3_600_000),
            state_snapshot_interval_ms: Millis(10_000),
            transaction_max_timeout_ms: Millis(900_000),
            transaction_state_partitions: 50,
            offsets_topic_num_partitions: 16,
            transactional_id_expiration_ms: Millis(7 * 24 * 3_600_000),
            transaction_abort_timed_out_transaction_cleanup_interval_ms: Millis(10_000),
            heap_retained_bytes_max: ByteSize(256 << 20),
            heap_check_interval_ms: Millis(5_000),
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: Millis(15_000),
            log_cleaner_dedupe_buffer_bytes: ByteSize(128 << 20),
            log_format: "text".into(),
            storage: StorageSettings::default(),
        }
    }
}

impl Settings {
    /// Reads settings: defaults, then the TOML file, then `FLOE_*` variables from `env`
    /// (`FLOE_KAFKA_LISTEN`, `FLOE_STORAGE__WAL` for nested keys), then `overrides`.
    /// Unknown keys in the file are errors; `FLOE_*` variables that name no setting (such as
    /// `FLOE_LOG`) are returned in the second value, for a warning.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: Vec<(String, toml::Value)>,
    ) -> Result<(Self, Vec<String>), String> {
        // JSON keeps `None` fields (as null), so optional settings are known keys too.
        let known: Vec<String> = match serde_json::to_value(Settings::default()) {
            Ok(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
            _ => vec![],
        };
        let mut ignored = Vec::new();
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
                text.parse::<toml::Table>().map_err(|e| format!("parsing {}: {e}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for (k, v) in env {
            let Some(key) = k.strip_prefix("FLOE_") else { continue };
            let path: Vec<String> = key.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if !known.contains(&path[0]) {
                ignored.push(k.clone());
                continue;
            }
            set(&mut table, &path, env_value(&v));
        }
        for (k, v) in overrides {
            let path: Vec<String> = k.split('.').map(str::to_string).collect();
            set(&mut table, &path, v);
        }
        let settings = Settings::deserialize(toml::Value::Table(table)).map_err(|e| format!("settings: {e}"))?;
        Ok((settings, ignored))
    }

    /// The object store URL, defaulting into the data directory.
    pub fn object_store_url(&self) -> Result<String, String> {
        match &self.object_store {
            Some(u) => Ok(floe_s3stream::store::without_bucket_id(u).to_string()),
            None => {
                let dir = std::path::absolute(self.data_dir.join("objects")).map_err(|e| e.to_string())?;
                Ok(format!("file://{}", dir.display()))
            }
        }
    }

    /// Properties a catalog client needs to reach the warehouse — for an S3 object store its
    /// endpoint and region; nothing for a local one — and, apart, the node's credentials (from
    /// the `AWS_*` variables), vended only when `catalog_vend_credentials` is on.
    pub fn warehouse_client_properties(&self, env: &std::collections::HashMap<String, String>) -> (HashMap<String, String>, HashMap<String, String>) {
        let (mut out, mut secrets) = (HashMap::new(), HashMap::new());
        let Ok(url) = self.object_store_url() else { return (out, secrets) };
        let Ok(parsed) = url::Url::parse(&url) else { return (out, secrets) };
        if parsed.scheme() != "s3" {
            return (out, secrets);
        }
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "endpoint" => {
                    out.insert("s3.endpoint".into(), v.to_string());
                    out.insert("s3.path-style-access".into(), "true".into());
                }
                "region" => {
                    out.insert("s3.region".into(), v.to_string());
                }
                _ => {}
            }
        }
        if let Some(r) = env.get("AWS_REGION").filter(|_| !out.contains_key("s3.region")) {
            out.insert("s3.region".into(), r.clone());
        }
        if self.catalog_vend_credentials {
            for (var, key) in
                [("AWS_ACCESS_KEY_ID", "s3.access-key-id"), ("AWS_SECRET_ACCESS_KEY", "s3.secret-access-key"), ("AWS_SESSION_TOKEN", "s3.session-token")]
            {
                if let Some(v) = env.get(var) {
                    secrets.insert(key.into(), v.clone());
                }
            }
        }
        (out, secrets)
    }

    /// The storage engine's configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let s = &self.storage;
        EngineConfig {
            wal: s.wal,
            wal_dir: self.data_dir.join("wal"),
            wal_capacity_bytes: s.wal_capacity_bytes.0,
            wal_batch_interval_ms: s.wal_batch_interval_ms.0,
            wal_batch_bytes: s.wal_batch_bytes.0,
            upload_bytes: s.upload_bytes.0,
            upload_interval_ms: s.upload_interval_ms.0,
            upload_pending_bytes_max: s.upload_pending_bytes_max.0,
            log_cache_bytes: s.log_cache_bytes.0,
            block_cache_bytes: s.block_cache_bytes.0,
            read_ahead_bytes: s.read_ahead_bytes.0,
            compaction_interval_ms: s.compaction_interval_ms.0,
            compaction_bytes_per_second: s.compaction_bytes_per_second.0,
            object_grace_ms: s.object_grace_ms.0,
            // In a cluster every node keeps its own manifest chain and object WAL in the bucket.
            node_prefix: if self.etcd_endpoints.is_empty() { String::new() } else { format!("nodes/{}/", self.node_id) },
            ..EngineConfig::default()
        }
    }
}

fn env_value(v: &str) -> toml::Value {
    match v {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => v.parse::<i64>().map(toml::Value::Integer).unwrap_or_else(|_| toml::Value::String(v.to_string())),
    }
}

fn set(table: &mut toml::Table, path: &[String], v: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), v);
        }
        [first, rest @ ..] => {
            let entry = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set(t, rest, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("floe.toml");
        std::fs::write(&f, "kafka_listen = \"127.0.0.1:1\"\nnum_partitions = 3\n[storage]\nwal = \"object\"\nwal_batch_interval_ms = \"50ms\"\n")
            .expect("write");
        let env = vec![
            ("FLOE_NUM_PARTITIONS".to_string(), "5".to_string()),
            ("FLOE_STORAGE__LOG_CACHE_BYTES".to_string(), "32MiB".to_string()),
            ("FLOE_CATALOG_TOKEN".to_string(), "t0k".to_string()),
            ("FLOE_OBJECT_STORE".to_string(), "memory://".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let (s, ignored) = Settings::load(Some(&f), env, vec![("kafka_listen".into(), toml::Value::String("127.0.0.1:0".into()))]).expect("load");
        assert!(ignored.is_empty());
        assert_eq!(s.kafka_listen, "127.0.0.1:0");
        assert_eq!(s.num_partitions, 5);
        assert_eq!(s.storage.wal, WalKind::Object);
        assert_eq!(s.storage.wal_batch_interval_ms, Millis(50));
        assert_eq!(s.storage.log_cache_bytes, ByteSize(32 << 20));
        assert_eq!((s.catalog_token.as_deref(), s.object_store.as_deref()), (Some("t0k"), Some("memory://")), "optional keys from the environment");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("floe.toml");
        std::fs::write(&f, "kafka_listn = \"x\"\n").expect("write");
        let e = Settings::load(Some(&f), vec![], vec![]).expect_err("unknown key in the file");
        assert!(e.contains("kafka_listn"), "{e}");
        let (_, ignored) = Settings::load(None, vec![("FLOE_LOG".into(), "debug".into())], vec![]).expect("env names no setting");
        assert_eq!(ignored, vec!["FLOE_LOG".to_string()]);
        let e = Settings::load(None, vec![("FLOE_STORAGE__WAL".into(), "tape".into())], vec![]).expect_err("bad value");
        assert!(e.contains("tape"), "{e}");
    }
}
