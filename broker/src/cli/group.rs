//! `floe group list|describe`: consumer groups, their members and their lag per partition.

use std::collections::BTreeMap;

use anyhow::anyhow;
use clap::Subcommand;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetFetchRequest};
use serde::Serialize;

use super::kafka::{check, Client, Conn};
use super::render;
use super::topic::offsets;
use crate::handlers::sb;

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their states.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A group's state, members, and committed offsets with lag.
    Describe {
        group: String,
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct GroupRow {
    group: String,
    state: String,
    protocol_type: String,
}

#[derive(Serialize)]
struct Member {
    member_id: String,
    client_id: String,
    host: String,
}

#[derive(Serialize)]
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: i64,
    end_offset: i64,
    lag: i64,
}

#[derive(Serialize)]
struct Description {
    group: String,
    state: String,
    protocol: String,
    members: Vec<Member>,
    offsets: Vec<OffsetRow>,
}

pub async fn run(conn: &Conn, cmd: GroupCommand) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    match cmd {
        GroupCommand::List { json } => {
            let resp = c.call(&ListGroupsRequest::default(), 4).await?;
            check(resp.error_code, None, "listing groups")?;
            let mut rows: Vec<GroupRow> = resp
                .groups
                .iter()
                .map(|g| GroupRow { group: g.group_id.0.to_string(), state: g.group_state.to_string(), protocol_type: g.protocol_type.to_string() })
                .collect();
            rows.sort_by(|a, b| a.group.cmp(&b.group));
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let cells: Vec<Vec<String>> = rows.iter().map(|r| vec![r.group.clone(), r.state.clone(), r.protocol_type.clone()]).collect();
                print!("{}", render::table(&["GROUP", "STATE", "PROTOCOL TYPE"], &cells));
            }
        }
        GroupCommand::Describe { group, json } => {
            let d = describe(&mut c, &group).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                println!("group {}: {} ({} member(s), assignor {})", d.group, d.state, d.members.len(), if d.protocol.is_empty() { "-" } else { &d.protocol });
                let members: Vec<Vec<String>> = d.members.iter().map(|m| vec![m.member_id.clone(), m.client_id.clone(), m.host.clone()]).collect();
                if !members.is_empty() {
                    print!("{}", render::table(&["MEMBER", "CLIENT", "HOST"], &members));
                }
                let offsets: Vec<Vec<String>> = d
                    .offsets
                    .iter()
                    .map(|o| vec![o.topic.clone(), o.partition.to_string(), o.committed.to_string(), o.end_offset.to_string(), o.lag.to_string()])
                    .collect();
                println!();
                print!("{}", render::table(&["TOPIC", "PARTITION", "COMMITTED", "END OFFSET", "LAG"], &offsets));
            }
        }
    }
    Ok(())
}

async fn describe(c: &mut Client, group: &str) -> anyhow::Result<Description> {
    let resp = c.call(&DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]), 5).await?;
    let g = resp.groups.into_iter().next().ok_or_else(|| anyhow!("{group}: no answer"))?;
    check(g.error_code, g.error_message.as_ref(), group)?;
    let members =
        g.members.iter().map(|m| Member { member_id: m.member_id.to_string(), client_id: m.client_id.to_string(), host: m.client_host.to_string() }).collect();
    let fetched = c.call(&OffsetFetchRequest::default().with_group_id(GroupId(sb(group))).with_topics(None), 7).await?;
    check(fetched.error_code, None, &format!("offsets of {group}"))?;
    let mut committed: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for t in fetched.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                committed.entry(t.name.0.to_string()).or_default().push((p.partition_index, p.committed_offset));
            }
        }
    }
    let mut rows = Vec::new();
    for (topic, parts) in committed {
        let ids: Vec<i32> = parts.iter().map(|p| p.0).collect();
        let ends = offsets(c, &topic, &ids, -1).await?;
        for (p, off) in parts {
            let end = ends.iter().find(|e| e.0 == p).map_or(off, |e| e.1);
            rows.push(OffsetRow { topic: topic.clone(), partition: p, committed: off, end_offset: end, lag: (end - off).max(0) });
        }
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(Description { group: group.to_string(), state: g.group_state.to_string(), protocol: g.protocol_data.to_string(), members, offsets: rows })
}
