//! One client connection: frames read with a size cap, decoded, dispatched in arrival order;
//! responses written in the same order while later requests are already being read.
//!
//! Bounded: request size (`socket_request_max_bytes`, less before SASL authentication), requests
//! and request bytes in flight (`connection_inflight_*`), idle time. A malformed or oversized
//! request, or one the connection's authentication state does not allow, closes this connection
//! with a logged reason; other connections carry on. The stream is plain TCP or TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::decode;
use crate::handlers;
use crate::security::sasl::{Session, Step};

/// A byte stream (TCP or TLS): what the listeners serve and the admin client speaks over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The reading half of a connection (TCP or TLS).
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection (TCP or TLS).
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Longest wait for the rest of a request once its size was read.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a connection was closed.
#[derive(Debug)]
enum Close {
    Quiet,
    Reason(String),
}

/// Serves one connection until the client leaves, misbehaves, or the node shuts down.
pub async fn serve(b: Arc<Broker>, (mut rd, mut wr): (Reader, Writer), peer: SocketAddr, mut session: Session, mut shutdown: watch::Receiver<bool>) {
    let s = &b.settings;
    let (tx, mut rx) = mpsc::channel::<oneshot::Receiver<Option<Bytes>>>(s.connection_inflight_requests_max.max(1));
    let writer = tokio::spawn(async move {
        while let Some(next) = rx.recv().await {
            match next.await {
                Ok(Some(buf)) => {
                    if wr.write_all(&buf).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        let _ = wr.shutdown().await;
    });
    let inflight_cap = crate::broker::inflight_permits(s.connection_inflight_bytes_max.0);
    let inflight = Arc::new(Semaphore::new(inflight_cap as usize));
    let why = loop {
        match read_one(&b, &mut rd, &mut shutdown, &inflight, inflight_cap, &tx, peer, &mut session).await {
            Ok(()) => {}
            Err(c) => break c,
        }
    };
    match why {
        Close::Quiet => tracing::debug!(%peer, "connection closed"),
        Close::Reason(r) => tracing::warn!(%peer, listener = %session.listener.name, principal = %session.principal(), reason = %r, "closing connection"),
    }
    drop(tx);
    let _ = writer.await;
}

#[allow(clippy::too_many_arguments)]
async fn read_one(
    b: &Arc<Broker>,
    rd: &mut Reader,
    shutdown: &mut watch::Receiver<bool>,
    inflight: &Arc<Semaphore>,
    inflight_cap: u32,
    tx: &mpsc::Sender<oneshot::Receiver<Option<Bytes>>>,
    peer: SocketAddr,
    session: &mut Session,
) -> Result<(), Close> {
    let s = &b.settings;
    let mut len = [0u8; 4];
    let idle = Duration::from_millis(s.connections_idle_ms.0.max(1));
    tokio::select! {
        r = tokio::time::timeout(idle, rd.read_exact(&mut len)) => match r {
            Err(_) => return Err(Close::Reason("idle timeout".into())),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Close::Quiet),
            Ok(Err(e)) => return Err(Close::Reason(format!("read failed: {e}"))),
            Ok(Ok(_)) => {}
        },
        _ = shutdown.changed() => return Err(Close::Quiet),
    }
    let size = i32::from_be_bytes(len);
    let size_max = session.request_bytes_max(s.socket_request_max_bytes.0);
    let size_min = if session.expects_raw_token() { 1 } else { 8 };
    if size < size_min || size as u64 > size_max {
        return Err(Close::Reason(format!("request size {size} is outside {size_min}..={size_max}")));
    }
    // Room in this connection's budget before the body is read; the node's once its first byte is in.
    let permit = inflight.clone().acquire_many_owned((size as u32).min(inflight_cap)).await.map_err(|_| Close::Reason("in-flight limiter closed".into()))?;
    let (body, node_permit) = match tokio::time::timeout(BODY_TIMEOUT, read_body(b, rd, size as usize)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(Close::Reason(format!("request body cut short: {e}"))),
        Err(_) => return Err(Close::Reason("request body timed out".into())),
    };
    let received = std::time::Instant::now();
    if session.expects_raw_token() {
        let reply = session.raw_token(b, &body, b.clock.now_ms()).map_err(Close::Reason)?;
        let mut out = BytesMut::with_capacity(reply.len() + 4);
        out.put_u32(reply.len() as u32);
        out.put_slice(&reply);
        return send(tx, Some(out.freeze())).await;
    }
    let (api, version, correlation, header, req) = match decode::frame(body.freeze()).map_err(Close::Reason)? {
        decode::Frame::Request { api, version, correlation, header, body } => (api, version, correlation, header, *body),
        decode::Frame::UnsupportedApiVersions { correlation } => {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and the ranges, so the client can retry.
            let resp = ResponseKind::ApiVersions(handlers::meta_api_versions_unsupported());
            let out = encode(ApiKey::ApiVersions, 0, correlation, resp).map_err(Close::Reason)?;
            send(tx, Some(out)).await?;
            return Ok(());
        }
    };
    let req = match session.step(b, api, version, req, b.clock.now_ms()) {
        Step::Dispatch(req) => req,
        Step::Reply(resp) => return send(tx, Some(encode(api, version, correlation, resp).map_err(Close::Reason)?)).await,
        Step::ReplyAndClose(resp, why) => {
            send(tx, Some(encode(api, version, correlation, resp).map_err(Close::Reason)?)).await?;
            return Err(Close::Reason(why));
        }
        Step::Close(why) => return Err(Close::Reason(why)),
    };
    let reply = handlers::dispatch(b, &header, req, peer, session).await;
    let (otx, orx) = oneshot::channel();
    tx.send(orx).await.map_err(|_| Close::Quiet)?;
    let b = b.clone();
    tokio::spawn(async move {
        let out = match reply.await {
            Some(resp) => match encode(api, version, correlation, resp) {
                Ok(buf) => Some(buf),
                Err(e) => {
                    tracing::error!(%peer, api = ?api, version, error = %e, "response could not be encoded");
                    None
                }
            },
            None => None,
        };
        b.request_metrics.observe(api, received.elapsed());
        let _ = otx.send(out);
        drop((permit, node_permit));
    });
    Ok(())
}

/// Reads a body of `size` bytes. Room in the node's request budget is taken for the whole body
/// at once (piecewise grants would let partial requests wait on each other forever), but only once
/// its first bytes have arrived, and the buffer grows as bytes arrive: a client that announces a
/// large frame and sends nothing holds neither memory nor budget.
async fn read_body(b: &Broker, rd: &mut Reader, size: usize) -> std::io::Result<(BytesMut, OwnedSemaphorePermit)> {
    const READ_CHUNK_BYTES: usize = 256 << 10;
    let first = rd.read_u8().await?;
    let node_cap = crate::broker::inflight_permits(b.settings.requests_inflight_bytes_max.0.max(b.settings.socket_request_max_bytes.0));
    let held =
        b.requests_inflight.clone().acquire_many_owned((size as u32).min(node_cap)).await.map_err(|_| std::io::Error::other("node request budget closed"))?;
    let mut body = BytesMut::new();
    body.reserve(size.min(READ_CHUNK_BYTES));
    body.put_u8(first);
    while body.len() < size {
        body.reserve((size - body.len()).min(READ_CHUNK_BYTES));
        let room = (size - body.len()).min(body.capacity() - body.len());
        if rd.read_buf(&mut (&mut body).limit(room)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok((body, held))
}

async fn send(tx: &mpsc::Sender<oneshot::Receiver<Option<Bytes>>>, out: Option<Bytes>) -> Result<(), Close> {
    let (otx, orx) = oneshot::channel();
    let _ = otx.send(out);
    tx.send(orx).await.map_err(|_| Close::Quiet)
}

/// Encodes a response with its size prefix and header.
pub fn encode(api: ApiKey, version: i16, correlation: i32, resp: ResponseKind) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation;
    header.encode(&mut buf, api.response_header_version(version)).map_err(|e| e.to_string())?;
    resp.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}
