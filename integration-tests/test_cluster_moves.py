"""Cluster mode: brokers sharing one bucket and one etcd serve a topic's partitions between them
and move them back and forth while idempotent `acks=all` producers (librdkafka, kafka-python and
the Java client) run: every acknowledged record is read exactly once, in order, from whichever broker leads the
partition; no error reaches the producing application. Metadata lists every broker and each
partition's leader at its leader epoch. A consumer group reads along, committing, while its
coordinator (its partition of `__consumer_offsets`) moves too: it reads every record and its
committed offsets end at the end of every partition. `FLOE_CLUSTER_MOVES` sets the number of
moves (50 here; the soak in docs/cluster.md runs more)."""

import os
import statistics
import threading
import time

from confluent_kafka.admin import AdminClient

from confluent_kafka import Consumer, TopicPartition

from clusterkit import PARTITIONS, Load, assignments, cli, read_all, start_cluster
from test_cluster_groups import offsets_partition


class GroupReader:
    """A consumer group member reading "moves" and committing as it goes, in a thread."""

    def __init__(self, bootstrap, group):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                           "auto.offset.reset": "earliest"})
        self.got, self.committed, self.target = [], None, None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        self.c.subscribe(["moves"])
        while not self.stop.is_set():
            msgs = self.c.consume(500, 0.2)
            self.got.extend((m.partition(), m.offset(), m.value().decode()) for m in msgs if not m.error())
            if msgs:
                try:
                    self.c.commit(asynchronous=False)
                except Exception:  # noqa: BLE001 - NOT_COORDINATOR while its coordinator moves: the next commit covers it
                    pass
            if self.target is not None and self.target <= set(self.got):
                break
        for _ in range(50):
            try:
                self.c.commit(asynchronous=False)
                break
            except Exception:  # noqa: BLE001 - the coordinator may still be settling
                time.sleep(0.2)
        got = self.c.committed([TopicPartition("moves", i) for i in range(PARTITIONS)], timeout=30)
        self.committed = {tp.partition: tp.offset for tp in got}
        self.c.close()

    def until_read(self, acked, timeout=120):
        self.target = set(acked)
        self.thread.join(timeout)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(120)


def test_partitions_move_back_and_forth_under_load_losing_and_duplicating_nothing(tmp_path, etcd):
    # Only the moves asked for here: the balancer would even out what they leave uneven.
    nodes = start_cluster(tmp_path, etcd, (1, 2, 3), FLOE_CLUSTER_BALANCE_INTERVAL_MS="3600000")
    try:
        placed = assignments(etcd)
        assert sorted({a["owner"] for a in placed.values()}) == [1, 2, 3], "a new topic's partitions are spread over every broker"
        deadline = time.time() + 10
        while True:
            md = AdminClient({"bootstrap.servers": nodes[2].bootstrap}).list_topics(timeout=10)
            leaders = {p.id: p.leader for p in md.topics["moves"].partitions.values()} if "moves" in md.topics else {}
            if leaders == {k[1]: a["owner"] for k, a in placed.items()} or time.time() > deadline:
                break
            time.sleep(0.1)
        assert sorted(md.brokers) == [1, 2, 3], "Metadata lists every live broker"
        assert leaders == {k[1]: a["owner"] for k, a in placed.items()}, "each partition's leader is its owner"

        moves = int(os.environ.get("FLOE_CLUSTER_MOVES", "50"))
        took_ms = []
        bootstrap = ",".join(n.bootstrap for n in nodes)
        group = GroupReader(bootstrap, "movers")
        # Every fifth move is the group's coordinator: its partition of __consumer_offsets.
        coordinator = ("__consumer_offsets", offsets_partition("movers", 16))
        data_moves = 0
        with Load(bootstrap, java_dir=tmp_path) as load, group:
            time.sleep(1)
            for k in range(moves):
                topic, part = coordinator if k % 5 == 4 else ("moves", k % PARTITIONS)
                data_moves += topic == "moves"
                owner = assignments(etcd, topic)[(topic, part)]["owner"]
                to = owner % 3 + 1
                out = cli(etcd, "partition", "move", f"{topic}:{part}", "--to", str(to), "--wait")
                took_ms.append(int(out.split(" in ")[1].split()[0]))
                time.sleep(0.2)
            time.sleep(1)
            load.stop.set()
            for t in load.threads:
                t.join(120)
            group.until_read(load.acked)
        assert load.errors == [], load.errors[:5]
        final = assignments(etcd)
        epochs = sorted(a["leader_epoch"] for a in final.values())
        assert sum(epochs) == data_moves, f"every move bumps its partition's leader epoch once: {epochs}"
        # The group read everything (at least once: a rebalance may deliver again) and its
        # committed offsets — moved with its coordinator — are the end of every partition.
        assert set(load.acked) <= set(group.got), f"{len(set(load.acked) - set(group.got))} records never reached the group"
        ends = {p: 1 + max(o for q, o, _ in load.acked if q == p) for p in range(PARTITIONS)}
        assert group.committed == ends, (group.committed, ends)

        acked = load.acked
        assert len(acked) > 1000, "the load ran"
        got = read_all(nodes[2].bootstrap, len(acked))
        assert len(got) == len(set((p, o) for p, o, _ in got)), "no offset read twice"
        assert sorted(got) == sorted(acked), "exactly the acknowledged records, at their acknowledged offsets"
        producers = ("r", "k", "j") if load.java else ("r", "k")
        assert {v.split("-")[0] for _, _, v in acked} == set(producers), "every client's records were acknowledged"
        for producer in producers:
            for part in range(PARTITIONS):
                seqs = [int(v.split("-")[2]) for p, _, v in sorted(got) if p == part and v.startswith(producer + "-")]
                assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), f"{producer} on partition {part}: in order, once each"
        took_ms.sort()
        print(f"{moves} moves under load: p50 {statistics.median(took_ms):.0f} ms, max {took_ms[-1]} ms "
              f"(ask → new owner in etcd); {len(acked)} records from {'/'.join(producers)} acknowledged and read back exactly once")
    finally:
        for n in nodes:
            n.stop()


def test_kafkas_own_reassignment_api_moves_a_partition(tmp_path, etcd):
    """Admin.alterPartitionReassignments (what kafka-reassign-partitions.sh calls) with the Java
    client 3.9.1: a one-replica reassignment is a move; two replicas are refused."""
    import shutil
    import subprocess

    import pytest

    from test_java import HERE, client_jars
    jars = client_jars()
    if shutil.which("javac") is None or not any(j.endswith("kafka-clients.jar") for j in jars):
        pytest.skip("no JDK or kafka-clients.jar")
    nodes = start_cluster(tmp_path, etcd, (1, 2))
    try:
        owner = assignments(etcd)[("moves", 0)]["owner"]
        to = 3 - owner
        cp = os.pathsep.join(jars)
        subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, os.path.join(HERE, "java", "FloeReassign.java")], check=True, timeout=120)
        r = subprocess.run(["java", "-cp", os.pathsep.join([str(tmp_path), cp]), "FloeReassign", nodes[0].bootstrap, "moves", "0", str(to)],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "FLOE-REASSIGN-OK" in r.stdout and r.stdout.strip().endswith(f" {to}")
        assert assignments(etcd)[("moves", 0)] == {"topic": "moves", "partition": 0, "owner": to, "leader_epoch": 1, "target": None}
    finally:
        for n in nodes:
            n.stop()
