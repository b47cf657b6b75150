//! Kafka security: named listeners, TLS, SASL (PLAIN, SCRAM), the SCRAM users they check, and ACLs.
//!
//! - [`http_auth`]: credentials on the Schema Registry (Basic, Bearer).
//! - [`listeners`]: `listeners`, `advertised_listeners`, `listener_security_protocol_map`.
//! - [`principal`]: client certificates' subjects as principals (`ssl_principal_mapping_rules`).
//! - [`tls`]: the rustls configuration of TLS listeners, reloaded when its files change.
//! - [`sasl`]: a connection's authentication state and the SASL exchange.
//! - [`oauth`]: OAUTHBEARER tokens (JWTs) checked against a JWKS file.
//! - [`scram`]: SCRAM credentials and both sides of the exchange.
//! - [`tls_listener`]: TLS for the HTTP listeners.
//! - [`users`]: SCRAM credentials, durable in the engine's metadata.
//! - [`acl`]: Kafka's ACL model and decision rule; [`authorizer`]: ACLs stored, requests decided.

pub mod acl;
pub mod authorizer;
pub mod http_auth;
pub mod listeners;
pub mod oauth;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod store;
pub mod tls;
pub mod tls_listener;
pub mod users;

use std::sync::atomic::AtomicU64;

/// Authentication counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SecurityMetrics {
    pub authentications: AtomicU64,
    pub authentication_failures: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
}
