//! `floe acl add|list|remove`: ACLs of a running node over CreateAcls, DescribeAcls and DeleteAcls (as `kafka-acls.sh` does).

use anyhow::{anyhow, bail};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::kafka::{check, Conn};
use crate::security::acl::{Operation, PatternType, ResourceType, CLUSTER_NAME};

/// Which resource an ACL names.
#[derive(clap::Args, Clone, Debug)]
#[group(multiple = false)]
pub struct Resource {
    /// A topic (or, with --prefixed, a topic name prefix; `*`: every topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// A consumer group (or prefix).
    #[arg(long)]
    pub group: Option<String>,
    /// The cluster (topic creation, ACLs, users, broker configs, idempotent producers).
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (or prefix).
    #[arg(long)]
    pub transactional_id: Option<String>,
}

impl Resource {
    fn get(&self) -> Option<(ResourceType, String)> {
        match self {
            Resource { topic: Some(t), .. } => Some((ResourceType::Topic, t.clone())),
            Resource { group: Some(g), .. } => Some((ResourceType::Group, g.clone())),
            Resource { transactional_id: Some(x), .. } => Some((ResourceType::TransactionalId, x.clone())),
            Resource { cluster: true, .. } => Some((ResourceType::Cluster, CLUSTER_NAME.into())),
            _ => None,
        }
    }
}

/// One ACL as the command line gives it.
#[derive(clap::Args, Clone, Debug)]
pub struct Binding {
    /// Allow this principal (User:NAME, or User:* for everyone).
    #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
    pub allow: Option<String>,
    /// Deny this principal (deny wins over allow).
    #[arg(long)]
    pub deny: Option<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite or All.
    #[arg(long)]
    pub operation: String,
    #[command(flatten)]
    pub resource: Resource,
    /// The name is a prefix: the ACL covers every resource whose name starts with it.
    #[arg(long)]
    pub prefixed: bool,
    /// The client address the ACL applies to (default: any).
    #[arg(long, default_value = "*")]
    pub host: String,
}

#[derive(clap::Subcommand)]
pub enum AclCommand {
    /// Add an ACL.
    Add(Binding),
    /// List ACLs (all, or those of one resource).
    List {
        #[command(flatten)]
        resource: Resource,
    },
    /// Remove an ACL (the exact one given).
    Remove(Binding),
}

struct Parsed {
    resource: (ResourceType, String),
    pattern: PatternType,
    principal: String,
    permission: i8,
    operation: Operation,
    host: String,
}

fn parse(b: &Binding) -> anyhow::Result<Parsed> {
    let (principal, permission) = match (&b.allow, &b.deny) {
        (Some(p), None) => (p.clone(), 3),
        (None, Some(p)) => (p.clone(), 2),
        _ => bail!("give --allow or --deny"),
    };
    let operation = Operation::parse(&b.operation).ok_or_else(|| anyhow!("{:?} is not an ACL operation", b.operation))?;
    let resource = b.resource.get().ok_or_else(|| anyhow!("give --topic, --group, --cluster or --transactional-id"))?;
    let pattern = if b.prefixed { PatternType::Prefixed } else { PatternType::Literal };
    Ok(Parsed { resource, pattern, principal, permission, operation, host: b.host.clone() })
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Runs an ACL subcommand.
pub async fn run(conn: &Conn, cmd: AclCommand) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    match cmd {
        AclCommand::Add(b) => {
            let p = parse(&b)?;
            let mut a = AclCreation::default();
            a.resource_type = p.resource.0.code();
            a.resource_name = s(&p.resource.1);
            a.resource_pattern_type = p.pattern.code();
            a.principal = s(&p.principal);
            a.host = s(&p.host);
            a.operation = p.operation.code();
            a.permission_type = p.permission;
            let r = c.call(&CreateAclsRequest::default().with_creations(vec![a]), 3).await?;
            for x in &r.results {
                check(x.error_code, x.error_message.as_ref(), "adding the ACL")?;
            }
            println!("added");
        }
        AclCommand::Remove(b) => {
            let p = parse(&b)?;
            let mut f = DeleteAclsFilter::default();
            f.resource_type_filter = p.resource.0.code();
            f.resource_name_filter = Some(s(&p.resource.1));
            f.pattern_type_filter = p.pattern.code();
            f.principal_filter = Some(s(&p.principal));
            f.host_filter = Some(s(&p.host));
            f.operation = p.operation.code();
            f.permission_type = p.permission;
            let r = c.call(&DeleteAclsRequest::default().with_filters(vec![f]), 3).await?;
            let mut n = 0;
            for x in &r.filter_results {
                check(x.error_code, x.error_message.as_ref(), "removing the ACL")?;
                n += x.matching_acls.len();
            }
            if n == 0 {
                bail!("no such ACL");
            }
            println!("removed {n}");
        }
        AclCommand::List { resource } => {
            // (The protocol crate's defaults are empty strings, which would match nothing.)
            let mut req = DescribeAclsRequest::default();
            req.resource_name_filter = None;
            req.principal_filter = None;
            req.host_filter = None;
            req.resource_type_filter = 1;
            req.pattern_type_filter = 1;
            req.operation = 1;
            req.permission_type = 1;
            if let Some((t, name)) = resource.get() {
                req.resource_type_filter = t.code();
                req.resource_name_filter = Some(s(&name));
                req.pattern_type_filter = 2;
            }
            let r = c.call(&req, 3).await?;
            check(r.error_code, r.error_message.as_ref(), "listing ACLs")?;
            for res in &r.resources {
                let t = ResourceType::from_code(res.resource_type).map_or("?", ResourceType::name);
                let pattern = if res.pattern_type == PatternType::Prefixed.code() { "PREFIXED" } else { "LITERAL" };
                for a in &res.acls {
                    let op = Operation::from_code(a.operation).map_or_else(|| "?".to_string(), |o| format!("{o:?}"));
                    let perm = if a.permission_type == 2 { "DENY" } else { "ALLOW" };
                    println!("{t}:{pattern}:{}\t{}\t{perm}\t{op}\t{}", res.resource_name.as_str(), a.principal.as_str(), a.host.as_str());
                }
            }
        }
    }
    Ok(())
}
