//! TLS for the HTTP listeners (Schema Registry, catalog, admin): an axum `Listener` whose connections have completed a TLS handshake, each handshake on its own task so that a slow client cannot stall the others.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;

use super::tls::Tls;
use super::SecurityMetrics;

/// Longest a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once on one listener.
const HANDSHAKES_MAX: usize = 256;

/// A TCP listener whose accepted connections are TLS streams.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl TlsListener {
    /// Accepts on `tcp` and completes TLS with `tls`'s current configuration.
    pub fn new(tcp: TcpListener, tls: Arc<Tls>, metrics: Arc<SecurityMetrics>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "HTTPS connection refused: too many handshakes in progress");
                    continue;
                };
                let (tx, acceptor, metrics) = (tx.clone(), tls.acceptor(), metrics.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Ok(Err(e)) => {
                            metrics.tls_handshake_failures.fetch_add(1, Relaxed);
                            tracing::info!(%peer, error = %e, "HTTPS handshake failed");
                        }
                        Err(_) => {
                            metrics.tls_handshake_failures.fetch_add(1, Relaxed);
                            tracing::info!(%peer, "HTTPS handshake timed out");
                        }
                    }
                    drop(slot);
                });
            }
        });
        Ok(TlsListener { ready, local, acceptor })
    }
}

impl TlsListener {
    /// The next connection that completed its handshake.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The acceptor task ended (only on drop): nothing more will come.
            None => std::future::pending().await,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        TlsListener::accept(self).await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// An HTTP listener, plain or TLS as its setting says.
pub enum HttpListener {
    Plain(TcpListener),
    Tls(TlsListener),
}

impl HttpListener {
    /// `tcp` as is, or with TLS when `tls` is given.
    pub fn new(tcp: TcpListener, tls: Option<Arc<Tls>>, metrics: Arc<SecurityMetrics>) -> std::io::Result<HttpListener> {
        Ok(match tls {
            None => HttpListener::Plain(tcp),
            Some(t) => HttpListener::Tls(TlsListener::new(tcp, t, metrics)?),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            HttpListener::Plain(_) => "http",
            HttpListener::Tls(_) => "https",
        }
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = Box<dyn crate::connection::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            HttpListener::Plain(l) => {
                let (s, a) = axum::serve::Listener::accept(l).await;
                (Box::new(s), a)
            }
            HttpListener::Tls(l) => {
                let (s, a) = l.accept().await;
                (Box::new(s), a)
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match self {
            HttpListener::Plain(l) => l.local_addr(),
            HttpListener::Tls(l) => axum::serve::Listener::local_addr(l),
        }
    }
}
