"""Cluster mode: brokers sharing one bucket and one etcd serve a topic's partitions between them
and move them back and forth while idempotent `acks=all` producers (librdkafka and kafka-python)
run: every acknowledged record is read exactly once, in order, from whichever broker leads the
partition; no error reaches the producing application. Metadata lists every broker and each
partition's leader at its leader epoch. `FLOE_CLUSTER_MOVES` sets the number of moves (20 here;
the soak in docs/cluster.md runs more)."""

import os
import statistics
import time

from confluent_kafka.admin import AdminClient

from clusterkit import PARTITIONS, Load, assignments, cli, read_all, start_cluster


def test_partitions_move_back_and_forth_under_load_losing_and_duplicating_nothing(tmp_path, etcd):
    nodes = start_cluster(tmp_path, etcd, (1, 2, 3))
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

        moves = int(os.environ.get("FLOE_CLUSTER_MOVES", "20"))
        took_ms = []
        with Load(",".join(n.bootstrap for n in nodes)) as load:
            time.sleep(1)
            for k in range(moves):
                part = k % PARTITIONS
                owner = assignments(etcd)[("moves", part)]["owner"]
                to = owner % 3 + 1
                out = cli(etcd, "partition", "move", f"moves:{part}", "--to", str(to), "--wait")
                took_ms.append(int(out.split(" in ")[1].split()[0]))
                time.sleep(0.2)
            time.sleep(1)
        assert load.errors == [], load.errors[:5]
        final = assignments(etcd)
        epochs = sorted(a["leader_epoch"] for a in final.values())
        assert sum(epochs) == moves, f"every move bumps its partition's leader epoch once: {epochs}"

        acked = load.acked
        assert len(acked) > 1000, "the load ran"
        got = read_all(nodes[2].bootstrap, len(acked))
        assert len(got) == len(set((p, o) for p, o, _ in got)), "no offset read twice"
        assert sorted(got) == sorted(acked), "exactly the acknowledged records, at their acknowledged offsets"
        for producer in ("r", "k"):
            for part in range(PARTITIONS):
                seqs = [int(v.split("-")[2]) for p, _, v in sorted(got) if p == part and v.startswith(producer + "-")]
                assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), f"{producer} on partition {part}: in order, once each"
        took_ms.sort()
        print(f"{moves} moves under load: p50 {statistics.median(took_ms):.0f} ms, max {took_ms[-1]} ms "
              f"(ask → new owner in etcd); {len(acked)} records acknowledged and read back exactly once")
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
