//! `floe user create|delete|list`: SCRAM users, through a running node (AlterUserScramCredentials), or written directly — into a stopped node's storage with `--data-dir`, a cluster's etcd with `--etcd-endpoints` — so the first admin exists before anyone can log in.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};
use kafka_protocol::protocol::StrBytes;

use super::kafka::{check, Conn};
use crate::security::scram::{ScramMechanism, ITERATIONS_MIN};
use crate::security::users::Users;
use crate::settings::Settings;

/// Where the users live: a running node, a stopped node's data directory, or a cluster's etcd.
#[derive(clap::Args, Clone)]
pub struct Offline {
    /// Write into this stopped node's data directory instead of asking a running node.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The node's settings file (for its object store), with --data-dir.
    #[arg(long, requires = "data_dir")]
    pub config: Option<PathBuf>,
    /// Write into a cluster's users in etcd (its brokers may be running: they read them again).
    #[arg(long, value_delimiter = ',', conflicts_with = "data_dir")]
    pub etcd_endpoints: Vec<String>,
    /// The cluster, with --etcd-endpoints.
    #[arg(long, default_value = "floe")]
    pub cluster_name: String,
}

impl Offline {
    /// Whether the users are written directly (not through a running node).
    fn direct(&self) -> bool {
        self.data_dir.is_some() || !self.etcd_endpoints.is_empty()
    }
}

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Create a user or change its password (the password is read from stdin).
    Create {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        #[arg(long, default_value_t = ITERATIONS_MIN)]
        iterations: u32,
        /// Read the password from the first line of stdin (the only way it is given).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        offline: Offline,
    },
    /// Delete a user's credential for one mechanism.
    Delete {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        #[command(flatten)]
        offline: Offline,
    },
    /// List users and their mechanisms.
    List {
        #[command(flatten)]
        offline: Offline,
    },
}

/// Holds `<data_dir>/floe.lock` for as long as it lives: one process per data directory.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("floe.lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => bail!("{} is in use by another floe process", dir.display()),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(name).ok_or_else(|| anyhow!("{name:?} is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        bail!("an empty password on stdin");
    }
    Ok(p)
}

/// Runs a user subcommand.
pub async fn run(conn: &Conn, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create { name, mechanism: m, iterations, offline, .. } => {
            let m = mechanism(&m)?;
            let password = read_password()?;
            let cred = m.new_credential(&password, iterations);
            match offline.direct() {
                true => offline_users(&offline, |u| async move { Ok(u.alter(&[], vec![(name, m, cred)]).await?) }).await,
                false => {
                    // The protocol carries the salted password; the node derives the keys it keeps.
                    let mut up = ScramCredentialUpsertion::default();
                    up.name = StrBytes::from_string(name.clone());
                    up.mechanism = m.kafka_code();
                    up.iterations = iterations as i32;
                    up.salted_password = m.salted_password(password.as_bytes(), &cred.salt, iterations).into();
                    up.salt = cred.salt.into();
                    alter_online(conn, AlterUserScramCredentialsRequest::default().with_upsertions(vec![up])).await
                }
            }
        }
        UserCommand::Delete { name, mechanism: m, offline } => {
            let m = mechanism(&m)?;
            match offline.direct() {
                true => offline_users(&offline, |u| async move { Ok(u.alter(&[(name, m)], vec![]).await?) }).await,
                false => {
                    let mut d = ScramCredentialDeletion::default();
                    d.name = StrBytes::from_string(name);
                    d.mechanism = m.kafka_code();
                    alter_online(conn, AlterUserScramCredentialsRequest::default().with_deletions(vec![d])).await
                }
            }
        }
        UserCommand::List { offline } => {
            let users: Vec<(String, Vec<(ScramMechanism, u32)>)> = match offline.direct() {
                true => {
                    let out = Arc::new(parking_lot::Mutex::new(Vec::new()));
                    let sink = out.clone();
                    offline_users(&offline, |u| async move {
                        *sink.lock() = u.list().into_iter().collect();
                        Ok(())
                    })
                    .await?;
                    let v = std::mem::take(&mut *out.lock());
                    v
                }
                false => {
                    let mut c = conn.connect().await?;
                    let r = c.call(&DescribeUserScramCredentialsRequest::default().with_users(None), 0).await?;
                    check(r.error_code, r.error_message.as_ref(), "listing users")?;
                    r.results
                        .into_iter()
                        .map(|u| {
                            (
                                u.user.to_string(),
                                u.credential_infos.iter().filter_map(|c| Some((ScramMechanism::from_kafka(c.mechanism)?, c.iterations as u32))).collect(),
                            )
                        })
                        .collect()
                }
            };
            for (user, creds) in users {
                let mechs: Vec<String> = creds.iter().map(|(m, i)| format!("{}(iterations={i})", m.name())).collect();
                println!("{user}\t{}", mechs.join(","));
            }
            Ok(())
        }
    }
}

async fn alter_online(conn: &Conn, req: AlterUserScramCredentialsRequest) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let r = c.call(&req, 0).await?;
    for res in &r.results {
        check(res.error_code, res.error_message.as_ref(), &format!("user {}", res.user.as_str()))?;
        println!("{}", res.user.as_str());
    }
    Ok(())
}

/// Runs `f` on the users `offline` names: a cluster's in etcd, or a stopped node's (its storage
/// opened, locked against a running node, and closed after).
async fn offline_users<F, Fut>(offline: &Offline, f: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Users>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use crate::security::store::{SecurityStore, SharedKv};
    let Some(dir) = &offline.data_dir else {
        let etcd = crate::cluster::etcd::Etcd::new(&offline.etcd_endpoints, std::time::Duration::from_secs(10))?;
        let store = SecurityStore::Shared(SharedKv::open(etcd, &offline.cluster_name).await?);
        return f(Arc::new(Users::open(Arc::new(store)).await?)).await;
    };
    let overrides = vec![("data_dir".to_string(), toml::Value::String(dir.display().to_string()))];
    let (settings, _) = Settings::load(offline.config.as_deref(), std::env::vars(), overrides).map_err(anyhow::Error::msg)?;
    let _lock = lock_data_dir(&settings.data_dir)?;
    let url = settings.object_store_url().map_err(anyhow::Error::msg)?;
    let store = floe_s3stream::store::open(&url, Default::default())?;
    let engine = floe_s3stream::Engine::open(settings.engine_config(), store).await?;
    let users = Arc::new(Users::open(Arc::new(SecurityStore::Engine(engine.clone()))).await?);
    let r = f(users).await;
    engine.close().await?;
    r
}
