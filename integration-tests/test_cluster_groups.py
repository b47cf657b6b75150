"""Cluster mode, consumer groups: a group is coordinated by the broker leading its partition of
`__consumer_offsets` (`hash(group) % offsets_topic_num_partitions`, as Kafka places it), and its
committed offsets live in that partition. Moving the partition moves the coordinator: the
members find the new one on NOT_COORDINATOR, and every committed offset is still there; a
killed coordinator's groups (object WAL) keep their offsets too."""

import signal
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from clusterkit import PARTITIONS, Load, assignments, cli, start_cluster, wait_for

OFFSETS_PARTITIONS = 4
ENV = {"FLOE_OFFSETS_TOPIC_NUM_PARTITIONS": str(OFFSETS_PARTITIONS), "FLOE_STORAGE__WAL": "object",
       "FLOE_STORAGE__WAL_BATCH_INTERVAL_MS": "20"}


def offsets_partition(group, partitions=OFFSETS_PARTITIONS):
    """Kafka's placement: Java's String.hashCode, sign bit cleared, modulo the partition count."""
    h = 0
    for ch in group:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def committed(bootstrap, group):
    """The group's committed offsets; None while its coordinator is moving (NOT_COORDINATOR,
    which a client's next try resolves)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition("moves", i) for i in range(PARTITIONS)], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    except KafkaException as e:
        if e.args[0].code() in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.COORDINATOR_LOAD_IN_PROGRESS):
            return None
        raise
    finally:
        c.close()


def consume_and_commit(bootstrap, group, n):
    """A group member that reads `n` records, committing synchronously as it goes."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe(["moves"])
    seen, deadline = 0, time.time() + 60
    while seen < n and time.time() < deadline:
        for m in c.consume(100, 0.5):
            if not m.error():
                seen += 1
        if seen:
            try:
                c.commit(asynchronous=False)
            except KafkaException:
                pass  # e.g. NOT_COORDINATOR during a move: the next commit goes to the new one
    c.close()
    return seen


def coordinator(bootstrap, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group])[group].result(20).coordinator.id


def test_moving_a_groups_offsets_partition_moves_its_coordinator_and_keeps_its_offsets(tmp_path, etcd):
    nodes = start_cluster(tmp_path, etcd, (1, 2), **ENV)
    bootstrap = ",".join(n.bootstrap for n in nodes)
    try:
        assert wait_for(lambda: ("__consumer_offsets", OFFSETS_PARTITIONS - 1) in assignments(etcd, None)), "the offsets topic is in place"
        with Load(bootstrap, kafka_python=False) as load:
            time.sleep(1)
        ends = {p: 1 + max(o for q, o, _ in load.acked if q == p) for p in range(PARTITIONS)}
        group = "g-moves"
        part = offsets_partition(group)
        assert consume_and_commit(bootstrap, group, len(load.acked)) == len(load.acked)
        before = committed(bootstrap, group)
        assert before == ends, "the group committed the end of every partition"
        owner = assignments(etcd, None)[("__consumer_offsets", part)]["owner"]
        assert coordinator(bootstrap, group) == owner, "FindCoordinator names the leader of the group's offsets partition"
        other = 3 - owner
        cli(etcd, "partition", "move", f"__consumer_offsets:{part}", "--to", str(other), "--wait")
        assert wait_for(lambda: committed(bootstrap, group) == before, timeout=30), "the offsets moved with the partition"
        assert coordinator(bootstrap, group) == other, "and so did the coordinator"
        # The group goes on from where it was, on the new coordinator: more records, read once.
        with Load(bootstrap, kafka_python=False) as more:
            time.sleep(0.5)
        assert consume_and_commit(bootstrap, group, len(more.acked)) == len(more.acked), "only the new records are read"
        after = committed(bootstrap, group)
        assert after == {p: 1 + max(o for q, o, _ in more.acked if q == p) for p in range(PARTITIONS)}

        # The coordinator is killed: its partitions (the offsets one too) are taken over.
        killed = nodes[other - 1]
        killed.stop(signal.SIGKILL)
        survivor = nodes[owner - 1].bootstrap
        assert wait_for(lambda: assignments(etcd, None)[("__consumer_offsets", part)]["owner"] == owner, timeout=30)
        assert wait_for(lambda: committed(survivor, group) == after, timeout=30), "committed offsets survive the coordinator's loss"
    finally:
        for n in nodes:
            n.stop()
