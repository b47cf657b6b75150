//! Requests to the other brokers of the cluster (Table Topic reads, transaction markers and checks): Kafka requests over each broker's first listener, one idle connection kept per broker.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::protocol::Request;

use super::Cluster;
use crate::cli::command_config::ClientSecurity;
use crate::cli::kafka::Client;

/// How long one request to another broker may take.
const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Connections to the other brokers, idle ones kept (at most one per broker).
#[derive(Default)]
pub struct Peers {
    idle: parking_lot::Mutex<HashMap<i32, Client>>,
    /// How to connect (TLS, SASL) and on which listener, from the settings (`configure`).
    how: std::sync::OnceLock<(ClientSecurity, Option<String>)>,
}

impl Peers {
    /// Connects with `security` on listener `listener` (each broker's first when `None`).
    pub fn configure(&self, security: ClientSecurity, listener: Option<String>) {
        let _ = self.how.set((security, listener));
    }

    /// The listener brokers reach each other on, when one is named.
    pub fn listener(&self) -> Option<&str> {
        self.how.get().and_then(|(_, l)| l.as_deref())
    }

    /// One request to `node` on `listener` (its name; the broker's first listener when it has
    /// none of that name): on an idle connection — once more on a new one if that fails, the
    /// broker may have closed it meanwhile — or on a new one, kept for the next request unless
    /// it failed.
    pub async fn call<R: Request>(&self, c: &Cluster, listener: &str, node: i32, req: &R, version: i16) -> Result<R::Response, String> {
        let idle = self.idle.lock().remove(&node);
        if let Some(mut client) = idle {
            if let Ok(resp) = client.call(req, version).await {
                self.idle.lock().insert(node, client);
                return Ok(resp);
            }
        }
        let (host, port) = c.address_of(node, listener).ok_or_else(|| format!("broker {node} is not live"))?;
        let plain = ClientSecurity::default();
        let security = self.how.get().map_or(&plain, |(s, _)| s);
        let mut client = Client::connect_secured(&format!("{host}:{port}"), Duration::from_millis(REQUEST_TIMEOUT_MS), security)
            .await
            .map_err(|e| format!("broker {node}: {e:#}"))?;
        let resp = client.call(req, version).await.map_err(|e| format!("broker {node}: {e:#}"))?;
        self.idle.lock().insert(node, client);
        Ok(resp)
    }
}

/// One request from this broker to `node`, on the inter-broker listener (named by
/// `inter_broker_listener_name`, else the one this broker lists first).
pub async fn request<R: Request>(b: &crate::broker::Broker, node: i32, req: &R, version: i16) -> Result<R::Response, String> {
    let c = b.cluster.as_ref().ok_or("not in a cluster")?;
    let listener = match c.peers.listener() {
        Some(l) => l.to_string(),
        None => b.listeners.read().first().map(|l| l.name.clone()).unwrap_or_default(),
    };
    c.peers.call(c, &listener, node, req, version).await
}
