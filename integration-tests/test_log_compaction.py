"""Log compaction (cleanup.policy=compact) as Kafka clients see it: the latest record per key at its
original offset, tombstones until delete.retention.ms, aborted transactions gone, offsets with gaps."""

import signal
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from conftest import Floe, floe_binary
from helpers import create_topic

HOUR_MS = 3_600_000
COMPACT = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": str(HOUR_MS)}


@pytest.fixture
def node(tmp_path):
    env = {
        "FLOE_LOG_CLEANER_BACKOFF_MS": "200",
        "FLOE_STATE_SNAPSHOT_INTERVAL_MS": "200",
        "FLOE_STORAGE__UPLOAD_INTERVAL_MS": "200",
    }
    f = Floe(floe_binary(), tmp_path / "floe", env=env).start()
    yield f
    f.stop(signal.SIGKILL)


def read_to_end(bootstrap, topic, **conf):
    """Every record of partition 0 as (offset, key, value), read from the start up to the end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{time.time_ns()}", "enable.partition.eof": True,
                  "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic, 0, -2)])
    out = []
    deadline = time.time() + 30
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(m.error())
        out.append((m.offset(), m.key(), m.value()))
    else:
        raise AssertionError("the end of the partition was not reached")
    c.close()
    return out


def produce_rounds(bootstrap, topic, rounds, **conf):
    """Produces `rounds` lists of (key, value, timestamp) in order, one flush each; returns each
    record's offset as (key, value) → offset."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, **conf})
    offsets = {}

    def done(err, msg):
        assert err is None, err
        offsets[(msg.key(), msg.value())] = msg.offset()

    for records in rounds:
        for key, value, ts in records:
            p.produce(topic, key=key, value=value, timestamp=ts, on_delivery=done)
        assert p.flush(30) == 0
    return offsets


def read_until(read, want, timeout=45):
    """Calls `read` until it returns `want` (compaction runs in the background); returns the last read."""
    deadline = time.time() + timeout
    while True:
        got = read()
        if got == want or time.time() > deadline:
            return got
        time.sleep(0.3)


@pytest.mark.parametrize("codec", ["lz4", "zstd", "gzip", "snappy", "none"])
def test_latest_per_key_at_original_offsets_and_tombstones_until_delete_retention(node, topic_name, codec):
    create_topic(node.bootstrap, topic_name, config=COMPACT)
    now = int(time.time() * 1000)
    keys = [f"key-{i:02}".encode() for i in range(20)]
    rounds = [[(k, f"{k.decode()} v{v}".encode(), now) for k in keys] for v in range(8)]
    # Keys 0-4 deleted long ago (past delete.retention.ms), keys 5-9 just now.
    rounds.append([(k, None, now - 2 * HOUR_MS) for k in keys[:5]] + [(k, None, now) for k in keys[5:10]])
    rounds.append([(b"last", b"the last append stays whole", now)])
    offsets = produce_rounds(node.bootstrap, topic_name, rounds, **{"compression.type": codec})
    end = max(offsets.values()) + 1

    expected = sorted(
        [(offsets[(k, None)], k, None) for k in keys[5:10]]
        + [(offsets[(k, f"{k.decode()} v7".encode())], k, f"{k.decode()} v7".encode()) for k in keys[10:]]
        + [(end - 1, b"last", b"the last append stays whole")]
    )
    assert read_until(lambda: read_to_end(node.bootstrap, topic_name), expected) == expected

    # The log keeps its bounds; a group reading from the start lands after the end.
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "wm"})
    assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=30) == (0, end)
    c.close()

    # kafka-python walks the same gaps.
    kc = KafkaConsumer(bootstrap_servers=node.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = KpTopicPartition(topic_name, 0)
    kc.assign([tp])
    kc.seek_to_beginning(tp)
    seen = []
    while kc.position(tp) < end:
        for batch in kc.poll(timeout_ms=1000).values():
            seen.extend((m.offset, m.key, m.value) for m in batch)
    kc.close()
    assert seen == expected


def test_an_aborted_transaction_never_replaces_the_committed_value(node, topic_name):
    create_topic(node.bootstrap, topic_name, config=COMPACT)
    offsets = produce_rounds(node.bootstrap, topic_name, [[(b"k", b"committed", 0), (b"other", b"o1", 0)]])
    tp = Producer({"bootstrap.servers": node.bootstrap, "transactional.id": f"tx-{topic_name}"})
    tp.init_transactions(30)
    tp.begin_transaction()
    tp.produce(topic_name, key=b"k", value=b"aborted")
    tp.flush(30)
    tp.abort_transaction(30)
    produce_rounds(node.bootstrap, topic_name, [[(b"other", b"o2", 0)], [(b"tail", b"t", 0)]])
    want = [(b"k", b"committed"), (b"other", b"o2"), (b"tail", b"t")]

    got = read_until(lambda: [x[1:] for x in read_to_end(node.bootstrap, topic_name, **{"isolation.level": "read_committed"})], want)
    assert got == want
    first = read_to_end(node.bootstrap, topic_name, **{"isolation.level": "read_committed"})[0]
    assert first == (offsets[(b"k", b"committed")], b"k", b"committed")
    # read_uncommitted no longer sees the aborted record either: it is gone from the log.
    assert b"aborted" not in [v for _, _, v in read_to_end(node.bootstrap, topic_name)]


def test_keyless_records_are_refused_and_compaction_survives_a_restart(node, topic_name):
    create_topic(node.bootstrap, topic_name, config=COMPACT)
    p = Producer({"bootstrap.servers": node.bootstrap})
    errors = []
    p.produce(topic_name, value=b"no key", on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    assert [e.code() for e in errors] == [KafkaError.INVALID_RECORD]

    rounds = [[(f"k{i}".encode(), f"v{r}".encode(), 0) for i in range(50)] for r in range(4)] + [[(b"tail", b"t", 0)]]
    offsets = produce_rounds(node.bootstrap, topic_name, rounds)
    expected = sorted([(offsets[(f"k{i}".encode(), b"v3")], f"k{i}".encode(), b"v3") for i in range(50)] + [(offsets[(b"tail", b"t")], b"tail", b"t")])
    assert read_until(lambda: read_to_end(node.bootstrap, topic_name), expected) == expected
    node.restart(signal.SIGKILL)
    assert read_to_end(node.bootstrap, topic_name) == expected
    # Producing goes on at the next offset, and a second pass compacts the new round too.
    more = produce_rounds(node.bootstrap, topic_name, [[(f"k{i}".encode(), b"v4", 0) for i in range(50)], [(b"tail", b"t2", 0)]])
    assert min(more.values()) == offsets[(b"tail", b"t")] + 1
    again = sorted([(more[(f"k{i}".encode(), b"v4")], f"k{i}".encode(), b"v4") for i in range(50)] + [(more[(b"tail", b"t2")], b"tail", b"t2")])
    assert read_until(lambda: read_to_end(node.bootstrap, topic_name), again) == again
