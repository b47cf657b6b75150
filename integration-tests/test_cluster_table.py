"""Cluster mode, Table Topics: a table is committed by the broker leading its topic's partition 0,
which reads the other partitions from their leaders; the catalog's pointers live in etcd, so every
broker's REST catalog shows the same table. While records are produced the committing partition
moves back and forth at random moments (in the middle of commits too) and its broker is then
killed (SIGKILL, object WAL): the table ends holding every acknowledged record exactly once."""

import random
import signal
import time

from confluent_kafka.admin import AdminClient, NewTopic
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError

from clusterkit import Load, assignments, broker, cli, wait_for

TT = "automq.table.topic."
PARTITIONS = 4
OBJECT_WAL = {"FLOE_STORAGE__WAL": "object", "FLOE_STORAGE__WAL_BATCH_INTERVAL_MS": "20"}


def rows(node):
    try:
        return RestCatalog("floe", uri=node.catalog_url).load_table(("default", "tt")).scan().to_arrow().to_pylist()
    except NoSuchTableError:
        return []


def test_a_table_keeps_exactly_once_through_moves_of_its_committer_and_a_kill(tmp_path, etcd):
    nodes = [broker(tmp_path, etcd, i, **OBJECT_WAL).start() for i in (1, 2, 3)]
    try:
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
        wait_for(lambda: len(admin.list_topics(timeout=10).brokers) == 3, timeout=10)
        cfg = {TT + "enable": "true", TT + "commit.interval.ms": "300", TT + "convert.value.type": "string"}
        admin.create_topics([NewTopic("tt", PARTITIONS, 1, config=cfg)])["tt"].result(30)
        rng = random.Random(18)
        moves = 0
        with Load(",".join(n.bootstrap for n in nodes), kafka_python=False, topic="tt", partitions=PARTITIONS) as load:
            time.sleep(1.5)
            for _ in range(6):
                owner = assignments(etcd, "tt")[("tt", 0)]["owner"]
                to = rng.choice([i for i in (1, 2, 3) if i != owner])
                cli(etcd, "partition", "move", "tt:0", "--to", str(to), "--wait")
                moves += 1
                time.sleep(rng.uniform(0.1, 0.8))  # the new committer's first commits, or its loop starting
            # The committer's broker is killed; the controller hands its partitions on.
            owner = assignments(etcd, "tt")[("tt", 0)]["owner"]
            nodes[owner - 1].stop(signal.SIGKILL)
            assert wait_for(lambda: assignments(etcd, "tt")[("tt", 0)]["owner"] != owner, timeout=30), "partition 0 was reassigned"
            time.sleep(2)
        assert load.errors == [], load.errors[:5]
        live = [n for i, n in enumerate(nodes, 1) if i != owner]
        expected = sorted(v for _, _, v in load.acked)
        got = wait_for(lambda: len(rows(live[0])) >= len(expected), timeout=60, step=0.5)
        assert got, f"{len(rows(live[0]))} rows for {len(expected)} acknowledged records"
        time.sleep(1.5)  # more commit intervals: nothing further may appear
        table = rows(live[0])
        positions = {(r["_kafka_metadata"]["partition"], r["_kafka_metadata"]["offset"]) for r in table}
        assert len(positions) == len(table), f"{len(table) - len(positions)} records committed twice to the table"
        values = sorted(r["_kafka_value"] for r in table)
        assert len(values) == len(set(values)), "no record twice in the topic (the producer's retries were recognised)"
        assert values == expected, f"{len(set(expected) - set(values))} acknowledged records missing"
        # Every broker's catalog is the same catalog.
        snapshots = {RestCatalog("floe", uri=n.catalog_url).load_table(("default", "tt")).current_snapshot().snapshot_id for n in live}
        assert len(snapshots) == 1, snapshots
        print(f"table topic in a cluster: {moves} moves of its committer and a SIGKILL; {len(expected)} acknowledged records, each once in the table")
    finally:
        for n in nodes:
            n.stop()
