//! Hostile request bytes against the guarded decoder: lying counts are refused, honest requests decode.

use bytes::{BufMut, BytesMut};
use kafka_protocol::protocol::Encodable;

use super::*;
use crate::handlers::{supported, VERSIONS};

fn frame(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = api as i16;
    h.request_api_version = version;
    h.correlation_id = 7;
    h.encode(&mut b, api.request_header_version(version)).expect("header encodes");
    b.put_slice(body);
    b.freeze()
}

#[test]
fn metadata_v4_claiming_2_pow_31_topics_is_refused_without_allocating() {
    // The 20-byte request that aborted the node: topics count 2^31-1, then allow_auto_topic_creation.
    let f = frame(ApiKey::Metadata, 4, &[0x7f, 0xff, 0xff, 0xff, 0x01]);
    let err = request(f, ApiKey::Metadata, 4).expect_err("refused");
    assert!(err.contains("claims more elements"), "{err}");
}

#[test]
fn metadata_v12_claiming_2_pow_32_topics_is_refused_without_allocating() {
    // Flexible version: compact array count as an unsigned varint of 2^32-1 (n-1 elements).
    let f = frame(ApiKey::Metadata, 12, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x00, 0x00]);
    let err = request(f, ApiKey::Metadata, 12).expect_err("refused");
    assert!(err.contains("claims more elements"), "{err}");
}

#[test]
fn an_honest_metadata_request_with_many_topics_decodes() {
    let mut r = kafka_protocol::messages::MetadataRequest::default();
    r.topics = Some(
        (0..5000)
            .map(|i| {
                let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
                t.name = Some(kafka_protocol::messages::TopicName(crate::handlers::sb(&format!("t{i}"))));
                t
            })
            .collect(),
    );
    for v in [4, 12] {
        let mut body = BytesMut::new();
        r.encode(&mut body, v).expect("encodes");
        let (h, req) = request(frame(ApiKey::Metadata, v, &body), ApiKey::Metadata, v).expect("decodes");
        assert_eq!(h.correlation_id, 7);
        let RequestKind::Metadata(m) = req else { panic!("not metadata") };
        assert_eq!(m.topics.map(|t| t.len()), Some(5000));
    }
}

/// Every API and version Floe accepts, fed bodies made only of large counts and lengths: each is
/// refused or decoded, and nothing aborts. (The fuzz harness goes further; this is the sweep.)
#[test]
fn every_supported_request_survives_bodies_of_lying_counts() {
    let patterns: [&[u8]; 4] = [&[0x7f, 0xff, 0xff, 0xff], &[0xff], &[0x00, 0x00, 0x10, 0x00], &[0xfe, 0xff, 0xff, 0xff, 0x0f]];
    let mut refused = 0;
    for &(api, _, _) in VERSIONS {
        let (min, max) = supported(api).expect("in the table");
        for v in min..=max {
            for p in patterns {
                for len in [1usize, 5, 17, 64, 300] {
                    let body: Vec<u8> = p.iter().copied().cycle().take(len).collect();
                    if request(frame(api, v, &body), api, v).is_err() {
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(refused > 0);
}

#[test]
fn the_budget_grows_with_the_frame_and_is_capped() {
    assert_eq!(budget_bytes(20), 20 * DECODE_EXPANSION_MAX);
    assert_eq!(budget_bytes(100 << 20), DECODE_ALLOCATION_MAX_BYTES);
}

#[test]
fn every_served_api_has_a_decoder() {
    for &(api, _, _) in VERSIONS {
        let (min, _) = supported(api).expect("in the table");
        let mut empty = Bytes::new();
        let r = body(api, &mut GuardedBuf(&mut empty), min);
        assert!(!matches!(&r, Err(e) if e.to_string().contains("is not served")), "{api:?} has no decoder in `bodies!`");
    }
}
