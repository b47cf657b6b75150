//! `floe partition list|move`: partition assignments of a cluster, read and changed in etcd.

use std::time::{Duration, Instant};

use clap::Subcommand;
use serde::Serialize;

use super::broker::ClusterConn;
use super::render;
use crate::cluster::{etcd::Etcd, membership, placement};

#[derive(Subcommand)]
pub enum PartitionCommand {
    /// Every partition (of TOPIC): its owner, leader epoch and any move asked for.
    List {
        topic: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Moves TOPIC:PARTITION to broker N: its owner hands the stream over, no data is copied.
    Move {
        /// TOPIC:PARTITION
        partition: String,
        /// The broker to move it to.
        #[arg(long)]
        to: i32,
        /// Wait until the new owner has it.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
}

#[derive(Serialize)]
struct Row {
    topic: String,
    partition: i32,
    owner: i32,
    leader_epoch: i32,
    target: Option<i32>,
}

fn split(spec: &str) -> anyhow::Result<(String, i32)> {
    let (t, p) = spec.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("give TOPIC:PARTITION, not {spec:?}"))?;
    Ok((t.to_string(), p.parse().map_err(|_| anyhow::anyhow!("{p:?} is not a partition number"))?))
}

pub async fn run(conn: &ClusterConn, cmd: PartitionCommand) -> anyhow::Result<()> {
    let etcd = Etcd::new(&conn.etcd_endpoints, Duration::from_millis(conn.etcd_timeout_ms))?;
    let cluster = &conn.cluster_name;
    match cmd {
        PartitionCommand::List { topic, json } => {
            let p = placement::read(&etcd, cluster).await?;
            let rows: Vec<Row> = p
                .partitions
                .iter()
                .filter(|(t, _)| topic.as_ref().is_none_or(|want| want == *t))
                .flat_map(|(t, parts)| {
                    parts.iter().map(|(&i, a)| Row {
                        topic: t.clone(),
                        partition: i,
                        owner: a.value.owner,
                        leader_epoch: a.value.leader_epoch,
                        target: a.value.target,
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.topic.clone(),
                            r.partition.to_string(),
                            r.owner.to_string(),
                            r.leader_epoch.to_string(),
                            r.target.map_or(String::new(), |t| format!("→ {t}")),
                        ]
                    })
                    .collect();
                print!("{}", render::table(&["TOPIC", "PARTITION", "OWNER", "EPOCH", "MOVING"], &cells));
            }
        }
        PartitionCommand::Move { partition, to, wait, timeout_ms } => {
            let (topic, index) = split(&partition)?;
            if !membership::list(&etcd, cluster).await?.iter().any(|b| b.record.node_id == to) {
                anyhow::bail!("broker {to} is not a live broker of cluster {cluster}");
            }
            let started = Instant::now();
            let asked = placement::request_move(&etcd, cluster, &topic, index, to).await?;
            if !wait || asked.target.is_none() {
                println!("{topic}:{index} owner {} → {to} asked", asked.owner);
                return Ok(());
            }
            let key = placement::partition_key(cluster, &topic, index);
            loop {
                if let Some(kv) = etcd.get(&key).await? {
                    let a: placement::Assignment = serde_json::from_slice(&kv.value)?;
                    if a.owner == to {
                        println!("{topic}:{index} moved to {to} at leader epoch {} in {} ms", a.leader_epoch, started.elapsed().as_millis());
                        return Ok(());
                    }
                    if a.target != Some(to) {
                        anyhow::bail!("the move of {topic}:{index} was replaced: {a:?}");
                    }
                }
                if started.elapsed() > Duration::from_millis(timeout_ms) {
                    anyhow::bail!("{topic}:{index} has not moved to {to} after {timeout_ms} ms");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Ok(())
}
