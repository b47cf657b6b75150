//! The Schema Registry's durable log on a stream of the storage engine (Floe's `_schemas`), trimmed after each compaction.

use bytes::Bytes;
use floe_s3stream::{Engine, StreamId};
use floe_schema::registry::RegistryLog;

const STREAM_KEY: &str = "internal/schemas_stream";
const READ_BYTES: u64 = 4 << 20;

/// Registry events as records of one stream.
pub struct EngineLog {
    engine: Engine,
    stream: StreamId,
}

impl EngineLog {
    /// Opens (or creates) the registry's stream.
    pub async fn open(engine: Engine) -> floe_s3stream::Result<Self> {
        let stream = match engine.kv_get(STREAM_KEY).and_then(|v| v.parse().ok()) {
            Some(s) => s,
            None => {
                let s = engine.create_stream().await?;
                engine.kv_put(vec![(STREAM_KEY.into(), Some(s.to_string()))]).await?;
                s
            }
        };
        engine.open_stream(stream, engine.epoch()).await?;
        Ok(Self { engine, stream })
    }
}

#[async_trait::async_trait]
impl RegistryLog for EngineLog {
    async fn append(&self, event: Vec<u8>) -> Result<u64, String> {
        self.engine.append(self.stream, self.engine.epoch(), 1, Bytes::from(event)).await.map_err(|e| e.to_string())
    }

    async fn trim(&self, before: u64) -> Result<(), String> {
        self.engine.trim(self.stream, before).await.map_err(|e| e.to_string())
    }

    async fn load(&self) -> Result<Vec<Vec<u8>>, String> {
        let info = self.engine.stream_info(self.stream).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        self.engine
            .scan(self.stream, info.start, info.end, READ_BYTES, |b| {
                out.push(b.payload.to_vec());
                Ok::<_, floe_s3stream::Error>(std::ops::ControlFlow::Continue(()))
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}
