"""librdkafka against Floe: confluent-kafka (librdkafka 2.16) and Debian's kcat (librdkafka 2.0.2)."""

import shutil
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from helpers import consume_all, create_topic, produce

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_every_codec_and_acks_round_trip(floe, topic_name, codec, acks):
    create_topic(floe.bootstrap, topic_name, partitions=2)
    values = [f"{codec}-{acks}-{i}-".encode() * 7 for i in range(300)]
    produce(floe.bootstrap, topic_name, values, **{"compression.codec": codec, "acks": acks, "linger.ms": 5})
    got = consume_all(floe.bootstrap, topic_name, len(values))
    assert sorted(m.value() for m in got) == sorted(values)
    for part in (0, 1):
        offsets = [m.offset() for m in got if m.partition() == part]
        assert offsets == list(range(len(offsets))), "offsets are dense and in order"


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
@pytest.mark.parametrize("codec", CODECS)
def test_kcat_with_librdkafka_2_0_2(floe, topic_name, codec):
    lines = [f"line {i} {codec}" for i in range(200)]
    p = subprocess.run(["kcat", "-b", floe.bootstrap, "-t", topic_name, "-P", "-z", codec, "-X", "acks=all"],
                       input="\n".join(lines) + "\n", text=True, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    c = subprocess.run(["kcat", "-b", floe.bootstrap, "-t", topic_name, "-C", "-e", "-o", "beginning", "-f", "%o %s\n"],
                       text=True, capture_output=True, timeout=60)
    assert c.returncode == 0, c.stderr
    got = [l.split(" ", 1) for l in c.stdout.splitlines()]
    assert [int(o) for o, _ in got] == list(range(len(lines)))
    assert [v for _, v in got] == lines
    meta = subprocess.run(["kcat", "-b", floe.bootstrap, "-L", "-t", topic_name], text=True, capture_output=True, timeout=30)
    assert f'topic "{topic_name}" with 1 partitions' in meta.stdout


def test_idempotent_producer_stores_each_record_once_in_order(floe, topic_name):
    create_topic(floe.bootstrap, topic_name, partitions=3)
    values = [str(i).encode() for i in range(5000)]
    produce(floe.bootstrap, topic_name, values, **{
        "enable.idempotence": True, "acks": "all", "max.in.flight.requests.per.connection": 5,
        "linger.ms": 2, "batch.num.messages": 50, "retries": 100,
    })
    got = consume_all(floe.bootstrap, topic_name, len(values), timeout=90)
    assert len(got) == len(values)
    assert sorted(int(m.value()) for m in got) == list(range(5000)), "no duplicates, no loss"
    for part in range(3):
        keys = [int(m.key()) for m in got if m.partition() == part]
        assert keys == sorted(keys), "each partition keeps the produce order"


class Member(threading.Thread):
    def __init__(self, bootstrap, topic, group, strategy, seen):
        super().__init__(daemon=True)
        self.c = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": strategy, "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500, "enable.auto.commit": True, "auto.commit.interval.ms": 200,
        })
        self.topic, self.seen, self.stop_flag = topic, seen, threading.Event()
        self.assigned = set()
        self.lock = threading.Lock()

    def run(self):
        def on_assign(c, parts):
            with self.lock:
                self.assigned |= {p.partition for p in parts}

        def on_revoke(c, parts):
            with self.lock:
                self.assigned -= {p.partition for p in parts}

        self.c.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
        while not self.stop_flag.is_set():
            m = self.c.poll(0.2)
            if m is not None and not m.error():
                self.seen.append((m.partition(), m.offset()))
        self.c.close()


def wait_for(cond, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_group_of_three_with_members_joining_and_leaving(floe, topic_name, strategy):
    create_topic(floe.bootstrap, topic_name, partitions=6)
    produce(floe.bootstrap, topic_name, [f"v{i}".encode() for i in range(600)])
    group = f"g-{topic_name}"
    seen = []
    a = Member(floe.bootstrap, topic_name, group, strategy, seen)
    b = Member(floe.bootstrap, topic_name, group, strategy, seen)
    a.start()
    b.start()
    wait_for(lambda: len(a.assigned) + len(b.assigned) == 6 and a.assigned and b.assigned, what="two members sharing 6 partitions")
    c = Member(floe.bootstrap, topic_name, group, strategy, seen)
    c.start()
    wait_for(lambda: all(m.assigned for m in (a, b, c)) and sum(len(m.assigned) for m in (a, b, c)) == 6,
             what="three members sharing 6 partitions")
    assert set().union(a.assigned, b.assigned, c.assigned) == set(range(6))
    b.stop_flag.set()
    b.join(30)
    wait_for(lambda: a.assigned | c.assigned == set(range(6)) and not (a.assigned & c.assigned), what="the rest taking over")
    produce(floe.bootstrap, topic_name, [f"w{i}".encode() for i in range(600)])
    wait_for(lambda: len(set(seen)) == 1200, what="every record consumed")
    for m in (a, c):
        m.stop_flag.set()
        m.join(30)
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    offsets = admin.list_consumer_group_offsets([__import__("confluent_kafka").ConsumerGroupTopicPartitions(group)])[group].result()
    assert sum(tp.offset for tp in offsets.topic_partitions) == 1200, "auto-committed offsets reach the end"


def test_committed_offsets_survive_a_restart(fresh_floe, topic_name):
    create_topic(fresh_floe.bootstrap, topic_name, partitions=2)
    produce(fresh_floe.bootstrap, topic_name, [f"m{i}".encode() for i in range(100)], acks="all")
    c = Consumer({"bootstrap.servers": fresh_floe.bootstrap, "group.id": "keeper", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, 0), TopicPartition(topic_name, 1, 0)])
    c.commit(offsets=[TopicPartition(topic_name, 0, 17), TopicPartition(topic_name, 1, 23)], asynchronous=False)
    c.close()
    for sig in ("SIGTERM", "SIGKILL"):
        fresh_floe.restart(getattr(__import__("signal"), sig))
        c = Consumer({"bootstrap.servers": fresh_floe.bootstrap, "group.id": "keeper"})
        got = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=30)
        c.close()
        assert [(tp.partition, tp.offset) for tp in got] == [(0, 17), (1, 23)], sig


def test_admin_topics_and_configs(floe, topic_name):
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    fut = admin.create_topics([NewTopic(topic_name, 3, 1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})])
    fut[topic_name].result(30)
    dup = admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name]
    with pytest.raises(KafkaException) as e:
        dup.result(30)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    bad = admin.create_topics([NewTopic(topic_name + "-bad", 1, 1, config={"retention.ms": "soon"})])[topic_name + "-bad"]
    with pytest.raises(KafkaException) as e:
        bad.result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "retention.ms" in e.value.args[0].str()
    md = admin.list_topics(timeout=30)
    assert len(md.topics[topic_name].partitions) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    configs = admin.describe_configs([res])[res].result(30)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.bytes"].value == "-1"
    alter = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    admin.incremental_alter_configs([alter])[alter].result(30)
    configs = admin.describe_configs([res])[res].result(30)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.ms"].value == "604800000", "back to the default"
    unknown = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.mss", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([unknown])[unknown].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    from confluent_kafka.admin import NewPartitions
    admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(30)
    assert len(admin.list_topics(timeout=30).topics[topic_name].partitions) == 5
    admin.delete_topics([topic_name])[topic_name].result(30)
    assert topic_name not in admin.list_topics(timeout=30).topics


def test_list_offsets_by_time_and_delete_records(floe, topic_name):
    create_topic(floe.bootstrap, topic_name)
    p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 0})
    base = int(time.time() * 1000)
    for i in range(10):
        p.produce(topic_name, value=f"v{i}".encode(), timestamp=base + i * 1000)
        p.flush(30)
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lister"})
    found = c.offsets_for_times([TopicPartition(topic_name, 0, base + 4500)], timeout=30)
    assert found[0].offset == 5
    lo, hi = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=30)
    assert (lo, hi) == (0, 10)
    c.close()
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    r = admin.delete_records([TopicPartition(topic_name, 0, 4)])
    list(r.values())[0].result(30)
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lister2"})
    assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=30) == (4, 10)
    c.close()
