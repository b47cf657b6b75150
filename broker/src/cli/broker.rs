//! `floe broker list|drain|recover`: the live brokers of a cluster, read from etcd (node id, epoch, controller, listeners); giving up a lost file-WAL broker's unuploaded data.

use clap::Subcommand;

use super::render;
use crate::cluster::{etcd::Etcd, membership};

/// Where the cluster's etcd is.
#[derive(clap::Args, Clone)]
pub struct ClusterConn {
    /// etcd's client URLs, comma-separated.
    #[arg(long, global = true, default_value = "http://127.0.0.1:2379", env = "FLOE_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// The cluster's name.
    #[arg(long, global = true, default_value = "floe", env = "FLOE_CLUSTER_NAME")]
    pub cluster_name: String,
    /// How long one etcd request may take, in milliseconds.
    #[arg(long, global = true, default_value_t = 5_000)]
    pub etcd_timeout_ms: u64,
}

#[derive(Subcommand)]
pub enum BrokerCommand {
    /// The live brokers: node id, epoch (grows with each registration), the controller, advertised listeners.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Empties broker N (for scale-in): the controller moves its partitions to the others, a few
    /// at a time, and places nothing new on it.
    Drain {
        node: i32,
        /// Wait until N serves no partition.
        #[arg(long)]
        wait: bool,
        /// Stop draining N (it receives partitions again).
        #[arg(long)]
        cancel: bool,
        /// How long --wait waits, in milliseconds.
        #[arg(long, default_value_t = 600_000)]
        timeout_ms: u64,
    },
    /// Lets the controller take over lost broker N's partitions although it used a file WAL:
    /// what N had not uploaded yet is given up. (With the object WAL this happens by itself.)
    Recover {
        node: i32,
        /// Required: the acknowledgement that N's unuploaded data is lost.
        #[arg(long)]
        accept_loss: bool,
    },
}

pub async fn run(conn: &ClusterConn, cmd: BrokerCommand) -> anyhow::Result<()> {
    let etcd = Etcd::new(&conn.etcd_endpoints, std::time::Duration::from_millis(conn.etcd_timeout_ms))?;
    match cmd {
        BrokerCommand::List { json } => {
            let brokers = membership::list(&etcd, &conn.cluster_name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&brokers)?);
            } else {
                let rows: Vec<Vec<String>> = brokers
                    .iter()
                    .map(|b| {
                        let controller = b.controller_epoch.map_or(String::new(), |e| format!("yes (epoch {e})"));
                        vec![b.record.node_id.to_string(), b.epoch.to_string(), controller, b.record.listeners.join(",")]
                    })
                    .collect();
                print!("{}", render::table(&["NODE", "EPOCH", "CONTROLLER", "LISTENERS"], &rows));
            }
        }
        BrokerCommand::Drain { node, wait, cancel, timeout_ms } => {
            let key = crate::cluster::balance::drain_key(&conn.cluster_name, node);
            if cancel {
                etcd.delete(&key).await?;
                println!("broker {node} is no longer draining");
                return Ok(());
            }
            etcd.put(&key, b"drain").await?;
            println!("broker {node} is draining: the controller moves its partitions away");
            if wait {
                wait_drained(&etcd, &conn.cluster_name, node, timeout_ms).await?;
            }
        }
        BrokerCommand::Recover { node, accept_loss } => {
            if !accept_loss {
                anyhow::bail!("recovering broker {node} gives up what it had not uploaded: say so with --accept-loss");
            }
            if membership::list(&etcd, &conn.cluster_name).await?.iter().any(|b| b.record.node_id == node) {
                anyhow::bail!("broker {node} is live: nothing to recover");
            }
            etcd.put(&crate::cluster::recovery::accept_loss_key(&conn.cluster_name, node), b"accepted").await?;
            println!("the controller takes over broker {node}'s partitions from the bucket; its unuploaded data is given up");
        }
    }
    Ok(())
}

/// Waits until broker `node` serves no partition.
async fn wait_drained(etcd: &Etcd, cluster: &str, node: i32, timeout_ms: u64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let p = crate::cluster::placement::read(etcd, cluster).await?;
        let left = p.partitions.values().flat_map(|m| m.values()).filter(|a| a.value.owner == node).count();
        if left == 0 {
            println!("broker {node} serves no partition ({} ms)", started.elapsed().as_millis());
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_millis(timeout_ms) {
            anyhow::bail!("broker {node} still serves {left} partitions after {timeout_ms} ms");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
