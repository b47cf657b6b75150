//! Kafka's ACL model: resources (literal or prefixed patterns), principals, hosts, operations, allow and deny; the decision rule and the filters of DescribeAcls/DeleteAcls.

use serde::{Deserialize, Serialize};

/// A resource type (Kafka's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    pub fn from_code(c: i8) -> Option<Self> {
        [ResourceType::Topic, ResourceType::Group, ResourceType::Cluster, ResourceType::TransactionalId].into_iter().find(|t| t.code() == c)
    }

    /// The name Kafka's tools print.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
            ResourceType::TransactionalId => "TransactionalId",
        }
    }
}

/// How a binding's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    /// The name itself (`*`: every resource of the type).
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }
}

/// An operation (Kafka's codes 2..=12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

const OPERATIONS: [Operation; 11] = [
    Operation::All,
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

impl Operation {
    pub fn code(self) -> i8 {
        OPERATIONS.iter().position(|o| *o == self).map_or(0, |i| i as i8 + 2)
    }

    pub fn from_code(c: i8) -> Option<Self> {
        usize::try_from(c.checked_sub(2)?).ok().and_then(|i| OPERATIONS.get(i)).copied()
    }

    /// Kafka's name (`Read`, `DescribeConfigs`…), case-insensitive, `_` allowed.
    pub fn parse(s: &str) -> Option<Self> {
        let want = s.replace('_', "").to_ascii_lowercase();
        OPERATIONS.into_iter().find(|o| format!("{o:?}").to_ascii_lowercase() == want)
    }

    /// The operations whose grant also grants this one (Kafka's implication rules).
    pub fn granted_by(self) -> &'static [Operation] {
        match self {
            Operation::Describe => &[Operation::Describe, Operation::Read, Operation::Write, Operation::Delete, Operation::Alter, Operation::All],
            Operation::DescribeConfigs => &[Operation::DescribeConfigs, Operation::AlterConfigs, Operation::All],
            Operation::Read => &[Operation::Read, Operation::All],
            Operation::Write => &[Operation::Write, Operation::All],
            Operation::Create => &[Operation::Create, Operation::All],
            Operation::Delete => &[Operation::Delete, Operation::All],
            Operation::Alter => &[Operation::Alter, Operation::All],
            Operation::ClusterAction => &[Operation::ClusterAction, Operation::All],
            Operation::AlterConfigs => &[Operation::AlterConfigs, Operation::All],
            Operation::IdempotentWrite => &[Operation::IdempotentWrite, Operation::All],
            Operation::All => &[Operation::All],
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
}

/// One ACL: who may (or may not) do what to which resources, from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub resource_name: String,
    /// `User:name`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*` for any.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Every resource name, in a literal binding.
pub const WILDCARD: &str = "*";
/// The cluster resource's one name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

impl AclBinding {
    /// Whether the binding's resource pattern covers resource `name` of `t`.
    pub fn covers(&self, t: ResourceType, name: &str) -> bool {
        self.resource_type == t
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// Whether the binding names this principal (or every one) at this host (or any).
    pub fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*") && (self.host == host || self.host == WILDCARD)
    }

    /// Why the binding cannot be stored, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("an empty resource name".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!("the cluster resource is named {CLUSTER_NAME:?}"));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return Err("a prefixed pattern of \"*\" (use a literal \"*\")".into());
        }
        if !self.principal.starts_with("User:") || self.principal.len() == 5 {
            return Err(format!("principal {:?} is not User:name", self.principal));
        }
        if self.host.is_empty() || (self.host != WILDCARD && self.host.parse::<std::net::IpAddr>().is_err()) {
            return Err(format!("host {:?} is not an IP address or *", self.host));
        }
        Ok(())
    }
}

/// The decision for `principal` at `host` doing `op` on resource `name` of type `t`, given every
/// binding: deny wins over allow; no binding covering the resource at all means `if_none`. An
/// unknown host (`None`: a caller whose address the service does not see) is judged
/// conservatively: denials for any host apply, allowances only for every host (`*`).
pub fn decide<'a>(
    bindings: impl IntoIterator<Item = &'a AclBinding>,
    principal: &str,
    host: Option<&str>,
    op: Operation,
    t: ResourceType,
    name: &str,
    if_none: bool,
) -> bool {
    let mut covered = false;
    let mut allowed = false;
    for b in bindings.into_iter().filter(|b| b.covers(t, name)) {
        covered = true;
        let applies = match host {
            Some(h) => b.applies_to(principal, h),
            None => (b.principal == principal || b.principal == "User:*") && (b.permission == Permission::Deny || b.host == WILDCARD),
        };
        if !applies {
            continue;
        }
        match b.permission {
            Permission::Deny if b.operation == op || b.operation == Operation::All => return false,
            Permission::Deny => {}
            Permission::Allow => allowed |= op.granted_by().contains(&b.operation),
        }
    }
    if covered {
        allowed
    } else {
        if_none
    }
}

/// A filter of DescribeAcls and DeleteAcls: `None` fields match anything.
#[derive(Debug, Clone, Default)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    /// `None`: any; `Some(None)`: MATCH (bindings that would apply to the name); `Some(Some(p))`: that pattern type.
    pub pattern: Option<Option<PatternType>>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// From Kafka's filter codes; an error names what is not understood.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, String> {
        let resource_type = match resource_type {
            1 => None,
            c => Some(ResourceType::from_code(c).ok_or_else(|| format!("resource type {c}"))?),
        };
        let pattern = match pattern_type {
            1 => None,
            2 => Some(None),
            3 => Some(Some(PatternType::Literal)),
            4 => Some(Some(PatternType::Prefixed)),
            c => return Err(format!("pattern type {c}")),
        };
        let operation = match operation {
            1 => None,
            c => Some(Operation::from_code(c).ok_or_else(|| format!("operation {c}"))?),
        };
        let permission = match permission {
            1 => None,
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            c => return Err(format!("permission type {c}")),
        };
        Ok(AclFilter {
            resource_type,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    /// Whether `b` passes the filter.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource = match (&self.pattern, &self.resource_name) {
            (Some(None), Some(name)) => {
                self.resource_type.is_none_or(|t| b.covers(t, name)) && (self.resource_type.is_some() || b.covers(b.resource_type, name))
            }
            (Some(Some(p)), name) => b.pattern_type == *p && name.as_ref().is_none_or(|n| *n == b.resource_name),
            (_, name) => name.as_ref().is_none_or(|n| *n == b.resource_name),
        };
        resource
            && self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

#[cfg(test)]
mod tests;
