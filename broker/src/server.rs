//! The Kafka listener: accepts connections up to `connections_max` and serves each on its own task.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection;

/// How long shutdown waits for connections to answer what they have read.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Accepts until `shutdown` turns true, then waits for open connections to finish.
pub async fn run(b: Arc<Broker>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(b.settings.connections_max.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let (b, rx) = (b.clone(), shutdown.clone());
                        tasks.spawn(async move {
                            connection::serve(b, stream, peer, rx).await;
                            drop(slot);
                        });
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
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await;
}
