//! Binding the Kafka listeners at start: each `NAME://host:port` bound, its TLS loaded, and a warning for every port open beyond loopback without protection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::security::listeners::{self, Listener, SecurityProtocol};
use crate::security::tls::Tls;
use crate::settings::Settings;

/// A bound Kafka listener, not yet accepting.
pub struct Bound {
    pub tcp: TcpListener,
    pub listener: Arc<Listener>,
    pub addr: SocketAddr,
}

/// The Kafka listeners, bound, and the TLS configuration if any of them uses TLS.
pub async fn bind(s: &Settings) -> anyhow::Result<(Vec<Bound>, Option<Arc<Tls>>)> {
    let specs = listeners::specs(s).map_err(anyhow::Error::msg)?;
    let tls = match specs.iter().any(|l| l.protocol.tls()) {
        true => Some(Tls::load(&s.tls, &s.ssl_principal_mapping_rules).map_err(|e| anyhow::anyhow!("TLS: {e}"))?),
        false => None,
    };
    let mut out = Vec::new();
    for spec in &specs {
        let addr = if spec.bind.starts_with(':') { format!("0.0.0.0{}", spec.bind) } else { spec.bind.clone() };
        let tcp = TcpListener::bind(&addr).await.map_err(|e| anyhow::anyhow!("binding Kafka listener {} on {addr}: {e}", spec.name))?;
        let bound = tcp.local_addr()?;
        out.push(Bound { tcp, listener: Listener::new(spec, bound), addr: bound });
    }
    Ok((out, tls))
}

/// Starts accepting on every listener (and reloading TLS files); the handles end after `shutdown`.
pub fn start(b: &Arc<Broker>, bound: Vec<Bound>, tls: Option<Arc<Tls>>, shutdown: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    *b.listeners.write() = bound.iter().map(|l| l.listener.clone()).collect();
    let mut tasks: Vec<JoinHandle<()>> = bound
        .into_iter()
        .map(|l| {
            let t = if l.listener.protocol.tls() { tls.clone() } else { None };
            tokio::spawn(crate::server::run(b.clone(), l.tcp, l.listener, t, shutdown.clone()))
        })
        .collect();
    if let Some(tls) = tls {
        let reloader = tls.spawn_reloader();
        let mut stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let _ = stop.changed().await;
            reloader.abort();
        }));
    }
    tasks
}

/// `NAME://addr,…` of the bound listeners, for the start-up line.
pub fn describe(bound: &[Bound]) -> String {
    bound.iter().map(|l| format!("{}://{}", l.listener.name, l.addr)).collect::<Vec<_>>().join(",")
}

/// Logs a warning for each listener reachable beyond loopback that lets anyone in, or that
/// carries passwords in the clear.
pub fn warn_exposure(s: &Settings, bound: &[Bound], http: &[(&str, SocketAddr, bool)]) {
    for l in bound.iter().filter(|l| !l.addr.ip().is_loopback()) {
        match l.listener.protocol {
            SecurityProtocol::Plaintext => tracing::warn!(
                listener = %l.listener.name, addr = %l.addr,
                "Kafka listener {} on {} is PLAINTEXT beyond loopback: anyone who reaches it can read, write, alter and delete every topic and group",
                l.listener.name, l.addr
            ),
            SecurityProtocol::Ssl => tracing::warn!(
                listener = %l.listener.name, addr = %l.addr,
                "Kafka listener {} on {} is SSL without SASL: traffic is encrypted, but every client that completes TLS is served",
                l.listener.name, l.addr
            ),
            SecurityProtocol::SaslPlaintext if s.sasl_enabled_mechanisms.iter().any(|m| m.eq_ignore_ascii_case("PLAIN")) => tracing::warn!(
                listener = %l.listener.name, addr = %l.addr,
                "Kafka listener {} on {} is SASL_PLAINTEXT with PLAIN enabled: passwords cross the network in the clear",
                l.listener.name, l.addr
            ),
            _ => {}
        }
    }
    for (what, addr, protected) in http {
        if !addr.ip().is_loopback() && !protected {
            tracing::warn!(service = what, %addr, "the {what} on {addr} is reachable beyond loopback without credentials or TLS");
        }
    }
}
