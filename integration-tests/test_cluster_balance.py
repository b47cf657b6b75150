"""Cluster mode, balancing: with two brokers serving every partition, a third one that joins
receives partitions until each broker leads the same number give or take one; `floe broker drain`
then empties it again — all while idempotent producers run, with nothing lost or duplicated.
Under traffic the balancer weighs bytes: two busy partitions on one broker are split up."""

import json
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clusterkit import Load, assignments, broker, check_read_back, cli, start_cluster, wait_for

ENV = {"FLOE_CLUSTER_BALANCE_INTERVAL_MS": "300", "FLOE_CLUSTER_MOVE_COOLDOWN_MS": "1000", "FLOE_OFFSETS_TOPIC_NUM_PARTITIONS": "4",
       # Partitions weigh the same whatever their traffic: this test is about counts.
       "FLOE_CLUSTER_BALANCE_BYTES_PER_WEIGHT": "1GiB", "FLOE_CLUSTER_BALANCE_REQUESTS_PER_WEIGHT": "1000000000"}


def per_broker(etcd):
    counts = {}
    for a in assignments(etcd, None).values():
        counts[a["owner"]] = counts.get(a["owner"], 0) + 1
    return counts


def test_a_new_broker_receives_partitions_and_a_drained_one_gives_them_back(tmp_path, etcd):
    nodes = start_cluster(tmp_path, etcd, (1, 2), **ENV)
    try:
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
        admin.create_topics([NewTopic("wide", 24, 1)])["wide"].result(30)
        total = sum(per_broker(etcd).values())
        assert sorted(per_broker(etcd)) == [1, 2]
        with Load(",".join(n.bootstrap for n in nodes), kafka_python=False) as load:
            time.sleep(0.5)
            joined = time.time()
            nodes.append(broker(tmp_path, etcd, 3, **ENV).start())

            def even():
                c = per_broker(etcd)
                return len(c) == 3 and max(c.values()) - min(c.values()) <= 1 and not any(a["target"] for a in assignments(etcd, None).values())
            assert wait_for(even, timeout=60), per_broker(etcd)
            evened_s = time.time() - joined
            assert sum(per_broker(etcd).values()) == total
            out = cli(etcd, "broker", "drain", "3", "--wait", "--timeout-ms", "60000")
            assert "serves no partition" in out
            assert 3 not in per_broker(etcd)
            time.sleep(0.5)
        assert load.errors == [], load.errors[:5]
        check_read_back(nodes[0].bootstrap, load.acked)
        metrics = json.dumps(per_broker(etcd))
        print(f"a third broker joined: {total} partitions even ({metrics} after the drain) {evened_s:.1f} s later")
    finally:
        for n in nodes:
            n.stop()


def test_busy_partitions_on_one_broker_are_split_up(tmp_path, etcd):
    env = {"FLOE_CLUSTER_BALANCE_INTERVAL_MS": "500", "FLOE_CLUSTER_MOVE_COOLDOWN_MS": "3000", "FLOE_OFFSETS_TOPIC_NUM_PARTITIONS": "2",
           "FLOE_CLUSTER_BALANCE_BYTES_PER_WEIGHT": "20000"}
    nodes = start_cluster(tmp_path, etcd, (1, 2), **env)
    try:
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
        admin.create_topics([NewTopic("hot", 4, 1)])["hot"].result(30)
        placed = assignments(etcd, "hot")
        owner = placed[("hot", 0)]["owner"]
        hot = [i for i in range(4) if placed[("hot", i)]["owner"] == owner][:2]
        assert len(hot) == 2, placed
        stop, errors = threading.Event(), []

        def produce():
            p = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "enable.idempotence": True, "linger.ms": 5})
            while not stop.is_set():
                for part in hot:
                    for _ in range(20):
                        p.produce("hot", value=b"x" * 1000, partition=part, on_delivery=lambda err, _m: err and errors.append(str(err)))
                p.poll(0)
                time.sleep(0.1)  # about 200 KB/s into each busy partition: ten weights each
            p.flush(30)
        t = threading.Thread(target=produce)
        t.start()
        try:
            split = wait_for(lambda: len({assignments(etcd, "hot")[("hot", i)]["owner"] for i in hot}) == 2, timeout=60, step=0.2)
        finally:
            stop.set()
            t.join(60)
        assert split, f"the busy partitions stayed together: {assignments(etcd, 'hot')}"
        assert errors == [], errors[:5]
    finally:
        for n in nodes:
            n.stop()
