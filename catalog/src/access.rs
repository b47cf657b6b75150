//! Table permissions of the REST catalog: who called (from the auth layer) and an injected check of what a caller may do with a table, from its properties.

use std::collections::HashMap;

/// Decides whether a caller may read or change a table (the broker: its ACLs on the topic a
/// Table Topic's table belongs to).
pub trait TableAccess: Send + Sync {
    /// Whether `principal` may read (`change` false) or change the table with `properties`.
    fn allowed(&self, principal: &str, change: bool, properties: &HashMap<String, String>) -> bool;
}

/// Who made a request: `None` when the catalog is open or the static token (the operator's) was
/// presented; a principal (`User:<client id>`) for a token issued by `/v1/oauth/tokens`.
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<String>);
