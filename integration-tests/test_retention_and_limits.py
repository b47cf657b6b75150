"""Retention (retention.ms, retention.bytes) is enforced; max.message.bytes is too."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import Floe, floe_binary
from helpers import create_topic


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    f = Floe(floe_binary(), tmp_path_factory.mktemp("retention"), env={"FLOE_RETENTION_CHECK_INTERVAL_MS": "200"}).start()
    yield f
    f.stop()


def low_watermark(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    c.close()
    return lo, hi


def produce_batches(bootstrap, topic, batches, size, ts):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    for b in range(batches):
        for _ in range(5):
            p.produce(topic, value=b"x" * size, timestamp=ts)
        p.flush(30)


def wait_low(bootstrap, topic, want, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lo, hi = low_watermark(bootstrap, topic)
        if lo >= want:
            return lo, hi
        time.sleep(0.2)
    return low_watermark(bootstrap, topic)


def test_retention_ms_drops_old_data_only(quick, topic_name):
    create_topic(quick.bootstrap, topic_name, config={"retention.ms": "60000"})
    now = int(time.time() * 1000)
    produce_batches(quick.bootstrap, topic_name, 3, 100, now - 3_600_000)
    produce_batches(quick.bootstrap, topic_name, 2, 100, now)
    lo, hi = wait_low(quick.bootstrap, topic_name, 15)
    assert (lo, hi) == (15, 25), "the three old batches (15 records) are gone, the new ones stay"


def test_retention_bytes_keeps_about_the_limit(quick, topic_name):
    create_topic(quick.bootstrap, topic_name, config={"retention.bytes": "20000"})
    produce_batches(quick.bootstrap, topic_name, 10, 1000, int(time.time() * 1000))
    lo, hi = wait_low(quick.bootstrap, topic_name, 1)
    assert hi == 50
    kept = hi - lo
    assert 20 <= kept < 50, f"{kept} records kept: at least retention.bytes, old batches dropped"


def test_max_message_bytes_refuses_larger_batches(quick, topic_name):
    create_topic(quick.bootstrap, topic_name, config={"max.message.bytes": "2000"})
    errors = []
    p = Producer({"bootstrap.servers": quick.bootstrap, "linger.ms": 0, "message.max.bytes": 100000})
    p.produce(topic_name, value=b"y" * 5000, on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    p.produce(topic_name, value=b"small", on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    codes = sorted((e.code() if e else 0) for e in errors)
    assert codes == sorted([0, KafkaError.MSG_SIZE_TOO_LARGE])
