//! Credentials on the HTTP services: the Schema Registry's HTTP Basic (a SCRAM user's password) and Bearer (an OAUTHBEARER token) checks, and the catalog's client credentials.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use floe_schema::registry::auth::{Access, Authenticator};

use crate::broker::Broker;

/// Longest Authorization header looked at.
const HEADER_BYTES_MAX: usize = 16 << 10;

/// The registry's authenticator: the node's users and token keys.
pub struct RegistryAuth(pub Arc<Broker>);

impl RegistryAuth {
    fn principal(&self, authorization: &str) -> Result<String, String> {
        let b = &self.0;
        if authorization.len() > HEADER_BYTES_MAX {
            return Err("an oversized Authorization header".into());
        }
        if let Some(basic) = authorization.strip_prefix("Basic ") {
            let raw = B64.decode(basic.trim()).map_err(|_| "Basic credentials are not base64".to_string())?;
            let text = String::from_utf8(raw).map_err(|_| "Basic credentials are not UTF-8".to_string())?;
            let (user, password) = text.split_once(':').ok_or("Basic credentials are not user:password")?;
            b.users.check_password(user, password)?;
            return Ok(format!("User:{user}"));
        }
        if let Some(token) = authorization.strip_prefix("Bearer ") {
            let v = b.oauth.as_ref().ok_or("Bearer tokens need sasl_oauthbearer_jwks_file")?;
            return v.check(token.trim(), b.clock.now_ms()).map(|g| format!("User:{}", g.subject));
        }
        Err("an Authorization header that is neither Basic nor Bearer".into())
    }
}

impl Authenticator for RegistryAuth {
    fn authenticate(&self, authorization: &str) -> Option<(String, Access)> {
        let b = &self.0;
        match self.principal(authorization) {
            Ok(p) => {
                b.security_metrics.authentications.fetch_add(1, Relaxed);
                let writer = b.settings.super_users.contains(&p) || b.settings.schema_registry_writers.contains(&p);
                Some((p, if writer { Access::ReadWrite } else { Access::Read }))
            }
            Err(reason) => {
                b.security_metrics.authentication_failures.fetch_add(1, Relaxed);
                tracing::info!(reason = %reason, "schema registry credentials refused");
                None
            }
        }
    }
}

/// The catalog's client credentials: a user's name and password.
pub struct CatalogClients(pub Arc<Broker>);

impl floe_catalog::tokens::ClientCredentials for CatalogClients {
    fn check(&self, client_id: &str, secret: &str) -> bool {
        let metrics = &self.0.security_metrics;
        match self.0.users.check_password(client_id, secret) {
            Ok(()) => {
                metrics.authentications.fetch_add(1, Relaxed);
                true
            }
            Err(reason) => {
                metrics.authentication_failures.fetch_add(1, Relaxed);
                tracing::info!(reason = %reason, "catalog client credentials refused");
                false
            }
        }
    }
}

/// The catalog's table permissions: a Table Topic's table (or its dead-letter table) follows its
/// topic's ACLs — reading needs Read on the topic, changing it Alter; other tables are any
/// authenticated caller's.
pub struct CatalogTables(pub Arc<Broker>);

impl floe_catalog::access::TableAccess for CatalogTables {
    fn allowed(&self, principal: &str, change: bool, properties: &std::collections::HashMap<String, String>) -> bool {
        use crate::security::acl::{Operation, ResourceType};
        let topic = properties.get(floe_table_topic::table::OWNER_KEY).or_else(|| properties.get(floe_table_topic::table::DLQ_OWNER_KEY));
        match topic {
            None => true,
            Some(t) => {
                let op = if change { Operation::Alter } else { Operation::Read };
                self.0.authorizer.authorize_from_anywhere(principal, op, ResourceType::Topic, t)
            }
        }
    }
}
