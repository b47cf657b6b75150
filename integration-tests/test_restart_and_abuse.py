"""Durability across SIGTERM and SIGKILL, and a broker that survives bad clients."""

import signal
import socket
import struct

import pytest
from confluent_kafka import Consumer, TopicPartition

from helpers import consume_all, create_topic, produce


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_every_acknowledged_record_survives_a_restart(fresh_floe, topic_name, sig):
    create_topic(fresh_floe.bootstrap, topic_name, partitions=3)
    values = [f"{sig.name}-{i}".encode() for i in range(3000)]
    produce(fresh_floe.bootstrap, topic_name, values, acks="all", **{"linger.ms": 1})
    fresh_floe.restart(sig)
    got = consume_all(fresh_floe.bootstrap, topic_name, len(values))
    assert sorted(m.value() for m in got) == sorted(values)
    more = [b"after-restart"] * 10
    produce(fresh_floe.bootstrap, topic_name, more, partition=0, acks="all")
    c = Consumer({"bootstrap.servers": fresh_floe.bootstrap, "group.id": "hw"})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=30)
    c.close()
    assert hi == sum(1 for m in got if m.partition() == 0) + 10, "offsets continue where they were"


def send_raw(port, payload):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(payload)
    return s


def read_response(s):
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    return s.recv(size, socket.MSG_WAITALL)


def test_an_unsupported_api_versions_version_gets_a_v0_answer(floe):
    # ApiVersions v99, correlation id 7, client id "x" (KIP-511).
    body = struct.pack(">hhih", 18, 99, 7, 1) + b"x"
    s = send_raw(floe.port, struct.pack(">i", len(body)) + body)
    resp = read_response(s)
    correlation, error = struct.unpack(">ih", resp[:6])
    assert (correlation, error) == (7, 35), "UNSUPPORTED_VERSION with the supported ranges"
    count = struct.unpack(">i", resp[6:10])[0]
    keys = {struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i])[0] for i in range(count)}
    assert {0, 1, 3, 18} <= keys
    s.close()


@pytest.mark.parametrize("junk", [
    struct.pack(">i", -5),
    struct.pack(">i", 2_000_000_000),
    struct.pack(">i", 12) + b"\x7f\x7f\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00",
    struct.pack(">i", 10) + struct.pack(">hhi", 0, 9, 1) + b"\xff\xff",
])
def test_malformed_requests_close_only_their_connection(floe, topic_name, junk):
    bad = send_raw(floe.port, junk)
    bad.settimeout(10)
    assert bad.recv(1) == b"", "the broker closed the bad connection"
    bad.close()
    create_topic(floe.bootstrap, topic_name)
    produce(floe.bootstrap, topic_name, [b"still fine"])
    assert [m.value() for m in consume_all(floe.bootstrap, topic_name, 1)] == [b"still fine"]
