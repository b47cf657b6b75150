"""The admin listener: health and Prometheus metrics that move with what the node does."""

import re
import urllib.request

from confluent_kafka import Consumer, TopicPartition

from helpers import create_topic, produce


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
