//! A small Kafka client for the admin subcommands: one connection (plain or TLS, with SASL PLAIN
//! or SCRAM when `--command-config` says so), one request at a time, each bounded by a timeout
//! and a response size cap, errors named after the Kafka error code.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::command_config::ClientSecurity;
use crate::connection::Io;

/// The largest response the client accepts.
const RESPONSE_BYTES_MAX: usize = 128 << 20;
/// How long connecting may take.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Where the node is and how long a request may take (the admin subcommands' shared flags).
#[derive(clap::Args, Clone)]
pub struct Conn {
    /// A node's Kafka listener.
    #[arg(long, global = true, default_value = "127.0.0.1:9092", env = "FLOE_BOOTSTRAP")]
    pub bootstrap: String,
    /// How long one request may take, in milliseconds.
    #[arg(long, global = true, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Client properties as librdkafka takes them (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, `ssl.certificate.location`,
    /// `ssl.key.location`), one `key=value` per line.
    #[arg(long, global = true, env = "FLOE_COMMAND_CONFIG")]
    pub command_config: Option<std::path::PathBuf>,
}

impl Conn {
    /// A connection to the node, secured and authenticated as the command config says.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let security = match &self.command_config {
            Some(f) => ClientSecurity::from_file(f)?,
            None => ClientSecurity::default(),
        };
        Client::connect_secured(&self.bootstrap, Duration::from_millis(self.timeout_ms), &security).await
    }
}

/// One connection to a broker.
pub struct Client {
    stream: Box<dyn Io>,
    correlation_id: i32,
    timeout: Duration,
    addr: String,
}

impl Client {
    /// Connects to `addr` (`host:port`); each later request may take up to `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Client> {
        Self::connect_secured(addr, timeout, &ClientSecurity::default()).await
    }

    /// Connects to `addr` with TLS and SASL as `security` says.
    pub async fn connect_secured(addr: &str, timeout: Duration, security: &ClientSecurity) -> anyhow::Result<Client> {
        let tcp = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("cannot reach Kafka at {addr}: timed out"))?
            .with_context(|| format!("cannot reach Kafka at {addr}"))?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Io> = match security.tls_connector()? {
            None => Box::new(tcp),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(|c| c == '[' || c == ']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| anyhow!("TLS server name {host:?}: {e}"))?;
                let s = tokio::time::timeout(timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| anyhow!("TLS with {addr} timed out"))?
                    .with_context(|| format!("TLS with {addr}"))?;
                Box::new(s)
            }
        };
        let mut c = Client { stream, correlation_id: 0, timeout, addr: addr.to_string() };
        if let Some(sasl) = &security.sasl {
            super::command_config::authenticate(&mut c, sasl).await?;
        }
        Ok(c)
    }

    /// Sends `req` at `version` and waits for its response.
    pub async fn call<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("floe-cli")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).map_err(|e| anyhow!("encoding a request header: {e}"))?;
        req.encode(&mut body, version).map_err(|e| anyhow!("encoding a request: {e}"))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(i32::try_from(body.len()).context("request too large")?);
        frame.put_slice(&body);
        let addr = self.addr.clone();
        let mut resp = tokio::time::timeout(self.timeout, self.round_trip(&frame))
            .await
            .map_err(|_| anyhow!("Kafka at {addr} did not answer within {} ms", self.timeout.as_millis()))??;
        // Decoded as requests are: no count on the wire allocates beyond the answer's budget.
        let frame_bytes = resp.len();
        let (decoded, tripped) = floe_alloc_guard::decode_scope(crate::decode::budget_bytes(frame_bytes), || {
            let mut buf = crate::decode::GuardedBuf(&mut resp);
            let head = ResponseHeader::decode(&mut buf, R::Response::header_version(version)).map_err(|e| anyhow!("a malformed response header: {e}"))?;
            let out = R::Response::decode(&mut buf, version).map_err(|e| anyhow!("a malformed response: {e}"))?;
            Ok::<_, anyhow::Error>((head, out))
        });
        if tripped {
            bail!("a response claims more elements than its {frame_bytes} bytes can hold");
        }
        let (head, out) = decoded?;
        if head.correlation_id != self.correlation_id {
            bail!("a response to another request (correlation id {} instead of {})", head.correlation_id, self.correlation_id);
        }
        Ok(out)
    }

    async fn round_trip(&mut self, frame: &[u8]) -> anyhow::Result<Bytes> {
        self.stream.write_all(frame).await.with_context(|| format!("sending to {}", self.addr))?;
        let len = self.stream.read_i32().await.with_context(|| format!("reading from {}", self.addr))?;
        let len = usize::try_from(len).map_err(|_| anyhow!("a negative response size"))?;
        if len > RESPONSE_BYTES_MAX {
            bail!("a response of {len} bytes is over the {RESPONSE_BYTES_MAX}-byte cap");
        }
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await.with_context(|| format!("reading from {}", self.addr))?;
        Ok(Bytes::from(buf))
    }
}

/// `Ok` for error code 0, otherwise the code's name with the broker's message, if any.
pub fn check(code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Result<()> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(e) => match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
            Some(m) => bail!("{what}: {e}: {m}"),
            None => bail!("{what}: {e}"),
        },
    }
}
