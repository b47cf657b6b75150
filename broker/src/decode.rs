//! Request decoding that no length or count on the wire can turn into an allocation beyond the frame's budget.
//!
//! `kafka-protocol` pre-allocates arrays from the count it reads. Decoding runs inside
//! [`floe_alloc_guard::decode_scope`]: an allocation above [`budget_bytes`] for the frame gets
//! unbacked address space and trips the scope, and [`GuardedBuf`] then reports no bytes left, so
//! the decoder fails at its next read, before anything is written. Such a request is refused as
//! malformed and costs its sender the connection.

use std::ops::Range;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::Decodable;

/// The largest in-memory size of a decoded array, as a multiple of its frame's bytes: an element
/// takes at least one byte on the wire and its Rust form (strings, optional fields, the tagged
/// field map) at most about a hundred.
pub const DECODE_EXPANSION_MAX: usize = 128;
/// No single allocation of a request's decode exceeds this, whatever its frame's size.
pub const DECODE_ALLOCATION_MAX_BYTES: usize = 256 << 20;

/// The allocation budget of a frame of `frame_bytes`.
pub fn budget_bytes(frame_bytes: usize) -> usize {
    frame_bytes.saturating_mul(DECODE_EXPANSION_MAX).min(DECODE_ALLOCATION_MAX_BYTES)
}

/// A request body that reads as exhausted once the decode scope has tripped.
pub struct GuardedBuf<'a>(pub &'a mut Bytes);

impl Buf for GuardedBuf<'_> {
    fn remaining(&self) -> usize {
        if floe_alloc_guard::tripped() {
            0
        } else {
            self.0.remaining()
        }
    }
    fn chunk(&self) -> &[u8] {
        if floe_alloc_guard::tripped() {
            &[]
        } else {
            self.0.chunk()
        }
    }
    fn advance(&mut self, cnt: usize) {
        self.0.advance(cnt)
    }
}

impl ByteBuf for GuardedBuf<'_> {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        self.0.slice(r)
    }
    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.0.split_to(size)
    }
}

/// A frame as the connection sees it.
#[derive(Debug)]
pub enum Frame {
    Request {
        api: ApiKey,
        version: i16,
        correlation: i32,
        header: RequestHeader,
        body: Box<RequestKind>,
    },
    /// ApiVersions in a version Floe lacks: answered in v0 with the ranges (KIP-511).
    UnsupportedApiVersions {
        correlation: i32,
    },
}

/// Reads a frame (after its size prefix): API key and version checked against what Floe
/// serves, then the header and body decoded. An error closes the connection.
pub fn frame(frame: Bytes) -> Result<Frame, String> {
    let Some(&[k0, k1, v0, v1, c0, c1, c2, c3]) = frame.first_chunk::<8>() else {
        return Err(format!("a request of {} bytes has no header", frame.len()));
    };
    let (key, version, correlation) = (i16::from_be_bytes([k0, k1]), i16::from_be_bytes([v0, v1]), i32::from_be_bytes([c0, c1, c2, c3]));
    let api = ApiKey::try_from(key).map_err(|_| format!("unknown API key {key}"))?;
    let Some((min, max)) = crate::handlers::supported(api) else {
        return Err(format!("API {api:?} is not supported"));
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return Ok(Frame::UnsupportedApiVersions { correlation });
        }
        return Err(format!("{api:?} v{version} is outside the supported {min}..={max}"));
    }
    let (header, body) = request(frame, api, version)?;
    Ok(Frame::Request { api, version, correlation, header, body: Box::new(body) })
}

/// Decodes a request's header and body (the frame after its size prefix).
pub fn request(mut frame: Bytes, api: ApiKey, version: i16) -> Result<(RequestHeader, RequestKind), String> {
    let frame_bytes = frame.len();
    let budget = budget_bytes(frame_bytes);
    let (decoded, tripped) = floe_alloc_guard::decode_scope(budget, || {
        let mut buf = GuardedBuf(&mut frame);
        let header = RequestHeader::decode(&mut buf, api.request_header_version(version)).map_err(|e| format!("malformed {api:?} header: {e}"))?;
        let body = body(api, &mut buf, version).map_err(|e| format!("malformed {api:?} v{version} request: {e}"))?;
        Ok((header, body))
    });
    if tripped {
        return Err(format!("{api:?} v{version} request claims more elements than its {frame_bytes} bytes can hold"));
    }
    decoded
}

/// Calls macro `$m` with the name of every API Floe serves (the `VERSIONS` table's): one list
/// for the decoder here and for whatever else must cover every served API (the fuzz seeds).
#[macro_export]
macro_rules! served_apis {
    ($m:ident) => {
        $m!(
            Produce,
            Fetch,
            ListOffsets,
            Metadata,
            OffsetCommit,
            OffsetFetch,
            FindCoordinator,
            JoinGroup,
            Heartbeat,
            LeaveGroup,
            SyncGroup,
            DescribeGroups,
            ListGroups,
            ApiVersions,
            CreateTopics,
            DeleteTopics,
            DeleteRecords,
            InitProducerId,
            OffsetForLeaderEpoch,
            DescribeConfigs,
            AlterConfigs,
            CreatePartitions,
            DeleteGroups,
            IncrementalAlterConfigs,
            OffsetDelete,
            DescribeCluster,
            SaslHandshake,
            SaslAuthenticate,
            DescribeUserScramCredentials,
            AlterUserScramCredentials,
            CreateAcls,
            DescribeAcls,
            DeleteAcls,
            AddPartitionsToTxn,
            AddOffsetsToTxn,
            EndTxn,
            TxnOffsetCommit,
            DescribeTransactions,
            ListTransactions,
            DescribeProducers,
            AlterPartitionReassignments,
            ListPartitionReassignments,
            WriteTxnMarkers
        );
    };
}

/// `RequestKind::decode` takes only `Bytes`; this is the same dispatch over any `ByteBuf`, for
/// the APIs Floe serves (the others are refused before decoding; a test keeps the two in step).
macro_rules! bodies {
    ($($api:ident),* $(,)?) => {
        fn body<B: ByteBuf>(api: ApiKey, buf: &mut B, version: i16) -> anyhow::Result<RequestKind> {
            Ok(match api {
                $(ApiKey::$api => RequestKind::$api(Decodable::decode(buf, version)?),)*
                other => anyhow::bail!("{other:?} is not served"),
            })
        }
    };
}

served_apis!(bodies);

#[cfg(test)]
mod tests;
