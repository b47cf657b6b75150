"""Hostile bytes on the wire, sent raw: each costs its sender the connection or gets an error, never the node.

After each attack a fresh librdkafka client still produces and consumes, and offsets stay dense.
"""

import gzip
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import crc32c
import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import Floe, floe_binary
from helpers import consume_all, create_topic, produce


def frame(api_key, version, correlation, body, client_id=b"hostile", flexible=False):
    header = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # no tagged fields
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def closed_by_broker(s):
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def read_exactly(s, n):
    out = bytearray()
    while len(out) < n:
        got = s.recv(min(n - len(out), 1 << 20))
        if not got:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += got
    return bytes(out)


def read_response(s):
    size = struct.unpack(">i", read_exactly(s, 4))[0]
    return read_exactly(s, size)


def still_serves(bootstrap, topic):
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [b"still fine"], acks="all")
    assert [m.value() for m in consume_all(bootstrap, topic, 1)] == [b"still fine"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.parametrize("version,body", [
    # Metadata v4: topics array claims 2^31-1 entries, then allow_auto_topic_creation (20 bytes in all).
    (4, b"\x7f\xff\xff\xff\x01"),
    # Metadata v12 (flexible): a compact array claiming 2^32-2 entries.
    (12, b"\xff\xff\xff\xff\x0f\x01\x00\x00"),
])
def test_a_metadata_request_with_a_lying_array_count_costs_only_its_connection(floe, topic_name, version, body):
    pid = floe.proc.pid
    s = connect(floe.port)
    s.sendall(frame(3, version, 1, body, flexible=version >= 9))
    assert closed_by_broker(s)
    s.close()
    assert floe.proc.poll() is None, "the node is alive"
    assert rss_kib(pid) < 2 * 1024 * 1024, "no memory was committed for the claimed array"
    still_serves(floe.bootstrap, topic_name)


def batch(records, count=None, codec=0):
    """A v2 record batch of `records` (values), optionally claiming `count` records, codec 0 or 1 (gzip)."""
    body = b""
    for i, v in enumerate(records):
        rec = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        body += varint(len(rec)) + rec
    if codec == 1:
        body = gzip.compress(body, compresslevel=1)
    n = len(records) if count is None else count
    after_crc = struct.pack(">hiqqqhii", codec, n - 1, 1_700_000_000_000, 1_700_000_000_000, -1, -1, -1, n) + body
    crc = crc32c.crc32c(after_crc)
    head = struct.pack(">iBI", 0, 2, crc)  # partition leader epoch, magic, crc
    rest = head + after_crc
    return struct.pack(">qi", 0, len(rest)) + rest


def varint(n):
    z = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def produce_raw(port, topic, batch_bytes, correlation=1):
    """Produce v3 (acks=-1) of one batch to partition 0; returns (error code, base offset)."""
    t = topic.encode()
    body = struct.pack(">hhi", -1, -1, 30_000) + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(batch_bytes)) + batch_bytes
    s = connect(port)
    s.sendall(frame(0, 3, correlation, body))
    resp = read_response(s)
    s.close()
    (corr, n_topics, name_len) = struct.unpack(">iih", resp[:10])
    at = 10 + name_len
    (_n_parts, _index, error, base) = struct.unpack(">iihq", resp[at:at + 18])
    assert corr == correlation
    return error, base


def high_watermark(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw"})
    _, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    c.close()
    return hi


def test_batches_claiming_more_records_than_they_hold_are_refused_and_offsets_stay_dense(floe, topic_name):
    create_topic(floe.bootstrap, topic_name)
    produce(floe.bootstrap, topic_name, [b"before"], acks="all")
    for i in range(3):
        error, _ = produce_raw(floe.port, topic_name, batch([b"one"], count=2**31 - 1), correlation=i + 1)
        assert error == 87, "INVALID_RECORD"
    assert high_watermark(floe.bootstrap, topic_name) == 1, "no offsets were handed out for the lie"
    error, base = produce_raw(floe.port, topic_name, batch([b"a", b"b"]))
    assert (error, base) == (0, 1)
    got = consume_all(floe.bootstrap, topic_name, 3)
    assert [(m.offset(), m.value()) for m in got] == [(0, b"before"), (1, b"a"), (2, b"b")]


def test_a_compression_bomb_is_refused_at_the_decompression_cap(floe, topic_name):
    create_topic(floe.bootstrap, topic_name)
    # 80 records of 1 MiB of zeros: ~80 KB compressed, 80 MiB inflated (the cap is 64 MiB).
    bomb = batch([bytes(1 << 20)] * 80, codec=1)
    assert len(bomb) < 1_000_000
    error, _ = produce_raw(floe.port, topic_name, bomb)
    assert error == 87, "INVALID_RECORD"
    assert "inflate past" in floe.log_tail(200)
    assert high_watermark(floe.bootstrap, topic_name) == 0
    # The same records, fewer of them, are fine.
    error, base = produce_raw(floe.port, topic_name, batch([bytes(1 << 20)] * 3, codec=1))
    assert (error, base) == (0, 0)


@pytest.fixture
def small_fetch_floe(tmp_path):
    f = Floe(floe_binary(), tmp_path / "floe", env={"FLOE_FETCH_MAX_BYTES": "1MiB"}).start()
    yield f
    f.stop()


def test_fetch_answers_at_most_the_broker_cap_whatever_the_client_asks(small_fetch_floe, topic_name):
    f = small_fetch_floe
    create_topic(f.bootstrap, topic_name)
    produce(f.bootstrap, topic_name, [bytes(100_000)] * 40, acks="all", **{"batch.size": 200_000, "linger.ms": 5})
    t = topic_name.encode()
    # Fetch v4: replica -1, max wait 100 ms, min bytes 1, max bytes 2^31-1, read_uncommitted, one
    # partition from offset 0 with partition max bytes 2^31-1.
    body = struct.pack(">iiiib", -1, 100, 1, 2**31 - 1, 0) + struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iiqi", 1, 0, 0, 2**31 - 1)
    s = connect(f.port)
    s.sendall(frame(1, 4, 9, body))
    resp = read_response(s)
    s.close()
    assert len(resp) < (1 << 20) + 300_000, f"a {len(resp)}-byte response: the 1 MiB cap plus at most one batch"
    assert len(resp) > 100_000, "but records were returned"


def test_connections_announcing_huge_frames_and_sending_nothing_hold_no_memory(floe, topic_name):
    pid = floe.proc.pid
    before = rss_kib(pid)
    idle = []
    for i in range(20):
        s = connect(floe.port)
        # A request announcing 100 MiB (the request cap), then nothing.
        s.sendall(struct.pack(">i", 100 * 1024 * 1024 - 1))
        idle.append(s)
    time.sleep(1)
    grown_mib = (rss_kib(pid) - before) / 1024
    assert grown_mib < 64, f"the node grew by {grown_mib:.0f} MiB for 20 idle 100 MiB announcements"
    still_serves(floe.bootstrap, topic_name)
    for s in idle:
        s.close()


@pytest.fixture
def budget_floe(tmp_path):
    env = {"FLOE_SOCKET_REQUEST_MAX_BYTES": "8MiB", "FLOE_REQUESTS_INFLIGHT_BYTES_MAX": "16MiB"}
    f = Floe(floe_binary(), tmp_path / "floe", env=env).start()
    yield f
    f.stop()


def test_request_bytes_in_flight_are_bounded_across_connections(budget_floe, topic_name):
    """20 connections each send 6 MiB of an 8 MiB request and stall: 120 MiB sent, at most the
    node's 16 MiB budget held."""
    f = budget_floe
    pid = f.proc.pid
    before = rss_kib(pid)
    stalled = []
    chunk = bytes(6 * 1024 * 1024)
    for i in range(20):
        s = connect(f.port)
        s.setblocking(False)
        s.send(struct.pack(">i", 8 * 1024 * 1024) + struct.pack(">hhi", 0, 3, i))
        stalled.append(s)
    deadline = time.monotonic() + 10
    sent = [0] * 20
    while time.monotonic() < deadline and min(sent) < len(chunk):
        for i, s in enumerate(stalled):
            if sent[i] < len(chunk):
                try:
                    sent[i] += s.send(chunk[sent[i]:sent[i] + 1024 * 1024])
                except BlockingIOError:
                    pass
        time.sleep(0.01)
    time.sleep(1)
    grown_mib = (rss_kib(pid) - before) / 1024
    assert sum(sent) > 40 * 1024 * 1024, "the clients got well past the budget into socket buffers"
    assert grown_mib < 48, f"the node holds {grown_mib:.0f} MiB of partial requests (budget 16 MiB)"
    for s in stalled:
        s.close()
    still_serves(f.bootstrap, topic_name)


def post_schema(registry_url, subject, payload, timeout=30):
    req = urllib.request.Request(f"{registry_url}/subjects/{subject}/versions", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_protobuf_schema_that_is_not_base64_or_proto_is_refused(floe):
    status, body = post_schema(floe.registry_url, "bad-proto-value", {"schemaType": "PROTOBUF", "schema": "===="})
    assert status == 422, body
    status, _ = post_schema(floe.registry_url, "fine-value", {"schema": '{"type":"string"}'})
    assert status == 200


def test_an_avro_schema_whose_named_types_double_at_each_level_is_refused_quickly(floe):
    # T0 is a record; each T(i) has two fields of type T(i-1), the first defining it inline and the
    # second naming it: 2^40 nodes once expanded, from ~4 KB of JSON.
    schema = {"type": "record", "name": "T0", "fields": [{"name": "a", "type": "int"}]}
    for i in range(1, 41):
        schema = {"type": "record", "name": f"T{i}", "fields": [{"name": "x", "type": schema}, {"name": "y", "type": f"T{i - 1}"}]}
    text = json.dumps(schema)
    assert len(text) < 8000
    result = {}

    def register():
        result["r"] = post_schema(floe.registry_url, "bomb-value", {"schema": text}, timeout=60)

    started = time.monotonic()
    t = threading.Thread(target=register)
    t.start()
    t.join(60)
    elapsed = time.monotonic() - started
    status, body = result["r"]
    assert status == 422, body
    assert "SCHEMA_NODES_MAX" in body["message"] or "SCHEMA_DEPTH_MAX" in body["message"], body
    assert elapsed < 5, f"the registry took {elapsed:.1f}s"
    status, _ = post_schema(floe.registry_url, "fine2-value", {"schema": '{"type":"long"}'})
    assert status == 200


def test_a_stored_batch_past_the_decompression_cap_goes_to_the_dead_letter_table_and_the_table_moves_on(tmp_path):
    """A compressed batch stored under a larger cap (or by an older version) that the Table Topic
    cannot inflate within its cap is one dead letter; the records after it reach the table."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    from test_table_topic import TT, read_table

    node = Floe(floe_binary(), tmp_path / "floe", env={"FLOE_BATCH_DECOMPRESSED_BYTES_MAX": "128MiB"}).start()
    try:
        create_topic(node.bootstrap, "bombs")
        assert produce_raw(node.port, "bombs", batch([b'{"n": 1}']))[0] == 0
        assert produce_raw(node.port, "bombs", batch([bytes(1 << 20)] * 80, codec=1))[0] == 0, "80 MiB inflated: within 128 MiB"
        assert produce_raw(node.port, "bombs", batch([b'{"n": 2}', b'{"n": 3}']))[0] == 0
        node.stop()
        node.env = {}  # the default cap, 64 MiB
        node.start()
        admin = AdminClient({"bootstrap.servers": node.bootstrap})
        res = ConfigResource(ConfigResource.Type.TOPIC, "bombs", incremental_configs=[
            ConfigEntry(TT + k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in {"enable": "true", "commit.interval.ms": "500", "convert.value.type": "json", "transform.value.type": "flatten"}.items()])
        admin.incremental_alter_configs([res])[res].result(timeout=15)
        rows = read_table(node, "bombs", 3)
        assert sorted(r["n"] for r in rows) == [1, 2, 3]
        (letter,) = read_table(node, "bombs_dlq", 1)
        assert "cannot be decoded" in letter["_error"] and "inflate past" in letter["_error"], letter["_error"]
        assert letter["_kafka_metadata"]["offset"] == 1, "the letter stands at the batch's first offset"
    finally:
        node.stop()
