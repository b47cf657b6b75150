//! A Kafka listener: accepts connections while the node has slots (`connections_max`, shared by all listeners), completes TLS where the listener uses it, and serves each on its own task.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection::{self, Reader, Writer};
use crate::security::listeners::Listener;
use crate::security::principal::subject;
use crate::security::sasl::Session;
use crate::security::tls::Tls;

/// How long shutdown waits for connections to answer what they have read.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts on `tcp` for `listener` until `shutdown` turns true, then waits for its connections
/// to finish. `tls` must be given for a TLS listener.
pub async fn run(b: Arc<Broker>, tcp: TcpListener, listener: Arc<Listener>, tls: Option<Arc<Tls>>, mut shutdown: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            r = tcp.accept() => match r {
                Ok((stream, peer)) => match b.connection_slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let (b, rx, listener, tls) = (b.clone(), shutdown.clone(), listener.clone(), tls.clone());
                        tasks.spawn(open(b, stream, peer, listener, tls, slot, rx));
                    }
                    Err(_) => tracing::warn!(%peer, max = b.settings.connections_max, "connection refused: too many connections"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(tcp);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await;
}

/// Completes TLS if the listener uses it, then serves the connection; the slot is held throughout.
async fn open(
    b: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    tls: Option<Arc<Tls>>,
    slot: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut cert_principal = None;
    let halves: (Reader, Writer) = match (listener.protocol.tls(), tls) {
        (false, _) => {
            let (rd, wr) = stream.into_split();
            (Box::new(rd), Box::new(wr))
        }
        (true, Some(tls)) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream)).await {
            Ok(Ok(s)) => {
                cert_principal = s.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| subject(c)).map(|dn| tls.principal(&dn));
                let (rd, wr) = tokio::io::split(s);
                (Box::new(rd), Box::new(wr))
            }
            Ok(Err(e)) => {
                b.security_metrics.tls_handshake_failures.fetch_add(1, Relaxed);
                tracing::info!(%peer, listener = %listener.name, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                b.security_metrics.tls_handshake_failures.fetch_add(1, Relaxed);
                tracing::info!(%peer, listener = %listener.name, "TLS handshake timed out");
                return;
            }
        },
        (true, None) => {
            tracing::error!(listener = %listener.name, "a TLS listener without a TLS configuration; connection closed");
            return;
        }
    };
    connection::serve(b, halves, peer, Session::new(listener, cert_principal), shutdown).await;
    drop(slot);
}
