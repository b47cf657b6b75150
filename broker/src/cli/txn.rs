//! `floe txn list|describe`: transactions of a running node (ListTransactions, DescribeTransactions).

use anyhow::anyhow;
use clap::Subcommand;
use kafka_protocol::messages::{DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId};
use serde::Serialize;

use super::kafka::{check, Conn};
use super::render;
use crate::handlers::sb;

#[derive(Subcommand)]
pub enum TxnCommand {
    /// List transactional ids with their producer and state.
    List {
        /// Only ids in this state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort); repeatable.
        #[arg(long)]
        state: Vec<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One transactional id: state, producer, timeout, start and the partitions of its open transaction.
    Describe {
        transactional_id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Row {
    transactional_id: String,
    producer_id: i64,
    state: String,
}

#[derive(Serialize)]
struct Description {
    transactional_id: String,
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    start_ms: i64,
    partitions: Vec<(String, i32)>,
}

pub async fn run(conn: &Conn, cmd: TxnCommand) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    match cmd {
        TxnCommand::List { state, json } => {
            let req = ListTransactionsRequest::default().with_state_filters(state.iter().map(|s| sb(s)).collect()).with_duration_filter(-1);
            let resp = c.call(&req, 1).await?;
            check(resp.error_code, None, "listing transactions")?;
            if !resp.unknown_state_filters.is_empty() {
                return Err(anyhow!("unknown states: {:?}", resp.unknown_state_filters.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
            }
            let rows: Vec<Row> = resp
                .transaction_states
                .iter()
                .map(|t| Row { transactional_id: t.transactional_id.to_string(), producer_id: t.producer_id.0, state: t.transaction_state.to_string() })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let cells: Vec<Vec<String>> = rows.iter().map(|r| vec![r.transactional_id.clone(), r.producer_id.to_string(), r.state.clone()]).collect();
                print!("{}", render::table(&["TRANSACTIONAL ID", "PRODUCER ID", "STATE"], &cells));
            }
        }
        TxnCommand::Describe { transactional_id, json } => {
            let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(sb(&transactional_id))]);
            let resp = c.call(&req, 0).await?;
            let t = resp.transaction_states.into_iter().next().ok_or_else(|| anyhow!("{transactional_id}: no answer"))?;
            check(t.error_code, None, &transactional_id)?;
            let d = Description {
                transactional_id,
                state: t.transaction_state.to_string(),
                producer_id: t.producer_id.0,
                producer_epoch: t.producer_epoch,
                timeout_ms: t.transaction_timeout_ms,
                start_ms: t.transaction_start_time_ms,
                partitions: t.topics.iter().flat_map(|x| x.partitions.iter().map(|p| (x.topic.to_string(), *p))).collect(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                println!(
                    "transactional id {}: {} (producer {} epoch {}, timeout {} ms, started {})",
                    d.transactional_id,
                    d.state,
                    d.producer_id,
                    d.producer_epoch,
                    d.timeout_ms,
                    if d.start_ms < 0 { "-".to_string() } else { d.start_ms.to_string() }
                );
                let cells: Vec<Vec<String>> = d.partitions.iter().map(|(t, p)| vec![t.clone(), p.to_string()]).collect();
                if !cells.is_empty() {
                    print!("{}", render::table(&["TOPIC", "PARTITION"], &cells));
                }
            }
        }
    }
    Ok(())
}
