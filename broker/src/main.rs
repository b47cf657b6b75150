//! The `floe` binary: `floe serve` starts a node with embedded defaults.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use floe_broker::cli::consume::ConsumeArgs;
use floe_broker::cli::group::GroupCommand;
use floe_broker::cli::kafka::Conn;
use floe_broker::cli::produce::ProduceArgs;
use floe_broker::cli::topic::TopicCommand;
use floe_broker::{cli, Broker, Settings};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "floe", version, about = "A Kafka-compatible broker on object storage that turns topics into Iceberg tables")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node: Kafka on 127.0.0.1:9092, data under --data-dir.
    Serve(Box<ServeArgs>),
    /// Schema tools.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Table Topics of a running node.
    #[command(subcommand, name = "table-topic")]
    TableTopic(TableTopicCommand),
    /// Topics of a running node: create, list, describe, alter, delete.
    Topic {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: TopicCommand,
    },
    /// Consumer groups of a running node: list, describe (with lag).
    Group {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: GroupCommand,
    },
    /// Transactions of a running node: list, describe.
    Txn {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: floe_broker::cli::txn::TxnCommand,
    },
    /// SCRAM users: create, delete, list (through a running node, or --data-dir of a stopped one).
    User {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: floe_broker::cli::user::UserCommand,
    },
    /// ACLs of a running node: add, list, remove (needs `authorizer = true`).
    Acl {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: floe_broker::cli::acl::AclCommand,
    },
    /// Brokers of a cluster (cluster mode, read from etcd): list, drain, recover.
    Broker {
        #[command(flatten)]
        conn: floe_broker::cli::broker::ClusterConn,
        #[command(subcommand)]
        cmd: floe_broker::cli::broker::BrokerCommand,
    },
    /// Partitions of a cluster (cluster mode, in etcd): list, move.
    Partition {
        #[command(flatten)]
        conn: floe_broker::cli::broker::ClusterConn,
        #[command(subcommand)]
        cmd: floe_broker::cli::partition::PartitionCommand,
    },
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Produce JSON lines from stdin.
    Produce {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: ProduceArgs,
    },
    /// Print a topic's records as JSON lines.
    Consume {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: ConsumeArgs,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration reference (broker settings and topic configs) as Markdown.
    Reference,
}

#[derive(Subcommand)]
enum TableTopicCommand {
    /// Each Table Topic's committed offsets, lag, freshness, commits and invalid records.
    Status {
        /// Only this topic.
        topic: Option<String>,
        /// The node's admin listener.
        #[arg(long, default_value = "http://127.0.0.1:9644", env = "FLOE_ADMIN_URL")]
        admin: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Wait until TOPIC's table holds everything its log holds.
        #[arg(long, requires = "topic")]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
    },
}

async fn table_topic_status(admin: &str, topic: Option<String>, json: bool, wait: bool, timeout_s: u64) -> anyhow::Result<()> {
    use floe_broker::cli::table_status;
    let client = table_status::client()?;
    let statuses = match (&topic, wait) {
        (Some(t), true) => vec![table_status::wait(&client, admin, t, std::time::Duration::from_secs(timeout_s)).await?],
        _ => table_status::fetch(&client, admin, topic.as_deref()).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        print!("{}", table_status::render(&statuses, floe_table_topic::status::now_ms()));
    }
    Ok(())
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Decode Confluent-framed records (one hex string per line on stdin) into JSON lines: Avro
    /// with the writer schema from a file, or any format with schemas from a registry.
    Decode {
        /// The Avro schema (JSON) the records were written with.
        #[arg(long, conflicts_with = "registry")]
        schema_file: Option<PathBuf>,
        /// A Schema Registry URL (Floe's own or an external one): Avro, Protobuf and JSON.
        #[arg(long)]
        registry: Option<String>,
    },
}

fn hex(line: &str) -> Option<Vec<u8>> {
    let t = line.trim();
    t.len().is_multiple_of(2).then_some(())?;
    (0..t.len()).step_by(2).map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok()).collect()
}

async fn decode_with_registry(url: &str) -> anyhow::Result<()> {
    use floe_schema::source::{decode_framed, SchemaCache};
    use std::io::BufRead;
    let source = std::sync::Arc::new(floe_schema::http_source::HttpSource::new(url, std::time::Duration::from_secs(30))?);
    let cache = SchemaCache::new(source, std::time::Duration::from_secs(60));
    let lines: Vec<String> = std::io::stdin().lock().lines().collect::<Result<_, _>>()?;
    for (n, line) in lines.iter().enumerate() {
        let out = match hex(line) {
            None => serde_json::json!({"line": n + 1, "error": "not hex"}),
            Some(b) => match decode_framed(&cache, &b).await {
                Ok((id, compiled, v)) => {
                    let row_type = arrow_schema::DataType::Struct(compiled.arrow_schema()?.fields().clone());
                    serde_json::json!({"schema_id": id, "value": v.to_json(&row_type)})
                }
                Err(e) => serde_json::json!({"line": n + 1, "error": e.to_string()}),
            },
        };
        println!("{out}");
    }
    Ok(())
}

fn decode(schema_file: &std::path::Path) -> anyhow::Result<()> {
    use std::io::BufRead;
    let text = std::fs::read_to_string(schema_file)?;
    let schema = floe_schema::avro::AvroSchema::parse_str(&text)?;
    let row_type = arrow_schema_of(&schema)?;
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let out = match hex(&line).ok_or_else(|| anyhow::anyhow!("not hex")).and_then(|b| {
            let (id, payload) = floe_schema::wire::split(&b)?;
            let v = floe_schema::avro::decode(&schema, payload)?;
            Ok(serde_json::json!({"schema_id": id, "value": v.to_json(&row_type)}))
        }) {
            Ok(j) => j,
            Err(e) => serde_json::json!({"line": n + 1, "error": e.to_string()}),
        };
        println!("{out}");
    }
    Ok(())
}

fn arrow_schema_of(s: &floe_schema::avro::AvroSchema) -> anyhow::Result<arrow_schema::DataType> {
    Ok(s.arrow_type()?.0)
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML settings file (keys as in the README's configuration reference).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the WAL and the local object store live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kafka listener, host:port (port 0 picks a free one).
    #[arg(long)]
    kafka_listen: Option<String>,
    /// host:port handed to clients.
    #[arg(long)]
    advertised_listener: Option<String>,
    /// file:///dir, s3://bucket?endpoint=…&region=…, or memory://
    #[arg(long)]
    object_store: Option<String>,
    /// file (local ring, fsync) or object (diskless).
    #[arg(long)]
    wal: Option<String>,
    #[arg(long)]
    schema_registry_listen: Option<String>,
    #[arg(long)]
    catalog_listen: Option<String>,
    /// A bearer token the catalog asks for.
    #[arg(long)]
    catalog_token: Option<String>,
    #[arg(long)]
    admin_listen: Option<String>,
    /// An external Iceberg REST catalog for Table Topics (default: the built-in one).
    #[arg(long)]
    table_catalog_uri: Option<String>,
    /// Object store of the external catalog's warehouse: s3://bucket?endpoint=… or file:///dir.
    #[arg(long)]
    table_warehouse: Option<String>,
    /// text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// This node's id (its broker id in metadata; unique in a cluster).
    #[arg(long)]
    node_id: Option<i32>,
    /// etcd's client URLs, comma-separated: join the cluster there (default: run alone).
    #[arg(long)]
    etcd_endpoints: Option<String>,
    /// The cluster to join.
    #[arg(long)]
    cluster_name: Option<String>,
}

fn overrides(a: &ServeArgs) -> Vec<(String, toml::Value)> {
    let mut v = Vec::new();
    let mut put = |k: &str, x: &Option<String>| {
        if let Some(x) = x {
            v.push((k.to_string(), toml::Value::String(x.clone())));
        }
    };
    put("data_dir", &a.data_dir.as_ref().map(|p| p.display().to_string()));
    put("kafka_listen", &a.kafka_listen);
    put("advertised_listener", &a.advertised_listener);
    put("object_store", &a.object_store);
    put("storage.wal", &a.wal);
    put("schema_registry_listen", &a.schema_registry_listen);
    put("catalog_listen", &a.catalog_listen);
    put("admin_listen", &a.admin_listen);
    put("catalog_token", &a.catalog_token);
    put("table_catalog_uri", &a.table_catalog_uri);
    put("table_warehouse", &a.table_warehouse);
    put("log_format", &a.log_format);
    put("etcd_endpoints", &a.etcd_endpoints);
    put("cluster_name", &a.cluster_name);
    if let Some(id) = a.node_id {
        v.push(("node_id".into(), toml::Value::Integer(i64::from(id))));
    }
    v
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOE_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (settings, ignored) = Settings::load(args.config.as_deref(), std::env::vars(), overrides(&args)).map_err(anyhow::Error::msg)?;
    init_logs(&settings.log_format);
    for v in ignored {
        tracing::debug!(variable = %v, "FLOE_ variable names no setting; ignored");
    }
    let _lock = floe_broker::cli::user::lock_data_dir(&settings.data_dir)?;
    let (kafka_listeners, mut tls) = floe_broker::listen::bind(&settings).await?;
    let http_tls = settings.schema_registry_tls || settings.catalog_tls || settings.admin_tls;
    if http_tls && tls.is_none() {
        tls = Some(floe_broker::security::tls::Tls::load(&settings.tls, &settings.ssl_principal_mapping_rules).map_err(|e| anyhow::anyhow!("TLS: {e}"))?);
    }
    let bound = kafka_listeners[0].addr;
    let listeners_line = floe_broker::listen::describe(&kafka_listeners);
    let broker = Broker::builder(settings.clone()).build().await?;
    let registry_listener = TcpListener::bind(&settings.schema_registry_listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding the schema registry on {}: {e}", settings.schema_registry_listen))?;
    let registry_addr = registry_listener.local_addr()?;
    let catalog_listener =
        TcpListener::bind(&settings.catalog_listen).await.map_err(|e| anyhow::anyhow!("binding the catalog on {}: {e}", settings.catalog_listen))?;
    let catalog_addr = catalog_listener.local_addr()?;
    let admin_listener =
        TcpListener::bind(&settings.admin_listen).await.map_err(|e| anyhow::anyhow!("binding the admin listener on {}: {e}", settings.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let http = |tcp: TcpListener, on: bool| {
        use floe_broker::security::tls_listener::HttpListener;
        HttpListener::new(tcp, if on { tls.clone() } else { None }, broker.security_metrics.clone())
    };
    let registry_http = http(registry_listener, settings.schema_registry_tls)?;
    let catalog_http = http(catalog_listener, settings.catalog_tls)?;
    let admin_http = http(admin_listener, settings.admin_tls)?;
    let (registry_scheme, catalog_scheme, admin_scheme) = (registry_http.scheme(), catalog_http.scheme(), admin_http.scheme());
    let (stop_tx, stop_rx) = watch::channel(false);
    floe_broker::listen::warn_exposure(
        &settings,
        &kafka_listeners,
        &[
            ("schema registry", registry_addr, settings.schema_registry_auth || settings.schema_registry_tls),
            ("Iceberg catalog", catalog_addr, settings.catalog_token.is_some() || settings.catalog_oauth),
            ("admin listener", admin_addr, false),
        ],
    );
    let kafka = floe_broker::listen::start(&broker, kafka_listeners, tls, &stop_rx);
    let mut catalog_stop = stop_rx.clone();
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    if settings.catalog_vend_credentials && settings.catalog_token.is_none() && !settings.catalog_oauth {
        anyhow::bail!("catalog_vend_credentials needs catalog_token or catalog_oauth: credentials are vended only to authenticated callers");
    }
    let catalog_config = {
        let (client_properties, vended_credentials) = settings.warehouse_client_properties(&env);
        let oauth = settings.catalog_oauth.then(|| {
            let clock = broker.clock.clone();
            std::sync::Arc::new(floe_catalog::tokens::TokenIssuer::new(
                std::sync::Arc::new(floe_broker::security::http_auth::CatalogClients(broker.clone())),
                settings.catalog_token_ttl_ms.0,
                std::sync::Arc::new(move || clock.now_ms()),
            ))
        });
        let access: Option<std::sync::Arc<dyn floe_catalog::access::TableAccess>> =
            Some(std::sync::Arc::new(floe_broker::security::http_auth::CatalogTables(broker.clone())));
        floe_catalog::server::ServerConfig { client_properties, vended_credentials, token: settings.catalog_token.clone(), oauth, access }
    };
    let catalog = tokio::spawn(floe_catalog::server::serve(broker.catalog.clone(), catalog_config, catalog_http, async move {
        let _ = catalog_stop.changed().await;
    }));
    let mut admin_stop = stop_rx.clone();
    let admin = tokio::spawn(floe_broker::admin::serve(broker.clone(), admin_http, async move {
        let _ = admin_stop.changed().await;
    }));
    let mut registry_stop = stop_rx.clone();
    let registry_auth: Option<std::sync::Arc<dyn floe_schema::registry::auth::Authenticator>> = match settings.schema_registry_auth {
        true => Some(std::sync::Arc::new(floe_broker::security::http_auth::RegistryAuth(broker.clone()))),
        false => None,
    };
    let registry = tokio::spawn(floe_schema::registry::server::serve(broker.registry.clone(), registry_auth, registry_http, async move {
        let _ = registry_stop.changed().await;
    }));
    let advertised: Vec<String> = broker.listeners().iter().map(|l| l.advertised_url()).collect();
    if !settings.etcd_endpoints.is_empty() {
        join_cluster(&broker, &settings, advertised.clone()).await?;
    }
    tracing::info!(
        kafka = %bound,
        listeners = %listeners_line,
        advertised = %advertised.join(","),
        wal = ?settings.storage.wal,
        data_dir = %settings.data_dir.display(),
        object_store = %settings.object_store_url().unwrap_or_default(),
        schema_registry = %registry_addr,
        catalog = %catalog_addr,
        admin = %admin_addr,
        "floe listening kafka={bound} schema_registry={registry_scheme}://{registry_addr} catalog={catalog_scheme}://{catalog_addr} admin={admin_scheme}://{admin_addr} listeners={listeners_line}"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    let _ = stop_tx.send(true);
    for k in kafka {
        let _ = k.await;
    }
    let _ = registry.await;
    let _ = catalog.await;
    let _ = admin.await;
    broker.shutdown().await?;
    tracing::info!("floe stopped");
    Ok(())
}

/// Registers this node in its cluster (refused while another live node has its id) and keeps
/// the registration alive.
async fn join_cluster(broker: &std::sync::Arc<Broker>, settings: &Settings, listeners: Vec<String>) -> anyhow::Result<()> {
    use floe_broker::cluster::{etcd::Etcd, membership};
    let timeout = std::time::Duration::from_millis(settings.cluster_session_timeout_ms.0.max(500));
    // The broker's own client when it has one (one request counter for the node).
    let etcd = match &broker.cluster {
        Some(c) => c.etcd.clone(),
        None => Etcd::new(&settings.etcd_endpoints, timeout)?,
    };
    let record = membership::BrokerRecord { node_id: settings.node_id, listeners, registered_ms: broker.clock.now_ms() };
    let m = membership::Membership::join(etcd, &settings.cluster_name, record, settings.cluster_session_timeout_ms.0, broker.clock.clone()).await?;
    m.spawn_keepalive();
    let _ = broker.membership.set(m);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("floe: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        match cli.command {
            Command::Serve(a) => serve(*a).await,
            Command::Schema(SchemaCommand::Decode { registry: Some(url), .. }) => decode_with_registry(&url).await,
            Command::Schema(SchemaCommand::Decode { schema_file: Some(f), .. }) => decode(&f),
            Command::Schema(SchemaCommand::Decode { .. }) => Err(anyhow::anyhow!("give --schema-file or --registry")),
            Command::TableTopic(TableTopicCommand::Status { topic, admin, json, wait, timeout_s }) => {
                table_topic_status(&admin, topic, json, wait, timeout_s).await
            }
            Command::Config(ConfigCommand::Reference) => {
                print!("{}", floe_broker::reference::markdown());
                Ok(())
            }
            Command::Topic { conn, cmd } => cli::topic::run(&conn, cmd).await,
            Command::Group { conn, cmd } => cli::group::run(&conn, cmd).await,
            Command::Txn { conn, cmd } => cli::txn::run(&conn, cmd).await,
            Command::User { conn, cmd } => cli::user::run(&conn, cmd).await,
            Command::Acl { conn, cmd } => cli::acl::run(&conn, cmd).await,
            Command::Broker { conn, cmd } => cli::broker::run(&conn, cmd).await,
            Command::Partition { conn, cmd } => cli::partition::run(&conn, cmd).await,
            Command::Produce { conn, args } => cli::produce::run(&conn, args).await,
            Command::Consume { conn, args } => cli::consume::run(&conn, args).await,
        }
    });
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
