//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the payload.

use crate::error::{Result, SchemaError};

/// Splits a framed record into its schema id and payload.
pub fn split(record: &[u8]) -> Result<(u32, &[u8])> {
    match record {
        [0, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [m, ..] if record.len() >= 5 => Err(SchemaError::WireFormat(format!("magic byte {m}, expected 0"))),
        _ => Err(SchemaError::WireFormat(format!("{} bytes is shorter than the 5-byte header", record.len()))),
    }
}

/// Frames a payload (for producers and tests).
pub fn frame(schema_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_back_and_bad_headers_are_errors() {
        let f = frame(258, b"payload");
        assert_eq!(split(&f), Ok((258, &b"payload"[..])));
        assert!(matches!(split(&[1, 0, 0, 0, 1, 9]), Err(SchemaError::WireFormat(_))));
        assert!(matches!(split(&[0, 0, 1]), Err(SchemaError::WireFormat(_))));
    }
}
