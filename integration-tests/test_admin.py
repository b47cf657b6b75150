"""The admin listener: health and Prometheus metrics that move with what the node does."""

import re
import time
import urllib.request

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import create_topic, produce


def create_table_topic(floe, name):
    configs = {"automq.table.topic.enable": "true", "automq.table.topic.commit.interval.ms": "300"}
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=configs)])[name].result(timeout=15)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def sample(text, name, labels=""):
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_health_and_metrics(fresh_floe, topic_name):
    assert get(fresh_floe.admin_url + "/health/live") == (200, "ok")
    assert get(fresh_floe.admin_url + "/health/ready")[0] == 200
    _, before = get(fresh_floe.admin_url + "/metrics")
    create_topic(fresh_floe.bootstrap, topic_name)
    produce(fresh_floe.bootstrap, topic_name, [b"x" * 100] * 50, acks="all")
    c = Consumer({"bootstrap.servers": fresh_floe.bootstrap, "group.id": "lagging", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic_name, 0, 20)], asynchronous=False)
    c.close()
    _, after = get(fresh_floe.admin_url + "/metrics")
    assert "# TYPE floe_appends_total counter" in after
    assert sample(after, "floe_appends_total") > sample(before, "floe_appends_total")
    assert sample(after, "floe_wal_writes_total") >= 1
    assert sample(after, "floe_partition_high_watermark", f'{{topic="{topic_name}",partition="0"}}') == 50
    assert sample(after, "floe_consumer_group_lag", f'{{group="lagging",topic="{topic_name}",partition="0"}}') == 30
    assert sample(after, "floe_object_store_requests_total", '{op="put"}') >= 1


def histogram(text, name, labels=""):
    """(cumulative bucket counts by bound, sum, count) of one histogram series."""
    inner = "," + labels[1:-1] if labels else ""
    buckets = {}
    for le, v in re.findall(rf'^{re.escape(name)}_bucket{{le="([^"]+)"{re.escape(inner)}}} (\S+)$', text, re.M):
        buckets[float(le)] = float(v)
    return buckets, sample(text, name + "_sum", labels), sample(text, name + "_count", labels)


def assert_histogram(text, name, labels="", at_least=1):
    buckets, total, count = histogram(text, name, labels)
    assert buckets, f"no {name}{labels} histogram in /metrics"
    counts = [buckets[le] for le in sorted(buckets)]
    assert counts == sorted(counts), f"{name}{labels}: buckets are cumulative"
    assert buckets[float("inf")] == count >= at_least, f"{name}{labels}: +Inf bucket {buckets[float('inf')]}, count {count}"
    assert total > 0
    return count


def test_latency_histograms_count_what_the_node_did(fresh_floe, topic_name):
    create_table_topic(fresh_floe, topic_name)
    produce(fresh_floe.bootstrap, topic_name, [b'{"n": 1}'] * 200, acks="all")
    table = f'{{topic="{topic_name}",table="default.{topic_name}"}}'

    def check(text):
        assert "# TYPE floe_request_seconds histogram" in text
        assert_histogram(text, "floe_request_seconds", '{api="Produce"}')
        assert_histogram(text, "floe_request_seconds", '{api="Metadata"}')
        # Every WAL group write is counted once, and with the file WAL each has one fsync.
        writes = assert_histogram(text, "floe_wal_group_write_seconds")
        assert writes == sample(text, "floe_wal_writes_total")
        assert assert_histogram(text, "floe_wal_fsync_seconds") == writes
        # The store's request histogram counts what its counter counts (the table's files went there).
        puts = assert_histogram(text, "floe_object_store_request_seconds", '{op="put"}')
        assert puts == sample(text, "floe_object_store_requests_total", '{op="put"}')
        commits = assert_histogram(text, "floe_table_topic_commit_seconds", table)
        assert commits == sample(text, "floe_table_topic_commits_total", table)
        assert assert_histogram(text, "floe_table_topic_commit_lag_seconds", table) == commits

    # A scrape may fall between a counter and its histogram moving: the node settles within a few.
    deadline, failure = time.time() + 30, None
    while time.time() < deadline:
        try:
            return check(get(fresh_floe.admin_url + "/metrics")[1])
        except AssertionError as e:
            failure = e
            time.sleep(0.3)
    raise failure
